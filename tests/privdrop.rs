//! The privilege drop: started as root with `user nobody`, `serve` binds a
//! port below 1024, then runs as nobody alone (every uid, gid and the group
//! list in /proc), creates its spool as nobody and delivers mail as nobody;
//! a reload cannot change the user. Root without `user`, `user root`, an
//! unknown user or group and a spool of someone else are refused with their
//! exit status. The root-only tests print a note and pass when not run as
//! root; the config checks run as anyone.

mod common;

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const EX_CONFIG: i32 = 78;
const EX_CANTCREAT: i32 = 73;

fn skip_unless_root(test: &str) -> bool {
    if !is_root() {
        eprintln!("{test}: not run as root; skipped (the drop needs root)");
    }
    !is_root()
}

/// A free loopback port below 1024, which only root may bind.
fn privileged_port() -> u16 {
    (600..1024)
        .rev()
        .find(|&p| TcpListener::bind(("127.0.0.1", p)).is_ok())
        .expect("a free port below 1024 on 127.0.0.1")
}

/// The group line for nobody's primary group: by name when /etc/group has
/// `nogroup` with that gid (Debian), else by number.
fn nobody_group() -> String {
    let (_, gid) = nobody();
    let groups = fs::read_to_string("/etc/group").unwrap_or_default();
    let named = groups
        .lines()
        .any(|l| l.starts_with(&format!("nogroup:x:{gid}:")));
    if named {
        "nogroup".to_string()
    } else {
        gid.to_string()
    }
}

/// A config for a server on `port` whose spool is `DIR/spool` (not created
/// here) and whose Maildirs are under `DIR/mail`; `extra` is appended.
fn config(dir: &TestDir, port: u16, extra: &str) -> PathBuf {
    let users = dir.write("users", "alice\n");
    dir.write(
        "picomta.conf",
        &format!(
            "hostname {HOST}\nlisten 127.0.0.1:{port}\nspool {dir}/spool\n\
             maildir {dir}/mail/{{user}}\nlocal_domains {DOMAIN}\nusers {users}\n\
             dns_servers 127.0.0.1:9\n{extra}",
            dir = dir.path.display(),
            users = users.display(),
        ),
    )
}

/// A `picomta serve` we started, stopped by its pid if the test fails.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(conf: &Path, log: PathBuf, as_user: Option<(u32, u32)>) -> Daemon {
        let out = fs::File::create(&log).expect("create log");
        let mut command = Command::new(binary());
        command
            .args(["serve", "-c"])
            .arg(conf)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("clone log"))
            .stderr(out);
        if let Some((uid, gid)) = as_user {
            command.uid(uid).gid(gid);
        }
        Daemon {
            child: command.spawn().expect("spawn picomta serve"),
            log,
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (bounded) for a 220 greeting on `port`.
    fn wait_ready(&mut self, port: u16) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("serve exited during start: {status}\n{}", self.log());
            }
            if let Ok(s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                drop(s);
                let mut c = Client::connect(port);
                c.reply().assert(220, "");
                c.ok("QUIT", 221, "");
                return;
            }
            assert!(Instant::now() < deadline, "not ready:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let log = self.log();
            if log.contains(needle) {
                return log;
            }
            assert!(Instant::now() < deadline, "log lacks {needle:?}:\n{log}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// SIGTERM, then the exit code (bounded wait).
    fn stop(&mut self) -> Option<i32> {
        self.signal("TERM");
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "still running:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- picomta log ----\n{}\n---- end ----", self.log());
        }
    }
}

/// The fields of one `Key:` line of /proc/PID/status.
fn status_fields(pid: u32, key: &str) -> Vec<u32> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let line = status
        .lines()
        .find(|l| l.starts_with(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} line in\n{status}"));
    line[key.len() + 1..]
        .split_whitespace()
        .map(|f| f.parse().expect("a number"))
        .collect()
}

#[test]
fn root_binds_a_low_port_then_runs_and_delivers_as_nobody() {
    if skip_unless_root("root_binds_a_low_port_then_runs_and_delivers_as_nobody") {
        return;
    }
    let (uid, gid) = nobody();
    let dir = TestDir::new("privdrop");
    let mail = dir.path.join("mail");
    fs::create_dir(&mail).unwrap();
    std::os::unix::fs::chown(&mail, Some(uid), Some(gid)).unwrap();
    let port = privileged_port();
    let group = nobody_group();
    let conf = config(&dir, port, &format!("user nobody\ngroup {group}\n"));
    let mut daemon = Daemon::start(&conf, dir.path.join("server.log"), None);
    daemon.wait_ready(port);
    let pid = daemon.child.id();

    // Real, effective, saved and file-system ids, and no other group.
    assert_eq!(status_fields(pid, "Uid"), [uid; 4]);
    assert_eq!(status_fields(pid, "Gid"), [gid; 4]);
    assert_eq!(status_fields(pid, "Groups"), [gid]);
    daemon.wait_log(&format!("running as user nobody (uid {uid}, gid {gid})"));
    let log = daemon.log();
    let listening = log.find("listening on").expect("listening line");
    let running = log.find("running as user").expect("running line");
    assert!(listening < running, "bound before the drop:\n{log}");

    // The spool was made for nobody, 0711.
    let spool = dir.path.join("spool");
    let meta = fs::metadata(&spool).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (uid, gid));
    assert_eq!(meta.permissions().mode() & 0o7777, 0o711);

    let mut c = Client::connect(port);
    c.reply().assert(220, "");
    c.ehlo();
    let sent = message("drop1", "dropped", "delivered by nobody");
    c.deliver(SENDER, &["alice@example.test"], &sent);
    c.ok("QUIT", 221, "");
    let maildir = mail.join("alice");
    let deadline = Instant::now() + TIMEOUT;
    while common::mail::count_files(&maildir.join("new")) < 1 {
        assert!(Instant::now() < deadline, "no mail:\n{}", daemon.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let got = common::mail::read_new(&maildir);
    assert_same_bytes(&got[0].message, &crlf_to_lf(&sent), "delivered");

    // Everything in the spool and the Maildir is nobody's (looked at once
    // the message is done with, so no file moves meanwhile).
    daemon.wait_log(": removed");
    let mut paths = files_under(&spool);
    paths.extend(dirs_under(&spool));
    paths.extend(files_under(&maildir));
    paths.extend(dirs_under(&maildir));
    assert!(paths.len() > 8, "{paths:?}");
    for p in &paths {
        let m = fs::symlink_metadata(p).unwrap();
        assert_eq!((m.uid(), m.gid()), (uid, gid), "{}", p.display());
    }

    // A reload reads the config as nobody, and cannot change the user.
    let text = fs::read_to_string(&conf).unwrap();
    fs::write(
        &conf,
        text.replace(&format!("group {group}\n"), "group 4321\n"),
    )
    .unwrap();
    daemon.signal("HUP");
    let log = daemon.wait_log("reloaded");
    assert!(
        log.contains("reload: user/group changes take effect at the next start"),
        "{log}"
    );
    assert_eq!(status_fields(pid, "Gid"), [gid; 4]);
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn root_without_user_is_refused() {
    if skip_unless_root("root_without_user_is_refused") {
        return;
    }
    let dir = TestDir::new("privdrop-nouser");
    let conf = config(&dir, free_port(), "");
    let (code, _, err) = run_binary(&["serve", "-c", &conf.to_string_lossy()]);
    assert_eq!(code, Some(EX_CONFIG), "{err}");
    assert!(err.contains("running as root needs \"user\""), "{err}");
    assert!(err.contains(&*conf.to_string_lossy()), "{err}");
    assert!(!dir.path.join("spool").exists(), "nothing was made as root");
    // check, which serves nothing, does not need it.
    let (code, _, err) = run_binary(&["check", "-c", &conf.to_string_lossy()]);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn root_refuses_a_spool_of_someone_else() {
    if skip_unless_root("root_refuses_a_spool_of_someone_else") {
        return;
    }
    let dir = TestDir::new("privdrop-spool");
    fs::create_dir(dir.path.join("spool")).unwrap();
    let conf = config(&dir, free_port(), "user nobody\n");
    let (code, _, err) = run_binary(&["serve", "-c", &conf.to_string_lossy()]);
    assert_eq!(code, Some(EX_CANTCREAT), "{err}");
    let (uid, gid) = nobody();
    assert!(
        err.contains("is owned by uid 0, not by user nobody"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "chown -R {uid}:{gid} {}/spool",
            dir.path.display()
        )),
        "{err}"
    );
    assert!(
        fs::read_dir(dir.path.join("spool"))
            .unwrap()
            .next()
            .is_none(),
        "nothing was made in it"
    );
}

/// Started as a user other than root, `user` naming someone else is
/// ignored with a warning, and the server runs as it is.
#[test]
fn unprivileged_start_ignores_another_user_with_a_warning() {
    let dir = TestDir::new("privdrop-unprivileged");
    // As root, start it as nobody (it must be able to make its spool).
    let as_user = is_root().then(nobody);
    if let Some((uid, gid)) = as_user {
        std::os::unix::fs::chown(&dir.path, Some(uid), Some(gid)).unwrap();
    }
    // SAFETY: geteuid cannot fail.
    let me = as_user.map_or_else(|| unsafe { libc::geteuid() }, |(uid, _)| uid);
    let other = if me == 4321 { 4322 } else { 4321 };
    let port = free_port();
    let conf = config(&dir, port, &format!("user {other}\ngroup {other}\n"));
    let mut daemon = Daemon::start(&conf, dir.path.join("server.log"), as_user);
    daemon.wait_ready(port);
    let log = daemon.wait_log("not started as root");
    assert!(
        log.contains(&format!(
            "not started as root: user/group ignored, running as uid {me}"
        )),
        "{log}"
    );
    assert_eq!(status_fields(daemon.child.id(), "Uid"), [me; 4]);
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn root_as_user_is_a_config_error() {
    let dir = TestDir::new("privdrop-root");
    for (i, text) in ["user root\n", "# uid 0\nuser 0\ngroup 100\n"]
        .iter()
        .enumerate()
    {
        let conf = dir.write(&format!("root{i}.conf"), text);
        let conf = conf.to_string_lossy().into_owned();
        let line = text.lines().position(|l| l.starts_with("user")).unwrap() + 1;
        for cmd in ["check", "serve"] {
            let (code, _, err) = run_binary(&[cmd, "-c", &conf]);
            assert_eq!(code, Some(EX_CONFIG), "{cmd} {text}: {err}");
            assert!(
                err.contains(&format!("{conf}:{line}: "))
                    && err.contains("will not handle mail as root"),
                "{cmd} {text}: {err}"
            );
        }
    }
}

#[test]
fn unknown_user_or_group_is_named_by_check() {
    let dir = TestDir::new("privdrop-unknown");
    let conf = dir.write(
        "a.conf",
        "hostname a.example\n\nuser no-such-user-picomta\n",
    );
    let conf = conf.to_string_lossy().into_owned();
    let (code, out, err) = run_binary(&["check", "-c", &conf]);
    assert_eq!(code, Some(EX_CONFIG), "{out}{err}");
    assert!(
        err.contains(&format!(
            "{conf}:3: unknown user \"no-such-user-picomta\" (not in /etc/passwd)"
        )),
        "{err}"
    );
    let conf = dir.write("b.conf", "user nobody\ngroup no-such-group-picomta\n");
    let conf = conf.to_string_lossy().into_owned();
    let (code, _, err) = run_binary(&["check", "-c", &conf]);
    assert_eq!(code, Some(EX_CONFIG), "{err}");
    assert!(
        err.contains(&format!(
            "{conf}:2: unknown group \"no-such-group-picomta\" (not in /etc/group)"
        )),
        "{err}"
    );
    // A known one resolves, and check shows the ids.
    let (uid, gid) = nobody();
    let conf = dir.write("c.conf", "user nobody\n");
    let (code, out, err) = run_binary(&["check", "-c", &conf.to_string_lossy()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains(&format!("\nuser nobody # uid {uid}\n")),
        "{out}"
    );
    assert!(
        out.contains(&format!("the user's primary group, gid {gid})\n")),
        "{out}"
    );
}

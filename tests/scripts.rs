//! The shell scripts: shellcheck on every sh/bash script in `scripts/`;
//! `scripts/install` into a DESTDIR (modes, links, the generated config, a
//! kept config, another MTA's sendmail); the sysvinit script driving the
//! real binary (start, status, reload, stop, a second start, a broken config,
//! a stale pid file); the procd script against stub procd functions; the
//! systemd unit through `systemd-analyze verify`; and `scripts/test-chroot`
//! when `PICOMTA_STATIC` names a static build.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// Scripts may wait for a graceful stop (15 s) or build nothing slow; this
/// bounds every one of them.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// What a finished command left: its exit code and output.
struct Run {
    code: Option<i32>,
    out: String,
    err: String,
}

impl Run {
    fn text(&self) -> String {
        format!(
            "exit {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.out, self.err
        )
    }

    fn assert_code(&self, code: i32, what: &str) -> &Run {
        assert_eq!(self.code, Some(code), "{what}:\n{}", self.text());
        self
    }
}

/// Runs `cmd` with its output collected, killing it (and failing the test)
/// after `SCRIPT_TIMEOUT`.
fn run(cmd: &mut Command) -> Run {
    let (code, out, err) = run_command(cmd, None, SCRIPT_TIMEOUT);
    Run { code, out, err }
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn link_target(path: &Path) -> String {
    fs::read_link(path)
        .unwrap_or_else(|e| panic!("{} is not a link: {e}", path.display()))
        .to_string_lossy()
        .into_owned()
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

// --- shellcheck ---------------------------------------------------------------

/// The sh and bash scripts under `scripts/` (by their `#!` line).
fn shell_scripts() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![repo().join("scripts")];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).expect("read scripts/").flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let text = fs::read_to_string(&path).unwrap_or_default();
            let first = text.lines().next().unwrap_or("");
            if first.starts_with("#!") && (first.contains("sh") || first.contains("rc.common")) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn shellcheck_passes_on_every_script() {
    let scripts = shell_scripts();
    for name in [
        "install",
        "init.d/picomta",
        "openwrt/picomta",
        "test-chroot",
        "build-static",
    ] {
        assert!(
            scripts.contains(&repo().join("scripts").join(name)),
            "scripts/{name} is not among the shell scripts found: {scripts:?}"
        );
    }
    if !have("shellcheck") {
        eprintln!("SKIP: shellcheck is not installed (.ci/run installs it)");
        return;
    }
    for script in &scripts {
        let mut cmd = Command::new("shellcheck");
        // procd scripts run under /etc/rc.common, which is sh (busybox ash).
        if script.parent().is_some_and(|p| p.ends_with("openwrt")) {
            cmd.args(["-s", "sh"]);
        }
        run(cmd.arg(script)).assert_code(0, &format!("shellcheck {}", script.display()));
    }
}

// --- scripts/install ------------------------------------------------------------

/// `scripts/install` with a clean environment of its settings plus `env`.
fn install(destdir: &Path, env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(repo().join("scripts/install"));
    for var in ["PREFIX", "INIT", "FORCE", "SPOOL", "MAIL_ROOT", "BINARY"] {
        cmd.env_remove(var);
    }
    cmd.env("DESTDIR", destdir).env("BINARY", binary());
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

#[test]
fn install_into_a_destdir() {
    let dir = TestDir::new("install");
    let root = dir.path.join("root");
    let r = install(&root, &[("INIT", "sysv")]);
    r.assert_code(0, "scripts/install");

    // The binary: setgid picomta-drop (the group itself is the packager's job).
    let bin = root.join("usr/sbin/picomta");
    assert_eq!(mode(&bin), 0o2755, "binary mode");
    assert_eq!(
        fs::metadata(&bin).unwrap().len(),
        fs::metadata(binary()).unwrap().len()
    );
    assert_eq!(link_target(&root.join("usr/sbin/sendmail")), "picomta");
    assert_eq!(link_target(&root.join("usr/bin/mailq")), "../sbin/picomta");
    assert_eq!(
        link_target(&root.join("usr/lib/sendmail")),
        "/usr/sbin/picomta"
    );
    assert!(
        root.join("usr/bin/mailq").exists(),
        "the relative mailq link resolves inside DESTDIR"
    );

    // The spool and mail root with the permission model's modes.
    for (path, want) in [
        ("var/spool/picomta", 0o711),
        ("var/spool/picomta/tmp", 0o700),
        ("var/spool/picomta/msg", 0o700),
        ("var/spool/picomta/state", 0o700),
        ("var/spool/picomta/drop", 0o1730),
        ("var/mail/picomta", 0o700),
    ] {
        let p = root.join(path);
        assert!(p.is_dir(), "{path} is a directory");
        assert_eq!(mode(&p), want, "{path}: mode {:o}", mode(&p));
    }

    // The init script, as in the repository (PREFIX is /usr).
    let init = root.join("etc/init.d/picomta");
    assert_eq!(mode(&init), 0o755);
    assert_eq!(
        fs::read_to_string(&init).unwrap(),
        fs::read_to_string(repo().join("scripts/init.d/picomta")).unwrap()
    );

    // DESTDIR: nothing chowned, and the output says what is left to do.
    for todo in [
        "chown root:picomta-drop /usr/sbin/picomta && chmod 02755 /usr/sbin/picomta",
        "chown picomta:picomta-drop /var/spool/picomta/drop && chmod 01730",
        "create the groups picomta and picomta-drop and the system user picomta",
    ] {
        assert!(r.out.contains(todo), "output lacks {todo:?}:\n{}", r.text());
    }

    // The config: system paths, and valid for the binary.
    let conf_path = root.join("etc/picomta.conf");
    assert_eq!(mode(&conf_path), 0o644);
    let conf = fs::read_to_string(&conf_path).unwrap();
    for line in [
        "listen 0.0.0.0:25 smtp",
        "spool /var/spool/picomta",
        "maildir /var/mail/picomta/{user}",
        "users /etc/picomta/users",
        "aliases /etc/picomta/aliases",
    ] {
        assert!(
            conf.lines().any(|l| l == line),
            "config lacks {line:?}:\n{conf}"
        );
    }
    for l in conf.lines().filter(|l| !l.starts_with('#')) {
        assert!(
            !l.contains("run/") && !l.contains("conf/") && !l.contains("example.test"),
            "development setting left in the installed config: {l}"
        );
    }
    let users = fs::read_to_string(root.join("etc/picomta/users")).unwrap();
    assert!(
        users.lines().all(|l| l.is_empty() || l.starts_with('#')),
        "the example mailboxes are commented out:\n{users}"
    );
    assert!(
        conf.lines().any(|l| l == "user picomta") && conf.lines().any(|l| l == "group picomta"),
        "the daemon runs as picomta:\n{conf}"
    );
    // Checked with the staged users and aliases files, and (this machine has
    // no picomta account) as nobody.
    let staged = dir.write(
        "staged.conf",
        &conf
            .replace(
                "/etc/picomta/",
                &format!("{}/", root.join("etc/picomta").display()),
            )
            .replace("\nuser picomta\n", "\nuser nobody\n")
            .replace("\ngroup picomta\n", "\n"),
    );
    let (code, out, err) = run_binary(&["check", "-c", staged.to_str().unwrap()]);
    assert_eq!(
        code,
        Some(0),
        "picomta check on the installed config: {err}"
    );
    assert!(out.contains("spool /var/spool/picomta\n"), "{out}");

    // A second run keeps the admin's config and replaces its own files.
    fs::write(&conf_path, "# edited by the admin\n").unwrap();
    let again = install(&root, &[("INIT", "sysv")]);
    again.assert_code(0, "second install");
    assert!(
        again.out.contains("kept the existing /etc/picomta.conf"),
        "{}",
        again.text()
    );
    assert_eq!(
        fs::read_to_string(&conf_path).unwrap(),
        "# edited by the admin\n"
    );
    assert_eq!(link_target(&root.join("usr/sbin/sendmail")), "picomta");
    assert_eq!(mode(&bin), 0o2755);
}

#[test]
fn install_keeps_another_mtas_sendmail_unless_forced() {
    let dir = TestDir::new("install-foreign");
    let root = dir.path.join("root");
    fs::create_dir_all(root.join("usr/sbin")).unwrap();
    fs::create_dir_all(root.join("usr/lib")).unwrap();
    let theirs = root.join("usr/sbin/sendmail");
    fs::write(&theirs, "#!/bin/sh\n# postfix's sendmail\n").unwrap();
    std::os::unix::fs::symlink("/usr/sbin/exim4", root.join("usr/lib/sendmail")).unwrap();

    let r = install(&root, &[("INIT", "none")]);
    r.assert_code(0, "install beside another MTA");
    assert!(
        r.out
            .contains("kept /usr/sbin/sendmail: it belongs to another MTA (FORCE=1 replaces it)"),
        "{}",
        r.text()
    );
    assert!(r.out.contains("kept /usr/lib/sendmail"), "{}", r.text());
    assert!(fs::read_to_string(&theirs).unwrap().contains("postfix"));
    assert_eq!(
        link_target(&root.join("usr/lib/sendmail")),
        "/usr/sbin/exim4"
    );
    assert!(!root.join("etc/init.d/picomta").exists(), "INIT=none");

    let forced = install(&root, &[("INIT", "none"), ("FORCE", "1")]);
    forced.assert_code(0, "FORCE=1");
    assert!(
        forced.out.contains("FORCE=1: replacing"),
        "{}",
        forced.text()
    );
    assert_eq!(link_target(&theirs), "picomta");
    assert_eq!(
        link_target(&root.join("usr/lib/sendmail")),
        "/usr/sbin/picomta"
    );
}

#[test]
fn install_procd_systemd_and_another_prefix() {
    let dir = TestDir::new("install-kinds");
    let procd = dir.path.join("procd");
    install(&procd, &[("INIT", "procd")]).assert_code(0, "INIT=procd");
    let script = procd.join("etc/init.d/picomta");
    assert_eq!(mode(&script), 0o755);
    assert_eq!(
        fs::read_to_string(&script).unwrap(),
        fs::read_to_string(repo().join("scripts/openwrt/picomta")).unwrap()
    );

    let systemd = dir.path.join("systemd");
    install(&systemd, &[("INIT", "systemd")]).assert_code(0, "INIT=systemd");
    let unit = systemd.join("usr/lib/systemd/system/picomta.service");
    assert_eq!(mode(&unit), 0o644);
    assert!(!systemd.join("etc/init.d/picomta").exists());

    // PREFIX=/usr/local: the binary there, and the init script names it.
    let local = dir.path.join("local");
    install(&local, &[("INIT", "sysv"), ("PREFIX", "/usr/local")])
        .assert_code(0, "PREFIX=/usr/local");
    assert_eq!(mode(&local.join("usr/local/sbin/picomta")), 0o2755);
    assert_eq!(
        link_target(&local.join("usr/lib/sendmail")),
        "/usr/local/sbin/picomta"
    );
    let init = fs::read_to_string(local.join("etc/init.d/picomta")).unwrap();
    assert!(
        init.contains("DAEMON=${DAEMON:-/usr/local/sbin/picomta}"),
        "{init}"
    );

    let bad = install(&dir.path.join("bad"), &[("INIT", "upstart")]);
    assert_ne!(bad.code, Some(0), "{}", bad.text());
    assert!(bad.err.contains("INIT must be"), "{}", bad.text());
}

// --- the sysvinit script ----------------------------------------------------------

/// Stops the daemon (ours, by pid) if the test fails before `stop` does.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.to_string()).status();
    }
}

struct Sysv {
    dir: TestDir,
    config: PathBuf,
    log: PathBuf,
}

impl Sysv {
    fn new(name: &str, port: u16) -> Sysv {
        let dir = TestDir::new(name);
        let users = dir.write("users", "alice\n");
        let config = dir.write(
            "picomta.conf",
            &format!(
                "hostname {HOST}\nlisten 127.0.0.1:{port}\nspool {dir}/spool\n\
                 maildir {dir}/mail/{{user}}\nlocal_domains {DOMAIN}\n\
                 users {users}\ndns_servers 127.0.0.1:9\n{run_as}",
                dir = dir.path.display(),
                users = users.display(),
                run_as = run_as_line(),
            ),
        );
        // As root the daemon runs as nobody: it needs its spool and mail root.
        for sub in ["spool", "mail"] {
            let path = dir.path.join(sub);
            fs::create_dir_all(&path).unwrap();
            chown_for_server(&path);
        }
        let log = dir.path.join("picomta.log");
        Sysv { dir, config, log }
    }

    fn pid_file(&self) -> PathBuf {
        self.dir.path.join("spool/picomta.pid")
    }

    /// `scripts/init.d/picomta ACTION` with this config; the settings come
    /// from the environment and a defaults file of the test's own.
    fn run(&self, action: &str) -> Run {
        self.run_with(action, &self.config)
    }

    fn run_with(&self, action: &str, config: &Path) -> Run {
        let defaults = self.dir.write(
            "defaults",
            &format!("LOGFILE={}\nSTOP_TIMEOUT=15\n", self.log.display()),
        );
        run(Command::new("sh")
            .arg(repo().join("scripts/init.d/picomta"))
            .arg(action)
            .env("DAEMON", binary())
            .env("CONFIG", config)
            .env("LOGFILE", "/nonexistent/overridden-by-the-defaults-file")
            .env("PICOMTA_DEFAULTS", defaults))
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_log(&self, needle: &str) {
        let deadline = Instant::now() + TIMEOUT;
        while !self.log_text().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "the log never said {needle:?}:\n{}",
                self.log_text()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The process exists and has not exited: an exited daemon stays a zombie
/// (state Z) until whoever adopted it reaps it, which some sandboxes' init
/// does only every second or so.
fn alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

#[test]
fn sysv_script_starts_reloads_and_stops_the_daemon() {
    let port = free_port();
    let s = Sysv::new("sysv", port);
    s.run("status").assert_code(3, "status before start");

    let started = s.run("start");
    started.assert_code(0, "start");
    let pid: u32 = fs::read_to_string(s.pid_file())
        .expect("pid file after start")
        .trim()
        .parse()
        .unwrap();
    let guard = KillOnDrop(pid);
    assert!(alive(pid), "the daemon runs");
    assert!(
        started
            .out
            .contains(&format!("picomta started (pid {pid})")),
        "{}",
        started.text()
    );

    // It serves mail.
    let mut c = Client::connect(port);
    c.reply().assert(220, "");
    c.ehlo();
    c.deliver(
        SENDER,
        &[&format!("alice@{DOMAIN}")],
        b"Subject: via init.d\r\n\r\nhello\r\n",
    );
    c.ok("QUIT", 221, "");
    let new = s.dir.path.join("mail/alice/new");
    let deadline = Instant::now() + TIMEOUT;
    while fs::read_dir(&new).map(|d| d.count()).unwrap_or(0) == 0 {
        assert!(
            Instant::now() < deadline,
            "no mail delivered:\n{}",
            s.log_text()
        );
        thread::sleep(Duration::from_millis(50));
    }

    let st = s.run("status");
    st.assert_code(0, "status while running");
    assert!(st.out.contains("is running"), "{}", st.text());

    let second = s.run("start");
    second.assert_code(0, "a second start (LSB: success)");
    assert!(
        second.out.contains(&format!("already running (pid {pid})")),
        "{}",
        second.text()
    );

    s.run("reload").assert_code(0, "reload");
    s.wait_log("reloaded ");
    s.run("force-reload").assert_code(0, "force-reload");

    let stopped = s.run("stop");
    stopped.assert_code(0, "stop");
    assert!(!alive(pid), "the daemon is gone after stop");
    assert!(!s.pid_file().exists(), "the pid file is removed");
    std::mem::forget(guard);
    s.wait_log("stopped");
    s.run("status").assert_code(3, "status after stop");
    s.run("stop")
        .assert_code(0, "stop when stopped (LSB: success)");
    s.run("reload").assert_code(7, "reload when stopped");

    // restart from stopped starts it; stop again.
    s.run("restart").assert_code(0, "restart");
    let pid: u32 = fs::read_to_string(s.pid_file())
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let guard = KillOnDrop(pid);
    s.run("stop").assert_code(0, "stop after restart");
    assert!(!alive(pid));
    std::mem::forget(guard);
}

#[test]
fn sysv_script_reports_a_broken_config_and_a_stale_pid_file() {
    let s = Sysv::new("sysv-broken", free_port());
    let broken = s
        .dir
        .write("broken.conf", "listen 127.0.0.1:25\nfrobnicate yes\n");
    let r = s.run_with("start", &broken);
    r.assert_code(6, "start with a broken config (LSB 6: not configured)");
    assert!(r.err.contains("broken.conf:2:"), "{}", r.text());
    assert!(r.err.contains("not started"), "{}", r.text());

    // A pid file whose process is gone (a crash): status 1, stop cleans up.
    fs::create_dir_all(s.dir.path.join("spool")).unwrap();
    fs::write(s.pid_file(), "999999999\n").unwrap();
    let st = s.run("status");
    st.assert_code(1, "status with a stale pid file");
    assert!(st.out.contains("remains"), "{}", st.text());
    s.run("stop").assert_code(0, "stop with a stale pid file");
    assert!(!s.pid_file().exists(), "the stale pid file is removed");
    s.run("status").assert_code(3, "status after the clean-up");

    let bad = s.run("frobnicate");
    bad.assert_code(2, "an unknown action");
    assert!(bad.err.contains("Usage:"), "{}", bad.text());
}

// --- the procd script --------------------------------------------------------------

/// Sources the procd script under stub procd functions that print their
/// arguments, with PROG and CONFIG pointed at the test's, and calls `calls`.
fn procd(dir: &TestDir, config: &Path, calls: &str) -> Run {
    let harness = dir.write(
        "harness.sh",
        &format!(
            "procd_open_instance() {{ echo open_instance; }}\n\
             procd_set_param() {{ echo \"set_param $*\"; }}\n\
             procd_close_instance() {{ echo close_instance; }}\n\
             procd_send_signal() {{ echo \"send_signal $*\"; }}\n\
             . {script}\n\
             PROG={bin}\n\
             CONFIG={config}\n\
             echo \"START=$START USE_PROCD=$USE_PROCD\"\n\
             {calls}\n",
            script = repo().join("scripts/openwrt/picomta").display(),
            bin = binary(),
            config = config.display(),
        ),
    );
    run(Command::new("sh").arg(harness))
}

#[test]
fn procd_script_runs_serve_in_the_foreground() {
    let dir = TestDir::new("procd");
    let users = dir.write("users", "alice\n");
    let good = dir.write(
        "picomta.conf",
        &format!(
            "listen 127.0.0.1:{}\nspool {}/spool\nusers {}\n",
            free_port(),
            dir.path.display(),
            users.display()
        ),
    );
    let r = procd(
        &dir,
        &good,
        "start_service; echo \"start=$?\"; reload_service; echo \"reload=$?\"",
    );
    r.assert_code(0, "procd harness");
    for line in [
        "START=50 USE_PROCD=1".to_string(),
        "open_instance".to_string(),
        format!("set_param command {} serve -c {}", binary(), good.display()),
        "set_param respawn".to_string(),
        "set_param stderr 1".to_string(),
        "set_param term_timeout 15".to_string(),
        "close_instance".to_string(),
        "start=0".to_string(),
        "send_signal picomta * 1".to_string(),
        "reload=0".to_string(),
    ] {
        assert!(
            r.out.lines().any(|l| l == line),
            "no {line:?}:\n{}",
            r.text()
        );
    }
    assert!(!r.out.contains(" -d"), "procd wants the foreground");

    // A broken config: the error is shown and procd is not asked to start.
    let broken = dir.write("broken.conf", "frobnicate yes\n");
    let r = procd(
        &dir,
        &broken,
        "start_service; echo \"start=$?\"; reload_service; echo \"reload=$?\"",
    );
    assert!(r.out.contains("start=1"), "{}", r.text());
    assert!(r.out.contains("reload=1"), "{}", r.text());
    assert!(!r.out.contains("open_instance"), "{}", r.text());
    assert!(!r.out.contains("send_signal"), "{}", r.text());
    assert!(r.err.contains("broken.conf:1:"), "{}", r.text());
}

// --- the systemd unit ----------------------------------------------------------------

#[test]
fn systemd_unit_runs_in_the_foreground_and_verifies() {
    let unit = fs::read_to_string(repo().join("scripts/systemd/picomta.service")).unwrap();
    for line in [
        "Type=simple",
        "ExecStartPre=/usr/sbin/picomta check -c ${CONFIG}",
        "ExecStart=/usr/sbin/picomta serve -c ${CONFIG}",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "KillSignal=SIGTERM",
        "TimeoutStopSec=20",
        "Restart=on-failure",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "ProtectSystem=full",
    ] {
        assert!(unit.lines().any(|l| l == line), "unit lacks {line:?}");
    }
    // Maildirs may live under /home.
    assert!(!unit.lines().any(|l| l.starts_with("ProtectHome=")));

    if !have("systemd-analyze") {
        eprintln!("SKIP: systemd-analyze is not installed; the unit was not verified");
        return;
    }
    // verify wants the executables to exist: point them at the built binary.
    let dir = TestDir::new("systemd");
    let path = dir.write(
        "picomta.service",
        &unit.replace("/usr/sbin/picomta", &binary()),
    );
    let r = run(Command::new("systemd-analyze").arg("verify").arg(&path));
    r.assert_code(0, "systemd-analyze verify");
    let about_ours: Vec<&str> = r
        .err
        .lines()
        .chain(r.out.lines())
        .filter(|l| l.contains("picomta.service"))
        .collect();
    assert!(about_ours.is_empty(), "warnings: {about_ours:?}");
}

// --- the empty chroot ----------------------------------------------------------------

/// `scripts/test-chroot` with an existing static build: set `PICOMTA_STATIC`
/// to the path `scripts/build-static` printed (building it here would take
/// minutes, so without it this test only says it skipped).
#[test]
fn static_binary_serves_mail_from_an_empty_chroot() {
    let Ok(bin) = std::env::var("PICOMTA_STATIC") else {
        eprintln!(
            "SKIP: PICOMTA_STATIC is not set; run scripts/test-chroot (it builds the static binary)"
        );
        return;
    };
    let r = run(Command::new(repo().join("scripts/test-chroot")).env("PICOMTA_STATIC", bin));
    r.assert_code(0, "scripts/test-chroot");
    assert!(r.out.contains("PASS"), "{}", r.text());
}

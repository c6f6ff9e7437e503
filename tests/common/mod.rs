//! Shared harness for the integration tests: a private directory per test, the
//! real `picomta serve` binary started on a free loopback port, a byte-exact raw
//! SMTP client, a `lettre` transport, and a reader for what landed in a Maildir.
//! `tls` adds test certificates, password files, a TLS client and a runner
//! for Python scripts. `dns` (a DNS responder) and `sink` (SMTP servers on
//! 127.0.0.x) stand in for the outside world of outbound delivery.
//!
//! Everything waits with a bound (`TIMEOUT`), so a broken server fails a test
//! instead of hanging the suite. On failure the server's log is printed and the
//! test directory is kept for inspection.
//!
//! Run as root (as in CI containers), the servers are configured with
//! `user nobody`, which picomta then requires, and the spool and mail root are
//! given to nobody: every test then also runs the privilege drop.

// Each test file uses its own subset of the harness.
#![allow(dead_code, unused_imports)]

pub mod client;
pub mod dns;
pub mod mail;
pub mod sink;
pub mod tls;

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

pub use client::{dot_stuff, queue_id, Client, Reply};
pub use mail::{assert_same_bytes, crlf_to_lf, message, parse_delivered, Delivered};
pub use tls::{CertKind, TestCert, TlsClient, ACCOUNTS};

/// The host name the server is configured with (greeting, Received).
pub const HOST: &str = "mx.test.example";
/// The local domain; `localhost.test` is local as well.
pub const DOMAIN: &str = "example.test";
/// The envelope sender of most test messages (a remote address).
pub const SENDER: &str = "sender@remote.example";
/// The upper bound of every wait for the server: a reply, readiness, delivery.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// How long a delivered count must stay put before "exactly N" is believed.
pub const SETTLE: Duration = Duration::from_millis(400);

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A directory of its own for one test, removed when the test passes.
pub struct TestDir {
    pub path: PathBuf,
}

impl TestDir {
    pub fn new(name: &str) -> TestDir {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!(
            "picomta-test-{}-{}-{}",
            std::process::id(),
            n,
            name
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create test dir");
        if is_root() {
            // Whatever root's umask, a server that dropped to nobody must
            // reach the files in here (and read them again on SIGHUP).
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod test dir");
        }
        TestDir { path }
    }

    /// Writes `text` to `name` inside the directory and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path.join(name);
        fs::write(&p, text).expect("write test file");
        p
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("test directory kept: {}", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Whether the tests run as root, where `picomta serve` needs a `user`.
pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() == 0 }
}

/// The uid and primary gid of `nobody`, from /etc/passwd: the account test
/// servers drop to when the tests run as root.
pub fn nobody() -> (u32, u32) {
    let passwd = fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<&str>>())
        .find(|f| f.len() >= 4 && f[0] == "nobody")
        .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
        .expect("a nobody entry in /etc/passwd")
}

/// The config line a test server needs to start as root (`user nobody`),
/// or nothing when the tests do not run as root.
pub fn run_as_line() -> &'static str {
    if is_root() {
        "user nobody\n"
    } else {
        ""
    }
}

/// Gives `path` to nobody when the tests run as root, so a server that
/// dropped to nobody may write there; does nothing otherwise.
pub fn chown_for_server(path: &Path) {
    if is_root() {
        let (uid, gid) = nobody();
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
    }
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// The binary under test: the one cargo built, unless `PICOMTA_TEST_BINARY`
/// names another (a release build, or a stand-in when checking the harness).
pub fn binary() -> String {
    std::env::var("PICOMTA_TEST_BINARY")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_picomta").to_string())
}

/// The configuration of one test server, before it starts.
pub struct Setup {
    name: String,
    users: Vec<String>,
    aliases: String,
    extra: Vec<String>,
    files: Vec<(String, String)>,
    cert: Option<CertKind>,
    accounts: Option<Vec<(String, String)>>,
    listeners: Vec<String>,
}

impl Setup {
    /// Users alice, bob, carol, dave; aliases `team` (alice, bob), `staff`
    /// (team, carol) and `postmaster` (alice).
    pub fn new(name: &str) -> Setup {
        Setup {
            name: name.to_string(),
            users: ["alice", "bob", "carol", "dave"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            aliases: "# test aliases\nteam: alice, bob\nstaff: team, carol\npostmaster: alice\n"
                .to_string(),
            extra: Vec::new(),
            files: Vec::new(),
            cert: None,
            accounts: None,
            listeners: Vec::new(),
        }
    }

    /// Adds one `key value` line to the config (after the defaults, so it wins
    /// if the server lets a later line override an earlier one). `{dir}` in
    /// the line stands for the test's directory.
    pub fn with(mut self, line: &str) -> Setup {
        self.extra.push(line.to_string());
        self
    }

    pub fn users(mut self, users: &[&str]) -> Setup {
        self.users = users.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Replaces the aliases file's text.
    pub fn aliases(mut self, text: &str) -> Setup {
        self.aliases = text.to_string();
        self
    }

    /// A file `name` in the test's directory, written before the server
    /// starts (a `with` line can name it as `{dir}/name`).
    pub fn file(mut self, name: &str, contents: &str) -> Setup {
        self.files.push((name.to_string(), contents.to_string()));
        self
    }

    /// A CA-signed certificate for `localhost`/127.0.0.1 made at start and
    /// configured with `tls_cert` and `tls_key`.
    pub fn tls(self) -> Setup {
        self.tls_with(CertKind::CaSigned)
    }

    pub fn tls_with(mut self, kind: CertKind) -> Setup {
        self.cert = Some(kind);
        self
    }

    /// A `passwords` file holding `tls::ACCOUNTS` (hashed by openssl).
    pub fn auth(self) -> Setup {
        self.accounts(&ACCOUNTS)
    }

    /// A `passwords` file holding these (user, password) accounts.
    pub fn accounts(mut self, accounts: &[(&str, &str)]) -> Setup {
        self.accounts = Some(
            accounts
                .iter()
                .map(|(u, p)| (u.to_string(), p.to_string()))
                .collect(),
        );
        self
    }

    /// One more listener, `listen 127.0.0.1:<free port> KIND` (smtp,
    /// submission or smtps); `Server::port_of(KIND)` finds its port.
    pub fn listener(mut self, kind: &str) -> Setup {
        self.listeners.push(kind.to_string());
        self
    }

    /// Writes the files and starts the server; returns once it greets.
    pub fn start(self) -> Server {
        let dir = TestDir::new(&self.name);
        let port = free_port();
        let spool = dir.path.join("spool");
        fs::create_dir_all(&spool).expect("create spool");
        fs::create_dir_all(dir.path.join("mail")).expect("create mail root");
        // A test that sets its own user prepares the directories for it.
        let own_user = self.extra.iter().any(|l| l.starts_with("user "));
        if !own_user {
            chown_for_server(&spool);
            chown_for_server(&dir.path.join("mail"));
        }
        let users = dir.write("users", &(self.users.join("\n") + "\n"));
        let aliases = dir.write("aliases", &self.aliases);
        let mut conf = format!(
            "# picomta integration test\n\
             hostname {HOST}\n\
             listen 127.0.0.1:{port}\n\
             spool {spool}\n\
             maildir {mail}/{{user}}\n\
             local_domains {DOMAIN} localhost.test\n\
             users {users}\n\
             aliases {aliases}\n",
            spool = spool.display(),
            mail = dir.path.join("mail").display(),
            users = users.display(),
            aliases = aliases.display(),
        );
        for (name, contents) in &self.files {
            dir.write(name, contents);
        }
        let mut ports = vec![("smtp".to_string(), port)];
        for kind in &self.listeners {
            let p = free_port();
            conf.push_str(&format!("listen 127.0.0.1:{p} {kind}\n"));
            ports.push((kind.clone(), p));
        }
        let cert = self.cert.map(|kind| tls::make_cert(kind, &dir.path));
        if let Some(c) = &cert {
            conf.push_str(&format!(
                "tls_cert {}\ntls_key {}\n",
                c.cert.display(),
                c.key.display()
            ));
        }
        if let Some(accounts) = &self.accounts {
            let refs: Vec<(&str, &str)> = accounts
                .iter()
                .map(|(u, p)| (u.as_str(), p.as_str()))
                .collect();
            let file = tls::write_passwords(&dir.path, &refs);
            conf.push_str(&format!("passwords {}\n", file.display()));
        }
        // Network safety: picomta never asks the machine's DNS servers in a
        // test. Unless the test runs its own responder, queries go to a
        // loopback port where nothing listens.
        if !self.extra.iter().any(|l| l.starts_with("dns_servers ")) {
            conf.push_str("dns_servers 127.0.0.1:9\n");
        }
        if !own_user {
            conf.push_str(run_as_line());
        }
        let dir_s = dir.path.display().to_string();
        for line in &self.extra {
            conf.push_str(&line.replace("{dir}", &dir_s));
            conf.push('\n');
        }
        let config = dir.write("picomta.conf", &conf);
        let log = dir.path.join("server.log");
        let mut server = Server {
            dir,
            port,
            ports,
            cert,
            config,
            log,
            child: None,
        };
        server.start_again();
        server
    }
}

/// A running `picomta serve` child, killed when dropped.
pub struct Server {
    pub dir: TestDir,
    /// The first listener's port (kind smtp, plain greeting).
    pub port: u16,
    /// Every listener: (kind, port), the first one first.
    pub ports: Vec<(String, u16)>,
    /// The certificate, when the setup asked for TLS.
    pub cert: Option<TestCert>,
    pub config: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Server {
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The port of the first listener of `kind` (smtp, submission, smtps).
    pub fn port_of(&self, kind: &str) -> u16 {
        self.ports
            .iter()
            .find(|(k, _)| k == kind)
            .map(|(_, p)| *p)
            .unwrap_or_else(|| panic!("no {kind} listener; add one with Setup::listener"))
    }

    pub fn spool(&self) -> PathBuf {
        self.dir.path.join("spool")
    }

    /// The Maildir of `user` (the directory holding `new/`, `cur/`, `tmp/`).
    pub fn maildir(&self, user: &str) -> PathBuf {
        self.dir.path.join("mail").join(user)
    }

    /// Starts the server (again, after `kill9`) on the same config and port
    /// and waits until it greets.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "server already running");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open server log");
        let log2 = log.try_clone().expect("clone log handle");
        let child = Command::new(binary())
            .arg("serve")
            .arg("-c")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .spawn()
            .expect("spawn picomta serve");
        self.child = Some(child);
        self.wait_ready();
    }

    /// Sends SIGTERM to the server (our own child, by its pid).
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Sends SIGHUP to the server: reload.
    pub fn reload(&self) {
        self.signal("HUP");
    }

    fn signal(&self, name: &str) {
        let pid = self.child.as_ref().expect("server running").id();
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {pid}");
    }

    /// Waits (at most `limit`) for the server to exit; its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        loop {
            let child = self.child.as_mut().expect("server running");
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "server still running after {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Polls until a connection gets a `220` greeting; the probe then QUITs and
    /// waits for the close, so it holds no session slot afterwards.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    panic!("picomta serve exited during start: {status}");
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "picomta serve not ready on port {} after {TIMEOUT:?}",
                    self.port
                );
            }
            if let Ok(mut s) = TcpStream::connect_timeout(&self.addr(), Duration::from_millis(500))
            {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let mut line = String::new();
                let mut r = BufReader::new(s.try_clone().expect("clone stream"));
                if r.read_line(&mut line).is_ok() && line.starts_with("220") {
                    let _ = s.write_all(b"QUIT\r\n");
                    let mut rest = Vec::new();
                    let _ = r.read_to_end(&mut rest);
                    return;
                }
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server running").id()
    }

    /// `kill -9` of this server (only our own child) and reaping it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// True while the child has not exited.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (at most `TIMEOUT`) until the log contains `needle`, and returns
    /// the log. Log lines are written once per loop turn, so a reply can
    /// arrive before the line that goes with it.
    pub fn wait_log(&self, needle: &str) -> String {
        self.wait_log_within(needle, TIMEOUT)
    }

    /// [`Server::wait_log`] with another limit.
    pub fn wait_log_within(&self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let log = self.log_text();
            if log.contains(needle) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "log never said {needle:?} within {limit:?}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A raw client that has read and checked the `220` greeting.
    pub fn connect(&self) -> Client {
        let mut c = Client::connect(self.port);
        let g = c.reply();
        g.assert(220, "");
        c
    }

    /// A raw client after greeting and `EHLO client.test`.
    pub fn connect_ehlo(&self) -> Client {
        let mut c = self.connect();
        c.ehlo();
        c
    }

    /// An independent SMTP client (no TLS) pointed at this server.
    pub fn lettre(&self) -> lettre::SmtpTransport {
        use lettre::transport::smtp::extension::ClientId;
        lettre::SmtpTransport::builder_dangerous("127.0.0.1")
            .port(self.port)
            .hello_name(ClientId::Domain("client.test".to_string()))
            .timeout(Some(TIMEOUT))
            .build()
    }

    /// The messages in `user`'s `new/` now, sorted by file name.
    pub fn delivered(&self, user: &str) -> Vec<Delivered> {
        mail::read_new(&self.maildir(user))
    }

    /// Waits (bounded) until `user` has `n` messages in `new/`, then for
    /// `SETTLE` more, and asserts there are exactly `n`.
    pub fn wait_mail(&self, user: &str, n: usize) -> Vec<Delivered> {
        let new = self.maildir(user).join("new");
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let have = mail::count_files(&new);
            if have >= n {
                break;
            }
            if Instant::now() > deadline {
                panic!(
                    "{user}: {have} messages in {} after {TIMEOUT:?}, wanted {n}",
                    new.display()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
        thread::sleep(SETTLE);
        let got = self.delivered(user);
        assert_eq!(got.len(), n, "{user}: wrong number of messages delivered");
        got
    }

    /// Asserts `user` has nothing in `new/` (call after something else proved
    /// the server had time to deliver).
    pub fn assert_no_mail(&self, user: &str) {
        let got = self.delivered(user);
        assert!(
            got.is_empty(),
            "{user} should have no mail, has {}: first:\n{}",
            got.len(),
            String::from_utf8_lossy(&got[0].raw)
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
        if thread::panicking() {
            let log = self.log_text();
            let lines: Vec<&str> = log.lines().collect();
            let from = lines.len().saturating_sub(200);
            eprintln!(
                "---- picomta log ({}), last {} lines ----\n{}\n---- end of log ----",
                self.log.display(),
                lines.len() - from,
                lines[from..].join("\n")
            );
        }
    }
}

/// Runs `picomta ARGS`, returning (exit code, stdout, stderr). Bounded: a
/// child still running after `TIMEOUT` (say, `serve` that wrongly accepted a
/// bad config) is killed and the test fails.
pub fn run_binary(args: &[&str]) -> (Option<i32>, String, String) {
    run_command(Command::new(binary()).args(args), None, TIMEOUT)
}

/// Runs `command` with `input` on its stdin (None: /dev/null) and returns
/// (exit code, stdout, stderr). A child still running after `limit` is
/// killed and the test fails.
pub fn run_command(
    command: &mut Command,
    input: Option<&[u8]>,
    limit: Duration,
) -> (Option<i32>, String, String) {
    let mut child = command
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
    let writer = child.stdin.take().zip(input).map(|(mut stdin, input)| {
        let input = input.to_vec();
        thread::spawn(move || {
            // A child that exits without reading all of it is not an error here.
            let _ = stdin.write_all(&input);
        })
    });
    let collect = |r: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = collect(child.stdout.take().map(|s| Box::new(s) as _));
    let err = collect(child.stderr.take().map(|s| Box::new(s) as _));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} still running after {limit:?}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    (
        status.code(),
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    )
}

/// Files (recursively) under `dir`, for looking at the spool from outside.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Directories (recursively) under `dir`, `dir` included.
pub fn dirs_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        if let Ok(rd) = fs::read_dir(&out[i]) {
            let mut sub: Vec<PathBuf> = rd
                .flatten()
                .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                .map(|e| e.path())
                .collect();
            sub.sort();
            out.extend(sub);
        }
        i += 1;
    }
    out
}

/// Creates `path` as an empty regular file (used to make a Maildir path
/// unusable, so deliveries to it are deferred and stay queued).
pub fn block_path(path: &Path) {
    File::create(path).expect("create blocking file");
}

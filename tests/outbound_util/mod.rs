//! Helpers shared by the outbound delivery tests (`outbound.rs`,
//! `smarthost.rs`): a server pointed at the test DNS responder and at the
//! sinks' port, bounded waits on the log and the queue, the reading of a
//! delivery status notification, and a real third-party SMTP server
//! (Python's aiosmtpd) run as a child process.
//!
//! Every wait has a deadline; nothing sleeps longer than `SETTLE`.

// Each test file uses its own subset.
#![allow(dead_code)]

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::dns::DnsServer;
use crate::common::sink::{Sink, Transaction};
use crate::common::{Server, Setup, TestDir, SETTLE, TIMEOUT};

/// The envelope sender of the outbound tests: a local user, so that a
/// notification lands in a Maildir the test can read.
pub const FROM: &str = "carol@example.test";
/// The user behind `FROM`.
pub const FROM_USER: &str = "carol";

/// `127.0.0.last`.
pub fn v4(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

/// A server whose resolver is `dns` and which contacts MX hosts on `port`,
/// with short outbound timeouts (connect 3 s, each reply 5 s) so a stuck
/// peer fails a test quickly. Tests add `retry_min` and the rest themselves
/// (a key given twice is a config error).
pub fn outbound(name: &str, dns: &DnsServer, port: u16) -> Setup {
    outbound_base(name, dns, port)
        .with("outbound_connect_timeout 3s")
        .with("outbound_command_timeout 5s")
        .with("outbound_data_timeout 5s")
}

/// `outbound` without the timeouts, for a test that sets its own.
pub fn outbound_base(name: &str, dns: &DnsServer, port: u16) -> Setup {
    Setup::new(name)
        .with(&format!("dns_servers 127.0.0.1:{}", dns.port()))
        .with(&format!("outbound_port {port}"))
}

/// Sends one message from the test client (127.0.0.1, allowed to relay)
/// and returns its queue id.
pub fn send(server: &Server, from: &str, rcpts: &[&str], message: &[u8]) -> String {
    let mut c = server.connect_ehlo();
    let id = c.deliver(from, rcpts, message);
    c.ok("QUIT", 221, "");
    id
}

/// A message whose body holds the lines dot-stuffing is about: one
/// starting with a dot, one of two dots, and one that is a lone dot (which
/// would end the data if it were not stuffed again on the way out).
pub fn dotted_message(tag: &str) -> Vec<u8> {
    crate::common::message(
        tag,
        "dots and lines",
        "first line\n.leading dot\n..two dots\n.\nafter the lone dot\nlast line",
    )
}

/// Waits until the log contains `needle`.
pub fn wait_log(server: &Server, needle: &str) {
    server.wait_log(needle);
}

/// Waits at most `limit` until the log contains `needle`.
pub fn wait_log_within(server: &Server, needle: &str, limit: Duration) {
    server.wait_log_within(needle, limit);
}

/// The log lines holding every one of `parts`.
pub fn log_lines(server: &Server, parts: &[&str]) -> Vec<String> {
    server
        .log_text()
        .lines()
        .filter(|l| parts.iter().all(|p| l.contains(p)))
        .map(str::to_string)
        .collect()
}

/// Waits for the first log line about `rcpt` with `status=STATUS`
/// (sent, deferred, bounced) and returns it.
pub fn wait_outcome(server: &Server, rcpt: &str, status: &str) -> String {
    wait_outcome_within(server, rcpt, status, TIMEOUT)
}

pub fn wait_outcome_within(server: &Server, rcpt: &str, status: &str, limit: Duration) -> String {
    let to = format!("to=<{rcpt}>");
    let st = format!("status={status}");
    let deadline = Instant::now() + limit;
    loop {
        if let Some(l) = log_lines(server, &[&to, &st]).into_iter().next() {
            return l;
        }
        assert!(
            Instant::now() < deadline,
            "no '{to} ... {st}' line within {limit:?}:\n{}",
            server.log_text()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Asserts a delivery log line has the shape
/// `to=<rcpt> relay=HOST[IP]:PORT delay=N dsn=X.Y.Z status=...`.
pub fn assert_relay(line: &str, host: &str, ip: Ipv4Addr, port: u16) {
    let relay = format!("relay={host}[{ip}]:{port}");
    assert!(line.contains(&relay), "no '{relay}' in: {line}");
    assert!(line.contains(" delay="), "no delay= in: {line}");
}

/// Asserts the line's `dsn=` starts with `prefix` (`2.0.0`, `4.`, `5.1.`).
pub fn assert_dsn(line: &str, prefix: &str) {
    let dsn = format!("dsn={prefix}");
    assert!(line.contains(&dsn), "no '{dsn}' in: {line}");
}

/// Messages in the spool's `msg/` directory now.
pub fn queued(server: &Server) -> usize {
    fs::read_dir(server.spool().join("msg"))
        .map(|rd| rd.flatten().count())
        .unwrap_or(0)
}

/// Waits until the queue holds nothing (every message, notifications
/// included, delivered or returned).
pub fn wait_queue_empty(server: &Server) {
    let deadline = Instant::now() + TIMEOUT;
    while queued(server) != 0 {
        assert!(
            Instant::now() < deadline,
            "{} messages still queued after {TIMEOUT:?}:\n{}",
            queued(server),
            server.log_text()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// A delivery status notification as it was delivered to the sender.
pub struct Dsn {
    /// The whole message.
    pub raw: String,
    /// The message/delivery-status part, continuation lines unfolded.
    pub status: String,
    /// The text/rfc822-headers part: the original's headers.
    pub headers: String,
}

/// Continuation lines joined to the line before (with one space).
pub fn unfold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if line.starts_with(' ') || line.starts_with('\t') {
            out.push(' ');
            out.push_str(line.trim_start());
        } else {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(line);
        }
    }
    out
}

/// Parses a DSN with mailparse and checks its MIME shape (RFC 3464:
/// multipart/report; report-type=delivery-status, three parts).
pub fn parse_dsn(raw: &str) -> Dsn {
    let mail = mailparse::parse_mail(raw.as_bytes()).expect("DSN parses");
    assert_eq!(mail.ctype.mimetype, "multipart/report", "{raw}");
    assert_eq!(
        mail.ctype.params.get("report-type").map(String::as_str),
        Some("delivery-status"),
        "{raw}"
    );
    assert_eq!(mail.subparts.len(), 3, "{raw}");
    assert_eq!(mail.subparts[0].ctype.mimetype, "text/plain", "{raw}");
    assert_eq!(
        mail.subparts[1].ctype.mimetype, "message/delivery-status",
        "{raw}"
    );
    assert_eq!(
        mail.subparts[2].ctype.mimetype, "text/rfc822-headers",
        "{raw}"
    );
    let body = |i: usize| {
        String::from_utf8_lossy(&mail.subparts[i].get_body_raw().expect("part body")).into_owned()
    };
    Dsn {
        raw: raw.to_string(),
        status: unfold(&body(1)),
        headers: body(2),
    }
}

/// Waits until `user` has exactly one message, checks it is a notification
/// (null Return-Path, `To:` the sender) and parses it.
pub fn wait_dsn(server: &Server, user: &str) -> Dsn {
    let got = server.wait_mail(user, 1);
    assert_eq!(got[0].return_path, "", "a notification has the null sender");
    let raw = got[0].message_str();
    assert!(
        raw.contains(&format!("To: <{user}@example.test>"))
            || raw.contains(&format!("To: {user}@example.test")),
        "{raw}"
    );
    parse_dsn(&raw)
}

impl Dsn {
    /// Asserts the per-recipient fields of `rcpt` are there with a
    /// `Status:` starting with `status` (`5.1.`, `4.4.7`).
    pub fn assert_failed(&self, rcpt: &str, status: &str) {
        let s = &self.status;
        assert!(
            s.contains(&format!("Final-Recipient: rfc822; {rcpt}")),
            "{rcpt} not reported:\n{s}"
        );
        assert!(s.contains("Action: failed"), "{s}");
        assert!(s.contains(&format!("Status: {status}")), "{s}");
    }

    /// Asserts `rcpt` is not named anywhere in the report.
    pub fn assert_not_named(&self, rcpt: &str) {
        assert!(
            !self.status.contains(rcpt),
            "{rcpt} should not be in the report:\n{}",
            self.status
        );
    }

    /// Asserts the quoted headers are the original's.
    pub fn assert_quotes(&self, tag: &str) {
        let id = format!("Message-ID: <{tag}@client.test>");
        assert!(self.headers.contains(&id), "{}", self.headers);
    }
}

/// Asserts nobody got mail and the test log shows no notification.
pub fn assert_no_notification(server: &Server) {
    for user in ["alice", "bob", "carol", "dave"] {
        server.assert_no_mail(user);
    }
    assert!(
        !server
            .log_text()
            .contains("sender non-delivery notification"),
        "{}",
        server.log_text()
    );
}

/// A port free on every one of `ips` right now (for a server that is not a
/// `Sink`: aiosmtpd, or an address where nothing must listen).
pub fn free_port_on(ips: &[Ipv4Addr]) -> u16 {
    'attempt: for _ in 0..100 {
        let first = TcpListener::bind((ips[0], 0)).expect("bind a loopback address");
        let port = first.local_addr().expect("local addr").port();
        let mut held = vec![first];
        for ip in &ips[1..] {
            match TcpListener::bind((*ip, port)) {
                Ok(l) => held.push(l),
                Err(_) => continue 'attempt,
            }
        }
        return port;
    }
    panic!("no port free on {ips:?}");
}

// ---------------------------------------------------------------------------
// aiosmtpd: an SMTP server we did not write

/// The handler the aiosmtpd child runs (`-c outhandler.Writer DIR`): every
/// message becomes `msg-N.eml` in DIR: a head (`helo`, `tls`, `from`,
/// `params`, one `rcpt` line each), an empty line, then the data as
/// received (CRLF, dots already un-stuffed). Written then renamed, so a
/// reader never sees half a file.
const HANDLER: &str = r#"import os


class Writer:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0

    @classmethod
    def from_cli(cls, parser, *args):
        if len(args) != 1:
            parser.error("outhandler.Writer takes one argument: the directory")
        return cls(args[0])

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        tls = session.ssl is not None
        if not tls and server.transport is not None:
            tls = server.transport.get_extra_info("ssl_object") is not None
        head = [
            "helo %s" % session.host_name,
            "tls %s" % ("yes" if tls else "no"),
            "from %s" % envelope.mail_from,
            "params %s" % " ".join(envelope.mail_options),
        ]
        head += ["rcpt %s" % r for r in envelope.rcpt_tos]
        data = ("\n".join(head) + "\n\n").encode() + envelope.original_content
        base = os.path.join(self.directory, "msg-%d" % self.count)
        with open(base + ".tmp", "wb") as f:
            f.write(data)
        os.rename(base + ".tmp", base + ".eml")
        return "250 2.0.0 Ok: stored by aiosmtpd"
"#;

/// Fails the test, with the way out, when aiosmtpd cannot be imported: the
/// interoperability test must not pass by skipping.
pub fn require_aiosmtpd() {
    let out = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "this test needs Python's aiosmtpd, a third-party SMTP server: \
             `python3 -m pip install aiosmtpd` (.ci/run installs it). python3 said:\n{}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!("this test needs python3 with aiosmtpd installed: {e}"),
    }
}

/// One message aiosmtpd stored.
#[derive(Debug, Clone)]
pub struct AioMessage {
    pub helo: String,
    pub tls: bool,
    pub from: String,
    pub params: Vec<String>,
    pub rcpts: Vec<String>,
    /// As received: CRLF line ends, un-stuffed, without the final dot.
    pub data: Vec<u8>,
}

/// A running `python3 -m aiosmtpd`, killed (this child only) when dropped.
pub struct Aiosmtpd {
    child: Option<Child>,
    pub addr: SocketAddr,
    out: PathBuf,
    log: PathBuf,
    dir: TestDir,
}

impl Aiosmtpd {
    /// Starts aiosmtpd on `ip`:`port` with the writing handler; `extra`
    /// are more aiosmtpd options (`--tlscert`, `--smtpscert` ...). Returns
    /// once the port takes connections.
    pub fn start(ip: Ipv4Addr, port: u16, extra: &[&str]) -> Aiosmtpd {
        require_aiosmtpd();
        let dir = TestDir::new("aiosmtpd");
        let out = dir.path.join("out");
        fs::create_dir_all(&out).expect("create aiosmtpd out dir");
        dir.write("outhandler.py", HANDLER);
        let log = dir.path.join("aiosmtpd.log");
        let log_file = fs::File::create(&log).expect("create aiosmtpd log");
        let listen = format!("{ip}:{port}");
        let mut args: Vec<String> = vec![
            "-m".into(),
            "aiosmtpd".into(),
            "-n".into(),
            "-d".into(),
            "-l".into(),
            listen,
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend([
            "-c".to_string(),
            "outhandler.Writer".to_string(),
            out.display().to_string(),
        ]);
        let child = Command::new("python3")
            .args(&args)
            .current_dir(&dir.path)
            .env("PYTHONPATH", &dir.path)
            .stdin(Stdio::null())
            .stdout(Stdio::from(
                log_file.try_clone().expect("clone aiosmtpd log"),
            ))
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("run python3 -m aiosmtpd");
        let mut server = Aiosmtpd {
            child: Some(child),
            addr: SocketAddr::from((ip, port)),
            out,
            log,
            dir,
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    self.child = None;
                    panic!("aiosmtpd exited during start ({status}):\n{}", self.log());
                }
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(300)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "aiosmtpd not listening on {} after {TIMEOUT:?}:\n{}",
                self.addr,
                self.log()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// aiosmtpd's own output (debug level).
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The messages stored so far, in arrival order.
    pub fn messages(&self) -> Vec<AioMessage> {
        let mut files: Vec<(usize, PathBuf)> = fs::read_dir(&self.out)
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        let n = name.strip_prefix("msg-")?.strip_suffix(".eml")?;
                        Some((n.parse().ok()?, e.path()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
            .into_iter()
            .map(|(_, p)| parse_aio(&fs::read(&p).expect("read stored message")))
            .collect()
    }

    /// Waits until `n` messages were stored, then `SETTLE`, and asserts
    /// there are exactly `n`.
    pub fn wait_messages(&self, n: usize) -> Vec<AioMessage> {
        let deadline = Instant::now() + TIMEOUT;
        while self.messages().len() < n {
            assert!(
                Instant::now() < deadline,
                "aiosmtpd stored {} messages after {TIMEOUT:?}, wanted {n}; its log:\n{}",
                self.messages().len(),
                self.log()
            );
            thread::sleep(Duration::from_millis(50));
        }
        thread::sleep(SETTLE);
        let got = self.messages();
        assert_eq!(got.len(), n, "aiosmtpd: wrong number of messages");
        got
    }
}

fn parse_aio(raw: &[u8]) -> AioMessage {
    let split = raw
        .windows(2)
        .position(|w| w == b"\n\n")
        .expect("handler head ends with an empty line");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut m = AioMessage {
        helo: String::new(),
        tls: false,
        from: String::new(),
        params: Vec::new(),
        rcpts: Vec::new(),
        data: raw[split + 2..].to_vec(),
    };
    for line in head.lines() {
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        match key {
            "helo" => m.helo = value.to_string(),
            "tls" => m.tls = value == "yes",
            "from" => m.from = value.to_string(),
            "params" => m.params = value.split_whitespace().map(str::to_string).collect(),
            "rcpt" => m.rcpts.push(value.to_string()),
            _ => {}
        }
    }
    m
}

impl Drop for Aiosmtpd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if thread::panicking() {
            eprintln!(
                "---- aiosmtpd log ({}) ----\n{}\n---- end ----",
                self.log.display(),
                self.log()
            );
        }
    }
}

// ---------------------------------------------------------------------------
// What the sinks received

/// Asserts `data`, as a next hop received it, is the test client's
/// `original` message with picomta's trace line on top, CRLF throughout.
pub fn assert_relayed(data: &[u8], original: &[u8]) {
    let text = String::from_utf8_lossy(data);
    assert!(
        data.starts_with(b"Received: from client.test"),
        "no Received line of ours on top:\n{text}"
    );
    assert!(
        text.contains(&format!("by {} (picomta)", crate::common::HOST)),
        "{text}"
    );
    assert!(
        data.ends_with(original),
        "the message was changed on the way:\n--- got\n{text}\n--- sent\n{}",
        String::from_utf8_lossy(original)
    );
    for (i, &b) in data.iter().enumerate() {
        assert!(
            b != b'\n' || (i > 0 && data[i - 1] == b'\r'),
            "bare LF at byte {i}:\n{text}"
        );
    }
}

/// Waits until the sink accepted messages for `n` recipients in all (in
/// however many transactions), then `SETTLE`, and asserts exactly `n`.
pub fn wait_accepted_rcpts(sink: &Sink, n: usize) -> Vec<Transaction> {
    let count = |ts: &[Transaction]| ts.iter().map(|t| t.rcpts.len()).sum::<usize>();
    let deadline = Instant::now() + TIMEOUT;
    while count(&sink.delivered()) < n {
        assert!(
            Instant::now() < deadline,
            "sink {}: {} recipients accepted after {TIMEOUT:?}, wanted {n}; sessions: {:#?}",
            sink.addr(),
            count(&sink.delivered()),
            sink.sessions()
        );
        thread::sleep(Duration::from_millis(20));
    }
    thread::sleep(SETTLE);
    let got = sink.delivered();
    assert_eq!(
        count(&got),
        n,
        "sink {}: wrong recipient count",
        sink.addr()
    );
    got
}

/// Asserts the sink was never given a message: no MAIL at all (TLS or
/// AUTH went wrong before), after its sessions ended.
pub fn assert_no_transaction(sink: &Sink) {
    for s in sink.sessions() {
        assert!(
            s.transactions.is_empty(),
            "sink {}: a transaction happened: {s:#?}",
            sink.addr()
        );
    }
}

//! SMTP sinks: small SMTP servers in threads, on loopback addresses the test
//! chooses (127.0.0.2, 127.0.0.3, ...), standing in for the MX hosts and
//! smarthosts picomta delivers to. All the sinks of one test share one port
//! number (picomta connects to one port for every MX), found free on each
//! address.
//!
//! A `Behaviour` says how a sink answers: accept everything, a 4xx/5xx
//! greeting, 4xx or 5xx to chosen recipients, 451 after the final dot, a
//! dropped connection after MAIL, which extensions EHLO lists, STARTTLS with
//! a test certificate, AUTH PLAIN/LOGIN checked against one account. Every
//! session and transaction is recorded (HELO name, TLS, AUTH user, MAIL FROM
//! and its parameters, each RCPT and its reply, the data after un-stuffing)
//! for assertions.
//!
//! Bounded: a connection is served by its own thread, reads wait at most
//! `POLL` before looking at the stop flag, a session ends after `IDLE`
//! without input, lines are capped at `MAX_LINE` and messages at
//! `MAX_MESSAGE`. Dropping the `Sink` stops and joins every thread.

use std::collections::HashMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

use super::tls::TestCert;
use super::{SETTLE, TIMEOUT};

const POLL: Duration = Duration::from_millis(50);
/// A session with no input for this long is closed.
const IDLE: Duration = Duration::from_secs(60);
/// Longest command line accepted (RFC 5321 allows 512; extensions more).
const MAX_LINE: usize = 4096;
/// Largest message kept (and read) before the sink gives up on a session.
const MAX_MESSAGE: usize = 64 << 20;

/// A rustls server configuration (ring, TLS 1.2 and 1.3) presenting `cert`.
pub fn server_config(cert: &TestCert) -> Arc<ServerConfig> {
    let chain = CertificateDer::pem_file_iter(&cert.cert)
        .expect("read the test cert")
        .collect::<Result<Vec<_>, _>>()
        .expect("parse the test cert");
    let key = PrivateKeyDer::from_pem_file(&cert.key).expect("read the test key");
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("a usable test cert");
    Arc::new(config)
}

/// A reply: code and text (the text starts with the enhanced code, if any).
pub type Answer = (u16, String);

fn answer(code: u16, text: &str) -> Answer {
    (code, text.to_string())
}

/// What a sink says before anything else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Greeting {
    /// `220 NAME ESMTP sink`.
    Ready,
    /// This reply instead. With 421 the sink closes at once; with any other
    /// code it answers 503 to everything but QUIT (RFC 5321 3.1).
    Refuse(Answer),
    /// Accepts the connection and never says a word.
    Silent,
}

/// How a sink behaves. `Behaviour::accept()` (also `default()`) takes every
/// message; the other methods change one thing each.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// The name in the greeting and EHLO reply.
    pub name: String,
    pub greeting: Greeting,
    /// Reply to EHLO instead of the extension list (HELO still works).
    pub ehlo_refused: Option<Answer>,
    pub pipelining: bool,
    /// `SIZE n` is listed (and enforced) when set.
    pub size: Option<u64>,
    pub eightbitmime: bool,
    pub smtputf8: bool,
    pub enhancedstatuscodes: bool,
    /// STARTTLS is listed (until TLS is on) when set.
    pub tls: Option<Arc<ServerConfig>>,
    /// The account AUTH accepts: (user, password).
    pub auth: Option<(String, String)>,
    /// The mechanisms listed in `AUTH ...` (and accepted).
    pub auth_mechanisms: Vec<String>,
    /// List AUTH before TLS too (by default only after STARTTLS when TLS is
    /// configured; always when it is not).
    pub auth_before_tls: bool,
    /// MAIL before STARTTLS gets `530 5.7.0`.
    pub require_tls: bool,
    /// MAIL before AUTH gets `530 5.7.0`.
    pub require_auth: bool,
    /// Reply to every MAIL instead of 250.
    pub mail_reply: Option<Answer>,
    /// Close the connection (no reply) when MAIL arrives.
    pub drop_after_mail: bool,
    /// Replies to chosen recipients (lower-cased address).
    pub rcpt_replies: HashMap<String, Answer>,
    /// Reply to every other recipient instead of 250.
    pub rcpt_default: Option<Answer>,
    /// Reply to the DATA command instead of 354.
    pub data_reply: Option<Answer>,
    /// Reply after the final dot instead of 250.
    pub dot_reply: Option<Answer>,
    /// Close the connection (no reply) after the final dot.
    pub drop_after_dot: bool,
    /// Keep message data (off for throughput tests; the length is kept).
    pub keep_data: bool,
}

impl Default for Behaviour {
    fn default() -> Behaviour {
        Behaviour::accept()
    }
}

impl Behaviour {
    /// Accepts everything; lists PIPELINING, SIZE 10240000, 8BITMIME and
    /// ENHANCEDSTATUSCODES; no TLS, no AUTH.
    pub fn accept() -> Behaviour {
        Behaviour {
            name: "sink.test".to_string(),
            greeting: Greeting::Ready,
            ehlo_refused: None,
            pipelining: true,
            size: Some(10_240_000),
            eightbitmime: true,
            smtputf8: false,
            enhancedstatuscodes: true,
            tls: None,
            auth: None,
            auth_mechanisms: vec!["PLAIN".to_string(), "LOGIN".to_string()],
            auth_before_tls: false,
            require_tls: false,
            require_auth: false,
            mail_reply: None,
            drop_after_mail: false,
            rcpt_replies: HashMap::new(),
            rcpt_default: None,
            data_reply: None,
            dot_reply: None,
            drop_after_dot: false,
            keep_data: true,
        }
    }

    pub fn name(mut self, name: &str) -> Behaviour {
        self.name = name.to_string();
        self
    }

    /// `421 4.3.2 Service not available` and close.
    pub fn greeting_421(self) -> Behaviour {
        self.greeting(
            421,
            "4.3.2 Service not available, closing transmission channel",
        )
    }

    /// `450 4.3.2 ...` and then 503 to everything but QUIT.
    pub fn greeting_450(self) -> Behaviour {
        self.greeting(450, "4.3.2 Service currently unavailable")
    }

    /// Any non-220 greeting (see `Greeting::Refuse`).
    pub fn greeting(mut self, code: u16, text: &str) -> Behaviour {
        self.greeting = Greeting::Refuse(answer(code, text));
        self
    }

    /// Accepts connections and never answers.
    pub fn silent(mut self) -> Behaviour {
        self.greeting = Greeting::Silent;
        self
    }

    /// `502 5.5.1` to EHLO (the client must fall back to HELO).
    pub fn no_ehlo(mut self) -> Behaviour {
        self.ehlo_refused = Some(answer(502, "5.5.1 Error: command not implemented"));
        self
    }

    pub fn no_pipelining(mut self) -> Behaviour {
        self.pipelining = false;
        self
    }

    /// `None`: SIZE not listed (nor enforced).
    pub fn size(mut self, limit: Option<u64>) -> Behaviour {
        self.size = limit;
        self
    }

    pub fn no_8bitmime(mut self) -> Behaviour {
        self.eightbitmime = false;
        self
    }

    pub fn smtputf8(mut self) -> Behaviour {
        self.smtputf8 = true;
        self
    }

    /// STARTTLS with `cert` (see `tls::ca_signed`, `tls::ca_signed_for`).
    pub fn starttls(mut self, cert: &TestCert) -> Behaviour {
        self.tls = Some(server_config(cert));
        self
    }

    /// AUTH accepting only `user`/`password` (listed after TLS if STARTTLS
    /// is configured, see `auth_before_tls`).
    pub fn auth(mut self, user: &str, password: &str) -> Behaviour {
        self.auth = Some((user.to_string(), password.to_string()));
        self
    }

    /// The mechanisms to list and accept, e.g. `&["LOGIN"]`.
    pub fn auth_mechanisms(mut self, mechs: &[&str]) -> Behaviour {
        self.auth_mechanisms = mechs.iter().map(|m| m.to_ascii_uppercase()).collect();
        self
    }

    pub fn auth_before_tls(mut self) -> Behaviour {
        self.auth_before_tls = true;
        self
    }

    pub fn require_tls(mut self) -> Behaviour {
        self.require_tls = true;
        self
    }

    pub fn require_auth(mut self) -> Behaviour {
        self.require_auth = true;
        self
    }

    pub fn mail_reply(mut self, code: u16, text: &str) -> Behaviour {
        self.mail_reply = Some(answer(code, text));
        self
    }

    pub fn drop_after_mail(mut self) -> Behaviour {
        self.drop_after_mail = true;
        self
    }

    /// `550 5.1.1 <rcpt>: Recipient address rejected: User unknown` for each.
    pub fn reject_rcpts(mut self, rcpts: &[&str]) -> Behaviour {
        for r in rcpts {
            let text = format!("5.1.1 <{r}>: Recipient address rejected: User unknown");
            self.rcpt_replies
                .insert(r.to_ascii_lowercase(), (550, text));
        }
        self
    }

    /// `450 4.2.0 <rcpt>: Recipient address rejected: Greylisted` for each.
    pub fn temp_fail_rcpts(mut self, rcpts: &[&str]) -> Behaviour {
        for r in rcpts {
            let text = format!("4.2.0 <{r}>: Recipient address rejected: Greylisted");
            self.rcpt_replies
                .insert(r.to_ascii_lowercase(), (450, text));
        }
        self
    }

    /// `450 4.2.0 ... Greylisted` for every recipient not named otherwise.
    pub fn temp_fail_all_rcpts(mut self) -> Behaviour {
        self.rcpt_default = Some(answer(450, "4.2.0 Recipient address rejected: Greylisted"));
        self
    }

    /// Any reply for one recipient.
    pub fn rcpt_reply(mut self, rcpt: &str, code: u16, text: &str) -> Behaviour {
        self.rcpt_replies
            .insert(rcpt.to_ascii_lowercase(), answer(code, text));
        self
    }

    pub fn data_reply(mut self, code: u16, text: &str) -> Behaviour {
        self.data_reply = Some(answer(code, text));
        self
    }

    /// `451 4.3.0 Error: queue file write error` after the final dot.
    pub fn temp_fail_data(self) -> Behaviour {
        self.dot_reply(451, "4.3.0 Error: queue file write error")
    }

    /// `554 5.7.1 Error: message content rejected` after the final dot.
    pub fn reject_data(self) -> Behaviour {
        self.dot_reply(554, "5.7.1 Error: message content rejected")
    }

    pub fn dot_reply(mut self, code: u16, text: &str) -> Behaviour {
        self.dot_reply = Some(answer(code, text));
        self
    }

    pub fn drop_after_dot(mut self) -> Behaviour {
        self.drop_after_dot = true;
        self
    }

    pub fn discard_data(mut self) -> Behaviour {
        self.keep_data = false;
        self
    }
}

/// How a transaction ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx after the final dot.
    Accepted,
    /// This 4xx/5xx to DATA or after the final dot.
    Refused(u16),
    /// The sink closed the connection (`drop_after_mail`, `drop_after_dot`).
    Dropped,
    /// RSET, QUIT, a close by the client or EOF before the data was done.
    Abandoned,
}

/// One MAIL transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// The session's HELO/EHLO name.
    pub helo: String,
    /// TLS was on.
    pub tls: bool,
    /// The authenticated user, if any.
    pub auth: Option<String>,
    /// Inside `MAIL FROM:<...>` ("" for the null sender).
    pub mail_from: String,
    /// The parameters after it, as sent (`SIZE=123`, `BODY=8BITMIME`).
    pub mail_params: Vec<String>,
    /// Recipients accepted (2xx), as sent.
    pub rcpts: Vec<String>,
    /// Every RCPT: (address, its parameters, the code answered).
    pub rcpt_log: Vec<(String, Vec<String>, u16)>,
    /// The message as received after un-stuffing (CRLF line ends as sent),
    /// without the final `.` line. Empty with `discard_data`.
    pub data: Vec<u8>,
    pub data_len: usize,
    /// Some data line ended in a bare LF (not CRLF).
    pub bare_lf: bool,
    pub outcome: Outcome,
}

impl Transaction {
    /// The data with CRLF made LF (the way the spool stores messages).
    pub fn data_lf(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data.len());
        for (i, &b) in self.data.iter().enumerate() {
            if !(b == b'\r' && self.data.get(i + 1) == Some(&b'\n')) {
                out.push(b);
            }
        }
        out
    }

    pub fn data_str(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }

    /// Has a MAIL parameter (case-insensitive), e.g. `BODY=8BITMIME`.
    pub fn has_param(&self, param: &str) -> bool {
        self.mail_params
            .iter()
            .any(|p| p.eq_ignore_ascii_case(param))
    }

    /// The value of a MAIL parameter, e.g. `SIZE`.
    pub fn param(&self, key: &str) -> Option<String> {
        self.mail_params.iter().find_map(|p| {
            let (k, v) = p.split_once('=')?;
            k.eq_ignore_ascii_case(key).then(|| v.to_string())
        })
    }
}

/// One connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub peer: SocketAddr,
    /// The last HELO/EHLO name.
    pub helo: Option<String>,
    /// The last greeting command was EHLO.
    pub ehlo: bool,
    pub tls: bool,
    /// `TLSv1_3` / `TLSv1_2` once TLS is on.
    pub tls_version: Option<String>,
    /// The server name the client sent in its ClientHello.
    pub sni: Option<String>,
    /// Bytes that came after the STARTTLS line, discarded unread.
    pub discarded_after_starttls: usize,
    pub auth: Option<String>,
    pub auth_mechanism: Option<String>,
    pub auth_failures: u32,
    /// Every command line, as received (AUTH responses included, so tests
    /// can see exactly what was sent).
    pub commands: Vec<String>,
    /// Some command arrived before the reply to the previous one was sent.
    pub pipelined: bool,
    /// Some command line ended in a bare LF.
    pub bare_lf: bool,
    pub transactions: Vec<Transaction>,
    pub quit: bool,
    /// The session is over (either side closed).
    pub closed: bool,
}

struct Shared {
    behaviour: Mutex<Behaviour>,
    sessions: Mutex<Vec<Session>>,
    stop: AtomicBool,
    conns: Mutex<Vec<JoinHandle<()>>>,
    queued: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running sink; stopped (threads joined) on drop.
pub struct Sink {
    addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Sink {
    /// One sink on `ip` (e.g. `[127, 0, 0, 2]`) and a free port.
    pub fn start(ip: impl Into<Ipv4Addr>, behaviour: Behaviour) -> Sink {
        Sink::start_many(vec![(ip.into(), behaviour)])
            .pop()
            .expect("one sink")
    }

    /// Sinks on distinct addresses, all on one port number (free on every
    /// one of them); in the order given.
    pub fn start_many(specs: Vec<(Ipv4Addr, Behaviour)>) -> Vec<Sink> {
        assert!(!specs.is_empty(), "no sink asked for");
        'attempt: for _ in 0..100 {
            let first = TcpListener::bind((specs[0].0, 0)).expect("bind a sink address");
            let port = first.local_addr().expect("local addr").port();
            let mut listeners = vec![first];
            for (ip, _) in &specs[1..] {
                match TcpListener::bind((*ip, port)) {
                    Ok(l) => listeners.push(l),
                    Err(_) => continue 'attempt,
                }
            }
            return listeners
                .into_iter()
                .zip(specs)
                .map(|(l, (_, b))| Sink::run(l, b))
                .collect();
        }
        panic!("no port free on every sink address");
    }

    fn run(listener: TcpListener, behaviour: Behaviour) -> Sink {
        let addr = listener.local_addr().expect("local addr");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let shared = Arc::new(Shared {
            behaviour: Mutex::new(behaviour),
            sessions: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
            queued: AtomicUsize::new(0),
        });
        let s = shared.clone();
        let thread = thread::spawn(move || accept_loop(listener, s));
        Sink {
            addr,
            shared,
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn ip(&self) -> IpAddr {
        self.addr.ip()
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// New connections behave this way from now on.
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *lock(&self.shared.behaviour) = behaviour;
    }

    /// Every session so far (in progress ones as they are now).
    pub fn sessions(&self) -> Vec<Session> {
        lock(&self.shared.sessions).clone()
    }

    /// How many connections were accepted.
    pub fn connections(&self) -> usize {
        lock(&self.shared.sessions).len()
    }

    /// Every finished transaction, session by session (in the order each
    /// session's transactions ended).
    pub fn transactions(&self) -> Vec<Transaction> {
        lock(&self.shared.sessions)
            .iter()
            .flat_map(|s| s.transactions.iter().cloned())
            .collect()
    }

    /// The transactions whose message was accepted.
    pub fn delivered(&self) -> Vec<Transaction> {
        self.transactions()
            .into_iter()
            .filter(|t| t.outcome == Outcome::Accepted)
            .collect()
    }

    /// Waits (bounded by `TIMEOUT`) until `n` messages were accepted, then
    /// `SETTLE` more, and asserts there are exactly `n`.
    pub fn wait_delivered(&self, n: usize) -> Vec<Transaction> {
        let deadline = Instant::now() + TIMEOUT;
        while self.shared.queued.load(Ordering::SeqCst) < n {
            if Instant::now() > deadline {
                panic!(
                    "sink {}: {} messages accepted after {TIMEOUT:?}, wanted {n}; sessions: {:#?}",
                    self.addr,
                    self.shared.queued.load(Ordering::SeqCst),
                    self.sessions()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
        thread::sleep(SETTLE);
        let got = self.delivered();
        assert_eq!(got.len(), n, "sink {}: wrong number of messages", self.addr);
        got
    }

    /// Waits (bounded) until `n` sessions have ended.
    pub fn wait_sessions(&self, n: usize) -> Vec<Session> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let s = self.sessions();
            if s.iter().filter(|s| s.closed).count() >= n {
                return s;
            }
            if Instant::now() > deadline {
                panic!(
                    "sink {}: fewer than {n} sessions ended after {TIMEOUT:?}: {s:#?}",
                    self.addr
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let conns: Vec<JoinHandle<()>> = lock(&self.shared.conns).drain(..).collect();
        for t in conns {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, peer)) => {
                let behaviour = lock(&shared.behaviour).clone();
                let idx = {
                    let mut sessions = lock(&shared.sessions);
                    sessions.push(Session::new(peer));
                    sessions.len() - 1
                };
                let s = shared.clone();
                let t = thread::spawn(move || {
                    let mut conn = Conn::new(stream, behaviour, s.clone(), idx);
                    let clean = conn.serve().is_ok();
                    conn.close(clean);
                });
                let mut conns = lock(&shared.conns);
                conns.retain(|h| !h.is_finished());
                conns.push(t);
            }
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
    }
}

impl Session {
    fn new(peer: SocketAddr) -> Session {
        Session {
            peer,
            helo: None,
            ehlo: false,
            tls: false,
            tls_version: None,
            sni: None,
            discarded_after_starttls: 0,
            auth: None,
            auth_mechanism: None,
            auth_failures: 0,
            commands: Vec::new(),
            pipelined: false,
            bare_lf: false,
            transactions: Vec::new(),
            quit: false,
            closed: false,
        }
    }
}

/// The byte stream of a session: plain, or TLS after STARTTLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ServerConnection, TcpStream>>),
    /// Between the two (only while upgrading) or after a failed handshake.
    Gone,
}

impl Stream {
    fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Stream::Plain(s) => Some(s),
            Stream::Tls(t) => Some(&t.sock),
            Stream::Gone => None,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(t) => t.read(buf),
            Stream::Gone => Ok(0),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(t) => t.write(buf),
            Stream::Gone => Err(io::Error::from(ErrorKind::NotConnected)),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(t) => t.flush(),
            Stream::Gone => Ok(()),
        }
    }
}

/// Why a session ends early.
#[derive(Debug)]
enum End {
    /// EOF, an error, idle too long, or the sink is stopping.
    Closed,
    /// The sink decided to close (421, drop_after_*, QUIT, too long a line).
    ByUs,
}

impl From<io::Error> for End {
    fn from(_: io::Error) -> End {
        End::Closed
    }
}

/// The transaction being built.
struct Open {
    mail_from: String,
    mail_params: Vec<String>,
    rcpts: Vec<String>,
    rcpt_log: Vec<(String, Vec<String>, u16)>,
}

struct Conn {
    stream: Stream,
    buf: Vec<u8>,
    b: Behaviour,
    shared: Arc<Shared>,
    idx: usize,
    /// Copies of the session fields the protocol needs.
    helo: Option<String>,
    tls: bool,
    auth: Option<String>,
    open: Option<Open>,
    queued: usize,
}

impl Conn {
    fn new(stream: TcpStream, b: Behaviour, shared: Arc<Shared>, idx: usize) -> Conn {
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(POLL));
        let _ = stream.set_write_timeout(Some(TIMEOUT));
        Conn {
            stream: Stream::Plain(stream),
            buf: Vec::new(),
            b,
            shared,
            idx,
            helo: None,
            tls: false,
            auth: None,
            open: None,
            queued: 0,
        }
    }

    /// Changes the recorded session.
    fn record(&self, f: impl FnOnce(&mut Session)) {
        let mut sessions = lock(&self.shared.sessions);
        f(&mut sessions[self.idx]);
    }

    /// Ends the session; `clean` (after QUIT) sends a TLS close_notify first.
    fn close(&mut self, clean: bool) {
        if self.open.is_some() {
            self.finish(Vec::new(), false, Outcome::Abandoned);
        }
        if let (true, Stream::Tls(t)) = (clean, &mut self.stream) {
            t.conn.send_close_notify();
            let _ = t.conn.write_tls(&mut t.sock);
        }
        if let Some(tcp) = self.stream.tcp() {
            let _ = tcp.shutdown(Shutdown::Both);
        }
        self.record(|s| s.closed = true);
    }

    fn send(&mut self, code: u16, text: &str) -> Result<(), End> {
        self.stream
            .write_all(format!("{code} {text}\r\n").as_bytes())?;
        self.stream.flush()?;
        Ok(())
    }

    fn send_lines(&mut self, code: u16, lines: &[String]) -> Result<(), End> {
        let mut out = String::new();
        for (i, l) in lines.iter().enumerate() {
            let sep = if i + 1 == lines.len() { ' ' } else { '-' };
            out.push_str(&format!("{code}{sep}{l}\r\n"));
        }
        self.stream.write_all(out.as_bytes())?;
        self.stream.flush()?;
        Ok(())
    }

    /// Reads more input (waiting in `POLL` steps, up to `IDLE`).
    fn fill(&mut self) -> Result<(), End> {
        let start = Instant::now();
        let mut chunk = [0u8; 16384];
        loop {
            if self.shared.stop.load(Ordering::SeqCst) || start.elapsed() > IDLE {
                return Err(End::Closed);
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(End::Closed),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(());
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return Err(End::Closed),
            }
        }
    }

    /// One line with its line end (LF, CRLF), or an error at `limit` bytes.
    fn line(&mut self, limit: usize) -> Result<Vec<u8>, End> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                return Ok(self.buf.drain(..=i).collect());
            }
            if self.buf.len() > limit {
                return Err(End::ByUs);
            }
            self.fill()?;
        }
    }

    /// A command line, recorded; returns it without the line end.
    fn command(&mut self) -> Result<String, End> {
        let raw = match self.line(MAX_LINE) {
            Ok(l) => l,
            Err(End::ByUs) => {
                let _ = self.send(500, "5.5.0 Error: line too long");
                return Err(End::ByUs);
            }
            Err(e) => return Err(e),
        };
        let bare = !raw.ends_with(b"\r\n");
        let more = !self.buf.is_empty();
        let text = String::from_utf8_lossy(&raw)
            .trim_end_matches(['\r', '\n'])
            .to_string();
        let t = text.clone();
        self.record(|s| {
            s.commands.push(t);
            s.bare_lf |= bare;
            s.pipelined |= more;
        });
        Ok(text)
    }

    fn serve(&mut self) -> Result<(), End> {
        match self.b.greeting.clone() {
            Greeting::Silent => loop {
                self.buf.clear();
                self.fill()?;
            },
            Greeting::Refuse((code, text)) => {
                self.send(code, &text)?;
                if code == 421 {
                    return Err(End::ByUs);
                }
                loop {
                    let cmd = self.command()?;
                    if verb(&cmd) == "QUIT" {
                        self.record(|s| s.quit = true);
                        self.send(221, "2.0.0 Bye")?;
                        return Ok(());
                    }
                    self.send(503, "5.5.1 Error: bad sequence of commands")?;
                }
            }
            Greeting::Ready => {
                let greeting = format!("{} ESMTP sink", self.b.name);
                self.send(220, &greeting)?;
            }
        }
        loop {
            let cmd = self.command()?;
            let v = verb(&cmd);
            let arg = cmd.get(v.len()..).unwrap_or("").trim_start().to_string();
            match v.as_str() {
                "EHLO" => self.ehlo(&arg)?,
                "HELO" => {
                    self.greeted(&arg, false);
                    let name = self.b.name.clone();
                    self.send(250, &name)?;
                }
                "STARTTLS" => self.starttls()?,
                "AUTH" => self.auth_command(&arg)?,
                "MAIL" => self.mail(&arg)?,
                "RCPT" => self.rcpt(&arg)?,
                "DATA" => self.data()?,
                "RSET" => {
                    if self.open.is_some() {
                        self.finish(Vec::new(), false, Outcome::Abandoned);
                    }
                    self.send(250, "2.0.0 Ok")?;
                }
                "NOOP" => self.send(250, "2.0.0 Ok")?,
                "VRFY" => self.send(252, "2.0.0 Cannot VRFY user")?,
                "QUIT" => {
                    self.record(|s| s.quit = true);
                    self.send(221, "2.0.0 Bye")?;
                    return Ok(());
                }
                _ => self.send(500, "5.5.2 Error: command not recognized")?,
            }
        }
    }

    fn greeted(&mut self, name: &str, ehlo: bool) {
        if self.open.is_some() {
            self.finish(Vec::new(), false, Outcome::Abandoned);
        }
        self.helo = Some(name.to_string());
        let n = name.to_string();
        self.record(|s| {
            s.helo = Some(n);
            s.ehlo = ehlo;
        });
    }

    fn auth_offered(&self) -> bool {
        self.b.auth.is_some() && (self.tls || self.b.tls.is_none() || self.b.auth_before_tls)
    }

    fn ehlo(&mut self, name: &str) -> Result<(), End> {
        if let Some((code, text)) = self.b.ehlo_refused.clone() {
            return self.send(code, &text);
        }
        self.greeted(name, true);
        let mut lines = vec![self.b.name.clone()];
        if self.b.pipelining {
            lines.push("PIPELINING".into());
        }
        if let Some(size) = self.b.size {
            lines.push(format!("SIZE {size}"));
        }
        if self.b.eightbitmime {
            lines.push("8BITMIME".into());
        }
        if self.b.smtputf8 {
            lines.push("SMTPUTF8".into());
        }
        if self.b.enhancedstatuscodes {
            lines.push("ENHANCEDSTATUSCODES".into());
        }
        if self.b.tls.is_some() && !self.tls {
            lines.push("STARTTLS".into());
        }
        if self.auth_offered() && !self.b.auth_mechanisms.is_empty() {
            lines.push(format!("AUTH {}", self.b.auth_mechanisms.join(" ")));
        }
        self.send_lines(250, &lines)
    }

    fn starttls(&mut self) -> Result<(), End> {
        let Some(config) = self.b.tls.clone() else {
            return self.send(502, "5.5.1 Error: command not implemented");
        };
        if self.tls {
            return self.send(554, "5.5.1 Error: TLS already active");
        }
        self.send(220, "2.0.0 Ready to start TLS")?;
        // RFC 3207: nothing sent after STARTTLS before the handshake counts.
        let discarded = self.buf.len();
        self.buf.clear();
        let Stream::Plain(mut tcp) = std::mem::replace(&mut self.stream, Stream::Gone) else {
            return Err(End::Closed);
        };
        let mut conn = ServerConnection::new(config).map_err(|_| End::Closed)?;
        let deadline = Instant::now() + TIMEOUT;
        while conn.is_handshaking() {
            if Instant::now() > deadline || self.shared.stop.load(Ordering::SeqCst) {
                return Err(End::Closed);
            }
            match conn.complete_io(&mut tcp) {
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => {
                    // Send the alert, if any, then give up.
                    let _ = conn.write_tls(&mut tcp);
                    return Err(End::Closed);
                }
            }
        }
        let version = conn.protocol_version().map(|v| format!("{v:?}"));
        let sni = conn.server_name().map(str::to_string);
        self.stream = Stream::Tls(Box::new(StreamOwned::new(conn, tcp)));
        self.tls = true;
        // The state goes back to the start: EHLO again (RFC 3207 4.2).
        self.helo = None;
        self.open = None;
        self.record(|s| {
            s.tls = true;
            s.tls_version = version;
            s.sni = sni;
            s.discarded_after_starttls += discarded;
            s.helo = None;
            s.ehlo = false;
        });
        Ok(())
    }

    fn auth_command(&mut self, arg: &str) -> Result<(), End> {
        if !self.auth_offered() {
            return self.send(503, "5.5.1 Error: authentication not enabled");
        }
        if self.auth.is_some() {
            return self.send(503, "5.5.1 Error: already authenticated");
        }
        let mut words = arg.split_whitespace();
        let mech = words.next().unwrap_or("").to_ascii_uppercase();
        let initial = words.next().map(str::to_string);
        if !self.b.auth_mechanisms.contains(&mech) {
            return self.send(504, "5.5.4 Unrecognized authentication type");
        }
        let creds = match mech.as_str() {
            "PLAIN" => {
                let response = match initial {
                    Some(r) => r,
                    None => {
                        self.send(334, "")?;
                        self.command()?
                    }
                };
                let Some(decoded) = self.decode(&response)? else {
                    return Ok(());
                };
                let mut parts = decoded.split(|&b| b == 0);
                let (_authzid, user, pass) = (parts.next(), parts.next(), parts.next());
                match (user, pass, parts.next()) {
                    (Some(u), Some(p), None) => (u.to_vec(), p.to_vec()),
                    _ => (Vec::new(), Vec::new()),
                }
            }
            "LOGIN" => {
                let user = match initial {
                    Some(r) => r,
                    None => {
                        self.send(334, "VXNlcm5hbWU6")?;
                        self.command()?
                    }
                };
                let Some(user) = self.decode(&user)? else {
                    return Ok(());
                };
                self.send(334, "UGFzc3dvcmQ6")?;
                let pass = self.command()?;
                let Some(pass) = self.decode(&pass)? else {
                    return Ok(());
                };
                (user, pass)
            }
            _ => return self.send(504, "5.5.4 Unrecognized authentication type"),
        };
        let ok = self
            .b
            .auth
            .as_ref()
            .is_some_and(|(u, p)| u.as_bytes() == creds.0 && p.as_bytes() == creds.1);
        if ok {
            let user = String::from_utf8_lossy(&creds.0).into_owned();
            self.auth = Some(user.clone());
            self.record(|s| {
                s.auth = Some(user);
                s.auth_mechanism = Some(mech);
            });
            self.send(235, "2.7.0 Authentication successful")
        } else {
            self.record(|s| s.auth_failures += 1);
            self.send(535, "5.7.8 Error: authentication failed")
        }
    }

    /// A SASL response: `*` cancels (501), bad base64 is 501; both answered
    /// here and give None.
    fn decode(&mut self, text: &str) -> Result<Option<Vec<u8>>, End> {
        if text == "*" {
            self.send(501, "5.7.0 Authentication aborted")?;
            return Ok(None);
        }
        if text == "=" {
            return Ok(Some(Vec::new()));
        }
        match b64_decode(text) {
            Some(d) => Ok(Some(d)),
            None => {
                self.send(501, "5.5.2 Error: invalid base64 data")?;
                Ok(None)
            }
        }
    }

    fn mail(&mut self, arg: &str) -> Result<(), End> {
        if self.helo.is_none() {
            return self.send(503, "5.5.1 Error: send HELO/EHLO first");
        }
        if self.open.is_some() {
            return self.send(503, "5.5.1 Error: nested MAIL command");
        }
        if self.b.require_tls && !self.tls {
            return self.send(530, "5.7.0 Must issue a STARTTLS command first");
        }
        if self.b.require_auth && self.auth.is_none() {
            return self.send(530, "5.7.0 Authentication required");
        }
        let Some((addr, params)) = path_arg(arg, "FROM:") else {
            return self.send(501, "5.5.4 Syntax: MAIL FROM:<address>");
        };
        self.open = Some(Open {
            mail_from: addr,
            mail_params: params,
            rcpts: Vec::new(),
            rcpt_log: Vec::new(),
        });
        if self.b.drop_after_mail {
            self.finish(Vec::new(), false, Outcome::Dropped);
            return Err(End::ByUs);
        }
        if let (Some(limit), Some(Ok(size))) = (
            self.b.size,
            self.open
                .as_ref()
                .and_then(|o| param_of(&o.mail_params, "SIZE"))
                .map(|v| v.parse::<u64>()),
        ) {
            if size > limit {
                self.open = None;
                return self.send(552, "5.3.4 Message size exceeds fixed limit");
            }
        }
        if let Some((code, text)) = self.b.mail_reply.clone() {
            if code >= 400 {
                self.open = None;
            }
            return self.send(code, &text);
        }
        self.send(250, "2.1.0 Ok")
    }

    fn rcpt(&mut self, arg: &str) -> Result<(), End> {
        if self.open.is_none() {
            return self.send(503, "5.5.1 Error: need MAIL command");
        }
        let Some((addr, params)) = path_arg(arg, "TO:") else {
            return self.send(501, "5.5.4 Syntax: RCPT TO:<address>");
        };
        let (code, text) = self
            .b
            .rcpt_replies
            .get(&addr.to_ascii_lowercase())
            .or(self.b.rcpt_default.as_ref())
            .cloned()
            .unwrap_or_else(|| answer(250, "2.1.5 Ok"));
        if let Some(open) = self.open.as_mut() {
            open.rcpt_log.push((addr.clone(), params, code));
            if code < 300 {
                open.rcpts.push(addr);
            }
        }
        self.send(code, &text)
    }

    fn data(&mut self) -> Result<(), End> {
        let Some(open) = &self.open else {
            return self.send(503, "5.5.1 Error: need RCPT command");
        };
        if open.rcpts.is_empty() {
            return self.send(554, "5.5.1 Error: no valid recipients");
        }
        if let Some((code, text)) = self.b.data_reply.clone() {
            if code != 354 {
                self.finish(Vec::new(), false, Outcome::Refused(code));
                return self.send(code, &text);
            }
        }
        self.send(354, "End data with <CR><LF>.<CR><LF>")?;
        let mut data = Vec::new();
        let mut len = 0usize;
        let mut bare = false;
        loop {
            let line = match self.line(MAX_MESSAGE) {
                Ok(l) => l,
                Err(End::ByUs) => {
                    let _ = self.send(552, "5.3.4 Error: message too big for a sink");
                    self.finish(Vec::new(), false, Outcome::Abandoned);
                    return Err(End::ByUs);
                }
                Err(e) => return Err(e),
            };
            let body = line
                .strip_suffix(b"\r\n")
                .or_else(|| line.strip_suffix(b"\n"))
                .unwrap_or(&line);
            if body == b"." {
                bare |= !line.ends_with(b"\r\n");
                break;
            }
            bare |= !line.ends_with(b"\r\n");
            let unstuffed = line.strip_prefix(b".").unwrap_or(&line);
            len += unstuffed.len();
            if len > MAX_MESSAGE {
                let _ = self.send(552, "5.3.4 Error: message too big for a sink");
                self.finish(Vec::new(), false, Outcome::Abandoned);
                return Err(End::ByUs);
            }
            if self.b.keep_data {
                data.extend_from_slice(unstuffed);
            }
        }
        if self.b.drop_after_dot {
            self.finish_sized(data, len, bare, Outcome::Dropped);
            return Err(End::ByUs);
        }
        if let Some(limit) = self.b.size {
            if len as u64 > limit {
                self.finish_sized(data, len, bare, Outcome::Refused(552));
                return self.send(552, "5.3.4 Message size exceeds fixed limit");
            }
        }
        if let Some((code, text)) = self.b.dot_reply.clone() {
            let outcome = if code < 300 {
                Outcome::Accepted
            } else {
                Outcome::Refused(code)
            };
            self.finish_sized(data, len, bare, outcome);
            return self.send(code, &text);
        }
        self.queued += 1;
        // Hex like picomta's ids, so `common::queue_id` reads it.
        let port = self
            .stream
            .tcp()
            .map_or(0, |t| t.local_addr().map_or(0, |a| a.port()));
        let text = format!("2.0.0 Ok: queued as {port:04X}{:04X}", self.queued);
        self.finish_sized(data, len, bare, Outcome::Accepted);
        self.send(250, &text)
    }

    fn finish(&mut self, data: Vec<u8>, bare: bool, outcome: Outcome) {
        let len = data.len();
        self.finish_sized(data, len, bare, outcome);
    }

    /// Ends the open transaction and records it.
    fn finish_sized(&mut self, data: Vec<u8>, len: usize, bare: bool, outcome: Outcome) {
        let Some(open) = self.open.take() else {
            return;
        };
        let accepted = outcome == Outcome::Accepted;
        let t = Transaction {
            helo: self.helo.clone().unwrap_or_default(),
            tls: self.tls,
            auth: self.auth.clone(),
            mail_from: open.mail_from,
            mail_params: open.mail_params,
            rcpts: open.rcpts,
            rcpt_log: open.rcpt_log,
            data,
            data_len: len,
            bare_lf: bare,
            outcome,
        };
        self.record(|s| s.transactions.push(t));
        // Counted after the record, so a waiter that sees the count finds it.
        if accepted {
            self.shared.queued.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// The command verb, upper-cased.
fn verb(line: &str) -> String {
    line.split(' ').next().unwrap_or("").to_ascii_uppercase()
}

/// `FROM:<addr> params` / `TO:<addr> params` (case-insensitive keyword,
/// spaces after the colon tolerated): the address and the parameters.
fn path_arg(arg: &str, keyword: &str) -> Option<(String, Vec<String>)> {
    let head = arg.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = arg[keyword.len()..].trim_start();
    let rest = rest.strip_prefix('<')?;
    let end = rest.find('>')?;
    let addr = rest[..end].to_string();
    let params = rest[end + 1..]
        .split_whitespace()
        .map(str::to_string)
        .collect();
    Some((addr, params))
}

fn param_of(params: &[String], key: &str) -> Option<String> {
    params.iter().find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.eq_ignore_ascii_case(key).then(|| v.to_string())
    })
}

/// Strict RFC 4648 base64 (padding required); None if malformed.
pub fn b64_decode(text: &str) -> Option<Vec<u8>> {
    let t = text.as_bytes();
    if t.len() % 4 != 0 {
        return None;
    }
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(t.len() / 4 * 3);
    for (i, chunk) in t.chunks(4).enumerate() {
        let last = i + 1 == t.len() / 4;
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &chunk[..4 - pad] {
            n = n << 6 | value(c)?;
        }
        n <<= 6 * pad as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

//! The outbound SMTP session (RFC 5321, with PIPELINING, SIZE, 8BITMIME,
//! SMTPUTF8, STARTTLS and AUTH PLAIN/LOGIN) as a sans-IO state machine: the
//! server's bytes in, commands, message data and events out. One session sends
//! one message to the recipients of one destination, then QUITs. The driver
//! owns the socket, TLS, the spool file and the clock: it feeds replies to
//! [`SmtpClient::input`], sends [`SmtpClient::output`], answers the events and
//! reports a lost connection or an expired [`SmtpClient::phase_timeout`].
//!
//! Memory stays bounded whatever the server does: one partial reply line and
//! one reply (see [`super::reply`]), a few commands, and message data that is
//! only asked for while less than [`BODY_LOW_WATER`] bytes wait to be sent.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use super::data::DataEncoder;
use super::reply::{ReplyError, ReplyReader, ServerReply};
use crate::auth::encode_base64;
use setup::Extensions;
use transaction::{failure, local};

/// Message data is asked for only while less than this waits in the output.
pub const BODY_LOW_WATER: usize = 16 * 1024;

/// When to use STARTTLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsWant {
    /// Never, even when offered.
    Never,
    /// When offered (opportunistic); plain text if not, or if refused.
    May,
    /// When offered; if not offered or refused, the attempt fails (temporarily).
    Require,
}

/// How long each wait may last (RFC 5321 4.5.3.2). The default is the RFC's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// The 220 greeting: 5 minutes.
    pub greeting: Duration,
    /// EHLO, HELO, STARTTLS (and its handshake), AUTH, MAIL, QUIT: 5 minutes.
    pub command: Duration,
    /// Each RCPT: 5 minutes.
    pub rcpt: Duration,
    /// The 354 to DATA: 2 minutes.
    pub data_init: Duration,
    /// Each block of message data sent: 3 minutes.
    pub data_block: Duration,
    /// The reply to the final dot: 10 minutes.
    pub data_end: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        let minutes = |m: u64| Duration::from_secs(60 * m);
        Timeouts {
            greeting: minutes(5),
            command: minutes(5),
            rcpt: minutes(5),
            data_init: minutes(2),
            data_block: minutes(3),
            data_end: minutes(10),
        }
    }
}

/// Settings of one session, from the config and the destination.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Our name in EHLO/HELO.
    pub helo_name: String,
    pub tls: TlsWant,
    /// The connection is TLS from its first byte (a smarthost on port 465):
    /// STARTTLS is never sent and AUTH may be.
    pub implicit_tls: bool,
    /// Smarthost login (user, password). When set, the session must log in:
    /// it fails (temporarily) rather than send the message unauthenticated or
    /// the password in clear text (AUTH needs TLS unless `tls` is `Never`).
    pub auth: Option<(String, Vec<u8>)>,
    pub timeouts: Timeouts,
}

/// The message to send. Addresses are without angle brackets; `from` is empty
/// for the null sender.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub from: String,
    pub rcpts: Vec<String>,
    /// Size on the wire (what SIZE= announces and is checked against the
    /// server's limit): the spool size plus one byte per line is exact enough.
    pub size: u64,
    /// The message needs SMTPUTF8 (it was received with it). Non-ASCII
    /// addresses need it too, whatever this says.
    pub smtputf8: bool,
    /// The body has 8-bit bytes: BODY=8BITMIME when offered.
    pub eight_bit: bool,
}

/// Why a recipient, or the whole attempt, failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Bounce (true) or retry later (false).
    pub permanent: bool,
    /// The server's reply code, or 0 when the failure is ours (lost connection,
    /// timeout, a check made before sending) and the server said nothing.
    pub code: u16,
    /// RFC 3463 status ("5.1.1"): the server's, or derived from the code
    /// (`X.0.0`) when it gave none; always set.
    pub enhanced: String,
    /// The server's reply text (lines joined by spaces), or our explanation.
    pub text: String,
    /// The command the failure answered ("RCPT TO", "end of DATA", "greeting"…),
    /// for log lines such as "(in reply to RCPT TO command)".
    pub stage: &'static str,
}

/// `550 5.1.1 text` for a server's reply, `4.4.2 text` for ours.
impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.code != 0 {
            write!(f, "{} ", self.code)?;
        }
        write!(f, "{} {}", self.enhanced, self.text)
    }
}

/// How the session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// One per recipient, in envelope order: `Ok(final reply)` ("250 2.0.0 Ok:
    /// queued as X") when the message was accepted for it, else why not.
    /// Recipients that got no verdict of their own carry a copy of `session`.
    pub rcpts: Vec<Result<String, Failure>>,
    /// Set when the attempt failed as a whole rather than per recipient:
    /// greeting, EHLO/HELO, STARTTLS, AUTH or MAIL refused, a check before MAIL
    /// (SIZE, SMTPUTF8), lost connection, timeout, unreadable reply. When
    /// temporary, the driver may try the next MX for the recipients whose
    /// verdict is temporary.
    pub session: Option<Failure>,
}

/// What the driver must do, besides sending [`SmtpClient::output`] (always
/// send that first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Start TLS on the connection now (the STARTTLS 220 was read; nothing is
    /// left to send), then call [`SmtpClient::tls_started`].
    StartTls,
    /// Call [`SmtpClient::body`] with the next chunk of the spool body (LF line
    /// ends; chunks of up to 16 KiB keep the output bounded).
    WantBody,
    /// The session is over. Send what the output holds (QUIT, unless the
    /// connection is already unusable), then close; the 221 is not awaited.
    Done(Outcome),
}

/// The reply awaited next, inside the transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Mail,
    Rcpt(usize),
    Data,
}

/// Where the session is: what it waits for.
#[derive(Debug)]
enum State {
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    /// The driver is doing the TLS handshake.
    Handshake,
    /// AUTH PLAIN sent; `sent` once the credentials went (with the command,
    /// or after a 334 when too long for its line).
    AuthPlain {
        sent: bool,
    },
    /// AUTH LOGIN: `step` 0 and 1 wait for the user and password prompts, 2 for
    /// the verdict.
    AuthLogin {
        step: u8,
    },
    /// MAIL, RCPT and DATA replies, in order (all at once with PIPELINING).
    Transaction(VecDeque<Expect>),
    /// 354 read: message data is being sent.
    Body,
    /// The final dot was sent; `real` is false when it ended an empty message
    /// sent only to close a DATA that should not have been accepted.
    DataEnd {
        real: bool,
    },
    Done,
}

/// What is known of one recipient.
#[derive(Debug, Clone)]
enum Verdict {
    Unknown,
    /// RCPT accepted; the final dot decides.
    Accepted,
    Final(Result<String, Failure>),
}

pub struct SmtpClient {
    config: ClientConfig,
    envelope: Envelope,
    state: State,
    reader: ReplyReader,
    ext: Extensions,
    tls_active: bool,
    verdicts: Vec<Verdict>,
    /// MAIL was refused; later pipelined replies are read and ignored.
    mail_failure: Option<Failure>,
    encoder: DataEncoder,
    /// WantBody was handed out and `body` not yet called.
    body_asked: bool,
    event: Option<Event>,
    out: Vec<u8>,
    out_sent: usize,
}

impl SmtpClient {
    /// A session on a connection just opened (TLS already running if
    /// `config.implicit_tls`); it waits for the greeting.
    pub fn new(config: ClientConfig, envelope: Envelope) -> SmtpClient {
        let verdicts = vec![Verdict::Unknown; envelope.rcpts.len()];
        SmtpClient {
            tls_active: config.implicit_tls,
            config,
            envelope,
            state: State::Greeting,
            reader: ReplyReader::default(),
            ext: Extensions::default(),
            verdicts,
            mail_failure: None,
            encoder: DataEncoder::default(),
            body_asked: false,
            event: None,
            out: Vec::new(),
            out_sent: 0,
        }
    }

    /// Takes bytes from the server (replies, in any chunking). Everything is
    /// consumed: bytes that arrive while none can be meaningful (during the
    /// TLS handshake wait, after the end) are dropped, as are bytes after the
    /// STARTTLS 220 (they came before TLS: an injection attempt).
    pub fn input(&mut self, bytes: &[u8]) -> usize {
        let mut pos = 0;
        while pos < bytes.len() && !matches!(self.state, State::Handshake | State::Done) {
            let (used, reply) = self.reader.read(&bytes[pos..]);
            pos += used;
            match reply {
                None => {}
                Some(Ok(reply)) => self.reply(reply),
                Some(Err(e)) => self.protocol_error(e),
            }
        }
        bytes.len()
    }

    /// Bytes to send.
    pub fn output(&self) -> &[u8] {
        &self.out[self.out_sent..]
    }

    /// `n` bytes of [`SmtpClient::output`] went out.
    pub fn output_sent(&mut self, n: usize) {
        self.out_sent += n;
        debug_assert!(self.out_sent <= self.out.len());
        if self.out_sent >= self.out.len() {
            self.out.clear();
            self.out_sent = 0;
            // Keep the body's buffer while streaming; give it back after.
            if self.out.capacity() > 4096 && !matches!(self.state, State::Body) {
                self.out.shrink_to(512);
            }
        }
    }

    /// What the driver must do next, if anything.
    pub fn poll_event(&mut self) -> Option<Event> {
        if let Some(event) = self.event.take() {
            return Some(event);
        }
        if matches!(self.state, State::Body)
            && !self.body_asked
            && self.output().len() < BODY_LOW_WATER
        {
            self.body_asked = true;
            return Some(Event::WantBody);
        }
        None
    }

    /// The TLS handshake that [`Event::StartTls`] asked for is done: EHLO again
    /// (RFC 3207 4.2: what the server said before TLS is forgotten). Ignored
    /// at any other time.
    pub fn tls_started(&mut self) {
        if matches!(self.state, State::Handshake) {
            self.tls_active = true;
            self.ext = Extensions::default();
            self.reader.reset();
            self.hello(true);
        }
    }

    /// The next chunk of the spool body, answering [`Event::WantBody`];
    /// `last` once the body is complete (the chunk may be empty). Ignored when
    /// no body is wanted (the session may have ended meanwhile).
    pub fn body(&mut self, chunk: &[u8], last: bool) {
        if !matches!(self.state, State::Body) {
            return;
        }
        self.body_asked = false;
        // Drop what was sent already, so the buffer holds only what waits.
        self.out.drain(..self.out_sent);
        self.out_sent = 0;
        self.encoder.encode(chunk, &mut self.out);
        if last {
            self.encoder.finish(&mut self.out);
            self.state = State::DataEnd { real: true };
        }
    }

    /// The connection was lost (or TLS failed): every recipient without a
    /// verdict fails temporarily (4.4.2).
    pub fn closed(&mut self) {
        if !matches!(self.state, State::Done) {
            let text = format!("lost connection {}", self.waiting_for());
            self.fail_local(false, "4.4.2", text, false);
        }
    }

    /// [`SmtpClient::phase_timeout`] expired: like a lost connection (4.4.2).
    pub fn timeout(&mut self) {
        if !matches!(self.state, State::Done) {
            let text = format!("conversation timed out {}", self.waiting_for());
            self.fail_local(false, "4.4.2", text, false);
        }
    }

    /// How long the current wait may last before [`SmtpClient::timeout`].
    pub fn phase_timeout(&self) -> Duration {
        let t = &self.config.timeouts;
        match &self.state {
            State::Greeting => t.greeting,
            State::Transaction(awaiting) => match awaiting.front() {
                Some(Expect::Rcpt(_)) => t.rcpt,
                Some(Expect::Data) => t.data_init,
                Some(Expect::Mail) | None => t.command,
            },
            State::Body => t.data_block,
            State::DataEnd { .. } => t.data_end,
            _ => t.command,
        }
    }

    /// The command whose reply is awaited, as log lines name it.
    fn stage(&self) -> &'static str {
        match &self.state {
            State::Greeting => "greeting",
            State::Ehlo => "EHLO",
            State::Helo => "HELO",
            State::StartTls | State::Handshake => "STARTTLS",
            State::AuthPlain { .. } | State::AuthLogin { .. } => "AUTH",
            State::Transaction(awaiting) => match awaiting.front() {
                Some(Expect::Mail) | None => "MAIL FROM",
                Some(Expect::Rcpt(_)) => "RCPT TO",
                Some(Expect::Data) => "DATA",
            },
            State::Body => "message body",
            State::DataEnd { .. } => "end of DATA",
            State::Done => "QUIT",
        }
    }

    fn waiting_for(&self) -> String {
        match self.state {
            State::Greeting => "before the greeting".into(),
            State::Handshake => "during the TLS handshake".into(),
            State::Body => "while sending the message body".into(),
            _ => format!("after {}", self.stage()),
        }
    }

    fn send(&mut self, line: &str) {
        self.out.extend_from_slice(line.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    /// One complete reply from the server.
    fn reply(&mut self, r: ServerReply) {
        // 421: the server is closing the connection, whatever was asked.
        if r.code == 421 {
            return self.fail_reply(&r, false);
        }
        match self.state {
            State::Greeting if r.class() == 2 => self.hello(true),
            State::Ehlo if r.class() == 2 => {
                self.ext = Extensions::parse(&r.lines);
                self.after_hello();
            }
            // RFC 5321 3.2: a server that does not know EHLO gets HELO.
            State::Ehlo if r.class() == 5 => self.hello(false),
            State::Helo if r.class() == 2 => {
                self.ext = Extensions::default();
                self.after_hello();
            }
            State::StartTls => self.starttls_reply(&r),
            State::AuthPlain { sent } => self.auth_plain_reply(&r, sent),
            State::AuthLogin { step } => self.auth_login_reply(&r, step),
            State::Transaction(_) => self.transaction_reply(&r),
            State::DataEnd { real } => self.data_end_reply(&r, real),
            // A reply where none is awaited: the stream is out of step.
            State::Body | State::Handshake | State::Done => self.fail_reply(&r, false),
            // Greeting, EHLO or HELO refused.
            State::Greeting | State::Ehlo | State::Helo => self.fail_reply(&r, true),
        }
    }

    /// The EHLO or HELO command.
    fn hello(&mut self, extended: bool) {
        let verb = if extended { "EHLO" } else { "HELO" };
        let line = format!("{verb} {}", self.config.helo_name);
        self.send(&line);
        self.state = if extended { State::Ehlo } else { State::Helo };
    }

    /// EHLO or HELO accepted: STARTTLS, AUTH, or the transaction.
    fn after_hello(&mut self) {
        let want = self.config.tls;
        if !self.tls_active && want != TlsWant::Never && self.ext.starttls {
            self.send("STARTTLS");
            self.state = State::StartTls;
            return;
        }
        if want == TlsWant::Require && !self.tls_active {
            let text = "TLS is required, but was not offered by the server";
            return self.fail_local(false, "4.7.4", text.into(), true);
        }
        if self.config.auth.is_some() {
            return self.start_auth();
        }
        self.start_transaction();
    }

    /// The session fails on a reply of the server.
    fn fail_reply(&mut self, r: &ServerReply, quit: bool) {
        let failure = failure(r, self.stage());
        self.finish(Some(failure), quit);
    }

    /// The session fails for a reason of ours, at the current stage.
    fn fail_local(&mut self, permanent: bool, enhanced: &str, text: String, quit: bool) {
        let stage = self.stage();
        self.finish(Some(local(permanent, enhanced, text, stage)), quit);
    }

    /// Bytes that are not a reply: the stream cannot be trusted, close it.
    fn protocol_error(&mut self, e: ReplyError) {
        let text = format!("{e} from the server {}", self.waiting_for());
        self.fail_local(false, "4.5.0", text, false);
    }

    /// Ends the session: every recipient without a verdict gets `session`'s.
    fn finish(&mut self, session: Option<Failure>, quit: bool) {
        let stage = self.stage();
        let rcpts = std::mem::take(&mut self.verdicts)
            .into_iter()
            .map(|v| match v {
                Verdict::Final(result) => result,
                Verdict::Unknown | Verdict::Accepted => Err(session.clone().unwrap_or_else(|| {
                    // Not reached: every path that leaves recipients open gives a reason.
                    debug_assert!(false, "recipient without a verdict");
                    local(false, "4.3.0", "no verdict".into(), stage)
                })),
            })
            .collect();
        if quit {
            self.send("QUIT");
        }
        self.state = State::Done;
        self.body_asked = false;
        self.event = Some(Event::Done(Outcome { rcpts, session }));
    }
}

#[path = "client_setup.rs"]
mod setup;

#[path = "client_transaction.rs"]
mod transaction;

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;

//! The inbound SMTP session (RFC 5321, with PIPELINING, SIZE, 8BITMIME,
//! ENHANCEDSTATUSCODES, SMTPUTF8, CHUNKING, STARTTLS, AUTH) as a sans-IO state
//! machine: bytes in, replies out, and calls to a [`Host`] for the decisions
//! and storage that live outside the protocol (recipient lookup, logins, the
//! spool). Nothing here touches a socket or a file, so every path is
//! unit-tested with in-memory hosts; TLS itself is the connection's business.

use std::net::SocketAddr;
use std::time::Duration;

use super::address::{Mailbox, ReversePath};
use super::command::{parse_command, Command, CommandError, MailParams};
use super::reply::Reply;
use crate::auth::Mechanism;
use crate::deliver::route::RcptCheck;
use crate::util;
use body::{BdatState, Body};
use security::Security;

/// Longest command line, CRLF included (RFC 5321 4.5.3.1.4).
pub const MAX_COMMAND_LINE: usize = 512;
/// Stop taking input while this much reply text waits to be sent, so a client
/// that pipelines without reading cannot grow our output buffer.
const OUTPUT_HIGH_WATER: usize = 8 * 1024;

/// Fixed settings of a session, from the config.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub hostname: String,
    pub max_message_size: u64,
    pub max_recipients: usize,
    pub max_errors: u32,
    /// STARTTLS can be offered: a certificate is configured and the listener
    /// is not implicit TLS.
    pub starttls: bool,
    /// A passwords file is configured: AUTH can be offered once encrypted.
    pub auth: bool,
    /// AUTH may be offered before TLS (`plaintext_auth_on_loopback` on a
    /// loopback listener).
    pub plaintext_auth: bool,
    /// MAIL needs a login first (submission and smtps listeners).
    pub require_auth: bool,
    /// A login may only send from its own addresses.
    pub sender_login: bool,
}

/// The envelope of the transaction being received.
#[derive(Debug, Clone)]
pub struct Transaction {
    pub from: ReversePath,
    pub params: MailParams,
    pub rcpts: Vec<Mailbox>,
}

/// What the session asks of the server around it. Implementations do I/O; the
/// session never does.
pub trait Host {
    fn check_rcpt(&mut self, rcpt: &Mailbox) -> RcptCheck;
    /// Whether the queue has room for one more message (count and disk space).
    fn queue_has_room(&mut self) -> bool;
    /// Opens a spool file for the transaction; returns its queue id.
    fn begin_message(&mut self, txn: &Transaction) -> Result<String, Reply>;
    /// Whether the session writes its Received header at the top of each
    /// message (`sendmail -bs` leaves it to the daemon).
    fn trace_header(&self) -> bool {
        true
    }
    /// Appends message bytes (LF line ends). An error is remembered and answered
    /// at the end of the data.
    fn message_data(&mut self, bytes: &[u8]) -> Result<(), Reply>;
    /// The whole message is written: make it durable. The answer comes later
    /// through [`Session::commit_done`].
    fn end_message(&mut self);
    /// Throws away the message being written.
    fn abort_message(&mut self);
    /// Checks a login. A failure says how long to hold the 535 reply (the
    /// host counts failures per client).
    fn authenticate(
        &mut self,
        mechanism: Mechanism,
        user: &str,
        password: &[u8],
    ) -> Result<(), Duration>;
    /// Whether `login` may use `sender` in MAIL FROM (`sender_login`).
    fn owns_sender(&mut self, login: &str, sender: &Mailbox) -> bool;
}

/// Where the session is in the protocol.
#[derive(Debug)]
enum Mode {
    /// Reading command lines; `discarding` while skipping the rest of a line
    /// that was too long.
    Command { discarding: bool },
    /// Between 354 and the final dot.
    Data(Body),
    /// Inside a BDAT chunk of `remaining` octets.
    Bdat {
        size: u64,
        remaining: u64,
        last: bool,
    },
    /// The message is being made durable; input waits.
    AwaitingCommit,
    /// STARTTLS answered: input waits for the server to start TLS.
    StartTls,
    /// QUIT or 421 sent: nothing more is read.
    Closed,
}

pub struct Session {
    config: SessionConfig,
    peer: SocketAddr,
    /// The client's address is in `relay_networks`.
    relay_client: bool,
    helo: Option<(String, bool)>,
    txn: Option<Transaction>,
    /// BDAT message state; Some from the first chunk until LAST or RSET.
    bdat: Option<BdatState>,
    mode: Mode,
    errors: u32,
    security: Security,
    out: Vec<u8>,
    out_sent: usize,
    scratch: Vec<u8>,
}

impl Session {
    pub fn new(config: SessionConfig, peer: SocketAddr, relay_client: bool) -> Session {
        let mut s = Session {
            config,
            peer,
            relay_client,
            helo: None,
            txn: None,
            bdat: None,
            mode: Mode::Command { discarding: false },
            errors: 0,
            security: Security::default(),
            out: Vec::new(),
            out_sent: 0,
            scratch: Vec::new(),
        };
        let greeting = format!("{} ESMTP picomta", s.config.hostname);
        s.reply(Reply::multi(220, vec![greeting]));
        s
    }

    /// Reply bytes not yet sent.
    pub fn output(&self) -> &[u8] {
        &self.out[self.out_sent..]
    }

    /// `n` bytes of [`Session::output`] went out.
    pub fn output_sent(&mut self, n: usize) {
        self.out_sent += n;
        if self.out_sent == self.out.len() {
            self.out.clear();
            self.out_sent = 0;
            if self.out.capacity() > 4096 {
                self.out.shrink_to(512);
            }
        }
    }

    /// True once the session has ended (after QUIT or a 421); close when the
    /// output is flushed.
    pub fn is_closed(&self) -> bool {
        matches!(self.mode, Mode::Closed)
    }

    /// True while the session can use more input now.
    pub fn wants_input(&self) -> bool {
        !matches!(
            self.mode,
            Mode::AwaitingCommit | Mode::Closed | Mode::StartTls
        ) && self.output().len() < OUTPUT_HIGH_WATER
    }

    /// True between DATA's 354 (or the first BDAT) and the end of the message,
    /// for the choice of timeout.
    pub fn in_data(&self) -> bool {
        matches!(self.mode, Mode::Data(_) | Mode::Bdat { .. })
    }

    /// Consumes as much of `input` as the session can use now and returns how
    /// many bytes it took. Unconsumed bytes must be offered again (after the
    /// output drained or a commit finished), together with newer input.
    pub fn input(&mut self, input: &[u8], host: &mut dyn Host) -> usize {
        let mut pos = 0;
        while pos < input.len() && self.wants_input() {
            let rest = &input[pos..];
            let used = match &mut self.mode {
                Mode::Command { discarding } => {
                    let discarding = *discarding;
                    match memchr(b'\n', rest) {
                        None if discarding => rest.len(),
                        None if rest.len() >= MAX_COMMAND_LINE => {
                            self.mode = Mode::Command { discarding: true };
                            rest.len()
                        }
                        None => break,
                        Some(nl) => {
                            if discarding || nl + 1 > MAX_COMMAND_LINE {
                                self.mode = Mode::Command { discarding: false };
                                self.sasl_abandoned();
                                self.error(Reply::new(500, "5.5.2", "Error: line too long"));
                            } else {
                                let line = &rest[..nl];
                                let line = line.strip_suffix(b"\r").unwrap_or(line);
                                if self.security.sasl.is_some() {
                                    self.sasl_line(line, host);
                                } else {
                                    self.command(line, host);
                                }
                            }
                            nl + 1
                        }
                    }
                }
                Mode::Data(_) => self.data_input(rest, host),
                Mode::Bdat { .. } => self.bdat_input(rest, host),
                Mode::AwaitingCommit | Mode::Closed | Mode::StartTls => break,
            };
            pos += used;
        }
        pos
    }

    /// The host finished making the message durable (or failed to).
    pub fn commit_done(&mut self, result: Result<String, Reply>) {
        debug_assert!(matches!(self.mode, Mode::AwaitingCommit));
        self.mode = Mode::Command { discarding: false };
        match result {
            Ok(id) => self.reply(Reply::new(250, "2.0.0", format!("Ok: queued as {id}"))),
            Err(r) => self.reply(r),
        }
    }

    /// True while a transaction is open (MAIL given, a message being
    /// received or committed): a stopping server lets it finish.
    pub fn busy(&self) -> bool {
        self.txn.is_some() || !matches!(self.mode, Mode::Command { .. } | Mode::Closed)
    }

    /// The server is stopping: say so and end the session.
    pub fn shutdown(&mut self) {
        self.reply(Reply::new(
            421,
            "4.3.2",
            format!("{} Service shutting down", self.config.hostname),
        ));
        self.mode = Mode::Closed;
    }

    /// The peer was silent too long: say so and end the session.
    pub fn timeout(&mut self, host: &mut dyn Host) {
        self.drop_message(host);
        self.reply(Reply::new(
            421,
            "4.4.2",
            format!("{} Error: timeout exceeded", self.config.hostname),
        ));
        self.mode = Mode::Closed;
    }

    /// The connection is closing (the peer vanished, or the server closes it).
    pub fn abort(&mut self, host: &mut dyn Host) {
        self.drop_message(host);
        self.mode = Mode::Closed;
    }

    /// Throws away a message being received (DATA, or BDAT chunks so far).
    fn drop_message(&mut self, host: &mut dyn Host) {
        if self.bdat.take().is_some() || matches!(self.mode, Mode::Data(_)) {
            host.abort_message();
        }
    }

    fn reply(&mut self, reply: Reply) {
        reply.write_to(&mut self.out);
    }

    /// An error reply that counts towards `max_errors`.
    fn error(&mut self, reply: Reply) {
        self.reply(reply);
        self.errors += 1;
        if self.errors >= self.config.max_errors {
            self.reply(Reply::new(
                421,
                "4.7.0",
                format!("{} Error: too many errors", self.config.hostname),
            ));
            self.mode = Mode::Closed;
        }
    }

    fn command(&mut self, line: &[u8], host: &mut dyn Host) {
        let command = match parse_command(line) {
            Ok(c) => c,
            Err(e) => return self.error(command_error_reply(e)),
        };
        match command {
            Command::Ehlo(name) => self.hello(name, true),
            Command::Helo(name) => self.hello(name, false),
            Command::Mail(from, params) => self.mail(from, params, host),
            Command::Rcpt(rcpt) => self.rcpt(rcpt, host),
            Command::Data => self.data(host),
            Command::Bdat(size, last) => self.bdat(size, last, host),
            Command::Rset => {
                self.reset(host);
                self.reply(Reply::new(250, "2.0.0", "Ok"));
            }
            Command::Noop => self.reply(Reply::new(250, "2.0.0", "Ok")),
            Command::Quit => {
                self.reset(host);
                self.reply(Reply::new(221, "2.0.0", "Bye"));
                self.mode = Mode::Closed;
            }
            Command::Vrfy => self.reply(Reply::new(
                252,
                "2.5.2",
                "Cannot VRFY user, but will accept message and attempt delivery",
            )),
            Command::Help => self.reply(Reply::new(
                214,
                "2.0.0",
                "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP",
            )),
            Command::StartTls => self.starttls(),
            Command::Auth(mechanism, initial) => self.auth(&mechanism, initial.as_deref(), host),
        }
    }

    fn hello(&mut self, name: String, extended: bool) {
        self.txn = None;
        self.bdat = None;
        self.helo = Some((name, extended));
        if !extended {
            return self.reply(Reply::new(250, "", self.config.hostname.clone()));
        }
        let mut lines = vec![
            self.config.hostname.clone(),
            "PIPELINING".into(),
            format!("SIZE {}", self.config.max_message_size),
        ];
        if self.starttls_offered() {
            lines.push("STARTTLS".into());
        }
        if self.auth_offered() {
            lines.push("AUTH PLAIN LOGIN".into());
        }
        lines.extend(["8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8", "CHUNKING"].map(String::from));
        self.reply(Reply::multi(250, lines));
    }

    fn mail(&mut self, from: ReversePath, params: MailParams, host: &mut dyn Host) {
        if self.helo.is_none() {
            return self.error(Reply::new(503, "5.5.1", "Error: send HELO/EHLO first"));
        }
        if self.txn.is_some() {
            return self.error(Reply::new(503, "5.5.1", "Error: nested MAIL command"));
        }
        if let Some(refusal) = self.mail_policy(&from, host) {
            return self.error(refusal);
        }
        if params
            .size
            .is_some_and(|s| s > self.config.max_message_size)
        {
            return self.error(Reply::new(552, "5.3.4", "Message size exceeds fixed limit"));
        }
        if !host.queue_has_room() {
            return self.reply(Reply::new(452, "4.3.1", "Insufficient system storage"));
        }
        self.txn = Some(Transaction {
            from,
            params,
            rcpts: Vec::new(),
        });
        self.reply(Reply::new(250, "2.1.0", "Ok"));
    }

    fn rcpt(&mut self, rcpt: Mailbox, host: &mut dyn Host) {
        let Some(txn) = &self.txn else {
            return self.error(Reply::new(503, "5.5.1", "Error: need MAIL command"));
        };
        if txn.rcpts.len() >= self.config.max_recipients {
            return self.reply(Reply::new(452, "4.5.3", "Error: too many recipients"));
        }
        if !txn.params.smtputf8 && !rcpt.is_ascii() {
            return self.error(Reply::new(
                553,
                "5.6.7",
                "Error: SMTPUTF8 required for this address",
            ));
        }
        match host.check_rcpt(&rcpt) {
            RcptCheck::Remote if !self.may_relay(&rcpt) => self.error(Reply::new(
                554,
                "5.7.1",
                format!("<{rcpt}>: Relay access denied"),
            )),
            RcptCheck::Local | RcptCheck::Remote => {
                if let Some(txn) = &mut self.txn {
                    txn.rcpts.push(rcpt);
                }
                self.reply(Reply::new(250, "2.1.5", "Ok"));
            }
            RcptCheck::UnknownUser => self.error(Reply::new(
                550,
                "5.1.1",
                format!("<{rcpt}>: Recipient address rejected: User unknown"),
            )),
        }
    }

    fn reset(&mut self, host: &mut dyn Host) {
        self.drop_message(host);
        self.txn = None;
    }

    /// RFC 5321 4.4 trace header, with the protocol name of RFC 3848.
    fn received_header(&self, txn: &Transaction, id: &str) -> String {
        let (helo, extended) = self.helo.clone().unwrap_or_default();
        let protocol = self.protocol_name(extended, txn.params.smtputf8);
        let tls = match &self.security.tls {
            Some(info) => format!("\n\t(using {info})"),
            None => String::new(),
        };
        let for_clause = match txn.rcpts.as_slice() {
            [one] => format!("\n\tfor <{one}>"),
            _ => String::new(),
        };
        format!(
            "Received: from {helo} ([{ip}]){tls}\n\tby {host} (picomta) with {protocol} id {id}{for_clause};\n\t{date}\n",
            ip = self.peer.ip(),
            host = self.config.hostname,
            date = util::rfc5322_date(util::unix_now()),
        )
    }
}

fn command_error_reply(e: CommandError) -> Reply {
    use super::address::AddressError;
    match e {
        CommandError::Unknown => Reply::new(500, "5.5.1", "Error: command not recognized"),
        CommandError::Syntax(why) => Reply::new(501, "5.5.4", format!("Syntax: {why}")),
        CommandError::Address {
            error: AddressError::NeedsSmtputf8,
            ..
        } => Reply::new(553, "5.6.7", "Error: SMTPUTF8 required for this address"),
        CommandError::Address { sender: true, .. } => {
            Reply::new(501, "5.1.7", "Error: bad sender address syntax")
        }
        CommandError::Address { sender: false, .. } => {
            Reply::new(501, "5.1.3", "Error: bad recipient address syntax")
        }
        CommandError::Parameter(p) => {
            Reply::new(555, "5.5.4", format!("Error: unsupported parameter {p}"))
        }
    }
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

#[path = "server_body.rs"]
mod body;

#[path = "server_auth.rs"]
mod security;

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;

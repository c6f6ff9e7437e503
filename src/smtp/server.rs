//! The inbound SMTP session (RFC 5321, with PIPELINING, SIZE, 8BITMIME,
//! ENHANCEDSTATUSCODES, SMTPUTF8, CHUNKING) as a sans-IO state machine: bytes in,
//! replies out, and calls to a [`Host`] for the decisions and storage that live
//! outside the protocol (recipient lookup, the spool). Nothing here touches a
//! socket or a file, so every path is unit-tested with in-memory hosts.

use std::net::SocketAddr;

use super::address::{Mailbox, ReversePath};
use super::command::{parse_command, Command, CommandError, MailParams};
use super::reply::Reply;
use crate::deliver::route::RcptCheck;
use crate::util;
use body::{BdatState, Body};

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
    /// Appends message bytes (LF line ends). An error is remembered and answered
    /// at the end of the data.
    fn message_data(&mut self, bytes: &[u8]) -> Result<(), Reply>;
    /// The whole message is written: make it durable. The answer comes later
    /// through [`Session::commit_done`].
    fn end_message(&mut self);
    /// Throws away the message being written.
    fn abort_message(&mut self);
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
    /// QUIT or 421 sent: nothing more is read.
    Closed,
}

pub struct Session {
    config: SessionConfig,
    peer: SocketAddr,
    helo: Option<(String, bool)>,
    txn: Option<Transaction>,
    /// BDAT message state; Some from the first chunk until LAST or RSET.
    bdat: Option<BdatState>,
    mode: Mode,
    errors: u32,
    out: Vec<u8>,
    out_sent: usize,
    scratch: Vec<u8>,
}

impl Session {
    pub fn new(config: SessionConfig, peer: SocketAddr) -> Session {
        let mut s = Session {
            config,
            peer,
            helo: None,
            txn: None,
            bdat: None,
            mode: Mode::Command { discarding: false },
            errors: 0,
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
        !matches!(self.mode, Mode::AwaitingCommit | Mode::Closed)
            && self.output().len() < OUTPUT_HIGH_WATER
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
                            if discarding {
                                self.mode = Mode::Command { discarding: false };
                                self.error(Reply::new(500, "5.5.2", "Error: line too long"));
                            } else if nl + 1 > MAX_COMMAND_LINE {
                                self.error(Reply::new(500, "5.5.2", "Error: line too long"));
                            } else {
                                let line = &rest[..nl];
                                let line = line.strip_suffix(b"\r").unwrap_or(line);
                                self.command(line, host);
                            }
                            nl + 1
                        }
                    }
                }
                Mode::Data(_) => self.data_input(rest, host),
                Mode::Bdat { .. } => self.bdat_input(rest, host),
                Mode::AwaitingCommit | Mode::Closed => break,
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
            Command::StartTls | Command::Auth(..) => {
                self.error(Reply::new(502, "5.5.1", "Error: command not implemented"))
            }
        }
    }

    fn hello(&mut self, name: String, extended: bool) {
        self.txn = None;
        self.bdat = None;
        self.helo = Some((name, extended));
        if !extended {
            return self.reply(Reply::new(250, "", self.config.hostname.clone()));
        }
        let lines = vec![
            self.config.hostname.clone(),
            "PIPELINING".into(),
            format!("SIZE {}", self.config.max_message_size),
            "8BITMIME".into(),
            "ENHANCEDSTATUSCODES".into(),
            "SMTPUTF8".into(),
            "CHUNKING".into(),
        ];
        self.reply(Reply::multi(250, lines));
    }

    fn mail(&mut self, from: ReversePath, params: MailParams, host: &mut dyn Host) {
        if self.helo.is_none() {
            return self.error(Reply::new(503, "5.5.1", "Error: send HELO/EHLO first"));
        }
        if self.txn.is_some() {
            return self.error(Reply::new(503, "5.5.1", "Error: nested MAIL command"));
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
            RcptCheck::Local => {
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
            RcptCheck::Remote => self.error(Reply::new(
                554,
                "5.7.1",
                format!("<{rcpt}>: Relay access denied"),
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
        let protocol = match (extended, txn.params.smtputf8) {
            (true, true) => "UTF8SMTP",
            (true, false) => "ESMTP",
            (false, _) => "SMTP",
        };
        let for_clause = match txn.rcpts.as_slice() {
            [one] => format!("\n\tfor <{one}>"),
            _ => String::new(),
        };
        format!(
            "Received: from {helo} ([{ip}])\n\tby {host} (picomta) with {protocol} id {id}{for_clause};\n\t{date}\n",
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

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;

//! Pure parsing of SMTP command lines (RFC 5321 4.1, RFC 1870 SIZE, RFC 6152
//! 8BITMIME, RFC 6531 SMTPUTF8, RFC 3030 BDAT, RFC 4954 AUTH=): bytes of one line
//! in, a typed command or a precise error out. No state, no I/O: a fuzz target.

use super::address::{AddressError, Mailbox, ReversePath};

/// BODY= values of MAIL FROM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    SevenBit,
    EightBitMime,
}

/// The ESMTP parameters of MAIL FROM that picomta understands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailParams {
    pub size: Option<u64>,
    pub body: Option<Body>,
    pub smtputf8: bool,
    /// AUTH=<mailbox> or AUTH=<> (RFC 4954 5), kept as given (xtext-decoded).
    pub auth: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Ehlo(String),
    Helo(String),
    Mail(ReversePath, MailParams),
    Rcpt(Mailbox),
    Data,
    /// BDAT size [LAST]
    Bdat(u64, bool),
    Rset,
    Noop,
    Quit,
    Vrfy,
    Help,
    StartTls,
    /// AUTH mechanism [initial-response]
    Auth(String, Option<String>),
}

/// What is wrong with a line; each maps to one reply in the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// Verb not recognised: 500 5.5.1.
    Unknown,
    /// Recognised verb, bad arguments: 501 5.5.4 (address syntax: 501 5.1.3 / 5.1.7).
    Syntax(&'static str),
    /// Bad address in MAIL (`sender == true`) or RCPT.
    Address { sender: bool, error: AddressError },
    /// An ESMTP parameter we do not know, or a known one with a bad value: 555 5.5.4.
    Parameter(String),
}

/// Parses one command line *without* its CRLF. Verbs are case-insensitive;
/// `MAIL FROM:<a@b>` and `MAIL FROM: <a@b>` are both accepted (as Postfix does).
pub fn parse_command(_line: &[u8]) -> Result<Command, CommandError> {
    todo!("filled in by the command-parser work")
}

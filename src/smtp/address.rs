//! Mail addresses as they appear in MAIL FROM and RCPT TO (RFC 5321 4.1.2):
//! parsing of `<path>` with its limits, and the parts routing needs.

use std::fmt;

/// A mailbox `local@domain`. The local part keeps its original spelling (quoted
/// form included) because RFC 5321 says it may be case-sensitive; routing folds case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mailbox {
    pub local: String,
    /// Lower-cased; an address literal keeps its brackets, e.g. `[127.0.0.1]`.
    pub domain: String,
}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

/// A reverse-path: either the null sender `<>` or a mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReversePath {
    Null,
    Mailbox(Mailbox),
}

impl fmt::Display for ReversePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReversePath::Null => Ok(()),
            ReversePath::Mailbox(m) => m.fmt(f),
        }
    }
}

/// Why an address was refused; the session maps each to a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressError {
    /// Not `<...>`, bad characters, empty parts, source route garbage.
    Syntax,
    /// Local part over 64 octets, domain over 255, path over 256 (RFC 5321 4.5.3.1).
    TooLong,
    /// Non-ASCII without SMTPUTF8 having been requested.
    NeedsSmtputf8,
}

/// Parses a forward-path or reverse-path *with* its angle brackets, e.g.
/// `<user@example.org>`, `<@a,@b:user@example.org>` (the source route is dropped),
/// `<"john doe"@example.org>`. `<>` is accepted only when `allow_null`.
/// `utf8` says whether the client asked for SMTPUTF8 on this transaction: UTF-8
/// in the local part or domain is accepted only then.
pub fn parse_path(
    _text: &str,
    _allow_null: bool,
    _utf8: bool,
) -> Result<ReversePath, AddressError> {
    todo!("filled in by the command-parser work")
}

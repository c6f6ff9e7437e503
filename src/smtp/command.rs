//! Pure parsing of SMTP command lines (RFC 5321 4.1, RFC 1870 SIZE, RFC 6152
//! 8BITMIME, RFC 6531 SMTPUTF8, RFC 3030 BDAT, RFC 4954 AUTH=): bytes of one line
//! in, a typed command or a precise error out. No state, no I/O: a fuzz target.
//! Every function here is linear in the line length and total on any bytes.

use super::address::{parse_forward_path, parse_path, AddressError, Mailbox, ReversePath};

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
    /// Holds the keyword, reduced to at most 64 printable ASCII characters (others
    /// become `?`), so it is safe to echo in a reply or a log line.
    Parameter(String),
}

/// Parses one command line *without* its CRLF. Verbs are case-insensitive;
/// `MAIL FROM:<a@b>` and `MAIL FROM: <a@b>` are both accepted (as Postfix does).
///
/// Trailing spaces and tabs are ignored. The MAIL path may hold UTF-8 only when
/// the same line has the SMTPUTF8 parameter. A RCPT path is parsed with UTF-8
/// allowed because this parser does not know the transaction: the session must
/// refuse a recipient whose [`Mailbox::is_ascii`] is false when MAIL did not ask
/// for SMTPUTF8 (553 5.6.7). `RCPT TO:<Postmaster>` gives `Mailbox { "postmaster", "" }`.
pub fn parse_command(line: &[u8]) -> Result<Command, CommandError> {
    let line = trim_end(line);
    let (verb, rest) = match line.iter().position(|&b| b == b' ') {
        Some(i) => (&line[..i], trim_start(&line[i + 1..])),
        None => (line, &line[line.len()..]),
    };
    // The longest verb is STARTTLS; anything longer cannot match.
    let mut buf = [0u8; 8];
    let upper = match buf.get_mut(..verb.len()) {
        Some(b) => {
            b.copy_from_slice(verb);
            b.make_ascii_uppercase();
            &*b
        }
        None => return Err(CommandError::Unknown),
    };
    let none = |cmd, msg| {
        if rest.is_empty() {
            Ok(cmd)
        } else {
            Err(CommandError::Syntax(msg))
        }
    };
    match upper {
        b"EHLO" => hello(rest, "EHLO requires domain address").map(Command::Ehlo),
        b"HELO" => hello(rest, "HELO requires domain address").map(Command::Helo),
        b"MAIL" => mail(rest),
        b"RCPT" => rcpt(rest),
        b"DATA" => none(Command::Data, "DATA takes no arguments"),
        b"BDAT" => bdat(rest),
        b"RSET" => none(Command::Rset, "RSET takes no arguments"),
        b"QUIT" => none(Command::Quit, "QUIT takes no arguments"),
        b"STARTTLS" => none(Command::StartTls, "STARTTLS takes no arguments"),
        // VRFY's argument is ignored because the answer never depends on it.
        b"NOOP" => Ok(Command::Noop),
        b"HELP" => Ok(Command::Help),
        b"VRFY" => Ok(Command::Vrfy),
        b"AUTH" => auth(rest),
        _ => Err(CommandError::Unknown),
    }
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim_end(s: &[u8]) -> &[u8] {
    let n = s.iter().rposition(|&b| !is_blank(b)).map_or(0, |i| i + 1);
    &s[..n]
}

fn trim_start(s: &[u8]) -> &[u8] {
    let n = s.iter().position(|&b| b != b' ').unwrap_or(s.len());
    &s[n..]
}

/// Space-separated words; runs of spaces count as one, as Postfix tolerates.
fn words(s: &[u8]) -> impl Iterator<Item = &[u8]> {
    s.split(|&b| b == b' ').filter(|w| !w.is_empty())
}

fn strip_prefix_ci<'a>(s: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// 1*DIGIT that fits a u64.
fn number(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |n, &b| {
        let d = (b as char).to_digit(10)?;
        n.checked_mul(10)?.checked_add(u64::from(d))
    })
}

fn printable(s: &[u8]) -> String {
    let s = &s[..s.len().min(64)];
    s.iter()
        .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
        .collect()
}

fn hello(rest: &[u8], missing: &'static str) -> Result<String, CommandError> {
    let bad = CommandError::Syntax("EHLO/HELO takes one domain or address literal");
    let mut w = words(rest);
    let (word, None) = (w.next().ok_or(CommandError::Syntax(missing))?, w.next()) else {
        return Err(bad);
    };
    match std::str::from_utf8(word) {
        Ok(s) if !s.chars().any(char::is_control) => Ok(s.to_owned()),
        _ => Err(bad),
    }
}

/// Splits `[ ]<path>[ params]` (what follows `FROM:` or `TO:`) after the
/// unquoted `>`: a quoted local part may hold `>` and spaces.
fn split_path(s: &[u8]) -> Result<(&str, &[u8]), AddressError> {
    let s = s.strip_prefix(b" ").unwrap_or(s);
    if s.first() != Some(&b'<') {
        return Err(AddressError::Syntax);
    }
    let (mut quoted, mut escaped) = (false, false);
    let mut end = None;
    for (i, &b) in s.iter().enumerate() {
        match (quoted, escaped, b) {
            (true, true, _) => escaped = false,
            (true, false, b'\\') => escaped = true,
            (_, _, b'"') => quoted = !quoted,
            (false, _, b'>') => {
                end = Some(i + 1);
                break;
            }
            _ => {}
        }
    }
    let (path, params) = s.split_at(end.ok_or(AddressError::Syntax)?);
    let params = match params.split_first() {
        None => params,
        Some((b' ', p)) => p,
        Some(_) => return Err(AddressError::Syntax),
    };
    let path = std::str::from_utf8(path).map_err(|_| AddressError::Syntax)?;
    Ok((path, params))
}

fn addr(sender: bool) -> impl Fn(AddressError) -> CommandError {
    move |error| CommandError::Address { sender, error }
}

fn mail(rest: &[u8]) -> Result<Command, CommandError> {
    let addr = addr(true);
    let after = strip_prefix_ci(rest, b"FROM:")
        .ok_or(CommandError::Syntax("MAIL requires FROM:<address>"))?;
    let (path, params) = split_path(after).map_err(&addr)?;
    let utf8 = words(params).any(|w| w.eq_ignore_ascii_case(b"SMTPUTF8"));
    let path = parse_path(path, true, utf8).map_err(addr)?;
    Ok(Command::Mail(path, mail_params(params)?))
}

fn rcpt(rest: &[u8]) -> Result<Command, CommandError> {
    let addr = addr(false);
    let after =
        strip_prefix_ci(rest, b"TO:").ok_or(CommandError::Syntax("RCPT requires TO:<address>"))?;
    let (path, params) = split_path(after).map_err(&addr)?;
    let mailbox = parse_forward_path(path, true).map_err(addr)?;
    // DSN (NOTIFY=, ORCPT=) is not advertised, so no RCPT parameter is known.
    match words(params).next() {
        Some(w) => Err(param_error(w)),
        None => Ok(Command::Rcpt(mailbox)),
    }
}

fn param_error(word: &[u8]) -> CommandError {
    let key = word.split(|&b| b == b'=').next().unwrap_or(word);
    CommandError::Parameter(printable(key))
}

fn mail_params(params: &[u8]) -> Result<MailParams, CommandError> {
    let mut p = MailParams::default();
    for word in words(params) {
        let (key, value) = match word.iter().position(|&b| b == b'=') {
            Some(i) => (&word[..i], Some(&word[i + 1..])),
            None => (word, None),
        };
        let is = |k: &[u8]| key.eq_ignore_ascii_case(k);
        let known = match value {
            Some(v) if is(b"SIZE") && p.size.is_none() => number(v).map(|n| p.size = Some(n)),
            Some(v) if is(b"BODY") && p.body.is_none() => body(v).map(|b| p.body = Some(b)),
            Some(v) if is(b"AUTH") && p.auth.is_none() => xtext(v).map(|a| p.auth = Some(a)),
            None if is(b"SMTPUTF8") && !p.smtputf8 => {
                p.smtputf8 = true;
                Some(())
            }
            _ => None,
        };
        if known.is_none() {
            return Err(CommandError::Parameter(printable(key)));
        }
    }
    Ok(p)
}

fn body(v: &[u8]) -> Option<Body> {
    if v.eq_ignore_ascii_case(b"7BIT") {
        Some(Body::SevenBit)
    } else if v.eq_ignore_ascii_case(b"8BITMIME") {
        Some(Body::EightBitMime)
    } else {
        None
    }
}

/// Decodes RFC 3461 xtext. Decoded control characters are refused: the value
/// ends up in logs and the queue envelope, where a `+0A` must not forge a line.
fn xtext(v: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(v.len());
    let mut it = v.iter();
    while let Some(&b) = it.next() {
        let byte = match b {
            b'+' => {
                let hi = (*it.next()? as char).to_digit(16)?;
                let lo = (*it.next()? as char).to_digit(16)?;
                u8::try_from(hi * 16 + lo).ok()?
            }
            b'=' => return None,
            b'!'..=b'~' => b,
            _ => return None,
        };
        if byte.is_ascii_control() {
            return None;
        }
        out.push(byte);
    }
    if out.is_empty() {
        return None;
    }
    String::from_utf8(out).ok()
}

fn bdat(rest: &[u8]) -> Result<Command, CommandError> {
    let mut w = words(rest);
    let size = w
        .next()
        .and_then(number)
        .ok_or(CommandError::Syntax("BDAT requires a chunk size"))?;
    let last = match (w.next(), w.next()) {
        (None, _) => false,
        (Some(l), None) if l.eq_ignore_ascii_case(b"LAST") => true,
        _ => return Err(CommandError::Syntax("BDAT takes a chunk size and LAST")),
    };
    Ok(Command::Bdat(size, last))
}

fn auth(rest: &[u8]) -> Result<Command, CommandError> {
    let mut w = words(rest);
    let mech = w
        .next()
        .ok_or(CommandError::Syntax("AUTH requires a mechanism"))?;
    // RFC 4422 3.1: sasl-mech is 1*20 of upper-case letters, digits, '-' and '_'.
    let mech_char = |b: &u8| b.is_ascii_alphanumeric() || b"-_".contains(b);
    if mech.len() > 20 || !mech.iter().all(mech_char) {
        return Err(CommandError::Syntax("invalid AUTH mechanism"));
    }
    // The initial response is base64 or a lone "=" (RFC 4954 4). The SASL code
    // decodes it, so bad base64 gets the same 501 5.5.2 here as on a later line.
    let initial = match (w.next(), w.next()) {
        (None, _) => None,
        (Some(r), None) if r.iter().all(u8::is_ascii_graphic) => Some(ascii(r)),
        _ => return Err(CommandError::Syntax("invalid AUTH initial response")),
    };
    Ok(Command::Auth(ascii(mech).to_ascii_uppercase(), initial))
}

/// For words already checked to be ASCII.
fn ascii(w: &[u8]) -> String {
    w.iter().map(|&b| char::from(b)).collect()
}

#[cfg(test)]
#[path = "command_tests.rs"]
mod tests;

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
    // The initial response is base64 or a lone "=" (RFC 4954 4); the SASL code decodes it.
    let base64_char = |b: &u8| b.is_ascii_alphanumeric() || b"+/=".contains(b);
    let initial = match (w.next(), w.next()) {
        (None, _) => None,
        (Some(r), None) if r.iter().all(base64_char) => Some(ascii(r)),
        _ => return Err(CommandError::Syntax("invalid AUTH initial response")),
    };
    Ok(Command::Auth(ascii(mech).to_ascii_uppercase(), initial))
}

/// For words already checked to be ASCII.
fn ascii(w: &[u8]) -> String {
    w.iter().map(|&b| char::from(b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use AddressError as AE;
    use Command as C;
    use CommandError as E;

    fn mb(local: &str, domain: &str) -> Mailbox {
        Mailbox {
            local: local.into(),
            domain: domain.into(),
        }
    }
    fn mail(local: &str, domain: &str, p: MailParams) -> Result<Command, CommandError> {
        Ok(C::Mail(ReversePath::Mailbox(mb(local, domain)), p))
    }
    fn rcpt(local: &str, domain: &str) -> Result<Command, CommandError> {
        Ok(C::Rcpt(mb(local, domain)))
    }
    fn addr(sender: bool, error: AddressError) -> Result<Command, CommandError> {
        Err(E::Address { sender, error })
    }
    fn param(k: &str) -> Result<Command, CommandError> {
        Err(E::Parameter(k.into()))
    }
    fn mp(size: Option<u64>, body: Option<Body>, smtputf8: bool, auth: Option<&str>) -> MailParams {
        let auth = auth.map(str::to_owned);
        MailParams {
            size,
            body,
            smtputf8,
            auth,
        }
    }
    fn check(cases: &[(&[u8], Result<Command, CommandError>)]) {
        for (line, want) in cases {
            let what = String::from_utf8_lossy(line);
            assert_eq!(&parse_command(line), want, "{what}");
        }
    }

    #[test]
    fn simple_verbs() {
        let long_ir = format!("AUTH PLAIN {}", "QUJD".repeat(50));
        #[rustfmt::skip]
        let cases: &[(&[u8], Result<Command, CommandError>)] = &[
            (b"EHLO mx.example.org", Ok(C::Ehlo("mx.example.org".into()))),
            (b"ehlo Mx.Example.ORG  ", Ok(C::Ehlo("Mx.Example.ORG".into()))),
            (b"EHLO [127.0.0.1]", Ok(C::Ehlo("[127.0.0.1]".into()))),
            (b"HeLo x\t", Ok(C::Helo("x".into()))),
            (b"DATA", Ok(C::Data)), (b"data  ", Ok(C::Data)),
            (b"RSET", Ok(C::Rset)), (b"QUIT", Ok(C::Quit)), (b"quit", Ok(C::Quit)),
            (b"STARTTLS", Ok(C::StartTls)), (b"StartTLS ", Ok(C::StartTls)),
            (b"NOOP", Ok(C::Noop)), (b"noop anything \xff at all", Ok(C::Noop)),
            (b"HELP", Ok(C::Help)), (b"HELP MAIL", Ok(C::Help)),
            (b"VRFY", Ok(C::Vrfy)), (b"VRFY root", Ok(C::Vrfy)),
            (b"BDAT 0", Ok(C::Bdat(0, false))), (b"bdat 1000 last", Ok(C::Bdat(1000, true))),
            (b"BDAT 18446744073709551615 LAST", Ok(C::Bdat(u64::MAX, true))),
            (b"AUTH plain", Ok(C::Auth("PLAIN".into(), None))),
            (b"AUTH PLAIN AGZvYmFy", Ok(C::Auth("PLAIN".into(), Some("AGZvYmFy".into())))),
            (b"AUTH login =", Ok(C::Auth("LOGIN".into(), Some("=".into())))),
            (b"AUTH SCRAM-SHA-1", Ok(C::Auth("SCRAM-SHA-1".into(), None))),
            (long_ir.as_bytes(), Ok(C::Auth("PLAIN".into(), Some("QUJD".repeat(50))))),
            (b"", Err(E::Unknown)), (b"   ", Err(E::Unknown)), (b" DATA", Err(E::Unknown)),
            (b"FOO", Err(E::Unknown)), (b"DATAX", Err(E::Unknown)), (b"STARTTLSX", Err(E::Unknown)),
            (b"MAILFROM:<a@b>", Err(E::Unknown)), (b"D\xffTA", Err(E::Unknown)),
            (b"\xc3", Err(E::Unknown)),
            (b"GET / HTTP/1.1", Err(E::Unknown)), (b"DATA\r", Err(E::Unknown)),
        ];
        check(cases);
    }

    #[test]
    fn syntax_errors() {
        #[rustfmt::skip]
        let cases: &[&[u8]] = &[
            b"EHLO", b"HELO  ", b"EHLO a b", b"EHLO a\x01", b"EHLO \xff", b"DATA x", b"RSET x",
            b"QUIT now", b"STARTTLS x", b"MAIL", b"MAIL TO:<a@b>", b"MAIL FROM <a@b>", b"RCPT",
            b"RCPT FROM:<a@b>", b"RCPT TO <a@b>", b"BDAT", b"BDAT x", b"BDAT -1", b"BDAT +1",
            b"BDAT 18446744073709551616", b"BDAT 10 MORE", b"BDAT 10 LAST x", b"AUTH",
            b"AUTH PL@IN", b"AUTH ABCDEFGHIJKLMNOPQRSTU", b"AUTH PLAIN a b", b"AUTH PLAIN a\xffb",
            b"AUTH PLAIN a.b",
        ];
        for line in cases {
            let got = parse_command(line);
            let what = String::from_utf8_lossy(line);
            assert!(matches!(got, Err(E::Syntax(_))), "{what}: {got:?}");
        }
        let want = Err(E::Syntax("EHLO requires domain address"));
        assert_eq!(parse_command(b"EHLO"), want);
    }

    #[test]
    fn mail_and_rcpt() {
        let p = MailParams::default;
        let size = |n| mp(Some(n), None, false, None);
        let auth = |a| mp(None, None, false, Some(a));
        let utf8 = mp(None, None, true, None);
        let seven = mp(None, Some(Body::SevenBit), false, None);
        let all = || mp(Some(10), Some(Body::EightBitMime), true, Some("<>"));
        let long = format!("MAIL FROM:<{}@b>", "a".repeat(65));
        #[rustfmt::skip]
        let cases: &[(&[u8], Result<Command, CommandError>)] = &[
            (b"MAIL FROM:<a@b>", mail("a", "b", p())),
            (b"mail from:<A@B>", mail("A", "b", p())),
            (b"MAIL FROM: <a@b>", mail("a", "b", p())),
            (b"MAIL  From:<a@b>  ", mail("a", "b", p())),
            (b"MAIL FROM:<>", Ok(C::Mail(ReversePath::Null, p()))),
            (b"MAIL FROM:<> SIZE=0", Ok(C::Mail(ReversePath::Null, size(0)))),
            (b"MAIL FROM:<@r1,@r2:a@b>", mail("a", "b", p())),
            (b"MAIL FROM:<\"x> y\"@b> SIZE=5", mail("\"x> y\"", "b", size(5))),
            (b"MAIL FROM:<a@b> size=1000", mail("a", "b", size(1000))),
            (b"MAIL FROM:<a@b> BODY=7bit", mail("a", "b", seven)),
            (b"MAIL FROM:<a@b> SIZE=10 BODY=8BITMIME SMTPUTF8 AUTH=<>", mail("a", "b", all())),
            (b"MAIL FROM:<a@b> smtputf8  body=8bitmime auth=+3C+3e size=10", mail("a", "b", all())),
            (b"MAIL FROM:<a@b> AUTH=e+2Bf+3Dg@h", mail("a", "b", auth("e+f=g@h"))),
            (b"MAIL FROM:<a@b> AUTH=j+C3+BCrgen@x", mail("a", "b", auth("jürgen@x"))),
            ("MAIL FROM:<jü@bücher.de> SMTPUTF8".as_bytes(), mail("jü", "bücher.de", utf8)),
            ("MAIL FROM:<jürgen@x>".as_bytes(), addr(true, AE::NeedsSmtputf8)),
            ("MAIL FROM:<jürgen@x> SMTPUTF8=yes".as_bytes(), addr(true, AE::NeedsSmtputf8)),
            (b"MAIL FROM:<j\xfcrgen@x> SMTPUTF8", addr(true, AE::Syntax)),
            (b"MAIL FROM:", addr(true, AE::Syntax)),
            (b"MAIL FROM:a@b", addr(true, AE::Syntax)),
            (b"MAIL FROM:  <a@b>", addr(true, AE::Syntax)),
            (b"MAIL FROM:<a@b", addr(true, AE::Syntax)),
            (b"MAIL FROM:<a@b>x", addr(true, AE::Syntax)),
            (b"MAIL FROM:<a@b>\tSIZE=1", addr(true, AE::Syntax)),
            (b"MAIL FROM:<a b@c>", addr(true, AE::Syntax)),
            (b"MAIL FROM:<\"a\0b\"@c>", addr(true, AE::Syntax)),
            (b"MAIL FROM:<postmaster>", addr(true, AE::Syntax)),
            (long.as_bytes(), addr(true, AE::TooLong)),
            (b"MAIL FROM:<a@b> SIZE=", param("SIZE")),
            (b"MAIL FROM:<a@b> SIZE", param("SIZE")),
            (b"MAIL FROM:<a@b> SIZE=1k", param("SIZE")),
            (b"MAIL FROM:<a@b> SIZE=99999999999999999999", param("SIZE")),
            (b"MAIL FROM:<a@b> SIZE=1 size=2", param("size")),
            (b"MAIL FROM:<a@b> BODY=BINARYMIME", param("BODY")),
            (b"MAIL FROM:<a@b> BODY=7BIT BODY=7BIT", param("BODY")),
            (b"MAIL FROM:<a@b> SMTPUTF8 SMTPUTF8", param("SMTPUTF8")),
            (b"MAIL FROM:<a@b> SMTPUTF8=1", param("SMTPUTF8")),
            (b"MAIL FROM:<a@b> AUTH=", param("AUTH")),
            (b"MAIL FROM:<a@b> AUTH=a=b", param("AUTH")),
            (b"MAIL FROM:<a@b> AUTH=a+4", param("AUTH")),
            (b"MAIL FROM:<a@b> AUTH=a+0Ab", param("AUTH")),
            (b"MAIL FROM:<a@b> AUTH=+FF", param("AUTH")),
            (b"MAIL FROM:<a@b> AUTH=\xc3\xbc", param("AUTH")),
            (b"MAIL FROM:<a@b> RET=HDRS", param("RET")),
            (b"MAIL FROM:<a@b> X\x01\xff=1", param("X??")),
            (b"RCPT TO:<a@b>", rcpt("a", "b")),
            (b"rcpt to: <a@B.EXAMPLE>", rcpt("a", "b.example")),
            (b"RCPT TO:<@r:a@b>", rcpt("a", "b")),
            (b"RCPT TO:<postmaster>", rcpt("postmaster", "")),
            (b"RCPT TO:<Postmaster>", rcpt("postmaster", "")),
            ("RCPT TO:<jürgen@x>".as_bytes(), rcpt("jürgen", "x")),
            (b"RCPT TO:<>", addr(false, AE::Syntax)),
            (b"RCPT TO:<root>", addr(false, AE::Syntax)),
            (b"RCPT TO:<a@b.>", addr(false, AE::Syntax)),
            (b"RCPT TO:<a@\xff>", addr(false, AE::Syntax)),
            (b"RCPT TO:a@b", addr(false, AE::Syntax)),
            (b"RCPT TO:<a@b> NOTIFY=NEVER", param("NOTIFY")),
            (b"RCPT TO:<a@b> ORCPT=rfc822;a@b", param("ORCPT")),
            (b"RCPT TO:<postmaster> FOO", param("FOO")),
        ];
        check(cases);
        let r = parse_command("RCPT TO:<jürgen@x>".as_bytes());
        assert!(matches!(r, Ok(C::Rcpt(m)) if !m.is_ascii()));
    }

    /// xorshift64*: deterministic, so a failure reproduces.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn never_panics_on_noise() {
        #[rustfmt::skip]
        const HEADS: &[&[u8]] = &[
            b"MAIL FROM:<", b"RCPT TO:<", b"MAIL FROM:<a@b> ", b"EHLO ", b"BDAT ", b"AUTH ", b"",
        ];
        #[rustfmt::skip]
        const PIECES: &[&[u8]] = &[
            b"<", b">", b"<>", b"@", b"\"", b"\\", b" ", b"  ", b":", b",", b".", b"[", b"]",
            b"IPv6:", b"::1", b"1.2.3.4", b"=", b"+", b"+4", b"+3C", b"SIZE=", b"BODY=", b"AUTH=",
            b"SMTPUTF8", b"LAST", b"postmaster", b"user", b"example.org", b"-", b"\xff", b"\xc3",
            b"\xc3\xbc", "\u{85}".as_bytes(), b"\0", b"\r", b"\t", b"18446744073709551616", b"0",
        ];
        #[rustfmt::skip]
        const SEEDS: &[&[u8]] = &[
            b"MAIL FROM:<@a,@[IPv6:::1]:\"x y\"@b.c> SIZE=10 BODY=8BITMIME SMTPUTF8 AUTH=a+2Bb",
            b"RCPT TO: <user@[127.0.0.1]>", b"BDAT 123 LAST", b"AUTH PLAIN AGZvbwBiYXI=",
        ];
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let (mut line, mut ok) = (Vec::new(), 0);
        for round in 0..6000 {
            line.clear();
            match round % 3 {
                0 => line.extend((0..rng.below(80)).map(|_| rng.next() as u8)),
                1 => {
                    line.extend_from_slice(SEEDS[rng.below(SEEDS.len())]);
                    for _ in 0..=rng.below(3) {
                        let at = rng.below(line.len());
                        match rng.below(3) {
                            0 => line[at] = rng.next() as u8,
                            1 => drop(line.remove(at)),
                            _ => line.insert(at, PIECES[rng.below(PIECES.len())][0]),
                        }
                    }
                }
                _ => {
                    line.extend_from_slice(HEADS[rng.below(HEADS.len())]);
                    for _ in 0..rng.below(12) {
                        line.extend_from_slice(PIECES[rng.below(PIECES.len())]);
                    }
                }
            }
            match parse_command(&line) {
                Err(E::Parameter(k)) => {
                    assert!(k.len() <= 64 && k.bytes().all(|b| b.is_ascii_graphic()))
                }
                Ok(C::Mail(ReversePath::Mailbox(m), _)) => assert!(!m.domain.is_empty()),
                Ok(_) => ok += 1,
                _ => {}
            }
            let text = String::from_utf8_lossy(&line);
            let _ = parse_path(&text, round % 2 == 0, round % 5 == 0);
        }
        // The generator must reach past the verb, not only produce 500s.
        assert!(ok > 200, "only {ok} lines parsed");
        // Linear time: a quadratic scan would take minutes on these.
        for fill in [&b"<"[..], b"\"", b"@a,", b" x", b"+", b" SIZE=1", b"a."] {
            for head in [
                &b"MAIL FROM:<"[..],
                b"MAIL FROM:<a@b>",
                b"RCPT TO:<\"",
                b"AUTH ",
            ] {
                let line = [head, &fill.repeat(200_000)].concat();
                assert!(parse_command(&line).is_err());
            }
        }
    }
}

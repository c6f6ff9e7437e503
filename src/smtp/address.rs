//! Mail addresses as they appear in MAIL FROM and RCPT TO (RFC 5321 4.1.2):
//! parsing of `<path>` with its limits, and the parts routing needs.
//! UTF-8 addresses follow RFC 6531 and are accepted only when the caller says
//! SMTPUTF8 is in effect.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// RFC 5321 4.5.3.1.1 to 4.5.3.1.3; the path limit counts the angle brackets.
const MAX_LOCAL: usize = 64;
const MAX_DOMAIN: usize = 255;
const MAX_PATH: usize = 256;
/// RFC 1035 2.3.4, for ASCII labels; a U-label's limit applies to its A-label form.
const MAX_LABEL: usize = 63;

/// A mailbox `local@domain`. The local part keeps its original spelling (quoted
/// form included) because RFC 5321 says it may be case-sensitive; routing folds case.
/// The one mailbox without a domain is `postmaster` (from `RCPT TO:<Postmaster>`,
/// RFC 5321 4.5.1): `local == "postmaster"`, `domain == ""`, meaning "this host".
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mailbox {
    pub local: String,
    /// Lower-cased; an address literal keeps its brackets, e.g. `[127.0.0.1]`
    /// (also lower-cased: `[ipv6:::1]`).
    pub domain: String,
}

impl Mailbox {
    /// False when the local part or domain has UTF-8: such a recipient needs
    /// SMTPUTF8 on the transaction (else 553 5.6.7, RFC 6531 3.5).
    pub fn is_ascii(&self) -> bool {
        self.local.is_ascii() && self.domain.is_ascii()
    }
}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.domain.is_empty() {
            return f.write_str(&self.local);
        }
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

use AddressError::{NeedsSmtputf8, Syntax, TooLong};

/// Parses a forward-path or reverse-path *with* its angle brackets, e.g.
/// `<user@example.org>`, `<@a,@b:user@example.org>` (the source route is dropped),
/// `<"john doe"@example.org>`. `<>` is accepted only when `allow_null`.
/// `utf8` says whether the client asked for SMTPUTF8 on this transaction: UTF-8
/// in the local part or domain is accepted only then.
pub fn parse_path(text: &str, allow_null: bool, utf8: bool) -> Result<ReversePath, AddressError> {
    let inner = text
        .strip_prefix('<')
        .and_then(|t| t.strip_suffix('>'))
        .ok_or(Syntax)?;
    if text.len() > MAX_PATH {
        return Err(TooLong);
    }
    if inner.is_empty() {
        return if allow_null {
            Ok(ReversePath::Null)
        } else {
            Err(Syntax)
        };
    }
    let mailbox = strip_source_route(inner, utf8)?;
    parse_mailbox(mailbox, utf8).map(ReversePath::Mailbox)
}

/// A forward-path as RCPT TO takes it: never `<>`, and `<Postmaster>` without a
/// domain (any case) is the local postmaster, `Mailbox { "postmaster", "" }`.
pub fn parse_forward_path(text: &str, utf8: bool) -> Result<Mailbox, AddressError> {
    if text.as_bytes().eq_ignore_ascii_case(b"<postmaster>") {
        return Ok(Mailbox {
            local: "postmaster".to_owned(),
            domain: String::new(),
        });
    }
    match parse_path(text, false, utf8)? {
        ReversePath::Mailbox(m) => Ok(m),
        ReversePath::Null => Err(Syntax),
    }
}

/// Checks and drops an A-d-l (`@a,@b:`); RFC 5321 4.1.2 says to ignore it, but
/// garbage in it is still a syntax error.
fn strip_source_route(s: &str, utf8: bool) -> Result<&str, AddressError> {
    if !s.starts_with('@') {
        return Ok(s);
    }
    let mut rest = s;
    loop {
        rest = rest.strip_prefix('@').ok_or(Syntax)?;
        // A literal may hold ':' (IPv6), so it ends at its ']', not at a separator.
        let end = if rest.starts_with('[') {
            rest.find(']').map(|i| i + 1)
        } else {
            rest.find([',', ':'])
        };
        let end = end.ok_or(Syntax)?;
        parse_domain(&rest[..end], utf8)?;
        rest = &rest[end..];
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
        } else {
            return rest.strip_prefix(':').ok_or(Syntax);
        }
    }
}

fn parse_mailbox(s: &str, utf8: bool) -> Result<Mailbox, AddressError> {
    let (local, domain) = if s.starts_with('"') {
        let end = quoted_len(s, utf8)?;
        (&s[..end], s[end..].strip_prefix('@').ok_or(Syntax)?)
    } else {
        let at = s.find('@').ok_or(Syntax)?;
        check_dot_atom(&s[..at], utf8)?;
        (&s[..at], &s[at + 1..])
    };
    if local.len() > MAX_LOCAL {
        return Err(TooLong);
    }
    let domain = parse_domain(domain, utf8)?;
    Ok(Mailbox {
        local: local.to_owned(),
        domain,
    })
}

/// UTF-8 is allowed wherever RFC 6531 extends the ASCII grammar, but never C1
/// controls, which are as dangerous in logs as C0 ones.
fn non_ascii(c: char, utf8: bool) -> Result<(), AddressError> {
    match (utf8, c.is_control()) {
        (false, _) => Err(NeedsSmtputf8),
        (true, true) => Err(Syntax),
        (true, false) => Ok(()),
    }
}

/// Length in bytes of the Quoted-string at the start of `s`, quotes included.
fn quoted_len(s: &str, utf8: bool) -> Result<usize, AddressError> {
    let mut chars = s.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok(i + 1),
            // quoted-pairSMTP: backslash then printable ASCII or space, nothing else.
            '\\' => match chars.next() {
                Some((_, ' '..='~')) => {}
                _ => return Err(Syntax),
            },
            ' '..='~' => {}
            c if !c.is_ascii() => non_ascii(c, utf8)?,
            _ => return Err(Syntax),
        }
    }
    Err(Syntax)
}

fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c)
}

fn check_dot_atom(s: &str, utf8: bool) -> Result<(), AddressError> {
    if s.split('.').any(str::is_empty) {
        return Err(Syntax);
    }
    for c in s.chars() {
        match c {
            '.' => {}
            c if is_atext(c) => {}
            c if !c.is_ascii() => non_ascii(c, utf8)?,
            _ => return Err(Syntax),
        }
    }
    Ok(())
}

/// True for a plain ASCII host name (no address literal) of at most 253
/// octets, as a config file names hosts and domains.
pub fn is_host_name(name: &str) -> bool {
    name.len() <= 253
        && name
            .split('.')
            .all(|l| l.is_ascii() && check_label(l, false).is_ok())
}

/// A Domain or address-literal, returned lower-cased.
fn parse_domain(s: &str, utf8: bool) -> Result<String, AddressError> {
    if s.len() > MAX_DOMAIN {
        return Err(TooLong);
    }
    if let Some(lit) = s.strip_prefix('[') {
        let lit = lit.strip_suffix(']').ok_or(Syntax)?;
        // General-address-literal tags other than IPv6 are not routable by us.
        let ok = match lit.get(..5) {
            Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => lit[5..].parse::<Ipv6Addr>().is_ok(),
            _ => lit.parse::<Ipv4Addr>().is_ok(),
        };
        return if ok {
            Ok(s.to_ascii_lowercase())
        } else {
            Err(Syntax)
        };
    }
    for label in s.split('.') {
        check_label(label, utf8)?;
    }
    Ok(s.to_lowercase())
}

fn check_label(label: &str, utf8: bool) -> Result<(), AddressError> {
    if label.is_empty() || label.starts_with('-') || label.ends_with('-') {
        return Err(Syntax);
    }
    for c in label.chars() {
        match c {
            '-' => {}
            c if c.is_ascii_alphanumeric() => {}
            c if !c.is_ascii() => non_ascii(c, utf8)?,
            _ => return Err(Syntax),
        }
    }
    if label.is_ascii() && label.len() > MAX_LABEL {
        return Err(Syntax);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mb(local: &str, domain: &str) -> Result<ReversePath, AddressError> {
        Ok(ReversePath::Mailbox(Mailbox {
            local: local.into(),
            domain: domain.into(),
        }))
    }

    #[test]
    fn parse_path_table() {
        let l64 = "a".repeat(64);
        let l65 = "a".repeat(65);
        let d63 = format!("{}.example", "d".repeat(63));
        let d64 = format!("{}.example", "d".repeat(64));
        // Path of exactly 256 octets: <a@ + 252 + >, in labels of 50.
        let d252 = format!("{}.{}", vec!["d".repeat(50); 4].join("."), "e".repeat(48));
        let d253 = format!("{d252}e");
        let p256 = format!("<a@{d252}>");
        let p257 = format!("<a@{d253}>");
        let p_l64 = format!("<{l64}@b>");
        let p_l65 = format!("<{l65}@b>");
        let p_d63 = format!("<a@{d63}>");
        let p_d64 = format!("<a@{d64}>");
        let q65 = format!("<\"{}\"@b>", "a".repeat(63));
        #[rustfmt::skip]
        let cases: &[(&str, bool, bool, Result<ReversePath, AddressError>)] = &[
            ("<user@example.org>", false, false, mb("user", "example.org")),
            ("<User.Name+tag@Example.ORG>", false, false, mb("User.Name+tag", "example.org")),
            ("<!#$%&'*+-/=?^_`{|}~@x>", false, false, mb("!#$%&'*+-/=?^_`{|}~", "x")),
            ("<>", true, false, Ok(ReversePath::Null)),
            ("<>", false, false, Err(Syntax)),
            ("<@a,@b:user@dom>", false, false, mb("user", "dom")),
            ("<@[1.2.3.4],@[IPv6:::1]:u@d>", false, false, mb("u", "d")),
            ("<@a:u@d>", false, false, mb("u", "d")),
            ("<@a,u@d>", false, false, Err(Syntax)),
            ("<@:u@d>", false, false, Err(Syntax)),
            ("<@a,:u@d>", false, false, Err(Syntax)),
            ("<@a_b:u@d>", false, false, Err(Syntax)),
            ("<@a:>", false, false, Err(Syntax)),
            ("<\"john doe\"@example.org>", false, false, mb("\"john doe\"", "example.org")),
            ("<\"a\\\"b\\\\c@>\"@x>", false, false, mb("\"a\\\"b\\\\c@>\"", "x")),
            ("<\"\"@x>", false, false, mb("\"\"", "x")),
            ("<\"a\"b@x>", false, false, Err(Syntax)),
            ("<\"abc@x>", false, false, Err(Syntax)),
            ("<\"a\0b\"@x>", false, false, Err(Syntax)),
            ("<\"a\rb\"@x>", false, false, Err(Syntax)),
            ("<\"a\nb\"@x>", false, false, Err(Syntax)),
            ("<\"a\\\nb\"@x>", false, false, Err(Syntax)),
            ("<\"a\tb\"@x>", false, false, Err(Syntax)),
            ("<u@[127.0.0.1]>", false, false, mb("u", "[127.0.0.1]")),
            ("<u@[IPv6:2001:DB8::1]>", false, false, mb("u", "[ipv6:2001:db8::1]")),
            ("<u@[ipv6:::1]>", false, false, mb("u", "[ipv6:::1]")),
            ("<u@[256.0.0.1]>", false, false, Err(Syntax)),
            ("<u@[1.2.3]>", false, false, Err(Syntax)),
            ("<u@[::1]>", false, false, Err(Syntax)),
            ("<u@[IPv6:1.2.3.4]>", false, false, Err(Syntax)),
            ("<u@[x-tag:foo]>", false, false, Err(Syntax)),
            ("<u@[1.2.3.4>", false, false, Err(Syntax)),
            ("<u@a-b.c0>", false, false, mb("u", "a-b.c0")),
            ("<u@xn--bcher-kva.example>", false, false, mb("u", "xn--bcher-kva.example")),
            ("<u@-a.b>", false, false, Err(Syntax)),
            ("<u@a-.b>", false, false, Err(Syntax)),
            ("<u@a..b>", false, false, Err(Syntax)),
            ("<u@a.b.>", false, false, Err(Syntax)),
            ("<u@.a>", false, false, Err(Syntax)),
            ("<u@a_b.c>", false, false, Err(Syntax)),
            ("<u@>", false, false, Err(Syntax)),
            ("<u@a@b>", false, false, Err(Syntax)),
            ("<user>", false, false, Err(Syntax)),
            ("<postmaster>", false, false, Err(Syntax)),
            ("<@b>", false, false, Err(Syntax)),
            ("<.u@b>", false, false, Err(Syntax)),
            ("<u.@b>", false, false, Err(Syntax)),
            ("<u..v@b>", false, false, Err(Syntax)),
            ("<u v@b>", false, false, Err(Syntax)),
            ("<u\tv@b>", false, false, Err(Syntax)),
            ("<u\x7fv@b>", false, false, Err(Syntax)),
            ("<a(b)@c>", false, false, Err(Syntax)),
            ("<u@b> ", false, false, Err(Syntax)),
            ("<u@b>x", false, false, Err(Syntax)),
            ("<u@b", false, false, Err(Syntax)),
            ("u@b", false, false, Err(Syntax)),
            ("<", false, false, Err(Syntax)),
            ("", true, false, Err(Syntax)),
            (" <u@b>", false, false, Err(Syntax)),
            ("<jürgen@example.org>", false, false, Err(NeedsSmtputf8)),
            ("<jürgen@example.org>", false, true, mb("jürgen", "example.org")),
            ("<u@Bücher.EXAMPLE>", false, false, Err(NeedsSmtputf8)),
            ("<u@Bücher.EXAMPLE>", false, true, mb("u", "bücher.example")),
            ("<\"jü rgen\"@x>", false, false, Err(NeedsSmtputf8)),
            ("<\"jü rgen\"@x>", false, true, mb("\"jü rgen\"", "x")),
            ("<\"a\\ü\"@x>", false, true, Err(Syntax)),
            ("<u\u{85}@x>", false, true, Err(Syntax)),
            ("<u@a\u{9f}b>", false, true, Err(Syntax)),
            ("<u@[ü]>", false, true, Err(Syntax)),
            (&p_l64, false, false, mb(&l64, "b")),
            (&p_l65, false, false, Err(TooLong)),
            (&q65, false, false, Err(TooLong)),
            (&p_d63, false, false, mb("a", &d63)),
            (&p_d64, false, false, Err(Syntax)),
            (&p256, false, false, mb("a", &d252)),
            (&p257, false, false, Err(TooLong)),
        ];
        for (i, (text, allow_null, utf8, want)) in cases.iter().enumerate() {
            assert_eq!(
                &parse_path(text, *allow_null, *utf8),
                want,
                "case {i}: {text:?}"
            );
        }
    }

    #[test]
    fn forward_path_and_helpers() {
        let pm = Mailbox {
            local: "postmaster".into(),
            domain: String::new(),
        };
        for t in ["<postmaster>", "<PostMaster>", "<POSTMASTER>"] {
            assert_eq!(parse_forward_path(t, false), Ok(pm.clone()), "{t}");
        }
        assert_eq!(pm.to_string(), "postmaster");
        assert_eq!(parse_forward_path("<>", true), Err(Syntax));
        assert_eq!(parse_forward_path("<root>", true), Err(Syntax));
        assert_eq!(parse_forward_path("<postmaster >", true), Err(Syntax));
        let m = parse_forward_path("<Postmaster@Example.org>", false);
        assert_eq!(
            m,
            Ok(Mailbox {
                local: "Postmaster".into(),
                domain: "example.org".into()
            })
        );
        let m = parse_forward_path("<ü@x>", true).expect("utf8 allowed");
        assert!(!m.is_ascii());
        assert_eq!(m.to_string(), "ü@x");
        assert!(pm.is_ascii());
        assert_eq!(ReversePath::Null.to_string(), "");
    }
}

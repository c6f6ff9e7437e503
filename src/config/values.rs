//! The value syntaxes of the config file: sizes (`25M`), durations (`5m`),
//! domain names, the recipient delimiter, comments, and their rendering back
//! into the same syntax for `picomta check`.

use std::time::Duration;

use super::{GIB, KIB, MIB};

/// The line without its comment: `#` at the start or after whitespace begins one,
/// so a `#` inside a value (`a#b`) is kept.
pub(super) fn strip_comment(line: &str) -> &str {
    let mut prev_space = true;
    for (i, c) in line.char_indices() {
        if c == '#' && prev_space {
            return &line[..i];
        }
        prev_space = c.is_whitespace();
    }
    line
}

/// A host or domain name: dot-separated labels of letters, digits and inner
/// hyphens, as RFC 1035 allows in mail domains. Returns the name as given.
pub(super) fn domain(name: &str) -> Option<String> {
    crate::smtp::address::is_host_name(name).then(|| name.to_string())
}

/// The `recipient_delimiter` value: `none`, or one character that may appear in a
/// dot-atom local part (RFC 5322 atext) and is not a letter or digit.
pub(super) fn delimiter(value: &str) -> Result<Option<char>, String> {
    if value == "none" {
        return Ok(None);
    }
    let mut chars = value.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if "!#$%&'*+-/=?^_`{|}~".contains(c) => Ok(Some(c)),
        _ => Err(format!(
            "bad recipient_delimiter '{value}' (one of !#$%&'*+-/=?^_`{{|}}~, or none)"
        )),
    }
}

/// A switch: `yes` or `no`.
pub(super) fn yes_no(key: &str, value: &str) -> Result<bool, String> {
    match value {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err(format!("'{key}' must be yes or no, not '{value}'")),
    }
}

/// Plain decimal digits only: `u64::from_str` would also take a `+` sign.
pub(super) fn digits(value: &str) -> Option<u64> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

pub(super) fn positive(key: &str, value: &str) -> Result<usize, String> {
    match digits(value).map(usize::try_from) {
        Some(Ok(0)) => Err(format!("'{key}' must be at least 1")),
        Some(Ok(n)) => Ok(n),
        _ => Err(format!("bad number '{value}' for '{key}'")),
    }
}

/// Size suffixes, largest first (1024-based; any case is accepted).
pub(super) const SIZE_UNITS: &[(char, u64)] = &[('G', GIB), ('M', MIB), ('k', KIB)];
/// Duration suffixes in seconds, largest first.
pub(super) const TIME_UNITS: &[(char, u64)] = &[('d', 86400), ('h', 3600), ('m', 60), ('s', 1)];

/// Digits times the unit named by an optional suffix from `units`; None if
/// malformed or too large.
pub(super) fn scaled(value: &str, units: &[(char, u64)], any_case: bool) -> Option<u64> {
    let last = value.chars().last()?;
    let unit = units
        .iter()
        .find(|(c, _)| *c == last || (any_case && c.eq_ignore_ascii_case(&last)));
    match unit {
        // The suffix is one ASCII byte, so the slice is on a char boundary.
        Some(&(_, n)) => digits(&value[..value.len() - 1])?.checked_mul(n),
        None => digits(value),
    }
}

/// `n` in the largest unit of `units` that states it exactly.
pub(super) fn show(n: u64, units: &[(char, u64)]) -> String {
    match units.iter().find(|(_, u)| n != 0 && n % u == 0) {
        Some(&(c, u)) => format!("{}{c}", n / u),
        None => n.to_string(),
    }
}

pub(super) fn size(key: &str, value: &str) -> Result<u64, String> {
    scaled(value, SIZE_UNITS, true).ok_or(format!(
        "bad size '{value}' for '{key}' (bytes, or with a k, M or G suffix)"
    ))
}

pub(super) fn duration(key: &str, value: &str) -> Result<Duration, String> {
    match scaled(value, TIME_UNITS, false) {
        Some(0) => Err(format!("'{key}' must be longer than 0s")),
        Some(secs) => Ok(Duration::from_secs(secs)),
        None => Err(format!(
            "bad duration '{value}' for '{key}' (seconds, or with an s, m, h or d suffix)"
        )),
    }
}

pub(super) fn show_size(n: u64) -> String {
    show(n, SIZE_UNITS)
}

/// Whole seconds: the parser makes no other durations.
pub(super) fn show_duration(d: Duration) -> String {
    show(d.as_secs(), TIME_UNITS)
}

/// The system host name, if it is a valid domain (it is used in greetings and
/// Maildir file names): /proc first, then gethostname(2), then `localhost`.
pub(super) fn system_hostname() -> String {
    if let Ok(name) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        if let Some(name) = domain(name.trim()) {
            return name;
        }
    }
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes, which is the length passed.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        if let Some(name) = std::str::from_utf8(&buf[..end]).ok().and_then(domain) {
            return name;
        }
    }
    "localhost".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        for (text, n) in [
            ("0", 0),
            ("17", 17),
            ("1k", 1024),
            ("2K", 2048),
            ("3M", 3 << 20),
        ] {
            assert_eq!(size("k", text), Ok(n), "{text}");
            assert_eq!(size("k", &show_size(n)), Ok(n));
        }
        assert_eq!(
            (size("k", "4G"), show_size(1025).as_str()),
            (Ok(4 << 30), "1025")
        );
        for (text, n) in [
            ("45", 45),
            ("30s", 30),
            ("5m", 300),
            ("2h", 7200),
            ("1d", 86400),
        ] {
            assert_eq!(duration("k", text), Ok(Duration::from_secs(n)), "{text}");
        }
        assert_eq!(show_duration(Duration::from_secs(90)), "90s");
        assert_eq!(show_duration(Duration::from_secs(172800)), "2d");
    }
}

//! The users file: the list of local mailboxes, one name per line. A name
//! becomes a directory through the `maildir` template, so this is where the
//! rule "a local part can never name a path outside the mail root" is enforced,
//! and where a local part is folded into the key users and aliases are found by.

use std::collections::HashSet;
use std::path::Path;

use crate::config::ConfigError;

/// Longest mailbox name: the RFC 5321 limit of a local part.
const MAX_NAME_LEN: usize = 64;

/// True for a canonical mailbox name: `[a-z0-9._-]{1,64}`, not starting with
/// `.` (which also rules out `.` and `..`). The character set has no `/`, NUL
/// or anything a shell or a file system treats specially.
pub fn is_valid_user_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'))
}

/// The lookup key of a local part: RFC 5321 says a quoted local part is the
/// same address as its unquoted form when that is a plain string, and we fold
/// case (local parts are case-insensitive here, as on nearly every MTA).
pub fn fold(local: &str) -> String {
    let unquoted = match local.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                // quoted-pairSMTP: a backslash escapes the next character.
                out.push(if c == '\\' {
                    chars.next().unwrap_or('\\')
                } else {
                    c
                });
            }
            out
        }
        None => local.to_string(),
    };
    unquoted.to_lowercase()
}

/// Reads a users file; a file that cannot be read is an error at line 0.
pub fn load_users(file: &Path) -> Result<HashSet<String>, ConfigError> {
    let text = crate::config::read_text(file)?;
    parse_users(file, &text)
}

/// Parses users file text; `file` is only used in error messages.
pub fn parse_users(file: &Path, text: &str) -> Result<HashSet<String>, ConfigError> {
    let mut users = HashSet::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name = line.to_lowercase();
        if !is_valid_user_name(&name) {
            return Err(ConfigError {
                file: file.to_path_buf(),
                line: i + 1,
                message: format!("invalid user name '{line}'"),
            });
        }
        // A repeated name is harmless: it is the same mailbox.
        users.insert(name);
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_validation() {
        let good = [
            "a",
            "alice",
            "john.doe",
            "x_y-z",
            "0",
            "a..b",
            &"a".repeat(64),
        ];
        for n in good {
            assert!(is_valid_user_name(n), "{n:?} should be valid");
        }
        let long = "a".repeat(65);
        let bad = [
            "", ".", "..", ".alice", "../etc", "a/b", "/abs", "a\0b", "Alice", "a b", "a+b", "a@b",
            "a:b", "a\\b", "é", "~root", "*", &long,
        ];
        for n in bad {
            assert!(!is_valid_user_name(n), "{n:?} should be invalid");
        }
    }

    #[test]
    fn folding() {
        for (local, key) in [
            ("Alice", "alice"),
            ("\"Alice\"", "alice"),
            ("\"a\\\"b\\\\\"", "a\"b\\"),
            ("\"x\\\"", "x\\"),
            ("\"", "\""),
            ("\"\"", ""),
            ("ÉLAN", "élan"),
        ] {
            assert_eq!(fold(local), key, "{local}");
        }
    }

    #[test]
    fn parses_names_comments_and_case() {
        let text = "# users\n\nalice\n  Bob  \r\n\tcarol.x\n#dave\nalice\n";
        let users = parse_users(Path::new("u"), text).expect("valid");
        let mut v: Vec<_> = users.into_iter().collect();
        v.sort();
        assert_eq!(v, ["alice", "bob", "carol.x"]);
    }

    #[test]
    fn invalid_names_are_errors_with_line() {
        for (text, line, shown) in [
            ("alice\nx/y\n", 2, "x/y"),
            ("..\n", 1, ".."),
            ("# c\n\n.hidden\n", 3, ".hidden"),
            ("a b\n", 1, "a b"),
            ("ok\nbad\0name\n", 2, "bad\0name"),
        ] {
            let e = parse_users(Path::new("users"), text).expect_err(text);
            assert_eq!(e.line, line, "{text:?}");
            assert_eq!(e.message, format!("invalid user name '{shown}'"));
            assert_eq!(e.file, Path::new("users"));
        }
        let e = parse_users(Path::new("users"), "x/y\n").expect_err("bad");
        assert_eq!(e.to_string(), "users:1: invalid user name 'x/y'");
    }

    #[test]
    fn missing_file_is_line_zero() {
        let p = std::env::temp_dir().join(format!("picomta-nousers-{}", std::process::id()));
        let e = load_users(&p).expect_err("missing");
        assert_eq!(e.line, 0);
        assert!(e.message.starts_with("cannot read: "), "{}", e.message);
    }
}

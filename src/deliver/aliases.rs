//! The aliases file in /etc/aliases format: `name: target, target, ...`, with
//! continuation lines that start with white space and `#` comments. Parsing
//! only; following aliases to mailboxes is the router's job.
//!
//! Program (`|command`), file (`/path`) and `:include:` targets are refused:
//! they would run code or write files as the daemon's user on behalf of any
//! sender. They are kept as refused targets, so a delivery to them is logged
//! and bounced instead of silently vanishing.

use std::collections::HashMap;
use std::path::Path;

use crate::config::ConfigError;
use crate::smtp::address::Mailbox;

/// One target of an alias as written in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AliasTarget {
    /// A name in a local domain, as written (the router folds case and
    /// resolves it to a user or another alias).
    Local(String),
    /// An address outside `local_domains`.
    Remote(Mailbox),
    /// A target we do not deliver to; the text says why.
    Refused(String),
}

/// One alias: the line it starts on (for messages) and its targets in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    pub line: usize,
    pub targets: Vec<AliasTarget>,
}

/// Alias names are looked up by folded local part, so they use the same safe
/// character set as user names, plus `+` (an exact `user+tag` alias wins over
/// the delimiter rule).
fn is_valid_alias_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-' | b'+'))
}

/// Reads an aliases file; a file that cannot be read is an error at line 0.
pub fn load_aliases(
    file: &Path,
    local_domains: &[String],
) -> Result<HashMap<String, Alias>, ConfigError> {
    let text = crate::config::read_text(file)?;
    parse_aliases(file, &text, local_domains)
}

/// Parses aliases text; `file` is only used in messages. `local_domains` are
/// lower-cased; `x@d` with `d` among them is a local target.
pub fn parse_aliases(
    file: &Path,
    text: &str,
    local_domains: &[String],
) -> Result<HashMap<String, Alias>, ConfigError> {
    let err = |line: usize, message: String| ConfigError {
        file: file.to_path_buf(),
        line,
        message,
    };
    // Join continuation lines first: an entry is (first line number, text).
    let mut entries: Vec<(usize, String)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if raw.starts_with([' ', '\t']) {
            match entries.last_mut() {
                Some((_, entry)) => {
                    entry.push(' ');
                    entry.push_str(trimmed);
                }
                None => return Err(err(i + 1, "continuation line without an alias".into())),
            }
        } else {
            entries.push((i + 1, trimmed.to_string()));
        }
    }

    let mut aliases: HashMap<String, Alias> = HashMap::new();
    for (line, entry) in entries {
        let Some((name, rest)) = entry.split_once(':') else {
            return Err(err(line, format!("missing ':' in alias line '{entry}'")));
        };
        let name = name.trim().to_lowercase();
        if name.is_empty() {
            return Err(err(line, "empty alias name".into()));
        }
        if !is_valid_alias_name(&name) {
            return Err(err(line, format!("invalid alias name '{name}'")));
        }
        if let Some(first) = aliases.get(&name) {
            let first = first.line;
            return Err(err(
                line,
                format!("duplicate alias '{name}' (first at line {first})"),
            ));
        }
        let mut targets = Vec::new();
        for t in rest.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let target = parse_target(t, local_domains)
                .ok_or_else(|| err(line, format!("invalid alias target '{t}'")))?;
            if let AliasTarget::Refused(why) = &target {
                log::warn!(
                    "{}:{line}: alias '{name}': target '{t}' refused: {why}",
                    file.display()
                );
            }
            targets.push(target);
        }
        if targets.is_empty() {
            return Err(err(line, format!("alias '{name}' has no targets")));
        }
        aliases.insert(name, Alias { line, targets });
    }
    Ok(aliases)
}

/// Classifies one trimmed, non-empty target; None if it is malformed.
fn parse_target(t: &str, local_domains: &[String]) -> Option<AliasTarget> {
    // /etc/aliases quotes program and file targets that contain spaces.
    let unquoted = match t.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(inner) => inner.trim(),
        None => t,
    };
    if unquoted.starts_with('|') {
        return Some(AliasTarget::Refused(
            "pipe to a command not supported".into(),
        ));
    }
    if unquoted.starts_with('/') {
        return Some(AliasTarget::Refused(
            "delivery to a file not supported".into(),
        ));
    }
    if unquoted
        .get(..9)
        .is_some_and(|p| p.eq_ignore_ascii_case(":include:"))
    {
        return Some(AliasTarget::Refused(":include: not supported".into()));
    }
    let t = t
        .strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .unwrap_or(t);
    if t.is_empty()
        || t.chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>,".contains(c))
    {
        return None;
    }
    match t.rsplit_once('@') {
        Some((local, domain)) => {
            if local.is_empty() || domain.is_empty() {
                return None;
            }
            let domain = domain.to_lowercase();
            if local_domains.contains(&domain) {
                Some(AliasTarget::Local(local.to_string()))
            } else {
                Some(AliasTarget::Remote(Mailbox {
                    local: local.to_string(),
                    domain,
                }))
            }
        }
        // sendmail reads any target with a `/` as a file.
        None if t.contains('/') => Some(AliasTarget::Refused(
            "delivery to a file not supported".into(),
        )),
        None => Some(AliasTarget::Local(t.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AliasTarget::{Local, Refused, Remote};

    fn parse(text: &str) -> Result<HashMap<String, Alias>, ConfigError> {
        parse_aliases(Path::new("aliases"), text, &["example.org".to_string()])
    }

    fn targets(text: &str, name: &str) -> Vec<AliasTarget> {
        let map = parse(text).expect(text);
        map.get(name).expect(name).targets.clone()
    }

    fn remote(local: &str, domain: &str) -> AliasTarget {
        Remote(Mailbox {
            local: local.into(),
            domain: domain.into(),
        })
    }

    #[test]
    fn entries_comments_continuations() {
        let text = "# comment\n\nPostmaster: root\nroot: alice, Bob@Example.ORG,\n  carol,\n\t# inside\n\tdave@Other.Example\nx:y\n";
        let map = parse(text).expect("valid");
        assert_eq!(map.len(), 3);
        assert_eq!(
            map["postmaster"],
            Alias {
                line: 3,
                targets: vec![Local("root".into())]
            }
        );
        assert_eq!(
            map["root"].targets,
            vec![
                Local("alice".into()),
                Local("Bob".into()),
                Local("carol".into()),
                remote("dave", "other.example"),
            ]
        );
        assert_eq!(map["root"].line, 4);
        assert_eq!(map["x"].targets, vec![Local("y".into())]);
    }

    #[test]
    fn refused_targets_are_kept() {
        let text = "a: |/usr/bin/prog, \"| prog arg\", /var/mail/x, :include:/etc/list, \":INCLUDE: /l\", dir/file, bob\n";
        let t = targets(text, "a");
        let pipe = Refused("pipe to a command not supported".into());
        let file = Refused("delivery to a file not supported".into());
        let inc = Refused(":include: not supported".into());
        assert_eq!(
            t,
            vec![
                pipe.clone(),
                pipe,
                file.clone(),
                inc.clone(),
                inc,
                file,
                Local("bob".into())
            ]
        );
    }

    #[test]
    fn address_targets() {
        let t = targets(
            "a: <bob@example.org>, Carol@EXAMPLE.org, x@y@Z.example\n",
            "a",
        );
        assert_eq!(
            t,
            [
                Local("bob".into()),
                Local("Carol".into()),
                remote("x@y", "z.example")
            ]
        );
        // A quoted local part with a space is not supported in this file format.
        assert!(parse("a: \"x y\"@z.example\n").is_err());
        assert_eq!(
            targets("a: u@[127.0.0.1]\n", "a"),
            vec![remote("u", "[127.0.0.1]")]
        );
    }

    #[test]
    fn errors_name_the_line() {
        for (text, line, msg) in [
            (
                "a: b\nno colon here\n",
                2,
                "missing ':' in alias line 'no colon here'",
            ),
            ("\n: b\n", 2, "empty alias name"),
            ("a: b\n  : c\n", 1, "invalid alias target 'b : c'"),
            ("  b, c\n", 1, "continuation line without an alias"),
            ("a b: c\n", 1, "invalid alias name 'a b'"),
            ("a/b: c\n", 1, "invalid alias name 'a/b'"),
            (
                "a: b\n# c\nA: c\n",
                3,
                "duplicate alias 'a' (first at line 1)",
            ),
            ("a:\n", 1, "alias 'a' has no targets"),
            ("a: , ,\n", 1, "alias 'a' has no targets"),
            ("a: b c\n", 1, "invalid alias target 'b c'"),
            ("a: b,\n c d\n", 1, "invalid alias target 'c d'"),
            (
                "a: @example.org\n",
                1,
                "invalid alias target '@example.org'",
            ),
            ("a: bob@\n", 1, "invalid alias target 'bob@'"),
            ("a: <>\n", 1, "invalid alias target '<>'"),
            ("a: b\0c\n", 1, "invalid alias target 'b\0c'"),
        ] {
            let e = parse(text).expect_err(text);
            assert_eq!((e.line, e.message.as_str()), (line, msg), "{text:?}");
        }
    }

    #[test]
    fn continuation_after_blank_line_still_continues() {
        // Blank lines are skipped; only a line starting at column 0 starts an entry.
        assert_eq!(
            targets("a: b,\n\n  c\n", "a"),
            vec![Local("b".into()), Local("c".into())]
        );
    }

    #[test]
    fn non_ascii_never_panics() {
        let t = targets("a: ééééééééé, é:include:x, ü@Bücher.Example\n", "a");
        assert_eq!(t[0], Local("ééééééééé".into()));
        assert_eq!(t[2], remote("ü", "bücher.example"));
        assert!(parse("ä: b\n").is_err());
    }
}

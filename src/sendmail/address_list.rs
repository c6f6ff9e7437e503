//! The addresses in an RFC 5322 address list (`To:`, `Cc:`, `Bcc:` values and
//! sendmail's recipient arguments): `Name <a@b>`, bare `a@b (comment)`,
//! quoted local parts, and groups (`team: a@b, c@d;`). Only the addr-specs
//! are wanted; display names and comments are dropped. Pure and total: any
//! text gives a list, and checking each address is the caller's business.

/// The addr-specs of `text`, in order, without angle brackets.
pub fn addresses(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    // The current element: its text outside angle brackets (a bare
    // addr-spec, or a display name), and its angle address if it had one.
    let mut bare = String::new();
    let mut angle: Option<String> = None;
    let mut chars = text.chars().peekable();
    let mut finish = |bare: &mut String, angle: &mut Option<String>| {
        let address = angle.take().unwrap_or_else(|| std::mem::take(bare));
        bare.clear();
        let address = strip_source_route(address.trim());
        if !address.is_empty() {
            found.push(address.to_string());
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                bare.push('"');
                quoted(&mut chars, &mut bare);
            }
            '(' => comment(&mut chars),
            '<' => {
                let mut inside = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '>' => break,
                        '"' => {
                            inside.push('"');
                            quoted(&mut chars, &mut inside);
                        }
                        '(' => comment(&mut chars),
                        c if c.is_whitespace() => {}
                        c => inside.push(c),
                    }
                }
                angle = Some(inside);
            }
            // A group's name ends: what came before was not an address.
            ':' if angle.is_none() => bare.clear(),
            ',' | ';' => finish(&mut bare, &mut angle),
            c if c.is_whitespace() => {}
            c => bare.push(c),
        }
    }
    finish(&mut bare, &mut angle);
    found
}

/// Copies a quoted string's content and its closing quote into `out` (the
/// opening one is already there), keeping backslash escapes.
fn quoted(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, out: &mut String) {
    while let Some(c) = chars.next() {
        out.push(c);
        match c {
            '\\' => {
                if let Some(escaped) = chars.next() {
                    out.push(escaped);
                }
            }
            '"' => return,
            _ => {}
        }
    }
}

/// Skips a comment, nested ones included (the opening parenthesis is read).
fn comment(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    let mut depth = 1;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return;
                }
            }
            _ => {}
        }
    }
}

/// `@a,@b:user@x` → `user@x` (an obsolete route, RFC 5322 4.4).
fn strip_source_route(address: &str) -> &str {
    if address.starts_with('@') {
        if let Some((_, rest)) = address.split_once(':') {
            return rest;
        }
    }
    address
}

#[cfg(test)]
mod tests {
    use super::addresses;

    #[test]
    fn the_usual_forms() {
        assert_eq!(addresses("alice@example.test"), ["alice@example.test"]);
        assert_eq!(
            addresses("Alice Example <alice@example.test>, bob@example.test (Bob)"),
            ["alice@example.test", "bob@example.test"]
        );
        assert_eq!(
            addresses("\"Doe, John\" <john@x.test>,\r\n\t<jane@x.test>"),
            ["john@x.test", "jane@x.test"]
        );
        assert_eq!(addresses("root"), ["root"]);
        assert_eq!(addresses("root, postmaster"), ["root", "postmaster"]);
    }

    #[test]
    fn quoted_local_parts_comments_and_routes() {
        assert_eq!(
            addresses("\"john doe\"@x.test, \"a\\\"b\"@x.test"),
            ["\"john doe\"@x.test", "\"a\\\"b\"@x.test"]
        );
        assert_eq!(
            addresses("a@x.test (a (nested) comment, with a comma)"),
            ["a@x.test"]
        );
        assert_eq!(addresses("Name <@relay.test:a@x.test>"), ["a@x.test"]);
        assert_eq!(addresses("<a@x.test (c)>"), ["a@x.test"]);
    }

    #[test]
    fn groups() {
        assert_eq!(addresses("undisclosed-recipients:;"), Vec::<String>::new());
        assert_eq!(
            addresses("team: a@x.test, B <b@x.test>; c@x.test"),
            ["a@x.test", "b@x.test", "c@x.test"]
        );
    }

    #[test]
    fn empty_and_broken_lists_do_not_panic() {
        assert!(addresses("").is_empty());
        assert!(addresses(" , ,, ").is_empty());
        assert_eq!(addresses("<unclosed@x.test"), ["unclosed@x.test"]);
        assert_eq!(addresses("\"unclosed"), ["\"unclosed"]);
        for text in ["(", "<", "\"\\", "a:(b", "é<ü>"] {
            let _ = addresses(text);
        }
    }
}

//! The addresses in an RFC 5322 address list (`To:`, `Cc:`, `Bcc:` values and
//! sendmail's recipient arguments): `Name <a@b>`, bare `a@b (comment)`,
//! quoted local parts, and groups (`team: a@b, c@d;`). Only the addr-specs
//! are wanted; display names and comments are dropped. The same scan adds
//! the local domain to unqualified addresses in place, as Postfix does to
//! locally submitted mail. Pure and total: any text gives a list, and
//! checking each address is the caller's business.

/// The addr-specs of `text`, in order, without angle brackets.
pub fn addresses(text: &str) -> Vec<String> {
    scan(text).into_iter().map(|f| f.address).collect()
}

/// `text` with `@domain` added to each address that has no domain (`root`,
/// `Ops <ops>`), everything else left as written; None if none needed it.
pub fn qualified(text: &str, domain: &str) -> Option<String> {
    let ends: Vec<usize> = scan(text)
        .into_iter()
        .filter(|f| !f.address.contains('@'))
        .map(|f| f.end)
        .collect();
    if ends.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(text.len() + ends.len() * (domain.len() + 1));
    let mut from = 0;
    for end in ends {
        out.push_str(&text[from..end]);
        out.push('@');
        out.push_str(domain);
        from = end;
    }
    out.push_str(&text[from..]);
    Some(out)
}

/// An address found, and the byte offset just after it in the text (where a
/// domain would go).
struct Found {
    address: String,
    end: usize,
}

type Chars<'a> = std::iter::Peekable<std::str::CharIndices<'a>>;

fn scan(text: &str) -> Vec<Found> {
    let mut found = Vec::new();
    // The current element: its text outside angle brackets (a bare
    // addr-spec, or a display name) and where that ends, and its angle
    // address if it had one, with where that ends.
    let mut bare = String::new();
    let mut bare_end = 0;
    let mut angle: Option<(String, usize)> = None;
    let mut chars = text.char_indices().peekable();
    let mut finish = |bare: &mut String, bare_end: usize, angle: &mut Option<(String, usize)>| {
        let (address, end) = angle
            .take()
            .unwrap_or_else(|| (std::mem::take(bare), bare_end));
        bare.clear();
        let address = strip_source_route(address.trim());
        if !address.is_empty() {
            found.push(Found {
                address: address.to_string(),
                end,
            });
        }
    };
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => {
                bare.push('"');
                bare_end = quoted(&mut chars, &mut bare, text.len());
            }
            '(' => comment(&mut chars),
            '<' => {
                let mut inside = String::new();
                let mut end = text.len();
                while let Some((at, c)) = chars.next() {
                    match c {
                        '>' => {
                            end = at;
                            break;
                        }
                        '"' => {
                            inside.push('"');
                            quoted(&mut chars, &mut inside, text.len());
                        }
                        '(' => comment(&mut chars),
                        c if c.is_whitespace() => {}
                        c => inside.push(c),
                    }
                }
                angle = Some((inside, end));
            }
            // A group's name ends: what came before was not an address.
            ':' if angle.is_none() => bare.clear(),
            ',' | ';' => finish(&mut bare, bare_end, &mut angle),
            c if c.is_whitespace() => {}
            c => {
                bare.push(c);
                bare_end = at + c.len_utf8();
            }
        }
    }
    finish(&mut bare, bare_end, &mut angle);
    found
}

/// Copies a quoted string's content and its closing quote into `out` (the
/// opening one is already there), keeping backslash escapes; returns the
/// offset after the closing quote.
fn quoted(chars: &mut Chars<'_>, out: &mut String, len: usize) -> usize {
    while let Some((at, c)) = chars.next() {
        out.push(c);
        match c {
            '\\' => {
                if let Some((_, escaped)) = chars.next() {
                    out.push(escaped);
                }
            }
            '"' => return at + 1,
            _ => {}
        }
    }
    len
}

/// Skips a comment, nested ones included (the opening parenthesis is read).
fn comment(chars: &mut Chars<'_>) {
    let mut depth = 1;
    while let Some((_, c)) = chars.next() {
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
    use super::{addresses, qualified};

    #[test]
    fn unqualified_addresses_get_the_domain_in_place() {
        let q = |t: &str| qualified(t, "host.test");
        assert_eq!(q("alice").as_deref(), Some("alice@host.test"));
        assert_eq!(
            q("Ops <ops>, b@x.test (Bee),\n root (the admin)").as_deref(),
            Some("Ops <ops@host.test>, b@x.test (Bee),\n root@host.test (the admin)")
        );
        assert_eq!(
            q("\"john doe\", team: a, c@x.test;").as_deref(),
            Some("\"john doe\"@host.test, team: a@host.test, c@x.test;")
        );
        assert_eq!(q("a@x.test, B <b@y.test>"), None);
        assert_eq!(q("undisclosed-recipients:;"), None);
        assert_eq!(q("Zoë <zoë>").as_deref(), Some("Zoë <zoë@host.test>"));
        assert_eq!(q("<unclosed").as_deref(), Some("<unclosed@host.test"));
    }

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

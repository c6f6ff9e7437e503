//! The header section of a message submitted with `sendmail`: collected line
//! by line (bounded), then written back with the fixes a mail admin expects
//! of a local submission: `Bcc:` removed, `Date:`, `From:` and
//! `Message-ID:` added when missing, and unqualified addresses in address
//! fields given the local domain. With `-t` the recipients are read from
//! `To:`, `Cc:` and `Bcc:` (or their `Resent-` forms when the message is being
//! resent). Pure: bytes in, bytes out.

use super::address_list::{addresses, qualified};

/// Longest header section taken, continuation lines included.
pub const MAX_HEADER_SECTION: usize = 1024 * 1024;

/// What a line of the message turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A header field line or a continuation: taken.
    Header,
    /// The empty line: the section ended and the line is taken.
    End,
    /// Not a header: the section ended before it, and the body starts with
    /// this line (a blank line is put in between).
    Body,
}

#[derive(Debug)]
pub struct TooLong;

#[derive(Debug, Default)]
pub struct HeaderSection {
    /// The lines taken so far, LF-terminated.
    raw: Vec<u8>,
    lines: usize,
}

/// What to add to the section when it lacks them.
pub struct Additions {
    pub date: String,
    pub from: String,
    pub message_id: String,
    /// The domain for unqualified addresses in address fields.
    pub domain: String,
}

/// The fields whose unqualified addresses get the domain (Bcc goes anyway).
const ADDRESS_FIELDS: &[&str] = &[
    "from",
    "sender",
    "reply-to",
    "to",
    "cc",
    "resent-from",
    "resent-sender",
    "resent-to",
    "resent-cc",
];

/// The section as it is written, and the recipients it names (with `-t`).
#[derive(Debug)]
pub struct Finished {
    pub bytes: Vec<u8>,
    pub recipients: Vec<String>,
}

impl HeaderSection {
    /// Takes the next line of the message (with its LF, if it has one).
    pub fn line(&mut self, line: &[u8]) -> Result<Line, TooLong> {
        let first = self.lines == 0;
        self.lines += 1;
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        if text.is_empty() {
            return Ok(Line::End);
        }
        // An mbox separator left on top by some mail programs is dropped.
        if first && text.starts_with(b"From ") {
            return Ok(Line::Header);
        }
        let continuation = !self.raw.is_empty() && matches!(text[0], b' ' | b'\t');
        if !continuation && field_name(text).is_none() {
            return Ok(Line::Body);
        }
        if self.raw.len() + text.len() + 1 > MAX_HEADER_SECTION {
            return Err(TooLong);
        }
        self.raw.extend_from_slice(text);
        self.raw.push(b'\n');
        Ok(Line::Header)
    }

    /// The section to write (ending with its blank line), and with `extract`
    /// the recipients of its address fields.
    pub fn finish(&self, extract: bool, add: &Additions) -> Finished {
        let fields = self.fields();
        let resent = fields.iter().any(|(name, _)| {
            ["resent-to", "resent-cc", "resent-bcc"]
                .iter()
                .any(|n| name.eq_ignore_ascii_case(n))
        });
        let sources: &[&str] = if resent {
            &["resent-to", "resent-cc", "resent-bcc"]
        } else {
            &["to", "cc", "bcc"]
        };
        let has = |wanted: &str| fields.iter().any(|(n, _)| n.eq_ignore_ascii_case(wanted));
        let mut recipients = Vec::new();
        let mut bytes = Vec::with_capacity(self.raw.len() + 200);
        for (name, field) in &fields {
            if extract && sources.iter().any(|s| name.eq_ignore_ascii_case(s)) {
                recipients.extend(addresses(&unfolded_value(field)));
            }
            let blind = name.eq_ignore_ascii_case("bcc") || name.eq_ignore_ascii_case("resent-bcc");
            if blind {
                continue;
            }
            match qualified_field(name, field, &add.domain) {
                Some(rewritten) => bytes.extend_from_slice(rewritten.as_bytes()),
                None => bytes.extend_from_slice(field),
            }
        }
        for (name, value) in [
            ("Date", &add.date),
            ("From", &add.from),
            ("Message-ID", &add.message_id),
        ] {
            if !has(name) {
                bytes.extend_from_slice(format!("{name}: {value}\n").as_bytes());
            }
        }
        bytes.push(b'\n');
        Finished { bytes, recipients }
    }

    /// Each field's name and its lines (continuations included).
    fn fields(&self) -> Vec<(String, &[u8])> {
        let mut fields: Vec<(String, &[u8])> = Vec::new();
        let mut start = 0;
        while start < self.raw.len() {
            let mut end = start;
            loop {
                end += self.raw[end..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .unwrap_or(0)
                    + 1;
                if end >= self.raw.len() || !matches!(self.raw[end], b' ' | b'\t') {
                    break;
                }
            }
            let field = &self.raw[start..end];
            let name = field_name(field).unwrap_or_default();
            fields.push((String::from_utf8_lossy(name).into_owned(), field));
            start = end;
        }
        fields
    }
}

/// The field name of a header line (RFC 5322 2.2: printable ASCII but `:`),
/// or None if the line is not a header field.
fn field_name(line: &[u8]) -> Option<&[u8]> {
    let colon = line.iter().position(|&b| b == b':')?;
    let name = &line[..colon];
    (!name.is_empty() && name.iter().all(|&b| (33..=126).contains(&b))).then_some(name)
}

/// An address field with `@domain` added to its unqualified addresses, as
/// Postfix does for local submissions (`To: alice` → `To: alice@domain`);
/// None if nothing changes.
fn qualified_field(name: &str, field: &[u8], domain: &str) -> Option<String> {
    if !ADDRESS_FIELDS.iter().any(|f| name.eq_ignore_ascii_case(f)) {
        return None;
    }
    let text = std::str::from_utf8(field).ok()?;
    let (head, value) = text.split_at(text.find(':')? + 1);
    Some(format!("{head}{}", qualified(value, domain)?))
}

/// A field's value with its folding undone.
fn unfolded_value(field: &[u8]) -> String {
    let colon = field.iter().position(|&b| b == b':').unwrap_or(0);
    let value: Vec<u8> = field[colon + 1..]
        .iter()
        .copied()
        .filter(|&b| b != b'\n' && b != b'\r')
        .collect();
    String::from_utf8_lossy(&value).into_owned()
}

/// The value of an added From header: `Name <address>`, with the name
/// quoted or RFC 2047-encoded when it needs to be.
pub fn from_value(full_name: Option<&str>, address: &str) -> String {
    let name = full_name.map(str::trim).unwrap_or_default();
    if name.is_empty() {
        return address.to_string();
    }
    let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~ ".contains(c);
    let phrase = if name.chars().all(atext) {
        name.to_string()
    } else if name.chars().all(|c| c.is_ascii() && !c.is_ascii_control()) {
        format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        let clean: String = name.chars().filter(|c| !c.is_control()).collect();
        format!(
            "=?UTF-8?B?{}?=",
            crate::auth::encode_base64(clean.as_bytes())
        )
    };
    format!("{phrase} <{address}>")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn additions() -> Additions {
        Additions {
            date: "Mon, 23 Nov 2026 10:00:00 +0000".into(),
            from: "Cron <root@host.test>".into(),
            message_id: "<1@host.test>".into(),
            domain: "host.test".into(),
        }
    }

    fn section(text: &str) -> (HeaderSection, Option<usize>) {
        let mut s = HeaderSection::default();
        let mut body_at = None;
        let mut at = 0;
        for line in text.split_inclusive('\n') {
            match s.line(line.as_bytes()).unwrap() {
                Line::Header => {}
                Line::End => {
                    body_at = Some(at + line.len());
                    break;
                }
                Line::Body => {
                    body_at = Some(at);
                    break;
                }
            }
            at += line.len();
        }
        (s, body_at)
    }

    #[test]
    fn missing_headers_are_added_and_present_ones_kept() {
        let (s, body) = section("Subject: hi\nTo: a@x.test\n\nbody\n");
        assert_eq!(body, Some(26));
        let f = s.finish(false, &additions());
        assert_eq!(
            String::from_utf8(f.bytes).unwrap(),
            "Subject: hi\nTo: a@x.test\nDate: Mon, 23 Nov 2026 10:00:00 +0000\n\
             From: Cron <root@host.test>\nMessage-ID: <1@host.test>\n\n"
        );
        assert!(f.recipients.is_empty(), "no -t, no recipients");

        let (s, _) = section("from: me@x.test\nDATE: today\nMessage-Id: <m@x>\n\n");
        let f = s.finish(false, &additions());
        assert_eq!(
            String::from_utf8(f.bytes).unwrap(),
            "from: me@x.test\nDATE: today\nMessage-Id: <m@x>\n\n"
        );
    }

    #[test]
    fn t_takes_to_cc_bcc_and_bcc_is_removed() {
        let text =
            "To: A <a@x.test>,\n  b@x.test\nCc: c@x.test\nBcc: hidden@x.test,\n\tother@y.test\n\
                    bcc: also@x.test\nSubject: s\n\n";
        let (s, _) = section(text);
        let f = s.finish(true, &additions());
        assert_eq!(
            f.recipients,
            [
                "a@x.test",
                "b@x.test",
                "c@x.test",
                "hidden@x.test",
                "other@y.test",
                "also@x.test"
            ]
        );
        let out = String::from_utf8(f.bytes).unwrap();
        assert!(!out.to_ascii_lowercase().contains("bcc"), "{out}");
        assert!(!out.contains("hidden") && !out.contains("other@y"), "{out}");
        assert!(out.starts_with("To: A <a@x.test>,\n  b@x.test\nCc: c@x.test\nSubject: s\n"));
    }

    #[test]
    fn unqualified_header_addresses_get_the_domain() {
        let (s, _) =
            section("To: alice,\n Ops <ops>\nCc: b@x.test\nSubject: root\nReply-To: admin\n\n");
        let out = String::from_utf8(s.finish(false, &additions()).bytes).unwrap();
        assert!(
            out.starts_with(
                "To: alice@host.test,\n Ops <ops@host.test>\nCc: b@x.test\nSubject: root\n\
                 Reply-To: admin@host.test\n"
            ),
            "{out}"
        );
    }

    #[test]
    fn resent_headers_win_when_present() {
        let (s, _) = section("To: old@x.test\nResent-To: new@x.test\nResent-Bcc: b@x.test\n\n");
        let f = s.finish(true, &additions());
        assert_eq!(f.recipients, ["new@x.test", "b@x.test"]);
        assert!(!String::from_utf8(f.bytes).unwrap().contains("b@x.test"));
    }

    #[test]
    fn a_body_without_headers_gets_a_separator() {
        let (s, body) = section("just some text\nmore\n");
        assert_eq!(body, Some(0));
        let f = s.finish(false, &additions());
        let out = String::from_utf8(f.bytes).unwrap();
        assert!(out.starts_with("Date: ") && out.ends_with(">\n\n"), "{out}");
        // A header block that runs into a non-header line ends there.
        let (_, body) = section("Subject: x\nnot a header\n");
        assert_eq!(body, Some(11));
        // An mbox "From " line on top is dropped.
        let (s, _) = section("From root Mon Nov 23 10:00:00 2026\nSubject: x\n\n");
        let out = String::from_utf8(s.finish(false, &additions()).bytes).unwrap();
        assert!(out.starts_with("Subject: x\n"), "{out}");
    }

    #[test]
    fn the_section_is_bounded() {
        let mut s = HeaderSection::default();
        let line = format!("X-Filler: {}\n", "a".repeat(1000));
        let mut refused = false;
        for _ in 0..2000 {
            if s.line(line.as_bytes()).is_err() {
                refused = true;
                break;
            }
        }
        assert!(refused);
    }

    #[test]
    fn from_values() {
        assert_eq!(from_value(None, "a@x.test"), "a@x.test");
        assert_eq!(
            from_value(Some("Cron Daemon"), "a@x.test"),
            "Cron Daemon <a@x.test>"
        );
        assert_eq!(
            from_value(Some("Doe, \"J\""), "a@x.test"),
            "\"Doe, \\\"J\\\"\" <a@x.test>"
        );
        assert_eq!(
            from_value(Some("Zoë"), "a@x.test"),
            "=?UTF-8?B?Wm/Dqw==?= <a@x.test>"
        );
    }
}

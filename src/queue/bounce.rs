//! Bounces: the RFC 3464 delivery status notification sent to the envelope
//! sender when recipients fail for good (a 5xx, or retries given up when the
//! queue lifetime ran out). Sans-IO: the caller passes the times and the
//! original's headers and gets the whole message back as LF-ended bytes, ready
//! to be spooled like any other message.
//!
//! The message is `multipart/report; report-type=delivery-status` (RFC 6522)
//! with three parts: a short text for people, the machine-readable
//! `message/delivery-status` (RFC 3464), and the original's headers.
//!
//! Everything that came from outside (addresses, the remote server's reply,
//! host names, the original headers) is made safe before it is written:
//! control characters and line breaks become spaces, long values are folded
//! at spaces and cut if still too long, so no line passes 998 characters and
//! no text can fake a header or a MIME boundary.
//!
//! Non-ASCII (RFC 6530 mail): recipients or replies in UTF-8 make the status
//! part `message/global-delivery-status` (RFC 6533) with `utf-8` address
//! types, in 8bit. Original headers that are plain ASCII with short lines go
//! in as they are (`text/rfc822-headers`, 7bit); any other headers are
//! base64-encoded, as `message/global-headers` (RFC 6533) when they hold
//! non-ASCII (invalid UTF-8 replaced by U+FFFD, since that type is UTF-8), as
//! `text/rfc822-headers` when ASCII with bare CRs or over-long lines. Base64
//! keeps the bounce of an ordinary ASCII sender 7-bit clean even when the
//! original was not.

use crate::util;

/// One recipient that failed for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failed<'a> {
    /// The recipient address (without angle brackets).
    pub rcpt: &'a str,
    /// The enhanced status code, e.g. `5.1.1`, or `4.4.7` when the queue
    /// lifetime ran out. Anything not shaped like one is written as `5.0.0`.
    pub status: &'a str,
    /// `type; text`, e.g. `smtp; 550 5.1.1 no such user`. Text without a
    /// type gets `X-picomta;`. Empty: no Diagnostic-Code field.
    pub diagnostic: &'a str,
    /// The host that gave the verdict, if one did.
    pub remote_mta: Option<&'a str>,
}

/// The Subject of every bounce.
pub const SUBJECT: &str = "Undelivered Mail Returned to Sender";

/// RFC 5322's hard limit on a line, without the line end.
const MAX_LINE: usize = 998;
/// Where header fields and text are folded when a space allows it.
const FOLD_AT: usize = 78;
/// Longest run without a space kept on one line; longer ones are cut into
/// pieces (only a malicious peer sends such words).
const MAX_WORD: usize = 900;
/// Caps on what is copied from outside, in bytes.
const MAX_DIAGNOSTIC: usize = 2000;
const MAX_ADDRESS: usize = 512;
const MAX_HOST: usize = 255;

/// Builds the bounce for `failed` (at least one) of the message `original_id`,
/// which arrived at `arrival` (Unix seconds), to be sent to `to` (the
/// original's envelope sender, never empty: the null sender is not bounced
/// to). `original_headers` is the original's header section (LF or CRLF
/// line ends, with or without the blank line ending it, already cut by the
/// caller to a bounded size).
///
/// The Message-ID is `<ID.HASH.bounce@hostname>`, HASH being a digest of the
/// failed recipients: a recipient bounces only once, so two bounces of one
/// message (say one domain now, another on expiry) never share an id, and a
/// bounce made again after a crash keeps its id.
pub fn delivery_status_notification(
    hostname: &str,
    original_id: &str,
    arrival: u64,
    now: u64,
    to: &str,
    failed: &[Failed],
    original_headers: &[u8],
) -> Vec<u8> {
    let host = clean(hostname, MAX_HOST);
    let id = token(original_id);
    let to = clean(to, MAX_ADDRESS);
    let rcpts: Vec<Rcpt> = failed.iter().map(Rcpt::from).collect();

    let notification = human_text(&host, &rcpts);
    let report = status_fields(&host, &id, arrival, now, &rcpts);
    let headers = HeadersPart::new(original_headers);
    let boundary = boundary(
        &id,
        now,
        &[notification.as_bytes(), &report.body, &headers.body],
    );

    let text_8bit = !notification.is_ascii();
    let any_8bit = text_8bit || report.global || !to.is_ascii();
    let mut out = Vec::with_capacity(2048 + original_headers.len() * 4 / 3);
    field(&mut out, "Date", &util::rfc5322_date(now));
    field(
        &mut out,
        "From",
        &format!("Mail Delivery System <MAILER-DAEMON@{host}>"),
    );
    field(&mut out, "To", &format!("<{to}>"));
    field(&mut out, "Subject", SUBJECT);
    field(
        &mut out,
        "Message-ID",
        &format!("<{id}.{:08x}.bounce@{host}>", rcpt_digest(&rcpts)),
    );
    field(&mut out, "Auto-Submitted", "auto-replied");
    field(&mut out, "MIME-Version", "1.0");
    field(
        &mut out,
        "Content-Type",
        &format!("multipart/report; report-type=delivery-status; boundary=\"{boundary}\""),
    );
    field(
        &mut out,
        "Content-Transfer-Encoding",
        if any_8bit { "8bit" } else { "7bit" },
    );
    out.extend_from_slice(b"\nThis is a MIME-encapsulated message.\n");

    part_start(&mut out, &boundary);
    field(&mut out, "Content-Description", "Notification");
    field(&mut out, "Content-Type", "text/plain; charset=utf-8");
    field(
        &mut out,
        "Content-Transfer-Encoding",
        if text_8bit { "8bit" } else { "7bit" },
    );
    out.push(b'\n');
    out.extend_from_slice(notification.as_bytes());

    part_start(&mut out, &boundary);
    field(&mut out, "Content-Description", "Delivery report");
    if report.global {
        field(&mut out, "Content-Type", "message/global-delivery-status");
        field(&mut out, "Content-Transfer-Encoding", "8bit");
    } else {
        field(&mut out, "Content-Type", "message/delivery-status");
        field(&mut out, "Content-Transfer-Encoding", "7bit");
    }
    out.push(b'\n');
    out.extend_from_slice(&report.body);

    part_start(&mut out, &boundary);
    field(
        &mut out,
        "Content-Description",
        "Undelivered Message Headers",
    );
    field(&mut out, "Content-Type", headers.content_type);
    field(&mut out, "Content-Transfer-Encoding", headers.encoding);
    out.push(b'\n');
    out.extend_from_slice(&headers.body);

    out.extend_from_slice(format!("\n--{boundary}--\n").as_bytes());
    out
}

/// One failed recipient, its values made safe.
struct Rcpt {
    addr: String,
    status: String,
    /// `type; text`, or empty.
    diagnostic: String,
    remote: Option<String>,
}

impl From<&Failed<'_>> for Rcpt {
    fn from(f: &Failed<'_>) -> Rcpt {
        Rcpt {
            addr: clean(f.rcpt, MAX_ADDRESS),
            status: if is_status(f.status) {
                f.status.to_string()
            } else {
                "5.0.0".to_string()
            },
            diagnostic: diagnostic(f.diagnostic),
            remote: f
                .remote_mta
                .map(|h| clean(h, MAX_HOST))
                .filter(|h| !h.is_empty()),
        }
    }
}

impl Rcpt {
    /// The diagnostic without its type, for people.
    fn reason(&self) -> &str {
        match self.diagnostic.split_once(';') {
            Some((_, text)) => text.trim_start(),
            None => "",
        }
    }

    fn is_ascii(&self) -> bool {
        self.addr.is_ascii()
            && self.diagnostic.is_ascii()
            && self.remote.as_deref().is_none_or(str::is_ascii)
    }
}

/// `class.subject.detail` with class 2, 4 or 5 and 1-3 digit numbers
/// (RFC 3463).
fn is_status(s: &str) -> bool {
    let mut parts = s.split('.');
    let class_ok = matches!(parts.next(), Some("2" | "4" | "5"));
    let rest: Vec<&str> = parts.collect();
    class_ok
        && rest.len() == 2
        && rest
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
}

/// A diagnostic as `type; text` on one line, or empty.
fn diagnostic(raw: &str) -> String {
    let text = clean(raw, MAX_DIAGNOSTIC);
    if text.is_empty() {
        return text;
    }
    if let Some((kind, rest)) = text.split_once(';') {
        let kind = kind.trim();
        if !kind.is_empty() && kind.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return format!("{kind}; {}", rest.trim_start());
        }
    }
    format!("X-picomta; {text}")
}

/// Text from outside on one line: control characters and any whitespace
/// become single spaces, the ends are trimmed, and more than `max` bytes are
/// cut (at a character boundary) and marked with `...`.
fn clean(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max + 3));
    let mut space = false;
    for c in s.chars() {
        if c.is_control() || c.is_whitespace() {
            space = true;
            continue;
        }
        if space && !out.is_empty() {
            out.push(' ');
        }
        space = false;
        if out.len() + c.len_utf8() > max {
            out.push_str("...");
            break;
        }
        out.push(c);
    }
    out
}

/// The queue id as it may appear in a Message-ID and a boundary.
fn token(id: &str) -> String {
    let t: String = id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(40)
        .collect();
    if t.is_empty() {
        "unknown".to_string()
    } else {
        t
    }
}

/// FNV-1a over the recipients, in order.
fn rcpt_digest(rcpts: &[Rcpt]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for r in rcpts {
        for b in r.addr.bytes().chain(std::iter::once(0)) {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
    }
    h
}

/// A boundary found in none of the parts (RFC 2046 5.1.1: at most 70
/// characters; ours are letters, digits and `-`, quoted anyway).
fn boundary(id: &str, now: u64, parts: &[&[u8]]) -> String {
    let mut n = 0u32;
    loop {
        let b = format!("=_picomta-{id}-{now:x}-{n}");
        if !parts.iter().any(|p| contains(p, b.as_bytes())) {
            return b;
        }
        n += 1;
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn part_start(out: &mut Vec<u8>, boundary: &str) {
    out.extend_from_slice(format!("\n--{boundary}\n").as_bytes());
}

/// Writes `Name: value` folded at spaces before column 78 where possible;
/// no line passes `MAX_LINE`. `value` is one line (already cleaned).
fn field(out: &mut Vec<u8>, name: &str, value: &str) {
    let mut line = format!("{name}:");
    let mut has_word = false;
    for word in value.split(' ').filter(|w| !w.is_empty()) {
        for piece in pieces(word) {
            if has_word && line.len() + 1 + piece.len() > FOLD_AT {
                out.extend_from_slice(line.as_bytes());
                out.push(b'\n');
                line.clear();
            }
            // The space after the colon, between words, or (after a fold)
            // starting the continuation line.
            line.push(' ');
            line.push_str(piece);
            has_word = true;
        }
    }
    out.extend_from_slice(line.as_bytes());
    out.push(b'\n');
}

/// `word` cut into runs of at most `MAX_WORD` bytes, at character boundaries.
fn pieces(word: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = word;
    while rest.len() > MAX_WORD {
        let mut cut = MAX_WORD;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        out.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    out.push(rest);
    out
}

/// Appends `text` (one line) wrapped at `FOLD_AT`, every line starting with
/// `indent`.
fn wrap(out: &mut String, indent: &str, text: &str) {
    let mut line = indent.to_string();
    let mut has_word = false;
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        for piece in pieces(word) {
            if has_word && line.len() + 1 + piece.len() > FOLD_AT {
                out.push_str(&line);
                out.push('\n');
                line = indent.to_string();
                has_word = false;
            }
            if has_word {
                line.push(' ');
            }
            line.push_str(piece);
            has_word = true;
        }
    }
    out.push_str(&line);
    out.push('\n');
}

/// Part 1: for people. Names every recipient and why it failed.
fn human_text(host: &str, rcpts: &[Rcpt]) -> String {
    let mut t = String::new();
    wrap(&mut t, "", &format!("This is the mail system at {host}."));
    t.push('\n');
    wrap(
        &mut t,
        "",
        "Your message could not be delivered to the recipients listed below. \
         A delivery report and the headers of your message are attached.",
    );
    if rcpts.iter().any(|r| r.status.starts_with('4')) {
        t.push('\n');
        wrap(
            &mut t,
            "",
            "Where the failure was temporary, delivery was retried until the \
             message had waited in the queue as long as this system allows; \
             then it was given up.",
        );
    }
    for r in rcpts {
        t.push('\n');
        wrap(&mut t, "", &format!("<{}>:", r.addr));
        let mut why = String::new();
        if r.status == "4.4.7" && !r.reason().contains("expired") {
            why.push_str("delivery time expired; last error: ");
        }
        if let Some(remote) = &r.remote {
            why.push_str(&format!("host {remote} said: "));
        }
        match r.reason() {
            "" => why.push_str(&format!("failed with status {}", r.status)),
            reason => why.push_str(reason),
        }
        wrap(&mut t, "    ", &why);
    }
    t
}

/// Part 2: the machine-readable report.
struct Report {
    body: Vec<u8>,
    /// UTF-8 inside: `message/global-delivery-status`.
    global: bool,
}

fn status_fields(host: &str, id: &str, arrival: u64, now: u64, rcpts: &[Rcpt]) -> Report {
    let global = !host.is_ascii() || rcpts.iter().any(|r| !r.is_ascii());
    let mut b = Vec::new();
    field(&mut b, "Reporting-MTA", &format!("dns; {host}"));
    field(&mut b, "X-Picomta-Queue-ID", id);
    field(&mut b, "Arrival-Date", &util::rfc5322_date(arrival));
    for r in rcpts {
        b.push(b'\n');
        let kind = if r.addr.is_ascii() { "rfc822" } else { "utf-8" };
        field(&mut b, "Final-Recipient", &format!("{kind}; {}", r.addr));
        field(&mut b, "Action", "failed");
        field(&mut b, "Status", &r.status);
        if let Some(remote) = &r.remote {
            field(&mut b, "Remote-MTA", &format!("dns; {remote}"));
        }
        if !r.diagnostic.is_empty() {
            field(&mut b, "Diagnostic-Code", &r.diagnostic);
        }
        field(&mut b, "Last-Attempt-Date", &util::rfc5322_date(now));
    }
    Report { body: b, global }
}

/// Part 3: the original's headers, and how they are labelled.
struct HeadersPart {
    content_type: &'static str,
    encoding: &'static str,
    body: Vec<u8>,
}

impl HeadersPart {
    fn new(raw: &[u8]) -> HeadersPart {
        // LF line ends, only the header section, and a final LF even if the
        // caller's cut fell inside a line.
        let mut h = Vec::with_capacity(raw.len() + 1);
        let mut i = 0;
        while i < raw.len() {
            if raw[i] == b'\r' && raw.get(i + 1) == Some(&b'\n') {
                i += 1;
                continue;
            }
            h.push(raw[i]);
            i += 1;
        }
        // The header section ends at the first empty line.
        if h.starts_with(b"\n") {
            h.clear();
        } else if let Some(end) = h.windows(2).position(|w| w == b"\n\n") {
            h.truncate(end);
        }
        while h.ends_with(b"\n") {
            h.pop();
        }
        if !h.is_empty() {
            h.push(b'\n');
        }
        let ascii = h.is_ascii();
        let plain = ascii
            && !h.iter().any(|&b| b == 0 || b == b'\r')
            && h.split(|&b| b == b'\n').all(|l| l.len() <= MAX_LINE);
        if plain {
            return HeadersPart {
                content_type: "text/rfc822-headers",
                encoding: "7bit",
                body: h,
            };
        }
        let (content_type, bytes) = if ascii {
            ("text/rfc822-headers", h)
        } else {
            (
                "message/global-headers",
                String::from_utf8_lossy(&h).into_owned().into_bytes(),
            )
        };
        HeadersPart {
            content_type,
            encoding: "base64",
            body: base64_lines(&bytes),
        }
    }
}

/// Base64 (RFC 2045) in lines of 76 characters, each ended by LF.
fn base64_lines(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() * 4 / 3 + bytes.len() / 57 + 4);
    // 57 input bytes make one 76-character line.
    for line in bytes.chunks(57) {
        out.extend_from_slice(crate::auth::encode_base64(line).as_bytes());
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
#[path = "bounce_tests.rs"]
mod tests;

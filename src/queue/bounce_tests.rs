//! Bounce tests: every DSN built here is read back with `mailparse`, an
//! independent MIME parser, and checked part by part and field by field.

use super::*;
use mailparse::{parse_headers, parse_mail, MailHeaderMap, ParsedMail};

const HOST: &str = "mx.example.org";
const ID: &str = "0001A2B3C4D5E00";
const ARRIVAL: u64 = 1_795_438_522;
const NOW: u64 = ARRIVAL + 3600;
const SENDER: &str = "alice@sender.example";
const HEADERS: &[u8] = b"Received: from client.example by mx.example.org\n\
\twith ESMTP id 0001A2B3C4D5E00\n\
From: Alice <alice@sender.example>\n\
To: bob@remote.example\n\
Subject: lunch?\n\
Message-ID: <m1@sender.example>\n\n";

fn user_unknown() -> Failed<'static> {
    Failed {
        rcpt: "bob@remote.example",
        status: "5.1.1",
        diagnostic: "smtp; 550 5.1.1 <bob@remote.example>: no such user",
        remote_mta: Some("mx1.remote.example"),
    }
}

fn build(failed: &[Failed], headers: &[u8]) -> Vec<u8> {
    let dsn = delivery_status_notification(HOST, ID, ARRIVAL, NOW, SENDER, failed, headers);
    check_lines(&dsn);
    dsn
}

/// LF line ends only, none over 998 characters, ends with LF.
fn check_lines(dsn: &[u8]) {
    assert!(!dsn.contains(&b'\r'), "CR in the bounce");
    assert!(dsn.ends_with(b"\n"));
    for line in dsn.split(|&b| b == b'\n') {
        assert!(
            line.len() <= 998,
            "line of {} bytes: {:?}",
            line.len(),
            String::from_utf8_lossy(&line[..80])
        );
    }
}

/// A part's body as sent: mailparse keeps the line end that belongs to the
/// boundary delimiter (RFC 2046 5.1.1); it is taken off here.
fn body(part: &ParsedMail) -> Vec<u8> {
    let mut b = part.get_body_raw().expect("part body");
    assert_eq!(b.pop(), Some(b'\n'), "delimiter line end");
    b
}

/// The text part with runs of whitespace made single spaces (it is wrapped).
fn prose(part: &ParsedMail) -> String {
    let b = body(part);
    let t = String::from_utf8(b).expect("text is UTF-8");
    t.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn header(m: &ParsedMail, name: &str) -> String {
    m.headers
        .get_first_value(name)
        .unwrap_or_else(|| panic!("no {name} header"))
}

/// The three parts, after checking the top level and their content types.
fn parts<'a>(m: &'a ParsedMail<'a>, status_type: &str, headers_type: &str) -> &'a [ParsedMail<'a>] {
    assert_eq!(m.ctype.mimetype, "multipart/report");
    assert_eq!(
        m.ctype.params.get("report-type").map(String::as_str),
        Some("delivery-status")
    );
    assert_eq!(m.subparts.len(), 3, "parts of the report");
    assert_eq!(m.subparts[0].ctype.mimetype, "text/plain");
    assert_eq!(m.subparts[1].ctype.mimetype, status_type);
    assert_eq!(m.subparts[2].ctype.mimetype, headers_type);
    &m.subparts
}

/// The groups of fields of a delivery-status body: the per-message group
/// first, then one per recipient. Each as (name, unfolded value).
fn status_groups(part: &ParsedMail) -> Vec<Vec<(String, String)>> {
    let body = part.get_body_raw().expect("status body");
    let text = String::from_utf8(body).expect("status is UTF-8");
    let mut groups = Vec::new();
    for block in text.split("\n\n") {
        if block.trim().is_empty() {
            continue;
        }
        let bytes = format!("{block}\n");
        let (hs, used) = parse_headers(bytes.as_bytes()).expect("status fields");
        assert_eq!(used, block.len() + 1, "unparsed text in group {block:?}");
        groups.push(
            hs.iter()
                .map(|h| (h.get_key(), h.get_value()))
                .collect::<Vec<_>>(),
        );
    }
    groups
}

fn get<'a>(group: &'a [(String, String)], name: &str) -> Option<&'a str> {
    group
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn must<'a>(group: &'a [(String, String)], name: &str) -> &'a str {
    get(group, name).unwrap_or_else(|| panic!("no {name} in {group:?}"))
}

#[test]
fn one_recipient_every_field() {
    let dsn = build(&[user_unknown()], HEADERS);
    let m = parse_mail(&dsn).expect("parse the bounce");

    assert_eq!(
        header(&m, "From"),
        "Mail Delivery System <MAILER-DAEMON@mx.example.org>"
    );
    assert_eq!(header(&m, "To"), "<alice@sender.example>");
    assert_eq!(header(&m, "Subject"), "Undelivered Mail Returned to Sender");
    assert_eq!(header(&m, "Date"), "Mon, 23 Nov 2026 13:55:22 +0000");
    assert_eq!(header(&m, "Auto-Submitted"), "auto-replied");
    assert_eq!(header(&m, "MIME-Version"), "1.0");
    let mid = header(&m, "Message-ID");
    assert!(
        mid.starts_with("<0001A2B3C4D5E00.") && mid.ends_with(".bounce@mx.example.org>"),
        "{mid}"
    );
    assert_eq!(header(&m, "Content-Transfer-Encoding"), "7bit");

    let p = parts(&m, "message/delivery-status", "text/rfc822-headers");

    let text = prose(&p[0]);
    assert!(text.contains("mail system at mx.example.org"), "{text}");
    assert!(text.contains("<bob@remote.example>:"), "{text}");
    assert!(
        text.contains("host mx1.remote.example said: 550 5.1.1 <bob@remote.example>: no such user"),
        "{text}"
    );

    let groups = status_groups(&p[1]);
    assert_eq!(groups.len(), 2, "{groups:?}");
    assert_eq!(must(&groups[0], "Reporting-MTA"), "dns; mx.example.org");
    assert_eq!(
        must(&groups[0], "Arrival-Date"),
        "Mon, 23 Nov 2026 12:55:22 +0000"
    );
    assert_eq!(must(&groups[0], "X-Picomta-Queue-ID"), ID);
    let r = &groups[1];
    assert_eq!(must(r, "Final-Recipient"), "rfc822; bob@remote.example");
    assert_eq!(must(r, "Action"), "failed");
    assert_eq!(must(r, "Status"), "5.1.1");
    assert_eq!(must(r, "Remote-MTA"), "dns; mx1.remote.example");
    assert_eq!(
        must(r, "Diagnostic-Code"),
        "smtp; 550 5.1.1 <bob@remote.example>: no such user"
    );
    assert_eq!(
        must(r, "Last-Attempt-Date"),
        "Mon, 23 Nov 2026 13:55:22 +0000"
    );

    // The original headers, as they were (without the blank line).
    let orig = body(&p[2]);
    assert_eq!(orig, &HEADERS[..HEADERS.len() - 1]);
    let (hs, _) = parse_headers(&orig).expect("original headers parse");
    assert_eq!(hs.get_first_value("Subject").as_deref(), Some("lunch?"));
    assert_eq!(
        hs.get_first_value("Message-ID").as_deref(),
        Some("<m1@sender.example>")
    );
    let names: Vec<String> = hs.iter().map(|h| h.get_key()).collect();
    assert_eq!(names, ["Received", "From", "To", "Subject", "Message-ID"]);
}

#[test]
fn expiry_bounce_says_4_4_7_and_failed() {
    let f = Failed {
        rcpt: "carol@slow.example",
        status: "4.4.7",
        diagnostic: "smtp; 451 4.3.0 try again later",
        remote_mta: Some("mx.slow.example"),
    };
    let dsn = build(&[f], HEADERS);
    let m = parse_mail(&dsn).expect("parse");
    let p = parts(&m, "message/delivery-status", "text/rfc822-headers");
    let groups = status_groups(&p[1]);
    assert_eq!(must(&groups[1], "Status"), "4.4.7");
    assert_eq!(must(&groups[1], "Action"), "failed");
    assert_eq!(
        must(&groups[1], "Diagnostic-Code"),
        "smtp; 451 4.3.0 try again later"
    );
    let text = prose(&p[0]);
    assert!(text.contains("<carol@slow.example>:"), "{text}");
    assert!(text.contains("451 4.3.0 try again later"), "{text}");
    assert!(
        text.contains("delivery time expired; last error: host mx.slow.example said: 451"),
        "{text}"
    );
    assert!(text.contains("retried"), "{text}");

    // With no remote host (no MX ever answered): no Remote-MTA, the reason stays.
    let f = Failed {
        rcpt: "carol@slow.example",
        status: "4.4.7",
        diagnostic: "X-picomta; delivery time expired: lookup of slow.example timed out",
        remote_mta: None,
    };
    let dsn = build(&[f], HEADERS);
    let m = parse_mail(&dsn).expect("parse");
    let p = parts(&m, "message/delivery-status", "text/rfc822-headers");
    let groups = status_groups(&p[1]);
    assert_eq!(get(&groups[1], "Remote-MTA"), None);
    assert_eq!(
        must(&groups[1], "Diagnostic-Code"),
        "X-picomta; delivery time expired: lookup of slow.example timed out"
    );
    let text = prose(&p[0]);
    assert!(
        text.contains("delivery time expired: lookup of slow.example timed out"),
        "{text}"
    );
    assert!(!text.contains("last error"), "said twice: {text}");
}

#[test]
fn several_recipients_each_in_order() {
    let failed = [
        user_unknown(),
        Failed {
            rcpt: "dan@remote.example",
            status: "5.2.2",
            diagnostic: "smtp; 552 5.2.2 mailbox full",
            remote_mta: Some("mx2.remote.example"),
        },
        Failed {
            rcpt: "eve@gone.example",
            status: "5.1.2",
            diagnostic: "X-picomta; domain gone.example not found",
            remote_mta: None,
        },
    ];
    let dsn = build(&failed, HEADERS);
    let m = parse_mail(&dsn).expect("parse");
    let p = parts(&m, "message/delivery-status", "text/rfc822-headers");
    let groups = status_groups(&p[1]);
    assert_eq!(groups.len(), 4, "{groups:?}");
    let want = [
        (
            "rfc822; bob@remote.example",
            "5.1.1",
            Some("dns; mx1.remote.example"),
        ),
        (
            "rfc822; dan@remote.example",
            "5.2.2",
            Some("dns; mx2.remote.example"),
        ),
        ("rfc822; eve@gone.example", "5.1.2", None),
    ];
    for (g, (rcpt, status, remote)) in groups[1..].iter().zip(want) {
        assert_eq!(must(g, "Final-Recipient"), rcpt);
        assert_eq!(must(g, "Action"), "failed");
        assert_eq!(must(g, "Status"), status);
        assert_eq!(get(g, "Remote-MTA"), remote);
        assert!(must(g, "Diagnostic-Code").contains("; "));
    }
    assert_eq!(get(&groups[1], "Reporting-MTA"), None);
    let text = prose(&p[0]);
    for (who, why) in [
        ("<bob@remote.example>:", "no such user"),
        ("<dan@remote.example>:", "552 5.2.2 mailbox full"),
        ("<eve@gone.example>:", "domain gone.example not found"),
    ] {
        assert!(text.contains(who), "{who} missing: {text}");
        assert!(text.contains(why), "{why} missing: {text}");
    }
    // Ordered as given.
    let pos = |s: &str| text.find(s).expect("in text");
    assert!(pos("<bob@") < pos("<dan@") && pos("<dan@") < pos("<eve@"));
}

#[test]
fn line_breaks_in_a_diagnostic_cannot_forge_structure() {
    let hostile = "smtp; 550 5.1.1 no\r\nsuch user\r\n\r\nFinal-Recipient: rfc822; x@y\n\
                   --=_picomta-0001A2B3C4D5E00-0\r\nX-Injected: yes\r\n.\r\n";
    let failed = [
        Failed {
            rcpt: "bob@remote.example\r\nX-Evil: 1",
            status: "5.1.1",
            diagnostic: hostile,
            remote_mta: Some("mx1.remote.example\nX-Evil: 2"),
        },
        Failed {
            rcpt: "dan@remote.example",
            status: "5.1.1",
            diagnostic: "smtp; 550\t5.1.1\x00 no\x0bsuch user",
            remote_mta: None,
        },
    ];
    let dsn = build(&failed, HEADERS);
    let m = parse_mail(&dsn).expect("parse");
    let p = parts(&m, "message/delivery-status", "text/rfc822-headers");
    let groups = status_groups(&p[1]);
    assert_eq!(groups.len(), 3, "{groups:?}");
    let d = must(&groups[1], "Diagnostic-Code");
    assert!(d.starts_with("smtp; 550 5.1.1 no such user Final-Recipient: rfc822; x@y --"));
    assert!(d.ends_with("X-Injected: yes ."), "{d}");
    assert_eq!(
        must(&groups[1], "Final-Recipient"),
        "rfc822; bob@remote.example X-Evil: 1"
    );
    assert_eq!(
        must(&groups[1], "Remote-MTA"),
        "dns; mx1.remote.example X-Evil: 2"
    );
    assert_eq!(
        must(&groups[2], "Diagnostic-Code"),
        "smtp; 550 5.1.1 no such user"
    );
    for g in &groups {
        assert!(get(g, "X-Injected").is_none() && get(g, "X-Evil").is_none());
    }
    assert!(m.headers.get_first_value("X-Evil").is_none());
    // Only the real boundary's delimiter lines exist.
    let b = m.ctype.params.get("boundary").expect("boundary").clone();
    let delimiters = dsn
        .split(|&c| c == b'\n')
        .filter(|l| l.starts_with(b"--"))
        .count();
    assert_eq!(delimiters, 4, "3 part starts and the end");
    assert!(!String::from_utf8_lossy(&dsn).contains("\n.\n"));
    assert_ne!(b, "=_picomta-0001A2B3C4D5E00-0");
}

#[test]
fn long_diagnostics_are_folded_or_cut() {
    let words = format!("smtp; 550 5.7.1 {}", "blocked because reasons ".repeat(300));
    let blob = format!("smtp; 550 {}", "x".repeat(5000));
    let failed = [
        Failed {
            rcpt: "bob@remote.example",
            status: "5.7.1",
            diagnostic: &words,
            remote_mta: None,
        },
        Failed {
            rcpt: "dan@remote.example",
            status: "5.7.1",
            diagnostic: &blob,
            remote_mta: None,
        },
    ];
    let dsn = build(&failed, HEADERS);
    let m = parse_mail(&dsn).expect("parse");
    let p = parts(&m, "message/delivery-status", "text/rfc822-headers");
    let groups = status_groups(&p[1]);
    let d1 = must(&groups[1], "Diagnostic-Code");
    assert!(d1.starts_with("smtp; 550 5.7.1 blocked because reasons blocked"));
    assert!(d1.ends_with("..."), "cut and marked");
    assert!(d1.len() <= MAX_DIAGNOSTIC + 10, "{}", d1.len());
    let d2 = must(&groups[2], "Diagnostic-Code");
    assert!(d2.starts_with("smtp; 550 xxxx"));
    assert!(d2.ends_with("x..."));
    // Folded: the status part has many short lines.
    let raw = p[1].get_body_raw().expect("raw");
    assert!(raw
        .split(|&b| b == b'\n')
        .filter(|l| l.starts_with(b" blocked") || l.starts_with(b" because"))
        .all(|l| l.len() <= 78));
}

#[test]
fn boundary_avoids_the_original_headers() {
    let b0 = format!("=_picomta-{ID}-{NOW:x}-0");
    let b1 = format!("=_picomta-{ID}-{NOW:x}-1");
    let headers =
        format!("Subject: tricky\nX-Note: {b0}\n--{b1}\nContent-Type: text/plain\n\nbody?\n");
    let dsn = build(&[user_unknown()], headers.as_bytes());
    let m = parse_mail(&dsn).expect("parse");
    let b = m.ctype.params.get("boundary").expect("boundary");
    assert_eq!(b, &format!("=_picomta-{ID}-{NOW:x}-2"));
    let p = parts(&m, "message/delivery-status", "text/rfc822-headers");
    let orig = body(&p[2]);
    // Only the header section (up to the empty line) is included.
    assert_eq!(
        orig,
        (headers.split("\n\n").next().unwrap().to_string() + "\n").into_bytes()
    );
    // Without a collision the first candidate is used.
    let dsn = build(&[user_unknown()], HEADERS);
    let m = parse_mail(&dsn).expect("parse");
    assert_eq!(m.ctype.params.get("boundary"), Some(&b0));
}

#[test]
fn non_ascii_headers_go_as_global_headers_in_base64() {
    let headers = "From: Jörg <jörg@bücher.example>\r\nSubject: Grüße\r\n\r\n";
    let dsn = build(&[user_unknown()], headers.as_bytes());
    assert!(dsn.is_ascii(), "the bounce stays 7-bit");
    let m = parse_mail(&dsn).expect("parse");
    let p = parts(&m, "message/delivery-status", "message/global-headers");
    assert_eq!(header(&p[2], "Content-Transfer-Encoding"), "base64");
    let orig = p[2].get_body_raw().expect("decoded headers");
    assert_eq!(
        orig,
        "From: Jörg <jörg@bücher.example>\nSubject: Grüße\n".as_bytes()
    );
    let (hs, _) = parse_headers(&orig).expect("parse");
    assert_eq!(hs.get_first_value("Subject").as_deref(), Some("Grüße"));

    // Not even UTF-8: still message/global-headers, bad bytes replaced.
    let dsn = build(&[user_unknown()], b"Subject: caf\xe9\n");
    let m = parse_mail(&dsn).expect("parse");
    let p = parts(&m, "message/delivery-status", "message/global-headers");
    let orig = p[2].get_body_raw().expect("decoded");
    assert_eq!(orig, "Subject: caf\u{fffd}\n".as_bytes());
}

#[test]
fn odd_ascii_headers_are_base64_rfc822_headers() {
    let long = format!("Subject: {}\nX-Cr: a\rb\n", "y".repeat(1500));
    let dsn = build(&[user_unknown()], long.as_bytes());
    let m = parse_mail(&dsn).expect("parse");
    let p = parts(&m, "message/delivery-status", "text/rfc822-headers");
    assert_eq!(header(&p[2], "Content-Transfer-Encoding"), "base64");
    assert_eq!(p[2].get_body_raw().expect("decoded"), long.as_bytes());

    // Headers cut by the caller inside a line still end with LF; none at all is fine.
    let dsn = build(&[user_unknown()], b"Subject: cut her");
    let m = parse_mail(&dsn).expect("parse");
    let p = parts(&m, "message/delivery-status", "text/rfc822-headers");
    assert_eq!(body(&p[2]), b"Subject: cut her\n");
    let dsn = build(&[user_unknown()], b"");
    let m = parse_mail(&dsn).expect("parse");
    parts(&m, "message/delivery-status", "text/rfc822-headers");
}

#[test]
fn utf8_recipient_makes_a_global_delivery_status() {
    let f = Failed {
        rcpt: "jörg@bücher.example",
        status: "5.1.1",
        diagnostic: "smtp; 550 5.1.1 unbekannt: jörg",
        remote_mta: Some("mx.bücher.example"),
    };
    let dsn = build(&[f, user_unknown()], HEADERS);
    let m = parse_mail(&dsn).expect("parse");
    assert_eq!(header(&m, "Content-Transfer-Encoding"), "8bit");
    let p = parts(&m, "message/global-delivery-status", "text/rfc822-headers");
    let groups = status_groups(&p[1]);
    assert_eq!(
        must(&groups[1], "Final-Recipient"),
        "utf-8; jörg@bücher.example"
    );
    assert_eq!(
        must(&groups[1], "Diagnostic-Code"),
        "smtp; 550 5.1.1 unbekannt: jörg"
    );
    assert_eq!(
        must(&groups[2], "Final-Recipient"),
        "rfc822; bob@remote.example"
    );
    let text = prose(&p[0]);
    assert!(text.contains("<jörg@bücher.example>:"), "{text}");
    assert_eq!(header(&p[0], "Content-Transfer-Encoding"), "8bit");
}

#[test]
fn bad_status_and_untyped_diagnostic_are_mended() {
    for bad in [
        "", "550", "5.1", "6.1.1", "5.1.1.1", "5.1.1000", "5.x.1", "5.1.1 ",
    ] {
        let f = Failed {
            rcpt: "bob@remote.example",
            status: bad,
            diagnostic: "no such user",
            remote_mta: None,
        };
        let dsn = build(&[f], HEADERS);
        let m = parse_mail(&dsn).expect("parse");
        let p = parts(&m, "message/delivery-status", "text/rfc822-headers");
        let groups = status_groups(&p[1]);
        assert_eq!(must(&groups[1], "Status"), "5.0.0", "for {bad:?}");
        assert_eq!(
            must(&groups[1], "Diagnostic-Code"),
            "X-picomta; no such user"
        );
    }
    for good in ["2.0.0", "4.4.7", "5.7.26", "5.100.999"] {
        assert!(is_status(good), "{good}");
    }
    // An empty diagnostic leaves the field out; the text still says something.
    let f = Failed {
        rcpt: "bob@remote.example",
        status: "5.1.1",
        diagnostic: " \n",
        remote_mta: None,
    };
    let dsn = build(&[f], HEADERS);
    let m = parse_mail(&dsn).expect("parse");
    let p = parts(&m, "message/delivery-status", "text/rfc822-headers");
    assert_eq!(get(&status_groups(&p[1])[1], "Diagnostic-Code"), None);
    assert!(prose(&p[0]).contains("failed with status 5.1.1"));
}

#[test]
fn message_id_is_stable_per_recipient_set() {
    let id = |failed: &[Failed]| {
        let dsn = build(failed, HEADERS);
        header(&parse_mail(&dsn).expect("parse"), "Message-ID")
    };
    let a = user_unknown();
    let b = Failed {
        rcpt: "dan@remote.example",
        ..user_unknown()
    };
    assert_eq!(id(&[a]), id(&[a]));
    assert_ne!(id(&[a]), id(&[b]));
    assert_ne!(id(&[a]), id(&[a, b]));
    // A hostile queue id cannot break the Message-ID or the boundary.
    let dsn = delivery_status_notification(HOST, "<a b>\n@", ARRIVAL, NOW, SENDER, &[a], HEADERS);
    let m = parse_mail(&dsn).expect("parse");
    assert!(header(&m, "Message-ID").starts_with("<ab."));
}

#[test]
fn folding_keeps_every_line_short() {
    let mut out = Vec::new();
    let value = format!("a {} b {}", "w".repeat(2000), "v ".repeat(100));
    field(&mut out, "Diagnostic-Code", &value);
    let text = String::from_utf8(out).expect("UTF-8");
    assert!(text.lines().all(|l| l.len() <= 998), "{text}");
    assert!(text.lines().skip(1).all(|l| l.starts_with(' ')));
    // Unfolding gives back the words (the long one in pieces).
    let unfolded = text.trim_end().replace("\n ", " ");
    assert_eq!(
        unfolded
            .split(' ')
            .filter(|w| !w.is_empty())
            .collect::<String>(),
        format!("Diagnostic-Code:a{}b{}", "w".repeat(2000), "v".repeat(100))
    );
    // Multi-byte characters are never split.
    let mut out = Vec::new();
    field(&mut out, "X", &"é".repeat(1000));
    assert!(String::from_utf8(out).is_ok());
}

//! Command-level SMTP behaviour over a raw socket: the greeting, EHLO keywords,
//! HELO, and the exact reply code and enhanced status code of every command
//! and error in the contract. After each error the session must still work.

mod common;

use common::*;

#[test]
fn greeting_and_ehlo_keywords() {
    let server = Setup::new("proto-ehlo")
        .with("max_message_size 5000000")
        .start();
    let mut c = Client::connect(server.port);
    let g = c.reply();
    g.assert(220, "");
    assert_eq!(g.lines.len(), 1, "one-line greeting: {g}");
    assert!(
        g.lines[0].starts_with(&format!("{HOST} ESMTP")) && g.lines[0].contains("picomta"),
        "greeting {g}"
    );
    let r = c.ok("EHLO client.test", 250, "");
    assert!(
        r.lines[0].starts_with(HOST),
        "EHLO first line names us: {r}"
    );
    let keywords: Vec<(String, String)> = r.lines[1..]
        .iter()
        .map(|l| {
            let mut it = l.splitn(2, ' ');
            let k = it.next().unwrap_or("").to_ascii_uppercase();
            (k, it.next().unwrap_or("").to_string())
        })
        .collect();
    let has = |k: &str| {
        keywords
            .iter()
            .find(|(kk, _)| kk == k)
            .map(|(_, v)| v.clone())
    };
    for k in [
        "PIPELINING",
        "8BITMIME",
        "ENHANCEDSTATUSCODES",
        "SMTPUTF8",
        "CHUNKING",
    ] {
        assert_eq!(
            has(k).as_deref(),
            Some(""),
            "{k} advertised without argument: {r}"
        );
    }
    assert_eq!(
        has("SIZE").as_deref(),
        Some("5000000"),
        "SIZE = max_message_size: {r}"
    );
    let allowed = [
        "PIPELINING",
        "SIZE",
        "8BITMIME",
        "ENHANCEDSTATUSCODES",
        "SMTPUTF8",
        "CHUNKING",
        "HELP",
    ];
    for (k, _) in &keywords {
        assert!(
            allowed.contains(&k.as_str()),
            "unexpected EHLO keyword {k} (no TLS/AUTH yet): {r}"
        );
    }
    // A second EHLO is allowed and gives the same keywords.
    let r2 = c.ok("EHLO client.test", 250, "");
    assert_eq!(r2.lines[1..], r.lines[1..]);
    c.ok("QUIT", 221, "2.0.0");
    c.expect_closed();
}

#[test]
fn helo_then_a_transaction() {
    let server = Setup::new("proto-helo").start();
    let mut c = server.connect();
    let r = c.ok("HELO client.test", 250, "");
    assert_eq!(r.lines.len(), 1, "HELO reply is one line: {r}");
    let msg = message("helo", "via HELO", "hello");
    c.deliver(SENDER, &["alice@example.test"], &msg);
    let got = server.wait_mail("alice", 1);
    assert_eq!(got[0].message, crlf_to_lf(&msg));
    assert!(
        got[0].received.contains("client.test"),
        "{}",
        got[0].received
    );
}

#[test]
fn unknown_command() {
    let server = Setup::new("proto-unknown").start();
    let mut c = server.connect();
    c.ok("FOO bar", 500, "5.5.1");
    c.ok("EHLO client.test", 250, "");
    c.ok("MAILX FROM:<a@remote.example>", 500, "5.5.1");
    c.ok("NOOP", 250, "2.0.0");
}

#[test]
fn bad_sequence() {
    let server = Setup::new("proto-sequence").start();
    let mut c = server.connect();
    c.ok(&format!("MAIL FROM:<{SENDER}>"), 503, "5.5.1");
    c.ok("RCPT TO:<alice@example.test>", 503, "5.5.1");
    c.ok("DATA", 503, "5.5.1");
    c.ehlo();
    c.ok("RCPT TO:<alice@example.test>", 503, "5.5.1");
    c.ok("DATA", 503, "5.5.1");
    c.ok(&format!("MAIL FROM:<{SENDER}>"), 250, "2.1.0");
    c.ok("DATA", 503, "5.5.1");
    c.ok(&format!("MAIL FROM:<{SENDER}>"), 503, "5.5.1");
    c.ok("RCPT TO:<alice@example.test>", 250, "2.1.5");
    c.ok("DATA", 354, "");
    c.send(b"Subject: seq\r\n\r\nok\r\n.\r\n");
    queue_id(&c.reply());
    server.wait_mail("alice", 1);
}

#[test]
fn syntax_errors() {
    let server = Setup::new("proto-syntax").start();
    let mut c = server.connect();
    c.ok("EHLO", 501, "5.5.4");
    c.ok("HELO", 501, "5.5.4");
    c.ehlo();
    c.ok("MAIL", 501, "5.5.4");
    c.ok("MAIL FROM:<user@>", 501, "5.1.7");
    c.ok(&format!("MAIL FROM:<{SENDER}>"), 250, "2.1.0");
    c.ok("RCPT", 501, "5.5.4");
    c.ok("RCPT TO:<bob@>", 501, "5.1.3");
    c.ok("RCPT TO:<@example.test>", 501, "5.1.3");
    c.ok("RCPT TO:<>", 501, "5.1.3");
    c.ok("RCPT TO:<bob@example.test>", 250, "2.1.5");
    c.ok("DATA", 354, "");
    c.send(b"Subject: syntax\r\n\r\nok\r\n.\r\n");
    queue_id(&c.reply());
    server.wait_mail("bob", 1);
}

#[test]
fn null_sender_is_accepted() {
    let server = Setup::new("proto-null").start();
    let mut c = server.connect_ehlo();
    c.ok("MAIL FROM:<>", 250, "2.1.0");
    c.ok("RCPT TO:<dave@example.test>", 250, "2.1.5");
    c.ok("DATA", 354, "");
    c.send(b"Subject: bounce\r\n\r\nbounce\r\n.\r\n");
    queue_id(&c.reply());
    let got = server.wait_mail("dave", 1);
    assert_eq!(got[0].return_path, "");
}

#[test]
fn unknown_user_and_relay_denied() {
    let server = Setup::new("proto-rcpt").with("relay_networks none").start();
    let mut c = server.connect_ehlo();
    c.ok(&format!("MAIL FROM:<{SENDER}>"), 250, "2.1.0");
    c.ok("RCPT TO:<nobody@example.test>", 550, "5.1.1");
    c.ok("RCPT TO:<NoBody+tag@example.test>", 550, "5.1.1");
    c.ok("RCPT TO:<alice@elsewhere.example>", 554, "5.7.1");
    c.ok("RCPT TO:<alice@example.test.evil.example>", 554, "5.7.1");
    c.ok("RCPT TO:<alice@example.test>", 250, "2.1.5");
    c.ok("DATA", 354, "");
    c.send(b"Subject: only alice\r\n\r\nok\r\n.\r\n");
    queue_id(&c.reply());
    let got = server.wait_mail("alice", 1);
    assert_eq!(got[0].delivered_to, "alice@example.test");
}

#[test]
fn mail_parameters() {
    let server = Setup::new("proto-params").start();
    let mut c = server.connect_ehlo();
    let from = format!("MAIL FROM:<{SENDER}>");
    c.ok(&format!("{from} FOO=BAR"), 555, "5.5.4");
    c.ok(&format!("{from} BODY=9BIT"), 555, "5.5.4");
    c.ok(&format!("{from} SIZE=abc"), 555, "5.5.4");
    c.ok(&format!("{from} BODY=7BIT"), 250, "2.1.0");
    c.ok("RSET", 250, "2.0.0");
    c.ok(
        &format!("{from} BODY=8BITMIME SIZE=100 SMTPUTF8"),
        250,
        "2.1.0",
    );
    c.ok("RSET", 250, "2.0.0");
    c.ok(
        &format!("MAIL FROM: <{SENDER}> size=100 body=8bitmime"),
        250,
        "2.1.0",
    );
}

#[test]
fn vrfy_never_reveals_users() {
    let server = Setup::new("proto-vrfy").start();
    let mut c = server.connect_ehlo();
    let known = c.ok("VRFY alice", 252, "2.5.2");
    let unknown = c.ok("VRFY nobody", 252, "2.5.2");
    let a = known.text().replace("alice", "X");
    let b = unknown.text().replace("nobody", "X");
    assert_eq!(a, b, "VRFY replies differ between a user and a non-user");
    c.ok("NOOP", 250, "2.0.0");
}

#[test]
fn noop_rset_quit_help() {
    let server = Setup::new("proto-noop").start();
    let mut c = server.connect();
    c.ok("NOOP", 250, "2.0.0");
    c.ok("RSET", 250, "2.0.0");
    c.ehlo();
    let h = c.cmd("HELP");
    assert!(h.code == 214 || h.code == 211, "HELP: {h}");
    c.ok(&format!("MAIL FROM:<{SENDER}>"), 250, "2.1.0");
    c.ok("RCPT TO:<alice@example.test>", 250, "2.1.5");
    c.ok("NOOP", 250, "2.0.0");
    c.ok("RSET", 250, "2.0.0");
    // RSET dropped the transaction: no recipients, no DATA.
    c.ok("DATA", 503, "5.5.1");
    c.ok("noop", 250, "2.0.0");
    c.ok("QUIT", 221, "2.0.0");
    c.expect_closed();
    server.assert_no_mail("alice");
}

#[test]
fn command_line_length_limit() {
    let server = Setup::new("proto-long").start();
    let mut c = server.connect_ehlo();
    // 512 octets including CRLF is the RFC 5321 limit: accepted.
    let ok = format!("NOOP {}", "x".repeat(512 - 2 - 5));
    assert_eq!(ok.len() + 2, 512);
    c.ok(&ok, 250, "2.0.0");
    // 513: refused, one reply, session fine.
    let long = format!("NOOP {}", "x".repeat(513 - 2 - 5));
    c.ok(&long, 500, "5.5.2");
    c.ok("NOOP", 250, "2.0.0");
    // A 64 KiB line: exactly one reply (a server that split it would answer
    // its tail as another command, and the NOOP below would see that reply).
    let huge = format!("NOOP {}", "y".repeat(65536));
    c.ok(&huge, 500, "5.5.2");
    c.ok("NOOP", 250, "2.0.0");
    let long_rcpt = format!("MAIL FROM:<{}@remote.example>", "z".repeat(600));
    c.ok(&long_rcpt, 500, "5.5.2");
    c.ok(&format!("MAIL FROM:<{SENDER}>"), 250, "2.1.0");
}

#[test]
fn smtputf8_address_with_smtputf8() {
    let server = Setup::new("proto-utf8").start();
    let mut c = server.connect_ehlo();
    c.ok("MAIL FROM:<jörg@bücher.example> SMTPUTF8", 250, "2.1.0");
    c.ok("RCPT TO:<alice@example.test>", 250, "2.1.5");
    c.ok("DATA", 354, "");
    c.send("Subject: Grüße\r\nFrom: jörg@bücher.example\r\n\r\nGrüße aus Köln\r\n.\r\n".as_bytes());
    queue_id(&c.reply());
    let got = server.wait_mail("alice", 1);
    assert_eq!(got[0].return_path, "jörg@bücher.example");
    assert_eq!(
        got[0].message_str(),
        "Subject: Grüße\nFrom: jörg@bücher.example\n\nGrüße aus Köln\n"
    );
}

//! SMTP smuggling: a message holding a fake end of data made with a bare CR or
//! bare LF, followed by a smuggled MAIL/RCPT/DATA and the real `<CRLF>.<CRLF>`.
//! The server must read to the real end, answer exactly once with 550 5.6.0,
//! run none of the smuggled commands, deliver nothing, and stay usable.

mod common;

use std::time::Duration;

use common::*;

/// Every fake end of data from the issue.
const VARIANTS: [(&str, &[u8]); 5] = [
    ("<LF>.<LF>", b"\n.\n"),
    ("<CR>.<CR>", b"\r.\r"),
    ("<LF>.<CR><LF>", b"\n.\r\n"),
    ("<CR><LF>.<LF>", b"\r\n.\n"),
    ("<CR><LF>.<CR>", b"\r\n.\r"),
];

/// The DATA payload: a message to alice, the fake end, a smuggled transaction
/// for bob, then the real end (the last line's CRLF + `.` CRLF).
fn payload(fake_end: &[u8]) -> Vec<u8> {
    let mut p = b"From: <sender@remote.example>\r\nSubject: smuggle test\r\n\r\nhello".to_vec();
    p.extend_from_slice(fake_end);
    p.extend_from_slice(
        b"MAIL FROM:<evil@remote.example>\r\n\
          RCPT TO:<bob@example.test>\r\n\
          DATA\r\n\
          From: <evil@remote.example>\r\n\
          Subject: smuggled\r\n\
          \r\n\
          evil\r\n\
          .\r\n",
    );
    p
}

fn one_variant(i: usize) {
    let (name, fake_end) = VARIANTS[i];
    let server = Setup::new(&format!("smuggle-{i}")).start();
    let mut c = server.connect_ehlo();
    c.ok(&format!("MAIL FROM:<{SENDER}>"), 250, "2.1.0");
    c.ok("RCPT TO:<alice@example.test>", 250, "2.1.5");
    c.ok("DATA", 354, "");
    c.send(&payload(fake_end));
    let r = c.reply();
    assert_eq!(
        r.code, 550,
        "{name}: the whole message must be refused once: {r}"
    );
    r.assert(550, "5.6.0");
    // No second reply: nothing after the fake end ran as a command.
    c.expect_silence(Duration::from_millis(500));
    // The session continues, with no transaction open.
    c.ok("NOOP", 250, "2.0.0");
    c.ok("RCPT TO:<alice@example.test>", 503, "5.5.1");
    let good = message(
        &format!("after-{}", fake_end.len()),
        "after smuggling",
        "clean",
    );
    c.deliver(SENDER, &["alice@example.test"], &good);
    c.ok("QUIT", 221, "2.0.0");
    let got = server.wait_mail("alice", 1);
    assert_same_bytes(&got[0].message, &crlf_to_lf(&good), name);
    server.assert_no_mail("bob");
}

#[test]
fn lf_dot_lf() {
    one_variant(0);
}

#[test]
fn cr_dot_cr() {
    one_variant(1);
}

#[test]
fn lf_dot_crlf() {
    one_variant(2);
}

#[test]
fn crlf_dot_lf() {
    one_variant(3);
}

#[test]
fn crlf_dot_cr() {
    one_variant(4);
}

/// All variants back to back in one write, each followed by a valid pipelined
/// transaction: the replies are exactly 550 for each smuggling attempt and
/// the normal sequence for each valid one.
#[test]
fn all_variants_pipelined() {
    let server = Setup::new("smuggle-pipelined").start();
    let mut c = server.connect();
    let mut s = b"EHLO client.test\r\n".to_vec();
    let mut expected: Vec<(u16, &str)> = vec![(250, "")];
    let mut goods = Vec::new();
    for (i, (_, fake)) in VARIANTS.iter().enumerate() {
        s.extend_from_slice(
            format!("MAIL FROM:<{SENDER}>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n").as_bytes(),
        );
        s.extend_from_slice(&payload(fake));
        expected.extend([(250, "2.1.0"), (250, "2.1.5"), (354, ""), (550, "5.6.0")]);
        let good = message(&format!("good{i}"), &format!("good {i}"), "fine");
        s.extend_from_slice(
            format!("MAIL FROM:<{SENDER}>\r\nRCPT TO:<carol@example.test>\r\nDATA\r\n").as_bytes(),
        );
        s.extend_from_slice(&dot_stuff(&good));
        s.extend_from_slice(b".\r\n");
        expected.extend([(250, "2.1.0"), (250, "2.1.5"), (354, ""), (250, "2.0.0")]);
        goods.push(crlf_to_lf(&good));
    }
    s.extend_from_slice(b"QUIT\r\n");
    expected.push((221, "2.0.0"));
    c.send(&s);
    for (i, (code, enh)) in expected.iter().enumerate() {
        let r = c.reply();
        assert_eq!(r.code, *code, "reply #{i}: {r}");
        r.assert(*code, enh);
    }
    c.expect_closed();
    let got = server.wait_mail("carol", VARIANTS.len());
    let mut bodies: Vec<Vec<u8>> = got.into_iter().map(|d| d.message).collect();
    bodies.sort();
    goods.sort();
    assert_eq!(bodies, goods);
    server.assert_no_mail("alice");
    server.assert_no_mail("bob");
}

/// A bare LF without any fake end is refused the same way (and the message
/// is read to its real end first).
#[test]
fn bare_lf_and_bare_cr_alone() {
    let server = Setup::new("smuggle-bare").start();
    let mut c = server.connect_ehlo();
    for body in [
        &b"Subject: a\r\n\r\nline\nline\r\n.\r\n"[..],
        b"Subject: b\r\n\r\nline\rline\r\n.\r\n",
    ] {
        c.ok(&format!("MAIL FROM:<{SENDER}>"), 250, "2.1.0");
        c.ok("RCPT TO:<dave@example.test>", 250, "2.1.5");
        c.ok("DATA", 354, "");
        c.send(body);
        c.reply().assert(550, "5.6.0");
        c.ok("NOOP", 250, "2.0.0");
    }
    let good = message("bare-after", "ok", "ok");
    c.deliver(SENDER, &["dave@example.test"], &good);
    let got = server.wait_mail("dave", 1);
    assert_same_bytes(&got[0].message, &crlf_to_lf(&good), "after bare line ends");
}

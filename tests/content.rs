//! Message content end to end, byte for byte: dot-stuffing removed exactly as
//! RFC 5321 4.5.2 says, 8-bit bytes untouched, an empty message, and a 10 MB
//! message (full of dot lines and long lines) compared after CRLF -> LF.

mod common;

use common::*;

#[test]
fn dot_unstuffing_is_exact() {
    let server = Setup::new("content-dots").start();
    let mut c = server.connect_ehlo();
    c.ok(&format!("MAIL FROM:<{SENDER}>"), 250, "2.1.0");
    c.ok("RCPT TO:<alice@example.test>", 250, "2.1.5");
    c.ok("DATA", 354, "");
    // Written by hand, not by our stuffing helper, so each case is explicit.
    c.send(
        b"Subject: dots\r\n\
          \r\n\
          ..leading dot\r\n\
          ...\r\n\
          ..\r\n\
          .x unstuffed by a sloppy client\r\n\
          middle . dot\r\n\
          \x20.space first\r\n\
          trailing dot.\r\n\
          \r\n\
          .\r\n",
    );
    queue_id(&c.reply());
    c.ok("NOOP", 250, "2.0.0");
    let got = server.wait_mail("alice", 1);
    assert_eq!(
        got[0].message_str(),
        "Subject: dots\n\
         \n\
         .leading dot\n\
         ..\n\
         .\n\
         x unstuffed by a sloppy client\n\
         middle . dot\n\
         \x20.space first\n\
         trailing dot.\n\
         \n"
    );
}

#[test]
fn dot_stuffing_round_trip() {
    // Lines that are only dots, or start with dots, sent through a standard
    // stuffing client, must come back as they were.
    let server = Setup::new("content-roundtrip").start();
    let mut body = String::new();
    for n in 0..40 {
        body.push_str(&".".repeat(n));
        body.push_str(if n % 2 == 0 { "\n" } else { " text\n" });
    }
    let msg = message("roundtrip", "dots", &body);
    let mut c = server.connect_ehlo();
    c.deliver(SENDER, &["bob@example.test"], &msg);
    let got = server.wait_mail("bob", 1);
    assert_same_bytes(&got[0].message, &crlf_to_lf(&msg), "dot round trip");
}

#[test]
fn empty_message() {
    let server = Setup::new("content-empty").start();
    let mut c = server.connect_ehlo();
    c.ok(&format!("MAIL FROM:<{SENDER}>"), 250, "2.1.0");
    c.ok("RCPT TO:<carol@example.test>", 250, "2.1.5");
    c.ok("DATA", 354, "");
    c.send(b".\r\n");
    queue_id(&c.reply());
    let got = server.wait_mail("carol", 1);
    assert!(got[0].message.is_empty(), "{:?}", got[0].message_str());
}

#[test]
fn eight_bit_bytes_preserved() {
    let server = Setup::new("content-8bit").start();
    let mut msg = b"Subject: =?utf-8?q?8bit?=\r\nContent-Type: application/octet-stream\r\n\
                    Content-Transfer-Encoding: 8bit\r\n\r\n"
        .to_vec();
    // Every byte value except NUL, CR and LF, in lines of 32, plus UTF-8 text
    // and invalid UTF-8.
    let all: Vec<u8> = (1u8..=255).filter(|b| *b != b'\r' && *b != b'\n').collect();
    for line in all.chunks(32) {
        msg.extend_from_slice(line);
        msg.extend_from_slice(b"\r\n");
    }
    msg.extend_from_slice("Grüße, 日本語, emoji 🦀\r\n".as_bytes());
    msg.extend_from_slice(b"\xff\xfe\xc3\x28 invalid utf-8\r\n");
    let mut c = server.connect_ehlo();
    c.ok(&format!("MAIL FROM:<{SENDER}> BODY=8BITMIME"), 250, "2.1.0");
    c.ok("RCPT TO:<dave@example.test>", 250, "2.1.5");
    c.ok("DATA", 354, "");
    let mut data = dot_stuff(&msg);
    data.extend_from_slice(b".\r\n");
    c.send(&data);
    queue_id(&c.reply());
    let got = server.wait_mail("dave", 1);
    assert_same_bytes(&got[0].message, &crlf_to_lf(&msg), "8-bit message");
}

/// A deterministic ~`size`-byte message of CRLF lines: lengths 0..=998, dots
/// at line starts, lines that are only ".", 8-bit bytes.
fn big_message(size: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut m = b"Subject: big\r\nMessage-ID: <big@client.test>\r\n\r\n".to_vec();
    let mut line_no = 0u64;
    while m.len() < size {
        line_no += 1;
        if line_no % 97 == 0 {
            m.extend_from_slice(b".\r\n");
            continue;
        }
        let len = (next() % 999) as usize;
        let start = m.len();
        for _ in 0..len {
            let r = next();
            let b = if r % 50 == 0 {
                0x80 + (r >> 8) as u8 % 0x80
            } else {
                0x20 + (r >> 8) as u8 % 0x5F
            };
            m.push(b);
        }
        if line_no % 16 == 0 && len > 0 {
            m[start] = b'.';
        }
        m.extend_from_slice(b"\r\n");
    }
    m
}

#[test]
fn ten_megabyte_message_byte_for_byte() {
    let server = Setup::new("content-10mb")
        .with("max_message_size 30000000")
        .start();
    let msg = big_message(10 * 1024 * 1024);
    let mut c = server.connect_ehlo();
    c.ok(
        &format!("MAIL FROM:<{SENDER}> BODY=8BITMIME SIZE={}", msg.len()),
        250,
        "2.1.0",
    );
    c.ok("RCPT TO:<alice@example.test>", 250, "2.1.5");
    c.ok("DATA", 354, "");
    let mut data = dot_stuff(&msg);
    data.extend_from_slice(b".\r\n");
    c.send(&data);
    queue_id(&c.reply());
    c.ok("QUIT", 221, "2.0.0");
    let got = server.wait_mail("alice", 1);
    assert_same_bytes(&got[0].message, &crlf_to_lf(&msg), "10 MB message");
}

//! PIPELINING (RFC 2920) and CHUNKING/BDAT (RFC 3030) over a raw socket: whole
//! transactions in one write, or one byte per write, must get exactly the right
//! replies in order; BDAT chunks are counted octets, never scanned for commands.

mod common;

use std::time::Duration;

use common::*;

/// A pipelined session: its bytes, the two messages in it, the replies it needs.
struct Script {
    bytes: Vec<u8>,
    m1: Vec<u8>,
    m2: Vec<u8>,
    expected: Vec<(u16, &'static str)>,
}

/// Two transactions and a QUIT, as one byte string.
fn two_transactions() -> Script {
    let m1 = message("pipe1", "first", "one\n.dot line\nend");
    let m2 = message("pipe2", "second", "two");
    let mut s = Vec::new();
    s.extend_from_slice(b"EHLO client.test\r\n");
    s.extend_from_slice(format!("MAIL FROM:<{SENDER}> BODY=8BITMIME\r\n").as_bytes());
    s.extend_from_slice(b"RCPT TO:<alice@example.test>\r\nRCPT TO:<nobody@example.test>\r\n");
    s.extend_from_slice(b"RCPT TO:<bob@example.test>\r\nDATA\r\n");
    s.extend_from_slice(&dot_stuff(&m1));
    s.extend_from_slice(b".\r\n");
    s.extend_from_slice(b"NOOP\r\nFOO\r\n");
    s.extend_from_slice(
        format!("MAIL FROM:<{SENDER}>\r\nRCPT TO:<carol@example.test>\r\nDATA\r\n").as_bytes(),
    );
    s.extend_from_slice(&dot_stuff(&m2));
    s.extend_from_slice(b".\r\nQUIT\r\n");
    let expected = vec![
        (250, ""),
        (250, "2.1.0"),
        (250, "2.1.5"),
        (550, "5.1.1"),
        (250, "2.1.5"),
        (354, ""),
        (250, "2.0.0"),
        (250, "2.0.0"),
        (500, "5.5.1"),
        (250, "2.1.0"),
        (250, "2.1.5"),
        (354, ""),
        (250, "2.0.0"),
        (221, "2.0.0"),
    ];
    Script {
        bytes: s,
        m1,
        m2,
        expected,
    }
}

/// Reads the expected replies in order, then the close; returns the queue ids.
fn check_replies(c: &mut Client, expected: &[(u16, &str)]) -> Vec<String> {
    let mut ids = Vec::new();
    for (i, (code, enh)) in expected.iter().enumerate() {
        let r = c.reply();
        assert_eq!(r.code, *code, "reply #{i} wrong: {r}");
        r.assert(*code, enh);
        if r.lines.iter().any(|l| l.contains("queued as")) {
            ids.push(queue_id(&r));
        }
    }
    c.expect_closed();
    ids
}

fn check_delivery(server: &Server, m1: &[u8], m2: &[u8]) {
    for user in ["alice", "bob"] {
        let got = server.wait_mail(user, 1);
        assert_eq!(got[0].message, crlf_to_lf(m1), "{user}");
    }
    let got = server.wait_mail("carol", 1);
    assert_eq!(got[0].message, crlf_to_lf(m2));
    server.assert_no_mail("dave");
}

#[test]
fn whole_session_in_one_write() {
    let server = Setup::new("pipe-one-write").start();
    let Script {
        bytes,
        m1,
        m2,
        expected,
    } = two_transactions();
    let mut c = server.connect();
    c.send(&bytes);
    let ids = check_replies(&mut c, &expected);
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1], "two messages, two queue ids");
    check_delivery(&server, &m1, &m2);
}

#[test]
fn whole_session_one_byte_per_write() {
    let server = Setup::new("pipe-bytes").start();
    let Script {
        bytes,
        m1,
        m2,
        expected,
    } = two_transactions();
    let mut c = server.connect();
    c.stream().set_nodelay(true).expect("nodelay");
    for b in &bytes {
        c.send(std::slice::from_ref(b));
    }
    check_replies(&mut c, &expected);
    check_delivery(&server, &m1, &m2);
}

#[test]
fn pipelined_group_split_at_odd_places() {
    let server = Setup::new("pipe-split").start();
    let Script {
        bytes,
        m1,
        m2,
        expected,
    } = two_transactions();
    let mut c = server.connect();
    c.stream().set_nodelay(true).expect("nodelay");
    // Split inside CRLFs and inside the end-of-data sequence, with pauses so
    // the server sees each piece in its own read.
    let mut cuts: Vec<usize> = Vec::new();
    for (i, w) in bytes.windows(2).enumerate() {
        if w == b"\r\n" && i % 3 == 0 {
            cuts.push(i + 1);
        }
    }
    let mut last = 0;
    for cut in cuts.into_iter().chain(std::iter::once(bytes.len())) {
        c.send(&bytes[last..cut]);
        last = cut;
        std::thread::sleep(Duration::from_millis(2));
    }
    check_replies(&mut c, &expected);
    check_delivery(&server, &m1, &m2);
}

#[test]
fn bdat_two_chunks() {
    let server = Setup::new("bdat-two").start();
    let mut c = server.connect_ehlo();
    c.ok(&format!("MAIL FROM:<{SENDER}>"), 250, "2.1.0");
    c.ok("RCPT TO:<alice@example.test>", 250, "2.1.5");
    // BDAT is not dot-stuffed: dots arrive as sent, and a chunk may end mid-line.
    let chunk1 = b"Subject: bdat\r\nMessage-ID: <bdat@client.test>\r\n\r\n.one dot\r\n..two dots\r\nsplit li";
    let chunk2 = b"ne\r\n.\r\nlast line\r\n";
    let mut cmd = format!("BDAT {}\r\n", chunk1.len()).into_bytes();
    cmd.extend_from_slice(chunk1);
    c.send(&cmd);
    c.reply().assert(250, "");
    let mut cmd = format!("BDAT {} LAST\r\n", chunk2.len()).into_bytes();
    cmd.extend_from_slice(chunk2);
    c.send(&cmd);
    queue_id(&c.reply());
    c.ok("NOOP", 250, "2.0.0");
    let got = server.wait_mail("alice", 1);
    let mut whole = chunk1.to_vec();
    whole.extend_from_slice(chunk2);
    assert_eq!(
        got[0].message_str(),
        String::from_utf8_lossy(&crlf_to_lf(&whole))
    );
}

#[test]
fn bdat_pipelined_with_commands_inside_chunks() {
    let server = Setup::new("bdat-pipe").start();
    let mut c = server.connect();
    // The chunks hold text that looks like an end of data and commands; none
    // of it may be acted on. The second transaction ends with BDAT 0 LAST.
    let chunk1 = format!("Subject: chunk\r\n\r\nbefore\r\n.\r\nMAIL FROM:<{SENDER}>\r\nQUIT\r\n");
    let chunk2 = "after\r\n";
    let chunk3 = "Subject: second\r\n\r\nsecond body\r\n";
    let mut s = String::new();
    s.push_str(&format!(
        "EHLO client.test\r\nMAIL FROM:<{SENDER}>\r\nRCPT TO:<bob@example.test>\r\n"
    ));
    s.push_str(&format!("BDAT {}\r\n{chunk1}", chunk1.len()));
    s.push_str(&format!("BDAT {} LAST\r\n{chunk2}", chunk2.len()));
    s.push_str(&format!(
        "MAIL FROM:<{SENDER}>\r\nRCPT TO:<carol@example.test>\r\n"
    ));
    s.push_str(&format!(
        "BDAT {}\r\n{chunk3}BDAT 0 LAST\r\nQUIT\r\n",
        chunk3.len()
    ));
    c.send(s.as_bytes());
    let expected = [
        (250, ""),
        (250, "2.1.0"),
        (250, "2.1.5"),
        (250, ""),
        (250, "2.0.0"),
        (250, "2.1.0"),
        (250, "2.1.5"),
        (250, ""),
        (250, "2.0.0"),
        (221, "2.0.0"),
    ];
    let ids = check_replies(&mut c, &expected);
    assert_eq!(ids.len(), 2, "two messages queued");
    let got = server.wait_mail("bob", 1);
    let whole = format!("{chunk1}{chunk2}");
    assert_eq!(got[0].message_str(), whole.replace("\r\n", "\n"));
    let got = server.wait_mail("carol", 1);
    assert_eq!(got[0].message_str(), chunk3.replace("\r\n", "\n"));
}

#[test]
fn bdat_errors_still_consume_the_chunk() {
    let server = Setup::new("bdat-errors").start();
    let mut c = server.connect_ehlo();
    // BDAT without a transaction: 503, and its 12 octets are data, not commands.
    c.send(b"BDAT 12\r\nNOOP\r\nNOOP\r\n");
    c.reply().assert(503, "5.5.1");
    c.ok("RSET", 250, "2.0.0");
    // DATA after BDAT in the same transaction is a bad sequence (RFC 3030).
    c.ok(&format!("MAIL FROM:<{SENDER}>"), 250, "2.1.0");
    c.ok("RCPT TO:<dave@example.test>", 250, "2.1.5");
    let head = "Subject: mixed\r\n\r\n";
    c.send(format!("BDAT {}\r\n{head}", head.len()).as_bytes());
    c.reply().assert(250, "");
    c.ok("DATA", 503, "5.5.1");
    c.send(b"BDAT 4 LAST\r\nok\r\n");
    queue_id(&c.reply());
    c.expect_silence(Duration::from_millis(300));
    let got = server.wait_mail("dave", 1);
    assert_eq!(got[0].message_str(), "Subject: mixed\n\nok\n");
}

//! Reply tests: the wire form we send, and reading a server's replies in any
//! chunking, with their limits.

use super::*;

#[test]
fn single_line_with_enhanced_status() {
    let mut out = Vec::new();
    Reply::new(550, "5.1.1", "no such user").write_to(&mut out);
    assert_eq!(out, b"550 5.1.1 no such user\r\n");
}

#[test]
fn multi_line_uses_dash_continuations() {
    let mut out = Vec::new();
    Reply::multi(
        250,
        vec!["host".into(), "PIPELINING".into(), "SIZE 10".into()],
    )
    .write_to(&mut out);
    assert_eq!(out, b"250-host\r\n250-PIPELINING\r\n250 SIZE 10\r\n");
}

/// Reads every reply in `input`, whole.
fn read_all(input: &[u8]) -> Vec<Result<ServerReply, ReplyError>> {
    let mut reader = ReplyReader::default();
    let mut replies = Vec::new();
    let mut pos = 0;
    while pos < input.len() {
        let (used, reply) = reader.read(&input[pos..]);
        assert!(used > 0 || reply.is_some());
        pos += used;
        replies.extend(reply);
    }
    replies
}

fn reply(code: u16, enhanced: &str, lines: &[&str]) -> ServerReply {
    ServerReply {
        code,
        enhanced: enhanced.into(),
        lines: lines.iter().map(|l| l.to_string()).collect(),
    }
}

#[test]
fn parses_single_and_multi_line_replies() {
    let cases: &[(&[u8], ServerReply)] = &[
        (b"220 mx.test ESMTP\r\n", reply(220, "", &["mx.test ESMTP"])),
        (
            b"550 5.1.1 <a@b>: no such user\r\n",
            reply(550, "5.1.1", &["<a@b>: no such user"]),
        ),
        (b"250\r\n", reply(250, "", &[""])),
        (b"354 \r\n", reply(354, "", &[""])),
        // LF alone ends a line too.
        (b"221 2.0.0 Bye\n", reply(221, "2.0.0", &["Bye"])),
        (
            b"250-mx.test\r\n250-PIPELINING\r\n250 SIZE 1000\r\n",
            reply(250, "", &["mx.test", "PIPELINING", "SIZE 1000"]),
        ),
        // Enhanced code on every line (RFC 2034): stripped from each.
        (
            b"550-5.7.1 one\r\n550 5.7.1 two\r\n",
            reply(550, "5.7.1", &["one", "two"]),
        ),
        // A class that does not match the code is text, as is a near miss.
        (b"250 5.1.1 odd\r\n", reply(250, "", &["5.1.1 odd"])),
        (b"451 4.3 x\r\n", reply(451, "", &["4.3 x"])),
        (b"451 4.3.1234 x\r\n", reply(451, "", &["4.3.1234 x"])),
        (b"452 4.5.3\r\n", reply(452, "4.5.3", &[""])),
        // Control characters never reach a log line.
        (
            b"550 bad\x1b[31m\ttab\xff\r\n",
            reply(550, "", &["bad?[31m tab\u{fffd}"]),
        ),
    ];
    for (input, want) in cases {
        assert_eq!(read_all(input), vec![Ok(want.clone())], "{input:?}");
    }
}

#[test]
fn display_is_the_log_form() {
    assert_eq!(
        reply(550, "5.1.1", &["no", "user"]).to_string(),
        "550 5.1.1 no user"
    );
    assert_eq!(reply(250, "", &[""]).to_string(), "250");
}

#[test]
fn garbage_is_malformed() {
    let cases: &[&[u8]] = &[
        b"hello\r\n",
        b"25\r\n",
        b"2500 x\r\n",
        b"250x\r\n",
        b"150 x\r\n",
        b"650 x\r\n",
        b"260 x\r\n",
        b"25a x\r\n",
        b"\r\n",
        b"250-a\r\n251 b\r\n",
        b"HTTP/1.1 400 Bad Request\r\n",
    ];
    for input in cases {
        assert_eq!(
            read_all(input).last(),
            Some(&Err(ReplyError::Malformed)),
            "{input:?}"
        );
    }
}

#[test]
fn every_split_point_gives_the_same_replies() {
    let input = b"250-mx.test greets you\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 8BITMIME\r\n550 5.1.1 no\r\n";
    let whole = read_all(input);
    assert_eq!(whole.len(), 2);
    for split in 0..=input.len() {
        let mut reader = ReplyReader::default();
        let mut got = Vec::new();
        for piece in [&input[..split], &input[split..]] {
            let mut pos = 0;
            while pos < piece.len() {
                let (used, r) = reader.read(&piece[pos..]);
                pos += used;
                got.extend(r);
            }
        }
        assert_eq!(got, whole, "split at {split}");
    }
}

#[test]
fn a_read_stops_after_one_reply() {
    let mut reader = ReplyReader::default();
    let input = b"250 a\r\n250 b\r\n";
    let (used, r) = reader.read(input);
    assert_eq!(used, 7);
    assert_eq!(r, Some(Ok(reply(250, "", &["a"]))));
}

#[test]
fn line_length_limit() {
    // 510 characters + CRLF = 512: fine. One more: too long, even without its LF yet.
    let ok = [b"250 ".as_slice(), &[b'x'; 506], b"\r\n"].concat();
    assert_eq!(ok.len(), MAX_REPLY_LINE);
    assert!(matches!(read_all(&ok)[..], [Ok(_)]));
    let long = [b"250 ".as_slice(), &[b'x'; 507], b"\r\n"].concat();
    assert_eq!(read_all(&long)[0], Err(ReplyError::LineTooLong));
    let mut reader = ReplyReader::default();
    let (used, r) = reader.read(&[b'2'; 600]);
    assert_eq!(r, Some(Err(ReplyError::LineTooLong)));
    assert_eq!(used, 600);
}

#[test]
fn line_count_and_text_limits() {
    let mut many = Vec::new();
    for _ in 0..MAX_REPLY_LINES - 1 {
        many.extend_from_slice(
            b"250-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n",
        );
    }
    let mut last = many.clone();
    last.extend_from_slice(b"250 end\r\n");
    let r = read_all(&last).pop().unwrap().unwrap();
    // Text past MAX_REPLY_TEXT is dropped, never the reply.
    assert!(r.lines.len() < MAX_REPLY_LINES);
    assert!(r.lines.iter().map(String::len).sum::<usize>() <= MAX_REPLY_TEXT);
    many.extend_from_slice(b"250-one too many\r\n250 end\r\n");
    assert_eq!(read_all(&many)[0], Err(ReplyError::TooManyLines));
}

#[test]
fn reset_forgets_a_partial_reply() {
    let mut reader = ReplyReader::default();
    assert_eq!(reader.read(b"250-a\r\n250-b"), (12, None));
    reader.reset();
    assert_eq!(
        reader.read(b"220 c\r\n").1,
        Some(Ok(reply(220, "", &["c"])))
    );
}

//! Outbound session tests, continued: message data, chunking of replies and
//! body, broken servers, lost connections and timeouts, MAIL parameters.

use super::*;

/// A session that got its 354, ready for the body.
fn at_data(rcpts: &[&str]) -> Talk {
    let (mut talk, _) = Talk::greeted(config(TlsWant::May), envelope(rcpts), EHLO_PIPELINING);
    let mut replies = String::from("250 Ok\r\n");
    for _ in rcpts {
        replies.push_str("250 Ok\r\n");
    }
    replies.push_str("354 go\r\n");
    assert_eq!(talk.says(&replies), "");
    talk
}

#[test]
fn body_is_dot_stuffed_and_crlf_at_every_split() {
    let bodies: &[(&[u8], &[u8])] = &[
        (
            b"Subject: x\n\n.hidden\n..two\n.\nlast",
            b"Subject: x\r\n\r\n..hidden\r\n...two\r\n..\r\nlast\r\n.\r\n",
        ),
        (b".", b"..\r\n.\r\n"),
        (b"\n.\n", b"\r\n..\r\n.\r\n"),
        (b"", b".\r\n"),
    ];
    for (body, wire) in bodies {
        for i in 0..=body.len() {
            let mut talk = at_data(&["b@x.test"]);
            let mut sent = Vec::new();
            assert_eq!(talk.c.poll_event(), Some(Event::WantBody));
            talk.c.body(&body[..i], false);
            sent.extend_from_slice(talk.sent().as_bytes());
            assert_eq!(talk.c.poll_event(), Some(Event::WantBody));
            talk.c.body(&body[i..], true);
            sent.extend_from_slice(talk.sent().as_bytes());
            assert_eq!(&sent, wire, "{body:?} split at {i}");
            assert_eq!(talk.c.poll_event(), None);
        }
        // And one byte at a time.
        let mut talk = at_data(&["b@x.test"]);
        assert_eq!(talk.body(body, 1), *wire);
    }
}

#[test]
fn body_is_asked_for_only_while_the_output_is_small() {
    let mut talk = at_data(&["b@x.test"]);
    assert_eq!(talk.c.poll_event(), Some(Event::WantBody));
    // Asked once, not again until answered.
    assert_eq!(talk.c.poll_event(), None);
    talk.c.body(&[b'x'; BODY_LOW_WATER + 10], false);
    assert_eq!(talk.c.poll_event(), None);
    talk.c.output_sent(5);
    assert_eq!(talk.c.poll_event(), None);
    talk.c.output_sent(10);
    assert_eq!(talk.c.output().len(), BODY_LOW_WATER - 5);
    assert_eq!(talk.c.poll_event(), Some(Event::WantBody));
    // The part already sent is dropped before more is added.
    talk.c.body(b"y\n", true);
    let rest = talk.sent();
    assert_eq!(rest.len(), BODY_LOW_WATER - 5 + 3 + 3);
    assert!(rest.ends_with("xy\r\n.\r\n"));
    assert_eq!(talk.c.poll_event(), None);
}

#[test]
fn replies_split_anywhere_give_the_same_session() {
    let script = [
        "220-mx.test ESMTP\r\n220 more greeting\r\n",
        EHLO_PIPELINING,
        "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550-5.1.1 no such\r\n550 5.1.1 user\r\n354 go\r\n",
    ];
    let whole: String = script.concat();
    // Reference: each reply in one piece.
    let mut reference = Talk::new(config(TlsWant::May), envelope(&["b@x.test", "c@x.test"]));
    let want: String = script.iter().map(|s| reference.says(s)).collect();
    assert!(want.ends_with("DATA\r\n"));
    for split in 0..=whole.len() {
        let mut talk = Talk::new(config(TlsWant::May), envelope(&["b@x.test", "c@x.test"]));
        let got = talk.says(&whole[..split]) + &talk.says(&whole[split..]);
        assert_eq!(got, want, "split at {split}");
        assert_eq!(talk.c.poll_event(), Some(Event::WantBody));
    }
    let mut talk = Talk::new(config(TlsWant::May), envelope(&["b@x.test", "c@x.test"]));
    let got: String = whole
        .split_inclusive(|_| true)
        .map(|byte| talk.says(byte))
        .collect();
    assert_eq!(got, want);
    talk.body(b"x\n", 10);
    talk.says("250 ok\r\n");
    let o = talk.outcome();
    assert_eq!(o.rcpts[1].as_ref().unwrap_err().text, "no such user");
}

#[test]
fn garbage_from_the_server_ends_the_session() {
    let long = format!("250 {}\r\n", "x".repeat(600));
    for (when, garbage) in [
        (0, "HTTP/1.1 400 Bad Request\r\n"),
        (1, "250-mx\r\n251 mismatched\r\n"),
        (1, long.as_str()),
        (2, "hello?\r\n"),
    ] {
        let mut talk = Talk::new(config(TlsWant::May), envelope(&["b@x.test"]));
        if when >= 1 {
            talk.says("220 mx\r\n");
        }
        if when >= 2 {
            talk.says(EHLO);
        }
        // No QUIT: the stream is out of step.
        assert_eq!(talk.says(garbage), "");
        let o = talk.outcome();
        assert_session_failure(&o, false, "4.5.0", ["greeting", "EHLO", "MAIL FROM"][when]);
        assert_eq!(o.session.unwrap().code, 0);
    }
    // A reply while none is awaited (during the body).
    let mut talk = at_data(&["b@x.test"]);
    assert_eq!(talk.says("552 5.3.4 too big\r\n"), "");
    assert_session_failure(&talk.outcome(), true, "5.3.4", "message body");
}

#[test]
fn connection_lost_mid_data_defers_every_accepted_recipient() {
    let (mut talk, _) = Talk::greeted(
        config(TlsWant::May),
        envelope(&["b@x.test", "c@x.test"]),
        EHLO_PIPELINING,
    );
    talk.says("250 Ok\r\n250 Ok\r\n550 5.1.1 unknown\r\n354 go\r\n");
    assert_eq!(talk.c.poll_event(), Some(Event::WantBody));
    talk.c.body(b"part of it\n", false);
    talk.c.closed();
    assert_eq!(talk.sent(), "part of it\r\n");
    let o = talk.outcome();
    let f = o.session.clone().unwrap();
    assert_eq!(
        (f.permanent, f.code, f.enhanced.as_str(), f.stage),
        (false, 0, "4.4.2", "message body")
    );
    assert_eq!(o.rcpts[0], Err(f));
    assert_eq!(o.rcpts[1].as_ref().unwrap_err().code, 550);
    // Lost after the final dot: the same (the message may be delivered twice).
    let mut talk = at_data(&["b@x.test"]);
    talk.body(b"x", 5);
    talk.c.closed();
    assert_session_failure(&talk.outcome(), false, "4.4.2", "end of DATA");
}

#[test]
fn timeout_defers() {
    let (mut talk, _) = Talk::greeted(
        config(TlsWant::May),
        envelope(&["b@x.test", "c@x.test"]),
        EHLO,
    );
    talk.says("250 Ok\r\n");
    talk.c.timeout();
    assert_eq!(talk.sent(), "");
    let o = talk.outcome();
    assert_session_failure(&o, false, "4.4.2", "RCPT TO");
    assert!(o.session.unwrap().text.contains("timed out"));
    let mut talk = Talk::new(config(TlsWant::May), envelope(&["b@x.test"]));
    talk.c.timeout();
    assert_session_failure(&talk.outcome(), false, "4.4.2", "greeting");
}

#[test]
fn smtputf8_only_when_needed_and_offered() {
    let utf8 = "250-mx\r\n250 SMTPUTF8\r\n";
    let mut flagged = envelope(&["b@x.test"]);
    flagged.smtputf8 = true;
    let (_, sent) = Talk::greeted(config(TlsWant::May), flagged.clone(), utf8);
    assert_eq!(sent, "MAIL FROM:<a@me.test> SMTPUTF8\r\n");
    let (_, sent) = Talk::greeted(config(TlsWant::May), envelope(&["b@x.test"]), utf8);
    assert_eq!(sent, "MAIL FROM:<a@me.test>\r\n");
    // Needed (flag, or a non-ASCII address) but not offered: bounce, 5.6.7.
    for env in [flagged, envelope(&["b@x.test", "jörg@x.test"])] {
        let (mut talk, sent) = Talk::greeted(config(TlsWant::May), env, EHLO);
        assert_eq!(sent, "QUIT\r\n");
        assert_session_failure(&talk.outcome(), true, "5.6.7", "MAIL FROM");
    }
}

#[test]
fn eight_bit_mime_when_offered() {
    let mut env = envelope(&["b@x.test"]);
    env.eight_bit = true;
    env.from = String::new();
    let (_, sent) = Talk::greeted(config(TlsWant::May), env.clone(), EHLO);
    assert_eq!(sent, "MAIL FROM:<> SIZE=100 BODY=8BITMIME\r\n");
    let (_, sent) = Talk::greeted(config(TlsWant::May), env, "250 mx\r\n");
    assert_eq!(sent, "MAIL FROM:<>\r\n");
}

#[test]
fn addresses_that_would_break_the_command_line_are_not_sent() {
    let rcpts = ["b@x.test\r\nRSET", "c@x.test"];
    let (mut talk, sent) = Talk::greeted(config(TlsWant::May), envelope(&rcpts), EHLO_PIPELINING);
    assert_eq!(
        sent,
        "MAIL FROM:<a@me.test> SIZE=100\r\nRCPT TO:<c@x.test>\r\nDATA\r\n"
    );
    talk.says("250 Ok\r\n550 5.1.1 no\r\n554 no valid recipients\r\n");
    let o = talk.outcome();
    let f = o.rcpts[0].as_ref().unwrap_err();
    assert_eq!(
        (f.permanent, f.code, f.enhanced.as_str()),
        (true, 0, "5.1.3")
    );
    let mut env = envelope(&["b@x.test"]);
    env.from = "a@x\r\nDATA".into();
    let (mut talk, sent) = Talk::greeted(config(TlsWant::May), env, EHLO);
    assert_eq!(sent, "QUIT\r\n");
    assert_session_failure(&talk.outcome(), true, "5.1.7", "MAIL FROM");
}

#[test]
fn failure_display() {
    let f = rejected(true, 550, "5.1.1", "no such user", "RCPT TO");
    assert_eq!(f.to_string(), "550 5.1.1 no such user");
    let f = rejected(false, 0, "4.4.2", "lost connection after DATA", "DATA");
    assert_eq!(f.to_string(), "4.4.2 lost connection after DATA");
}

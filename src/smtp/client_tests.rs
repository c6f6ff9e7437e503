//! Outbound session tests: the client against scripted server replies, in
//! memory. Each test plays a server line by line and checks what the client
//! sends back and how the session ends.

use super::*;

const EHLO: &str = "250-mx.test\r\n250-SIZE 1000000\r\n250 8BITMIME\r\n";
const EHLO_PIPELINING: &str =
    "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 1000000\r\n250 8BITMIME\r\n";
const ACCEPTED: &str = "250 2.0.0 Ok: queued as ABC";

fn config(tls: TlsWant) -> ClientConfig {
    ClientConfig {
        helo_name: "me.test".into(),
        tls,
        implicit_tls: false,
        auth: None,
        timeouts: Timeouts::default(),
    }
}

fn envelope(rcpts: &[&str]) -> Envelope {
    Envelope {
        from: "a@me.test".into(),
        rcpts: rcpts.iter().map(|r| r.to_string()).collect(),
        size: 100,
        smtputf8: false,
        eight_bit: false,
    }
}

/// A client and the server side of the conversation.
struct Talk {
    c: SmtpClient,
}

impl Talk {
    fn new(config: ClientConfig, envelope: Envelope) -> Talk {
        Talk {
            c: SmtpClient::new(config, envelope),
        }
    }

    /// The usual start: greeting and EHLO with `ehlo` as the reply.
    fn greeted(config: ClientConfig, envelope: Envelope, ehlo: &str) -> (Talk, String) {
        let mut t = Talk::new(config, envelope);
        assert_eq!(t.says("220 mx.test ESMTP\r\n"), "EHLO me.test\r\n");
        let sent = t.says(ehlo);
        (t, sent)
    }

    /// The server sends `bytes`; returns what the client sends back.
    fn says(&mut self, bytes: &str) -> String {
        assert_eq!(self.c.input(bytes.as_bytes()), bytes.len());
        self.sent()
    }

    /// Takes the client's output.
    fn sent(&mut self) -> String {
        let out = String::from_utf8(self.c.output().to_vec()).unwrap();
        self.c.output_sent(out.len());
        out
    }

    /// Answers WantBody events with `body` in chunks of `chunk` bytes;
    /// returns the data sent.
    fn body(&mut self, body: &[u8], chunk: usize) -> Vec<u8> {
        let mut wire = Vec::new();
        let mut chunks = body.chunks(chunk.max(1)).peekable();
        loop {
            match self.c.poll_event() {
                Some(Event::WantBody) => {}
                other => panic!("wanted WantBody, got {other:?}"),
            }
            let piece = chunks.next().unwrap_or(&[]);
            self.c.body(piece, chunks.peek().is_none());
            wire.extend_from_slice(self.c.output());
            self.c.output_sent(self.c.output().len());
            if matches!(self.c.state, State::DataEnd { .. }) {
                return wire;
            }
        }
    }

    fn outcome(&mut self) -> Outcome {
        match self.c.poll_event() {
            Some(Event::Done(outcome)) => outcome,
            other => panic!("wanted Done, got {other:?}"),
        }
    }
}

fn rejected(
    permanent: bool,
    code: u16,
    enhanced: &str,
    text: &str,
    stage: &'static str,
) -> Failure {
    Failure {
        permanent,
        code,
        enhanced: enhanced.into(),
        text: text.into(),
        stage,
    }
}

/// The session failed as a whole: every recipient carries the session's failure.
fn assert_session_failure(o: &Outcome, permanent: bool, enhanced: &str, stage: &str) {
    let f = o.session.as_ref().expect("a session failure");
    assert_eq!(
        (f.permanent, f.enhanced.as_str(), f.stage),
        (permanent, enhanced, stage),
        "{f:?}"
    );
    assert!(o.rcpts.iter().all(|r| r.as_ref() == Err(f)), "{o:?}");
}

#[test]
fn plain_ehlo_one_command_at_a_time() {
    let t = Timeouts {
        greeting: Duration::from_secs(1),
        command: Duration::from_secs(2),
        rcpt: Duration::from_secs(3),
        data_init: Duration::from_secs(4),
        data_block: Duration::from_secs(5),
        data_end: Duration::from_secs(6),
    };
    let mut c = config(TlsWant::May);
    c.timeouts = t;
    let mut talk = Talk::new(c, envelope(&["b@x.test", "c@x.test"]));
    let secs = |talk: &Talk| talk.c.phase_timeout().as_secs();
    assert_eq!(secs(&talk), 1);
    assert_eq!(talk.says("220 mx.test ESMTP\r\n"), "EHLO me.test\r\n");
    assert_eq!(secs(&talk), 2);
    assert_eq!(talk.says(EHLO), "MAIL FROM:<a@me.test> SIZE=100\r\n");
    assert_eq!(secs(&talk), 2);
    assert_eq!(talk.says("250 2.1.0 Ok\r\n"), "RCPT TO:<b@x.test>\r\n");
    assert_eq!(secs(&talk), 3);
    assert_eq!(talk.says("250 2.1.5 Ok\r\n"), "RCPT TO:<c@x.test>\r\n");
    assert_eq!(talk.says("250 2.1.5 Ok\r\n"), "DATA\r\n");
    assert_eq!(secs(&talk), 4);
    assert_eq!(talk.says("354 go ahead\r\n"), "");
    assert_eq!(secs(&talk), 5);
    assert_eq!(
        talk.body(b"Subject: hi\n\nhello\n", 100),
        b"Subject: hi\r\n\r\nhello\r\n.\r\n"
    );
    assert_eq!(secs(&talk), 6);
    assert_eq!(talk.says(&format!("{ACCEPTED}\r\n")), "QUIT\r\n");
    let o = talk.outcome();
    assert_eq!(o.session, None);
    assert_eq!(
        o.rcpts,
        vec![Ok(ACCEPTED.to_string()), Ok(ACCEPTED.to_string())]
    );
    // Over: later bytes and events change nothing.
    assert_eq!(talk.says("221 2.0.0 Bye\r\n"), "");
    talk.c.closed();
    talk.c.timeout();
    assert_eq!(talk.c.poll_event(), None);
}

#[test]
fn default_timeouts_are_the_rfc_ones() {
    let t = Timeouts::default();
    let secs = [
        t.greeting,
        t.command,
        t.rcpt,
        t.data_init,
        t.data_block,
        t.data_end,
    ]
    .map(|d| d.as_secs());
    assert_eq!(secs, [300, 300, 300, 120, 180, 600]);
}

#[test]
fn pipelining_sends_mail_rcpts_and_data_at_once() {
    let (mut talk, sent) = Talk::greeted(
        config(TlsWant::May),
        envelope(&["b@x.test", "c@x.test"]),
        EHLO_PIPELINING,
    );
    assert_eq!(
        sent,
        "MAIL FROM:<a@me.test> SIZE=100\r\nRCPT TO:<b@x.test>\r\nRCPT TO:<c@x.test>\r\nDATA\r\n"
    );
    // The replies come in pieces: nothing more is sent until 354.
    assert_eq!(talk.says("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n25"), "");
    assert_eq!(talk.c.phase_timeout(), Timeouts::default().rcpt);
    assert_eq!(talk.says("0 2.1.5 Ok\r\n"), "");
    assert_eq!(talk.c.phase_timeout(), Timeouts::default().data_init);
    assert_eq!(talk.says("354 go\r\n"), "");
    assert_eq!(talk.body(b"x", 1), b"x\r\n.\r\n");
    assert_eq!(talk.says("250 ok\r\n"), "QUIT\r\n");
    let o = talk.outcome();
    assert!(o.rcpts.iter().all(|r| r == &Ok("250 ok".to_string())));
}

#[test]
fn helo_after_ehlo_refused() {
    for refusal in [
        "502 5.5.1 Error: command not implemented\r\n",
        "500 what?\r\n",
    ] {
        let (mut talk, sent) =
            Talk::greeted(config(TlsWant::May), envelope(&["b@x.test"]), refusal);
        assert_eq!(sent, "HELO me.test\r\n");
        // No extensions after HELO: no SIZE parameter.
        assert_eq!(talk.says("250 mx.test\r\n"), "MAIL FROM:<a@me.test>\r\n");
    }
    // HELO refused too: the session fails.
    let (mut talk, _) = Talk::greeted(config(TlsWant::May), envelope(&["b@x.test"]), "500 no\r\n");
    assert_eq!(talk.says("550 go away\r\n"), "QUIT\r\n");
    assert_session_failure(&talk.outcome(), true, "5.0.0", "HELO");
    // EHLO 4xx: temporary, no HELO.
    let (mut talk, sent) = Talk::greeted(
        config(TlsWant::May),
        envelope(&["b@x.test"]),
        "451 busy\r\n",
    );
    assert_eq!(sent, "QUIT\r\n");
    assert_session_failure(&talk.outcome(), false, "4.0.0", "EHLO");
}

#[test]
fn message_larger_than_the_server_limit_is_not_sent() {
    let mut env = envelope(&["b@x.test", "c@x.test"]);
    env.size = 2000;
    let (mut talk, sent) = Talk::greeted(
        config(TlsWant::May),
        env.clone(),
        "250-mx\r\n250 SIZE 1999\r\n",
    );
    assert_eq!(sent, "QUIT\r\n");
    let o = talk.outcome();
    assert_session_failure(&o, true, "5.3.4", "MAIL FROM");
    assert_eq!(o.session.unwrap().code, 0);
    // SIZE without a limit, or a limit not exceeded: sent with SIZE=.
    for ehlo in [
        "250-mx\r\n250 SIZE\r\n",
        "250-mx\r\n250 SIZE 0\r\n",
        "250-mx\r\n250 size 2000\r\n",
    ] {
        let (_, sent) = Talk::greeted(config(TlsWant::May), env.clone(), ehlo);
        assert_eq!(sent, "MAIL FROM:<a@me.test> SIZE=2000\r\n");
    }
}

/// Four recipients: accepted, unknown, deferred, accepted; then `end` to the dot.
fn mixed_verdicts(pipelining: bool, end: &str) -> Outcome {
    let rcpts = ["b@x.test", "c@x.test", "d@x.test", "e@x.test"];
    let ehlo = if pipelining { EHLO_PIPELINING } else { EHLO };
    let (mut talk, _) = Talk::greeted(config(TlsWant::May), envelope(&rcpts), ehlo);
    let replies = [
        "250 2.1.0 Ok\r\n",
        "250 2.1.5 Ok\r\n",
        "550 5.1.1 <c@x.test>: Recipient address rejected: User unknown\r\n",
        "450 greylisted, try later\r\n",
        "250 2.1.5 Ok\r\n",
    ];
    for r in replies {
        let sent = talk.says(r);
        assert!(!sent.contains("QUIT"), "{sent}");
    }
    if !pipelining {
        // The DATA went after the last RCPT reply.
        assert!(talk.c.output().is_empty());
    }
    talk.says("354 go\r\n");
    talk.body(b"hi\n", 3);
    assert_eq!(talk.says(end), "QUIT\r\n");
    let o = talk.outcome();
    assert_eq!(o.session, None);
    assert_eq!(
        o.rcpts[1],
        Err(rejected(
            true,
            550,
            "5.1.1",
            "<c@x.test>: Recipient address rejected: User unknown",
            "RCPT TO"
        ))
    );
    assert_eq!(
        o.rcpts[2],
        Err(rejected(
            false,
            450,
            "4.0.0",
            "greylisted, try later",
            "RCPT TO"
        ))
    );
    o
}

#[test]
fn mixed_recipient_verdicts() {
    for pipelining in [false, true] {
        let o = mixed_verdicts(pipelining, "250 2.0.0 queued\r\n");
        assert_eq!(o.rcpts[0], Ok("250 2.0.0 queued".into()));
        assert_eq!(o.rcpts[3], Ok("250 2.0.0 queued".into()));
        // The final dot fails: every recipient accepted at RCPT fails with it.
        let o = mixed_verdicts(pipelining, "451 4.3.0 Error: queue file write error\r\n");
        let f = rejected(
            false,
            451,
            "4.3.0",
            "Error: queue file write error",
            "end of DATA",
        );
        assert_eq!((&o.rcpts[0], &o.rcpts[3]), (&Err(f.clone()), &Err(f)));
    }
}

#[test]
fn all_recipients_refused_means_no_data() {
    let refuse = "550 5.1.1 unknown\r\n";
    let (mut talk, _) = Talk::greeted(
        config(TlsWant::May),
        envelope(&["b@x.test", "c@x.test"]),
        EHLO,
    );
    talk.says("250 Ok\r\n");
    assert_eq!(talk.says(refuse), "RCPT TO:<c@x.test>\r\n");
    assert_eq!(talk.says(refuse), "QUIT\r\n");
    let o = talk.outcome();
    assert_eq!(o.session, None);
    assert!(o
        .rcpts
        .iter()
        .all(|r| r.as_ref().is_err_and(|f| f.permanent)));

    // Pipelined: the DATA went already; the server refuses it (RFC 2920 3.1)...
    let (mut talk, _) = Talk::greeted(
        config(TlsWant::May),
        envelope(&["b@x.test"]),
        EHLO_PIPELINING,
    );
    assert_eq!(
        talk.says(&format!(
            "250 Ok\r\n{refuse}554 5.5.1 Error: no valid recipients\r\n"
        )),
        "QUIT\r\n"
    );
    let o = talk.outcome();
    assert_eq!(
        (o.session, o.rcpts[0].as_ref().unwrap_err().code),
        (None, 550)
    );
    // ...or, wrongly, accepts it: an empty message closes the DATA.
    let (mut talk, _) = Talk::greeted(
        config(TlsWant::May),
        envelope(&["b@x.test"]),
        EHLO_PIPELINING,
    );
    assert_eq!(talk.says(&format!("250 Ok\r\n{refuse}354 go\r\n")), ".\r\n");
    assert_eq!(talk.c.poll_event(), None);
    assert_eq!(talk.says("250 Ok\r\n"), "QUIT\r\n");
    assert_eq!(talk.outcome().rcpts[0].as_ref().unwrap_err().code, 550);
}

#[test]
fn mail_refused() {
    let (mut talk, _) = Talk::greeted(config(TlsWant::May), envelope(&["b@x.test"]), EHLO);
    assert_eq!(talk.says("553 5.7.1 sender rejected\r\n"), "QUIT\r\n");
    assert_session_failure(&talk.outcome(), true, "5.7.1", "MAIL FROM");
    // Pipelined: the RCPT and DATA replies are read, the verdict is MAIL's.
    let (mut talk, _) = Talk::greeted(
        config(TlsWant::May),
        envelope(&["b@x.test", "c@x.test"]),
        EHLO_PIPELINING,
    );
    let replies =
        "452 4.3.1 full\r\n503 5.5.1 need MAIL\r\n503 5.5.1 need MAIL\r\n503 5.5.1 need MAIL\r\n";
    assert_eq!(talk.says(replies), "QUIT\r\n");
    assert_session_failure(&talk.outcome(), false, "4.3.1", "MAIL FROM");
}

#[test]
fn greeting_refused() {
    for (greeting, permanent, quit) in [
        ("450 4.3.2 busy\r\n", false, "QUIT\r\n"),
        ("554 5.7.1 no thanks\r\n", true, "QUIT\r\n"),
        // 421: the server closes; no QUIT.
        ("421 4.3.2 shutting down\r\n", false, ""),
    ] {
        let mut talk = Talk::new(config(TlsWant::May), envelope(&["b@x.test", "c@x.test"]));
        assert_eq!(talk.says(greeting), quit);
        let o = talk.outcome();
        assert_session_failure(&o, permanent, &greeting[4..9], "greeting");
        assert_eq!(o.session.unwrap().code.to_string(), greeting[..3]);
    }
}

#[test]
fn reply_421_mid_transaction_fails_the_session() {
    let (mut talk, _) = Talk::greeted(
        config(TlsWant::May),
        envelope(&["b@x.test", "c@x.test"]),
        EHLO,
    );
    talk.says("250 Ok\r\n");
    talk.says("550 5.1.1 unknown\r\n");
    assert_eq!(talk.says("421 4.4.2 timeout\r\n"), "");
    let o = talk.outcome();
    let f = o.session.clone().unwrap();
    assert_eq!((f.code, f.permanent, f.stage), (421, false, "RCPT TO"));
    assert_eq!(o.rcpts[0].as_ref().unwrap_err().code, 550);
    assert_eq!(o.rcpts[1], Err(f));
}

#[path = "client_tests_data.rs"]
mod data;

#[path = "client_tests_tls.rs"]
mod tls;

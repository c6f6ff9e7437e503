//! Session state machine tests with an in-memory host: every reply code the
//! session owns, pipelining, DATA and BDAT paths, limits and the commit step.

use super::*;

#[derive(Default)]
struct MemHost {
    room: bool,
    open: bool,
    data: Vec<u8>,
    ended: Vec<Vec<u8>>,
    aborted: usize,
    next_id: u32,
    /// Failed logins so far, for the hold the host asks for.
    failures: u32,
}

impl Host for MemHost {
    fn check_rcpt(&mut self, rcpt: &Mailbox) -> RcptCheck {
        match (rcpt.local.as_str(), rcpt.domain.as_str()) {
            (_, "remote.test") => RcptCheck::Remote,
            ("alice" | "bob", _) => RcptCheck::Local,
            _ => RcptCheck::UnknownUser,
        }
    }
    fn queue_has_room(&mut self) -> bool {
        self.room
    }
    fn begin_message(&mut self, _txn: &Transaction) -> Result<String, Reply> {
        assert!(!self.open, "one message at a time");
        self.open = true;
        self.data.clear();
        self.next_id += 1;
        Ok(format!("ID{}", self.next_id))
    }
    fn message_data(&mut self, bytes: &[u8]) -> Result<(), Reply> {
        assert!(self.open);
        self.data.extend_from_slice(bytes);
        Ok(())
    }
    fn end_message(&mut self) {
        assert!(self.open);
        self.open = false;
        self.ended.push(std::mem::take(&mut self.data));
    }
    fn abort_message(&mut self) {
        self.open = false;
        self.aborted += 1;
    }
    fn authenticate(&mut self, _m: Mechanism, user: &str, password: &[u8]) -> Result<(), Duration> {
        if (user, password) == ("alice", b"secret".as_slice()) {
            return Ok(());
        }
        self.failures += 1;
        Err(Duration::from_secs(u64::from(
            self.failures.saturating_sub(2),
        )))
    }
    fn owns_sender(&mut self, login: &str, sender: &Mailbox) -> bool {
        sender.local == login
    }
}

fn config() -> SessionConfig {
    SessionConfig {
        hostname: "mx.test".into(),
        max_message_size: 1000,
        max_recipients: 3,
        max_errors: 5,
        starttls: false,
        auth: false,
        plaintext_auth: false,
        require_auth: false,
        sender_login: false,
    }
}

fn session() -> (Session, MemHost) {
    session_with(config(), false)
}

fn session_with(config: SessionConfig, relay_client: bool) -> (Session, MemHost) {
    let mut s = Session::new(config, "127.0.0.1:4000".parse().unwrap(), relay_client);
    let greeting = take(&mut s);
    assert_eq!(greeting, "220 mx.test ESMTP picomta\r\n");
    (
        s,
        MemHost {
            room: true,
            ..Default::default()
        },
    )
}

/// Everything the session has written and not yet taken.
fn take(s: &mut Session) -> String {
    let out = String::from_utf8_lossy(s.output()).into_owned();
    let n = s.output().len();
    s.output_sent(n);
    out
}

/// Feeds all of `input` (committing finished messages with the next id) and
/// returns the reply codes in order.
fn run(s: &mut Session, host: &mut MemHost, input: &[u8]) -> Vec<String> {
    let mut pos = 0;
    for _ in 0..10_000 {
        let used = s.input(&input[pos..], host);
        pos += used;
        if matches!(s.mode, Mode::AwaitingCommit) {
            s.commit_done(Ok(format!("ID{}", host.next_id)));
            continue;
        }
        if used == 0 || pos >= input.len() || s.is_closed() {
            break;
        }
    }
    take(s)
        .split("\r\n")
        .filter(|l| l.len() >= 4 && l.as_bytes()[3] == b' ')
        .map(|l| l.to_string())
        .collect()
}

fn codes(replies: &[String]) -> Vec<&str> {
    replies.iter().map(|r| &r[..3]).collect()
}

#[test]
fn ehlo_advertises_extensions() {
    let (mut s, mut h) = session();
    s.input(b"EHLO client.test\r\n", &mut h);
    let out = take(&mut s);
    for kw in [
        "PIPELINING",
        "SIZE 1000",
        "8BITMIME",
        "ENHANCEDSTATUSCODES",
        "SMTPUTF8",
        "CHUNKING",
    ] {
        assert!(
            out.contains(&format!("250-{kw}\r\n")) || out.contains(&format!("250 {kw}\r\n")),
            "{kw}: {out}"
        );
    }
    assert!(out.starts_with("250-mx.test\r\n"));
}

#[test]
fn whole_pipelined_transaction_in_one_write() {
    let (mut s, mut h) = session();
    let r = run(
        &mut s,
        &mut h,
        b"EHLO c\r\nMAIL FROM:<x@y.test>\r\nRCPT TO:<alice@local.test>\r\nRCPT TO:<nobody@local.test>\r\nRCPT TO:<bob@local.test>\r\nDATA\r\nSubject: t\r\n\r\n..dot\r\n.\r\nQUIT\r\n",
    );
    assert_eq!(
        codes(&r),
        ["250", "250", "250", "550", "250", "354", "250", "221"]
    );
    assert!(r[3].starts_with("550 5.1.1"), "{}", r[3]);
    assert!(r[6].contains("queued as ID1"));
    assert!(s.is_closed());
    let msg = String::from_utf8(h.ended[0].clone()).unwrap();
    assert!(
        msg.starts_with(
            "Received: from c ([127.0.0.1])\n\tby mx.test (picomta) with ESMTP id ID1;"
        ),
        "{msg}"
    );
    assert!(msg.ends_with("Subject: t\n\n.dot\n"), "{msg}");
}

#[test]
fn sequence_errors() {
    let (mut s, mut h) = session();
    let r = run(&mut s, &mut h, b"MAIL FROM:<a@b.test>\r\nEHLO c\r\nRCPT TO:<alice@l.test>\r\nDATA\r\nMAIL FROM:<>\r\nMAIL FROM:<>\r\nDATA\r\n");
    assert_eq!(
        codes(&r),
        ["503", "250", "503", "503", "250", "503", "503", "421"]
    );
    assert!(r
        .iter()
        .filter(|l| l.starts_with("503"))
        .all(|l| l.starts_with("503 5.5.1")));
}

#[test]
fn rcpt_policy_replies() {
    let (mut s, mut h) = session();
    let r = run(&mut s, &mut h, b"HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<x@remote.test>\r\nRCPT TO:<alice@l.test>\r\nRCPT TO:<alice@l.test>\r\nRCPT TO:<bob@l.test>\r\nRCPT TO:<bob@l.test>\r\n");
    assert_eq!(codes(&r), ["250", "250", "554", "250", "250", "250", "452"]);
    assert!(r[2].starts_with("554 5.7.1"));
    assert!(r[6].starts_with("452 4.5.3"));
}

#[test]
fn simple_commands() {
    let (mut s, mut h) = session();
    let r = run(
        &mut s,
        &mut h,
        b"NOOP\r\nVRFY alice\r\nVRFY nobody\r\nHELP\r\nRSET\r\nFOO\r\nSTARTTLS\r\n",
    );
    assert_eq!(codes(&r), ["250", "252", "252", "214", "250", "500", "502"]);
    assert!(r[1].starts_with("252 2.5.2"));
    assert_eq!(r[1][3..], r[2][3..], "VRFY never tells users apart");
    assert!(r[5].starts_with("500 5.5.1"));
}

#[test]
fn long_line_is_rejected_and_session_goes_on() {
    let (mut s, mut h) = session();
    let mut input = b"NOOP ".to_vec();
    input.extend(std::iter::repeat_n(b'x', 2000));
    input.extend_from_slice(b"\r\nNOOP\r\n");
    let r = run(&mut s, &mut h, &input);
    assert_eq!(r, ["500 5.5.2 Error: line too long", "250 2.0.0 Ok"]);
}

#[test]
fn too_many_errors_closes() {
    let (mut s, mut h) = session();
    let r = run(&mut s, &mut h, b"A\r\nB\r\nC\r\nD\r\nE\r\nNOOP\r\n");
    assert_eq!(codes(&r), ["500", "500", "500", "500", "500", "421"]);
    assert!(r[5].starts_with("421 4.7.0"));
    assert!(s.is_closed());
}

#[test]
fn size_limits() {
    let (mut s, mut h) = session();
    let mut input = b"EHLO c\r\nMAIL FROM:<a@b.test> SIZE=1001\r\nMAIL FROM:<a@b.test> SIZE=10\r\nRCPT TO:<alice@l.test>\r\nDATA\r\n".to_vec();
    input.extend(std::iter::repeat_n(b'y', 1500));
    input.extend_from_slice(b"\r\n.\r\nNOOP\r\n");
    let r = run(&mut s, &mut h, &input);
    assert_eq!(codes(&r), ["250", "552", "250", "250", "354", "552", "250"]);
    assert!(r[1].starts_with("552 5.3.4") && r[5].starts_with("552 5.3.4"));
    assert_eq!(h.aborted, 1);
    assert!(h.ended.is_empty());
}

#[test]
fn queue_full_refuses_mail() {
    let (mut s, mut h) = session();
    h.room = false;
    let r = run(&mut s, &mut h, b"EHLO c\r\nMAIL FROM:<a@b.test>\r\n");
    assert_eq!(r[1], "452 4.3.1 Insufficient system storage");
}

#[test]
fn smuggling_is_one_rejected_message() {
    for smuggle in [&b"\n.\n"[..], b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r\n.\r"] {
        let (mut s, mut h) = session();
        let mut input =
            b"EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<alice@l.test>\r\nDATA\r\nhello".to_vec();
        input.extend_from_slice(smuggle);
        input.extend_from_slice(
            b"MAIL FROM:<evil@b.test>\r\nRCPT TO:<bob@l.test>\r\nDATA\r\nevil\r\n.\r\nNOOP\r\n",
        );
        let r = run(&mut s, &mut h, &input);
        assert_eq!(
            codes(&r),
            ["250", "250", "250", "354", "550", "250"],
            "{smuggle:?}: {r:?}"
        );
        assert!(r[4].starts_with("550 5.6.0"));
        assert!(h.ended.is_empty(), "nothing accepted for {smuggle:?}");
    }
}

#[test]
fn bdat_chunks_and_rejections() {
    let (mut s, mut h) = session();
    let r = run(
        &mut s,
        &mut h,
        b"EHLO c\r\nBDAT 3\r\nabcMAIL FROM:<a@b.test>\r\nRCPT TO:<alice@l.test>\r\nBDAT 8\r\nSub: x\r\nBDAT 5 LAST\r\n\r\nb\r\nDATA\r\n",
    );
    assert_eq!(
        codes(&r),
        ["250", "503", "250", "250", "250", "250", "503"],
        "{r:?}"
    );
    assert!(r[4].starts_with("250 2.0.0 8 octets"), "{r:?}");
    let msg = String::from_utf8(h.ended[0].clone()).unwrap();
    assert!(msg.ends_with("\nSub: x\n\nb\n"), "{msg:?}");
}

#[test]
fn bdat_bare_lf_is_rejected() {
    let (mut s, mut h) = session();
    let r = run(
        &mut s,
        &mut h,
        b"EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<alice@l.test>\r\nBDAT 5 LAST\r\na\nb\r\n",
    );
    assert_eq!(codes(&r), ["250", "250", "250", "550"]);
    assert!(h.ended.is_empty());
}

#[test]
fn input_waits_for_commit() {
    let (mut s, mut h) = session();
    let input = b"HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<alice@l.test>\r\nDATA\r\nx\r\n.\r\nNOOP\r\n";
    let used = s.input(input, &mut h);
    assert_eq!(&input[used..], b"NOOP\r\n", "NOOP waits for the commit");
    assert!(!s.wants_input());
    s.commit_done(Err(Reply::new(
        451,
        "4.3.0",
        "Error: queue file write error",
    )));
    assert_eq!(s.input(&input[used..], &mut h), 6);
    assert!(take(&mut s).ends_with("451 4.3.0 Error: queue file write error\r\n250 2.0.0 Ok\r\n"));
}

#[test]
fn timeout_in_data_aborts() {
    let (mut s, mut h) = session();
    run(
        &mut s,
        &mut h,
        b"HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<alice@l.test>\r\nDATA\r\npartial",
    );
    s.timeout(&mut h);
    assert_eq!(h.aborted, 1);
    assert!(take(&mut s).starts_with("421 4.4.2"));
    assert!(s.is_closed());
}

#[test]
fn utf8_recipient_needs_smtputf8() {
    let (mut s, mut h) = session();
    let r = run(&mut s, &mut h, "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<alïce@l.test>\r\nRSET\r\nMAIL FROM:<a@b.test> SMTPUTF8\r\nRCPT TO:<bob@l.test>\r\n".as_bytes());
    assert_eq!(codes(&r), ["250", "250", "553", "250", "250", "250"]);
}

#[test]
fn output_backpressure_stops_input() {
    let (mut s, mut h) = session();
    let input = b"NOOP\r\n".repeat(10_000);
    let used = s.input(&input, &mut h);
    assert!(used < input.len(), "stops before consuming everything");
    assert!(s.output().len() >= OUTPUT_HIGH_WATER);
    assert!(!s.wants_input());
}

/// Deterministic pseudo-random byte streams, built from protocol fragments and
/// noise, fed in random chunks: the session never panics, its output stays
/// bounded, and it always consumes input or says why not.
#[test]
fn random_input_never_panics() {
    const FRAGMENTS: &[&[u8]] = &[
        b"EHLO c\r\n",
        b"HELO c\r\n",
        b"MAIL FROM:<a@b.test>\r\n",
        b"MAIL FROM:<>\r\n",
        b"RCPT TO:<alice@l.test>\r\n",
        b"RCPT TO:<x@remote.test>\r\n",
        b"DATA\r\n",
        b"BDAT 5\r\n",
        b"BDAT 3 LAST\r\n",
        b"BDAT 0 LAST\r\n",
        b"RSET\r\n",
        b"NOOP\r\n",
        b"\r\n.\r\n",
        b".\r\n",
        b"\n.\n",
        b"\r",
        b"\n",
        b"..",
        b"QUIT\r\n",
        b"MAIL FROM:<a@b.test> SIZE=99999999999999999999\r\n",
        b"\xff\xfe\x00",
    ];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..300 {
        let mut input = Vec::new();
        for _ in 0..(next() % 40) {
            if next() % 4 == 0 {
                input.extend((0..next() % 20).map(|_| next() as u8));
            } else {
                input.extend_from_slice(FRAGMENTS[(next() % FRAGMENTS.len() as u64) as usize]);
            }
        }
        let (mut s, mut h) = session();
        let (mut pos, mut end) = (0, 0);
        // Like the driver: unconsumed bytes are offered again with more input.
        for _ in 0..10_000 {
            if pos >= input.len() || s.is_closed() {
                break;
            }
            end = (end.max(pos) + 1 + (next() % 64) as usize).min(input.len());
            let used = s.input(&input[pos..end], &mut h);
            assert!(used <= end - pos);
            pos += used;
            if matches!(s.mode, Mode::AwaitingCommit) {
                s.commit_done(Ok("ID".into()));
            }
            assert!(
                s.output().len() < 2 * OUTPUT_HIGH_WATER,
                "output is bounded"
            );
            take(&mut s);
            if used == 0 && end == input.len() {
                // Only a partial command line can be left over at the end.
                assert!(
                    !input[pos..].contains(&b'\n'),
                    "stuck on {:?}",
                    &input[pos..]
                );
                break;
            }
        }
    }
}

#[path = "server_auth_tests.rs"]
mod auth;

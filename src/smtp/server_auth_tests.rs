//! STARTTLS, AUTH and relay policy in the sans-IO session, with the in-memory
//! host of the session tests (alice/secret is the one good login).

use super::*;
use crate::net::tls::TlsInfo;

fn tls_info() -> TlsInfo {
    TlsInfo {
        protocol: "TLSv1.3",
        cipher: "TLS13_AES_256_GCM_SHA384",
    }
}

/// A submission-like session: STARTTLS and AUTH available.
fn secure_config() -> SessionConfig {
    SessionConfig {
        starttls: true,
        auth: true,
        ..config()
    }
}

/// A session already through STARTTLS and a fresh EHLO.
fn encrypted(config: SessionConfig) -> (Session, MemHost) {
    let (mut s, mut h) = session_with(config, false);
    s.tls_established(tls_info());
    assert_eq!(codes(&run(&mut s, &mut h, b"EHLO c.test\r\n")), ["250"]);
    (s, h)
}

const PLAIN_ALICE: &str = "AGFsaWNlAHNlY3JldA=="; // \0alice\0secret
const PLAIN_ALICE_WRONG: &str = "AGFsaWNlAHdyb25n"; // \0alice\0wrong

#[test]
fn ehlo_offers_starttls_before_and_auth_after_tls() {
    let (mut s, mut h) = session_with(secure_config(), false);
    s.input(b"EHLO c.test\r\n", &mut h);
    let before = take(&mut s);
    assert!(before.contains("250-STARTTLS\r\n"), "{before}");
    assert!(!before.contains("AUTH"), "{before}");

    let (mut s, mut h) = encrypted(secure_config());
    s.input(b"EHLO c.test\r\n", &mut h);
    let after = take(&mut s);
    assert!(after.contains("250-AUTH PLAIN LOGIN\r\n"), "{after}");
    assert!(!after.contains("STARTTLS"), "{after}");
}

#[test]
fn input_after_starttls_is_left_unread() {
    let (mut s, mut h) = session_with(secure_config(), false);
    run(&mut s, &mut h, b"EHLO c.test\r\n");
    let input = b"STARTTLS\r\nNOOP\r\n";
    let used = s.input(input, &mut h);
    assert_eq!(used, b"STARTTLS\r\n".len());
    assert_eq!(take(&mut s), "220 2.0.0 Ready to start TLS\r\n");
    assert!(s.tls_requested() && !s.wants_input());
    // Offering the rest again does nothing until TLS is up.
    assert_eq!(s.input(&input[used..], &mut h), 0);
    assert_eq!(take(&mut s), "");
}

#[test]
fn tls_forgets_everything_learned_before() {
    let (mut s, mut h) = session_with(secure_config(), false);
    let r = run(&mut s, &mut h, b"EHLO c.test\r\nMAIL FROM:<a@x.test>\r\n");
    assert_eq!(codes(&r), ["250", "250"]);
    // STARTTLS refused inside a transaction; after RSET it works.
    let r = run(&mut s, &mut h, b"STARTTLS\r\nRSET\r\nSTARTTLS\r\n");
    assert_eq!(codes(&r), ["503", "250", "220"]);
    s.tls_established(tls_info());
    let r = run(&mut s, &mut h, b"MAIL FROM:<a@x.test>\r\n");
    assert_eq!(r, ["503 5.5.1 Error: send HELO/EHLO first"]);
}

#[test]
fn starttls_refusals() {
    let (mut s, mut h) = session();
    let r = run(&mut s, &mut h, b"EHLO c.test\r\nSTARTTLS\r\n");
    assert_eq!(r[1], "502 5.5.1 Error: command not implemented");
    let (mut s, mut h) = encrypted(secure_config());
    let r = run(&mut s, &mut h, b"STARTTLS\r\n");
    assert_eq!(r, ["554 5.5.1 Error: TLS already active"]);
}

#[test]
fn auth_needs_tls_unless_allowed_in_plaintext() {
    let (mut s, mut h) = session_with(secure_config(), false);
    let r = run(
        &mut s,
        &mut h,
        b"EHLO c.test\r\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n",
    );
    assert_eq!(
        r[1],
        "538 5.7.11 Encryption required for requested authentication mechanism"
    );
    let plain = SessionConfig {
        plaintext_auth: true,
        ..secure_config()
    };
    let (mut s, mut h) = session_with(plain, false);
    let r = run(
        &mut s,
        &mut h,
        b"EHLO c.test\r\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n",
    );
    assert_eq!(r[1], "235 2.7.0 Authentication successful");
    let (mut s, mut h) = session();
    let r = run(
        &mut s,
        &mut h,
        b"EHLO c.test\r\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n",
    );
    assert_eq!(r[1], "503 5.5.1 Error: authentication not enabled");
}

#[test]
fn auth_plain_and_login_exchanges() {
    let (mut s, mut h) = encrypted(secure_config());
    let r = run(
        &mut s,
        &mut h,
        format!("AUTH PLAIN\r\n{PLAIN_ALICE}\r\n").as_bytes(),
    );
    assert_eq!(r, ["334 ", "235 2.7.0 Authentication successful"]);
    let r = run(&mut s, &mut h, b"AUTH PLAIN\r\n");
    assert_eq!(r, ["503 5.5.1 Error: already authenticated"]);

    let (mut s, mut h) = encrypted(secure_config());
    let r = run(&mut s, &mut h, b"AUTH LOGIN\r\nYWxpY2U=\r\nc2VjcmV0\r\n");
    assert_eq!(
        r,
        [
            "334 VXNlcm5hbWU6",
            "334 UGFzc3dvcmQ6",
            "235 2.7.0 Authentication successful"
        ]
    );

    let (mut s, mut h) = encrypted(secure_config());
    let r = run(&mut s, &mut h, b"AUTH LOGIN YWxpY2U=\r\nc2VjcmV0\r\n");
    assert_eq!(codes(&r), ["334", "235"]);
}

#[test]
fn auth_errors() {
    let (mut s, mut h) = encrypted(secure_config());
    let r = run(
        &mut s,
        &mut h,
        b"AUTH CRAM-MD5\r\nAUTH LOGIN\r\n*\r\nAUTH PLAIN !!!\r\nMAIL FROM:<a@x.test>\r\nAUTH PLAIN\r\n",
    );
    assert_eq!(
        r,
        [
            "504 5.5.4 Unrecognized authentication type",
            "334 VXNlcm5hbWU6",
            "501 5.7.0 Authentication aborted",
            "501 5.5.2 Error: invalid base64 data",
            "250 2.1.0 Ok",
            "503 5.5.1 Error: MAIL transaction in progress",
        ]
    );
    let (mut s, mut h) = session_with(secure_config(), false);
    s.tls_established(tls_info());
    let r = run(
        &mut s,
        &mut h,
        format!("AUTH PLAIN {PLAIN_ALICE}\r\n").as_bytes(),
    );
    assert_eq!(r, ["503 5.5.1 Error: send EHLO first"]);
}

#[test]
fn failed_logins_are_held_then_the_session_closes() {
    let (mut s, mut h) = encrypted(secure_config());
    let wrong = format!("AUTH PLAIN {PLAIN_ALICE_WRONG}\r\n");
    for round in 1..=3u64 {
        let r = run(&mut s, &mut h, wrong.as_bytes());
        assert_eq!(
            r[0], "535 5.7.8 Error: authentication failed",
            "round {round}"
        );
        let hold = s.take_hold();
        if round < 3 {
            assert_eq!(hold, None, "round {round}");
            assert!(!s.is_closed());
        } else {
            assert_eq!(hold, Some(Duration::from_secs(1)));
            assert_eq!(
                r[1],
                "421 4.7.0 mx.test Error: too many authentication failures"
            );
            assert!(s.is_closed());
        }
    }
}

#[test]
fn submission_needs_tls_then_auth_before_mail() {
    let submission = SessionConfig {
        require_auth: true,
        ..secure_config()
    };
    let (mut s, mut h) = session_with(submission.clone(), false);
    let r = run(
        &mut s,
        &mut h,
        b"EHLO c.test\r\nMAIL FROM:<alice@x.test>\r\n",
    );
    assert_eq!(r[1], "530 5.7.0 Must issue a STARTTLS command first");
    let (mut s, mut h) = encrypted(submission);
    let r = run(&mut s, &mut h, b"MAIL FROM:<alice@x.test>\r\n");
    assert_eq!(r, ["530 5.7.0 Authentication required"]);
    let r = run(
        &mut s,
        &mut h,
        format!("AUTH PLAIN {PLAIN_ALICE}\r\nMAIL FROM:<alice@x.test>\r\n").as_bytes(),
    );
    assert_eq!(codes(&r), ["235", "250"]);
}

#[test]
fn relaying_needs_a_login_or_a_trusted_network() {
    let rcpt = b"EHLO c.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<z@remote.test>\r\n";
    let (mut s, mut h) = session_with(secure_config(), false);
    let r = run(&mut s, &mut h, rcpt);
    assert_eq!(r[2], "554 5.7.1 <z@remote.test>: Relay access denied");
    let (mut s, mut h) = session_with(secure_config(), true);
    assert_eq!(codes(&run(&mut s, &mut h, rcpt)), ["250", "250", "250"]);

    let (mut s, mut h) = encrypted(secure_config());
    let r = run(
        &mut s,
        &mut h,
        format!("AUTH PLAIN {PLAIN_ALICE}\r\n").as_bytes(),
    );
    assert_eq!(codes(&r), ["235"]);
    assert_eq!(codes(&run(&mut s, &mut h, rcpt)), ["250", "250", "250"]);
}

#[test]
fn sender_login_ties_mail_from_to_the_login() {
    let config = SessionConfig {
        sender_login: true,
        ..secure_config()
    };
    let (mut s, mut h) = encrypted(config);
    run(
        &mut s,
        &mut h,
        format!("AUTH PLAIN {PLAIN_ALICE}\r\n").as_bytes(),
    );
    let r = run(
        &mut s,
        &mut h,
        b"MAIL FROM:<bob@x.test>\r\nMAIL FROM:<>\r\nRSET\r\nMAIL FROM:<alice@x.test>\r\n",
    );
    assert_eq!(
        r,
        [
            "553 5.7.1 <bob@x.test>: Sender address rejected: not owned by user alice",
            "250 2.1.0 Ok",
            "250 2.0.0 Ok",
            "250 2.1.0 Ok",
        ]
    );
}

#[test]
fn received_header_names_tls_and_auth() {
    let (mut s, mut h) = encrypted(secure_config());
    run(
        &mut s,
        &mut h,
        format!("AUTH PLAIN {PLAIN_ALICE}\r\n").as_bytes(),
    );
    let r = run(
        &mut s,
        &mut h,
        b"MAIL FROM:<a@x.test>\r\nRCPT TO:<bob@x.test>\r\nDATA\r\nHi\r\n.\r\n",
    );
    assert_eq!(codes(&r), ["250", "250", "354", "250"]);
    let message = String::from_utf8_lossy(&h.ended[0]).into_owned();
    assert!(
        message.contains("\n\t(using TLSv1.3 with cipher TLS13_AES_256_GCM_SHA384)\n"),
        "{message}"
    );
    assert!(message.contains(" with ESMTPSA id "), "{message}");
}

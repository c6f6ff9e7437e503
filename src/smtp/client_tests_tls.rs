//! Outbound session tests, continued: STARTTLS (May, Require, Never, refused)
//! and logging in to a smarthost with AUTH PLAIN and LOGIN.

use super::*;

#[test]
fn starttls_when_offered() {
    let ehlo = "250-mx.test\r\n250-STARTTLS\r\n250 PIPELINING\r\n";
    let (mut talk, sent) = Talk::greeted(config(TlsWant::May), envelope(&["b@x.test"]), ehlo);
    assert_eq!(sent, "STARTTLS\r\n");
    // Bytes after the 220 came before TLS: dropped, never read as replies.
    assert_eq!(
        talk.says("220 2.0.0 Ready\r\n250-mx.test\r\n250 PIPELINING\r\n"),
        ""
    );
    assert_eq!(talk.c.poll_event(), Some(Event::StartTls));
    assert_eq!(talk.says("250 injected\r\n"), "");
    talk.c.tls_started();
    assert_eq!(talk.sent(), "EHLO me.test\r\n");
    // Whatever it says now, STARTTLS is not sent twice.
    assert_eq!(
        talk.says(ehlo),
        "MAIL FROM:<a@me.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\n"
    );
}

#[test]
fn starttls_refused_or_missing() {
    let ehlo = "250-mx.test\r\n250 STARTTLS\r\n";
    // May: refused, so on in clear text. Never: not even asked.
    let (mut talk, _) = Talk::greeted(config(TlsWant::May), envelope(&["b@x.test"]), ehlo);
    assert_eq!(
        talk.says("454 4.7.0 TLS not available\r\n"),
        "MAIL FROM:<a@me.test>\r\n"
    );
    let (_, sent) = Talk::greeted(config(TlsWant::Never), envelope(&["b@x.test"]), ehlo);
    assert_eq!(sent, "MAIL FROM:<a@me.test>\r\n");
    // Require: refused or not offered, the attempt is deferred (4.7.4).
    let (mut talk, _) = Talk::greeted(config(TlsWant::Require), envelope(&["b@x.test"]), ehlo);
    assert_eq!(talk.says("454 4.7.0 TLS not available\r\n"), "QUIT\r\n");
    assert_session_failure(&talk.outcome(), false, "4.7.4", "STARTTLS");
    let (mut talk, sent) = Talk::greeted(config(TlsWant::Require), envelope(&["b@x.test"]), EHLO);
    assert_eq!(sent, "QUIT\r\n");
    assert_session_failure(&talk.outcome(), false, "4.7.4", "EHLO");
}

fn with_auth(tls: TlsWant) -> ClientConfig {
    let mut c = config(tls);
    c.auth = Some(("alice".into(), b"secret".to_vec()));
    c
}

/// A session with TLS started, answered with `ehlo` after the handshake.
fn after_tls(config: ClientConfig, ehlo: &str) -> (Talk, String) {
    let (mut talk, sent) = Talk::greeted(
        config,
        envelope(&["b@x.test"]),
        "250-mx\r\n250 STARTTLS\r\n",
    );
    assert_eq!(sent, "STARTTLS\r\n");
    talk.says("220 go\r\n");
    assert_eq!(talk.c.poll_event(), Some(Event::StartTls));
    talk.c.tls_started();
    assert_eq!(talk.sent(), "EHLO me.test\r\n");
    let sent = talk.says(ehlo);
    (talk, sent)
}

#[test]
fn auth_plain() {
    // base64("\0alice\0secret")
    let plain = "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n";
    let (mut talk, sent) = after_tls(
        with_auth(TlsWant::Require),
        "250-mx\r\n250 AUTH LOGIN PLAIN\r\n",
    );
    assert_eq!(sent, plain);
    assert_eq!(talk.c.phase_timeout(), Timeouts::default().command);
    assert_eq!(
        talk.says("235 2.7.0 Authentication successful\r\n"),
        "MAIL FROM:<a@me.test>\r\n"
    );
    // Wrong credentials: permanent 5.7.8, with or without the server's code.
    for refusal in [
        "535 5.7.8 Error: authentication failed\r\n",
        "535 failed\r\n",
    ] {
        let (mut talk, _) = after_tls(with_auth(TlsWant::May), "250-mx\r\n250 AUTH PLAIN\r\n");
        assert_eq!(talk.says(refusal), "QUIT\r\n");
        assert_session_failure(&talk.outcome(), true, "5.7.8", "AUTH");
    }
    // Implicit TLS: AUTH at once.
    let mut c = with_auth(TlsWant::May);
    c.implicit_tls = true;
    let (_, sent) = Talk::greeted(c, envelope(&["b@x.test"]), "250-mx\r\n250 AUTH PLAIN\r\n");
    assert_eq!(sent, plain);
    // Never chosen on purpose: credentials in clear text are allowed.
    let (_, sent) = Talk::greeted(
        with_auth(TlsWant::Never),
        envelope(&["b@x.test"]),
        "250-mx\r\n250 AUTH PLAIN\r\n",
    );
    assert_eq!(sent, plain);
}

#[test]
fn auth_plain_too_long_for_one_line() {
    let mut c = with_auth(TlsWant::Never);
    c.auth = Some(("u".repeat(200), vec![b'p'; 200]));
    let (mut talk, sent) =
        Talk::greeted(c, envelope(&["b@x.test"]), "250-mx\r\n250 AUTH PLAIN\r\n");
    assert_eq!(sent, "AUTH PLAIN\r\n");
    let response = talk.says("334 \r\n");
    assert!(response.len() > 500 && response.ends_with("\r\n") && !response.contains(' '));
    assert_eq!(talk.says("235 ok\r\n"), "MAIL FROM:<a@me.test>\r\n");
}

#[test]
fn auth_login_when_plain_is_not_offered() {
    for ehlo in [
        "250-mx\r\n250 AUTH LOGIN\r\n",
        "250-mx\r\n250 AUTH=LOGIN\r\n",
    ] {
        let (mut talk, sent) = after_tls(with_auth(TlsWant::May), ehlo);
        assert_eq!(sent, "AUTH LOGIN\r\n");
        assert_eq!(talk.says("334 VXNlcm5hbWU6\r\n"), "YWxpY2U=\r\n");
        assert_eq!(talk.says("334 UGFzc3dvcmQ6\r\n"), "c2VjcmV0\r\n");
        assert_eq!(talk.says("235 2.7.0 ok\r\n"), "MAIL FROM:<a@me.test>\r\n");
    }
    let (mut talk, _) = after_tls(with_auth(TlsWant::May), "250-mx\r\n250 AUTH LOGIN\r\n");
    talk.says("334 VXNlcm5hbWU6\r\n");
    talk.says("334 UGFzc3dvcmQ6\r\n");
    assert_eq!(talk.says("535 5.7.8 no\r\n"), "QUIT\r\n");
    assert_session_failure(&talk.outcome(), true, "5.7.8", "AUTH");
}

#[test]
fn auth_impossible_defers() {
    // No TLS (May, not offered): the password is not sent in clear text.
    let (mut talk, sent) = Talk::greeted(
        with_auth(TlsWant::May),
        envelope(&["b@x.test"]),
        "250-mx\r\n250 AUTH PLAIN\r\n",
    );
    assert_eq!(sent, "QUIT\r\n");
    assert_session_failure(&talk.outcome(), false, "4.7.10", "EHLO");
    // No AUTH, or no mechanism in common.
    for ehlo in ["250 mx\r\n", "250-mx\r\n250 AUTH CRAM-MD5\r\n"] {
        let (mut talk, sent) = after_tls(with_auth(TlsWant::May), ehlo);
        assert_eq!(sent, "QUIT\r\n");
        assert_session_failure(&talk.outcome(), false, "4.7.0", "EHLO");
    }
}

#[test]
fn implicit_tls_satisfies_require() {
    let mut c = config(TlsWant::Require);
    c.implicit_tls = true;
    let (_, sent) = Talk::greeted(c, envelope(&["b@x.test"]), EHLO);
    assert_eq!(sent, "MAIL FROM:<a@me.test> SIZE=100\r\n");
}

#[test]
fn handshake_failure_is_a_lost_connection() {
    let (mut talk, _) = Talk::greeted(
        config(TlsWant::May),
        envelope(&["b@x.test"]),
        "250-mx\r\n250 STARTTLS\r\n",
    );
    talk.says("220 go\r\n");
    assert_eq!(talk.c.poll_event(), Some(Event::StartTls));
    assert_eq!(talk.c.phase_timeout(), Timeouts::default().command);
    talk.c.closed();
    assert_eq!(talk.sent(), "");
    let o = talk.outcome();
    assert_session_failure(&o, false, "4.4.2", "STARTTLS");
    assert!(o.session.unwrap().text.contains("TLS handshake"));
    // Late calls from the driver change nothing.
    talk.c.tls_started();
    talk.c.body(b"x", true);
    assert_eq!((talk.sent(), talk.c.poll_event()), (String::new(), None));
}

//! SMTP AUTH (RFC 4954) with PLAIN and LOGIN, against a password file hashed
//! by `openssl passwd`: offered only over TLS, good and bad credentials, the
//! continuation forms, cancels and syntax errors, failure throttling and
//! the fail2ban-friendly log lines.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::tls::{self, b64, password, plain};
use common::*;

/// Waits (bounded) until a line of the server log matches: log lines are
/// written once per loop turn, so a reply can arrive before its log line.
fn wait_line(server: &Server, what: &str, matches: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let log = server.log_text();
        if log.lines().any(&matches) {
            return;
        }
        assert!(Instant::now() < deadline, "no {what} in the log:\n{log}");
        thread::sleep(Duration::from_millis(50));
    }
}

/// The log line saying a SASL `mech` authentication from 127.0.0.1 failed
/// for `user`, in the shape fail2ban's postfix-sasl filter expects.
fn assert_failure_logged(server: &Server, mech: &str, user: &str) {
    let head = format!("warning: unknown[127.0.0.1]: SASL {mech} authentication failed");
    wait_line(server, &format!("'{head}' line naming {user}"), |l| {
        l.contains(&head) && l.contains("user=") && l.contains(user)
    });
}

/// The log line of a successful login: the client address, the mechanism
/// and the user (`[127.0.0.1]: sasl_method=PLAIN, sasl_username=alice`).
fn assert_success_logged(server: &Server, mech: &str, user: &str) {
    let method = format!("sasl_method={mech}");
    let name = format!("sasl_username={user}");
    wait_line(server, &format!("[127.0.0.1] {method} {name} line"), |l| {
        l.contains("[127.0.0.1]") && l.contains(&method) && l.contains(&name)
    });
}

#[test]
fn auth_is_refused_before_tls_and_works_inside() {
    let server = Setup::new("auth-tls").tls().auth().start();
    let mut c = server.connect();
    let ehlo = c.ehlo();
    tls::assert_before_tls(&ehlo);
    let r = c.auth_plain("alice", password("alice"));
    r.assert(538, "5.7.11");
    let mut t = c.starttls(server.tls_config());
    tls::assert_in_tls(&t.ehlo());
    t.auth_plain("alice", password("alice"))
        .assert(235, "2.7.0");
    t.auth_plain("alice", password("alice"))
        .assert(503, "5.5.1");
    let m = message("auth1", "authenticated", "from alice");
    t.deliver("alice@example.test", &["bob@example.test"], &m);
    let got = server.wait_mail("bob", 1);
    tls::assert_received_tls(
        &got[0].received,
        "ESMTPSA",
        &t.tls_version(),
        &t.tls_cipher(),
    );
    assert_success_logged(&server, "PLAIN", "alice");
}

#[test]
fn plain_with_a_continuation() {
    let server = Setup::new("auth-plain-334").tls().auth().start();
    let mut t = server.connect_starttls();
    let r = t.cmd("AUTH PLAIN");
    r.assert(334, "");
    assert_eq!(r.lines, [""], "PLAIN asks with an empty challenge: {r}");
    t.ok(&plain("bob", password("bob")), 235, "2.7.0");
    assert_success_logged(&server, "PLAIN", "bob");
}

#[test]
fn login_good_and_bad() {
    let server = Setup::new("auth-login").tls().auth().start();
    let mut t = server.connect_starttls();
    let r = t.ok("AUTH LOGIN", 334, "");
    assert_eq!(r.lines, ["VXNlcm5hbWU6"], "Username: {r}");
    let r = t.ok(&b64(b"alice"), 334, "");
    assert_eq!(r.lines, ["UGFzc3dvcmQ6"], "Password: {r}");
    t.ok(&b64(password("alice").as_bytes()), 235, "2.7.0");
    assert_success_logged(&server, "LOGIN", "alice");

    // The user name as the initial response skips the first challenge.
    let mut t = server.connect_starttls();
    let r = t.ok(&format!("AUTH LOGIN {}", b64(b"bob")), 334, "");
    assert_eq!(r.lines, ["UGFzc3dvcmQ6"], "Password: {r}");
    t.ok(&b64(b"not bob's password"), 535, "5.7.8");
    assert_failure_logged(&server, "LOGIN", "bob");
    // A failure does not end the session; the right password still works.
    t.ok("AUTH LOGIN", 334, "");
    t.ok(&b64(b"bob"), 334, "");
    t.ok(&b64(password("bob").as_bytes()), 235, "2.7.0");
}

#[test]
fn plain_bad_password_and_unknown_user() {
    let server = Setup::new("auth-plain-bad").tls().auth().start();
    let mut t = server.connect_starttls();
    t.auth_plain("alice", "Alice pass 2").assert(535, "5.7.8");
    assert_failure_logged(&server, "PLAIN", "alice");
    t.auth_plain("mallory", "whatever").assert(535, "5.7.8");
    assert_failure_logged(&server, "PLAIN", "mallory");
    // The session goes on unauthenticated (an smtp port takes local mail
    // without AUTH), and AUTH may be tried again.
    t.ok("MAIL FROM:<alice@example.test>", 250, "2.1.0");
    t.ok("RSET", 250, "2.0.0");
    t.auth_plain("alice", password("alice"))
        .assert(235, "2.7.0");
}

#[test]
fn every_hash_scheme_in_the_file_verifies() {
    // alice, bob: $6$; carol: $5$; dave: $6$rounds=10000$.
    let server = Setup::new("auth-schemes").tls().auth().start();
    for (user, pw) in ACCOUNTS {
        let mut t = server.connect_starttls();
        t.auth_plain(user, pw).assert(235, "2.7.0");
    }
}

#[test]
fn cancel_bad_base64_and_unknown_mechanism() {
    let server = Setup::new("auth-syntax").tls().auth().start();
    let mut t = server.connect_starttls();
    t.ok("AUTH PLAIN", 334, "");
    t.ok("*", 501, "5.7.0");
    t.ok("NOOP", 250, "2.0.0");

    let mut t = server.connect_starttls();
    t.ok("AUTH LOGIN", 334, "");
    t.ok("*", 501, "5.7.0");
    let mut t = server.connect_starttls();
    t.ok("AUTH LOGIN", 334, "");
    t.ok(&b64(b"alice"), 334, "");
    t.ok("*", 501, "5.7.0");

    let mut t = server.connect_starttls();
    t.ok("AUTH PLAIN !!!not-base64!!!", 501, "5.5.2");
    let mut t = server.connect_starttls();
    t.ok("AUTH PLAIN", 334, "");
    t.ok("a=b=c", 501, "5.5.2");

    let mut t = server.connect_starttls();
    t.ok("AUTH CRAM-MD5", 504, "5.5.4");
    t.ok("AUTH GSSAPI", 504, "5.5.4");
    // After all that, a good AUTH still works.
    t.auth_plain("alice", password("alice"))
        .assert(235, "2.7.0");
}

#[test]
fn auth_out_of_sequence() {
    let server = Setup::new("auth-sequence").tls().auth().start();
    // Right after the handshake there was no EHLO yet.
    let mut c = server.connect_ehlo();
    c.ok("STARTTLS", 220, "2.0.0");
    let mut t = c.upgrade(server.tls_config());
    t.auth_plain("alice", password("alice"))
        .assert(503, "5.5.1");
    t.ehlo();
    // Inside a mail transaction.
    t.ok(&format!("MAIL FROM:<{SENDER}>"), 250, "2.1.0");
    t.auth_plain("alice", password("alice"))
        .assert(503, "5.5.1");
    t.ok("RSET", 250, "2.0.0");
    t.auth_plain("alice", password("alice"))
        .assert(235, "2.7.0");
    t.auth_plain("bob", password("bob")).assert(503, "5.5.1");
}

#[test]
fn auth_without_a_password_file() {
    let server = Setup::new("auth-disabled").tls().start();
    let mut t = server.connect_starttls();
    let ehlo = t.ehlo();
    assert!(tls::auth_mechanisms(&ehlo).is_none(), "{ehlo}");
    t.auth_plain("alice", password("alice"))
        .assert(503, "5.5.1");
}

#[test]
fn plaintext_auth_on_loopback_when_allowed() {
    // No certificate at all: AUTH is offered in plain text only because the
    // listener is on loopback and the switch is on.
    let server = Setup::new("auth-loopback")
        .auth()
        .with("plaintext_auth_on_loopback yes")
        .start();
    let mut c = server.connect();
    let ehlo = c.ehlo();
    assert!(!tls::offers(&ehlo, "STARTTLS"), "{ehlo}");
    let mechs = tls::auth_mechanisms(&ehlo).unwrap_or_else(|| panic!("no AUTH: {ehlo}"));
    assert!(mechs.contains(&"PLAIN".to_string()), "{ehlo}");
    c.auth_plain("dave", password("dave")).assert(235, "2.7.0");
    let m = message("loop", "plain auth", "on loopback");
    c.deliver("dave@example.test", &["alice@example.test"], &m);
    let got = server.wait_mail("alice", 1);
    assert!(
        got[0].received.contains(" with ESMTPA "),
        "Received says ESMTPA: {}",
        got[0].received
    );
    assert!(
        !got[0].received.contains("using TLS"),
        "{}",
        got[0].received
    );

    // The switch off (the default): refused in plain text.
    let off = Setup::new("auth-loopback-off").tls().auth().start();
    let mut c = off.connect_ehlo();
    c.auth_plain("dave", password("dave")).assert(538, "5.7.11");
}

#[test]
fn mail_auth_parameter_is_accepted() {
    let server = Setup::new("auth-param").tls().auth().start();
    let mut t = server.connect_starttls();
    t.login("alice");
    t.ok("MAIL FROM:<alice@example.test> AUTH=<>", 250, "2.1.0");
    t.ok("RSET", 250, "2.0.0");
    t.ok(
        "MAIL FROM:<alice@example.test> AUTH=alice@example.test",
        250,
        "2.1.0",
    );
    t.ok("RCPT TO:<bob@example.test>", 250, "2.1.5");
}

/// Failures from one address: the first two answered at once, the third
/// delayed by about a second and followed by `421` and a close; the next
/// failure (a new session) is delayed by about two seconds.
#[test]
fn failures_are_throttled_then_the_session_is_closed() {
    let server = Setup::new("auth-throttle").tls().auth().start();
    let mut t = server.connect_starttls();
    for n in 1..=2 {
        let start = Instant::now();
        t.auth_plain("alice", "wrong").assert(535, "5.7.8");
        let took = start.elapsed();
        assert!(
            took < Duration::from_millis(900),
            "failure {n} was delayed {took:?}"
        );
    }
    let start = Instant::now();
    t.auth_plain("alice", "wrong").assert(535, "5.7.8");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "the third failure came after only {took:?}"
    );
    let r = t.reply();
    r.assert(421, "4.7.0");
    assert!(
        r.text().contains(HOST) && r.text().contains("too many authentication failures"),
        "{r}"
    );
    t.expect_closed();

    // The count is per client address, not per session.
    let mut t = server.connect_starttls();
    let start = Instant::now();
    t.auth_plain("bob", "also wrong").assert(535, "5.7.8");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(1900),
        "the fourth failure came after only {took:?}"
    );
    // A good password is not refused for the earlier failures.
    t.auth_plain("bob", password("bob")).assert(235, "2.7.0");
    let log = server.log_text();
    let failures = log
        .lines()
        .filter(|l| l.contains("warning: unknown[127.0.0.1]: SASL PLAIN authentication failed"))
        .count();
    assert_eq!(failures, 4, "one log line per failure:\n{log}");
    assert_success_logged(&server, "PLAIN", "bob");
}

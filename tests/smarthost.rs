//! Mail for other domains through one smarthost (`relayhost`): STARTTLS
//! with the certificate verified against `tls_ca_file` (or only required),
//! implicit TLS (smtps, against aiosmtpd), AUTH PLAIN and LOGIN with the
//! credentials of `relayhost_auth`, and no MX lookup at all. A smarthost
//! that cannot prove who it is never sees the password.

mod common;
mod outbound_util;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::dns::{self, DnsServer, Zone};
use common::sink::{Behaviour, Sink};
use common::tls::TestCert;
use common::*;
use outbound_util::*;

const USER: &str = "relayuser";
const PASSWORD: &str = "s3cret pw";

/// MX records that must not be used while a relayhost is set.
fn zone() -> Zone {
    Zone::new()
        .mx("remote.test", 10, "mx1.remote.test")
        .a("mx1.remote.test", "127.0.0.2")
        .mx("other.test", 10, "mx1.other.test")
        .a("mx1.other.test", "127.0.0.2")
}

/// Writes the `user:password` file, readable by its owner only.
fn auth_file(dir: &Path, line: &str) -> PathBuf {
    let p = dir.join("relay-auth");
    fs::write(&p, format!("{line}\n")).expect("write relay-auth");
    fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).expect("chmod relay-auth");
    p
}

/// A smarthost sink on 127.0.0.4 with STARTTLS (`cert`) and AUTH required,
/// and a would-be MX sink on 127.0.0.2 (same port) that must stay unused.
fn smarthost(cert: &TestCert, b: Behaviour) -> (Sink, Sink) {
    let b = b.starttls(cert).auth(USER, PASSWORD).require_auth();
    let mut sinks = Sink::start_many(vec![(v4(4), b), (v4(2), Behaviour::accept())]);
    let mx = sinks.pop().expect("mx sink");
    let relay = sinks.pop().expect("relay sink");
    (relay, mx)
}

/// Asserts nothing was sent in the clear that should not have been: no
/// AUTH command (the password) and no MAIL.
fn assert_no_credentials(sink: &Sink) {
    for s in sink.sessions() {
        assert!(s.auth.is_none(), "{s:#?}");
        assert!(
            !s.commands
                .iter()
                .any(|c| c.to_ascii_uppercase().starts_with("AUTH")),
            "credentials sent to an unverified smarthost: {:?}",
            s.commands
        );
    }
    assert_no_transaction(sink);
}

#[test]
fn smarthost_with_verified_starttls_and_auth_plain() {
    let dir = TestDir::new("smarthost-verify-files");
    let cert = tls::ca_signed_for(&dir.path, &["127.0.0.4"]);
    let auth = auth_file(&dir.path, &format!("{USER}:{PASSWORD}"));
    let (relay, mx) = smarthost(&cert, Behaviour::accept());
    let port = relay.port();
    let dns = DnsServer::start(zone());
    let server = outbound("smarthost-verify", &dns, port)
        .with(&format!("relayhost [127.0.0.4]:{port}"))
        .with("relayhost_tls verify")
        .with(&format!("tls_ca_file {}", cert.ca.display()))
        .with(&format!("relayhost_auth {}", auth.display()))
        .start();
    let msg = dotted_message("s1");
    send(&server, FROM, &["x@remote.test", "y@other.test"], &msg);

    let got = wait_accepted_rcpts(&relay, 2);
    let mut rcpts: Vec<String> = got.iter().flat_map(|t| t.rcpts.clone()).collect();
    rcpts.sort();
    assert_eq!(rcpts, ["x@remote.test", "y@other.test"]);
    for t in &got {
        assert!(t.tls, "not over TLS");
        assert_eq!(t.auth.as_deref(), Some(USER));
        assert_eq!(t.mail_from, FROM);
        assert_relayed(&t.data, &msg);
    }
    let s = &relay.sessions()[0];
    assert_eq!(s.auth_mechanism.as_deref(), Some("PLAIN"));
    assert_eq!(s.auth_failures, 0);
    assert_eq!(mx.connections(), 0, "an MX was used despite the relayhost");
    assert_eq!(dns.total(), 0, "DNS asked: {:#?}", dns.queries());
    for r in ["x@remote.test", "y@other.test"] {
        let line = wait_outcome(&server, r, "sent");
        assert!(line.contains(&format!("[127.0.0.4]:{port}")), "{line}");
        assert_dsn(&line, "2.0.0");
    }
    wait_queue_empty(&server);
}

#[test]
fn smarthost_with_required_starttls_and_auth_login() {
    let dir = TestDir::new("smarthost-encrypt-files");
    // Self-signed for localhost: "encrypt" does not check it.
    let cert = tls::self_signed(&dir.path);
    let auth = auth_file(&dir.path, &format!("{USER}:{PASSWORD}"));
    let (relay, _mx) = smarthost(&cert, Behaviour::accept().auth_mechanisms(&["LOGIN"]));
    let port = relay.port();
    let dns = DnsServer::start(zone());
    let server = outbound("smarthost-encrypt", &dns, port)
        .with(&format!("relayhost [127.0.0.4]:{port}"))
        .with("relayhost_tls encrypt")
        .with(&format!("tls_ca_file {}", cert.ca.display()))
        .with(&format!("relayhost_auth {}", auth.display()))
        .start();
    let msg = message("s2", "login", "AUTH LOGIN only");
    send(&server, FROM, &["x@remote.test"], &msg);

    let t = &relay.wait_delivered(1)[0];
    assert!(t.tls);
    assert_eq!(t.auth.as_deref(), Some(USER));
    assert_relayed(&t.data, &msg);
    let s = &relay.sessions()[0];
    assert_eq!(s.auth_mechanism.as_deref(), Some("LOGIN"));
    assert_eq!(dns.total(), 0);
    wait_outcome(&server, "x@remote.test", "sent");
}

#[test]
fn smarthost_by_name_is_found_by_its_address_not_its_mx() {
    let dir = TestDir::new("smarthost-name-files");
    let cert = tls::ca_signed_for(&dir.path, &["smarthost.test"]);
    let auth = auth_file(&dir.path, &format!("{USER}:{PASSWORD}"));
    let (relay, mx) = smarthost(&cert, Behaviour::accept());
    let port = relay.port();
    let zone = zone()
        .a("smarthost.test", "127.0.0.4")
        .mx("smarthost.test", 10, "mx1.remote.test");
    let dns = DnsServer::start(zone);
    // The default relayhost_tls: verify.
    let server = outbound("smarthost-name", &dns, port)
        .with(&format!("relayhost smarthost.test:{port}"))
        .with(&format!("tls_ca_file {}", cert.ca.display()))
        .with(&format!("relayhost_auth {}", auth.display()))
        .start();
    let msg = message("s3", "by name", "A record, no MX");
    send(&server, FROM, &["x@remote.test"], &msg);

    let t = &relay.wait_delivered(1)[0];
    assert!(t.tls);
    assert_eq!(t.auth.as_deref(), Some(USER));
    let s = &relay.sessions()[0];
    assert_eq!(s.sni.as_deref(), Some("smarthost.test"));
    assert_eq!(mx.connections(), 0);
    assert!(dns.asked("smarthost.test", dns::A) >= 1);
    let mx_queries: Vec<_> = dns
        .queries()
        .into_iter()
        .filter(|q| q.qtype == dns::MX)
        .collect();
    assert!(mx_queries.is_empty(), "MX asked: {mx_queries:#?}");
    let line = wait_outcome(&server, "x@remote.test", "sent");
    assert!(
        line.contains(&format!("relay=smarthost.test[127.0.0.4]:{port}")),
        "{line}"
    );
}

#[test]
fn a_smarthost_with_the_wrong_certificate_never_gets_the_password() {
    let dir = TestDir::new("smarthost-mismatch-files");
    // Signed by the trusted CA, but for another address.
    let cert = tls::ca_signed_for(&dir.path, &["127.0.0.9"]);
    let auth = auth_file(&dir.path, &format!("{USER}:{PASSWORD}"));
    let (relay, mx) = smarthost(&cert, Behaviour::accept());
    let port = relay.port();
    let dns = DnsServer::start(zone());
    let server = outbound("smarthost-mismatch", &dns, port)
        .with(&format!("relayhost [127.0.0.4]:{port}"))
        .with("relayhost_tls verify")
        .with(&format!("tls_ca_file {}", cert.ca.display()))
        .with(&format!("relayhost_auth {}", auth.display()))
        .with("retry_min 1h")
        .start();
    send(
        &server,
        FROM,
        &["x@remote.test"],
        &message("s4", "mismatch", "wrong name on the certificate"),
    );
    let line = wait_outcome(&server, "x@remote.test", "deferred");
    assert_dsn(&line, "4.");
    assert!(relay.connections() >= 1);
    assert_no_credentials(&relay);
    assert_eq!(mx.connections(), 0);
    assert_eq!(queued(&server), 1);
    server.assert_no_mail(FROM_USER);
}

#[test]
fn a_smarthost_without_starttls_is_refused_under_the_default_verify() {
    let dir = TestDir::new("smarthost-notls-files");
    let auth = auth_file(&dir.path, &format!("{USER}:{PASSWORD}"));
    let ca = tls::ca_signed(&dir.path).ca;
    // AUTH offered in the clear, STARTTLS not at all.
    let b = Behaviour::accept()
        .auth(USER, PASSWORD)
        .auth_before_tls()
        .require_auth();
    let relay = Sink::start(v4(4), b);
    let port = relay.port();
    let dns = DnsServer::start(zone());
    let server = outbound("smarthost-notls", &dns, port)
        .with(&format!("relayhost [127.0.0.4]:{port}"))
        .with(&format!("relayhost_auth {}", auth.display()))
        .with(&format!("tls_ca_file {}", ca.display()))
        .with("retry_min 1h")
        .start();
    send(
        &server,
        FROM,
        &["x@remote.test"],
        &message("s5", "no tls", "the password stays home"),
    );
    let line = wait_outcome(&server, "x@remote.test", "deferred");
    assert_dsn(&line, "4.7.");
    relay.wait_sessions(1);
    assert_no_credentials(&relay);
    server.assert_no_mail(FROM_USER);
}

/// A refused password is the admin's mistake, not the recipient's: the
/// mail waits (Postfix's soft bounce) instead of going back to the sender.
#[test]
fn a_refused_password_defers() {
    let dir = TestDir::new("smarthost-badpw-files");
    let cert = tls::ca_signed_for(&dir.path, &["127.0.0.4"]);
    let auth = auth_file(&dir.path, &format!("{USER}:not the password"));
    let (relay, _mx) = smarthost(&cert, Behaviour::accept());
    let port = relay.port();
    let dns = DnsServer::start(zone());
    let server = outbound("smarthost-badpw", &dns, port)
        .with(&format!("relayhost [127.0.0.4]:{port}"))
        .with(&format!("tls_ca_file {}", cert.ca.display()))
        .with(&format!("relayhost_auth {}", auth.display()))
        .with("retry_min 1h")
        .start();
    send(
        &server,
        FROM,
        &["x@remote.test"],
        &message("s6", "bad password", "535"),
    );
    let line = wait_outcome(&server, "x@remote.test", "deferred");
    assert_dsn(&line, "4.");
    let s = &relay.wait_sessions(1)[0];
    assert!(s.tls);
    assert_eq!(s.auth_failures, 1, "{s:#?}");
    assert_no_transaction(&relay);
    assert_eq!(queued(&server), 1);
    server.assert_no_mail(FROM_USER);
}

/// Implicit TLS (port 465 style) against aiosmtpd (Python's ssl, OpenSSL),
/// the certificate verified.
#[test]
fn smarthost_over_smtps_to_aiosmtpd() {
    let dir = TestDir::new("smarthost-smtps-files");
    let cert = tls::ca_signed_for(&dir.path, &["127.0.0.5"]);
    let port = free_port_on(&[v4(5)]);
    let (c, k) = (
        cert.cert.display().to_string(),
        cert.key.display().to_string(),
    );
    let aio = Aiosmtpd::start(v4(5), port, &["--smtpscert", &c, "--smtpskey", &k]);
    let dns = DnsServer::start(zone());
    let server = outbound("smarthost-smtps", &dns, port)
        .with(&format!("relayhost [127.0.0.5]:{port}"))
        .with("relayhost_tls smtps")
        .with(&format!("tls_ca_file {}", cert.ca.display()))
        .start();
    let msg = dotted_message("s7");
    send(&server, FROM, &["x@remote.test"], &msg);

    let m = &aio.wait_messages(1)[0];
    assert!(m.tls, "not over TLS");
    assert_eq!(m.from, FROM);
    assert_eq!(m.rcpts, ["x@remote.test"]);
    assert_relayed(&m.data, &msg);
    assert_eq!(dns.total(), 0);
    let line = wait_outcome(&server, "x@remote.test", "sent");
    assert!(line.contains(&format!("[127.0.0.5]:{port}")), "{line}");
    assert_dsn(&line, "2.0.0");
}

//! TLS on the wire, checked with an independent client (rustls, with a
//! certificate made at test time): STARTTLS then mail, what EHLO offers
//! before and after, the state reset after the handshake, pipelined bytes
//! after STARTTLS never run (CVE-2011-0411 class), implicit TLS on an smtps
//! port, and TLS 1.0/1.1 refused (a hand-made ClientHello and OpenSSL via
//! Python).

mod common;

use std::time::Duration;

use common::tls::{self, assert_before_tls, assert_in_tls, assert_received_tls, assert_refused};
use common::*;

const QUIET: Duration = Duration::from_millis(500);

#[test]
fn starttls_then_mail_is_delivered_with_esmtps() {
    let server = Setup::new("tls-starttls").tls().auth().start();
    let mut c = server.connect();
    let ehlo = c.ehlo();
    assert_before_tls(&ehlo);
    let mut t = c.starttls(server.tls_config());
    let ehlo = t.ehlo();
    assert_in_tls(&ehlo);
    let m = message("tls1", "over TLS", "sent inside STARTTLS");
    t.deliver(SENDER, &["alice@example.test"], &m);
    t.ok("QUIT", 221, "2.0.0");
    t.expect_closed();
    let got = server.wait_mail("alice", 1);
    assert_same_bytes(&got[0].message, &crlf_to_lf(&m), "message over TLS");
    assert_received_tls(
        &got[0].received,
        "ESMTPS",
        &t.tls_version(),
        &t.tls_cipher(),
    );
    assert_eq!(t.tls_version(), "TLSv1.3", "rustls' default is TLS 1.3");
}

#[test]
fn tls12_is_accepted_and_named_in_received() {
    let server = Setup::new("tls-12").tls().start();
    let cfg = tls::client_config(&server.cert().ca_der, &[&rustls::version::TLS12]);
    let mut t = server.connect_ehlo().starttls(cfg);
    t.ehlo();
    assert_eq!(t.tls_version(), "TLSv1.2");
    let m = message("tls12", "TLS 1.2", "older but fine");
    t.deliver(SENDER, &["bob@example.test"], &m);
    let got = server.wait_mail("bob", 1);
    assert_received_tls(&got[0].received, "ESMTPS", "TLSv1.2", &t.tls_cipher());
}

#[test]
fn a_self_signed_certificate_works_too() {
    let server = Setup::new("tls-selfsigned")
        .tls_with(CertKind::SelfSigned)
        .start();
    let mut t = server.connect_starttls();
    let m = message("self", "self-signed", "trusted directly");
    t.deliver(SENDER, &["carol@example.test"], &m);
    server.wait_mail("carol", 1);
}

#[test]
fn ehlo_is_needed_again_after_starttls() {
    let server = Setup::new("tls-ehlo-again").tls().start();
    let mut c = server.connect();
    c.ok("EHLO before.test", 250, "");
    let mut t = c.starttls(server.tls_config());
    // What EHLO established in plain text is gone.
    t.ok(&format!("MAIL FROM:<{SENDER}>"), 503, "5.5.1");
    t.ok("EHLO after.test", 250, "");
    let m = message("again", "ehlo again", "after the second EHLO");
    t.deliver(SENDER, &["alice@example.test"], &m);
    let got = server.wait_mail("alice", 1);
    assert!(
        got[0].received.starts_with("from after.test "),
        "Received names the EHLO given inside TLS: {}",
        got[0].received
    );
}

#[test]
fn a_transaction_does_not_cross_starttls() {
    let server = Setup::new("tls-forget").tls().start();
    let mut c = server.connect_ehlo();
    c.ok(&format!("MAIL FROM:<{SENDER}>"), 250, "2.1.0");
    c.ok("RCPT TO:<alice@example.test>", 250, "2.1.5");
    // STARTTLS inside a transaction is refused; the transaction stays.
    c.ok("STARTTLS", 503, "5.5.1");
    c.ok("RSET", 250, "2.0.0");
    // A transaction pipelined in front of STARTTLS in one write: MAIL and
    // RCPT are answered, STARTTLS is refused, nothing is upgraded.
    c.send(
        format!("MAIL FROM:<{SENDER}>\r\nRCPT TO:<bob@example.test>\r\nSTARTTLS\r\n").as_bytes(),
    );
    c.reply().assert(250, "2.1.0");
    c.reply().assert(250, "2.1.5");
    c.reply().assert(503, "5.5.1");
    c.ok("RSET", 250, "2.0.0");
    let mut t = c.starttls(server.tls_config());
    t.ehlo();
    // Nothing from before the handshake survives: no MAIL, so RCPT and DATA
    // are out of sequence.
    t.ok("RCPT TO:<alice@example.test>", 503, "5.5.1");
    t.ok("DATA", 503, "5.5.1");
    let m = message("fresh", "fresh", "a new transaction");
    t.deliver(SENDER, &["carol@example.test"], &m);
    server.wait_mail("carol", 1);
    server.assert_no_mail("alice");
    server.assert_no_mail("bob");
}

#[test]
fn starttls_replies() {
    let server = Setup::new("tls-replies").tls().start();
    let mut c = server.connect_ehlo();
    c.ok("STARTTLS now", 501, "5.5.4");
    let mut t = c.starttls(server.tls_config());
    t.ehlo();
    t.ok("STARTTLS", 554, "5.5.1");
    // The session is still fine.
    t.ok("NOOP", 250, "2.0.0");

    // Without a certificate there is no STARTTLS at all.
    let plain = Setup::new("tls-none").start();
    let mut c = plain.connect();
    let ehlo = c.ehlo();
    assert!(!tls::offers(&ehlo, "STARTTLS"), "{ehlo}");
    c.ok("STARTTLS", 502, "5.5.1");
    c.ok("NOOP", 250, "2.0.0");
}

/// The CVE-2011-0411 case: a command pipelined behind STARTTLS in the same
/// write must not be run, neither in plain text nor inside TLS.
#[test]
fn command_pipelined_after_starttls_is_never_run() {
    let server = Setup::new("tls-inject").tls().start();
    let mut c = server.connect_ehlo();
    c.send(b"STARTTLS\r\nNOOP\r\n");
    c.reply().assert(220, "2.0.0");
    // No plain-text answer to the NOOP either.
    c.expect_silence(Duration::from_millis(300));
    let mut t = c.upgrade(server.tls_config());
    let ehlo = t.cmd("EHLO client.test");
    ehlo.assert(250, "");
    assert!(
        ehlo.lines.len() > 1 && ehlo.lines[0].starts_with(HOST),
        "the first reply inside TLS must be the EHLO reply, got {ehlo}"
    );
    t.expect_silence(QUIET);
    t.ok("NOOP", 250, "2.0.0");
    t.expect_silence(QUIET);
}

/// The same with a transaction pipelined behind STARTTLS: it is not carried
/// into the TLS session.
#[test]
fn transaction_pipelined_after_starttls_is_discarded() {
    let server = Setup::new("tls-inject-mail").tls().start();
    let mut c = server.connect_ehlo();
    c.send(
        b"STARTTLS\r\nMAIL FROM:<evil@remote.example>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n",
    );
    c.reply().assert(220, "2.0.0");
    let mut t = c.upgrade(server.tls_config());
    t.ehlo();
    t.expect_silence(QUIET);
    t.ok("RCPT TO:<alice@example.test>", 503, "5.5.1");
    t.ok("QUIT", 221, "2.0.0");
    t.expect_closed();
    std::thread::sleep(SETTLE);
    server.assert_no_mail("alice");
}

#[test]
fn smtps_greets_only_after_the_handshake() {
    let server = Setup::new("tls-smtps")
        .tls()
        .auth()
        .listener("smtps")
        .start();
    let port = server.port_of("smtps");
    let mut raw = Client::connect(port);
    // Implicit TLS: not a byte of plain text, the client speaks first.
    raw.expect_silence(QUIET);
    let mut t = raw.upgrade(server.tls_config());
    t.reply().assert(220, "");
    let ehlo = t.ehlo();
    assert_in_tls(&ehlo);
    t.ok("STARTTLS", 554, "5.5.1");
    t.ok(&format!("MAIL FROM:<{SENDER}>"), 530, "5.7.0");
    t.login("alice");
    let m = message("smtps", "implicit TLS", "submitted on the smtps port");
    t.deliver("alice@example.test", &["bob@example.test"], &m);
    let got = server.wait_mail("bob", 1);
    assert_received_tls(
        &got[0].received,
        "ESMTPSA",
        &t.tls_version(),
        &t.tls_cipher(),
    );
}

#[test]
fn tls10_and_tls11_hellos_are_refused() {
    let server = Setup::new("tls-legacy")
        .tls()
        .auth()
        .listener("smtps")
        .start();
    for minor in [1u8, 2] {
        let what = format!("TLS 1.{} on smtps", minor - 1);
        let mut tcp = client::connect_tcp(std::net::SocketAddr::from((
            [127, 0, 0, 1],
            server.port_of("smtps"),
        )));
        assert_refused(
            tls::answer_to_hello(&mut tcp, &tls::legacy_client_hello(minor)),
            &what,
        );

        let what = format!("TLS 1.{} after STARTTLS", minor - 1);
        let mut c = server.connect_ehlo();
        c.ok("STARTTLS", 220, "2.0.0");
        let mut tcp = c.into_tcp();
        assert_refused(
            tls::answer_to_hello(&mut tcp, &tls::legacy_client_hello(minor)),
            &what,
        );
    }
    // The server lives on and speaks modern TLS on both ports.
    server.connect_starttls().ok("NOOP", 250, "2.0.0");
    server.connect_smtps().ok("NOOP", 250, "2.0.0");
}

/// OpenSSL (through Python's ssl) limited to TLS 1.1 and weak ciphers allowed
/// must fail its handshake, on smtps and after STARTTLS. A control handshake
/// against a Python TLS 1.1 server first proves this OpenSSL can still speak
/// TLS 1.1, so the failure is the server's refusal.
#[test]
fn openssl_limited_to_tls11_is_refused() {
    let server = Setup::new("tls-legacy-py")
        .tls()
        .auth()
        .listener("smtps")
        .start();
    let smtps = server.port_of("smtps").to_string();
    let smtp = server.port.to_string();
    let cert = server.cert().cert.to_string_lossy().into_owned();
    let key = server.cert().key.to_string_lossy().into_owned();
    let out = tls::python_ok(
        LEGACY_SCRIPT,
        &[
            ("SMTPS_PORT", &smtps),
            ("SMTP_PORT", &smtp),
            ("CERT", &cert),
            ("KEY", &key),
        ],
    );
    for want in ["control: TLSv1.1", "smtps: refused", "starttls: refused"] {
        assert!(out.contains(want), "no '{want}' in:\n{out}");
    }
}

const LEGACY_SCRIPT: &str = r#"
import os, socket, smtplib, ssl, threading

def old_client():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    return ctx

# Control: this OpenSSL can still do TLS 1.1 against a server that allows it.
sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
sctx.set_ciphers("DEFAULT:@SECLEVEL=0")
sctx.minimum_version = ssl.TLSVersion.TLSv1
sctx.maximum_version = ssl.TLSVersion.TLSv1_1
sctx.load_cert_chain(os.environ["CERT"], os.environ["KEY"])
lsock = socket.socket()
lsock.bind(("127.0.0.1", 0))
lsock.listen(1)
lsock.settimeout(10)

def serve():
    conn, _ = lsock.accept()
    try:
        with sctx.wrap_socket(conn, server_side=True) as s:
            s.recv(1)
    except OSError:
        pass

t = threading.Thread(target=serve)
t.start()
with socket.create_connection(lsock.getsockname(), timeout=10) as raw:
    with old_client().wrap_socket(raw) as s:
        print("control:", s.version())
        s.sendall(b"x")
t.join()

def refused(label, err):
    reason = getattr(err, "reason", None) or str(err)
    if "NO_PROTOCOLS_AVAILABLE" in str(reason).upper() or "NO PROTOCOLS" in str(err).upper():
        raise SystemExit(label + ": the client did not even try: " + str(err))
    print(label + ": refused", reason)

try:
    with socket.create_connection(("127.0.0.1", int(os.environ["SMTPS_PORT"])), timeout=10) as raw:
        with old_client().wrap_socket(raw) as s:
            raise SystemExit("smtps: handshake succeeded with " + str(s.version()))
except (ssl.SSLError, ConnectionResetError, ConnectionAbortedError, BrokenPipeError) as e:
    refused("smtps", e)

s = smtplib.SMTP("127.0.0.1", int(os.environ["SMTP_PORT"]), local_hostname="client.test", timeout=10)
s.ehlo()
try:
    s.starttls(context=old_client())
    raise SystemExit("starttls: handshake succeeded with " + str(s.sock.version()))
except (ssl.SSLError, ConnectionResetError, ConnectionAbortedError, BrokenPipeError) as e:
    refused("starttls", e)
finally:
    s.close()
"#;

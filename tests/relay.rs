//! Who may send what: a submission listener wants TLS then AUTH before MAIL;
//! a recipient outside local_domains (relaying) is allowed only after AUTH or
//! from relay_networks, and relayed mail waits in the queue; with
//! sender_login an authenticated user may only send as itself.

mod common;

use std::fs;
use std::net::{SocketAddr, TcpListener};

use common::tls;
use common::*;

const REMOTE: &str = "someone@remote.example";
/// A smarthost that refuses connections: relayed mail is tried at once and
/// deferred, without DNS.
const DEAD_SMARTHOST: &str = "relayhost [127.0.0.1]:9";

fn spooled_messages(server: &Server) -> usize {
    fs::read_dir(server.spool().join("msg"))
        .map(|rd| rd.count())
        .unwrap_or(0)
}

#[test]
fn submission_wants_tls_then_auth() {
    let server = Setup::new("relay-submission")
        .tls()
        .auth()
        .listener("submission")
        .start();
    let port = server.port_of("submission");
    let mut c = server.connect_port(port);
    tls::assert_before_tls(&c.ehlo());
    let r = c.ok(&format!("MAIL FROM:<{SENDER}>"), 530, "5.7.0");
    assert!(r.text().contains("STARTTLS"), "{r}");
    let mut t = c.starttls(server.tls_config());
    tls::assert_in_tls(&t.ehlo());
    let r = t.ok("MAIL FROM:<alice@example.test>", 530, "5.7.0");
    assert!(r.text().contains("Authentication required"), "{r}");
    t.login("alice");
    let m = message("sub", "submitted", "on the submission port");
    t.deliver("alice@example.test", &["bob@example.test"], &m);
    let got = server.wait_mail("bob", 1);
    tls::assert_received_tls(
        &got[0].received,
        "ESMTPSA",
        &t.tls_version(),
        &t.tls_cipher(),
    );
}

#[test]
fn smtps_wants_auth() {
    let server = Setup::new("relay-smtps")
        .tls()
        .auth()
        .listener("smtps")
        .start();
    let mut t = server.connect_smtps();
    t.ehlo();
    let r = t.ok("MAIL FROM:<alice@example.test>", 530, "5.7.0");
    assert!(r.text().contains("Authentication required"), "{r}");
    t.login("carol");
    t.ok("MAIL FROM:<carol@example.test>", 250, "2.1.0");
}

/// The open-relay attempt: a client outside relay_networks, no AUTH, a
/// remote recipient. Then the same recipient after AUTH is queued.
fn relay_refused_then_allowed_after_auth(name: &str, networks: &str) {
    let server = Setup::new(name)
        .tls()
        .auth()
        .with(&format!("relay_networks {networks}"))
        .with("retry_min 1h")
        .with(DEAD_SMARTHOST)
        .with("relayhost_tls none")
        .start();
    let mut c = server.connect_ehlo();
    c.ok(&format!("MAIL FROM:<{SENDER}>"), 250, "2.1.0");
    let r = c.ok(&format!("RCPT TO:<{REMOTE}>"), 554, "5.7.1");
    assert!(
        r.text()
            .contains(&format!("<{REMOTE}>: Relay access denied")),
        "{r}"
    );
    // Local recipients are still welcome.
    c.ok("RCPT TO:<alice@example.test>", 250, "2.1.5");
    c.ok("RSET", 250, "2.0.0");

    let mut t = c.starttls(server.tls_config());
    t.ehlo();
    // TLS alone is not enough.
    t.ok(&format!("MAIL FROM:<{SENDER}>"), 250, "2.1.0");
    t.ok(&format!("RCPT TO:<{REMOTE}>"), 554, "5.7.1");
    t.ok("RSET", 250, "2.0.0");
    t.login("alice");
    let m = message("relay", "relayed", "to the outside");
    let id = t.deliver("alice@example.test", &[REMOTE], &m);
    // The smarthost of these tests refuses connections: the message is
    // relayed (tried) and waits in the queue.
    let log = server.wait_log(&format!("to=<{REMOTE}>"));
    let line = log
        .lines()
        .find(|l| l.contains(&id) && l.contains(&format!("to=<{REMOTE}>")))
        .unwrap_or_else(|| panic!("no delivery line for {id}:\n{log}"));
    assert!(
        line.contains("status=deferred") && line.contains("Connection refused"),
        "{line}"
    );
    assert_eq!(
        spooled_messages(&server),
        1,
        "the relayed message is queued"
    );
}

#[test]
fn relay_refused_with_no_relay_networks() {
    relay_refused_then_allowed_after_auth("relay-none", "none");
}

#[test]
fn relay_refused_from_outside_relay_networks() {
    relay_refused_then_allowed_after_auth("relay-outside", "10.0.0.0/8 192.168.0.0/16 ::1/128");
}

#[test]
fn loopback_may_relay_by_default() {
    let server = Setup::new("relay-default")
        .with("retry_min 1h")
        .with(DEAD_SMARTHOST)
        .with("relayhost_tls none")
        .start();
    let mut c = server.connect_ehlo();
    let m = message("lo", "from loopback", "relay_networks default");
    c.deliver(SENDER, &[REMOTE], &m);
    server.wait_log("status=deferred");
    assert_eq!(spooled_messages(&server), 1);
}

#[test]
fn relay_networks_lines_add_up() {
    // Two lines add up: the first one names loopback, the second does not
    // replace it.
    let server = Setup::new("relay-two-lines")
        .with("relay_networks 127.0.0.1/32")
        .with("relay_networks 10.0.0.0/8")
        .with("retry_min 1h")
        .start();
    let mut c = server.connect_ehlo();
    c.ok(&format!("MAIL FROM:<{SENDER}>"), 250, "2.1.0");
    c.ok(&format!("RCPT TO:<{REMOTE}>"), 250, "2.1.5");
}

#[test]
fn ipv6_client_outside_ipv4_relay_networks() {
    let Ok(l6) = TcpListener::bind("[::1]:0") else {
        eprintln!("no IPv6 loopback here; skipping");
        return;
    };
    let port6 = l6.local_addr().expect("addr").port();
    drop(l6);
    let server = Setup::new("relay-v6")
        .with(&format!("listen [::1]:{port6}"))
        .with("relay_networks 127.0.0.0/8")
        .start();
    let mut c = Client::connect_addr(SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], port6)));
    c.reply().assert(220, "");
    c.ehlo();
    c.ok(&format!("MAIL FROM:<{SENDER}>"), 250, "2.1.0");
    c.ok(&format!("RCPT TO:<{REMOTE}>"), 554, "5.7.1");
    // The same from 127.0.0.1 is fine.
    let mut c = server.connect_ehlo();
    c.ok(&format!("MAIL FROM:<{SENDER}>"), 250, "2.1.0");
    c.ok(&format!("RCPT TO:<{REMOTE}>"), 250, "2.1.5");
}

#[test]
fn sender_login_limits_mail_from_to_own_addresses() {
    let server = Setup::new("relay-sender-login")
        .tls()
        .auth()
        .with("sender_login yes")
        .start();
    let mut t = server.connect_starttls();
    t.login("alice");
    for own in [
        "alice@example.test",
        "alice+tag@example.test",
        "Alice@Example.Test",
        "alice@localhost.test",
        // postmaster is an alias of alice alone.
        "postmaster@example.test",
        "",
    ] {
        t.ok(&format!("MAIL FROM:<{own}>"), 250, "2.1.0");
        t.ok("RSET", 250, "2.0.0");
    }
    for other in [
        "bob@example.test",
        "bob+alice@example.test",
        "alice@remote.example",
        "nobody@example.test",
    ] {
        let r = t.ok(&format!("MAIL FROM:<{other}>"), 553, "5.7.1");
        assert!(
            r.text().contains(&format!("<{other}>"))
                && r.text().contains("not owned by user alice"),
            "{r}"
        );
    }
    let m = message("own", "own address", "sent as alice+tag");
    t.deliver("alice+tag@example.test", &["bob@example.test"], &m);
    let got = server.wait_mail("bob", 1);
    assert_eq!(got[0].return_path, "alice+tag@example.test");
}

#[test]
fn without_sender_login_any_sender_is_accepted() {
    let server = Setup::new("relay-no-sender-login").tls().auth().start();
    let mut t = server.connect_starttls();
    t.login("alice");
    t.ok("MAIL FROM:<bob@example.test>", 250, "2.1.0");
}

//! Mail for other domains, delivered straight to their MX hosts: the test
//! DNS responder (`common::dns`) plays the domains' name servers and SMTP
//! sinks on 127.0.0.x (`common::sink`) play their MX hosts, all on one port
//! (`outbound_port`). Covered: the lowest-preference MX, fallback to the
//! next one (refused connection, 421/450 greeting, silence, a dropped
//! connection), implicit MX, NXDOMAIN and null MX bounces, per-recipient
//! verdicts, retries (after a 4xx, across a restart, on `picomta flush`),
//! expiry, the null sender, DNS over TCP after truncation, a DNS server that
//! never answers, opportunistic and required TLS, connection caps, aliases
//! to remote addresses, address literals, the log lines, and one real
//! third-party SMTP server (Python's aiosmtpd).
//!
//! The original sender is the local user carol, so that a delivery status
//! notification lands in her Maildir and is parsed with mailparse.

mod common;
mod outbound_util;

use std::net::Ipv4Addr;
use std::thread;
use std::time::{Duration, Instant};

use common::dns::{self, DnsServer, Transport, Zone};
use common::sink::{Behaviour, Outcome, Sink};
use common::*;
use outbound_util::*;

/// remote.test: MX 10 mx1 (127.0.0.2) and MX 20 mx2 (127.0.0.3).
fn two_mx() -> Zone {
    Zone::new()
        .mx("remote.test", 20, "mx2.remote.test")
        .mx("remote.test", 10, "mx1.remote.test")
        .a("mx1.remote.test", "127.0.0.2")
        .a("mx2.remote.test", "127.0.0.3")
}

/// One domain, one MX host `mx.DOMAIN` at 127.0.0.`last`.
fn one_mx(zone: Zone, domain: &str, last: u8) -> Zone {
    let host = format!("mx.{domain}");
    zone.mx(domain, 10, &host)
        .a(&host, &format!("127.0.0.{last}"))
}

fn accept_on(last: u8) -> (Ipv4Addr, Behaviour) {
    (v4(last), Behaviour::accept())
}

// ---------------------------------------------------------------------------
// Where the mail goes

#[test]
fn the_lowest_preference_mx_gets_one_transaction_for_the_domain() {
    let sinks = Sink::start_many(vec![accept_on(2), accept_on(3)]);
    let port = sinks[0].port();
    let dns = DnsServer::start(two_mx());
    let server = outbound("out-lowest", &dns, port).start();
    let msg = dotted_message("o1");
    let rcpts = ["x@remote.test", "y@remote.test"];
    send(&server, FROM, &rcpts, &msg);

    let got = sinks[0].wait_delivered(1);
    let t = &got[0];
    assert_eq!(t.mail_from, FROM);
    assert_eq!(t.rcpts, rcpts, "both recipients in one transaction");
    assert_eq!(t.helo, HOST, "EHLO with the configured host name");
    assert!(!t.tls, "the sink offers no STARTTLS");
    assert!(
        t.param("size").is_some_and(|s| s.parse::<u64>().is_ok()),
        "SIZE= is sent when offered: {:?}",
        t.mail_params
    );
    assert!(!t.bare_lf);
    assert_relayed(&t.data, &msg);
    assert_eq!(sinks[0].connections(), 1, "one connection for the domain");
    assert_eq!(sinks[1].connections(), 0, "the backup MX is left alone");
    let s = &sinks[0].wait_sessions(1)[0];
    assert!(s.quit, "QUIT at the end: {s:#?}");

    for r in rcpts {
        let line = wait_outcome(&server, r, "sent");
        assert_relay(&line, "mx1.remote.test", v4(2), port);
        assert_dsn(&line, "2.0.0");
        assert!(line.contains("status=sent (250 "), "{line}");
    }
    wait_queue_empty(&server);
    assert!(dns.asked("remote.test", dns::MX) >= 1);
    assert!(dns.asked("mx1.remote.test", dns::A) >= 1);
    server.assert_no_mail(FROM_USER);
}

#[test]
fn the_next_mx_is_tried_when_the_first_refuses_connections() {
    // Nothing listens on 127.0.0.2 at the sinks' port: connection refused.
    let sink = Sink::start(v4(3), Behaviour::accept());
    let port = sink.port();
    let dns = DnsServer::start(two_mx());
    let server = outbound("out-refused", &dns, port).start();
    let msg = message("o2", "fallback", "the first MX is down");
    send(&server, FROM, &["x@remote.test"], &msg);

    let t = &sink.wait_delivered(1)[0];
    assert_eq!(t.rcpts, ["x@remote.test"]);
    assert_relayed(&t.data, &msg);
    let line = wait_outcome(&server, "x@remote.test", "sent");
    assert_relay(&line, "mx2.remote.test", v4(3), port);
    assert_dsn(&line, "2.0.0");
    wait_queue_empty(&server);
}

#[test]
fn the_next_mx_is_tried_after_a_421_or_450_greeting() {
    let sinks = Sink::start_many(vec![
        (v4(2), Behaviour::accept().greeting_421()),
        (v4(3), Behaviour::accept().greeting_450()),
        accept_on(4),
    ]);
    let port = sinks[0].port();
    let zone = two_mx()
        .mx("remote.test", 30, "mx3.remote.test")
        .a("mx3.remote.test", "127.0.0.4");
    let dns = DnsServer::start(zone);
    let server = outbound("out-greeting", &dns, port).start();
    let msg = message("o3", "fallback", "two MX hosts say not now");
    send(&server, FROM, &["x@remote.test"], &msg);

    let t = &sinks[2].wait_delivered(1)[0];
    assert_relayed(&t.data, &msg);
    for s in &sinks[..2] {
        assert!(s.connections() >= 1, "{} was not tried first", s.addr());
        assert_no_transaction(s);
    }
    let line = wait_outcome(&server, "x@remote.test", "sent");
    assert_relay(&line, "mx3.remote.test", v4(4), port);
    wait_queue_empty(&server);
}

#[test]
fn the_next_mx_is_tried_after_a_timeout_or_a_dropped_connection() {
    let sinks = Sink::start_many(vec![
        (v4(2), Behaviour::accept().silent()),
        (v4(3), Behaviour::accept().drop_after_mail()),
        accept_on(4),
    ]);
    let port = sinks[0].port();
    let zone = two_mx()
        .mx("remote.test", 30, "mx3.remote.test")
        .a("mx3.remote.test", "127.0.0.4");
    let dns = DnsServer::start(zone);
    let server = outbound_base("out-timeout", &dns, port)
        .with("outbound_connect_timeout 2s")
        .with("outbound_command_timeout 2s")
        .with("outbound_data_timeout 2s")
        .start();
    let started = Instant::now();
    let msg = message("o4", "fallback", "one MX is mute, one hangs up");
    send(&server, FROM, &["x@remote.test"], &msg);

    let t = &sinks[2].wait_delivered(1)[0];
    assert_relayed(&t.data, &msg);
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "the 2 s greeting timeout was not honoured: {:?}",
        started.elapsed()
    );
    assert_eq!(sinks[0].connections(), 1, "the mute MX was tried");
    let dropped = sinks[1].transactions();
    assert_eq!(dropped.len(), 1, "{dropped:#?}");
    assert_eq!(dropped[0].outcome, Outcome::Dropped);
    let line = wait_outcome(&server, "x@remote.test", "sent");
    assert_relay(&line, "mx3.remote.test", v4(4), port);
}

#[test]
fn a_domain_without_mx_is_its_own_mail_host() {
    let sink = Sink::start(v4(2), Behaviour::accept());
    let port = sink.port();
    let dns = DnsServer::start(Zone::new().a("remote.test", "127.0.0.2"));
    let server = outbound("out-implicit", &dns, port).start();
    let msg = message("o5", "implicit MX", "no MX record, an A record");
    send(&server, FROM, &["x@remote.test"], &msg);

    let t = &sink.wait_delivered(1)[0];
    assert_eq!(t.rcpts, ["x@remote.test"]);
    assert_relayed(&t.data, &msg);
    assert!(dns.asked("remote.test", dns::MX) >= 1);
    assert!(dns.asked("remote.test", dns::A) >= 1);
    let line = wait_outcome(&server, "x@remote.test", "sent");
    assert_relay(&line, "remote.test", v4(2), port);
    assert_dsn(&line, "2.0.0");
}

#[test]
fn an_address_literal_is_delivered_to_that_address_without_dns() {
    let sink = Sink::start(v4(2), Behaviour::accept());
    let port = sink.port();
    let dns = DnsServer::start(two_mx());
    let server = outbound("out-literal", &dns, port).start();
    let msg = message("o6", "literal", "to an address, not a name");
    send(&server, FROM, &["postmaster@[127.0.0.2]"], &msg);

    let t = &sink.wait_delivered(1)[0];
    assert_eq!(t.rcpts, ["postmaster@[127.0.0.2]"]);
    assert_relayed(&t.data, &msg);
    let line = wait_outcome(&server, "postmaster@[127.0.0.2]", "sent");
    assert!(line.contains(&format!("[127.0.0.2]:{port}")), "{line}");
    assert_eq!(dns.total(), 0, "no DNS for an address literal");
}

#[test]
fn an_alias_to_a_remote_address_is_forwarded() {
    let sink = Sink::start(v4(2), Behaviour::accept());
    let port = sink.port();
    let dns = DnsServer::start(two_mx());
    let server = outbound("out-alias", &dns, port)
        .aliases("postmaster: alice\nfwd: x@remote.test, bob\n")
        .start();
    let msg = message("o7", "forwarded", "to bob here and x over there");
    send(&server, FROM, &["fwd@example.test"], &msg);

    let t = &sink.wait_delivered(1)[0];
    assert_eq!(t.rcpts, ["x@remote.test"]);
    assert_eq!(t.mail_from, FROM, "the original sender is kept");
    assert!(t.data.ends_with(&msg));
    server.wait_mail("bob", 1);
    wait_outcome(&server, "x@remote.test", "sent");
}

// ---------------------------------------------------------------------------
// Bounces

#[test]
fn a_domain_that_does_not_exist_bounces_at_once() {
    let dns = DnsServer::start(two_mx());
    let server = outbound("out-nxdomain", &dns, free_port())
        .with("retry_min 1s")
        .with("retry_max 1s")
        .start();
    let msg = message("o8", "nowhere", "this domain does not exist");
    send(&server, FROM, &["x@nowhere.test"], &msg);

    let dsn = wait_dsn(&server, FROM_USER);
    dsn.assert_failed("x@nowhere.test", "5.1.");
    dsn.assert_quotes("o8");
    let line = wait_outcome(&server, "x@nowhere.test", "bounced");
    assert_dsn(&line, "5.1.");
    assert!(dns.asked("nowhere.test", dns::MX) >= 1);
    wait_queue_empty(&server);
    // No retry: one verdict, never a deferral.
    thread::sleep(SETTLE * 4);
    let lines = log_lines(&server, &["to=<x@nowhere.test>"]);
    assert_eq!(lines.len(), 1, "{lines:#?}");
}

#[test]
fn a_null_mx_domain_bounces_at_once() {
    let dns = DnsServer::start(Zone::new().null_mx("nomail.test"));
    let server = outbound("out-nullmx", &dns, free_port())
        .with("retry_min 1s")
        .with("retry_max 1s")
        .start();
    let msg = message("o9", "null MX", "this domain takes no mail");
    send(&server, FROM, &["x@nomail.test"], &msg);

    let dsn = wait_dsn(&server, FROM_USER);
    dsn.assert_failed("x@nomail.test", "5.1.");
    dsn.assert_quotes("o9");
    let line = wait_outcome(&server, "x@nomail.test", "bounced");
    assert_dsn(&line, "5.1.");
    wait_queue_empty(&server);
    thread::sleep(SETTLE * 4);
    let lines = log_lines(&server, &["to=<x@nomail.test>"]);
    assert_eq!(lines.len(), 1, "{lines:#?}");
}

#[test]
fn each_recipient_gets_its_own_verdict() {
    let b = Behaviour::accept()
        .reject_rcpts(&["bad@remote.test"])
        .temp_fail_rcpts(&["later@remote.test"]);
    let sink = Sink::start(v4(2), b);
    let port = sink.port();
    let dns = DnsServer::start(two_mx());
    let server = outbound("out-mixed", &dns, port)
        .with("retry_min 1s")
        .with("retry_max 1s")
        .start();
    let msg = dotted_message("o10");
    send(
        &server,
        FROM,
        &["ok@remote.test", "bad@remote.test", "later@remote.test"],
        &msg,
    );

    // The accepted one is delivered, alone.
    let first = sink.wait_delivered(1);
    assert_eq!(first[0].rcpts, ["ok@remote.test"]);
    assert_relayed(&first[0].data, &msg);
    let ok = wait_outcome(&server, "ok@remote.test", "sent");
    assert_relay(&ok, "mx1.remote.test", v4(2), port);
    assert_dsn(&ok, "2.0.0");
    // The refused one is returned at once, with the remote reply.
    let bad = wait_outcome(&server, "bad@remote.test", "bounced");
    assert_dsn(&bad, "5.1.1");
    assert!(bad.contains("(550 5.1.1"), "{bad}");
    let later = wait_outcome(&server, "later@remote.test", "deferred");
    assert_dsn(&later, "4.");
    assert!(later.contains("(450 4.2.0"), "{later}");
    let dsn = wait_dsn(&server, FROM_USER);
    dsn.assert_failed("bad@remote.test", "5.1.1");
    dsn.assert_not_named("later@remote.test");
    dsn.assert_not_named("ok@remote.test");
    assert!(
        dsn.status.contains("Diagnostic-Code: smtp; 550 5.1.1"),
        "{}",
        dsn.status
    );
    assert!(
        dsn.status.contains("Remote-MTA: dns; mx1.remote.test"),
        "{}",
        dsn.status
    );
    dsn.assert_quotes("o10");

    // The deferred one goes once the sink takes it; ok is not sent again.
    sink.set_behaviour(Behaviour::accept());
    let all = sink.wait_delivered(2);
    assert_eq!(all[1].rcpts, ["later@remote.test"]);
    assert_relayed(&all[1].data, &msg);
    wait_outcome(&server, "later@remote.test", "sent");
    wait_queue_empty(&server);
    assert_eq!(
        server.delivered(FROM_USER).len(),
        1,
        "one notification only"
    );
}

#[test]
fn a_message_deferred_by_a_4xx_survives_a_restart_and_is_delivered() {
    let sink = Sink::start(v4(2), Behaviour::accept().temp_fail_all_rcpts());
    let port = sink.port();
    let dns = DnsServer::start(two_mx());
    let mut server = outbound("out-restart", &dns, port)
        .with("retry_min 1h")
        .start();
    let msg = dotted_message("o11");
    send(&server, FROM, &["x@remote.test"], &msg);

    let line = wait_outcome(&server, "x@remote.test", "deferred");
    assert_relay(&line, "mx1.remote.test", v4(2), port);
    assert_dsn(&line, "4.");
    assert!(line.contains("(450 4.2.0"), "{line}");
    assert_eq!(queued(&server), 1, "the deferred message stays queued");
    assert!(sink.delivered().is_empty());

    server.kill9();
    sink.set_behaviour(Behaviour::accept());
    server.start_again();
    let t = &sink.wait_delivered(1)[0];
    assert_eq!(t.rcpts, ["x@remote.test"]);
    assert_eq!(t.mail_from, FROM);
    assert_relayed(&t.data, &msg);
    wait_outcome(&server, "x@remote.test", "sent");
    wait_queue_empty(&server);
    server.assert_no_mail(FROM_USER);
}

#[test]
fn a_451_after_the_data_is_retried() {
    let sink = Sink::start(v4(2), Behaviour::accept().temp_fail_data());
    let port = sink.port();
    let dns = DnsServer::start(two_mx());
    let server = outbound("out-451", &dns, port)
        .with("retry_min 1s")
        .with("retry_max 1s")
        .start();
    let msg = message("o12", "retry", "refused after the dot, once");
    send(&server, FROM, &["x@remote.test", "y@remote.test"], &msg);

    for r in ["x@remote.test", "y@remote.test"] {
        let line = wait_outcome(&server, r, "deferred");
        assert_dsn(&line, "4.3.0");
        assert!(line.contains("(451 4.3.0"), "{line}");
    }
    sink.set_behaviour(Behaviour::accept());
    let t = &sink.wait_delivered(1)[0];
    assert_eq!(t.rcpts, ["x@remote.test", "y@remote.test"]);
    assert_relayed(&t.data, &msg);
    let refused: Vec<_> = sink
        .transactions()
        .into_iter()
        .filter(|t| t.outcome == Outcome::Refused(451))
        .collect();
    assert!(!refused.is_empty());
    wait_queue_empty(&server);
    server.assert_no_mail(FROM_USER);
}

#[test]
fn flush_retries_deferred_remote_mail_now() {
    let sink = Sink::start(v4(2), Behaviour::accept().temp_fail_all_rcpts());
    let port = sink.port();
    let dns = DnsServer::start(two_mx());
    let server = outbound("out-flush", &dns, port)
        .with("retry_min 1h")
        .start();
    send(
        &server,
        FROM,
        &["x@remote.test"],
        &message("o13", "flush", "now"),
    );
    wait_outcome(&server, "x@remote.test", "deferred");
    sink.set_behaviour(Behaviour::accept());
    thread::sleep(Duration::from_millis(500));
    assert!(sink.delivered().is_empty(), "nothing happens by itself");
    let conf = server.config.to_string_lossy().into_owned();
    let (code, _, err) = run_binary(&["flush", "-c", &conf]);
    assert_eq!(code, Some(0), "{err}");
    sink.wait_delivered(1);
    wait_outcome(&server, "x@remote.test", "sent");
}

#[test]
fn mail_deferred_past_its_lifetime_is_returned_to_the_sender() {
    let sink = Sink::start(v4(2), Behaviour::accept().temp_fail_all_rcpts());
    let port = sink.port();
    let dns = DnsServer::start(two_mx());
    let server = outbound("out-expiry", &dns, port)
        .with("retry_min 1s")
        .with("retry_max 1s")
        .with("queue_lifetime 3s")
        .start();
    send(
        &server,
        FROM,
        &["x@remote.test"],
        &message("o14", "expiry", "greylisted forever"),
    );
    wait_outcome(&server, "x@remote.test", "deferred");
    let dsn = wait_dsn(&server, FROM_USER);
    dsn.assert_failed("x@remote.test", "4.");
    dsn.assert_quotes("o14");
    let line = wait_outcome(&server, "x@remote.test", "bounced");
    assert_dsn(&line, "4.");
    wait_queue_empty(&server);
    assert!(sink.delivered().is_empty());
}

#[test]
fn the_null_sender_is_never_notified() {
    let sink = Sink::start(v4(2), Behaviour::accept().reject_rcpts(&["x@remote.test"]));
    let port = sink.port();
    let dns = DnsServer::start(two_mx());
    let server = outbound("out-null", &dns, port).start();
    send(
        &server,
        "",
        &["x@remote.test"],
        &message("o15", "a bounce", "refused over there"),
    );
    let line = wait_outcome(&server, "x@remote.test", "bounced");
    assert_dsn(&line, "5.1.1");
    wait_log(&server, "no notification: the sender is null");
    let s = &sink.wait_sessions(1)[0];
    let t = &s.transactions[0];
    assert_eq!(t.mail_from, "", "MAIL FROM:<> is kept on the way out");
    assert_eq!(t.rcpt_log[0].2, 550);
    wait_queue_empty(&server);
    thread::sleep(SETTLE);
    assert_no_notification(&server);
}

// ---------------------------------------------------------------------------
// DNS

#[test]
fn a_truncated_dns_answer_is_asked_again_over_tcp() {
    let sink = Sink::start(v4(2), Behaviour::accept());
    let port = sink.port();
    let dns = DnsServer::start(two_mx().truncate("remote.test"));
    let server = outbound("out-dns-tcp", &dns, port).start();
    let msg = message("o16", "tcp", "the MX answer needs TCP");
    send(&server, FROM, &["x@remote.test"], &msg);

    let t = &sink.wait_delivered(1)[0];
    assert_relayed(&t.data, &msg);
    assert!(dns.count("remote.test", dns::MX, Transport::Udp) >= 1);
    assert!(
        dns.count("remote.test", dns::MX, Transport::Tcp) >= 1,
        "no TCP query after the truncated answer: {:#?}",
        dns.queries()
    );
    let line = wait_outcome(&server, "x@remote.test", "sent");
    assert_relay(&line, "mx1.remote.test", v4(2), port);
}

/// The resolver's timeout and attempts come from /etc/resolv.conf (glibc
/// defaults: 5 s, 2 tries), so giving up takes up to ~10 s here: this test
/// waits longer than the others.
#[test]
fn a_dns_server_that_never_answers_defers_the_mail() {
    const DNS_PATIENCE: Duration = Duration::from_secs(30);
    let sink = Sink::start(v4(2), Behaviour::accept());
    let port = sink.port();
    let dns = DnsServer::start(two_mx().never_answer());
    let server = outbound("out-dns-silent", &dns, port)
        .with("retry_min 1s")
        .with("retry_max 1s")
        .start();
    let msg = message("o17", "silent DNS", "later, not never");
    send(&server, FROM, &["x@remote.test"], &msg);

    let line = wait_outcome_within(&server, "x@remote.test", "deferred", DNS_PATIENCE);
    assert_dsn(&line, "4.");
    assert!(
        log_lines(&server, &["to=<x@remote.test>", "status=bounced"]).is_empty(),
        "a DNS timeout must not bounce:\n{}",
        server.log_text()
    );
    assert!(dns.asked("remote.test", dns::MX) >= 1);
    assert_eq!(queued(&server), 1);
    server.assert_no_mail(FROM_USER);

    // Once DNS answers, the next retry delivers.
    dns.set_silent(false);
    let deadline = Instant::now() + DNS_PATIENCE;
    while sink.delivered().is_empty() {
        assert!(
            Instant::now() < deadline,
            "not delivered once DNS answered:\n{}",
            server.log_text()
        );
        thread::sleep(Duration::from_millis(50));
    }
    assert_relayed(&sink.delivered()[0].data, &msg);
    wait_outcome(&server, "x@remote.test", "sent");
}

// ---------------------------------------------------------------------------
// TLS

#[test]
fn starttls_is_used_when_offered_and_plain_smtp_otherwise() {
    let certs = TestDir::new("out-tls-cert");
    // For "localhost", by a CA picomta does not know: opportunistic TLS
    // does not check the certificate.
    let cert = tls::ca_signed(&certs.path);
    let sinks = Sink::start_many(vec![
        (v4(2), Behaviour::accept().starttls(&cert)),
        accept_on(3),
    ]);
    let port = sinks[0].port();
    let zone = one_mx(one_mx(Zone::new(), "tls.test", 2), "plain.test", 3);
    let dns = DnsServer::start(zone);
    let server = outbound("out-tls-may", &dns, port).start();
    let msg = dotted_message("o18");
    send(&server, FROM, &["a@tls.test", "b@plain.test"], &msg);

    let t = &sinks[0].wait_delivered(1)[0];
    assert!(t.tls, "STARTTLS offered but not used");
    assert_eq!(t.rcpts, ["a@tls.test"]);
    assert_relayed(&t.data, &msg);
    let s = &sinks[0].wait_sessions(1)[0];
    assert!(s.tls_version.is_some());
    assert_eq!(s.helo.as_deref(), Some(HOST), "EHLO again after TLS");
    let p = &sinks[1].wait_delivered(1)[0];
    assert!(!p.tls);
    assert_eq!(p.rcpts, ["b@plain.test"]);
    assert_relayed(&p.data, &msg);
    wait_outcome(&server, "a@tls.test", "sent");
    wait_outcome(&server, "b@plain.test", "sent");
}

#[test]
fn tls_policy_encrypt_defers_when_starttls_is_not_offered() {
    let sink = Sink::start(v4(2), Behaviour::accept());
    let port = sink.port();
    let dns = DnsServer::start(one_mx(Zone::new(), "secure.test", 2));
    let server = outbound("out-tls-encrypt", &dns, port)
        .with("tls_policy secure.test encrypt")
        .with("retry_min 1h")
        .start();
    send(
        &server,
        FROM,
        &["x@secure.test"],
        &message("o19", "encrypt", "only over TLS"),
    );
    let line = wait_outcome(&server, "x@secure.test", "deferred");
    assert_dsn(&line, "4.7.");
    sink.wait_sessions(1);
    assert_no_transaction(&sink);
    assert!(sink.delivered().is_empty());
    assert_eq!(queued(&server), 1);
    server.assert_no_mail(FROM_USER);
}

#[test]
fn tls_policy_verify_checks_the_mx_certificate() {
    let certs = TestDir::new("out-tls-verify-cert");
    let cert = tls::ca_signed_for(&certs.path, &["mx.good.test"]);
    // The same certificate on both: right for mx.good.test, wrong for
    // mx.bad.test.
    let sinks = Sink::start_many(vec![
        (v4(2), Behaviour::accept().starttls(&cert)),
        (v4(3), Behaviour::accept().starttls(&cert)),
    ]);
    let port = sinks[0].port();
    let zone = one_mx(one_mx(Zone::new(), "good.test", 2), "bad.test", 3);
    let dns = DnsServer::start(zone);
    let server = outbound("out-tls-verify", &dns, port)
        .with(&format!("tls_ca_file {}", cert.ca.display()))
        .with("tls_policy good.test verify")
        .with("tls_policy bad.test verify")
        .with("retry_min 1h")
        .start();
    send(
        &server,
        FROM,
        &["x@good.test", "y@bad.test"],
        &message("o20", "verify", "checked certificates"),
    );
    let t = &sinks[0].wait_delivered(1)[0];
    assert!(t.tls);
    assert_eq!(t.rcpts, ["x@good.test"]);
    let line = wait_outcome(&server, "y@bad.test", "deferred");
    assert_dsn(&line, "4.");
    assert_no_transaction(&sinks[1]);
    wait_outcome(&server, "x@good.test", "sent");
    server.assert_no_mail(FROM_USER);
}

// ---------------------------------------------------------------------------
// Load

#[test]
fn many_messages_go_out_under_the_connection_caps() {
    let sinks = Sink::start_many(vec![accept_on(2), accept_on(3)]);
    let port = sinks[0].port();
    let zone = one_mx(one_mx(Zone::new(), "a.test", 2), "b.test", 3);
    let dns = DnsServer::start(zone);
    let server = outbound("out-caps", &dns, port)
        .with("max_outbound_connections 2")
        .with("max_outbound_per_destination 1")
        .start();
    let mut c = server.connect_ehlo();
    for i in 0..4 {
        let m = message(&format!("o21-{i}"), "load", "one of several");
        c.deliver(
            FROM,
            &[&format!("u{i}@a.test"), &format!("u{i}@b.test")],
            &m,
        );
    }
    c.ok("QUIT", 221, "");
    for s in &sinks {
        let got = wait_accepted_rcpts(s, 4);
        assert!(got.iter().all(|t| t.mail_from == FROM));
    }
    wait_queue_empty(&server);
}

// ---------------------------------------------------------------------------
// A third-party SMTP server

#[test]
fn aiosmtpd_receives_relayed_mail() {
    let port = free_port_on(&[v4(5)]);
    let aio = Aiosmtpd::start(v4(5), port, &[]);
    let dns = DnsServer::start(one_mx(Zone::new(), "interop.test", 5));
    let server = outbound("out-aiosmtpd", &dns, aio.port()).start();
    let msg = dotted_message("o22");
    send(&server, FROM, &["a@interop.test", "b@interop.test"], &msg);

    let got = aio.wait_messages(1);
    let m = &got[0];
    assert_eq!(m.from, FROM);
    assert_eq!(m.rcpts, ["a@interop.test", "b@interop.test"]);
    assert_eq!(m.helo, HOST);
    assert!(!m.tls);
    assert_relayed(&m.data, &msg);
    for r in ["a@interop.test", "b@interop.test"] {
        let line = wait_outcome(&server, r, "sent");
        assert_relay(&line, "mx.interop.test", v4(5), port);
        assert_dsn(&line, "2.0.0");
    }
    wait_queue_empty(&server);
}

#[test]
fn aiosmtpd_with_starttls_gets_the_mail_encrypted() {
    let certs = TestDir::new("out-aiosmtpd-cert");
    let cert = tls::ca_signed(&certs.path);
    let port = free_port_on(&[v4(5)]);
    let (c, k) = (
        cert.cert.display().to_string(),
        cert.key.display().to_string(),
    );
    // aiosmtpd then refuses MAIL before STARTTLS (require_starttls).
    let aio = Aiosmtpd::start(v4(5), port, &["--tlscert", &c, "--tlskey", &k]);
    let dns = DnsServer::start(one_mx(Zone::new(), "interop.test", 5));
    let server = outbound("out-aiosmtpd-tls", &dns, aio.port()).start();
    let msg = dotted_message("o23");
    send(&server, FROM, &["a@interop.test"], &msg);

    let m = &aio.wait_messages(1)[0];
    assert!(m.tls, "not over TLS");
    assert_eq!(m.rcpts, ["a@interop.test"]);
    assert_relayed(&m.data, &msg);
    wait_outcome(&server, "a@interop.test", "sent");
}

/// Mail stuck on a mute remote host must not hold up local delivery: 80
/// messages wait for a host that never answers (more than the 64 messages
/// with Maildir work at once), and a local message still arrives at once.
#[test]
fn a_mute_remote_host_does_not_hold_up_local_mail() {
    let sink = Sink::start(v4(2), Behaviour::accept().silent());
    let port = sink.port();
    let dns = DnsServer::start(Zone::new().a("remote.test", "127.0.0.2"));
    let server = outbound_base("out-mute", &dns, port)
        .with("outbound_command_timeout 1h")
        .with("max_outbound_connections 100")
        .with("max_outbound_per_destination 100")
        .start();
    let msg = message("mute", "waits", "for a host that never speaks");
    let mut c = server.connect_ehlo();
    for _ in 0..80 {
        c.deliver(FROM, &["x@remote.test"], &msg);
    }
    // Every one of them is connected and waiting for the greeting.
    let deadline = Instant::now() + TIMEOUT;
    while sink.connections() < 80 {
        assert!(
            Instant::now() < deadline,
            "{} connections",
            sink.connections()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let local = message("local", "local mail", "not stuck behind the remote queue");
    c.deliver(FROM, &["alice@example.test"], &local);
    c.ok("QUIT", 221, "");
    let got = server.wait_mail("alice", 1);
    assert!(got[0]
        .message_str()
        .contains("Message-ID: <local@client.test>"));
}

/// A host that offers STARTTLS but fails every handshake (here: a fatal
/// alert right after its 220) still gets the mail: opportunistic TLS falls
/// back to plain text on the same host, as Postfix's `may` does.
#[test]
fn a_failed_opportunistic_handshake_is_retried_in_plain_text() {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(false).unwrap();
    let host = std::thread::spawn(move || {
        let mut transcripts = Vec::new();
        for _ in 0..2 {
            let (stream, _) = listener.accept().unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut out = stream.try_clone().unwrap();
            let mut lines = BufReader::new(stream);
            let mut seen = String::new();
            out.write_all(b"220 broken.test ESMTP\r\n").unwrap();
            let mut in_data = false;
            loop {
                let mut line = String::new();
                if lines.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                seen.push_str(&line);
                let upper = line.to_ascii_uppercase();
                let reply: &[u8] = if in_data {
                    if line == ".\r\n" {
                        in_data = false;
                        b"250 2.0.0 taken\r\n"
                    } else {
                        continue;
                    }
                } else if upper.starts_with("EHLO") {
                    // Offered every time: only a client that leaves it alone
                    // gets through.
                    b"250-broken.test\r\n250 STARTTLS\r\n"
                } else if upper.starts_with("STARTTLS") {
                    // 220, then a fatal handshake_failure alert instead of a
                    // ServerHello.
                    out.write_all(b"220 2.0.0 go ahead\r\n").unwrap();
                    std::thread::sleep(Duration::from_millis(100));
                    let _ = out.write_all(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]);
                    break;
                } else if upper.starts_with("DATA") {
                    in_data = true;
                    b"354 go on\r\n"
                } else if upper.starts_with("QUIT") {
                    let _ = out.write_all(b"221 bye\r\n");
                    break;
                } else {
                    b"250 ok\r\n"
                };
                out.write_all(reply).unwrap();
            }
            transcripts.push(seen);
        }
        transcripts
    });
    let dns = DnsServer::start(Zone::new().a("remote.test", "127.0.0.2"));
    let server = outbound("out-tls-fallback", &dns, port).start();
    let msg = message("plain", "fallback", "after a failed handshake");
    send(&server, FROM, &["x@remote.test"], &msg);
    let line = wait_outcome(&server, "x@remote.test", "sent");
    assert!(line.contains("dsn=2.0.0"), "{line}");
    let transcripts = host.join().unwrap();
    assert!(transcripts[0].contains("STARTTLS"), "{:?}", transcripts[0]);
    assert!(!transcripts[1].contains("STARTTLS"), "{:?}", transcripts[1]);
    assert!(
        transcripts[1].contains("Message-ID: <plain@client.test>"),
        "{:?}",
        transcripts[1]
    );
    assert!(server.log_text().contains("trying again without TLS"));
}

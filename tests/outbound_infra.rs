//! Checks of the outbound test infrastructure itself (`common::dns`,
//! `common::sink`) before the delivery tests lean on it: the DNS responder
//! answers hand-built queries right (records, CNAME chains, NXDOMAIN, null
//! MX, SERVFAIL, silence, truncation then TCP) and counts them; the sinks
//! record transactions, refuse as told, share a port across addresses, and
//! do STARTTLS and AUTH.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use common::dns::{self, DnsServer, Transport, Zone};
use common::sink::{b64_decode, Behaviour, Outcome, Sink};
use common::tls::{self, b64, plain, CERT_NAME};
use common::*;

const WAIT: Duration = Duration::from_secs(2);
const QUIET: Duration = Duration::from_millis(300);

fn zone() -> Zone {
    Zone::new()
        .mx("remote.test", 20, "mx2.remote.test")
        .mx("remote.test", 10, "mx1.remote.test")
        .a("mx1.remote.test", "127.0.0.2")
        .aaaa("mx1.remote.test", "::1")
        .a("mx2.remote.test", "127.0.0.3")
        .ttl(5)
        .cname("alias.remote.test", "mx1.remote.test")
        .cname("chain.remote.test", "alias.remote.test")
        .null_mx("nomail.test")
        .servfail("broken.test")
        .silent("slow.test", None)
        .rcode("refused.test", Some(dns::MX), dns::REFUSED)
        .a("refused.test", "127.0.0.9")
        .negative_ttl(30)
}

#[test]
fn dns_answers_a_hand_built_query() {
    let server = DnsServer::start(zone());
    // The query bytes written out by hand, not by our encoder: id 0x1234,
    // RD, one question "remote.test" MX IN.
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    q.extend_from_slice(b"\x06remote\x04test\x00\x00\x0f\x00\x01");
    assert_eq!(q, dns::build_query(0x1234, "remote.test", dns::MX));
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(WAIT)).expect("timeout");
    sock.send_to(&q, server.addr()).expect("send");
    let mut buf = [0u8; 1500];
    let (n, from) = sock.recv_from(&mut buf).expect("an answer");
    assert_eq!(from, server.addr());
    let p = &buf[..n];
    // Header: same id; QR AA RD RA, NOERROR; 1 question, 2 answers.
    assert_eq!(&p[..12], &[0x12, 0x34, 0x85, 0x80, 0, 1, 0, 2, 0, 0, 0, 0]);
    // The question is echoed byte for byte.
    assert_eq!(&p[12..12 + 17], &q[12..]);
    let r = dns::parse_response(p).expect("parse");
    assert_eq!(r.qname, "remote.test");
    assert_eq!(
        r.mx(),
        vec![
            (20, "mx2.remote.test".to_string()),
            (10, "mx1.remote.test".to_string())
        ]
    );
    assert!(r
        .answers
        .iter()
        .all(|a| a.ttl == 300 && a.name == "remote.test"));
    assert_eq!(server.count("remote.test", dns::MX, Transport::Udp), 1);
    assert_eq!(server.count("remote.test", dns::MX, Transport::Tcp), 0);
    assert_eq!(server.total(), 1);
}

#[test]
fn dns_records_cnames_and_negative_answers() {
    let server = DnsServer::start(zone());
    let ask = |name: &str, t: u16| {
        dns::udp_query(server.addr(), name, t, WAIT)
            .unwrap_or_else(|| panic!("no answer for {name}"))
    };

    let r = ask("mx1.remote.test", dns::A);
    assert_eq!(r.a(), vec![Ipv4Addr::new(127, 0, 0, 2)]);
    let r = ask("MX1.Remote.Test", dns::AAAA);
    assert_eq!(r.aaaa(), vec!["::1".parse::<std::net::Ipv6Addr>().unwrap()]);
    assert_eq!(r.qname, "MX1.Remote.Test", "case echoed as asked");
    assert!(server.queries().last().unwrap().mixed_case);

    // A CNAME chain inside the zone is followed; the TTL set by `ttl(5)`.
    let r = ask("chain.remote.test", dns::A);
    assert_eq!(r.rcode, dns::NOERROR);
    assert_eq!(r.answers.len(), 3);
    assert_eq!(
        r.answers[0].data,
        dns::Data::Cname("alias.remote.test".into())
    );
    assert_eq!(r.answers[0].ttl, 5);
    assert_eq!(r.a(), vec![Ipv4Addr::new(127, 0, 0, 2)]);

    // A name with records, none of the type: empty NOERROR with an SOA.
    let r = ask("mx2.remote.test", dns::AAAA);
    assert_eq!((r.rcode, r.answers.len()), (dns::NOERROR, 0));
    assert!(matches!(
        r.authority[0].data,
        dns::Data::Soa { minimum: 30, .. }
    ));
    assert_eq!(r.authority[0].ttl, 30);
    // An unknown name: NXDOMAIN with an SOA (negative TTL as set last).
    let r = ask("nowhere.test", dns::MX);
    assert_eq!(r.rcode, dns::NXDOMAIN);
    assert!(r.answers.is_empty());
    assert_eq!(r.authority.len(), 1);
    // An empty non-terminal exists.
    assert_eq!(ask("test", dns::MX).rcode, dns::NOERROR);

    // Null MX: one MX, preference 0, the root.
    assert_eq!(ask("nomail.test", dns::MX).mx(), vec![(0, String::new())]);

    // SERVFAIL for every type; REFUSED only for MX of refused.test.
    assert_eq!(ask("broken.test", dns::MX).rcode, dns::SERVFAIL);
    assert_eq!(ask("broken.test", dns::A).rcode, dns::SERVFAIL);
    assert_eq!(ask("refused.test", dns::MX).rcode, dns::REFUSED);
    assert_eq!(ask("refused.test", dns::A).a().len(), 1);

    // A silent name: nothing, over UDP or TCP; but counted.
    assert!(dns::udp_query(server.addr(), "slow.test", dns::MX, QUIET).is_none());
    assert!(dns::tcp_query(server.addr(), "slow.test", dns::MX, QUIET).is_none());
    assert_eq!(server.asked("slow.test", dns::MX), 2);
}

#[test]
fn dns_truncated_over_udp_whole_over_tcp() {
    let server = DnsServer::start(zone().truncate("remote.test"));
    let r = dns::udp_query(server.addr(), "remote.test", dns::MX, WAIT).expect("udp answer");
    assert!(r.tc, "TC set");
    assert!(r.answers.is_empty());
    let r = dns::tcp_query(server.addr(), "remote.test", dns::MX, WAIT).expect("tcp answer");
    assert!(!r.tc);
    assert_eq!(r.mx().len(), 2);
    assert_eq!(server.count("remote.test", dns::MX, Transport::Udp), 1);
    assert_eq!(server.count("remote.test", dns::MX, Transport::Tcp), 1);

    // Two queries on one TCP connection, answered in order.
    let mut s = TcpStream::connect(server.addr()).expect("connect");
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut both = Vec::new();
    for (id, name) in [(1u16, "mx1.remote.test"), (2, "mx2.remote.test")] {
        let q = dns::build_query(id, name, dns::A);
        both.extend_from_slice(&(q.len() as u16).to_be_bytes());
        both.extend_from_slice(&q);
    }
    s.write_all(&both).unwrap();
    for (id, ip) in [(1u16, [127, 0, 0, 2]), (2, [127, 0, 0, 3])] {
        let mut len = [0u8; 2];
        s.read_exact(&mut len).unwrap();
        let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut msg).unwrap();
        let r = dns::parse_response(&msg).unwrap();
        assert_eq!(r.id, id);
        assert_eq!(r.a(), vec![Ipv4Addr::from(ip)]);
    }

    // An answer over 512 bytes is truncated over UDP by itself.
    let mut big = Zone::new();
    for i in 0..40 {
        big = big.a("many.test", &format!("10.0.0.{i}"));
    }
    server.set_zone(big);
    let r = dns::udp_query(server.addr(), "many.test", dns::A, WAIT).expect("udp");
    assert!(r.tc && r.answers.is_empty());
    let r = dns::tcp_query(server.addr(), "many.test", dns::A, WAIT).expect("tcp");
    assert_eq!(r.a().len(), 40);
}

#[test]
fn dns_never_answering_server() {
    let server = DnsServer::start(zone().never_answer());
    assert!(dns::udp_query(server.addr(), "remote.test", dns::MX, QUIET).is_none());
    assert!(dns::tcp_query(server.addr(), "remote.test", dns::MX, QUIET).is_none());
    assert_eq!(server.total(), 2);
    server.set_silent(false);
    assert!(dns::udp_query(server.addr(), "remote.test", dns::MX, WAIT).is_some());
    server.reset_counts();
    assert_eq!(server.total(), 0);
    // Garbage and responses are ignored; a bad question count is FORMERR.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(WAIT)).unwrap();
    sock.send_to(b"\x00\x01\x81", server.addr()).unwrap();
    sock.send_to(&[0xab, 0xcd, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0], server.addr())
        .unwrap();
    let mut buf = [0u8; 512];
    let (n, _) = sock.recv_from(&mut buf).expect("FORMERR");
    assert_eq!(&buf[..4], &[0xab, 0xcd, 0x80, dns::FORMERR]);
    assert_eq!(n, 12);
}

#[test]
fn dns_stops_on_drop() {
    let server = DnsServer::start(zone());
    let addr = server.addr();
    let started = Instant::now();
    drop(server);
    assert!(started.elapsed() < Duration::from_secs(2), "drop is quick");
    assert!(dns::udp_query(addr, "remote.test", dns::MX, QUIET).is_none());
}

/// `dig`, a resolver we did not write, reads our answers. Skipped (with a
/// note) where dig is not installed: the checks above do not need it.
#[test]
fn dns_answers_dig() {
    let server = DnsServer::start(zone());
    let port = server.port().to_string();
    let dig = |args: &[&str]| {
        Command::new("dig")
            .args(["@127.0.0.1", "-p", &port, "+time=2", "+tries=1"])
            .args(args)
            .output()
    };
    let out = match dig(&["+short", "remote.test", "MX"]) {
        Ok(o) => o,
        Err(_) => {
            eprintln!("dig not installed; skipping the dig cross-check");
            return;
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort();
    assert_eq!(lines, ["10 mx1.remote.test.", "20 mx2.remote.test."]);
    let out = dig(&["+short", "chain.remote.test", "A"]).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "alias.remote.test.\nmx1.remote.test.\n127.0.0.2\n"
    );
    for q in [["mx2.remote.test", "AAAA"], ["nomail.test", "MX"]] {
        let o = String::from_utf8_lossy(&dig(&q).unwrap().stdout).into_owned();
        assert!(o.contains("status: NOERROR"), "{o}");
        assert!(!o.to_lowercase().contains("warning"), "{o}");
    }
    let out = dig(&["nowhere.test", "A"]).unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("status: NXDOMAIN"));
    // Truncated over UDP, dig retries over TCP by itself.
    server.set_zone(zone().truncate("remote.test"));
    let out = dig(&["+short", "remote.test", "MX"]).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
    assert_eq!(server.count("remote.test", dns::MX, Transport::Tcp), 1);
}

// ---------------------------------------------------------------------------
// Sinks

fn sink_client(sink: &Sink) -> Client {
    let mut c = Client::connect_addr(sink.addr());
    c.reply().assert(220, "");
    c
}

#[test]
fn sink_records_a_transaction_from_a_raw_client() {
    let sink = Sink::start([127, 0, 0, 2], Behaviour::accept());
    let mut c = sink_client(&sink);
    let ehlo = c.ehlo();
    assert!(tls::offers(&ehlo, "PIPELINING") && tls::offers(&ehlo, "8BITMIME"));
    assert!(!tls::offers(&ehlo, "STARTTLS"));
    c.ok("MAIL FROM:<a@b.test> SIZE=100 BODY=8BITMIME", 250, "2.1.0");
    c.ok("RCPT TO:<x@remote.test>", 250, "2.1.5");
    c.ok("RCPT TO:<y@remote.test> NOTIFY=NEVER", 250, "2.1.5");
    c.ok("DATA", 354, "");
    c.send(b"Subject: hi\r\n\r\n..leading dot\r\n.\r\n");
    c.reply().assert(250, "2.0.0");
    c.ok("QUIT", 221, "2.0.0");
    c.expect_closed();

    let got = sink.wait_delivered(1);
    let t = &got[0];
    assert_eq!(t.helo, "client.test");
    assert!(!t.tls && t.auth.is_none());
    assert_eq!(t.mail_from, "a@b.test");
    assert_eq!(t.mail_params, ["SIZE=100", "BODY=8BITMIME"]);
    assert_eq!(t.param("size").as_deref(), Some("100"));
    assert!(t.has_param("body=8bitmime"));
    assert_eq!(t.rcpts, ["x@remote.test", "y@remote.test"]);
    assert_eq!(t.rcpt_log[1].1, ["NOTIFY=NEVER"]);
    assert_eq!(t.data, b"Subject: hi\r\n\r\n.leading dot\r\n");
    assert_eq!(t.data_lf(), b"Subject: hi\n\n.leading dot\n");
    assert!(!t.bare_lf);
    let s = &sink.wait_sessions(1)[0];
    assert!(s.quit && s.ehlo && !s.pipelined);
    assert_eq!(s.peer.ip(), Ipv4Addr::LOCALHOST);
}

#[test]
fn sink_records_pipelining_and_null_sender() {
    let sink = Sink::start([127, 0, 0, 2], Behaviour::accept());
    let mut c = sink_client(&sink);
    c.ehlo();
    c.send(b"MAIL FROM:<>\r\nRCPT TO:<x@remote.test>\r\nDATA\r\n");
    c.reply().assert(250, "");
    c.reply().assert(250, "");
    c.reply().assert(354, "");
    c.send(b"bare\nline\r\n.\r\n");
    c.reply().assert(250, "");
    let t = &sink.wait_delivered(1)[0];
    assert_eq!(t.mail_from, "");
    assert!(t.bare_lf);
    assert!(sink.sessions()[0].pipelined);
}

#[test]
fn sink_refuses_as_told() {
    let b = Behaviour::accept()
        .reject_rcpts(&["bad@remote.test"])
        .temp_fail_rcpts(&["later@remote.test"])
        .temp_fail_data();
    let sink = Sink::start([127, 0, 0, 2], b);
    let mut c = sink_client(&sink);
    c.ehlo();
    c.ok("MAIL FROM:<a@b.test>", 250, "");
    c.ok("RCPT TO:<Bad@Remote.test>", 550, "5.1.1");
    c.ok("RCPT TO:<later@remote.test>", 450, "4.2.0");
    c.ok("RCPT TO:<ok@remote.test>", 250, "");
    c.ok("DATA", 354, "");
    c.send(b"x\r\n.\r\n");
    c.reply().assert(451, "4.3.0");
    c.ok("RSET", 250, "");
    c.ok("QUIT", 221, "");
    let s = &sink.wait_sessions(1)[0];
    let t = &s.transactions[0];
    assert_eq!(t.outcome, Outcome::Refused(451));
    assert_eq!(t.rcpts, ["ok@remote.test"]);
    let codes: Vec<u16> = t.rcpt_log.iter().map(|r| r.2).collect();
    assert_eq!(codes, [550, 450, 250]);
    assert!(sink.delivered().is_empty());

    // Everyone temp-failed: DATA is refused for want of recipients.
    sink.set_behaviour(Behaviour::accept().temp_fail_all_rcpts());
    let mut c = sink_client(&sink);
    c.ehlo();
    c.ok("MAIL FROM:<a@b.test>", 250, "");
    c.ok("RCPT TO:<x@remote.test>", 450, "4.2.0");
    c.ok("DATA", 554, "");
    c.ok("QUIT", 221, "");
    let s = &sink.wait_sessions(2)[1];
    assert_eq!(s.transactions[0].outcome, Outcome::Abandoned);
}

#[test]
fn sink_greetings_and_drops() {
    let sinks = Sink::start_many(vec![
        (
            Ipv4Addr::new(127, 0, 0, 2),
            Behaviour::accept().greeting_421(),
        ),
        (
            Ipv4Addr::new(127, 0, 0, 3),
            Behaviour::accept().greeting_450(),
        ),
        (
            Ipv4Addr::new(127, 0, 0, 4),
            Behaviour::accept().drop_after_mail(),
        ),
        (Ipv4Addr::new(127, 0, 0, 5), Behaviour::accept().silent()),
    ]);
    let port = sinks[0].port();
    assert!(sinks.iter().all(|s| s.port() == port), "one port for all");

    let mut c = Client::connect_addr(sinks[0].addr());
    c.reply().assert(421, "4.3.2");
    c.expect_closed();

    let mut c = Client::connect_addr(sinks[1].addr());
    c.reply().assert(450, "4.3.2");
    c.ok("EHLO client.test", 503, "5.5.1");
    c.ok("QUIT", 221, "");

    let mut c = sink_client(&sinks[2]);
    c.ehlo();
    c.send(b"MAIL FROM:<a@b.test>\r\n");
    c.expect_closed();
    let t = &sinks[2].wait_sessions(1)[0].transactions[0];
    assert_eq!(
        (t.outcome.clone(), t.mail_from.as_str()),
        (Outcome::Dropped, "a@b.test")
    );

    let mut c = Client::connect_addr(sinks[3].addr());
    c.expect_silence(QUIET);
    assert_eq!(sinks[3].connections(), 1);
}

#[test]
fn sink_starttls_and_auth() {
    let dir = TestDir::new("sink-tls");
    let cert = tls::ca_signed(&dir.path);
    let b = Behaviour::accept()
        .starttls(&cert)
        .auth("relayuser", "s3cret pw")
        .require_auth();
    let sink = Sink::start([127, 0, 0, 3], b);
    let mut c = sink_client(&sink);
    let ehlo = c.ehlo();
    assert!(tls::offers(&ehlo, "STARTTLS"));
    assert!(tls::auth_mechanisms(&ehlo).is_none(), "no AUTH before TLS");
    c.ok("AUTH PLAIN AGZvbwBiYXI=", 503, "5.5.1");
    let mut t = c.starttls(tls::client_config(&cert.ca_der, &[]));
    let ehlo = t.ehlo();
    assert!(!tls::offers(&ehlo, "STARTTLS"));
    assert_eq!(
        tls::auth_mechanisms(&ehlo),
        Some(vec!["PLAIN".to_string(), "LOGIN".to_string()])
    );
    t.ok("MAIL FROM:<a@b.test>", 530, "5.7.0");
    t.ok(
        &format!("AUTH PLAIN {}", plain("relayuser", "wrong")),
        535,
        "5.7.8",
    );
    // LOGIN, step by step.
    t.ok("AUTH LOGIN", 334, "");
    t.ok(&b64(b"relayuser"), 334, "");
    t.ok(&b64(b"s3cret pw"), 235, "2.7.0");
    t.deliver(
        "a@b.test",
        &["x@remote.test"],
        b"Subject: t\r\n\r\nover TLS\r\n",
    );
    t.ok("QUIT", 221, "");
    let got = sink.wait_delivered(1);
    assert!(got[0].tls);
    assert_eq!(got[0].auth.as_deref(), Some("relayuser"));
    let s = &sink.wait_sessions(1)[0];
    assert_eq!(s.sni.as_deref(), Some(CERT_NAME));
    assert_eq!(s.tls_version.as_deref(), Some("TLSv1_3"));
    assert_eq!(s.auth_mechanism.as_deref(), Some("LOGIN"));
    assert_eq!(s.auth_failures, 1);

    // PLAIN with the response on its own line, on a new connection.
    let mut c = sink_client(&sink);
    c.ehlo();
    let mut t = c.starttls(tls::client_config(&cert.ca_der, &[]));
    t.ehlo();
    t.ok("AUTH PLAIN", 334, "");
    t.ok(&plain("relayuser", "s3cret pw"), 235, "2.7.0");
    t.ok("QUIT", 221, "");
    let s = &sink.wait_sessions(2)[1];
    assert_eq!(s.auth_mechanism.as_deref(), Some("PLAIN"));
}

#[test]
fn sink_cert_for_other_names() {
    let dir = TestDir::new("sink-cert-names");
    let cert = tls::ca_signed_for(&dir.path, &["smarthost.test", "127.0.0.4"]);
    let sink = Sink::start([127, 0, 0, 4], Behaviour::accept().starttls(&cert));
    let mut c = sink_client(&sink);
    c.ehlo();
    c.ok("STARTTLS", 220, "2.0.0");
    let mut tcp = c.into_tcp();
    let config = tls::client_config(&cert.ca_der, &[]);
    let name = rustls::pki_types::ServerName::try_from("smarthost.test").unwrap();
    let mut conn = rustls::ClientConnection::new(config, name).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)
            .expect("handshake verifying smarthost.test");
    }
    let mut t = Client::over(rustls::StreamOwned::new(conn, tcp));
    t.ehlo();
    let s = &sink.sessions()[0];
    assert!(s.tls);
    assert_eq!(s.sni.as_deref(), Some("smarthost.test"));
}

/// Many clients at once (the throughput figures use 10 and 50).
#[test]
fn sink_serves_concurrent_sessions() {
    let sink = Sink::start([127, 0, 0, 2], Behaviour::accept().discard_data());
    let addr = sink.addr();
    let clients: Vec<_> = (0..20)
        .map(|i| {
            std::thread::spawn(move || {
                let mut c = Client::connect_addr(addr);
                c.reply().assert(220, "");
                c.ehlo();
                for j in 0..3 {
                    let body = format!("Subject: {i}.{j}\r\n\r\n{}\r\n", "x".repeat(1000));
                    c.deliver("a@b.test", &["x@remote.test"], body.as_bytes());
                }
                c.ok("QUIT", 221, "");
            })
        })
        .collect();
    for c in clients {
        c.join().expect("client thread");
    }
    let got = sink.wait_delivered(60);
    assert!(got.iter().all(|t| t.data.is_empty() && t.data_len > 1000));
    assert_eq!(sink.connections(), 20);
}

#[test]
fn sink_size_limit_and_sasl_decoder() {
    let sink = Sink::start([127, 0, 0, 2], Behaviour::accept().size(Some(10)));
    let mut c = sink_client(&sink);
    let ehlo = c.ehlo();
    assert!(tls::extensions(&ehlo).contains(&"SIZE 10".to_string()));
    c.ok("MAIL FROM:<a@b.test> SIZE=11", 552, "5.3.4");
    c.ok("MAIL FROM:<a@b.test>", 250, "");
    c.ok("RCPT TO:<x@remote.test>", 250, "");
    c.ok("DATA", 354, "");
    c.send(b"0123456789abc\r\n.\r\n");
    c.reply().assert(552, "5.3.4");

    assert_eq!(b64_decode("AGZvbwBiYXI=").unwrap(), b"\0foo\0bar");
    assert_eq!(b64_decode(&b64(b"ab")).unwrap(), b"ab");
    assert!(b64_decode("abc").is_none() && b64_decode("a=bc").is_none());
}

#[test]
fn sink_stops_on_drop() {
    let sink = Sink::start([127, 0, 0, 2], Behaviour::accept());
    let mut c = sink_client(&sink);
    c.ehlo();
    let started = Instant::now();
    drop(sink);
    assert!(started.elapsed() < Duration::from_secs(2), "drop is quick");
    // The session thread was stopped too: the client sees the close.
    c.expect_closed();
}

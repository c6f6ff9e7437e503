//! The query client: tries, rotation, deadlines, TCP fallback, what is ignored.

use super::*;
use crate::dns::wire_tests::*;
use std::net::IpAddr;
use std::time::Duration;

const S1: &str = "192.0.2.53:53";
const S2: &str = "[2001:db8::53]:53";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn client(attempts: u32) -> DnsClient {
    let conf = ResolvConf {
        servers: vec![addr(S1), addr(S2)],
        timeout: Duration::from_secs(5),
        attempts,
    };
    DnsClient::new(conf, 42)
}

/// The next transmit, which must be UDP: (server, packet).
fn udp(client: &mut DnsClient, query: QueryId) -> (SocketAddr, Vec<u8>) {
    match client.poll_transmit() {
        Some(Transmit::Udp {
            query: q,
            server,
            packet,
        }) if q == query => (server, packet),
        other => panic!("expected UDP for {query}: {other:?}"),
    }
}

/// A one-A-record answer to the query packet `sent` (same id), by hand.
fn a_answer(sent: &[u8], qname: &str, ip: [u8; 4]) -> Vec<u8> {
    let answers = [rr(&name_ptr("", QNAME), T_A, 120, &ip)];
    response(query_id(sent), RESPONSE, qname, T_A, &answers, &[])
}

fn a_records(ip: [u8; 4], ttl: u32) -> Answer {
    Answer::Records {
        mx: Vec::new(),
        addrs: vec![IpAddr::from(ip)],
        cname: None,
        ttl,
    }
}

#[test]
fn dns_client_udp_answer() {
    let t0 = Instant::now();
    let mut c = client(2);
    let q = c.query("Mail.Example.com.", QType::A, t0);
    let (server, packet) = udp(&mut c, q);
    assert_eq!(server, addr(S1));
    assert_eq!(
        packet,
        build_query(query_id(&packet), "mail.example.com", QType::A)
    );
    assert!(c.poll_transmit().is_none());
    assert_eq!(c.next_timeout(), Some(t0 + Duration::from_secs(5)));
    let reply = a_answer(&packet, "mail.example.com", [192, 0, 2, 25]);
    assert!(c.udp_response(q, addr(S1), &reply, t0));
    let result = c.poll_result();
    assert_eq!(
        result,
        Some((
            q,
            "mail.example.com".to_string(),
            QType::A,
            Some(a_records([192, 0, 2, 25], 120))
        ))
    );
    assert_eq!(c.poll_result(), None);
    assert_eq!(c.next_timeout(), None);
    assert_eq!(c.pending(), 0);
    // A late duplicate finds nothing.
    assert!(!c.udp_response(q, addr(S1), &reply, t0));
}

#[test]
fn dns_client_timeouts_rotate_servers_then_none() {
    let t0 = Instant::now();
    let mut c = client(2);
    let q = c.query("slow.example", QType::Mx, t0);
    let mut servers = vec![udp(&mut c, q).0];
    let mut now = t0;
    // Nothing before the deadline.
    c.handle_timeout(t0 + Duration::from_millis(4999));
    assert!(c.poll_transmit().is_none());
    for _ in 0..3 {
        now = c.next_timeout().unwrap();
        assert_eq!(now - t0, Duration::from_secs(5) * servers.len() as u32);
        c.handle_timeout(now);
        servers.push(udp(&mut c, q).0);
        assert!(c.poll_result().is_none());
    }
    // attempts × servers = 4 tries, rotating.
    assert_eq!(servers, [addr(S1), addr(S2), addr(S1), addr(S2)]);
    c.handle_timeout(now + Duration::from_secs(5));
    assert!(c.poll_transmit().is_none());
    assert_eq!(
        c.poll_result(),
        Some((q, "slow.example".to_string(), QType::Mx, None))
    );
    assert_eq!(c.next_timeout(), None);
}

#[test]
fn dns_client_ids_random_and_renewed_per_try() {
    let t0 = Instant::now();
    let mut c = client(5);
    let mut ids = std::collections::HashSet::new();
    for i in 0..50 {
        let q = c.query(&format!("h{i}.example"), QType::A, t0);
        ids.insert(query_id(&udp(&mut c, q).1));
    }
    assert!(ids.len() > 45, "ids look random: {}", ids.len());

    // A reply to the previous try's id is not accepted on the next one.
    let mut c = client(2);
    let q = c.query("retry.example", QType::A, t0);
    let (_, first) = udp(&mut c, q);
    let timeout = c.next_timeout().unwrap();
    c.handle_timeout(timeout);
    let (server, second) = udp(&mut c, q);
    assert_eq!(server, addr(S2));
    assert_ne!(query_id(&first), query_id(&second), "a new id per try");
    let stale = a_answer(&first, "retry.example", [192, 0, 2, 1]);
    assert!(!c.udp_response(q, addr(S2), &stale, timeout));
    let fresh = a_answer(&second, "retry.example", [192, 0, 2, 2]);
    assert!(c.udp_response(q, addr(S2), &fresh, timeout));
    assert_eq!(
        c.poll_result().unwrap().3,
        Some(a_records([192, 0, 2, 2], 120))
    );
}

#[test]
fn dns_client_ignores_wrong_address_id_and_question() {
    let t0 = Instant::now();
    let mut c = client(2);
    let q = c.query("x.example", QType::A, t0);
    let (_, packet) = udp(&mut c, q);
    let good = a_answer(&packet, "x.example", [192, 0, 2, 1]);
    // Another host, another port, the other server.
    assert!(!c.udp_response(q, addr("192.0.2.54:53"), &good, t0));
    assert!(!c.udp_response(q, addr("192.0.2.53:5353"), &good, t0));
    assert!(!c.udp_response(q, addr(S2), &good, t0));
    // Wrong id, wrong name, wrong type, a query, garbage.
    let mut wrong_id = good.clone();
    wrong_id[1] ^= 1;
    assert!(!c.udp_response(q, addr(S1), &wrong_id, t0));
    let other = response(query_id(&packet), RESPONSE, "y.example", T_A, &[], &[]);
    assert!(!c.udp_response(q, addr(S1), &other, t0));
    let other = response(query_id(&packet), RESPONSE, "x.example", T_AAAA, &[], &[]);
    assert!(!c.udp_response(q, addr(S1), &other, t0));
    assert!(!c.udp_response(q, addr(S1), &packet, t0));
    assert!(!c.udp_response(q, addr(S1), b"\x00", t0));
    // Another query's socket.
    assert!(!c.udp_response(q + 100, addr(S1), &good, t0));
    assert!(c.poll_result().is_none());
    assert!(c.poll_transmit().is_none());
    // Still waiting: the real answer is taken.
    assert!(c.udp_response(q, addr(S1), &good, t0));
    assert!(c.poll_result().is_some());
}

#[test]
fn dns_client_truncated_goes_tcp_to_same_server() {
    let t0 = Instant::now();
    let mut c = client(1);
    let q = c.query("big.example", QType::A, t0);
    let (_, packet) = udp(&mut c, q);
    let tc = response(
        query_id(&packet),
        RESPONSE | TC,
        "big.example",
        T_A,
        &[],
        &[],
    );
    let later = t0 + Duration::from_secs(1);
    assert!(c.udp_response(q, addr(S1), &tc, later));
    let Some(Transmit::Tcp {
        query,
        server,
        packet: framed,
    }) = c.poll_transmit()
    else {
        panic!("expected TCP");
    };
    assert_eq!((query, server), (q, addr(S1)));
    assert_eq!(framed, tcp_frame(&packet));
    assert_eq!(c.next_timeout(), Some(later + Duration::from_secs(5)));
    // UDP is no longer listened to.
    let udp_reply = a_answer(&packet, "big.example", [192, 0, 2, 1]);
    assert!(!c.udp_response(q, addr(S1), &udp_reply, later));
    let full = a_answer(&packet, "big.example", [192, 0, 2, 99]);
    c.tcp_response(q, &full, later);
    assert_eq!(
        c.poll_result().unwrap().3,
        Some(a_records([192, 0, 2, 99], 120))
    );
}

#[test]
fn dns_client_tcp_failure_and_bad_tcp_reply_move_on() {
    let t0 = Instant::now();
    let mut c = client(2);
    let q = c.query("big.example", QType::A, t0);
    // Try 1 (S1): truncated, then the TCP connection fails.
    let (_, p1) = udp(&mut c, q);
    let tc = response(query_id(&p1), RESPONSE | TC, "big.example", T_A, &[], &[]);
    assert!(c.udp_response(q, addr(S1), &tc, t0));
    assert!(matches!(c.poll_transmit(), Some(Transmit::Tcp { .. })));
    c.tcp_failed(q, t0);
    // Try 2 (S2) over UDP: truncated again; TCP returns a message for another id.
    let (s2, p2) = udp(&mut c, q);
    assert_eq!(s2, addr(S2));
    let tc = response(query_id(&p2), RESPONSE | TC, "big.example", T_A, &[], &[]);
    assert!(c.udp_response(q, addr(S2), &tc, t0));
    assert!(matches!(c.poll_transmit(), Some(Transmit::Tcp { server, .. }) if server == addr(S2)));
    let mut wrong = a_answer(&p2, "big.example", [192, 0, 2, 1]);
    wrong[0] ^= 0xFF;
    c.tcp_response(q, &wrong, t0);
    // Try 3 (S1): a TCP timeout is a failed try too.
    assert_eq!(udp(&mut c, q).0, addr(S1));
    c.tcp_failed(q, t0); // not on TCP now: ignored
    assert!(c.poll_transmit().is_none());
    c.handle_timeout(t0 + Duration::from_secs(5));
    let (_, p4) = udp(&mut c, q);
    let tc = response(query_id(&p4), RESPONSE | TC, "big.example", T_A, &[], &[]);
    assert!(c.udp_response(q, addr(S2), &tc, t0 + Duration::from_secs(5)));
    assert!(c.poll_transmit().is_some());
    c.handle_timeout(t0 + Duration::from_secs(10));
    assert_eq!(
        c.poll_result(),
        Some((q, "big.example".to_string(), QType::A, None))
    );
}

#[test]
fn dns_client_server_errors_try_next_server_at_once() {
    let t0 = Instant::now();
    let mut c = client(1);
    let q = c.query("example.com", QType::Mx, t0);
    let (_, p1) = udp(&mut c, q);
    let servfail = response(query_id(&p1), RESPONSE | 2, "example.com", T_MX, &[], &[]);
    assert!(c.udp_response(q, addr(S1), &servfail, t0));
    let (s2, p2) = udp(&mut c, q);
    assert_eq!(s2, addr(S2));
    // NXDOMAIN is an answer, not an error.
    let nx = response(query_id(&p2), RESPONSE | 3, "example.com", T_MX, &[], &[]);
    assert!(c.udp_response(q, addr(S2), &nx, t0));
    let expected = Some(Answer::NxDomain { ttl: 0 });
    assert_eq!(
        c.poll_result(),
        Some((q, "example.com".to_string(), QType::Mx, expected))
    );

    // Every server refusing: None.
    let q = c.query("example.com", QType::Mx, t0);
    for server in [S1, S2] {
        let (_, p) = udp(&mut c, q);
        let refused = response(query_id(&p), RESPONSE | 5, "example.com", T_MX, &[], &[]);
        assert!(c.udp_response(q, addr(server), &refused, t0));
    }
    assert_eq!(
        c.poll_result(),
        Some((q, "example.com".to_string(), QType::Mx, None))
    );
}

#[test]
fn dns_client_cancel() {
    let t0 = Instant::now();
    let mut c = client(2);
    let q1 = c.query("one.example", QType::A, t0);
    let q2 = c.query("two.example", QType::A, t0 + Duration::from_secs(1));
    c.cancel(q1);
    // q1's unsent packet is gone; q2's remains.
    let (_, p2) = udp(&mut c, q2);
    assert!(c.poll_transmit().is_none());
    assert_eq!(c.next_timeout(), Some(t0 + Duration::from_secs(6)));
    let reply = a_answer(&p2, "two.example", [192, 0, 2, 2]);
    assert!(c.udp_response(q2, addr(S1), &reply, t0));
    // A finished but unread result is dropped too.
    c.cancel(q2);
    assert_eq!(c.poll_result(), None);
    // Cancelled: nothing times out, nothing is accepted.
    c.handle_timeout(t0 + Duration::from_secs(60));
    assert!(c.poll_transmit().is_none());
    assert!(c.poll_result().is_none());
    assert_eq!(c.pending(), 0);
}

#[test]
fn dns_client_next_timeout_is_the_earliest() {
    let t0 = Instant::now();
    let mut c = client(2);
    let q1 = c.query("one.example", QType::A, t0 + Duration::from_secs(3));
    let q2 = c.query("two.example", QType::A, t0);
    assert_eq!(c.next_timeout(), Some(t0 + Duration::from_secs(5)));
    c.handle_timeout(t0 + Duration::from_secs(5));
    // q2 moved to its second try; q1 is still on its first.
    let _ = udp(&mut c, q1);
    let _ = udp(&mut c, q2);
    let (server, _) = udp(&mut c, q2);
    assert_eq!(server, addr(S2));
    assert_eq!(c.next_timeout(), Some(t0 + Duration::from_secs(8)));
}

#[test]
fn dns_client_unaskable_names_and_no_servers() {
    let t0 = Instant::now();
    let mut c = client(2);
    let q = c.query("bad name.example", QType::Mx, t0);
    assert!(c.poll_transmit().is_none());
    let expected = Some(Answer::NxDomain { ttl: 0 });
    assert_eq!(
        c.poll_result(),
        Some((q, "bad name.example".to_string(), QType::Mx, expected))
    );

    let conf = ResolvConf {
        servers: Vec::new(),
        ..ResolvConf::default()
    };
    let mut c = DnsClient::new(conf, 1);
    let q = c.query("example.com", QType::Mx, t0);
    assert!(c.poll_transmit().is_none());
    assert_eq!(
        c.poll_result(),
        Some((q, "example.com".to_string(), QType::Mx, None))
    );
}

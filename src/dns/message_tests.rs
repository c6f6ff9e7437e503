//! Queries and responses: packets laid out by hand (see `wire_tests`), never by the
//! library that parses them.

use super::*;
use crate::dns::wire_tests::*;

pub(super) fn v4(s: &str) -> IpAddr {
    IpAddr::V4(s.parse().unwrap())
}

fn v6(s: &str) -> IpAddr {
    IpAddr::V6(s.parse().unwrap())
}

pub(super) fn records(
    mx: &[(u16, &str)],
    addrs: &[IpAddr],
    cname: Option<&str>,
    ttl: u32,
) -> Answer {
    Answer::Records {
        mx: mx.iter().map(|(p, x)| (*p, x.to_string())).collect(),
        addrs: addrs.to_vec(),
        cname: cname.map(str::to_string),
        ttl,
    }
}

/// example.com MX, id 0x1234: four answers, every owner a pointer to the question,
/// exchanges compressed against the question and against an earlier exchange.
pub(super) fn mx_response() -> Vec<u8> {
    [
        &[0x12, 0x34, 0x81, 0x80, 0, 1, 0, 4, 0, 0, 0, 0][..],
        b"\x07example\x03com\x00\x00\x0f\x00\x01",
        // @29: 10 mx1.example.com (mx1 label at 43), TTL 3600
        b"\xc0\x0c\x00\x0f\x00\x01\x00\x00\x0e\x10\x00\x08\x00\x0a\x03mx1\xc0\x0c",
        // 20 mx2.example.com, TTL 300
        b"\xc0\x0c\x00\x0f\x00\x01\x00\x00\x01\x2c\x00\x08\x00\x14\x03mx2\xc0\x0c",
        // 5 backup.example.net, uncompressed
        b"\xc0\x0c\x00\x0f\x00\x01\x00\x00\x0e\x10\x00\x16\x00\x05",
        b"\x06backup\x07example\x03net\x00",
        // 30 -> pointer to "mx1.example.com" at 43
        b"\xc0\x0c\x00\x0f\x00\x01\x00\x00\x0e\x10\x00\x04\x00\x1e\xc0\x2b",
    ]
    .concat()
}

#[test]
fn dns_message_query_bytes() {
    let query = build_query(0xBEEF, "mx.Example.org", QType::Mx);
    let expected = [
        &[0xBE, 0xEF, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0][..],
        b"\x02mx\x07Example\x03org\x00\x00\x0f\x00\x01",
    ]
    .concat();
    assert_eq!(query, expected);
    assert_eq!(build_query(0xBEEF, "mx.Example.org.", QType::Mx), expected);
    let a = build_query(7, "a.b", QType::A);
    assert_eq!(&a[a.len() - 4..], &[0, 1, 0, 1]);
    let aaaa = build_query(7, "a.b", QType::Aaaa);
    assert_eq!(&aaaa[aaaa.len() - 4..], &[0, 28, 0, 1]);
    for bad in [
        "",
        ".",
        "a..b",
        "a b.com",
        &"x".repeat(64),
        &"a.".repeat(128),
    ] {
        assert!(build_query(1, bad, QType::A).is_empty(), "{bad:?}");
        assert!(!valid_name(bad), "{bad:?}");
    }
    assert!(valid_name(&format!("{}.com", "x".repeat(63))));
    assert!(valid_name("_dmarc.example.com."));
}

#[test]
fn dns_message_mx_with_compression() {
    let answer = parse_response(&mx_response(), 0x1234, "example.com", QType::Mx).unwrap();
    let expected = [
        (10, "mx1.example.com"),
        (20, "mx2.example.com"),
        (5, "backup.example.net"),
        (30, "mx1.example.com"),
    ];
    assert_eq!(answer, records(&expected, &[], None, 300));
    // The question matches case-insensitively, with or without the trailing dot.
    let again = parse_response(&mx_response(), 0x1234, "EXAMPLE.com.", QType::Mx);
    assert_eq!(again, Ok(answer));
}

#[test]
fn dns_message_rejects_what_is_not_our_response() {
    let packet = mx_response();
    assert_eq!(
        parse_response(&packet, 0x1235, "example.com", QType::Mx),
        Err(Invalid::Id)
    );
    let mut query = packet.clone();
    query[2] &= 0x7F; // QR clear
    assert_eq!(
        parse_response(&query, 0x1234, "example.com", QType::Mx),
        Err(Invalid::NotResponse)
    );
    let mut notify = packet.clone();
    notify[2] |= 0x20; // opcode 4
    assert_eq!(
        parse_response(&notify, 0x1234, "example.com", QType::Mx),
        Err(Invalid::NotResponse)
    );
    let wrong = |name, qtype| parse_response(&packet, 0x1234, name, qtype);
    assert_eq!(wrong("example.net", QType::Mx), Err(Invalid::Question));
    assert_eq!(wrong("mx1.example.com", QType::Mx), Err(Invalid::Question));
    assert_eq!(wrong("com", QType::Mx), Err(Invalid::Question));
    assert_eq!(wrong("example.com", QType::A), Err(Invalid::Question));
    assert_eq!(
        parse_response(&packet[..11], 0x1234, "example.com", QType::Mx),
        Err(Invalid::Short)
    );

    // Class CH, the mDNS unicast bit, no question, two questions.
    let mut chaos = response(9, RESPONSE, "example.com", T_A, &[], &[]);
    let at = chaos.len() - 1;
    chaos[at] = 3;
    assert_eq!(
        parse_response(&chaos, 9, "example.com", QType::A),
        Err(Invalid::Question)
    );
    chaos[at - 1] = 0x80;
    chaos[at] = 1;
    assert_eq!(
        parse_response(&chaos, 9, "example.com", QType::A),
        Err(Invalid::Question)
    );
    let none = header(9, RESPONSE | 2, [0, 0, 0, 0]);
    assert_eq!(
        parse_response(&none, 9, "example.com", QType::A),
        Err(Invalid::Question)
    );
    let mut two = header(9, RESPONSE, [2, 0, 0, 0]);
    two.extend(question("example.com", T_A));
    two.extend(question("example.com", T_A));
    assert_eq!(
        parse_response(&two, 9, "example.com", QType::A),
        Err(Invalid::Question)
    );
}

#[test]
fn dns_message_truncated() {
    // TC set, three answers announced, the packet cut inside the first one.
    let a = rr(&name_ptr("", QNAME), T_A, 60, &[192, 0, 2, 1]);
    let mut packet = response(
        5,
        RESPONSE | TC,
        "big.example",
        T_A,
        &[a.clone(), a.clone(), a],
        &[],
    );
    packet.truncate(29 + 6);
    assert_eq!(
        parse_response(&packet, 5, "big.example", QType::A),
        Ok(Answer::Truncated)
    );
    // With no answer at all, too; still only for our question.
    let empty = response(5, RESPONSE | TC, "big.example", T_A, &[], &[]);
    assert_eq!(
        parse_response(&empty, 5, "big.example", QType::A),
        Ok(Answer::Truncated)
    );
    assert_eq!(
        parse_response(&empty, 5, "big.example", QType::Aaaa),
        Err(Invalid::Question)
    );
    assert_eq!(
        parse_response(&empty, 6, "big.example", QType::A),
        Err(Invalid::Id)
    );
    // Cut inside the question: no way to check it.
    assert_eq!(
        parse_response(&empty[..20], 5, "big.example", QType::A),
        Err(Invalid::Malformed)
    );
}

#[test]
fn dns_message_nxdomain_and_negative_ttl() {
    let soa_rr = |ttl, minimum| rr(&name("example.com"), T_SOA, ttl, &soa(minimum));
    let nx = response(
        1,
        RESPONSE | 3,
        "nope.example.com",
        T_MX,
        &[],
        &[soa_rr(900, 300)],
    );
    assert_eq!(
        parse_response(&nx, 1, "nope.example.com", QType::Mx),
        Ok(Answer::NxDomain { ttl: 300 })
    );
    let nx = response(
        1,
        RESPONSE | 3,
        "nope.example.com",
        T_MX,
        &[],
        &[soa_rr(120, 300)],
    );
    assert_eq!(
        parse_response(&nx, 1, "nope.example.com", QType::Mx),
        Ok(Answer::NxDomain { ttl: 120 })
    );
    // Capped at an hour; no SOA: do not cache.
    let nx = response(
        1,
        RESPONSE | 3,
        "nope.example.com",
        T_MX,
        &[],
        &[soa_rr(86400, 86400)],
    );
    assert_eq!(
        parse_response(&nx, 1, "nope.example.com", QType::Mx),
        Ok(Answer::NxDomain { ttl: 3600 })
    );
    let nx = response(1, RESPONSE | 3, "nope.example.com", T_MX, &[], &[]);
    assert_eq!(
        parse_response(&nx, 1, "nope.example.com", QType::Mx),
        Ok(Answer::NxDomain { ttl: 0 })
    );
    // NOERROR without data: the same negative TTL.
    let nodata = response(1, RESPONSE, "example.com", T_MX, &[], &[soa_rr(600, 3000)]);
    assert_eq!(
        parse_response(&nodata, 1, "example.com", QType::Mx),
        Ok(records(&[], &[], None, 600))
    );
}

#[test]
fn dns_message_server_errors() {
    for (rcode, expected) in [(1, 1), (2, 2), (4, 4), (5, 5), (9, 9)] {
        let packet = response(3, RESPONSE | rcode, "example.com", T_MX, &[], &[]);
        let answer = parse_response(&packet, 3, "example.com", QType::Mx);
        assert_eq!(answer, Ok(Answer::ServerError(expected)));
    }
}

#[test]
fn dns_message_cname_chain_followed() {
    // www.example.com CNAME web.example.com CNAME host.example.net; A x2 on host, and
    // an A of an unrelated name that must not be taken.
    let mut answers = vec![rr(
        &name_ptr("", QNAME),
        T_CNAME,
        600,
        &name_ptr("web", QNAME + 4),
    )];
    let web_at = 33 + 12; // the rdata of the first answer (after a 17-byte qname): "web" + pointer
    answers.push(rr(
        &name_ptr("", web_at as u16),
        T_CNAME,
        500,
        &name("Host.Example.NET"),
    ));
    let host_at = (web_at + 6 + 12) as u16;
    answers.push(rr(&name_ptr("", host_at), T_A, 700, &[192, 0, 2, 1]));
    answers.push(rr(&name_ptr("", host_at), T_A, 800, &[192, 0, 2, 2]));
    answers.push(rr(&name_ptr("", host_at), T_A, 800, &[192, 0, 2, 1]));
    answers.push(rr(&name("other.example"), T_A, 1, &[198, 51, 100, 9]));
    let packet = response(4, RESPONSE, "www.example.com", T_A, &answers, &[]);
    let answer = parse_response(&packet, 4, "www.example.com", QType::A).unwrap();
    assert_eq!(
        answer,
        records(&[], &[v4("192.0.2.1"), v4("192.0.2.2")], None, 500)
    );
}

#[test]
fn dns_message_dangling_cname_and_loops() {
    let answers = [rr(
        &name_ptr("", QNAME),
        T_CNAME,
        300,
        &name("Mail.Example.NET"),
    )];
    let packet = response(4, RESPONSE, "example.com", T_MX, &answers, &[]);
    let answer = parse_response(&packet, 4, "example.com", QType::Mx);
    assert_eq!(answer, Ok(records(&[], &[], Some("mail.example.net"), 300)));

    // a -> b -> a: stops after a bounded number of steps and names where it stopped.
    let answers = [
        rr(&name("a.example"), T_CNAME, 60, &name("b.example")),
        rr(&name("b.example"), T_CNAME, 60, &name("a.example")),
    ];
    let packet = response(4, RESPONSE, "a.example", T_A, &answers, &[]);
    let Ok(Answer::Records { addrs, cname, .. }) =
        parse_response(&packet, 4, "a.example", QType::A)
    else {
        panic!("a CNAME loop is still an answer");
    };
    assert!(addrs.is_empty());
    assert!(matches!(cname.as_deref(), Some("a.example" | "b.example")));
}

#[test]
fn dns_message_null_mx_aaaa_and_ignored_records() {
    let null = [rr(&name_ptr("", QNAME), T_MX, 3600, &mx(0, &name("")))];
    let packet = response(8, RESPONSE, "example.com", T_MX, &null, &[]);
    assert_eq!(
        parse_response(&packet, 8, "example.com", QType::Mx),
        Ok(records(&[(0, "")], &[], None, 3600))
    );

    let owner = name_ptr("", QNAME);
    let answers = [
        rr(
            &owner,
            T_AAAA,
            100,
            &"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets(),
        ),
        rr(&owner, T_A, 5, &[192, 0, 2, 1]), // not asked for
        rr_class(&owner, T_AAAA, 3, 5, &[0xfe; 16]), // class CH
        rr(&owner, 46, 5, b"\x00\x01garbage that is no RRSIG"), // unknown to us
        rr(
            &owner,
            T_AAAA,
            200,
            &"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets(),
        ),
    ];
    let mut packet = response(8, RESPONSE, "v6.example", T_AAAA, &answers, &[]);
    // An additional section with a broken OPT record is never read.
    packet[11] = 1;
    packet.extend(rr(&name(""), 41, 0, b"\xff"));
    let answer = parse_response(&packet, 8, "v6.example", QType::Aaaa);
    assert_eq!(
        answer,
        Ok(records(
            &[],
            &[v6("2001:db8::1"), v6("2001:db8::2")],
            None,
            100
        ))
    );
}

#[test]
fn dns_message_exchange_names_lowercased_or_marked() {
    let owner = name_ptr("", QNAME);
    let answers = [
        rr(&owner, T_MX, 60, &mx(10, &name("MX.Example.COM"))),
        rr(&owner, T_MX, 60, &mx(20, b"\x07bad one\x00")),
        rr(&owner, T_MX, 60, &mx(30, b"\x05caf\xc3\xa9\x00")),
    ];
    let packet = response(2, RESPONSE, "example.com", T_MX, &answers, &[]);
    let answer = parse_response(&packet, 2, "example.com", QType::Mx);
    let expected = [(10, "mx.example.com"), (20, "bad?one"), (30, "caf??")];
    assert_eq!(answer, Ok(records(&expected, &[], None, 60)));
    // A dot inside a label must not turn into a separator.
    let dotted = [rr(&owner, T_MX, 60, &mx(10, b"\x0bmx.evil.com\x00"))];
    let packet = response(2, RESPONSE, "example.com", T_MX, &dotted, &[]);
    let answer = parse_response(&packet, 2, "example.com", QType::Mx);
    assert_eq!(answer, Ok(records(&[(10, "mx?evil?com")], &[], None, 60)));
}

#[test]
fn dns_message_malformed_names() {
    // A pointer to itself, a forward pointer, a reserved label type, a short rdata.
    let self_ptr = [rr(&name_ptr("", 29), T_A, 5, &[1, 2, 3, 4])];
    let forward = [rr(&name_ptr("", 200), T_A, 5, &[1, 2, 3, 4])];
    let reserved = [rr(b"\x41x\x00", T_A, 5, &[1, 2, 3, 4])];
    let short = [rr(&name_ptr("", QNAME), T_A, 5, &[1, 2])];
    for answers in [self_ptr, forward, reserved, short] {
        let packet = response(2, RESPONSE, "example.com", T_A, &answers, &[]);
        assert_eq!(
            parse_response(&packet, 2, "example.com", QType::A),
            Err(Invalid::Malformed)
        );
    }
    // Counts promising more than is there.
    let mut packet = response(2, RESPONSE, "example.com", T_A, &[], &[]);
    packet[7] = 1;
    assert_eq!(
        parse_response(&packet, 2, "example.com", QType::A),
        Err(Invalid::Malformed)
    );
}

#[test]
fn dns_message_tcp_framing() {
    let query = build_query(1, "example.com", QType::Mx);
    let framed = tcp_frame(&query);
    assert_eq!(&framed[..2], &(query.len() as u16).to_be_bytes());
    assert_eq!(&framed[2..], &query[..]);
    assert_eq!(tcp_message(&framed), Some(&query[..]));
    assert_eq!(tcp_message(&framed[..framed.len() - 1]), None);
    assert_eq!(tcp_message(&framed[..1]), None);
    assert_eq!(tcp_message(&[]), None);
    let mut two = framed.clone();
    two.extend_from_slice(&framed);
    assert_eq!(tcp_message(&two), Some(&query[..]));
}

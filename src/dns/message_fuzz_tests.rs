//! Hostile input: random bytes, truncations and mutations of valid responses, records
//! of every type we do not read. The parser must never panic and never hang.

use super::tests::{mx_response, records, v4};
use super::*;
use crate::dns::wire_tests::*;

/// xorshift64*: deterministic, so a failure reproduces.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

#[test]
fn dns_message_fuzz_never_panics() {
    let owner = name_ptr("", QNAME);
    let valid = [
        mx_response(),
        response(
            7,
            RESPONSE | 3,
            "x.example",
            T_A,
            &[],
            &[rr(&name("example"), T_SOA, 60, &soa(30))],
        ),
        response(
            7,
            RESPONSE,
            "x.example",
            T_A,
            &[
                rr(&owner, T_CNAME, 9, &name_ptr("y", QNAME + 2)),
                rr(&name("y.example"), T_A, 9, &[1, 2, 3, 4]),
            ],
            &[],
        ),
    ];
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut seen_ok = 0;
    // Every truncation of valid packets, and random bytes flipped in them.
    for packet in &valid {
        let id = u16::from_be_bytes([packet[0], packet[1]]);
        for cut in 0..=packet.len() {
            for qtype in [QType::Mx, QType::A, QType::Aaaa] {
                let _ = parse_response(&packet[..cut], id, "example.com", qtype);
                let _ = parse_response(&packet[..cut], id, "x.example", qtype);
            }
        }
        for _ in 0..20_000 {
            let mut bad = packet.clone();
            for _ in 0..=(xorshift(&mut state) % 4) {
                let at = (xorshift(&mut state) % bad.len() as u64) as usize;
                bad[at] = xorshift(&mut state) as u8;
            }
            if parse_response(&bad, id, "example.com", QType::Mx).is_ok()
                || parse_response(&bad, id, "x.example", QType::A).is_ok()
            {
                seen_ok += 1;
            }
        }
    }
    assert!(seen_ok > 0, "some mutations keep the packet valid");
    // Random bytes behind a plausible header.
    for _ in 0..50_000 {
        let len = (xorshift(&mut state) % 300) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| xorshift(&mut state) as u8).collect();
        if bytes.len() >= 12 && xorshift(&mut state) % 2 == 0 {
            bytes[..6].copy_from_slice(&[0, 7, 0x81, 0x80, 0, 1]);
        }
        let _ = parse_response(&bytes, 7, "x.example", QType::A);
    }
}

#[test]
fn dns_message_unused_types_are_opaque() {
    // Records of types we do not read, with random rdata, in the answer, authority and
    // additional sections: never a reason to drop the packet, never a panic.
    let mut state = 0x1234_5678_9ABC_DEF1u64;
    let types: Vec<u16> = (2..70)
        .filter(|t| ![5, 6, 15, 28].contains(t))
        .chain([99, 249, 250, 256, 257, 32768, 65535])
        .collect();
    let owner = name_ptr("", QNAME);
    for _ in 0..20_000 {
        let t = types[(xorshift(&mut state) % types.len() as u64) as usize];
        let len = (xorshift(&mut state) % 40) as usize;
        let rdata: Vec<u8> = (0..len).map(|_| xorshift(&mut state) as u8).collect();
        let answers = [
            rr(&owner, t, 5, &rdata),
            rr(&owner, T_A, 9, &[192, 0, 2, 7]),
        ];
        let mut packet = response(
            7,
            RESPONSE,
            "x.example",
            T_A,
            &answers,
            &[rr(&owner, t, 5, &rdata)],
        );
        packet[11] = 1;
        packet.extend(rr(&name(""), t, 5, &rdata));
        let answer = parse_response(&packet, 7, "x.example", QType::A);
        assert_eq!(
            answer,
            Ok(records(&[], &[v4("192.0.2.7")], None, 9)),
            "type {t} {rdata:?}"
        );
    }
}

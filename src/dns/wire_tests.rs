//! DNS wire format written by hand (RFC 1035 4.1), for tests: headers, names with and
//! without compression pointers, resource records. Deliberately not `simple-dns`, so the
//! parser is checked against bytes laid out independently.

pub const QR: u16 = 0x8000;
pub const TC: u16 = 0x0200;
pub const RD: u16 = 0x0100;
pub const RA: u16 = 0x0080;
/// The usual flags of a recursive resolver's answer; add the RCODE.
pub const RESPONSE: u16 = QR | RD | RA;

pub const T_A: u16 = 1;
pub const T_CNAME: u16 = 5;
pub const T_SOA: u16 = 6;
pub const T_MX: u16 = 15;
pub const T_AAAA: u16 = 28;

/// Offset of the question's name: the answers' owners point here.
pub const QNAME: u16 = 12;

pub fn header(id: u16, flags: u16, counts: [u16; 4]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    for count in counts {
        out.extend_from_slice(&count.to_be_bytes());
    }
    out
}

/// Uncompressed labels ending with the root; "" is the root alone.
pub fn name(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in text.split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

/// Labels (maybe none) followed by a compression pointer to `offset`.
pub fn name_ptr(prefix: &str, offset: u16) -> Vec<u8> {
    let mut out = name(prefix);
    out.pop();
    out.extend_from_slice(&(0xC000 | offset).to_be_bytes());
    out
}

pub fn question(qname: &str, qtype: u16) -> Vec<u8> {
    let mut out = name(qname);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out
}

/// One resource record of class IN.
pub fn rr(owner: &[u8], rtype: u16, ttl: u32, rdata: &[u8]) -> Vec<u8> {
    rr_class(owner, rtype, 1, ttl, rdata)
}

pub fn rr_class(owner: &[u8], rtype: u16, class: u16, ttl: u32, rdata: &[u8]) -> Vec<u8> {
    let mut out = owner.to_vec();
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&class.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(rdata);
    out
}

pub fn mx(preference: u16, exchange: &[u8]) -> Vec<u8> {
    let mut out = preference.to_be_bytes().to_vec();
    out.extend_from_slice(exchange);
    out
}

/// SOA rdata: mname, rname, serial, refresh, retry, expire, minimum.
pub fn soa(minimum: u32) -> Vec<u8> {
    let mut out = name("ns1.example.com");
    out.extend(name("hostmaster.example.com"));
    for field in [2024010101u32, 7200, 900, 1209600, minimum] {
        out.extend_from_slice(&field.to_be_bytes());
    }
    out
}

/// A whole response to (qname, qtype): the question, then the sections as given.
pub fn response(
    id: u16,
    flags: u16,
    qname: &str,
    qtype: u16,
    answers: &[Vec<u8>],
    authority: &[Vec<u8>],
) -> Vec<u8> {
    let counts = [1, answers.len() as u16, authority.len() as u16, 0];
    let mut out = header(id, flags, counts);
    out.extend(question(qname, qtype));
    for record in answers.iter().chain(authority) {
        out.extend_from_slice(record);
    }
    out
}

/// The id of a query packet.
pub fn query_id(packet: &[u8]) -> u16 {
    u16::from_be_bytes([packet[0], packet[1]])
}

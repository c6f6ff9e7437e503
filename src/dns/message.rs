//! DNS messages: the query we send and the checks and reading of the response
//! (RFC 1035 section 4), with `simple-dns` doing the wire format. A response is only
//! believed when it answers exactly our question with our id; the rest is ignored.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use simple_dns::rdata::RData;
use simple_dns::{Name, Packet, PacketFlag, Question, ResourceRecord, CLASS, QCLASS, QTYPE, TYPE};

const HEADER_LEN: usize = 12;
const FLAG_QR: u16 = 0x8000;
const FLAG_TC: u16 = 0x0200;
const OPCODE_MASK: u16 = 0x7800;
const RCODE_MASK: u16 = 0x000F;
const RCODE_NXDOMAIN: u8 = 3;
/// Negative answers (NXDOMAIN, no data) are believed for at most an hour (RFC 2308
/// suggests 1 to 3 hours; a fixed mistake should not bounce mail for long).
const MAX_NEGATIVE_TTL: u32 = 3600;
/// CNAMEs followed inside one answer section.
const MAX_CNAMES_IN_ANSWER: usize = 8;
/// A type number for private use (RFC 6895): records we have no use for are relabelled
/// with it before parsing, so `simple-dns` reads them as opaque bytes.
const OPAQUE_TYPE: u16 = 65280;
/// The types we read: A, CNAME, SOA, MX, AAAA.
const KNOWN_TYPES: [u16; 5] = [1, 5, 6, 15, 28];

/// The question types a mail client asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QType {
    Mx,
    A,
    Aaaa,
}

impl QType {
    fn wire(self) -> TYPE {
        match self {
            QType::Mx => TYPE::MX,
            QType::A => TYPE::A,
            QType::Aaaa => TYPE::AAAA,
        }
    }
}

impl fmt::Display for QType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            QType::Mx => "MX",
            QType::A => "A",
            QType::Aaaa => "AAAA",
        })
    }
}

/// What a valid response said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// NOERROR. `mx`: (preference, exchange) pairs (an exchange that is no host name
    /// shows '?' for its bad bytes, so `valid_name` refuses it); `addrs`: A/AAAA of
    /// `name` (following in-answer CNAMEs), in answer order without repeats; `cname`: the last CNAME target when the answer section had a CNAME
    /// chain but no record of the asked type at its end (caller re-queries that name);
    /// `ttl`: smallest TTL among the used records (or the SOA minimum for an empty NOERROR,
    /// capped 1 h).
    Records {
        mx: Vec<(u16, String)>,
        addrs: Vec<IpAddr>,
        cname: Option<String>,
        ttl: u32,
    },
    /// The name does not exist; `ttl` from the SOA of the authority section (capped 1 h,
    /// 0 without one).
    NxDomain { ttl: u32 },
    /// SERVFAIL, REFUSED, FORMERR, NOTIMP...: try the next server, then defer.
    ServerError(u8),
    /// TC bit set: ask again over TCP.
    Truncated,
}

/// Why a packet is not the response we wait for (it is ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// Shorter than a header.
    Short,
    /// Another query's id.
    Id,
    /// QR clear, or an opcode other than QUERY.
    NotResponse,
    /// Not exactly one question, or not ours (name, type, class IN).
    Question,
    /// The sections do not parse.
    Malformed,
}

/// A name we can put in a query: 1 to 253 characters (one trailing dot allowed), labels of
/// 1 to 63 letters, digits, hyphens or underscores.
pub fn valid_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// A query packet: RD set, one question, class IN. `name` without trailing dot (one is
/// tolerated). A name that fails `valid_name` yields an empty packet: callers check first
/// (`DnsClient::query` answers such names with NXDOMAIN itself).
pub fn build_query(id: u16, name: &str, qtype: QType) -> Vec<u8> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if !valid_name(name) {
        return Vec::new();
    }
    let Ok(qname) = Name::new(name) else {
        return Vec::new();
    };
    let mut packet = Packet::new_query(id);
    packet.set_flags(PacketFlag::RECURSION_DESIRED);
    packet.questions.push(Question::new(
        qname,
        qtype.wire().into(),
        CLASS::IN.into(),
        false,
    ));
    packet.build_bytes_vec().unwrap_or_default()
}

/// Validates and parses a response. `Err` (ignore the packet, keep waiting) unless it is
/// a response (QR) with this `id` and exactly this question (name case-insensitive, type, IN).
/// Names are lower-cased, without the trailing dot. Never panics on any input.
pub fn parse_response(packet: &[u8], id: u16, name: &str, qtype: QType) -> Result<Answer, Invalid> {
    if packet.len() < HEADER_LEN {
        return Err(Invalid::Short);
    }
    if u16::from_be_bytes([packet[0], packet[1]]) != id {
        return Err(Invalid::Id);
    }
    let flags = u16::from_be_bytes([packet[2], packet[3]]);
    if flags & FLAG_QR == 0 || flags & OPCODE_MASK != 0 {
        return Err(Invalid::NotResponse);
    }
    // A truncated response may be cut anywhere after the question: only that is read.
    let truncated = flags & FLAG_TC != 0;
    let clean = sanitize(packet, !truncated).ok_or(Invalid::Malformed)?;
    let parsed = Packet::parse(&clean).map_err(|_| Invalid::Malformed)?;
    let name = name.strip_suffix('.').unwrap_or(name);
    match parsed.questions.as_slice() {
        [q] if q.qclass == QCLASS::CLASS(CLASS::IN)
            && !q.unicast_response
            && q.qtype == QTYPE::TYPE(qtype.wire())
            && name_is(&q.qname, name) => {}
        _ => return Err(Invalid::Question),
    }
    if truncated {
        return Ok(Answer::Truncated);
    }
    match (flags & RCODE_MASK) as u8 {
        0 => Ok(records(&parsed, qtype)),
        RCODE_NXDOMAIN => Ok(Answer::NxDomain {
            ttl: negative_ttl(&parsed),
        }),
        rcode => Ok(Answer::ServerError(rcode)),
    }
}

/// TCP framing: 2-byte length prefix (RFC 1035 4.2.2).
pub fn tcp_frame(query: &[u8]) -> Vec<u8> {
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&(query.len().min(usize::from(u16::MAX)) as u16).to_be_bytes());
    framed.extend_from_slice(query);
    framed
}

/// The first whole message in bytes read from a DNS TCP stream, without its length
/// prefix; `None` while more bytes are needed.
pub fn tcp_message(stream: &[u8]) -> Option<&[u8]> {
    let len = usize::from(u16::from_be_bytes([*stream.first()?, *stream.get(1)?]));
    stream.get(2..2 + len)
}

/// The answer of a NOERROR response: follow the CNAMEs from the question's name, then
/// take the records of the asked type at the end of the chain.
fn records(packet: &Packet, qtype: QType) -> Answer {
    let answers: Vec<&ResourceRecord> = packet
        .answers
        .iter()
        .filter(|rr| rr.class == CLASS::IN)
        .collect();
    let wanted = |rr: &ResourceRecord| rr.rdata.type_code() == qtype.wire();
    let mut owner = &packet.questions[0].qname;
    let mut ttl = u32::MAX;
    let mut followed = 0;
    while followed < MAX_CNAMES_IN_ANSWER
        && !answers
            .iter()
            .any(|rr| wanted(rr) && same_name(&rr.name, owner))
    {
        let next = answers.iter().find_map(|rr| match &rr.rdata {
            RData::CNAME(target) if same_name(&rr.name, owner) => Some((&target.0, rr.ttl)),
            _ => None,
        });
        let Some((target, cname_ttl)) = next else {
            break;
        };
        owner = target;
        ttl = ttl.min(cname_ttl);
        followed += 1;
    }
    let mut mx = Vec::new();
    let mut addrs = Vec::new();
    let mut used = false;
    for rr in answers.iter().filter(|rr| same_name(&rr.name, owner)) {
        match &rr.rdata {
            RData::MX(record) if qtype == QType::Mx => {
                // Kept even when unusable: MX records exist, so no implicit MX.
                mx.push((record.preference, name_text(&record.exchange).0));
                used = true;
            }
            RData::A(a) if qtype == QType::A => {
                push_new(&mut addrs, IpAddr::V4(Ipv4Addr::from(a.address)));
                used = true;
            }
            RData::AAAA(aaaa) if qtype == QType::Aaaa => {
                push_new(&mut addrs, IpAddr::V6(Ipv6Addr::from(aaaa.address)));
                used = true;
            }
            _ => continue,
        }
        ttl = ttl.min(rr.ttl);
    }
    let cname = match (used, followed) {
        (false, 1..) => name_string(owner),
        _ => None,
    };
    if !used && followed == 0 {
        ttl = negative_ttl(packet);
    }
    Answer::Records {
        mx,
        addrs,
        cname,
        ttl,
    }
}

/// Keeps the answered order, without repeats.
fn push_new(addrs: &mut Vec<IpAddr>, addr: IpAddr) {
    if !addrs.contains(&addr) {
        addrs.push(addr);
    }
}

/// RFC 2308 section 5: the smaller of the SOA record's TTL and its MINIMUM field,
/// capped; 0 (do not cache) without an SOA.
fn negative_ttl(packet: &Packet) -> u32 {
    packet
        .name_servers
        .iter()
        .find_map(|rr| match &rr.rdata {
            RData::SOA(soa) if rr.class == CLASS::IN => Some(rr.ttl.min(soa.minimum)),
            _ => None,
        })
        .map_or(0, |ttl| ttl.min(MAX_NEGATIVE_TTL))
}

/// Names compare case-insensitively (RFC 4343).
fn same_name(a: &Name, b: &Name) -> bool {
    let (a, b) = (a.get_labels(), b.get_labels());
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.as_ref().eq_ignore_ascii_case(y.as_ref()))
}

/// Whether the wire name is `text` (no trailing dot), case-insensitively.
fn name_is(name: &Name, text: &str) -> bool {
    let labels = name.get_labels();
    if text.is_empty() {
        return labels.is_empty();
    }
    labels.len() == text.split('.').count()
        && labels
            .iter()
            .zip(text.split('.'))
            .all(|(label, part)| label.as_ref().eq_ignore_ascii_case(part.as_bytes()))
}

/// A wire name as lower-case text without the trailing dot (the root is ""); `None` when
/// a label holds anything but letters, digits, hyphens and underscores: such a name is
/// no host we could ask about.
fn name_string(name: &Name) -> Option<String> {
    match name_text(name) {
        (text, true) => Some(text),
        (_, false) => None,
    }
}

/// A wire name as lower-case text, every byte other than a letter, digit, hyphen or
/// underscore shown as '?' (so the text never passes `valid_name` by accident, say with
/// a dot inside a label); and whether there was none.
fn name_text(name: &Name) -> (String, bool) {
    let mut text = String::new();
    let mut clean = true;
    for label in name.get_labels() {
        if !text.is_empty() {
            text.push('.');
        }
        for &b in label.as_ref() {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                text.push(char::from(b.to_ascii_lowercase()));
            } else {
                text.push('?');
                clean = false;
            }
        }
    }
    (text, clean)
}

/// A copy of the packet `simple-dns` can read safely: the header and question, then (with
/// `records`) the answer and authority sections, each record that is not one of
/// `KNOWN_TYPES` in class IN relabelled as opaque (the layout, so every compression
/// pointer, is kept); the additional section is dropped. `None` when the sections do
/// not walk to their counts. Whatever a hostile server sends, only the parsers of the
/// five types we read ever run.
fn sanitize(packet: &[u8], records: bool) -> Option<Vec<u8>> {
    let count = |at: usize| usize::from(u16::from_be_bytes([packet[at], packet[at + 1]]));
    let questions = count(4);
    let kept = if records { count(6) + count(8) } else { 0 };
    let mut clean = packet.to_vec();
    let mut at = HEADER_LEN;
    for _ in 0..questions {
        at = skip_name(packet, at)? + 4;
    }
    for _ in 0..kept {
        at = skip_name(packet, at)?;
        let fixed = packet.get(at..at + 10)?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let class = u16::from_be_bytes([fixed[2], fixed[3]]);
        if class != 1 || !KNOWN_TYPES.contains(&rtype) {
            clean[at..at + 2].copy_from_slice(&OPAQUE_TYPE.to_be_bytes());
            clean[at + 2..at + 4].copy_from_slice(&1u16.to_be_bytes());
        }
        at += 10 + usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
    }
    if at > packet.len() {
        return None;
    }
    if !records {
        clean[6..10].fill(0);
    }
    clean[10..12].fill(0);
    clean.truncate(at);
    Some(clean)
}

/// The offset after the name at `at`: labels up to the root, or up to a pointer.
fn skip_name(packet: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *packet.get(at)?;
        match len {
            0 => return Some(at + 1),
            0xC0..=0xFF => return Some(at + 2),
            1..=63 => at += 1 + usize::from(len),
            _ => return None,
        }
    }
}

#[cfg(test)]
#[path = "message_fuzz_tests.rs"]
mod fuzz_tests;
#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;

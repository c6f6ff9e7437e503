//! A DNS responder for the outbound tests, on 127.0.0.1 (UDP and TCP on one
//! free port), answering from a zone the test writes. The wire format
//! (RFC 1035) is encoded and decoded here by hand, so the tests do not share
//! a DNS library with picomta: a bug there cannot hide itself.
//!
//! The zone holds MX (null MX too), A, AAAA and CNAME records. A name with no
//! record (and no record below it) gets NXDOMAIN; a name with records but none
//! of the asked type gets an empty NOERROR; both carry an SOA for negative
//! caching. Names can be made to answer truncated over UDP (TC=1, no records;
//! the full answer over TCP), to answer SERVFAIL (or any rcode), or to never
//! answer; the whole server can be made silent. Every query is counted by
//! (name, type, transport), so tests can check caching and retries.
//!
//! Threads stop when the `DnsServer` is dropped: every loop waits at most
//! `POLL` before it looks at the stop flag, and TCP connections end after
//! `TCP_IDLE` without a query.
//!
//! `build_query`, `parse_response`, `udp_query` and `tcp_query` are a client
//! for checking the responder itself (and anything else that speaks DNS).

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

pub const A: u16 = 1;
pub const CNAME: u16 = 5;
pub const SOA: u16 = 6;
pub const MX: u16 = 15;
pub const TXT: u16 = 16;
pub const AAAA: u16 = 28;
pub const OPT: u16 = 41;

pub const NOERROR: u8 = 0;
pub const FORMERR: u8 = 1;
pub const SERVFAIL: u8 = 2;
pub const NXDOMAIN: u8 = 3;
pub const NOTIMP: u8 = 4;
pub const REFUSED: u8 = 5;

/// How often blocked loops look at the stop flag.
const POLL: Duration = Duration::from_millis(50);
/// A TCP connection with no query for this long is closed.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// The largest UDP answer without EDNS (RFC 1035 4.2.1).
const UDP_LIMIT: usize = 512;

/// How a query arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

/// The data of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Cname(String),
    /// Preference and exchange; the exchange `""` is the root (null MX).
    Mx(u16, String),
    Soa {
        mname: String,
        rname: String,
        serial: u32,
        refresh: u32,
        retry: u32,
        expire: u32,
        minimum: u32,
    },
    /// Any other type, as its raw RDATA (only seen when parsing).
    Other(u16, Vec<u8>),
}

impl Data {
    pub fn rtype(&self) -> u16 {
        match self {
            Data::A(_) => A,
            Data::Aaaa(_) => AAAA,
            Data::Cname(_) => CNAME,
            Data::Mx(..) => MX,
            Data::Soa { .. } => SOA,
            Data::Other(t, _) => *t,
        }
    }
}

/// One resource record. Names are lower-case, without the trailing dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub name: String,
    pub ttl: u32,
    pub data: Data,
}

/// What a name (or a name and type) does instead of answering from records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Special {
    /// Over UDP: TC=1 and no records; over TCP: the normal answer.
    Truncate,
    /// This response code and nothing else.
    Rcode(u8),
    /// No answer at all.
    Silent,
}

/// The data the responder answers from; built with the chained methods.
#[derive(Debug, Clone)]
pub struct Zone {
    records: Vec<Record>,
    specials: HashMap<(String, Option<u16>), Special>,
    ttl: u32,
    negative_ttl: u32,
    silent: bool,
}

impl Default for Zone {
    fn default() -> Zone {
        Zone::new()
    }
}

/// `name` as the zone keeps it: lower-case, no trailing dot.
pub fn norm(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl Zone {
    /// An empty zone: every name is NXDOMAIN. Records get TTL 300 and
    /// negative answers 60 until `ttl` / `negative_ttl` say otherwise.
    pub fn new() -> Zone {
        Zone {
            records: Vec::new(),
            specials: HashMap::new(),
            ttl: 300,
            negative_ttl: 60,
            silent: false,
        }
    }

    /// The TTL of the records added after this call.
    pub fn ttl(mut self, ttl: u32) -> Zone {
        self.ttl = ttl;
        self
    }

    /// The SOA minimum (and SOA TTL) sent with NXDOMAIN and empty answers.
    pub fn negative_ttl(mut self, ttl: u32) -> Zone {
        self.negative_ttl = ttl;
        self
    }

    pub fn record(mut self, name: &str, data: Data) -> Zone {
        self.records.push(Record {
            name: norm(name),
            ttl: self.ttl,
            data,
        });
        self
    }

    pub fn mx(self, name: &str, preference: u16, exchange: &str) -> Zone {
        self.record(name, Data::Mx(preference, norm(exchange)))
    }

    /// RFC 7505: one MX, preference 0, exchange the root.
    pub fn null_mx(self, name: &str) -> Zone {
        self.record(name, Data::Mx(0, String::new()))
    }

    /// An A record; `addr` like "127.0.0.2".
    pub fn a(self, name: &str, addr: &str) -> Zone {
        let ip: Ipv4Addr = addr.parse().expect("an IPv4 address");
        self.record(name, Data::A(ip))
    }

    /// An AAAA record; `addr` like "::1".
    pub fn aaaa(self, name: &str, addr: &str) -> Zone {
        let ip: Ipv6Addr = addr.parse().expect("an IPv6 address");
        self.record(name, Data::Aaaa(ip))
    }

    pub fn cname(self, name: &str, target: &str) -> Zone {
        self.record(name, Data::Cname(norm(target)))
    }

    /// Says that `name` does not exist (it is the default for names without
    /// records; this removes any record of `name` added before).
    pub fn nxdomain(mut self, name: &str) -> Zone {
        let n = norm(name);
        self.records.retain(|r| r.name != n);
        self
    }

    /// UDP answers for `name` (every type) are truncated; TCP gets them whole.
    pub fn truncate(self, name: &str) -> Zone {
        self.special(name, None, Special::Truncate)
    }

    /// SERVFAIL for every question about `name`.
    pub fn servfail(self, name: &str) -> Zone {
        self.rcode(name, None, SERVFAIL)
    }

    /// Response code `rcode` for `name` (and only `qtype`, if given).
    pub fn rcode(self, name: &str, qtype: Option<u16>, rcode: u8) -> Zone {
        self.special(name, qtype, Special::Rcode(rcode))
    }

    /// No answer for `name` (and only `qtype`, if given).
    pub fn silent(self, name: &str, qtype: Option<u16>) -> Zone {
        self.special(name, qtype, Special::Silent)
    }

    /// The whole server never answers (queries are still counted).
    pub fn never_answer(mut self) -> Zone {
        self.silent = true;
        self
    }

    fn special(mut self, name: &str, qtype: Option<u16>, s: Special) -> Zone {
        self.specials.insert((norm(name), qtype), s);
        self
    }

    fn special_for(&self, name: &str, qtype: u16) -> Option<Special> {
        self.specials
            .get(&(name.to_string(), Some(qtype)))
            .or_else(|| self.specials.get(&(name.to_string(), None)))
            .copied()
    }

    /// True if the name owns a record or has one below it (an empty
    /// non-terminal is NOERROR, not NXDOMAIN: RFC 8020).
    fn exists(&self, name: &str) -> bool {
        let below = format!(".{name}");
        self.records
            .iter()
            .any(|r| r.name == name || r.name.ends_with(&below))
    }

    /// The answer section and rcode for (name, qtype): records of the type,
    /// following CNAMEs inside the zone (at most 16).
    fn resolve(&self, name: &str, qtype: u16) -> (u8, Vec<Record>) {
        let mut answers = Vec::new();
        let mut current = name.to_string();
        for _ in 0..16 {
            let found: Vec<Record> = self
                .records
                .iter()
                .filter(|r| r.name == current && r.data.rtype() == qtype)
                .cloned()
                .collect();
            if !found.is_empty() {
                answers.extend(found);
                return (NOERROR, answers);
            }
            let cname = self
                .records
                .iter()
                .find(|r| r.name == current && r.data.rtype() == CNAME);
            match cname {
                Some(r) => {
                    answers.push(r.clone());
                    if let Data::Cname(target) = &r.data {
                        current = target.clone();
                    }
                }
                None => {
                    let rcode = if self.exists(&current) {
                        NOERROR
                    } else {
                        NXDOMAIN
                    };
                    return (rcode, answers);
                }
            }
        }
        (NOERROR, answers)
    }

    /// The SOA sent with negative answers about `name`: owned by its last
    /// two labels (the "zone" it would live in).
    fn soa_for(&self, name: &str) -> Record {
        let labels: Vec<&str> = name.split('.').collect();
        let apex = labels[labels.len().saturating_sub(2)..].join(".");
        Record {
            name: apex.clone(),
            ttl: self.negative_ttl,
            data: Data::Soa {
                mname: format!("ns.{apex}"),
                rname: format!("hostmaster.{apex}"),
                serial: 1,
                refresh: 3600,
                retry: 600,
                expire: 86400,
                minimum: self.negative_ttl,
            },
        }
    }
}

/// One query as the responder saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Lower-case, no trailing dot.
    pub name: String,
    pub qtype: u16,
    pub transport: Transport,
    pub id: u16,
    pub from: SocketAddr,
    /// True if the question was asked with some upper-case letters (0x20).
    pub mixed_case: bool,
}

struct Shared {
    zone: Mutex<Zone>,
    queries: Mutex<Vec<Query>>,
    stop: AtomicBool,
    conns: Mutex<Vec<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not make every later assertion panic too.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The running responder; stopped (threads joined) on drop.
pub struct DnsServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl DnsServer {
    /// Binds UDP and TCP on one free port of 127.0.0.1 and starts answering.
    pub fn start(zone: Zone) -> DnsServer {
        let (udp, tcp) = bind_pair();
        let addr = udp.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            zone: Mutex::new(zone),
            queries: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
        });
        udp.set_read_timeout(Some(POLL)).expect("udp timeout");
        tcp.set_nonblocking(true).expect("nonblocking listener");
        let s1 = shared.clone();
        let s2 = shared.clone();
        let threads = vec![
            thread::spawn(move || udp_loop(udp, s1)),
            thread::spawn(move || tcp_loop(tcp, s2)),
        ];
        DnsServer {
            addr,
            shared,
            threads,
        }
    }

    /// The address to give picomta as its name server.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Answers from `zone` from now on (counts are kept).
    pub fn set_zone(&self, zone: Zone) {
        *lock(&self.shared.zone) = zone;
    }

    /// Changes the zone in place.
    pub fn update(&self, f: impl FnOnce(Zone) -> Zone) {
        let mut z = lock(&self.shared.zone);
        let old = std::mem::take(&mut *z);
        *z = f(old);
    }

    /// Makes the whole server silent (or answering again).
    pub fn set_silent(&self, silent: bool) {
        lock(&self.shared.zone).silent = silent;
    }

    /// Every query so far, in arrival order.
    pub fn queries(&self) -> Vec<Query> {
        lock(&self.shared.queries).clone()
    }

    /// How many times (name, qtype) was asked over `transport`.
    pub fn count(&self, name: &str, qtype: u16, transport: Transport) -> usize {
        let n = norm(name);
        lock(&self.shared.queries)
            .iter()
            .filter(|q| q.name == n && q.qtype == qtype && q.transport == transport)
            .count()
    }

    /// How many times (name, qtype) was asked, UDP and TCP together.
    pub fn asked(&self, name: &str, qtype: u16) -> usize {
        self.count(name, qtype, Transport::Udp) + self.count(name, qtype, Transport::Tcp)
    }

    /// How many queries arrived at all.
    pub fn total(&self) -> usize {
        lock(&self.shared.queries).len()
    }

    pub fn reset_counts(&self) {
        lock(&self.shared.queries).clear();
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let conns: Vec<JoinHandle<()>> = lock(&self.shared.conns).drain(..).collect();
        for t in conns {
            let _ = t.join();
        }
    }
}

/// A UDP socket and a TCP listener on the same free loopback port.
fn bind_pair() -> (UdpSocket, TcpListener) {
    for _ in 0..100 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind UDP on 127.0.0.1");
        let port = udp.local_addr().expect("local addr").port();
        if let Ok(tcp) = TcpListener::bind(("127.0.0.1", port)) {
            return (udp, tcp);
        }
    }
    panic!("no port free for both UDP and TCP on 127.0.0.1");
}

fn udp_loop(sock: UdpSocket, shared: Arc<Shared>) {
    let mut buf = [0u8; 4096];
    while !shared.stop.load(Ordering::SeqCst) {
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(_) => continue, // timeout (checks the flag) or a stray ICMP error
        };
        if let Some(reply) = handle(&shared, &buf[..n], Transport::Udp, from) {
            let _ = sock.send_to(&reply, from);
        }
    }
}

fn tcp_loop(listener: TcpListener, shared: Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, from)) => {
                let s = shared.clone();
                let t = thread::spawn(move || tcp_conn(stream, from, s));
                let mut conns = lock(&shared.conns);
                conns.retain(|h| !h.is_finished());
                conns.push(t);
            }
            Err(_) => thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// One TCP connection: length-prefixed queries (RFC 1035 4.2.2), answered
/// in order, until EOF, `TCP_IDLE` or stop.
fn tcp_conn(mut stream: TcpStream, from: SocketAddr, shared: Arc<Shared>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(POLL));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut idle_since = Instant::now();
    while !shared.stop.load(Ordering::SeqCst) && idle_since.elapsed() < TCP_IDLE {
        match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => return,
        }
        while buf.len() >= 2 {
            let len = usize::from(u16::from_be_bytes([buf[0], buf[1]]));
            if buf.len() < 2 + len {
                break;
            }
            let msg: Vec<u8> = buf.drain(..2 + len).skip(2).collect();
            idle_since = Instant::now();
            if let Some(reply) = handle(&shared, &msg, Transport::Tcp, from) {
                let mut framed = (reply.len() as u16).to_be_bytes().to_vec();
                framed.extend_from_slice(&reply);
                if stream.write_all(&framed).is_err() {
                    return;
                }
            }
        }
    }
}

/// The question of a query.
struct Question {
    id: u16,
    flags: u16,
    /// As received (case kept), for echoing.
    raw_name: String,
    qtype: u16,
    qclass: u16,
    /// The question section's bytes, for echoing.
    section: Vec<u8>,
    /// The EDNS UDP payload size, if the query had an OPT record.
    edns_size: Option<u16>,
}

/// Parses a query. `Err(Some(id))`: malformed, answer FORMERR; `Err(None)`:
/// not even a header, or a response: ignore.
fn parse_query(p: &[u8]) -> Result<Question, Option<u16>> {
    if p.len() < 12 {
        return Err(None);
    }
    let id = u16::from_be_bytes([p[0], p[1]]);
    let flags = u16::from_be_bytes([p[2], p[3]]);
    if flags & 0x8000 != 0 {
        return Err(None);
    }
    let qd = u16::from_be_bytes([p[4], p[5]]);
    let ar = u16::from_be_bytes([p[10], p[11]]);
    if qd != 1 {
        return Err(Some(id));
    }
    let mut pos = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*p.get(pos).ok_or(Some(id))?);
        pos += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return Err(Some(id)); // no compression in a query's question
        }
        let label = p.get(pos..pos + len).ok_or(Some(id))?;
        labels.push(String::from_utf8_lossy(label).into_owned());
        pos += len;
    }
    let fixed = p.get(pos..pos + 4).ok_or(Some(id))?;
    let qtype = u16::from_be_bytes([fixed[0], fixed[1]]);
    let qclass = u16::from_be_bytes([fixed[2], fixed[3]]);
    let section = p[12..pos + 4].to_vec();
    pos += 4;
    // An OPT pseudo-record in the additional section: root name, type 41,
    // class = the requester's UDP payload size.
    let mut edns_size = None;
    if ar > 0 && p.get(pos) == Some(&0) {
        if let Some(rest) = p.get(pos + 1..pos + 5) {
            if u16::from_be_bytes([rest[0], rest[1]]) == OPT {
                edns_size = Some(u16::from_be_bytes([rest[2], rest[3]]));
            }
        }
    }
    Ok(Question {
        id,
        flags,
        raw_name: labels.join("."),
        qtype,
        qclass,
        section,
        edns_size,
    })
}

/// Counts the query and makes the reply (None: stay silent).
fn handle(
    shared: &Shared,
    packet: &[u8],
    transport: Transport,
    from: SocketAddr,
) -> Option<Vec<u8>> {
    let q = match parse_query(packet) {
        Ok(q) => q,
        Err(Some(id)) => return Some(header_only(id, 0, FORMERR)),
        Err(None) => return None,
    };
    let name = norm(&q.raw_name);
    lock(&shared.queries).push(Query {
        name: name.clone(),
        qtype: q.qtype,
        transport,
        id: q.id,
        from,
        mixed_case: q.raw_name.bytes().any(|b| b.is_ascii_uppercase()),
    });
    let zone = lock(&shared.zone).clone();
    if zone.silent {
        return None;
    }
    let opcode = (q.flags >> 11) & 0xf;
    if opcode != 0 {
        return Some(reply(&q, NOTIMP, false, &[], &[]));
    }
    if q.qclass != 1 {
        return Some(reply(&q, REFUSED, false, &[], &[]));
    }
    match zone.special_for(&name, q.qtype) {
        Some(Special::Silent) => return None,
        Some(Special::Rcode(rc)) => return Some(reply(&q, rc, false, &[], &[])),
        Some(Special::Truncate) if transport == Transport::Udp => {
            return Some(reply(&q, NOERROR, true, &[], &[]))
        }
        _ => {}
    }
    let (rcode, answers) = zone.resolve(&name, q.qtype);
    let ends_in_type = answers.last().is_some_and(|r| r.data.rtype() == q.qtype);
    let authority = if ends_in_type {
        Vec::new()
    } else {
        let last = match answers.last() {
            Some(Record {
                data: Data::Cname(t),
                ..
            }) => t.clone(),
            _ => name.clone(),
        };
        vec![zone.soa_for(&last)]
    };
    let full = reply(&q, rcode, false, &answers, &authority);
    let limit = match transport {
        Transport::Tcp => usize::from(u16::MAX),
        Transport::Udp => usize::from(q.edns_size.unwrap_or(0)).max(UDP_LIMIT),
    };
    if full.len() > limit {
        return Some(reply(&q, rcode, true, &[], &[]));
    }
    Some(full)
}

fn header_only(id: u16, flags: u16, rcode: u8) -> Vec<u8> {
    let mut out = id.to_be_bytes().to_vec();
    out.extend_from_slice(&(flags | 0x8000 | u16::from(rcode)).to_be_bytes());
    out.extend_from_slice(&[0; 8]);
    out
}

/// A response: QR, AA, RA, the query's opcode and RD, `tc`, `rcode`; the
/// question echoed as asked; answer and authority sections.
fn reply(q: &Question, rcode: u8, tc: bool, answers: &[Record], authority: &[Record]) -> Vec<u8> {
    let mut flags = 0x8000 | 0x0400 | 0x0080 | (q.flags & 0x7900) | u16::from(rcode & 0xf);
    if tc {
        flags |= 0x0200;
    }
    let mut out = q.id.to_be_bytes().to_vec();
    out.extend_from_slice(&flags.to_be_bytes());
    for count in [1, answers.len(), authority.len(), 0] {
        out.extend_from_slice(&(count as u16).to_be_bytes());
    }
    out.extend_from_slice(&q.section);
    let qname = norm(&q.raw_name);
    for r in answers.iter().chain(authority) {
        // The question's name is written as a pointer to offset 12, as real
        // servers do; other names in full.
        if r.name == qname {
            out.extend_from_slice(&[0xc0, 12]);
        } else {
            encode_name(&mut out, &r.name);
        }
        let mut rdata = Vec::new();
        match &r.data {
            Data::A(ip) => rdata.extend_from_slice(&ip.octets()),
            Data::Aaaa(ip) => rdata.extend_from_slice(&ip.octets()),
            Data::Cname(t) => encode_name(&mut rdata, t),
            Data::Mx(pref, host) => {
                rdata.extend_from_slice(&pref.to_be_bytes());
                encode_name(&mut rdata, host);
            }
            Data::Soa {
                mname,
                rname,
                serial,
                refresh,
                retry,
                expire,
                minimum,
            } => {
                encode_name(&mut rdata, mname);
                encode_name(&mut rdata, rname);
                for v in [serial, refresh, retry, expire, minimum] {
                    rdata.extend_from_slice(&v.to_be_bytes());
                }
            }
            Data::Other(_, raw) => rdata.extend_from_slice(raw),
        }
        out.extend_from_slice(&r.data.rtype().to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes()); // IN
        out.extend_from_slice(&r.ttl.to_be_bytes());
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(&rdata);
    }
    out
}

/// A name as labels; "" is the root.
pub fn encode_name(out: &mut Vec<u8>, name: &str) {
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        assert!(label.len() <= 63, "label too long: {label}");
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
}

// ---------------------------------------------------------------------------
// A small client, to check the responder (and for ad hoc queries in tests)

/// A query: the id, RD set, one question of class IN.
pub fn build_query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut out = id.to_be_bytes().to_vec();
    out.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    encode_name(&mut out, name);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out
}

/// A parsed response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub id: u16,
    pub rcode: u8,
    pub tc: bool,
    pub aa: bool,
    pub rd: bool,
    pub ra: bool,
    /// The question as echoed (case kept).
    pub qname: String,
    pub qtype: u16,
    pub answers: Vec<Record>,
    pub authority: Vec<Record>,
    pub additional: Vec<Record>,
}

impl Response {
    pub fn a(&self) -> Vec<Ipv4Addr> {
        self.answers
            .iter()
            .filter_map(|r| match r.data {
                Data::A(ip) => Some(ip),
                _ => None,
            })
            .collect()
    }

    pub fn aaaa(&self) -> Vec<Ipv6Addr> {
        self.answers
            .iter()
            .filter_map(|r| match r.data {
                Data::Aaaa(ip) => Some(ip),
                _ => None,
            })
            .collect()
    }

    pub fn mx(&self) -> Vec<(u16, String)> {
        self.answers
            .iter()
            .filter_map(|r| match &r.data {
                Data::Mx(p, h) => Some((*p, h.clone())),
                _ => None,
            })
            .collect()
    }
}

/// Reads a possibly compressed name at `pos`; returns it (lower-case) and
/// the position after it in the original stream.
fn read_name(p: &[u8], pos: usize) -> Result<(String, usize), String> {
    read_name_as(p, pos, true)
}

fn read_name_as(p: &[u8], mut pos: usize, lower: bool) -> Result<(String, usize), String> {
    let mut labels: Vec<String> = Vec::new();
    let mut end = None;
    let mut jumps = 0;
    loop {
        let len = *p.get(pos).ok_or("name runs off the end")?;
        match len {
            0 => {
                pos += 1;
                break;
            }
            1..=63 => {
                let l = p
                    .get(pos + 1..pos + 1 + usize::from(len))
                    .ok_or("label runs off the end")?;
                let l = String::from_utf8_lossy(l);
                labels.push(if lower {
                    l.to_ascii_lowercase()
                } else {
                    l.into_owned()
                });
                pos += 1 + usize::from(len);
            }
            0xc0..=0xff => {
                let lo = *p.get(pos + 1).ok_or("pointer runs off the end")?;
                end.get_or_insert(pos + 2);
                jumps += 1;
                if jumps > 32 {
                    return Err("compression loop".into());
                }
                pos = (usize::from(len & 0x3f) << 8) | usize::from(lo);
            }
            _ => return Err(format!("bad label length byte {len:#x}")),
        }
    }
    Ok((labels.join("."), end.unwrap_or(pos)))
}

fn read_u16(p: &[u8], pos: usize) -> Result<u16, String> {
    p.get(pos..pos + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .ok_or_else(|| "short packet".to_string())
}

fn read_u32(p: &[u8], pos: usize) -> Result<u32, String> {
    p.get(pos..pos + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| "short packet".to_string())
}

fn read_record(p: &[u8], pos: usize) -> Result<(Record, usize), String> {
    let (name, pos) = read_name(p, pos)?;
    let rtype = read_u16(p, pos)?;
    let ttl = read_u32(p, pos + 4)?;
    let len = usize::from(read_u16(p, pos + 8)?);
    let start = pos + 10;
    let rdata = p.get(start..start + len).ok_or("rdata runs off the end")?;
    let data = match rtype {
        A if len == 4 => Data::A(Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3])),
        AAAA if len == 16 => {
            let mut b = [0u8; 16];
            b.copy_from_slice(rdata);
            Data::Aaaa(Ipv6Addr::from(b))
        }
        CNAME => Data::Cname(read_name(p, start)?.0),
        MX => Data::Mx(read_u16(p, start)?, read_name(p, start + 2)?.0),
        SOA => {
            let (mname, at) = read_name(p, start)?;
            let (rname, at) = read_name(p, at)?;
            Data::Soa {
                mname,
                rname,
                serial: read_u32(p, at)?,
                refresh: read_u32(p, at + 4)?,
                retry: read_u32(p, at + 8)?,
                expire: read_u32(p, at + 12)?,
                minimum: read_u32(p, at + 16)?,
            }
        }
        t => Data::Other(t, rdata.to_vec()),
    };
    Ok((Record { name, ttl, data }, start + len))
}

/// Parses a response (any id; the caller checks it).
pub fn parse_response(p: &[u8]) -> Result<Response, String> {
    if p.len() < 12 {
        return Err("shorter than a header".into());
    }
    let id = read_u16(p, 0)?;
    let flags = read_u16(p, 2)?;
    if flags & 0x8000 == 0 {
        return Err("not a response".into());
    }
    let counts: Vec<u16> = (0..4)
        .map(|i| read_u16(p, 4 + 2 * i))
        .collect::<Result<_, _>>()?;
    if counts[0] != 1 {
        return Err(format!("{} questions", counts[0]));
    }
    let (qname, pos) = read_name_as(p, 12, false)?;
    let qtype = read_u16(p, pos)?;
    let mut pos = pos + 4;
    let mut sections = [Vec::new(), Vec::new(), Vec::new()];
    for (i, section) in sections.iter_mut().enumerate() {
        for _ in 0..counts[i + 1] {
            let (r, next) = read_record(p, pos)?;
            section.push(r);
            pos = next;
        }
    }
    let [answers, authority, additional] = sections;
    Ok(Response {
        id,
        rcode: (flags & 0xf) as u8,
        tc: flags & 0x0200 != 0,
        aa: flags & 0x0400 != 0,
        rd: flags & 0x0100 != 0,
        ra: flags & 0x0080 != 0,
        qname,
        qtype,
        answers,
        authority,
        additional,
    })
}

/// Asks `server` over UDP; None if nothing (with the right id) came back
/// within `wait`.
pub fn udp_query(server: SocketAddr, name: &str, qtype: u16, wait: Duration) -> Option<Response> {
    let bind: SocketAddr = match server.ip() {
        IpAddr::V4(_) => "127.0.0.1:0".parse().expect("addr"),
        IpAddr::V6(_) => "[::1]:0".parse().expect("addr"),
    };
    let sock = UdpSocket::bind(bind).expect("bind a UDP client socket");
    let id = query_id(name);
    sock.send_to(&build_query(id, name, qtype), server)
        .expect("send the query");
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 65535];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        sock.set_read_timeout(Some(left)).expect("timeout");
        match sock.recv_from(&mut buf) {
            Ok((n, from)) if from == server => {
                if let Ok(r) = parse_response(&buf[..n]) {
                    if r.id == id {
                        return Some(r);
                    }
                }
            }
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

/// Asks `server` over TCP; None on close or timeout.
pub fn tcp_query(server: SocketAddr, name: &str, qtype: u16, wait: Duration) -> Option<Response> {
    let mut s = TcpStream::connect_timeout(&server, wait).ok()?;
    s.set_read_timeout(Some(wait)).ok()?;
    s.set_write_timeout(Some(wait)).ok()?;
    let id = query_id(name);
    let q = build_query(id, name, qtype);
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&q);
    s.write_all(&framed).ok()?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len).ok()?;
    let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut msg).ok()?;
    let r = parse_response(&msg).ok()?;
    (r.id == id).then_some(r)
}

/// Some id that differs between names (these queries need no randomness).
fn query_id(name: &str) -> u16 {
    name.bytes()
        .fold(0x5a5au16, |h, b| h.rotate_left(5) ^ u16::from(b))
}

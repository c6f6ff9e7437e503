//! Outstanding DNS queries over UDP with TCP fallback, sans-IO: the client says what to
//! send where and when to give up; the driver owns the sockets (a new UDP socket per
//! try, so the kernel picks a random source port) and the clock.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use super::message::{build_query, parse_response, tcp_frame, valid_name, Answer, QType};
use super::resolv::ResolvConf;
use super::Rng;

/// Names one outstanding query (not the 16-bit DNS id, which changes with every try).
pub type QueryId = u64;

/// A packet to send for a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit {
    /// One datagram, from a new socket (the previous try's socket, if any, can be closed).
    Udp {
        query: QueryId,
        server: SocketAddr,
        packet: Vec<u8>,
    },
    /// Connect to `server`, write `packet` (already length-framed), read one framed
    /// message and hand it to `tcp_response` (or report `tcp_failed`).
    Tcp {
        query: QueryId,
        server: SocketAddr,
        packet: Vec<u8>,
    },
}

impl Transmit {
    #[cfg(test)]
    pub fn query(&self) -> QueryId {
        match self {
            Transmit::Udp { query, .. } | Transmit::Tcp { query, .. } => *query,
        }
    }
}

/// A finished query: the answer, or `None` when every try failed (timeouts, server errors).
pub type QueryResult = (QueryId, String, QType, Option<Answer>);

/// The queries in flight, their tries and deadlines.
#[derive(Debug)]
pub struct DnsClient {
    conf: ResolvConf,
    rng: Rng,
    next_query: QueryId,
    queries: BTreeMap<QueryId, Query>,
    transmits: VecDeque<Transmit>,
    results: VecDeque<QueryResult>,
}

#[derive(Debug)]
struct Query {
    name: String,
    qtype: QType,
    /// The DNS id of the current try.
    id: u16,
    /// Tries made so far minus one: server `tries % servers`, round `tries / servers`.
    tries: u32,
    server: SocketAddr,
    tcp: bool,
    deadline: Instant,
}

impl DnsClient {
    pub fn new(conf: ResolvConf, seed: u64) -> DnsClient {
        DnsClient {
            conf,
            rng: Rng::new(seed),
            next_query: 1,
            queries: BTreeMap::new(),
            transmits: VecDeque::new(),
            results: VecDeque::new(),
        }
    }

    /// Starts a query: the first try goes to the first server over UDP with a random id.
    /// A name no query can carry is answered NXDOMAIN (TTL 0) without asking.
    pub fn query(&mut self, name: &str, qtype: QType, now: Instant) -> QueryId {
        let query = self.next_query;
        self.next_query += 1;
        let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
        if !valid_name(&name) {
            let answer = Answer::NxDomain { ttl: 0 };
            self.results.push_back((query, name, qtype, Some(answer)));
            return query;
        }
        if self.conf.servers.is_empty() {
            self.results.push_back((query, name, qtype, None));
            return query;
        }
        let server = self.conf.servers[0];
        let entry = Query {
            name,
            qtype,
            id: 0,
            tries: 0,
            server,
            tcp: false,
            deadline: now,
        };
        self.queries.insert(query, entry);
        self.send_udp(query, now);
        query
    }

    /// The next packet to send, in order.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// A datagram arrived on the socket of `query` from `from`. Ignored (false: keep
    /// waiting on that socket) unless `from` is the server it was sent to and
    /// `parse_response` accepts it; true when it moved the query on (a result, the next
    /// try, or TCP).
    pub fn udp_response(
        &mut self,
        query: QueryId,
        from: SocketAddr,
        packet: &[u8],
        now: Instant,
    ) -> bool {
        let Some(q) = self.queries.get(&query) else {
            return false;
        };
        if q.tcp || from.ip() != q.server.ip() || from.port() != q.server.port() {
            return false;
        }
        match parse_response(packet, q.id, &q.name, q.qtype) {
            Err(_) => false,
            Ok(Answer::Truncated) => {
                self.send_tcp(query, now);
                true
            }
            Ok(Answer::ServerError(_)) => {
                self.next_try(query, now);
                true
            }
            Ok(answer) => {
                self.finish(query, Some(answer));
                true
            }
        }
    }

    /// One DNS message (unframed) read over the TCP connection of `query`. Anything but a
    /// usable answer to our question fails this try: the stream is ours alone.
    pub fn tcp_response(&mut self, query: QueryId, message: &[u8], now: Instant) {
        let Some(q) = self.queries.get(&query).filter(|q| q.tcp) else {
            return;
        };
        match parse_response(message, q.id, &q.name, q.qtype) {
            Ok(Answer::Truncated | Answer::ServerError(_)) | Err(_) => self.next_try(query, now),
            Ok(answer) => self.finish(query, Some(answer)),
        }
    }

    /// The TCP connection of `query` could not be made or broke: the next try.
    pub fn tcp_failed(&mut self, query: QueryId, now: Instant) {
        if self.queries.get(&query).is_some_and(|q| q.tcp) {
            self.next_try(query, now);
        }
    }

    /// When `handle_timeout` has work: the earliest try deadline.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.queries.values().map(|q| q.deadline).min()
    }

    /// Tries whose time is up move on: retries rotate through the servers, attempts ×
    /// servers tries in all, each waiting `timeout`; then the result is `None`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let expired: Vec<QueryId> = self
            .queries
            .iter()
            .filter(|(_, q)| q.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for query in expired {
            self.next_try(query, now);
        }
    }

    /// A finished query: (query, name, type, answer); `None` = every try failed
    /// (timeouts / server errors).
    pub fn poll_result(&mut self) -> Option<QueryResult> {
        self.results.pop_front()
    }

    /// Forgets a query, with its unsent packets and its unread result.
    #[cfg(test)]
    pub fn cancel(&mut self, query: QueryId) {
        self.queries.remove(&query);
        self.transmits.retain(|t| t.query() != query);
        self.results.retain(|(id, ..)| *id != query);
    }

    /// Queries in flight.
    #[cfg(test)]
    pub fn pending(&self) -> usize {
        self.queries.len()
    }

    /// A new try of `query` over UDP: a fresh id, the server of its try number.
    fn send_udp(&mut self, query: QueryId, now: Instant) {
        let Some(q) = self.queries.get_mut(&query) else {
            return;
        };
        let servers = &self.conf.servers;
        q.id = self.rng.next_u64() as u16;
        q.server = servers[q.tries as usize % servers.len()];
        q.tcp = false;
        q.deadline = now + self.conf.timeout;
        let packet = build_query(q.id, &q.name, q.qtype);
        let server = q.server;
        self.transmits.push_back(Transmit::Udp {
            query,
            server,
            packet,
        });
    }

    /// The answer was truncated: the same question, id and server over TCP.
    fn send_tcp(&mut self, query: QueryId, now: Instant) {
        let Some(q) = self.queries.get_mut(&query) else {
            return;
        };
        q.tcp = true;
        q.deadline = now + self.conf.timeout;
        let packet = tcp_frame(&build_query(q.id, &q.name, q.qtype));
        let server = q.server;
        self.transmits.push_back(Transmit::Tcp {
            query,
            server,
            packet,
        });
    }

    fn next_try(&mut self, query: QueryId, now: Instant) {
        let limit = self.conf.attempts.max(1) as usize * self.conf.servers.len();
        let Some(q) = self.queries.get_mut(&query) else {
            return;
        };
        q.tries += 1;
        if q.tries as usize >= limit {
            self.finish(query, None);
        } else {
            self.send_udp(query, now);
        }
    }

    fn finish(&mut self, query: QueryId, answer: Option<Answer>) {
        if let Some(q) = self.queries.remove(&query) {
            self.results.push_back((query, q.name, q.qtype, answer));
        }
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;

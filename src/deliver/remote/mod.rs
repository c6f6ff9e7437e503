//! The remote delivery driver: recipients outside the local domains, grouped
//! per message and destination (a domain, or the smarthost), are resolved
//! (MX, then addresses, through the DNS client and its cache) and sent over
//! outbound SMTP connections, trying the next address when one fails, within
//! the global and per-destination connection caps. It owns no socket: it
//! emits [`Action`]s (a DNS packet to send, a connection to open) that the
//! server carries out, and takes back DNS packets and connection outcomes.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use rustls::pki_types::ServerName;

use crate::config::{Config, ConfigError, TlsPolicy};
use crate::dns::cache::Cache;
use crate::dns::client::{DnsClient, QueryId, Transmit};
use crate::dns::lookup::MxLookup;
use crate::dns::resolv::ResolvConf;
use crate::net::tls::{self, ServerCheck};
use crate::outbound::TLS_HANDSHAKE_FAILED;
use crate::queue::envelope::Outcome;
use crate::smtp::address::{Mailbox, ReversePath};
use crate::smtp::client::{self, SmtpClient};

/// DNS answers kept at most.
const CACHE_ENTRIES: usize = 1024;
/// Recipients of one destination per transaction (RFC 5321 asks servers to
/// take at least 100).
const MAX_RCPTS: usize = 100;

/// Remote recipients of one message, handed over by the delivery driver.
pub struct RemoteRequest {
    pub job: String,
    /// The spool file and where the message is in it.
    pub path: PathBuf,
    pub offset: u64,
    pub len: u64,
    pub from: ReversePath,
    /// (recipient index in the envelope, address to deliver to).
    pub rcpts: Vec<(usize, Mailbox)>,
}

/// The outcome for one remote recipient.
pub struct Delivered {
    pub job: String,
    pub rcpt: usize,
    pub to: Mailbox,
    pub outcome: Outcome,
    /// For a sent recipient, the server's final reply (for the log line).
    pub reply: Option<String>,
    /// `host[ip]:port`, or `none` when no host was reached.
    pub relay: String,
    /// The host whose reply decided a bounce, for the DSN.
    pub remote_mta: Option<String>,
}

/// What the server must do for the driver.
pub enum Action {
    Dns(Transmit),
    Connect(Box<Connect>),
}

/// An outbound connection to open and drive.
pub struct Connect {
    pub attempt: u64,
    pub addr: SocketAddr,
    /// The host name (SNI, certificate check, log lines).
    pub host: String,
    /// TLS from the first byte (a port-465 smarthost).
    pub implicit_tls: bool,
    /// The TLS settings for STARTTLS or implicit TLS.
    pub tls: Arc<rustls::ClientConfig>,
    pub server_name: ServerName<'static>,
    pub client: SmtpClient,
    pub path: PathBuf,
    pub offset: u64,
    pub len: u64,
}

/// Where a group of recipients goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Dest {
    Domain(String),
    Relayhost,
}

enum AttemptState {
    Resolving,
    /// Addresses left to try, in order.
    Ready(VecDeque<(String, IpAddr)>),
    Active(VecDeque<(String, IpAddr)>),
}

struct Attempt {
    request: Arc<RemoteRequest>,
    rcpts: Vec<(usize, Mailbox)>,
    dest: Dest,
    state: AttemptState,
    /// Why the last address failed, for the deferral if none is left.
    last_error: Option<String>,
    relay: String,
    /// The address being tried now.
    current: Option<(String, IpAddr)>,
    /// Set to retry `current` without STARTTLS after its handshake failed
    /// under the opportunistic policy.
    plain_retry: bool,
}

/// An MX lookup, or the address lookup of the smarthost.
enum Resolution {
    Mx(MxLookup),
    Addrs {
        name: String,
        pending: usize,
        addrs: Vec<IpAddr>,
        failed: bool,
    },
}

struct Resolving {
    resolution: Resolution,
    waiting: Vec<u64>,
}

pub struct RemoteDelivery {
    dns: DnsClient,
    cache: Cache,
    seed: u64,
    resolving: HashMap<Dest, Resolving>,
    queries: HashMap<QueryId, Dest>,
    attempts: HashMap<u64, Attempt>,
    next_attempt: u64,
    active: HashMap<Dest, usize>,
    active_total: usize,
    any_tls: Arc<rustls::ClientConfig>,
    verified_tls: Result<Arc<rustls::ClientConfig>, String>,
    relay_auth: Option<(String, Vec<u8>)>,
    actions: Vec<Action>,
    delivered: Vec<Delivered>,
}

impl RemoteDelivery {
    /// Reads what outbound delivery needs: resolv.conf (or `dns_servers`),
    /// the smarthost credentials (an error names their line), the CA bundle
    /// (a missing one only fails deliveries that need it).
    pub fn load(config: &Config) -> Result<RemoteDelivery, ConfigError> {
        let out = &config.outbound;
        let mut resolv = std::fs::read_to_string("/etc/resolv.conf")
            .map(|t| ResolvConf::parse(&t))
            .unwrap_or_default();
        if !out.dns_servers.is_empty() {
            resolv.servers = out.dns_servers.clone();
        }
        let relay_auth = match &out.relayhost_auth {
            Some(path) => Some(read_credentials(path)?),
            None => None,
        };
        let verified_tls =
            tls::load_roots(&out.tls_ca_file).map(|roots| tls::client(ServerCheck::Roots(roots)));
        let seed = random_seed();
        Ok(RemoteDelivery {
            dns: DnsClient::new(resolv, seed),
            cache: Cache::new(CACHE_ENTRIES),
            seed,
            resolving: HashMap::new(),
            queries: HashMap::new(),
            attempts: HashMap::new(),
            next_attempt: 1,
            active: HashMap::new(),
            active_total: 0,
            any_tls: tls::client(ServerCheck::Any),
            verified_tls,
            relay_auth,
            actions: Vec::new(),
            delivered: Vec::new(),
        })
    }

    /// A reload: the settings read from files (smarthost login, CA bundle)
    /// come from `new`; queries and connections in flight go on.
    pub fn reload(&mut self, new: RemoteDelivery) {
        self.verified_tls = new.verified_tls;
        self.relay_auth = new.relay_auth;
    }

    /// Takes the remote recipients of one message.
    pub fn submit(&mut self, config: &Config, request: RemoteRequest, now: Instant) {
        let request = Arc::new(request);
        let mut groups: Vec<(Dest, Vec<(usize, Mailbox)>)> = Vec::new();
        for (index, to) in &request.rcpts {
            let dest = match &config.outbound.relayhost {
                Some(_) => Dest::Relayhost,
                None => Dest::Domain(to.domain.to_ascii_lowercase()),
            };
            match groups
                .iter_mut()
                .find(|(d, r)| *d == dest && r.len() < MAX_RCPTS)
            {
                Some((_, rcpts)) => rcpts.push((*index, to.clone())),
                None => groups.push((dest, vec![(*index, to.clone())])),
            }
        }
        for (dest, rcpts) in groups {
            let id = self.next_attempt;
            self.next_attempt += 1;
            self.attempts.insert(
                id,
                Attempt {
                    request: request.clone(),
                    rcpts,
                    dest: dest.clone(),
                    state: AttemptState::Resolving,
                    last_error: None,
                    relay: "none".into(),
                    current: None,
                    plain_retry: false,
                },
            );
            self.resolve(config, dest, id, now);
        }
        self.start_ready(config);
    }

    /// Opens connections for ready attempts, within the caps.
    fn start_ready(&mut self, config: &Config) {
        let out = &config.outbound;
        let ready: Vec<u64> = self
            .attempts
            .iter()
            .filter(|(_, a)| matches!(a.state, AttemptState::Ready(_)))
            .map(|(&id, _)| id)
            .collect();
        for id in ready {
            if self.active_total >= out.max_connections {
                return;
            }
            let Some(attempt) = self.attempts.get(&id) else {
                continue;
            };
            if *self.active.get(&attempt.dest).unwrap_or(&0) >= out.max_per_destination {
                continue;
            }
            let dest = attempt.dest.clone();
            self.active_total += 1;
            *self.active.entry(dest).or_insert(0) += 1;
            self.connect_next(config, id);
        }
    }

    /// A connection of attempt `id` ended: with the client's outcome, or
    /// before SMTP began (connect or TLS failure).
    pub fn attempt_done(
        &mut self,
        config: &Config,
        id: u64,
        result: Result<client::Outcome, String>,
    ) {
        let Some(attempt) = self.attempts.get_mut(&id) else {
            return;
        };
        let outcome = match result {
            // Opportunistic TLS that fails is no reason to keep mail back:
            // the same host again, in plain text (as Postfix does for `may`).
            Err(e) if e.starts_with(TLS_HANDSHAKE_FAILED) && !attempt.plain_retry => {
                let opportunistic = match &attempt.dest {
                    Dest::Domain(d) => config.outbound.policy_for(d) == TlsPolicy::May,
                    Dest::Relayhost => config.outbound.relayhost_policy() == TlsPolicy::May,
                };
                attempt.last_error = Some(format!("{}: {e}", attempt.relay));
                if opportunistic {
                    if let (Some(current), AttemptState::Active(hosts)) =
                        (attempt.current.clone(), &mut attempt.state)
                    {
                        log::info!("{}: {e}; trying again without TLS", attempt.relay);
                        hosts.push_front(current);
                        attempt.plain_retry = true;
                    }
                }
                self.connect_next(config, id);
                return self.start_ready(config);
            }
            Err(e) => {
                attempt.last_error = Some(format!("connect to {}: {e}", attempt.relay));
                self.connect_next(config, id);
                // A slot may have been freed.
                return self.start_ready(config);
            }
            Ok(o) => o,
        };
        let more_hosts = matches!(&attempt.state, AttemptState::Active(h) if !h.is_empty());
        if let Some(f) = &outcome.session {
            // A host that is down or refuses at the greeting: the next MX may
            // take the mail (Postfix also skips 5xx greetings).
            let next_mx = !f.permanent || f.stage == "greeting";
            let none_accepted = outcome.rcpts.iter().all(|r| r.is_err());
            if next_mx && none_accepted && more_hosts {
                attempt.last_error = Some(format!("host {} said: {f}", attempt.relay));
                self.connect_next(config, id);
                return self.start_ready(config);
            }
        }
        let relay = attempt.relay.clone();
        let host = relay.split('[').next().unwrap_or("").to_string();
        self.release(id);
        // A refused smarthost login is the admin's to fix, not the sender's:
        // defer, as Postfix does (smtp_sasl_auth_soft_bounce).
        let auth_refused = outcome.session.as_ref().is_some_and(|f| f.stage == "AUTH");
        let verdicts = outcome.rcpts;
        self.finish(
            id,
            |i| match verdicts.get(i) {
                Some(Ok(reply)) => (Outcome::Sent, Some(reply.clone())),
                Some(Err(f)) if f.permanent && !auth_refused => {
                    (Outcome::Bounced(f.to_string()), None)
                }
                Some(Err(f)) if auth_refused => (
                    Outcome::Deferred(format!("4.7.8 the smarthost refused our login: {f}")),
                    None,
                ),
                Some(Err(f)) => (Outcome::Deferred(f.to_string()), None),
                None => (Outcome::Deferred("no verdict".into()), None),
            },
            Some(host),
        );
        self.start_ready(config);
    }

    /// Frees the connection slot of attempt `id`.
    fn release(&mut self, id: u64) {
        let Some(attempt) = self.attempts.get(&id) else {
            return;
        };
        if let Some(n) = self.active.get_mut(&attempt.dest) {
            *n = n.saturating_sub(1);
            self.active_total = self.active_total.saturating_sub(1);
        }
    }

    /// Ends attempt `id`: each recipient (by position) gets `outcome(i)`.
    fn finish(
        &mut self,
        id: u64,
        outcome: impl Fn(usize) -> (Outcome, Option<String>),
        host: Option<String>,
    ) {
        let Some(attempt) = self.attempts.remove(&id) else {
            return;
        };
        for (i, (rcpt, to)) in attempt.rcpts.into_iter().enumerate() {
            let (outcome, reply) = outcome(i);
            let remote_mta = match (&outcome, &host) {
                (Outcome::Bounced(_), Some(h)) => Some(h.clone()),
                _ => None,
            };
            self.delivered.push(Delivered {
                job: attempt.request.job.clone(),
                rcpt,
                to,
                outcome,
                reply,
                relay: attempt.relay.clone(),
                remote_mta,
            });
        }
    }

    /// A DNS datagram for `query` arrived; true if its socket can be closed.
    pub fn udp_response(&mut self, query: QueryId, from: SocketAddr, packet: &[u8]) -> bool {
        let moved = self.dns.udp_response(query, from, packet, Instant::now());
        self.drain_dns();
        moved
    }

    pub fn tcp_response(&mut self, query: QueryId, message: &[u8]) {
        self.dns.tcp_response(query, message, Instant::now());
        self.drain_dns();
    }

    pub fn tcp_failed(&mut self, query: QueryId) {
        self.dns.tcp_failed(query, Instant::now());
        self.drain_dns();
    }

    /// Whether `query` still waits for an answer (its sockets are useful).
    pub fn query_pending(&self, query: QueryId) -> bool {
        self.queries.contains_key(&query)
    }

    /// Queues the transmits the DNS client wants sent.
    fn drain_dns(&mut self) {
        while let Some(t) = self.dns.poll_transmit() {
            self.actions.push(Action::Dns(t));
        }
    }

    /// Advances DNS (timeouts, finished queries) and the resolutions waiting
    /// on it. Call once per loop turn.
    pub fn poll(&mut self, config: &Config, now: Instant) {
        if self.dns.next_timeout().is_some_and(|t| t <= now) {
            self.dns.handle_timeout(now);
        }
        while let Some((query, name, qtype, answer)) = self.dns.poll_result() {
            let Some(dest) = self.queries.remove(&query) else {
                continue;
            };
            if let Some(a) = &answer {
                self.cache.put(&name, qtype, a, now);
            }
            if let Some(step) = self.answered(&dest, &name, qtype, answer.as_ref()) {
                self.step(config, dest, step, now);
            }
        }
        self.drain_dns();
    }

    pub fn next_timeout(&self) -> Option<Instant> {
        self.dns.next_timeout()
    }

    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    pub fn take_delivered(&mut self) -> Vec<Delivered> {
        std::mem::take(&mut self.delivered)
    }
}

mod resolve;
mod setup;

use setup::{random_seed, read_credentials};

#[cfg(test)]
#[path = "tests.rs"]
mod tests;

//! `picomta serve`: builds the server from the config and runs the loop. One
//! turn: wait for readiness or the next timer; accept and drive connections;
//! advance deliveries by a bounded amount; then, paced, the group commit that
//! makes finished messages and Maildir copies durable before their 250s.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Interest, Token};
use rustls::ServerConfig;

use crate::auth::{FailureTracker, Passwords};
use crate::config::{Config, ListenKind};
use crate::deliver::local::{self, LocalDelivery};
use crate::deliver::route::Router;
use crate::durable::Durability;
use crate::inbound::{Inbound, Next, Shared, SpaceCheck};
use crate::net::conn::Conn;
use crate::net::listen;
use crate::queue::spool::{Incoming, Spool};
use crate::queue::{IdMaker, Schedule};
use crate::reactor::{Reactor, Ready, Slab};
use crate::smtp::reply::Reply;
use crate::smtp::server::{Session, SessionConfig};

/// Bytes read from a socket at once, into the one buffer all sessions share.
const READ_CHUNK: usize = 16 * 1024;
/// Bytes of Maildir copying per loop turn, so sessions are served in between.
const DELIVERY_BUDGET: usize = 4 * 1024 * 1024;

/// The server's parts a connection works with, borrowed field by field (a
/// method would borrow all of `self`), so the connection itself, which lives
/// in `owners`, can be borrowed beside them.
macro_rules! shared {
    ($server:ident) => {
        Shared {
            config: &$server.config,
            router: &$server.router,
            spool: &mut $server.spool,
            schedule: &mut $server.schedule,
            ids: &mut $server.ids,
            space: &mut $server.space,
            tls: $server.tls.as_ref(),
            passwords: $server.passwords.as_ref(),
            failures: &mut $server.failures,
            scratch: &mut $server.scratch,
        }
    };
}

/// The delivery driver's view of the server, borrowed field by field like
/// `shared!`.
macro_rules! delivery_ctx {
    ($server:ident) => {
        local::Ctx {
            config: &$server.config,
            router: &$server.router,
            spool: &mut $server.spool,
            schedule: &mut $server.schedule,
        }
    };
}

/// A message in the group commit, with the session waiting for its reply.
struct Commit<T> {
    token: Token,
    generation: u64,
    /// `from=<…>, nrcpt=N, size=N` for the log line.
    summary: String,
    result: io::Result<T>,
}

enum Owner {
    /// A listening socket and its index in `config.listen`.
    Listener(TcpListener, usize),
    Inbound(Box<Inbound>),
}

struct Server {
    config: Config,
    router: Router,
    tls: Option<Arc<ServerConfig>>,
    passwords: Option<Passwords>,
    failures: FailureTracker,
    reactor: Reactor,
    owners: Slab<Owner>,
    listeners: usize,
    spool: Spool,
    schedule: Schedule,
    ids: IdMaker,
    space: SpaceCheck,
    delivery: LocalDelivery,
    durability: Durability,
    /// While sockets are ready, the next barrier may not start before this: one
    /// barrier's duration after the last ended. Commands between final dots
    /// then flow meanwhile and each barrier serves more messages; when nothing
    /// is ready, the barrier runs at once, so pacing never idles the loop.
    barrier_allowed_at: Instant,
    /// Messages finished, waiting for the group commit.
    commits: Vec<(Token, u64, Incoming)>,
    scratch: Vec<u8>,
}

/// What `serve` runs with: the config and what was loaded from the files it
/// names.
pub struct Loaded {
    pub config: Config,
    pub router: Router,
    pub tls: Option<Arc<ServerConfig>>,
    pub passwords: Option<Passwords>,
}

pub fn run(loaded: Loaded) -> io::Result<()> {
    let Loaded {
        config,
        router,
        tls,
        passwords,
    } = loaded;
    log::info!(
        "picomta {} starting with {}",
        env!("CARGO_PKG_VERSION"),
        config.path.display()
    );
    let mut spool =
        Spool::open(&config.spool).map_err(|e| context(e, "spool", &config.spool.display()))?;
    let mut schedule = Schedule::default();
    let recovered = spool.recover()?;
    if !recovered.is_empty() {
        log::info!("queue: {} messages resumed from the spool", recovered.len());
    }
    for id in recovered {
        schedule.add(id, false);
    }
    let reactor = Reactor::new()?;
    let mut owners = Slab::new();
    for (index, l) in config.listen.iter().enumerate() {
        let listener = listen::bind(l.addr).map_err(|e| context(e, "listen", &l.addr))?;
        let token = owners.insert_with(|_, _| Owner::Listener(listener, index));
        if let Some(Owner::Listener(listener, _)) = owners.get_mut(token) {
            reactor
                .registry()
                .register(listener, token, Interest::READABLE)?;
        }
        log::info!("listening on {l}");
    }
    match &passwords {
        Some(p) if p.is_empty() => log::warn!("the passwords file has no users: AUTH always fails"),
        Some(p) => log::info!("AUTH: {} users in the passwords file", p.len()),
        None => {}
    }
    let sync_method = config.sync_method;
    let mut server = Server {
        listeners: config.listen.len(),
        config,
        router,
        tls,
        passwords,
        failures: FailureTracker::new(),
        reactor,
        owners,
        spool,
        schedule,
        ids: IdMaker::default(),
        space: SpaceCheck::new(),
        delivery: LocalDelivery::new(),
        durability: Durability::new(sync_method),
        barrier_allowed_at: Instant::now(),
        commits: Vec::new(),
        scratch: vec![0; READ_CHUNK],
    };
    server.run()
}

fn context(e: io::Error, what: &str, value: &dyn std::fmt::Display) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {value}: {e}"))
}

impl Server {
    fn run(&mut self) -> io::Result<()> {
        let mut ready: Vec<Ready> = Vec::new();
        let mut expired = Vec::new();
        loop {
            let now = Instant::now();
            // With messages waiting for their commit, only look for ready
            // sockets: if there are none, the commit runs now.
            let limit = if self.delivery.busy() || !self.commits.is_empty() {
                Some(Duration::ZERO)
            } else {
                let paced = self.barrier_allowed_at.saturating_duration_since(now);
                let barrier = self.delivery.barrier_wait(now).map(|w| w.max(paced));
                let due = self.schedule.next_due_in(now);
                due.into_iter().chain(barrier).min()
            };
            crate::logging::flush();
            self.reactor.wait(limit, &mut ready, &mut expired)?;
            let idle = ready.is_empty() && expired.is_empty();
            for r in ready.drain(..) {
                self.ready(r);
            }
            for (token, generation) in expired.drain(..) {
                self.timer(token, generation);
            }
            self.end_turn(idle);
        }
    }

    fn ready(&mut self, r: Ready) {
        match self.owners.get_mut(r.token) {
            Some(Owner::Listener(..)) => self.accept(r.token),
            Some(Owner::Inbound(inbound)) => {
                inbound.conn.readable |= r.readable;
                inbound.conn.writable |= r.writable;
                self.drive(r.token);
            }
            None => {}
        }
    }

    fn accept(&mut self, token: Token) {
        loop {
            let Some(&mut Owner::Listener(ref listener, index)) = self.owners.get_mut(token) else {
                return;
            };
            let (mut stream, peer) = match listener.accept() {
                Ok(pair) => pair,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    log::error!("accept: {e}");
                    return;
                }
            };
            let sessions = self.owners.len() - self.listeners;
            if sessions >= self.config.max_connections {
                log::warn!(
                    "too many connections ({sessions}): refusing [{}]",
                    peer.ip()
                );
                // On an smtps port the client expects a ClientHello answer,
                // not plaintext: closing is the only clear answer there.
                if self.config.listen[index].kind != ListenKind::Smtps {
                    let mut out = Vec::new();
                    Reply::new(
                        421,
                        "4.7.0",
                        format!("{} Error: too many connections", self.config.hostname),
                    )
                    .write_to(&mut out);
                    let _ = stream.write(&out);
                }
                continue;
            }
            log::info!("connect from [{}]:{}", peer.ip(), peer.port());
            let Some((conn, session)) = self.new_session(stream, peer, index) else {
                continue;
            };
            let deadline = Instant::now() + self.config.command_timeout;
            let new = self.owners.insert_with(|_, generation| {
                Owner::Inbound(Box::new(Inbound::new(conn, session, deadline, generation)))
            });
            let Some(Owner::Inbound(inbound)) = self.owners.get_mut(new) else {
                continue;
            };
            let generation = inbound.generation;
            if let Err(e) = self.reactor.registry().register(
                &mut inbound.conn.stream,
                new,
                Interest::READABLE | Interest::WRITABLE,
            ) {
                log::error!("register: {e}");
                self.owners.remove(new);
                continue;
            }
            self.reactor.add_timer(deadline, new, generation);
            self.drive(new);
        }
    }

    /// The connection and session for a client of listener `index`.
    fn new_session(
        &self,
        stream: mio::net::TcpStream,
        peer: SocketAddr,
        index: usize,
    ) -> Option<(Conn, Session)> {
        let config = &self.config;
        let listen = &config.listen[index];
        let session_config = SessionConfig {
            hostname: config.hostname.clone(),
            max_message_size: config.max_message_size,
            max_recipients: config.max_recipients,
            max_errors: config.max_errors,
            starttls: self.tls.is_some() && listen.kind != ListenKind::Smtps,
            auth: self.passwords.is_some(),
            plaintext_auth: config.plaintext_auth_allowed(listen),
            require_auth: listen.kind.requires_auth(),
            sender_login: config.sender_login,
        };
        let relay_client = config.relay_networks.iter().any(|n| n.contains(peer.ip()));
        let mut conn = Conn::new(stream, peer);
        if listen.kind == ListenKind::Smtps {
            let tls = self.tls.as_ref()?;
            if let Err(e) = conn.start_tls(tls) {
                log::error!("TLS for [{}]: {e}", peer.ip());
                return None;
            }
        }
        Some((conn, Session::new(session_config, peer, relay_client)))
    }

    /// Drives one connection and collects a finished message for the commit.
    fn drive(&mut self, token: Token) {
        let Some(Owner::Inbound(inbound)) = self.owners.get_mut(token) else {
            return;
        };
        let mut shared = shared!(self);
        let next = inbound.drive(&mut shared);
        let wake = inbound.wake_at();
        if wake < inbound.timer_at {
            inbound.timer_at = wake;
            self.reactor.add_timer(wake, token, inbound.generation);
        }
        if let Some(incoming) = inbound.take_commit() {
            self.commits.push((token, inbound.generation, incoming));
        }
        if next == Next::Close {
            self.close(token);
        }
    }

    fn timer(&mut self, token: Token, generation: u64) {
        let Some(Owner::Inbound(inbound)) = self.owners.get_gen_mut(token, generation) else {
            return;
        };
        if inbound.hold_until.is_some_and(|h| h <= Instant::now()) {
            inbound.timer_at = inbound.deadline;
            self.reactor.add_timer(inbound.deadline, token, generation);
            return self.drive(token);
        }
        if inbound.deadline > Instant::now() {
            inbound.timer_at = inbound.wake_at();
            self.reactor.add_timer(inbound.timer_at, token, generation);
            return;
        }
        let mut shared = shared!(self);
        if inbound.timed_out(&mut shared) == Next::Close {
            self.close(token);
        } else {
            // Give the 421 a little time to drain, then close regardless.
            inbound.deadline = Instant::now() + Duration::from_secs(10);
            inbound.timer_at = inbound.deadline;
            self.reactor.add_timer(inbound.deadline, token, generation);
        }
    }

    fn close(&mut self, token: Token) {
        let Some(Owner::Inbound(mut inbound)) = self.owners.remove(token) else {
            return;
        };
        let owners = &self.owners;
        self.reactor
            .prune_timers(owners.len(), |t, g| owners.is_live(t, g));
        let mut shared = shared!(self);
        inbound.close(&mut shared);
        // Closing the socket (dropping `inbound`) removes it from the poll.
        log::info!("disconnect from [{}]", inbound.conn.peer.ip());
    }

    /// The end of a loop turn, the group commit: every message finished and
    /// every Maildir copy written so far is made durable by two barriers
    /// shared by all of them (file data, then the directories they are renamed
    /// into). Only then are the 250s sent and delivery outcomes recorded. The
    /// barriers run when there is something to commit and the pacing allows,
    /// or the turn was `idle` (no socket was ready).
    fn end_turn(&mut self, idle: bool) {
        self.delivery
            .work(&mut delivery_ctx!(self), DELIVERY_BUDGET);
        let started = Instant::now();
        let delivery_overdue = self
            .delivery
            .barrier_wait(started)
            .is_some_and(|w| w.is_zero());
        let wanted = !self.commits.is_empty() || delivery_overdue;
        if !wanted || (started < self.barrier_allowed_at && !idle) {
            // Copies that failed or were found already delivered still
            // conclude their messages.
            self.delivery.settle(&mut delivery_ctx!(self), &[], &[]);
            return;
        }
        let batch = self.flush_commits();
        let committed = self.barriers(batch);
        self.barrier_allowed_at = Instant::now() + started.elapsed();
        self.acknowledge(committed);
    }

    /// Writes out what sessions buffered; a failed write fails its message.
    fn flush_commits(&mut self) -> Vec<Commit<Incoming>> {
        let mut batch = Vec::with_capacity(self.commits.len());
        for (token, generation, mut incoming) in std::mem::take(&mut self.commits) {
            let summary = format!("{}, size={}", incoming.summary, incoming.size);
            let result = match incoming.flush() {
                Ok(()) => Ok(incoming),
                Err(e) => {
                    self.spool.discard(incoming);
                    Err(e)
                }
            };
            batch.push(Commit {
                token,
                generation,
                summary,
                result,
            });
        }
        batch
    }

    /// The two barriers: file data (new spool files and Maildir copies), the
    /// renames into `msg/` and `new/`, then those directories. Returns each
    /// message's queue id once it is durable.
    fn barriers(&mut self, batch: Vec<Commit<Incoming>>) -> Vec<Commit<String>> {
        let delivery_joins = self.delivery.has_written();
        let msg_dir = self.spool.msg_dir().to_path_buf();

        let spool_files = batch.iter().filter_map(|c| c.result.as_ref().ok());
        let mut files: Vec<(&std::fs::File, &std::path::Path)> =
            spool_files.map(|i| (i.file(), msg_dir.as_path())).collect();
        if delivery_joins {
            files.extend(self.delivery.written());
        }
        let mut synced = self.durability.sync_files(&files).into_iter();
        drop(files);

        let mut published = Vec::with_capacity(batch.len());
        for Commit {
            token,
            generation,
            summary,
            result,
        } in batch
        {
            let result = result.and_then(|incoming| {
                let synced = synced
                    .next()
                    .unwrap_or_else(|| Err(io::ErrorKind::Other.into()));
                if let Err(e) = synced {
                    self.spool.discard(incoming);
                    return Err(e);
                }
                let id = incoming.id.clone();
                self.spool.publish(incoming).map(|()| id)
            });
            published.push(Commit {
                token,
                generation,
                summary,
                result,
            });
        }
        let mut dirs = if delivery_joins {
            self.delivery.publish(synced.collect())
        } else {
            Vec::new()
        };
        if published.iter().any(|c| c.result.is_ok()) {
            dirs.push(msg_dir.clone());
        }

        let dir_results = self.durability.sync_dirs(&dirs);
        self.delivery
            .settle(&mut delivery_ctx!(self), &dirs, &dir_results);
        let msg_dir_result = match dirs.iter().position(|d| *d == msg_dir) {
            Some(i) => dir_results[i].as_ref().map(|_| ()).map_err(|e| e.kind()),
            None => Ok(()),
        };
        for c in &mut published {
            if let (Ok(id), Err(kind)) = (&c.result, msg_dir_result) {
                // The rename may not survive a crash: it was never acknowledged.
                self.spool.unpublish(id);
                c.result = Err(io::Error::from(kind));
            }
        }
        published
    }

    /// Sends each session its 250 (or 451) and lets it go on with input it
    /// had pipelined.
    fn acknowledge(&mut self, committed: Vec<Commit<String>>) {
        for c in committed {
            self.schedule.incoming_ended();
            let reply = match c.result {
                Ok(id) => {
                    log::info!("{id}: {} (queued)", c.summary);
                    self.schedule.add(id.clone(), true);
                    Ok(id)
                }
                Err(e) => {
                    log::error!("queue commit failed: {e}");
                    Err(Reply::new(451, "4.3.0", "Error: queue file write error"))
                }
            };
            if let Some(Owner::Inbound(inbound)) = self.owners.get_gen_mut(c.token, c.generation) {
                inbound.session.commit_done(reply);
                self.drive(c.token);
            }
        }
    }
}

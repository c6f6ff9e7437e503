//! `picomta serve`: builds the server from the config and runs the loop. One
//! turn: wait for readiness or the next timer; accept and drive connections;
//! advance deliveries by a bounded amount; then, paced, the group commit that
//! makes finished messages and Maildir copies durable before their 250s
//! (`commit.rs`).

use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Interest, Token};
use rustls::ServerConfig;

use crate::auth::{FailureTracker, Passwords};
use crate::config::{Config, ListenKind};
use crate::deliver::local::LocalDelivery;
use crate::deliver::remote::RemoteDelivery;
use crate::deliver::route::Router;
use crate::durable::Durability;
use crate::inbound::{Inbound, Next, SpaceCheck};
use crate::net::conn::Conn;
use crate::pickup::Pickup;
use crate::queue::spool::{Incoming, Spool};
use crate::queue::{IdMaker, Schedule};
use crate::reactor::{Reactor, Ready, Slab};
use crate::smtp::reply::Reply;
use crate::smtp::server::{Session, SessionConfig};

/// Bytes read from a socket at once, into the one buffer all sessions share.
const READ_CHUNK: usize = 16 * 1024;
/// How long a stopping server waits for transactions in progress.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Bytes of Maildir copying per loop turn, so sessions are served in between.
const DELIVERY_BUDGET: usize = 4 * 1024 * 1024;

/// The server's parts a connection works with, borrowed field by field (a
/// method would borrow all of `self`), so the connection itself, which lives
/// in `owners`, can be borrowed beside them.
macro_rules! shared {
    ($server:ident) => {
        crate::inbound::Shared {
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
        crate::deliver::local::Ctx {
            config: &$server.config,
            router: &$server.router,
            spool: &mut $server.spool,
            schedule: &mut $server.schedule,
            ids: &mut $server.ids,
            durability: &mut $server.durability,
        }
    };
}

enum Owner {
    /// A listening socket and its index in `config.listen`.
    Listener(TcpListener, usize),
    /// The control socket (`picomta flush`).
    Control(mio::net::UnixDatagram),
    /// The read end of the signal pipe.
    Signals(mio::net::UnixStream),
    Inbound(Box<Inbound>),
    /// An outbound SMTP connection.
    Outbound(Box<crate::outbound::Outbound>),
    /// The UDP socket of one DNS query try.
    DnsUdp(mio::net::UdpSocket, crate::dns::client::QueryId),
    DnsTcp(Box<remote::DnsTcp>),
}

struct Server {
    config: Config,
    router: Router,
    tls: Option<Arc<ServerConfig>>,
    passwords: Option<Passwords>,
    failures: FailureTracker,
    reactor: Reactor,
    owners: Slab<Owner>,
    /// Inbound sessions, for `max_connections`.
    sessions: usize,
    /// Set by SIGTERM/SIGINT: no new connections; the loop ends when the
    /// sessions in a transaction and outbound connections are done, or at
    /// this time at the latest.
    stopping: Option<Instant>,
    spool: Spool,
    schedule: Schedule,
    ids: IdMaker,
    space: SpaceCheck,
    delivery: LocalDelivery,
    remote: RemoteDelivery,
    /// Messages `sendmail` left in the drop directory.
    pickup: Pickup,
    /// DNS sockets and their queries, closed once the query is over.
    dns_sockets: Vec<(Token, crate::dns::client::QueryId)>,
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
                let due = self
                    .schedule
                    .next_due_in(now)
                    .into_iter()
                    .chain(Some(self.pickup.wait(now)))
                    .min();
                let dns = self
                    .remote
                    .next_timeout()
                    .map(|t| t.saturating_duration_since(now));
                due.into_iter().chain(barrier).chain(dns).min()
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
            if self.stopped() {
                log::info!("stopped");
                crate::logging::flush();
                return Ok(());
            }
        }
    }

    fn ready(&mut self, r: Ready) {
        match self.owners.get_mut(r.token) {
            Some(Owner::Listener(..)) => self.accept(r.token),
            Some(Owner::Control(_)) => self.control(r.token),
            Some(Owner::Signals(read)) => {
                for signal in crate::signals::take(read) {
                    match signal {
                        crate::signals::Signal::Stop => self.begin_stop(),
                        crate::signals::Signal::Reload => self.reload(),
                    }
                }
            }
            Some(Owner::Inbound(inbound)) => {
                inbound.conn.readable |= r.readable;
                inbound.conn.writable |= r.writable;
                self.drive(r.token);
            }
            Some(Owner::Outbound(out)) => {
                out.conn.readable |= r.readable;
                out.conn.writable |= r.writable;
                self.drive_outbound(r.token);
            }
            Some(Owner::DnsUdp(..)) => self.dns_udp_ready(r.token),
            Some(Owner::DnsTcp(_)) => self.dns_tcp_ready(r.token),
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
            let sessions = self.sessions;
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
            self.sessions += 1;
            self.reactor.add_timer(deadline, new, generation);
            self.drive(new);
        }
    }

    /// SIGTERM or SIGINT: close the listeners and idle sessions; sessions in
    /// a transaction may finish it, within a bound. A second signal stops at
    /// once (nothing unacknowledged is lost: it was never acknowledged).
    fn begin_stop(&mut self) {
        if self.stopping.is_some() {
            log::warn!("stopping now");
            self.stopping = Some(Instant::now());
            return;
        }
        self.stopping = Some(Instant::now() + STOP_GRACE);
        for token in self.owners.tokens() {
            if matches!(self.owners.get_mut(token), Some(Owner::Listener(..))) {
                self.owners.remove(token);
            }
        }
        log::info!(
            "stopping: listeners closed, {} sessions open",
            self.sessions
        );
    }

    /// While stopping: idle sessions are told and closed; true once nothing
    /// is left to wait for.
    fn stopped(&mut self) -> bool {
        let Some(deadline) = self.stopping else {
            return false;
        };
        let mut waiting = false;
        for token in self.owners.tokens() {
            match self.owners.get_mut(token) {
                Some(Owner::Inbound(inbound))
                    if !inbound.session.busy() && !inbound.session.is_closed() =>
                {
                    inbound.session.shutdown();
                    self.drive(token);
                }
                Some(Owner::Inbound(inbound)) if !inbound.session.busy() => {}
                Some(Owner::Inbound(_)) | Some(Owner::Outbound(_)) => waiting = true,
                _ => {}
            }
        }
        Instant::now() >= deadline || (!waiting && self.commits.is_empty())
    }

    /// SIGHUP: the config and the files it names are read again (as the mail
    /// user, after a privilege drop); sessions already open keep the
    /// settings they started with. A broken set is logged and the old one
    /// kept. Listeners, the spool and the user stay as they are (changing
    /// them needs a restart).
    fn reload(&mut self) {
        let path = self.config.path.clone();
        let mut new = match Loaded::load(&path) {
            Ok(new) => new,
            Err(e) => {
                log::error!("reload failed, keeping the running config: {e}");
                return;
            }
        };
        // What the process set up at start (sockets, the spool, its own
        // ids: after the drop it could not change them anyway) stays.
        let old = &self.config;
        let mut kept = Vec::new();
        if new.config.listen != old.listen {
            kept.push("listen");
            new.config.listen = old.listen.clone();
        }
        if new.config.spool != old.spool {
            kept.push("spool");
            new.config.spool = old.spool.clone();
        }
        if (&new.config.user, &new.config.group, &new.config.run_as)
            != (&old.user, &old.group, &old.run_as)
        {
            kept.push("user/group");
            new.config.user = old.user.clone();
            new.config.group = old.group.clone();
            new.config.run_as = old.run_as.clone();
        }
        if !kept.is_empty() {
            log::warn!(
                "reload: {} changes take effect at the next start",
                kept.join(", ")
            );
        }
        self.config = new.config;
        self.router = new.router;
        self.tls = new.tls;
        self.passwords = new.passwords;
        self.remote.reload(new.remote);
        log::info!("reloaded {}", path.display());
    }

    /// Reads and carries out the requests waiting on the control socket.
    fn control(&mut self, token: Token) {
        let mut buf = [0u8; 64];
        loop {
            let Some(Owner::Control(socket)) = self.owners.get_mut(token) else {
                return;
            };
            let n = match socket.recv(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::error!("control socket: {e}");
                    return;
                }
            };
            match crate::control::Request::parse(&buf[..n]) {
                Some(crate::control::Request::Flush) => {
                    let moved = self.schedule.flush(Instant::now());
                    log::info!("flush requested: {moved} deferred messages retried now");
                    self.pickup.request();
                }
                Some(crate::control::Request::Pickup) => self.pickup.request(),
                None => log::warn!("control socket: unknown request ignored"),
            }
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
        let inbound = match self.owners.get_gen_mut(token, generation) {
            Some(Owner::Inbound(inbound)) => inbound,
            Some(Owner::Outbound(_)) => return self.outbound_timer(token, generation),
            _ => return,
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
        self.sessions -= 1;
        let owners = &self.owners;
        self.reactor
            .prune_timers(owners.len(), |t, g| owners.is_live(t, g));
        let mut shared = shared!(self);
        inbound.close(&mut shared);
        // Closing the socket (dropping `inbound`) removes it from the poll.
        log::info!("disconnect from [{}]", inbound.conn.peer.ip());
    }
}

mod commit;
mod remote;
mod start;

pub use start::{run, Loaded};

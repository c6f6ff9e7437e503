//! One inbound SMTP connection: drives the sans-IO [`Session`] with bytes from
//! its [`Conn`], switches the connection to TLS when the session asks, and
//! implements the session's [`Host`] with the router, the password file and
//! the spool. Input is read into the server's shared scratch buffer; only
//! bytes the session could not use yet are kept per connection, so an idle
//! session holds no buffers.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ServerConfig;

use crate::auth::{FailureTracker, Mechanism, Passwords};
use crate::config::Config;
use crate::deliver::route::{RcptCheck, Router};
use crate::net::conn::{Conn, Io};
use crate::queue::envelope::Envelope;
use crate::queue::spool::{Incoming, Spool};
use crate::queue::{IdMaker, Schedule};
use crate::smtp::address::Mailbox;
use crate::smtp::reply::Reply;
use crate::smtp::server::{Host, Session, Transaction, MAX_COMMAND_LINE};
use crate::util;

/// Unused input (pipelined commands waiting for a commit or for the output to
/// drain) past which reading pauses. One read can leave more, up to the read
/// buffer's size.
const PENDING_CAP: usize = 4 * MAX_COMMAND_LINE;

/// Everything a connection needs from the server while it is driven.
pub struct Shared<'a> {
    pub config: &'a Config,
    pub router: &'a Router,
    pub spool: &'a mut Spool,
    pub schedule: &'a mut Schedule,
    pub ids: &'a mut IdMaker,
    pub space: &'a mut SpaceCheck,
    pub tls: Option<&'a Arc<ServerConfig>>,
    pub passwords: Option<&'a Passwords>,
    pub failures: &'a mut FailureTracker,
    pub scratch: &'a mut [u8],
}

pub struct Inbound {
    pub conn: Conn,
    pub session: Session,
    /// The spool file of the message being received.
    incoming: Option<Incoming>,
    /// Set by the session's `end_message`: the server takes `incoming` into
    /// this turn's commit batch.
    commit_requested: bool,
    pending: Vec<u8>,
    /// When the session times out; moves with every read.
    pub deadline: Instant,
    /// The earliest timer armed for this session; a deadline before it needs
    /// a new timer (the heap's entries are never moved).
    pub timer_at: Instant,
    /// Output and input wait until then (a failed login's delayed 535).
    pub hold_until: Option<Instant>,
    pub generation: u64,
}

/// What the server must do after driving a connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Keep it; it is waiting for the peer (or the commit).
    Wait,
    /// Close and forget it.
    Close,
}

impl Inbound {
    pub fn new(conn: Conn, session: Session, deadline: Instant, generation: u64) -> Inbound {
        Inbound {
            conn,
            session,
            incoming: None,
            commit_requested: false,
            pending: Vec::new(),
            deadline,
            timer_at: deadline,
            hold_until: None,
            generation,
        }
    }

    /// The message waiting for the group commit, if the session finished one.
    pub fn take_commit(&mut self) -> Option<Incoming> {
        if !self.commit_requested {
            return None;
        }
        self.commit_requested = false;
        self.incoming.take()
    }

    /// When the server must look at this session again without a socket
    /// event: its timeout, or the end of a hold.
    pub fn wake_at(&self) -> Instant {
        self.hold_until
            .map_or(self.deadline, |h| h.min(self.deadline))
    }

    /// Moves bytes between the socket and the session until neither can make
    /// progress.
    pub fn drive(&mut self, shared: &mut Shared) -> Next {
        if let Some(until) = self.hold_until {
            if Instant::now() < until {
                return Next::Wait;
            }
            self.hold_until = None;
        }
        loop {
            let mut progress = false;
            if self.conn.wants_flush() && self.conn.writable {
                if let Io::Error(e) = self.conn.flush() {
                    return self.lost(shared, Some(e));
                }
            }
            if !self.session.output().is_empty() && self.conn.writable {
                match self.conn.write(self.session.output()) {
                    Io::Done(n) => {
                        self.session.output_sent(n);
                        progress = n > 0;
                    }
                    Io::WouldBlock => {}
                    Io::Closed => return self.lost(shared, None),
                    Io::Error(e) => return self.lost(shared, Some(e)),
                }
            }
            if self.session.is_closed() {
                return if self.session.output().is_empty() && !self.conn.wants_flush() {
                    self.conn.close_notify();
                    Next::Close
                } else {
                    Next::Wait
                };
            }
            if self.session.tls_requested() && !self.conn.is_tls() {
                if !self.session.output().is_empty() || self.conn.wants_flush() {
                    return Next::Wait;
                }
                if let Err(e) = self.start_tls(shared) {
                    return self.lost(shared, Some(e));
                }
                progress = true;
            }
            if self.commit_requested {
                return Next::Wait;
            }
            if !self.pending.is_empty() && self.session.wants_input() {
                let pending = std::mem::take(&mut self.pending);
                let used = self.feed(&pending, shared);
                self.pending = pending;
                self.pending.drain(..used);
                if self.pending.is_empty() && self.pending.capacity() > MAX_COMMAND_LINE {
                    self.pending = Vec::new();
                }
                progress |= used > 0;
                if self.commit_requested || self.hold() {
                    return Next::Wait;
                }
            }
            let wants_input = self.session.wants_input() || self.conn.handshaking();
            if wants_input && self.conn.can_read() && self.pending.len() < PENDING_CAP {
                let read = self.conn.read(shared.scratch);
                self.notice_handshake();
                match read {
                    Io::Done(n) => {
                        let scratch = std::mem::take(&mut shared.scratch);
                        if self.pending.is_empty() {
                            let used = self.feed(&scratch[..n], shared);
                            self.pending.extend_from_slice(&scratch[used..n]);
                        } else {
                            self.pending.extend_from_slice(&scratch[..n]);
                        }
                        shared.scratch = scratch;
                        // After feeding: DATA may just have begun or ended.
                        self.touch(shared.config);
                        progress = true;
                        if self.hold() {
                            return Next::Wait;
                        }
                    }
                    Io::WouldBlock => {}
                    Io::Closed => return self.lost(shared, None),
                    Io::Error(e) => return self.lost(shared, Some(e)),
                }
            }
            if !progress {
                return Next::Wait;
            }
        }
    }

    /// Throws away what the client sent after STARTTLS (never run inside
    /// TLS: CVE-2011-0411) and starts the handshake.
    fn start_tls(&mut self, shared: &mut Shared) -> io::Result<()> {
        if !self.pending.is_empty() {
            log::warn!(
                "[{}]: discarded {} bytes sent after STARTTLS before the handshake",
                self.conn.peer.ip(),
                self.pending.len()
            );
            self.pending = Vec::new();
        }
        let config = shared
            .tls
            .ok_or_else(|| io::Error::other("STARTTLS without a TLS config"))?;
        self.conn.start_tls(config)
    }

    /// Tells the session once the handshake is done, before any plaintext
    /// reaches it.
    fn notice_handshake(&mut self) {
        if self.session.tls_active() {
            return;
        }
        if let Some(info) = self.conn.tls_info() {
            log::info!("[{}]: TLS established: {info}", self.conn.peer.ip());
            self.session.tls_established(info);
        }
    }

    /// Starts holding the session if it asked for a pause (a failed login).
    fn hold(&mut self) -> bool {
        match self.session.take_hold() {
            Some(delay) => {
                self.hold_until = Some(Instant::now() + delay);
                true
            }
            None => false,
        }
    }

    /// The timeout for the session's current phase has passed.
    pub fn timed_out(&mut self, shared: &mut Shared) -> Next {
        log::info!(
            "timeout after {} from [{}]",
            phase(&self.session),
            self.conn.peer.ip()
        );
        self.with_host(shared, |session, host| session.timeout(host));
        self.drive(shared)
    }

    /// The connection is being closed: an unfinished message is dropped.
    pub fn close(&mut self, shared: &mut Shared) {
        self.with_host(shared, |session, host| session.abort(host));
    }

    fn feed(&mut self, input: &[u8], shared: &mut Shared) -> usize {
        self.with_host(shared, |session, host| session.input(input, host))
    }

    /// Runs `f` with the session and a host made of the other fields.
    fn with_host<R>(
        &mut self,
        shared: &mut Shared,
        f: impl FnOnce(&mut Session, &mut dyn Host) -> R,
    ) -> R {
        let mut host = SpoolHost {
            shared,
            incoming: &mut self.incoming,
            commit_requested: &mut self.commit_requested,
            peer: self.conn.peer,
        };
        f(&mut self.session, &mut host)
    }

    fn touch(&mut self, config: &Config) {
        let timeout = if self.session.in_data() {
            config.data_timeout
        } else {
            config.command_timeout
        };
        self.deadline = Instant::now() + timeout;
    }

    /// The peer went away: drop any unfinished message.
    fn lost(&mut self, shared: &mut Shared, error: Option<std::io::Error>) -> Next {
        if !self.session.is_closed() {
            let why = error.map(|e| format!(" ({e})")).unwrap_or_default();
            log::info!(
                "lost connection after {} from [{}]{why}",
                phase(&self.session),
                self.conn.peer.ip()
            );
        }
        self.close(shared);
        Next::Close
    }
}

impl Drop for Inbound {
    fn drop(&mut self) {
        debug_assert!(self.incoming.is_none() || !self.commit_requested);
    }
}

fn phase(session: &Session) -> &'static str {
    if session.in_data() {
        "DATA"
    } else {
        "command"
    }
}

/// The session's view of the server for one call.
struct SpoolHost<'s, 'a> {
    shared: &'s mut Shared<'a>,
    incoming: &'s mut Option<Incoming>,
    commit_requested: &'s mut bool,
    peer: SocketAddr,
}

impl Host for SpoolHost<'_, '_> {
    fn check_rcpt(&mut self, rcpt: &Mailbox) -> RcptCheck {
        self.shared.router.check_rcpt(rcpt)
    }

    fn queue_has_room(&mut self) -> bool {
        let config = self.shared.config;
        if self.shared.schedule.len() >= config.max_queue_messages {
            log::warn!(
                "queue full: {} messages (max_queue_messages)",
                self.shared.schedule.len()
            );
            return false;
        }
        self.shared.space.enough(config)
    }

    fn begin_message(&mut self, txn: &Transaction) -> Result<String, Reply> {
        let id = self.shared.ids.next();
        let envelope = Envelope {
            arrival: util::unix_now(),
            from: txn.from.clone(),
            rcpts: txn.rcpts.clone(),
        };
        match self.shared.spool.create(&id, &envelope) {
            Ok(incoming) => {
                log::info!("{id}: client=[{}]", self.peer.ip());
                self.shared.schedule.incoming_started();
                *self.incoming = Some(incoming);
                Ok(id)
            }
            Err(e) => {
                log::error!("cannot create spool file: {e}");
                Err(Reply::new(451, "4.3.0", "Error: queue file write error"))
            }
        }
    }

    fn message_data(&mut self, bytes: &[u8]) -> Result<(), Reply> {
        let Some(incoming) = self.incoming.as_mut() else {
            return Err(Reply::new(451, "4.3.0", "Error: queue file write error"));
        };
        incoming.write(bytes).map_err(|e| {
            log::error!("{}: spool write failed: {e}", incoming.id);
            Reply::new(451, "4.3.0", "Error: queue file write error")
        })
    }

    fn end_message(&mut self) {
        *self.commit_requested = true;
    }

    fn abort_message(&mut self) {
        if let Some(incoming) = self.incoming.take() {
            log::info!("{}: message discarded", incoming.id);
            self.shared.spool.discard(incoming);
            self.shared.schedule.incoming_ended();
        }
    }

    fn authenticate(
        &mut self,
        mechanism: Mechanism,
        user: &str,
        password: &[u8],
    ) -> Result<(), Duration> {
        let ip = self.peer.ip();
        let good = self
            .shared
            .passwords
            .is_some_and(|p| p.verify(user, password));
        if good {
            log::info!(
                "[{ip}]: sasl_method={}, sasl_username={user}",
                mechanism.name()
            );
            return Ok(());
        }
        // The form fail2ban's stock postfix filter (mode=auth) knows.
        log::warn!(
            "warning: unknown[{ip}]: SASL {} authentication failed: user=<{}>",
            mechanism.name(),
            user.escape_debug()
        );
        Err(self.shared.failures.failed(ip, Instant::now()))
    }

    fn owns_sender(&mut self, login: &str, sender: &Mailbox) -> bool {
        self.shared.router.sender_owned_by(sender, login)
    }
}

/// The spool's free space, asked of the file system at most once a second:
/// a burst of MAIL commands costs one statfs, not one each.
#[derive(Debug)]
pub struct SpaceCheck {
    checked: Option<Instant>,
    enough: bool,
}

impl SpaceCheck {
    pub fn new() -> SpaceCheck {
        SpaceCheck {
            checked: None,
            enough: true,
        }
    }

    fn enough(&mut self, config: &Config) -> bool {
        let now = Instant::now();
        if self
            .checked
            .is_some_and(|t| now.duration_since(t) < std::time::Duration::from_secs(1))
        {
            return self.enough;
        }
        self.checked = Some(now);
        self.enough = match free_space(&config.spool) {
            Ok(free) if free < config.min_free_space => {
                log::warn!("spool file system has {free} bytes free, under min_free_space");
                false
            }
            _ => true,
        };
        self.enough
    }
}

/// Bytes available to unprivileged users on the file system holding `path`.
fn free_space(path: &Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // statfs, not statvfs: glibc's statvfs may also read /proc/mounts for
    // mount flags, which are of no use here.
    // SAFETY: statfs writes into the zeroed struct we own; the path is a valid C string.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c_path.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let block = if st.f_frsize > 0 {
        st.f_frsize
    } else {
        st.f_bsize
    };
    Ok(st.f_bavail as u64 * block as u64)
}

//! One outbound SMTP connection: waits for the non-blocking connect, then
//! drives the sans-IO [`SmtpClient`] with bytes from its [`Conn`], starts TLS
//! when the client asks (or at once, for implicit TLS), and feeds it the
//! message body from the spool file in bounded chunks. Ends with the client's
//! outcome, or with why no SMTP session happened.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::time::{Duration, Instant};

use crate::deliver::remote::Connect;
use crate::net::conn::{Conn, Io};
use crate::smtp::client::{self, Event, BODY_LOW_WATER};

/// How a failed TLS handshake is reported, so the remote driver can retry in
/// plain text where TLS was only opportunistic.
pub const TLS_HANDSHAKE_FAILED: &str = "TLS handshake failed: ";

/// Body bytes read from the spool per `WantBody`.
const BODY_CHUNK: usize = BODY_LOW_WATER;

pub struct Outbound {
    pub conn: Conn,
    pub attempt: u64,
    setup: Box<Connect>,
    connected: bool,
    body: Option<File>,
    body_left: u64,
    outcome: Option<client::Outcome>,
    pub deadline: Instant,
    pub timer_at: Instant,
    pub generation: u64,
}

/// What the server does after driving an outbound connection.
pub enum OutNext {
    Wait,
    /// Close it and report this to the remote driver.
    Done(Result<client::Outcome, String>),
}

impl Outbound {
    pub fn new(
        conn: Conn,
        setup: Box<Connect>,
        connect_timeout: Duration,
        generation: u64,
    ) -> Outbound {
        let deadline = Instant::now() + connect_timeout;
        Outbound {
            conn,
            attempt: setup.attempt,
            body_left: setup.len,
            setup,
            connected: false,
            body: None,
            outcome: None,
            deadline,
            timer_at: deadline,
            generation,
        }
    }

    /// `host[ip]:port`, for log lines.
    pub fn relay(&self) -> String {
        format!(
            "{}[{}]:{}",
            self.setup.host,
            self.setup.addr.ip(),
            self.setup.addr.port()
        )
    }

    pub fn drive(&mut self, scratch: &mut [u8]) -> OutNext {
        if !self.connected {
            match self.finish_connect() {
                Ok(true) => {}
                Ok(false) => return OutNext::Wait,
                Err(e) => return OutNext::Done(Err(e.to_string())),
            }
        }
        loop {
            let mut progress = false;
            if self.conn.wants_flush() && self.conn.writable {
                if let Io::Error(e) = self.conn.flush() {
                    self.setup.client.closed();
                    log::debug!("{}: write failed: {e}", self.relay());
                }
            }
            while let Some(event) = self.setup.client.poll_event() {
                progress = true;
                match event {
                    Event::StartTls => {
                        let name = self.setup.server_name.clone();
                        match self.conn.start_client_tls(&self.setup.tls, name) {
                            Ok(()) => self.setup.client.tls_started(),
                            Err(e) => {
                                log::info!("{}: cannot start TLS: {e}", self.relay());
                                self.setup.client.closed();
                            }
                        }
                    }
                    Event::WantBody => self.feed_body(scratch),
                    Event::Done(outcome) => self.outcome = Some(outcome),
                }
            }
            let output = self.setup.client.output();
            if !output.is_empty() && self.conn.writable {
                match self.conn.write(output) {
                    Io::Done(n) => {
                        self.setup.client.output_sent(n);
                        if n > 0 {
                            // A large body to a slow link: the wait is for the
                            // peer to take data, not for a reply.
                            self.deadline = Instant::now() + self.setup.client.phase_timeout();
                            progress = true;
                        }
                    }
                    Io::WouldBlock => {}
                    Io::Closed | Io::Error(_) => {
                        self.setup.client.closed();
                        progress = true;
                    }
                }
            }
            if self.outcome.is_some()
                && (self.setup.client.output().is_empty() || !self.conn.writable)
                && !self.conn.wants_flush()
            {
                self.conn.close_notify();
                let outcome = self.outcome.take().expect("checked above");
                return OutNext::Done(Ok(outcome));
            }
            if self.outcome.is_none() && self.conn.can_read() {
                let handshaking = self.conn.handshaking();
                let read = self.conn.read(scratch);
                if handshaking {
                    match &read {
                        Io::Error(e) => {
                            return OutNext::Done(Err(format!("{TLS_HANDSHAKE_FAILED}{e}")))
                        }
                        Io::Closed => {
                            return OutNext::Done(Err(format!(
                                "{TLS_HANDSHAKE_FAILED}connection closed"
                            )))
                        }
                        _ => {}
                    }
                }
                match read {
                    Io::Done(n) => {
                        self.setup.client.input(&scratch[..n]);
                        self.deadline = Instant::now() + self.setup.client.phase_timeout();
                        progress = true;
                    }
                    Io::WouldBlock => {}
                    Io::Closed => {
                        self.setup.client.closed();
                        progress = true;
                    }
                    Io::Error(e) => {
                        log::info!("{}: {e}", self.relay());
                        self.setup.client.closed();
                        progress = true;
                    }
                }
            }
            if !progress {
                return OutNext::Wait;
            }
        }
    }

    /// The phase's time ran out.
    pub fn timed_out(&mut self, scratch: &mut [u8]) -> OutNext {
        if !self.connected {
            return OutNext::Done(Err("connection timed out".into()));
        }
        self.setup.client.timeout();
        match self.drive(scratch) {
            OutNext::Wait => {
                // The QUIT could not go out; the outcome is known anyway.
                match self.outcome.take() {
                    Some(o) => OutNext::Done(Ok(o)),
                    None => OutNext::Done(Err("timed out".into())),
                }
            }
            done => done,
        }
    }

    /// Ok(true) once the TCP connection is up (TLS started for implicit TLS).
    fn finish_connect(&mut self) -> io::Result<bool> {
        if !self.conn.writable {
            return Ok(false);
        }
        if let Some(e) = self.conn.stream.take_error()? {
            return Err(e);
        }
        match self.conn.stream.peer_addr() {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(false),
            Err(e) => return Err(e),
        }
        self.connected = true;
        if self.setup.implicit_tls {
            let name = self.setup.server_name.clone();
            self.conn.start_client_tls(&self.setup.tls, name)?;
        }
        self.deadline = Instant::now() + self.setup.client.phase_timeout();
        Ok(true)
    }

    /// Reads the next chunk of the message from the spool file for the client.
    /// `scratch` is the server's shared read buffer (16 KiB, a whole chunk):
    /// no allocation per chunk.
    fn feed_body(&mut self, scratch: &mut [u8]) {
        if self.body.is_none() {
            let opened = File::open(&self.setup.path).and_then(|mut f| {
                f.seek(SeekFrom::Start(self.setup.offset))?;
                Ok(f)
            });
            match opened {
                Ok(f) => self.body = Some(f),
                Err(e) => {
                    log::error!("cannot read queue file {}: {e}", self.setup.path.display());
                    return self.setup.client.closed();
                }
            }
        }
        let Some(file) = self.body.as_mut() else {
            return;
        };
        let want = self.body_left.min(BODY_CHUNK.min(scratch.len()) as u64) as usize;
        let chunk = &mut scratch[..want];
        match file.read_exact(chunk) {
            Ok(()) => {
                self.body_left -= want as u64;
                self.setup.client.body(chunk, self.body_left == 0);
            }
            Err(e) => {
                log::error!("cannot read queue file {}: {e}", self.setup.path.display());
                self.setup.client.closed();
            }
        }
    }
}

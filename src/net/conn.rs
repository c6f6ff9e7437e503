//! A non-blocking connection for edge-triggered polling, plaintext or TLS:
//! reads and writes until `WouldBlock`, and remembers readiness so a caller
//! that stops reading (its buffers are full) can resume later without waiting
//! for a new edge. With TLS, the same calls move plaintext through a rustls
//! session; records the session owes the peer (handshake, alerts) go out by
//! [`Conn::flush`], and at most one batch of records waits at a time.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, Connection, ServerConfig, ServerConnection};

use super::tls::TlsInfo;

/// Plaintext taken into the TLS session per write: one full record.
const TLS_WRITE_CHUNK: usize = 16 * 1024;

/// The result of one socket operation, as a small enum rather than booleans.
#[derive(Debug)]
pub enum Io {
    /// This many bytes moved.
    Done(usize),
    /// Nothing can move until the next readiness edge.
    WouldBlock,
    /// The peer closed (read side) cleanly.
    Closed,
    Error(io::Error),
}

pub struct Conn {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    /// Readiness reported by the poll and not yet used up by a `WouldBlock`.
    pub readable: bool,
    pub writable: bool,
    tls: Option<Box<Connection>>,
    /// The peer's end of the TCP stream has been read.
    eof: bool,
    /// The TLS session holds decrypted input not yet read: the socket may be
    /// drained, but a read would still return data.
    buffered: bool,
}

impl Conn {
    pub fn new(stream: TcpStream, peer: SocketAddr) -> Conn {
        // Replies are small and latency matters more than packet count.
        let _ = stream.set_nodelay(true);
        Conn {
            stream,
            peer,
            // A fresh socket may already hold data; try before waiting.
            readable: true,
            writable: true,
            tls: None,
            eof: false,
            buffered: false,
        }
    }

    /// Everything from now on is TLS: the next bytes read must be a
    /// ClientHello. Bytes the caller read before are its own to discard.
    pub fn start_tls(&mut self, config: &Arc<ServerConfig>) -> io::Result<()> {
        let tls = ServerConnection::new(config.clone()).map_err(io::Error::other)?;
        self.tls = Some(Box::new(Connection::Server(tls)));
        Ok(())
    }

    /// The client side of [`Conn::start_tls`], for outbound mail: the next
    /// bytes written are our ClientHello for `server`.
    pub fn start_client_tls(
        &mut self,
        config: &Arc<ClientConfig>,
        server: ServerName<'static>,
    ) -> io::Result<()> {
        let tls = ClientConnection::new(config.clone(), server).map_err(io::Error::other)?;
        self.tls = Some(Box::new(Connection::Client(tls)));
        Ok(())
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// True while a TLS handshake is under way: it needs reading even when
    /// the session above wants no input.
    pub fn handshaking(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.is_handshaking())
    }

    /// The protocol and cipher, once the handshake is done.
    pub fn tls_info(&self) -> Option<TlsInfo> {
        match &self.tls {
            Some(t) if !t.is_handshaking() => Some(TlsInfo::of(t)),
            _ => None,
        }
    }

    /// True if a read may return data without a new readiness event.
    pub fn can_read(&self) -> bool {
        self.readable || self.buffered
    }

    /// True while TLS records wait to be written.
    pub fn wants_flush(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.wants_write())
    }

    /// Reads plaintext into `buf`.
    pub fn read(&mut self, buf: &mut [u8]) -> Io {
        if self.tls.is_none() {
            return self.read_plain(buf);
        }
        loop {
            let Some(tls) = self.tls.as_mut() else {
                return Io::Closed;
            };
            self.buffered = false;
            match tls.reader().read(buf) {
                Ok(0) => return Io::Closed,
                Ok(n) => {
                    self.buffered = n == buf.len();
                    return Io::Done(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Io::Closed,
                Err(e) => return Io::Error(e),
            }
            if self.eof {
                return Io::Closed;
            }
            if !self.readable {
                return Io::WouldBlock;
            }
            match tls.read_tls(&mut self.stream) {
                Ok(0) => self.eof = true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    return Io::WouldBlock;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Io::Error(e),
            }
            if let Err(e) = tls.process_new_packets() {
                // Send the alert rustls queued, so the peer learns why.
                let _ = self.flush();
                return Io::Error(io::Error::new(io::ErrorKind::InvalidData, e));
            }
            if let Io::Error(e) = self.flush() {
                return Io::Error(e);
            }
        }
    }

    /// Reads once. A read that did not fill `buf` drained the socket: under
    /// edge-triggered polling any later data brings a new event, so readiness
    /// is dropped without spending a system call on WouldBlock.
    fn read_plain(&mut self, buf: &mut [u8]) -> Io {
        loop {
            match self.stream.read(buf) {
                Ok(0) => return Io::Closed,
                Ok(n) => {
                    if n < buf.len() {
                        self.readable = false;
                    }
                    return Io::Done(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    return Io::WouldBlock;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Io::Error(e),
            }
        }
    }

    /// Writes as much of `data` (plaintext) as can go now. Under TLS, data is
    /// taken only when earlier records are out, so the session's buffer
    /// stays bounded by one chunk.
    pub fn write(&mut self, data: &[u8]) -> Io {
        let Some(tls) = self.tls.as_mut() else {
            return write_all(&mut self.stream, &mut self.writable, data);
        };
        if tls.wants_write() {
            match self.flush() {
                Io::Error(e) => return Io::Error(e),
                _ if self.wants_flush() => return Io::WouldBlock,
                _ => {}
            }
        }
        let Some(tls) = self.tls.as_mut() else {
            return Io::WouldBlock;
        };
        let chunk = &data[..data.len().min(TLS_WRITE_CHUNK)];
        let taken = match tls.writer().write(chunk) {
            Ok(n) => n,
            Err(e) => return Io::Error(e),
        };
        match self.flush() {
            Io::Error(e) => Io::Error(e),
            _ => Io::Done(taken),
        }
    }

    /// Writes out TLS records that are waiting. Plaintext connections have
    /// none.
    pub fn flush(&mut self) -> Io {
        let Some(tls) = self.tls.as_mut() else {
            return Io::Done(0);
        };
        let mut written = 0;
        while tls.wants_write() && self.writable {
            match tls.write_tls(&mut self.stream) {
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Io::Error(e),
            }
        }
        Io::Done(written)
    }

    /// Says goodbye at the TLS level before the socket closes, if there is
    /// room for it; a plain connection needs nothing.
    pub fn close_notify(&mut self) {
        if let Some(tls) = self.tls.as_mut() {
            tls.send_close_notify();
            let _ = self.flush();
        }
    }
}

fn write_all(stream: &mut TcpStream, writable: &mut bool, data: &[u8]) -> Io {
    let mut written = 0;
    while written < data.len() {
        match stream.write(&data[written..]) {
            Ok(0) => return Io::Error(io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                *writable = false;
                break;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Io::Error(e),
        }
    }
    if written == 0 && !data.is_empty() {
        Io::WouldBlock
    } else {
        Io::Done(written)
    }
}

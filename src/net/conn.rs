//! A non-blocking connection for edge-triggered polling: reads and writes until
//! `WouldBlock`, and remembers readiness so a caller that stops reading (its
//! buffers are full) can resume later without waiting for a new edge.

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use mio::net::TcpStream;

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
        }
    }

    /// Reads once into `buf`. A read that did not fill `buf` drained the
    /// socket: under edge-triggered polling any later data brings a new event,
    /// so readiness is dropped without spending a system call on WouldBlock.
    pub fn read(&mut self, buf: &mut [u8]) -> Io {
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

    /// Writes as much of `data` as the socket takes now.
    pub fn write(&mut self, data: &[u8]) -> Io {
        let mut written = 0;
        while written < data.len() {
            match self.stream.write(&data[written..]) {
                Ok(0) => return Io::Error(io::ErrorKind::WriteZero.into()),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.writable = false;
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
}

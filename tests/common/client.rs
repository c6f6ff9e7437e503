//! A byte-exact SMTP client: it writes exactly the bytes a test gives it and
//! checks the reply syntax strictly (CRLF line ends, consistent codes in
//! multi-line replies), so protocol tests can see what a forgiving client
//! library would hide. It runs over a plain `TcpStream` or, after STARTTLS or
//! on an smtps port, over a rustls stream (see `tls.rs`): the same reply
//! reading for both.

use std::fmt;
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::TIMEOUT;

/// One SMTP reply: its code and the text of each line (after `NNN-` / `NNN `).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    /// The enhanced status code: the first word of the first line, if it looks like one.
    pub fn enhanced(&self) -> &str {
        let first = self.lines.first().map(String::as_str).unwrap_or("");
        let word = first.split(' ').next().unwrap_or("");
        let parts: Vec<&str> = word.split('.').collect();
        if parts.len() == 3
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        {
            word
        } else {
            ""
        }
    }

    /// Asserts the code and (unless `enh` is empty) the enhanced status code,
    /// which must also agree with the code's class (RFC 3463).
    pub fn assert(&self, code: u16, enh: &str) -> &Reply {
        assert_eq!(self.code, code, "unexpected reply: {self}");
        if !enh.is_empty() {
            assert_eq!(self.enhanced(), enh, "unexpected enhanced code in: {self}");
        }
        if code != 220 && code != 354 && !self.enhanced().is_empty() {
            let class = self.enhanced().as_bytes()[0];
            assert_eq!(
                class,
                b'0' + (code / 100) as u8,
                "class mismatch in: {self}"
            );
        }
        self
    }

    pub fn text(&self) -> String {
        self.lines.join("\n")
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, l) in self.lines.iter().enumerate() {
            let sep = if i + 1 == self.lines.len() { ' ' } else { '-' };
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{}{}{}", self.code, sep, l)?;
        }
        Ok(())
    }
}

/// What a `Client` talks over: a byte stream with a TCP socket under it (for
/// timeouts and socket options).
pub trait Transport: Read + Write {
    fn tcp(&self) -> &TcpStream;
}

impl Transport for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

/// A raw connection to the server: plain TCP unless a TLS stream is given.
pub struct Client<S: Transport = TcpStream> {
    /// Reads go through the buffer; writes go to the stream under it.
    reader: BufReader<S>,
}

impl Client<TcpStream> {
    /// Connects; reads nothing (the greeting is the first reply).
    pub fn connect(port: u16) -> Client {
        Client::connect_addr(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    pub fn connect_addr(addr: SocketAddr) -> Client {
        Client::over(connect_tcp(addr))
    }

    /// Gives back the socket once no reply byte is left unread: a byte the
    /// server sent before it should have (say, after its `220` to STARTTLS)
    /// fails the test instead of being lost.
    pub fn into_tcp(self) -> TcpStream {
        let left = self.reader.buffer();
        assert!(
            left.is_empty(),
            "server sent bytes nobody asked for: {:?}",
            String::from_utf8_lossy(left)
        );
        self.reader.into_inner()
    }
}

/// A TCP connection to `addr` with `TIMEOUT` on every read and write.
pub fn connect_tcp(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect to picomta");
    stream
        .set_read_timeout(Some(TIMEOUT))
        .expect("read timeout");
    stream
        .set_write_timeout(Some(TIMEOUT))
        .expect("write timeout");
    stream
}

impl<S: Transport> Client<S> {
    /// A client over an already connected stream (whose socket has timeouts).
    pub fn over(stream: S) -> Client<S> {
        Client {
            reader: BufReader::new(stream),
        }
    }

    /// The TCP socket under the client.
    pub fn stream(&self) -> &TcpStream {
        self.reader.get_ref().tcp()
    }

    /// The transport itself (for a TLS stream: its connection state).
    pub fn transport(&self) -> &S {
        self.reader.get_ref()
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.send_lossy(bytes).expect("write to picomta");
    }

    /// Writes, ignoring errors (the server may already have closed).
    pub fn send_lossy(&mut self, bytes: &[u8]) -> io::Result<()> {
        let s = self.reader.get_mut();
        s.write_all(bytes)?;
        s.flush()
    }

    /// Reads one reply; `Ok(None)` on a clean close before any byte of it.
    pub fn read_reply(&mut self) -> io::Result<Option<Reply>> {
        let mut code = None;
        let mut lines = Vec::new();
        loop {
            let mut raw = Vec::new();
            let n = self.reader.read_until(b'\n', &mut raw)?;
            if n == 0 {
                if lines.is_empty() {
                    return Ok(None);
                }
                return Err(io::Error::new(
                    ErrorKind::UnexpectedEof,
                    "close inside a reply",
                ));
            }
            let line = String::from_utf8(raw)
                .map_err(|_| io::Error::new(ErrorKind::InvalidData, "reply is not UTF-8"))?;
            let Some(body) = line.strip_suffix("\r\n") else {
                return Err(io::Error::new(
                    ErrorKind::InvalidData,
                    format!("reply line without CRLF: {line:?}"),
                ));
            };
            let bytes = body.as_bytes();
            if bytes.len() < 3 || !bytes[..3].iter().all(u8::is_ascii_digit) {
                return Err(io::Error::new(
                    ErrorKind::InvalidData,
                    format!("bad reply line: {line:?}"),
                ));
            }
            let c: u16 = body[..3]
                .parse()
                .map_err(|_| io::Error::from(ErrorKind::InvalidData))?;
            if *code.get_or_insert(c) != c {
                return Err(io::Error::new(
                    ErrorKind::InvalidData,
                    format!("code changes inside a reply: {line:?}"),
                ));
            }
            let (last, text) = match bytes.get(3) {
                None => (true, ""),
                Some(b' ') => (true, &body[4..]),
                Some(b'-') => (false, &body[4..]),
                Some(_) => {
                    return Err(io::Error::new(
                        ErrorKind::InvalidData,
                        format!("bad reply line: {line:?}"),
                    ))
                }
            };
            lines.push(text.to_string());
            if last {
                return Ok(Some(Reply { code: c, lines }));
            }
        }
    }

    /// Reads one reply; panics on close, timeout or malformed reply.
    pub fn reply(&mut self) -> Reply {
        match self.read_reply() {
            Ok(Some(r)) => r,
            Ok(None) => panic!("connection closed while waiting for a reply"),
            Err(e) => panic!("reading a reply: {e}"),
        }
    }

    /// Sends `line` + CRLF and reads the reply.
    pub fn cmd(&mut self, line: &str) -> Reply {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// Sends `line` + CRLF and asserts the reply's code and enhanced code.
    pub fn ok(&mut self, line: &str, code: u16, enh: &str) -> Reply {
        let r = self.cmd(line);
        assert_eq!(r.code, code, "after {line:?}: {r}");
        r.assert(code, enh);
        r
    }

    pub fn ehlo(&mut self) -> Reply {
        self.ok("EHLO client.test", 250, "")
    }

    /// One DATA transaction: MAIL, every RCPT and DATA must succeed; `message`
    /// (CRLF lines, not yet dot-stuffed) is stuffed and ended with `.`.
    /// Returns the reply to the final dot.
    pub fn transaction(&mut self, from: &str, rcpts: &[&str], message: &[u8]) -> Reply {
        self.ok(&format!("MAIL FROM:<{from}>"), 250, "");
        for r in rcpts {
            self.ok(&format!("RCPT TO:<{r}>"), 250, "");
        }
        self.ok("DATA", 354, "");
        let mut data = dot_stuff(message);
        data.extend_from_slice(b".\r\n");
        self.send(&data);
        self.reply()
    }

    /// Like `transaction`, and asserts the message was queued; returns the queue id.
    pub fn deliver(&mut self, from: &str, rcpts: &[&str], message: &[u8]) -> String {
        let r = self.transaction(from, rcpts, message);
        queue_id(&r)
    }

    /// Asserts the server closes the connection (EOF or reset) with no more
    /// bytes, within `TIMEOUT`.
    pub fn expect_closed(&mut self) {
        let mut buf = [0u8; 4096];
        match self.reader.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => panic!(
                "expected the connection to close, got {:?}",
                String::from_utf8_lossy(&buf[..n])
            ),
            // A reset, or (over TLS) a close without close_notify.
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionReset
                        | ErrorKind::ConnectionAborted
                        | ErrorKind::UnexpectedEof
                ) => {}
            Err(e) => panic!("expected the connection to close, got {e}"),
        }
    }

    /// Asserts that nothing arrives for `wait` (no stray replies pending).
    pub fn expect_silence(&mut self, wait: Duration) {
        self.stream()
            .set_read_timeout(Some(wait))
            .expect("read timeout");
        let mut buf = [0u8; 4096];
        let got = self.reader.read(&mut buf);
        self.stream()
            .set_read_timeout(Some(TIMEOUT))
            .expect("read timeout");
        match got {
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Ok(0) => panic!("connection closed, expected it to stay open and silent"),
            Ok(n) => panic!(
                "unexpected bytes from server: {:?}",
                String::from_utf8_lossy(&buf[..n])
            ),
            Err(e) => panic!("expected silence, got {e}"),
        }
    }
}

/// Dot-stuffs CRLF text (RFC 5321 4.5.2) and makes sure it ends with CRLF.
pub fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 50 + 2);
    let mut at_line_start = true;
    for (i, &b) in message.iter().enumerate() {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n' && i > 0 && message[i - 1] == b'\r';
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Asserts `r` is `250 2.0.0 Ok: queued as <ID>` and returns ID ([0-9A-F]+).
pub fn queue_id(r: &Reply) -> String {
    r.assert(250, "2.0.0");
    let text = r.lines.last().map(String::as_str).unwrap_or("");
    let Some(pos) = text.find("queued as ") else {
        panic!("no 'queued as' in {r}");
    };
    let id: String = text[pos + "queued as ".len()..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    assert!(
        !id.is_empty()
            && id
                .chars()
                .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c)),
        "queue id {id:?} is not [0-9A-F]+ in {r}"
    );
    id
}

/// Reads every byte until the peer closes (bounded by the read timeout).
pub fn drain(stream: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let _ = stream.read_to_end(&mut all);
    all
}

//! SMTP replies: a code, an enhanced status code (RFC 3463) and text, and their
//! wire form, including multi-line replies such as the EHLO keyword list; and
//! the other direction, reading the replies of a remote server (outbound
//! client), bounded against hostile servers.

use std::fmt;
use std::fmt::Write as _;

/// One reply as the server sends it. `lines` has at least one entry; every line
/// carries the same code and enhanced status, as RFC 2034 asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// Enhanced status code such as "5.5.1"; empty for replies that have none
    /// (the greeting, EHLO lines).
    pub status: &'static str,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn new(code: u16, status: &'static str, text: impl Into<String>) -> Reply {
        Reply {
            code,
            status,
            lines: vec![text.into()],
        }
    }

    pub fn multi(code: u16, lines: Vec<String>) -> Reply {
        debug_assert!(!lines.is_empty(), "a reply has at least one line");
        Reply {
            code,
            status: "",
            lines,
        }
    }

    /// Appends the wire form (`250-…` continuation lines, `250 …` last line).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let mut s = String::new();
        let last = self.lines.len() - 1;
        for (i, line) in self.lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            // Writing into a String cannot fail.
            let _ = write!(s, "{}{}", self.code, sep);
            if !self.status.is_empty() {
                s.push_str(self.status);
                s.push(' ');
            }
            s.push_str(line);
            s.push_str("\r\n");
        }
        out.extend_from_slice(s.as_bytes());
    }
}

/// Longest reply line from a server, CRLF included (RFC 5321 4.5.3.1.5).
pub const MAX_REPLY_LINE: usize = 512;
/// Most lines in one reply; an EHLO reply has a dozen.
pub const MAX_REPLY_LINES: usize = 100;
/// Most reply text kept per reply; the text of lines beyond it is dropped (they
/// are still read and checked), so one reply holds at most this much memory.
pub const MAX_REPLY_TEXT: usize = 4096;

/// A reply read from a remote server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerReply {
    pub code: u16,
    /// The enhanced status code of the first line ("5.1.1"), or empty when the
    /// server sent none (or one whose class does not match the code).
    pub enhanced: String,
    /// The text of each line, without code, separator and enhanced status code;
    /// control characters replaced by `?`. Lines past [`MAX_REPLY_TEXT`] are left out.
    pub lines: Vec<String>,
}

impl ServerReply {
    /// The lines joined by spaces, for logs and delivery reports.
    pub fn text(&self) -> String {
        self.lines.join(" ")
    }

    /// 2 for success, 3 for "go on", 4 for temporary and 5 for permanent failures.
    pub fn class(&self) -> u16 {
        self.code / 100
    }
}

/// `250 2.0.0 Ok: queued as X`, the form log lines quote.
impl fmt::Display for ServerReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if !self.enhanced.is_empty() {
            write!(f, " {}", self.enhanced)?;
        }
        let text = self.text();
        if !text.is_empty() {
            write!(f, " {text}")?;
        }
        Ok(())
    }
}

/// Why the server's bytes are not a reply; the session cannot go on after one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyError {
    /// A line longer than [`MAX_REPLY_LINE`].
    LineTooLong,
    /// More than [`MAX_REPLY_LINES`] lines in one reply.
    TooManyLines,
    /// Not `NNN`, `NNN text` or `NNN-text`, or a continuation with another code.
    Malformed,
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReplyError::LineTooLong => "reply line too long",
            ReplyError::TooManyLines => "too many reply lines",
            ReplyError::Malformed => "malformed reply",
        })
    }
}

/// Reads replies from a server's byte stream in any chunking. It holds at most
/// one partial line ([`MAX_REPLY_LINE`]) and one reply's text ([`MAX_REPLY_TEXT`]).
#[derive(Debug, Default)]
pub struct ReplyReader {
    /// The line being received, without its LF.
    line: Vec<u8>,
    /// Code of the reply's first line, once seen.
    code: Option<u16>,
    enhanced: String,
    lines: Vec<String>,
    count: usize,
    text_len: usize,
}

impl ReplyReader {
    /// Consumes `input` up to the end of the first complete reply in it. Returns
    /// the bytes consumed and, when a reply ended (or an error was found), the
    /// reply. Call again with the rest of the input for the next reply.
    pub fn read(&mut self, input: &[u8]) -> (usize, Option<Result<ServerReply, ReplyError>>) {
        let mut pos = 0;
        while pos < input.len() {
            let rest = &input[pos..];
            let (part, used, complete) = match rest.iter().position(|&b| b == b'\n') {
                Some(nl) => (&rest[..nl], nl + 1, true),
                None => (rest, rest.len(), false),
            };
            pos += used;
            // The LF (and the CR before it) count towards the limit.
            if self.line.len() + part.len() + usize::from(complete) > MAX_REPLY_LINE {
                self.reset();
                return (pos, Some(Err(ReplyError::LineTooLong)));
            }
            self.line.extend_from_slice(part);
            if !complete {
                break;
            }
            let line = std::mem::take(&mut self.line);
            let ended = self.end_line(&line);
            self.line = line;
            self.line.clear();
            match ended {
                Ok(false) => {}
                Ok(true) => return (pos, Some(Ok(self.take()))),
                Err(e) => {
                    self.reset();
                    return (pos, Some(Err(e)));
                }
            }
        }
        (pos, None)
    }

    /// Forgets a partial reply (after STARTTLS, bytes from before TLS are void).
    pub fn reset(&mut self) {
        self.line.clear();
        self.code = None;
        self.enhanced.clear();
        self.lines.clear();
        self.count = 0;
        self.text_len = 0;
    }

    /// Takes one whole line (LF removed); true when it was the reply's last.
    fn end_line(&mut self, line: &[u8]) -> Result<bool, ReplyError> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let (code, last, text) = split_line(line).ok_or(ReplyError::Malformed)?;
        if self.code.is_some_and(|c| c != code) {
            return Err(ReplyError::Malformed);
        }
        self.count += 1;
        if self.count > MAX_REPLY_LINES {
            return Err(ReplyError::TooManyLines);
        }
        let (enhanced, text) = split_enhanced(code, text);
        if self.code.is_none() {
            self.code = Some(code);
            self.enhanced = String::from_utf8_lossy(enhanced).into_owned();
        }
        // Keep lines while they fit, and none after the first that does not.
        if self.lines.len() + 1 == self.count && self.text_len + text.len() <= MAX_REPLY_TEXT {
            self.text_len += text.len();
            self.lines.push(clean_text(text));
        }
        Ok(last)
    }

    fn take(&mut self) -> ServerReply {
        let reply = ServerReply {
            code: self.code.unwrap_or_default(),
            enhanced: std::mem::take(&mut self.enhanced),
            lines: std::mem::take(&mut self.lines),
        };
        self.reset();
        reply
    }
}

/// `NNN`, `NNN text` (last line) or `NNN-text` (more follow): the code, whether
/// this is the last line, and the text. RFC 5321 4.2: the first digit is 2 to 5,
/// the second 0 to 5.
fn split_line(line: &[u8]) -> Option<(u16, bool, &[u8])> {
    let digits = line.get(..3)?;
    let ok = matches!(digits[0], b'2'..=b'5')
        && matches!(digits[1], b'0'..=b'5')
        && digits[2].is_ascii_digit();
    if !ok {
        return None;
    }
    let code = digits
        .iter()
        .fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
    match line.get(3) {
        None => Some((code, true, &[])),
        Some(b' ') => Some((code, true, &line[4..])),
        Some(b'-') => Some((code, false, &line[4..])),
        Some(_) => None,
    }
}

/// Splits an RFC 3463 status code (`class.subject.detail`, 1 to 3 digits each,
/// class matching the reply code's) off the front of a line's text.
fn split_enhanced(code: u16, text: &[u8]) -> (&[u8], &[u8]) {
    let end = text.iter().position(|&b| b == b' ').unwrap_or(text.len());
    let candidate = &text[..end];
    let mut parts = candidate.split(|&b| b == b'.');
    let class_ok = parts.next() == Some(&[b'0' + (code / 100) as u8][..]);
    let number = |p: Option<&[u8]>| {
        p.is_some_and(|p| (1..=3).contains(&p.len()) && p.iter().all(u8::is_ascii_digit))
    };
    if class_ok && number(parts.next()) && number(parts.next()) && parts.next().is_none() {
        let rest = &text[end..];
        (candidate, rest.strip_prefix(b" ").unwrap_or(rest))
    } else {
        (&[], text)
    }
}

/// Reply text made safe for log lines and reports: UTF-8 (invalid sequences
/// replaced), tabs as spaces, other control characters as `?`.
fn clean_text(text: &[u8]) -> String {
    String::from_utf8_lossy(text)
        .chars()
        .map(|c| match c {
            '\t' => ' ',
            c if c.is_control() => '?',
            c => c,
        })
        .collect()
}

#[cfg(test)]
#[path = "reply_tests.rs"]
mod tests;

//! Reading the message `sendmail` gets on stdin: CRLF line ends become LF (the
//! spool's form), a line with a lone `.` ends the input unless `-i`, the
//! header section is fixed up (`headers.rs`), and the body is streamed into
//! the drop file in bounded pieces, within `max_message_size`.

use std::io::{self, BufRead};

use super::headers::{Additions, HeaderSection, Line, MAX_HEADER_SECTION};
use crate::queue::drop::DropFile;

/// Longest piece of a body line handled at once; longer lines pass through
/// in pieces.
const MAX_PIECE: usize = 64 * 1024;

#[derive(Debug)]
pub enum Error {
    /// The message or its addresses are unusable; the reason in words.
    Data(String),
    /// Larger than this many bytes.
    TooBig(u64),
    Read(io::Error),
    /// The drop file could not be created.
    Create(io::Error),
    Write(io::Error),
}

pub struct Message {
    pub ignore_dots: bool,
    pub max_size: u64,
    pub extract_recipients: bool,
    pub additions: Additions,
}

impl Message {
    /// Reads the message from `input`. Once the header section is read,
    /// `open` gets the recipients named in it (with `-t`) and returns the
    /// drop file to write into. Returns it, written but not committed.
    pub fn read(
        &self,
        input: &mut impl BufRead,
        open: impl FnOnce(&[String]) -> Result<DropFile, Error>,
    ) -> Result<DropFile, Error> {
        let mut section = HeaderSection::default();
        let mut line = Vec::new();
        let mut first_body_line = None;
        let mut ended = false;
        loop {
            if !next_piece(input, &mut line, MAX_HEADER_SECTION + 1)? || self.is_end(&line) {
                ended = true;
                break;
            }
            match section.line(&line) {
                Ok(Line::Header) => {}
                Ok(Line::End) => break,
                Ok(Line::Body) => {
                    first_body_line = Some(std::mem::take(&mut line));
                    break;
                }
                Err(_) => {
                    return Err(Error::Data(format!(
                        "the header section is longer than {MAX_HEADER_SECTION} bytes"
                    )))
                }
            }
        }
        let finished = section.finish(self.extract_recipients, &self.additions);
        let mut drop = open(&finished.recipients)?;
        let mut size = 0;
        let mut write = |drop: &mut DropFile, bytes: &[u8]| {
            size += bytes.len() as u64;
            if size > self.max_size {
                return Err(Error::TooBig(self.max_size));
            }
            drop.write(bytes).map_err(Error::Write)
        };
        write(&mut drop, &finished.bytes)?;
        let mut at_line_start = true;
        if let Some(first) = first_body_line {
            write(&mut drop, &first)?;
            at_line_start = first.ends_with(b"\n");
        }
        while !ended {
            ended =
                !next_piece(input, &mut line, MAX_PIECE)? || (at_line_start && self.is_end(&line));
            if !ended {
                write(&mut drop, &line)?;
                at_line_start = line.ends_with(b"\n");
            }
        }
        if !at_line_start {
            write(&mut drop, b"\n")?;
        }
        Ok(drop)
    }

    /// A lone dot ends the input, unless `-i`.
    fn is_end(&self, line: &[u8]) -> bool {
        !self.ignore_dots && (line == b".\n" || line == b".")
    }
}

/// Reads up to and including the next LF, or `cap` bytes, whichever comes
/// first, with a CRLF end made LF. False at the end of the input.
fn next_piece(input: &mut impl BufRead, piece: &mut Vec<u8>, cap: usize) -> Result<bool, Error> {
    piece.clear();
    loop {
        let buf = match input.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::Read(e)),
        };
        if buf.is_empty() {
            return Ok(!piece.is_empty());
        }
        let room = cap - piece.len();
        let take = match buf.iter().position(|&b| b == b'\n') {
            Some(nl) if nl < room => nl + 1,
            _ => buf.len().min(room),
        };
        piece.extend_from_slice(&buf[..take]);
        input.consume(take);
        if piece.ends_with(b"\r\n") {
            piece.truncate(piece.len() - 2);
            piece.push(b'\n');
        }
        if piece.ends_with(b"\n") || piece.len() >= cap {
            return Ok(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::envelope::Envelope;
    use crate::smtp::address::{Mailbox, ReversePath};

    fn message(ignore_dots: bool, extract: bool, max_size: u64) -> Message {
        Message {
            ignore_dots,
            max_size,
            extract_recipients: extract,
            additions: Additions {
                date: "D".into(),
                from: "F".into(),
                message_id: "<M>".into(),
                domain: "x.test".into(),
            },
        }
    }

    /// Runs `message` over `input`; returns what was written after the
    /// envelope head, and the header recipients.
    fn run(m: &Message, input: &[u8]) -> Result<(String, Vec<String>), Error> {
        let spool = std::env::temp_dir().join(format!(
            "picomta-input-{}-{}",
            std::process::id(),
            util_counter()
        ));
        let mut seen = Vec::new();
        let result = m.read(&mut io::BufReader::with_capacity(7, input), |rcpts| {
            seen = rcpts.to_vec();
            let envelope = Envelope {
                arrival: 1,
                from: ReversePath::Null,
                rcpts: vec![Mailbox {
                    local: "a".into(),
                    domain: "x.test".into(),
                }],
            };
            DropFile::create(&spool, &envelope).map_err(Error::Create)
        });
        let out = result.map(|drop| {
            let name = drop.commit().unwrap();
            let bytes = std::fs::read(crate::queue::drop::dir(&spool).join(name)).unwrap();
            let (_, offset) = Envelope::parse(&bytes).unwrap();
            String::from_utf8_lossy(&bytes[offset..]).into_owned()
        });
        let _ = std::fs::remove_dir_all(&spool);
        out.map(|text| (text, seen))
    }

    fn util_counter() -> usize {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        N.fetch_add(1, Ordering::Relaxed)
    }

    #[test]
    fn crlf_becomes_lf_and_a_lone_dot_ends_the_input() {
        let m = message(false, false, 1 << 20);
        let (out, _) = run(&m, b"Subject: s\r\n\r\nline\r\n.\r\nnot read\r\n").unwrap();
        assert_eq!(
            out,
            "Subject: s\nDate: D\nFrom: F\nMessage-ID: <M>\n\nline\n"
        );
        // Without a header section; no final newline.
        let (out, _) = run(&m, b"hello\nworld").unwrap();
        assert_eq!(out, "Date: D\nFrom: F\nMessage-ID: <M>\n\nhello\nworld\n");
        // A dot in the headers ends the message too.
        let (out, _) = run(&m, b"Subject: s\n.\nbody\n").unwrap();
        assert_eq!(out, "Subject: s\nDate: D\nFrom: F\nMessage-ID: <M>\n\n");
    }

    #[test]
    fn with_i_dots_are_text() {
        let m = message(true, false, 1 << 20);
        let (out, _) = run(&m, b"Subject: s\n\n.\n..\n.").unwrap();
        assert!(out.ends_with("\n\n.\n..\n.\n"), "{out:?}");
    }

    #[test]
    fn t_hands_over_the_header_recipients() {
        let m = message(false, true, 1 << 20);
        let (out, rcpts) = run(&m, b"To: a@x.test\nBcc: b@x.test\nSubject: s\n\nhi\n").unwrap();
        assert_eq!(rcpts, ["a@x.test", "b@x.test"]);
        assert!(!out.contains("Bcc") && !out.contains("b@x.test"), "{out}");
    }

    #[test]
    fn size_and_header_limits() {
        let m = message(true, false, 100);
        let big = format!("Subject: s\n\n{}\n", "x".repeat(200));
        assert!(matches!(run(&m, big.as_bytes()), Err(Error::TooBig(100))));
        let m = message(true, false, 1 << 30);
        let long = format!("Subject: {}\n\n", "y".repeat(MAX_HEADER_SECTION + 10));
        assert!(matches!(run(&m, long.as_bytes()), Err(Error::Data(_))));
        // A long body line passes through whole, in pieces.
        let line = "z".repeat(3 * MAX_PIECE + 5);
        let (out, _) = run(&m, format!("\n{line}\n").as_bytes()).unwrap();
        assert!(out.ends_with(&format!("\n\n{line}\n")));
    }
}

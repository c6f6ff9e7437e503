//! DATA framing (RFC 5321 4.5.2): the one true end of data `<CRLF>.<CRLF>`,
//! dot-unstuffing, and detection of bare CR and bare LF (SMTP smuggling); and
//! the other direction for outbound mail, LF to CRLF with dot-stuffing.
//! Sans-IO: bytes in, message bytes out, in any chunking.

/// What one call to [`DataDecoder::feed`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fed {
    /// Input bytes consumed. Less than the input only when the end was found:
    /// the bytes after `<CRLF>.<CRLF>` belong to the next command.
    pub consumed: usize,
    /// The end-of-data line was consumed.
    pub done: bool,
}

/// Where the decoder stands between two bytes. Only a CRLF pair makes a line
/// start, so a bare CR or LF can never lead to `LineStart` and never to the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    /// Just after a CRLF (or at the very start of the data).
    #[default]
    LineStart,
    /// Inside a line.
    Mid,
    /// Saw a CR inside a line; not yet emitted, as it may be half of a CRLF.
    Cr,
    /// Saw `.` at a line start; not yet emitted, as it may be stuffing or the end.
    Dot,
    /// Saw `.\r` at a line start: one LF away from the end.
    DotCr,
    /// The end-of-data line was consumed; nothing more is accepted.
    Done,
}

/// Decodes the DATA stream that follows `354`. The decoder starts "at the start
/// of a line" (just after the DATA command's CRLF), so `.\r\n` as the very first
/// line ends an empty message.
///
/// Output is the unstuffed message with every CRLF turned into a single LF (the
/// spool and Maildir store LF line ends); a CR or LF that is not part of a CRLF
/// pair sets [`DataDecoder::bare_line_ending`] and is passed through as is, but
/// never ends the message.
#[derive(Debug, Default)]
pub struct DataDecoder {
    state: State,
    bare: bool,
}

impl DataDecoder {
    /// Consumes `input`, appending decoded message bytes to `out`.
    ///
    /// Once the end has been found, further calls consume nothing and report
    /// `done` again.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Fed {
        if self.state == State::Done {
            return Fed {
                consumed: 0,
                done: true,
            };
        }
        // Output never exceeds input: reserve once rather than per run.
        out.reserve(input.len());
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                State::Mid => {
                    // The hot path: copy the run up to the next CR or LF in one go.
                    let rest = &input[i..];
                    match find_cr_or_lf(rest) {
                        None => {
                            out.extend_from_slice(rest);
                            i = input.len();
                        }
                        Some(p) => {
                            out.extend_from_slice(&rest[..p]);
                            i += p + 1;
                            if rest[p] == b'\r' {
                                self.state = State::Cr;
                            } else {
                                self.bare_lf(out);
                            }
                        }
                    }
                }
                State::LineStart => {
                    i += 1;
                    match b {
                        b'.' => self.state = State::Dot,
                        b'\r' => self.state = State::Cr,
                        b'\n' => {
                            self.bare_lf(out);
                            self.state = State::Mid;
                        }
                        _ => {
                            out.push(b);
                            self.state = State::Mid;
                        }
                    }
                }
                State::Cr => {
                    if b == b'\n' {
                        i += 1;
                        out.push(b'\n');
                        self.state = State::LineStart;
                    } else {
                        // A bare CR: pass it on, then read `b` as ordinary line content.
                        self.bare_cr(out);
                        self.state = State::Mid;
                    }
                }
                State::Dot => {
                    if b == b'\r' {
                        i += 1;
                        self.state = State::DotCr;
                    } else {
                        // The line goes on after the dot: it was stuffing, drop it.
                        self.state = State::Mid;
                    }
                }
                State::DotCr => {
                    if b == b'\n' {
                        self.state = State::Done;
                        return Fed {
                            consumed: i + 1,
                            done: true,
                        };
                    }
                    // `.` then a bare CR: the dot was stuffing, the CR is content.
                    self.bare_cr(out);
                    self.state = State::Mid;
                }
                // Not reached: the end returns at once. Stay put if it ever is.
                State::Done => {
                    return Fed {
                        consumed: i,
                        done: true,
                    }
                }
            }
        }
        Fed {
            consumed: input.len(),
            done: false,
        }
    }

    /// True once a bare CR or bare LF has been seen in this message.
    pub fn bare_line_ending(&self) -> bool {
        self.bare
    }

    fn bare_cr(&mut self, out: &mut Vec<u8>) {
        out.push(b'\r');
        self.bare = true;
    }

    fn bare_lf(&mut self, out: &mut Vec<u8>) {
        out.push(b'\n');
        self.bare = true;
    }
}

/// Encodes a spool body (LF line ends) for DATA: every LF becomes CRLF, a `.`
/// at the start of a line is doubled (RFC 5321 4.5.2), and a CR is passed on as
/// it is. Every CRLF it writes comes from an LF and is followed by a stuffed
/// line, so no body can end the data early. Streaming: any chunking gives the
/// same bytes; one call writes at most twice its input.
#[derive(Debug)]
pub struct DataEncoder {
    /// The next byte starts a line (true before the first byte).
    line_start: bool,
}

impl Default for DataEncoder {
    fn default() -> DataEncoder {
        DataEncoder { line_start: true }
    }
}

impl DataEncoder {
    /// Appends the wire form of `input` to `out`.
    pub fn encode(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() + input.len() / 16);
        while let Some(&first) = input.first() {
            if self.line_start && first == b'.' {
                out.push(b'.');
            }
            match input.iter().position(|&b| b == b'\n') {
                Some(nl) => {
                    out.extend_from_slice(&input[..nl]);
                    out.extend_from_slice(b"\r\n");
                    input = &input[nl + 1..];
                    self.line_start = true;
                }
                None => {
                    out.extend_from_slice(input);
                    self.line_start = false;
                    return;
                }
            }
        }
    }

    /// Appends the end of data: a CRLF to end an unfinished last line, then
    /// `.` CRLF. An empty body is just `.` CRLF.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if !self.line_start {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        self.line_start = true;
    }
}

/// Normalises a BDAT chunk: CRLF becomes LF, no unstuffing (BDAT is not
/// dot-stuffed). `pending_cr` carries a CR that ended the previous chunk.
/// Returns true if a bare CR or bare LF was seen.
///
/// After the `LAST` chunk, call [`bdat_finish`] to settle a CR left pending.
pub fn bdat_normalize(chunk: &[u8], pending_cr: &mut bool, out: &mut Vec<u8>) -> bool {
    let mut bare = false;
    let mut rest = chunk;
    if *pending_cr {
        match rest.first() {
            None => return false,
            Some(b'\n') => {
                out.push(b'\n');
                rest = &rest[1..];
            }
            Some(_) => {
                out.push(b'\r');
                bare = true;
            }
        }
        *pending_cr = false;
    }
    out.reserve(rest.len());
    while let Some(p) = find_cr_or_lf(rest) {
        out.extend_from_slice(&rest[..p]);
        if rest[p] == b'\n' {
            out.push(b'\n');
            bare = true;
            rest = &rest[p + 1..];
        } else {
            match rest.get(p + 1) {
                None => {
                    *pending_cr = true;
                    return bare;
                }
                Some(b'\n') => {
                    out.push(b'\n');
                    rest = &rest[p + 2..];
                }
                Some(_) => {
                    out.push(b'\r');
                    bare = true;
                    rest = &rest[p + 1..];
                }
            }
        }
    }
    out.extend_from_slice(rest);
    bare
}

/// Ends a BDAT message: a CR still pending after the `LAST` chunk is a bare CR
/// at the very end, passed through. Returns true if it was.
pub fn bdat_finish(pending_cr: &mut bool, out: &mut Vec<u8>) -> bool {
    let was = std::mem::take(pending_cr);
    if was {
        out.push(b'\r');
    }
    was
}

/// Index of the first CR or LF. Tests eight bytes per step (SWAR) because this
/// scan runs over every byte of every message and most bytes are neither.
fn find_cr_or_lf(hay: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const CRS: u64 = ONES * b'\r' as u64;
    const LFS: u64 = ONES * b'\n' as u64;
    // Nonzero iff some byte of `x` is zero (may flag bytes after the first hit,
    // never before it, so the bytewise scan below settles which one).
    fn has_zero(x: u64) -> bool {
        x.wrapping_sub(ONES) & !x & HIGHS != 0
    }
    let mut chunks = hay.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_ne_bytes(word);
        if has_zero(x ^ CRS) || has_zero(x ^ LFS) {
            break;
        }
        base += 8;
    }
    hay[base..]
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .map(|p| base + p)
}

#[cfg(test)]
#[path = "data_tests.rs"]
mod tests;

//! DATA framing (RFC 5321 4.5.2): the one true end of data `<CRLF>.<CRLF>`,
//! dot-unstuffing, and detection of bare CR and bare LF (SMTP smuggling).
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

/// Decodes the DATA stream that follows `354`. The decoder starts "at the start
/// of a line" (just after the DATA command's CRLF), so `.\r\n` as the very first
/// line ends an empty message.
///
/// Output is the unstuffed message with every CRLF turned into a single LF (the
/// spool and Maildir store LF line ends); a CR or LF that is not part of a CRLF
/// pair sets [`DataDecoder::bare_line_ending`] and is passed through as is, but
/// never ends the message.
#[derive(Debug, Default)]
pub struct DataDecoder {}

impl DataDecoder {
    pub fn new() -> DataDecoder {
        todo!("filled in by the DATA-framing work")
    }

    /// Consumes `input`, appending decoded message bytes to `out`.
    pub fn feed(&mut self, _input: &[u8], _out: &mut Vec<u8>) -> Fed {
        todo!("filled in by the DATA-framing work")
    }

    /// True once a bare CR or bare LF has been seen in this message.
    pub fn bare_line_ending(&self) -> bool {
        todo!("filled in by the DATA-framing work")
    }
}

/// Normalises a BDAT chunk: CRLF becomes LF, no unstuffing (BDAT is not
/// dot-stuffed). `pending_cr` carries a CR that ended the previous chunk.
/// Returns true if a bare CR or bare LF was seen.
pub fn bdat_normalize(_chunk: &[u8], _pending_cr: &mut bool, _out: &mut Vec<u8>) -> bool {
    todo!("filled in by the DATA-framing work")
}

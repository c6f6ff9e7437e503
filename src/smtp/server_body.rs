//! The message-body half of the inbound session: DATA (with the one true
//! end-of-data) and BDAT chunks, the size limit, and the verdict at the end of
//! a message. A child of `server`, so it works on the session's own state.

use super::{Host, Mode, Session};
use crate::smtp::data::{bdat_finish, bdat_normalize, DataDecoder};
use crate::smtp::reply::Reply;

/// Message bytes decoded per step, which bounds the session's decode buffer.
const DECODE_STEP: usize = 8 * 1024;

/// The state of a message body while it is received.
#[derive(Debug, Default)]
pub(super) struct Body {
    decoder: DataDecoder,
    size: u64,
    too_big: bool,
    write_error: Option<Reply>,
}

#[derive(Debug, Default)]
pub(super) struct BdatState {
    body: Body,
    pending_cr: bool,
    bare: bool,
    /// This chunk is read and thrown away, then refused with this reply
    /// (BDAT without a valid transaction; RFC 3030 2 says the chunk still follows).
    refusal: Option<Reply>,
}

impl Session {
    /// Checks shared by DATA and the first BDAT; opens the spool file.
    pub(super) fn start_message(&mut self, host: &mut dyn Host) -> Result<(), Reply> {
        let Some(txn) = &self.txn else {
            return Err(Reply::new(503, "5.5.1", "Error: need MAIL command"));
        };
        if txn.rcpts.is_empty() {
            return Err(Reply::new(503, "5.5.1", "Error: need RCPT command"));
        }
        let id = host.begin_message(txn)?;
        if !host.trace_header() {
            return Ok(());
        }
        let received = self.received_header(txn, &id);
        let written = host.message_data(received.as_bytes());
        if written.is_err() {
            host.abort_message();
        }
        written
    }

    pub(super) fn data(&mut self, host: &mut dyn Host) {
        if self.bdat.is_some() {
            return self.error(Reply::new(503, "5.5.1", "Error: DATA after BDAT"));
        }
        if let Err(r) = self.start_message(host) {
            return self.error(r);
        }
        self.mode = Mode::Data(Body::default());
        self.reply(Reply::new(354, "", "End data with <CR><LF>.<CR><LF>"));
    }

    pub(super) fn data_input(&mut self, input: &[u8], host: &mut dyn Host) -> usize {
        let Mode::Data(body) = &mut self.mode else {
            return 0;
        };
        self.scratch.clear();
        let input = &input[..input.len().min(DECODE_STEP)];
        let fed = body.decoder.feed(input, &mut self.scratch);
        accept_body(body, &self.scratch, self.config.max_message_size, host);
        if fed.done {
            let bare = body.decoder.bare_line_ending();
            let body = std::mem::take(body);
            self.finish_message(body, bare, host);
        }
        fed.consumed
    }

    pub(super) fn bdat(&mut self, size: u64, last: bool, host: &mut dyn Host) {
        if self.bdat.is_none() {
            let refusal = self.start_message(host).err();
            self.bdat = Some(BdatState {
                refusal,
                ..BdatState::default()
            });
        }
        self.mode = Mode::Bdat {
            size,
            remaining: size,
            last,
        };
        if size == 0 {
            self.bdat_chunk_end(host);
        }
    }

    pub(super) fn bdat_input(&mut self, input: &[u8], host: &mut dyn Host) -> usize {
        let (Mode::Bdat { remaining, .. }, Some(state)) = (&mut self.mode, &mut self.bdat) else {
            return 0;
        };
        let take = (*remaining).min(input.len().min(DECODE_STEP) as u64) as usize;
        *remaining -= take as u64;
        if state.refusal.is_none() {
            self.scratch.clear();
            state.bare |= bdat_normalize(&input[..take], &mut state.pending_cr, &mut self.scratch);
            accept_body(
                &mut state.body,
                &self.scratch,
                self.config.max_message_size,
                host,
            );
        }
        if *remaining == 0 {
            self.bdat_chunk_end(host);
        }
        take
    }

    pub(super) fn bdat_chunk_end(&mut self, host: &mut dyn Host) {
        let Mode::Bdat { size, last, .. } = self.mode else {
            return;
        };
        self.mode = Mode::Command { discarding: false };
        let Some(state) = &mut self.bdat else {
            return;
        };
        if let Some(refusal) = state.refusal.take() {
            self.bdat = None;
            return self.error(refusal);
        }
        if !last {
            return self.reply(Reply::new(250, "2.0.0", format!("{size} octets received")));
        }
        let Some(mut state) = self.bdat.take() else {
            return;
        };
        self.scratch.clear();
        let bare = bdat_finish(&mut state.pending_cr, &mut self.scratch) | state.bare;
        accept_body(
            &mut state.body,
            &self.scratch,
            self.config.max_message_size,
            host,
        );
        let body = std::mem::take(&mut state.body);
        self.finish_message(body, bare, host);
    }

    /// The end of the message: reject it whole or ask for the commit.
    pub(super) fn finish_message(&mut self, body: Body, bare: bool, host: &mut dyn Host) {
        self.txn = None;
        // Idle sessions hold no decode buffer.
        self.scratch = Vec::new();
        self.mode = Mode::Command { discarding: false };
        let refusal = if body.too_big {
            Some(Reply::new(
                552,
                "5.3.4",
                "Error: message size exceeds fixed limit",
            ))
        } else if bare {
            Some(Reply::new(
                550,
                "5.6.0",
                "Error: bare CR or LF in message: lines must end with CRLF",
            ))
        } else {
            body.write_error
        };
        match refusal {
            Some(r) => {
                host.abort_message();
                self.reply(r);
            }
            None => {
                host.end_message();
                self.mode = Mode::AwaitingCommit;
            }
        }
    }
}

/// Passes body bytes to the host unless the message is already over the size
/// limit or failed to write; counts the size either way.
fn accept_body(body: &mut Body, bytes: &[u8], max: u64, host: &mut dyn Host) {
    body.size += bytes.len() as u64;
    if body.size > max {
        body.too_big = true;
    }
    if body.too_big || body.write_error.is_some() || bytes.is_empty() {
        return;
    }
    if let Err(r) = host.message_data(bytes) {
        body.write_error = Some(r);
    }
}

//! Logging: env_logger formats one line per event (UTC time, level, message);
//! the lines are gathered and written to stderr once per loop turn, so a busy
//! turn costs one write instead of one per line (log lines were a quarter of
//! all system calls per message). Whatever is pending is written before the
//! loop waits, before a fatal exit, and whenever it passes 64 KiB.

use std::io::{self, Write};
use std::sync::Mutex;

use crate::util;

const FLUSH_AT: usize = 64 * 1024;

static PENDING: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// `RUST_LOG` picks the level (default `info`).
pub fn init() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format(|buf, record| {
            writeln!(
                buf,
                "{} {} {}",
                util::iso_time(util::unix_micros()),
                record.level(),
                record.args()
            )
        })
        .target(env_logger::Target::Pipe(Box::new(TurnWriter)))
        .init();
}

/// Writes out the pending lines.
pub fn flush() {
    // A poisoned lock only means a panic while appending; the bytes are fine.
    let mut pending = PENDING.lock().unwrap_or_else(|e| e.into_inner());
    write_out(&mut pending);
}

fn write_out(pending: &mut Vec<u8>) {
    if !pending.is_empty() {
        // Nowhere to report a failure to write the log itself.
        let _ = io::stderr().write_all(pending);
        pending.clear();
    }
}

/// The sink env_logger writes each formatted line to.
struct TurnWriter;

impl Write for TurnWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut pending = PENDING.lock().unwrap_or_else(|e| e.into_inner());
        pending.extend_from_slice(buf);
        if pending.len() >= FLUSH_AT {
            write_out(&mut pending);
        }
        Ok(buf.len())
    }

    /// env_logger flushes after every line; the real flush is [`flush`], once
    /// per loop turn.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

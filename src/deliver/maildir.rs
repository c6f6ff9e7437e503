//! The Maildir writer (https://cr.yp.to/proto/maildir.html): `tmp/`, `new/`,
//! `cur/` created as needed (0700), a file written in `tmp/` in bounded steps,
//! fsynced, renamed into `new/`; the caller fsyncs `new/` once per batch.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// One message being written into one Maildir.
pub struct MaildirWrite {}

impl MaildirWrite {
    /// Creates the Maildir's directories if needed and `tmp/<unique>` (O_EXCL,
    /// mode 0600), then writes `Return-Path: <return_path>` and
    /// `Delivered-To: <delivered_to>` header lines (LF line ends). `source` is
    /// positioned at the start of the message and holds `len` more bytes.
    pub fn start(
        _maildir: &Path,
        _unique: &str,
        _return_path: &str,
        _delivered_to: &str,
        _source: File,
        _len: u64,
    ) -> io::Result<MaildirWrite> {
        todo!("filled in by the Maildir work")
    }

    /// Copies at most `budget` bytes of the message; true when all is copied.
    pub fn step(&mut self, _budget: usize) -> io::Result<bool> {
        todo!("filled in by the Maildir work")
    }

    /// fsyncs the file and renames it into `new/`; returns the `new/` directory,
    /// which the caller must fsync (once for all files of a batch) before the
    /// delivery counts as done. On error the `tmp/` file is removed.
    pub fn finish(self) -> io::Result<PathBuf> {
        todo!("filled in by the Maildir work")
    }

    /// Removes the `tmp/` file after a failure.
    pub fn abandon(self) {
        todo!("filled in by the Maildir work")
    }
}

/// True if a file named `unique` is already in `new/` or in `cur/` (where a mail
/// reader moves it, adding `:2,flags`). Used when a delivery is redone after a
/// crash, so the same copy is not delivered twice.
pub fn already_delivered(_maildir: &Path, _unique: &str) -> bool {
    todo!("filled in by the Maildir work")
}

/// fsyncs a directory (after renames into it).
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A Maildir file name for copy `n` of queued message `queue_id`: the same
/// message and copy always get the same name, which is what makes a redelivery
/// after a crash detectable. `host` has `/` and `:` escaped as the spec asks.
pub fn unique_name(arrival_secs: u64, queue_id: &str, n: usize, host: &str) -> String {
    let host: String = host
        .chars()
        .map(|c| match c {
            '/' => "\\057".to_string(),
            ':' => "\\072".to_string(),
            c => c.to_string(),
        })
        .collect();
    format!("{arrival_secs}.{queue_id}_{n}.{host}")
}

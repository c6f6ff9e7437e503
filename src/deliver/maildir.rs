//! The Maildir writer (https://cr.yp.to/proto/maildir.html): `tmp/`, `new/`,
//! `cur/` created as needed (0700), a file written in `tmp/` in bounded steps,
//! fsynced, renamed into `new/`; the caller fsyncs `new/` once per batch.

use crate::util::fsync_dir;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Bytes moved per read/write call inside one `step`.
const CHUNK: usize = 64 * 1024;

/// One message being written into one Maildir.
///
/// Dropping it before `finish` succeeded removes the `tmp/` file, so no error
/// path (or forgotten `abandon`) leaves a partial message behind.
#[derive(Debug)]
pub struct MaildirWrite {
    maildir: PathBuf,
    unique: String,
    tmp: PathBuf,
    file: File,
    source: File,
    /// Message bytes still to copy from `source`.
    remaining: u64,
    /// The `tmp/` file is no longer ours to remove: renamed into `new/`, or
    /// already removed after an error.
    tmp_gone: bool,
    /// Header lines not yet written.
    header: Vec<u8>,
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.to_string())
}

/// A name that stays inside `tmp/`, `new/` and `cur/` (`unique_name` escapes
/// `/`; this guards against any other caller).
fn valid_unique(unique: &str) -> bool {
    !unique.is_empty() && !unique.starts_with('.') && !unique.contains(['/', '\0'])
}

/// Creates `maildir` and its `tmp/`, `new/`, `cur/` as needed. The directories
/// created here get mode 0700 whatever the umask (mail is private), existing
/// ones are left as the owner set them; the parent of each created directory
/// is fsynced, since the caller only fsyncs `new/`.
fn make_dirs(maildir: &Path) -> io::Result<()> {
    let mut created: Vec<PathBuf> = Vec::new();
    let mut missing: Vec<&Path> = maildir
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && fs::metadata(d).is_err())
        .collect();
    missing.reverse();
    let subdirs = ["tmp", "new", "cur"].map(|s| maildir.join(s));
    let builder = {
        let mut b = DirBuilder::new();
        b.mode(0o700);
        b
    };
    for dir in missing
        .into_iter()
        .chain(subdirs.iter().map(PathBuf::as_path))
    {
        match builder.create(dir) {
            Ok(()) => created.push(dir.to_path_buf()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => {}
            Err(e) => return Err(e),
        }
    }
    for dir in &created {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    for dir in &created {
        match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => fsync_dir(p)?,
            _ => fsync_dir(Path::new("."))?,
        }
    }
    Ok(())
}

impl MaildirWrite {
    /// Creates the Maildir's directories if needed and `tmp/<unique>` (O_EXCL,
    /// mode 0600), then writes `Return-Path: <return_path>` and
    /// `Delivered-To: <delivered_to>` header lines (LF line ends). `source` is
    /// positioned at the start of the message and holds `len` more bytes.
    ///
    /// `return_path` and `delivered_to` are bare addresses (`""` for the null
    /// sender); a CR, LF or NUL in them is refused rather than written as a
    /// header line break.
    pub fn start(
        maildir: &Path,
        unique: &str,
        return_path: &str,
        delivered_to: &str,
        source: File,
        len: u64,
    ) -> io::Result<MaildirWrite> {
        if !valid_unique(unique) {
            return Err(invalid("bad Maildir file name"));
        }
        if [return_path, delivered_to]
            .iter()
            .any(|a| a.contains(['\r', '\n', '\0']))
        {
            return Err(invalid("line break in an envelope address"));
        }
        let tmp = maildir.join("tmp").join(unique);
        // O_EXCL: an existing file is someone else's (or a collision); never
        // truncate or remove it. The directories are made only when the open
        // says they are missing, so a delivery to an existing Maildir costs
        // no extra system calls.
        let create = || {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
        };
        let file = match create() {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                make_dirs(maildir)?;
                create()?
            }
            other => other?,
        };
        Ok(MaildirWrite {
            maildir: maildir.to_path_buf(),
            unique: unique.to_string(),
            tmp,
            file,
            source,
            remaining: len,
            tmp_gone: false,
            // Written with the first chunk: one write for a small message.
            header: format!("Return-Path: <{return_path}>\nDelivered-To: {delivered_to}\n")
                .into_bytes(),
        })
    }

    /// Copies at most `budget` bytes of the message; true when all is copied.
    /// On error the `tmp/` file is removed and later calls fail.
    pub fn step(&mut self, budget: usize) -> io::Result<bool> {
        if self.tmp_gone {
            return Err(io::Error::other("Maildir write already failed"));
        }
        let result = self.copy(budget);
        if result.is_err() {
            self.remove_tmp();
        }
        result
    }

    fn copy(&mut self, budget: usize) -> io::Result<bool> {
        let mut buf = vec![0u8; CHUNK.min(self.header.len() + self.remaining as usize)];
        let header = std::mem::take(&mut self.header);
        buf[..header.len()].copy_from_slice(&header);
        let mut filled = header.len();
        let mut left = self.remaining.min(budget as u64);
        while left > 0 || filled > 0 {
            let want = left.min((buf.len() - filled) as u64) as usize;
            let n = match self.source.read(&mut buf[filled..filled + want]) {
                Ok(0) if want > 0 => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("spool file truncated: {} bytes missing", self.remaining),
                    ))
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.file.write_all(&buf[..filled + n])?;
            filled = 0;
            left -= n as u64;
            self.remaining -= n as u64;
        }
        Ok(self.remaining == 0)
    }

    /// The file being written, for the caller's data barrier.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// fsyncs the file and renames it into `new/`; see [`MaildirWrite::publish`].
    #[cfg(test)]
    pub fn finish(self) -> io::Result<PathBuf> {
        self.file.sync_all()?;
        self.publish()
    }

    /// Renames the whole, already synced file into `new/` and returns that
    /// directory, which the caller must sync (once for all files of a batch)
    /// before the delivery counts as done. On error the `tmp/` file is removed.
    pub fn publish(mut self) -> io::Result<PathBuf> {
        if self.tmp_gone {
            return Err(io::Error::other("Maildir write already failed"));
        }
        if self.remaining != 0 || !self.header.is_empty() {
            return Err(invalid("Maildir write finished before the whole message"));
        }
        let new_dir = self.maildir.join("new");
        fs::rename(&self.tmp, new_dir.join(&self.unique))?;
        self.tmp_gone = true;
        Ok(new_dir)
    }

    /// Removes the `tmp/` file after a failure.
    pub fn abandon(mut self) {
        self.remove_tmp();
    }

    fn remove_tmp(&mut self) {
        if !self.tmp_gone {
            self.tmp_gone = true;
            if let Err(e) = fs::remove_file(&self.tmp) {
                log::warn!("cannot remove {}: {e}", self.tmp.display());
            }
        }
    }
}

impl Drop for MaildirWrite {
    fn drop(&mut self) {
        self.remove_tmp();
    }
}

/// True if a file named `unique` is already in `new/` or in `cur/` (where a mail
/// reader moves it, adding `:2,flags`). Used when a delivery is redone after a
/// crash, so the same copy is not delivered twice.
pub fn already_delivered(maildir: &Path, unique: &str) -> bool {
    if !valid_unique(unique) {
        return false;
    }
    if fs::symlink_metadata(maildir.join("new").join(unique)).is_ok() {
        return true;
    }
    let Ok(entries) = fs::read_dir(maildir.join("cur")) else {
        return false; // no cur/ yet: nothing was ever read from this Maildir
    };
    let unique = unique.as_bytes();
    entries.flatten().any(|e| {
        let name = e.file_name();
        let name = name.as_bytes();
        name.strip_prefix(unique)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(b":"))
    })
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

#[cfg(test)]
#[path = "maildir_tests.rs"]
mod tests;

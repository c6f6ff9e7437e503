//! The drop directory, `SPOOL/drop/`: where `sendmail` queues a message for
//! the daemon, which may be down. A drop file has a spool file's layout (the
//! envelope head, then the message with LF line ends) and is committed the
//! same way: written as `.NAME`, fsynced, renamed to `NAME`, directory
//! fsynced. Only then does `sendmail` exit 0.
//!
//! Permissions (see README "Installing"): the directory is mode 1730, owner
//! the mail user, group `picomta-drop`; the binary is setgid `picomta-drop`.
//! Any local user's `sendmail` can so create files there but not list or
//! read the directory, and, with the sticky bit, not remove or rename other
//! users' files. Drop files are made mode 0644 so the daemon, which does not
//! own them, can read them; their names are random, so they cannot be
//! guessed. The daemon copies each into the queue (`pickup.rs`) and removes it.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::envelope::Envelope;
use crate::util;

pub fn dir(spool: &Path) -> PathBuf {
    spool.join("drop")
}

/// A drop file being written by `sendmail`. Dropped before
/// [`DropFile::commit`], it removes itself.
pub struct DropFile {
    name: String,
    dir: PathBuf,
    file: io::BufWriter<File>,
    committed: bool,
}

impl DropFile {
    /// Starts `.NAME` in the drop directory (creating the directory, mode
    /// 0700, if no daemon ever did) and writes the envelope head.
    pub fn create(spool: &Path, envelope: &Envelope) -> io::Result<DropFile> {
        ensure_dir(spool, None)?;
        let dir = dir(spool);
        let name = format!("{:013X}{}", util::unix_micros(), util::random_hex(6)?);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(dir.join(format!(".{name}")))?;
        // The daemon does not own the file: it must be readable whatever
        // the caller's umask.
        file.set_permissions(fs::Permissions::from_mode(0o644))?;
        let mut drop = DropFile {
            name,
            dir,
            file: io::BufWriter::with_capacity(32 * 1024, file),
            committed: false,
        };
        drop.write(envelope.to_text().as_bytes())?;
        Ok(drop)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)
    }

    /// Makes the message durable under its final name.
    pub fn commit(mut self) -> io::Result<String> {
        self.file.flush()?;
        self.file.get_ref().sync_all()?;
        fs::rename(self.temp_path(), self.dir.join(&self.name))?;
        self.committed = true;
        match util::fsync_dir(&self.dir) {
            // A submitter who may not read the directory (mode 1730) cannot
            // open it to sync it; a sync of its file system makes the rename
            // durable just the same.
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                crate::durable::syncfs(self.file.get_ref())?
            }
            result => result?,
        }
        Ok(std::mem::take(&mut self.name))
    }

    fn temp_path(&self) -> PathBuf {
        self.dir.join(format!(".{}", self.name))
    }
}

impl Drop for DropFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(self.temp_path());
        }
    }
}

/// Makes the drop directory (mode 0700) if no daemon did yet, given to
/// `owner` (uid, gid) when root makes it for the mail user.
pub fn ensure_dir(spool: &Path, owner: Option<(u32, u32)>) -> io::Result<()> {
    let dir = dir(spool);
    if dir.exists() {
        return Ok(());
    }
    DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
    match owner {
        Some((uid, gid)) => std::os::unix::fs::chown(&dir, Some(uid), Some(gid)),
        None => Ok(()),
    }
}

/// What the drop directory holds.
#[derive(Debug, Default)]
pub struct Listing {
    /// Committed drop files, oldest first.
    pub committed: Vec<String>,
    /// Unfinished `.NAME` files older than a day: their writer is gone.
    pub stale: Vec<String>,
}

/// Lists the drop directory (a missing one is empty).
pub fn list(spool: &Path) -> io::Result<Listing> {
    let mut listing = Listing::default();
    let entries = match fs::read_dir(dir(spool)) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(listing),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if !name.starts_with('.') {
            listing.committed.push(name);
            continue;
        }
        let stale = entry
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age.as_secs() > 24 * 3600);
        if stale {
            listing.stale.push(name);
        }
    }
    listing.committed.sort();
    Ok(listing)
}

/// A drop file opened for the daemon, and the uid that wrote it.
pub struct Opened {
    pub file: File,
    pub len: u64,
    pub uid: u32,
}

/// Opens a committed drop file, refusing anything but a plain file with one
/// link (a symlink or a hard link could make the daemon read a file it may
/// read but the submitter may not). Err(InvalidData) for such a file.
pub fn open(spool: &Path, name: &str) -> io::Result<Opened> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(dir(spool).join(name))
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => io::Error::new(io::ErrorKind::InvalidData, "a symbolic link"),
            _ => e,
        })?;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() || meta.nlink() != 1 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a plain file with one link",
        ));
    }
    Ok(Opened {
        file,
        len: meta.len(),
        uid: meta.uid(),
    })
}

pub fn remove(spool: &Path, name: &str) {
    if let Err(e) = fs::remove_file(dir(spool).join(name)) {
        log::error!("drop: cannot remove {name}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::address::{Mailbox, ReversePath};

    fn envelope() -> Envelope {
        Envelope {
            arrival: 7,
            from: ReversePath::Null,
            rcpts: vec![Mailbox {
                local: "root".into(),
                domain: "host.test".into(),
            }],
        }
    }

    #[test]
    fn commit_open_and_remove() {
        let spool = std::env::temp_dir().join(format!("picomta-drop-{}", std::process::id()));
        let _ = fs::remove_dir_all(&spool);
        let mut unfinished = DropFile::create(&spool, &envelope()).unwrap();
        unfinished.write(b"x\n").unwrap();
        let mut d = DropFile::create(&spool, &envelope()).unwrap();
        d.write(b"Subject: hi\n\nbody\n").unwrap();
        assert!(
            list(&spool).unwrap().committed.is_empty(),
            "not yet committed"
        );
        let name = d.commit().unwrap();
        assert_eq!(list(&spool).unwrap().committed, vec![name.clone()]);
        drop(unfinished);
        assert_eq!(
            fs::read_dir(dir(&spool)).unwrap().count(),
            1,
            "abandoned file removed"
        );

        let opened = open(&spool, &name).unwrap();
        let mode = opened.file.metadata().unwrap().mode() & 0o777;
        assert_eq!(mode, 0o644);
        let text = fs::read(dir(&spool).join(&name)).unwrap();
        let (env, offset) = Envelope::parse(&text).unwrap();
        assert_eq!(env, envelope());
        assert_eq!(&text[offset..], b"Subject: hi\n\nbody\n");
        assert_eq!(opened.len, text.len() as u64);

        // Links are refused.
        std::os::unix::fs::symlink("/etc/passwd", dir(&spool).join("LINK")).unwrap();
        assert_eq!(
            open(&spool, "LINK").err().map(|e| e.kind()),
            Some(io::ErrorKind::InvalidData)
        );
        fs::hard_link(dir(&spool).join(&name), dir(&spool).join("HARD")).unwrap();
        assert_eq!(
            open(&spool, "HARD").err().map(|e| e.kind()),
            Some(io::ErrorKind::InvalidData)
        );
        remove(&spool, "HARD");
        remove(&spool, "LINK");
        remove(&spool, &name);
        assert!(list(&spool).unwrap().committed.is_empty());
        fs::remove_dir_all(&spool).unwrap();
    }
}

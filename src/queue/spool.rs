//! The spool on disk. Layout under the `spool` directory:
//!
//! - `tmp/NAME`: a message being received (envelope head, then the message),
//!   or a spare file: files of delivered messages are moved here and reused.
//! - `msg/ID`: a committed message; it got there by fsync then rename, and the
//!   rename is made durable by an fsync of `msg/` before the 250 is sent.
//! - `state/ID`: appended outcomes of delivery attempts (see [`super::envelope`]).
//!
//! A new message is written into a spare file when there is one (overwritten,
//! cut to length) instead of a new inode, so steady traffic neither creates
//! nor deletes inodes in the spool. On ext4 without a journal (common on SD
//! cards) every create otherwise scans past all recently deleted inodes, which
//! made file creation the largest CPU cost per message. Nothing in `tmp/` was
//! ever acknowledged, so at start its files are simply taken as spares (up to
//! a limit; the rest are removed) and every file in `msg/` is queued again.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::envelope::{Envelope, State};
use crate::util::fsync_dir;

/// Longest envelope head read back: recipients × longest path, with room.
const MAX_HEAD: u64 = 1024 * 1024;

/// Spare files kept in `tmp/` at most.
const RECYCLE_MAX: usize = 256;

#[derive(Debug)]
pub struct Spool {
    tmp: PathBuf,
    msg: PathBuf,
    state: PathBuf,
    /// Names of the spare files in `tmp/`.
    spares: Vec<String>,
}

/// Small writes are gathered up to this size: a typical message is written
/// with one system call.
const WRITE_BUFFER: usize = 8 * 1024;
/// What is read first to find the envelope head: it and a small message.
const HEAD_FIRST: u64 = 16 * 1024;

/// A message being received into `tmp/`.
#[derive(Debug)]
pub struct Incoming {
    pub id: String,
    file: File,
    buffer: Vec<u8>,
    /// Bytes written to the file so far (head included).
    written: u64,
    /// A reused file: it may be longer than what was written and is cut to
    /// length before the commit.
    reused: bool,
    path: PathBuf,
    /// Bytes of the message written (the head not counted).
    pub size: u64,
    /// For the log line at commit: `from=<…>, nrcpt=N`.
    pub summary: String,
}

impl Incoming {
    /// The open spool file, for the turn's data barrier.
    pub fn file(&self) -> &File {
        &self.file
    }

    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.size += bytes.len() as u64;
        if self.buffer.len() + bytes.len() <= WRITE_BUFFER {
            self.buffer.extend_from_slice(bytes);
            return Ok(());
        }
        self.write_buffer()?;
        if bytes.len() >= WRITE_BUFFER {
            self.written += bytes.len() as u64;
            return self.file.write_all(bytes);
        }
        self.buffer.extend_from_slice(bytes);
        Ok(())
    }

    /// Completes the file before its commit: writes out what is buffered and
    /// cuts a reused file to what was written.
    pub fn flush(&mut self) -> io::Result<()> {
        self.write_buffer()?;
        if self.reused {
            self.file.set_len(self.written)?;
        }
        Ok(())
    }

    fn write_buffer(&mut self) -> io::Result<()> {
        let result = self.file.write_all(&self.buffer);
        self.written += self.buffer.len() as u64;
        self.buffer.clear();
        result
    }
}

/// Reads the envelope head at the start of a spool (or drop) file of `total`
/// bytes; returns it and the offset where the message starts. The file's
/// position is left somewhere after the head. Err(InvalidData) if there is
/// no valid head.
pub fn read_head(file: &mut File, total: u64) -> io::Result<(Envelope, usize)> {
    // One read brings the head of almost any message (and all of a small
    // one); a head with very many recipients takes a few more.
    let limit = total.min(MAX_HEAD) as usize;
    let mut head: Vec<u8> = Vec::new();
    loop {
        let filled = head.len();
        let want = (HEAD_FIRST as usize).max(filled * 2).min(limit);
        head.resize(want, 0);
        file.read_exact(&mut head[filled..])?;
        if let Some(parsed) = Envelope::parse(&head) {
            return Ok(parsed);
        }
        if want == limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "corrupt envelope",
            ));
        }
    }
}

/// A committed message read back for delivery.
#[derive(Debug)]
pub struct Stored {
    pub envelope: Envelope,
    pub state: State,
    /// Whether a state file may exist (it is never made before the first
    /// attempt ends).
    pub has_state: bool,
    /// The open spool file, for the first copy to read from.
    pub file: Option<File>,
    /// Where the message starts in the file, and its length.
    pub offset: u64,
    pub len: u64,
}

impl Spool {
    /// Opens (creating as needed, mode 0700) the spool under `root`.
    pub fn open(root: &Path) -> io::Result<Spool> {
        let spool = Spool {
            tmp: root.join("tmp"),
            msg: root.join("msg"),
            state: root.join("state"),
            spares: Vec::new(),
        };
        for dir in [
            &spool.tmp,
            &spool.msg,
            &spool.state,
            &super::drop::dir(root),
        ] {
            DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        }
        Ok(spool)
    }

    pub fn msg_path(&self, id: &str) -> PathBuf {
        self.msg.join(id)
    }

    /// Starts a message in a spare file of `tmp/` if there is one, else in a
    /// new `tmp/ID` created exclusively; the head is buffered.
    pub fn create(&mut self, id: &str, envelope: &Envelope) -> io::Result<Incoming> {
        let spare = self.spares.pop().and_then(|name| {
            let path = self.tmp.join(name);
            let file = OpenOptions::new().write(true).open(&path).ok()?;
            Some((file, path))
        });
        let (file, path, reused) = match spare {
            Some((file, path)) => (file, path, true),
            None => {
                let path = self.tmp.join(id);
                let file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)?;
                (file, path, false)
            }
        };
        let mut buffer = Vec::with_capacity(WRITE_BUFFER);
        buffer.extend_from_slice(envelope.to_text().as_bytes());
        Ok(Incoming {
            id: id.to_string(),
            file,
            buffer,
            written: 0,
            reused,
            path,
            size: 0,
            summary: format!("from=<{}>, nrcpt={}", envelope.from, envelope.rcpts.len()),
        })
    }

    /// Throws away a message that was not acknowledged.
    pub fn discard(&mut self, incoming: Incoming) {
        drop(incoming.file);
        let name = incoming.path.file_name().and_then(|n| n.to_str());
        match name {
            Some(name) if self.spares.len() < RECYCLE_MAX => self.spares.push(name.to_string()),
            _ => {
                let _ = fs::remove_file(&incoming.path);
            }
        }
    }

    /// The directory committed messages are renamed into.
    pub fn msg_dir(&self) -> &Path {
        &self.msg
    }

    /// Renames a written and synced message into `msg/`. The rename counts
    /// (and the 250 may be sent) only after `msg/` is synced; if that fails,
    /// [`Spool::unpublish`] takes the message back. On error the file is removed.
    pub fn publish(&self, incoming: Incoming) -> io::Result<()> {
        let result = fs::rename(&incoming.path, self.msg.join(&incoming.id));
        if result.is_err() {
            let _ = fs::remove_file(&incoming.path);
        }
        result
    }

    /// Takes back a published message that was never acknowledged.
    pub fn unpublish(&self, id: &str) {
        let _ = fs::remove_file(self.msg.join(id));
    }

    /// Start-up recovery: takes the (never acknowledged) files in `tmp/` as
    /// spares, removes state files whose message is gone, and returns the ids
    /// of committed messages, oldest first.
    pub fn recover(&mut self) -> io::Result<Vec<String>> {
        self.spares.clear();
        for entry in fs::read_dir(&self.tmp)? {
            let entry = entry?;
            match entry.file_name().into_string() {
                Ok(name) if self.spares.len() < RECYCLE_MAX => self.spares.push(name),
                _ => {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        let mut ids: Vec<String> = Vec::new();
        for entry in fs::read_dir(&self.msg)? {
            if let Some(name) = entry?.file_name().to_str() {
                ids.push(name.to_string());
            }
        }
        ids.sort();
        for entry in fs::read_dir(&self.state)? {
            let entry = entry?;
            let name = entry.file_name();
            if ids
                .binary_search_by(|id| id.as_str().cmp(&*name.to_string_lossy()))
                .is_err()
            {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(ids)
    }

    /// Reads a committed message's envelope and, unless it is `fresh` (no
    /// attempt has ended yet, so there is none), its state file.
    pub fn load(&self, id: &str, fresh: bool) -> io::Result<Stored> {
        let mut file = File::open(self.msg.join(id))?;
        let total = file.metadata()?.len();
        let (envelope, offset) = read_head(&mut file, total)?;
        let state_text = if fresh {
            String::new()
        } else {
            match fs::read_to_string(self.state.join(id)) {
                Ok(t) => t,
                Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
                Err(e) => return Err(e),
            }
        };
        let state = State::parse(&state_text, envelope.rcpts.len());
        Ok(Stored {
            envelope,
            state,
            has_state: !fresh,
            file: Some(file),
            offset: offset as u64,
            len: total - offset as u64,
        })
    }

    /// Appends outcome lines to a message's state file and fsyncs it.
    pub fn append_state(&self, id: &str, lines: &str) -> io::Result<()> {
        let path = self.state.join(id);
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)?;
        file.write_all(lines.as_bytes())?;
        file.sync_data()?;
        if !existed {
            fsync_dir(&self.state)?;
        }
        Ok(())
    }

    /// Removes a message whose recipients are all done. Not fsynced: if the
    /// removal is lost in a crash, the redelivery is recognised and skipped.
    pub fn remove(&mut self, id: &str, has_state: bool) {
        // Kept as a spare unless there are enough; not synced, since a
        // message that reappears after a crash is recognised as delivered.
        let spare = self.spares.len() < RECYCLE_MAX
            && fs::rename(self.msg.join(id), self.tmp.join(id)).is_ok();
        if spare {
            self.spares.push(id.to_string());
        } else {
            let _ = fs::remove_file(self.msg.join(id));
        }
        if has_state {
            let _ = fs::remove_file(self.state.join(id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::address::{Mailbox, ReversePath};

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("picomta-spool-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn envelope() -> Envelope {
        Envelope {
            arrival: 42,
            from: ReversePath::Null,
            rcpts: vec![Mailbox {
                local: "alice".into(),
                domain: "example.test".into(),
            }],
        }
    }

    #[test]
    fn commit_load_recover_remove() {
        let root = temp_dir("cycle");
        let mut spool = Spool::open(&root).unwrap();
        let mut a = spool.create("A", &envelope()).unwrap();
        a.write(b"Subject: x\n\nhello\n").unwrap();
        let unfinished = spool.create("B", &envelope()).unwrap();
        a.flush().unwrap();
        a.file().sync_data().unwrap();
        spool.publish(a).unwrap();
        drop(unfinished);
        spool.append_state("A", "attempts 1\n").unwrap();
        fs::write(root.join("state/ORPHAN"), "0 sent\n").unwrap();

        let ids = spool.recover().unwrap();
        assert_eq!(ids, vec!["A".to_string()]);
        assert!(
            spool.spares.contains(&"B".to_string()),
            "unfinished file kept as a spare"
        );
        assert!(!root.join("state/ORPHAN").exists(), "orphan state removed");

        let stored = spool.load("A", false).unwrap();
        assert_eq!(stored.envelope, envelope());
        assert_eq!(stored.state.attempts, 1);
        assert_eq!(stored.len, 18);
        let data = fs::read(spool.msg_path("A")).unwrap();
        assert_eq!(&data[stored.offset as usize..], b"Subject: x\n\nhello\n");

        spool.remove("A", true);
        assert!(spool.recover().unwrap().is_empty());
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn delivered_files_are_reused_and_cut_to_length() {
        let root = temp_dir("reuse");
        let mut spool = Spool::open(&root).unwrap();
        let mut a = spool.create("A", &envelope()).unwrap();
        a.write(&[b'x'; 20_000]).unwrap();
        a.flush().unwrap();
        spool.publish(a).unwrap();
        spool.remove("A", false);
        assert!(root.join("tmp/A").exists(), "kept for reuse");
        assert!(!root.join("msg/A").exists());

        let mut b = spool.create("B", &envelope()).unwrap();
        assert!(b.reused);
        b.write(b"short\n").unwrap();
        b.flush().unwrap();
        spool.publish(b).unwrap();
        assert!(!root.join("tmp/A").exists(), "the spare became B");
        let stored = spool.load("B", true).unwrap();
        assert_eq!(stored.len, 6, "the old, longer content is cut off");
        let data = fs::read(spool.msg_path("B")).unwrap();
        assert_eq!(&data[stored.offset as usize..], b"short\n");

        // A restart finds the pool again.
        spool.remove("B", false);
        let mut again = Spool::open(&root).unwrap();
        assert!(again.recover().unwrap().is_empty());
        assert_eq!(again.spares, vec!["B".to_string()]);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn create_is_exclusive() {
        let root = temp_dir("excl");
        let mut spool = Spool::open(&root).unwrap();
        let _a = spool.create("A", &envelope()).unwrap();
        assert!(spool.create("A", &envelope()).is_err());
        fs::remove_dir_all(&root).unwrap();
    }
}

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
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            static N: AtomicUsize = AtomicUsize::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let name = format!("picomta-maildir-{}-{n}-{tag}", std::process::id());
            let p = std::env::temp_dir().join(name);
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).expect("temp dir");
            TempDir(p)
        }

        /// A source file holding `body`, opened for reading at its start.
        fn source(&self, body: &[u8]) -> File {
            let p = self.0.join("spool-file");
            fs::write(&p, body).expect("write source");
            File::open(&p).expect("open source")
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).expect("metadata").permissions().mode() & 0o777
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    const UNIQUE: &str = "1700000000.Q1A2B3_0.mx.example.org";

    /// A body with CRLF, a bare CR, NUL and bytes above 0x7f, larger than CHUNK.
    fn body() -> Vec<u8> {
        let mut b = b"Subject: hi\r\n\r\nline\rx\0\xff\n".to_vec();
        b.extend((0..3 * CHUNK + 17).map(|i| (i % 251) as u8));
        b
    }

    #[test]
    fn delivers_byte_exact_with_private_modes() {
        let dir = TempDir::new("exact");
        let md = dir.0.join("mail/alice/Maildir");
        let body = body();
        let src = dir.source(&body);
        let mut w = MaildirWrite::start(
            &md,
            UNIQUE,
            "bob@example.net",
            "alice@example.org",
            src,
            body.len() as u64,
        )
        .expect("start");
        for d in ["mail", "mail/alice", "mail/alice/Maildir"] {
            assert_eq!(mode(&dir.0.join(d)), 0o700, "{d}");
        }
        for d in ["tmp", "new", "cur"] {
            assert_eq!(mode(&md.join(d)), 0o700, "{d}");
        }
        assert_eq!(mode(&md.join("tmp").join(UNIQUE)), 0o600);
        assert!(!w.step(0).expect("step 0"));
        let mut steps = 0;
        while !w.step(CHUNK / 3).expect("step") {
            steps += 1;
        }
        assert!(steps >= 9, "{steps}");
        let new_dir = w.finish().expect("finish");
        assert_eq!(new_dir, md.join("new"));
        fsync_dir(&new_dir).expect("fsync new/");
        assert!(names(&md.join("tmp")).is_empty());
        let delivered = md.join("new").join(UNIQUE);
        assert_eq!(mode(&delivered), 0o600);
        let mut want =
            b"Return-Path: <bob@example.net>\nDelivered-To: alice@example.org\n".to_vec();
        want.extend(&body);
        assert_eq!(fs::read(&delivered).expect("read"), want);
    }

    #[test]
    fn existing_dirs_keep_their_mode_and_source_offset_is_respected() {
        let dir = TempDir::new("existing");
        let md = dir.0.join("Maildir");
        DirBuilder::new().mode(0o750).create(&md).expect("mkdir");
        fs::set_permissions(&md, fs::Permissions::from_mode(0o750)).expect("chmod");
        let mut src = dir.source(b"ENVELOPE\nX: y\n\nbody\n");
        src.seek(SeekFrom::Start(9)).expect("seek");
        let mut w = MaildirWrite::start(&md, UNIQUE, "", "root@localhost", src, 11).expect("start");
        assert!(w.step(usize::MAX).expect("step"));
        w.finish().expect("finish");
        assert_eq!(mode(&md), 0o750);
        assert_eq!(mode(&md.join("new")), 0o700);
        let got = fs::read(md.join("new").join(UNIQUE)).expect("read");
        assert_eq!(
            got,
            b"Return-Path: <>\nDelivered-To: root@localhost\nX: y\n\nbody\n"
        );
    }

    #[test]
    fn readable_by_an_independent_maildir_reader() {
        let dir = TempDir::new("reader");
        let md = dir.0.join("Maildir");
        let src = dir.source(b"Subject: test\n\nhello\n");
        let mut w =
            MaildirWrite::start(&md, UNIQUE, "a@b.example", "c@d.example", src, 21).expect("start");
        assert!(w.step(1000).expect("step"));
        w.finish().expect("finish");
        let reader = maildir::Maildir::from(md.clone());
        assert_eq!(reader.count_new(), 1);
        let mut entry = reader.find(UNIQUE).expect("found");
        let headers = entry.headers().expect("headers");
        let find = |k: &str| {
            headers
                .iter()
                .find(|h| h.get_key() == k)
                .map(|h| h.get_value())
        };
        assert_eq!(find("Return-Path").as_deref(), Some("<a@b.example>"));
        assert_eq!(find("Delivered-To").as_deref(), Some("c@d.example"));
        assert_eq!(find("Subject").as_deref(), Some("test"));
        // A reader moves it to cur/ with flags: still delivered.
        reader
            .move_new_to_cur_with_flags(UNIQUE, "S")
            .expect("move");
        assert!(names(&md.join("new")).is_empty());
        assert!(already_delivered(&md, UNIQUE));
    }

    #[test]
    fn o_excl_collision_leaves_the_existing_file_alone() {
        let dir = TempDir::new("excl");
        let md = dir.0.join("Maildir");
        make_dirs(&md).expect("dirs");
        let tmp = md.join("tmp").join(UNIQUE);
        fs::write(&tmp, b"someone else's").expect("write");
        let src = dir.source(b"x\n");
        let e = MaildirWrite::start(&md, UNIQUE, "a@b", "c@d", src, 2).expect_err("collision");
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&tmp).expect("still there"), b"someone else's");
    }

    #[test]
    fn truncated_source_fails_and_leaves_no_tmp_file() {
        let dir = TempDir::new("trunc");
        let md = dir.0.join("Maildir");
        let body = body();
        let src = dir.source(&body);
        let len = body.len() as u64 + 10;
        let mut w = MaildirWrite::start(&md, UNIQUE, "a@b", "c@d", src, len).expect("start");
        let e = loop {
            match w.step(CHUNK) {
                Ok(false) => continue,
                Ok(true) => panic!("a truncated source must not complete"),
                Err(e) => break e,
            }
        };
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert!(e.to_string().contains("10 bytes missing"), "{e}");
        assert!(names(&md.join("tmp")).is_empty());
        assert!(w.step(CHUNK).is_err());
        assert!(w.finish().is_err());
        assert!(names(&md.join("tmp")).is_empty() && names(&md.join("new")).is_empty());
    }

    #[test]
    fn abandon_drop_and_early_finish_remove_tmp() {
        let dir = TempDir::new("abandon");
        let md = dir.0.join("Maildir");
        let start = |u: &str| {
            let src = dir.source(b"0123456789");
            MaildirWrite::start(&md, u, "a@b", "c@d", src, 10).expect("start")
        };
        let w = start("u1");
        assert_eq!(names(&md.join("tmp")), ["u1"]);
        w.abandon();
        drop(start("u2"));
        let mut w = start("u3");
        assert!(!w.step(4).expect("step"));
        assert_eq!(
            w.finish().expect_err("early").kind(),
            io::ErrorKind::InvalidInput
        );
        assert!(names(&md.join("tmp")).is_empty() && names(&md.join("new")).is_empty());
    }

    #[test]
    fn bad_arguments_create_nothing() {
        let dir = TempDir::new("bad");
        let md = dir.0.join("Maildir");
        for (unique, rp, dt) in [
            ("", "a@b", "c@d"),
            ("../x", "a@b", "c@d"),
            (".hidden", "a@b", "c@d"),
            ("a/b", "a@b", "c@d"),
            ("a\0b", "a@b", "c@d"),
            ("ok", "a@b\r\nX-Evil: 1", "c@d"),
            ("ok", "a@b", "c@d\nX-Evil: 1"),
        ] {
            let src = dir.source(b"x");
            let e = MaildirWrite::start(&md, unique, rp, dt, src, 1).expect_err("refused");
            assert_eq!(
                e.kind(),
                io::ErrorKind::InvalidInput,
                "{unique:?} {rp:?} {dt:?}"
            );
        }
        assert!(!md.exists());
    }

    #[test]
    fn already_delivered_in_new_or_cur() {
        let dir = TempDir::new("already");
        let md = dir.0.join("Maildir");
        assert!(!already_delivered(&md, UNIQUE), "no Maildir at all");
        make_dirs(&md).expect("dirs");
        assert!(!already_delivered(&md, UNIQUE));
        fs::write(md.join("tmp").join(UNIQUE), b"").expect("tmp");
        assert!(!already_delivered(&md, UNIQUE), "tmp/ does not count");
        fs::write(md.join("new").join(UNIQUE), b"").expect("new");
        assert!(already_delivered(&md, UNIQUE));
        fs::remove_file(md.join("new").join(UNIQUE)).expect("rm");
        for (name, want) in [
            (format!("{UNIQUE}X"), false),
            (format!("{UNIQUE}:"), true),
            (format!("{UNIQUE}:2,S"), true),
        ] {
            let p = md.join("cur").join(&name);
            fs::write(&p, b"").expect("cur");
            assert_eq!(already_delivered(&md, UNIQUE), want, "{name}");
            fs::remove_file(&p).expect("rm");
        }
        fs::write(md.join("cur").join(UNIQUE), b"").expect("cur");
        assert!(already_delivered(&md, UNIQUE));
        assert!(!already_delivered(&md, "") && !already_delivered(&md, "../Maildir"));
    }

    #[test]
    fn unique_names_escape_the_host() {
        assert_eq!(unique_name(17, "Q1", 2, "a/b:c"), "17.Q1_2.a\\057b\\072c");
        assert!(valid_unique(&unique_name(17, "Q1", 0, "../..")));
    }
}

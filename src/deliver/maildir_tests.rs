//! Maildir writer tests in a temporary directory, read back with the `maildir` crate.

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
    let mut want = b"Return-Path: <bob@example.net>\nDelivered-To: alice@example.org\n".to_vec();
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

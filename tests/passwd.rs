//! `picomta passwd [USER]`: the real binary with a piped password prints a
//! password-file line whose SHA-512-crypt hash an independent implementation
//! (`openssl passwd -6`) reproduces; bad input gets the sysexits codes.

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// Runs `picomta ARGS` with `input` on stdin (a pipe, not a terminal).
fn run(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_picomta"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run picomta");
    let mut stdin = child.stdin.take().unwrap();
    // A refused argument ends the process before it reads: the pipe may be closed.
    match stdin.write_all(input) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => panic!("stdin: {e}"),
        _ => {}
    }
    drop(stdin);
    child.wait_with_output().unwrap()
}

/// The salt of a `$6$SALT$DIGEST` hash, after checking its shape: 16 salt characters
/// and 86 digest characters of crypt's base64 alphabet.
fn salt_of(hash: &str) -> &str {
    let crypt64 = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/')
    };
    let rest = hash.strip_prefix("$6$").expect("a $6$ hash");
    let (salt, digest) = rest.split_once('$').expect("$6$SALT$DIGEST");
    assert_eq!(salt.len(), 16, "{hash}");
    assert_eq!(digest.len(), 86, "{hash}");
    assert!(crypt64(salt) && crypt64(digest), "{hash}");
    salt
}

/// `openssl passwd -6 -salt SALT` of `password`, or None without openssl.
fn openssl_hash(salt: &str, password: &str) -> Option<String> {
    let child = Command::new("openssl")
        .args(["passwd", "-6", "-salt", salt, "-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("openssl not on PATH: checking the format only");
            return None;
        }
        Err(e) => panic!("openssl: {e}"),
    };
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{password}").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    Some(
        String::from_utf8(out.stdout)
            .unwrap()
            .trim_end()
            .to_string(),
    )
}

#[test]
fn passwd_with_user_prints_a_line_openssl_agrees_with() {
    let out = run(&["passwd", "alice"], b"correct horse battery staple\n");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let line = stdout.strip_suffix('\n').expect("one line");
    assert!(!line.contains('\n'), "{stdout:?}");
    let hash = line.strip_prefix("alice:").expect("alice:HASH");
    let salt = salt_of(hash);
    if let Some(theirs) = openssl_hash(salt, "correct horse battery staple") {
        assert_eq!(hash, theirs);
    }
    // Not a prompt in sight: stdin is not a terminal.
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn passwd_without_user_prints_the_hash_and_strips_crlf() {
    let out = run(&["passwd"], b"p\xc3\xa4ss word\r\nsecond line ignored\n");
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let hash = stdout.strip_suffix('\n').unwrap();
    let salt = salt_of(hash);
    if let Some(theirs) = openssl_hash(salt, "p\u{e4}ss word") {
        assert_eq!(hash, theirs);
    }
}

#[test]
fn passwd_without_a_final_newline_and_fresh_salts() {
    let a = run(&["passwd", "bob"], b"same");
    let b = run(&["passwd", "bob"], b"same\n");
    assert_eq!((a.status.code(), b.status.code()), (Some(0), Some(0)));
    let a = String::from_utf8(a.stdout).unwrap();
    let b = String::from_utf8(b.stdout).unwrap();
    assert_ne!(a, b, "each hash has its own salt");
    for line in [&a, &b] {
        let hash = line.trim_end().strip_prefix("bob:").unwrap();
        if let Some(theirs) = openssl_hash(salt_of(hash), "same") {
            assert_eq!(hash, theirs);
        }
    }
}

#[test]
fn passwd_refuses_an_empty_password_with_ex_dataerr() {
    for input in [&b""[..], b"\n", b"\r\n"] {
        let out = run(&["passwd", "alice"], input);
        assert_eq!(out.status.code(), Some(65), "{input:?}");
        assert!(out.stdout.is_empty());
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains("empty password"), "{err}");
    }
}

#[test]
fn passwd_refuses_a_user_the_file_could_not_hold() {
    for user in ["al:ice", "al ice", ""] {
        let out = run(&["passwd", user], b"secret\n");
        assert_eq!(out.status.code(), Some(64), "{user:?}");
        assert!(out.stdout.is_empty());
        assert!(!String::from_utf8(out.stderr).unwrap().contains("secret"));
    }
    let out = run(&["passwd", "alice", "bob"], b"secret\n");
    assert_eq!(out.status.code(), Some(64));
    assert!(out.stdout.is_empty());
}

#[test]
fn passwd_is_in_the_usage() {
    let out = run(&["--help"], b"");
    let usage = String::from_utf8(out.stdout).unwrap();
    assert!(usage.contains("passwd [USER]"), "{usage}");
}

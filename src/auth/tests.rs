use super::*;

use std::io::Write;
use std::process::{Command, Stdio};

// ---- SHA-crypt: known vectors, an independent implementation, round trips ----

/// Ulrich Drepper's "Unix crypt using SHA-256 and SHA-512" test vectors (SHA-512
/// part, and the first SHA-256 one): (hash as crypt(3) writes it, password). The
/// inputs with salts over 16 characters or rounds below 1000 appear as crypt(3)
/// writes them back (salt cut to 16, rounds raised to 1000).
const DREPPER: &[(&str, &str)] = &[
    (
        "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1",
        "Hello world!",
    ),
    (
        "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.",
        "Hello world!",
    ),
    (
        "$6$rounds=5000$toolongsaltstrin$lQ8jolhgVRVhY4b5pZKaysCLi0QBxGoNeKQzQ3glMhwllF7oGDZxUhx1yxdYcz/e1JSbq3y6JMxxl8audkUEm0",
        "This is just a test",
    ),
    (
        "$6$rounds=1400$anotherlongsalts$POfYwTEok97VWcjxIiSOjiykti.o/pQs.wPvMxQ6Fm7I6IoYN3CmLs66x9t0oSwbtEW7o7UmJEiDwGqd8p4ur1",
        "a very much longer text to encrypt.  This one even stretches over morethan one line.",
    ),
    (
        "$6$rounds=77777$short$WuQyW2YR.hBNpjjRhpYD/ifIw05xdfeEyQoMxIXbkvr0gge1a1x3yRULJ5CCaUeOxFmtlcGZelFl5CxtgfiAc0",
        "we have a short salt string but not a short password",
    ),
    (
        "$6$rounds=1000$roundstoolow$kUMsbe306n21p9R.FRkW3IGn.S9NPN0x50YhH1xhLsPuWGsUSklZt58jaTfF4ZEQpyUNGc0dqbpBYYBaHHrsX.",
        "the minimum number is still observed",
    ),
    (
        "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5",
        "Hello world!",
    ),
];

fn passwords(text: &str) -> Passwords {
    Passwords::parse(Path::new("pw"), text).unwrap()
}

fn parse_error(text: &str) -> ConfigError {
    Passwords::parse(Path::new("/etc/picomta.passwd"), text).unwrap_err()
}

#[test]
fn auth_drepper_vectors_load_and_verify() {
    for (index, (hash, password)) in DREPPER.iter().enumerate() {
        let file = passwords(&format!("user{index}:{hash}\n"));
        let user = format!("user{index}");
        assert!(file.verify(&user, password.as_bytes()), "vector {hash}");
        assert!(!file.verify(&user, b"wrong"), "vector {hash}");
        let mut almost = password.as_bytes().to_vec();
        almost.pop();
        assert!(!file.verify(&user, &almost), "vector {hash}");
    }
}

#[test]
fn auth_drepper_vector_with_many_rounds() {
    let hash = "$6$rounds=123456$asaltof16chars..$BtCwjqMJGx5hrJhZywWvt0RLE8uZ4oPwcelCjmw2kSYu.Ec6ycULevoBK25fs2xXgMNrCzIMVcgEJAstJeonj1";
    let file = passwords(&format!("bob:{hash}"));
    assert!(file.verify("bob", b"a short string"));
}

/// `openssl passwd -<scheme> -salt SALT -stdin` with `password` on stdin, or None
/// when openssl is not installed.
fn openssl_passwd(scheme: &str, salt: &str, password: &[u8]) -> Option<String> {
    let mut child = match Command::new("openssl")
        .args(["passwd", scheme, "-salt", salt, "-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("openssl not on PATH: skipping the comparison");
            return None;
        }
        Err(e) => panic!("openssl: {e}"),
    };
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(password).unwrap();
    stdin.write_all(b"\n").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl passwd failed");
    Some(
        String::from_utf8(out.stdout)
            .unwrap()
            .trim_end()
            .to_string(),
    )
}

#[test]
fn auth_verifies_hashes_made_by_openssl() {
    let cases: &[(&str, &str, &[u8])] = &[
        ("-6", "pQ7.x/abcdefGHIJ", b"correct horse battery staple"),
        ("-6", "s", b"p"),
        (
            "-6",
            "rounds=2000$Ab3",
            "p\u{e4}ssw\u{f6}rd \u{1f511}".as_bytes(),
        ),
        ("-5", "zz9", b"sha-256 works too"),
    ];
    for &(scheme, salt, password) in cases {
        let Some(hash) = openssl_passwd(scheme, salt, password) else {
            return;
        };
        let file = passwords(&format!("alice:{hash}\n"));
        assert!(file.verify("alice", password), "{hash}");
        assert!(!file.verify("alice", b"nope"), "{hash}");
    }
}

#[test]
fn auth_hash_password_matches_openssl_and_round_trips() {
    let password = b"round trip \xff\x01 bytes";
    let hash = hash_password(password).unwrap();
    let rest = hash.strip_prefix("$6$").expect("a $6$ hash");
    let (salt, digest) = rest.split_once('$').unwrap();
    assert_eq!(salt.len(), 16, "{hash}");
    assert!(salt.bytes().all(|b| crypt64_value(b).is_some()), "{hash}");
    assert_eq!(digest.len(), 86, "{hash}");
    assert!(check_hash(&hash).is_ok());
    let file = passwords(&format!("carol:{hash}"));
    assert!(file.verify("carol", password));
    assert!(!file.verify("carol", b"round trip"));
    // openssl reads one line: compare with a password without newlines or NULs.
    let password = b"an openssl-comparable password";
    let hash = hash_password(password).unwrap();
    let salt = hash[3..].split('$').next().unwrap();
    if let Some(theirs) = openssl_passwd("-6", salt, password) {
        assert_eq!(hash, theirs);
    }
}

#[test]
fn auth_hash_password_salts_differ() {
    let a = hash_password(b"same").unwrap();
    let b = hash_password(b"same").unwrap();
    assert_ne!(a, b);
}

#[test]
fn auth_hash_with_fixed_salt_is_deterministic_and_implicit_rounds() {
    let a = hash_with_salt(b"x", &[7; 12]).unwrap();
    let b = hash_with_salt(b"x", &[7; 12]).unwrap();
    assert_eq!(a, b);
    assert!(!a.contains("rounds="), "{a}");
    // The same digest as with the rounds field written out.
    let explicit = a.replacen("$6$", "$6$rounds=5000$", 1);
    let file = passwords(&format!("a:{a}\nb:{explicit}\n"));
    assert!(file.verify("a", b"x"));
    assert!(file.verify("b", b"x"));
}

#[test]
fn auth_dummy_hash_is_well_formed() {
    // An unknown user must cost a real computation, not a parse error.
    assert!(check_hash(DUMMY_HASH).is_ok());
    assert!(!super::sha_crypt::verify(b"guess", DUMMY_HASH));
}

#[test]
fn auth_unknown_user_fails_and_contains_len() {
    let file = passwords(&format!(
        "# users\n\nalice:{}\n  bob:{}  \n",
        DREPPER[0].0, DREPPER[6].0
    ));
    assert_eq!(file.len(), 2);
    assert!(!file.is_empty());
    assert!(file.contains("alice"));
    assert!(file.contains("bob"));
    assert!(!file.contains("Alice"));
    assert!(!file.contains("mallory"));
    assert!(!file.verify("mallory", b"Hello world!"));
    assert!(!file.verify("Alice", b"Hello world!"));
    assert!(file.verify("bob", b"Hello world!"));
    let empty = passwords("# nobody yet\n");
    assert!(empty.is_empty());
    assert!(!empty.verify("alice", b"x"));
}

#[test]
fn auth_debug_shows_users_not_hashes() {
    let file = passwords(&format!("zed:{}\nann:{}\n", DREPPER[0].0, DREPPER[1].0));
    let shown = format!("{file:?}");
    assert_eq!(shown, r#"Passwords { users: ["ann", "zed"] }"#);
}

// ---- the passwords file: errors name the line, never the secret ----

#[test]
fn auth_file_errors_name_file_and_line() {
    let good = DREPPER[0].0;
    let cases: Vec<(String, usize, &str)> = vec![
        ("alice\n".into(), 1, "expected 'user:hash'"),
        (format!("# c\n:{good}\n"), 2, "empty user name"),
        (format!("\n\nal ice:{good}\n"), 3, "whitespace"),
        (format!("a\u{7}b:{good}\n"), 1, "control character"),
        (
            format!("{}:{good}\n", "u".repeat(257)),
            1,
            "longer than 256",
        ),
        (
            format!("alice:{good}\nbob:{good}\nalice:{good}\n"),
            3,
            "duplicate user 'alice' (first on line 1)",
        ),
        (
            "alice:\n".into(),
            1,
            "plain-text or unsupported password hash refused",
        ),
        (
            "alice:hunter2\n".into(),
            1,
            "plain-text or unsupported password hash refused",
        ),
        (
            "alice:$1$abcdefgh$0123456789012345678901\n".into(),
            1,
            "MD5-crypt ('$1$') is not supported",
        ),
        (
            "alice:$2y$10$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234\n".into(),
            1,
            "bcrypt ('$2y$') is not supported",
        ),
        (
            "alice:$y$j9T$abc$defghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRS\n".into(),
            1,
            "mkpasswd -m sha-512",
        ),
        (
            "alice:$y$j9T$abc$defghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRS\n".into(),
            1,
            "openssl passwd -6",
        ),
        (
            format!(
                "alice:{}\n",
                good.replace("$6$saltstring$", "$6$rounds=2000000$saltstring$")
            ),
            1,
            "rounds=2000000 is more than 1000000",
        ),
        (
            format!(
                "alice:{}\n",
                good.replace("$6$saltstring$", "$6$rounds=999$saltstring$")
            ),
            1,
            "rounds below 1000",
        ),
        (
            format!(
                "alice:{}\n",
                good.replace("$6$saltstring$", "$6$rounds=x$saltstring$")
            ),
            1,
            "bad rounds=N",
        ),
        (
            format!(
                "alice:{}\n",
                good.replace("$6$saltstring$", "$6$nope=1$saltstring$")
            ),
            1,
            "wrong number of '$' fields",
        ),
        (
            format!(
                "alice:{}\n",
                good.replace("saltstring", "saltstringsaltstr")
            ),
            1,
            "salt longer than 16",
        ),
        (
            format!("alice:{}\n", good.replace("saltstring", "")),
            1,
            "empty salt",
        ),
        (
            format!("alice:{}\n", good.replace("saltstring", "salt*")),
            1,
            "character in the salt",
        ),
        (
            format!("alice:{}\n", &good[..good.len() - 1]),
            1,
            "85 characters instead of 86",
        ),
        (format!("alice:{good}x\n"), 1, "87 characters instead of 86"),
        (
            format!("alice:{}\n", good.replace("svn8", "svn_")),
            1,
            "character in the digest",
        ),
        (
            format!("alice:{}\n", good.replace("inz1", "inzz")),
            1,
            "impossible",
        ),
        (format!("alice:{good}:0:0::\n"), 1, "unexpected ':'"),
        (
            format!("alice:{good} # the admin\n"),
            1,
            "whitespace in the hash",
        ),
        (format!("alice:{good}$\n"), 1, "wrong number of '$' fields"),
        (
            "alice:$6$rounds=5000$\n".into(),
            1,
            "rounds=N without a salt",
        ),
        (
            "alice:$6$rounds=5000$abc\n".into(),
            1,
            "rounds=N without a salt",
        ),
        (
            "alice:$6$salt$abc\n".into(),
            1,
            "the digest has 3 characters",
        ),
        ("alice:$5$salt$abc\n".into(), 1, "instead of 43"),
    ];
    for (text, line, wanted) in cases {
        let e = parse_error(&text);
        assert_eq!(e.file, Path::new("/etc/picomta.passwd"), "{text}");
        assert_eq!(e.line, line, "{text}: {}", e.message);
        assert!(
            e.message.contains(wanted),
            "{text}: {} lacks {wanted}",
            e.message
        );
        let shown = e.to_string();
        assert!(
            shown.starts_with(&format!("/etc/picomta.passwd:{line}: ")),
            "{shown}"
        );
    }
}

#[test]
fn auth_file_errors_never_show_the_secret() {
    let good = DREPPER[0].0;
    let texts = [
        "alice:hunter2-SECRET\n".to_string(),
        "hunter2-SECRET\n".to_string(),
        "alice hunter2-SECRET:x\n".to_string(),
        format!(
            "alice:{}\n",
            good.replace("$6$saltstring$", "$6$rounds=9999999$SECRET$")
        ),
        format!("alice:{good}SECRET\n"),
        "alice:$1$SECRET$0123456789012345678901\n".to_string(),
        "alice:$SECRET$0123456789012345678901\n".to_string(),
        "alice:$SECRET\n".to_string(),
        "alice:$y$j9T$SECRET$defghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRS\n".to_string(),
    ];
    for text in texts {
        let shown = parse_error(&text).to_string();
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(!shown.contains("svn8UoSV"), "{shown}");
    }
}

#[test]
fn auth_file_accepts_the_shapes_crypt_writes() {
    let good = DREPPER[0].0;
    let file = passwords(&format!(
        "\u{e9}l\u{e8}ve@example.org:{good}\r\n\
         # comment: not a user\n\
         \t   \n\
         x:{}\n\
         max:{}\n",
        good.replace("$6$saltstring$", "$6$rounds=1000000$saltstring$"),
        good.replace("saltstring", "a-b+c=d,e./0123")
    ));
    assert_eq!(file.len(), 3);
    assert!(file.verify("\u{e9}l\u{e8}ve@example.org", b"Hello world!"));
}

#[test]
fn auth_load_reads_the_file_and_reports_unreadable_and_bad_utf8() {
    let dir = std::env::temp_dir().join(format!("picomta-auth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("passwords");
    std::fs::write(&path, format!("alice:{}\n", DREPPER[0].0)).unwrap();
    let file = Passwords::load(&path).unwrap();
    assert!(file.verify("alice", b"Hello world!"));

    std::fs::write(&path, b"# ok\nalice:\xff\n").unwrap();
    let e = Passwords::load(&path).unwrap_err();
    assert_eq!((e.line, e.message.as_str()), (2, "not valid UTF-8"));

    let missing = dir.join("missing");
    let e = Passwords::load(&missing).unwrap_err();
    assert_eq!(e.line, 0);
    assert_eq!(e.file, missing);
    assert!(e.message.starts_with("cannot read: "), "{}", e.message);
    assert!(e
        .to_string()
        .starts_with(&format!("{}: cannot read", missing.display())));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn auth_user_name_rules() {
    assert_eq!(user_name_problem("alice"), None);
    assert_eq!(user_name_problem("alice@example.org"), None);
    assert_eq!(user_name_problem(&"u".repeat(256)), None);
    assert!(user_name_problem("").is_some());
    assert!(user_name_problem(&"u".repeat(257)).is_some());
    assert!(user_name_problem("a:b").is_some());
    assert!(user_name_problem("a b").is_some());
    assert!(user_name_problem("a\tb").is_some());
    assert!(user_name_problem("a\nb").is_some());
    assert!(user_name_problem("a\u{0}b").is_some());
    assert!(user_name_problem("a\u{a0}b").is_some());
}

// ---- a SASL exchange feeding the password check ----

#[test]
fn auth_sasl_then_verify() {
    let file = passwords(&format!("alice:{}\n", DREPPER[0].0));
    let (_, step) = SaslExchange::start(Mechanism::Plain, Some("AGFsaWNlAEhlbGxvIHdvcmxkIQ=="));
    let SaslStep::Done { user, password } = step else {
        panic!("{step:?}");
    };
    assert!(file.verify(&user, &password));
}

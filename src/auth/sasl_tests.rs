//! SASL and base64 tests: every exchange path and encoding edge.

use super::*;

// ---- base64 ----

#[test]
fn auth_base64_rfc4648_vectors() {
    let vectors: &[(&[u8], &str)] = &[
        (b"", ""),
        (b"f", "Zg=="),
        (b"fo", "Zm8="),
        (b"foo", "Zm9v"),
        (b"foob", "Zm9vYg=="),
        (b"fooba", "Zm9vYmE="),
        (b"foobar", "Zm9vYmFy"),
        (b"\0alice\0secret", "AGFsaWNlAHNlY3JldA=="),
        (b"\xfb\xff\xbf", "+/+/"),
        (b"Username:", "VXNlcm5hbWU6"),
        (b"Password:", "UGFzc3dvcmQ6"),
    ];
    for &(bytes, text) in vectors {
        assert_eq!(encode_base64(bytes), text);
        assert_eq!(
            decode_base64(text.as_bytes()).as_deref(),
            Some(bytes),
            "{text}"
        );
    }
}

#[test]
fn auth_base64_round_trips_every_length_and_byte() {
    let bytes: Vec<u8> = (0..=255u8).rev().chain(0..=255).collect();
    for len in 0..bytes.len() {
        let text = encode_base64(&bytes[..len]);
        assert_eq!(text.len() % 4, 0);
        assert_eq!(
            decode_base64(text.as_bytes()).as_deref(),
            Some(&bytes[..len])
        );
    }
}

#[test]
fn auth_base64_rejects_junk() {
    let junk: &[&[u8]] = &[
        b"Zg",       // no padding
        b"Zg=",      // short padding
        b"Zm9",      // not a multiple of 4
        b"Zg===",    // too long
        b"Z===",     // three pads
        b"====",     // only pads
        b"Zh==",     // unused bits set
        b"Zm9=",     // unused bits set
        b"Zg==Zg==", // padding in the middle
        b"Zm=v",     // `=` inside a group
        b"Zm9v\r\n", // line end
        b" Zm9v",    // whitespace
        b"Zm 9v",    // whitespace
        b"Zm9v-_==", // URL-safe alphabet
        b"Zm9v\0\0\0\0",
        b"*",
        b"=",
        b"\xc3\xa9\xc3\xa9",
    ];
    for &text in junk {
        assert_eq!(
            decode_base64(text),
            None,
            "{:?}",
            String::from_utf8_lossy(text)
        );
    }
}

// ---- SASL ----

fn b64(bytes: &[u8]) -> String {
    encode_base64(bytes)
}

fn done(user: &str, password: &[u8]) -> SaslStep {
    SaslStep::Done {
        user: user.to_string(),
        password: password.to_vec(),
    }
}

#[test]
fn auth_mechanism_names() {
    assert_eq!(Mechanism::parse("PLAIN"), Some(Mechanism::Plain));
    assert_eq!(Mechanism::parse("plain"), Some(Mechanism::Plain));
    assert_eq!(Mechanism::parse("Login"), Some(Mechanism::Login));
    assert_eq!(Mechanism::parse("CRAM-MD5"), None);
    assert_eq!(Mechanism::parse("PLAINX"), None);
    assert_eq!(Mechanism::parse(""), None);
    assert_eq!(Mechanism::Plain.name(), "PLAIN");
    assert_eq!(Mechanism::Login.name(), "LOGIN");
}

#[test]
fn auth_plain_with_initial_response() {
    let initial = b64(b"\0alice\0s3cret");
    let (_, step) = SaslExchange::start(Mechanism::Plain, Some(&initial));
    assert_eq!(step, done("alice", b"s3cret"));
    // authzid equal to authcid.
    let initial = b64(b"alice\0alice\0s3cret");
    let (_, step) = SaslExchange::start(Mechanism::Plain, Some(&initial));
    assert_eq!(step, done("alice", b"s3cret"));
    // UTF-8 user, password with any bytes but NUL.
    let initial = b64("\0\u{e9}l\u{e8}ve\0\u{ff}p w\r\n".as_bytes());
    let (_, step) = SaslExchange::start(Mechanism::Plain, Some(&initial));
    assert_eq!(step, done("\u{e9}l\u{e8}ve", "\u{ff}p w\r\n".as_bytes()));
}

#[test]
fn auth_plain_without_initial_response() {
    let (mut exchange, step) = SaslExchange::start(Mechanism::Plain, None);
    assert_eq!(step, SaslStep::Challenge(""));
    let step = exchange.respond(b64(b"\0bob\0pw").as_bytes());
    assert_eq!(step, done("bob", b"pw"));
    // Nothing more is expected.
    assert_eq!(
        exchange.respond(b64(b"\0bob\0pw").as_bytes()),
        SaslStep::Failed(SaslError::Malformed)
    );
}

#[test]
fn auth_plain_malformed() {
    let bad: &[&[u8]] = &[
        b"",                   // empty
        b"alice",              // no NUL
        b"\0alice",            // one NUL
        b"\0alice\0pw\0extra", // three NULs
        b"\0\0pw",             // empty user
        b"\0alice\0",          // empty password
        b"bob\0alice\0pw",     // acting as another user
        b"Alice\0alice\0pw",   // authzid compared exactly
        b"\0al\xffice\0pw",    // user not UTF-8
        b"\0al ice\0pw",       // user the file could not hold
        b"\0al:ice\0pw",
        b"\0al\nice\0pw", // would forge a log line
    ];
    for &message in bad {
        let (_, step) = SaslExchange::start(Mechanism::Plain, Some(&b64(message)));
        assert_eq!(step, SaslStep::Failed(SaslError::Malformed), "{message:?}");
        let (mut exchange, _) = SaslExchange::start(Mechanism::Plain, None);
        assert_eq!(
            exchange.respond(b64(message).as_bytes()),
            SaslStep::Failed(SaslError::Malformed),
            "{message:?}"
        );
    }
    // `=`: an empty initial response, which PLAIN cannot use.
    let (_, step) = SaslExchange::start(Mechanism::Plain, Some("="));
    assert_eq!(step, SaslStep::Failed(SaslError::Malformed));
    // A user name of exactly 256 bytes is fine, 257 is not.
    let long = format!("\0{}\0pw", "u".repeat(256));
    let (_, step) = SaslExchange::start(Mechanism::Plain, Some(&b64(long.as_bytes())));
    assert_eq!(step, done(&"u".repeat(256), b"pw"));
    let long = format!("\0{}\0pw", "u".repeat(257));
    let (_, step) = SaslExchange::start(Mechanism::Plain, Some(&b64(long.as_bytes())));
    assert_eq!(step, SaslStep::Failed(SaslError::Malformed));
}

#[test]
fn auth_plain_cancel_and_bad_base64() {
    let (mut exchange, _) = SaslExchange::start(Mechanism::Plain, None);
    assert_eq!(
        exchange.respond(b"*"),
        SaslStep::Failed(SaslError::Cancelled)
    );
    let (mut exchange, _) = SaslExchange::start(Mechanism::Plain, None);
    assert_eq!(
        exchange.respond(b"AGFsaWNlAHB3="),
        SaslStep::Failed(SaslError::BadBase64)
    );
    let (mut exchange, _) = SaslExchange::start(Mechanism::Plain, None);
    assert_eq!(
        exchange.respond(b"* "),
        SaslStep::Failed(SaslError::BadBase64)
    );
    let (_, step) = SaslExchange::start(Mechanism::Plain, Some("AGFsaWNlAHB"));
    assert_eq!(step, SaslStep::Failed(SaslError::BadBase64));
    let (_, step) = SaslExchange::start(Mechanism::Plain, Some("*"));
    assert_eq!(step, SaslStep::Failed(SaslError::Cancelled));
}

#[test]
fn auth_login_exchange() {
    let (mut exchange, step) = SaslExchange::start(Mechanism::Login, None);
    assert_eq!(step, SaslStep::Challenge("VXNlcm5hbWU6"));
    assert_eq!(decode_base64(b"VXNlcm5hbWU6").unwrap(), b"Username:");
    let step = exchange.respond(b64(b"alice").as_bytes());
    assert_eq!(step, SaslStep::Challenge("UGFzc3dvcmQ6"));
    assert_eq!(decode_base64(b"UGFzc3dvcmQ6").unwrap(), b"Password:");
    let step = exchange.respond(b64(b"pass word").as_bytes());
    assert_eq!(step, done("alice", b"pass word"));
    assert_eq!(
        exchange.respond(b"*"),
        SaslStep::Failed(SaslError::Cancelled)
    );
}

#[test]
fn auth_login_with_initial_response_is_the_user() {
    let (mut exchange, step) = SaslExchange::start(Mechanism::Login, Some(&b64(b"bob")));
    assert_eq!(step, SaslStep::Challenge("UGFzc3dvcmQ6"));
    assert_eq!(exchange.respond(b64(b"pw").as_bytes()), done("bob", b"pw"));
    // `=`: an empty user name.
    let (_, step) = SaslExchange::start(Mechanism::Login, Some("="));
    assert_eq!(step, SaslStep::Failed(SaslError::Malformed));
    let (_, step) = SaslExchange::start(Mechanism::Login, Some("Ym9i="));
    assert_eq!(step, SaslStep::Failed(SaslError::BadBase64));
    let (_, step) = SaslExchange::start(Mechanism::Login, Some("*"));
    assert_eq!(step, SaslStep::Failed(SaslError::Cancelled));
}

#[test]
fn auth_login_failures_at_each_step() {
    // Cancel at the user name, then at the password.
    let (mut exchange, _) = SaslExchange::start(Mechanism::Login, None);
    assert_eq!(
        exchange.respond(b"*"),
        SaslStep::Failed(SaslError::Cancelled)
    );
    let (mut exchange, _) = SaslExchange::start(Mechanism::Login, None);
    exchange.respond(b64(b"alice").as_bytes());
    assert_eq!(
        exchange.respond(b"*"),
        SaslStep::Failed(SaslError::Cancelled)
    );
    // Bad base64 at each step.
    let (mut exchange, _) = SaslExchange::start(Mechanism::Login, None);
    assert_eq!(
        exchange.respond(b"alice"),
        SaslStep::Failed(SaslError::BadBase64)
    );
    let (mut exchange, _) = SaslExchange::start(Mechanism::Login, None);
    exchange.respond(b64(b"alice").as_bytes());
    assert_eq!(
        exchange.respond(b"cHc"),
        SaslStep::Failed(SaslError::BadBase64)
    );
    // Empty or unusable user names, an empty password.
    for user in [&b""[..], b"al ice", b"a:b", b"\xff", b"a\r\nb"] {
        let (mut exchange, _) = SaslExchange::start(Mechanism::Login, None);
        assert_eq!(
            exchange.respond(b64(user).as_bytes()),
            SaslStep::Failed(SaslError::Malformed),
            "{user:?}"
        );
    }
    let (mut exchange, _) = SaslExchange::start(Mechanism::Login, None);
    exchange.respond(b64(b"alice").as_bytes());
    assert_eq!(
        exchange.respond(b""),
        SaslStep::Failed(SaslError::Malformed)
    );
    // After a failure, nothing more is accepted.
    assert_eq!(
        exchange.respond(b64(b"pw").as_bytes()),
        SaslStep::Failed(SaslError::Malformed)
    );
}

//! The TLS and AUTH settings in the config: bad certificate, key and
//! password files are config errors naming `file:line` (exit 78) for both
//! `check` and `serve`; the key formats admins have (PKCS#8, PKCS#1, SEC1)
//! all load; `check` prints the new settings as a config that means the
//! same; `picomta passwd` makes hashes openssl agrees with.

mod common;

use std::fs;
use std::path::Path;
use std::process::Output;

use common::tls;
use common::*;

const EX_CONFIG: i32 = 78;

/// A minimal config in `dir` plus `extra` lines; returns its path.
fn conf(dir: &TestDir, name: &str, extra: &str) -> String {
    let text = format!(
        "hostname mx.check.example\nlisten 127.0.0.1:{port}\nspool {spool}\n{extra}",
        port = free_port(),
        spool = dir.path.join("spool").display(),
    );
    dir.write(name, &text).to_string_lossy().into_owned()
}

/// Asserts `check` and `serve` both refuse `conf` with exit 78 and a
/// message that contains `want`.
fn assert_config_error(conf: &str, want: &str) {
    for cmd in ["check", "serve"] {
        let (code, _out, err) = run_binary(&[cmd, "-c", conf]);
        assert_eq!(
            code,
            Some(EX_CONFIG),
            "{cmd}: exit {code:?}, stderr:\n{err}"
        );
        assert!(err.contains(want), "{cmd}: stderr lacks '{want}':\n{err}");
    }
}

fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

#[test]
fn certificate_and_key_errors_name_the_config_line() {
    let dir = TestDir::new("conftls-cert");
    let cert = tls::ca_signed(&dir.path);
    let missing = dir.path.join("no-such-cert.pem");
    // Line 4: the tls_cert line (three lines of preamble).
    let c = conf(
        &dir,
        "missing-cert.conf",
        &format!("tls_cert {}\ntls_key {}\n", path(&missing), path(&cert.key)),
    );
    assert_config_error(&c, &format!("{c}:4:"));

    let missing_key = dir.path.join("no-such-key.pem");
    let c = conf(
        &dir,
        "missing-key.conf",
        &format!(
            "tls_cert {}\ntls_key {}\n",
            path(&cert.cert),
            path(&missing_key)
        ),
    );
    assert_config_error(&c, &format!("{c}:5:"));

    let garbage = dir.write("garbage.pem", "this is not PEM\n");
    let c = conf(
        &dir,
        "garbage-cert.conf",
        &format!("tls_cert {}\ntls_key {}\n", path(&garbage), path(&cert.key)),
    );
    assert_config_error(&c, &format!("{c}:4:"));
    let c = conf(
        &dir,
        "garbage-key.conf",
        &format!(
            "tls_cert {}\ntls_key {}\n",
            path(&cert.cert),
            path(&garbage)
        ),
    );
    assert_config_error(&c, &format!("{c}:5:"));
    // A certificate given as the key: PEM, but no key in it.
    let c = conf(
        &dir,
        "cert-as-key.conf",
        &format!(
            "tls_cert {}\ntls_key {}\n",
            path(&cert.cert),
            path(&cert.cert)
        ),
    );
    assert_config_error(&c, &format!("{c}:5:"));

    // Both or neither.
    let c = conf(
        &dir,
        "cert-only.conf",
        &format!("tls_cert {}\n", path(&cert.cert)),
    );
    assert_config_error(&c, "tls_key");
    let c = conf(
        &dir,
        "key-only.conf",
        &format!("tls_key {}\n", path(&cert.key)),
    );
    assert_config_error(&c, "tls_cert");
}

#[test]
fn smtps_and_submission_need_a_certificate_and_passwords() {
    let dir = TestDir::new("conftls-needs");
    let cert = tls::ca_signed(&dir.path);
    let pw = tls::write_passwords(&dir.path, &ACCOUNTS);
    let tls_lines = format!(
        "tls_cert {}\ntls_key {}\n",
        path(&cert.cert),
        path(&cert.key)
    );
    for kind in ["smtps", "submission"] {
        let listen = format!("listen 127.0.0.1:{} {kind}\n", free_port());
        let c = conf(
            &dir,
            &format!("{kind}-no-cert.conf"),
            &format!("{listen}passwords {}\n", path(&pw)),
        );
        assert_config_error(&c, &format!("{c}:"));
        let c = conf(
            &dir,
            &format!("{kind}-no-passwords.conf"),
            &format!("{listen}{tls_lines}"),
        );
        assert_config_error(&c, &format!("{c}:"));
        let c = conf(
            &dir,
            &format!("{kind}-ok.conf"),
            &format!("{listen}{tls_lines}passwords {}\n", path(&pw)),
        );
        let (code, _, err) = run_binary(&["check", "-c", &c]);
        assert_eq!(code, Some(0), "{kind} with cert and passwords: {err}");
    }
    let c = conf(
        &dir,
        "bad-kind.conf",
        &format!("listen 127.0.0.1:{} smtpx\n", free_port()),
    );
    assert_config_error(&c, &format!("{c}:4:"));
}

#[test]
fn password_file_errors_name_the_password_file_line() {
    let dir = TestDir::new("conftls-passwords");
    let good = tls::account_line("alice", "Alice pass 1");
    for (what, bad_line) in [
        ("plain text", "bob:bob-password".to_string()),
        (
            "MD5-crypt",
            "bob:$1$bobsalt$Ffe4Pd0wRa3IsPIIV0F4y0".to_string(),
        ),
        ("no colon", "bob".to_string()),
        ("empty hash", "bob:".to_string()),
        ("bad $6$", "bob:$6$salt".to_string()),
    ] {
        // Line 4 after a comment, a good line and a blank line.
        let pw = dir.write("passwords", &format!("# accounts\n{good}\n\n{bad_line}\n"));
        let c = conf(&dir, "pw.conf", &format!("passwords {}\n", path(&pw)));
        let want = format!("{}:4:", path(&pw));
        for cmd in ["check", "serve"] {
            let (code, _out, err) = run_binary(&[cmd, "-c", &c]);
            assert_eq!(
                code,
                Some(EX_CONFIG),
                "{cmd} with a {what} password line: exit {code:?}, stderr:\n{err}"
            );
            assert!(
                err.contains(&want),
                "{cmd} with {what}: no '{want}' in:\n{err}"
            );
        }
    }
    let nope = path(&dir.path.join("nope"));
    let c = conf(&dir, "pw-missing.conf", &format!("passwords {nope}\n"));
    assert_config_error(&c, &nope);
}

#[test]
fn other_new_keys_are_checked() {
    let dir = TestDir::new("conftls-keys");
    for (what, line) in [
        ("relay_networks", "relay_networks 10.0.0.0/33"),
        ("relay_networks", "relay_networks example.org"),
        (
            "plaintext_auth_on_loopback",
            "plaintext_auth_on_loopback maybe",
        ),
        ("sender_login", "sender_login maybe"),
    ] {
        let c = conf(&dir, "k.conf", &format!("{line}\n"));
        let (code, _, err) = run_binary(&["check", "-c", &c]);
        assert_eq!(code, Some(EX_CONFIG), "{what}: {line}: {err}");
        assert!(err.contains(&format!("{c}:4:")), "{line}: {err}");
    }
}

#[test]
fn check_prints_the_new_settings_as_a_fixed_point() {
    let dir = TestDir::new("conftls-check");
    let cert = tls::ca_signed(&dir.path);
    let pw = tls::write_passwords(&dir.path, &ACCOUNTS);
    let c = conf(
        &dir,
        "all.conf",
        &format!(
            "listen 127.0.0.1:{} submission\nlisten 127.0.0.1:{} smtps\n\
             tls_cert {}\ntls_key {}\npasswords {}\n\
             relay_networks 192.0.2.0/24 2001:db8::/32\nrelay_networks 10.1.0.0/16\n\
             plaintext_auth_on_loopback yes\nsender_login yes\n",
            free_port(),
            free_port(),
            path(&cert.cert),
            path(&cert.key),
            path(&pw)
        ),
    );
    let (code, out, err) = run_binary(&["check", "-c", &c]);
    assert_eq!(code, Some(0), "{err}");
    for want in [
        "smtps",
        "submission",
        "tls_cert",
        "tls_key",
        "passwords",
        "192.0.2.0/24",
        "10.1.0.0/16",
        "plaintext_auth_on_loopback yes",
        "sender_login yes",
    ] {
        assert!(
            out.contains(want),
            "'{want}' missing from check output:\n{out}"
        );
    }
    let again = dir.write("again.conf", &out);
    let (code, out2, err2) = run_binary(&["check", "-c", &path(&again)]);
    assert_eq!(code, Some(0), "check of check's output failed: {err2}");
    assert_eq!(out2, out, "check output is not a fixed point");

    // The defaults are printed too.
    let c = conf(&dir, "defaults.conf", "");
    let (code, out, err) = run_binary(&["check", "-c", &c]);
    assert_eq!(code, Some(0), "{err}");
    for key in [
        "relay_networks",
        "plaintext_auth_on_loopback",
        "sender_login",
    ] {
        assert!(
            out.lines()
                .any(|l| l.split_whitespace().next() == Some(key)),
            "no '{key}' line in check output:\n{out}"
        );
    }
}

fn openssl(args: &[&str]) -> Output {
    let out = tls::run_tool("openssl", args, &[], b"", TIMEOUT);
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Keys as admins have them: PKCS#8 (rcgen), SEC1 (`BEGIN EC PRIVATE KEY`)
/// and an RSA key in PKCS#1 (`BEGIN RSA PRIVATE KEY`), each with a
/// certificate openssl made; the server loads each and completes a handshake.
#[test]
fn key_formats_pkcs8_pkcs1_and_sec1_load() {
    let dir = TestDir::new("conftls-keyformats");
    let p = |n: &str| path(&dir.path.join(n));
    let run = |cmd: &str| {
        // Split first, then put the directory in: a path with spaces stays one word.
        let words: Vec<String> = cmd
            .split_whitespace()
            .map(|w| w.replace("{dir}", &path(&dir.path)))
            .collect();
        let refs: Vec<&str> = words.iter().map(String::as_str).collect();
        openssl(&refs);
    };
    let leaf = "-nodes -days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost \
                -addext basicConstraints=critical,CA:FALSE";
    // RSA, PKCS#1.
    run(&format!(
        "req -x509 -newkey rsa:2048 {leaf} -keyout {{dir}}/rsa8.pem -out {{dir}}/rsa.crt"
    ));
    run("rsa -in {dir}/rsa8.pem -traditional -out {dir}/rsa1.pem");
    // EC P-256, SEC1.
    run(&format!(
        "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 {leaf} \
         -keyout {{dir}}/ec8.pem -out {{dir}}/ec.crt"
    ));
    run("ec -in {dir}/ec8.pem -out {dir}/sec1.pem");
    let head = |n: &str| fs::read_to_string(dir.path.join(n)).unwrap_or_default();
    assert!(head("rsa1.pem").starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    assert!(head("sec1.pem").starts_with("-----BEGIN EC PRIVATE KEY-----"));
    assert!(head("rsa8.pem").starts_with("-----BEGIN PRIVATE KEY-----"));

    for (crt, key) in [
        ("rsa.crt", "rsa1.pem"),
        ("rsa.crt", "rsa8.pem"),
        ("ec.crt", "sec1.pem"),
        ("ec.crt", "ec8.pem"),
    ] {
        let server = Setup::new(&format!("keyformat-{key}"))
            .with(&format!("tls_cert {}", p(crt)))
            .with(&format!("tls_key {}", p(key)))
            .start();
        let der = pem_to_der(&head(crt));
        let cfg = tls::client_config(&der, &[]);
        let mut t = server.connect_ehlo().starttls(cfg);
        t.ehlo();
        t.ok("NOOP", 250, "2.0.0");
    }
}

/// The DER of the first certificate in a PEM text (a small decoder, to keep
/// the test free of the server's PEM code).
fn pem_to_der(pem: &str) -> rustls::pki_types::CertificateDer<'static> {
    let b64: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE-----"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("bad base64 in PEM"),
        }
    };
    let mut out = Vec::new();
    let bytes: Vec<u8> = b64.bytes().filter(|&c| c != b'=').collect();
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= val(c) << (18 - 6 * i);
        }
        let full = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&full[..chunk.len() - 1]);
    }
    rustls::pki_types::CertificateDer::from(out)
}

/// `picomta passwd USER` reads a password on stdin and prints `USER:HASH`;
/// openssl, given the same salt, must compute the same hash, and the server
/// must accept the password against it.
#[test]
fn passwd_makes_hashes_openssl_agrees_with() {
    let out = tls::run_tool(
        &binary(),
        &["passwd", "erin"],
        &[],
        b"erin's pass phrase\n",
        TIMEOUT,
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "picomta passwd failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout.lines().last().unwrap_or_default().trim().to_string();
    let hash = line
        .strip_prefix("erin:")
        .unwrap_or_else(|| panic!("not 'erin:HASH': {line:?}"));
    assert!(hash.starts_with("$6$"), "not SHA-512-crypt: {hash}");
    let parts: Vec<&str> = hash.split('$').collect();
    // "", "6", [rounds=N,] salt, digest
    let salt = if parts[2].starts_with("rounds=") {
        format!("{}${}", parts[2], parts[3])
    } else {
        parts[2].to_string()
    };
    if !salt.starts_with("rounds=") {
        assert_eq!(
            tls::crypt_hash("6", "erin's pass phrase", &salt),
            hash,
            "openssl passwd -6 disagrees"
        );
    }
    // And the server takes it.
    let server = Setup::new("conftls-passwd")
        .users(&["alice", "erin"])
        .with("passwords {dir}/erin.pw")
        .with("plaintext_auth_on_loopback yes")
        .file("erin.pw", &format!("{line}\n"))
        .start();
    let mut c = server.connect_ehlo();
    c.auth_plain("erin", "erin's pass phrase")
        .assert(235, "2.7.0");
}

use std::path::{Path, PathBuf};

use rustls::pki_types::ServerName;
use rustls::{ClientConnection, ServerConnection};

use super::*;

/// A directory with a fresh self-signed certificate for `localhost`.
struct CertDir {
    dir: PathBuf,
    cert_pem: String,
}

impl CertDir {
    fn new(name: &str) -> CertDir {
        let dir = std::env::temp_dir().join(format!("picomta-tls-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let cert_pem = made.cert.pem();
        std::fs::write(dir.join("cert.pem"), &cert_pem).unwrap();
        std::fs::write(dir.join("key.pem"), made.signing_key.serialize_pem()).unwrap();
        CertDir { dir, cert_pem }
    }

    fn config(&self, extra: &str) -> Config {
        let text = format!(
            "# test\ntls_cert {}\ntls_key {}\n{extra}",
            self.dir.join("cert.pem").display(),
            self.dir.join("key.pem").display()
        );
        Config::parse(Path::new("test.conf"), &text).unwrap()
    }
}

impl Drop for CertDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs a whole handshake between the two in memory.
fn handshake(client: &mut ClientConnection, server: &mut ServerConnection) -> Result<(), String> {
    for _ in 0..10 {
        let mut wire = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut wire).unwrap();
        }
        let mut slice = wire.as_slice();
        while !slice.is_empty() {
            server.read_tls(&mut slice).unwrap();
        }
        server
            .process_new_packets()
            .map_err(|e| format!("server: {e}"))?;
        let mut wire = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut wire).unwrap();
        }
        let mut slice = wire.as_slice();
        while !slice.is_empty() {
            client.read_tls(&mut slice).unwrap();
        }
        client
            .process_new_packets()
            .map_err(|e| format!("client: {e}"))?;
        if !client.is_handshaking() && !server.is_handshaking() {
            return Ok(());
        }
    }
    Err("handshake did not finish".into())
}

fn localhost() -> ServerName<'static> {
    ServerName::try_from("localhost").unwrap()
}

#[test]
fn no_certificate_means_no_tls() {
    let config = Config::parse(Path::new("t.conf"), "").unwrap();
    assert!(load_server(&config).unwrap().is_none());
}

#[test]
fn server_and_both_client_kinds_agree() {
    let dir = CertDir::new("agree");
    let server_config = load_server(&dir.config("")).unwrap().unwrap();

    let mut server = ServerConnection::new(server_config.clone()).unwrap();
    let mut client = ClientConnection::new(super::client(ServerCheck::Any), localhost()).unwrap();
    handshake(&mut client, &mut server).unwrap();
    let info = TlsInfo::of(&server);
    assert_eq!(info.protocol, "TLSv1.3");
    assert!(info.cipher.starts_with("TLS13_"), "{info}");

    let bundle = dir.dir.join("ca.pem");
    std::fs::write(&bundle, &dir.cert_pem).unwrap();
    let roots = load_roots(&bundle).unwrap();
    let mut server = ServerConnection::new(server_config).unwrap();
    let mut client =
        ClientConnection::new(super::client(ServerCheck::Roots(roots)), localhost()).unwrap();
    handshake(&mut client, &mut server).unwrap();
}

#[test]
fn verified_client_refuses_an_unknown_certificate() {
    let dir = CertDir::new("refuse");
    let other = CertDir::new("refuse-other");
    let server_config = load_server(&dir.config("")).unwrap().unwrap();
    let bundle = other.dir.join("ca.pem");
    std::fs::write(&bundle, &other.cert_pem).unwrap();
    let roots = load_roots(&bundle).unwrap();
    let mut server = ServerConnection::new(server_config).unwrap();
    let mut client =
        ClientConnection::new(super::client(ServerCheck::Roots(roots)), localhost()).unwrap();
    let err = handshake(&mut client, &mut server).unwrap_err();
    assert!(err.starts_with("client:"), "{err}");
}

#[test]
fn file_problems_name_the_config_line() {
    let dir = CertDir::new("errors");
    let missing = Config::parse(
        Path::new("t.conf"),
        "hostname a.example\ntls_cert /nonexistent/cert.pem\ntls_key /nonexistent/key.pem\n",
    )
    .unwrap();
    let e = load_server(&missing).unwrap_err();
    assert_eq!(e.line, 2, "{e}");
    assert!(
        e.to_string()
            .starts_with("t.conf:2: cannot read certificates from '/nonexistent/cert.pem'"),
        "{e}"
    );

    // The key of another certificate.
    let other = CertDir::new("errors-other");
    let text = format!(
        "tls_cert {}\n\ntls_key {}\n",
        dir.dir.join("cert.pem").display(),
        other.dir.join("key.pem").display()
    );
    let mismatched = Config::parse(Path::new("t.conf"), &text).unwrap();
    let e = load_server(&mismatched).unwrap_err();
    assert_eq!(e.line, 3, "{e}");
    assert!(e.message.contains("cannot be used"), "{e}");

    // A key file given as the certificate.
    let text = format!(
        "tls_cert {}\ntls_key {}\n",
        dir.dir.join("key.pem").display(),
        dir.dir.join("key.pem").display()
    );
    let swapped = Config::parse(Path::new("t.conf"), &text).unwrap();
    let e = load_server(&swapped).unwrap_err();
    assert_eq!(e.line, 1, "{e}");
    assert!(e.message.contains("no CERTIFICATE block"), "{e}");
}

#[test]
fn old_protocol_versions_are_refused() {
    let dir = CertDir::new("old");
    let server_config = load_server(&dir.config("")).unwrap().unwrap();
    let mut server = ServerConnection::new(server_config).unwrap();
    // A TLS 1.0 ClientHello: version 3.1, two classic suites, no extensions.
    let mut hello = vec![0x03, 0x01];
    hello.extend_from_slice(&[7; 32]);
    hello.extend_from_slice(&[0, 0, 4, 0x00, 0x2f, 0x00, 0x35, 1, 0]);
    let mut handshake = vec![1, 0, 0, hello.len() as u8];
    handshake.extend_from_slice(&hello);
    let mut record = vec![0x16, 0x03, 0x01, 0, handshake.len() as u8];
    record.extend_from_slice(&handshake);
    server.read_tls(&mut record.as_slice()).unwrap();
    assert!(server.process_new_packets().is_err());
    let mut answer = Vec::new();
    while server.wants_write() {
        server.write_tls(&mut answer).unwrap();
    }
    assert_eq!(
        answer.first(),
        Some(&0x15),
        "an alert, not a ServerHello: {answer:?}"
    );
}

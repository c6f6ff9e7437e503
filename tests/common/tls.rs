//! TLS and AUTH test infrastructure: certificates made at test time (rcgen),
//! a password file hashed by an independent implementation (`openssl passwd`),
//! a TLS SMTP client over rustls (STARTTLS upgrade and implicit TLS), a
//! hand-made legacy ClientHello for the "old TLS is refused" tests, and a
//! runner for Python scripts (smtplib + ssl: OpenSSL, another independent
//! SMTP and TLS implementation).

use std::fs;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{
    ClientConfig, ClientConnection, RootCertStore, StreamOwned, SupportedProtocolVersion,
};

use super::client::{connect_tcp, Client, Transport};
use super::{Server, TIMEOUT};

/// The name the test certificates are issued for (and the SNI clients send).
pub const CERT_NAME: &str = "localhost";

/// A server certificate and key on disk, and what a client must trust.
#[derive(Debug, Clone)]
pub struct TestCert {
    /// The PEM chain the server presents (`tls_cert`).
    pub cert: PathBuf,
    /// The PEM private key (`tls_key`), PKCS#8.
    pub key: PathBuf,
    /// The PEM certificate a client trusts (the CA, or the cert itself).
    pub ca: PathBuf,
    /// `ca` in DER, for rustls clients.
    pub ca_der: CertificateDer<'static>,
}

/// Which kind of certificate a test server gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertKind {
    /// A leaf for `localhost` and 127.0.0.1 signed by a test CA.
    CaSigned,
    /// One self-signed certificate for `localhost` and 127.0.0.1.
    SelfSigned,
}

fn leaf_params() -> CertificateParams {
    leaf_params_for(&[CERT_NAME, "127.0.0.1"])
}

/// A server leaf for `names`: each an IP address (an IP SAN) or a DNS name.
fn leaf_params_for(names: &[&str]) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("no names");
    for n in names {
        p.subject_alt_names.push(match n.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName((*n).try_into().expect("valid DNS name")),
        });
    }
    p.distinguished_name
        .push(DnType::CommonName, "picomta test server");
    p.key_usages.push(KeyUsagePurpose::DigitalSignature);
    p.extended_key_usages
        .push(ExtendedKeyUsagePurpose::ServerAuth);
    p
}

/// A self-signed certificate and its key in `dir` (`cert.pem`, `key.pem`).
pub fn self_signed(dir: &Path) -> TestCert {
    let key = KeyPair::generate().expect("generate key");
    let cert = leaf_params().self_signed(&key).expect("self-sign");
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    fs::write(&cert_path, cert.pem()).expect("write cert.pem");
    fs::write(&key_path, key.serialize_pem()).expect("write key.pem");
    TestCert {
        ca: cert_path.clone(),
        cert: cert_path,
        key: key_path,
        ca_der: cert.der().clone(),
    }
}

/// A test CA (`ca.pem`) and a leaf it signed (`cert.pem`: leaf then CA, as
/// admins install chains; `key.pem`) in `dir`.
pub fn ca_signed(dir: &Path) -> TestCert {
    ca_signed_leaf(dir, leaf_params())
}

/// Like `ca_signed`, for other names (DNS names or IP addresses), e.g. a
/// smarthost's `["smarthost.test"]` for verified outbound TLS.
pub fn ca_signed_for(dir: &Path, names: &[&str]) -> TestCert {
    ca_signed_leaf(dir, leaf_params_for(names))
}

fn ca_signed_leaf(dir: &Path, mut leaf: CertificateParams) -> TestCert {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("no names");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "picomta test CA");
    ca_params.key_usages.push(KeyUsagePurpose::KeyCertSign);
    ca_params.key_usages.push(KeyUsagePurpose::CrlSign);
    let ca_key = KeyPair::generate().expect("generate CA key");
    let ca_cert = ca_params.self_signed(&ca_key).expect("self-sign CA");
    let issuer = Issuer::new(ca_params, ca_key);

    leaf.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate().expect("generate key");
    let cert = leaf.signed_by(&key, &issuer).expect("sign leaf");

    let ca_path = dir.join("ca.pem");
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    fs::write(&ca_path, ca_cert.pem()).expect("write ca.pem");
    fs::write(&cert_path, cert.pem() + &ca_cert.pem()).expect("write cert.pem");
    fs::write(&key_path, key.serialize_pem()).expect("write key.pem");
    TestCert {
        cert: cert_path,
        key: key_path,
        ca: ca_path,
        ca_der: ca_cert.der().clone(),
    }
}

pub fn make_cert(kind: CertKind, dir: &Path) -> TestCert {
    match kind {
        CertKind::CaSigned => ca_signed(dir),
        CertKind::SelfSigned => self_signed(dir),
    }
}

// ---------------------------------------------------------------------------
// Passwords

/// The test accounts: (user, password). alice and bob get SHA-512-crypt
/// hashes, carol SHA-256-crypt (`$5$`), dave SHA-512-crypt with explicit
/// `rounds=`. The passwords have spaces and punctuation on purpose.
pub const ACCOUNTS: [(&str, &str); 4] = [
    ("alice", "Alice pass 1"),
    ("bob", "bob-password"),
    ("carol", "carol pw"),
    ("dave", "dave pw"),
];

/// The password of a test account.
pub fn password(user: &str) -> &'static str {
    ACCOUNTS
        .iter()
        .find(|(u, _)| *u == user)
        .map(|(_, p)| *p)
        .unwrap_or_else(|| panic!("no test account {user}"))
}

/// Hashes made once with `openssl passwd` (and, for `rounds=`, glibc's
/// crypt(3) through Python's `crypt` module), used only where the openssl CLI
/// is missing: (scheme, password, salt, hash).
const PRECOMPUTED: [(&str, &str, &str, &str); 4] = [
    (
        "6",
        "Alice pass 1",
        "alicesalt",
        "$6$alicesalt$.K0pnnmr.No.zluT6kBxhX71OfBaqn2u7wCfEhVFPheifaMi6xK3oCfD.FewCUaMhkEKsu5UAQcGZNLjTsxx/0",
    ),
    (
        "6",
        "bob-password",
        "bobsalt",
        "$6$bobsalt$0ayWbOvdpplHpxhb32EQ6IlDPHCjv7U1gh18r88FYW2UYyRurowntIrZYaeBgHKXgxmOEl1wLBOVgEHs0XiPz/",
    ),
    (
        "5",
        "carol pw",
        "carolsalt",
        "$5$carolsalt$/n8A9bf7aThmTzcqKQ/7ShEmFjmZlwmnoTE1UbZ1rA9",
    ),
    (
        "6",
        "dave pw",
        "rounds=10000$davesalt",
        "$6$rounds=10000$davesalt$0MGNTVKE/hdO8vODYHOouJfQ6dk/dSdn.iXZ/idZPJk1OglUZjSBYO9gxo9uRyt1Ra/7Dezm1PVOCzIpTG1r/1",
    ),
];

/// `crypt(3)`-style hash of `password`: scheme "6" (SHA-512) or "5"
/// (SHA-256), made by `openssl passwd -6|-5 -salt SALT` so the server's
/// verifier is checked against another implementation. A salt starting with
/// `rounds=` (which openssl cannot make) and a missing openssl fall back to the
/// precomputed table.
pub fn crypt_hash(scheme: &str, password: &str, salt: &str) -> String {
    let pre = || {
        PRECOMPUTED
            .iter()
            .find(|(s, p, sa, _)| *s == scheme && *p == password && *sa == salt)
            .map(|(_, _, _, h)| h.to_string())
    };
    if salt.starts_with("rounds=") {
        return pre().unwrap_or_else(|| panic!("no precomputed hash for salt {salt}"));
    }
    match Command::new("openssl")
        .args(["passwd", &format!("-{scheme}"), "-salt", salt, password])
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) => {
            assert!(
                out.status.success(),
                "openssl passwd failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let h = String::from_utf8(out.stdout).expect("hash is UTF-8");
            let h = h.trim().to_string();
            assert!(h.starts_with(&format!("${scheme}${salt}$")), "odd hash {h}");
            h
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            eprintln!("openssl CLI not found; using a precomputed hash");
            pre().unwrap_or_else(|| {
                panic!("openssl CLI not found and no precomputed hash for this password")
            })
        }
        Err(e) => panic!("running openssl passwd: {e}"),
    }
}

/// The password-file line of one test account (see `ACCOUNTS`).
pub fn account_line(user: &str, password: &str) -> String {
    let hash = match user {
        "carol" => crypt_hash("5", password, "carolsalt"),
        "dave" => crypt_hash("6", password, "rounds=10000$davesalt"),
        _ => crypt_hash("6", password, &format!("{user}salt")),
    };
    format!("{user}:{hash}")
}

/// Writes a password file (`passwords` in `dir`) for `accounts`, with a
/// comment and a blank line as admins write them; returns its path.
pub fn write_passwords(dir: &Path, accounts: &[(&str, &str)]) -> PathBuf {
    let mut text = String::from("# picomta test accounts\n\n");
    for (user, pw) in accounts {
        text.push_str(&account_line(user, pw));
        text.push('\n');
    }
    let path = dir.join("passwords");
    fs::write(&path, text).expect("write passwords");
    path
}

// ---------------------------------------------------------------------------
// The TLS client

/// A client-side TLS stream over a blocking socket.
pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;
/// The raw SMTP client over TLS.
pub type TlsClient = Client<TlsStream>;

impl Transport for TlsStream {
    fn tcp(&self) -> &TcpStream {
        &self.sock
    }
}

/// A rustls client configuration (ring) trusting only `trust`, for the given
/// protocol versions (`&[]` = rustls' defaults: TLS 1.3 and 1.2).
pub fn client_config(
    trust: &CertificateDer<'static>,
    versions: &[&'static SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(trust.clone()).expect("trust the test cert");
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()));
    let builder = if versions.is_empty() {
        builder.with_safe_default_protocol_versions()
    } else {
        builder.with_protocol_versions(versions)
    }
    .expect("protocol versions");
    Arc::new(builder.with_root_certificates(roots).with_no_client_auth())
}

/// Runs a TLS handshake as a client on `tcp` to completion (bounded by the
/// socket's timeouts).
pub fn handshake(mut tcp: TcpStream, config: Arc<ClientConfig>) -> io::Result<TlsStream> {
    let name = ServerName::try_from(CERT_NAME).expect("server name");
    let mut conn = ClientConnection::new(config, name).map_err(io::Error::other)?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)?;
    }
    Ok(StreamOwned::new(conn, tcp))
}

impl Client<TcpStream> {
    /// Sends `STARTTLS`, expects `220 2.0.0`, and upgrades (no EHLO yet).
    pub fn starttls(mut self, config: Arc<ClientConfig>) -> TlsClient {
        self.ok("STARTTLS", 220, "2.0.0");
        self.upgrade(config)
    }

    /// Runs the TLS handshake on this connection (the 220 to STARTTLS must
    /// already have been read) and returns the client over TLS.
    pub fn upgrade(self, config: Arc<ClientConfig>) -> TlsClient {
        match self.try_upgrade(config) {
            Ok(c) => c,
            Err(e) => panic!("TLS handshake failed: {e}"),
        }
    }

    pub fn try_upgrade(self, config: Arc<ClientConfig>) -> io::Result<TlsClient> {
        Ok(Client::over(handshake(self.into_tcp(), config)?))
    }
}

impl TlsClient {
    /// The negotiated protocol as written in a Received header: `TLSv1.3`.
    pub fn tls_version(&self) -> String {
        let v = self
            .transport()
            .conn
            .protocol_version()
            .expect("handshake done");
        format!("{v:?}").replace('_', ".")
    }

    /// The negotiated cipher suite's IANA-style name, as rustls spells it:
    /// `TLS13_AES_256_GCM_SHA384`.
    pub fn tls_cipher(&self) -> String {
        let s = self
            .transport()
            .conn
            .negotiated_cipher_suite()
            .expect("handshake done");
        format!("{:?}", s.suite())
    }
}

/// Connects to an implicit-TLS (smtps) port and completes the handshake; the
/// greeting has not been read.
pub fn connect_implicit(port: u16, config: Arc<ClientConfig>) -> io::Result<TlsClient> {
    let tcp = connect_tcp(SocketAddr::from(([127, 0, 0, 1], port)));
    Ok(Client::over(handshake(tcp, config)?))
}

impl Server {
    /// The test certificate (panics unless the setup asked for TLS).
    pub fn cert(&self) -> &TestCert {
        self.cert.as_ref().expect("server started without .tls()")
    }

    /// A client configuration trusting this server's certificate.
    pub fn tls_config(&self) -> Arc<ClientConfig> {
        client_config(&self.cert().ca_der, &[])
    }

    /// A greeted plain client on another listener of this server.
    pub fn connect_port(&self, port: u16) -> Client {
        let mut c = Client::connect(port);
        c.reply().assert(220, "");
        c
    }

    /// Greeting, EHLO, STARTTLS, handshake and EHLO again, on `port`.
    pub fn connect_starttls_port(&self, port: u16) -> TlsClient {
        let mut c = self.connect_port(port);
        c.ehlo();
        let mut t = c.starttls(self.tls_config());
        t.ehlo();
        t
    }

    /// `connect_starttls_port` on the main (smtp) port.
    pub fn connect_starttls(&self) -> TlsClient {
        self.connect_starttls_port(self.port)
    }

    /// Handshake then the `220` greeting on the first smtps listener.
    pub fn connect_smtps(&self) -> TlsClient {
        let mut c = connect_implicit(self.port_of("smtps"), self.tls_config())
            .unwrap_or_else(|e| panic!("TLS handshake on the smtps port failed: {e}"));
        c.reply().assert(220, "");
        c
    }
}

// ---------------------------------------------------------------------------
// SASL

/// Standard base64 (with padding) of `data`, written out here so the tests
/// do not share the server's encoder.
pub fn b64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The PLAIN response (RFC 4616) for `user`/`password`, base64: `\0user\0password`.
pub fn plain(user: &str, password: &str) -> String {
    b64(format!("\0{user}\0{password}").as_bytes())
}

impl<S: Transport> Client<S> {
    /// `AUTH PLAIN <initial response>` and the reply.
    pub fn auth_plain(&mut self, user: &str, password: &str) -> super::Reply {
        self.cmd(&format!("AUTH PLAIN {}", plain(user, password)))
    }

    /// `AUTH PLAIN` with credentials that must work: `235 2.7.0`.
    pub fn login(&mut self, user: &str) {
        let r = self.auth_plain(user, password(user));
        r.assert(235, "2.7.0");
    }
}

// ---------------------------------------------------------------------------
// Legacy handshakes

/// A TLS 1.0 (`minor` 1) or 1.1 (`minor` 2) ClientHello as old clients sent
/// it: record version 3.1, classic CBC and RC4-free suites, no extensions (so
/// no `supported_versions`: nothing newer can be negotiated).
pub fn legacy_client_hello(minor: u8) -> Vec<u8> {
    let suites: [u16; 8] = [
        0xc014, // TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA
        0xc00a, // TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA
        0xc013, // TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA
        0xc009, // TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA
        0x0035, // TLS_RSA_WITH_AES_256_CBC_SHA
        0x002f, // TLS_RSA_WITH_AES_128_CBC_SHA
        0x000a, // TLS_RSA_WITH_3DES_EDE_CBC_SHA
        0x00ff, // TLS_EMPTY_RENEGOTIATION_INFO_SCSV
    ];
    let mut body = vec![3, minor];
    // 32 bytes of "random"; any value will do for a server that refuses.
    body.extend((0u8..32).map(|i| i.wrapping_mul(37).wrapping_add(minor)));
    body.push(0); // empty session id
    body.extend_from_slice(&((suites.len() * 2) as u16).to_be_bytes());
    for s in suites {
        body.extend_from_slice(&s.to_be_bytes());
    }
    body.extend_from_slice(&[1, 0]); // compression: null only
    let mut hs = vec![1]; // client_hello
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16, 3, 1];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

/// What a server answered to a ClientHello.
#[derive(Debug, PartialEq, Eq)]
pub enum HelloAnswer {
    /// An alert record: (level, description), e.g. (2, 70) protocol_version.
    Alert(u8, u8),
    /// EOF or reset with no byte.
    Closed,
    /// A handshake record (ServerHello: the server went along).
    Handshake,
    /// Anything else, as the bytes received.
    Other(Vec<u8>),
}

/// Sends `hello` on `tcp` and classifies the first record that comes back.
pub fn answer_to_hello(tcp: &mut TcpStream, hello: &[u8]) -> HelloAnswer {
    tcp.write_all(hello).expect("send ClientHello");
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while got.len() < 7 {
        match tcp.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset) => break,
            Err(e) => panic!("no answer to the ClientHello: {e}"),
        }
        if got.first() == Some(&0x16) {
            return HelloAnswer::Handshake;
        }
    }
    match got.as_slice() {
        [] => HelloAnswer::Closed,
        [0x15, 3, _, 0, 2, level, desc] => HelloAnswer::Alert(*level, *desc),
        [0x16, ..] => HelloAnswer::Handshake,
        other => HelloAnswer::Other(other.to_vec()),
    }
}

/// Asserts a legacy ClientHello got an alert or a close, never a ServerHello.
pub fn assert_refused(answer: HelloAnswer, what: &str) {
    match answer {
        HelloAnswer::Alert(..) | HelloAnswer::Closed => {}
        other => panic!("{what}: the server answered a legacy ClientHello with {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Other programs

/// Runs `program args` with `env`, stdin from `input`, killed after
/// `limit`. Panics loudly if the program is not installed: these tests must
/// not pass by skipping.
pub fn run_tool(
    program: &str,
    args: &[&str],
    env: &[(&str, &str)],
    input: &[u8],
    limit: Duration,
) -> Output {
    let mut child = match Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            panic!("{program} is required by this test and is not installed")
        }
        Err(e) => panic!("running {program}: {e}"),
    };
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let feeder = thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let pipe = |r: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = pipe(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let err = pipe(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{program} {args:?} still running after {limit:?}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    let _ = feeder.join();
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// Runs a Python 3 script (given on stdin) with `env`, bounded in time.
pub fn python(script: &str, env: &[(&str, &str)]) -> Output {
    run_tool("python3", &["-"], env, script.as_bytes(), TIMEOUT * 4)
}

/// Runs a Python script and asserts it exited 0; returns its stdout.
pub fn python_ok(script: &str, env: &[(&str, &str)]) -> String {
    let out = python(script, env);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python script failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

// ---------------------------------------------------------------------------
// EHLO

/// The extension lines of an EHLO reply (all but the first), upper-cased.
pub fn extensions(ehlo: &super::Reply) -> Vec<String> {
    ehlo.lines
        .iter()
        .skip(1)
        .map(|l| l.to_ascii_uppercase())
        .collect()
}

/// True if the EHLO reply lists the extension `keyword` (e.g. `STARTTLS`).
pub fn offers(ehlo: &super::Reply, keyword: &str) -> bool {
    extensions(ehlo)
        .iter()
        .any(|l| l.split(' ').next() == Some(keyword))
}

/// The SASL mechanisms of the `AUTH` line, if there is one.
pub fn auth_mechanisms(ehlo: &super::Reply) -> Option<Vec<String>> {
    extensions(ehlo).iter().find_map(|l| {
        let mut words = l.split(' ');
        (words.next() == Some("AUTH")).then(|| words.map(str::to_string).collect())
    })
}

/// Asserts the EHLO reply offers STARTTLS and not AUTH (plain text, before TLS).
pub fn assert_before_tls(ehlo: &super::Reply) {
    assert!(offers(ehlo, "STARTTLS"), "no STARTTLS before TLS: {ehlo}");
    assert!(
        auth_mechanisms(ehlo).is_none(),
        "AUTH offered before TLS: {ehlo}"
    );
}

/// Asserts the EHLO reply offers AUTH PLAIN and LOGIN and not STARTTLS.
pub fn assert_in_tls(ehlo: &super::Reply) {
    assert!(
        !offers(ehlo, "STARTTLS"),
        "STARTTLS offered inside TLS: {ehlo}"
    );
    let mechs = auth_mechanisms(ehlo).unwrap_or_else(|| panic!("no AUTH inside TLS: {ehlo}"));
    for m in ["PLAIN", "LOGIN"] {
        assert!(mechs.iter().any(|x| x == m), "AUTH without {m}: {ehlo}");
    }
}

/// Asserts a Received header says the message came over TLS with `protocol`
/// (`ESMTPS`, `ESMTPSA`, ...) and names the protocol version and cipher the
/// client negotiated: `(using TLSv1.3 with cipher TLS13_AES_256_GCM_SHA384)`.
pub fn assert_received_tls(received: &str, protocol: &str, version: &str, cipher: &str) {
    assert!(
        received.contains(&format!(" with {protocol} ")),
        "Received does not say 'with {protocol}': {received}"
    );
    let using = format!("using {version} with cipher {cipher}");
    assert!(
        received.contains(&using),
        "Received does not say '{using}': {received}"
    );
}

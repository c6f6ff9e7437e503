//! Interoperability with Python's smtplib over its ssl module (OpenSSL): an
//! SMTP client and a TLS stack written by other people, driven the way
//! scripts and small apps submit mail. STARTTLS + login + sendmail, LOGIN
//! as smtplib speaks it, implicit TLS with SMTP_SSL, and a wrong password.

mod common;

use common::tls::{self, password};
use common::*;

/// The part every script shares: a context trusting the test CA, for the
/// name `localhost` (smtplib checks the host name it connected to, so the
/// scripts connect to `localhost`, which the certificate names).
const PRELUDE: &str = r#"
import os, smtplib, ssl, sys
from email.message import EmailMessage

ctx = ssl.create_default_context(cafile=os.environ["CA"])
PORT = int(os.environ["PORT"])
USER = os.environ["USER_NAME"]
PASSWORD = os.environ["PASSWORD"]

def letter(tag):
    m = EmailMessage()
    m["From"] = USER + "@example.test"
    m["To"] = "bob@example.test"
    m["Subject"] = "smtplib " + tag
    m["Message-ID"] = "<" + tag + "@client.test>"
    m.set_content("sent by Python's smtplib: " + tag + "\n")
    return m
"#;

fn run(server: &Server, port: u16, user: &str, pw: &str, script: &str) -> String {
    let ca = server.cert().ca.to_string_lossy().into_owned();
    let port = port.to_string();
    tls::python_ok(
        &format!("{PRELUDE}\n{script}"),
        &[
            ("CA", &ca),
            ("PORT", &port),
            ("USER_NAME", user),
            ("PASSWORD", pw),
        ],
    )
}

fn server(name: &str) -> Server {
    Setup::new(name)
        .tls()
        .auth()
        .listener("submission")
        .listener("smtps")
        .with("sender_login yes")
        .start()
}

#[test]
fn starttls_login_and_sendmail() {
    let server = server("py-starttls");
    let out = run(
        &server,
        server.port_of("submission"),
        "alice",
        password("alice"),
        r#"
s = smtplib.SMTP("localhost", PORT, local_hostname="client.test", timeout=10)
s.ehlo()
assert s.has_extn("starttls"), s.esmtp_features
assert not s.has_extn("auth"), "AUTH before TLS: %r" % s.esmtp_features
s.starttls(context=ctx)
s.ehlo()
assert not s.has_extn("starttls"), s.esmtp_features
print("auth:", s.esmtp_features.get("auth"))
print("tls:", s.sock.version(), s.sock.cipher()[0])
code, text = s.login(USER, PASSWORD)
print("login:", code)
# send_message writes CRLF line ends; sendmail() with bytes would pass the
# EmailMessage's bare LFs through, which picomta refuses (550 5.6.0).
refused = s.send_message(letter("py1"), USER + "@example.test", ["bob@example.test"])
assert refused == {}, refused
s.quit()
"#,
    );
    assert!(out.contains("login: 235"), "{out}");
    let mechs = out
        .lines()
        .find_map(|l| l.strip_prefix("auth: "))
        .unwrap_or_default()
        .to_ascii_uppercase();
    assert!(
        mechs.contains("PLAIN") && mechs.contains("LOGIN"),
        "offered: {mechs}"
    );
    let got = server.wait_mail("bob", 1);
    assert!(got[0]
        .message_str()
        .contains("Message-ID: <py1@client.test>"));
    assert!(
        got[0].received.contains(" with ESMTPSA ") && got[0].received.contains("using TLSv1."),
        "{}",
        got[0].received
    );
}

/// smtplib picks PLAIN when offered; here it is told to use LOGIN, which it
/// sends with the user name as the initial response.
#[test]
fn login_mechanism_as_smtplib_speaks_it() {
    let server = server("py-login");
    let out = run(
        &server,
        server.port_of("submission"),
        "carol",
        password("carol"),
        r#"
s = smtplib.SMTP("localhost", PORT, local_hostname="client.test", timeout=10)
s.starttls(context=ctx)
s.ehlo()
s.user, s.password = USER, PASSWORD
code, text = s.auth("LOGIN", s.auth_login)
print("login:", code)
s.sendmail(USER + "@example.test", ["bob@example.test"], letter("py-login").as_string())
s.quit()
"#,
    );
    assert!(out.contains("login: 235"), "{out}");
    server.wait_mail("bob", 1);
}

#[test]
fn smtp_ssl_on_the_smtps_port() {
    let server = server("py-smtps");
    let out = run(
        &server,
        server.port_of("smtps"),
        "dave",
        password("dave"),
        r#"
s = smtplib.SMTP_SSL("localhost", PORT, local_hostname="client.test", timeout=10, context=ctx)
s.ehlo()
assert not s.has_extn("starttls"), s.esmtp_features
print("tls:", s.sock.version())
s.login(USER, PASSWORD)
s.sendmail(USER + "+py@example.test", ["bob@example.test"], letter("py-ssl").as_string())
s.quit()
print("done")
"#,
    );
    assert!(out.contains("tls: TLSv1.3"), "{out}");
    let got = server.wait_mail("bob", 1);
    assert_eq!(got[0].return_path, "dave+py@example.test");
}

#[test]
fn wrong_password_raises_authentication_error() {
    let server = server("py-wrong");
    let out = run(
        &server,
        server.port_of("smtps"),
        "alice",
        "not the password",
        r#"
s = smtplib.SMTP_SSL("localhost", PORT, local_hostname="client.test", timeout=10, context=ctx)
try:
    s.login(USER, PASSWORD)
    sys.exit("login with a wrong password succeeded")
except smtplib.SMTPAuthenticationError as e:
    print("refused:", e.smtp_code, e.smtp_error.decode())
# Not authenticated, so no mail.
try:
    s.sendmail(USER + "@example.test", ["bob@example.test"], letter("nope").as_string())
    sys.exit("mail accepted without AUTH")
except smtplib.SMTPSenderRefused as e:
    print("sender refused:", e.smtp_code)
s.quit()
"#,
    );
    assert!(out.contains("refused: 535 5.7.8"), "{out}");
    assert!(out.contains("sender refused: 530"), "{out}");
}

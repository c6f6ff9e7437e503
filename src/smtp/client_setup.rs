//! What the outbound session does between EHLO and MAIL: reading the EHLO
//! keywords, and logging in to a smarthost with AUTH PLAIN or LOGIN (RFC 4954).

use super::{encode_base64, Event, ServerReply, SmtpClient, State, TlsWant};

/// The longest command line we send; a longer AUTH PLAIN initial response goes
/// after an empty challenge instead (RFC 4954 4).
const MAX_COMMAND_LINE: usize = 512;

/// The service extensions of an EHLO reply that the client uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Extensions {
    pub pipelining: bool,
    pub starttls: bool,
    pub eightbitmime: bool,
    pub smtputf8: bool,
    /// SIZE offered, with its limit (0: no limit given, RFC 1870).
    pub size: Option<u64>,
    /// AUTH offered, with any mechanism.
    pub auth: bool,
    pub auth_plain: bool,
    pub auth_login: bool,
}

impl Extensions {
    /// Reads the keyword lines of an EHLO reply (the first line is the
    /// server's greeting). Keywords are case-insensitive; `AUTH=LOGIN PLAIN`,
    /// the form of old servers, counts as AUTH too.
    pub fn parse(lines: &[String]) -> Extensions {
        let mut ext = Extensions::default();
        for line in lines.iter().skip(1) {
            let mut words = line.split_ascii_whitespace();
            let Some(first) = words.next() else {
                continue;
            };
            let (keyword, glued) = match first.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (first, None),
            };
            match keyword.to_ascii_uppercase().as_str() {
                "PIPELINING" => ext.pipelining = true,
                "STARTTLS" => ext.starttls = true,
                "8BITMIME" => ext.eightbitmime = true,
                "SMTPUTF8" => ext.smtputf8 = true,
                "SIZE" => ext.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0)),
                "AUTH" => {
                    ext.auth = true;
                    for mechanism in glued.into_iter().chain(words) {
                        if mechanism.eq_ignore_ascii_case("PLAIN") {
                            ext.auth_plain = true;
                        } else if mechanism.eq_ignore_ascii_case("LOGIN") {
                            ext.auth_login = true;
                        }
                    }
                }
                _ => {}
            }
        }
        ext
    }
}

impl SmtpClient {
    /// The reply to STARTTLS: 220 hands the connection to the driver for the
    /// handshake; a refusal fails the attempt under `Require` and is shrugged
    /// off under `May` (on in clear text, like Postfix's `may`).
    pub(super) fn starttls_reply(&mut self, r: &ServerReply) {
        if r.code == 220 {
            // Bytes after the 220 were sent in clear text: `input` drops them.
            self.reader.reset();
            self.state = State::Handshake;
            self.event = Some(Event::StartTls);
        } else if self.config.tls == TlsWant::Require {
            let text = format!("TLS is required, but STARTTLS was refused: {r}");
            self.fail_local(false, "4.7.4", text, true);
        } else {
            // Opportunistic TLS: go on in clear text.
            self.ext.starttls = false;
            self.after_hello();
        }
    }

    /// Logs in with the configured credentials, or fails (temporarily): a
    /// smarthost that wants a login would refuse the recipients otherwise.
    pub(super) fn start_auth(&mut self) {
        if !self.tls_active && self.config.tls != TlsWant::Never {
            let text = "credentials not sent: TLS is not available";
            return self.fail_local(false, "4.7.10", text.into(), true);
        }
        if !self.ext.auth {
            let text = "credentials configured, but the server does not offer AUTH";
            return self.fail_local(false, "4.7.0", text.into(), true);
        }
        if self.ext.auth_plain {
            let line = format!("AUTH PLAIN {}", self.plain_response());
            let sent = line.len() + 2 <= MAX_COMMAND_LINE;
            // Too long: the credentials go after the server's empty 334.
            self.send(if sent { &line } else { "AUTH PLAIN" });
            self.state = State::AuthPlain { sent };
        } else if self.ext.auth_login {
            self.send("AUTH LOGIN");
            self.state = State::AuthLogin { step: 0 };
        } else {
            let text = "no AUTH mechanism in common with the server (PLAIN, LOGIN)";
            self.fail_local(false, "4.7.0", text.into(), true);
        }
    }

    /// `\0user\0password` in base64 (RFC 4616).
    fn plain_response(&self) -> String {
        let (user, password) = self.credentials();
        let mut raw = Vec::with_capacity(user.len() + password.len() + 2);
        raw.push(0);
        raw.extend_from_slice(user.as_bytes());
        raw.push(0);
        raw.extend_from_slice(password);
        encode_base64(&raw)
    }

    fn credentials(&self) -> (&str, &[u8]) {
        match &self.config.auth {
            Some((user, password)) => (user, password),
            None => ("", &[]),
        }
    }

    /// The reply to AUTH PLAIN: 235, or the 334 that asks for credentials
    /// not sent with the command.
    pub(super) fn auth_plain_reply(&mut self, r: &ServerReply, sent: bool) {
        match r.class() {
            2 => self.authenticated(),
            3 if !sent => {
                let response = self.plain_response();
                self.send(&response);
                self.state = State::AuthPlain { sent: true };
            }
            _ => self.fail_reply(r, true),
        }
    }

    /// AUTH LOGIN: the user name and password, each after a 334 prompt
    /// (whatever its text), then the verdict.
    pub(super) fn auth_login_reply(&mut self, r: &ServerReply, step: u8) {
        match (r.class(), step) {
            (2, _) => self.authenticated(),
            (3, 0) => {
                let user = encode_base64(self.credentials().0.as_bytes());
                self.send(&user);
                self.state = State::AuthLogin { step: 1 };
            }
            (3, 1) => {
                let password = encode_base64(self.credentials().1);
                self.send(&password);
                self.state = State::AuthLogin { step: 2 };
            }
            _ => self.fail_reply(r, true),
        }
    }

    fn authenticated(&mut self) {
        self.start_transaction();
    }
}

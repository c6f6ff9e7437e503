//! Who may do what in the inbound session: STARTTLS (RFC 3207), AUTH (RFC
//! 4954) with its SASL exchange, and the policy checks that depend on them:
//! submission ports need a login before MAIL, relaying needs a login or a
//! trusted network, and `sender_login` ties MAIL FROM to the login. A child of
//! `server`, so it works on the session's own state.

use std::time::Duration;

use super::{Host, Mode, Session};
use crate::auth::{Mechanism, SaslError, SaslExchange, SaslStep};
use crate::net::tls::TlsInfo;
use crate::smtp::address::{Mailbox, ReversePath};
use crate::smtp::reply::Reply;

/// Failed logins in one session before it is closed.
const MAX_AUTH_FAILURES: u32 = 3;

/// The session's security state.
#[derive(Debug, Default)]
pub(super) struct Security {
    /// Set once the TLS handshake is done.
    pub tls: Option<TlsInfo>,
    /// The authenticated user.
    pub login: Option<String>,
    /// A SASL exchange waiting for the client's next line.
    pub sasl: Option<(Mechanism, SaslExchange)>,
    pub auth_failures: u32,
    /// How long the server should hold the output just produced (a failed
    /// login's 535).
    pub hold: Option<Duration>,
}

impl Session {
    /// True once STARTTLS was answered with 220: the server must flush the
    /// output, throw away any input after the STARTTLS line, and start TLS.
    pub fn tls_requested(&self) -> bool {
        matches!(self.mode, Mode::StartTls)
    }

    /// True once the TLS handshake is done.
    pub fn tls_active(&self) -> bool {
        self.security.tls.is_some()
    }

    /// The handshake finished (after STARTTLS, or first thing on an smtps
    /// port). RFC 3207 4.2: everything learned before TLS is forgotten, and
    /// the client must EHLO again.
    pub fn tls_established(&mut self, info: TlsInfo) {
        self.helo = None;
        self.txn = None;
        self.bdat = None;
        self.security = Security {
            tls: Some(info),
            ..Security::default()
        };
        self.mode = Mode::Command { discarding: false };
    }

    /// How long to hold back the output just produced, once.
    pub fn take_hold(&mut self) -> Option<Duration> {
        self.security.hold.take()
    }

    pub(super) fn auth_offered(&self) -> bool {
        self.config.auth && (self.security.tls.is_some() || self.config.plaintext_auth)
    }

    pub(super) fn starttls_offered(&self) -> bool {
        self.config.starttls && self.security.tls.is_none()
    }

    pub(super) fn starttls(&mut self) {
        if self.security.tls.is_some() {
            return self.error(Reply::new(554, "5.5.1", "Error: TLS already active"));
        }
        if !self.config.starttls {
            return self.error(Reply::new(502, "5.5.1", "Error: command not implemented"));
        }
        if self.txn.is_some() {
            return self.error(Reply::new(
                503,
                "5.5.1",
                "Error: MAIL transaction in progress",
            ));
        }
        self.reply(Reply::new(220, "2.0.0", "Ready to start TLS"));
        self.mode = Mode::StartTls;
    }

    pub(super) fn auth(&mut self, mechanism: &str, initial: Option<&str>, host: &mut dyn Host) {
        let refusal = if !self.config.auth {
            Some(Reply::new(
                503,
                "5.5.1",
                "Error: authentication not enabled",
            ))
        } else if !self.auth_offered() {
            Some(Reply::new(
                538,
                "5.7.11",
                "Encryption required for requested authentication mechanism",
            ))
        } else if !matches!(self.helo, Some((_, true))) {
            Some(Reply::new(503, "5.5.1", "Error: send EHLO first"))
        } else if self.security.login.is_some() {
            Some(Reply::new(503, "5.5.1", "Error: already authenticated"))
        } else if self.txn.is_some() {
            Some(Reply::new(
                503,
                "5.5.1",
                "Error: MAIL transaction in progress",
            ))
        } else {
            None
        };
        if let Some(reply) = refusal {
            return self.error(reply);
        }
        let Some(mechanism) = Mechanism::parse(mechanism) else {
            return self.error(Reply::new(504, "5.5.4", "Unrecognized authentication type"));
        };
        let (exchange, step) = SaslExchange::start(mechanism, initial);
        self.security.sasl = Some((mechanism, exchange));
        self.sasl_step(step, host);
    }

    /// A line sent while a SASL exchange waits for the client.
    pub(super) fn sasl_line(&mut self, line: &[u8], host: &mut dyn Host) {
        let step = match &mut self.security.sasl {
            Some((_, exchange)) => exchange.respond(line),
            None => return,
        };
        self.sasl_step(step, host);
    }

    /// A line too long for a SASL response ends the exchange.
    pub(super) fn sasl_abandoned(&mut self) {
        self.security.sasl = None;
    }

    fn sasl_step(&mut self, step: SaslStep, host: &mut dyn Host) {
        let user_password = match step {
            SaslStep::Challenge(text) => return self.reply(Reply::new(334, "", text)),
            SaslStep::Done { user, password } => (user, password),
            SaslStep::Failed(why) => {
                self.security.sasl = None;
                return self.error(match why {
                    SaslError::Cancelled => Reply::new(501, "5.7.0", "Authentication aborted"),
                    SaslError::BadBase64 => Reply::new(501, "5.5.2", "Error: invalid base64 data"),
                    SaslError::Malformed => {
                        Reply::new(501, "5.5.2", "Error: malformed authentication response")
                    }
                });
            }
        };
        let Some((mechanism, _)) = self.security.sasl.take() else {
            return;
        };
        let (user, password) = user_password;
        match host.authenticate(mechanism, &user, &password) {
            Ok(()) => {
                self.security.login = Some(user);
                self.reply(Reply::new(235, "2.7.0", "Authentication successful"));
            }
            Err(delay) => {
                self.security.auth_failures += 1;
                self.reply(Reply::new(535, "5.7.8", "Error: authentication failed"));
                if !delay.is_zero() {
                    self.security.hold = Some(delay);
                }
                if self.security.auth_failures >= MAX_AUTH_FAILURES {
                    self.reply(Reply::new(
                        421,
                        "4.7.0",
                        format!(
                            "{} Error: too many authentication failures",
                            self.config.hostname
                        ),
                    ));
                    self.mode = Mode::Closed;
                }
            }
        }
    }

    /// Whether this client may start a transaction from `from`; the refusal
    /// otherwise.
    pub(super) fn mail_policy(&self, from: &ReversePath, host: &mut dyn Host) -> Option<Reply> {
        let Some(login) = &self.security.login else {
            if !self.config.require_auth {
                return None;
            }
            return Some(if self.auth_offered() {
                Reply::new(530, "5.7.0", "Authentication required")
            } else {
                Reply::new(530, "5.7.0", "Must issue a STARTTLS command first")
            });
        };
        match from {
            ReversePath::Mailbox(sender)
                if self.config.sender_login && !host.owns_sender(login, sender) =>
            {
                Some(Reply::new(
                    553,
                    "5.7.1",
                    format!("<{sender}>: Sender address rejected: not owned by user {login}"),
                ))
            }
            _ => None,
        }
    }

    /// Whether mail for `_rcpt`, outside the local domains, may be relayed.
    pub(super) fn may_relay(&self, _rcpt: &Mailbox) -> bool {
        self.security.login.is_some() || self.relay_client
    }

    /// The RFC 3848 / RFC 6531 protocol name for the Received header.
    pub(super) fn protocol_name(&self, extended: bool, utf8: bool) -> String {
        if !extended {
            return "SMTP".to_string();
        }
        let mut name = String::from(if utf8 { "UTF8SMTP" } else { "ESMTP" });
        if self.security.tls.is_some() {
            name.push('S');
        }
        if self.security.login.is_some() {
            name.push('A');
        }
        name
    }
}

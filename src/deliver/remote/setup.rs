//! Setting up one outbound connection for the remote driver: the next
//! address of an attempt, the TLS policy and settings, the SMTP client's
//! envelope, timeouts and smarthost login; and what the driver reads at start
//! (the smarthost credentials, a random seed).

use std::collections::VecDeque;
use std::net::SocketAddr;

use rustls::pki_types::ServerName;

use super::{Action, AttemptState, Connect, Dest, RemoteDelivery};
use crate::config::{Config, ConfigError, TlsPolicy};
use crate::queue::envelope::Outcome;
use crate::smtp::address::ReversePath;
use crate::smtp::client::{self, ClientConfig, SmtpClient, TlsWant};

impl RemoteDelivery {
    /// Tries the attempt's next address, or ends it with the last error.
    pub(super) fn connect_next(&mut self, config: &Config, id: u64) {
        let Some(attempt) = self.attempts.get_mut(&id) else {
            return;
        };
        let hosts = match std::mem::replace(&mut attempt.state, AttemptState::Resolving) {
            AttemptState::Ready(h) | AttemptState::Active(h) => h,
            AttemptState::Resolving => VecDeque::new(),
        };
        let mut hosts = hosts;
        let Some((host, ip)) = hosts.pop_front() else {
            let why = attempt
                .last_error
                .clone()
                .unwrap_or_else(|| "no host to try".into());
            self.release(id);
            return self.finish(id, |_| (Outcome::Deferred(why.clone()), None), None);
        };
        attempt.state = AttemptState::Active(hosts);
        // The plain-text retry is for the host whose handshake failed, once.
        let plain = std::mem::take(&mut attempt.plain_retry)
            && attempt.current.as_ref() == Some(&(host.clone(), ip));
        attempt.current = Some((host.clone(), ip));
        let out = &config.outbound;
        let (port, policy) = match &attempt.dest {
            Dest::Relayhost => (
                out.relayhost.as_ref().map_or(25, |r| r.port),
                out.relayhost_policy(),
            ),
            Dest::Domain(d) => (out.port, out.policy_for(d)),
        };
        let addr = SocketAddr::new(ip, port);
        attempt.relay = format!("{host}[{ip}]:{port}");
        let tls = match policy {
            TlsPolicy::Verify | TlsPolicy::Smtps => match &self.verified_tls {
                Ok(c) => c.clone(),
                Err(e) => {
                    attempt.last_error = Some(format!("4.7.5 cannot check certificates: {e}"));
                    return self.connect_next(config, id);
                }
            },
            _ => self.any_tls.clone(),
        };
        let server_name = match ServerName::try_from(host.clone()) {
            Ok(n) => n,
            Err(_) => ServerName::IpAddress(ip.into()),
        };
        let request = &attempt.request;
        let envelope = client::Envelope {
            from: match &request.from {
                ReversePath::Null => String::new(),
                ReversePath::Mailbox(m) => m.to_string(),
            },
            rcpts: attempt.rcpts.iter().map(|(_, m)| m.to_string()).collect(),
            size: request.len,
            smtputf8: false,
            eight_bit: false,
        };
        let timeouts = client::Timeouts {
            greeting: out.command_timeout,
            command: out.command_timeout,
            rcpt: out.command_timeout,
            data_init: out.command_timeout,
            data_block: out.command_timeout,
            data_end: out.data_timeout,
        };
        let auth = match attempt.dest {
            Dest::Relayhost => self.relay_auth.clone(),
            Dest::Domain(_) => None,
        };
        let client_config = ClientConfig {
            helo_name: config.hostname.clone(),
            tls: match policy {
                TlsPolicy::None => TlsWant::Never,
                TlsPolicy::May if plain => TlsWant::Never,
                TlsPolicy::May => TlsWant::May,
                _ => TlsWant::Require,
            },
            implicit_tls: policy == TlsPolicy::Smtps,
            auth,
            timeouts,
        };
        self.actions.push(Action::Connect(Box::new(Connect {
            attempt: id,
            addr,
            host,
            implicit_tls: policy == TlsPolicy::Smtps,
            tls,
            server_name,
            client: SmtpClient::new(client_config, envelope),
            path: request.path.clone(),
            offset: request.offset,
            len: request.len,
        })));
    }
}

/// The one `user:password` line of `relayhost_auth`.
pub(super) fn read_credentials(path: &std::path::Path) -> Result<(String, Vec<u8>), ConfigError> {
    let text = crate::config::read_text(path)?;
    let error = |line, message: &str| ConfigError {
        file: path.to_path_buf(),
        line,
        message: message.to_string(),
    };
    let mut found = None;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        if found.is_some() {
            return Err(error(i + 1, "only one user:password line is allowed"));
        }
        let Some((user, password)) = line.split_once(':') else {
            return Err(error(i + 1, "expected user:password"));
        };
        if user.is_empty() || password.is_empty() {
            return Err(error(i + 1, "user and password must not be empty"));
        }
        found = Some((user.to_string(), password.as_bytes().to_vec()));
    }
    found.ok_or_else(|| error(0, "no user:password line"))
}

/// A seed for query ids and MX shuffling, from the kernel.
pub(super) fn random_seed() -> u64 {
    let mut bytes = [0u8; 8];
    match crate::util::random_bytes(&mut bytes) {
        Ok(()) => u64::from_ne_bytes(bytes),
        Err(_) => (crate::util::unix_micros() as u64) ^ (u64::from(std::process::id()) << 32),
    }
}

//! The outbound half of the config: how mail for other domains leaves the
//! host (straight to MX hosts or through a smarthost), the DNS servers, TLS
//! policy per destination, connection caps, timeouts and the queue lifetime.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use super::values::{duration, positive, show_duration};

/// The keys this part owns.
#[rustfmt::skip]
pub(super) const KEYS: &[&str] = &[
    "relayhost", "relayhost_tls", "relayhost_auth", "dns_servers", "tls_ca_file", "tls_policy",
    "max_outbound_connections", "max_outbound_per_destination", "queue_lifetime",
    "outbound_port", "outbound_connect_timeout", "outbound_command_timeout",
    "outbound_data_timeout",
];

/// How a connection to a next hop is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsPolicy {
    /// Never STARTTLS.
    None,
    /// STARTTLS when offered, certificate not checked (opportunistic, RFC 7435;
    /// Postfix's `may`). The default for MX delivery.
    May,
    /// STARTTLS required, certificate not checked; defer if not offered.
    Encrypt,
    /// STARTTLS required and the certificate must chain to `tls_ca_file` and
    /// name the host.
    Verify,
    /// TLS from the first byte (port 465), certificate checked. Smarthosts only.
    Smtps,
}

impl TlsPolicy {
    fn parse(key: &str, value: &str) -> Result<TlsPolicy, String> {
        Ok(match value {
            "none" => TlsPolicy::None,
            "may" => TlsPolicy::May,
            "encrypt" => TlsPolicy::Encrypt,
            "verify" => TlsPolicy::Verify,
            "smtps" if key == "relayhost_tls" => TlsPolicy::Smtps,
            _ if key == "relayhost_tls" => {
                return Err(format!(
                    "'{key}' must be none, may, encrypt, verify or smtps, not '{value}'"
                ))
            }
            _ => {
                return Err(format!(
                    "'{key}' must be none, may, encrypt or verify, not '{value}'"
                ))
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            TlsPolicy::None => "none",
            TlsPolicy::May => "may",
            TlsPolicy::Encrypt => "encrypt",
            TlsPolicy::Verify => "verify",
            TlsPolicy::Smtps => "smtps",
        }
    }
}

/// `relayhost HOST[:PORT]`: a host name (its A/AAAA records, no MX lookup,
/// like Postfix's `[host]`) or an address in brackets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relayhost {
    pub host: String,
    /// Set when the host is an address literal: no DNS at all.
    pub addr: Option<IpAddr>,
    pub port: u16,
}

impl Relayhost {
    fn parse(value: &str) -> Result<Relayhost, String> {
        let bad =
            || format!("bad relayhost '{value}' (HOST, HOST:PORT, [ADDRESS] or [ADDRESS]:PORT)");
        let (host, port) = if let Some(rest) = value.strip_prefix('[') {
            let (inside, after) = rest.split_once(']').ok_or_else(bad)?;
            (inside, after.strip_prefix(':'))
        } else {
            match value.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (value, None),
            }
        };
        let port = match port {
            None => 25,
            Some(p) => p.parse::<u16>().ok().filter(|&p| p != 0).ok_or_else(bad)?,
        };
        let addr = host.parse::<IpAddr>().ok();
        if addr.is_none() && !crate::smtp::address::is_host_name(host) {
            return Err(bad());
        }
        if value.starts_with('[') != addr.is_some() {
            return Err(bad());
        }
        Ok(Relayhost {
            host: host.to_ascii_lowercase(),
            addr,
            port,
        })
    }
}

impl fmt::Display for Relayhost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addr {
            Some(a) => write!(f, "[{a}]:{}", self.port),
            None => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Outbound {
    /// `relayhost HOST[:PORT]`: send all non-local mail there. Default: none
    /// (straight to each domain's MX hosts).
    pub relayhost: Option<Relayhost>,
    /// `relayhost_tls none|may|encrypt|verify|smtps`. Default: `smtps` for
    /// port 465, else `verify` (a smarthost gets a password: it must be the
    /// host it claims to be).
    pub relayhost_tls: Option<TlsPolicy>,
    /// `relayhost_auth FILE`: one `user:password` line for AUTH at the
    /// smarthost. Default: none.
    pub relayhost_auth: Option<PathBuf>,
    /// `dns_servers ADDR[:PORT]…`: instead of /etc/resolv.conf's nameservers.
    pub dns_servers: Vec<SocketAddr>,
    /// `tls_ca_file FILE`: CA bundle for `verify`. Default: Debian's bundle.
    pub tls_ca_file: PathBuf,
    /// `tls_policy DOMAIN none|may|encrypt|verify`, repeatable; other
    /// domains get `may`.
    pub tls_policy: Vec<(String, TlsPolicy)>,
    /// `max_outbound_connections N`. Default 20.
    pub max_connections: usize,
    /// `max_outbound_per_destination N`: per domain (or smarthost). Default 5.
    pub max_per_destination: usize,
    /// `queue_lifetime DURATION`: deferred mail bounces after this. Default 5d.
    pub queue_lifetime: Duration,
    /// `outbound_port N`: the port of MX hosts. Default 25; tests change it.
    pub port: u16,
    /// `outbound_connect_timeout DURATION`. Default 30s.
    pub connect_timeout: Duration,
    /// `outbound_command_timeout DURATION`: each reply, except the one to
    /// the final dot (RFC 5321 4.5.3.2 asks 2 to 5 minutes). Default 5m.
    pub command_timeout: Duration,
    /// `outbound_data_timeout DURATION`: the reply to the final dot. Default 10m.
    pub data_timeout: Duration,
}

impl Default for Outbound {
    fn default() -> Outbound {
        Outbound {
            relayhost: None,
            relayhost_tls: None,
            relayhost_auth: None,
            dns_servers: Vec::new(),
            tls_ca_file: PathBuf::from("/etc/ssl/certs/ca-certificates.crt"),
            tls_policy: Vec::new(),
            max_connections: 20,
            max_per_destination: 5,
            queue_lifetime: Duration::from_secs(5 * 86400),
            port: 25,
            connect_timeout: Duration::from_secs(30),
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(600),
        }
    }
}

impl Outbound {
    /// The TLS policy for a smarthost connection.
    pub fn relayhost_policy(&self) -> TlsPolicy {
        match (self.relayhost_tls, &self.relayhost) {
            (Some(p), _) => p,
            (None, Some(r)) if r.port == 465 => TlsPolicy::Smtps,
            (None, _) => TlsPolicy::Verify,
        }
    }

    /// The TLS policy for MX delivery to `domain`.
    pub fn policy_for(&self, domain: &str) -> TlsPolicy {
        self.tls_policy
            .iter()
            .find(|(d, _)| d.eq_ignore_ascii_case(domain))
            .map_or(TlsPolicy::May, |&(_, p)| p)
    }

    /// Applies one line of a key in [`KEYS`].
    pub(super) fn set(&mut self, key: &str, values: &[&str]) -> Result<(), String> {
        match (key, values) {
            (_, []) => return Err(format!("missing value for '{key}'")),
            ("dns_servers", _) => {
                self.dns_servers = values
                    .iter()
                    .map(|v| dns_server(v))
                    .collect::<Result<_, _>>()?
            }
            ("tls_policy", [domain, policy]) => {
                let domain = super::values::domain(domain)
                    .ok_or(format!("bad domain '{domain}' in 'tls_policy'"))?
                    .to_ascii_lowercase();
                let policy = TlsPolicy::parse(key, policy)?;
                self.tls_policy.retain(|(d, _)| *d != domain);
                self.tls_policy.push((domain, policy));
            }
            ("tls_policy", _) => return Err("'tls_policy' takes a domain and a policy".into()),
            (_, [value]) => self.set_one(key, value)?,
            _ => return Err(format!("'{key}' takes one value, not {}", values.len())),
        }
        Ok(())
    }

    fn set_one(&mut self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "relayhost" => self.relayhost = Some(Relayhost::parse(value)?),
            "relayhost_tls" => self.relayhost_tls = Some(TlsPolicy::parse(key, value)?),
            "relayhost_auth" => self.relayhost_auth = Some(PathBuf::from(value)),
            "tls_ca_file" => self.tls_ca_file = PathBuf::from(value),
            "max_outbound_connections" => self.max_connections = positive(key, value)?,
            "max_outbound_per_destination" => self.max_per_destination = positive(key, value)?,
            "queue_lifetime" => self.queue_lifetime = duration(key, value)?,
            "outbound_port" => {
                self.port = value
                    .parse::<u16>()
                    .ok()
                    .filter(|&p| p != 0)
                    .ok_or(format!("bad port '{value}' for '{key}'"))?
            }
            "outbound_connect_timeout" => self.connect_timeout = duration(key, value)?,
            "outbound_command_timeout" => self.command_timeout = duration(key, value)?,
            "outbound_data_timeout" => self.data_timeout = duration(key, value)?,
            _ => return Err(format!("unknown key '{key}'")),
        }
        Ok(())
    }

    /// Appends this part's settings in `check`'s format.
    pub(super) fn render(&self, line: &mut dyn FnMut(&str, &dyn fmt::Display)) {
        match &self.relayhost {
            Some(r) => {
                line("relayhost", r);
                line("relayhost_tls", &self.relayhost_policy().name());
            }
            None => line(
                "#",
                &"relayhost (not set: mail goes to each domain's MX hosts)",
            ),
        }
        match &self.relayhost_auth {
            Some(p) => line("relayhost_auth", &p.display()),
            None => line("#", &"relayhost_auth (not set)"),
        }
        if self.dns_servers.is_empty() {
            line(
                "#",
                &"dns_servers (not set: the nameservers of /etc/resolv.conf)",
            );
        } else {
            let servers: Vec<String> = self.dns_servers.iter().map(|s| s.to_string()).collect();
            line("dns_servers", &servers.join(" "));
        }
        line("tls_ca_file", &self.tls_ca_file.display());
        for (domain, policy) in &self.tls_policy {
            line("tls_policy", &format_args!("{domain} {}", policy.name()));
        }
        line("max_outbound_connections", &self.max_connections);
        line("max_outbound_per_destination", &self.max_per_destination);
        line("queue_lifetime", &show_duration(self.queue_lifetime));
        line("outbound_port", &self.port);
        line(
            "outbound_connect_timeout",
            &show_duration(self.connect_timeout),
        );
        line(
            "outbound_command_timeout",
            &show_duration(self.command_timeout),
        );
        line("outbound_data_timeout", &show_duration(self.data_timeout));
    }
}

/// `ADDR`, `ADDR:PORT`, `[V6]` or `[V6]:PORT`; port 53 by default.
fn dns_server(value: &str) -> Result<SocketAddr, String> {
    if let Ok(ip) = value.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    if let Some(inside) = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
        if let Ok(ip) = inside.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, 53));
        }
    }
    value
        .parse::<SocketAddr>()
        .ok()
        .filter(|a| a.port() != 0)
        .ok_or(format!(
            "bad address '{value}' in 'dns_servers' (IP, IP:PORT or [IPv6]:PORT)"
        ))
}

//! Nameservers and retry options from /etc/resolv.conf text, with glibc's defaults
//! and limits (resolv.conf(5)).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV6};
use std::time::Duration;

/// glibc's MAXNS: later `nameserver` lines are ignored.
const MAX_SERVERS: usize = 3;
const DEFAULT_TIMEOUT: u64 = 5;
const DEFAULT_ATTEMPTS: u32 = 2;
/// glibc's RES_MAXRETRANS and RES_MAXRETRY.
const MAX_TIMEOUT: u64 = 30;
const MAX_ATTEMPTS: u32 = 5;

/// Where and how patiently to ask: each query is tried `attempts` times on every server
/// in turn, each try waiting `timeout`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvConf {
    pub servers: Vec<SocketAddr>,
    pub timeout: Duration,
    pub attempts: u32,
}

impl Default for ResolvConf {
    fn default() -> ResolvConf {
        ResolvConf::parse("")
    }
}

impl ResolvConf {
    /// /etc/resolv.conf text: `nameserver IP` (v4/v6, port 53; at most 3 kept, like glibc),
    /// `options timeout:N attempts:N` (glibc defaults 5 s / 2; timeout clamped to 1..=30,
    /// attempts to 1..=5). No usable nameserver line => 127.0.0.1:53 (glibc's default).
    /// Comments (`#`, `;`), unknown lines and options, and bad values are ignored.
    /// An IPv6 scope must be numeric (`fe80::1%2`): an interface name would need a
    /// system call to resolve, so such a server is skipped.
    pub fn parse(text: &str) -> ResolvConf {
        let mut servers = Vec::new();
        let mut timeout = DEFAULT_TIMEOUT;
        let mut attempts = DEFAULT_ATTEMPTS;
        for line in text.lines() {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => {
                    if let Some(addr) = words.next().and_then(server) {
                        if servers.len() < MAX_SERVERS {
                            servers.push(addr);
                        }
                    }
                }
                Some("options") => {
                    for option in words {
                        if let Some(n) = number(option, "timeout:") {
                            timeout = n.clamp(1, MAX_TIMEOUT);
                        } else if let Some(n) = number(option, "attempts:") {
                            attempts = n.clamp(1, u64::from(MAX_ATTEMPTS)) as u32;
                        }
                    }
                }
                _ => {}
            }
        }
        if servers.is_empty() {
            servers.push(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 53));
        }
        ResolvConf {
            servers,
            timeout: Duration::from_secs(timeout),
            attempts,
        }
    }
}

/// `192.0.2.1`, `2001:db8::1`, `fe80::1%2` on port 53.
fn server(word: &str) -> Option<SocketAddr> {
    let (addr, scope) = match word.split_once('%') {
        Some((addr, scope)) => (addr, Some(scope.parse::<u32>().ok()?)),
        None => (word, None),
    };
    match (addr.parse::<IpAddr>().ok()?, scope) {
        (IpAddr::V6(v6), Some(scope)) => Some(SocketAddr::V6(SocketAddrV6::new(v6, 53, 0, scope))),
        (IpAddr::V4(_), Some(_)) => None,
        (ip, None) => Some(SocketAddr::new(ip, 53)),
    }
}

/// `timeout:3` with prefix `timeout:` => 3. Large values saturate (then get clamped).
fn number(option: &str, prefix: &str) -> Option<u64> {
    let digits = option.strip_prefix(prefix)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(digits.parse::<u64>().unwrap_or(u64::MAX))
}

#[cfg(test)]
#[path = "resolv_tests.rs"]
mod tests;

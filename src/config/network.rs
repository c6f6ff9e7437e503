//! The network-facing values of the config: `listen` lines with their kind
//! (plain SMTP, submission, implicit TLS) and the CIDR blocks of
//! `relay_networks`.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// What a listener serves (`listen ADDR:PORT KIND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenKind {
    /// Port 25: mail from anyone for local domains; STARTTLS when a
    /// certificate is configured; AUTH once encrypted.
    Smtp,
    /// Port 587 (RFC 6409): STARTTLS, then AUTH before MAIL.
    Submission,
    /// Port 465 (RFC 8314 "submissions"): TLS from the first byte, then AUTH
    /// before MAIL.
    Smtps,
}

impl ListenKind {
    pub fn name(self) -> &'static str {
        match self {
            ListenKind::Smtp => "smtp",
            ListenKind::Submission => "submission",
            ListenKind::Smtps => "smtps",
        }
    }

    /// Submission ports serve only authenticated users.
    pub fn requires_auth(self) -> bool {
        self != ListenKind::Smtp
    }
}

/// One `listen ADDR:PORT [kind]` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    pub addr: SocketAddr,
    pub kind: ListenKind,
}

impl Listen {
    /// Parses the values of one `listen` line.
    pub(super) fn parse(values: &[&str]) -> Result<Listen, String> {
        let (addr, kind) = match values {
            [] => return Err("missing value for 'listen'".to_string()),
            [addr] => (*addr, "smtp"),
            [addr, kind] => (*addr, *kind),
            _ => return Err("'listen' takes an address and an optional kind".to_string()),
        };
        let kind = match kind {
            "smtp" => ListenKind::Smtp,
            "submission" => ListenKind::Submission,
            "smtps" => ListenKind::Smtps,
            _ => {
                return Err(format!(
                    "unknown listener kind '{kind}' (smtp, submission or smtps)"
                ))
            }
        };
        let addr: SocketAddr = addr
            .parse()
            .map_err(|_| format!("bad address '{addr}' for 'listen' (IPv4:PORT or [IPv6]:PORT)"))?;
        if addr.port() == 0 {
            return Err(format!("listen address '{addr}' needs a port other than 0"));
        }
        Ok(Listen { addr, kind })
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.addr, self.kind.name())
    }
}

/// An address block such as `192.168.1.0/24` or `::1/128`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// `ADDR/PREFIX`, or a bare address for a single host. Host bits set
    /// below the prefix are refused: `10.0.0.1/8` is more likely a typo than
    /// a wish for all of 10/8.
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let bad = || format!("bad network '{text}' in 'relay_networks' (ADDR/PREFIX)");
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().ok().filter(|&n| n <= max).ok_or_else(bad)?
            }
            Some(_) => return Err(bad()),
        };
        let cidr = Cidr { addr, prefix };
        if !cidr.contains(addr) || cidr.network() != addr {
            return Err(format!(
                "network '{text}' has host bits set (did you mean {}/{prefix}?)",
                cidr.network()
            ));
        }
        Ok(cidr)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // A v4 client on a dual-stack socket shows up as ::ffff:a.b.c.d.
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u32::from(net) as u128, 32, self.prefix)
                    == masked(u32::from(ip) as u128, 32, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                masked(u128::from(net), 128, self.prefix)
                    == masked(u128::from(ip), 128, self.prefix)
            }
            _ => false,
        }
    }

    fn network(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => {
                IpAddr::V4((masked(u32::from(a) as u128, 32, self.prefix) as u32).into())
            }
            IpAddr::V6(a) => IpAddr::V6(masked(u128::from(a), 128, self.prefix).into()),
        }
    }

    /// The default `relay_networks`: this host's loopback addresses.
    pub fn loopback() -> Vec<Cidr> {
        vec![
            Cidr {
                addr: IpAddr::from([127, 0, 0, 0]),
                prefix: 8,
            },
            Cidr {
                addr: IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
                prefix: 128,
            },
        ]
    }
}

/// `value` (of `bits` bits) with all but its top `prefix` bits cleared.
fn masked(value: u128, bits: u32, prefix: u8) -> u128 {
    let keep = u32::from(prefix).min(bits);
    if keep == 0 {
        return 0;
    }
    let mask = (u128::MAX >> (128 - bits)) & !((1u128 << (bits - keep)).wrapping_sub(1));
    value & mask
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

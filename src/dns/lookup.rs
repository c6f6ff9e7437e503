//! The MX resolution of one domain (RFC 5321 section 5.1) as a state machine over DNS
//! answers: MX first, then A and AAAA of every exchange, CNAMEs followed a bounded number
//! of times; no MX means the domain itself (implicit MX); a null MX (RFC 7505) or
//! NXDOMAIN bounces; failures to get an answer defer. Who asks the questions (cache or
//! network) is the driver's business.

use std::net::IpAddr;

use super::message::{valid_name, Answer, QType};
use super::Rng;

/// CNAMEs followed for one question, across queries (answers may also follow up to 8
/// inside one response).
const MAX_CNAME_HOPS: u32 = 8;
/// Mail hosts kept (after sorting): each costs two queries, and no delivery attempt
/// tries that many anyway.
const MAX_HOSTS: usize = 10;

/// What the driver should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupStep {
    /// Ask these (name, type) questions (the driver answers from cache or the network)
    /// and report each with `answered`. Empty: nothing new to ask, answers to earlier
    /// questions are still awaited.
    Ask(Vec<(String, QType)>),
    /// Done: hosts in delivery order (lowest preference first; equal preferences shuffled
    /// with the `shuffle_seed` given to `new`), each with its addresses, A then AAAA as
    /// answered (the driver decides which family to try first). Never empty.
    Hosts(Vec<MxHost>),
    /// Permanent: NXDOMAIN or an unusable domain name (5.1.2), null MX (5.1.10).
    Bounce {
        status: &'static str,
        reason: String,
    },
    /// Temporary: no answer or a server error for the MX query, a CNAME chain too long,
    /// or no address for any mail host.
    Defer(String),
}

/// A mail host to try, with its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MxHost {
    pub name: String,
    pub preference: u16,
    pub addrs: Vec<IpAddr>,
}

/// The resolution of one domain; feed it answers until it returns a final step.
#[derive(Debug)]
pub struct MxLookup {
    domain: String,
    rng: Rng,
    phase: Phase,
}

#[derive(Debug)]
enum Phase {
    /// Asking the MX of `name` (the domain, or a CNAME target of it).
    Mx {
        name: String,
        hops: u32,
    },
    /// Asking the addresses of the mail hosts, in delivery order.
    Hosts(Vec<Host>),
    Done,
}

#[derive(Debug)]
struct Host {
    name: String,
    preference: u16,
    a: Family,
    aaaa: Family,
}

/// The A (or AAAA) side of one host.
#[derive(Debug)]
enum Family {
    Asking {
        name: String,
        hops: u32,
    },
    /// Possibly empty: NXDOMAIN or no record of this type.
    Found(Vec<IpAddr>),
    /// No usable answer; the reason for the log.
    Failed(String),
}

impl MxLookup {
    /// Starts with the MX question. A domain that is no valid DNS name bounces at once.
    pub fn new(domain: &str, shuffle_seed: u64) -> (MxLookup, LookupStep) {
        let domain = normalize(domain);
        let mut lookup = MxLookup {
            domain: domain.clone(),
            rng: Rng::new(shuffle_seed),
            phase: Phase::Done,
        };
        if !valid_name(&domain) || domain.parse::<IpAddr>().is_ok() {
            let reason = format!("Host or domain name not found. Invalid domain name {domain:?}");
            return (lookup, bounce("5.1.2", reason));
        }
        lookup.phase = Phase::Mx {
            name: domain.clone(),
            hops: 0,
        };
        (lookup, LookupStep::Ask(vec![(domain, QType::Mx)]))
    }

    /// One question's outcome: the answer, or None when every server failed / timed out.
    /// Answers to questions this lookup is not waiting for are ignored (`Ask(vec![])`).
    pub fn answered(&mut self, name: &str, qtype: QType, answer: Option<&Answer>) -> LookupStep {
        let name = normalize(name);
        match &mut self.phase {
            Phase::Mx { name: asking, hops } if qtype == QType::Mx && *asking == name => {
                let hops = *hops;
                self.mx_answered(name, hops, answer)
            }
            Phase::Hosts(hosts) => {
                let mut asks = Vec::new();
                for host in hosts.iter_mut() {
                    let family = match qtype {
                        QType::A => &mut host.a,
                        QType::Aaaa => &mut host.aaaa,
                        QType::Mx => continue,
                    };
                    if let Some(ask) = family.answered(&name, qtype, answer) {
                        if !asks.contains(&ask) {
                            asks.push(ask);
                        }
                    }
                }
                let waiting = hosts.iter().any(|h| h.a.is_asking() || h.aaaa.is_asking());
                if waiting {
                    LookupStep::Ask(asks)
                } else {
                    self.finish()
                }
            }
            _ => LookupStep::Ask(Vec::new()),
        }
    }

    fn mx_answered(&mut self, name: String, hops: u32, answer: Option<&Answer>) -> LookupStep {
        let (mx, cname) = match answer {
            Some(Answer::Records { mx, cname, .. }) => (mx, cname),
            Some(Answer::NxDomain { .. }) => {
                let reason = format!(
                    "Host or domain name not found. Name service error for name={name} type=MX: Host not found"
                );
                return self.end(bounce("5.1.2", reason));
            }
            other => {
                let reason = format!(
                    "Name service error for name={name} type=MX: {}",
                    failure(other)
                );
                return self.end(LookupStep::Defer(reason));
            }
        };
        if mx.is_empty() {
            if let Some(target) = cname {
                if hops >= MAX_CNAME_HOPS {
                    let reason = format!("CNAME chain too long for name={} type=MX", self.domain);
                    return self.end(LookupStep::Defer(reason));
                }
                let target = normalize(target);
                self.phase = Phase::Mx {
                    name: target.clone(),
                    hops: hops + 1,
                };
                return LookupStep::Ask(vec![(target, QType::Mx)]);
            }
            // RFC 5321 5.1: no MX, the domain itself with preference 0.
            let implicit = (0, self.domain.clone());
            return self.start_hosts(vec![implicit]);
        }
        if let [(0, exchange)] = mx.as_slice() {
            if exchange.is_empty() || exchange == "." {
                let reason = format!("Domain {} does not accept mail (nullMX)", self.domain);
                return self.end(bounce("5.1.10", reason));
            }
        }
        // The null MX's "" among other records, and IP addresses written as names
        // (RFC 5321 5.1 wants host names), are not hosts.
        let mut hosts: Vec<(u16, String)> = mx
            .iter()
            .map(|(preference, x)| (*preference, normalize(x)))
            .filter(|(_, x)| valid_name(x) && x.parse::<IpAddr>().is_err())
            .collect();
        for i in (1..hosts.len()).rev() {
            let j = self.rng.below(i + 1);
            hosts.swap(i, j);
        }
        hosts.sort_by_key(|(preference, _)| *preference);
        let mut seen: Vec<String> = Vec::new();
        hosts.retain(|(_, x)| {
            let new = !seen.contains(x);
            seen.push(x.clone());
            new
        });
        hosts.truncate(MAX_HOSTS);
        if hosts.is_empty() {
            let reason = format!("no valid mail host in the MX records of {}", self.domain);
            return self.end(LookupStep::Defer(reason));
        }
        self.start_hosts(hosts)
    }

    fn start_hosts(&mut self, hosts: Vec<(u16, String)>) -> LookupStep {
        let mut asks = Vec::new();
        let hosts = hosts
            .into_iter()
            .map(|(preference, name)| {
                asks.push((name.clone(), QType::A));
                asks.push((name.clone(), QType::Aaaa));
                Host {
                    a: Family::start(&name),
                    aaaa: Family::start(&name),
                    name,
                    preference,
                }
            })
            .collect();
        self.phase = Phase::Hosts(hosts);
        LookupStep::Ask(asks)
    }

    /// Every address question is settled: the hosts with addresses, or a deferral.
    fn finish(&mut self) -> LookupStep {
        let Phase::Hosts(hosts) = std::mem::replace(&mut self.phase, Phase::Done) else {
            return LookupStep::Ask(Vec::new());
        };
        let mut failure = None;
        let mut usable = Vec::new();
        for host in hosts {
            let mut addrs = Vec::new();
            for (family, qtype) in [(host.a, QType::A), (host.aaaa, QType::Aaaa)] {
                match family {
                    Family::Found(found) => addrs.extend(found),
                    Family::Failed(why) => {
                        failure.get_or_insert(format!(
                            "Name service error for name={} type={qtype}: {why}",
                            host.name
                        ));
                    }
                    Family::Asking { .. } => {}
                }
            }
            if !addrs.is_empty() {
                usable.push(MxHost {
                    name: host.name,
                    preference: host.preference,
                    addrs,
                });
            }
        }
        if usable.is_empty() {
            let reason = failure.unwrap_or_else(|| {
                format!("no A or AAAA record for the mail hosts of {}", self.domain)
            });
            return LookupStep::Defer(reason);
        }
        LookupStep::Hosts(usable)
    }

    fn end(&mut self, step: LookupStep) -> LookupStep {
        self.phase = Phase::Done;
        step
    }
}

impl Family {
    fn start(name: &str) -> Family {
        Family::Asking {
            name: name.to_string(),
            hops: 0,
        }
    }

    fn is_asking(&self) -> bool {
        matches!(self, Family::Asking { .. })
    }

    /// Takes the answer when this side waits for exactly that question; returns the
    /// next question when the answer was a CNAME to follow.
    fn answered(
        &mut self,
        name: &str,
        qtype: QType,
        answer: Option<&Answer>,
    ) -> Option<(String, QType)> {
        let hops = match self {
            Family::Asking { name: asking, hops } if asking == name => *hops,
            _ => return None,
        };
        let mut next = None;
        *self = match answer {
            Some(Answer::Records { addrs, cname, .. }) => match cname {
                Some(target) if addrs.is_empty() => {
                    if hops >= MAX_CNAME_HOPS {
                        Family::Failed("CNAME chain too long".to_string())
                    } else {
                        let target = normalize(target);
                        next = Some((target.clone(), qtype));
                        Family::Asking {
                            name: target,
                            hops: hops + 1,
                        }
                    }
                }
                _ => Family::Found(addrs.clone()),
            },
            Some(Answer::NxDomain { .. }) => Family::Found(Vec::new()),
            other => Family::Failed(failure(other)),
        };
        next
    }
}

fn bounce(status: &'static str, reason: String) -> LookupStep {
    LookupStep::Bounce { status, reason }
}

/// Why an answer is no answer, for the log.
fn failure(answer: Option<&Answer>) -> String {
    match answer {
        None => "no answer from the nameservers (timeout)".to_string(),
        Some(Answer::ServerError(rcode)) => match rcode {
            1 => "FORMERR".to_string(),
            2 => "SERVFAIL".to_string(),
            4 => "NOTIMP".to_string(),
            5 => "REFUSED".to_string(),
            n => format!("RCODE {n}"),
        },
        Some(Answer::Truncated) => "truncated answer".to_string(),
        Some(other) => format!("unexpected answer {other:?}"),
    }
}

fn normalize(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

#[cfg(test)]
#[path = "lookup_tests.rs"]
mod tests;

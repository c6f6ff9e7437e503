//! Resolution for the remote driver: the MX lookup of a domain (or the
//! addresses of the smarthost), answered from the cache where it can and
//! from the DNS client otherwise, ending in the addresses to try in order or
//! in an outcome for every recipient waiting on it.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::Instant;

use super::{AttemptState, Dest, RemoteDelivery, Resolution, Resolving};
use crate::config::Config;
use crate::dns::lookup::{LookupStep, MxHost, MxLookup};
use crate::dns::message::{Answer, QType};
use crate::queue::envelope::Outcome;

impl RemoteDelivery {
    /// Starts (or joins) the resolution of `dest` for attempt `id`.
    pub(super) fn resolve(&mut self, config: &Config, dest: Dest, id: u64, now: Instant) {
        if let Some(r) = self.resolving.get_mut(&dest) {
            r.waiting.push(id);
            return;
        }
        let (resolution, step) = match (&dest, &config.outbound.relayhost) {
            (Dest::Relayhost, Some(relay)) => {
                if let Some(addr) = relay.addr {
                    let hosts = VecDeque::from([(relay.host.clone(), addr)]);
                    return self.resolved(config, &[id], Ok(hosts));
                }
                let name = relay.host.clone();
                let ask = vec![(name.clone(), QType::A), (name.clone(), QType::Aaaa)];
                let resolution = Resolution::Addrs {
                    name,
                    pending: 2,
                    addrs: Vec::new(),
                    failed: false,
                };
                (resolution, LookupStep::Ask(ask))
            }
            (Dest::Domain(domain), _) => {
                if let Some(addr) = address_literal(domain) {
                    let hosts = VecDeque::from([(domain.clone(), addr)]);
                    return self.resolved(config, &[id], Ok(hosts));
                }
                self.seed = self.seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                let (lookup, step) = MxLookup::new(domain, self.seed);
                (Resolution::Mx(lookup), step)
            }
            (Dest::Relayhost, None) => return,
        };
        self.resolving.insert(
            dest.clone(),
            Resolving {
                resolution,
                waiting: vec![id],
            },
        );
        self.step(config, dest, step, now);
    }

    /// Carries out a resolution's next step: questions from the cache or the
    /// network, until it ends or waits for the network.
    pub(super) fn step(&mut self, config: &Config, dest: Dest, step: LookupStep, now: Instant) {
        let mut questions = VecDeque::new();
        let mut step = Some(step);
        loop {
            match step.take() {
                Some(LookupStep::Ask(ask)) => questions.extend(ask),
                Some(done) => return self.lookup_done(config, &dest, done),
                None => {}
            }
            let Some((name, qtype)) = questions.pop_front() else {
                break;
            };
            match self.cache.get(&name, qtype, now) {
                Some(answer) => step = self.answered(&dest, &name, qtype, Some(&answer)),
                None => {
                    let q = self.dns.query(&name, qtype, now);
                    self.queries.insert(q, dest.clone());
                }
            }
        }
        self.drain_dns();
    }

    /// A resolution ended: its attempts get the hosts, or the outcome.
    pub(super) fn lookup_done(&mut self, config: &Config, dest: &Dest, done: LookupStep) {
        if matches!(done, LookupStep::Ask(_)) {
            return;
        }
        let Some(r) = self.resolving.remove(dest) else {
            return;
        };
        let result = match done {
            LookupStep::Hosts(hosts) => Ok(hosts
                .into_iter()
                .flat_map(|h| {
                    let name = h.name;
                    h.addrs.into_iter().map(move |a| (name.clone(), a))
                })
                .collect()),
            LookupStep::Bounce { status, reason } => {
                Err(Outcome::Bounced(format!("{status} {reason}")))
            }
            LookupStep::Defer(reason) => Err(Outcome::Deferred(reason)),
            LookupStep::Ask(_) => return,
        };
        self.resolved(config, &r.waiting, result);
    }

    /// Feeds one answer to `dest`'s resolution; Some(step) if it moved on.
    pub(super) fn answered(
        &mut self,
        dest: &Dest,
        name: &str,
        qtype: QType,
        answer: Option<&Answer>,
    ) -> Option<LookupStep> {
        let r = self.resolving.get_mut(dest)?;
        match &mut r.resolution {
            Resolution::Mx(lookup) => {
                let step = lookup.answered(name, qtype, answer);
                match &step {
                    LookupStep::Ask(a) if a.is_empty() => None,
                    _ => Some(step),
                }
            }
            Resolution::Addrs {
                name: host,
                pending,
                addrs,
                failed,
            } => {
                *pending = pending.saturating_sub(1);
                match answer {
                    Some(Answer::Records { addrs: found, .. }) => addrs.extend(found),
                    Some(Answer::NxDomain { .. }) => {}
                    _ => *failed = true,
                }
                if *pending > 0 {
                    return None;
                }
                Some(match (addrs.is_empty(), *failed) {
                    (false, _) => LookupStep::Hosts(vec![MxHost {
                        name: host.clone(),
                        preference: 0,
                        addrs: addrs.clone(),
                    }]),
                    (true, true) => LookupStep::Defer(format!("cannot resolve {host}")),
                    (true, false) => LookupStep::Defer(format!("{host} has no address")),
                })
            }
        }
    }

    /// A resolution ended: attempts get their addresses, or their outcome.
    pub(super) fn resolved(
        &mut self,
        config: &Config,
        waiting: &[u64],
        result: Result<VecDeque<(String, IpAddr)>, Outcome>,
    ) {
        for id in waiting {
            match &result {
                Ok(hosts) => {
                    if let Some(a) = self.attempts.get_mut(id) {
                        a.state = AttemptState::Ready(hosts.clone());
                    }
                }
                Err(outcome) => self.finish(*id, |_| (outcome.clone(), None), None),
            }
        }
        self.start_ready(config);
    }
}

/// `[1.2.3.4]` or `[IPv6:…]`: a domain that is an address.
fn address_literal(domain: &str) -> Option<IpAddr> {
    let inside = domain.strip_prefix('[')?.strip_suffix(']')?;
    let text = inside.strip_prefix("IPv6:").unwrap_or(inside);
    text.parse().ok()
}

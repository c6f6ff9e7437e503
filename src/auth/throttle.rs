//! Failed-login counts per client, which decide how long a wrong password's
//! 535 is held back: guessing gets slow without ever blocking the loop.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

/// How many addresses the tracker remembers at most.
const TRACKED_ADDRESSES: usize = 4096;
/// An address's failures are forgotten this long after its last one.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Failures answered without delay.
const FREE_FAILURES: u32 = 2;
/// The longest delay before a 535.
const MAX_DELAY: Duration = Duration::from_secs(5);

/// Per client IP failed-AUTH counts, bounded (at most 4096 addresses; when full, forget the
/// oldest), each forgotten 15 minutes after its last failure.
///
/// IPv6 clients are counted per /64 (one subscriber's network, whose addresses an
/// attacker can change at will), and IPv4-mapped IPv6 addresses as the IPv4 address.
#[derive(Debug)]
pub struct FailureTracker {
    clients: HashMap<IpAddr, Failures>,
}

/// One client's recent failures.
#[derive(Debug)]
struct Failures {
    count: u32,
    last: Instant,
}

impl Default for FailureTracker {
    fn default() -> FailureTracker {
        FailureTracker::new()
    }
}

impl FailureTracker {
    pub fn new() -> FailureTracker {
        FailureTracker {
            clients: HashMap::new(),
        }
    }

    /// Records a failure from `ip` at `now` and returns how long to delay the 535 reply:
    /// zero for the first 2 failures of that IP, then (n-2) seconds capped at 5 s.
    pub fn failed(&mut self, ip: IpAddr, now: Instant) -> Duration {
        let key = tracking_key(ip);
        if !self.clients.contains_key(&key) && self.clients.len() >= TRACKED_ADDRESSES {
            self.make_room(now);
        }
        let failures = self.clients.entry(key).or_insert(Failures {
            count: 0,
            last: now,
        });
        if now.saturating_duration_since(failures.last) >= FORGET_AFTER {
            failures.count = 0;
        }
        failures.count = failures.count.saturating_add(1);
        failures.last = now;
        let over = failures.count.saturating_sub(FREE_FAILURES);
        MAX_DELAY.min(Duration::from_secs(u64::from(over)))
    }

    /// Forgets the expired clients, or if none has expired, the one whose last failure
    /// is the oldest. A linear scan, only when the table is full: cheap next to the
    /// hash computation that every failure has already cost.
    fn make_room(&mut self, now: Instant) {
        self.clients
            .retain(|_, f| now.saturating_duration_since(f.last) < FORGET_AFTER);
        if self.clients.len() >= TRACKED_ADDRESSES {
            let oldest = self
                .clients
                .iter()
                .min_by_key(|(_, f)| f.last)
                .map(|(&ip, _)| ip);
            if let Some(ip) = oldest {
                self.clients.remove(&ip);
            }
        }
    }
}

/// The key a client's failures are counted under: the IPv4 address, or the /64 of an
/// IPv6 address.
fn tracking_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
#[path = "throttle_tests.rs"]
mod tests;

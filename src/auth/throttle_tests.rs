//! Failure tracker tests: delays, expiry, the cap, IPv6 grouping.

use super::*;
use std::net::Ipv4Addr;

// ---- the failure tracker ----

fn v4(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
}

#[test]
fn auth_tracker_delays_grow_and_cap() {
    let mut tracker = FailureTracker::new();
    let now = Instant::now();
    let delays: Vec<u64> = (0..9)
        .map(|_| tracker.failed(v4(1), now).as_secs())
        .collect();
    assert_eq!(delays, [0, 0, 1, 2, 3, 4, 5, 5, 5]);
    // Another address starts from zero.
    assert_eq!(tracker.failed(v4(2), now), Duration::ZERO);
}

#[test]
fn auth_tracker_forgets_15_minutes_after_the_last_failure() {
    let mut tracker = FailureTracker::default();
    let start = Instant::now();
    for _ in 0..3 {
        tracker.failed(v4(1), start);
    }
    // Each failure restarts the 15 minutes.
    let later = start + Duration::from_secs(14 * 60);
    assert_eq!(tracker.failed(v4(1), later), Duration::from_secs(2));
    let almost = later + FORGET_AFTER - Duration::from_secs(1);
    assert_eq!(tracker.failed(v4(1), almost), Duration::from_secs(3));
    let expired = almost + FORGET_AFTER;
    assert_eq!(tracker.failed(v4(1), expired), Duration::ZERO);
    assert_eq!(tracker.failed(v4(1), expired), Duration::ZERO);
    assert_eq!(tracker.failed(v4(1), expired), Duration::from_secs(1));
}

#[test]
fn auth_tracker_is_bounded_and_forgets_the_oldest() {
    let mut tracker = FailureTracker::new();
    let start = Instant::now();
    let ip = |n: usize| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n as u32));
    // The first address fails three times, the oldest of all.
    for _ in 0..3 {
        tracker.failed(ip(0), start);
    }
    for n in 1..TRACKED_ADDRESSES {
        tracker.failed(ip(n), start + Duration::from_secs(1));
    }
    assert_eq!(tracker.clients.len(), TRACKED_ADDRESSES);
    // A new address pushes out the oldest: ip(0) is forgotten.
    tracker.failed(ip(TRACKED_ADDRESSES), start + Duration::from_secs(2));
    assert_eq!(tracker.clients.len(), TRACKED_ADDRESSES);
    assert!(!tracker.clients.contains_key(&ip(0)));
    assert_eq!(
        tracker.failed(ip(0), start + Duration::from_secs(3)),
        Duration::ZERO
    );
    assert_eq!(tracker.clients.len(), TRACKED_ADDRESSES);
    // When full of expired entries, they all go at once.
    let much_later = start + FORGET_AFTER + Duration::from_secs(10);
    tracker.failed(v4(200), much_later);
    assert_eq!(tracker.clients.len(), 1);
}

#[test]
fn auth_tracker_counts_ipv6_per_64_and_mapped_ipv4_as_ipv4() {
    let mut tracker = FailureTracker::new();
    let now = Instant::now();
    let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
    let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
    let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
    assert_eq!(tracker.failed(a, now), Duration::ZERO);
    assert_eq!(tracker.failed(b, now), Duration::ZERO);
    assert_eq!(tracker.failed(a, now), Duration::from_secs(1));
    assert_eq!(tracker.failed(other, now), Duration::ZERO);
    let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
    tracker.failed(v4(7), now);
    tracker.failed(v4(7), now);
    assert_eq!(tracker.failed(mapped, now), Duration::from_secs(1));
}

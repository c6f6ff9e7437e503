//! The answer cache: TTLs, the cap, negative answers.

use super::*;
use std::net::IpAddr;

fn a(ttl: u32, last: u8) -> Answer {
    Answer::Records {
        mx: Vec::new(),
        addrs: vec![IpAddr::from([192, 0, 2, last])],
        cname: None,
        ttl,
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn dns_cache_ttl_expiry_and_remaining_ttl() {
    let t0 = Instant::now();
    let mut cache = Cache::new(10);
    cache.put("Mail.Example.COM.", QType::A, &a(300, 1), t0);
    assert_eq!(cache.get("mail.example.com", QType::A, t0), Some(a(300, 1)));
    // The TTL handed out counts down; the type is part of the key.
    assert_eq!(
        cache.get("MAIL.example.com.", QType::A, t0 + secs(100)),
        Some(a(200, 1))
    );
    assert_eq!(cache.get("mail.example.com", QType::Aaaa, t0), None);
    assert_eq!(
        cache.get("mail.example.com", QType::A, t0 + secs(299)),
        Some(a(1, 1))
    );
    assert_eq!(
        cache.get("mail.example.com", QType::A, t0 + secs(300)),
        None
    );
    assert_eq!(cache.len(), 0, "an expired entry goes when looked at");
    // Replaced by a newer answer, not added twice.
    cache.put("x.example", QType::A, &a(60, 1), t0);
    cache.put("x.example", QType::A, &a(60, 2), t0 + secs(10));
    assert_eq!(cache.len(), 1);
    assert_eq!(
        cache.get("x.example", QType::A, t0 + secs(65)),
        Some(a(5, 2))
    );
}

#[test]
fn dns_cache_ttl_bounds_and_uncacheable_answers() {
    let t0 = Instant::now();
    let mut cache = Cache::new(10);
    cache.put("zero.example", QType::A, &a(0, 1), t0);
    cache.put("fail.example", QType::A, &Answer::ServerError(2), t0);
    cache.put("tc.example", QType::A, &Answer::Truncated, t0);
    assert!(cache.is_empty());
    // At most a day.
    cache.put("long.example", QType::A, &a(u32::MAX, 1), t0);
    assert_eq!(
        cache.get("long.example", QType::A, t0 + secs(86_399)),
        Some(a(1, 1))
    );
    assert_eq!(cache.get("long.example", QType::A, t0 + secs(86_400)), None);
    // Nothing at all with a cap of zero.
    let mut none = Cache::new(0);
    none.put("x.example", QType::A, &a(60, 1), t0);
    assert!(none.is_empty());
}

#[test]
fn dns_cache_nxdomain_cached() {
    let t0 = Instant::now();
    let mut cache = Cache::new(10);
    cache.put(
        "nope.example",
        QType::Mx,
        &Answer::NxDomain { ttl: 600 },
        t0,
    );
    let hit = cache.get("nope.example", QType::Mx, t0 + secs(1));
    assert_eq!(hit, Some(Answer::NxDomain { ttl: 599 }));
    assert_eq!(cache.get("nope.example", QType::Mx, t0 + secs(600)), None);
}

#[test]
fn dns_cache_cap_evicts_what_expires_first() {
    let t0 = Instant::now();
    let mut cache = Cache::new(3);
    cache.put("a.example", QType::A, &a(300, 1), t0);
    cache.put("b.example", QType::A, &a(100, 2), t0);
    cache.put("c.example", QType::A, &a(200, 3), t0);
    cache.put("d.example", QType::A, &a(400, 4), t0);
    assert_eq!(cache.len(), 3);
    assert_eq!(
        cache.get("b.example", QType::A, t0),
        None,
        "b expired first"
    );
    for name in ["a.example", "c.example", "d.example"] {
        assert!(cache.get(name, QType::A, t0).is_some(), "{name}");
    }
    // Updating a present key never evicts another.
    cache.put("a.example", QType::A, &a(10, 9), t0);
    assert_eq!(cache.len(), 3);
    // Expired entries make room before live ones are pushed out.
    cache.put("e.example", QType::A, &a(1000, 5), t0 + secs(250));
    assert_eq!(cache.len(), 2, "a (10 s) and c (200 s) had expired");
    assert!(cache.get("d.example", QType::A, t0 + secs(250)).is_some());
    assert!(cache.get("e.example", QType::A, t0 + secs(250)).is_some());
    // Full again: the next put evicts d (expires at 400 s), not e (1250 s).
    cache.put("f.example", QType::A, &a(1000, 6), t0 + secs(250));
    cache.put("g.example", QType::A, &a(1000, 7), t0 + secs(250));
    assert_eq!(cache.len(), 3);
    assert_eq!(cache.get("d.example", QType::A, t0 + secs(250)), None);
}

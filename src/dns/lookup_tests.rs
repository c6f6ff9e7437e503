//! The MX resolution state machine, driven by hand-made answers.

use super::*;

fn mx(records: &[(u16, &str)]) -> Answer {
    Answer::Records {
        mx: records.iter().map(|(p, x)| (*p, x.to_string())).collect(),
        addrs: Vec::new(),
        cname: None,
        ttl: 300,
    }
}

fn addrs(list: &[&str]) -> Answer {
    Answer::Records {
        mx: Vec::new(),
        addrs: list.iter().map(|a| a.parse().unwrap()).collect(),
        cname: None,
        ttl: 300,
    }
}

fn cname(target: &str) -> Answer {
    Answer::Records {
        mx: Vec::new(),
        addrs: Vec::new(),
        cname: Some(target.to_string()),
        ttl: 300,
    }
}

fn ask(list: &[(&str, QType)]) -> LookupStep {
    LookupStep::Ask(list.iter().map(|(n, t)| (n.to_string(), *t)).collect())
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|a| a.parse().unwrap()).collect()
}

fn host(name: &str, preference: u16, list: &[&str]) -> MxHost {
    MxHost {
        name: name.to_string(),
        preference,
        addrs: ips(list),
    }
}

const NX: Answer = Answer::NxDomain { ttl: 60 };
const SERVFAIL: Answer = Answer::ServerError(2);

/// Starts a lookup of `domain` and answers its MX question.
fn after_mx(domain: &str, seed: u64, answer: Option<&Answer>) -> (MxLookup, LookupStep) {
    let (mut lookup, first) = MxLookup::new(domain, seed);
    assert_eq!(first, ask(&[(&normalize(domain), QType::Mx)]));
    let step = lookup.answered(domain, QType::Mx, answer);
    (lookup, step)
}

fn host_names(step: &LookupStep) -> Vec<String> {
    match step {
        LookupStep::Hosts(hosts) => hosts.iter().map(|h| h.name.clone()).collect(),
        LookupStep::Ask(asks) => asks
            .iter()
            .filter(|(_, t)| *t == QType::A)
            .map(|(n, _)| n.clone())
            .collect(),
        other => panic!("no hosts: {other:?}"),
    }
}

#[test]
fn dns_lookup_mx_then_addresses_in_preference_order() {
    let records = mx(&[
        (20, "mx2.example.com"),
        (10, "MX1.Example.com"),
        (30, "mx3.example.com"),
    ]);
    let (mut lookup, step) = after_mx("Example.COM.", 1, Some(&records));
    assert_eq!(
        step,
        ask(&[
            ("mx1.example.com", QType::A),
            ("mx1.example.com", QType::Aaaa),
            ("mx2.example.com", QType::A),
            ("mx2.example.com", QType::Aaaa),
            ("mx3.example.com", QType::A),
            ("mx3.example.com", QType::Aaaa),
        ])
    );
    let answers = [
        ("mx2.example.com", QType::Aaaa, addrs(&["2001:db8::2"])),
        (
            "mx1.example.com",
            QType::A,
            addrs(&["192.0.2.1", "192.0.2.11"]),
        ),
        ("mx3.example.com", QType::A, addrs(&["192.0.2.3"])),
        ("mx1.example.com", QType::Aaaa, addrs(&["2001:db8::1"])),
        ("mx3.example.com", QType::Aaaa, mx(&[])),
    ];
    for (name, qtype, answer) in &answers {
        assert_eq!(lookup.answered(name, *qtype, Some(answer)), ask(&[]));
    }
    // An answer nobody waits for changes nothing.
    assert_eq!(
        lookup.answered("other.example", QType::A, Some(&addrs(&["192.0.2.9"]))),
        ask(&[])
    );
    let done = lookup.answered("MX2.example.com.", QType::A, Some(&addrs(&["192.0.2.2"])));
    assert_eq!(
        done,
        LookupStep::Hosts(vec![
            host(
                "mx1.example.com",
                10,
                &["192.0.2.1", "192.0.2.11", "2001:db8::1"]
            ),
            host("mx2.example.com", 20, &["192.0.2.2", "2001:db8::2"]),
            host("mx3.example.com", 30, &["192.0.2.3"]),
        ])
    );
    // Finished: later answers are ignored.
    assert_eq!(
        lookup.answered("example.com", QType::Mx, Some(&NX)),
        ask(&[])
    );
}

#[test]
fn dns_lookup_implicit_mx() {
    let (mut lookup, step) = after_mx("example.org", 1, Some(&mx(&[])));
    assert_eq!(
        step,
        ask(&[("example.org", QType::A), ("example.org", QType::Aaaa)])
    );
    assert_eq!(
        lookup.answered("example.org", QType::Aaaa, Some(&NX)),
        ask(&[])
    );
    let done = lookup.answered("example.org", QType::A, Some(&addrs(&["198.51.100.1"])));
    assert_eq!(
        done,
        LookupStep::Hosts(vec![host("example.org", 0, &["198.51.100.1"])])
    );
}

#[test]
fn dns_lookup_null_mx_and_nxdomain_bounce() {
    for exchange in ["", "."] {
        let (_, step) = after_mx("example.net", 1, Some(&mx(&[(0, exchange)])));
        let LookupStep::Bounce { status, reason } = step else {
            panic!("null MX must bounce: {step:?}");
        };
        assert_eq!(status, "5.1.10");
        assert!(
            reason.contains("example.net") && reason.contains("nullMX"),
            "{reason}"
        );
    }
    // A null MX among real ones is just not a host.
    let (_, step) = after_mx(
        "example.net",
        1,
        Some(&mx(&[(0, ""), (10, "mx.example.net")])),
    );
    assert_eq!(host_names(&step), ["mx.example.net"]);

    let (_, step) = after_mx("nope.example", 1, Some(&NX));
    let LookupStep::Bounce { status, reason } = step else {
        panic!("NXDOMAIN must bounce: {step:?}");
    };
    assert_eq!(status, "5.1.2");
    assert!(reason.contains("name=nope.example type=MX"), "{reason}");

    // Names no query can carry bounce before any question.
    for bad in ["", "a..b", "under score.example", "192.0.2.1"] {
        let (_, step) = MxLookup::new(bad, 1);
        assert!(
            matches!(
                step,
                LookupStep::Bounce {
                    status: "5.1.2",
                    ..
                }
            ),
            "{bad:?}: {step:?}"
        );
    }
}

#[test]
fn dns_lookup_mx_failures_defer() {
    for (answer, words) in [
        (Some(&SERVFAIL), "SERVFAIL"),
        (Some(&Answer::ServerError(5)), "REFUSED"),
        (None, "timeout"),
    ] {
        let (_, step) = after_mx("example.com", 1, answer);
        let LookupStep::Defer(reason) = step else {
            panic!("must defer: {step:?}");
        };
        assert!(
            reason.contains("type=MX") && reason.contains(words),
            "{reason}"
        );
    }
}

#[test]
fn dns_lookup_hosts_without_addresses_dropped() {
    let records = mx(&[
        (10, "gone.example.com"),
        (20, "v6only.example.com"),
        (30, "broken.example.com"),
    ]);
    let (mut lookup, _) = after_mx("example.com", 1, Some(&records));
    lookup.answered("gone.example.com", QType::A, Some(&NX));
    lookup.answered("gone.example.com", QType::Aaaa, Some(&NX));
    lookup.answered("v6only.example.com", QType::A, Some(&mx(&[])));
    lookup.answered(
        "v6only.example.com",
        QType::Aaaa,
        Some(&addrs(&["2001:db8::6"])),
    );
    lookup.answered("broken.example.com", QType::A, Some(&SERVFAIL));
    let done = lookup.answered("broken.example.com", QType::Aaaa, None);
    assert_eq!(
        done,
        LookupStep::Hosts(vec![host("v6only.example.com", 20, &["2001:db8::6"])])
    );
}

#[test]
fn dns_lookup_no_host_with_an_address_defers() {
    let records = mx(&[(10, "a.example.com"), (20, "b.example.com")]);
    let (mut lookup, _) = after_mx("example.com", 1, Some(&records));
    lookup.answered("a.example.com", QType::A, Some(&NX));
    lookup.answered("a.example.com", QType::Aaaa, Some(&mx(&[])));
    lookup.answered("b.example.com", QType::A, None);
    let LookupStep::Defer(reason) = lookup.answered("b.example.com", QType::Aaaa, Some(&SERVFAIL))
    else {
        panic!("no address at all must defer");
    };
    assert!(reason.contains("name=b.example.com type=A:"), "{reason}");

    // Only "no such record" answers: deferred too, with a plain reason.
    let (mut lookup, _) = after_mx("example.org", 1, Some(&mx(&[])));
    lookup.answered("example.org", QType::A, Some(&mx(&[])));
    let step = lookup.answered("example.org", QType::Aaaa, Some(&NX));
    assert_eq!(
        step,
        LookupStep::Defer("no A or AAAA record for the mail hosts of example.org".to_string())
    );

    // Every exchange unusable (IP addresses or bad bytes in names): MX records exist,
    // so no implicit MX; nothing to ask, defer.
    let bad = [(10, "192.0.2.1"), (20, "2001:db8::1"), (30, "mx?evil?com")];
    let (_, step) = after_mx("example.com", 1, Some(&mx(&bad)));
    assert!(
        matches!(&step, LookupStep::Defer(r) if r.contains("no valid mail host")),
        "{step:?}"
    );
}

#[test]
fn dns_lookup_exchange_cname_followed_and_bounded() {
    let (mut lookup, _) = after_mx("example.com", 1, Some(&mx(&[(10, "mx.example.com")])));
    let step = lookup.answered("mx.example.com", QType::A, Some(&cname("real.example.net")));
    assert_eq!(step, ask(&[("real.example.net", QType::A)]));
    lookup.answered("mx.example.com", QType::Aaaa, Some(&mx(&[])));
    // The old name is no longer awaited for A.
    assert_eq!(
        lookup.answered("mx.example.com", QType::A, Some(&addrs(&["192.0.2.66"]))),
        ask(&[])
    );
    let done = lookup.answered("real.example.net", QType::A, Some(&addrs(&["192.0.2.5"])));
    assert_eq!(
        done,
        LookupStep::Hosts(vec![host("mx.example.com", 10, &["192.0.2.5"])])
    );

    // Eight hops are followed; the ninth is one too many.
    for (hops, ok) in [(8, true), (9, false)] {
        let (mut lookup, _) = after_mx("example.com", 1, Some(&mx(&[(10, "c0.example")])));
        lookup.answered("c0.example", QType::Aaaa, Some(&NX));
        let mut step = LookupStep::Ask(Vec::new());
        for i in 0..hops {
            let (from, to) = (format!("c{i}.example"), format!("c{}.example", i + 1));
            step = lookup.answered(&from, QType::A, Some(&cname(&to)));
            if i < 8 {
                assert_eq!(step, ask(&[(&to, QType::A)]), "hop {i}");
            }
        }
        if ok {
            let last = format!("c{hops}.example");
            step = lookup.answered(&last, QType::A, Some(&addrs(&["192.0.2.8"])));
            assert_eq!(
                step,
                LookupStep::Hosts(vec![host("c0.example", 10, &["192.0.2.8"])])
            );
        } else {
            let LookupStep::Defer(reason) = step else {
                panic!("too deep must fail the host: {step:?}");
            };
            assert!(reason.contains("CNAME chain too long"), "{reason}");
        }
    }
}

#[test]
fn dns_lookup_domain_cname_requeries_mx() {
    let (mut lookup, step) = after_mx("alias.example", 1, Some(&cname("canonical.example")));
    assert_eq!(step, ask(&[("canonical.example", QType::Mx)]));
    // The old question is no longer awaited.
    assert_eq!(
        lookup.answered("alias.example", QType::Mx, Some(&NX)),
        ask(&[])
    );
    let step = lookup.answered(
        "canonical.example",
        QType::Mx,
        Some(&mx(&[(5, "mx.canonical.example")])),
    );
    assert_eq!(host_names(&step), ["mx.canonical.example"]);

    // Eight CNAMEs are followed for the MX question; the ninth defers.
    let (mut lookup, mut step) = after_mx("l0.example", 1, Some(&cname("l1.example")));
    for i in 1..=8 {
        assert_eq!(step, ask(&[(&format!("l{i}.example"), QType::Mx)]));
        let next = format!("l{}.example", i + 1);
        step = lookup.answered(&format!("l{i}.example"), QType::Mx, Some(&cname(&next)));
    }
    assert!(
        matches!(&step, LookupStep::Defer(r) if r.contains("CNAME chain too long")),
        "{step:?}"
    );
}

#[test]
fn dns_lookup_equal_preferences_shuffled_per_seed() {
    let records = mx(&[
        (10, "a.example"),
        (10, "b.example"),
        (5, "first.example"),
        (20, "last.example"),
    ]);
    let mut orders = std::collections::HashSet::new();
    for seed in 0..64 {
        let (_, step) = after_mx("example.com", seed, Some(&records));
        let names = host_names(&step);
        assert_eq!(names[0], "first.example");
        assert_eq!(names[3], "last.example");
        let (_, again) = after_mx("example.com", seed, Some(&records));
        assert_eq!(host_names(&again), names, "same seed, same order");
        orders.insert(names);
    }
    assert_eq!(orders.len(), 2, "both orders of a and b appear: {orders:?}");
}

#[test]
fn dns_lookup_duplicate_exchanges_and_cap() {
    let records = mx(&[
        (20, "dup.example"),
        (10, "dup.example"),
        (30, "other.example"),
    ]);
    let (_, step) = after_mx("example.com", 1, Some(&records));
    assert_eq!(host_names(&step), ["dup.example", "other.example"]);

    let many: Vec<(u16, String)> = (0..30).map(|i| (i, format!("mx{i}.example"))).collect();
    let refs: Vec<(u16, &str)> = many.iter().map(|(p, n)| (*p, n.as_str())).collect();
    let (_, step) = after_mx("example.com", 1, Some(&mx(&refs)));
    let names = host_names(&step);
    assert_eq!(names.len(), MAX_HOSTS);
    assert_eq!(names[0], "mx0.example");
}

#[test]
fn dns_lookup_shared_cname_target_answers_both_hosts() {
    let (mut lookup, _) = after_mx(
        "example.com",
        1,
        Some(&mx(&[(10, "x.example"), (20, "y.example")])),
    );
    assert_eq!(
        lookup.answered("x.example", QType::A, Some(&cname("t.example"))),
        ask(&[("t.example", QType::A)])
    );
    assert_eq!(
        lookup.answered("y.example", QType::A, Some(&cname("t.example"))),
        ask(&[("t.example", QType::A)])
    );
    lookup.answered("x.example", QType::Aaaa, Some(&NX));
    lookup.answered("y.example", QType::Aaaa, Some(&NX));
    let done = lookup.answered("t.example", QType::A, Some(&addrs(&["192.0.2.20"])));
    assert_eq!(
        done,
        LookupStep::Hosts(vec![
            host("x.example", 10, &["192.0.2.20"]),
            host("y.example", 20, &["192.0.2.20"]),
        ])
    );
}

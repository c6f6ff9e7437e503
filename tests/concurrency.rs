//! Many sessions at once on the one-threaded server: 200 concurrent sessions
//! all delivered, and slow clients that never delay a fast one.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

const USERS: [&str; 4] = ["alice", "bob", "carol", "dave"];

#[test]
fn two_hundred_concurrent_sessions() {
    const N: usize = 200;
    let server = Setup::new("conc-200").with("max_connections 300").start();
    let port = server.port;
    let connected = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..N)
        .map(|i| {
            let connected = Arc::clone(&connected);
            thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    let mut c = Client::connect(port);
                    c.reply().assert(220, "");
                    // Hold every session open until all N are: they really overlap.
                    connected.fetch_add(1, Ordering::SeqCst);
                    let deadline = Instant::now() + TIMEOUT;
                    while connected.load(Ordering::SeqCst) < N {
                        assert!(Instant::now() < deadline, "not all sessions connected");
                        thread::sleep(Duration::from_millis(5));
                    }
                    c.ehlo();
                    let user = USERS[i % USERS.len()];
                    let m = message(&format!("conc{i}"), &format!("conc {i}"), "concurrent");
                    let id = c.deliver(SENDER, &[&format!("{user}@example.test")], &m);
                    c.ok("QUIT", 221, "2.0.0");
                    id
                })
                .expect("spawn client thread")
        })
        .collect();
    let mut ids = BTreeSet::new();
    let mut failures = Vec::new();
    for (i, h) in handles.into_iter().enumerate() {
        match h.join() {
            Ok(id) => {
                ids.insert(id);
            }
            Err(_) => failures.push(i),
        }
    }
    assert!(failures.is_empty(), "sessions failed: {failures:?}");
    assert_eq!(ids.len(), N, "queue ids must be unique");
    for (u, user) in USERS.iter().enumerate() {
        let got = server.wait_mail(user, N / USERS.len());
        let have: BTreeSet<String> = got
            .iter()
            .map(|d| {
                let text = d.message_str();
                let line = text
                    .lines()
                    .find(|l| l.starts_with("Message-ID: "))
                    .unwrap_or("")
                    .to_string();
                line
            })
            .collect();
        let want: BTreeSet<String> = (0..N)
            .filter(|i| i % USERS.len() == u)
            .map(|i| format!("Message-ID: <conc{i}@client.test>"))
            .collect();
        assert_eq!(have, want, "{user} got the wrong set of messages");
    }
}

#[test]
fn slow_clients_do_not_delay_a_fast_one() {
    const SLOW: usize = 3;
    let server = Setup::new("conc-slow").start();
    let port = server.port;
    let slow_done = Arc::new(AtomicBool::new(false));
    let slow: Vec<_> = (0..SLOW)
        .map(|_| {
            let slow_done = Arc::clone(&slow_done);
            thread::spawn(move || {
                let mut c = Client::connect(port);
                c.reply().assert(220, "");
                c.stream().set_nodelay(true).expect("nodelay");
                let started = Instant::now();
                // One byte a second, ten bytes: a command line that takes ~9 s.
                for b in b"HELO slo\r\n" {
                    c.send(std::slice::from_ref(b));
                    thread::sleep(Duration::from_secs(1));
                }
                c.reply().assert(250, "");
                slow_done.store(true, Ordering::SeqCst);
                started.elapsed()
            })
        })
        .collect();
    // Let the slow clients get into the middle of their line.
    thread::sleep(Duration::from_millis(1500));
    let started = Instant::now();
    for i in 0..3 {
        let mut c = server.connect_ehlo();
        let m = message(&format!("fast{i}"), "fast", "fast");
        c.deliver(SENDER, &["alice@example.test"], &m);
        c.ok("QUIT", 221, "2.0.0");
    }
    let fast = started.elapsed();
    // Delivered too, not just accepted, while the slow ones are still typing.
    server.wait_mail("alice", 3);
    let fast_and_delivered = started.elapsed();
    assert!(
        !slow_done.load(Ordering::SeqCst),
        "slow clients finished before the fast one was delivered"
    );
    assert!(
        fast < Duration::from_secs(3),
        "3 fast transactions took {fast:?}"
    );
    assert!(
        fast_and_delivered < Duration::from_secs(5),
        "fast delivery took {fast_and_delivered:?}"
    );
    for h in slow {
        let took = h.join().expect("slow client");
        assert!(
            took >= Duration::from_secs(9),
            "slow client took only {took:?}"
        );
    }
}

//! Crash safety by behaviour: `kill -9` right after the 250, restart on the same
//! config, and every acknowledged message is in the Maildir exactly once; a
//! half-received message and stray partial files in the spool never turn
//! into deliveries.

mod common;

use std::fs;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

const RCPTS: [&str; 3] = ["alice", "bob", "carol"];

/// The Message-ID lines of a user's delivered messages, sorted.
fn message_ids(server: &Server, user: &str, n: usize) -> Vec<String> {
    let mut ids: Vec<String> = server
        .wait_mail(user, n)
        .iter()
        .map(|d| {
            d.message_str()
                .lines()
                .find(|l| l.starts_with("Message-ID: "))
                .unwrap_or("(none)")
                .to_string()
        })
        .collect();
    ids.sort();
    ids
}

#[test]
fn kill_right_after_250_then_restart_delivers_exactly_once() {
    let mut server = Setup::new("crash-250").start();
    let rcpts: Vec<String> = RCPTS.iter().map(|u| format!("{u}@example.test")).collect();
    let rcpts: Vec<&str> = rcpts.iter().map(String::as_str).collect();
    let mut want = Vec::new();
    // Vary the moment of the kill a little around "immediately after 250".
    for (i, delay_us) in [0u64, 0, 200, 1000, 3000].into_iter().enumerate() {
        let mut c = server.connect_ehlo();
        let m = message(&format!("crash{i}"), &format!("crash {i}"), "must survive");
        c.deliver(SENDER, &rcpts, &m);
        if delay_us > 0 {
            thread::sleep(Duration::from_micros(delay_us));
        }
        server.kill9();
        drop(c);
        server.start_again();
        want.push(format!("Message-ID: <crash{i}@client.test>"));
        want.sort();
        for user in RCPTS {
            assert_eq!(
                message_ids(&server, user, i + 1),
                want,
                "{user} after crash #{i}"
            );
        }
    }
    // One more restart without new mail: nothing is delivered again.
    server.kill9();
    server.start_again();
    for user in RCPTS {
        assert_eq!(
            message_ids(&server, user, want.len()),
            want,
            "{user} at the end"
        );
    }
    server.assert_no_mail("dave");
}

#[test]
fn kill_during_data_and_stray_spool_files_deliver_nothing() {
    let mut server = Setup::new("crash-partial").start();
    // A message cut off in the middle of DATA: never acknowledged.
    let mut c = server.connect_ehlo();
    c.ok(&format!("MAIL FROM:<{SENDER}>"), 250, "2.1.0");
    c.ok("RCPT TO:<alice@example.test>", 250, "2.1.5");
    c.ok("DATA", 354, "");
    let line = "partial partial partial partial partial partial partial\r\n";
    c.send(b"Subject: cut off\r\n\r\n");
    c.send(line.repeat(20000).as_bytes());
    // Give the server a moment to stream some of it to the spool (bounded;
    // if nothing shows up the test still checks the behaviour).
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        let bytes: u64 = files_under(&server.spool())
            .iter()
            .filter_map(|p| fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        if bytes > 100_000 {
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    server.kill9();
    drop(c);
    // Stray partial files, as a crash in the middle of writing might leave,
    // in every directory of the spool, named so no queue id can match.
    for (i, d) in dirs_under(&server.spool()).iter().enumerate() {
        fs::write(
            d.join(format!("tmp.partial.{i}")),
            "Received: from junk\nSubject: junk\n\nhalf a mess",
        )
        .expect("write stray file");
    }
    server.start_again();
    // The server works, and the only mail anyone gets is the new message.
    let mut c = server.connect_ehlo();
    let good = message("after-crash", "after", "after the crash");
    c.deliver(SENDER, &["alice@example.test"], &good);
    let got = server.wait_mail("alice", 1);
    assert_same_bytes(&got[0].message, &crlf_to_lf(&good), "after restart");
    for user in ["bob", "carol", "dave"] {
        server.assert_no_mail(user);
    }
    // And a second restart changes nothing.
    drop(c);
    server.kill9();
    server.start_again();
    let got = server.wait_mail("alice", 1);
    assert_same_bytes(&got[0].message, &crlf_to_lf(&good), "after second restart");
}

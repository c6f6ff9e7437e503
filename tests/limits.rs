//! Configured limits and the replies they produce: recipients per message,
//! message size (at MAIL, after DATA, in BDAT), errors per session,
//! connections, queue size and free space, and the command/data timeouts.

mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn too_many_recipients() {
    let server = Setup::new("limit-rcpt").with("max_recipients 3").start();
    let mut c = server.connect_ehlo();
    c.ok(&format!("MAIL FROM:<{SENDER}>"), 250, "2.1.0");
    for u in ["alice", "bob", "carol"] {
        c.ok(&format!("RCPT TO:<{u}@example.test>"), 250, "2.1.5");
    }
    c.ok("RCPT TO:<dave@example.test>", 452, "4.5.3");
    c.ok("RCPT TO:<dave@example.test>", 452, "4.5.3");
    c.ok("DATA", 354, "");
    let msg = message("rcpt-limit", "three", "three of four");
    let mut data = dot_stuff(&msg);
    data.extend_from_slice(b".\r\n");
    c.send(&data);
    queue_id(&c.reply());
    for u in ["alice", "bob", "carol"] {
        server.wait_mail(u, 1);
    }
    server.assert_no_mail("dave");
}

#[test]
fn size_limit_at_mail_and_after_data() {
    let server = Setup::new("limit-size")
        .with("max_message_size 10000")
        .start();
    let mut c = server.connect_ehlo();
    let from = format!("MAIL FROM:<{SENDER}>");
    c.ok(&format!("{from} SIZE=10001"), 552, "5.3.4");
    c.ok(&format!("{from} SIZE=100000000000"), 552, "5.3.4");
    c.ok(&format!("{from} SIZE=9000"), 250, "2.1.0");
    c.ok("RCPT TO:<alice@example.test>", 250, "2.1.5");
    c.ok("DATA", 354, "");
    // 20 000 bytes without end: the 552 comes only after the real final dot.
    let big = message("too-big", "big", &"0123456789012345678\n".repeat(1000));
    let mut data = dot_stuff(&big);
    data.extend_from_slice(b".\r\n");
    c.send(&data);
    c.reply().assert(552, "5.3.4");
    c.expect_silence(Duration::from_millis(300));
    // The session is still usable, and a small message goes through.
    let small = message("small", "small", "fits");
    c.deliver(SENDER, &["alice@example.test"], &small);
    let got = server.wait_mail("alice", 1);
    assert_same_bytes(&got[0].message, &crlf_to_lf(&small), "the small message");
}

#[test]
fn size_limit_in_bdat() {
    let server = Setup::new("limit-bdat")
        .with("max_message_size 10000")
        .start();
    let mut c = server.connect_ehlo();
    c.ok(&format!("MAIL FROM:<{SENDER}>"), 250, "2.1.0");
    c.ok("RCPT TO:<bob@example.test>", 250, "2.1.5");
    let chunk = "x".repeat(20000);
    c.send(format!("BDAT {} LAST\r\n{chunk}", chunk.len()).as_bytes());
    c.reply().assert(552, "5.3.4");
    // The chunk was consumed as data: the next line is a command again.
    c.ok("NOOP", 250, "2.0.0");
    let small = message("bdat-small", "small", "fits");
    c.deliver(SENDER, &["bob@example.test"], &small);
    let got = server.wait_mail("bob", 1);
    assert_same_bytes(&got[0].message, &crlf_to_lf(&small), "after BDAT overrun");
}

#[test]
fn too_many_errors_closes_the_session() {
    let n = 3;
    let server = Setup::new("limit-errors")
        .with(&format!("max_errors {n}"))
        .start();
    let mut c = server.connect_ehlo();
    let mut rejected = 0;
    let mut closed = false;
    for _ in 0..n + 2 {
        if c.send_lossy(b"FOO\r\n").is_err() {
            break;
        }
        match c.read_reply() {
            Ok(Some(r)) if r.code == 500 => {
                r.assert(500, "5.5.1");
                rejected += 1;
            }
            Ok(Some(r)) => {
                r.assert(421, "4.7.0");
                c.expect_closed();
                closed = true;
                break;
            }
            other => panic!("expected 500 or 421, got {other:?}"),
        }
    }
    assert!(
        closed,
        "no 421 after {rejected} bad commands (max_errors {n})"
    );
    assert!(
        rejected == n - 1 || rejected == n,
        "421 after {rejected} bad commands, max_errors is {n}"
    );
    // Other sessions are not affected.
    let mut d = server.connect_ehlo();
    d.ok("NOOP", 250, "2.0.0");
}

#[test]
fn max_connections() {
    let server = Setup::new("limit-conns").with("max_connections 3").start();
    let mut open: Vec<Client> = (0..3).map(|_| server.connect()).collect();
    for c in &mut open {
        c.ok("NOOP", 250, "2.0.0");
    }
    let mut extra = Client::connect(server.port);
    extra.reply().assert(421, "4.7.0");
    extra.expect_closed();
    // The three are still served.
    for c in &mut open {
        c.ok("NOOP", 250, "2.0.0");
    }
    // Ending one frees its slot (bounded retry: the close is seen on a later turn).
    let mut first = open.remove(0);
    first.ok("QUIT", 221, "2.0.0");
    first.expect_closed();
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let mut c = Client::connect(server.port);
        let r = c.reply();
        if r.code == 220 {
            c.ok("NOOP", 250, "2.0.0");
            break;
        }
        r.assert(421, "4.7.0");
        assert!(Instant::now() < deadline, "slot never freed after QUIT");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn queue_full_refuses_new_mail() {
    // dave's Maildir path is a plain file: deliveries to him fail and stay
    // queued (deferred for an hour), so the queue fills up.
    let mut server = Setup::new("limit-queue")
        .with("max_queue_messages 2")
        .with("retry_min 1h")
        .with("retry_max 2h")
        .start();
    block_path(&server.maildir("dave"));
    let mut c = server.connect_ehlo();
    for i in 0..2 {
        let m = message(&format!("stuck{i}"), "stuck", "stuck");
        c.deliver(SENDER, &["dave@example.test"], &m);
    }
    c.ok(&format!("MAIL FROM:<{SENDER}>"), 452, "4.3.1");
    c.ok("NOOP", 250, "2.0.0");
    // The refusal is per transaction; other sessions get it too.
    let mut d = server.connect_ehlo();
    d.ok(&format!("MAIL FROM:<{SENDER}>"), 452, "4.3.1");
    // Nothing was dropped: the server runs and both messages still wait in
    // the spool (at least one file each, whatever the layout).
    assert!(server.is_running());
    let files = files_under(&server.spool());
    assert!(files.len() >= 2, "spool holds {files:?}");
    server.assert_no_mail("alice");
}

#[test]
fn min_free_space_refuses_new_mail() {
    let server = Setup::new("limit-space")
        .with("min_free_space 1000000000000000000")
        .start();
    let mut c = server.connect_ehlo();
    c.ok(&format!("MAIL FROM:<{SENDER}>"), 452, "4.3.1");
    c.ok("NOOP", 250, "2.0.0");
}

#[test]
fn command_timeout_closes_idle_session() {
    let server = Setup::new("limit-cmd-timeout")
        .with("command_timeout 2s")
        .start();
    let mut idle = server.connect_ehlo();
    let started = Instant::now();
    // A busy neighbour is unaffected while the idle one waits to be dropped.
    let mut busy = server.connect_ehlo();
    busy.ok("NOOP", 250, "2.0.0");
    match idle.read_reply() {
        Ok(Some(r)) => {
            r.assert(421, "");
            idle.expect_closed();
        }
        Ok(None) => {}
        Err(e) => panic!("idle session not closed: {e}"),
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(8),
        "closed after {waited:?} with command_timeout 2s"
    );
    // `busy` has been silent as long by now; a new session still works.
    server.connect_ehlo().ok("NOOP", 250, "2.0.0");
}

#[test]
fn data_timeout_drops_the_message() {
    let server = Setup::new("limit-data-timeout")
        .with("data_timeout 2s")
        .start();
    let mut c = server.connect_ehlo();
    c.ok(&format!("MAIL FROM:<{SENDER}>"), 250, "2.1.0");
    c.ok("RCPT TO:<carol@example.test>", 250, "2.1.5");
    c.ok("DATA", 354, "");
    c.send(b"Subject: never finished\r\n\r\nhalf");
    let started = Instant::now();
    match c.read_reply() {
        Ok(Some(r)) => {
            r.assert(421, "");
            c.expect_closed();
        }
        Ok(None) => {}
        Err(e) => panic!("stalled DATA not closed: {e}"),
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(8),
        "closed after {waited:?} with data_timeout 2s"
    );
    // Prove the server had time to deliver anything it wrongly accepted.
    let mut d = server.connect_ehlo();
    d.deliver(SENDER, &["dave@example.test"], &message("dt", "dt", "dt"));
    server.wait_mail("dave", 1);
    server.assert_no_mail("carol");
}

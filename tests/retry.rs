//! Failed deliveries are deferred and retried, never dropped; recipients that
//! were delivered are recorded, so neither a retry nor a restart delivers to
//! them again.

mod common;

use std::fs;
use std::thread;
use std::time::Duration;

use common::*;

#[test]
fn deferred_recipient_is_retried_after_the_fault_is_fixed() {
    let server = Setup::new("retry-fixed")
        .with("retry_min 1s")
        .with("retry_max 2s")
        .start();
    // dave's Maildir path is a plain file: delivery to him fails.
    block_path(&server.maildir("dave"));
    let mut c = server.connect_ehlo();
    c.deliver(
        SENDER,
        &["dave@example.test"],
        &message("r1", "retry", "later"),
    );
    server.wait_log("to=<dave@example.test>");
    assert!(
        server.log_text().contains("status=deferred"),
        "{}",
        server.log_text()
    );
    assert_eq!(
        fs::read_dir(server.spool().join("msg")).unwrap().count(),
        1,
        "the deferred message stays queued"
    );
    fs::remove_file(server.maildir("dave")).unwrap();
    let got = server.wait_mail("dave", 1);
    assert!(got[0]
        .message_str()
        .contains("Message-ID: <r1@client.test>"));
    server.wait_log("removed");
}

#[test]
fn delivered_recipients_are_not_delivered_again_after_restart() {
    let mut server = Setup::new("retry-partial").with("retry_min 1h").start();
    block_path(&server.maildir("dave"));
    let mut c = server.connect_ehlo();
    let rcpts = [
        "alice@example.test",
        "dave@example.test",
        "bob@example.test",
    ];
    c.deliver(SENDER, &rcpts, &message("p1", "partial", "three of them"));
    server.wait_mail("alice", 1);
    server.wait_mail("bob", 1);
    server.wait_log("to=<dave@example.test>");
    // The outcome of each recipient is on disk before the next attempt.
    let state = fs::read_to_string(
        server
            .spool()
            .join("state")
            .read_dir()
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path(),
    )
    .unwrap();
    assert!(
        state.contains("0 sent") && state.contains("1 deferred") && state.contains("2 sent"),
        "{state}"
    );

    server.kill9();
    fs::remove_file(server.maildir("dave")).unwrap();
    server.start_again();
    server.wait_mail("dave", 1);
    thread::sleep(SETTLE);
    assert_eq!(server.delivered("alice").len(), 1, "alice got it once");
    assert_eq!(server.delivered("bob").len(), 1, "bob got it once");
    server.wait_log("removed");
}

/// `picomta flush` makes the running daemon retry a deferred message at once,
/// long before its retry time; without a daemon it says so and exits 69.
#[test]
fn flush_retries_deferred_mail_now() {
    let server = Setup::new("retry-flush").with("retry_min 1h").start();
    block_path(&server.maildir("dave"));
    let mut c = server.connect_ehlo();
    c.deliver(
        SENDER,
        &["dave@example.test"],
        &message("f1", "flush", "retried on request"),
    );
    server.wait_log("status=deferred");
    fs::remove_file(server.maildir("dave")).unwrap();
    // Nothing happens by itself for an hour.
    thread::sleep(Duration::from_millis(500));
    assert_eq!(
        common::mail::count_files(&server.maildir("dave").join("new")),
        0
    );
    let conf = server.config.to_string_lossy().into_owned();
    let (code, _, err) = run_binary(&["flush", "-c", &conf]);
    assert_eq!(code, Some(0), "{err}");
    let got = server.wait_mail("dave", 1);
    assert!(got[0]
        .message_str()
        .contains("Message-ID: <f1@client.test>"));
    server.wait_log("flush requested: 1 deferred messages retried now");
}

#[test]
fn flush_without_a_daemon_fails_clearly() {
    let dir = TestDir::new("retry-flush-down");
    let conf = dir.write(
        "picomta.conf",
        &format!("spool {}\n", dir.path.join("spool").display()),
    );
    let (code, _, err) = run_binary(&["flush", "-c", &conf.to_string_lossy()]);
    assert_eq!(code, Some(69), "{err}");
    assert!(err.contains("is picomta serve running?"), "{err}");
}

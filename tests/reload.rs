//! SIGHUP reloads the config and the files it names without dropping
//! sessions: a user added to the users file is accepted by the next session,
//! a session opened before keeps working, and a broken config is refused
//! with a log line while the running one stays.

mod common;

use std::fs;

use common::*;

#[test]
fn sighup_reloads_users_and_keeps_sessions() {
    let server = Setup::new("reload-users").start();
    let mut before = server.connect_ehlo();
    let mut c = server.connect_ehlo();
    c.ok(&format!("MAIL FROM:<{SENDER}>"), 250, "2.1.0");
    c.ok("RCPT TO:<erin@example.test>", 550, "5.1.1");
    c.ok("QUIT", 221, "");

    let users = server.dir.path.join("users");
    let mut text = fs::read_to_string(&users).unwrap();
    text.push_str("erin\n");
    fs::write(&users, text).unwrap();
    server.reload();
    server.wait_log("reloaded");

    let mut c = server.connect_ehlo();
    c.ok(&format!("MAIL FROM:<{SENDER}>"), 250, "2.1.0");
    c.ok("RCPT TO:<erin@example.test>", 250, "2.1.5");
    c.ok("DATA", 354, "");
    c.send(b"Message-ID: <reload1@client.test>\r\n\r\nfor erin\r\n.\r\n");
    c.reply().assert(250, "2.0.0");
    server.wait_mail("erin", 1);

    // The session opened before the reload still works.
    before.ok("NOOP", 250, "2.0.0");
}

#[test]
fn a_broken_config_is_refused_and_the_old_one_kept() {
    let server = Setup::new("reload-broken").start();
    let original = fs::read_to_string(&server.config).unwrap();
    fs::write(&server.config, format!("{original}max_connections zero\n")).unwrap();
    server.reload();
    let log = server.wait_log("reload failed, keeping the running config");
    assert!(
        log.contains("bad number 'zero' for 'max_connections'"),
        "{log}"
    );
    let mut c = server.connect_ehlo();
    c.ok("NOOP", 250, "2.0.0");
    c.deliver(
        SENDER,
        &["alice@example.test"],
        &message("r2", "still", "running"),
    );
    server.wait_mail("alice", 1);
}

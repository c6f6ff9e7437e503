//! Mail that cannot be delivered goes back to its sender as an RFC 3464
//! delivery status notification, parsed here by an independent MIME parser
//! (mailparse): for a recipient refused for good, and for one still deferred
//! when `queue_lifetime` runs out. Mail from the null sender is never answered.

mod common;

use std::thread;
use std::time::Duration;

use common::*;

/// The parts of a DSN: (per-message + per-recipient fields of the
/// delivery-status part, the quoted original headers).
fn parse_dsn(raw: &str) -> (String, String) {
    let mail = mailparse::parse_mail(raw.as_bytes()).expect("DSN parses");
    assert_eq!(mail.ctype.mimetype, "multipart/report", "{raw}");
    assert_eq!(
        mail.ctype.params.get("report-type").map(String::as_str),
        Some("delivery-status"),
        "{raw}"
    );
    assert_eq!(mail.subparts.len(), 3, "{raw}");
    assert_eq!(mail.subparts[0].ctype.mimetype, "text/plain");
    assert_eq!(mail.subparts[1].ctype.mimetype, "message/delivery-status");
    let status =
        String::from_utf8_lossy(mail.subparts[1].get_body_raw().unwrap().as_slice()).into_owned();
    let headers =
        String::from_utf8_lossy(mail.subparts[2].get_body_raw().unwrap().as_slice()).into_owned();
    (status, headers)
}

#[test]
fn a_refused_recipient_is_returned_to_the_sender() {
    let server = Setup::new("bounce-refused")
        .aliases("postmaster: alice\npiped: |/bin/true\n")
        .start();
    let mut c = server.connect_ehlo();
    let m = message("b1", "will bounce", "to a pipe alias");
    c.deliver("carol@example.test", &["piped@example.test"], &m);
    let got = server.wait_mail("carol", 1);
    let dsn = &got[0];
    assert_eq!(dsn.return_path, "", "a notification has the null sender");
    let raw = dsn.message_str();
    assert!(
        raw.contains("To: <carol@example.test>") || raw.contains("To: carol@example.test"),
        "{raw}"
    );
    let (status, headers) = parse_dsn(&raw);
    assert!(
        status.contains("Final-Recipient: rfc822; piped@example.test"),
        "{status}"
    );
    assert!(status.contains("Action: failed"), "{status}");
    assert!(status.contains("Status: 5."), "{status}");
    assert!(
        headers.contains("Message-ID: <b1@client.test>"),
        "{headers}"
    );
    server.wait_log("sender non-delivery notification");
}

#[test]
fn a_message_deferred_past_its_lifetime_bounces_with_4_4_7() {
    let server = Setup::new("bounce-expired")
        .with("retry_min 1s")
        .with("retry_max 1s")
        .with("queue_lifetime 2s")
        .start();
    block_path(&server.maildir("dave"));
    let mut c = server.connect_ehlo();
    let m = message("b2", "will expire", "dave's mailbox is broken");
    c.deliver("carol@example.test", &["dave@example.test"], &m);
    server.wait_log("status=deferred");
    let got = server.wait_mail("carol", 1);
    let (status, headers) = parse_dsn(&got[0].message_str());
    assert!(
        status.contains("Final-Recipient: rfc822; dave@example.test"),
        "{status}"
    );
    assert!(status.contains("Status: 4.4.7"), "{status}");
    assert!(
        headers.contains("Message-ID: <b2@client.test>"),
        "{headers}"
    );
    server.wait_log("removed");
    // The original is gone from the queue once it is reported.
    let left = std::fs::read_dir(server.spool().join("msg"))
        .unwrap()
        .count();
    assert_eq!(left, 0, "{}", server.log_text());
}

#[test]
fn the_null_sender_gets_no_notification() {
    let server = Setup::new("bounce-null")
        .aliases("postmaster: alice\npiped: |/bin/true\n")
        .start();
    let mut c = server.connect_ehlo();
    let m = message("b3", "a bounce that bounces", "never answered");
    c.deliver("", &["piped@example.test"], &m);
    server.wait_log("no notification: the sender is null");
    server.wait_log("removed");
    thread::sleep(Duration::from_millis(300));
    for user in ["alice", "bob", "carol", "dave"] {
        server.assert_no_mail(user);
    }
}

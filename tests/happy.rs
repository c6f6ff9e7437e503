//! Happy paths with an independent SMTP client (`lettre`): one recipient,
//! several, alias fan-out, `user+tag`, upper-case local parts, and a refused
//! unknown user. What was delivered is read back with the `maildir` crate and
//! parsed with `mailparse`, not with our own code.

mod common;

use common::*;
use lettre::message::header::ContentType;
use lettre::message::Message;
use lettre::Transport;
use mailparse::MailHeaderMap;

/// A text message from `SENDER` to `to`, with a Message-ID made from `tag`.
fn letter(to: &[&str], tag: &str, subject: &str, body: &str) -> Message {
    let mut b = Message::builder()
        .from(format!("Sender <{SENDER}>").parse().expect("from"))
        .subject(subject)
        .message_id(Some(format!("<{tag}@client.test>")));
    for t in to {
        b = b.to(t.parse().expect("to"));
    }
    b.header(ContentType::TEXT_PLAIN)
        .body(body.to_string())
        .expect("build message")
}

/// Sends with lettre and asserts the final reply is `250 2.0.0 Ok: queued as ID`.
fn send(server: &Server, m: &Message) {
    let resp = server.lettre().send(m).expect("lettre send");
    assert!(resp.has_code(250), "final reply {resp:?}");
    let text: Vec<&str> = resp.message().collect();
    let line = text.join(" ");
    assert!(line.starts_with("2.0.0 "), "no enhanced code in {line:?}");
    let id = line.rsplit("queued as ").next().unwrap_or("").trim();
    assert!(
        line.contains("queued as ")
            && !id.is_empty()
            && id
                .chars()
                .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c)),
        "bad queued reply {line:?}"
    );
}

/// What one delivered message says, read with the maildir crate and mailparse.
struct Read {
    subject: String,
    message_id: String,
    return_path: String,
    delivered_to: String,
    body: String,
    received: Vec<String>,
}

fn read_maildir(server: &Server, user: &str, n: usize) -> Vec<Read> {
    // Waits with our bounded poll, then reads with the independent crate.
    let ours = server.wait_mail(user, n);
    let md = maildir::Maildir::from(server.maildir(user));
    assert_eq!(
        md.count_new(),
        n,
        "maildir crate sees a different count in new/"
    );
    assert_eq!(md.count_cur(), 0, "nothing should be in cur/");
    let mut out = Vec::new();
    for entry in md.list_new() {
        let mut entry = entry.expect("maildir entry");
        let parsed = entry.parsed().expect("mailparse parses the delivered file");
        let h = &parsed.headers;
        out.push(Read {
            subject: h.get_first_value("Subject").unwrap_or_default(),
            message_id: h.get_first_value("Message-ID").unwrap_or_default(),
            return_path: h.get_first_value("Return-Path").unwrap_or_default(),
            delivered_to: h.get_first_value("Delivered-To").unwrap_or_default(),
            received: h.get_all_values("Received"),
            body: parsed.get_body().expect("body"),
        });
    }
    assert_eq!(out.len(), ours.len());
    out.sort_by(|a, b| a.message_id.cmp(&b.message_id));
    out
}

#[test]
fn one_message_to_one_user() {
    let server = Setup::new("happy-one").start();
    send(
        &server,
        &letter(
            &["alice@example.test"],
            "one",
            "Hello Alice",
            "First line.\nSecond line.\n",
        ),
    );
    let got = read_maildir(&server, "alice", 1);
    let m = &got[0];
    assert_eq!(m.subject, "Hello Alice");
    assert_eq!(m.message_id, "<one@client.test>");
    assert_eq!(m.return_path, format!("<{SENDER}>"));
    assert_eq!(m.delivered_to, "alice@example.test");
    assert_eq!(
        m.body.replace("\r\n", "\n").trim_end(),
        "First line.\nSecond line."
    );
    assert_eq!(
        m.received.len(),
        1,
        "exactly one Received header: {:?}",
        m.received
    );
    let rcv = &m.received[0];
    assert!(rcv.starts_with("from "), "Received: {rcv}");
    assert!(
        rcv.contains("client.test"),
        "Received names the HELO: {rcv}"
    );
    assert!(
        rcv.contains("127.0.0.1"),
        "Received names the peer IP: {rcv}"
    );
    assert!(
        rcv.contains(&format!("by {HOST}")),
        "Received names us: {rcv}"
    );
    assert!(rcv.contains(';'), "Received ends with '; date': {rcv}");
    // Our own strict reading of the same file: the prepended lines, in order.
    let d = &server.delivered("alice")[0];
    assert_eq!(d.return_path, SENDER);
    assert_eq!(d.delivered_to, "alice@example.test");
    for u in ["bob", "carol", "dave"] {
        server.assert_no_mail(u);
    }
}

#[test]
fn one_message_to_several_users() {
    let server = Setup::new("happy-several").start();
    send(
        &server,
        &letter(
            &[
                "alice@example.test",
                "bob@example.test",
                "carol@localhost.test",
            ],
            "several",
            "To three",
            "Hi all\n",
        ),
    );
    for (user, domain) in [
        ("alice", DOMAIN),
        ("bob", DOMAIN),
        ("carol", "localhost.test"),
    ] {
        let got = read_maildir(&server, user, 1);
        assert_eq!(got[0].subject, "To three");
        assert_eq!(got[0].message_id, "<several@client.test>");
        assert_eq!(got[0].delivered_to, format!("{user}@{domain}"));
        assert_eq!(got[0].body.trim_end(), "Hi all");
    }
    server.assert_no_mail("dave");
}

#[test]
fn alias_fans_out_and_nests() {
    let server = Setup::new("happy-alias").start();
    // team: alice, bob
    send(
        &server,
        &letter(&["team@example.test"], "team", "To the team", "t\n"),
    );
    let a = read_maildir(&server, "alice", 1);
    let b = read_maildir(&server, "bob", 1);
    assert_eq!(a[0].subject, "To the team");
    assert_eq!(b[0].subject, "To the team");
    server.assert_no_mail("carol");
    // staff: team, carol -> alice, bob, carol
    send(
        &server,
        &letter(&["staff@example.test"], "staff", "To the staff", "s\n"),
    );
    let a = read_maildir(&server, "alice", 2);
    let b = read_maildir(&server, "bob", 2);
    let c = read_maildir(&server, "carol", 1);
    for got in [&a, &b] {
        let ids: Vec<&str> = got.iter().map(|r| r.message_id.as_str()).collect();
        assert_eq!(ids, ["<staff@client.test>", "<team@client.test>"]);
    }
    assert_eq!(c[0].message_id, "<staff@client.test>");
    server.assert_no_mail("dave");
}

#[test]
fn plus_tag_delivers_to_the_user() {
    let server = Setup::new("happy-tag").start();
    send(
        &server,
        &letter(&["bob+lists@example.test"], "tag", "Tagged", "tagged\n"),
    );
    let got = read_maildir(&server, "bob", 1);
    assert_eq!(got[0].subject, "Tagged");
    let dt = got[0].delivered_to.to_ascii_lowercase();
    assert!(
        dt.starts_with("bob") && dt.ends_with("@example.test"),
        "Delivered-To {dt}"
    );
    server.assert_no_mail("alice");
}

#[test]
fn upper_case_local_part_and_domain() {
    let server = Setup::new("happy-case").start();
    send(
        &server,
        &letter(&["CAROL@Example.TEST"], "case", "Shouting", "loud\n"),
    );
    let got = read_maildir(&server, "carol", 1);
    assert_eq!(got[0].subject, "Shouting");
    assert_eq!(got[0].body.trim_end(), "loud");
    let dt = got[0].delivered_to.to_ascii_lowercase();
    assert!(
        dt.starts_with("carol") && dt.ends_with("@example.test"),
        "Delivered-To {dt}"
    );
}

#[test]
fn unknown_user_is_refused_permanently() {
    let server = Setup::new("happy-unknown").start();
    let err = server
        .lettre()
        .send(&letter(&["nobody@example.test"], "nobody", "Lost", "x\n"))
        .expect_err("an unknown user must be refused");
    assert!(err.is_permanent(), "550 is permanent: {err}");
    let code = err.status().map(u16::from);
    assert_eq!(code, Some(550), "{err}");
    // The session is not wedged: a good message right after goes through.
    send(
        &server,
        &letter(&["dave@example.test"], "after", "After", "ok\n"),
    );
    read_maildir(&server, "dave", 1);
}

#[test]
fn several_messages_in_a_row_get_distinct_files() {
    let server = Setup::new("happy-row").start();
    let transport = server.lettre();
    for i in 0..5 {
        let m = letter(
            &["alice@example.test"],
            &format!("row{i}"),
            &format!("Row {i}"),
            "r\n",
        );
        let resp = transport.send(&m).expect("send");
        assert!(resp.has_code(250));
    }
    let got = read_maildir(&server, "alice", 5);
    let ids: Vec<&str> = got.iter().map(|r| r.message_id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "<row0@client.test>",
            "<row1@client.test>",
            "<row2@client.test>",
            "<row3@client.test>",
            "<row4@client.test>"
        ]
    );
}

/// The same path with `sync_method fsync` (the default is `syncfs`): each
/// file and directory flushed on its own instead of one flush per file system.
#[test]
fn fsync_method_delivers_the_same() {
    let server = Setup::new("happy-fsync").with("sync_method fsync").start();
    for i in 0..3 {
        let m = letter(
            &["alice@example.test", "bob@example.test"],
            &format!("fs{i}"),
            &format!("Fsync {i}"),
            "flushed\n",
        );
        send(&server, &m);
    }
    for user in ["alice", "bob"] {
        let got = read_maildir(&server, user, 3);
        assert!(got.iter().all(|r| r.body.trim_end() == "flushed"), "{user}");
        assert!(got
            .iter()
            .all(|r| r.delivered_to == format!("{user}@example.test")));
    }
}

//! `picomta mailq` lists the queue from the spool, as Postfix's mailq does:
//! the waiting message with its sender, its recipient and why it waits; and
//! an empty queue says so.

mod common;

use common::*;

#[test]
fn mailq_shows_a_deferred_message_and_why() {
    let server = Setup::new("mailq")
        .with("retry_min 1h")
        .with("relayhost [127.0.0.1]:9")
        .with("relayhost_tls none")
        .start();
    let conf = server.config.to_string_lossy().into_owned();
    let (code, out, err) = run_binary(&["mailq", "-c", &conf]);
    assert_eq!(
        (code, out.as_str()),
        (Some(0), "Mail queue is empty\n"),
        "{err}"
    );

    let mut c = server.connect_ehlo();
    let id = c.deliver(
        "carol@example.test",
        &["far@remote.example"],
        &message("q1", "queued", "waits for a smarthost that is down"),
    );
    c.ok("QUIT", 221, "");
    server.wait_log("status=deferred");
    let (code, out, err) = run_binary(&["mailq", "-c", &conf]);
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("-Queue ID-"), "{out}");
    assert!(
        lines[1].starts_with(&id) && lines[1].ends_with("  carol@example.test"),
        "{out}"
    );
    assert!(
        lines[2]
            .trim_start()
            .starts_with("(connect to 127.0.0.1[127.0.0.1]:9:")
            && lines[2].contains("refused"),
        "{out}"
    );
    assert_eq!(lines[3].trim(), "far@remote.example", "{out}");
    assert!(out.ends_with("in 1 Request.\n"), "{out}");
}

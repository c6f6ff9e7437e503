//! SIGTERM stops the server gracefully: no new connections, idle sessions
//! are told 421 and closed, a message in the middle of DATA may finish and
//! is acknowledged and kept, and the process exits 0, within a bound.

mod common;

use std::io::Write;
use std::time::Duration;

use common::*;

#[test]
fn sigterm_lets_a_transaction_finish_and_loses_nothing() {
    let mut server = Setup::new("stop-term").start();
    let mut busy = server.connect_ehlo();
    busy.ok(&format!("MAIL FROM:<{SENDER}>"), 250, "2.1.0");
    busy.ok("RCPT TO:<alice@example.test>", 250, "2.1.5");
    busy.ok("DATA", 354, "");
    busy.send(b"Message-ID: <stop1@client.test>\r\nSubject: in flight\r\n\r\nfirst half\r\n");
    let mut idle = server.connect_ehlo();

    server.terminate();
    idle.reply().assert(421, "4.3.2");
    idle.expect_closed();
    server.wait_log("stopping: listeners closed");
    assert!(
        std::net::TcpStream::connect(server.addr()).is_err(),
        "the listener is closed"
    );

    busy.send(b"second half\r\n.\r\n");
    let queued = busy.reply();
    queued.assert(250, "2.0.0");
    let id = queue_id(&queued);
    let _ = busy.stream().write_all(b"QUIT\r\n");
    assert_eq!(server.wait_exit(Duration::from_secs(15)), Some(0));
    assert!(server.log_text().contains("stopped"));

    // Nothing acknowledged is lost: delivered before the exit, or after a start.
    let delivered = common::mail::count_files(&server.maildir("alice").join("new"));
    if delivered == 0 {
        assert!(server.spool().join("msg").join(&id).exists(), "{id} kept");
        server.start_again();
    }
    let got = server.wait_mail("alice", 1);
    assert!(got[0].message_str().contains("second half"));
}

#[test]
fn a_second_sigterm_stops_at_once() {
    let mut server = Setup::new("stop-twice").start();
    let mut busy = server.connect_ehlo();
    busy.ok(&format!("MAIL FROM:<{SENDER}>"), 250, "2.1.0");
    server.terminate();
    server.wait_log("stopping: listeners closed");
    server.terminate();
    assert_eq!(server.wait_exit(Duration::from_secs(5)), Some(0));
}

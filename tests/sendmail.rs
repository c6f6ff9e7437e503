//! `picomta sendmail`, as scripts use it: a message on stdin is queued even
//! when the daemon is down and delivered once it runs; a running daemon takes
//! it at once; each flag (-t with Bcc, -i/-oi, -f, -F, -odq, -q, -bs, -bp,
//! -bi, -v, unknown -o options) does what Postfix's sendmail does; exit codes
//! follow sysexits.h. Delivered mail is read with `mailparse`.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use common::*;

/// Runs `program ARGS` with `input` on stdin; (exit code, stdout, stderr).
fn run_with_input(program: &Path, args: &[&str], input: &[u8]) -> (Option<i32>, String, String) {
    run_command(Command::new(program).args(args), Some(input), TIMEOUT)
}

/// `picomta sendmail -C CONFIG ARGS` with `input`.
fn sendmail(server: &Server, args: &[&str], input: &str) -> (Option<i32>, String, String) {
    let conf = server.config.to_string_lossy().into_owned();
    let mut all = vec!["sendmail", "-C", &conf];
    all.extend_from_slice(args);
    run_with_input(Path::new(&binary()), &all, input.as_bytes())
}

fn drop_files(server: &Server) -> Vec<PathBuf> {
    files_under(&server.spool().join("drop"))
}

fn header<'a>(mail: &'a mailparse::ParsedMail<'a>, name: &str) -> Option<String> {
    use mailparse::MailHeaderMap;
    mail.get_headers().get_first_value(name)
}

fn uid() -> u32 {
    let out = Command::new("id").arg("-u").output().expect("id -u");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn queued_while_the_daemon_is_down_then_delivered_when_it_starts() {
    let mut server = Setup::new("sendmail-down").start();
    server.kill9();
    let (code, _, err) = sendmail(
        &server,
        &["alice"],
        "Subject: while you were out\n\nqueued with no daemon\n",
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        drop_files(&server).len(),
        1,
        "durably in the drop directory"
    );
    let conf = server.config.to_string_lossy().into_owned();
    let (code, out, _) = run_binary(&["mailq", "-c", &conf]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("waiting for the daemon") && out.contains("alice@example.test"),
        "{out}"
    );

    server.start_again();
    let got = server.wait_mail("alice", 1);
    let raw = &got[0].raw;
    let mail = mailparse::parse_mail(raw).expect("parses");
    assert_eq!(
        header(&mail, "Subject").as_deref(),
        Some("while you were out")
    );
    assert_eq!(mail.get_body().unwrap().trim(), "queued with no daemon");
    // The added headers: a Date that parses, a From at the local domain, a
    // Message-ID at the host name.
    let date = header(&mail, "Date").expect("Date added");
    mailparse::dateparse(&date).expect("the Date parses");
    assert!(
        header(&mail, "From").unwrap().ends_with("@example.test>")
            || header(&mail, "From").unwrap().ends_with("@example.test"),
        "{:?}",
        header(&mail, "From")
    );
    let id = header(&mail, "Message-ID").expect("Message-ID added");
    assert!(
        id.starts_with('<') && id.ends_with("@mx.test.example>"),
        "{id}"
    );
    // The trace names the submitting uid, which only the daemon can know.
    let text = String::from_utf8_lossy(raw);
    assert!(
        text.contains(&format!("(picomta, from userid {})", uid())),
        "{text}"
    );
    assert!(
        drop_files(&server).is_empty(),
        "taken out of the drop directory"
    );
}

/// Cron's mail may come before the daemon ever ran: the spool `sendmail`
/// makes then is one the daemon can start on (as root: owned by its user).
#[test]
fn sendmail_before_the_first_start_makes_a_spool_the_daemon_takes() {
    let mut server = Setup::new("sendmail-first").start();
    server.kill9();
    std::fs::remove_dir_all(server.spool()).unwrap();
    let (code, _, err) = sendmail(&server, &["alice"], "Subject: early\n\nfirst\n");
    assert_eq!(code, Some(0), "{err}");
    server.start_again();
    server.wait_mail("alice", 1);
}

#[test]
fn a_running_daemon_takes_the_message_at_once_and_odq_waits_for_q() {
    let server = Setup::new("sendmail-live").start();
    let (code, _, err) = sendmail(&server, &["bob@example.test"], "Subject: now\n\nx\n");
    assert_eq!(code, Some(0), "{err}");
    // The daemon reads the drop directory by itself only once a minute: this
    // arrives within the harness's 10 s only because sendmail told it.
    server.wait_mail("bob", 1);

    // -bm (the default mode), -odi and -odb all tell the daemon at once.
    for flags in [&["-bm"][..], &["-odi"], &["-odb"]] {
        let mut args = flags.to_vec();
        args.push("dave");
        let (code, _, err) = sendmail(&server, &args, "Subject: now too\n\nz\n");
        assert_eq!(code, Some(0), "{flags:?}: {err}");
    }
    server.wait_mail("dave", 3);

    let (code, _, err) = sendmail(&server, &["-odq", "carol"], "Subject: later\n\ny\n");
    assert_eq!(code, Some(0), "{err}");
    thread::sleep(Duration::from_millis(1500));
    server.assert_no_mail("carol");
    assert_eq!(drop_files(&server).len(), 1);
    let (code, _, err) = sendmail(&server, &["-q"], "");
    assert_eq!(code, Some(0), "{err}");
    server.wait_mail("carol", 1);
}

/// A message larger than what the daemon copies per loop turn (1 MiB) is
/// taken over several turns and arrives whole.
#[test]
fn a_large_message_arrives_whole() {
    let server = Setup::new("sendmail-large").start();
    let line: String = (0..100)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let body: String = (0..30_000).map(|i| format!("{i:06} {line}\n")).collect();
    let (code, _, err) = sendmail(&server, &["alice"], &format!("Subject: big\n\n{body}"));
    assert_eq!(code, Some(0), "{err}");
    let got = server.wait_mail("alice", 1);
    let mail = mailparse::parse_mail(&got[0].raw).unwrap();
    let delivered = mail.get_body_raw().unwrap();
    assert_eq!(delivered.len(), body.len());
    assert!(
        delivered == body.as_bytes(),
        "the body arrives byte for byte"
    );
}

#[test]
fn t_reads_to_cc_bcc_and_removes_bcc() {
    let server = Setup::new("sendmail-t").start();
    let message = "From: Ops <ops@example.test>\nTo: Alice <alice@example.test>\n\
                   Cc: bob\nBcc: carol@example.test\nSubject: blind\n\nhello\n";
    // dave, named on the command line, is added (Postfix's -t).
    let (code, _, err) = sendmail(&server, &["-t", "-v", "dave"], message);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("queued as"), "-v says what happened: {err}");
    for user in ["alice", "bob", "carol", "dave"] {
        let got = server.wait_mail(user, 1);
        let mail = mailparse::parse_mail(&got[0].raw).unwrap();
        assert_eq!(header(&mail, "Bcc"), None, "{user} sees no Bcc");
        assert!(!got[0].message_str().contains("carol@example.test"));
        assert_eq!(
            header(&mail, "From").as_deref(),
            Some("Ops <ops@example.test>"),
            "an existing From is kept"
        );
        assert_eq!(
            header(&mail, "To").as_deref(),
            Some("Alice <alice@example.test>")
        );
        assert_eq!(
            header(&mail, "Cc").as_deref(),
            Some("bob@example.test"),
            "an unqualified address gets the local domain"
        );
    }
}

#[test]
fn a_lone_dot_ends_the_message_unless_i() {
    let server = Setup::new("sendmail-dots").start();
    let body = "Subject: dots\n\nbefore\n.\nafter\n";
    let (code, _, _) = sendmail(&server, &["alice"], body);
    assert_eq!(code, Some(0));
    let got = server.wait_mail("alice", 1);
    let text = got[0].message_str();
    assert!(
        text.ends_with("\nbefore\n") && !text.contains("after"),
        "{text}"
    );

    for flag in ["-i", "-oi"] {
        let (code, _, _) = sendmail(&server, &[flag, "bob"], body);
        assert_eq!(code, Some(0));
    }
    for got in server.wait_mail("bob", 2) {
        let text = got.message_str();
        assert!(text.ends_with("\nbefore\n.\nafter\n"), "{text}");
    }
    // CRLF input is stored with LF ends like everything in the spool.
    let (code, _, _) = sendmail(&server, &["carol"], "Subject: crlf\r\n\r\none\r\ntwo\r\n");
    assert_eq!(code, Some(0));
    let text = server.wait_mail("carol", 1)[0].message_str();
    assert!(
        text.ends_with("\n\none\ntwo\n") && !text.contains('\r'),
        "{text:?}"
    );
}

#[test]
fn f_sets_the_sender_and_f_upper_the_name() {
    let server = Setup::new("sendmail-f").start();
    let (code, _, err) = sendmail(
        &server,
        &["-f", "cron@example.test", "-F", "Cron Daemon", "alice"],
        "Subject: nightly\n\nok\n",
    );
    assert_eq!(code, Some(0), "{err}");
    let got = server.wait_mail("alice", 1);
    assert_eq!(got[0].return_path, "cron@example.test");
    let mail = mailparse::parse_mail(&got[0].raw).unwrap();
    assert_eq!(
        header(&mail, "From").as_deref(),
        Some("Cron Daemon <cron@example.test>")
    );
    // -f with the null sender.
    let (code, _, err) = sendmail(&server, &["-f", "<>", "bob"], "Subject: n\n\nn\n");
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(server.wait_mail("bob", 1)[0].return_path, "");
}

#[test]
fn bs_is_an_smtp_session_on_stdin_and_stdout() {
    let server = Setup::new("sendmail-bs").start();
    let conf = server.config.to_string_lossy().into_owned();
    let mut child = Command::new(binary())
        .args(["sendmail", "-C", &conf, "-bs"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    // One reply (its last line), read with the harness's bound: the child is
    // killed if it hangs.
    let pid = child.id();
    let watchdog = thread::spawn(move || {
        thread::sleep(TIMEOUT);
        let _ = Command::new("kill").arg(pid.to_string()).status();
    });
    let mut reply = || -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            stdout.read_line(&mut line).unwrap();
            assert!(!line.is_empty(), "sendmail -bs closed early: {all}");
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    };
    let mut say = |text: &str| stdin.write_all(text.as_bytes()).unwrap();
    assert!(reply().starts_with("220 "));
    say("EHLO localhost\r\n");
    assert!(reply().contains("250 "));
    say("MAIL FROM:<script@example.test>\r\n");
    assert!(reply().starts_with("250 2.1.0"));
    say("RCPT TO:<alice@example.test>\r\n");
    assert!(reply().starts_with("250 2.1.5"));
    say("RCPT TO:<far@remote.example>\r\n");
    assert!(reply().starts_with("250 2.1.5"), "local callers may relay");
    say("DATA\r\n");
    assert!(reply().starts_with("354"));
    say("Subject: over bs\r\n\r\nline one\r\n..dotted\r\n.\r\n");
    let queued = reply();
    assert!(queued.starts_with("250 2.0.0 Ok: queued as "), "{queued}");
    // Delivered while the session is still open: each message is announced
    // to the daemon as it is queued.
    let got = server.wait_mail("alice", 1);
    say("QUIT\r\n");
    assert!(reply().starts_with("221"));
    drop(stdin);
    let status = child.wait().unwrap();
    assert!(status.success());
    drop(watchdog);

    assert_eq!(got[0].return_path, "script@example.test");
    let text = got[0].message_str();
    assert!(text.contains("\n\nline one\n.dotted\n"), "{text}");
    let mail = mailparse::parse_mail(&got[0].raw).unwrap();
    assert!(header(&mail, "Message-ID").is_some() && header(&mail, "Date").is_some());
    let raw = String::from_utf8_lossy(&got[0].raw);
    assert_eq!(raw.matches("Received:").count(), 1, "one trace line: {raw}");
}

#[test]
fn exit_codes_on_bad_input() {
    let server = Setup::new("sendmail-exit")
        .with("max_message_size 1000")
        .start();
    let cases: &[(&[&str], &str, i32, &str)] = &[
        (&[], "Subject: x\n\nx\n", 64, "no recipients"),
        (&["-t"], "Subject: x\n\nx\n", 65, "no recipients found"),
        (&["bad address@"], "x\n", 64, "bad recipient"),
        (&["-t"], "To: a@b@c\n\nx\n", 65, "bad recipient"),
        (&["-Z", "alice"], "x\n", 64, "unknown option -Z"),
        (&["-f", "not an address@", "alice"], "x\n", 64, "bad sender"),
        (&["-bd"], "", 64, "picomta serve"),
    ];
    for (args, input, want, words) in cases {
        let (code, _, err) = sendmail(&server, args, input);
        assert_eq!(code, Some(*want), "{args:?}: {err}");
        assert!(err.contains(words), "{args:?}: {err}");
    }
    let big = format!("Subject: big\n\n{}\n", "x".repeat(2000));
    let (code, _, err) = sendmail(&server, &["alice"], &big);
    assert_eq!(code, Some(65), "{err}");
    assert!(err.contains("max_message_size"), "{err}");
    assert!(drop_files(&server).is_empty(), "nothing left behind");

    // A config that cannot be read, and a broken one.
    let dir = TestDir::new("sendmail-exit-conf");
    let missing = dir.path.join("missing.conf").to_string_lossy().into_owned();
    let (code, _, err) = run_with_input(
        Path::new(&binary()),
        &["sendmail", "-C", &missing, "alice"],
        b"x\n",
    );
    assert_eq!(code, Some(78), "{err}");
    assert!(err.contains("missing.conf"), "{err}");
    let broken = dir.write("broken.conf", "spool /tmp/x\nno_such_key 1\n");
    let (code, _, err) = run_with_input(
        Path::new(&binary()),
        &["sendmail", "-C", &broken.to_string_lossy(), "alice"],
        b"x\n",
    );
    assert_eq!(code, Some(78), "{err}");
    assert!(err.contains("broken.conf:2:"), "{err}");
    server.assert_no_mail("alice");
}

#[test]
fn links_named_sendmail_mailq_and_newaliases() {
    let server = Setup::new("sendmail-links").start();
    let dir = &server.dir.path;
    for name in ["sendmail", "mailq", "newaliases"] {
        std::os::unix::fs::symlink(binary(), dir.join(name)).unwrap();
    }
    let conf = server.config.to_string_lossy().into_owned();
    // Unknown -o options are ignored with a warning, as Postfix does.
    let (code, _, err) = run_with_input(
        &dir.join("sendmail"),
        &["-oem", "-C", &conf, "-oi", "alice@example.test"],
        b"Subject: via the link\n\nhi\n",
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("warning: option -oem ignored"), "{err}");
    server.wait_mail("alice", 1);

    let (code, out, err) = run_with_input(&dir.join("mailq"), &["-C", &conf], b"");
    assert_eq!(
        (code, out.as_str()),
        (Some(0), "Mail queue is empty\n"),
        "{err}"
    );
    let (code, out, _) = run_with_input(&dir.join("sendmail"), &["-bp", "-C", &conf], b"");
    assert_eq!((code, out.as_str()), (Some(0), "Mail queue is empty\n"));
    let (code, _, err) = run_with_input(&dir.join("newaliases"), &["-C", &conf], b"");
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("SIGHUP"), "{err}");
}

/// The permission model end to end (needs root to set it up): the daemon
/// runs as nobody; the drop directory is mode 1730, group DROP_GID; a copy
/// of the binary is setgid DROP_GID. A local user (SUBMITTER, in no group)
/// can submit through it but cannot list the drop directory; the trace
/// names the user's uid. A config the user owns does not get the group.
#[test]
fn a_local_user_submits_through_the_setgid_binary() {
    use std::os::unix::fs::{chown, PermissionsExt};
    use std::os::unix::process::CommandExt;
    const DROP_GID: u32 = 4242;
    const SUBMITTER: u32 = 4243;
    if !is_root() {
        eprintln!("skipped: setting up a setgid binary and another user needs root");
        return;
    }
    let server = Setup::new("sendmail-setgid").start();
    let mode = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    let dir = server.dir.path.clone();
    mode(&dir, 0o755);
    mode(&server.config, 0o644);
    let drop_dir = server.spool().join("drop");
    chown(&drop_dir, Some(nobody().0), Some(DROP_GID)).unwrap();
    mode(&drop_dir, 0o1730);
    let bin = dir.join("sendmail");
    std::fs::copy(binary(), &bin).unwrap();
    chown(&bin, Some(0), Some(DROP_GID)).unwrap();
    mode(&bin, 0o2755);
    let conf = server.config.to_string_lossy().into_owned();
    let as_submitter = |program: &Path, args: &[&str]| {
        let mut c = Command::new(program);
        c.args(args).uid(SUBMITTER).gid(SUBMITTER).current_dir("/");
        c
    };

    let (code, _, err) = run_command(
        &mut as_submitter(&bin, &["-C", &conf, "alice"]),
        Some(b"Subject: from a user\n\nhello\n"),
        TIMEOUT,
    );
    assert_eq!(code, Some(0), "{err}");
    let got = server.wait_mail("alice", 1);
    let text = String::from_utf8_lossy(&got[0].raw);
    assert!(
        text.contains(&format!("(picomta, from userid {SUBMITTER})")),
        "{text}"
    );
    let listing = as_submitter(Path::new("ls"), &[&drop_dir.to_string_lossy()])
        .output()
        .unwrap();
    assert!(
        !listing.status.success(),
        "the drop directory is not listable"
    );

    // A config of the user's own: used without the group, so the drop
    // directory stays shut.
    let own = dir.join("own.conf");
    std::fs::copy(&server.config, &own).unwrap();
    chown(&own, Some(SUBMITTER), Some(SUBMITTER)).unwrap();
    let (code, _, err) = run_command(
        &mut as_submitter(&bin, &["-C", &own.to_string_lossy(), "bob"]),
        Some(b"Subject: x\n\nx\n"),
        TIMEOUT,
    );
    assert_eq!(code, Some(77), "{err}");
    assert!(err.contains("Permission denied"), "{err}");
    server.assert_no_mail("bob");
}

//! The command line and the config file: `check` prints the effective settings
//! (and its output is itself a valid config), every error names `file:line`
//! and exits 78, and several `listen` lines (IPv4 and IPv6) all serve.

mod common;

use std::net::{SocketAddr, TcpListener};

use common::*;

const EX_CONFIG: i32 = 78;

#[test]
fn check_prints_effective_settings() {
    let dir = TestDir::new("config-check");
    let conf = dir.write(
        "picomta.conf",
        &format!(
            "# a comment\n\
             hostname mx.check.example\n\
             \n\
             listen 127.0.0.1:2599\n\
             listen [::1]:2599\n\
             spool {spool}\n\
             max_connections 7\n\
             max_message_size 123456\n",
            spool = dir.path.join("spool").display()
        ),
    );
    let conf_s = conf.to_string_lossy().into_owned();
    let (code, out, err) = run_binary(&["check", "-c", &conf_s]);
    assert_eq!(code, Some(0), "check failed: {err}");
    let lines: Vec<&str> = out.lines().map(str::trim_end).collect();
    let spool = format!("spool {}", dir.path.join("spool").display());
    for want in [
        "hostname mx.check.example",
        "listen 127.0.0.1:2599 smtp",
        "listen [::1]:2599 smtp",
        spool.as_str(),
        "max_connections 7",
        "max_message_size 123456",
        // Defaults are printed too.
        "max_recipients 100",
        "max_errors 10",
        "max_queue_messages 10000",
    ] {
        assert!(
            lines.contains(&want),
            "'{want}' missing from check output:\n{out}"
        );
    }
    for key in [
        "maildir",
        "local_domains",
        "command_timeout",
        "data_timeout",
        "retry_min",
        "retry_max",
        "min_free_space",
    ] {
        assert!(
            lines
                .iter()
                .any(|l| l.split_whitespace().next() == Some(key)),
            "no '{key}' line in check output:\n{out}"
        );
    }
    // The printed settings are a config file that means the same thing.
    let again = dir.write("again.conf", &out);
    let (code, out2, err2) = run_binary(&["check", "-c", &again.to_string_lossy()]);
    assert_eq!(code, Some(0), "check of check's output failed: {err2}");
    assert_eq!(out2, out, "check output is not a fixed point");
}

/// Each bad config, and the line the error must name.
const BAD: [(&str, &str, usize); 7] = [
    ("unknown key", "hostname a.example\n# ok\nbogus_key 1\n", 3),
    (
        "bad number",
        "hostname a.example\nmax_connections lots\n",
        2,
    ),
    ("negative number", "max_recipients -1\n", 1),
    (
        "bad listen",
        "hostname a.example\nlisten not-an-address\n",
        2,
    ),
    ("maildir without {user}", "maildir /var/mail/all\n", 1),
    ("bad duration", "\n\ncommand_timeout soon\n", 3),
    ("missing value", "hostname\n", 1),
];

#[test]
fn config_errors_name_file_and_line_and_exit_78() {
    let dir = TestDir::new("config-errors");
    for (i, (what, text, line)) in BAD.iter().enumerate() {
        let conf = dir.write(&format!("bad{i}.conf"), text);
        let conf_s = conf.to_string_lossy().into_owned();
        for cmd in ["check", "serve"] {
            let (code, _out, err) = run_binary(&[cmd, "-c", &conf_s]);
            assert_eq!(
                code,
                Some(EX_CONFIG),
                "{cmd} with {what}: exit {code:?}, stderr {err}"
            );
            let want = format!("{conf_s}:{line}: ");
            assert!(
                err.contains(&want),
                "{cmd} with {what}: stderr lacks '{want}':\n{err}"
            );
        }
    }
}

#[test]
fn missing_files_exit_78() {
    let dir = TestDir::new("config-missing");
    let nothing = dir.path.join("does-not-exist.conf");
    let nothing_s = nothing.to_string_lossy().into_owned();
    let (code, _, err) = run_binary(&["check", "-c", &nothing_s]);
    assert_eq!(code, Some(EX_CONFIG), "{err}");
    assert!(
        err.contains(&nothing_s),
        "error does not name the file: {err}"
    );
    // A users file that does not exist is a config error too, naming that file.
    let users = dir.path.join("no-users");
    let conf = dir.write("conf", &format!("users {}\n", users.display()));
    let (code, _, err) = run_binary(&["check", "-c", &conf.to_string_lossy()]);
    assert_eq!(code, Some(EX_CONFIG), "{err}");
    assert!(
        err.contains(&*users.to_string_lossy()),
        "error does not name the users file: {err}"
    );
}

#[test]
fn help_version_and_usage_errors() {
    let (code, out, _) = run_binary(&["--version"]);
    assert_eq!(code, Some(0));
    assert_eq!(out.trim(), format!("picomta {}", env!("CARGO_PKG_VERSION")));
    let (code, out, _) = run_binary(&["--help"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("serve") && out.contains("check"), "{out}");
    let (code, _, err) = run_binary(&["frobnicate"]);
    assert_eq!(code, Some(64), "{err}");
    let (code, _, err) = run_binary(&["serve", "--no-such-flag"]);
    assert_eq!(code, Some(64), "{err}");
}

#[test]
fn listens_on_ipv4_and_ipv6() {
    let Ok(l6) = TcpListener::bind("[::1]:0") else {
        eprintln!("no IPv6 loopback here; skipping");
        return;
    };
    let port6 = l6.local_addr().expect("addr").port();
    drop(l6);
    let port4b = free_port();
    let server = Setup::new("config-listen")
        .with(&format!("listen [::1]:{port6}"))
        .with(&format!("listen 127.0.0.1:{port4b}"))
        .start();
    for addr in [
        server.addr(),
        SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], port6)),
        SocketAddr::from(([127, 0, 0, 1], port4b)),
    ] {
        let mut c = Client::connect_addr(addr);
        c.reply().assert(220, "");
        c.ehlo();
        let m = message(
            &format!("listen{}", addr.port()),
            "listen",
            &addr.to_string(),
        );
        c.deliver(SENDER, &["bob@example.test"], &m);
        c.ok("QUIT", 221, "2.0.0");
    }
    let got = server.wait_mail("bob", 3);
    let v6 = got
        .iter()
        .find(|d| d.message_str().contains("[::1]"))
        .expect("the IPv6 message");
    assert!(
        v6.received.contains("::1"),
        "Received names the IPv6 peer: {}",
        v6.received
    );
}

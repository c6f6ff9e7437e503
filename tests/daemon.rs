//! `serve -d`: the command returns 0 once the server is up, the daemon keeps
//! a pid file in the spool, answers mail, refuses a second start, and on
//! SIGTERM exits and removes its pid file.

mod common;

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// Stops the daemon (ours, by pid) if the test fails before it does.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.to_string()).status();
    }
}

#[test]
fn detached_daemon_with_a_pid_file() {
    let dir = TestDir::new("daemon");
    let port = free_port();
    let spool = dir.path.join("spool");
    let conf = dir.write(
        "picomta.conf",
        &format!(
            "hostname mx.test.example\nlisten 127.0.0.1:{port}\nspool {}\n\
             maildir {}/mail/{{user}}\nlocal_domains example.test\n\
             users {}\ndns_servers 127.0.0.1:9\n{}",
            spool.display(),
            dir.path.display(),
            dir.write("users", "alice\n").display(),
            run_as_line()
        ),
    );
    let conf = conf.to_string_lossy().into_owned();
    let log = fs::File::create(dir.path.join("server.log")).unwrap();
    let status = Command::new(binary())
        .args(["serve", "-d", "-c", &conf])
        .stderr(log)
        .status()
        .unwrap();
    assert!(status.success(), "serve -d exits 0 once up");
    let pid_file = spool.join("picomta.pid");
    let pid: u32 = fs::read_to_string(&pid_file)
        .expect("pid file")
        .trim()
        .parse()
        .unwrap();
    let guard = KillOnDrop(pid);
    assert!(
        fs::metadata(format!("/proc/{pid}")).is_ok(),
        "the daemon runs"
    );

    let mut c = Client::connect(port);
    c.reply().assert(220, "");
    c.ok("QUIT", 221, "");

    // A second daemon on the same spool is refused.
    let (code, _, err) = run_binary(&["serve", "-d", "-c", &conf]);
    assert_ne!(code, Some(0), "{err}");

    let killed = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    while fs::metadata(format!("/proc/{pid}")).is_ok() {
        assert!(Instant::now() < deadline, "daemon {pid} still running");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!pid_file.exists(), "the pid file is removed at exit");
    // It is gone: its pid may be reused by now, so no kill on drop.
    std::mem::forget(guard);
}

//! Daemon life for `serve -d`: refuse to start beside a running daemon,
//! detach from the terminal (fork, new session, stdin from /dev/null) once
//! the listeners are bound, so the starting command's exit status says
//! whether the server came up, and keep a pid file while running.

use std::fs::{self, File};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// The pid file of a daemon whose spool is `spool`.
pub fn pid_file(spool: &Path) -> PathBuf {
    spool.join("picomta.pid")
}

/// Detaches the process and writes `pid_file`. Returns only in the child; the
/// parent exits 0.
pub fn detach(pid_file: &Path) -> io::Result<()> {
    if let Some(pid) = running(pid_file) {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "picomta is already running as pid {pid} ({})",
                pid_file.display()
            ),
        ));
    }
    crate::logging::flush();
    // SAFETY: one thread; the child goes on with the same, single-threaded state.
    match unsafe { libc::fork() } {
        -1 => return Err(io::Error::last_os_error()),
        0 => {}
        child => {
            // The pid file exists before the starting command returns.
            let written = write_pid(pid_file, child as u32);
            if let Err(e) = &written {
                eprintln!("picomta: cannot write {}: {e}", pid_file.display());
            }
            std::process::exit(if written.is_ok() { 0 } else { 71 });
        }
    }
    // SAFETY: plain system calls on our own process and descriptors.
    unsafe { libc::setsid() };
    let null = File::options().read(true).write(true).open("/dev/null")?;
    // stdin and stdout let go of the terminal (or of whoever waits for the
    // starting command's output); stderr stays, for the log.
    for fd in [0, 1] {
        // SAFETY: both descriptors are open; dup2 replaces fd.
        if unsafe { libc::dup2(null.as_raw_fd(), fd) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

fn write_pid(pid_file: &Path, pid: u32) -> io::Result<()> {
    let tmp = pid_file.with_extension("pid.tmp");
    fs::write(&tmp, format!("{pid}\n"))?;
    fs::rename(&tmp, pid_file)
}

/// The pid in `pid_file`, if that process is alive.
fn running(pid_file: &Path) -> Option<i32> {
    let pid: i32 = fs::read_to_string(pid_file).ok()?.trim().parse().ok()?;
    // SAFETY: signal 0 only checks that the process exists.
    (pid > 0 && unsafe { libc::kill(pid, 0) } == 0).then_some(pid)
}

/// Removes the pid file at exit, if it is still ours.
pub fn remove_pid_file(pid_file: &Path) {
    let ours = fs::read_to_string(pid_file)
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok())
        == Some(std::process::id());
    if ours {
        let _ = fs::remove_file(pid_file);
    }
}

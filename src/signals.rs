//! Signals as loop events: a handler that only writes the signal's number to
//! a pipe (one async-signal-safe `write`), whose read end the reactor polls
//! like any socket. SIGTERM and SIGINT ask for a graceful stop; SIGHUP for a
//! reload.

use std::io::{self, Read};
use std::os::fd::IntoRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicI32, Ordering};

/// The write end of the pipe, for the handler (-1 until installed).
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

/// What a signal asks of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Stop,
    Reload,
}

extern "C" fn on_signal(number: libc::c_int) {
    let fd = WAKE_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = number as u8;
        // SAFETY: write(2) is async-signal-safe; the buffer is a local byte.
        // A full pipe drops the byte, but one pending byte already wakes the loop.
        unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    }
}

/// Installs the handlers; returns the read end for the reactor.
pub fn install() -> io::Result<mio::net::UnixStream> {
    let (read, write) = UnixStream::pair()?;
    read.set_nonblocking(true)?;
    write.set_nonblocking(true)?;
    WAKE_FD.store(write.into_raw_fd(), Ordering::Relaxed);
    for number in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: a zeroed sigaction with a valid handler and an empty mask is
        // a valid argument; the handler only calls write(2).
        let rc = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as *const () as usize;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(number, &action, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(mio::net::UnixStream::from_std(read))
}

/// The signals received since the last call.
pub fn take(read: &mut mio::net::UnixStream) -> Vec<Signal> {
    let mut got = Vec::new();
    let mut buf = [0u8; 16];
    loop {
        match read.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                for &b in &buf[..n] {
                    got.push(match i32::from(b) {
                        libc::SIGHUP => Signal::Reload,
                        _ => Signal::Stop,
                    });
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    got
}

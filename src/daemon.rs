//! Daemon life: the privilege drop of a server started as root (bind the
//! listeners, hand the spool to the mail user, then become that user for
//! good, before any mail or spool file is touched), and for `serve -d`:
//! refuse to start beside a running daemon, detach from the terminal (fork,
//! new session, stdin from /dev/null) once the listeners are bound, so the
//! starting command's exit status says whether the server came up, and keep
//! a pid file while running.

use std::fs::{self, DirBuilder, File};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::account::RunAs;
use crate::config::{Config, ConfigError};

/// Whom `serve` must become: `Some` when started as root, which needs
/// `user` (picomta never handles mail as root). Started as anyone else, it
/// cannot change users and runs as it is; `user` and `group` then only get a
/// warning if they name someone else, so the example config runs
/// unprivileged as it stands.
pub fn plan(config: &Config) -> Result<Option<RunAs>, ConfigError> {
    // SAFETY: geteuid and getegid cannot fail and touch no memory.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    if euid == 0 {
        return match &config.run_as {
            Some(run_as) => Ok(Some(run_as.clone())),
            None => Err(ConfigError {
                file: config.path.clone(),
                line: 0,
                message: "running as root needs \"user\": the account picomta handles mail \
                          as once its ports are bound (e.g. user picomta)"
                    .to_string(),
            }),
        };
    }
    match &config.run_as {
        Some(r) if r.uid == euid && r.gid == egid => log_running_as(r),
        Some(r) if r.uid == euid => log::warn!(
            "not started as root: group ignored, running as uid {euid} gid {egid} (not gid {})",
            r.gid
        ),
        Some(_) => {
            log::warn!("not started as root: user/group ignored, running as uid {euid}")
        }
        None => {}
    }
    Ok(None)
}

fn log_running_as(r: &RunAs) {
    log::info!("running as user {} (uid {}, gid {})", r.name, r.uid, r.gid);
}

/// As root, before the drop: makes sure the spool directory belongs to the
/// mail user, creating it (mode 0711, like Postfix's queue directory: the
/// user's own subdirectories are 0700) if it does not exist. An existing
/// spool of someone else is not taken over silently: it may be another
/// program's directory, or a typo; the error says what to run.
pub fn prepare_spool(spool: &Path, run_as: &RunAs) -> Result<(), String> {
    let owner = format!("{}:{}", run_as.uid, run_as.gid);
    let fail = |what: &str, e: io::Error| format!("spool {}: {what}: {e}", spool.display());
    match fs::metadata(spool) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = spool.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::create_dir_all(parent).map_err(|e| fail("cannot create its parent", e))?;
            }
            DirBuilder::new()
                .mode(0o711)
                .create(spool)
                .map_err(|e| fail("cannot create", e))?;
            // The umask may have taken bits off the mode.
            fs::set_permissions(spool, fs::Permissions::from_mode(0o711))
                .map_err(|e| fail("cannot set its mode", e))?;
            std::os::unix::fs::chown(spool, Some(run_as.uid), Some(run_as.gid))
                .map_err(|e| fail(&format!("cannot chown to {owner}"), e))?;
            log::info!("created spool {} for user {}", spool.display(), run_as.name);
            Ok(())
        }
        Err(e) => Err(fail("cannot use", e)),
        Ok(m) if !m.is_dir() => Err(format!("spool {}: not a directory", spool.display())),
        Ok(_) => {
            // The spool and the directories Spool::open would otherwise fail
            // in, with a bare "permission denied", after the drop.
            for dir in ["", "tmp", "msg", "state", "drop"] {
                let path = spool.join(dir);
                let Ok(m) = fs::metadata(&path) else {
                    continue;
                };
                if m.uid() != run_as.uid {
                    return Err(format!(
                        "{} is owned by uid {}, not by user {} (uid {}): \
                         run \"chown -R {owner} {}\" if it is picomta's spool",
                        path.display(),
                        m.uid(),
                        run_as.name,
                        run_as.uid,
                        spool.display()
                    ));
                }
            }
            Ok(())
        }
    }
}

/// Becomes `run_as` for good: supplementary groups, then the group, then the
/// user (in that order: only root may change the first two). Each call is
/// checked, and so is the result: if root could still be taken back, the
/// drop did not happen and the server must not go on.
pub fn drop_privileges(run_as: &RunAs) -> io::Result<()> {
    let gid: libc::gid_t = run_as.gid;
    let step = |what: &str, rc: libc::c_int| {
        if rc == 0 {
            Ok(())
        } else {
            let e = io::Error::last_os_error();
            Err(io::Error::new(e.kind(), format!("{what}: {e}")))
        }
    };
    // SAFETY: setgroups reads one gid from a valid pointer; setgid and setuid
    // take plain values. One thread, so no other thread keeps the old ids.
    unsafe {
        step("setgroups", libc::setgroups(1, &gid))?;
        step("setgid", libc::setgid(gid))?;
        step("setuid", libc::setuid(run_as.uid))?;
    }
    // SAFETY: plain system calls that take and return plain values.
    let regained = unsafe { libc::setuid(0) } == 0;
    // SAFETY: as above.
    let ids = unsafe {
        (
            libc::getuid(),
            libc::geteuid(),
            libc::getgid(),
            libc::getegid(),
        )
    };
    if regained || ids != (run_as.uid, run_as.uid, gid, gid) {
        return Err(io::Error::other(format!(
            "privilege drop to uid {} gid {} did not hold (uid/euid/gid/egid now {ids:?})",
            run_as.uid, run_as.gid
        )));
    }
    log_running_as(run_as);
    Ok(())
}

/// Gives up the setgid group (the binary is setgid `picomta-drop` for
/// `sendmail`) for good: every other use runs with the caller's own group.
pub fn drop_setgid() {
    // SAFETY: plain system calls on our own credentials.
    unsafe {
        let gid = libc::getgid();
        if libc::getegid() != gid && libc::setgid(gid) != 0 {
            eprintln!("picomta: cannot give up the setgid group");
            std::process::exit(71);
        }
    }
}

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
    if pid <= 0 {
        return None;
    }
    // SAFETY: signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    // EPERM: it exists, but runs as another user than this (dropped) process.
    let alive = rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    alive.then_some(pid)
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

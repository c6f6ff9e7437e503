//! `picomta passwd [USER]`: reads a password on stdin (on a terminal: prompted,
//! without echo, and asked twice) and prints a line for the `passwords` file,
//! `USER:$6$…`, or just the hash.

use std::io::{self, BufRead, Write};
use std::process::ExitCode;
use std::sync::OnceLock;

use crate::auth;

/// sysexits.h: a bad argument.
const EX_USAGE: u8 = 64;
/// sysexits.h: bad input data (an empty password, two that differ).
const EX_DATAERR: u8 = 65;
/// sysexits.h: the system failed us (no /dev/urandom, no terminal settings).
const EX_OSERR: u8 = 71;
/// sysexits.h: cannot write the output.
const EX_IOERR: u8 = 74;

/// Runs the subcommand; `user` is the optional USER argument.
pub fn passwd_command(user: Option<&str>) -> ExitCode {
    let fail = |code: u8, message: &str| {
        eprintln!("picomta passwd: {message}");
        ExitCode::from(code)
    };
    if let Some(problem) = user.and_then(auth::user_name_problem) {
        return fail(EX_USAGE, problem);
    }
    let password = match read_password() {
        Ok(Some(password)) => password,
        Ok(None) => return fail(EX_DATAERR, "the passwords do not match"),
        Err(e) => return fail(EX_OSERR, &format!("cannot read the password: {e}")),
    };
    if password.is_empty() {
        return fail(EX_DATAERR, "empty password");
    }
    let hash = match auth::hash_password(&password) {
        Ok(hash) => hash,
        Err(e) => return fail(EX_OSERR, &format!("cannot hash the password: {e}")),
    };
    let line = match user {
        Some(user) => format!("{user}:{hash}"),
        None => hash,
    };
    let mut out = io::stdout().lock();
    if let Err(e) = writeln!(out, "{line}").and_then(|()| out.flush()) {
        return fail(EX_IOERR, &format!("cannot write: {e}"));
    }
    ExitCode::SUCCESS
}

/// The password: one line of stdin, or on a terminal, typed twice without echo.
/// None if the two differ.
fn read_password() -> io::Result<Option<Vec<u8>>> {
    let mut stdin = io::stdin().lock();
    // SAFETY: isatty only inspects the descriptor.
    if unsafe { libc::isatty(libc::STDIN_FILENO) } != 1 {
        return read_line(&mut stdin).map(Some);
    }
    let _echo = EchoOff::new()?;
    let first = prompt(&mut stdin, "Password: ")?;
    if first.is_empty() {
        return Ok(Some(first));
    }
    let second = prompt(&mut stdin, "Password again: ")?;
    Ok((first == second).then_some(first))
}

/// Shows `text` on stderr and reads a line (echo is off: the newline is ours to print).
fn prompt(stdin: &mut impl BufRead, text: &str) -> io::Result<Vec<u8>> {
    let mut err = io::stderr();
    write!(err, "{text}")?;
    err.flush()?;
    let line = read_line(stdin);
    writeln!(err)?;
    line
}

/// One line without its `\n` or `\r\n`.
fn read_line(input: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    input.read_until(b'\n', &mut line)?;
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
    Ok(line)
}

/// The terminal settings before echo was turned off, for [`EchoOff`]'s drop and for
/// the signal handler (set once, before the handler is installed).
static SAVED_TERMINAL: OnceLock<libc::termios> = OnceLock::new();

/// Echo is off on the terminal on stdin while this lives; the settings come back on
/// drop, and on SIGINT, SIGTERM, SIGHUP or SIGQUIT before the process dies of it.
struct EchoOff;

impl EchoOff {
    fn new() -> io::Result<EchoOff> {
        // SAFETY: termios is plain data; tcgetattr fills it or fails.
        let mut settings: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: a valid pointer to a termios.
        if unsafe { libc::tcgetattr(libc::STDIN_FILENO, &mut settings) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let saved = *SAVED_TERMINAL.get_or_init(|| settings);
        for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
            // SAFETY: the handler only calls async-signal-safe functions.
            unsafe {
                libc::signal(
                    signal,
                    restore_and_die as extern "C" fn(libc::c_int) as libc::sighandler_t,
                );
            }
        }
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        // SAFETY: a valid pointer to a termios.
        if unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSAFLUSH, &quiet) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(EchoOff)
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        if let Some(saved) = SAVED_TERMINAL.get() {
            // SAFETY: a valid pointer to a termios.
            unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSAFLUSH, saved) };
        }
    }
}

/// A signal handler: restores the terminal, then dies of the signal as it would have.
extern "C" fn restore_and_die(signal: libc::c_int) {
    if let Some(saved) = SAVED_TERMINAL.get() {
        // SAFETY: tcsetattr is async-signal-safe; `saved` was written before this
        // handler was installed and never changes.
        unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, saved) };
    }
    // SAFETY: signal and raise are async-signal-safe; with the default action back,
    // the raised signal ends the process once this handler returns.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
}

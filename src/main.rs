//! picomta: argv dispatch to the subcommands (`serve`, `check`, `passwd`,
//! `flush`, `mailq`, and `sendmail`, also by the name it is called by), option
//! parsing with getopts, logger setup.

mod account;
mod auth;
mod config;
mod control;
mod daemon;
mod deliver;
mod dns;
mod durable;
mod inbound;
mod logging;
mod mailq;
mod net;
mod outbound;
mod passwd;
mod pickup;
mod queue;
mod reactor;
mod sendmail;
mod serve;
mod signals;
mod smtp;
mod util;

use std::path::PathBuf;
use std::process::ExitCode;

use config::{Config, EX_CONFIG};

const USAGE: &str = "Usage: picomta COMMAND [options]

Commands:
  serve -c FILE    run the mail server in the foreground (-d: detach, with a
                   pid file SPOOL/picomta.pid)
  check -c FILE    validate a config file and print the effective settings
  passwd [USER]    read a password on stdin, print a password-file line
  flush -c FILE    ask the running daemon to retry deferred mail now
  mailq -c FILE    list the queue (as Postfix's mailq does)
  sendmail [flags] [recipient ...]
                   queue a message read on stdin (also when invoked as
                   sendmail; mailq and newaliases links work too); its
                   config is -C FILE or $PICOMTA_CONFIG

Options:
  -c, --config FILE   config file (default /etc/picomta.conf)
  -h, --help          this text
  -V, --version       the version";

const DEFAULT_CONFIG: &str = "/etc/picomta.conf";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if let Some(code) = sendmail_call(&args) {
        return code;
    }
    // Only `sendmail` has a use for a setgid group (the drop directory).
    daemon::drop_setgid();
    let mut opts = getopts::Options::new();
    opts.optopt("c", "config", "config file", "FILE");
    opts.optflag("d", "daemon", "serve: detach and write a pid file");
    opts.optflag("h", "help", "show usage");
    opts.optflag("V", "version", "show the version");
    let matches = match opts.parse(&args[1..]) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("picomta: {e}\n\n{USAGE}");
            return ExitCode::from(64);
        }
    };
    if matches.opt_present("h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    if matches.opt_present("V") {
        println!("picomta {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let config_path = PathBuf::from(
        matches
            .opt_str("c")
            .unwrap_or_else(|| DEFAULT_CONFIG.to_string()),
    );
    let command = matches.free.first().map(String::as_str);
    match command {
        Some("serve") | Some("check") => {}
        Some("flush") => return flush(&config_path),
        Some("mailq") => {
            return match Config::load(&config_path) {
                Ok(config) => mailq::run(&config),
                Err(e) => {
                    eprintln!("picomta: {e}");
                    ExitCode::from(EX_CONFIG as u8)
                }
            }
        }
        Some("passwd") if matches.free.len() <= 2 => {
            return passwd::passwd_command(matches.free.get(1).map(String::as_str));
        }
        Some("passwd") => {
            eprintln!("picomta: passwd takes at most one USER\n\n{USAGE}");
            return ExitCode::from(64);
        }
        Some(other) => {
            eprintln!("picomta: unknown command '{other}'\n\n{USAGE}");
            return ExitCode::from(64);
        }
        None => {
            eprintln!("{USAGE}");
            return ExitCode::from(64);
        }
    }
    logging::init();
    let code = run(
        command == Some("check"),
        matches.opt_present("d"),
        &config_path,
    );
    logging::flush();
    code
}

/// `flush`: asks the daemon serving this config's spool to retry now.
fn flush(config_path: &std::path::Path) -> ExitCode {
    match Config::load(config_path) {
        Ok(config) => control::flush_command(&config),
        Err(e) => {
            eprintln!("picomta: {e}");
            ExitCode::from(EX_CONFIG as u8)
        }
    }
}

/// The program as called through a link named `sendmail`, `mailq` or
/// `newaliases`, or as `picomta sendmail`: the sendmail command line.
fn sendmail_call(args: &[String]) -> Option<ExitCode> {
    let called = std::path::Path::new(args.first()?)
        .file_name()?
        .to_str()?
        .to_string();
    let (mode, rest) = match called.as_str() {
        "sendmail" => (None, &args[1..]),
        "mailq" => (Some(sendmail::Mode::ListQueue), &args[1..]),
        "newaliases" => (Some(sendmail::Mode::Aliases), &args[1..]),
        _ if args.get(1).map(String::as_str) == Some("sendmail") => (None, &args[2..]),
        _ => return None,
    };
    Some(sendmail::run(mode, rest))
}

/// `check` or `serve` with the config at `config_path`.
fn run(check_only: bool, daemon: bool, config_path: &std::path::Path) -> ExitCode {
    let loaded = match serve::Loaded::load(config_path) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("picomta: {e}");
            return ExitCode::from(EX_CONFIG as u8);
        }
    };
    if check_only {
        print!("{}", loaded.config.render());
        return ExitCode::SUCCESS;
    }
    match serve::run(loaded, daemon) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("fatal: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

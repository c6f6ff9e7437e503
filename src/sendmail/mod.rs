//! `picomta sendmail` (also as `sendmail`, `mailq` and `newaliases` through
//! links): the command scripts and mail programs on the host hand mail to.
//! A message read on stdin (or an SMTP session on stdin with `-bs`) is
//! written into the spool's drop directory with a durable commit, so it is
//! queued even when the daemon is down; then the daemon is told over the
//! control socket, and copies it into the queue (`pickup.rs`).
//!
//! Exit codes follow sysexits.h; every error is one plain line on stderr.

mod address_list;
mod args;
mod headers;
mod input;
mod smtp;

use std::io;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::{Config, EX_CONFIG};
use crate::control;
use crate::queue::drop::DropFile;
use crate::queue::envelope::Envelope;
use crate::smtp::address::{parse_forward_path, parse_path, Mailbox, ReversePath};
use crate::util;
pub use args::Mode;
use args::{Args, DeliveryMode};

const EX_USAGE: u8 = 64;
const EX_DATAERR: u8 = 65;
const EX_CANTCREAT: u8 = 73;
const EX_IOERR: u8 = 74;
const EX_TEMPFAIL: u8 = 75;
const EX_NOPERM: u8 = 77;

const USAGE: &str =
    "Usage: sendmail [-t] [-i] [-f sender] [-F name] [-v] [-C config] [recipient ...]
       sendmail -bs | -bp | -q     (SMTP on stdin/stdout, list the queue, flush)";

/// The config used when none is named: `-C FILE`, then `$PICOMTA_CONFIG`.
const DEFAULT_CONFIG: &str = "/etc/picomta.conf";

/// Runs the command with `argv` (after the program name); `mode` is set when
/// the name it was called by implies one (`mailq`, `newaliases`).
pub fn run(mode: Option<Mode>, argv: &[String]) -> ExitCode {
    let mut args = match args::parse(argv) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("sendmail: {e}\n{USAGE}");
            return ExitCode::from(EX_USAGE);
        }
    };
    if let Some(mode) = mode {
        args.mode = mode;
    }
    for ignored in &args.ignored {
        eprintln!("sendmail: warning: option {ignored} ignored");
    }
    let chosen = args
        .config
        .clone()
        .or_else(|| std::env::var_os("PICOMTA_CONFIG").map(PathBuf::from));
    // Only submitting mail needs the setgid group, and only for the drop
    // directory. A config the caller chose keeps it only if root owns the
    // file (root put it there for this); any other is used with the caller's
    // own rights, so the group cannot be aimed at a spool of the caller's
    // making (Postfix's postdrop has the same rule for `-C`).
    let needs_group = matches!(args.mode, Mode::Message | Mode::Smtp | Mode::Flush);
    let trusted = chosen.as_ref().is_none_or(|path| {
        std::fs::metadata(path).is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
    });
    if !needs_group || !trusted {
        crate::daemon::drop_setgid();
    }
    let config_path = chosen.unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    let config = match Config::load(&config_path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("sendmail: {e}");
            return ExitCode::from(EX_CONFIG as u8);
        }
    };
    match args.mode {
        Mode::ListQueue => crate::mailq::run(&config),
        Mode::Flush => control::flush_command(&config),
        Mode::Aliases => {
            eprintln!(
                "sendmail: nothing to do: picomta reads its aliases file at start and on SIGHUP"
            );
            ExitCode::SUCCESS
        }
        Mode::Smtp => match prepare_as_root(&config) {
            Ok(()) => smtp::run(&config, &args, &Submitter::of_caller(&args, &config)),
            Err(e) => fail(EX_CANTCREAT, &e),
        },
        Mode::Message => submit(&config, &args),
    }
}

/// Who submits, and the addresses that follow from it.
pub struct Submitter {
    /// The login name of the real uid.
    pub login: String,
    pub full_name: Option<String>,
    /// The domain unqualified addresses get: the first local domain.
    pub domain: String,
}

impl Submitter {
    fn of_caller(args: &Args, config: &Config) -> Submitter {
        // SAFETY: getuid cannot fail.
        let uid = unsafe { libc::getuid() };
        let entry = std::fs::read_to_string(crate::account::PASSWD)
            .ok()
            .and_then(|text| crate::account::users(&text).find(|u| u.uid == uid));
        let (login, gecos) = match entry {
            Some(user) => (user.name, user.gecos),
            // No passwd entry (a container, a chroot): still send the mail.
            None => (
                std::env::var("LOGNAME")
                    .or_else(|_| std::env::var("USER"))
                    .unwrap_or_else(|_| format!("uid{uid}")),
                String::new(),
            ),
        };
        let gecos_name = gecos
            .split(',')
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        Submitter {
            login,
            full_name: args
                .full_name
                .clone()
                .or_else(|| (!gecos_name.is_empty()).then_some(gecos_name)),
            domain: config
                .local_domains
                .first()
                .unwrap_or(&config.hostname)
                .clone(),
        }
    }

    /// An address as written by the user: unqualified ones get the domain.
    pub fn qualify(&self, address: &str) -> String {
        if address.contains('@') {
            address.to_string()
        } else {
            format!("{address}@{}", self.domain)
        }
    }

    /// The envelope sender: `-f`, else the login at the domain.
    pub fn sender(&self, args: &Args) -> Result<ReversePath, String> {
        match args.sender.as_deref().map(str::trim) {
            None => parse_sender(&self.qualify(&self.login)),
            Some("" | "<>") => Ok(ReversePath::Null),
            Some(given) => {
                let bare = given.trim_start_matches('<').trim_end_matches('>');
                parse_sender(&self.qualify(bare))
            }
        }
    }
}

fn parse_sender(address: &str) -> Result<ReversePath, String> {
    parse_path(&format!("<{address}>"), true, true)
        .map_err(|_| format!("bad sender address <{address}>"))
}

/// A recipient address as written by the user, checked and qualified.
pub fn recipient(submitter: &Submitter, written: &str) -> Result<Mailbox, String> {
    let address = submitter.qualify(written);
    parse_forward_path(&format!("<{address}>"), true)
        .map_err(|_| format!("bad recipient address <{written}>"))
}

/// Root may be the first to use a new spool (a cron job's mail before the
/// daemon ever ran): the spool and drop directory are then made as the
/// daemon would make them, owned by the mail user, so it can start on them.
fn prepare_as_root(config: &Config) -> Result<(), String> {
    // SAFETY: geteuid cannot fail.
    let (Some(run_as), 0) = (&config.run_as, unsafe { libc::geteuid() }) else {
        return Ok(());
    };
    crate::daemon::prepare_spool(&config.spool, run_as)?;
    crate::queue::drop::ensure_dir(&config.spool, Some((run_as.uid, run_as.gid))).map_err(|e| {
        format!(
            "cannot create {}: {e}",
            crate::queue::drop::dir(&config.spool).display()
        )
    })?;
    Ok(())
}

/// The default mode: a message on stdin.
fn submit(config: &Config, args: &Args) -> ExitCode {
    if let Err(e) = prepare_as_root(config) {
        return fail(EX_CANTCREAT, &e);
    }
    let submitter = Submitter::of_caller(args, config);
    let sender = match submitter.sender(args) {
        Ok(s) => s,
        Err(e) => return fail(EX_USAGE, &e),
    };
    let mut rcpts = Vec::new();
    for arg in &args.recipients {
        for written in address_list::addresses(arg) {
            match recipient(&submitter, &written) {
                Ok(r) => rcpts.push(r),
                Err(e) => return fail(EX_USAGE, &e),
            }
        }
    }
    if rcpts.is_empty() && !args.extract_recipients {
        return fail(EX_USAGE, "no recipients given (name them, or use -t)");
    }
    let stdin = io::stdin();
    let message = input::Message {
        ignore_dots: args.ignore_dots,
        max_size: config.max_message_size,
        extract_recipients: args.extract_recipients,
        additions: additions(config, &submitter, &sender),
    };
    let result = message.read(&mut stdin.lock(), |header_recipients| {
        for written in header_recipients {
            rcpts.push(recipient(&submitter, written).map_err(input::Error::Data)?);
        }
        dedup(&mut rcpts);
        if rcpts.is_empty() {
            return Err(input::Error::Data(
                "no recipients found in the To, Cc and Bcc headers".to_string(),
            ));
        }
        let envelope = Envelope {
            arrival: util::unix_now(),
            from: sender.clone(),
            rcpts: rcpts.clone(),
        };
        DropFile::create(&config.spool, &envelope).map_err(input::Error::Create)
    });
    let name = match result.and_then(|drop| drop.commit().map_err(input::Error::Write)) {
        Ok(name) => name,
        Err(e) => return input_failure(config, e),
    };
    if args.verbose {
        let list: Vec<String> = rcpts.iter().map(|r| format!("<{r}>")).collect();
        eprintln!(
            "sendmail: queued as {name}: from <{sender}> to {}",
            list.join(", ")
        );
    }
    notify(config, args);
    ExitCode::SUCCESS
}

/// The headers added when missing, for a message from `sender`.
fn additions(config: &Config, submitter: &Submitter, sender: &ReversePath) -> headers::Additions {
    let from = match sender {
        ReversePath::Mailbox(m) => m.to_string(),
        ReversePath::Null => format!("MAILER-DAEMON@{}", config.hostname),
    };
    headers::Additions {
        date: util::rfc5322_date(util::unix_now()),
        from: headers::from_value(submitter.full_name.as_deref(), &from),
        message_id: format!(
            "<{:x}.{}@{}>",
            util::unix_micros(),
            // Without /dev/urandom the time alone keeps it unique enough.
            util::random_hex(4).unwrap_or_default(),
            config.hostname
        ),
        domain: submitter.domain.clone(),
    }
}

/// Removes repeated recipients, keeping the first of each. Quadratic, but
/// a message's recipients are few, and a hash set would cost the static
/// binary kilobytes.
fn dedup(rcpts: &mut Vec<Mailbox>) {
    let mut kept = 0;
    for i in 0..rcpts.len() {
        if !rcpts[..kept].contains(&rcpts[i]) {
            rcpts.swap(kept, i);
            kept += 1;
        }
    }
    rcpts.truncate(kept);
}

/// Tells the daemon a message waits, unless `-odq` asked it to wait for the
/// next scan. A daemon that is down picks it up when it starts.
fn notify(config: &Config, args: &Args) {
    if args.delivery == DeliveryMode::Queue {
        return;
    }
    if let Err(e) = control::send(&config.spool, &control::Request::Pickup) {
        if args.verbose {
            eprintln!(
                "sendmail: the daemon was not told ({e}); it takes the message when it next reads the queue"
            );
        }
    }
}

fn input_failure(config: &Config, e: input::Error) -> ExitCode {
    use input::Error;
    let drop_dir = crate::queue::drop::dir(&config.spool);
    match e {
        Error::Data(why) => fail(EX_DATAERR, &why),
        Error::TooBig(limit) => fail(
            EX_DATAERR,
            &format!("message larger than max_message_size ({limit} bytes)"),
        ),
        Error::Read(e) => fail(EX_IOERR, &format!("reading the message: {e}")),
        Error::Create(e) if e.kind() == io::ErrorKind::PermissionDenied => fail(
            EX_NOPERM,
            &format!(
                "cannot write to {}: {e} (is picomta installed setgid picomta-drop? see scripts/install)",
                drop_dir.display()
            ),
        ),
        Error::Create(e) => fail(
            EX_CANTCREAT,
            &format!("cannot queue in {}: {e}", drop_dir.display()),
        ),
        Error::Write(e) if e.raw_os_error() == Some(libc::ENOSPC) => fail(
            EX_TEMPFAIL,
            &format!("cannot queue in {}: {e}", drop_dir.display()),
        ),
        Error::Write(e) => fail(
            EX_IOERR,
            &format!("cannot queue in {}: {e}", drop_dir.display()),
        ),
    }
}

fn fail(code: u8, why: &str) -> ExitCode {
    eprintln!("sendmail: {why}");
    ExitCode::from(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn submitter() -> Submitter {
        Submitter {
            login: "cron".into(),
            full_name: None,
            domain: "host.test".into(),
        }
    }

    #[test]
    fn repeated_recipients_are_dropped_in_order() {
        let mb = |l: &str| Mailbox {
            local: l.into(),
            domain: "x.test".into(),
        };
        let mut r = vec![mb("a"), mb("b"), mb("a"), mb("c"), mb("b")];
        dedup(&mut r);
        assert_eq!(r, [mb("a"), mb("b"), mb("c")]);
    }

    #[test]
    fn senders_and_recipients_are_qualified_and_checked() {
        let s = submitter();
        let mut args = Args::default();
        assert_eq!(s.sender(&args).unwrap().to_string(), "cron@host.test");
        args.sender = Some("<>".into());
        assert_eq!(s.sender(&args).unwrap(), ReversePath::Null);
        args.sender = Some("".into());
        assert_eq!(s.sender(&args).unwrap(), ReversePath::Null);
        args.sender = Some("<ops@x.test>".into());
        assert_eq!(s.sender(&args).unwrap().to_string(), "ops@x.test");
        args.sender = Some("bad address@".into());
        assert!(s.sender(&args).is_err());
        assert_eq!(recipient(&s, "root").unwrap().to_string(), "root@host.test");
        assert_eq!(
            recipient(&s, "Alice@Example.TEST").unwrap().to_string(),
            "Alice@example.test"
        );
        assert!(recipient(&s, "a b@x").is_err());
        assert!(recipient(&s, "@").is_err());
    }
}

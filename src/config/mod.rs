//! The configuration file: `key value` lines, `#` comments, validated into a
//! [`Config`] with defaults; every error names `file:line`.

mod network;
mod outbound;
mod values;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::account::{self, RunAs};
use crate::durable::SyncMethod;

use values::*;

/// Exit status for a configuration error (sysexits.h EX_CONFIG).
pub const EX_CONFIG: i32 = 78;

pub use network::{Cidr, Listen, ListenKind};
pub use outbound::{Outbound, TlsPolicy};

#[derive(Debug, Clone)]
pub struct Config {
    /// Where it was read from, for messages and reloads.
    pub path: PathBuf,
    /// `hostname NAME`: greeting, Received, Maildir file names. Default: the
    /// system host name.
    pub hostname: String,
    /// `listen ADDR:PORT [smtp|submission|smtps]`, repeatable; IPv6 as
    /// `[::1]:2525`. Default: 127.0.0.1:2525 smtp.
    pub listen: Vec<Listen>,
    /// `tls_cert FILE` and `tls_key FILE` (PEM): both or neither. Needed by
    /// `submission` and `smtps` listeners; enable STARTTLS on `smtp` ones.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// `passwords FILE`: `user:$6$…` lines for AUTH. Default: none (no AUTH).
    pub passwords: Option<PathBuf>,
    /// `relay_networks CIDR…` (repeatable; `none` for no network): clients
    /// that may send to any domain without AUTH. Default: loopback.
    pub relay_networks: Vec<Cidr>,
    /// `plaintext_auth_on_loopback yes|no`: offer AUTH without TLS on
    /// listeners bound to a loopback address. Default no.
    pub plaintext_auth_on_loopback: bool,
    /// `sender_login yes|no`: an authenticated user may only send from its own
    /// addresses. Default no.
    pub sender_login: bool,
    /// `user NAME|UID`: who `serve` runs as once it has bound its listeners,
    /// when started as root (where it is required). Default: not set.
    pub user: Option<String>,
    /// `group NAME|GID`. Default: the user's primary group.
    pub group: Option<String>,
    /// What `user` and `group` resolve to, from /etc/passwd and /etc/group
    /// (`Config::load` resolves them; `Config::parse` leaves this `None`).
    pub run_as: Option<RunAs>,
    /// `spool DIR`. Default `spool` (relative to the working directory).
    pub spool: PathBuf,
    /// `maildir TEMPLATE` containing `{user}` exactly once, e.g. `mail/{user}`.
    /// Default `mail/{user}/Maildir`.
    pub maildir: String,
    /// `local_domains a.example b.example` (repeatable, lower-cased). Default: the hostname
    /// and `localhost`.
    pub local_domains: Vec<String>,
    /// `users FILE`: one mailbox name per line. Default: none (no local users).
    pub users: Option<PathBuf>,
    /// `aliases FILE` in /etc/aliases format. Default: none.
    pub aliases: Option<PathBuf>,
    /// `recipient_delimiter C`: `user+tag` delivers to `user`. Default `+`; `none` disables.
    pub recipient_delimiter: Option<char>,
    /// `max_connections N`. Default 100.
    pub max_connections: usize,
    /// `max_message_size BYTES` (suffixes k, M, G allowed). Default 25M.
    pub max_message_size: u64,
    /// `max_recipients N` per transaction. Default 100.
    pub max_recipients: usize,
    /// `max_errors N` bad commands before `421` and close. Default 10.
    pub max_errors: u32,
    /// `max_queue_messages N`: past it, MAIL gets 452 4.3.1. Default 10000.
    pub max_queue_messages: usize,
    /// `min_free_space BYTES`: below it on the spool's file system, MAIL gets
    /// 452 4.3.1. Default 100M.
    pub min_free_space: u64,
    /// `command_timeout DURATION` (e.g. `300s`, `5m`). Default 5m (RFC 5321 4.5.3.2.7).
    pub command_timeout: Duration,
    /// `data_timeout DURATION`: between chunks of message data. Default 5m.
    pub data_timeout: Duration,
    /// `retry_min DURATION` and `retry_max DURATION`: the first wait after a failed
    /// delivery, doubled per attempt up to the maximum. Defaults 1m and 1h.
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// `sync_method fsync|syncfs`: how each loop turn's writes are made durable
    /// (see `durable.rs`). Default `syncfs`.
    pub sync_method: SyncMethod,
    /// Mail for other domains: smarthost, DNS, TLS policy, caps, timeouts.
    pub outbound: Outbound,
    /// The line that set each key, for errors found after parsing (a
    /// certificate that cannot be read names its `tls_cert` line).
    lines: Vec<(&'static str, usize)>,
    /// The line of each `listen` entry, in order.
    listen_lines: Vec<usize>,
}

/// A configuration error, shown as `file:line: message` (line 0: the file itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
        }
    }
}

/// The text of a file the config names (or the config itself). Unreadable is
/// an error at line 0; bytes that are not UTF-8 are an error at their line.
pub fn read_text(path: &Path) -> Result<String, ConfigError> {
    let error = |line, message| ConfigError {
        file: path.to_path_buf(),
        line,
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| error(0, format!("cannot read: {e}")))?;
    String::from_utf8(bytes).map_err(|e| {
        let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = good.iter().filter(|&&b| b == b'\n').count() + 1;
        error(line, "not valid UTF-8".to_string())
    })
}

/// Every key the file may contain.
#[rustfmt::skip]
const KEYS: &[&str] = &[
    "hostname", "listen", "spool", "maildir", "local_domains", "users", "aliases",
    "recipient_delimiter", "max_connections", "max_message_size", "max_recipients",
    "max_errors", "max_queue_messages", "min_free_space", "command_timeout", "data_timeout",
    "retry_min", "retry_max", "sync_method", "tls_cert", "tls_key", "passwords",
    "relay_networks", "plaintext_auth_on_loopback", "sender_login", "user", "group",
];

/// Keys that may appear on several lines, each line adding to the list.
const REPEATABLE: &[&str] = &["listen", "local_domains", "relay_networks", "tls_policy"];

/// The static name of a known key.
fn known_key(key: &str) -> Option<&'static str> {
    KEYS.iter()
        .chain(outbound::KEYS)
        .find(|&&k| k == key)
        .copied()
}

pub(crate) const KIB: u64 = 1024;
pub(crate) const MIB: u64 = 1024 * KIB;
pub(crate) const GIB: u64 = 1024 * MIB;

impl Config {
    /// Reads and validates a config file, and resolves `user` and `group`
    /// whenever they are set (not only when running as root), so `check`
    /// catches a misspelt name.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let mut config = Config::parse(path, &read_text(path)?)?;
        config.resolve_accounts(&|p| std::fs::read_to_string(p))?;
        Ok(config)
    }

    /// Resolves `user` and `group` into `run_as`, reading the account files
    /// through `read`; errors name the key's line.
    pub fn resolve_accounts(
        &mut self,
        read: &dyn Fn(&Path) -> std::io::Result<String>,
    ) -> Result<(), ConfigError> {
        let Some(user) = &self.user else {
            return Ok(());
        };
        match account::resolve(user, self.group.as_deref(), read) {
            Ok(run_as) => {
                self.run_as = Some(run_as);
                Ok(())
            }
            Err(p) => Err(self.error_at(
                match p.key {
                    account::Key::User => "user",
                    account::Key::Group => "group",
                },
                p.message,
            )),
        }
    }

    /// Parses config text; `path` is only used in error messages.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let mut config = Config {
            path: path.to_path_buf(),
            hostname: String::new(),
            listen: Vec::new(),
            tls_cert: None,
            tls_key: None,
            passwords: None,
            relay_networks: Vec::new(),
            plaintext_auth_on_loopback: false,
            sender_login: false,
            user: None,
            group: None,
            run_as: None,
            spool: PathBuf::from("spool"),
            maildir: "mail/{user}/Maildir".to_string(),
            local_domains: Vec::new(),
            users: None,
            aliases: None,
            recipient_delimiter: Some('+'),
            max_connections: 100,
            max_message_size: 25 * MIB,
            max_recipients: 100,
            max_errors: 10,
            max_queue_messages: 10_000,
            min_free_space: 100 * MIB,
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(300),
            retry_min: Duration::from_secs(300),
            retry_max: Duration::from_secs(3600),
            sync_method: SyncMethod::Syncfs,
            outbound: Outbound::default(),
            lines: Vec::new(),
            listen_lines: Vec::new(),
        };
        let mut relay_networks_set = false;
        // Key -> the line that (last) set it, for duplicates and cross-key errors.
        let mut seen: Vec<(&str, usize)> = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let error = |message| ConfigError {
                file: path.to_path_buf(),
                line,
                message,
            };
            let words: Vec<&str> = strip_comment(raw).split_whitespace().collect();
            let Some((&key, values)) = words.split_first() else {
                continue;
            };
            let Some(key) = known_key(key) else {
                return Err(error(format!("unknown key '{key}'")));
            };
            if let Some(&(_, first)) = seen.iter().find(|(k, _)| *k == key) {
                if !REPEATABLE.contains(&key) {
                    return Err(error(format!(
                        "duplicate key '{key}' (first set on line {first})"
                    )));
                }
            }
            seen.retain(|(k, _)| *k != key);
            seen.push((key, line));
            relay_networks_set |= key == "relay_networks";
            config.set(key, values).map_err(error)?;
            if key == "listen" {
                config.listen_lines.push(line);
            }
        }
        config.lines = seen;
        if !relay_networks_set {
            config.relay_networks = Cidr::loopback();
        }
        config.check_listeners()?;
        if config.retry_min > config.retry_max {
            let line = config.line_of("retry_min").max(config.line_of("retry_max"));
            return Err(ConfigError {
                file: path.to_path_buf(),
                line,
                message: format!(
                    "retry_min ({}) is greater than retry_max ({})",
                    show_duration(config.retry_min),
                    show_duration(config.retry_max)
                ),
            });
        }
        if config.hostname.is_empty() {
            config.hostname = system_hostname();
        }
        if config.listen.is_empty() {
            config.listen.push(Listen {
                addr: SocketAddr::from(([127, 0, 0, 1], 2525)),
                kind: ListenKind::Smtp,
            });
        }
        if config.local_domains.is_empty() {
            config
                .local_domains
                .push(config.hostname.to_ascii_lowercase());
            if config.local_domains[0] != "localhost" {
                config.local_domains.push("localhost".to_string());
            }
        }
        Ok(config)
    }

    /// Applies one line's values; the error text gets its `file:line` from the caller.
    fn set(&mut self, key: &str, values: &[&str]) -> Result<(), String> {
        if outbound::KEYS.contains(&key) {
            return self.outbound.set(key, values);
        }
        if REPEATABLE.contains(&key) {
            return match key {
                "listen" => self.add_listen(values),
                "relay_networks" => self.add_relay_networks(values),
                _ => self.add_domains(values),
            };
        }
        let value = match values {
            [] => return Err(format!("missing value for '{key}'")),
            [one] => *one,
            _ => return Err(format!("'{key}' takes one value, not {}", values.len())),
        };
        match key {
            "hostname" => {
                self.hostname = domain(value).ok_or(format!("bad host name '{value}'"))?
            }
            "spool" => self.spool = PathBuf::from(value),
            "user" => self.user = Some(value.to_string()),
            "group" => self.group = Some(value.to_string()),
            "maildir" if value.matches("{user}").count() != 1 => {
                return Err(format!(
                    "maildir template '{value}' must contain {{user}} exactly once"
                ))
            }
            "maildir" => self.maildir = value.to_string(),
            "users" => self.users = Some(PathBuf::from(value)),
            "aliases" => self.aliases = Some(PathBuf::from(value)),
            "tls_cert" => self.tls_cert = Some(PathBuf::from(value)),
            "tls_key" => self.tls_key = Some(PathBuf::from(value)),
            "passwords" => self.passwords = Some(PathBuf::from(value)),
            "plaintext_auth_on_loopback" => self.plaintext_auth_on_loopback = yes_no(key, value)?,
            "sender_login" => self.sender_login = yes_no(key, value)?,
            "recipient_delimiter" => self.recipient_delimiter = delimiter(value)?,
            "max_connections" => self.max_connections = positive(key, value)?,
            "max_recipients" => self.max_recipients = positive(key, value)?,
            "max_queue_messages" => self.max_queue_messages = positive(key, value)?,
            "max_errors" => {
                self.max_errors = u32::try_from(positive(key, value)?)
                    .map_err(|_| format!("'{key}' is too large"))?
            }
            "max_message_size" => match size(key, value)? {
                0 => return Err(format!("'{key}' must be at least 1")),
                n => self.max_message_size = n,
            },
            "min_free_space" => self.min_free_space = size(key, value)?,
            "command_timeout" => self.command_timeout = duration(key, value)?,
            "data_timeout" => self.data_timeout = duration(key, value)?,
            "retry_min" => self.retry_min = duration(key, value)?,
            "retry_max" => self.retry_max = duration(key, value)?,
            "sync_method" => {
                self.sync_method = match value {
                    "fsync" => SyncMethod::Fsync,
                    "syncfs" => SyncMethod::Syncfs,
                    _ => return Err(format!("'{key}' must be fsync or syncfs, not '{value}'")),
                }
            }
            _ => return Err(format!("unknown key '{key}'")),
        }
        Ok(())
    }

    fn add_listen(&mut self, values: &[&str]) -> Result<(), String> {
        let listen = Listen::parse(values)?;
        if self.listen.iter().any(|l| l.addr == listen.addr) {
            return Err(format!("duplicate listen address '{}'", listen.addr));
        }
        self.listen.push(listen);
        Ok(())
    }

    fn add_relay_networks(&mut self, values: &[&str]) -> Result<(), String> {
        match values {
            [] => Err("missing value for 'relay_networks'".to_string()),
            ["none"] => Ok(()),
            _ => {
                for value in values {
                    let cidr = Cidr::parse(value)?;
                    if !self.relay_networks.contains(&cidr) {
                        self.relay_networks.push(cidr);
                    }
                }
                Ok(())
            }
        }
    }

    /// Cross-key rules: `group` needs `user`; TLS needs both files;
    /// submission ports need a way to authenticate. Reported at the line
    /// that cannot be served.
    fn check_listeners(&self) -> Result<(), ConfigError> {
        if self.group.is_some() && self.user.is_none() {
            return Err(self.error_at("group", "group needs user"));
        }
        if self.outbound.relayhost_auth.is_some() && self.outbound.relayhost.is_none() {
            return Err(self.error_at("relayhost_auth", "relayhost_auth needs relayhost"));
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => return Err(self.error_at("tls_cert", "tls_cert needs tls_key")),
            (None, Some(_)) => return Err(self.error_at("tls_key", "tls_key needs tls_cert")),
            _ => {}
        }
        for l in &self.listen {
            let what = match l.kind {
                ListenKind::Smtp => continue,
                ListenKind::Smtps if self.tls_cert.is_none() => {
                    "an smtps listener needs tls_cert and tls_key"
                }
                ListenKind::Submission
                    if self.tls_cert.is_none() && !self.plaintext_auth_allowed(l) =>
                {
                    "a submission listener needs tls_cert and tls_key (AUTH is only offered over TLS)"
                }
                _ if self.passwords.is_none() => {
                    "this listener needs a passwords file (submission ports serve only authenticated users)"
                }
                _ => continue,
            };
            let line = self.listen_line(l);
            return Err(ConfigError {
                file: self.path.clone(),
                line,
                message: format!("listen {l}: {what}"),
            });
        }
        Ok(())
    }

    /// Whether AUTH may be offered on `listen` before TLS.
    pub fn plaintext_auth_allowed(&self, listen: &Listen) -> bool {
        self.plaintext_auth_on_loopback && listen.addr.ip().is_loopback()
    }

    /// The line of the `listen` line for `listen` (the last `listen` line
    /// if lines are not tracked, e.g. in a default config).
    fn listen_line(&self, listen: &Listen) -> usize {
        let index = self.listen.iter().position(|l| l == listen).unwrap_or(0);
        self.listen_lines.get(index).copied().unwrap_or(0)
    }

    /// An error about the value of `key`, at the line that set it.
    pub fn error_at(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.path.clone(),
            line: self.line_of(key),
            message: message.into(),
        }
    }

    /// The line that set `key`, or 0 if it was not set.
    pub fn line_of(&self, key: &str) -> usize {
        self.lines
            .iter()
            .find(|(k, _)| *k == key)
            .map_or(0, |&(_, line)| line)
    }

    fn add_domains(&mut self, values: &[&str]) -> Result<(), String> {
        if values.is_empty() {
            return Err("missing value for 'local_domains'".to_string());
        }
        for value in values {
            let name = domain(value)
                .ok_or(format!("bad domain '{value}' in 'local_domains'"))?
                .to_ascii_lowercase();
            if !self.local_domains.contains(&name) {
                self.local_domains.push(name);
            }
        }
        Ok(())
    }

    /// The effective settings, one `key value` per line, as `picomta check` prints them.
    /// The output is itself a valid config with the same meaning.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut out = String::from("# picomta effective settings\n");
        // Writing to a String cannot fail.
        let mut line = |key: &str, value: &dyn fmt::Display| {
            let _ = writeln!(out, "{key} {value}");
        };
        line("hostname", &self.hostname);
        for l in &self.listen {
            line("listen", l);
        }
        // The ids they resolved to, as a comment (which parses back to nothing).
        match (&self.user, &self.run_as) {
            (Some(user), Some(r)) => line("user", &format_args!("{user} # uid {}", r.uid)),
            (Some(user), None) => line("user", user),
            (None, _) => line("#", &"user (not set)"),
        }
        match (&self.group, &self.run_as) {
            (Some(group), Some(r)) => line("group", &format_args!("{group} # gid {}", r.gid)),
            (Some(group), None) => line("group", group),
            (None, Some(r)) => line(
                "#",
                &format_args!("group (not set: the user's primary group, gid {})", r.gid),
            ),
            (None, None) => line("#", &"group (not set: the user's primary group)"),
        }
        line("spool", &self.spool.display());
        line("maildir", &self.maildir);
        line("local_domains", &self.local_domains.join(" "));
        let delimiter = self
            .recipient_delimiter
            .map_or("none".to_string(), String::from);
        line("recipient_delimiter", &delimiter);
        line("max_connections", &self.max_connections);
        line("max_message_size", &show_size(self.max_message_size));
        line("max_recipients", &self.max_recipients);
        line("max_errors", &self.max_errors);
        line("max_queue_messages", &self.max_queue_messages);
        line("min_free_space", &show_size(self.min_free_space));
        line("command_timeout", &show_duration(self.command_timeout));
        line("data_timeout", &show_duration(self.data_timeout));
        line("retry_min", &show_duration(self.retry_min));
        line("retry_max", &show_duration(self.retry_max));
        line(
            "sync_method",
            &match self.sync_method {
                SyncMethod::Fsync => "fsync",
                SyncMethod::Syncfs => "syncfs",
            },
        );
        let networks: Vec<String> = self.relay_networks.iter().map(Cidr::to_string).collect();
        match networks.is_empty() {
            true => line("relay_networks", &"none"),
            false => line("relay_networks", &networks.join(" ")),
        }
        let yes_no = |on: bool| if on { "yes" } else { "no" };
        line(
            "plaintext_auth_on_loopback",
            &yes_no(self.plaintext_auth_on_loopback),
        );
        line("sender_login", &yes_no(self.sender_login));
        self.outbound.render(&mut line);
        for (key, file) in [
            ("users", &self.users),
            ("aliases", &self.aliases),
            ("passwords", &self.passwords),
            ("tls_cert", &self.tls_cert),
            ("tls_key", &self.tls_key),
        ] {
            match file {
                Some(p) => line(key, &p.display()),
                // Unset has no value syntax: say so in a comment, which parses back to unset.
                None => line("#", &format_args!("{key} (not set)")),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;

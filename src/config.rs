//! The configuration file: `key value` lines, `#` comments, validated into a
//! [`Config`] with defaults; every error names `file:line`.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Exit status for a configuration error (sysexits.h EX_CONFIG).
pub const EX_CONFIG: i32 = 78;

/// One `listen ADDR:PORT [kind]` line. Only `smtp` exists until TLS lands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    pub addr: SocketAddr,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// Where it was read from, for messages and reloads.
    pub path: PathBuf,
    /// `hostname NAME`: greeting, Received, Maildir file names. Default: the
    /// system host name.
    pub hostname: String,
    /// `listen ADDR:PORT`, repeatable; IPv6 as `[::1]:2525`. Default: 127.0.0.1:2525.
    pub listen: Vec<Listen>,
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

impl Config {
    /// Reads and validates a config file.
    pub fn load(_path: &Path) -> Result<Config, ConfigError> {
        todo!("filled in by the config work")
    }

    /// Parses config text; `path` is only used in error messages.
    pub fn parse(_path: &Path, _text: &str) -> Result<Config, ConfigError> {
        todo!("filled in by the config work")
    }

    /// The effective settings, one `key value` per line, as `picomta check` prints them.
    pub fn render(&self) -> String {
        todo!("filled in by the config work")
    }
}

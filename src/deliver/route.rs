//! Routing of a recipient: is its domain local, does the local part name a
//! mailbox (through `aliases`, case folding and `user+tag`), and what are the
//! final targets of a delivery.

use crate::config::{Config, ConfigError};
use crate::smtp::address::Mailbox;

/// The answer at RCPT time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RcptCheck {
    /// A local domain and a local part that resolves (alias or user).
    Local,
    /// A local domain, but no such user or alias: 550 5.1.1.
    UnknownUser,
    /// Not one of `local_domains`: relay question, 554 5.7.1 until relay exists.
    Remote,
}

/// Where one recipient's copy goes after alias expansion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A mailbox from the users file (its canonical name), i.e. a Maildir.
    Mailbox(String),
    /// An address outside `local_domains` (from an alias, or a relayed recipient).
    Remote(Mailbox),
    /// A target we refuse to deliver to (`|command`, `/file`, an alias loop, an
    /// unknown local name); the text says why, for the log and the bounce.
    Refused(String),
}

/// Users, aliases and local domains, loaded once (and again on reload).
#[derive(Debug, Clone, Default)]
pub struct Router {}

impl Router {
    /// Loads the users and aliases files named in `config`; errors are `file:line`.
    pub fn load(_config: &Config) -> Result<Router, ConfigError> {
        todo!("filled in by the routing work")
    }

    pub fn is_local_domain(&self, _domain: &str) -> bool {
        todo!("filled in by the routing work")
    }

    pub fn check_rcpt(&self, _rcpt: &Mailbox) -> RcptCheck {
        todo!("filled in by the routing work")
    }

    /// The targets of one recipient, aliases expanded (bounded depth, loops
    /// refused), duplicates removed, in a stable order.
    pub fn expand(&self, _rcpt: &Mailbox) -> Vec<Target> {
        todo!("filled in by the routing work")
    }

    /// The Maildir directory of a mailbox, from the `maildir` template. The name
    /// comes from the users file, which is validated so it can never escape the
    /// mail root; this checks again and returns None for a name that would.
    pub fn maildir_path(&self, _mailbox: &str) -> Option<std::path::PathBuf> {
        todo!("filled in by the routing work")
    }
}

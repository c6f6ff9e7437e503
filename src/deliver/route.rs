//! Routing of a recipient: is its domain local, does the local part name a
//! mailbox (through `aliases`, case folding and `user+tag`), and what are the
//! final targets of a delivery.
//!
//! RFC 5321 4.5.1 requires `postmaster` to exist in every domain, so it is
//! always accepted at RCPT time (also without a domain, `RCPT TO:<postmaster>`)
//! even when neither the aliases nor the users file define it; a delivery to it
//! then expands to `Refused("no postmaster alias or user")`, which bounces and
//! shows up in the log. `Router::load` warns about that configuration.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use crate::config::{Config, ConfigError};
use crate::deliver::aliases::{load_aliases, Alias, AliasTarget};
use crate::deliver::users::{fold, is_valid_user_name, load_users};
use crate::smtp::address::Mailbox;

/// How many aliases deep an expansion may go: aliases of aliases are normal,
/// more than this is a configuration mistake.
const MAX_ALIAS_DEPTH: usize = 10;

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
pub struct Router {
    /// Lower-cased.
    local_domains: Vec<String>,
    /// Canonical (validated, lower-case) mailbox names.
    users: HashSet<String>,
    /// By lower-cased name.
    aliases: HashMap<String, Alias>,
    recipient_delimiter: Option<char>,
    /// The `maildir` template with `{user}`.
    maildir: String,
}

/// What a folded local name resolved to; aliases win over users.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Found {
    Alias(String),
    User(String),
}

impl Router {
    /// Loads the users and aliases files named in `config`; errors are `file:line`.
    pub fn load(config: &Config) -> Result<Router, ConfigError> {
        let local_domains: Vec<String> = config
            .local_domains
            .iter()
            .map(|d| d.to_lowercase())
            .collect();
        let users = match &config.users {
            Some(file) => load_users(file)?,
            None => HashSet::new(),
        };
        let aliases = match &config.aliases {
            Some(file) => load_aliases(file, &local_domains)?,
            None => HashMap::new(),
        };
        let router = Router {
            local_domains,
            users,
            aliases,
            recipient_delimiter: config.recipient_delimiter,
            maildir: config.maildir.clone(),
        };
        if let Some(file) = &config.aliases {
            router.warn_dangling(&file.display().to_string());
        }
        if router.resolve("postmaster").is_none() {
            log::warn!("no postmaster alias or user: mail to postmaster will bounce (RFC 5321 requires it)");
        }
        Ok(router)
    }

    /// Alias targets naming nothing are legal (a user may be added later) but
    /// almost always a typo: say so at load time, not at the first bounce.
    fn warn_dangling(&self, file: &str) {
        let mut names: Vec<(&String, &Alias)> = self.aliases.iter().collect();
        names.sort_by_key(|(_, a)| a.line);
        for (name, alias) in names {
            for t in &alias.targets {
                if let AliasTarget::Local(l) = t {
                    if self.resolve(l).is_none() {
                        log::warn!(
                            "{file}:{}: alias '{name}': '{l}' is neither a user nor an alias",
                            alias.line
                        );
                    }
                }
            }
        }
    }

    pub fn is_local_domain(&self, domain: &str) -> bool {
        self.local_domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(domain))
    }

    /// Exact name first (alias, then user), then the name without `+tag`.
    fn resolve(&self, local: &str) -> Option<Found> {
        let name = fold(local);
        self.lookup(&name).or_else(|| {
            let (base, _tag) = name.split_once(self.recipient_delimiter?)?;
            self.lookup(base)
        })
    }

    fn lookup(&self, name: &str) -> Option<Found> {
        if self.aliases.contains_key(name) {
            Some(Found::Alias(name.to_string()))
        } else if self.users.contains(name) {
            Some(Found::User(name.to_string()))
        } else {
            None
        }
    }

    /// Whether `rcpt` is for us: a local domain, or the domain-less
    /// `<postmaster>` that RFC 5321 4.1.1.3 allows (and nothing else without a
    /// domain, which has nowhere to go).
    fn is_local_rcpt(&self, rcpt: &Mailbox) -> Option<bool> {
        if rcpt.domain.is_empty() {
            (fold(&rcpt.local) == "postmaster").then_some(true)
        } else {
            Some(self.is_local_domain(&rcpt.domain))
        }
    }

    /// Whether `login` may send as `sender` (`sender_login`): the address is
    /// the login itself, or a local address whose mail goes to the login's
    /// mailbox and nowhere else (so a shared alias belongs to nobody).
    pub fn sender_owned_by(&self, sender: &Mailbox, login: &str) -> bool {
        if sender.to_string().eq_ignore_ascii_case(login) {
            return true;
        }
        if sender.domain.is_empty() || !self.is_local_domain(&sender.domain) {
            return false;
        }
        let targets = self.expand(sender);
        !targets.is_empty()
            && targets
                .iter()
                .all(|t| matches!(t, Target::Mailbox(m) if m.eq_ignore_ascii_case(login)))
    }

    pub fn check_rcpt(&self, rcpt: &Mailbox) -> RcptCheck {
        match self.is_local_rcpt(rcpt) {
            None => RcptCheck::UnknownUser,
            Some(false) => RcptCheck::Remote,
            Some(true) => {
                if self.resolve(&rcpt.local).is_some() || fold(&rcpt.local) == "postmaster" {
                    RcptCheck::Local
                } else {
                    RcptCheck::UnknownUser
                }
            }
        }
    }

    /// The targets of one recipient, aliases expanded (bounded depth, loops
    /// refused), duplicates removed, in a stable order.
    ///
    /// An alias that lists itself (`alice: alice, bob`) delivers that copy to
    /// the user of the same name; any other cycle is refused. An alias already
    /// expanded for this recipient is not expanded again, which keeps the work
    /// linear even for an aliases file shaped like a wide tree.
    pub fn expand(&self, rcpt: &Mailbox) -> Vec<Target> {
        match self.is_local_rcpt(rcpt) {
            None => return vec![Target::Refused("no such user".into())],
            Some(false) => return vec![Target::Remote(rcpt.clone())],
            Some(true) => {}
        }
        let mut out = Vec::new();
        match self.resolve(&rcpt.local) {
            Some(Found::User(u)) => out.push(Target::Mailbox(u)),
            Some(Found::Alias(a)) => {
                let mut done = HashSet::new();
                self.expand_alias(&a, &mut vec![a.clone()], &mut done, &mut out);
            }
            None if fold(&rcpt.local) == "postmaster" => {
                out.push(Target::Refused("no postmaster alias or user".into()))
            }
            None => out.push(Target::Refused("no such user".into())),
        }
        out
    }

    /// Appends the targets of alias `name`, the last element of `stack`.
    fn expand_alias(
        &self,
        name: &str,
        stack: &mut Vec<String>,
        done: &mut HashSet<String>,
        out: &mut Vec<Target>,
    ) {
        done.insert(name.to_string());
        let Some(alias) = self.aliases.get(name) else {
            return; // resolve() only returns names that are in the map
        };
        for t in &alias.targets {
            let target = match t {
                AliasTarget::Refused(why) => Target::Refused(why.clone()),
                AliasTarget::Remote(m) => Target::Remote(m.clone()),
                AliasTarget::Local(l) => match self.resolve(l) {
                    None => Target::Refused(format!("alias '{name}': unknown local name '{l}'")),
                    Some(Found::User(u)) => Target::Mailbox(u),
                    Some(Found::Alias(a)) if a == name => {
                        if self.users.contains(&a) {
                            Target::Mailbox(a)
                        } else {
                            Target::Refused(format!("alias '{a}' lists itself but is not a user"))
                        }
                    }
                    Some(Found::Alias(a)) if stack.contains(&a) => {
                        Target::Refused(format!("alias loop: {} -> {a}", stack.join(" -> ")))
                    }
                    // Reached before by another path: its targets are in `out`.
                    Some(Found::Alias(a)) if done.contains(&a) => continue,
                    Some(Found::Alias(a)) if stack.len() >= MAX_ALIAS_DEPTH => Target::Refused(
                        format!("aliases nested deeper than {MAX_ALIAS_DEPTH} at '{a}'"),
                    ),
                    Some(Found::Alias(a)) => {
                        stack.push(a.clone());
                        self.expand_alias(&a, stack, done, out);
                        stack.pop();
                        continue;
                    }
                },
            };
            if !out.contains(&target) {
                out.push(target);
            }
        }
    }

    /// The Maildir directory of a mailbox, from the `maildir` template. The name
    /// comes from the users file, which is validated so it can never escape the
    /// mail root; this checks again and returns None for a name that would.
    /// Also None if the template lacks `{user}` (all users would share one
    /// Maildir), which the config check should already have refused.
    pub fn maildir_path(&self, mailbox: &str) -> Option<PathBuf> {
        if !is_valid_user_name(mailbox) || !self.maildir.contains("{user}") {
            return None;
        }
        Some(PathBuf::from(self.maildir.replace("{user}", mailbox)))
    }
}

#[cfg(test)]
#[path = "route_tests.rs"]
mod tests;

//! The envelope as stored at the head of a spool file, and the per-recipient
//! outcomes appended to a message's state file. Both are line-oriented text so
//! an admin can read them; parsing is strict and never panics.

use crate::smtp::address::{Mailbox, ReversePath};

const MAGIC: &str = "picomta-queue 1";

/// What the spool file's head says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub arrival: u64,
    pub from: ReversePath,
    pub rcpts: Vec<Mailbox>,
}

impl Envelope {
    /// The head as written before the message: ends with a blank line.
    pub fn to_text(&self) -> String {
        let mut s = format!("{MAGIC}\narrival {}\nfrom {}\n", self.arrival, self.from);
        for r in &self.rcpts {
            s.push_str("rcpt ");
            s.push_str(&r.to_string());
            s.push('\n');
        }
        s.push('\n');
        s
    }

    /// Parses the head from the start of a spool file; returns the envelope
    /// and the offset where the message starts, or None if `data` holds no
    /// complete, valid head.
    pub fn parse(data: &[u8]) -> Option<(Envelope, usize)> {
        let end = data.windows(2).position(|w| w == b"\n\n")? + 2;
        let text = std::str::from_utf8(&data[..end - 2]).ok()?;
        let mut lines = text.split('\n');
        if lines.next()? != MAGIC {
            return None;
        }
        let mut env = Envelope {
            arrival: 0,
            from: ReversePath::Null,
            rcpts: Vec::new(),
        };
        for line in lines {
            let (key, value) = line.split_once(' ')?;
            match key {
                "arrival" => env.arrival = value.parse().ok()?,
                "from" if value.is_empty() => env.from = ReversePath::Null,
                "from" => env.from = ReversePath::Mailbox(parse_mailbox(value)?),
                "rcpt" => env.rcpts.push(parse_mailbox(value)?),
                _ => return None,
            }
        }
        Some((env, end))
    }
}

/// Splits a stored `local@domain` at its last `@` (a quoted local part may hold
/// `@`; a domain never does). A bare `postmaster` has no domain.
fn parse_mailbox(text: &str) -> Option<Mailbox> {
    let (local, domain) = text.rsplit_once('@').unwrap_or((text, ""));
    if local.is_empty() {
        return None;
    }
    Some(Mailbox {
        local: local.to_string(),
        domain: domain.to_string(),
    })
}

/// A recipient's final or latest outcome, as recorded in the state file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    Bounced(String),
    Deferred(String),
}

impl Outcome {
    pub fn is_final(&self) -> bool {
        !matches!(self, Outcome::Deferred(_))
    }
}

/// One line of a state file: `<rcpt index> sent|bounced|deferred [reason]`,
/// or `attempts <n>`.
pub fn state_line(index: usize, outcome: &Outcome) -> String {
    let clean = |s: &str| s.replace(['\n', '\r'], " ");
    match outcome {
        Outcome::Sent => format!("{index} sent\n"),
        Outcome::Bounced(r) => format!("{index} bounced {}\n", clean(r)),
        Outcome::Deferred(r) => format!("{index} deferred {}\n", clean(r)),
    }
}

/// What a state file says: the latest outcome per recipient index and the
/// number of attempts so far. A last line without its newline was cut short by
/// a crash and is ignored.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct State {
    pub outcomes: Vec<Option<Outcome>>,
    pub attempts: u32,
}

impl State {
    pub fn parse(text: &str, rcpts: usize) -> State {
        let mut state = State {
            outcomes: vec![None; rcpts],
            attempts: 0,
        };
        let complete = match text.rfind('\n') {
            Some(i) => &text[..i],
            None => "",
        };
        for line in complete.split('\n') {
            let mut parts = line.splitn(3, ' ');
            let (Some(first), Some(second)) = (parts.next(), parts.next()) else {
                continue;
            };
            let reason = parts.next().unwrap_or("").to_string();
            if first == "attempts" {
                state.attempts = second.parse().unwrap_or(state.attempts);
                continue;
            }
            let Some(slot) = first
                .parse::<usize>()
                .ok()
                .and_then(|i| state.outcomes.get_mut(i))
            else {
                continue;
            };
            *slot = match second {
                "sent" => Some(Outcome::Sent),
                "bounced" => Some(Outcome::Bounced(reason)),
                "deferred" => Some(Outcome::Deferred(reason)),
                _ => continue,
            };
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mb(l: &str, d: &str) -> Mailbox {
        Mailbox {
            local: l.into(),
            domain: d.into(),
        }
    }

    #[test]
    fn envelope_round_trips() {
        let env = Envelope {
            arrival: 1_795_438_522,
            from: ReversePath::Mailbox(mb("\"a@b c\"", "example.org")),
            rcpts: vec![mb("alice", "example.test"), mb("postmaster", "")],
        };
        let mut file = env.to_text().into_bytes();
        let offset = file.len();
        file.extend_from_slice(b"Subject: hi\n\nbody\n");
        assert_eq!(Envelope::parse(&file), Some((env, offset)));
    }

    #[test]
    fn null_sender_and_garbage() {
        let env = Envelope {
            arrival: 1,
            from: ReversePath::Null,
            rcpts: vec![mb("bob", "x.test")],
        };
        assert_eq!(Envelope::parse(env.to_text().as_bytes()).unwrap().0, env);
        assert_eq!(
            Envelope::parse(b"picomta-queue 1\narrival 1\n"),
            None,
            "no end"
        );
        assert_eq!(Envelope::parse(b"other\n\n"), None);
        assert_eq!(Envelope::parse(b"picomta-queue 1\nbogus 1\n\n"), None);
        assert_eq!(Envelope::parse(b"\xff\xfe\n\n"), None);
    }

    #[test]
    fn state_keeps_latest_and_ignores_torn_line() {
        let text = format!(
            "{}{}attempts 2\n{}1 se",
            state_line(0, &Outcome::Deferred("disk\nfull".into())),
            state_line(0, &Outcome::Sent),
            state_line(2, &Outcome::Bounced("refused".into())),
        );
        let state = State::parse(&text, 3);
        assert_eq!(state.attempts, 2);
        assert_eq!(
            state.outcomes,
            vec![
                Some(Outcome::Sent),
                None,
                Some(Outcome::Bounced("refused".into()))
            ]
        );
        assert_eq!(
            State::parse("7 sent\n", 1).outcomes,
            vec![None],
            "index out of range"
        );
    }
}

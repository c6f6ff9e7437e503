//! The end of a delivery attempt for one message: every recipient's outcome
//! (Maildir copies, refused targets, remote verdicts) is logged Postfix-style,
//! failures and expired recipients are returned to the sender, outcomes are
//! recorded in the state file, and the message is removed or rescheduled with
//! backoff.

use std::time::Duration;

use super::bounces::{self, Failure};
use super::local::{CopyState, Ctx, Job};
use crate::config::Config;
use crate::queue::envelope::{state_line, Outcome};
use crate::smtp::address::Mailbox;
use crate::util;

impl Job {
    /// Logs each recipient's outcome, returns the failed ones to the sender,
    /// records the outcomes, and removes or reschedules the message.
    pub(super) fn conclude(self, ctx: &mut Ctx) {
        let rcpts = &self.stored.envelope.rcpts;
        let delay = util::unix_now().saturating_sub(self.stored.envelope.arrival);
        let expired = delay >= ctx.config.outbound.queue_lifetime.as_secs();
        let mut outcomes: Vec<(usize, Outcome)> = Vec::new();
        let mut failures: Vec<Failure> = Vec::new();
        for (index, rcpt) in rcpts.iter().enumerate() {
            if self.stored.state.outcomes[index]
                .as_ref()
                .is_some_and(Outcome::is_final)
            {
                continue;
            }
            let mut outcome = Outcome::Sent;
            let mut any = false;
            for copy in self.copies.iter().filter(|c| c.rcpts.contains(&index)) {
                any = true;
                let result = match &copy.state {
                    CopyState::Failed(why) => Outcome::Deferred(why.clone()),
                    _ => Outcome::Sent,
                };
                log_outcome(&self.id, &copy.delivered_to, rcpt, "local", delay, &result);
                outcome = worse(outcome, result);
            }
            for (to, result) in &self.other[index] {
                any = true;
                log_outcome(&self.id, to, rcpt, "none", delay, result);
                outcome = worse(outcome, result.clone());
            }
            for part in self.remote.iter().filter(|p| p.rcpt == index) {
                any = true;
                let Some(d) = &part.result else {
                    continue;
                };
                let to = d.to.to_string();
                let text = d.reply.as_deref().unwrap_or("");
                log_remote(&self.id, &to, rcpt, &d.relay, delay, &d.outcome, text);
                if let Outcome::Bounced(why) = &d.outcome {
                    failures.push(Failure::remote(rcpt, why, d.remote_mta.clone()));
                }
                outcome = worse(outcome, d.outcome.clone());
            }
            if !any {
                outcome = Outcome::Bounced("no delivery target".into());
                log_outcome(&self.id, &rcpt.to_string(), rcpt, "none", delay, &outcome);
            }
            let remote_bounce = self.remote.iter().any(|p| {
                p.rcpt == index
                    && matches!(&p.result, Some(d) if matches!(d.outcome, Outcome::Bounced(_)))
            });
            match &outcome {
                // A remote refusal was reported above with the server's words.
                Outcome::Bounced(_) if remote_bounce => {}
                Outcome::Bounced(why) => failures.push(Failure::local(rcpt, why)),
                Outcome::Deferred(why) if expired => {
                    let lifetime = ctx.config.outbound.queue_lifetime;
                    failures.push(Failure::expired(rcpt, why, lifetime));
                    outcome = Outcome::Bounced(format!("4.4.7 delivery time expired: {why}"));
                    log_outcome(&self.id, &rcpt.to_string(), rcpt, "none", delay, &outcome);
                }
                _ => {}
            }
            outcomes.push((index, outcome));
        }
        if !failures.is_empty() {
            if let Err(e) = bounces::send(ctx, &self.id, &self.stored, &failures) {
                // Never drop a failure unreported: it stays pending, and the
                // next attempt tries the notification again.
                log::error!(
                    "{}: cannot queue the non-delivery notification: {e}",
                    self.id
                );
                for (_, outcome) in &mut outcomes {
                    if let Outcome::Bounced(why) = outcome {
                        *outcome = Outcome::Deferred(format!("{why} (notification not queued)"));
                    }
                }
            }
        }
        let mut lines = String::new();
        let mut pending = false;
        for (index, outcome) in &outcomes {
            pending |= !outcome.is_final();
            lines.push_str(&state_line(*index, outcome));
        }
        if !pending {
            ctx.spool.remove(&self.id, self.stored.has_state);
            ctx.schedule.removed();
            log::info!("{}: removed", self.id);
            return;
        }
        let attempts = self.stored.state.attempts + 1;
        lines.push_str(&format!("attempts {attempts}\n"));
        if let Err(e) = ctx.spool.append_state(&self.id, &lines) {
            log::error!("{}: cannot record delivery state: {e}", self.id);
        }
        ctx.schedule.retry(self.id, backoff(ctx.config, attempts));
    }
}

/// The wait before attempt `attempts + 1`: retry_min doubled per attempt, at
/// most retry_max.
fn backoff(config: &Config, attempts: u32) -> Duration {
    let factor = 1u32 << attempts.saturating_sub(1).min(16);
    config
        .retry_min
        .saturating_mul(factor)
        .min(config.retry_max)
}

/// Deferred beats bounced beats sent: a recipient is done only when every
/// copy is.
fn worse(a: Outcome, b: Outcome) -> Outcome {
    let rank = |o: &Outcome| match o {
        Outcome::Sent => 0,
        Outcome::Bounced(_) => 1,
        Outcome::Deferred(_) => 2,
    };
    if rank(&b) > rank(&a) {
        b
    } else {
        a
    }
}

fn log_outcome(id: &str, to: &str, rcpt: &Mailbox, relay: &str, delay: u64, outcome: &Outcome) {
    log_remote(id, to, rcpt, relay, delay, outcome, "delivered to maildir");
}

/// The Postfix-style delivery line; `sent_text` explains a sent outcome.
fn log_remote(
    id: &str,
    to: &str,
    rcpt: &Mailbox,
    relay: &str,
    delay: u64,
    outcome: &Outcome,
    sent_text: &str,
) {
    let orig = rcpt.to_string();
    let orig_to = if orig.eq_ignore_ascii_case(to) {
        String::new()
    } else {
        format!(" orig_to=<{orig}>")
    };
    let (status, text, dsn) = match outcome {
        Outcome::Sent => ("sent", sent_text, "2.0.0"),
        Outcome::Bounced(r) => (
            "bounced",
            r.as_str(),
            bounces::status_of(r).unwrap_or("5.0.0"),
        ),
        Outcome::Deferred(r) => (
            "deferred",
            r.as_str(),
            bounces::status_of(r).unwrap_or("4.0.0"),
        ),
    };
    log::info!(
        "{id}: to=<{to}>{orig_to} relay={relay} delay={delay} dsn={dsn} status={status} ({text})"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_outcome_wins() {
        let d = Outcome::Deferred("x".into());
        assert_eq!(worse(Outcome::Sent, d.clone()), d);
        assert_eq!(worse(d.clone(), Outcome::Bounced("y".into())), d);
        assert_eq!(worse(Outcome::Sent, Outcome::Sent), Outcome::Sent);
    }
}

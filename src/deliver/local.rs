//! The delivery driver: takes messages that are due from the queue, expands
//! their recipients, writes Maildir copies in bounded steps (so a large message
//! never stalls the sessions), hands them to the loop's barriers (data, rename,
//! directories), then records every recipient's outcome and removes finished
//! messages.

use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::bounces::{self, Failure};
use super::maildir::{already_delivered, unique_name, MaildirWrite};
use super::remote::{Delivered, RemoteRequest};
use super::route::{Router, Target};
use crate::config::Config;
use crate::durable::Durability;
use crate::queue::envelope::{state_line, Outcome};
use crate::queue::spool::{Spool, Stored};
use crate::queue::{IdMaker, Schedule};
use crate::smtp::address::{Mailbox, ReversePath};
use crate::util;

/// Messages worked on at once; more wait in the schedule.
const MAX_JOBS: usize = 64;
/// How long written copies wait for a commit barrier to share before they get
/// a barrier of their own: local mail needs no millisecond latency, and under
/// load this halves the barriers per message.
const BARRIER_DELAY: Duration = Duration::from_millis(20);

/// One Maildir copy of a message: which recipients it serves and how it went.
struct Copy {
    mailbox: String,
    dir: PathBuf,
    unique: String,
    delivered_to: String,
    /// Indexes of the recipients this copy serves.
    rcpts: Vec<usize>,
    state: CopyState,
}

enum CopyState {
    Waiting,
    Writing(MaildirWrite),
    /// Wholly written; waits for this turn's data barrier.
    Written(MaildirWrite),
    /// Renamed into this `new/`; counts once the directory barrier is passed.
    Renamed(PathBuf),
    Done,
    Failed(String),
}

/// A message being delivered.
struct Job {
    id: String,
    stored: Stored,
    copies: Vec<Copy>,
    /// Outcomes decided without a copy (refused targets), per rcpt.
    other: Vec<Vec<(String, Outcome)>>,
    /// Targets outside the local domains, handed to the remote driver, with
    /// their outcome once it reports.
    remote: Vec<RemotePart>,
    /// Recovered or retried: copies may already be in place.
    check_existing: bool,
}

/// One remote target of a recipient.
struct RemotePart {
    rcpt: usize,
    to: Mailbox,
    result: Option<Delivered>,
}

pub struct LocalDelivery {
    jobs: Vec<Job>,
    /// Remote targets of jobs just started, for the remote driver.
    requests: Vec<RemoteRequest>,
    /// Unix time this process started: messages that arrived before it may
    /// have been delivered already by the previous run.
    started_at: u64,
    /// When the oldest copy still waiting for a barrier was written.
    written_since: Option<Instant>,
}

/// What delivery needs from the server.
pub struct Ctx<'a> {
    pub config: &'a Config,
    pub router: &'a Router,
    pub spool: &'a mut Spool,
    pub schedule: &'a mut Schedule,
    /// For the notifications of bounced mail, which are queued at once.
    pub ids: &'a mut IdMaker,
    pub durability: &'a mut Durability,
}

impl LocalDelivery {
    pub fn new() -> LocalDelivery {
        LocalDelivery {
            jobs: Vec::new(),
            requests: Vec::new(),
            started_at: util::unix_now(),
            written_since: None,
        }
    }

    /// Copies wait for the data barrier.
    pub fn has_written(&self) -> bool {
        self.copies()
            .any(|c| matches!(c.state, CopyState::Written(_)))
    }

    /// True while there are copies to write, which should not wait for the poll.
    pub fn busy(&self) -> bool {
        self.copies()
            .any(|c| matches!(c.state, CopyState::Waiting | CopyState::Writing(_)))
    }

    /// How long written copies may still wait for a barrier of their own; None
    /// if none wait. Until then they join the next commit's barrier, which
    /// costs them nothing extra.
    pub fn barrier_wait(&self, now: Instant) -> Option<Duration> {
        self.written_since
            .map(|since| (since + BARRIER_DELAY).saturating_duration_since(now))
    }

    /// Phase one of a turn: starts due messages and writes copies, at most
    /// `budget` bytes. Finished copies wait for the turn's data barrier.
    pub fn work(&mut self, ctx: &mut Ctx, mut budget: usize) {
        let now = Instant::now();
        while self.jobs.len() < MAX_JOBS {
            let Some((id, fresh)) = ctx.schedule.pop_due(now) else {
                break;
            };
            match self.start(ctx, &id, fresh) {
                Some(job) => {
                    if !job.remote.is_empty() {
                        self.requests.push(RemoteRequest {
                            job: job.id.clone(),
                            path: ctx.spool.msg_path(&job.id),
                            offset: job.stored.offset,
                            len: job.stored.len,
                            from: job.stored.envelope.from.clone(),
                            rcpts: job.remote.iter().map(|p| (p.rcpt, p.to.clone())).collect(),
                        });
                    }
                    self.jobs.push(job)
                }
                None => ctx.schedule.removed(),
            }
        }
        for job in &mut self.jobs {
            if budget == 0 {
                break;
            }
            budget = job.step(ctx.spool, budget);
        }
        if self.written_since.is_none() && self.has_written() {
            self.written_since = Some(now);
        }
    }

    /// Remote targets of the jobs started since the last call.
    pub fn take_remote_requests(&mut self) -> Vec<RemoteRequest> {
        std::mem::take(&mut self.requests)
    }

    /// The remote driver's verdict for one target; its job may now finish.
    pub fn remote_done(&mut self, delivered: Delivered) {
        let Some(job) = self.jobs.iter_mut().find(|j| j.id == delivered.job) else {
            return;
        };
        if let Some(part) = job
            .remote
            .iter_mut()
            .find(|p| p.rcpt == delivered.rcpt && p.to == delivered.to && p.result.is_none())
        {
            part.result = Some(delivered);
        }
    }

    /// The copies waiting for the data barrier, each with its Maildir (which
    /// names the file system), in a fixed order that [`Self::publish`] follows.
    pub fn written(&self) -> Vec<(&File, &Path)> {
        self.copies()
            .filter_map(|c| match &c.state {
                CopyState::Written(w) => Some((w.file(), c.dir.as_path())),
                _ => None,
            })
            .collect()
    }

    /// Phase two: given the data barrier's results (in [`Self::written`]'s
    /// order), renames the synced copies into `new/`; returns the directories
    /// the directory barrier must sync.
    pub fn publish(&mut self, results: Vec<io::Result<()>>) -> Vec<PathBuf> {
        self.written_since = None;
        let mut results = results.into_iter();
        let mut dirs: Vec<PathBuf> = Vec::new();
        for copy in self.copies_mut() {
            if !matches!(copy.state, CopyState::Written(_)) {
                continue;
            }
            let CopyState::Written(writer) = std::mem::replace(&mut copy.state, CopyState::Waiting)
            else {
                continue;
            };
            let synced = results
                .next()
                .unwrap_or_else(|| Err(io::ErrorKind::Other.into()));
            copy.state = match synced.and_then(|()| writer.publish()) {
                Ok(new_dir) => {
                    if !dirs.contains(&new_dir) {
                        dirs.push(new_dir.clone());
                    }
                    CopyState::Renamed(new_dir)
                }
                Err(e) => CopyState::Failed(format!("maildir write failed: {e}")),
            };
        }
        dirs
    }

    /// Phase three: given the directory barrier's results, the renamed copies
    /// are delivered (or failed); finished messages are concluded.
    pub fn settle(&mut self, ctx: &mut Ctx, dirs: &[PathBuf], results: &[io::Result<()>]) {
        for copy in self.copies_mut() {
            let CopyState::Renamed(new_dir) = &copy.state else {
                continue;
            };
            let result = dirs
                .iter()
                .position(|d| d == new_dir)
                .and_then(|i| results.get(i));
            copy.state = match result {
                Some(Ok(())) => CopyState::Done,
                Some(Err(e)) => {
                    CopyState::Failed(format!("cannot sync {}: {e}", new_dir.display()))
                }
                None => CopyState::Failed(format!("{} was not synced", new_dir.display())),
            };
        }
        let mut i = 0;
        while i < self.jobs.len() {
            if self.jobs[i].finished() {
                let job = self.jobs.swap_remove(i);
                job.conclude(ctx);
            } else {
                i += 1;
            }
        }
    }

    fn copies(&self) -> impl Iterator<Item = &Copy> {
        self.jobs.iter().flat_map(|j| j.copies.iter())
    }

    fn copies_mut(&mut self) -> impl Iterator<Item = &mut Copy> {
        self.jobs.iter_mut().flat_map(|j| j.copies.iter_mut())
    }

    /// Loads a message and plans its copies; None if it is gone or unreadable
    /// (logged), in which case it leaves the schedule.
    fn start(&self, ctx: &mut Ctx, id: &str, fresh: bool) -> Option<Job> {
        let stored = match ctx.spool.load(id, fresh) {
            Ok(s) => s,
            Err(e) => {
                log::error!("{id}: cannot read queued message: {e}");
                return None;
            }
        };
        // A copy can already be in place only if an earlier attempt, or an
        // earlier run of picomta, got as far as writing it.
        let check_existing =
            stored.state.attempts > 0 || stored.envelope.arrival <= self.started_at;
        let mut copies: Vec<Copy> = Vec::new();
        let mut other = vec![Vec::new(); stored.envelope.rcpts.len()];
        let mut remote = Vec::new();
        for (index, rcpt) in stored.envelope.rcpts.iter().enumerate() {
            if stored.state.outcomes[index]
                .as_ref()
                .is_some_and(Outcome::is_final)
            {
                continue;
            }
            for target in ctx.router.expand(rcpt) {
                match target {
                    Target::Mailbox(name) => {
                        if let Some(copy) = copies.iter_mut().find(|c| c.mailbox == name) {
                            copy.rcpts.push(index);
                            continue;
                        }
                        let Some(dir) = ctx.router.maildir_path(&name) else {
                            other[index].push((
                                name.clone(),
                                Outcome::Bounced("invalid mailbox name".into()),
                            ));
                            continue;
                        };
                        let domain = if rcpt.domain.is_empty() {
                            &ctx.config.hostname
                        } else {
                            &rcpt.domain
                        };
                        copies.push(Copy {
                            unique: unique_name(
                                stored.envelope.arrival,
                                id,
                                index,
                                &ctx.config.hostname,
                            ),
                            delivered_to: format!("{name}@{domain}"),
                            mailbox: name,
                            dir,
                            rcpts: vec![index],
                            state: CopyState::Waiting,
                        });
                    }
                    Target::Remote(to) => remote.push(RemotePart {
                        rcpt: index,
                        to,
                        result: None,
                    }),
                    Target::Refused(why) => {
                        other[index].push((rcpt.to_string(), Outcome::Bounced(why)))
                    }
                }
            }
        }
        Some(Job {
            id: id.to_string(),
            stored,
            copies,
            other,
            remote,
            check_existing,
        })
    }
}

impl Job {
    /// Advances this job's copies within `budget` bytes; returns what is left.
    fn step(&mut self, spool: &Spool, mut budget: usize) -> usize {
        for copy in &mut self.copies {
            if budget == 0 {
                break;
            }
            if matches!(copy.state, CopyState::Waiting) {
                if self.check_existing && already_delivered(&copy.dir, &copy.unique) {
                    copy.state = CopyState::Done;
                    continue;
                }
                copy.state = match open_copy(spool, &self.id, &mut self.stored, copy) {
                    Ok(w) => CopyState::Writing(w),
                    Err(e) => CopyState::Failed(e),
                };
            }
            if !matches!(copy.state, CopyState::Writing(_)) {
                continue;
            }
            let CopyState::Writing(mut writer) =
                std::mem::replace(&mut copy.state, CopyState::Waiting)
            else {
                continue;
            };
            let chunk = budget.min(1 << 20);
            budget -= chunk.min(self.stored.len as usize).max(1);
            copy.state = match writer.step(chunk) {
                Ok(false) => CopyState::Writing(writer),
                Ok(true) => CopyState::Written(writer),
                Err(e) => {
                    writer.abandon();
                    CopyState::Failed(format!("maildir write failed: {e}"))
                }
            };
        }
        budget
    }

    fn finished(&self) -> bool {
        self.copies
            .iter()
            .all(|c| matches!(c.state, CopyState::Done | CopyState::Failed(_)))
            && self.remote.iter().all(|p| p.result.is_some())
    }

    /// Logs each recipient's outcome, returns the failed ones to the sender,
    /// records the outcomes, and removes or reschedules the message.
    fn conclude(self, ctx: &mut Ctx) {
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

/// Opens the queue file at the message and starts the Maildir file.
fn open_copy(
    spool: &Spool,
    id: &str,
    stored: &mut Stored,
    copy: &Copy,
) -> Result<MaildirWrite, String> {
    let mut source = match stored.file.take() {
        Some(file) => file,
        None => {
            File::open(spool.msg_path(id)).map_err(|e| format!("cannot open queue file: {e}"))?
        }
    };
    source
        .seek(SeekFrom::Start(stored.offset))
        .map_err(|e| format!("cannot read queue file: {e}"))?;
    let return_path = match &stored.envelope.from {
        ReversePath::Null => String::new(),
        ReversePath::Mailbox(m) => m.to_string(),
    };
    let start = |source| {
        MaildirWrite::start(
            &copy.dir,
            &copy.unique,
            &return_path,
            &copy.delivered_to,
            source,
            stored.len,
        )
    };
    match start(source) {
        // The name belongs to this message and copy alone, so a file already
        // in tmp/ is what an attempt interrupted by a crash left: replace it.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let _ = std::fs::remove_file(copy.dir.join("tmp").join(&copy.unique));
            File::open(spool.msg_path(id))
                .and_then(|mut again| {
                    again.seek(SeekFrom::Start(stored.offset))?;
                    Ok(again)
                })
                .and_then(start)
        }
        other => other,
    }
    .map_err(|e| format!("cannot create maildir file in {}: {e}", copy.dir.display()))
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

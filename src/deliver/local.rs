//! The delivery driver: takes messages that are due from the queue, expands
//! their recipients, writes Maildir copies in bounded steps (so a large message
//! never stalls the sessions), hands them to the loop's barriers (data, rename,
//! directories), then records every recipient's outcome and removes finished
//! messages.

use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::maildir::{already_delivered, unique_name, MaildirWrite};
use super::remote::{Delivered, RemoteRequest};
use super::route::{Router, Target};
use crate::config::Config;
use crate::durable::Durability;
use crate::queue::envelope::Outcome;
use crate::queue::spool::{Spool, Stored};
use crate::queue::{IdMaker, Schedule};
use crate::smtp::address::{Mailbox, ReversePath};
use crate::util;

/// Messages with Maildir copies still to write, at once; more wait in the
/// schedule.
const MAX_JOBS: usize = 64;
/// Messages in delivery at all, including those that only wait for remote
/// hosts: slow hosts must not hold up local mail, and a waiting message costs
/// only its envelope (no open file, no buffer).
const MAX_WAITING_JOBS: usize = 1024;
/// How long written copies wait for a commit barrier to share before they get
/// a barrier of their own: local mail needs no millisecond latency, and under
/// load this halves the barriers per message.
const BARRIER_DELAY: Duration = Duration::from_millis(20);

/// One Maildir copy of a message: which recipients it serves and how it went.
pub(super) struct Copy {
    pub(super) mailbox: String,
    pub(super) dir: PathBuf,
    pub(super) unique: String,
    pub(super) delivered_to: String,
    /// Indexes of the recipients this copy serves.
    pub(super) rcpts: Vec<usize>,
    pub(super) state: CopyState,
}

pub(super) enum CopyState {
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
pub(super) struct Job {
    pub(super) id: String,
    pub(super) stored: Stored,
    pub(super) copies: Vec<Copy>,
    /// Outcomes decided without a copy (refused targets), per rcpt.
    pub(super) other: Vec<Vec<(String, Outcome)>>,
    /// Targets outside the local domains, handed to the remote driver, with
    /// their outcome once it reports.
    pub(super) remote: Vec<RemotePart>,
    /// Recovered or retried: copies may already be in place.
    pub(super) check_existing: bool,
}

/// One remote target of a recipient.
pub(super) struct RemotePart {
    pub(super) rcpt: usize,
    pub(super) to: Mailbox,
    pub(super) result: Option<Delivered>,
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
        let waiting = self
            .jobs
            .iter()
            .filter(|j| j.only_waits_for_remote())
            .count();
        while self.jobs.len() - waiting < MAX_JOBS && self.jobs.len() < MAX_WAITING_JOBS {
            let Some((id, fresh)) = ctx.schedule.pop_due(now) else {
                break;
            };
            match self.start(ctx, &id, fresh) {
                Some(mut job) => {
                    if job.copies.is_empty() {
                        // The outbound connections open their own.
                        job.stored.file = None;
                    }
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

    fn copies_done(&self) -> bool {
        self.copies
            .iter()
            .all(|c| matches!(c.state, CopyState::Done | CopyState::Failed(_)))
    }

    /// Every copy is done; only remote verdicts are awaited.
    fn only_waits_for_remote(&self) -> bool {
        self.copies_done() && self.remote.iter().any(|p| p.result.is_none())
    }

    fn finished(&self) -> bool {
        self.copies_done() && self.remote.iter().all(|p| p.result.is_some())
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

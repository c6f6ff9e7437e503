//! The daemon's side of `sendmail`: takes messages from the drop directory
//! into the queue. Each is copied into a new spool file the daemon owns, with
//! a trace header naming the uid that submitted it (from the drop file's
//! owner, which the submitter cannot forge), committed like any message,
//! and only then removed from the drop directory. A crash between the two
//! queues it twice: at least once, never lost.
//!
//! The drop directory is read at start, when `sendmail` says so over the
//! control socket, and once a minute in case a notice was missed (its
//! sender may have no access to the socket). Copying goes at most
//! [`COPY_BUDGET`] bytes per loop turn, so a large message does not stall
//! the sessions.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::time::{Duration, Instant};

use crate::deliver::local::Ctx;
use crate::queue::envelope::Envelope;
use crate::queue::spool::Incoming;
use crate::queue::{drop, inject, spool};
use crate::util;

/// How often the drop directory is read without being told.
const RESCAN: Duration = Duration::from_secs(60);
/// Bytes copied per loop turn.
const COPY_BUDGET: u64 = 1024 * 1024;
const CHUNK: usize = 64 * 1024;

pub struct Pickup {
    /// Names read from the directory and not yet taken.
    waiting: VecDeque<String>,
    /// The message being copied.
    copying: Option<Transfer>,
    next_scan: Instant,
}

/// A drop file on its way into the queue.
struct Transfer {
    name: String,
    from: File,
    /// Message bytes still to copy: the size as committed; whatever the
    /// owner appends later is not taken.
    left: u64,
    size: u64,
    uid: u32,
    envelope: Envelope,
    to: Incoming,
}

/// What one step of the work came to.
enum Step {
    /// More to do in a later turn.
    Continue,
    /// Nothing more now.
    Idle,
}

impl Pickup {
    /// The first scan is due at once (mail dropped while the daemon was down).
    pub fn new() -> Pickup {
        Pickup {
            waiting: VecDeque::new(),
            copying: None,
            next_scan: Instant::now(),
        }
    }

    /// `sendmail` dropped a message: read the directory now.
    pub fn request(&mut self) {
        self.next_scan = Instant::now();
    }

    /// How long the loop may sleep as far as the pickup is concerned.
    pub fn wait(&self, now: Instant) -> Duration {
        if self.waiting.is_empty() && self.copying.is_none() {
            self.next_scan.saturating_duration_since(now)
        } else {
            Duration::ZERO
        }
    }

    /// Copies up to [`COPY_BUDGET`] bytes of drop files into the queue,
    /// committing each message as it is complete.
    pub fn work(&mut self, ctx: &mut Ctx<'_>) {
        let now = Instant::now();
        if self.waiting.is_empty() && self.copying.is_none() && now >= self.next_scan {
            self.next_scan = now + RESCAN;
            match drop::list(&ctx.config.spool) {
                Ok(listing) => {
                    for name in listing.stale {
                        log::warn!("drop: removing {name}, an unfinished submission a day old");
                        drop::remove(&ctx.config.spool, &name);
                    }
                    self.waiting.extend(listing.committed);
                }
                Err(e) => log::error!(
                    "drop: cannot read {}: {e}",
                    drop::dir(&ctx.config.spool).display()
                ),
            }
        }
        let mut budget = COPY_BUDGET;
        while budget > 0 {
            let step = match self.copying.take() {
                Some(copy) => self.copy(ctx, copy, &mut budget),
                None => self.start_next(ctx),
            };
            if let Step::Idle = step {
                return;
            }
        }
    }

    /// Opens the next waiting drop file and starts its queue file.
    fn start_next(&mut self, ctx: &mut Ctx<'_>) -> Step {
        if ctx.schedule.len() >= ctx.config.max_queue_messages {
            // They wait, safely on disk, for the next scan.
            self.waiting.clear();
            return Step::Idle;
        }
        let Some(name) = self.waiting.pop_front() else {
            return Step::Idle;
        };
        match start(ctx, name) {
            Ok(copy) => {
                self.copying = copy;
                Step::Continue
            }
            Err((name, e)) => {
                log::error!("drop: {name}: {e}; left for the next scan");
                // A failing disk fails the rest too: wait for the next scan.
                self.waiting.clear();
                Step::Idle
            }
        }
    }

    /// Copies a piece of `copy`, and commits it when it is whole.
    fn copy(&mut self, ctx: &mut Ctx<'_>, mut copy: Transfer, budget: &mut u64) -> Step {
        let mut chunk = [0u8; CHUNK];
        while copy.left > 0 && *budget > 0 {
            let want = (CHUNK as u64).min(copy.left).min(*budget) as usize;
            let read = match copy.from.read(&mut chunk[..want]) {
                Ok(0) => {
                    log::warn!(
                        "drop: {} from uid {} was cut short while read, removed",
                        copy.name,
                        copy.uid
                    );
                    ctx.spool.discard(copy.to);
                    drop::remove(&ctx.config.spool, &copy.name);
                    return Step::Continue;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return self.failed(ctx, copy, e),
            };
            if let Err(e) = copy.to.write(&chunk[..read]) {
                return self.failed(ctx, copy, e);
            }
            copy.left -= read as u64;
            *budget -= read as u64;
        }
        if copy.left > 0 {
            self.copying = Some(copy);
            return Step::Continue;
        }
        let Transfer {
            name,
            uid,
            envelope,
            size,
            to,
            ..
        } = copy;
        let id = to.id.clone();
        if let Err(e) = inject::commit(ctx.spool, ctx.durability, to) {
            log::error!("drop: {name}: {e}; left for the next scan");
            self.waiting.clear();
            return Step::Idle;
        }
        ctx.schedule.add(id.clone(), true);
        log::info!(
            "{id}: uid={uid} from=<{}>, nrcpt={}, size={size} (sendmail)",
            envelope.from,
            envelope.rcpts.len()
        );
        drop::remove(&ctx.config.spool, &name);
        Step::Continue
    }

    /// The queue could not be written: the drop file stays for the next scan.
    fn failed(&mut self, ctx: &mut Ctx<'_>, copy: Transfer, e: io::Error) -> Step {
        log::error!("drop: {}: {e}; left for the next scan", copy.name);
        ctx.spool.discard(copy.to);
        self.waiting.clear();
        Step::Idle
    }
}

/// Opens drop file `name` and starts its queue file with the trace header.
/// Ok(None): the file is gone, or is not a valid drop file (`sendmail` never
/// made it: logged and removed). Err: the queue file could not be started.
fn start(ctx: &mut Ctx<'_>, name: String) -> Result<Option<Transfer>, (String, io::Error)> {
    let spool_dir = &ctx.config.spool;
    let mut opened = match drop::open(spool_dir, &name) {
        Ok(opened) => opened,
        // Taken by an earlier scan's leftovers, or removed by its owner.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            log::warn!("drop: {name}: {e}, removed");
            drop::remove(spool_dir, &name);
            return Ok(None);
        }
        Err(e) => return Err((name, e)),
    };
    let uid = opened.uid;
    let head = spool::read_head(&mut opened.file, opened.len).and_then(|head| {
        opened
            .file
            .seek(SeekFrom::Start(head.1 as u64))
            .map(|_| head)
    });
    let (envelope, offset) = match head {
        Ok((envelope, _)) if envelope.rcpts.is_empty() => {
            log::warn!("drop: {name} from uid {uid} has no recipients, removed");
            drop::remove(spool_dir, &name);
            return Ok(None);
        }
        Ok(head) => head,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
            ) =>
        {
            log::warn!("drop: {name} from uid {uid} is not a queue file, removed");
            drop::remove(spool_dir, &name);
            return Ok(None);
        }
        Err(e) => return Err((name, e)),
    };
    let id = ctx.ids.next();
    let trace = format!(
        "Received: by {} (picomta, from userid {uid})\n\tid {id}; {}\n",
        ctx.config.hostname,
        util::rfc5322_date(util::unix_now())
    );
    let mut to = match ctx.spool.create(&id, &envelope) {
        Ok(to) => to,
        Err(e) => return Err((name, e)),
    };
    if let Err(e) = to.write(trace.as_bytes()) {
        ctx.spool.discard(to);
        return Err((name, e));
    }
    let size = opened.len - offset as u64;
    Ok(Some(Transfer {
        name,
        from: opened.file,
        left: size,
        size,
        uid,
        envelope,
        to,
    }))
}

//! The daemon's side of `sendmail`: takes messages from the drop directory
//! into the queue. Each is copied into a new spool file the daemon owns, with
//! a trace header naming the uid that submitted it (from the drop file's
//! owner, which the submitter cannot forge), committed like any message,
//! and only then removed from the drop directory. A crash between the two
//! queues it twice: at least once, never lost.
//!
//! The drop directory is read at start, when `sendmail` says so over the
//! control socket, and once a minute in case a notice was missed (its
//! sender may have no access to the socket). A few files are taken per
//! loop turn, so a burst of submissions does not stall the sessions.

use std::collections::VecDeque;
use std::io::{self, Read, Seek, SeekFrom};
use std::time::{Duration, Instant};

use crate::deliver::local::Ctx;
use crate::queue::{drop, inject, spool};
use crate::util;

/// How often the drop directory is read without being told.
const RESCAN: Duration = Duration::from_secs(60);
/// Drop files taken per loop turn.
const PER_TURN: usize = 8;

pub struct Pickup {
    /// Names read from the directory and not yet taken.
    waiting: VecDeque<String>,
    next_scan: Instant,
}

impl Pickup {
    /// The first scan is due at once (mail dropped while the daemon was down).
    pub fn new() -> Pickup {
        Pickup {
            waiting: VecDeque::new(),
            next_scan: Instant::now(),
        }
    }

    /// `sendmail` dropped a message: read the directory now.
    pub fn request(&mut self) {
        self.next_scan = Instant::now();
    }

    /// How long the loop may sleep as far as the pickup is concerned.
    pub fn wait(&self, now: Instant) -> Duration {
        if self.waiting.is_empty() {
            self.next_scan.saturating_duration_since(now)
        } else {
            Duration::ZERO
        }
    }

    /// Takes up to [`PER_TURN`] drop files into the queue.
    pub fn work(&mut self, ctx: &mut Ctx<'_>) {
        let now = Instant::now();
        if self.waiting.is_empty() && now >= self.next_scan {
            self.next_scan = now + RESCAN;
            match drop::waiting(&ctx.config.spool) {
                Ok(names) => self.waiting.extend(names),
                Err(e) => log::error!(
                    "drop: cannot read {}: {e}",
                    drop::dir(&ctx.config.spool).display()
                ),
            }
        }
        for _ in 0..PER_TURN {
            if ctx.schedule.len() >= ctx.config.max_queue_messages {
                // They wait, safely on disk, for the next scan.
                self.waiting.clear();
                return;
            }
            let Some(name) = self.waiting.pop_front() else {
                return;
            };
            if let Err(e) = take(ctx, &name) {
                log::error!("drop: {name}: {e}; left for the next scan");
                // A failing disk fails the rest too: wait for the next scan.
                self.waiting.clear();
                return;
            }
        }
    }
}

/// Copies one drop file into the queue and removes it. Err: the queue could
/// not be written (the file stays). A file that is not a valid drop file is
/// logged and removed: `sendmail` never made it.
fn take(ctx: &mut Ctx<'_>, name: &str) -> io::Result<()> {
    let spool_dir = ctx.config.spool.clone();
    let mut opened = match drop::open(&spool_dir, name) {
        Ok(opened) => opened,
        // Taken by an earlier scan's leftovers, or removed by its owner.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            log::warn!("drop: {name}: {e}, removed");
            drop::remove(&spool_dir, name);
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let uid = opened.uid;
    let (envelope, offset) = match spool::read_head(&mut opened.file, opened.len) {
        Ok((envelope, _)) if envelope.rcpts.is_empty() => {
            log::warn!("drop: {name} from uid {uid} has no recipients, removed");
            drop::remove(&spool_dir, name);
            return Ok(());
        }
        Ok(head) => head,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
            ) =>
        {
            log::warn!("drop: {name} from uid {uid} is not a queue file, removed");
            drop::remove(&spool_dir, name);
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let id = ctx.ids.next();
    let trace = format!(
        "Received: by {} (picomta, from userid {uid})\n\tid {id}; {}\n",
        ctx.config.hostname,
        util::rfc5322_date(util::unix_now())
    );
    // The size as committed; whatever the owner appends later is not taken.
    let message_len = opened.len - offset as u64;
    let mut file = opened.file;
    file.seek(SeekFrom::Start(offset as u64))?;
    let mut truncated = false;
    inject::inject_with(ctx.spool, ctx.durability, &id, &envelope, |incoming| {
        incoming.write(trace.as_bytes())?;
        let mut left = message_len;
        let mut chunk = vec![0u8; 64 * 1024];
        while left > 0 {
            let want = chunk.len().min(left as usize);
            let n = file.read(&mut chunk[..want])?;
            if n == 0 {
                truncated = true;
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            incoming.write(&chunk[..n])?;
            left -= n as u64;
        }
        Ok(())
    })
    .or_else(|e| {
        if truncated {
            log::warn!("drop: {name} from uid {uid} was cut short while read, removed");
            Ok(())
        } else {
            Err(e)
        }
    })?;
    if !truncated {
        ctx.schedule.add(id.clone(), true);
        log::info!(
            "{id}: uid={uid} from=<{}>, nrcpt={}, size={message_len} (sendmail)",
            envelope.from,
            envelope.rcpts.len()
        );
    }
    drop::remove(&spool_dir, name);
    Ok(())
}

//! The group commit at the end of a loop turn: every message finished and
//! every Maildir copy written so far is made durable by two barriers shared by
//! all of them (file data, then the directories they are renamed into); only
//! then are the 250s sent and delivery outcomes recorded. A child of `serve`,
//! so it works on the server's own state.

use std::io;
use std::time::Instant;

use mio::Token;

use super::{Owner, Server, DELIVERY_BUDGET};
use crate::queue::spool::Incoming;
use crate::smtp::reply::Reply;

/// A message in the group commit, with the session waiting for its reply.
pub(super) struct Commit<T> {
    token: Token,
    generation: u64,
    /// `from=<…>, nrcpt=N, size=N` for the log line.
    summary: String,
    result: io::Result<T>,
}

impl Server {
    /// The end of a loop turn, the group commit: every message finished and
    /// every Maildir copy written so far is made durable by two barriers
    /// shared by all of them (file data, then the directories they are renamed
    /// into). Only then are the 250s sent and delivery outcomes recorded. The
    /// barriers run when there is something to commit and the pacing allows,
    /// or the turn was `idle` (no socket was ready).
    pub(super) fn end_turn(&mut self, idle: bool) {
        if self.stopping.is_none() {
            self.pickup.work(&mut delivery_ctx!(self));
        }
        self.delivery
            .work(&mut delivery_ctx!(self), DELIVERY_BUDGET);
        self.remote_turn();
        let started = Instant::now();
        let delivery_overdue = self
            .delivery
            .barrier_wait(started)
            .is_some_and(|w| w.is_zero());
        let wanted = !self.commits.is_empty() || delivery_overdue;
        if !wanted || (started < self.barrier_allowed_at && !idle) {
            // Copies that failed or were found already delivered still
            // conclude their messages.
            self.delivery.settle(&mut delivery_ctx!(self), &[], &[]);
            return;
        }
        let batch = self.flush_commits();
        let committed = self.barriers(batch);
        self.barrier_allowed_at = Instant::now() + started.elapsed();
        self.acknowledge(committed);
    }

    /// Writes out what sessions buffered; a failed write fails its message.
    fn flush_commits(&mut self) -> Vec<Commit<Incoming>> {
        let mut batch = Vec::with_capacity(self.commits.len());
        for (token, generation, mut incoming) in std::mem::take(&mut self.commits) {
            let summary = format!("{}, size={}", incoming.summary, incoming.size);
            let result = match incoming.flush() {
                Ok(()) => Ok(incoming),
                Err(e) => {
                    self.spool.discard(incoming);
                    Err(e)
                }
            };
            batch.push(Commit {
                token,
                generation,
                summary,
                result,
            });
        }
        batch
    }

    /// The two barriers: file data (new spool files and Maildir copies), the
    /// renames into `msg/` and `new/`, then those directories. Returns each
    /// message's queue id once it is durable.
    fn barriers(&mut self, batch: Vec<Commit<Incoming>>) -> Vec<Commit<String>> {
        let delivery_joins = self.delivery.has_written();
        let msg_dir = self.spool.msg_dir().to_path_buf();

        let spool_files = batch.iter().filter_map(|c| c.result.as_ref().ok());
        let mut files: Vec<(&std::fs::File, &std::path::Path)> =
            spool_files.map(|i| (i.file(), msg_dir.as_path())).collect();
        if delivery_joins {
            files.extend(self.delivery.written());
        }
        let mut synced = self.durability.sync_files(&files).into_iter();
        drop(files);

        let mut published = Vec::with_capacity(batch.len());
        for Commit {
            token,
            generation,
            summary,
            result,
        } in batch
        {
            let result = result.and_then(|incoming| {
                let synced = synced
                    .next()
                    .unwrap_or_else(|| Err(io::ErrorKind::Other.into()));
                if let Err(e) = synced {
                    self.spool.discard(incoming);
                    return Err(e);
                }
                let id = incoming.id.clone();
                self.spool.publish(incoming).map(|()| id)
            });
            published.push(Commit {
                token,
                generation,
                summary,
                result,
            });
        }
        let mut dirs = if delivery_joins {
            self.delivery.publish(synced.collect())
        } else {
            Vec::new()
        };
        if published.iter().any(|c| c.result.is_ok()) {
            dirs.push(msg_dir.clone());
        }

        let dir_results = self.durability.sync_dirs(&dirs);
        self.delivery
            .settle(&mut delivery_ctx!(self), &dirs, &dir_results);
        let msg_dir_result = match dirs.iter().position(|d| *d == msg_dir) {
            Some(i) => dir_results[i].as_ref().map(|_| ()).map_err(|e| e.kind()),
            None => Ok(()),
        };
        for c in &mut published {
            if let (Ok(id), Err(kind)) = (&c.result, msg_dir_result) {
                // The rename may not survive a crash: it was never acknowledged.
                self.spool.unpublish(id);
                c.result = Err(io::Error::from(kind));
            }
        }
        published
    }

    /// Sends each session its 250 (or 451) and lets it go on with input it
    /// had pipelined.
    fn acknowledge(&mut self, committed: Vec<Commit<String>>) {
        for c in committed {
            self.schedule.incoming_ended();
            let reply = match c.result {
                Ok(id) => {
                    log::info!("{id}: {} (queued)", c.summary);
                    self.schedule.add(id.clone(), true);
                    Ok(id)
                }
                Err(e) => {
                    log::error!("queue commit failed: {e}");
                    Err(Reply::new(451, "4.3.0", "Error: queue file write error"))
                }
            };
            if let Some(Owner::Inbound(inbound)) = self.owners.get_gen_mut(c.token, c.generation) {
                inbound.session.commit_done(reply);
                self.drive(c.token);
            }
        }
    }
}

//! The queue: the spool on disk ([`spool`]) and, in memory, only what scheduling
//! needs: how many messages there are and when each is next due. Envelopes are
//! read back from disk when a message is delivered, so memory does not grow
//! with the queue's contents.

pub mod bounce;
pub mod drop;
pub mod envelope;
pub mod inject;
pub mod spool;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use crate::util;

/// Makes queue ids: the arrival time in microseconds plus a counter, in hex.
/// They sort by arrival and never repeat within one spool (creation is O_EXCL
/// as well, so a clock stepping back cannot overwrite a file).
#[derive(Debug, Default)]
pub struct IdMaker {
    last_micros: u128,
    counter: u32,
}

impl IdMaker {
    pub fn next(&mut self) -> String {
        let micros = util::unix_micros();
        if micros == self.last_micros {
            self.counter += 1;
        } else {
            self.last_micros = micros;
            self.counter = 0;
        }
        format!("{micros:013X}{:02X}", self.counter & 0xff)
    }
}

/// Scheduling state of the queue.
#[derive(Debug, Default)]
pub struct Schedule {
    /// (when, id, fresh): fresh messages have had no attempt, so no state file.
    due: BinaryHeap<Reverse<(Instant, String, bool)>>,
    /// Committed messages not yet removed.
    committed: usize,
    /// Messages being received right now (counted against the cap).
    incoming: usize,
}

impl Schedule {
    pub fn len(&self) -> usize {
        self.committed + self.incoming
    }

    pub fn incoming_started(&mut self) {
        self.incoming += 1;
    }

    pub fn incoming_ended(&mut self) {
        self.incoming = self.incoming.saturating_sub(1);
    }

    /// A message was committed (`fresh`) or found at start: deliver it now.
    pub fn add(&mut self, id: String, fresh: bool) {
        self.committed += 1;
        self.due.push(Reverse((Instant::now(), id, fresh)));
    }

    /// A delivery attempt left recipients pending: try again after `wait`.
    pub fn retry(&mut self, id: String, wait: Duration) {
        self.due.push(Reverse((Instant::now() + wait, id, false)));
    }

    /// `picomta flush`: everything waiting for a retry is due now. Returns
    /// how many messages that moved.
    pub fn flush(&mut self, now: Instant) -> usize {
        let waiting = std::mem::take(&mut self.due).into_vec();
        let moved = waiting
            .iter()
            .filter(|Reverse((at, _, _))| *at > now)
            .count();
        self.due = waiting
            .into_iter()
            .map(|Reverse((at, id, fresh))| Reverse((at.min(now), id, fresh)))
            .collect();
        moved
    }

    /// The message is gone from the spool.
    pub fn removed(&mut self) {
        self.committed = self.committed.saturating_sub(1);
    }

    /// The next message due now, if any, and whether it is fresh.
    pub fn pop_due(&mut self, now: Instant) -> Option<(String, bool)> {
        match self.due.peek() {
            Some(Reverse((at, _, _))) if *at <= now => {
                self.due.pop().map(|Reverse((_, id, fresh))| (id, fresh))
            }
            _ => None,
        }
    }

    /// How long until the next message is due (None: nothing queued).
    pub fn next_due_in(&self, now: Instant) -> Option<Duration> {
        self.due
            .peek()
            .map(|Reverse((at, _, _))| at.saturating_duration_since(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flush_makes_every_retry_due() {
        let mut s = Schedule::default();
        let now = Instant::now();
        s.add("A".into(), true);
        s.retry("B".into(), Duration::from_secs(3600));
        s.retry("C".into(), Duration::from_secs(60));
        assert_eq!(
            s.pop_due(now + Duration::from_secs(1))
                .map(|p| p.0)
                .as_deref(),
            Some("A")
        );
        assert_eq!(s.pop_due(now + Duration::from_secs(1)), None);
        assert_eq!(s.flush(now + Duration::from_secs(1)), 2);
        let mut due = Vec::new();
        while let Some((id, _)) = s.pop_due(now + Duration::from_secs(1)) {
            due.push(id);
        }
        due.sort();
        assert_eq!(due, ["B", "C"]);
    }

    #[test]
    fn ids_are_unique_and_sorted() {
        let mut maker = IdMaker::default();
        let ids: Vec<String> = (0..1000).map(|_| maker.next()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, ids);
        assert!(ids.iter().all(|i| i.chars().all(|c| c.is_ascii_hexdigit())));
    }

    #[test]
    fn schedule_orders_by_due_time() {
        let mut s = Schedule::default();
        s.add("A".into(), true);
        s.retry("B".into(), Duration::from_secs(60));
        let now = Instant::now();
        assert_eq!(s.pop_due(now), Some(("A".to_string(), true)));
        assert_eq!(s.pop_due(now), None);
        assert!(s.next_due_in(now).unwrap() > Duration::from_secs(50));
        assert_eq!(
            s.pop_due(now + Duration::from_secs(61)),
            Some(("B".to_string(), false))
        );
    }
}

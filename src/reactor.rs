//! The one place that waits: a `mio::Poll`, the table that maps tokens to the
//! owners of sockets, and a timer heap. Owners (listeners, inbound sessions, and
//! later outbound sessions and DNS sockets) live in a [`Slab`] whose index is
//! their token, with a generation so a stale timer never reaches a newer owner.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Registry, Token};

/// What one poll turn reported for a token. Edge-triggered: owners remember
/// readiness until they see `WouldBlock`.
#[derive(Debug, Clone, Copy)]
pub struct Ready {
    pub token: Token,
    pub readable: bool,
    pub writable: bool,
}

/// The poll plus timers. Owners are kept apart (in a [`Slab`]) so that handling
/// an event can borrow the registry and the owner at the same time.
pub struct Reactor {
    poll: Poll,
    events: Events,
    timers: BinaryHeap<Reverse<(Instant, usize, u64)>>,
}

impl Reactor {
    pub fn new() -> io::Result<Reactor> {
        Ok(Reactor {
            poll: Poll::new()?,
            events: Events::with_capacity(256),
            timers: BinaryHeap::new(),
        })
    }

    pub fn registry(&self) -> &Registry {
        self.poll.registry()
    }

    /// Arms a timer for the owner at `token` with generation `generation`.
    pub fn add_timer(&mut self, at: Instant, token: Token, generation: u64) {
        self.timers.push(Reverse((at, token.0, generation)));
    }

    /// Drops the timers of owners that are gone once they outnumber the
    /// `live` ones several times over, so a flood of short connections cannot
    /// grow the heap with timers that would only expire minutes later.
    pub fn prune_timers(&mut self, live: usize, is_live: impl Fn(Token, u64) -> bool) {
        if self.timers.len() > 4 * live + 64 {
            self.timers
                .retain(|Reverse((_, token, generation))| is_live(Token(*token), *generation));
        }
    }

    /// Waits for readiness, at most until the earliest timer or `limit`
    /// (`Some(ZERO)` when there is work pending that must not wait), then
    /// appends what is ready and which timers expired.
    pub fn wait(
        &mut self,
        limit: Option<Duration>,
        ready: &mut Vec<Ready>,
        expired: &mut Vec<(Token, u64)>,
    ) -> io::Result<()> {
        let now = Instant::now();
        let timer_wait = self
            .timers
            .peek()
            .map(|Reverse((at, _, _))| at.saturating_duration_since(now));
        let timeout = match (timer_wait, limit) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        for event in self.events.iter() {
            ready.push(Ready {
                token: event.token(),
                // Errors and hang-ups are reported as readable so the owner's
                // next read sees them.
                readable: event.is_readable() || event.is_read_closed() || event.is_error(),
                writable: event.is_writable() || event.is_write_closed(),
            });
        }
        let now = Instant::now();
        while let Some(Reverse((at, token, generation))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            expired.push((Token(token), generation));
        }
        Ok(())
    }
}

/// A vector of owners indexed by token, reusing free slots, with a generation
/// per insertion.
pub struct Slab<T> {
    entries: Vec<Option<(u64, T)>>,
    free: Vec<usize>,
    next_generation: u64,
    len: usize,
}

impl<T> Slab<T> {
    pub fn new() -> Slab<T> {
        Slab {
            entries: Vec::new(),
            free: Vec::new(),
            next_generation: 1,
            len: 0,
        }
    }

    /// Inserts the value built from its token and generation.
    pub fn insert_with(&mut self, make: impl FnOnce(Token, u64) -> T) -> Token {
        let generation = self.next_generation;
        self.next_generation += 1;
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.entries.push(None);
                self.entries.len() - 1
            }
        };
        self.entries[index] = Some((generation, make(Token(index), generation)));
        self.len += 1;
        Token(index)
    }

    pub fn get_mut(&mut self, token: Token) -> Option<&mut T> {
        self.entries
            .get_mut(token.0)
            .and_then(|e| e.as_mut())
            .map(|(_, v)| v)
    }

    /// True if `token` still holds the owner of `generation`.
    pub fn is_live(&self, token: Token, generation: u64) -> bool {
        matches!(self.entries.get(token.0), Some(Some((g, _))) if *g == generation)
    }

    /// The owner at `token` only if it is still the one of `generation`.
    pub fn get_gen_mut(&mut self, token: Token, generation: u64) -> Option<&mut T> {
        match self.entries.get_mut(token.0) {
            Some(Some((g, v))) if *g == generation => Some(v),
            _ => None,
        }
    }

    pub fn remove(&mut self, token: Token) -> Option<T> {
        let taken = self.entries.get_mut(token.0).and_then(Option::take);
        if taken.is_some() {
            self.free.push(token.0);
            self.len -= 1;
        }
        taken.map(|(_, v)| v)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// The tokens in use now (collected, so the slab can change meanwhile).
    pub fn tokens(&self) -> Vec<Token> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.is_some())
            .map(|(i, _)| Token(i))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slab_reuses_slots_with_new_generations() {
        let mut slab = Slab::new();
        let a = slab.insert_with(|_, g| g);
        let b = slab.insert_with(|_, g| g);
        assert_ne!(a, b);
        let gen_a = *slab.get_mut(a).unwrap();
        assert_eq!(slab.remove(a), Some(gen_a));
        let c = slab.insert_with(|_, g| g);
        assert_eq!(c, a, "slot is reused");
        assert!(slab.get_gen_mut(c, gen_a).is_none(), "stale generation");
        assert_eq!(slab.len(), 2);
    }

    #[test]
    fn stale_timers_are_pruned() {
        let mut r = Reactor::new().unwrap();
        let later = Instant::now() + Duration::from_secs(3600);
        for i in 0..200 {
            r.add_timer(later, Token(i), 1);
        }
        r.prune_timers(1, |t, _| t == Token(7));
        assert_eq!(r.timers.len(), 1, "only the live owner's timer is kept");
        r.prune_timers(1, |_, _| false);
        assert_eq!(r.timers.len(), 1, "no pruning below the threshold");
    }

    #[test]
    fn timers_expire_in_order() {
        let mut r = Reactor::new().unwrap();
        let now = Instant::now();
        r.add_timer(now, Token(2), 7);
        r.add_timer(now + Duration::from_secs(3600), Token(3), 8);
        let (mut ready, mut expired) = (Vec::new(), Vec::new());
        r.wait(Some(Duration::ZERO), &mut ready, &mut expired)
            .unwrap();
        assert_eq!(expired, vec![(Token(2), 7)]);
    }
}

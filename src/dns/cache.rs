//! A small answer cache: (name, type) => answer until its TTL runs out, with a fixed
//! number of entries so a flood of distinct domains cannot grow memory.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::message::{Answer, QType};

/// No answer is kept longer than a day, whatever its TTL says.
const MAX_TTL: u32 = 86_400;

/// Answers by (lower-cased name, QType), honouring TTL (min 0, max 1 day), capped at
/// `cap` entries (when full, the entry expiring first makes room). NXDOMAIN is cached
/// too; server errors and truncations never are.
#[derive(Debug)]
pub struct Cache {
    cap: usize,
    entries: HashMap<(String, QType), Entry>,
}

#[derive(Debug)]
struct Entry {
    answer: Answer,
    expires: Instant,
}

impl Cache {
    pub fn new(cap: usize) -> Cache {
        Cache {
            cap,
            entries: HashMap::new(),
        }
    }

    /// The cached answer, its TTL lowered to the seconds left; `None` when absent or expired.
    pub fn get(&mut self, name: &str, qtype: QType, now: Instant) -> Option<Answer> {
        let key = (key_name(name), qtype);
        let entry = self.entries.get(&key)?;
        if entry.expires <= now {
            self.entries.remove(&key);
            return None;
        }
        let left = u32::try_from(entry.expires.duration_since(now).as_secs()).unwrap_or(MAX_TTL);
        let mut answer = entry.answer.clone();
        match &mut answer {
            Answer::Records { ttl, .. } | Answer::NxDomain { ttl } => *ttl = left,
            Answer::ServerError(_) | Answer::Truncated => {}
        }
        Some(answer)
    }

    /// Remembers an answer for its TTL. A TTL of 0 means "use once": nothing is kept.
    pub fn put(&mut self, name: &str, qtype: QType, answer: &Answer, now: Instant) {
        let ttl = match answer {
            Answer::Records { ttl, .. } | Answer::NxDomain { ttl } => (*ttl).min(MAX_TTL),
            Answer::ServerError(_) | Answer::Truncated => return,
        };
        if ttl == 0 || self.cap == 0 {
            return;
        }
        let key = (key_name(name), qtype);
        if !self.entries.contains_key(&key) && self.entries.len() >= self.cap {
            self.entries.retain(|_, entry| entry.expires > now);
            if self.entries.len() >= self.cap {
                let first = self
                    .entries
                    .iter()
                    .min_by_key(|(_, entry)| entry.expires)
                    .map(|(key, _)| key.clone());
                if let Some(first) = first {
                    self.entries.remove(&first);
                }
            }
        }
        let entry = Entry {
            answer: answer.clone(),
            expires: now + Duration::from_secs(u64::from(ttl)),
        };
        self.entries.insert(key, entry);
    }

    /// Entries held, expired ones included until they are looked at or pushed out.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn key_name(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;

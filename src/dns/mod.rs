//! The DNS side of outbound delivery, free of I/O: nameservers from resolv.conf,
//! queries and validated responses in the wire format (via `simple-dns`), a small TTL
//! cache, the MX resolution of one domain as a state machine, and a client that keeps
//! outstanding queries with their retries, server rotation and TCP fallback. The remote
//! delivery driver owns the sockets and the clock; everything here takes bytes and
//! `Instant`s in and hands packets, results and deadlines out.

pub mod cache;
pub mod client;
pub mod lookup;
pub mod message;
pub mod resolv;

/// splitmix64: a small, fast PRNG for query ids and the shuffling of equal MX
/// preferences. Not cryptographic; the driver seeds it from /dev/urandom, so query ids
/// are unpredictable to an off-path spoofer together with the kernel's random port.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0); the modulo bias is irrelevant at our sizes.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// A hand encoder of DNS responses for the tests, independent of `simple-dns`.
#[cfg(test)]
mod wire_tests;

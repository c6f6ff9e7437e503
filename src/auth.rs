//! TEMPORARY STUB — replaced by the helper's module on merge.
#![allow(dead_code, unused)]
use crate::config::ConfigError;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};
#[derive(Debug)]
pub struct Passwords;
impl Passwords {
    pub fn load(path: &Path) -> Result<Passwords, ConfigError> {
        todo!()
    }
    pub fn verify(&self, user: &str, password: &[u8]) -> bool {
        todo!()
    }
    pub fn contains(&self, user: &str) -> bool {
        todo!()
    }
    pub fn len(&self) -> usize {
        todo!()
    }
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Login,
}
impl Mechanism {
    pub fn parse(name: &str) -> Option<Mechanism> {
        todo!()
    }
    pub fn name(self) -> &'static str {
        todo!()
    }
}
#[derive(Debug, PartialEq, Eq)]
pub enum SaslStep {
    Challenge(&'static str),
    Done { user: String, password: Vec<u8> },
    Failed(SaslError),
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslError {
    Cancelled,
    BadBase64,
    Malformed,
}
#[derive(Debug)]
pub struct SaslExchange;
impl SaslExchange {
    pub fn start(mechanism: Mechanism, initial: Option<&str>) -> (SaslExchange, SaslStep) {
        todo!()
    }
    pub fn respond(&mut self, line: &[u8]) -> SaslStep {
        todo!()
    }
}
pub struct FailureTracker;
impl FailureTracker {
    pub fn new() -> FailureTracker {
        FailureTracker
    }
    pub fn failed(&mut self, ip: IpAddr, now: Instant) -> Duration {
        todo!()
    }
}

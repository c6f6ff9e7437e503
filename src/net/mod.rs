//! Network transports the reactor drives: listening sockets and non-blocking
//! connections with remembered readiness. TLS will be another transport behind
//! the same connection API.

pub mod conn;
pub mod listen;

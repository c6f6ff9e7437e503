//! Network transports the reactor drives: listening sockets and non-blocking
//! connections with remembered readiness, plaintext or TLS, and the TLS
//! settings they use.

pub mod conn;
pub mod listen;
pub mod tls;

//! SMTP protocol logic, free of I/O: command parsing, replies, DATA framing and
//! the inbound and outbound session state machines.

pub mod address;
#[allow(dead_code)] // wired in by the remote delivery driver (issue 4)
pub mod client;
pub mod command;
pub mod data;
pub mod reply;
pub mod server;

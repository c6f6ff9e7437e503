//! SMTP protocol logic, free of I/O: command parsing, replies, DATA framing and
//! the inbound and outbound session state machines.

pub mod address;
pub mod client;
pub mod command;
pub mod data;
pub mod reply;
pub mod server;

//! SMTP protocol logic, free of I/O: command parsing, replies, DATA framing and
//! the inbound session state machine.

pub mod address;
pub mod command;
pub mod data;
pub mod reply;
pub mod server;

//! Delivery: routing of recipients, the Maildir writer and the driver that
//! takes due messages from the queue and delivers them, returning what fails
//! to its sender.

pub mod aliases;
pub mod bounces;
mod conclude;
pub mod local;
pub mod maildir;
pub mod remote;
pub mod route;
pub mod users;

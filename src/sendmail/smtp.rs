//! `sendmail -bs`: an SMTP session on stdin and stdout, as some mail programs
//! (Alpine, some PHP and Perl libraries) use to submit. It is the same
//! sans-IO session the daemon runs, with a host that writes each message
//! into the drop directory, fixes its headers like `sendmail` does, and
//! answers the final dot only after the durable commit. The caller is a
//! local user: relaying is allowed and no login is asked for.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use super::args::Args;
use super::headers::{HeaderSection, Line};
use super::Submitter;
use crate::auth::Mechanism;
use crate::config::Config;
use crate::deliver::route::RcptCheck;
use crate::queue::drop::DropFile;
use crate::queue::envelope::Envelope;
use crate::smtp::address::{Mailbox, ReversePath};
use crate::smtp::reply::Reply;
use crate::smtp::server::{Host, Session, SessionConfig, Transaction};
use crate::util;

pub fn run(config: &Config, args: &Args, submitter: &Submitter) -> ExitCode {
    let session_config = SessionConfig {
        hostname: config.hostname.clone(),
        max_message_size: config.max_message_size,
        max_recipients: config.max_recipients,
        max_errors: config.max_errors,
        starttls: false,
        auth: false,
        plaintext_auth: false,
        require_auth: false,
        sender_login: false,
    };
    let local = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut session = Session::new(session_config, local, true);
    let mut host = DropHost {
        config,
        submitter,
        message: None,
        commit_requested: false,
    };
    let (mut stdin, mut stdout) = (io::stdin().lock(), io::stdout().lock());
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let out = session.output();
        if !out.is_empty() {
            let n = out.len();
            if stdout.write_all(out).and_then(|()| stdout.flush()).is_err() {
                session.abort(&mut host);
                break;
            }
            session.output_sent(n);
        }
        if session.is_closed() {
            break;
        }
        if host.commit_requested {
            host.commit_requested = false;
            let result = host.commit();
            if result.is_ok() {
                // Told per message: a session may stay open a long time.
                super::notify(config, args);
            }
            session.commit_done(result);
            continue;
        }
        if !pending.is_empty() && session.wants_input() {
            let used = session.input(&pending, &mut host);
            pending.drain(..used);
            if used > 0 {
                continue;
            }
        }
        match stdin.read(&mut chunk) {
            Ok(0) | Err(_) => {
                session.abort(&mut host);
                break;
            }
            Ok(n) => pending.extend_from_slice(&chunk[..n]),
        }
    }
    ExitCode::SUCCESS
}

/// The message being received: its drop file and, until the header section
/// is complete, the section and the partial line.
struct Receiving {
    drop: DropFile,
    sender: ReversePath,
    header: Option<(HeaderSection, Vec<u8>)>,
    failed: bool,
}

struct DropHost<'a> {
    config: &'a Config,
    submitter: &'a Submitter,
    message: Option<Receiving>,
    commit_requested: bool,
}

fn write_error() -> Reply {
    Reply::new(451, "4.3.0", "Error: queue file write error")
}

impl DropHost<'_> {
    /// Ends the header section: writes it with its fixes.
    fn finish_header(&self, receiving: &mut Receiving) -> io::Result<()> {
        let Some((section, _)) = receiving.header.take() else {
            return Ok(());
        };
        let additions = super::additions(self.config, self.submitter, &receiving.sender);
        receiving
            .drop
            .write(&section.finish(false, &additions).bytes)
    }

    fn commit(&mut self) -> Result<String, Reply> {
        let Some(mut receiving) = self.message.take() else {
            return Err(write_error());
        };
        if receiving.failed || self.finish_header(&mut receiving).is_err() {
            return Err(write_error());
        }
        match receiving.drop.commit() {
            Ok(name) => Ok(name),
            Err(e) => {
                eprintln!("sendmail: cannot queue: {e}");
                Err(write_error())
            }
        }
    }

    /// Feeds message bytes through the header section while it lasts.
    fn take(&self, receiving: &mut Receiving, mut bytes: &[u8]) -> io::Result<()> {
        while let Some((section, partial)) = receiving.header.as_mut() {
            let Some(nl) = bytes.iter().position(|&b| b == b'\n') else {
                if partial.len() + bytes.len() > super::headers::MAX_HEADER_SECTION {
                    return Err(io::Error::other("header section too long"));
                }
                partial.extend_from_slice(bytes);
                return Ok(());
            };
            partial.extend_from_slice(&bytes[..=nl]);
            bytes = &bytes[nl + 1..];
            let line = std::mem::take(partial);
            match section.line(&line) {
                Ok(Line::Header) => {}
                Ok(Line::End) => self.finish_header(receiving)?,
                Ok(Line::Body) => {
                    self.finish_header(receiving)?;
                    receiving.drop.write(&line)?;
                }
                Err(_) => return Err(io::Error::other("header section too long")),
            }
        }
        receiving.drop.write(bytes)
    }
}

impl Host for DropHost<'_> {
    fn check_rcpt(&mut self, _rcpt: &Mailbox) -> RcptCheck {
        // Unknown local users bounce later, as with `sendmail` on stdin:
        // the caller may not read the users file.
        RcptCheck::Remote
    }

    fn queue_has_room(&mut self) -> bool {
        true
    }

    fn begin_message(&mut self, txn: &Transaction) -> Result<String, Reply> {
        let envelope = Envelope {
            arrival: util::unix_now(),
            from: txn.from.clone(),
            rcpts: txn.rcpts.clone(),
        };
        match DropFile::create(&self.config.spool, &envelope) {
            Ok(drop) => {
                let name = drop.name().to_string();
                self.message = Some(Receiving {
                    drop,
                    sender: txn.from.clone(),
                    header: Some((HeaderSection::default(), Vec::new())),
                    failed: false,
                });
                Ok(name)
            }
            Err(e) => {
                eprintln!("sendmail: cannot queue: {e}");
                Err(write_error())
            }
        }
    }

    fn trace_header(&self) -> bool {
        // The daemon writes it when it takes the message, naming the uid.
        false
    }

    fn message_data(&mut self, bytes: &[u8]) -> Result<(), Reply> {
        let Some(mut receiving) = self.message.take() else {
            return Err(write_error());
        };
        let result = if receiving.failed {
            Ok(())
        } else {
            self.take(&mut receiving, bytes)
        };
        if result.is_err() {
            receiving.failed = true;
        }
        self.message = Some(receiving);
        result.map_err(|_| write_error())
    }

    fn end_message(&mut self) {
        self.commit_requested = true;
    }

    fn abort_message(&mut self) {
        // Dropping the file removes it.
        self.message = None;
    }

    fn authenticate(&mut self, _: Mechanism, _: &str, _: &[u8]) -> Result<(), Duration> {
        Err(Duration::ZERO)
    }

    fn owns_sender(&mut self, _login: &str, _sender: &Mailbox) -> bool {
        true
    }
}

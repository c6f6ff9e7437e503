//! `picomta mailq`: the queue as Postfix's `mailq` shows it, read straight
//! from the spool (so it works whether or not the daemon runs): queue id,
//! size, arrival time and sender, then each recipient still waiting, after
//! the reason its last attempt was deferred. Messages `sendmail` dropped and
//! the daemon has not taken yet are listed too, marked as such.

use std::fs::{self, File};
use std::io;
use std::path::Path;
use std::process::ExitCode;

use crate::config::Config;
use crate::queue::drop;
use crate::queue::envelope::{Envelope, Outcome, State};
use crate::queue::spool::read_head;
use crate::smtp::address::ReversePath;
use crate::util;

/// One queued message.
#[derive(Debug, PartialEq, Eq)]
pub struct Entry {
    pub id: String,
    /// The message's bytes, head excluded.
    pub size: u64,
    pub envelope: Envelope,
    pub state: State,
    /// In the drop directory, not yet taken into the queue by the daemon.
    pub dropped: bool,
}

pub fn run(config: &Config) -> ExitCode {
    match entries(&config.spool) {
        Ok(entries) => {
            print!("{}", render(&entries));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "picomta: cannot read the queue in {}: {e}",
                config.spool.display()
            );
            // EX_NOPERM for a spool we may not read, EX_IOERR otherwise.
            ExitCode::from(if e.kind() == io::ErrorKind::PermissionDenied {
                77
            } else {
                74
            })
        }
    }
}

/// Every committed message, oldest first. A spool that does not exist yet
/// is an empty queue; a file that cannot be parsed is skipped with a note
/// on stderr.
pub fn entries(spool: &Path) -> io::Result<Vec<Entry>> {
    let mut ids = match fs::read_dir(spool.join("msg")) {
        Ok(dir) => dir
            .map(|item| Ok(item?.file_name().to_str().map(|id| (id.to_string(), false))))
            .filter_map(io::Result::transpose)
            .collect::<io::Result<Vec<_>>>()?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    // The drop directory cannot be listed by every user that may read the
    // queue (mode 1730); then only the queue proper is shown.
    if let Ok(listing) = drop::list(spool) {
        ids.extend(listing.committed.into_iter().map(|name| (name, true)));
    }
    let mut entries = Vec::new();
    for (id, dropped) in ids {
        match entry(spool, &id, dropped) {
            Ok(Some(e)) => entries.push(e),
            // Delivered and removed while we looked.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Ok(None) => eprintln!("picomta: {id}: not a queue file, skipped"),
            Err(e) => eprintln!("picomta: {id}: {e}"),
        }
    }
    entries.sort_by(|a, b| (a.envelope.arrival, &a.id).cmp(&(b.envelope.arrival, &b.id)));
    Ok(entries)
}

fn entry(spool: &Path, id: &str, dropped: bool) -> io::Result<Option<Entry>> {
    let dir = if dropped {
        drop::dir(spool)
    } else {
        spool.join("msg")
    };
    let mut file = File::open(dir.join(id))?;
    let total = file.metadata()?.len();
    let (envelope, offset) = match read_head(&mut file, total) {
        Ok(head) => head,
        Err(e) if e.kind() == io::ErrorKind::InvalidData => return Ok(None),
        Err(e) => return Err(e),
    };
    let state = match fs::read_to_string(spool.join("state").join(id)) {
        _ if dropped => State::parse("", envelope.rcpts.len()),
        Ok(text) => State::parse(&text, envelope.rcpts.len()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => State::parse("", envelope.rcpts.len()),
        Err(e) => return Err(e),
    };
    Ok(Some(Entry {
        id: id.to_string(),
        size: total.saturating_sub(offset as u64),
        envelope,
        state,
        dropped,
    }))
}

/// The listing, in Postfix's layout.
pub fn render(entries: &[Entry]) -> String {
    use std::fmt::Write;
    if entries.is_empty() {
        return "Mail queue is empty\n".to_string();
    }
    let mut out =
        String::from("-Queue ID-       --Size-- ----Arrival Time---- -Sender/Recipient-------\n");
    let mut bytes = 0;
    for e in entries {
        bytes += e.size;
        let sender = match &e.envelope.from {
            ReversePath::Null => "MAILER-DAEMON".to_string(),
            ReversePath::Mailbox(m) => m.to_string(),
        };
        let _ = writeln!(
            out,
            "{:<16} {:>8} {}  {sender}",
            e.id,
            e.size,
            util::queue_time(e.envelope.arrival)
        );
        if e.dropped {
            let _ = writeln!(out, "{:>45}(waiting for the daemon to take it in)", "");
        }
        for (index, rcpt) in e.envelope.rcpts.iter().enumerate() {
            match e.state.outcomes.get(index).and_then(Option::as_ref) {
                Some(Outcome::Sent) | Some(Outcome::Bounced(_)) => continue,
                Some(Outcome::Deferred(why)) => {
                    let _ = writeln!(out, "{:>45}({why})", "");
                }
                None => {}
            }
            let _ = writeln!(out, "{:>45}{rcpt}", "");
        }
        out.push('\n');
    }
    let count = entries.len();
    let _ = writeln!(
        out,
        "-- {} Kbytes in {count} Request{}.",
        bytes.div_ceil(1024),
        if count == 1 { "" } else { "s" }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::address::Mailbox;

    fn mb(local: &str, domain: &str) -> Mailbox {
        Mailbox {
            local: local.into(),
            domain: domain.into(),
        }
    }

    #[test]
    fn empty_queue() {
        assert_eq!(render(&[]), "Mail queue is empty\n");
    }

    #[test]
    fn waiting_recipients_with_their_reasons() {
        let envelope = Envelope {
            // Mon Nov 23 16:40:00 2026 UTC
            arrival: 1_795_452_000,
            from: ReversePath::Mailbox(mb("cron", "router.example")),
            rcpts: vec![
                mb("done", "example.org"),
                mb("later", "example.com"),
                mb("fresh", "example.net"),
            ],
        };
        let state = State::parse(
            "0 sent\n1 deferred connect to mx.example.com[192.0.2.1]:25: Connection refused\nattempts 1\n",
            3,
        );
        let entry = Entry {
            id: "660F435C645C700".into(),
            size: 2100,
            envelope,
            state,
            dropped: false,
        };
        let bounce = Entry {
            id: "660F435C645C800".into(),
            size: 900,
            envelope: Envelope {
                arrival: 1_795_452_001,
                from: ReversePath::Null,
                rcpts: vec![mb("cron", "router.example")],
            },
            state: State::parse("", 1),
            dropped: false,
        };
        let text = render(&[entry, bounce]);
        let want = "\
-Queue ID-       --Size-- ----Arrival Time---- -Sender/Recipient-------
660F435C645C700      2100 Mon Nov 23 16:40:00  cron@router.example
                                             (connect to mx.example.com[192.0.2.1]:25: Connection refused)
                                             later@example.com
                                             fresh@example.net

660F435C645C800       900 Mon Nov 23 16:40:01  MAILER-DAEMON
                                             cron@router.example

-- 3 Kbytes in 2 Requests.
";
        assert_eq!(text, want);
    }

    #[test]
    fn reads_the_spool_oldest_first() {
        use crate::durable::{Durability, SyncMethod};
        use crate::queue::inject::inject;
        use crate::queue::spool::Spool;
        let dir = std::env::temp_dir().join(format!("picomta-mailq-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        assert_eq!(entries(&dir).unwrap(), Vec::new(), "no spool yet: empty");
        let mut spool = Spool::open(&dir).unwrap();
        let mut durability = Durability::new(SyncMethod::Fsync);
        for (id, arrival) in [("B", 20), ("A", 10)] {
            let envelope = Envelope {
                arrival,
                from: ReversePath::Null,
                rcpts: vec![mb("x", "example.org")],
            };
            inject(
                &mut spool,
                &mut durability,
                id,
                &envelope,
                b"Subject: q\n\nhi\n",
            )
            .unwrap();
        }
        fs::write(
            dir.join("state").join("B"),
            "0 deferred 451 4.3.0 try later\n",
        )
        .unwrap();
        fs::write(dir.join("msg").join("junk"), "not a queue file").unwrap();
        let got = entries(&dir).unwrap();
        let ids: Vec<&str> = got.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["A", "B"]);
        assert_eq!(got[0].size, 15);
        assert_eq!(
            got[1].state.outcomes[0],
            Some(Outcome::Deferred("451 4.3.0 try later".into()))
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}

//! Messages picomta writes into its own queue (delivery status notifications,
//! and `sendmail`'s messages taken from the drop directory), made durable
//! before the call returns, with the same sync, rename, sync as mail
//! received over SMTP. The caller may then forget what the message was made
//! from (e.g. remove the bounced original).

use std::io;

use super::envelope::Envelope;
use super::spool::{Incoming, Spool};
use crate::durable::Durability;

/// Queues `message` (LF line ends) for `envelope` under `id`.
pub fn inject(
    spool: &mut Spool,
    durability: &mut Durability,
    id: &str,
    envelope: &Envelope,
    message: &[u8],
) -> io::Result<()> {
    let mut incoming = spool.create(id, envelope)?;
    if let Err(e) = incoming.write(message) {
        spool.discard(incoming);
        return Err(e);
    }
    commit(spool, durability, incoming)
}

/// Makes a written message durable and queued: sync, rename into `msg/`,
/// sync of `msg/`. On error nothing is queued (the file is thrown away).
pub fn commit(
    spool: &mut Spool,
    durability: &mut Durability,
    mut incoming: Incoming,
) -> io::Result<()> {
    let msg_dir = spool.msg_dir().to_path_buf();
    let synced = incoming.flush().and_then(|()| {
        durability
            .sync_files(&[(incoming.file(), msg_dir.as_path())])
            .pop()
            .unwrap_or_else(|| Err(io::ErrorKind::Other.into()))
    });
    if let Err(e) = synced {
        spool.discard(incoming);
        return Err(e);
    }
    let id = incoming.id.clone();
    spool.publish(incoming)?;
    let dir_synced = durability
        .sync_dirs(std::slice::from_ref(&msg_dir))
        .pop()
        .unwrap_or_else(|| Err(io::ErrorKind::Other.into()));
    if let Err(e) = dir_synced {
        spool.unpublish(&id);
        return Err(e);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::durable::SyncMethod;
    use crate::smtp::address::{Mailbox, ReversePath};

    #[test]
    fn an_injected_message_is_committed_and_loads_back() {
        let dir = std::env::temp_dir().join(format!("picomta-inject-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut spool = Spool::open(&dir).unwrap();
        let mut durability = Durability::new(SyncMethod::Fsync);
        let envelope = Envelope {
            arrival: 1_795_000_000,
            from: ReversePath::Null,
            rcpts: vec![Mailbox {
                local: "alice".into(),
                domain: "example.test".into(),
            }],
        };
        let body = b"From: MAILER-DAEMON@mx.test\nSubject: bounce\n\nsorry\n";
        inject(&mut spool, &mut durability, "ABC123", &envelope, body).unwrap();
        assert!(spool.msg_dir().join("ABC123").exists());
        assert_eq!(std::fs::read_dir(dir.join("tmp")).unwrap().count(), 0);
        let stored = spool.load("ABC123", true).unwrap();
        assert_eq!(stored.envelope, envelope);
        assert_eq!(stored.len, body.len() as u64);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

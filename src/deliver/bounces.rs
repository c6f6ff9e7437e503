//! Returning mail to its sender: when an attempt ends with recipients that
//! failed for good (or waited past `queue_lifetime`), one delivery status
//! notification (RFC 3464) for all of them is queued to the envelope sender,
//! durably, before the failures are recorded. Mail from the null sender
//! (bounces themselves) is never answered, so bounces cannot loop.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::time::Duration;

use crate::queue::bounce::{delivery_status_notification, Failed};
use crate::queue::envelope::Envelope;
use crate::queue::inject::inject;
use crate::queue::spool::{Spool, Stored};
use crate::smtp::address::{Mailbox, ReversePath};
use crate::util;

use super::local::Ctx;

/// How much of the original's header section a notification quotes.
const MAX_QUOTED_HEADERS: u64 = 64 * 1024;

/// One recipient that will not get the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub rcpt: String,
    /// The RFC 3463 status, e.g. `5.1.1`.
    pub status: String,
    /// `smtp; 550 5.1.1 …` for a remote refusal, `x-local; …` otherwise.
    pub diagnostic: String,
    pub remote_mta: Option<String>,
}

impl Failure {
    /// A failure decided here (a refused alias target, an invalid mailbox),
    /// whose reason may start with a status code.
    pub fn local(rcpt: &Mailbox, reason: &str) -> Failure {
        Failure {
            rcpt: rcpt.to_string(),
            status: status_of(reason).unwrap_or("5.0.0").to_string(),
            diagnostic: format!("x-local; {reason}"),
            remote_mta: None,
        }
    }

    /// A recipient a remote server refused for good: `reply` is its words
    /// (`550 5.1.1 …`).
    pub fn remote(rcpt: &Mailbox, reply: &str, remote_mta: Option<String>) -> Failure {
        Failure {
            rcpt: rcpt.to_string(),
            status: status_of(reply).unwrap_or("5.0.0").to_string(),
            diagnostic: match remote_mta {
                Some(_) => format!("smtp; {reply}"),
                None => format!("x-local; {reply}"),
            },
            remote_mta,
        }
    }

    /// A recipient still deferred when its message is older than
    /// `queue_lifetime` (RFC 3463 4.4.7, "delivery time expired").
    pub fn expired(rcpt: &Mailbox, last_reason: &str, lifetime: Duration) -> Failure {
        Failure {
            rcpt: rcpt.to_string(),
            status: "4.4.7".to_string(),
            diagnostic: format!(
                "x-local; delivery time expired after {} days; last error: {last_reason}",
                lifetime.as_secs() / 86400
            ),
            remote_mta: None,
        }
    }
}

/// The leading `d.d.d` of `reason` (or of a reply like `550 5.1.1 …`).
pub fn status_of(reason: &str) -> Option<&str> {
    let is_status = |w: &str| {
        let parts: Vec<&str> = w.split('.').collect();
        parts.len() == 3
            && matches!(parts[0], "2" | "4" | "5")
            && parts[1..]
                .iter()
                .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
    };
    let mut words = reason.split_whitespace();
    let first = words.next()?;
    if is_status(first) {
        return Some(first);
    }
    let second = words.next()?;
    (first.len() == 3 && first.bytes().all(|b| b.is_ascii_digit()) && is_status(second))
        .then_some(second)
}

/// Queues the notification for `failures` of message `id`; returns the new
/// message's id, or None when the sender is null (logged). An error means the
/// notification is not queued: the caller must keep the failures pending.
pub fn send(
    ctx: &mut Ctx,
    id: &str,
    stored: &Stored,
    failures: &[Failure],
) -> io::Result<Option<String>> {
    let ReversePath::Mailbox(sender) = &stored.envelope.from else {
        log::info!("{id}: no notification: the sender is null");
        return Ok(None);
    };
    let headers = original_headers(ctx.spool, id, stored)?;
    let failed: Vec<Failed> = failures
        .iter()
        .map(|f| Failed {
            rcpt: &f.rcpt,
            status: &f.status,
            diagnostic: &f.diagnostic,
            remote_mta: f.remote_mta.as_deref(),
        })
        .collect();
    let now = util::unix_now();
    let report = delivery_status_notification(
        &ctx.config.hostname,
        id,
        stored.envelope.arrival,
        now,
        &sender.to_string(),
        &failed,
        &headers,
    );
    let bounce_id = ctx.ids.next();
    // Trace for a message made here (RFC 5321 4.4), as Postfix writes it.
    let mut message = format!(
        "Received: by {} (picomta) id {bounce_id};\n\t{}\n",
        ctx.config.hostname,
        util::rfc5322_date(now)
    )
    .into_bytes();
    message.extend_from_slice(&report);
    let envelope = Envelope {
        arrival: now,
        from: ReversePath::Null,
        rcpts: vec![sender.clone()],
    };
    inject(ctx.spool, ctx.durability, &bounce_id, &envelope, &message)?;
    ctx.schedule.add(bounce_id.clone(), true);
    log::info!("{id}: sender non-delivery notification: {bounce_id}");
    Ok(Some(bounce_id))
}

/// The original's header section, at most [`MAX_QUOTED_HEADERS`].
fn original_headers(spool: &Spool, id: &str, stored: &Stored) -> io::Result<Vec<u8>> {
    let mut file = File::open(spool.msg_path(id))?;
    file.seek(SeekFrom::Start(stored.offset))?;
    let mut head = Vec::new();
    file.take(stored.len.min(MAX_QUOTED_HEADERS))
        .read_to_end(&mut head)?;
    if let Some(end) = head.windows(2).position(|w| w == b"\n\n") {
        head.truncate(end + 1);
    }
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_are_found_in_reasons_and_replies() {
        assert_eq!(status_of("5.1.1 no such user"), Some("5.1.1"));
        assert_eq!(status_of("550 5.7.1 relay denied"), Some("5.7.1"));
        assert_eq!(status_of("550 no code"), None);
        assert_eq!(status_of("no such user"), None);
        assert_eq!(status_of("6.1.1 bad class"), None);
        assert_eq!(status_of("5.1 short"), None);
        assert_eq!(status_of(""), None);
    }

    #[test]
    fn local_and_expired_failures() {
        let rcpt = Mailbox {
            local: "bob".into(),
            domain: "example.test".into(),
        };
        let f = Failure::local(&rcpt, "alias 'x': unknown local name 'y'");
        assert_eq!(
            (f.status.as_str(), f.rcpt.as_str()),
            ("5.0.0", "bob@example.test")
        );
        let f = Failure::expired(&rcpt, "451 4.3.0 try later", Duration::from_secs(5 * 86400));
        assert_eq!(f.status, "4.4.7");
        assert!(f.diagnostic.contains("after 5 days") && f.diagnostic.contains("451 4.3.0"));
    }
}

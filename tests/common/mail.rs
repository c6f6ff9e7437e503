//! Reading what the server delivered: the files in a Maildir's `new/`, split
//! into the three lines picomta prepends (`Return-Path`, `Delivered-To`,
//! `Received`) and the message as it was sent.

use std::fs;
use std::path::Path;

/// One delivered file.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// The file name in `new/`.
    pub name: String,
    /// The whole file.
    pub raw: Vec<u8>,
    /// The address inside `Return-Path: <...>` (empty for the null sender).
    pub return_path: String,
    /// The value of `Delivered-To:`.
    pub delivered_to: String,
    /// The `Received:` header value, unfolded.
    pub received: String,
    /// Everything after the prepended headers: the message as sent, CRLF -> LF.
    pub message: Vec<u8>,
}

impl Delivered {
    pub fn message_str(&self) -> String {
        String::from_utf8_lossy(&self.message).into_owned()
    }
}

/// Number of message files in a `new/` directory (0 if it does not exist yet).
pub fn count_files(new: &Path) -> usize {
    match fs::read_dir(new) {
        Ok(rd) => rd
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
            .count(),
        Err(_) => 0,
    }
}

/// The files in `maildir/new`, parsed, sorted by name.
pub fn read_new(maildir: &Path) -> Vec<Delivered> {
    let new = maildir.join("new");
    let Ok(rd) = fs::read_dir(&new) else {
        return Vec::new();
    };
    let mut names: Vec<String> = rd
        .flatten()
        .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let raw = fs::read(new.join(&n)).expect("read delivered file");
            parse_delivered(&n, raw)
        })
        .collect()
}

/// Splits a delivered file and asserts its shape: LF line ends only, then
/// `Return-Path: <…>`, `Delivered-To: …`, `Received: from …` (maybe folded), then
/// the original message.
pub fn parse_delivered(name: &str, raw: Vec<u8>) -> Delivered {
    let show = || String::from_utf8_lossy(&raw[..raw.len().min(2000)]).into_owned();
    assert!(
        !raw.windows(2).any(|w| w == b"\r\n"),
        "{name}: delivered file has CRLF line ends:\n{}",
        show()
    );
    let mut pos = 0;
    let next_line = |pos: &mut usize| -> Option<String> {
        let rest = &raw[*pos..];
        let end = rest.iter().position(|&b| b == b'\n')?;
        *pos += end + 1;
        Some(String::from_utf8_lossy(&rest[..end]).into_owned())
    };
    let l1 = next_line(&mut pos).unwrap_or_default();
    let Some(rp) = l1
        .strip_prefix("Return-Path: <")
        .and_then(|s| s.strip_suffix('>'))
    else {
        panic!(
            "{name}: first line is not 'Return-Path: <...>':\n{}",
            show()
        );
    };
    let return_path = rp.to_string();
    let l2 = next_line(&mut pos).unwrap_or_default();
    let Some(dt) = l2.strip_prefix("Delivered-To: ") else {
        panic!(
            "{name}: second line is not 'Delivered-To: ...':\n{}",
            show()
        );
    };
    let delivered_to = dt.to_string();
    let l3 = next_line(&mut pos).unwrap_or_default();
    // "Received: from …" for mail received over SMTP, "Received: by …" for
    // messages picomta made itself (bounces).
    let Some(rcv) = l3.strip_prefix("Received: ") else {
        panic!("{name}: third line is not 'Received: ...':\n{}", show());
    };
    let mut received = rcv.to_string();
    while matches!(raw.get(pos), Some(b' ') | Some(b'\t')) {
        let cont = next_line(&mut pos).unwrap_or_default();
        received.push(' ');
        received.push_str(cont.trim());
    }
    Delivered {
        name: name.to_string(),
        message: raw[pos..].to_vec(),
        raw,
        return_path,
        delivered_to,
        received,
    }
}

/// CRLF -> LF, as the server stores messages. A CR not followed by LF stays.
pub fn crlf_to_lf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        if data[i] == b'\r' && data.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(data[i]);
        i += 1;
    }
    out
}

/// A small message with a unique `Message-ID` built from `tag` (CRLF lines).
pub fn message(tag: &str, subject: &str, body: &str) -> Vec<u8> {
    let mut m = format!(
        "From: Sender <{}>\r\nTo: Someone <someone@example.test>\r\nSubject: {subject}\r\n\
         Message-ID: <{tag}@client.test>\r\n\r\n",
        super::SENDER
    );
    for line in body.lines() {
        m.push_str(line);
        m.push_str("\r\n");
    }
    m.into_bytes()
}

/// Asserts two byte strings are equal; on a mismatch it shows the first
/// differing offset and a little context instead of megabytes of output.
pub fn assert_same_bytes(got: &[u8], want: &[u8], what: &str) {
    if got == want {
        return;
    }
    let at = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    let from = at.saturating_sub(40);
    let ctx = |b: &[u8]| {
        String::from_utf8_lossy(&b[from.min(b.len())..(at + 40).min(b.len())]).into_owned()
    };
    panic!(
        "{what}: {} bytes delivered, {} expected; first difference at offset {at}\n got: {:?}\nwant: {:?}",
        got.len(),
        want.len(),
        ctx(got),
        ctx(want)
    );
}

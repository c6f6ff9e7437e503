//! SMTP replies: a code, an enhanced status code (RFC 3463) and text, and their
//! wire form, including multi-line replies such as the EHLO keyword list.

use std::fmt::Write as _;

/// One reply as the server sends it. `lines` has at least one entry; every line
/// carries the same code and enhanced status, as RFC 2034 asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// Enhanced status code such as "5.5.1"; empty for replies that have none
    /// (the greeting, EHLO lines).
    pub status: &'static str,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn new(code: u16, status: &'static str, text: impl Into<String>) -> Reply {
        Reply {
            code,
            status,
            lines: vec![text.into()],
        }
    }

    pub fn multi(code: u16, lines: Vec<String>) -> Reply {
        debug_assert!(!lines.is_empty(), "a reply has at least one line");
        Reply {
            code,
            status: "",
            lines,
        }
    }

    /// Appends the wire form (`250-…` continuation lines, `250 …` last line).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let mut s = String::new();
        let last = self.lines.len() - 1;
        for (i, line) in self.lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            // Writing into a String cannot fail.
            let _ = write!(s, "{}{}", self.code, sep);
            if !self.status.is_empty() {
                s.push_str(self.status);
                s.push(' ');
            }
            s.push_str(line);
            s.push_str("\r\n");
        }
        out.extend_from_slice(s.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_line_with_enhanced_status() {
        let mut out = Vec::new();
        Reply::new(550, "5.1.1", "no such user").write_to(&mut out);
        assert_eq!(out, b"550 5.1.1 no such user\r\n");
    }

    #[test]
    fn multi_line_uses_dash_continuations() {
        let mut out = Vec::new();
        Reply::multi(
            250,
            vec!["host".into(), "PIPELINING".into(), "SIZE 10".into()],
        )
        .write_to(&mut out);
        assert_eq!(out, b"250-host\r\n250-PIPELINING\r\n250 SIZE 10\r\n");
    }
}

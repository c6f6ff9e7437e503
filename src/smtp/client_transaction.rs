//! The mail transaction of the outbound session: MAIL, RCPT and DATA (all in
//! one write with PIPELINING, RFC 2920), per-recipient verdicts, the final dot.

use std::collections::VecDeque;

use super::{Expect, Failure, ServerReply, SmtpClient, State, Verdict};

impl SmtpClient {
    /// EHLO (and AUTH) done: the checks that can fail the message before MAIL,
    /// then MAIL, and with PIPELINING every RCPT and DATA too.
    pub(super) fn start_transaction(&mut self) {
        let env = &self.envelope;
        let utf8 = env.smtputf8 || !env.from.is_ascii() || env.rcpts.iter().any(|r| !r.is_ascii());
        if utf8 && !self.ext.smtputf8 {
            let text = "SMTPUTF8 is required, but was not offered by the server";
            return self.finish(Some(local(true, "5.6.7", text.into(), "MAIL FROM")), true);
        }
        if let Some(limit) = self.ext.size.filter(|&l| l > 0 && env.size > l) {
            let text = format!(
                "message size {} exceeds size limit {limit} of the server",
                env.size
            );
            return self.finish(Some(local(true, "5.3.4", text, "MAIL FROM")), true);
        }
        if !safe_address(&env.from) {
            let text = "bad sender address syntax";
            return self.finish(Some(local(true, "5.1.7", text.into(), "MAIL FROM")), true);
        }
        for (i, rcpt) in env.rcpts.iter().enumerate() {
            if !safe_address(rcpt) || rcpt.is_empty() {
                let text = "bad recipient address syntax".into();
                self.verdicts[i] = Verdict::Final(Err(local(true, "5.1.3", text, "RCPT TO")));
            }
        }
        if self.next_rcpt(0).is_none() {
            return self.finish(None, true);
        }
        let mut mail = format!("MAIL FROM:<{}>", env.from);
        if self.ext.size.is_some() {
            mail.push_str(&format!(" SIZE={}", env.size));
        }
        if env.eight_bit && self.ext.eightbitmime {
            mail.push_str(" BODY=8BITMIME");
        }
        if utf8 {
            mail.push_str(" SMTPUTF8");
        }
        self.send(&mail);
        let mut awaiting = VecDeque::from([Expect::Mail]);
        if self.ext.pipelining {
            // RFC 2920: MAIL, every RCPT and DATA in one write.
            let mut i = 0;
            while let Some(next) = self.next_rcpt(i) {
                self.send_rcpt(next);
                awaiting.push_back(Expect::Rcpt(next));
                i = next + 1;
            }
            self.send("DATA");
            awaiting.push_back(Expect::Data);
        }
        self.state = State::Transaction(awaiting);
    }

    /// The first recipient from `from` on that still needs its RCPT.
    fn next_rcpt(&self, from: usize) -> Option<usize> {
        (from..self.verdicts.len()).find(|&i| matches!(self.verdicts[i], Verdict::Unknown))
    }

    fn send_rcpt(&mut self, i: usize) {
        let line = format!("RCPT TO:<{}>", self.envelope.rcpts[i]);
        self.send(&line);
    }

    fn any_accepted(&self) -> bool {
        self.verdicts.iter().any(|v| matches!(v, Verdict::Accepted))
    }

    pub(super) fn transaction_reply(&mut self, r: &ServerReply) {
        let State::Transaction(awaiting) = &mut self.state else {
            return;
        };
        let Some(expect) = awaiting.pop_front() else {
            return self.fail_reply(r, false);
        };
        let pipelining = self.ext.pipelining;
        // Without PIPELINING, the next command goes when this reply is in.
        let mut next = None;
        match expect {
            Expect::Mail if r.class() == 2 => next = self.next_rcpt(0).map(Expect::Rcpt),
            Expect::Mail => {
                let failure = failure(r, "MAIL FROM");
                if !pipelining {
                    return self.finish(Some(failure), true);
                }
                self.mail_failure = Some(failure);
            }
            Expect::Rcpt(i) => {
                if self.mail_failure.is_none() {
                    self.verdicts[i] = if r.class() == 2 {
                        Verdict::Accepted
                    } else {
                        Verdict::Final(Err(failure(r, "RCPT TO")))
                    };
                }
                next = match self.next_rcpt(i + 1) {
                    Some(n) => Some(Expect::Rcpt(n)),
                    None if self.any_accepted() => Some(Expect::Data),
                    // Nobody to send to: no DATA (RFC 5321 3.3).
                    None if !pipelining => return self.finish(None, true),
                    None => None,
                };
            }
            Expect::Data if r.code == 354 => {
                if self.mail_failure.is_none() && self.any_accepted() {
                    self.state = State::Body;
                } else {
                    // A pipelined DATA accepted with no recipient: end it
                    // with an empty message (RFC 2920 3.1).
                    self.send(".");
                    self.state = State::DataEnd { real: false };
                }
                return;
            }
            Expect::Data => {
                if let Some(failure) = self.mail_failure.take() {
                    return self.finish(Some(failure), true);
                }
                self.fail_accepted(&failure(r, "DATA"));
                return self.finish(None, true);
            }
        }
        if !pipelining {
            match next {
                Some(Expect::Rcpt(n)) => self.send_rcpt(n),
                Some(Expect::Data) => self.send("DATA"),
                _ => {}
            }
            if let (State::Transaction(awaiting), Some(next)) = (&mut self.state, next) {
                awaiting.push_back(next);
            }
        }
    }

    pub(super) fn data_end_reply(&mut self, r: &ServerReply, real: bool) {
        if !real {
            let failure = self.mail_failure.take();
            return self.finish(failure, true);
        }
        if r.class() == 2 {
            let text = r.to_string();
            for v in &mut self.verdicts {
                if matches!(v, Verdict::Accepted) {
                    *v = Verdict::Final(Ok(text.clone()));
                }
            }
        } else {
            self.fail_accepted(&failure(r, "end of DATA"));
        }
        self.finish(None, true);
    }

    /// Every recipient accepted at RCPT fails after all.
    fn fail_accepted(&mut self, failure: &Failure) {
        for v in &mut self.verdicts {
            if matches!(v, Verdict::Accepted) {
                *v = Verdict::Final(Err(failure.clone()));
            }
        }
    }
}

/// An address that cannot break the command line it goes in (spool addresses
/// were parsed on the way in; this guards against CR/LF all the same).
fn safe_address(a: &str) -> bool {
    !a.bytes().any(|b| b.is_ascii_control())
}

/// A failure from a server's reply; `X.0.0` when it has no enhanced code.
pub(super) fn failure(r: &ServerReply, stage: &'static str) -> Failure {
    let enhanced = if r.enhanced.is_empty() {
        match (r.code, r.class()) {
            (535, _) => "5.7.8".to_string(),
            (_, class @ (4 | 5)) => format!("{class}.0.0"),
            // A 2xx or 3xx where it makes no sense: a protocol error.
            _ => "4.5.0".to_string(),
        }
    } else {
        r.enhanced.clone()
    };
    Failure {
        permanent: r.class() == 5,
        code: r.code,
        enhanced,
        text: r.text(),
        stage,
    }
}

/// A failure found on our side, with no reply of the server.
pub(super) fn local(permanent: bool, enhanced: &str, text: String, stage: &'static str) -> Failure {
    Failure {
        permanent,
        code: 0,
        enhanced: enhanced.into(),
        text,
        stage,
    }
}

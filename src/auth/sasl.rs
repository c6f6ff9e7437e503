//! The SASL PLAIN (RFC 4616) and LOGIN exchanges of SMTP AUTH (RFC 4954), and
//! the strict base64 (RFC 4648) they are carried in. Sans-IO: lines in,
//! challenges or credentials out; no password is checked here.

use super::user_name_problem;

/// A SASL mechanism offered after `AUTH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Login,
}

impl Mechanism {
    /// The mechanism named in an AUTH command, case-insensitively.
    pub fn parse(name: &str) -> Option<Mechanism> {
        if name.eq_ignore_ascii_case("PLAIN") {
            Some(Mechanism::Plain)
        } else if name.eq_ignore_ascii_case("LOGIN") {
            Some(Mechanism::Login)
        } else {
            None
        }
    }

    /// The name as EHLO lists it and logs show it.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
        }
    }
}

/// `Username:` in base64: LOGIN's first challenge.
const LOGIN_USER_PROMPT: &str = "VXNlcm5hbWU6";
/// `Password:` in base64: LOGIN's second challenge.
const LOGIN_PASSWORD_PROMPT: &str = "UGFzc3dvcmQ6";

/// What the session does next in a SASL exchange.
#[derive(Debug, PartialEq, Eq)]
pub enum SaslStep {
    /// Send `334 <text>` (text is already base64; empty for PLAIN's empty challenge).
    Challenge(&'static str),
    Done {
        user: String,
        password: Vec<u8>,
    },
    Failed(SaslError),
}

/// Why an exchange ended without credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslError {
    /// The client sent `*` (RFC 4954 4).
    Cancelled,
    /// A line that is not strict base64.
    BadBase64,
    /// Decoded, but not credentials: PLAIN without two NULs, an authorization identity
    /// other than the login, a user name that is not UTF-8 or not one the password
    /// file could hold, an empty password.
    Malformed,
}

/// One AUTH exchange: fed the client's lines, it says which challenge to send next
/// and finally the credentials (or why there are none). It never checks a password,
/// and keeps none (its Debug shows at most the user name).
#[derive(Debug)]
pub struct SaslExchange {
    stage: Stage,
}

/// What the next client response is.
#[derive(Debug)]
enum Stage {
    /// PLAIN's one message: `[authzid] NUL authcid NUL passwd`.
    PlainMessage,
    /// LOGIN's user name.
    LoginUser,
    /// LOGIN's password, for this user.
    LoginPassword { user: String },
    /// Done or failed: nothing more is expected.
    Finished,
}

impl SaslExchange {
    /// `initial` is the AUTH command's initial response as sent (base64, or "=" for empty), if any.
    pub fn start(mechanism: Mechanism, initial: Option<&str>) -> (SaslExchange, SaslStep) {
        let stage = match mechanism {
            Mechanism::Plain => Stage::PlainMessage,
            Mechanism::Login => Stage::LoginUser,
        };
        let mut exchange = SaslExchange { stage };
        let step = match initial {
            None => match mechanism {
                Mechanism::Plain => SaslStep::Challenge(""),
                Mechanism::Login => SaslStep::Challenge(LOGIN_USER_PROMPT),
            },
            Some("=") => exchange.advance(Vec::new()),
            Some(text) => exchange.respond(text.as_bytes()),
        };
        (exchange, step)
    }

    /// The client's next line (CRLF already stripped).
    pub fn respond(&mut self, line: &[u8]) -> SaslStep {
        if line == b"*" {
            self.stage = Stage::Finished;
            return SaslStep::Failed(SaslError::Cancelled);
        }
        match decode_base64(line) {
            Some(data) => self.advance(data),
            None => {
                self.stage = Stage::Finished;
                SaslStep::Failed(SaslError::BadBase64)
            }
        }
    }

    /// Takes one decoded response; the single place where the stage changes.
    fn advance(&mut self, data: Vec<u8>) -> SaslStep {
        let outcome = match std::mem::replace(&mut self.stage, Stage::Finished) {
            Stage::PlainMessage => parse_plain(&data),
            Stage::LoginUser => match sasl_user(data) {
                Ok(user) => {
                    self.stage = Stage::LoginPassword { user };
                    return SaslStep::Challenge(LOGIN_PASSWORD_PROMPT);
                }
                Err(e) => Err(e),
            },
            Stage::LoginPassword { user } if !data.is_empty() => Ok((user, data)),
            Stage::LoginPassword { .. } | Stage::Finished => Err(SaslError::Malformed),
        };
        match outcome {
            Ok((user, password)) => SaslStep::Done { user, password },
            Err(e) => SaslStep::Failed(e),
        }
    }
}

/// RFC 4616: `[authzid] NUL authcid NUL passwd`, where we accept an authzid only when
/// it is empty or the login itself (no acting for another user).
fn parse_plain(data: &[u8]) -> Result<(String, Vec<u8>), SaslError> {
    let parts: Vec<&[u8]> = data.split(|&b| b == 0).collect();
    let [authzid, authcid, password] = parts[..] else {
        return Err(SaslError::Malformed);
    };
    if !authzid.is_empty() && authzid != authcid {
        return Err(SaslError::Malformed);
    }
    if password.is_empty() {
        return Err(SaslError::Malformed);
    }
    Ok((sasl_user(authcid.to_vec())?, password.to_vec()))
}

/// A user name sent by a client: UTF-8 and well-formed by the password file's rules,
/// so that it can be logged as it is.
fn sasl_user(bytes: Vec<u8>) -> Result<String, SaslError> {
    let user = String::from_utf8(bytes).map_err(|_| SaslError::Malformed)?;
    match user_name_problem(&user) {
        Some(_) => Err(SaslError::Malformed),
        None => Ok(user),
    }
}

/// The RFC 4648 base64 alphabet.
const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Decodes strict RFC 4648 base64: length a multiple of 4, `=` padding only at the
/// end, no whitespace, and the unused bits before padding zero (so each byte string
/// has exactly one encoding). The empty text is the empty string.
pub fn decode_base64(text: &[u8]) -> Option<Vec<u8>> {
    if text.len() % 4 != 0 {
        return None;
    }
    let groups = text.len() / 4;
    let mut out = Vec::with_capacity(groups * 3);
    for (index, group) in text.chunks_exact(4).enumerate() {
        let pad = if index + 1 == groups {
            group.iter().rev().take_while(|&&c| c == b'=').count()
        } else {
            0
        };
        if pad > 2 {
            return None;
        }
        let mut bits = 0u32;
        for &c in &group[..4 - pad] {
            bits = bits << 6 | base64_value(c)?;
        }
        bits <<= 6 * pad;
        // Padding leaves 2 (one `=`) or 4 (two) encoded bits past the last byte.
        if bits & ((1 << (8 * pad)) - 1) != 0 {
            return None;
        }
        let bytes = [(bits >> 16) as u8, (bits >> 8) as u8, bits as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

/// The value of an RFC 4648 base64 character (not `=`).
fn base64_value(c: u8) -> Option<u32> {
    let value = match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    };
    Some(u32::from(value))
}

/// RFC 4648 base64 with padding (the outbound client's AUTH).
pub fn encode_base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let byte = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let bits = byte(0) << 16 | byte(1) << 8 | byte(2);
        for i in 0..4 {
            // A chunk of n bytes fills n + 1 characters; `=` pads the rest.
            if i <= chunk.len() {
                out.push(char::from(BASE64[(bits >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
#[path = "sasl_tests.rs"]
mod tests;

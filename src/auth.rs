//! Authentication, without any I/O of its own: the `passwords` file (`user:hash`
//! lines, SHA-crypt hashes checked and verified with the `sha-crypt` crate), making
//! new hashes, the SASL PLAIN and LOGIN exchanges of SMTP AUTH (RFC 4954, 4616),
//! base64 (RFC 4648), and the per-client failure counts that slow down guessing.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read};
use std::net::{IpAddr, Ipv6Addr};
use std::path::Path;
use std::time::{Duration, Instant};

use sha_crypt::{PasswordHasher, PasswordVerifier, ShaCrypt};

use crate::config::ConfigError;

/// The most SHA-crypt rounds a stored hash may ask for. A login computes the hash on
/// the one thread that serves every session: one SHA-512-crypt round costs about 1 µs
/// on a server core (measured 2026), so 1,000,000 rounds stall every session for a
/// second there, and for several on a router. The default, 5000, costs milliseconds.
pub const MAX_ROUNDS: u64 = 1_000_000;

/// The fewest rounds crypt(3) ever writes (it raises smaller requests to this), and the
/// fewest `sha-crypt` reads as a rounds field.
const MIN_ROUNDS: u64 = 1_000;

/// The longest user name accepted, in bytes: names end up in log lines and replies.
const MAX_USER_LEN: usize = 256;

/// What every "unsupported hash" message suggests instead.
const HOW_TO_HASH: &str =
    "make a SHA-512-crypt hash with 'picomta passwd', 'mkpasswd -m sha-512' or 'openssl passwd -6'";

/// Verified against when the user does not exist, so that an unknown user costs the
/// same hash computation as a known one (5000 rounds, the default). Its password is
/// random and was thrown away.
const DUMMY_HASH: &str = "$6$H/cAdwJxGOeOXQpY$KLKH7PCva/aktnIaK.mV0AYPJ/sEutHwfgc/vid6T5u4yIa5rDXSq43c5H60oKG5axV4EJ9wCFszSJE1n041S/";

/// The users of the `passwords` file and their SHA-crypt hashes.
pub struct Passwords {
    /// User name -> hash string, each hash checked by [`check_hash`].
    users: HashMap<String, String>,
}

/// Shows the user names only, never the hashes.
impl fmt::Debug for Passwords {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&str> = self.users.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("Passwords").field("users", &names).finish()
    }
}

impl Passwords {
    /// Reads the file; errors are crate::config::ConfigError with file = the passwords file
    /// and its line (line 0 = the file itself, e.g. cannot read).
    pub fn load(path: &Path) -> Result<Passwords, ConfigError> {
        let error = |line, message| ConfigError {
            file: path.to_path_buf(),
            line,
            message,
        };
        let bytes = std::fs::read(path).map_err(|e| error(0, format!("cannot read: {e}")))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let line = good.iter().filter(|&&b| b == b'\n').count() + 1;
            error(line, "not valid UTF-8".to_string())
        })?;
        Passwords::parse(path, &text)
    }

    /// Parses the text of a passwords file; `path` is only used in error messages.
    /// Error messages name the line and, once the name is known to be well-formed, the
    /// user; never the hash, which may well be a plain-text password.
    pub fn parse(path: &Path, text: &str) -> Result<Passwords, ConfigError> {
        let mut users: HashMap<String, String> = HashMap::new();
        // User -> the line that defined it, for duplicates.
        let mut lines: HashMap<String, usize> = HashMap::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let error = |message| ConfigError {
                file: path.to_path_buf(),
                line,
                message,
            };
            let entry = raw.trim();
            if entry.is_empty() || entry.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = entry.split_once(':') else {
                return Err(error("expected 'user:hash'".to_string()));
            };
            if let Some(problem) = user_name_problem(user) {
                return Err(error(format!("{problem} (expected 'user:hash')")));
            }
            if let Some(first) = lines.get(user) {
                return Err(error(format!(
                    "duplicate user '{user}' (first on line {first})"
                )));
            }
            check_hash(hash).map_err(|problem| error(format!("user '{user}': {problem}")))?;
            lines.insert(user.to_string(), line);
            users.insert(user.to_string(), hash.to_string());
        }
        Ok(Passwords { users })
    }

    /// True if the password matches. For an unknown user, still spends one hash
    /// computation (a fixed dummy $6$ hash) so timing does not reveal which users exist.
    pub fn verify(&self, user: &str, password: &[u8]) -> bool {
        let verifier = ShaCrypt::default();
        match self.users.get(user) {
            Some(hash) => verifier.verify_password(password, hash.as_str()).is_ok(),
            None => {
                // black_box: the result is unused, and the work must not be optimized away.
                let outcome = verifier.verify_password(std::hint::black_box(password), DUMMY_HASH);
                std::hint::black_box(outcome.is_ok());
                false
            }
        }
    }

    /// True if `user` has a line in the file (names are case-sensitive).
    pub fn contains(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }

    /// How many users the file has.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// True if the file has no users.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// Why `name` cannot be a user name, or None if it can: not empty, at most 256 bytes,
/// no `:`, no whitespace or control characters (names are written into log lines).
/// The message does not repeat the name, which may hold a mistyped password.
pub fn user_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("empty user name")
    } else if name.len() > MAX_USER_LEN {
        Some("user name longer than 256 bytes")
    } else if name.contains(':') {
        Some("user name contains ':'")
    } else if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("user name contains whitespace or a control character")
    } else {
        None
    }
}

/// Checks that `hash` is a SHA-crypt hash that crypt(3) could have written and that
/// `sha-crypt` reads the same way: `$6$` (or `$5$`), an optional `rounds=N$` with
/// 1000 <= N <= [`MAX_ROUNDS`], a salt of 1 to 16 characters, and the digest in
/// crypt's base64 (86 characters for `$6$`, 43 for `$5$`). The error never quotes
/// the hash.
fn check_hash(hash: &str) -> Result<(), String> {
    // (scheme name, digest length, the digest's last character must be below this
    // value: the bits past the digest's end are zero)
    let (rest, scheme, digest_len, last_limit) = if let Some(rest) = hash.strip_prefix("$6$") {
        (rest, "SHA-512-crypt", 86, 4)
    } else if let Some(rest) = hash.strip_prefix("$5$") {
        (rest, "SHA-256-crypt", 43, 16)
    } else if hash.starts_with("$y$") || hash.starts_with("$gy$") {
        return Err(format!(
            "yescrypt hashes are not supported (Debian's mkpasswd makes them by default); \
             {HOW_TO_HASH}"
        ));
    } else {
        return Err(format!(
            "plain-text or unsupported password hash refused ({})",
            match other_scheme(hash) {
                Some((name, id)) => format!("{name} ('${id}$') is not supported; {HOW_TO_HASH}"),
                None => HOW_TO_HASH.to_string(),
            }
        ));
    };
    let malformed = |what: &str| {
        format!(
            "malformed {scheme} hash: {what} (expected ${}$[rounds=N$]SALT$DIGEST)",
            &hash[1..2]
        )
    };
    if rest.contains(':') {
        return Err("unexpected ':' after the hash (expected 'user:hash')".to_string());
    }
    if rest.chars().any(char::is_whitespace) {
        return Err(
            "whitespace in the hash (expected 'user:hash'; comments go on lines of their own)"
                .to_string(),
        );
    }
    let fields: Vec<&str> = rest.split('$').collect();
    let (salt, digest) = match fields[..] {
        [salt, digest] => (salt, digest),
        [rounds, salt, digest] => {
            let Some(number) = rounds.strip_prefix("rounds=") else {
                return Err(malformed("wrong number of '$' fields"));
            };
            if number.is_empty() || number.len() > 10 || !number.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(malformed("bad rounds=N"));
            }
            // At most 10 digits: fits in u64.
            let rounds: u64 = number.parse().map_err(|_| malformed("bad rounds=N"))?;
            if rounds > MAX_ROUNDS {
                return Err(format!(
                    "rounds={rounds} is more than {MAX_ROUNDS}: every login would stall the \
                     server (one thread) while it computes the hash; rehash with fewer rounds"
                ));
            }
            if rounds < MIN_ROUNDS {
                return Err(malformed("rounds below 1000, which crypt(3) never writes"));
            }
            (salt, digest)
        }
        _ => return Err(malformed("wrong number of '$' fields")),
    };
    if salt.is_empty() {
        return Err(malformed("empty salt"));
    }
    if salt.len() > 16 {
        return Err(malformed("salt longer than 16 characters"));
    }
    if salt.starts_with("rounds=") {
        return Err(malformed("rounds=N without a salt"));
    }
    // The characters `sha-crypt` accepts in a field; crypt(3) itself writes only [./0-9A-Za-z].
    let salt_char = |b: u8| b.is_ascii_alphanumeric() || b"./+=,-".contains(&b);
    if !salt.bytes().all(salt_char) {
        return Err(malformed("unexpected character in the salt"));
    }
    if digest.len() != digest_len {
        return Err(malformed(&format!(
            "the digest has {} characters instead of {digest_len}",
            digest.len()
        )));
    }
    let values: Option<Vec<u8>> = digest.bytes().map(crypt64_value).collect();
    match values {
        None => return Err(malformed("unexpected character in the digest")),
        Some(values) if values[digest_len - 1] >= last_limit => {
            return Err(malformed("the digest's last character is impossible"))
        }
        Some(_) => {}
    }
    Ok(())
}

/// Other `$id$` schemes, named in the error when the hash field starts with one.
/// Only known ids are repeated: the field may be a plain-text password that merely
/// starts with `$`.
const OTHER_SCHEMES: &[(&str, &str)] = &[
    ("1", "MD5-crypt"),
    ("2a", "bcrypt"),
    ("2b", "bcrypt"),
    ("2x", "bcrypt"),
    ("2y", "bcrypt"),
    ("3", "NT hash"),
    ("7", "scrypt"),
    ("md5", "Sun MD5-crypt"),
    ("sha1", "SHA1-crypt"),
    ("argon2i", "Argon2"),
    ("argon2d", "Argon2"),
    ("argon2id", "Argon2"),
    ("pbkdf2", "PBKDF2"),
    ("pbkdf2-sha256", "PBKDF2"),
    ("pbkdf2-sha512", "PBKDF2"),
];

/// The name and id of a known scheme `hash` uses, if any.
fn other_scheme(hash: &str) -> Option<(&'static str, &'static str)> {
    let id = hash.strip_prefix('$')?.split('$').next()?;
    OTHER_SCHEMES
        .iter()
        .find(|(known, _)| *known == id && hash.len() > id.len() + 2)
        .map(|&(id, name)| (name, id))
}

/// The value of a character of crypt(3)'s base64: `./0-9A-Za-z` are 0 to 63.
fn crypt64_value(c: u8) -> Option<u8> {
    match c {
        b'.' | b'/' | b'0'..=b'9' => Some(c - b'.'),
        b'A'..=b'Z' => Some(c - b'A' + 12),
        b'a'..=b'z' => Some(c - b'a' + 38),
        _ => None,
    }
}

/// A fresh `$6$<16 salt chars>$…` hash, salt from /dev/urandom (default 5000 rounds).
pub fn hash_password(password: &[u8]) -> io::Result<String> {
    let mut salt = [0u8; 12];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut salt)?;
    hash_with_salt(password, &salt)
}

/// The SHA-512-crypt hash of `password` with the salt whose crypt-base64 form is 16
/// characters (12 bytes).
fn hash_with_salt(password: &[u8], salt: &[u8; 12]) -> io::Result<String> {
    let hash = ShaCrypt::default()
        .hash_password_with_salt(password, salt)
        .map_err(|e| io::Error::other(format!("SHA-512-crypt: {e}")))?;
    let hash = String::from(hash);
    // sha-crypt always writes the rounds field; crypt(3) leaves the default implicit,
    // and the digest does not depend on whether the field is written.
    Ok(match hash.strip_prefix("$6$rounds=5000$") {
        Some(rest) => format!("$6${rest}"),
        None => hash,
    })
}

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

/// RFC 4648 base64 with padding.
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

/// How many addresses the tracker remembers at most.
const TRACKED_ADDRESSES: usize = 4096;
/// An address's failures are forgotten this long after its last one.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Failures answered without delay.
const FREE_FAILURES: u32 = 2;
/// The longest delay before a 535.
const MAX_DELAY: Duration = Duration::from_secs(5);

/// Per client IP failed-AUTH counts, bounded (at most 4096 addresses; when full, forget the
/// oldest), each forgotten 15 minutes after its last failure.
///
/// IPv6 clients are counted per /64 (one subscriber's network, whose addresses an
/// attacker can change at will), and IPv4-mapped IPv6 addresses as the IPv4 address.
#[derive(Debug)]
pub struct FailureTracker {
    clients: HashMap<IpAddr, Failures>,
}

/// One client's recent failures.
#[derive(Debug)]
struct Failures {
    count: u32,
    last: Instant,
}

impl Default for FailureTracker {
    fn default() -> FailureTracker {
        FailureTracker::new()
    }
}

impl FailureTracker {
    pub fn new() -> FailureTracker {
        FailureTracker {
            clients: HashMap::new(),
        }
    }

    /// Records a failure from `ip` at `now` and returns how long to delay the 535 reply:
    /// zero for the first 2 failures of that IP, then (n-2) seconds capped at 5 s.
    pub fn failed(&mut self, ip: IpAddr, now: Instant) -> Duration {
        let key = tracking_key(ip);
        if !self.clients.contains_key(&key) && self.clients.len() >= TRACKED_ADDRESSES {
            self.make_room(now);
        }
        let failures = self.clients.entry(key).or_insert(Failures {
            count: 0,
            last: now,
        });
        if now.saturating_duration_since(failures.last) >= FORGET_AFTER {
            failures.count = 0;
        }
        failures.count = failures.count.saturating_add(1);
        failures.last = now;
        let over = failures.count.saturating_sub(FREE_FAILURES);
        MAX_DELAY.min(Duration::from_secs(u64::from(over)))
    }

    /// Forgets the expired clients, or if none has expired, the one whose last failure
    /// is the oldest. A linear scan, only when the table is full: cheap next to the
    /// hash computation that every failure has already cost.
    fn make_room(&mut self, now: Instant) {
        self.clients
            .retain(|_, f| now.saturating_duration_since(f.last) < FORGET_AFTER);
        if self.clients.len() >= TRACKED_ADDRESSES {
            let oldest = self
                .clients
                .iter()
                .min_by_key(|(_, f)| f.last)
                .map(|(&ip, _)| ip);
            if let Some(ip) = oldest {
                self.clients.remove(&ip);
            }
        }
    }
}

/// The key a client's failures are counted under: the IPv4 address, or the /64 of an
/// IPv6 address.
fn tracking_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;

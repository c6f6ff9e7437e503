//! Authentication, without any I/O of its own: the `passwords` file (`user:hash`
//! lines, SHA-crypt hashes checked here and verified by `sha_crypt`) and
//! making new hashes. The SASL exchanges of AUTH are in `sasl`, the per-client
//! failure counts that slow down guessing in `throttle`.

mod sasl;
mod sha_crypt;
mod throttle;

pub use sasl::{encode_base64, Mechanism, SaslError, SaslExchange, SaslStep};
pub use throttle::FailureTracker;

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::Path;

use crate::config::ConfigError;

/// The most SHA-crypt rounds a stored hash may ask for. A login computes the hash on
/// the one thread that serves every session: one SHA-512-crypt round costs about 1 µs
/// on a server core (measured 2026), so 1,000,000 rounds stall every session for a
/// second there, and for several on a router. The default, 5000, costs milliseconds.
pub const MAX_ROUNDS: u64 = 1_000_000;

/// The fewest rounds crypt(3) ever writes (it raises smaller requests to this), and the
/// fewest a hash may ask for.
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
        Passwords::parse(path, &crate::config::read_text(path)?)
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
        match self.users.get(user) {
            Some(hash) => sha_crypt::verify(password, hash),
            None => {
                // black_box: the result is unused, and the work must not be optimized away.
                let outcome = sha_crypt::verify(std::hint::black_box(password), DUMMY_HASH);
                std::hint::black_box(outcome);
                false
            }
        }
    }

    /// True if `user` has a line in the file (names are case-sensitive).
    #[cfg(test)]
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
/// `sha_crypt` reads the same way: `$6$` (or `$5$`), an optional `rounds=N$` with
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
    // The characters crypt(3) accepts in a salt; it writes only [./0-9A-Za-z] itself.
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
    crate::util::random_bytes(&mut salt)?;
    hash_with_salt(password, &salt)
}

/// The SHA-512-crypt hash of `password` with the salt whose crypt-base64 form is 16
/// characters (12 bytes), with the default rounds left implicit as crypt(3) does.
fn hash_with_salt(password: &[u8], salt: &[u8; 12]) -> io::Result<String> {
    Ok(sha_crypt::hash(
        sha_crypt::Variant::Sha512,
        password,
        &sha_crypt::salt_from(salt),
        None,
    ))
}

#[cfg(test)]
mod tests;

//! SHA-crypt (`$5$` and `$6$`), the password hashes of glibc's crypt(3), as
//! Ulrich Drepper's specification "Unix crypt using SHA-256 and SHA-512"
//! defines them, over ring's SHA-256 and SHA-512 (already in the binary for
//! TLS, where a separate SHA-2 crate would add some 40 KB). Checked against
//! the specification's test vectors and against `openssl passwd`.

use ring::digest::{Context, Digest, SHA256, SHA512};

/// The rounds crypt(3) uses when the hash has no `rounds=N$` field.
const DEFAULT_ROUNDS: u32 = 5000;
/// crypt(3) reads at most this many salt characters.
const MAX_SALT: usize = 16;

/// crypt(3)'s base64 alphabet.
const CRYPT64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The order in which the digest's bytes are written, three at a time (the
/// specification's final step), and the length of the last, short group.
const ORDER_512: [[usize; 3]; 21] = [
    [0, 21, 42],
    [22, 43, 1],
    [44, 2, 23],
    [3, 24, 45],
    [25, 46, 4],
    [47, 5, 26],
    [6, 27, 48],
    [28, 49, 7],
    [50, 8, 29],
    [9, 30, 51],
    [31, 52, 10],
    [53, 11, 32],
    [12, 33, 54],
    [34, 55, 13],
    [56, 14, 35],
    [15, 36, 57],
    [37, 58, 16],
    [59, 17, 38],
    [18, 39, 60],
    [40, 61, 19],
    [62, 20, 41],
];
const ORDER_256: [[usize; 3]; 10] = [
    [0, 10, 20],
    [21, 1, 11],
    [12, 22, 2],
    [3, 13, 23],
    [24, 4, 14],
    [15, 25, 5],
    [6, 16, 26],
    [27, 7, 17],
    [18, 28, 8],
    [9, 19, 29],
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Sha256,
    Sha512,
}

impl Variant {
    fn id(self) -> &'static str {
        match self {
            Variant::Sha256 => "5",
            Variant::Sha512 => "6",
        }
    }

    fn hash(self, parts: &[&[u8]]) -> Digest {
        let mut ctx = self.context();
        for part in parts {
            ctx.update(part);
        }
        ctx.finish()
    }

    fn context(self) -> Context {
        Context::new(match self {
            Variant::Sha256 => &SHA256,
            Variant::Sha512 => &SHA512,
        })
    }
}

/// The hash string of `password` with `salt` (at most 16 characters are
/// used) and `rounds` (None: the default, left implicit as crypt(3) does).
pub fn hash(variant: Variant, password: &[u8], salt: &str, rounds: Option<u32>) -> String {
    let salt = &salt.as_bytes()[..salt.len().min(MAX_SALT)];
    let digest = digest(variant, password, salt, rounds.unwrap_or(DEFAULT_ROUNDS));
    let mut out = format!("${}$", variant.id());
    if let Some(rounds) = rounds {
        out.push_str(&format!("rounds={rounds}$"));
    }
    out.push_str(&String::from_utf8_lossy(salt));
    out.push('$');
    let bytes = digest.as_ref();
    let (order, last): (&[[usize; 3]], (u32, usize)) = match variant {
        Variant::Sha512 => (&ORDER_512, (u32::from(bytes[63]), 2)),
        Variant::Sha256 => (
            &ORDER_256,
            ((u32::from(bytes[31]) << 8) | u32::from(bytes[30]), 3),
        ),
    };
    for [a, b, c] in order {
        let word =
            (u32::from(bytes[*a]) << 16) | (u32::from(bytes[*b]) << 8) | u32::from(bytes[*c]);
        push_crypt64(&mut out, word, 4);
    }
    push_crypt64(&mut out, last.0, last.1);
    out
}

/// Whether `password` gives `stored` (a `$5$` or `$6$` hash). Compares in
/// time independent of where the strings differ.
pub fn verify(password: &[u8], stored: &str) -> bool {
    let Some((variant, rest)) = stored
        .strip_prefix("$6$")
        .map(|r| (Variant::Sha512, r))
        .or_else(|| stored.strip_prefix("$5$").map(|r| (Variant::Sha256, r)))
    else {
        return false;
    };
    let (rounds, rest) = match rest.strip_prefix("rounds=").and_then(|r| r.split_once('$')) {
        // crypt(3) would read a count outside its range as the nearest end
        // and write that end; such a stored hash is not one it wrote.
        Some((n, rest)) => match n.parse::<u32>() {
            Ok(n) if (1000..=999_999_999).contains(&n) => (Some(n), rest),
            _ => return false,
        },
        None => (None, rest),
    };
    let Some((salt, _)) = rest.split_once('$') else {
        return false;
    };
    let computed = hash(variant, password, salt, rounds);
    let (a, b) = (computed.as_bytes(), stored.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Writes `count` crypt64 characters of `word`, low bits first.
fn push_crypt64(out: &mut String, mut word: u32, count: usize) {
    for _ in 0..count {
        out.push(char::from(CRYPT64[(word & 63) as usize]));
        word >>= 6;
    }
}

/// The 16-character salt crypt(3) would write for 12 random bytes.
pub fn salt_from(bytes: &[u8; 12]) -> String {
    let mut out = String::with_capacity(16);
    for chunk in bytes.chunks(3) {
        let word = (u32::from(chunk[0]) << 16) | (u32::from(chunk[1]) << 8) | u32::from(chunk[2]);
        push_crypt64(&mut out, word, 4);
    }
    out
}

/// The specification's steps 1 to 21: the final digest.
fn digest(variant: Variant, password: &[u8], salt: &[u8], rounds: u32) -> Digest {
    // Digest B: password, salt, password.
    let b = variant.hash(&[password, salt, password]);
    // Digest A: password, salt, then B repeated over the password's length,
    // then B or the password for each bit of that length.
    let mut a = variant.context();
    a.update(password);
    a.update(salt);
    update_repeated(&mut a, b.as_ref(), password.len());
    let mut bits = password.len();
    while bits > 0 {
        a.update(if bits & 1 == 1 { b.as_ref() } else { password });
        bits >>= 1;
    }
    let a = a.finish();
    // Byte sequence P: digest DP (the password once per byte of it),
    // stretched to the password's length.
    let mut dp = variant.context();
    for _ in 0..password.len() {
        dp.update(password);
    }
    let p = stretch(dp.finish().as_ref(), password.len());
    // Byte sequence S: digest DS (the salt 16 + A[0] times), stretched to
    // the salt's length.
    let mut ds = variant.context();
    for _ in 0..16 + usize::from(a.as_ref()[0]) {
        ds.update(salt);
    }
    let s = stretch(ds.finish().as_ref(), salt.len());
    // The rounds.
    let mut c = a;
    for round in 0..rounds {
        let mut ctx = variant.context();
        let odd = round % 2 == 1;
        ctx.update(if odd { &p } else { c.as_ref() });
        if round % 3 != 0 {
            ctx.update(&s);
        }
        if round % 7 != 0 {
            ctx.update(&p);
        }
        ctx.update(if odd { c.as_ref() } else { &p });
        c = ctx.finish();
    }
    c
}

/// Adds `len` bytes of `block` repeated.
fn update_repeated(ctx: &mut Context, block: &[u8], len: usize) {
    let mut left = len;
    while left > 0 {
        let n = left.min(block.len());
        ctx.update(&block[..n]);
        left -= n;
    }
}

/// `block` repeated to `len` bytes.
fn stretch(block: &[u8], len: usize) -> Vec<u8> {
    block.iter().copied().cycle().take(len).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// From Drepper's specification (more, and `openssl passwd -5`/`-6`
    /// comparisons, are in `auth/tests.rs`).
    #[test]
    fn specification_vectors() {
        type Case<'a> = (Variant, &'a str, Option<u32>, &'a [u8], &'a str);
        let cases: &[Case] = &[
            (Variant::Sha512, "saltstring", None, b"Hello world!",
             "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"),
            (Variant::Sha512, "saltstringsaltstring", Some(10000), b"Hello world!",
             "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v."),
            (Variant::Sha512, "roundstoolow", Some(1000), b"the minimum number is still observed",
             "$6$rounds=1000$roundstoolow$kUMsbe306n21p9R.FRkW3IGn.S9NPN0x50YhH1xhLsPuWGsUSklZt58jaTfF4ZEQpyUNGc0dqbpBYYBaHHrsX."),
            (Variant::Sha256, "saltstring", None, b"Hello world!",
             "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5"),
        ];
        for (variant, salt, rounds, password, want) in cases {
            assert_eq!(hash(*variant, password, salt, *rounds), *want);
            assert!(verify(password, want), "{want}");
            assert!(!verify(b"wrong", want), "{want}");
        }
    }

    #[test]
    fn malformed_hashes_never_verify() {
        for stored in [
            "",
            "$6$",
            "$6$salt",
            "$1$salt$x",
            "$6$rounds=x$s$h",
            "$6$rounds=5000$",
            "$6$rounds=10$s$h",
        ] {
            assert!(!verify(b"", stored), "{stored}");
        }
    }

    #[test]
    fn salts_from_bytes() {
        let salt = salt_from(&[0xff; 12]);
        assert_eq!(salt, "zzzzzzzzzzzzzzzz");
        assert_eq!(salt_from(&[0; 12]), "................");
    }
}

//! Small shared helpers: directory fsync, wall-clock time as Unix seconds and
//! the RFC 5322 date format (UTC, so no time zone database is needed).

use std::fs::File;
use std::io;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// fsyncs a directory so that creations and renames in it are durable.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Fills `buf` with random bytes from the kernel.
pub fn random_bytes(buf: &mut [u8]) -> io::Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(buf)
}

/// `bytes` random bytes from the kernel, in upper-case hex: names and ids
/// that must not be guessed.
pub fn random_hex(bytes: usize) -> io::Result<String> {
    let mut buf = vec![0u8; bytes];
    random_bytes(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02X}")).collect())
}

/// Seconds since the Unix epoch; a clock before 1970 counts as 0.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Microseconds since the Unix epoch.
pub fn unix_micros() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0)
}

/// Day names from the Unix epoch (a Thursday), and month names.
const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A Unix time in UTC, split for formatting.
struct Utc {
    weekday: &'static str,
    year: i64,
    month: u32,
    day: u32,
    /// Seconds into the day.
    secs: u64,
}

impl Utc {
    fn of(unix: u64) -> Utc {
        let days = unix / 86_400;
        let secs = unix % 86_400;
        let (year, month, day) = civil_from_days(days as i64);
        Utc {
            weekday: DAYS[(days % 7) as usize],
            year,
            month,
            day,
            secs,
        }
    }

    /// `HH:MM:SS`, written without an allocation of its own.
    fn clock(&self) -> impl std::fmt::Display {
        let s = self.secs;
        Clock(s / 3600, s / 60 % 60, s % 60)
    }

    fn month_name(&self) -> &'static str {
        MONTHS[(self.month - 1) as usize]
    }
}

struct Clock(u64, u64, u64);

impl std::fmt::Display for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:02}:{:02}:{:02}", self.0, self.1, self.2)
    }
}

/// `Mon, 23 Nov 2026 12:55:22 +0000` (RFC 5322 3.3).
pub fn rfc5322_date(unix: u64) -> String {
    let t = Utc::of(unix);
    format!(
        "{}, {} {} {} {} +0000",
        t.weekday,
        t.day,
        t.month_name(),
        t.year,
        t.clock()
    )
}

/// `Mon Nov 23 16:40:00` (UTC), as mailq shows arrival times.
pub fn queue_time(unix: u64) -> String {
    let t = Utc::of(unix);
    format!("{} {} {:2} {}", t.weekday, t.month_name(), t.day, t.clock())
}

/// `2026-11-23T12:55:22.123Z`, for log lines.
pub fn iso_time(unix_micros: u128) -> String {
    let t = Utc::of((unix_micros / 1_000_000) as u64);
    format!(
        "{}-{:02}-{:02}T{}.{:03}Z",
        t.year,
        t.month,
        t.day,
        t.clock(),
        unix_micros / 1000 % 1000
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// algorithm), so dates need no calendar crate.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_match_known_values() {
        assert_eq!(rfc5322_date(0), "Thu, 1 Jan 1970 00:00:00 +0000");
        // 2026-11-23 12:55:22 UTC, a Monday.
        assert_eq!(
            rfc5322_date(1_795_438_522),
            "Mon, 23 Nov 2026 12:55:22 +0000"
        );
        // Leap day.
        assert_eq!(rfc5322_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
        assert_eq!(iso_time(1_795_438_522_123_456), "2026-11-23T12:55:22.123Z");
    }
}

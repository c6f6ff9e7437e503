//! Accounts for the privilege drop: the `user` and `group` of the config
//! resolved to numeric ids by reading `/etc/passwd` and `/etc/group`
//! ourselves. `getpwnam` is no use here: the static glibc binary cannot load
//! NSS modules, and OpenWrt or a chroot may have no NSS at all, while the two
//! files exist everywhere picomta runs. Parsing is sans-IO; the files are
//! read through a function the caller passes, and only when a name needs it.

use std::io;
use std::path::Path;

pub const PASSWD: &str = "/etc/passwd";
pub const GROUP: &str = "/etc/group";

/// One line of /etc/passwd: `name:password:uid:gid:gecos:home:shell`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    /// The primary group.
    pub gid: u32,
    /// The comment field; its first comma-separated part is the full name
    /// (for `sendmail`'s From header).
    pub gecos: String,
}

/// One line of /etc/group: `name:password:gid:members`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub gid: u32,
}

/// Who `serve` runs as after the drop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    /// For log lines: the user's name, or its number when it has no entry.
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// Which config key a resolution problem is about, for its `file:line`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    User,
    Group,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: Key,
    pub message: String,
}

/// The entries of a passwd file. Lines that are not entries (comments, NIS
/// `+`/`-` lines, too few fields, ids that are not numbers) are skipped, as
/// the C library skips them.
pub fn users(text: &str) -> impl Iterator<Item = User> + '_ {
    entries(text).filter_map(|fields| {
        let [name, _, uid, gid, ..] = fields[..] else {
            return None;
        };
        Some(User {
            name: name.to_string(),
            uid: number(uid)?,
            gid: number(gid)?,
            gecos: fields.get(4).copied().unwrap_or_default().to_string(),
        })
    })
}

/// The entries of a group file, skipping what is not one (see [`users`]).
pub fn groups(text: &str) -> impl Iterator<Item = Group> + '_ {
    entries(text).filter_map(|fields| {
        let [name, _, gid, ..] = fields[..] else {
            return None;
        };
        Some(Group {
            name: name.to_string(),
            gid: number(gid)?,
        })
    })
}

fn entries(text: &str) -> impl Iterator<Item = Vec<&str>> + '_ {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with(['#', '+', '-']))
        .map(|l| l.split(':').collect::<Vec<&str>>())
        .filter(|fields| !fields[0].is_empty())
}

/// A decimal id. `u32::MAX` is `(uid_t)-1`, which set*id(2) take as "leave
/// unchanged", so it is never a valid id.
fn number(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().filter(|&n| n != u32::MAX)
}

/// Resolves the config's `user` (a name or a uid) and `group` (a name, a
/// gid, or none for the user's primary group). Numbers are taken as they
/// are; a number without a passwd entry has no primary group, so it needs
/// `group`. Root (uid 0) and the root group (gid 0, as Postfix refuses for
/// its mail owner) are refused: a daemon that parses mail from anyone must
/// not own the system. `read` gives a file's text; it is called only for the
/// files a name needs.
pub fn resolve(
    user: &str,
    group: Option<&str>,
    read: &dyn Fn(&Path) -> io::Result<String>,
) -> Result<RunAs, Problem> {
    let problem = |key, message: String| Problem { key, message };
    let read_file = |key, path: &str| {
        read(Path::new(path)).map_err(|e| problem(key, format!("cannot read {path}: {e}")))
    };
    let digits = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());

    let (name, uid, primary) = if digits(user) {
        let uid = number(user).ok_or_else(|| problem(Key::User, format!("bad uid {user}")))?;
        // The entry only gives a name for the log and the primary group: a
        // chroot with numeric ids and no passwd file is fine.
        let passwd = read(Path::new(PASSWD)).unwrap_or_default();
        let entry = users(&passwd).find(|u| u.uid == uid);
        match entry {
            Some(u) => (u.name, uid, Some(u.gid)),
            None => (user.to_string(), uid, None),
        }
    } else {
        let passwd = read_file(Key::User, PASSWD)?;
        let u = users(&passwd).find(|u| u.name == user).ok_or_else(|| {
            problem(
                Key::User,
                format!("unknown user \"{user}\" (not in {PASSWD})"),
            )
        })?;
        (u.name, u.uid, Some(u.gid))
    };
    if uid == 0 {
        return Err(problem(
            Key::User,
            format!("user {user} is uid 0: picomta will not handle mail as root"),
        ));
    }
    let gid = match group {
        Some(g) if digits(g) => {
            number(g).ok_or_else(|| problem(Key::Group, format!("bad gid {g}")))?
        }
        Some(g) => {
            let text = read_file(Key::Group, GROUP)?;
            let entry = groups(&text).find(|entry| entry.name == g);
            entry
                .ok_or_else(|| {
                    problem(
                        Key::Group,
                        format!("unknown group \"{g}\" (not in {GROUP})"),
                    )
                })?
                .gid
        }
        None => primary.ok_or_else(|| {
            problem(
                Key::User,
                format!(
                    "user {user} is not in {PASSWD}, so it has no primary group: set \"group\" too"
                ),
            )
        })?,
    };
    if gid == 0 {
        let (key, what) = match group {
            Some(g) => (Key::Group, format!("group {g}")),
            None => (Key::User, format!("the primary group of user {user}")),
        };
        return Err(problem(
            key,
            format!("{what} is gid 0: picomta will not run with the root group"),
        ));
    }
    Ok(RunAs { name, uid, gid })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD_TEXT: &str = "root:x:0:0:root:/root:/bin/bash\n\
        # a comment\n\
        \n\
        daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
        broken:x:notanumber:5:::\n\
        short:x:7\n\
        +nisuser::::::\n\
        picomta:x:105:107:picomta MTA:/var/spool/picomta:/usr/sbin/nologin\n\
        wheelie:x:300:0::/:/bin/sh\n\
        nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n\
        picomta:x:999:999:a later duplicate:/:/bin/false\n";
    const GROUP_TEXT: &str = "root:x:0:\n\
        daemon:x:1:\n\
        mail:x:8:picomta\n\
        picomta:x:107:\n\
        nogroup:x:65534:\n\
        bad:x:-1:\n";

    fn read(path: &Path) -> io::Result<String> {
        match path.to_str() {
            Some(PASSWD) => Ok(PASSWD_TEXT.to_string()),
            Some(GROUP) => Ok(GROUP_TEXT.to_string()),
            _ => Err(io::ErrorKind::NotFound.into()),
        }
    }

    fn no_group_file(path: &Path) -> io::Result<String> {
        match path.to_str() {
            Some(PASSWD) => Ok(PASSWD_TEXT.to_string()),
            _ => Err(io::Error::from_raw_os_error(libc::ENOENT)),
        }
    }

    fn run_as(name: &str, uid: u32, gid: u32) -> RunAs {
        RunAs {
            name: name.to_string(),
            uid,
            gid,
        }
    }

    #[test]
    fn parses_entries_and_skips_the_rest() {
        let names: Vec<(String, u32, u32)> =
            users(PASSWD_TEXT).map(|u| (u.name, u.uid, u.gid)).collect();
        assert_eq!(
            names,
            [
                ("root".to_string(), 0, 0),
                ("daemon".to_string(), 1, 1),
                ("picomta".to_string(), 105, 107),
                ("wheelie".to_string(), 300, 0),
                ("nobody".to_string(), 65534, 65534),
                ("picomta".to_string(), 999, 999),
            ]
        );
        let gids: Vec<(String, u32)> = groups(GROUP_TEXT).map(|g| (g.name, g.gid)).collect();
        assert_eq!(gids.len(), 5, "{gids:?}");
        assert_eq!(gids[2], ("mail".to_string(), 8));
        assert!(users("").next().is_none());
        assert!(users(":x:1:1::/:/bin/sh\n").next().is_none(), "empty name");
        assert!(
            users("a:x:4294967295:1::/:\n").next().is_none(),
            "(uid_t)-1"
        );
        // CRLF files and lines without the trailing fields still parse.
        let u: Vec<User> = users("mta:x:5:6\r\n").collect();
        assert_eq!(u.len(), 1);
        assert_eq!((u[0].uid, u[0].gid, u[0].gecos.as_str()), (5, 6, ""));
        let u: Vec<User> = users("al:x:7:7:Al Doe,,,:/home/al:/bin/sh\n").collect();
        assert_eq!(u[0].gecos, "Al Doe,,,");
    }

    #[test]
    fn names_resolve_with_the_primary_group() {
        assert_eq!(
            resolve("picomta", None, &read),
            Ok(run_as("picomta", 105, 107))
        );
        assert_eq!(
            resolve("picomta", Some("mail"), &read),
            Ok(run_as("picomta", 105, 8))
        );
        assert_eq!(
            resolve("nobody", Some("nogroup"), &read),
            Ok(run_as("nobody", 65534, 65534))
        );
        // The first entry of a name wins, as with getpwnam on files.
        assert_eq!(resolve("picomta", None, &read).map(|r| r.uid), Ok(105));
    }

    #[test]
    fn numbers_are_taken_as_they_are() {
        assert_eq!(resolve("105", None, &read), Ok(run_as("picomta", 105, 107)));
        assert_eq!(
            resolve("105", Some("50"), &read),
            Ok(run_as("picomta", 105, 50))
        );
        // No entry: the number is the name, and the group must be given.
        assert_eq!(
            resolve("4000", Some("4001"), &read),
            Ok(run_as("4000", 4000, 4001))
        );
        // A numeric group needs no group file.
        assert_eq!(
            resolve("picomta", Some("9"), &no_group_file),
            Ok(run_as("picomta", 105, 9))
        );
        assert_eq!(
            resolve("picomta", None, &no_group_file).map(|r| r.gid),
            Ok(107)
        );
        // Numbers need no file at all.
        let nothing = |_: &Path| -> io::Result<String> { Err(io::ErrorKind::NotFound.into()) };
        assert_eq!(
            resolve("105", Some("107"), &nothing),
            Ok(run_as("105", 105, 107))
        );
    }

    #[test]
    fn problems_name_their_key() {
        let cases: &[(&str, Option<&str>, Key, &str)] = &[
            (
                "x",
                None,
                Key::User,
                "unknown user \"x\" (not in /etc/passwd)",
            ),
            (
                "picomta",
                Some("staff"),
                Key::Group,
                "unknown group \"staff\" (not in /etc/group)",
            ),
            (
                "root",
                None,
                Key::User,
                "user root is uid 0: picomta will not handle mail as root",
            ),
            (
                "0",
                Some("107"),
                Key::User,
                "user 0 is uid 0: picomta will not handle mail as root",
            ),
            (
                "picomta",
                Some("root"),
                Key::Group,
                "group root is gid 0: picomta will not run with the root group",
            ),
            ("picomta", Some("0"), Key::Group, "group 0 is gid 0"),
            (
                "wheelie",
                None,
                Key::User,
                "the primary group of user wheelie is gid 0",
            ),
            (
                "4000",
                None,
                Key::User,
                "user 4000 is not in /etc/passwd, so it has no primary group: set \"group\" too",
            ),
            ("4294967295", Some("1"), Key::User, "bad uid 4294967295"),
            ("99999999999", Some("1"), Key::User, "bad uid 99999999999"),
            (
                "picomta",
                Some("4294967295"),
                Key::Group,
                "bad gid 4294967295",
            ),
            ("Picomta", None, Key::User, "unknown user \"Picomta\""),
        ];
        for &(user, group, key, message) in cases {
            let p = resolve(user, group, &read).expect_err(user);
            assert_eq!(p.key, key, "{user} {group:?}: {p:?}");
            assert!(p.message.contains(message), "{user} {group:?}: {p:?}");
        }
        let p = resolve("picomta", Some("mail"), &no_group_file).expect_err("no file");
        assert_eq!(p.key, Key::Group);
        assert!(p.message.starts_with("cannot read /etc/group: "), "{p:?}");
        let p = resolve("picomta", None, &|_| {
            Err(io::ErrorKind::PermissionDenied.into())
        })
        .expect_err("no passwd");
        assert_eq!(p.key, Key::User);
        assert!(p.message.starts_with("cannot read /etc/passwd: "), "{p:?}");
    }

    #[test]
    fn the_system_files_parse() {
        // Every machine this runs on has root in /etc/passwd.
        let text = std::fs::read_to_string(PASSWD).expect("read /etc/passwd");
        assert!(users(&text).any(|u| u.name == "root" && u.uid == 0));
        let system = |path: &Path| std::fs::read_to_string(path);
        assert_eq!(
            resolve("root", None, &system).map_err(|p| p.key),
            Err(Key::User)
        );
    }
}

//! Routing tests: RCPT checks, alias expansion, path-escape attempts.

use super::*;
use crate::deliver::aliases::parse_aliases;
use crate::deliver::users::parse_users;
use std::path::Path;

/// A config with the given files; the rest as the tests' router has it.
fn config(users: Option<PathBuf>, aliases: Option<PathBuf>) -> Config {
    let mut text = String::from(
        "hostname mx.example.org\nlocal_domains example.org localhost\n\
         maildir /srv/mail/{user}/Maildir\n",
    );
    for (key, file) in [("users", users), ("aliases", aliases)] {
        if let Some(file) = file {
            text.push_str(&format!("{key} {}\n", file.display()));
        }
    }
    Config::parse(Path::new("test.conf"), &text).expect("test config")
}

fn router(users: &str, aliases: &str) -> Router {
    let domains = vec!["example.org".to_string(), "localhost".to_string()];
    Router {
        users: parse_users(Path::new("users"), users).expect("users"),
        aliases: parse_aliases(Path::new("aliases"), aliases, &domains).expect("aliases"),
        local_domains: domains,
        recipient_delimiter: Some('+'),
        maildir: "/srv/mail/{user}/Maildir".into(),
    }
}

/// `local@domain`, split at the last `@` (the domain may be empty).
fn mb(addr: &str) -> Mailbox {
    let (local, domain) = addr.rsplit_once('@').unwrap_or((addr, ""));
    Mailbox {
        local: local.into(),
        domain: domain.into(),
    }
}

/// Targets in a compact form for tables: `alice`, `>x@d` (remote), `!why`.
fn show(targets: &[Target]) -> String {
    let one = |t: &Target| match t {
        Target::Mailbox(m) => m.clone(),
        Target::Remote(m) => format!(">{m}"),
        Target::Refused(why) => format!("!{why}"),
    };
    targets.iter().map(one).collect::<Vec<_>>().join(" | ")
}

const USERS: &str = "alice\nbob\ncarol\nroot\n";
const ALIASES: &str = "\
postmaster: root
abuse: postmaster
team: alice, Bob, alice@example.org, bob+x, carol@localhost
copy: alice
ext: alice, dave@Remote.Example, |/bin/prog
loop1: loop2
loop2: loop3, bob
loop3: loop1
nest: team, copy, abuse
ghost: nobody
selfonly: selfonly
bob+special: carol
";

#[test]
fn check_rcpt_table() {
    use RcptCheck::{Local, Remote, UnknownUser};
    let mut r = router(USERS, ALIASES);
    for (addr, want) in [
        ("alice@example.org", Local),
        ("ALICE@Example.Org", Local),
        ("alice+news@example.org", Local),
        ("\"alice\"@example.org", Local),
        ("team@localhost", Local),
        ("ghost@example.org", Local),
        ("dave@example.org", UnknownUser),
        ("+alice@example.org", UnknownUser),
        ("alice-news@example.org", UnknownUser),
        ("../etc@example.org", UnknownUser),
        ("@example.org", UnknownUser),
        ("alice@example.net", Remote),
        ("alice@LocalHost", Local),
        ("alice@sub.example.org", Remote),
        ("alice@[127.0.0.1]", Remote),
        ("PostMaster", Local),
        ("alice", UnknownUser),
    ] {
        assert_eq!(r.check_rcpt(&mb(addr)), want, "{addr}");
    }
    assert!(!r.is_local_domain("") && r.is_local_domain("EXAMPLE.org"));
    r.recipient_delimiter = None;
    assert_eq!(r.check_rcpt(&mb("alice+x@localhost")), UnknownUser);
    r.recipient_delimiter = Some('-');
    assert_eq!(r.check_rcpt(&mb("alice-x@localhost")), Local);
}

#[test]
fn sender_ownership_for_sender_login() {
    let r = router(USERS, ALIASES);
    for (addr, login, owned) in [
        ("alice@example.org", "alice", true),
        ("Alice+list@LOCALHOST", "alice", true),
        ("copy@example.org", "alice", true),
        ("alice@example.org", "bob", false),
        ("team@example.org", "alice", false),
        ("alice@example.net", "alice", false),
        ("alice@example.net", "alice@example.net", true),
        ("ALICE@Example.Net", "alice@example.net", true),
        ("nobody@example.org", "nobody", false),
        ("bob+special@example.org", "bob", false),
        ("bob+special@example.org", "carol", true),
    ] {
        assert_eq!(
            r.sender_owned_by(&mb(addr), login),
            owned,
            "{addr} as {login}"
        );
    }
}

#[test]
fn expand_table() {
    let r = router(USERS, ALIASES);
    for (addr, want) in [
        ("alice@example.org", "alice"),
        ("Alice+tag@localhost", "alice"),
        ("postmaster@example.org", "root"),
        ("postmaster", "root"),
        ("abuse@example.org", "root"),
        ("team@example.org", "alice | bob | carol"),
        ("copy@example.org", "alice"),
        ("bob+special@example.org", "carol"),
        ("bob+other@example.org", "bob"),
        (
            "ext@example.org",
            "alice | >dave@remote.example | !pipe to a command not supported",
        ),
        (
            "loop1@example.org",
            "!alias loop: loop1 -> loop2 -> loop3 -> loop1 | bob",
        ),
        (
            "ghost@example.org",
            "!alias 'ghost': unknown local name 'nobody'",
        ),
        (
            "selfonly@example.org",
            "!alias 'selfonly' lists itself but is not a user",
        ),
        ("nest@example.org", "alice | bob | carol | root"),
        ("nobody@example.org", "!no such user"),
        ("alice", "!no such user"),
        ("Alice@example.net", ">Alice@example.net"),
    ] {
        assert_eq!(show(&r.expand(&mb(addr))), want, "{addr}");
    }
}

#[test]
fn alias_listing_itself_keeps_a_copy() {
    let r = router("alice\nbob\n", "alice: alice, bob\n");
    assert_eq!(show(&r.expand(&mb("alice@example.org"))), "alice | bob");
    assert_eq!(show(&r.expand(&mb("alice+x@example.org"))), "alice | bob");
}

#[test]
fn depth_limit_and_shared_subtrees() {
    // a0 -> a1 -> ... -> a{n-1} -> alice: n aliases deep.
    let chain = |n: usize| -> String {
        let next = |i: usize| {
            if i + 1 == n {
                "alice".into()
            } else {
                format!("a{}", i + 1)
            }
        };
        (0..n).map(|i| format!("a{i}: {}\n", next(i))).collect()
    };
    let r = router("alice\n", &chain(MAX_ALIAS_DEPTH));
    assert_eq!(show(&r.expand(&mb("a0@localhost"))), "alice");
    let r = router("alice\n", &chain(MAX_ALIAS_DEPTH + 1));
    let want = format!("!aliases nested deeper than {MAX_ALIAS_DEPTH} at 'a{MAX_ALIAS_DEPTH}'");
    assert_eq!(show(&r.expand(&mb("a0@localhost"))), want);

    // Each level lists the next twice: 2^9 paths, but each alias is expanded once,
    // and one reached again deeper than the limit is not refused.
    let mut text: String = (0..9)
        .map(|i| format!("w{i}: w{n}, w{n}, bob\n", n = i + 1))
        .collect();
    text.push_str("w9: alice\nw10: w9, w0\n");
    let r = router("alice\nbob\n", &text);
    assert_eq!(show(&r.expand(&mb("w0@localhost"))), "alice | bob");
    assert_eq!(show(&r.expand(&mb("w10@localhost"))), "alice | bob");
}

#[test]
fn missing_postmaster_is_accepted_then_refused() {
    let r = router("alice\n", "");
    for addr in ["Postmaster", "postmaster@example.org"] {
        assert_eq!(r.check_rcpt(&mb(addr)), RcptCheck::Local);
        assert_eq!(show(&r.expand(&mb(addr))), "!no postmaster alias or user");
    }
    // No files at all: the same, and no mailboxes.
    let r = Router::load(&config(None, None)).expect("no files");
    assert_eq!(r.check_rcpt(&mb("postmaster@localhost")), RcptCheck::Local);
    assert_eq!(r.check_rcpt(&mb("alice@localhost")), RcptCheck::UnknownUser);
}

#[test]
fn maildir_path_never_escapes() {
    let mut r = router(USERS, ALIASES);
    let path = |s: &str| Some(PathBuf::from(s));
    assert_eq!(r.maildir_path("alice"), path("/srv/mail/alice/Maildir"));
    assert_eq!(r.maildir_path("a.b-c_d"), path("/srv/mail/a.b-c_d/Maildir"));
    let attacks = "|.|..|../etc|../../root|a/b|/etc|a\0b|.hidden|a/../..|..\\..|Alice|{user}|a b";
    for name in attacks.split('|') {
        assert_eq!(r.maildir_path(name), None, "{name:?}");
    }
    r.maildir = "/srv/mail/shared".into();
    assert_eq!(r.maildir_path("alice"), None);
}

#[test]
fn load_from_files() {
    let dir = std::env::temp_dir().join(format!("picomta-route-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write");
        Some(p)
    };
    let (users, aliases) = (file("users", USERS), file("aliases", ALIASES));
    let r = Router::load(&config(users.clone(), aliases.clone())).expect("load");
    assert_eq!(
        show(&r.expand(&mb("team@Example.org"))),
        "alice | bob | carol"
    );

    let missing = Some(dir.join("nope"));
    let e = Router::load(&config(missing.clone(), None)).expect_err("missing");
    assert_eq!((Some(e.file), e.line), (missing.clone(), 0));
    assert!(e.message.starts_with("cannot read: "), "{}", e.message);
    let e = Router::load(&config(None, missing)).expect_err("missing");
    assert_eq!(e.line, 0);

    let bad = file("bad-users", "alice\nx/y\n");
    let e = Router::load(&config(bad.clone(), aliases)).expect_err("bad");
    let shown = format!(
        "{}:2: invalid user name 'x/y'",
        dir.join("bad-users").display()
    );
    assert_eq!(e.to_string(), shown);
    let bad = file("bad-aliases", "a: b\n\nnocolon\n");
    let e = Router::load(&config(users, bad.clone())).expect_err("bad");
    assert_eq!((Some(e.file), e.line), (bad, 3));
    let _ = std::fs::remove_dir_all(&dir);
}

//! Config tests: defaults, every error with its line, round trips, the example file.

use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("t.conf"), text)
}

#[test]
fn defaults() {
    let c = parse("").expect("empty config is valid");
    let host = c.hostname.clone();
    assert!(domain(&host).is_some());
    let domains = if host.eq_ignore_ascii_case("localhost") {
        "localhost".to_string()
    } else {
        format!("{} localhost", host.to_ascii_lowercase())
    };
    let want = format!(
        "# picomta effective settings\nhostname {host}\nlisten 127.0.0.1:2525 smtp\n\
         # user (not set)\n# group (not set: the user's primary group)\n\
         spool spool\nmaildir mail/{{user}}/Maildir\nlocal_domains {domains}\n\
         recipient_delimiter +\nmax_connections 100\nmax_message_size 25M\n\
         max_recipients 100\nmax_errors 10\nmax_queue_messages 10000\n\
         min_free_space 100M\ncommand_timeout 5m\ndata_timeout 5m\nretry_min 5m\n\
         retry_max 1h\nsync_method syncfs\nrelay_networks 127.0.0.0/8 ::1/128\n\
         plaintext_auth_on_loopback no\nsender_login no\n\
         # relayhost (not set: mail goes to each domain's MX hosts)\n\
         # relayhost_auth (not set)\n\
         # dns_servers (not set: the nameservers of /etc/resolv.conf)\n\
         tls_ca_file /etc/ssl/certs/ca-certificates.crt\nmax_outbound_connections 20\n\
         max_outbound_per_destination 5\nqueue_lifetime 5d\noutbound_port 25\n\
         outbound_connect_timeout 30s\noutbound_command_timeout 5m\n\
         outbound_data_timeout 10m\n# users (not set)\n\
         # aliases (not set)\n# passwords (not set)\n# tls_cert (not set)\n\
         # tls_key (not set)\n"
    );
    assert_eq!(c.render(), want);
    assert_eq!(
        (c.max_message_size, c.retry_max.as_secs()),
        (25 << 20, 3600)
    );
}

/// `TEXT => LINE: MESSAGE`; in TEXT, `;` separates lines.
const ERRORS: &str = "
    foo bar                           => 1: unknown key 'foo'
    ;# c;Hostname x                   => 3: unknown key 'Hostname'
    spool                             => 1: missing value for 'spool'
    spool # comment                   => 1: missing value for 'spool'
    spool a b                         => 1: 'spool' takes one value, not 2
    spool a;;spool b                  => 3: duplicate key 'spool' (first set on line 1)
    hostname -x                       => 1: bad host name '-x'
    hostname a..b                     => 1: bad host name 'a..b'
    max_connections 0                 => 1: 'max_connections' must be at least 1
    max_recipients ten                => 1: bad number 'ten' for 'max_recipients'
    max_queue_messages +5             => 1: bad number '+5' for 'max_queue_messages'
    max_recipients 99999999999999999999 => 1: bad number '99999999999999999999' for
    max_errors 5000000000             => 1: 'max_errors' is too large
    max_message_size 10X              => 1: bad size '10X' for 'max_message_size'
    max_message_size 0                => 1: 'max_message_size' must be at least 1
    min_free_space 20000000000G       => 1: bad size '20000000000G'
    min_free_space M                  => 1: bad size 'M'
    command_timeout 5x                => 1: bad duration '5x' for 'command_timeout'
    data_timeout 0s                   => 1: 'data_timeout' must be longer than 0s
    data_timeout -1                   => 1: bad duration '-1'
    retry_min 2h                      => 1: retry_min (2h) is greater than retry_max (1h)
    retry_max 10s;;retry_min 1m       => 3: retry_min (1m) is greater than retry_max (10s)
    retry_min 1m;retry_max 10s        => 2: retry_min (1m) is greater
    listen localhost:25               => 1: bad address 'localhost:25' for 'listen'
    listen 127.0.0.1                  => 1: bad address '127.0.0.1'
    listen ::1:25                     => 1: bad address '::1:25'
    listen 127.0.0.1:0                => 1: needs a port other than 0
    listen 127.0.0.1:25 tls           => 1: unknown listener kind 'tls' (smtp, submission or smtps)
    listen 127.0.0.1:465 smtps        => 1: listen 127.0.0.1:465 smtps: an smtps listener needs tls_cert and tls_key
    listen [::1]:587 submission       => 1: a submission listener needs tls_cert and tls_key
    tls_cert c;tls_key k;listen [::1]:587 submission => 3: needs a passwords file
    passwords p;plaintext_auth_on_loopback yes;listen 10.0.0.1:587 submission => 3: needs tls_cert
    tls_cert c.pem                    => 1: tls_cert needs tls_key
    # x;tls_key k.pem                 => 2: tls_key needs tls_cert
    relay_networks 10.0.0.1/8         => 1: network '10.0.0.1/8' has host bits set (did you mean 10.0.0.0/8?)
    relay_networks 10.0.0.0/33        => 1: bad network '10.0.0.0/33' in 'relay_networks'
    relay_networks ::1/129            => 1: bad network '::1/129'
    relay_networks 10.0.0.0/          => 1: bad network '10.0.0.0/'
    relay_networks foo                => 1: bad network 'foo'
    relay_networks                    => 1: missing value for 'relay_networks'
    sender_login maybe                => 1: 'sender_login' must be yes or no, not 'maybe'
    plaintext_auth_on_loopback 1      => 1: 'plaintext_auth_on_loopback' must be yes or no
    relayhost smtp..example           => 1: bad relayhost 'smtp..example'
    relayhost [mail.example]          => 1: bad relayhost '[mail.example]'
    relayhost 192.0.2.1:25            => 1: bad relayhost '192.0.2.1:25'
    relayhost mail.example:0          => 1: bad relayhost 'mail.example:0'
    relayhost_tls smtps;relayhost_tls x => 2: duplicate key 'relayhost_tls'
    relayhost_tls maybe               => 1: 'relayhost_tls' must be none, may, encrypt, verify or smtps
    tls_policy example.com smtps      => 1: 'tls_policy' must be none, may, encrypt or verify
    tls_policy example.com            => 1: 'tls_policy' takes a domain and a policy
    tls_policy -x verify              => 1: bad domain '-x' in 'tls_policy'
    relayhost_auth /etc/p             => 1: relayhost_auth needs relayhost
    dns_servers 127.0.0.1:0           => 1: bad address '127.0.0.1:0' in 'dns_servers'
    dns_servers localhost             => 1: bad address 'localhost' in 'dns_servers'
    outbound_port 70000               => 1: bad port '70000' for 'outbound_port'
    queue_lifetime 0s                 => 1: 'queue_lifetime' must be longer than 0s
    max_outbound_connections 0        => 1: 'max_outbound_connections' must be at least 1
    listen 127.0.0.1:25 smtp x        => 1: 'listen' takes an address and an optional kind
    listen [::1]:25;listen [::1]:25   => 2: duplicate listen address '[::1]:25'
    maildir mail                      => 1: maildir template 'mail' must contain {user} exactly once
    maildir {user}/{user}             => 1: must contain {user} exactly once
    local_domains a.example;local_domains b_c => 2: bad domain 'b_c' in 'local_domains'
    local_domains                     => 1: missing value for 'local_domains'
    recipient_delimiter ++            => 1: bad recipient_delimiter '++'
    recipient_delimiter a             => 1: bad recipient_delimiter 'a'
    recipient_delimiter @             => 1: bad recipient_delimiter '@'
    recipient_delimiter #             => 1: missing value for 'recipient_delimiter'
    user                              => 1: missing value for 'user'
    user a b                          => 1: 'user' takes one value, not 2
    user a;user b                     => 2: duplicate key 'user' (first set on line 1)
    spool s;group mail                => 2: group needs user
";

#[test]
fn errors_name_their_line() {
    for case in ERRORS.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (text, want) = case.split_once(" => ").expect("case has =>");
        let (line, message) = want.split_once(": ").expect("case has LINE:");
        let e = parse(&text.trim_end().replace(';', "\n")).expect_err(case);
        assert_eq!(e.line.to_string(), line, "{case}: {e}");
        assert!(e.message.contains(message), "{case}: {e}");
        assert_eq!(e.to_string(), format!("t.conf:{line}: {}", e.message));
    }
}

#[test]
fn comments_values_and_repeated_keys() {
    let c = parse("  # whole\nspool a#b # trailing\n\tmaildir x/{user}\t#c\n\n").expect("ok");
    assert_eq!(
        (c.spool, c.maildir),
        (PathBuf::from("a#b"), "x/{user}".into())
    );
    let c = parse("recipient_delimiter none\nhostname Mail.Example").expect("ok");
    assert_eq!(
        (c.recipient_delimiter, c.hostname.as_str()),
        (None, "Mail.Example")
    );
    assert_eq!(c.local_domains, ["mail.example", "localhost"]);
    assert_eq!(
        parse("recipient_delimiter -").map(|c| c.recipient_delimiter),
        Ok(Some('-'))
    );
    let text = "listen [::1]:2526\nlisten 127.0.0.2:25 smtp\n\
                local_domains A.example b.example\nlocal_domains a.example c.example";
    let c = parse(text).expect("ok");
    let addrs: Vec<String> = c.listen.iter().map(|l| l.addr.to_string()).collect();
    assert_eq!(addrs, ["[::1]:2526", "127.0.0.2:25"]);
    assert_eq!(c.local_domains, ["a.example", "b.example", "c.example"]);
}

#[test]
fn relay_networks_and_listener_kinds() {
    let c = parse("relay_networks none").expect("ok");
    assert!(c.relay_networks.is_empty());
    assert!(c.render().contains("\nrelay_networks none\n"));
    let c =
        parse("relay_networks 192.168.0.0/16 2001:db8::/32\nrelay_networks 10.0.0.7").expect("ok");
    let inside = |ip: &str| {
        c.relay_networks
            .iter()
            .any(|n| n.contains(ip.parse().unwrap()))
    };
    assert!(inside("192.168.200.1") && inside("10.0.0.7") && inside("2001:db8::5"));
    assert!(
        inside("::ffff:192.168.1.1"),
        "v4-mapped addresses match v4 networks"
    );
    assert!(!inside("192.169.0.1") && !inside("10.0.0.8") && !inside("127.0.0.1"));
    assert!(!inside("2001:db9::1"));
    let c = parse("").expect("ok");
    let loopback = |ip: &str| {
        c.relay_networks
            .iter()
            .any(|n| n.contains(ip.parse().unwrap()))
    };
    assert!(loopback("127.0.0.1") && loopback("127.9.8.7") && loopback("::1"));
    assert!(!loopback("10.0.0.1") && !loopback("::2"));
    let all = parse("relay_networks 0.0.0.0/0").expect("ok");
    assert!(all.relay_networks[0].contains("8.8.8.8".parse().unwrap()));

    // Plain-text AUTH lets a loopback submission port run without a certificate.
    let c = parse("passwords p\nplaintext_auth_on_loopback yes\nlisten 127.0.0.1:587 submission")
        .expect("ok");
    assert!(c.plaintext_auth_allowed(&c.listen[0]));
    assert_eq!(c.listen[0].kind, ListenKind::Submission);
}

#[test]
fn outbound_settings() {
    let c = parse("relayhost [192.0.2.7]:465\ntls_policy Example.COM encrypt").expect("ok");
    let r = c.outbound.relayhost.as_ref().expect("relayhost");
    assert_eq!((r.addr, r.port), (Some("192.0.2.7".parse().unwrap()), 465));
    assert_eq!(c.outbound.relayhost_policy(), TlsPolicy::Smtps);
    assert_eq!(c.outbound.policy_for("example.com"), TlsPolicy::Encrypt);
    assert_eq!(c.outbound.policy_for("other.example"), TlsPolicy::May);
    let c = parse("relayhost Mail.Example.NET").expect("ok");
    let r = c.outbound.relayhost.as_ref().expect("relayhost");
    assert_eq!(
        (r.host.as_str(), r.addr, r.port),
        ("mail.example.net", None, 25)
    );
    assert_eq!(c.outbound.relayhost_policy(), TlsPolicy::Verify);
    let c = parse("relayhost [::1]:2526\ndns_servers ::1 127.0.0.1").expect("ok");
    assert_eq!(
        c.outbound
            .relayhost
            .as_ref()
            .map(|r| r.to_string())
            .as_deref(),
        Some("[::1]:2526")
    );
    let servers: Vec<String> = c
        .outbound
        .dns_servers
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(servers, ["[::1]:53", "127.0.0.1:53"]);
}

#[test]
fn render_round_trips() {
    let full = "hostname mx.example\nlisten 127.0.0.1:2525 smtp\nlisten [::1]:2587 submission\n\
        listen 0.0.0.0:465 smtps\nuser picomta\ngroup mail\n\
        spool /var/spool/picomta\nmaildir /home/{user}/Maildir\n\
        local_domains example.org example.net\nrecipient_delimiter none\n\
        max_connections 7\nmax_message_size 1000\nmax_recipients 3\nmax_errors 4\n\
        max_queue_messages 5\nmin_free_space 0\ncommand_timeout 61s\ndata_timeout 2h\n\
        retry_min 90s\nretry_max 3d\nsync_method fsync\nrelay_networks 192.168.1.0/24 fd00::/8 10.1.2.3/32\n\
        plaintext_auth_on_loopback yes\nsender_login yes\nrelayhost smtp.example.net:587\n\
        relayhost_tls encrypt\nrelayhost_auth /etc/picomta/relay-auth\n\
        dns_servers 127.0.0.1:5353 [::1]:53\ntls_ca_file /etc/ca.pem\n\
        tls_policy example.com verify\ntls_policy example.edu none\n\
        max_outbound_connections 3\nmax_outbound_per_destination 2\nqueue_lifetime 2d\n\
        outbound_port 2525\noutbound_connect_timeout 5s\noutbound_command_timeout 1m\n\
        outbound_data_timeout 3m\nusers /etc/picomta/users\naliases /etc/aliases\n\
        passwords /etc/picomta/passwords\ntls_cert /etc/ssl/mx.pem\ntls_key /etc/ssl/mx.key\n";
    let rendered = parse(full).expect("ok").render();
    assert_eq!(rendered, format!("# picomta effective settings\n{full}"));
    let default = parse("").expect("ok").render();
    assert_eq!(
        parse(&default).expect("render output parses").render(),
        default
    );
}

#[test]
fn load_reports_unreadable_and_bad_utf8() {
    let e = Config::load(Path::new("/nonexistent/picomta.conf")).expect_err("missing");
    assert_eq!(e.line, 0);
    assert!(e
        .to_string()
        .starts_with("/nonexistent/picomta.conf: cannot read: "));
    let path = std::env::temp_dir().join(format!("picomta-conf-{}", std::process::id()));
    std::fs::write(&path, b"spool a\nspool \xff\n").expect("write temp file");
    let e = Config::load(&path).expect_err("bad utf-8");
    let _ = std::fs::remove_file(&path);
    assert_eq!((e.line, e.message.as_str()), (2, "not valid UTF-8"));
}

#[test]
fn example_config_parses() {
    let text = include_str!("../../conf/picomta.conf");
    let c = Config::parse(Path::new("conf/picomta.conf"), text).expect("example is valid");
    assert_eq!(
        c.listen,
        [Listen {
            addr: SocketAddr::from(([127, 0, 0, 1], 2525)),
            kind: ListenKind::Smtp,
        }]
    );
    assert_eq!(c.local_domains, ["localhost", "example.test"]);
    assert_eq!(
        (c.spool, c.maildir),
        (PathBuf::from("run/spool"), "run/mail/{user}".into())
    );
    assert_eq!(c.users.as_deref(), Some(Path::new("conf/users")));
    assert_eq!(c.aliases.as_deref(), Some(Path::new("conf/aliases")));
    for key in KEYS.iter().chain(outbound::KEYS) {
        assert!(
            text.contains(&format!("\n# {key} ")),
            "{key} is not documented"
        );
    }
}

#[test]
fn user_and_group_resolve_and_errors_name_their_line() {
    let read = |path: &Path| -> std::io::Result<String> {
        match path.to_str() {
            Some("/etc/passwd") => Ok("root:x:0:0::/root:/bin/sh\nmta:x:105:107::/:\n".into()),
            Some("/etc/group") => Ok("root:x:0:\nmail:x:8:\n".into()),
            _ => Err(std::io::ErrorKind::NotFound.into()),
        }
    };
    let resolved = |text: &str| {
        let mut c = parse(text)?;
        c.resolve_accounts(&read).map(|()| c)
    };
    let c = resolved("hostname a.example\nuser mta\n").expect("ok");
    assert_eq!(
        c.run_as,
        Some(RunAs {
            name: "mta".into(),
            uid: 105,
            gid: 107
        })
    );
    let rendered = c.render();
    assert!(
        rendered.contains(
            "\nuser mta # uid 105\n# group (not set: the user's primary group, gid 107)\n"
        ),
        "{rendered}"
    );
    // The ids are comments: check's output still means the same.
    assert_eq!(resolved(&rendered).expect("parses").render(), rendered);
    let c = resolved("user 105\ngroup mail\n").expect("ok");
    assert_eq!(
        c.run_as.as_ref().map(|r| (r.name.as_str(), r.gid)),
        Some(("mta", 8))
    );
    assert!(c
        .render()
        .contains("\nuser 105 # uid 105\ngroup mail # gid 8\n"));
    // Unset, nothing is read and nothing resolved.
    let c = resolved("spool s\n").expect("ok");
    assert_eq!(c.run_as, None);

    for (text, line, message) in [
        (
            "spool s\nuser nobody",
            2,
            "unknown user \"nobody\" (not in /etc/passwd)",
        ),
        (
            "user mta\n#\ngroup staff",
            3,
            "unknown group \"staff\" (not in /etc/group)",
        ),
        (
            "user root",
            1,
            "user root is uid 0: picomta will not handle mail as root",
        ),
        ("user 0\ngroup 8", 1, "will not handle mail as root"),
        ("user mta\ngroup root", 2, "group root is gid 0"),
        ("spool s\nuser 4000", 2, "user 4000 is not in /etc/passwd"),
    ] {
        let e = resolved(text).expect_err(text);
        assert_eq!(e.line, line, "{text}: {e}");
        assert!(e.message.contains(message), "{text}: {e}");
        assert_eq!(e.to_string(), format!("t.conf:{line}: {}", e.message));
    }
}

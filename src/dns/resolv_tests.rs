//! resolv.conf parsing: servers, options, glibc defaults and limits.

use super::*;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn dns_resolv_defaults_when_empty() {
    let conf = ResolvConf::parse("");
    assert_eq!(conf.servers, [addr("127.0.0.1:53")]);
    assert_eq!(conf.timeout, Duration::from_secs(5));
    assert_eq!(conf.attempts, 2);
    assert_eq!(ResolvConf::default(), conf);
}

#[test]
fn dns_resolv_servers_v4_v6_at_most_three() {
    let text = "# generated\n\
                search example.com\n\
                nameserver 192.0.2.1\n\
                ; comment\n\
                nameserver   2001:db8::53   # trailing words ignored\n\
                nameserver fe80::1%2\n\
                nameserver 192.0.2.4\n";
    let conf = ResolvConf::parse(text);
    assert_eq!(
        conf.servers,
        [
            addr("192.0.2.1:53"),
            addr("[2001:db8::53]:53"),
            SocketAddr::V6(SocketAddrV6::new("fe80::1".parse().unwrap(), 53, 0, 2)),
        ]
    );
}

#[test]
fn dns_resolv_bad_servers_skipped() {
    let text = "nameserver\nnameserver example.com\nnameserver 192.0.2.300\n\
                nameserver fe80::1%eth0\nnameserver 192.0.2.1%3\n#nameserver 192.0.2.9\n\
                nameserver 192.0.2.7\n";
    assert_eq!(ResolvConf::parse(text).servers, [addr("192.0.2.7:53")]);
    // Only bad lines: the glibc default.
    let conf = ResolvConf::parse("nameserver nope\n");
    assert_eq!(conf.servers, [addr("127.0.0.1:53")]);
}

#[test]
fn dns_resolv_options_and_clamping() {
    let conf = ResolvConf::parse("options rotate timeout:3 ndots:2 attempts:4 edns0\n");
    assert_eq!(conf.timeout, Duration::from_secs(3));
    assert_eq!(conf.attempts, 4);

    let conf = ResolvConf::parse("options timeout:0 attempts:0\n");
    assert_eq!((conf.timeout, conf.attempts), (Duration::from_secs(1), 1));

    let conf = ResolvConf::parse("options timeout:99 attempts:99999999999999999999999\n");
    assert_eq!((conf.timeout, conf.attempts), (Duration::from_secs(30), 5));

    // Bad values leave the defaults; a later line wins.
    let conf = ResolvConf::parse("options timeout:x attempts:-1 timeout: attempts:3x\n");
    assert_eq!((conf.timeout, conf.attempts), (Duration::from_secs(5), 2));
    let conf = ResolvConf::parse("options timeout:2\noptions timeout:7 attempts:1\n");
    assert_eq!((conf.timeout, conf.attempts), (Duration::from_secs(7), 1));
}

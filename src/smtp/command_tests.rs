//! Table-driven tests of command-line parsing, and a no-panic test over generated input.

use super::*;
use AddressError as AE;
use Command as C;
use CommandError as E;

fn mb(local: &str, domain: &str) -> Mailbox {
    Mailbox {
        local: local.into(),
        domain: domain.into(),
    }
}
fn mail(local: &str, domain: &str, p: MailParams) -> Result<Command, CommandError> {
    Ok(C::Mail(ReversePath::Mailbox(mb(local, domain)), p))
}
fn rcpt(local: &str, domain: &str) -> Result<Command, CommandError> {
    Ok(C::Rcpt(mb(local, domain)))
}
fn addr(sender: bool, error: AddressError) -> Result<Command, CommandError> {
    Err(E::Address { sender, error })
}
fn param(k: &str) -> Result<Command, CommandError> {
    Err(E::Parameter(k.into()))
}
fn mp(size: Option<u64>, body: Option<Body>, smtputf8: bool, auth: Option<&str>) -> MailParams {
    let auth = auth.map(str::to_owned);
    MailParams {
        size,
        body,
        smtputf8,
        auth,
    }
}
fn check(cases: &[(&[u8], Result<Command, CommandError>)]) {
    for (line, want) in cases {
        let what = String::from_utf8_lossy(line);
        assert_eq!(&parse_command(line), want, "{what}");
    }
}

#[test]
fn simple_verbs() {
    let long_ir = format!("AUTH PLAIN {}", "QUJD".repeat(50));
    #[rustfmt::skip]
    let cases: &[(&[u8], Result<Command, CommandError>)] = &[
        (b"EHLO mx.example.org", Ok(C::Ehlo("mx.example.org".into()))),
        (b"ehlo Mx.Example.ORG  ", Ok(C::Ehlo("Mx.Example.ORG".into()))),
        (b"EHLO [127.0.0.1]", Ok(C::Ehlo("[127.0.0.1]".into()))),
        (b"HeLo x\t", Ok(C::Helo("x".into()))),
        (b"DATA", Ok(C::Data)), (b"data  ", Ok(C::Data)),
        (b"RSET", Ok(C::Rset)), (b"QUIT", Ok(C::Quit)), (b"quit", Ok(C::Quit)),
        (b"STARTTLS", Ok(C::StartTls)), (b"StartTLS ", Ok(C::StartTls)),
        (b"NOOP", Ok(C::Noop)), (b"noop anything \xff at all", Ok(C::Noop)),
        (b"HELP", Ok(C::Help)), (b"HELP MAIL", Ok(C::Help)),
        (b"VRFY", Ok(C::Vrfy)), (b"VRFY root", Ok(C::Vrfy)),
        (b"BDAT 0", Ok(C::Bdat(0, false))), (b"bdat 1000 last", Ok(C::Bdat(1000, true))),
        (b"BDAT 18446744073709551615 LAST", Ok(C::Bdat(u64::MAX, true))),
        (b"AUTH plain", Ok(C::Auth("PLAIN".into(), None))),
        (b"AUTH PLAIN AGZvYmFy", Ok(C::Auth("PLAIN".into(), Some("AGZvYmFy".into())))),
        (b"AUTH login =", Ok(C::Auth("LOGIN".into(), Some("=".into())))),
        (b"AUTH SCRAM-SHA-1", Ok(C::Auth("SCRAM-SHA-1".into(), None))),
        // Not base64, but that is for the SASL exchange to answer.
        (b"AUTH PLAIN a.b", Ok(C::Auth("PLAIN".into(), Some("a.b".into())))),
        (long_ir.as_bytes(), Ok(C::Auth("PLAIN".into(), Some("QUJD".repeat(50))))),
        (b"", Err(E::Unknown)), (b"   ", Err(E::Unknown)), (b" DATA", Err(E::Unknown)),
        (b"FOO", Err(E::Unknown)), (b"DATAX", Err(E::Unknown)), (b"STARTTLSX", Err(E::Unknown)),
        (b"MAILFROM:<a@b>", Err(E::Unknown)), (b"D\xffTA", Err(E::Unknown)),
        (b"\xc3", Err(E::Unknown)),
        (b"GET / HTTP/1.1", Err(E::Unknown)), (b"DATA\r", Err(E::Unknown)),
    ];
    check(cases);
}

#[test]
fn syntax_errors() {
    #[rustfmt::skip]
    let cases: &[&[u8]] = &[
        b"EHLO", b"HELO  ", b"EHLO a b", b"EHLO a\x01", b"EHLO \xff", b"DATA x", b"RSET x",
        b"QUIT now", b"STARTTLS x", b"MAIL", b"MAIL TO:<a@b>", b"MAIL FROM <a@b>", b"RCPT",
        b"RCPT FROM:<a@b>", b"RCPT TO <a@b>", b"BDAT", b"BDAT x", b"BDAT -1", b"BDAT +1",
        b"BDAT 18446744073709551616", b"BDAT 10 MORE", b"BDAT 10 LAST x", b"AUTH",
        b"AUTH PL@IN", b"AUTH ABCDEFGHIJKLMNOPQRSTU", b"AUTH PLAIN a b", b"AUTH PLAIN a\xffb",
    ];
    for line in cases {
        let got = parse_command(line);
        let what = String::from_utf8_lossy(line);
        assert!(matches!(got, Err(E::Syntax(_))), "{what}: {got:?}");
    }
    let want = Err(E::Syntax("EHLO requires domain address"));
    assert_eq!(parse_command(b"EHLO"), want);
}

#[test]
fn mail_and_rcpt() {
    let p = MailParams::default;
    let size = |n| mp(Some(n), None, false, None);
    let auth = |a| mp(None, None, false, Some(a));
    let utf8 = mp(None, None, true, None);
    let seven = mp(None, Some(Body::SevenBit), false, None);
    let all = || mp(Some(10), Some(Body::EightBitMime), true, Some("<>"));
    let long = format!("MAIL FROM:<{}@b>", "a".repeat(65));
    #[rustfmt::skip]
    let cases: &[(&[u8], Result<Command, CommandError>)] = &[
        (b"MAIL FROM:<a@b>", mail("a", "b", p())),
        (b"mail from:<A@B>", mail("A", "b", p())),
        (b"MAIL FROM: <a@b>", mail("a", "b", p())),
        (b"MAIL  From:<a@b>  ", mail("a", "b", p())),
        (b"MAIL FROM:<>", Ok(C::Mail(ReversePath::Null, p()))),
        (b"MAIL FROM:<> SIZE=0", Ok(C::Mail(ReversePath::Null, size(0)))),
        (b"MAIL FROM:<@r1,@r2:a@b>", mail("a", "b", p())),
        (b"MAIL FROM:<\"x> y\"@b> SIZE=5", mail("\"x> y\"", "b", size(5))),
        (b"MAIL FROM:<a@b> size=1000", mail("a", "b", size(1000))),
        (b"MAIL FROM:<a@b> BODY=7bit", mail("a", "b", seven)),
        (b"MAIL FROM:<a@b> SIZE=10 BODY=8BITMIME SMTPUTF8 AUTH=<>", mail("a", "b", all())),
        (b"MAIL FROM:<a@b> smtputf8  body=8bitmime auth=+3C+3e size=10", mail("a", "b", all())),
        (b"MAIL FROM:<a@b> AUTH=e+2Bf+3Dg@h", mail("a", "b", auth("e+f=g@h"))),
        (b"MAIL FROM:<a@b> AUTH=j+C3+BCrgen@x", mail("a", "b", auth("jürgen@x"))),
        ("MAIL FROM:<jü@bücher.de> SMTPUTF8".as_bytes(), mail("jü", "bücher.de", utf8)),
        ("MAIL FROM:<jürgen@x>".as_bytes(), addr(true, AE::NeedsSmtputf8)),
        ("MAIL FROM:<jürgen@x> SMTPUTF8=yes".as_bytes(), addr(true, AE::NeedsSmtputf8)),
        (b"MAIL FROM:<j\xfcrgen@x> SMTPUTF8", addr(true, AE::Syntax)),
        (b"MAIL FROM:", addr(true, AE::Syntax)),
        (b"MAIL FROM:a@b", addr(true, AE::Syntax)),
        (b"MAIL FROM:  <a@b>", addr(true, AE::Syntax)),
        (b"MAIL FROM:<a@b", addr(true, AE::Syntax)),
        (b"MAIL FROM:<a@b>x", addr(true, AE::Syntax)),
        (b"MAIL FROM:<a@b>\tSIZE=1", addr(true, AE::Syntax)),
        (b"MAIL FROM:<a b@c>", addr(true, AE::Syntax)),
        (b"MAIL FROM:<\"a\0b\"@c>", addr(true, AE::Syntax)),
        (b"MAIL FROM:<postmaster>", addr(true, AE::Syntax)),
        (long.as_bytes(), addr(true, AE::TooLong)),
        (b"MAIL FROM:<a@b> SIZE=", param("SIZE")),
        (b"MAIL FROM:<a@b> SIZE", param("SIZE")),
        (b"MAIL FROM:<a@b> SIZE=1k", param("SIZE")),
        (b"MAIL FROM:<a@b> SIZE=99999999999999999999", param("SIZE")),
        (b"MAIL FROM:<a@b> SIZE=1 size=2", param("size")),
        (b"MAIL FROM:<a@b> BODY=BINARYMIME", param("BODY")),
        (b"MAIL FROM:<a@b> BODY=7BIT BODY=7BIT", param("BODY")),
        (b"MAIL FROM:<a@b> SMTPUTF8 SMTPUTF8", param("SMTPUTF8")),
        (b"MAIL FROM:<a@b> SMTPUTF8=1", param("SMTPUTF8")),
        (b"MAIL FROM:<a@b> AUTH=", param("AUTH")),
        (b"MAIL FROM:<a@b> AUTH=a=b", param("AUTH")),
        (b"MAIL FROM:<a@b> AUTH=a+4", param("AUTH")),
        (b"MAIL FROM:<a@b> AUTH=a+0Ab", param("AUTH")),
        (b"MAIL FROM:<a@b> AUTH=+FF", param("AUTH")),
        (b"MAIL FROM:<a@b> AUTH=\xc3\xbc", param("AUTH")),
        (b"MAIL FROM:<a@b> RET=HDRS", param("RET")),
        (b"MAIL FROM:<a@b> X\x01\xff=1", param("X??")),
        (b"RCPT TO:<a@b>", rcpt("a", "b")),
        (b"rcpt to: <a@B.EXAMPLE>", rcpt("a", "b.example")),
        (b"RCPT TO:<@r:a@b>", rcpt("a", "b")),
        (b"RCPT TO:<postmaster>", rcpt("postmaster", "")),
        (b"RCPT TO:<Postmaster>", rcpt("postmaster", "")),
        ("RCPT TO:<jürgen@x>".as_bytes(), rcpt("jürgen", "x")),
        (b"RCPT TO:<>", addr(false, AE::Syntax)),
        (b"RCPT TO:<root>", addr(false, AE::Syntax)),
        (b"RCPT TO:<a@b.>", addr(false, AE::Syntax)),
        (b"RCPT TO:<a@\xff>", addr(false, AE::Syntax)),
        (b"RCPT TO:a@b", addr(false, AE::Syntax)),
        (b"RCPT TO:<a@b> NOTIFY=NEVER", param("NOTIFY")),
        (b"RCPT TO:<a@b> ORCPT=rfc822;a@b", param("ORCPT")),
        (b"RCPT TO:<postmaster> FOO", param("FOO")),
    ];
    check(cases);
    let r = parse_command("RCPT TO:<jürgen@x>".as_bytes());
    assert!(matches!(r, Ok(C::Rcpt(m)) if !m.is_ascii()));
}

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn never_panics_on_noise() {
    #[rustfmt::skip]
    const HEADS: &[&[u8]] = &[
        b"MAIL FROM:<", b"RCPT TO:<", b"MAIL FROM:<a@b> ", b"EHLO ", b"BDAT ", b"AUTH ", b"",
    ];
    #[rustfmt::skip]
    const PIECES: &[&[u8]] = &[
        b"<", b">", b"<>", b"@", b"\"", b"\\", b" ", b"  ", b":", b",", b".", b"[", b"]",
        b"IPv6:", b"::1", b"1.2.3.4", b"=", b"+", b"+4", b"+3C", b"SIZE=", b"BODY=", b"AUTH=",
        b"SMTPUTF8", b"LAST", b"postmaster", b"user", b"example.org", b"-", b"\xff", b"\xc3",
        b"\xc3\xbc", "\u{85}".as_bytes(), b"\0", b"\r", b"\t", b"18446744073709551616", b"0",
    ];
    #[rustfmt::skip]
    const SEEDS: &[&[u8]] = &[
        b"MAIL FROM:<@a,@[IPv6:::1]:\"x y\"@b.c> SIZE=10 BODY=8BITMIME SMTPUTF8 AUTH=a+2Bb",
        b"RCPT TO: <user@[127.0.0.1]>", b"BDAT 123 LAST", b"AUTH PLAIN AGZvbwBiYXI=",
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut line, mut ok) = (Vec::new(), 0);
    for round in 0..6000 {
        line.clear();
        match round % 3 {
            0 => line.extend((0..rng.below(80)).map(|_| rng.next() as u8)),
            1 => {
                line.extend_from_slice(SEEDS[rng.below(SEEDS.len())]);
                for _ in 0..=rng.below(3) {
                    let at = rng.below(line.len());
                    match rng.below(3) {
                        0 => line[at] = rng.next() as u8,
                        1 => drop(line.remove(at)),
                        _ => line.insert(at, PIECES[rng.below(PIECES.len())][0]),
                    }
                }
            }
            _ => {
                line.extend_from_slice(HEADS[rng.below(HEADS.len())]);
                for _ in 0..rng.below(12) {
                    line.extend_from_slice(PIECES[rng.below(PIECES.len())]);
                }
            }
        }
        match parse_command(&line) {
            Err(E::Parameter(k)) => {
                assert!(k.len() <= 64 && k.bytes().all(|b| b.is_ascii_graphic()))
            }
            Ok(C::Mail(ReversePath::Mailbox(m), _)) => assert!(!m.domain.is_empty()),
            Ok(_) => ok += 1,
            _ => {}
        }
        let text = String::from_utf8_lossy(&line);
        let _ = parse_path(&text, round % 2 == 0, round % 5 == 0);
    }
    // The generator must reach past the verb, not only produce 500s.
    assert!(ok > 200, "only {ok} lines parsed");
    // Linear time: a quadratic scan would take minutes on these.
    for fill in [&b"<"[..], b"\"", b"@a,", b" x", b"+", b" SIZE=1", b"a."] {
        for head in [
            &b"MAIL FROM:<"[..],
            b"MAIL FROM:<a@b>",
            b"RCPT TO:<\"",
            b"AUTH ",
        ] {
            let line = [head, &fill.repeat(200_000)].concat();
            assert!(parse_command(&line).is_err());
        }
    }
}

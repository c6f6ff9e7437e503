//! DATA and BDAT framing tests: smuggling variants, unstuffing, every split point.

use super::*;

/// Feeds `pieces` one after another; returns output, total consumed, done, bare.
fn run(pieces: &[&[u8]]) -> (Vec<u8>, usize, bool, bool) {
    let mut d = DataDecoder::default();
    let mut out = Vec::new();
    let mut consumed = 0;
    for p in pieces {
        let fed = d.feed(p, &mut out);
        consumed += fed.consumed;
        if fed.done {
            return (out, consumed, true, d.bare_line_ending());
        }
        assert_eq!(fed.consumed, p.len());
    }
    (out, consumed, false, d.bare_line_ending())
}

#[test]
fn decode_table() {
    // (input, decoded message, bytes left for the next command, bare seen)
    type Case = (&'static [u8], &'static [u8], &'static [u8], bool);
    let cases: &[Case] = &[
        (
            b"Subj: x\r\n\r\nhi\r\n.\r\nQUIT\r\n",
            b"Subj: x\n\nhi\n",
            b"QUIT\r\n",
            false,
        ),
        (b".\r\nRSET\r\n", b"", b"RSET\r\n", false),
        (b"\r\n\r\n\r\n.\r\n", b"\n\n\n", b"", false),
        (b"..x\r\n.\r\n", b".x\n", b"", false),
        (b"...\r\n..\r\n.\r\n", b"..\n.\n", b"", false),
        (
            b"a.b\r\n.x\r\n. \r\nx..\r\n.\r\n",
            b"a.b\nx\n \nx..\n",
            b"",
            false,
        ),
        // Bare CR/LF first or right after a CRLF: content, never a line start.
        (b"\n.\r\n\r.\r\n.\r\n", b"\n.\n\r.\n", b"", true),
        (b"a\r\n\r\r\n.\r\n.\r\n", b"a\n\r\n", b".\r\n", true),
    ];
    for (input, want, left, want_bare) in cases {
        let (out, consumed, done, bare) = run(&[input]);
        assert!(done, "{input:?}");
        assert_eq!(
            (&out[..], &input[consumed..], bare),
            (*want, *left, *want_bare)
        );
    }
}

#[test]
fn after_done_nothing_is_consumed() {
    let mut d = DataDecoder::default();
    let mut out = Vec::new();
    assert!(d.feed(b".\r\n", &mut out).done);
    let again = d.feed(b"more", &mut out);
    assert!(again.done && again.consumed == 0);
    assert!(out.is_empty());
}

#[test]
fn smuggling_variants_never_end_data() {
    // (variant, its decoded form) between "a" and a later real end.
    let cases: &[(&[u8], &[u8])] = &[
        (b"\n.\n", b"\n.\n"),
        (b"\r.\r", b"\r.\r"),
        (b"\n.\r\n", b"\n.\n"),
        (b"\r\n.\n", b"\n\n"),
        (b"\r\n.\r", b"\n\r"),
        (b"\r.\r\n", b"\r.\n"),
        (b"\n.\r", b"\n.\r"),
    ];
    for (variant, decoded) in cases {
        let input = [b"a", *variant, b"MAIL FROM:<evil@x>\r\nb\r\n.\r\nNEXT"].concat();
        let want = [b"a", *decoded, b"MAIL FROM:<evil@x>\nb\n"].concat();
        // Cut right after the variant: not the end, yet already flagged.
        let cut = 1 + variant.len() + 1;
        let (_, consumed, done, bare) = run(&[&input[..cut]]);
        assert!(!done && bare && consumed == cut, "{variant:?}");
        let (out, consumed, done, bare) = run(&[&input]);
        assert!(done && bare, "{variant:?}");
        assert_eq!(out, want, "{variant:?}");
        assert_eq!(&input[consumed..], b"NEXT", "{variant:?}");
    }
}

/// A message exercising every state, with the next command after the end.
const SAMPLE: &[u8] = b"From: a\r\n..stuffed\r\n.\r.\n\r\nx\ry\nz\r\r\n...\r\n\r\n.\r\nEHLO x\r\n";

#[test]
fn every_split_in_two_and_three_matches_one_shot() {
    let whole = run(&[SAMPLE]);
    assert!(whole.2);
    assert_eq!(&SAMPLE[whole.1..], b"EHLO x\r\n");
    for i in 0..=SAMPLE.len() {
        let (a, rest) = SAMPLE.split_at(i);
        assert_eq!(run(&[a, rest]), whole, "split at {i}");
        for j in 0..=rest.len() {
            let (b, c) = rest.split_at(j);
            assert_eq!(run(&[a, b, c]), whole, "split at {i}, {}", i + j);
        }
    }
}

#[test]
fn bytewise_feed_matches_one_shot() {
    let whole = run(&[SAMPLE]);
    let pieces: Vec<&[u8]> = SAMPLE.chunks(1).collect();
    assert_eq!(run(&pieces), whole);
}

#[test]
fn long_runs_cross_the_word_scan() {
    let line = b"0123456789abcdefghijklmnopqrstuvwxyz".repeat(7);
    let mut input: Vec<u8> = (0..20)
        .flat_map(|k| [&line[k..], b"\r\n"].concat())
        .collect();
    input.extend_from_slice(b".\r\n");
    let want: Vec<u8> = (0..20).flat_map(|k| [&line[k..], b"\n"].concat()).collect();
    assert_eq!(run(&[&input]), (want, input.len(), true, false));
}

/// The RFC read literally, on a whole input: the end is the first `\r\n.\r\n`
/// counting the CRLF before the data; lines are split only at CRLF pairs.
fn reference(input: &[u8]) -> Option<(Vec<u8>, usize, bool)> {
    let mut all = b"\r\n".to_vec();
    all.extend_from_slice(input);
    let pos = all.windows(5).position(|w| w == b"\r\n.\r\n")?;
    let body = &all[2..pos + 2];
    let mut out = Vec::new();
    let mut bare = false;
    let mut lines: Vec<&[u8]> = Vec::new();
    let mut rest = body;
    while let Some(p) = rest.windows(2).position(|w| w == b"\r\n") {
        lines.push(&rest[..p]);
        rest = &rest[p + 2..];
    }
    assert!(rest.is_empty());
    for line in lines {
        let line = if line.len() > 1 && line[0] == b'.' {
            &line[1..]
        } else {
            line
        };
        bare |= line.iter().any(|&b| b == b'\r' || b == b'\n');
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    Some((out, pos + 3, bare))
}

#[test]
fn exhaustive_short_inputs_match_reference() {
    const ALPHABET: [u8; 4] = [b'\r', b'\n', b'.', b'a'];
    for len in 0..=7u32 {
        for n in 0..4usize.pow(len) {
            let mut input: Vec<u8> = (0..len).map(|k| ALPHABET[n / 4usize.pow(k) % 4]).collect();
            input.extend_from_slice(b"\r\n.\r\nZ");
            let want = reference(&input);
            let Some((out, consumed, bare)) = want else {
                panic!("reference found no end in {input:?}");
            };
            let half = input.len() / 2;
            let got = run(&[&input[..half], &input[half..]]);
            assert_eq!(got, (out, consumed, true, bare), "{input:?}");
        }
    }
}

#[test]
fn find_cr_or_lf_matches_naive() {
    let mut buf = vec![b'a'; 40];
    assert_eq!(find_cr_or_lf(&buf), None);
    assert_eq!(find_cr_or_lf(&[]), None);
    for pos in 0..buf.len() {
        for special in [b'\r', b'\n'] {
            buf[pos] = special;
            assert_eq!(find_cr_or_lf(&buf), Some(pos));
            for start in 0..=pos {
                assert_eq!(find_cr_or_lf(&buf[start..]), Some(pos - start));
            }
            buf[pos] = b'a';
        }
    }
    // Bytes that differ from CR/LF by one bit or by borrow must not match.
    let tricky: Vec<u8> = (0u8..=255).filter(|&b| b != b'\r' && b != b'\n').collect();
    assert_eq!(find_cr_or_lf(&tricky), None);
}

fn bdat(pieces: &[&[u8]]) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut pending = false;
    let mut bare = false;
    for p in pieces {
        bare |= bdat_normalize(p, &mut pending, &mut out);
    }
    bare |= bdat_finish(&mut pending, &mut out);
    (out, bare)
}

#[test]
fn bdat_cases() {
    let cases: &[(&[u8], &[u8], bool)] = &[
        (b"", b"", false),
        (b"a\r\nb\r\n", b"a\nb\n", false),
        (b".\r\n..x\r\n", b".\n..x\n", false),
        (b"a\nb", b"a\nb", true),
        (b"a\rb", b"a\rb", true),
        (b"a\r", b"a\r", true),
        (b"\r\r\n", b"\r\n", true),
        (b"\r\n.\r\n", b"\n.\n", false),
    ];
    for (input, want, want_bare) in cases {
        assert_eq!(bdat(&[input]), (want.to_vec(), *want_bare), "{input:?}");
    }
}

#[test]
fn bdat_every_split_matches_one_shot() {
    for sample in [
        &b"a\r\nb\rc\nd\r\r\n\r\n.\r\n"[..],
        b"line one\r\nline two\r\n",
        b"x\r",
    ] {
        let whole = bdat(&[sample]);
        for i in 0..=sample.len() {
            let (a, rest) = sample.split_at(i);
            assert_eq!(bdat(&[a, rest]), whole, "{sample:?} at {i}");
            for j in 0..=rest.len() {
                let (b, c) = rest.split_at(j);
                assert_eq!(bdat(&[a, b, c]), whole, "{sample:?} at {i},{j}");
            }
        }
        let pieces: Vec<&[u8]> = sample.chunks(1).collect();
        assert_eq!(bdat(&pieces), whole);
    }
}

#[test]
fn bdat_pending_cr_across_chunks() {
    let mut out = Vec::new();
    let mut pending = false;
    assert!(!bdat_normalize(b"a\r", &mut pending, &mut out));
    assert!(pending);
    assert!(!bdat_normalize(b"", &mut pending, &mut out));
    assert!(pending);
    assert!(!bdat_normalize(b"\nb", &mut pending, &mut out));
    assert!(!pending);
    assert_eq!(out, b"a\nb");
    assert!(!bdat_finish(&mut pending, &mut out));
}

/// Encodes `pieces` one after another, then the end.
fn encode(pieces: &[&[u8]]) -> Vec<u8> {
    let mut e = DataEncoder::default();
    let mut out = Vec::new();
    for p in pieces {
        let before = out.len();
        e.encode(p, &mut out);
        assert!(out.len() - before <= 2 * p.len(), "at most twice the input");
    }
    e.finish(&mut out);
    out
}

#[test]
fn encode_table() {
    let cases: &[(&[u8], &[u8])] = &[
        (b"", b".\r\n"),
        (b"\n", b"\r\n.\r\n"),
        (b"a", b"a\r\n.\r\n"),
        (b"a\n", b"a\r\n.\r\n"),
        (b".", b"..\r\n.\r\n"),
        (b".\n", b"..\r\n.\r\n"),
        (b"..\n.x\n", b"...\r\n..x\r\n.\r\n"),
        (b"a.b\n x.\n", b"a.b\r\n x.\r\n.\r\n"),
        (
            b"Subject: x\n\nbody\n.\nend",
            b"Subject: x\r\n\r\nbody\r\n..\r\nend\r\n.\r\n",
        ),
        // A CR is kept as it is; only LF makes a line end.
        (b"a\rb\n", b"a\rb\r\n.\r\n"),
        (b"a\r\n.\n", b"a\r\r\n..\r\n.\r\n"),
        (b"\r.\r\n", b"\r.\r\r\n.\r\n"),
        (b"\n\n.\n\n", b"\r\n\r\n..\r\n\r\n.\r\n"),
    ];
    for (input, want) in cases {
        assert_eq!(encode(&[input]), *want, "{input:?}");
    }
}

#[test]
fn encoding_is_the_same_at_every_split() {
    let bodies: &[&[u8]] = &[
        b"",
        b".",
        b"..\n.\n\n.x\n",
        b"From: a\nSubject: dots\n\n.leading\nmid.dle\n..two\n.\nno end",
        b"x\r\n.\r.\n\r\n.",
    ];
    for body in bodies {
        let whole = encode(&[body]);
        for i in 0..=body.len() {
            assert_eq!(encode(&[&body[..i], &body[i..]]), whole, "{body:?} at {i}");
            for j in i..=body.len() {
                assert_eq!(
                    encode(&[&body[..i], &body[i..j], &body[j..]]),
                    whole,
                    "{body:?} at {i},{j}"
                );
            }
        }
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(encode(&bytes), whole);
    }
}

#[test]
fn encoded_body_decodes_to_itself() {
    // The inbound decoder reads back exactly what the encoder wrote (CR-free bodies).
    let body: &[u8] = b"a\n.\n..\n. x\n\n.\n";
    let wire = encode(&[body]);
    let mut d = DataDecoder::default();
    let mut out = Vec::new();
    let fed = d.feed(&wire, &mut out);
    assert!(fed.done && fed.consumed == wire.len());
    assert_eq!(out, body);
    assert!(!d.bare_line_ending());
}

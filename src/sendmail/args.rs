//! The `sendmail` command line, as scripts and mail programs write it: the
//! flags of the traditional sendmail that Postfix also takes, parsed by hand
//! because they do not fit a getopt table (`-oi`, `-odq`, `-bs`, `-fADDR` or
//! `-f ADDR`, clustered `-ti`). Options may come after recipients, as with
//! GNU getopt; `--` ends them. Pure: argv in, [`Args`] or a usage error out.

use std::path::PathBuf;

/// What the command was asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `-bm` (the default): read a message on stdin and queue it.
    Message,
    /// `-bs`: an SMTP session on stdin and stdout.
    Smtp,
    /// `-bp`, or invoked as `mailq`: list the queue.
    ListQueue,
    /// `-q`: ask the daemon to retry deferred mail now.
    Flush,
    /// `-bi`, or invoked as `newaliases`: nothing to build (aliases are read
    /// at start and on SIGHUP).
    Aliases,
}

/// `-odb`, `-odi`, `-odq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryMode {
    /// Queue the message and tell the daemon at once (`-odb`, `-odi`, the
    /// default).
    Now,
    /// `-odq`: queue only; the daemon takes it at its next scan of the queue.
    Queue,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub mode: Mode,
    /// `-t`: recipients also come from the To, Cc and Bcc headers.
    pub extract_recipients: bool,
    /// `-i`, `-oi`: a line with a lone `.` does not end the message.
    pub ignore_dots: bool,
    /// `-f ADDR`, `-r ADDR`: the envelope sender (`""` or `<>` for the null
    /// sender).
    pub sender: Option<String>,
    /// `-F NAME`: the full name for an added From header.
    pub full_name: Option<String>,
    pub delivery: DeliveryMode,
    /// `-v`: say on stderr what was done.
    pub verbose: bool,
    /// `-C FILE` or `-c FILE`: the config file.
    pub config: Option<PathBuf>,
    /// Recipients given as arguments, as written.
    pub recipients: Vec<String>,
    /// Options accepted for compatibility but without effect, for warnings.
    pub ignored: Vec<String>,
}

impl Default for Args {
    fn default() -> Args {
        Args {
            mode: Mode::Message,
            extract_recipients: false,
            ignore_dots: false,
            sender: None,
            full_name: None,
            delivery: DeliveryMode::Now,
            verbose: false,
            config: None,
            recipients: Vec::new(),
            ignored: Vec::new(),
        }
    }
}

/// Options that take a value and are accepted but have no effect here (the
/// DSN options, the log file, the queue label, hop count, body type, ...).
const IGNORED_WITH_VALUE: &[char] = &['N', 'R', 'V', 'X', 'L', 'h', 'B', 'p', 'O'];
/// Flags without a value that have no effect here.
const IGNORED_FLAGS: &[char] = &['m', 'n', 'U', 'G', 'e'];

/// Parses the arguments after the program name.
pub fn parse<S: AsRef<str>>(argv: &[S]) -> Result<Args, String> {
    let mut args = Args::default();
    let mut words = argv.iter().map(AsRef::as_ref);
    let mut only_recipients = false;
    while let Some(word) = words.next() {
        if only_recipients || !word.starts_with('-') || word == "-" {
            args.recipients.push(word.to_string());
            continue;
        }
        if word == "--" {
            only_recipients = true;
            continue;
        }
        for (at, flag) in word[1..].char_indices() {
            let attached = &word[1 + at + flag.len_utf8()..];
            // The value of an option: the rest of this word, or the next word.
            let mut value = |name: char| -> Result<String, String> {
                if !attached.is_empty() {
                    return Ok(attached.to_string());
                }
                words
                    .next()
                    .map(str::to_string)
                    .ok_or_else(|| format!("option -{name} needs a value"))
            };
            match flag {
                't' => args.extract_recipients = true,
                'i' => args.ignore_dots = true,
                'v' => args.verbose = true,
                'f' | 'r' => {
                    args.sender = Some(value(flag)?);
                    break;
                }
                'F' => {
                    args.full_name = Some(value(flag)?);
                    break;
                }
                'C' | 'c' => {
                    args.config = Some(PathBuf::from(value(flag)?));
                    break;
                }
                'b' => {
                    args.mode = match value(flag)?.as_str() {
                        "m" => Mode::Message,
                        "s" => Mode::Smtp,
                        "p" => Mode::ListQueue,
                        "i" => Mode::Aliases,
                        "d" | "D" => {
                            return Err("-bd: run the daemon with `picomta serve`".to_string())
                        }
                        other => return Err(format!("-b{other} is not supported")),
                    };
                    break;
                }
                'o' => {
                    match value(flag)?.as_str() {
                        "i" => args.ignore_dots = true,
                        "db" | "di" | "d" => args.delivery = DeliveryMode::Now,
                        "dq" => args.delivery = DeliveryMode::Queue,
                        other => args.ignored.push(format!("-o{other}")),
                    }
                    break;
                }
                'q' => {
                    // `-q` flushes; `-q30m` (a daemon's interval) and
                    // `-qR…`/`-qS…` (a site) still flush everything.
                    if !attached.is_empty() {
                        args.ignored
                            .push(format!("-q{attached} (flushing everything)"));
                    }
                    args.mode = Mode::Flush;
                    break;
                }
                _ if IGNORED_WITH_VALUE.contains(&flag) => {
                    let v = value(flag)?;
                    args.ignored.push(format!("-{flag} {v}"));
                    break;
                }
                _ if IGNORED_FLAGS.contains(&flag) => args.ignored.push(format!("-{flag}")),
                _ => return Err(format!("unknown option -{flag}")),
            }
        }
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(argv: &[&str]) -> Args {
        parse(argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"))
    }

    #[test]
    fn defaults_read_a_message_for_the_recipients_given() {
        let a = ok(&["alice@example.test", "bob"]);
        assert_eq!(a.mode, Mode::Message);
        assert_eq!(a.recipients, ["alice@example.test", "bob"]);
        assert!(!a.extract_recipients && !a.ignore_dots && !a.verbose);
        assert_eq!(a.delivery, DeliveryMode::Now);
    }

    #[test]
    fn the_flags_scripts_use() {
        let a = ok(&["-t", "-oi", "-f", "cron@host.test", "-FCron Daemon"]);
        assert!(a.extract_recipients && a.ignore_dots);
        assert_eq!(a.sender.as_deref(), Some("cron@host.test"));
        assert_eq!(a.full_name.as_deref(), Some("Cron Daemon"));
        let a = ok(&["-ti", "-fme@x.test", "-F", "Me", "-v", "--", "-odd@x.test"]);
        assert!(a.extract_recipients && a.ignore_dots && a.verbose);
        assert_eq!(a.sender.as_deref(), Some("me@x.test"));
        assert_eq!(a.recipients, ["-odd@x.test"]);
        assert!(ok(&["-i"]).ignore_dots);
        assert_eq!(ok(&["-r", "<>"]).sender.as_deref(), Some("<>"));
        assert_eq!(ok(&["-f", ""]).sender.as_deref(), Some(""));
    }

    #[test]
    fn modes_and_delivery_modes() {
        assert_eq!(ok(&["-bs"]).mode, Mode::Smtp);
        assert_eq!(ok(&["-b", "p"]).mode, Mode::ListQueue);
        assert_eq!(ok(&["-bm", "x"]).mode, Mode::Message);
        assert_eq!(ok(&["-bi"]).mode, Mode::Aliases);
        assert_eq!(ok(&["-q"]).mode, Mode::Flush);
        let a = ok(&["-q30m"]);
        assert_eq!(a.mode, Mode::Flush);
        assert_eq!(a.ignored.len(), 1);
        assert_eq!(ok(&["-odq", "x"]).delivery, DeliveryMode::Queue);
        assert_eq!(ok(&["-odq", "-odi"]).delivery, DeliveryMode::Now);
        assert_eq!(ok(&["-odb"]).delivery, DeliveryMode::Now);
        assert!(parse(&["-bd"]).unwrap_err().contains("picomta serve"));
        assert!(parse(&["-bx"]).is_err());
    }

    #[test]
    fn options_after_recipients_and_the_config() {
        let a = ok(&["root", "-oi", "-C", "/etc/p.conf"]);
        assert_eq!(a.recipients, ["root"]);
        assert!(a.ignore_dots);
        assert_eq!(a.config, Some(PathBuf::from("/etc/p.conf")));
        assert_eq!(ok(&["-c/x.conf"]).config, Some(PathBuf::from("/x.conf")));
    }

    #[test]
    fn unknown_o_options_and_compatibility_options_are_ignored() {
        let a = ok(&[
            "-oem",
            "-oQ/var/spool",
            "-N",
            "never",
            "-U",
            "-m",
            "-Bsomething",
            "x",
        ]);
        assert_eq!(a.recipients, ["x"]);
        assert_eq!(
            a.ignored,
            [
                "-oem",
                "-oQ/var/spool",
                "-N never",
                "-U",
                "-m",
                "-B something"
            ]
        );
    }

    #[test]
    fn usage_errors() {
        assert!(parse(&["-f"]).unwrap_err().contains("-f needs a value"));
        assert!(parse(&["-Z"]).unwrap_err().contains("unknown option -Z"));
        assert!(parse(&["-tZ"]).is_err());
        // Never panics on odd bytes.
        for argv in [&["-\u{e9}"][..], &["-o"], &["-b"], &["-"], &["--", "--"]] {
            let _ = parse(argv);
        }
    }
}

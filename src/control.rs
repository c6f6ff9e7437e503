//! The daemon's control socket: a Unix datagram socket in the spool
//! directory, through which `picomta flush` asks the running daemon to retry
//! deferred mail now, and `sendmail` says it dropped a message. Datagrams
//! are one word each; anything else is logged and ignored. The socket is
//! writable by every local user (reaching it takes search permission on the
//! spool directory): both requests are harmless, and Postfix lets anyone
//! flush too.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram as StdDatagram;
use std::path::{Path, PathBuf};

use mio::net::UnixDatagram;

/// The socket's name inside the spool directory.
const NAME: &str = "control";

/// A request to the daemon.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// Retry every deferred message now.
    Flush,
    /// A message waits in the drop directory.
    Pickup,
}

impl Request {
    fn word(&self) -> &'static [u8] {
        match self {
            Request::Flush => b"flush",
            Request::Pickup => b"pickup",
        }
    }

    pub fn parse(datagram: &[u8]) -> Option<Request> {
        match datagram.strip_suffix(b"\n").unwrap_or(datagram) {
            b"flush" => Some(Request::Flush),
            b"pickup" => Some(Request::Pickup),
            _ => None,
        }
    }
}

pub fn path(spool: &Path) -> PathBuf {
    spool.join(NAME)
}

/// Binds the daemon's end, replacing a socket file a previous run left.
pub fn bind(spool: &Path) -> io::Result<UnixDatagram> {
    let path = path(spool);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let socket = UnixDatagram::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))?;
    Ok(socket)
}

/// Sends `request` to the daemon serving `spool`. A daemon that is not
/// running shows as NotFound (no socket) or ConnectionRefused (a stale one).
pub fn send(spool: &Path, request: &Request) -> io::Result<()> {
    let socket = StdDatagram::unbound()?;
    socket.send_to(request.word(), path(spool))?;
    Ok(())
}

/// `picomta flush` and `sendmail -q`: asks the daemon serving `config`'s
/// spool to retry now; exit 69 (EX_UNAVAILABLE) if none answers.
pub fn flush_command(config: &crate::config::Config) -> std::process::ExitCode {
    match send(&config.spool, &Request::Flush) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "picomta: cannot reach the daemon at {}: {e} (is picomta serve running?)",
                path(&config.spool).display()
            );
            std::process::ExitCode::from(69)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_junk_is_refused() {
        assert_eq!(Request::parse(Request::Flush.word()), Some(Request::Flush));
        assert_eq!(Request::parse(b"flush\n"), Some(Request::Flush));
        assert_eq!(
            Request::parse(Request::Pickup.word()),
            Some(Request::Pickup)
        );
        assert_eq!(Request::parse(b"flush now"), None);
        assert_eq!(Request::parse(b""), None);
    }

    #[test]
    fn a_request_reaches_the_bound_socket() {
        let dir = std::env::temp_dir().join(format!("picomta-control-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let daemon = bind(&dir).unwrap();
        // Binding again replaces the stale socket file.
        drop(daemon);
        let daemon = bind(&dir).unwrap();
        send(&dir, &Request::Flush).unwrap();
        let mut buf = [0u8; 64];
        let n = daemon.recv(&mut buf).unwrap();
        assert_eq!(Request::parse(&buf[..n]), Some(Request::Flush));
        drop(daemon);
        let e = send(&dir, &Request::Flush).unwrap_err();
        assert!(
            matches!(
                e.kind(),
                io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound
            ),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! Listening sockets made by hand: IPv6 sockets are v6-only (so `0.0.0.0:25`
//! and `[::]:25` can both be listened on), SO_REUSEADDR is set (restarts do not
//! wait for TIME_WAIT), and the backlog is large (a burst of clients is queued
//! by the kernel rather than dropped).

use std::io;
use std::net::SocketAddr;
use std::os::fd::FromRawFd;

use mio::net::TcpListener;

const BACKLOG: libc::c_int = 1024;

pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let family = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    // SAFETY: plain socket syscalls on a descriptor we own; every return value
    // is checked, and the descriptor is handed to std (which closes it) at
    // once, before any early return can leak it.
    let fd = unsafe {
        libc::socket(
            family,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
    let on: libc::c_int = 1;
    set_option(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, on)?;
    if family == libc::AF_INET6 {
        set_option(fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, on)?;
    }
    let (storage, len) = sockaddr(addr);
    if unsafe { libc::bind(fd, &storage as *const _ as *const libc::sockaddr, len) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if unsafe { libc::listen(fd, BACKLOG) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(TcpListener::from_std(listener))
}

fn set_option(
    fd: libc::c_int,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: value is a live c_int and its size is passed alongside.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &value as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data; all-zero is a valid value, and it
    // is large and aligned enough for both address families written below.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from(*a.ip()).to_be();
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            sin6.sin6_scope_id = a.scope_id();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

//! The server's side of remote delivery: carries out the remote driver's
//! actions (a DNS packet over UDP from a fresh socket, a DNS query over TCP,
//! an outbound SMTP connection), drives those sockets when they are ready and
//! when their timers fire, and hands their results back. A child of `serve`,
//! so it works on the server's own state.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use mio::net::{TcpStream, UdpSocket};
use mio::{Interest, Token};

use super::{Owner, Server};
use crate::deliver::remote::Action;
use crate::dns::client::{QueryId, Transmit};
use crate::dns::message::tcp_message;
use crate::net::conn::Conn;
use crate::outbound::{OutNext, Outbound};

/// Largest DNS message read over TCP (the 2-byte length allows 64 KiB).
const DNS_TCP_MAX: usize = 65_537;

/// A DNS query over TCP: the framed query to write, the answer read so far.
pub(super) struct DnsTcp {
    stream: TcpStream,
    query: QueryId,
    out: Vec<u8>,
    sent: usize,
    input: Vec<u8>,
}

impl Server {
    /// One turn of remote delivery: new remote recipients, DNS progress, the
    /// actions that follow, and outcomes back to their messages.
    pub(super) fn remote_turn(&mut self) {
        let now = Instant::now();
        for request in self.delivery.take_remote_requests() {
            self.remote.submit(&self.config, request, now);
        }
        self.remote.poll(&self.config, now);
        self.run_actions();
        for delivered in self.remote.take_delivered() {
            self.delivery.remote_done(delivered);
        }
        // Sockets of queries that ended (answered elsewhere, or timed out).
        let remote = &self.remote;
        let (done, live): (Vec<_>, Vec<_>) = std::mem::take(&mut self.dns_sockets)
            .into_iter()
            .partition(|&(_, q)| !remote.query_pending(q));
        self.dns_sockets = live;
        for (token, query) in done {
            // The socket may be closed already and its slot reused since.
            let same = match self.owners.get_mut(token) {
                Some(Owner::DnsUdp(_, q)) => *q == query,
                Some(Owner::DnsTcp(tcp)) => tcp.query == query,
                _ => false,
            };
            if same {
                self.owners.remove(token);
            }
        }
    }

    /// Carries out what the remote driver asked for; failures to even open a
    /// socket go straight back to it (which may ask for more).
    fn run_actions(&mut self) {
        for _ in 0..1000 {
            let actions = self.remote.take_actions();
            if actions.is_empty() {
                return;
            }
            for action in actions {
                match action {
                    Action::Dns(Transmit::Udp {
                        query,
                        server,
                        packet,
                    }) => {
                        if let Err(e) = self.dns_udp(query, server, &packet) {
                            log::warn!("DNS query to {server}: {e}");
                        }
                    }
                    Action::Dns(Transmit::Tcp {
                        query,
                        server,
                        packet,
                    }) => {
                        if let Err(e) = self.dns_tcp(query, server, packet) {
                            log::warn!("DNS query over TCP to {server}: {e}");
                            self.remote.tcp_failed(query);
                        }
                    }
                    Action::Connect(connect) => {
                        let attempt = connect.attempt;
                        if let Err(e) = self.connect(connect) {
                            self.remote
                                .attempt_done(&self.config, attempt, Err(e.to_string()));
                        }
                    }
                }
            }
        }
    }

    /// Sends one query datagram from a new socket: the kernel picks a random
    /// source port for each (RFC 5452).
    fn dns_udp(&mut self, query: QueryId, server: SocketAddr, packet: &[u8]) -> io::Result<()> {
        let any = match server.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        let socket = UdpSocket::bind(SocketAddr::new(any, 0))?;
        socket.send_to(packet, server)?;
        let token = self.owners.insert_with(|_, _| Owner::DnsUdp(socket, query));
        if let Some(Owner::DnsUdp(socket, _)) = self.owners.get_mut(token) {
            self.reactor
                .registry()
                .register(socket, token, Interest::READABLE)?;
        }
        self.dns_sockets.push((token, query));
        Ok(())
    }

    fn dns_tcp(&mut self, query: QueryId, server: SocketAddr, packet: Vec<u8>) -> io::Result<()> {
        let stream = TcpStream::connect(server)?;
        let tcp = DnsTcp {
            stream,
            query,
            out: packet,
            sent: 0,
            input: Vec::new(),
        };
        let token = self.owners.insert_with(|_, _| Owner::DnsTcp(Box::new(tcp)));
        if let Some(Owner::DnsTcp(tcp)) = self.owners.get_mut(token) {
            self.reactor.registry().register(
                &mut tcp.stream,
                token,
                Interest::READABLE | Interest::WRITABLE,
            )?;
        }
        self.dns_sockets.push((token, query));
        Ok(())
    }

    fn connect(&mut self, connect: Box<crate::deliver::remote::Connect>) -> io::Result<()> {
        let addr = connect.addr;
        let stream = TcpStream::connect(addr)?;
        let mut conn = Conn::new(stream, addr);
        // Not writable until the connection is made.
        conn.readable = false;
        conn.writable = false;
        let timeout = self.config.outbound.connect_timeout;
        let token = self.owners.insert_with(|_, generation| {
            Owner::Outbound(Box::new(Outbound::new(conn, connect, timeout, generation)))
        });
        let Some(Owner::Outbound(out)) = self.owners.get_mut(token) else {
            return Ok(());
        };
        let registered = self.reactor.registry().register(
            &mut out.conn.stream,
            token,
            Interest::READABLE | Interest::WRITABLE,
        );
        if let Err(e) = registered {
            self.owners.remove(token);
            return Err(e);
        }
        self.reactor.add_timer(out.deadline, token, out.generation);
        Ok(())
    }

    /// Reads the answers waiting on a query's UDP socket.
    pub(super) fn dns_udp_ready(&mut self, token: Token) {
        let mut buf = [0u8; 4096];
        loop {
            let Some(Owner::DnsUdp(socket, query)) = self.owners.get_mut(token) else {
                return;
            };
            let query = *query;
            match socket.recv_from(&mut buf) {
                Ok((n, from)) => {
                    if self.remote.udp_response(query, from, &buf[..n]) {
                        self.owners.remove(token);
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // An ICMP error (port unreachable) shows here: the query's
                // timer moves it on.
                Err(_) => return,
            }
        }
    }

    /// Moves a TCP query on: connect, write the query, read the answer.
    pub(super) fn dns_tcp_ready(&mut self, token: Token) {
        let Some(Owner::DnsTcp(tcp)) = self.owners.get_mut(token) else {
            return;
        };
        let query = tcp.query;
        match tcp.advance() {
            Ok(None) => {}
            Ok(Some(message)) => {
                self.owners.remove(token);
                self.remote.tcp_response(query, &message);
            }
            Err(e) => {
                log::info!("DNS over TCP: {e}");
                self.owners.remove(token);
                self.remote.tcp_failed(query);
            }
        }
    }

    /// Drives an outbound connection; reports it to the remote driver when it
    /// is over.
    pub(super) fn drive_outbound(&mut self, token: Token) {
        let Some(Owner::Outbound(out)) = self.owners.get_mut(token) else {
            return;
        };
        let next = out.drive(&mut self.scratch);
        self.outbound_next(token, next);
    }

    /// The timer of an outbound connection fired.
    pub(super) fn outbound_timer(&mut self, token: Token, generation: u64) {
        let Some(Owner::Outbound(out)) = self.owners.get_gen_mut(token, generation) else {
            return;
        };
        if out.deadline > Instant::now() {
            out.timer_at = out.deadline;
            self.reactor.add_timer(out.deadline, token, generation);
            return;
        }
        let next = out.timed_out(&mut self.scratch);
        self.outbound_next(token, next);
    }

    fn outbound_next(&mut self, token: Token, next: OutNext) {
        let Some(Owner::Outbound(out)) = self.owners.get_mut(token) else {
            return;
        };
        match next {
            OutNext::Wait => {
                if out.deadline < out.timer_at {
                    out.timer_at = out.deadline;
                    self.reactor.add_timer(out.deadline, token, out.generation);
                }
            }
            OutNext::Done(result) => {
                let attempt = out.attempt;
                self.owners.remove(token);
                let owners = &self.owners;
                self.reactor
                    .prune_timers(owners.len(), |t, g| owners.is_live(t, g));
                self.remote.attempt_done(&self.config, attempt, result);
                self.run_actions();
            }
        }
    }
}

impl DnsTcp {
    /// Some(answer) once a whole framed message is read.
    fn advance(&mut self) -> io::Result<Option<Vec<u8>>> {
        while self.sent < self.out.len() {
            match self.stream.write(&self.out[self.sent..]) {
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let mut buf = [0u8; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    self.input.extend_from_slice(&buf[..n]);
                    if let Some(message) = tcp_message(&self.input) {
                        return Ok(Some(message.to_vec()));
                    }
                    if self.input.len() > DNS_TCP_MAX {
                        return Err(io::ErrorKind::InvalidData.into());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

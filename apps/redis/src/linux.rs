//! The Linux build's sockets: the [`Network`] of the event loop on mio (epoll), and the
//! clock (Unix time in milliseconds).
//!
//! Owns the listening socket, each connection's registration with the poller, and the
//! translation of std's I/O results into the loop's (`WouldBlock` is "nothing now", a read
//! of 0 bytes is "gone"). The server itself is the same single-threaded loop the image runs.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

use crate::config::ServerConfig;
use crate::db::Db;
use crate::event_loop::{Gone, Network, Stopped, serve};
use crate::info::Stats;
use crate::observer::NoObserver;

const LISTENER: Token = Token(0);

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// mio sockets behind the event loop's [`Network`].
pub struct MioNetwork {
    poll: Poll,
    events: Events,
    listener: TcpListener,
    next_token: usize,
}

impl MioNetwork {
    pub fn bind(addr: SocketAddr) -> io::Result<MioNetwork> {
        let poll = Poll::new()?;
        let mut listener = TcpListener::bind(addr)?;
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        Ok(MioNetwork { poll, events: Events::with_capacity(1024), listener, next_token: 1 })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

impl Network for MioNetwork {
    type Socket = TcpStream;

    fn try_accept(&mut self) -> Option<TcpStream> {
        loop {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let token = Token(self.next_token);
                    self.next_token = self.next_token.wrapping_add(1).max(1);
                    let interest = Interest::READABLE | Interest::WRITABLE;
                    if self.poll.registry().register(&mut stream, token, interest).is_err() {
                        continue;
                    }
                    return Some(stream);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) => {
                    // Out of descriptors and the like: try again on the next round.
                    eprintln!("redis-linux: accept: {e}");
                    return None;
                }
            }
        }
    }

    fn try_read(&mut self, socket: &mut TcpStream, buf: &mut [u8]) -> Result<usize, Gone> {
        loop {
            return match socket.read(buf) {
                Ok(0) => Err(Gone),
                Ok(n) => Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
                Err(_) => Err(Gone),
            };
        }
    }

    fn try_write(&mut self, socket: &mut TcpStream, buf: &[u8]) -> Result<usize, Gone> {
        loop {
            return match socket.write(buf) {
                Ok(n) => Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
                Err(_) => Err(Gone),
            };
        }
    }

    fn close(&mut self, mut socket: TcpStream) {
        let _ = self.poll.registry().deregister(&mut socket);
    }

    fn wait(&mut self, timeout_ms: u64) {
        let _ = self.poll.poll(&mut self.events, Some(Duration::from_millis(timeout_ms)));
    }
}

/// Serves on `addr` until SHUTDOWN; the keyspace in the ordinary heap.
pub fn run(addr: SocketAddr, config: ServerConfig) -> io::Result<Stopped> {
    let mut net = MioNetwork::bind(addr)?;
    eprintln!("redis-linux: listening on {}", net.local_addr()?);
    let seed = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let mut db = Db::with_seed(seed ^ u64::from(std::process::id()).rotate_left(32));
    let mut stats = Stats::new(unix_ms(), "Linux", "epoll", std::process::id());
    Ok(serve(&mut net, &config, &mut db, &mut stats, unix_ms, &mut NoObserver))
}

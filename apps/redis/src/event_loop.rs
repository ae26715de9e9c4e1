//! The server's loop, written once for both builds: accept, read into each connection,
//! run what arrived, write replies out, close finished connections, sweep expired keys,
//! wait for activity.
//!
//! Owns the connections of a running server and the order of those steps. The sockets come
//! through the narrow [`Network`] trait (non-blocking calls plus one blocking wait):
//! `remora_main` implements it on `libs/net`, `linux` on mio. Single-threaded, like Redis:
//! commands run one at a time on one keyspace. A client that stops reading its replies is
//! not read from until they drain; no client can take the server down or starve the others
//! (reads per round are bounded, and a connection runs its pipelined requests only while
//! its unsent replies stay under `OUTPUT_SOFT_LIMIT`). It never blocks except in
//! [`Network::wait`].

use alloc::vec;
use alloc::vec::Vec;

use crate::config::ServerConfig;
use crate::connection::{Connection, Ctx, OUTPUT_SOFT_LIMIT, State};
use crate::db::Db;
use crate::info::Stats;
use crate::observer::Observer;
use crate::reply;

/// The peer is gone (closed after everything was read, or reset).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gone;

/// Non-blocking sockets and one blocking wait.
pub trait Network {
    type Socket;
    /// A new connection, if one is waiting.
    fn try_accept(&mut self) -> Option<Self::Socket>;
    /// Bytes read into `buf`; `Ok(0)` when nothing is there now.
    fn try_read(&mut self, socket: &mut Self::Socket, buf: &mut [u8]) -> Result<usize, Gone>;
    /// Bytes of `buf` accepted for sending; `Ok(0)` when the send buffer is full.
    fn try_write(&mut self, socket: &mut Self::Socket, buf: &[u8]) -> Result<usize, Gone>;
    /// Closes the socket (after what it holds is sent, where the stack can).
    fn close(&mut self, socket: Self::Socket);
    /// Blocks until some socket may have progress, or `timeout_ms` passed.
    fn wait(&mut self, timeout_ms: u64);
}

/// Bytes read per `try_read`.
const READ_CHUNK: usize = 16 * 1024;
/// Bytes read from one client per round, so that one busy client cannot starve the rest.
const READ_PER_ROUND: usize = 256 * 1024;

struct Client<S> {
    socket: S,
    conn: Connection,
}

/// Why [`serve`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// A client sent SHUTDOWN.
    Shutdown,
}

/// Writes what `client` has queued; `Err` if the peer is gone.
fn flush<N: Network>(net: &mut N, client: &mut Client<N::Socket>) -> Result<(), Gone> {
    while !client.conn.pending_output().is_empty() {
        let n = net.try_write(&mut client.socket, client.conn.pending_output())?;
        if n == 0 {
            break;
        }
        client.conn.advance_output(n);
    }
    Ok(())
}

/// Serves clients on `net` until one sends SHUTDOWN.
pub fn serve<N: Network>(
    net: &mut N,
    config: &ServerConfig,
    db: &mut Db,
    stats: &mut Stats,
    clock: fn() -> u64,
    observer: &mut dyn Observer,
) -> Stopped {
    let mut clients: Vec<Client<N::Socket>> = Vec::new();
    let mut buf = vec![0u8; READ_CHUNK];
    let interval = config.sweep_interval_ms();
    let mut next_sweep = clock().saturating_add(interval);
    let mut shutdown = false;
    loop {
        let mut busy = false;
        while let Some(mut socket) = net.try_accept() {
            if clients.len() >= config.maxclients {
                let mut msg = Vec::new();
                reply::error_str(&mut msg, reply::MAX_CLIENTS);
                let _ = net.try_write(&mut socket, &msg);
                net.close(socket);
                stats.rejected_connections += 1;
                continue;
            }
            stats.total_connections_received += 1;
            clients.push(Client { socket, conn: Connection::new(config) });
        }
        stats.connected_clients = clients.len();

        let mut i = 0;
        while i < clients.len() {
            let client = &mut clients[i];
            let mut gone = flush(net, client).is_err();
            // Requests left waiting while their replies were held back run now.
            if !gone
                && client.conn.is_paused()
                && client.conn.pending_output().len() < OUTPUT_SOFT_LIMIT
            {
                let mut ctx = Ctx { config, stats: &mut *stats, clock, observer: &mut *observer };
                client.conn.feed(&[], db, &mut ctx);
            }
            let mut read = 0;
            while !gone
                && !client.conn.is_closing()
                && client.conn.pending_output().len() < OUTPUT_SOFT_LIMIT
            {
                match net.try_read(&mut client.socket, &mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        let mut ctx =
                            Ctx { config, stats: &mut *stats, clock, observer: &mut *observer };
                        client.conn.feed(&buf[..n], db, &mut ctx);
                        read += n;
                        if read >= READ_PER_ROUND {
                            busy = true;
                            break;
                        }
                    }
                    Err(Gone) => gone = true,
                }
            }
            // The replies to what was read before the peer left still go out if they can.
            let write_failed = flush(net, client).is_err();
            if client.conn.state() == State::Shutdown {
                shutdown = true;
            }
            let finished = gone
                || write_failed
                || (client.conn.is_closing() && client.conn.pending_output().is_empty());
            if finished {
                let client = clients.swap_remove(i);
                net.close(client.socket);
            } else {
                // Its replies went out and held-back requests wait: come back at once.
                if client.conn.is_paused() && client.conn.pending_output().len() < OUTPUT_SOFT_LIMIT
                {
                    busy = true;
                }
                i += 1;
            }
        }
        stats.connected_clients = clients.len();
        stats.client_buffer_bytes = clients.iter().map(|c| c.conn.buffer_bytes()).sum();

        if shutdown {
            for client in clients.drain(..) {
                net.close(client.socket);
            }
            stats.connected_clients = 0;
            return Stopped::Shutdown;
        }

        let now = clock();
        if now >= next_sweep {
            if db.sweep(now, config.sweep_budget) == config.sweep_budget {
                // More may have expired: sweep again next round, between clients.
                busy = true;
            } else {
                next_sweep = now.saturating_add(interval);
            }
        }
        if !busy {
            net.wait(next_sweep.saturating_sub(now).clamp(1, interval));
        }
    }
}

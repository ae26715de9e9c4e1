//! The image's entry into the server: the event loop on `libs/net`'s sockets and the
//! platform's clock. Everything else is the same core the Linux build runs.
//!
//! Owns only the adapter from `remora_net` (non-blocking TCP plus `wait_for_activity`) to
//! the loop's `Network`, and the start-up: listen, log, serve until SHUTDOWN. The keyspace
//! is an ordinary `Db`: its allocations come from the global allocator, the far heap.

use remora_kvm::{BootInfo, ExitStatus};
use remora_net::{NetError, TcpListener, TcpStream};

use crate::config::ServerConfig;
use crate::db::Db;
use crate::event_loop::{Gone, Network, serve};
use crate::info::Stats;
use crate::observer::{NoObserver, Observer};

/// The platform clock in milliseconds since boot. There is no wall clock: EXAT and PXAT
/// deadlines are read as milliseconds since boot.
fn clock_ms() -> u64 {
    remora_kvm::time::now_ns() / 1_000_000
}

struct KernelNetwork {
    listener: TcpListener,
}

/// `Err` when the connection is over; `Ok(0)` when it is only short of buffers now.
fn outcome(result: Result<usize, NetError>) -> Result<usize, Gone> {
    match result {
        Ok(n) => Ok(n),
        Err(NetError::NoBuffers) => Ok(0),
        Err(_) => Err(Gone),
    }
}

impl Network for KernelNetwork {
    type Socket = TcpStream;

    fn try_accept(&mut self) -> Option<TcpStream> {
        self.listener.try_accept()
    }

    fn try_read(&mut self, socket: &mut TcpStream, buf: &mut [u8]) -> Result<usize, Gone> {
        outcome(socket.try_read(buf))
    }

    fn try_write(&mut self, socket: &mut TcpStream, buf: &[u8]) -> Result<usize, Gone> {
        outcome(socket.try_write(buf))
    }

    fn close(&mut self, socket: TcpStream) {
        socket.close();
    }

    fn wait(&mut self, timeout_ms: u64) {
        remora_net::wait_for_activity(timeout_ms);
    }
}

/// Serves Redis clients on `config.port` until one sends SHUTDOWN. The command line's
/// `port=` overrides the configured port.
pub fn main(boot: &'static BootInfo, config: ServerConfig) -> ExitStatus {
    main_with_observer(boot, config, &mut NoObserver)
}

/// [`main`] with an observer (the app-level prefetch policy of issue #10).
pub fn main_with_observer(
    boot: &'static BootInfo,
    mut config: ServerConfig,
    observer: &mut dyn Observer,
) -> ExitStatus {
    if let Some(port) = boot.cmdline.get("port") {
        match port.parse() {
            Ok(port) => config.port = port,
            Err(_) => log::warn!("redis: port={port} is not a port; using {}", config.port),
        }
    }
    let listener = match TcpListener::bind(config.port) {
        Ok(listener) => listener,
        Err(e) => {
            log::error!("redis: cannot listen on port {}: {e}", config.port);
            return ExitStatus::Failure;
        }
    };
    log::info!(
        "redis: listening on port {} (maxclients {}, proto-max-bulk-len {}, list nodes of {} bytes)",
        config.port,
        config.maxclients,
        config.limits.max_bulk,
        config.list_node_bytes
    );
    let mut net = KernelNetwork { listener };
    let mut db = Db::with_seed(remora_kvm::time::rdtsc() ^ boot.entry_tsc.rotate_left(32));
    let mut stats = Stats::new(clock_ms(), "Remora x86_64", "remora-net", 1);
    serve(&mut net, &config, &mut db, &mut stats, clock_ms, observer);
    log::info!("redis: shut down by a client");
    ExitStatus::Success
}

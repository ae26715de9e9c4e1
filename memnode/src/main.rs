//! `memnode`: serves far memory to Remora images over datagrams carrying one Ethernet
//! frame each, exactly as QEMU's `-netdev dgram` backend sends them.
//!
//! This file owns the command line, the socket (Unix datagram by default, or UDP), the
//! signals and the deliberate frame loss of `--drop-rate`; the serving logic is
//! `memnode::Server`. It prints one line when ready (`memnode: listening on ...`), its
//! counters on SIGUSR1 and on exit, and exits 0 on SIGTERM or SIGINT after removing its
//! socket.

use std::io::{self, Write};
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use memnode::{DEFAULT_NODE_MAC, DropRng, Server, ServerConfig, SizeDisplay, parse_size};
use remora_rmem::{MAX_FRAME_LEN, MacDisplay, PAGE_SIZE};

/// How long a blocking receive waits before the loop looks at the signal flags.
const SIGNAL_CHECK: Duration = Duration::from_millis(100);
/// How long a reply may wait for room in the image's socket before it is given up (the
/// image resends).
const SEND_TIMEOUT: Duration = Duration::from_millis(100);

/// Serve far memory to Remora compute images.
///
/// Each image sends an Open with its 128-bit region key and gets a region of the size it
/// asks for; afterwards it reads and writes 4 KiB pages of it. Regions live until memnode
/// exits. Point QEMU at the socket with
/// `-netdev dgram,id=far,local.type=unix,local.path=IMAGE.sock,remote.type=unix,remote.path=SOCKET`.
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Cli {
    /// Unix datagram socket to listen on; created at start, removed on exit.
    #[arg(long, value_name = "PATH", default_value = "/tmp/remora-memnode.sock")]
    socket: PathBuf,

    /// Listen on UDP instead (e.g. 0.0.0.0:7070), for images on other hosts.
    #[arg(long, value_name = "ADDR:PORT", conflicts_with = "socket")]
    udp: Option<SocketAddr>,

    /// Memory all regions together may take (K, M, G, T suffixes). Memory is committed
    /// only as pages are written.
    #[arg(long, value_name = "SIZE", default_value = "1G", value_parser = parse_capacity)]
    capacity: u64,

    /// Fraction of received frames to lose on purpose, 0 to 1 (for tests).
    #[arg(long, value_name = "F", default_value_t = 0.0, value_parser = parse_rate)]
    drop_rate: f64,

    /// Seed of the generator that picks the frames lost by --drop-rate.
    #[arg(long, default_value_t = 1)]
    seed: u64,

    /// The node's MAC address, the source of its replies.
    #[arg(long, value_name = "MAC", default_value = "02:52:4d:45:4d:01", value_parser = parse_mac)]
    mac: [u8; 6],

    /// Also serve mlx5 images by RDMA: answer their connection requests (EtherType
    /// 0x88B6) with a queue pair on this verbs device (`mlx5_0`, `rxe0`; "" = the first).
    #[cfg(feature = "rdma")]
    #[arg(long, value_name = "DEVICE")]
    rdma_device: Option<String>,

    /// The verbs device's port.
    #[cfg(feature = "rdma")]
    #[arg(long, default_value_t = 1)]
    rdma_port: u8,

    /// The GID index (default: the first RoCE v2 IPv4 GID).
    #[cfg(feature = "rdma")]
    #[arg(long)]
    rdma_gid_index: Option<u8>,
}

/// EtherType of the mlx5 driver's connection requests.
const CONTROL_ETHERTYPE: [u8; 2] = [0x88, 0xb6];

/// Answers connection requests of mlx5 images, when serving RDMA.
type ControlHandler<'a> = Option<Box<dyn FnMut(&[u8]) -> Option<Vec<u8>> + 'a>>;

fn parse_capacity(text: &str) -> Result<u64, String> {
    let bytes = parse_size(text)?;
    if bytes < PAGE_SIZE as u64 {
        return Err(format!("{text} is less than one page ({PAGE_SIZE} bytes)"));
    }
    // Whole pages: a region is whole pages, so a ragged tail could never be used.
    Ok(bytes - bytes % PAGE_SIZE as u64)
}

fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        _ => Err(format!("'{text}' is not a fraction between 0 and 1 (e.g. 0.05)")),
    }
}

fn parse_mac(text: &str) -> Result<[u8; 6], String> {
    let bad = || format!("'{text}' is not a MAC address like 02:52:4d:45:4d:01");
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        let part = parts.next().ok_or_else(bad)?;
        if part.len() != 2 {
            return Err(bad());
        }
        *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
    }
    if parts.next().is_some() {
        return Err(bad());
    }
    if mac[0] & 1 != 0 {
        return Err(format!("{text} is a multicast address; the node needs a unicast one"));
    }
    Ok(mac)
}

/// Where replies go.
enum Peer {
    Unix(UnixAddr),
    Udp(SocketAddr),
}

/// The listening socket.
enum Endpoint {
    Unix { socket: UnixDatagram, path: PathBuf },
    Udp(UdpSocket),
}

impl Endpoint {
    fn open(cli: &Cli) -> Result<Endpoint> {
        if let Some(addr) = cli.udp {
            let socket = UdpSocket::bind(addr).with_context(|| {
                format!("cannot listen on UDP {addr}: is the port taken or the address not local?")
            })?;
            socket.set_read_timeout(Some(SIGNAL_CHECK))?;
            socket.set_write_timeout(Some(SEND_TIMEOUT))?;
            return Ok(Endpoint::Udp(socket));
        }
        let path = cli.socket.clone();
        remove_stale_socket(&path)?;
        let socket = UnixDatagram::bind(&path).with_context(|| {
            format!(
                "cannot create the socket {}: does its directory exist and is it writable? \
                 (choose another with --socket PATH)",
                path.display()
            )
        })?;
        socket.set_read_timeout(Some(SIGNAL_CHECK))?;
        socket.set_write_timeout(Some(SEND_TIMEOUT))?;
        Ok(Endpoint::Unix { socket, path })
    }

    fn describe(&self) -> String {
        match self {
            Endpoint::Unix { path, .. } => path.display().to_string(),
            Endpoint::Udp(socket) => match socket.local_addr() {
                Ok(addr) => format!("udp {addr}"),
                Err(_) => "udp".to_string(),
            },
        }
    }

    /// Waits up to `SIGNAL_CHECK` for a datagram.
    fn receive(&self, buf: &mut [u8]) -> io::Result<Option<(usize, Peer)>> {
        let received = match self {
            Endpoint::Unix { socket, .. } => {
                socket.recv_from(buf).map(|(len, peer)| (len, Peer::Unix(peer)))
            }
            Endpoint::Udp(socket) => {
                socket.recv_from(buf).map(|(len, peer)| (len, Peer::Udp(peer)))
            }
        };
        match received {
            Ok(got) => Ok(Some(got)),
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }

    fn send(&self, frame: &[u8], peer: &Peer) -> io::Result<()> {
        let sent = match (self, peer) {
            (Endpoint::Unix { socket, .. }, Peer::Unix(addr)) => socket.send_to_addr(frame, addr),
            (Endpoint::Udp(socket), Peer::Udp(addr)) => socket.send_to(frame, addr),
            _ => return Err(io::Error::other("peer of another socket family")),
        }?;
        if sent != frame.len() {
            return Err(io::Error::other("datagram truncated"));
        }
        Ok(())
    }

    fn close(self) {
        if let Endpoint::Unix { socket, path } = self {
            drop(socket);
            if let Err(error) = std::fs::remove_file(&path) {
                eprintln!("memnode: could not remove {}: {error}", path.display());
            }
        }
    }
}

/// Removes a socket file left by a memnode that died; refuses to touch a live socket or
/// anything that is not a socket.
fn remove_stale_socket(path: &Path) -> Result<()> {
    let Ok(metadata) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !metadata.file_type().is_socket() {
        bail!(
            "{} exists and is not a socket; refusing to replace it (choose another --socket PATH)",
            path.display()
        );
    }
    let probe = UnixDatagram::unbound()?;
    if probe.connect(path).is_ok() {
        bail!(
            "another process is listening on {} (another memnode?); stop it or choose another \
             --socket PATH",
            path.display()
        );
    }
    std::fs::remove_file(path)
        .with_context(|| format!("cannot remove the stale socket {}", path.display()))
}

fn main() {
    let cli = Cli::parse();
    if let Err(error) = run(&cli) {
        eprintln!("memnode: error: {error:#}");
        std::process::exit(1);
    }
}

fn run(cli: &Cli) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let report = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("cannot install the SIGTERM/SIGINT handler")?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGUSR1, Arc::clone(&report))
        .context("cannot install the SIGUSR1 handler")?;

    let endpoint = Endpoint::open(cli)?;
    let mut server = Server::new(ServerConfig { capacity: cli.capacity, mac: cli.mac });
    let mut rng = DropRng::new(cli.seed);
    let mut stdout = io::stdout();
    writeln!(
        stdout,
        "memnode: listening on {} (capacity {})",
        endpoint.describe(),
        SizeDisplay(cli.capacity)
    )?;
    if cli.drop_rate > 0.0 || cli.mac != DEFAULT_NODE_MAC {
        writeln!(
            stdout,
            "memnode: mac {}, dropping {} of received frames (seed {})",
            MacDisplay(cli.mac),
            cli.drop_rate,
            cli.seed
        )?;
    }
    stdout.flush()?;

    #[cfg(feature = "rdma")]
    let mut rdma = match &cli.rdma_device {
        Some(device) => {
            let config = memnode::rdma::RdmaConfig {
                device: (!device.is_empty()).then(|| device.clone()),
                port: cli.rdma_port,
                gid_index: cli.rdma_gid_index,
                capacity: cli.capacity,
            };
            let rdma = memnode::rdma::RdmaServer::open(&config)?;
            println!("memnode: {}", rdma.describe());
            Some(rdma)
        }
        None => None,
    };
    #[cfg(feature = "rdma")]
    let control: ControlHandler<'_> = rdma.as_mut().map(|r| {
        Box::new(move |frame: &[u8]| r.handle_frame(frame, cli.mac))
            as Box<dyn FnMut(&[u8]) -> Option<Vec<u8>>>
    });
    #[cfg(not(feature = "rdma"))]
    let control: ControlHandler<'_> = None;
    let result = serve(&endpoint, &mut server, &mut rng, cli.drop_rate, &stop, &report, control);
    endpoint.close();
    println!("{}", server.stats());
    println!("memnode: exiting");
    result
}

fn serve(
    endpoint: &Endpoint,
    server: &mut Server,
    rng: &mut DropRng,
    drop_rate: f64,
    stop: &AtomicBool,
    report: &AtomicBool,
    mut control: ControlHandler<'_>,
) -> Result<()> {
    // Room for a frame longer than any valid one, so a too-long frame is seen as such.
    let mut buf = vec![0u8; MAX_FRAME_LEN + 1024];
    let mut warned_unbound = false;
    while !stop.load(Ordering::Relaxed) {
        if report.swap(false, Ordering::Relaxed) {
            println!("{}", server.stats());
            io::stdout().flush()?;
        }
        let Some((len, peer)) = endpoint.receive(&mut buf).context("receiving a frame")? else {
            continue;
        };
        if drop_rate > 0.0 && rng.chance(drop_rate) {
            server.record_dropped();
            continue;
        }
        if let Peer::Unix(addr) = &peer
            && addr.is_unnamed()
            && !warned_unbound
        {
            warned_unbound = true;
            eprintln!(
                "memnode: a frame came from an unbound socket, which cannot be answered; give \
                 QEMU's -netdev dgram a local address (local.type=unix,local.path=...)"
            );
        }
        if let Some(handle) = control.as_mut()
            && len >= 14
            && buf[12..14] == CONTROL_ETHERTYPE
        {
            if let Some(reply) = handle(&buf[..len])
                && endpoint.send(&reply, &peer).is_err()
            {
                server.record_send_failure();
            }
            continue;
        }
        let mut failures = 0;
        server.handle_frame(&buf[..len], |reply| {
            if endpoint.send(reply, &peer).is_err() {
                failures += 1;
            }
        });
        for _ in 0..failures {
            server.record_send_failure();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn capacities_are_whole_pages() {
        assert_eq!(parse_capacity("4G"), Ok(4 << 30));
        assert_eq!(parse_capacity("5000"), Ok(4096));
        assert!(parse_capacity("100").unwrap_err().contains("less than one page"));
        assert!(parse_capacity("4X").unwrap_err().contains("not a size"));
    }

    #[test]
    fn rates_and_macs_are_checked() {
        assert_eq!(parse_rate("0.25"), Ok(0.25));
        assert!(parse_rate("1.5").is_err());
        assert!(parse_rate("x").is_err());
        assert_eq!(parse_mac("02:00:00:00:00:0a"), Ok([2, 0, 0, 0, 0, 10]));
        assert!(parse_mac("02:00:00:00:00").is_err());
        assert!(parse_mac("02:00:00:00:00:00:00").is_err());
        assert!(parse_mac("01:00:5e:00:00:01").unwrap_err().contains("multicast"));
    }
}

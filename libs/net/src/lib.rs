//! TCP/IP for the application: smoltcp (Ethernet, ARP, IPv4, ICMP echo, TCP, DHCP) on a
//! network card, and a small socket API.
//!
//! | item | owns | must never |
//! |---|---|---|
//! | [`Nic`] | what the stack needs from a network card (send and receive frames) | know about IP |
//! | `device` | smoltcp's `Device` over a [`Nic`] | buffer more than one frame |
//! | [`NetStack`] | the interface, its sockets, addresses, the accept backlogs; behind one lock | block |
//! | [`TcpListener`], [`TcpStream`] | the application's sockets: non-blocking calls plus [`wait_for_activity`] | hold the stack's lock while waiting |
//!
//! The stack is polled, not interrupt driven: every socket call and
//! [`wait_for_activity`] polls the card. [`wait_for_activity`] blocks the calling thread
//! (it yields the CPU between polls and sleeps when the network has been idle for a
//! while), never the CPU. Socket buffers are allocated with the stack's lock held, i.e.
//! with interrupts off, which keeps them in local memory when the application's heap is
//! in far memory.
//!
//! Configuration (address, gateway, buffer sizes) comes from the image's glue; this crate
//! reads none.

#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

mod device;

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use remora_alloc::IrqLock;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::{dhcpv4, tcp};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Address, Ipv4Cidr};
use spin::Once;

pub use device::Nic;
use device::NicDevice;

/// How the interface gets its address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Addressing {
    /// A fixed address, prefix length and default gateway.
    Static {
        /// The interface's address.
        address: [u8; 4],
        /// Its prefix length.
        prefix: u8,
        /// The default gateway, if any.
        gateway: Option<[u8; 4]>,
    },
    /// DHCP.
    Dhcp,
}

/// Settings of the stack, from the image configuration.
#[derive(Clone, Copy, Debug)]
pub struct NetConfig {
    /// How the address is set.
    pub addressing: Addressing,
    /// Bytes of each TCP socket's receive buffer.
    pub rx_buffer: usize,
    /// Bytes of each TCP socket's send buffer.
    pub tx_buffer: usize,
    /// Connections a listener holds ready to be accepted.
    pub backlog: usize,
}

/// Why a socket call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetError {
    /// The peer closed the connection and everything it sent has been read.
    Closed,
    /// The connection was reset.
    Reset,
    /// No memory for buffers.
    NoBuffers,
    /// The stack is not set up (no network card in this image).
    NotUp,
    /// Anything else, said in words.
    Other(&'static str),
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::Closed => write!(f, "connection closed by the peer"),
            NetError::Reset => write!(f, "connection reset"),
            NetError::NoBuffers => write!(f, "out of memory for socket buffers"),
            NetError::NotUp => write!(f, "the network is not up (no network card configured)"),
            NetError::Other(what) => write!(f, "{what}"),
        }
    }
}

/// A listening port's backlog: sockets listening for the next connections.
struct Listener {
    port: u16,
    waiting: Vec<SocketHandle>,
}

/// The interface, its sockets and the card, behind the stack's lock.
pub struct NetStack {
    iface: Interface,
    device: NicDevice,
    sockets: SocketSet<'static>,
    config: NetConfig,
    dhcp: Option<SocketHandle>,
    listeners: Vec<Listener>,
    /// Connections closed by the application, kept until their data is sent.
    closing: Vec<SocketHandle>,
    clock: fn() -> u64,
    /// Counters.
    stats: NetStats,
}

/// What the stack counts.
#[derive(Clone, Copy, Debug, Default)]
pub struct NetStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Polls of the interface.
    pub polls: u64,
    /// Frames received and sent.
    pub frames_in: u64,
    /// Frames sent.
    pub frames_out: u64,
    /// Frames the card could not take (all its buffers busy).
    pub frames_dropped: u64,
    /// Reads that found the connection closed by the peer, or reset.
    pub peer_closed: u64,
    /// Connections found reset.
    pub resets: u64,
    /// Writes refused because the connection could not send any more.
    pub write_refused: u64,
}

static STACK: IrqLock<Option<NetStack>> = IrqLock::new(None);
static WAIT: Once<fn(u64)> = Once::new();

fn now_ms(clock: fn() -> u64) -> Instant {
    Instant::from_micros((clock() / 1000) as i64)
}

/// Brings the stack up on `nic`. `clock` gives nanoseconds; `pause(idle_ms)` lets the
/// calling thread sleep when the network has been idle (the scheduler's sleep).
pub fn init(nic: Box<dyn Nic>, config: NetConfig, clock: fn() -> u64, pause: fn(u64)) {
    WAIT.call_once(|| pause);
    let mut device = NicDevice::new(nic);
    let mac = device.mac();
    let mut iface_config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
    iface_config.random_seed = clock();
    let mut iface = Interface::new(iface_config, &mut device, now_ms(clock));
    let mut sockets = SocketSet::new(vec![]);
    let mut dhcp = None;
    match config.addressing {
        Addressing::Static { address, prefix, gateway } => {
            iface.update_ip_addrs(|addrs| {
                let _ = addrs.push(IpCidr::new(Ipv4Address::from(address).into(), prefix));
            });
            if let Some(gw) = gateway {
                let _ = iface.routes_mut().add_default_ipv4_route(Ipv4Address::from(gw));
            }
        }
        Addressing::Dhcp => dhcp = Some(sockets.add(dhcpv4::Socket::new())),
    }
    *STACK.lock() = Some(NetStack {
        iface,
        device,
        sockets,
        config,
        dhcp,
        listeners: Vec::new(),
        closing: Vec::new(),
        clock,
        stats: NetStats::default(),
    });
}

fn with_stack<R>(f: impl FnOnce(&mut NetStack) -> R) -> Result<R, NetError> {
    STACK.lock().as_mut().map(f).ok_or(NetError::NotUp)
}

impl NetStack {
    /// Moves frames in and out and runs the protocol timers; true if a socket may have
    /// changed.
    fn poll(&mut self) -> bool {
        self.stats.polls += 1;
        let changed = matches!(
            self.iface.poll(now_ms(self.clock), &mut self.device, &mut self.sockets),
            smoltcp::iface::PollResult::SocketStateChanged
        );
        self.stats.frames_in = self.device.received;
        self.stats.frames_out = self.device.sent;
        self.stats.frames_dropped = self.device.dropped;
        if let Some(handle) = self.dhcp {
            self.poll_dhcp(handle);
        }
        // Reap connections whose close has completed.
        let sockets = &mut self.sockets;
        self.closing.retain(|&h| {
            let done = matches!(
                sockets.get::<tcp::Socket>(h).state(),
                tcp::State::Closed | tcp::State::TimeWait
            );
            if done {
                sockets.remove(h);
            }
            !done
        });
        changed
    }

    fn poll_dhcp(&mut self, handle: SocketHandle) {
        let event = self.sockets.get_mut::<dhcpv4::Socket>(handle).poll();
        match event {
            Some(dhcpv4::Event::Configured(config)) => {
                log::info!("net: DHCP gave {} (gateway {:?})", config.address, config.router);
                self.iface.update_ip_addrs(|addrs| {
                    addrs.clear();
                    let _ = addrs.push(IpCidr::Ipv4(config.address));
                });
                if let Some(router) = config.router {
                    let _ = self.iface.routes_mut().add_default_ipv4_route(router);
                }
            }
            Some(dhcpv4::Event::Deconfigured) => {
                self.iface.update_ip_addrs(|addrs| addrs.clear());
                self.iface.routes_mut().remove_default_ipv4_route();
            }
            None => {}
        }
    }

    fn new_listening_socket(&mut self, port: u16) -> Result<SocketHandle, NetError> {
        let rx = tcp::SocketBuffer::new(vec![0u8; self.config.rx_buffer]);
        let tx = tcp::SocketBuffer::new(vec![0u8; self.config.tx_buffer]);
        let mut socket = tcp::Socket::new(rx, tx);
        socket.set_nagle_enabled(false);
        socket.listen(port).map_err(|_| NetError::Other("cannot listen on that port"))?;
        Ok(self.sockets.add(socket))
    }

    /// The interface's IPv4 address, if it has one.
    pub fn address(&self) -> Option<Ipv4Cidr> {
        self.iface.ip_addrs().iter().map(|IpCidr::Ipv4(v4)| *v4).next()
    }
}

/// A listening TCP port.
pub struct TcpListener {
    index: usize,
}

impl TcpListener {
    /// Starts listening on `port` with the configured backlog.
    pub fn bind(port: u16) -> Result<TcpListener, NetError> {
        with_stack(|s| {
            let mut waiting = Vec::new();
            for _ in 0..s.config.backlog.max(1) {
                waiting.push(s.new_listening_socket(port)?);
            }
            s.listeners.push(Listener { port, waiting });
            Ok(TcpListener { index: s.listeners.len() - 1 })
        })?
    }

    /// A new connection, if one has been established.
    pub fn try_accept(&self) -> Option<TcpStream> {
        with_stack(|s| {
            s.poll();
            let listener = &s.listeners[self.index];
            let position = listener.waiting.iter().position(|&h| {
                let socket = s.sockets.get::<tcp::Socket>(h);
                !matches!(socket.state(), tcp::State::Listen | tcp::State::SynReceived)
            })?;
            let handle = s.listeners[self.index].waiting.swap_remove(position);
            let port = s.listeners[self.index].port;
            match s.new_listening_socket(port) {
                Ok(fresh) => s.listeners[self.index].waiting.push(fresh),
                Err(e) => log::warn!("net: backlog of port {port} not refilled: {e}"),
            }
            s.stats.accepted += 1;
            Some(TcpStream { handle })
        })
        .ok()
        .flatten()
    }
}

/// A TCP connection.
pub struct TcpStream {
    handle: SocketHandle,
}

impl TcpStream {
    /// Reads what has arrived into `buf`: `Ok(0)` when nothing has; `Err(Closed)` once the
    /// peer has closed and everything was read.
    pub fn try_read(&mut self, buf: &mut [u8]) -> Result<usize, NetError> {
        with_stack(|s| {
            // Poll the card only when nothing is buffered: a busy server reads what it
            // has first, and the poll's cost is paid once per empty socket.
            if !s.sockets.get::<tcp::Socket>(self.handle).can_recv() {
                s.poll();
            }
            let socket = s.sockets.get_mut::<tcp::Socket>(self.handle);
            if socket.can_recv() {
                return socket.recv_slice(buf).map_err(|_| NetError::Closed);
            }
            match socket.state() {
                tcp::State::Closed | tcp::State::TimeWait => {
                    s.stats.resets += 1;
                    Err(NetError::Reset)
                }
                _ if !socket.may_recv() => {
                    s.stats.peer_closed += 1;
                    Err(NetError::Closed)
                }
                _ => Ok(0),
            }
        })?
    }

    /// Queues as much of `buf` as the send buffer takes; the number of bytes taken.
    pub fn try_write(&mut self, buf: &[u8]) -> Result<usize, NetError> {
        with_stack(|s| {
            let socket = s.sockets.get_mut::<tcp::Socket>(self.handle);
            if !socket.may_send() {
                s.stats.write_refused += 1;
                return Err(if socket.state() == tcp::State::Closed {
                    NetError::Reset
                } else {
                    NetError::Closed
                });
            }
            let n = socket.send_slice(buf).map_err(|_| NetError::Closed)?;
            // Send now only if the buffer filled up (to make room); otherwise the next
            // poll (the next read, accept or wait) sends it with whatever follows.
            if n < buf.len() {
                s.poll();
            }
            Ok(n)
        })?
    }

    /// Whether data written is still waiting to be sent or acknowledged.
    pub fn has_unsent(&self) -> bool {
        with_stack(|s| s.sockets.get::<tcp::Socket>(self.handle).send_queue() > 0).unwrap_or(false)
    }

    /// Closes the connection once what was written has been sent.
    pub fn close(self) {
        let _ = with_stack(|s| {
            s.sockets.get_mut::<tcp::Socket>(self.handle).close();
            s.closing.push(self.handle);
            s.poll();
        });
    }
}

/// Blocks the calling thread until a socket may have progress (data, space, a connection)
/// or `timeout_ms` pass. Polls the card; between polls it yields, and after the network
/// has been quiet for a while it sleeps in short steps.
pub fn wait_for_activity(timeout_ms: u64) {
    let Ok(clock) = with_stack(|s| s.clock) else { return };
    let started = clock();
    let deadline = started.saturating_add(timeout_ms.saturating_mul(1_000_000));
    let mut quiet_polls = 0u32;
    loop {
        let changed = with_stack(|s| s.poll()).unwrap_or(false);
        if changed || clock() >= deadline {
            return;
        }
        quiet_polls += 1;
        if quiet_polls > 200 {
            // Idle: sleep a millisecond at a time rather than spin.
            if let Some(pause) = WAIT.get() {
                pause(1);
            }
        } else if let Some(pause) = WAIT.get() {
            pause(0);
        }
    }
}

/// The stack's counters and address, if it is up.
pub fn stats() -> Option<(NetStats, Option<Ipv4Cidr>)> {
    with_stack(|s| (s.stats, s.address())).ok()
}

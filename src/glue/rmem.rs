//! The far-memory link at boot: finds the far-memory NIC (a virtio-net device), wraps it
//! as an `rmem::Link` (one Ethernet frame per message, buffers large enough for a whole
//! page), and opens the region on the memory node with the key from the command line.
//!
//! The connected transport waits in `remora_rmem::handoff` for its user (the pager).

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt::Write as _;

use remora_kvm::virtio::{self, VirtioHal};
use remora_kvm::{BootInfo, pci, time};
use remora_rmem::{Clock, LinkConfig, LinkError, LinkTransport, MAX_FRAME_LEN, RegionKey};
use virtio_drivers::device::net::VirtIONetRaw;
use virtio_drivers::transport::pci::PciTransport;

use crate::config;

/// Descriptors in each of the NIC's queues.
const QUEUE_SIZE: usize = 256;
/// Receive buffers posted: every descriptor of the receive queue. The transport's window
/// never asks for more answers at once.
const RX_BUFFERS: usize = QUEUE_SIZE;
/// Transmit buffers.
const TX_BUFFERS: usize = 64;
/// Room for the virtio-net header and the largest far-memory frame.
const BUFFER_LEN: usize = (MAX_FRAME_LEN + 64).next_multiple_of(64);

/// The monotonic clock, for timeouts.
pub struct TscClock;

impl Clock for TscClock {
    fn now_ns(&self) -> u64 {
        time::now_ns()
    }
}

/// A virtio-net device as a datagram link: every receive buffer is posted at start and
/// re-posted as soon as its frame has been handled; transmit buffers are reused once the
/// device has sent them.
pub struct VirtioNetLink {
    device: VirtIONetRaw<VirtioHal, PciTransport, QUEUE_SIZE>,
    /// Receive buffers, indexed by the token of the request they are posted with.
    rx: Vec<Option<Box<[u8]>>>,
    /// Transmit buffers and the token each is in flight with, if any.
    tx: Vec<(Box<[u8]>, Option<u16>)>,
}

// SAFETY: the link is used under the pager's lock only; the device and its buffers move
// with it as a whole.
unsafe impl Send for VirtioNetLink {}

impl VirtioNetLink {
    fn new(transport: PciTransport) -> Result<Self, virtio_drivers::Error> {
        let mut device = VirtIONetRaw::<VirtioHal, PciTransport, QUEUE_SIZE>::new(transport)?;
        device.disable_interrupts();
        let mut rx: Vec<Option<Box<[u8]>>> = (0..QUEUE_SIZE).map(|_| None).collect();
        for _ in 0..RX_BUFFERS {
            let mut buf = alloc::vec![0u8; BUFFER_LEN].into_boxed_slice();
            // SAFETY: the buffer is kept in `rx` under its token, untouched until the
            // device hands it back (`receive_complete`).
            let token = unsafe { device.receive_begin(&mut buf)? };
            rx[token as usize] = Some(buf);
        }
        let tx = (0..TX_BUFFERS)
            .map(|_| (alloc::vec![0u8; BUFFER_LEN].into_boxed_slice(), None))
            .collect();
        Ok(VirtioNetLink { device, rx, tx })
    }

    /// Takes back transmit buffers the device is done with.
    fn reap_transmitted(&mut self) {
        while let Some(token) = self.device.poll_transmit() {
            if let Some(slot) = self.tx.iter_mut().find(|(_, t)| *t == Some(token)) {
                // SAFETY: the same buffer that was given to `transmit_begin` with `token`.
                let _ = unsafe { self.device.transmit_complete(token, &slot.0) };
                slot.1 = None;
            } else {
                break;
            }
        }
    }
}

impl remora_rmem::Link for VirtioNetLink {
    fn mac(&self) -> [u8; 6] {
        self.device.mac_address()
    }

    fn send(&mut self, frame: &[u8]) -> Result<(), LinkError> {
        self.reap_transmitted();
        let Some(slot) = self.tx.iter_mut().find(|(_, t)| t.is_none()) else {
            return Err(LinkError::Busy);
        };
        let header = self
            .device
            .fill_buffer_header(&mut slot.0)
            .map_err(|_| LinkError::Failed { what: "virtio-net header" })?;
        if header + frame.len() > slot.0.len() {
            return Err(LinkError::TooLong { len: frame.len(), max: slot.0.len() - header });
        }
        slot.0[header..header + frame.len()].copy_from_slice(frame);
        // SAFETY: the buffer stays in `tx`, marked in flight, until `poll_transmit`
        // returns its token.
        let token = unsafe { self.device.transmit_begin(&slot.0[..header + frame.len()]) }
            .map_err(|_| LinkError::Busy)?;
        slot.1 = Some(token);
        Ok(())
    }

    fn receive<R>(&mut self, handle: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let token = self.device.poll_receive()?;
        let mut buf = self.rx.get_mut(token as usize)?.take()?;
        // SAFETY: `buf` is the buffer posted with `token`.
        let result = match unsafe { self.device.receive_complete(token, &mut buf) } {
            Ok((header, len)) => Some(handle(&buf[header..header + len])),
            Err(_) => None,
        };
        // SAFETY: as at start: kept under its new token until handed back.
        if let Ok(token) = unsafe { self.device.receive_begin(&mut buf) } {
            self.rx[token as usize] = Some(buf);
        }
        result
    }
}

/// The transport over the far-memory NIC.
pub type FarTransport = LinkTransport<VirtioNetLink, TscClock>;

fn fail(message: &str) -> ! {
    remora_kvm::early_panic(message)
}

/// `rmem.key=` from the command line (32 hex digits), or a fresh one.
fn region_key(boot: &BootInfo) -> RegionKey {
    match boot.cmdline.get("rmem.key") {
        Some(hex) => match u128::from_str_radix(hex, 16) {
            Ok(key) if hex.len() == 32 => RegionKey::from_u128(key),
            _ => fail("rmem.key= must be 32 hex digits (the region's 128-bit key)"),
        },
        None => {
            let key = (time::rdtsc() as u128) << 64 | time::now_ns() as u128 ^ 0x5245_4d4f_5241;
            log::warn!(
                "rmem: no rmem.key= on the command line: using a fresh region key {key:032x}"
            );
            RegionKey::from_u128(key)
        }
    }
}

/// The far-memory NIC: the virtio-net device at `rmem.nic=bb:dd.f`, else the first one.
fn find_nic(boot: &BootInfo) -> &'static pci::PciDevice {
    let is_virtio_net =
        |d: &&pci::PciDevice| d.vendor_id == 0x1af4 && matches!(d.device_id, 0x1000 | 0x1041);
    let found = match boot.cmdline.get("rmem.nic") {
        Some(want) => pci::devices().iter().filter(is_virtio_net).find(|d| {
            let mut name = heapless::String::<16>::new();
            let a = d.address;
            let _ = write!(name, "{:02x}:{:02x}.{}", a.bus(), a.device(), a.function());
            name == want
        }),
        None => pci::devices().iter().find(is_virtio_net),
    };
    found.unwrap_or_else(|| {
        fail(
            "no far-memory NIC: the image needs a virtio-net device connected to a memory node \
             (cargo xtask run adds one; rmem.nic=bb:dd.f picks it)",
        )
    })
}

pub fn init(boot: &'static BootInfo) {
    let nic = find_nic(boot);
    let transport = virtio::pci_transport(nic).unwrap_or_else(|e| {
        log::error!("rmem: {nic}: {e:?}");
        fail("the far-memory NIC could not be set up as a virtio device")
    });
    let link = VirtioNetLink::new(transport).unwrap_or_else(|e| {
        log::error!("rmem: virtio-net: {e:?}");
        fail("the far-memory NIC could not be started")
    });
    // The command line may tune the link for a run (a slower or lossier network).
    let number = |key: &str, default: i64| -> i64 {
        match boot.cmdline.get(key).map(str::parse::<i64>) {
            Some(Ok(v)) if v >= 0 => v,
            Some(_) => fail("rmem.timeout_us= and rmem.retries= take a non-negative number"),
            None => default,
        }
    };
    let link_config = LinkConfig {
        queue_depth: config::rmem::QUEUE_DEPTH as usize,
        timeout_us: number("rmem.timeout_us", config::rmem::TIMEOUT_US) as u64,
        retries: number("rmem.retries", config::rmem::RETRIES) as u32,
        window_pages: (config::rmem::WINDOW_PAGES as usize).min(RX_BUFFERS),
    };
    let size = config::rmem::REGION_SIZE as u64;
    let started = time::now_ns();
    match FarTransport::connect(link, TscClock, region_key(boot), size, link_config) {
        Ok(transport) => {
            let mac = transport.node_mac();
            log::info!(
                "rmem: region of {} MiB open on memory node {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x} \
                 in {} us (queue depth {}, timeout {} us, {} retries)",
                size >> 20,
                mac[0],
                mac[1],
                mac[2],
                mac[3],
                mac[4],
                mac[5],
                (time::now_ns() - started) / 1000,
                link_config.queue_depth,
                link_config.timeout_us,
                link_config.retries
            );
            remora_rmem::handoff::install(Box::new(transport));
        }
        Err(e) => {
            let mut out = remora_kvm::console::emergency_writer();
            let _ =
                writeln!(out, "\n!!! far memory: cannot open the region on the memory node: {e}");
            remora_kvm::exit(remora_kvm::ExitStatus::Failure);
        }
    }
}

//! The far-memory link at boot: finds the far-memory NIC (a virtio-net device), wraps it
//! as an `rmem::Link` (one Ethernet frame per message, buffers large enough for a whole
//! page), and opens the region on the memory node with the key from the command line.
//!
//! The connected transport waits in `remora_rmem::handoff` for its user (the pager).

use alloc::boxed::Box;
use core::fmt::Write as _;

use remora_kvm::format::Mac;
use remora_kvm::virtio;
use remora_kvm::virtio_net::{BUFFER_LEN, RX_BUFFERS, SendError, VirtioNet};
use remora_kvm::{BootInfo, pci, time};
use remora_rmem::{Clock, LinkConfig, LinkError, LinkTransport, MAX_FRAME_LEN, RegionKey};

use crate::config;

const _: () = assert!(MAX_FRAME_LEN + 12 <= BUFFER_LEN, "NIC buffers too small for a page frame");

/// The monotonic clock, for timeouts.
pub struct TscClock;

impl Clock for TscClock {
    fn now_ns(&self) -> u64 {
        time::now_ns()
    }
}

/// The far-memory NIC as the link transport's `Link`.
pub struct FarLink(VirtioNet);

impl remora_rmem::Link for FarLink {
    fn mac(&self) -> [u8; 6] {
        self.0.mac()
    }

    fn send(&mut self, frame: &[u8]) -> Result<(), LinkError> {
        self.0.send(frame).map_err(|e| match e {
            SendError::Busy => LinkError::Busy,
            SendError::TooLong { len, max } => LinkError::TooLong { len, max },
            SendError::Device => LinkError::Failed { what: "virtio-net refused a frame" },
        })
    }

    fn receive<R>(&mut self, handle: impl FnOnce(&[u8]) -> R) -> Option<R> {
        self.0.receive(handle)
    }
}

/// The transport over the far-memory NIC.
pub type FarTransport = LinkTransport<FarLink, TscClock>;

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
    let mut cards = pci::devices().iter().filter(|d| d.is_virtio_net());
    let found = match boot.cmdline.get("rmem.nic") {
        Some(want) => cards.find(|d| d.bdf() == want),
        None => cards.next(),
    };
    found.unwrap_or_else(|| {
        fail(
            "no far-memory NIC: the image needs a virtio-net device connected to a memory node \
             (cargo xtask run adds one; rmem.nic=bb:dd.f picks it)",
        )
    })
}

pub fn init(boot: &'static BootInfo) {
    // With the mlx5 transport, the driver's glue connects instead (the virtio NIC is its
    // control link).
    if cfg!(remora_rmem_transport = "mlx5") {
        return;
    }
    let nic = find_nic(boot);
    let transport = virtio::pci_transport(nic).unwrap_or_else(|e| {
        log::error!("rmem: {nic}: {e:?}");
        fail("the far-memory NIC could not be set up as a virtio device")
    });
    let link = VirtioNet::new(transport).map(FarLink).unwrap_or_else(|e| {
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
            log::info!(
                "rmem: region of {} MiB open on memory node {} in {} us (queue depth {}, \
                 timeout {} us, {} retries)",
                size >> 20,
                Mac(transport.node_mac()),
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

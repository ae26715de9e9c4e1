//! The RDMA far-memory transport at boot (`rmem.transport = "mlx5"`): finds the ConnectX
//! function (`mlx5.pci`, else the first one), maps its BAR0 through the direct map, gives
//! the driver DMA frames from the frame allocator, brings the device up, connects its
//! queue pair to the memory node over the control link, and leaves the transport in
//! `remora_rmem::handoff` for the pager.
//!
//! The control link is the far-memory virtio-net NIC (`rmem.nic=`, else the first
//! virtio-net), which carries the connection exchange as Ethernet frames of EtherType
//! 0x88B6 to the memory node's socket (see `remora_mlx5::exchange`).
//!
//! This file owns the kernel's implementations of the driver's platform traits: the only
//! volatile accesses to the NIC's registers and to DMA memory. Everything else is the
//! driver's. Tested against the driver's device model only, not yet on hardware.

use alloc::boxed::Box;
use core::fmt::Write as _;

use remora_alloc::FRAMES;
use remora_kvm::paging::{direct_map_end, phys_to_virt};
use remora_kvm::pci::{self, BarInfo};
use remora_kvm::virtio::{self, VirtioHal};
use remora_kvm::{BootInfo, time};
use remora_mlx5::{
    Bar, Device, DeviceConfig, Dma, DmaError, FrameControlLink, Mlx5Transport, PAGE_SIZE, QpConfig,
    RegionRequest, supported_device,
};
use remora_rmem::{Clock, Link, LinkError, RegionKey};
use virtio_drivers::device::net::{TxBuffer, VirtIONet};
use virtio_drivers::transport::pci::PciTransport;

use crate::config;

/// BAR0 of the NIC through the direct map (uncached: the direct map maps non-RAM
/// uncached).
pub struct KernelBar {
    base: u64,
    len: usize,
}

impl KernelBar {
    fn at(&self, offset: usize, width: usize) -> u64 {
        assert!(
            offset + width <= self.len && offset.is_multiple_of(width),
            "mlx5: BAR0 access {offset:#x} out of range"
        );
        self.base + offset as u64
    }
}

impl Bar for KernelBar {
    fn read32(&self, offset: usize) -> u32 {
        let at = self.at(offset, 4) as *const u32;
        // SAFETY: inside BAR0 (checked), mapped uncached by the direct map; an aligned
        // 32-bit register.
        u32::from_be(unsafe { at.read_volatile() })
    }

    fn write32(&self, offset: usize, value: u32) {
        let at = self.at(offset, 4) as *mut u32;
        // SAFETY: as in `read32`.
        unsafe { at.write_volatile(value.to_be()) }
    }

    fn write64(&self, offset: usize, value: u64) {
        let at = self.at(offset, 8) as *mut u64;
        // SAFETY: as in `read32`; one aligned 64-bit store, as a doorbell must be.
        unsafe { at.write_volatile(value.to_be()) }
    }

    fn write_barrier(&self) {
        // SAFETY: `sfence` orders stores; it touches no memory and no registers.
        unsafe { core::arch::asm!("sfence", options(nostack, preserves_flags)) }
    }

    fn read_barrier(&self) {
        // SAFETY: `lfence` orders loads; it touches no memory and no registers.
        unsafe { core::arch::asm!("lfence", options(nostack, preserves_flags)) }
    }

    fn len(&self) -> usize {
        self.len
    }
}

/// DMA memory: frames from the frame allocator, reached through the direct map (x86 DMA
/// is cache coherent).
pub struct KernelDma;

fn order_of(pages: usize) -> usize {
    pages.max(1).next_power_of_two().trailing_zeros() as usize
}

impl Dma for KernelDma {
    fn alloc(&self, pages: usize) -> Result<u64, DmaError> {
        let phys = FRAMES.alloc(order_of(pages)).map_err(|_| DmaError::OutOfMemory { pages })?;
        // SAFETY: fresh frames, ours alone, direct mapped, at least `pages` pages long.
        unsafe { core::ptr::write_bytes(phys_to_virt(phys) as *mut u8, 0, pages * PAGE_SIZE) };
        Ok(phys)
    }

    fn free(&self, phys: u64, pages: usize) {
        if let Err(e) = FRAMES.free(phys, order_of(pages)) {
            log::warn!("mlx5: freeing DMA frames at {phys:#x}: {e:?}");
        }
    }

    fn read(&self, phys: u64, out: &mut [u8]) {
        let from = phys_to_virt(phys) as *const u8;
        for (i, b) in out.iter_mut().enumerate() {
            // SAFETY: the driver reads only memory it allocated here or was given in a
            // LocalBuf (RAM, direct mapped); the device may write it at any time, hence
            // volatile.
            *b = unsafe { from.add(i).read_volatile() };
        }
    }

    fn write(&self, phys: u64, data: &[u8]) {
        let to = phys_to_virt(phys) as *mut u8;
        for (i, b) in data.iter().enumerate() {
            // SAFETY: as in `read`: DMA memory the driver owns, direct mapped.
            unsafe { to.add(i).write_volatile(*b) };
        }
    }
}

/// The monotonic clock.
pub struct KernelClock;

impl Clock for KernelClock {
    fn now_ns(&self) -> u64 {
        time::now_ns()
    }
}

/// The far-memory virtio-net NIC as a frame link for the connection exchange.
pub struct ControlNic {
    net: VirtIONet<VirtioHal, PciTransport, 16>,
}

impl Link for ControlNic {
    fn mac(&self) -> [u8; 6] {
        self.net.mac_address()
    }

    fn send(&mut self, frame: &[u8]) -> Result<(), LinkError> {
        self.net
            .send(TxBuffer::from(frame))
            .map_err(|_| LinkError::Failed { what: "virtio-net send" })
    }

    fn receive<R>(&mut self, handle: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let rx = self.net.receive().ok()?;
        let result = handle(rx.packet());
        if self.net.recycle_rx_buffer(rx).is_err() {
            log::warn!("mlx5: control link: a receive buffer could not be recycled");
        }
        Some(result)
    }
}

fn fail(message: &str) -> ! {
    let mut out = remora_kvm::console::emergency_writer();
    let _ = writeln!(out, "\n!!! far memory (mlx5): {message}");
    remora_kvm::exit(remora_kvm::ExitStatus::Failure)
}

fn address_of(d: &pci::PciDevice) -> heapless::String<16> {
    let mut name = heapless::String::new();
    let a = d.address;
    let _ = write!(name, "{:02x}:{:02x}.{}", a.bus(), a.device(), a.function());
    name
}

/// The ConnectX function: `mlx5.pci=` on the command line, else `mlx5.pci` from the
/// config, else the first supported one.
fn find_nic(boot: &BootInfo) -> &'static pci::PciDevice {
    let want = boot.cmdline.get("mlx5.pci").unwrap_or(config::mlx5::PCI);
    let want = want.strip_prefix("0000:").unwrap_or(want);
    let mut found =
        pci::devices().iter().filter(|d| supported_device(d.vendor_id, d.device_id).is_some());
    let nic = if want.is_empty() { found.next() } else { found.find(|d| address_of(d) == want) };
    nic.unwrap_or_else(|| {
        fail(
            "no ConnectX NIC found (or none at mlx5.pci): pass one through with \
             `cargo xtask run --transport mlx5 --vfio <PCI address>`",
        )
    })
}

fn map_bar0(nic: &pci::PciDevice) -> KernelBar {
    let Some(BarInfo::Memory { address, size, .. }) = nic.bars[0] else {
        fail("the NIC's BAR0 is not a memory BAR");
    };
    if address == 0 || address + size > direct_map_end() {
        log::error!(
            "mlx5: BAR0 at {address:#x}+{size:#x}, direct map ends at {:#x}",
            direct_map_end()
        );
        fail("the NIC's BAR0 is unassigned or outside the direct map");
    }
    KernelBar { base: phys_to_virt(address), len: size as usize }
}

fn parse_ip(text: &str) -> Option<[u8; 4]> {
    let mut ip = [0u8; 4];
    let mut parts = text.split('.');
    for b in &mut ip {
        *b = parts.next()?.parse().ok()?;
    }
    parts.next().is_none().then_some(ip)
}

fn mtu_code(text: &str) -> u8 {
    match text {
        "256" => 1,
        "512" => 2,
        "2048" => 4,
        "4096" => 5,
        _ => 3,
    }
}

/// `rmem.key=` from the command line (32 hex digits), or a fresh one.
fn region_key(boot: &BootInfo) -> RegionKey {
    match boot.cmdline.get("rmem.key") {
        Some(hex) => match u128::from_str_radix(hex, 16) {
            Ok(key) if hex.len() == 32 => RegionKey::from_u128(key),
            _ => fail("rmem.key= must be 32 hex digits (the region's 128-bit key)"),
        },
        None => RegionKey::from_u128((time::rdtsc() as u128) << 64 | time::now_ns() as u128),
    }
}

/// The control link: the far-memory virtio-net NIC (`rmem.nic=bb:dd.f`, else the first).
fn control_link(boot: &BootInfo) -> FrameControlLink<ControlNic, KernelClock> {
    let is_virtio_net =
        |d: &&pci::PciDevice| d.vendor_id == 0x1af4 && matches!(d.device_id, 0x1000 | 0x1041);
    let nic = match boot.cmdline.get("rmem.nic") {
        Some(want) => pci::devices().iter().filter(is_virtio_net).find(|d| address_of(d) == want),
        None => pci::devices().iter().find(is_virtio_net),
    };
    let Some(nic) = nic else {
        fail(
            "no control link: the mlx5 transport exchanges queue-pair parameters over a virtio-net NIC to the memory node",
        );
    };
    let transport = virtio::pci_transport(nic)
        .unwrap_or_else(|_| fail("the control-link NIC is not a virtio device"));
    let net = VirtIONet::new(transport, 2048)
        .unwrap_or_else(|_| fail("the control-link NIC could not be started"));
    FrameControlLink::new(ControlNic { net }, KernelClock, 500_000_000, 8)
}

pub fn init(boot: &'static BootInfo) {
    let nic = find_nic(boot);
    log::info!(
        "mlx5: {} on {nic}",
        supported_device(nic.vendor_id, nic.device_id).unwrap_or("ConnectX")
    );
    let bar = map_bar0(nic);
    let ip_text = boot.cmdline.get("mlx5.ip").unwrap_or(config::mlx5::IP);
    let Some(ip) = parse_ip(ip_text) else { fail("mlx5.ip must be an IPv4 address (a.b.c.d)") };
    let device_config = DeviceConfig {
        command_timeout_ms: config::mlx5::TIMEOUT_MS as u64,
        firmware_timeout_ms: 120_000,
        ip,
    };
    let started = time::now_ns();
    let device = Device::bring_up(bar, KernelDma, KernelClock, device_config).unwrap_or_else(|e| {
        let mut out = remora_kvm::console::emergency_writer();
        let _ = writeln!(out, "\n!!! far memory (mlx5): bring-up failed: {e}");
        remora_kvm::exit(remora_kvm::ExitStatus::Failure)
    });
    let seed = time::rdtsc();
    let qp = QpConfig {
        queue_depth: config::mlx5::QUEUE_DEPTH as u32,
        cq_size: config::mlx5::CQ_SIZE as u32,
        mtu: mtu_code(config::mlx5::MTU),
        psn: remora_mlx5::Psn(seed as u32 & 0xff_ffff),
        udp_sport: 0xc000 | (seed >> 24) as u16 & 0x3fff,
        retry_count: config::mlx5::RETRY_COUNT as u8,
        ..QpConfig::default()
    };
    let region =
        RegionRequest { key: *region_key(boot).as_bytes(), size: config::rmem::REGION_SIZE as u64 };
    let mut control = control_link(boot);
    match Mlx5Transport::connect(device, qp, region, &mut control) {
        Ok(transport) => {
            let peer = *transport.peer();
            log::info!(
                "mlx5: region of {} MiB on the memory node ({}, {}) in {} ms",
                peer.size >> 20,
                peer.qpn,
                peer.rkey,
                (time::now_ns() - started) / 1_000_000
            );
            remora_rmem::handoff::install(Box::new(transport));
        }
        Err(e) => {
            let mut out = remora_kvm::console::emergency_writer();
            let _ =
                writeln!(out, "\n!!! far memory (mlx5): cannot connect to the memory node: {e}");
            remora_kvm::exit(remora_kvm::ExitStatus::Failure);
        }
    }
}

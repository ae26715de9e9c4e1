//! PCI: configuration space access (port I/O, or ECAM when ACPI's MCFG gives one),
//! enumeration of every bus reachable from bus 0, and BAR assignment for devices the
//! firmware left unassigned (qboot assigns none). Drivers find their device in
//! [`devices`] by vendor and device id and use [`config_access`] for the rest.
//!
//! Owns the list of devices and the address windows BARs are carved from. It never
//! touches a device beyond its configuration space.

use core::fmt;

use pci_types::{
    Bar, CommandRegister, ConfigRegionAccess, EndpointHeader, HeaderType, PciAddress, PciHeader,
    PciPciBridgeHeader,
};
use spin::{Mutex, Once};
use x86_64::instructions::port::Port;

use crate::firmware::Ecam;
use crate::format::Size;
use crate::paging;
use crate::start_info::MemoryMapEntry;

pub const MAX_DEVICES: usize = 64;

/// How configuration space is reached.
#[derive(Clone, Copy, Debug)]
pub enum ConfigAccess {
    /// Ports 0xcf8/0xcfc: the first 256 bytes of each function.
    PortIo,
    /// The memory-mapped ECAM window, through the direct map.
    Ecam { virt_base: u64, bus_start: u8, bus_end: u8 },
}

/// Serialises the two-step port I/O access.
static PORT_IO_LOCK: Mutex<()> = Mutex::new(());

impl ConfigAccess {
    fn ecam_address(virt_base: u64, bus_start: u8, address: PciAddress, offset: u16) -> u64 {
        virt_base
            + (((address.bus() - bus_start) as u64) << 20)
            + ((address.device() as u64) << 15)
            + ((address.function() as u64) << 12)
            + (offset as u64 & 0xffc)
    }

    fn in_range(&self, address: PciAddress) -> bool {
        match *self {
            ConfigAccess::PortIo => true,
            ConfigAccess::Ecam { bus_start, bus_end, .. } => {
                (bus_start..=bus_end).contains(&address.bus())
            }
        }
    }
}

impl ConfigRegionAccess for ConfigAccess {
    unsafe fn read(&self, address: PciAddress, offset: u16) -> u32 {
        if !self.in_range(address) {
            return u32::MAX;
        }
        match *self {
            ConfigAccess::PortIo => {
                let _guard = PORT_IO_LOCK.lock();
                // SAFETY: the configuration mechanism #1 ports, under their lock.
                unsafe {
                    Port::<u32>::new(0xcf8).write(port_io_address(address, offset));
                    Port::<u32>::new(0xcfc).read()
                }
            }
            ConfigAccess::Ecam { virt_base, bus_start, .. } => {
                let at = Self::ecam_address(virt_base, bus_start, address, offset);
                // SAFETY: inside the ECAM window (bus checked above), mapped uncached.
                unsafe { (at as *const u32).read_volatile() }
            }
        }
    }

    unsafe fn write(&self, address: PciAddress, offset: u16, value: u32) {
        if !self.in_range(address) {
            return;
        }
        match *self {
            ConfigAccess::PortIo => {
                let _guard = PORT_IO_LOCK.lock();
                // SAFETY: as in `read`.
                unsafe {
                    Port::<u32>::new(0xcf8).write(port_io_address(address, offset));
                    Port::<u32>::new(0xcfc).write(value);
                }
            }
            ConfigAccess::Ecam { virt_base, bus_start, .. } => {
                let at = Self::ecam_address(virt_base, bus_start, address, offset);
                // SAFETY: as in `read`.
                unsafe { (at as *mut u32).write_volatile(value) }
            }
        }
    }
}

fn port_io_address(address: PciAddress, offset: u16) -> u32 {
    0x8000_0000
        | (address.bus() as u32) << 16
        | (address.device() as u32) << 11
        | (address.function() as u32) << 8
        | (offset as u32 & 0xfc)
}

/// One BAR as the kernel sees it after assignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarInfo {
    Memory { address: u64, size: u64, is_64bit: bool, prefetchable: bool },
    Io { port: u32, size: u32 },
}

/// A PCI function found at boot.
#[derive(Clone, Debug)]
pub struct PciDevice {
    pub address: PciAddress,
    pub vendor_id: u16,
    pub device_id: u16,
    pub class: u8,
    pub subclass: u8,
    pub prog_if: u8,
    pub bars: [Option<BarInfo>; 6],
    /// BARs the kernel assigned itself (the firmware had left them at zero).
    pub assigned_by_kernel: u8,
}

impl PciDevice {
    pub fn is(&self, vendor: u16, device: u16) -> bool {
        self.vendor_id == vendor && self.device_id == device
    }

    /// A virtio network card (transitional or modern).
    pub fn is_virtio_net(&self) -> bool {
        self.vendor_id == 0x1af4 && matches!(self.device_id, 0x1000 | 0x1041)
    }

    /// Its address as `bb:dd.f`, as on the command line (`rmem.nic=`, `net.nic=`).
    pub fn bdf(&self) -> heapless::String<16> {
        let mut name = heapless::String::new();
        let a = self.address;
        let _ = core::fmt::write(
            &mut name,
            format_args!("{:02x}:{:02x}.{}", a.bus(), a.device(), a.function()),
        );
        name
    }

    /// The endpoint header, for capability walking and command updates.
    pub fn endpoint(&self) -> Option<EndpointHeader> {
        EndpointHeader::from_header(PciHeader::new(self.address), config_access())
    }

    /// The BAR in `slot` as the `pci_types` crate describes it (for drivers built on it).
    pub fn bar(&self, slot: u8) -> Option<Bar> {
        match self.bars.get(slot as usize).copied().flatten()? {
            BarInfo::Memory { address, size, is_64bit: true, prefetchable } => {
                Some(Bar::Memory64 { address, size, prefetchable })
            }
            BarInfo::Memory { address, size, prefetchable, .. } => {
                Some(Bar::Memory32 { address: address as u32, size: size as u32, prefetchable })
            }
            BarInfo::Io { port, .. } => Some(Bar::Io { port }),
        }
    }
}

fn class_name(class: u8, subclass: u8) -> &'static str {
    match (class, subclass) {
        (0x01, 0x00) => "SCSI storage",
        (0x01, 0x01) => "IDE storage",
        (0x01, 0x06) => "SATA storage",
        (0x01, 0x08) => "NVMe storage",
        (0x01, _) => "storage",
        (0x02, 0x00) => "Ethernet",
        (0x02, _) => "network",
        (0x03, _) => "display",
        (0x06, 0x00) => "host bridge",
        (0x06, 0x01) => "ISA bridge",
        (0x06, 0x04) => "PCI bridge",
        (0x06, _) => "bridge",
        (0x07, _) => "communication",
        (0x0c, 0x03) => "USB",
        (0x0c, 0x05) => "SMBus",
        (0x0c, _) => "serial bus",
        (0x00, _) => "unclassified",
        _ => "other",
    }
}

impl fmt::Display for PciDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02x}:{:02x}.{} {:04x}:{:04x} {} ({:02x}.{:02x})",
            self.address.bus(),
            self.address.device(),
            self.address.function(),
            self.vendor_id,
            self.device_id,
            class_name(self.class, self.subclass),
            self.class,
            self.subclass
        )?;
        for (slot, bar) in self.bars.iter().enumerate() {
            let assigned = if self.assigned_by_kernel & (1 << slot) != 0 { "*" } else { "" };
            match bar {
                Some(BarInfo::Memory { address, size, is_64bit, .. }) => write!(
                    f,
                    " BAR{slot}{assigned}=mem{} {address:#x}+{}",
                    if *is_64bit { "64" } else { "32" },
                    Size(*size)
                )?,
                Some(BarInfo::Io { port, size }) => {
                    write!(f, " BAR{slot}{assigned}=io {port:#x}+{size:#x}")?
                }
                None => {}
            }
        }
        Ok(())
    }
}

static ACCESS: Once<ConfigAccess> = Once::new();
static DEVICES: Once<heapless::Vec<PciDevice, MAX_DEVICES>> = Once::new();

/// Configuration-space access as chosen at boot (port I/O before [`init`]).
pub fn config_access() -> ConfigAccess {
    ACCESS.get().copied().unwrap_or(ConfigAccess::PortIo)
}

/// Every function found at boot.
pub fn devices() -> &'static [PciDevice] {
    DEVICES.get().map(|d| d.as_slice()).unwrap_or(&[])
}

/// The first device with this vendor and device id.
pub fn find(vendor: u16, device: u16) -> Option<&'static PciDevice> {
    devices().iter().find(|d| d.is(vendor, device))
}

/// Address windows BARs are assigned from.
struct Windows {
    mem: core::ops::Range<u64>,
    io: core::ops::Range<u32>,
}

impl Windows {
    fn alloc_mem(&mut self, size: u64) -> Option<u64> {
        let start = self.mem.start.checked_add(size - 1)? & !(size - 1);
        (start + size <= self.mem.end).then(|| {
            self.mem.start = start + size;
            start
        })
    }

    fn alloc_io(&mut self, size: u32) -> Option<u32> {
        let start = (self.io.start + size - 1) & !(size - 1);
        (start + size <= self.io.end).then(|| {
            self.io.start = start + size;
            start
        })
    }
}

/// Enumerates every bus and assigns missing BARs. `ecam` comes from ACPI's MCFG.
pub fn init(ecam: Option<Ecam>, memory_map: &[MemoryMapEntry]) {
    let access = match ecam {
        Some(e)
            if e.base + ((e.bus_end as u64 + 1 - e.bus_start as u64) << 20)
                <= paging::direct_map_end() =>
        {
            ConfigAccess::Ecam {
                virt_base: paging::phys_to_virt(e.base),
                bus_start: e.bus_start,
                bus_end: e.bus_end,
            }
        }
        _ => ConfigAccess::PortIo,
    };
    ACCESS.call_once(|| access);

    // 32-bit memory window: above every RAM or reserved range below the I/O APIC, and
    // above the ECAM window; 16 MiB aligned.
    const IO_APIC: u64 = 0xfec0_0000;
    let mut mem_start =
        memory_map.iter().filter(|e| e.end() <= IO_APIC).map(|e| e.end()).max().unwrap_or(0);
    if let Some(e) = ecam
        && e.base < IO_APIC
    {
        mem_start = mem_start.max(e.base + ((e.bus_end as u64 + 1 - e.bus_start as u64) << 20));
    }
    let mem_start = (mem_start + 0xff_ffff) & !0xff_ffff;
    let mut windows = Windows { mem: mem_start..IO_APIC, io: 0xc000..0x1_0000 };

    let mut found = heapless::Vec::new();
    scan_bus(access, 0, &mut found, &mut windows, 0);
    DEVICES.call_once(|| found);
}

fn scan_bus(
    access: ConfigAccess,
    bus: u8,
    found: &mut heapless::Vec<PciDevice, MAX_DEVICES>,
    windows: &mut Windows,
    depth: u32,
) {
    if depth > 8 {
        return;
    }
    for device in 0..32 {
        let header = PciHeader::new(PciAddress::new(0, bus, device, 0));
        let (vendor, _) = header.id(access);
        if vendor == 0xffff {
            continue;
        }
        let functions = if header.has_multiple_functions(access) { 8 } else { 1 };
        for function in 0..functions {
            let address = PciAddress::new(0, bus, device, function);
            let header = PciHeader::new(address);
            let (vendor_id, device_id) = header.id(access);
            if vendor_id == 0xffff {
                continue;
            }
            let (_, class, subclass, prog_if) = header.revision_and_class(access);
            match header.header_type(access) {
                HeaderType::Endpoint => {
                    let mut dev = PciDevice {
                        address,
                        vendor_id,
                        device_id,
                        class,
                        subclass,
                        prog_if,
                        bars: [None; 6],
                        assigned_by_kernel: 0,
                    };
                    assign_bars(access, &mut dev, windows);
                    if found.push(dev).is_err() {
                        log::warn!("more than {MAX_DEVICES} PCI functions: ignoring {address}");
                    }
                }
                HeaderType::PciPciBridge => {
                    if let Some(bridge) = PciPciBridgeHeader::from_header(header, access) {
                        let secondary = bridge.secondary_bus_number(access);
                        if secondary > bus {
                            scan_bus(access, secondary, found, windows, depth + 1);
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

/// Reads (and sizes) every BAR of `dev`, assigns the ones left at zero, and enables
/// decoding and bus mastering.
fn assign_bars(access: ConfigAccess, dev: &mut PciDevice, windows: &mut Windows) {
    let address = dev.address;
    let mut command = CommandRegister::BUS_MASTER_ENABLE;
    let mut slot = 0u8;
    while slot < 6 {
        let offset = 0x10 + slot as u16 * 4;
        // SAFETY: BAR sizing on a function found on this bus: write all ones, read the
        // mask back, restore. Decoding is off for it while we do (command not yet set).
        let (raw, mask, upper, upper_mask) = unsafe {
            let raw = access.read(address, offset);
            access.write(address, offset, 0xffff_ffff);
            let mask = access.read(address, offset);
            access.write(address, offset, raw);
            let is_64 = raw & 1 == 0 && (raw >> 1) & 3 == 2 && slot < 5;
            if is_64 {
                let upper = access.read(address, offset + 4);
                access.write(address, offset + 4, 0xffff_ffff);
                let upper_mask = access.read(address, offset + 4);
                access.write(address, offset + 4, upper);
                (raw, mask, upper, Some(upper_mask))
            } else {
                (raw, mask, 0, None)
            }
        };
        if mask == 0 || mask == 0xffff_ffff && raw == 0xffff_ffff {
            slot += 1;
            continue;
        }
        if raw & 1 == 1 {
            let size = (!(mask & !0x3) & 0xffff).wrapping_add(1);
            let mut port = raw & !0x3;
            if port == 0 && size != 0 {
                match windows.alloc_io(size) {
                    Some(p) => {
                        port = p;
                        // SAFETY: programming the BAR we just sized.
                        unsafe { access.write(address, offset, p) };
                        dev.assigned_by_kernel |= 1 << slot;
                    }
                    None => log::warn!("{address}: no I/O space left for BAR{slot}"),
                }
            }
            dev.bars[slot as usize] = Some(BarInfo::Io { port, size });
            command |= CommandRegister::IO_ENABLE;
            slot += 1;
        } else {
            let prefetchable = raw & 0x8 != 0;
            let (mut base, size, is_64bit) = match upper_mask {
                Some(upper_mask) => {
                    let full_mask = (upper_mask as u64) << 32 | (mask & !0xf) as u64;
                    ((upper as u64) << 32 | (raw & !0xf) as u64, (!full_mask).wrapping_add(1), true)
                }
                None => ((raw & !0xf) as u64, (!(mask & !0xf)).wrapping_add(1) as u64, false),
            };
            if base == 0 && size != 0 {
                match windows.alloc_mem(size) {
                    Some(b) => {
                        base = b;
                        // SAFETY: programming the BAR (pair) we just sized.
                        unsafe {
                            access.write(address, offset, b as u32);
                            if is_64bit {
                                access.write(address, offset + 4, (b >> 32) as u32);
                            }
                        }
                        dev.assigned_by_kernel |= 1 << slot;
                    }
                    None => log::warn!(
                        "{address}: no memory window left for BAR{slot} ({})",
                        Size(size)
                    ),
                }
            }
            dev.bars[slot as usize] =
                Some(BarInfo::Memory { address: base, size, is_64bit, prefetchable });
            command |= CommandRegister::MEMORY_ENABLE;
            slot += if is_64bit { 2 } else { 1 };
        }
    }
    let mut header = PciHeader::new(address);
    header.update_command(access, |c| c | command);
}

//! The KVM/QEMU platform of Remora: PVH boot into long mode, CPU tables and traps, the
//! serial console, the memory map, page tables with a direct map, ACPI, PCI, the local
//! APIC timer and the TSC clock, the command line, and shutdown with a status.
//!
//! The boot path is [`remora_kvm_start`], entered from the trampoline in `boot.rs`. It
//! brings the machine up in order and hands a [`BootInfo`] to the image's
//! `remora_image_main`, which the image crate defines. The platform knows nothing about
//! the libraries or the application above it.

#![no_std]

extern crate alloc;

pub mod apic;
pub mod boot;
pub mod cmdline;
pub mod console;
mod critical;
pub mod exit;
pub mod firmware;
mod fn_cell;
pub mod format;
pub mod frames;
pub mod gdt;
pub mod kspace;
pub mod paging;
pub mod pci;
pub mod start_info;
pub mod time;
pub mod traps;
pub mod virtio;
pub mod virtio_net;

use core::ops::Range;

use spin::Once;

pub use cmdline::Cmdline;
pub use exit::{ExitStatus, exit};
use format::Size;
pub use pci::PciDevice;
pub use start_info::{MemoryKind, MemoryMapEntry};

/// Usable physical memory ranges handed to the frame allocator.
pub const MAX_FREE_RANGES: usize = 64;

/// What the platform hands the image once the machine is up.
pub struct BootInfo {
    /// The firmware's memory map, sorted.
    pub memory_map: &'static [MemoryMapEntry],
    /// Usable RAM not used by the image, its boot page tables or the first MiB: what the
    /// frame allocator may hand out.
    pub free_memory: &'static [Range<u64>],
    /// Where all physical memory is mapped.
    pub phys_offset: u64,
    pub cmdline: Cmdline<'static>,
    pub image: boot::ImageLayout,
    pub tsc_hz: u64,
    pub apic_timer_hz: u64,
    pub processors: u32,
    /// TSC ticks from kernel entry to the hand-over.
    pub boot_ticks: u64,
    /// The TSC at kernel entry (under QEMU, roughly ticks since the VM started).
    pub entry_tsc: u64,
}

static START_INFO: Once<start_info::StartInfo> = Once::new();
static FREE_MEMORY: Once<heapless::Vec<Range<u64>, MAX_FREE_RANGES>> = Once::new();
static BOOT_INFO: Once<BootInfo> = Once::new();

unsafe extern "Rust" {
    /// The image's entry point, defined by the image crate.
    fn remora_image_main(boot: &'static BootInfo) -> !;
}

/// Stops the machine with a message when booting cannot go on. Usable before anything
/// else is set up.
pub fn early_panic(message: &str) -> ! {
    use core::fmt::Write;
    let mut out = console::emergency_writer();
    let _ = writeln!(out, "\n!!! boot failed: {message}");
    exit(ExitStatus::Failure)
}

/// Brings the machine up and calls the image. Entered from the PVH trampoline with the
/// physical address of the start info.
#[unsafe(no_mangle)]
extern "C" fn remora_kvm_start(start_info_addr: u32) -> ! {
    let entry_tsc = time::rdtsc();
    time::mark_origin(entry_tsc);
    console::init(log::LevelFilter::Info);

    // SAFETY: called once from the trampoline, with the loader's pointer, while the first
    // GiB is identity mapped.
    let info = match unsafe { start_info::StartInfo::read(start_info_addr as u64) } {
        Ok(info) => START_INFO.call_once(|| info),
        Err(e) => {
            let mut buf = heapless::String::<160>::new();
            let _ = core::fmt::write(&mut buf, format_args!("{e}"));
            early_panic(&buf)
        }
    };
    let cmdline = Cmdline::new(info.cmdline());
    if let Some(level) = cmdline.get("loglevel") {
        match level.parse::<log::LevelFilter>() {
            Ok(level) => log::set_max_level(level),
            Err(_) => log::warn!(
                "loglevel={level} is not a level (off, error, warn, info, debug, trace): keeping info"
            ),
        }
    }

    gdt::init();
    traps::init();
    let layout = boot::image_layout();
    // SAFETY: once, on the boot CPU, under the trampoline's identity map.
    let table_frames = unsafe { paging::init(info.memory_map(), &layout) };
    kspace::init();

    apic::init();
    time::calibrate();

    log::info!(
        "Remora on KVM/QEMU: image {:#x}-{:#x} ({}), TSC {} MHz, APIC timer {} MHz",
        layout.start,
        layout.end,
        Size(layout.end - layout.start),
        time::tsc_hz() / 1_000_000,
        time::apic_timer_hz() / 1_000_000
    );
    if !cmdline.as_str().is_empty() {
        log::info!("command line: {}", cmdline.as_str());
    }
    if info.cmdline_truncated {
        log::warn!("command line longer than {} bytes: cut", start_info::MAX_CMDLINE);
    }
    let mut total = 0;
    for entry in info.memory_map() {
        log::info!("memory {entry}");
        if entry.kind == MemoryKind::Usable {
            total += entry.size;
        }
    }
    if info.dropped_entries > 0 {
        log::warn!("memory map: {} entries beyond the first 64 ignored", info.dropped_entries);
    }

    let free = free_ranges(info.memory_map(), &layout, &table_frames);
    let free_total: u64 = free.iter().map(|r| r.end - r.start).sum();
    log::info!(
        "memory: {} usable, {} free for allocation ({} ranges)",
        Size(total),
        Size(free_total),
        free.len()
    );
    let free = FREE_MEMORY.call_once(|| free);

    let acpi = match firmware::read(info.rsdp) {
        Ok(acpi) => {
            log::info!(
                "ACPI: RSDP {}, {} processor(s), {} I/O APIC(s), ECAM {}",
                if acpi.rsdp != 0 { "from the loader" } else { "found in the BIOS area" },
                acpi.processors,
                acpi.io_apics.len(),
                match acpi.ecam {
                    Some(e) => {
                        let mut s = heapless::String::<48>::new();
                        let _ = core::fmt::write(
                            &mut s,
                            format_args!("{:#x} buses {}-{}", e.base, e.bus_start, e.bus_end),
                        );
                        s
                    }
                    None => heapless::String::try_from("none (port I/O)").unwrap_or_default(),
                }
            );
            Some(acpi)
        }
        Err(e) => {
            log::warn!("{e}; continuing with port I/O for PCI and one processor");
            None
        }
    };

    pci::init(acpi.as_ref().and_then(|a| a.ecam), info.memory_map());
    for device in pci::devices() {
        log::info!("pci {device}");
    }

    let boot_ticks = time::rdtsc() - entry_tsc;
    let boot = BOOT_INFO.call_once(|| BootInfo {
        memory_map: info.memory_map(),
        free_memory: free.as_slice(),
        phys_offset: paging::PHYS_OFFSET,
        cmdline,
        image: layout,
        tsc_hz: time::tsc_hz(),
        apic_timer_hz: time::apic_timer_hz(),
        processors: acpi.as_ref().map_or(1, |a| a.processors.max(1)),
        boot_ticks,
        entry_tsc,
    });
    log::info!(
        "platform up in {} us (since kernel entry); {} us since the VM started",
        time::tsc_to_ns(boot_ticks) / 1000,
        time::tsc_to_ns(entry_tsc + boot_ticks) / 1000
    );
    // SAFETY: the image crate defines `remora_image_main` with this signature.
    unsafe { remora_image_main(boot) }
}

/// Usable RAM minus the first MiB, the image and the boot page tables.
fn free_ranges(
    map: &[MemoryMapEntry],
    layout: &boot::ImageLayout,
    tables: &Range<u64>,
) -> heapless::Vec<Range<u64>, MAX_FREE_RANGES> {
    const LOW: u64 = 0x10_0000;
    let taken = [0..LOW, layout.start..layout.end, tables.clone()];
    let mut out = heapless::Vec::new();
    for entry in map.iter().filter(|e| e.kind == MemoryKind::Usable) {
        let mut pieces: heapless::Vec<Range<u64>, 8> = heapless::Vec::new();
        let _ = pieces.push(entry.start..entry.end());
        for t in &taken {
            let mut next: heapless::Vec<Range<u64>, 8> = heapless::Vec::new();
            for p in &pieces {
                if t.end <= p.start || t.start >= p.end {
                    let _ = next.push(p.clone());
                    continue;
                }
                if p.start < t.start {
                    let _ = next.push(p.start..t.start);
                }
                if t.end < p.end {
                    let _ = next.push(t.end..p.end);
                }
            }
            pieces = next;
        }
        for p in pieces {
            let start = (p.start + 0xfff) & !0xfff;
            let end = p.end & !0xfff;
            if end > start && out.push(start..end).is_err() {
                log::warn!(
                    "more than {MAX_FREE_RANGES} free memory ranges: ignoring {start:#x}-{end:#x}"
                );
            }
        }
    }
    out
}

//! The kernel's page tables as built at boot: the image mapped at its link address with
//! per-section permissions (text read-only and executable, everything else no-execute, a
//! guard page below the boot stack, page 0 unmapped), and a direct map of all physical
//! memory at [`PHYS_OFFSET`] (2 MiB pages; no-execute; uncached where there is no RAM).
//!
//! Owns the boot-time construction only, with frames taken by a bump allocator from the
//! memory right after the image; those frames are reported to the caller so that the
//! frame allocator never hands them out. Run-time mapping belongs to the mmu library.

use core::ops::Range;
use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::registers::control::{Cr3, Cr3Flags};
use x86_64::registers::model_specific::{Efer, EferFlags};
use x86_64::structures::paging::PhysFrame;
use x86_64::{PhysAddr, VirtAddr};

use crate::boot::ImageLayout;
use crate::start_info::{MemoryKind, MemoryMapEntry};

/// Where physical memory appears in the kernel's address space.
pub const PHYS_OFFSET: u64 = 0xffff_8000_0000_0000;

const PAGE: u64 = 4096;
const HUGE: u64 = 2 * 1024 * 1024;
const GIB: u64 = 1024 * 1024 * 1024;
/// The trampoline identity-maps the first GiB; boot page tables must come from there.
const BOOT_IDENTITY_END: u64 = GIB;

pub const PRESENT: u64 = 1 << 0;
pub const WRITABLE: u64 = 1 << 1;
pub const WRITE_THROUGH: u64 = 1 << 3;
pub const NO_CACHE: u64 = 1 << 4;
pub const HUGE_PAGE: u64 = 1 << 7;
pub const GLOBAL: u64 = 1 << 8;
pub const NO_EXECUTE: u64 = 1 << 63;
const ADDRESS_MASK: u64 = 0x000f_ffff_ffff_f000;

static DIRECT_MAP_END: AtomicU64 = AtomicU64::new(0);
static STACK_GUARD: AtomicU64 = AtomicU64::new(0);

/// The kernel virtual address of physical address `phys`.
pub fn phys_to_virt(phys: u64) -> u64 {
    phys + PHYS_OFFSET
}

/// The physical address behind a direct-map address, if `virt` is one.
pub fn virt_to_phys(virt: u64) -> Option<u64> {
    let end = DIRECT_MAP_END.load(Ordering::Relaxed);
    (virt >= PHYS_OFFSET && virt - PHYS_OFFSET < end).then(|| virt - PHYS_OFFSET)
}

/// The end of the physical range covered by the direct map.
pub fn direct_map_end() -> u64 {
    DIRECT_MAP_END.load(Ordering::Relaxed)
}

/// A bump allocator over one physical range, identity mapped during boot.
struct BootFrames {
    range: Range<u64>,
    next: u64,
}

impl BootFrames {
    fn alloc_table(&mut self) -> u64 {
        if self.next + PAGE > self.range.end {
            crate::early_panic("out of memory while building the boot page tables");
        }
        let frame = self.next;
        self.next += PAGE;
        // SAFETY: the frame is usable RAM below 1 GiB (identity mapped by the trampoline)
        // and belongs to nothing else yet.
        unsafe { core::ptr::write_bytes(frame as *mut u8, 0, PAGE as usize) };
        frame
    }
}

/// Page tables under construction. Tables are reached through the boot identity map.
struct Builder {
    root: u64,
    frames: BootFrames,
}

impl Builder {
    /// The entry for `virt` at `level` (4 = PML4 ... 1 = PT), creating tables above it.
    fn entry(&mut self, virt: u64, level: u32) -> *mut u64 {
        let mut table = self.root;
        for current in (level + 1..=4).rev() {
            let index = (virt >> (12 + 9 * (current - 1))) & 0x1ff;
            let slot = (table + index * 8) as *mut u64;
            // SAFETY: `table` is a zeroed or filled page-table frame from `frames` (or the
            // root), identity mapped; the index is < 512.
            let value = unsafe { slot.read() };
            table = if value & PRESENT == 0 {
                let next = self.frames.alloc_table();
                // SAFETY: as above.
                unsafe { slot.write(next | PRESENT | WRITABLE) };
                next
            } else {
                value & ADDRESS_MASK
            };
        }
        let index = (virt >> (12 + 9 * (level - 1))) & 0x1ff;
        (table + index * 8) as *mut u64
    }

    fn map(&mut self, virt: u64, phys: u64, level: u32, flags: u64) {
        let slot = self.entry(virt, level);
        // SAFETY: `slot` points into a page-table frame owned by this builder.
        unsafe { slot.write(phys | flags) };
    }
}

/// Builds the kernel page tables, switches to them and returns the physical range whose
/// frames now hold them.
///
/// # Safety
/// Runs once, on the boot CPU, while the trampoline's identity map is active; `map` is
/// the firmware memory map and `layout` the image's own layout.
pub unsafe fn init(map: &[MemoryMapEntry], layout: &ImageLayout) -> Range<u64> {
    let start = align_up(layout.end, PAGE);
    let region = map
        .iter()
        .filter(|e| e.kind == MemoryKind::Usable)
        .map(|e| start.max(e.start)..e.end().min(BOOT_IDENTITY_END))
        .find(|r| r.end > r.start && r.end - r.start >= 64 * PAGE)
        .unwrap_or_else(|| crate::early_panic("no usable memory after the image"));
    // Without NX (EFER.NXE clear) bit 63 is reserved: leave it out.
    let nx = if Efer::read().contains(EferFlags::NO_EXECUTE_ENABLE) { NO_EXECUTE } else { 0 };
    let mut builder = Builder {
        root: 0,
        frames: BootFrames { range: region.clone(), next: align_up(region.start, PAGE) },
    };
    builder.root = builder.frames.alloc_table();

    // The image: page by page with the permissions of its section.
    let mut page = layout.start & !(PAGE - 1);
    while page < layout.end {
        let flags = if page == layout.stack_guard {
            0
        } else if page >= layout.text.0 && page < layout.text.1 {
            PRESENT | GLOBAL
        } else if page >= layout.rodata.0 && page < layout.rodata.1 {
            PRESENT | GLOBAL | nx
        } else if page < layout.text.0 {
            // The ELF notes before .text.
            PRESENT | GLOBAL | nx
        } else {
            PRESENT | WRITABLE | GLOBAL | nx
        };
        if flags != 0 {
            builder.map(page, page, 1, flags);
        }
        page += PAGE;
    }

    // The direct map: everything up to the end of the highest RAM, and at least 4 GiB so
    // that the local APIC, the I/O APIC, ECAM and 32-bit BARs are covered.
    let ram_end = map.iter().filter(|e| is_ram(e.kind)).map(|e| e.end()).max().unwrap_or(0);
    let end = align_up(ram_end.max(4 * GIB), GIB);
    let mut phys = 0;
    while phys < end {
        let chunk = phys..phys + HUGE;
        let is_ram =
            map.iter().any(|e| is_ram(e.kind) && e.start < chunk.end && e.end() > chunk.start);
        let cache = if is_ram { 0 } else { NO_CACHE | WRITE_THROUGH };
        builder.map(
            phys_to_virt(phys),
            phys,
            2,
            PRESENT | WRITABLE | HUGE_PAGE | GLOBAL | nx | cache,
        );
        phys += HUGE;
    }
    DIRECT_MAP_END.store(end, Ordering::Relaxed);
    STACK_GUARD.store(layout.stack_guard, Ordering::Relaxed);

    let root = PhysFrame::containing_address(PhysAddr::new(builder.root));
    // SAFETY: the new tables map the running code, its stack and data at the same
    // addresses as the boot tables do.
    unsafe { Cr3::write(root, Cr3Flags::empty()) };
    region.start..builder.frames.next
}

/// The physical address of the active top-level table.
pub fn root_table() -> u64 {
    Cr3::read().0.start_address().as_u64()
}

/// Whether `virt` is mapped in the active page tables (walked through the direct map).
pub fn is_mapped(virt: u64) -> bool {
    if VirtAddr::try_new(virt).is_err() {
        return false;
    }
    let mut table = root_table();
    for level in (1..=4).rev() {
        let index = (virt >> (12 + 9 * (level - 1))) & 0x1ff;
        // SAFETY: page-table frames are RAM, covered by the direct map.
        let entry = unsafe { ((phys_to_virt(table) + index * 8) as *const u64).read_volatile() };
        if entry & PRESENT == 0 {
            return false;
        }
        if level == 1 || entry & HUGE_PAGE != 0 {
            return true;
        }
        table = entry & ADDRESS_MASK;
    }
    true
}

/// A hint for crash reports about where `virt` lies.
pub fn describe_address(virt: u64) -> Option<&'static str> {
    let guard = STACK_GUARD.load(Ordering::Relaxed);
    if virt < PAGE {
        Some("in page 0: a null pointer dereference")
    } else if guard != 0 && (guard..guard + PAGE).contains(&virt) {
        Some("in the guard page below the boot stack: the main thread's stack overflowed")
    } else if VirtAddr::try_new(virt).is_err() {
        Some("a non-canonical address")
    } else {
        None
    }
}

/// Memory that is RAM (cacheable), whatever it is used for.
fn is_ram(kind: MemoryKind) -> bool {
    matches!(
        kind,
        MemoryKind::Usable
            | MemoryKind::AcpiReclaimable
            | MemoryKind::AcpiNvs
            | MemoryKind::Persistent
    )
}

fn align_up(value: u64, align: u64) -> u64 {
    (value + align - 1) & !(align - 1)
}

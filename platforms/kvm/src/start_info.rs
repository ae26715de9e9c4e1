//! The PVH `hvm_start_info` handed over by the loader: the memory map, the kernel command
//! line and the ACPI RSDP address.
//!
//! Owns the copies of that information: the loader leaves it in low memory that is
//! reused later, so [`StartInfo::read`] copies everything out while the boot identity map
//! is still in place. It never interprets the memory map beyond sorting and filtering.

use core::fmt;

const START_INFO_MAGIC: u32 = 0x336e_c578;
/// Entries kept from the loader's map; QEMU gives fewer than ten.
pub const MAX_MEMORY_MAP_ENTRIES: usize = 64;
/// Longest kernel command line kept; a longer one is cut and the cut is logged.
pub const MAX_CMDLINE: usize = 1024;

#[repr(C)]
#[derive(Clone, Copy)]
struct RawStartInfo {
    magic: u32,
    version: u32,
    flags: u32,
    nr_modules: u32,
    modlist_paddr: u64,
    cmdline_paddr: u64,
    rsdp_paddr: u64,
    memmap_paddr: u64,
    memmap_entries: u32,
    reserved: u32,
}
const _: () = assert!(core::mem::size_of::<RawStartInfo>() == 56);

#[repr(C)]
#[derive(Clone, Copy)]
struct RawMemmapEntry {
    addr: u64,
    size: u64,
    kind: u32,
    reserved: u32,
}
const _: () = assert!(core::mem::size_of::<RawMemmapEntry>() == 24);

/// What a range of physical memory is, as the firmware says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryKind {
    Usable,
    Reserved,
    AcpiReclaimable,
    AcpiNvs,
    Unusable,
    Disabled,
    Persistent,
    Other(u32),
}

impl MemoryKind {
    fn from_raw(kind: u32) -> Self {
        match kind {
            1 => Self::Usable,
            2 => Self::Reserved,
            3 => Self::AcpiReclaimable,
            4 => Self::AcpiNvs,
            5 => Self::Unusable,
            6 => Self::Disabled,
            7 => Self::Persistent,
            other => Self::Other(other),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryMapEntry {
    pub start: u64,
    pub size: u64,
    pub kind: MemoryKind,
}

impl MemoryMapEntry {
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.size)
    }
}

impl fmt::Display for MemoryMapEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{:#014x}-{:#014x}) {:>9} {:?}",
            self.start,
            self.end(),
            crate::format::Size(self.size),
            self.kind
        )
    }
}

/// Why the start info could not be used.
#[derive(Clone, Copy, Debug)]
pub enum StartInfoError {
    BadMagic(u32),
    NoMemoryMap,
}

impl fmt::Display for StartInfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadMagic(m) => write!(
                f,
                "start info magic is {m:#x}, expected {START_INFO_MAGIC:#x}: not booted by a PVH loader"
            ),
            Self::NoMemoryMap => write!(f, "start info has no memory map (version 0 loader)"),
        }
    }
}

/// The loader's information, copied out of low memory.
pub struct StartInfo {
    entries: [MemoryMapEntry; MAX_MEMORY_MAP_ENTRIES],
    entry_count: usize,
    cmdline: [u8; MAX_CMDLINE],
    cmdline_len: usize,
    pub cmdline_truncated: bool,
    pub rsdp: Option<u64>,
    pub dropped_entries: usize,
}

impl StartInfo {
    /// Copies the start info at physical `addr`.
    ///
    /// # Safety
    /// Must run while the boot identity map covers `addr`, the memory map and the command
    /// line (the first 1 GiB), and `addr` must be what the PVH loader passed in `ebx`.
    pub unsafe fn read(addr: u64) -> Result<StartInfo, StartInfoError> {
        // SAFETY: the caller guarantees `addr` points to the loader's start info, identity
        // mapped; the struct is plain integers, so any bit pattern is valid.
        let raw = unsafe { core::ptr::read_unaligned(addr as *const RawStartInfo) };
        if raw.magic != START_INFO_MAGIC {
            return Err(StartInfoError::BadMagic(raw.magic));
        }
        if raw.version < 1 || raw.memmap_paddr == 0 || raw.memmap_entries == 0 {
            return Err(StartInfoError::NoMemoryMap);
        }
        let mut info = StartInfo {
            entries: [MemoryMapEntry { start: 0, size: 0, kind: MemoryKind::Reserved };
                MAX_MEMORY_MAP_ENTRIES],
            entry_count: 0,
            cmdline: [0; MAX_CMDLINE],
            cmdline_len: 0,
            cmdline_truncated: false,
            rsdp: (raw.rsdp_paddr != 0).then_some(raw.rsdp_paddr),
            dropped_entries: 0,
        };
        for i in 0..raw.memmap_entries as usize {
            let at = raw.memmap_paddr + (i * core::mem::size_of::<RawMemmapEntry>()) as u64;
            // SAFETY: within the loader's table of `memmap_entries` entries, identity mapped.
            let e = unsafe { core::ptr::read_unaligned(at as *const RawMemmapEntry) };
            if e.size == 0 {
                continue; // qboot gives zero-length entries
            }
            if info.entry_count == MAX_MEMORY_MAP_ENTRIES {
                info.dropped_entries += 1;
                continue;
            }
            info.entries[info.entry_count] =
                MemoryMapEntry { start: e.addr, size: e.size, kind: MemoryKind::from_raw(e.kind) };
            info.entry_count += 1;
        }
        info.entries[..info.entry_count].sort_unstable_by_key(|e| e.start);
        if raw.cmdline_paddr != 0 {
            let mut len = 0;
            while len < MAX_CMDLINE {
                // SAFETY: a NUL-terminated string left by the loader, identity mapped;
                // reading stops at the NUL or at MAX_CMDLINE.
                let b = unsafe { core::ptr::read((raw.cmdline_paddr + len as u64) as *const u8) };
                if b == 0 {
                    break;
                }
                info.cmdline[len] = b;
                len += 1;
            }
            info.cmdline_truncated = len == MAX_CMDLINE;
            info.cmdline_len = len;
        }
        Ok(info)
    }

    /// The memory map, sorted by address, without empty entries.
    pub fn memory_map(&self) -> &[MemoryMapEntry] {
        &self.entries[..self.entry_count]
    }

    /// The kernel command line (`-append`), or "" when absent or not UTF-8.
    pub fn cmdline(&self) -> &str {
        core::str::from_utf8(&self.cmdline[..self.cmdline_len]).unwrap_or("")
    }
}

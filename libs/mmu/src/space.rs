//! One address space: a 4-level page-table tree and the operations on it.
//!
//! Owns: the tree under one root (PML4): mapping 4 KiB and 2 MiB pages, unmapping,
//! changing protection, translating, creating and freeing intermediate tables, handing
//! out leaf entries as [`AtomicPte`] for the pager, and harvesting ACCESSED and DIRTY
//! bits for the evictor.
//!
//! Must never: allocate anything but page tables, and those only through
//! [`PhysMemory`]; flush a TLB by itself (every operation that leaves stale translations
//! adds the page to the caller's [`FlushBatch`]), except when freeing tables, where the
//! flush must precede the free; overwrite an entry that holds a far-page state (that
//! entry belongs to the pager); decide policy (which page to evict, when to fetch).
//!
//! Concurrency: operations that change the shape of the tree take `&mut self`. Reading
//! and the far-page transitions take `&self`, so the kernel can put an address space
//! behind a reader-writer lock and let faults, the evictor and lookups share it. Every
//! entry access is atomic, and every read-modify-write of a live leaf is one atomic
//! instruction or a compare-and-swap, so the ACCESSED and DIRTY bits the CPU sets are
//! never lost.
//!
//! Addresses are handled as 48-bit offsets (the canonical sign extension stripped), so a
//! range may run from the lower half into the upper half without touching the hole.

use core::fmt;

use x86_64::structures::paging::{
    Page, PageSize, PageTableFlags, PhysFrame, Size2MiB, Size4KiB, page::PageRange,
};
use x86_64::{PhysAddr, VirtAddr};

use crate::entry::{
    ACCESSED, ADDR_MASK, AtomicPte, ClearBits, DIRTY, FarPte, HUGE, PRESENT, PresentPte,
};
use crate::table::{ENTRIES, Entries, PhysMemory, entries};
use crate::tlb::{FlushBatch, Tlb};

/// Addresses below this many bytes (2^48) are reachable with 4-level paging.
const SPACE_END: u64 = 1 << 48;
const VA_MASK: u64 = SPACE_END - 1;
/// Physical addresses stop at 2^52.
const PHYS_END: u64 = 1 << 52;

/// Flags of an entry that points to a lower table. WRITABLE and USER_ACCESSIBLE are
/// ANDed with the leaf's by the CPU, so setting them here leaves the leaf in charge.
const TABLE_FLAGS: u64 =
    PRESENT | PageTableFlags::WRITABLE.bits() | PageTableFlags::USER_ACCESSIBLE.bits();

/// Pages scanned by one [`AddressSpace::scan`], the evictor's batch.
pub const SCAN_PAGES: usize = 32;

/// Bytes covered by one entry of a table at `level` (1 = page table, 4 = PML4).
const fn span(level: u8) -> u64 {
    1 << (12 + 9 * (level as u32 - 1))
}

/// Index of `va`'s entry in its table at `level`.
const fn index(va: u64, level: u8) -> usize {
    ((va >> (12 + 9 * (level as u32 - 1))) & (ENTRIES as u64 - 1)) as usize
}

fn to48(addr: VirtAddr) -> u64 {
    addr.as_u64() & VA_MASK
}

fn virt(va: u64) -> VirtAddr {
    VirtAddr::new_truncate(va)
}

fn range48<S: PageSize>(pages: PageRange<S>) -> (u64, u64) {
    let start = to48(pages.start.start_address());
    let end = to48(pages.end.start_address());
    (start, end.max(start))
}

fn table_of(raw: u64) -> PhysFrame {
    PhysFrame::containing_address(PhysAddr::new(raw & ADDR_MASK))
}

fn flags_of(raw: u64) -> PageTableFlags {
    PageTableFlags::from_bits_retain(raw & !ADDR_MASK)
}

/// Whether `raw`, found at `level`, maps a page rather than pointing to a table.
fn is_leaf(raw: u64, level: u8) -> bool {
    level == 1 || (level <= 3 && raw & HUGE != 0)
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Size4KiB {}
    impl Sealed for super::Size2MiB {}
}

/// The page sizes this crate maps: 4 KiB (level-1 entries) and 2 MiB (level 2).
pub trait LeafSize: PageSize + sealed::Sealed {
    /// The table level whose entries map pages of this size.
    const LEVEL: u8;
}

impl LeafSize for Size4KiB {
    const LEVEL: u8 = 1;
}

impl LeafSize for Size2MiB {
    const LEVEL: u8 = 2;
}

/// The size of a mapping found by [`AddressSpace::translate`]. 1 GiB pages are never
/// created here, but tables built by others (boot code) may hold them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Granule {
    /// A 4 KiB page.
    Page4KiB,
    /// A 2 MiB page.
    Page2MiB,
    /// A 1 GiB page.
    Page1GiB,
}

impl Granule {
    /// The page size in bytes.
    pub const fn bytes(self) -> u64 {
        match self {
            Self::Page4KiB => Size4KiB::SIZE,
            Self::Page2MiB => Size2MiB::SIZE,
            Self::Page1GiB => 1 << 30,
        }
    }

    const fn of_level(level: u8) -> Self {
        match level {
            1 => Self::Page4KiB,
            2 => Self::Page2MiB,
            _ => Self::Page1GiB,
        }
    }
}

/// Where a virtual address leads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// The physical address of the byte (page offset included).
    pub phys: PhysAddr,
    /// The size of the page that maps it.
    pub granule: Granule,
    /// The leaf entry, with its flags and ACCESSED and DIRTY bits.
    pub entry: PresentPte,
}

impl Translation {
    /// The leaf's flags.
    pub fn flags(&self) -> PageTableFlags {
        self.entry.flags()
    }
}

/// What [`AddressSpace::unmap`] took out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unmapped<S: PageSize> {
    /// The frame that was mapped; the caller owns it again once the batch is flushed.
    pub frame: PhysFrame<S>,
    /// The entry's last flags, including the ACCESSED and DIRTY bits the CPU set.
    pub flags: PageTableFlags,
}

impl<S: PageSize> Unmapped<S> {
    /// Whether the page was written since its DIRTY bit was last cleared.
    pub fn dirty(&self) -> bool {
        self.flags.contains(PageTableFlags::DIRTY)
    }

    /// Whether the page was used since its ACCESSED bit was last cleared.
    pub fn accessed(&self) -> bool {
        self.flags.contains(PageTableFlags::ACCESSED)
    }
}

/// The ACCESSED and DIRTY bits of [`SCAN_PAGES`] consecutive pages, one bit per page
/// (bit `i` is page `first + i`), as they were before the scan cleared them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scan {
    /// The first page scanned.
    pub first: Page,
    /// Pages that are mapped.
    pub present: u32,
    /// Mapped pages that were accessed.
    pub accessed: u32,
    /// Mapped pages that were written.
    pub dirty: u32,
}

impl Scan {
    /// Mapped pages that were not accessed: the eviction candidates.
    pub fn idle(&self) -> u32 {
        self.present & !self.accessed
    }

    /// Page `i` of the scanned window (`i < 32`).
    pub fn page(&self, i: usize) -> Page {
        Page::containing_address(virt(
            to48(self.first.start_address()) + (i as u64) * Size4KiB::SIZE,
        ))
    }
}

/// Why a page-table operation failed. Every variant names what to do about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// The page is already mapped.
    AlreadyMapped {
        /// The page.
        at: VirtAddr,
    },
    /// The entry holds a far-page state (remote, in flight, writing back): the pager
    /// owns it and moves it with [`AtomicPte`] operations.
    FarState {
        /// The page.
        at: VirtAddr,
        /// What the entry holds.
        state: FarPte,
    },
    /// The page is not mapped.
    NotMapped {
        /// The page.
        at: VirtAddr,
    },
    /// No page table covers the page yet.
    NoTable {
        /// The page.
        at: VirtAddr,
    },
    /// [`PhysMemory::alloc_table`] had no table to give.
    OutOfTables,
    /// A 2 MiB (or 1 GiB) page covers the 4 KiB page asked for.
    HugePageInTheWay {
        /// The address asked for.
        at: VirtAddr,
    },
    /// A table of 4 KiB mappings sits where a 2 MiB page was asked for.
    TableInTheWay {
        /// The 2 MiB page.
        at: VirtAddr,
    },
    /// The flags hold HUGE_PAGE (implied by the page size) or bits of the address field.
    InvalidFlags {
        /// The flags given.
        flags: PageTableFlags,
    },
    /// The frames of a range would run past the 52-bit physical address space.
    FrameOutOfRange,
    /// An intermediate entry is neither empty nor present: something wrote garbage.
    CorruptEntry {
        /// The address being walked.
        at: VirtAddr,
        /// The table level of the entry (4 = PML4).
        level: u8,
        /// The entry's bits.
        raw: u64,
    },
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AlreadyMapped { at } => {
                write!(f, "{at:?} is already mapped: unmap it first")
            }
            Self::FarState { at, state } => write!(
                f,
                "{at:?} holds far-page state {state:?}: the pager owns it, change it through its entry"
            ),
            Self::NotMapped { at } => write!(f, "{at:?} is not mapped"),
            Self::NoTable { at } => {
                write!(f, "no page table covers {at:?}: call ensure_tables for its range first")
            }
            Self::OutOfTables => {
                write!(f, "out of memory for page tables: free frames or free empty tables")
            }
            Self::HugePageInTheWay { at } => {
                write!(f, "a 2 MiB or 1 GiB page covers {at:?}: unmap it, or work on it as a whole")
            }
            Self::TableInTheWay { at } => write!(
                f,
                "4 KiB mappings sit where the 2 MiB page {at:?} should go: unmap them and free empty tables"
            ),
            Self::InvalidFlags { flags } => write!(
                f,
                "flags {flags:?} are not allowed: leave out HUGE_PAGE (the page size sets it) and address bits"
            ),
            Self::FrameOutOfRange => {
                write!(f, "the frames run past the 52-bit physical address space")
            }
            Self::CorruptEntry { at, level, raw } => {
                write!(f, "corrupt level-{level} entry {raw:#018x} on the walk to {at:?}")
            }
        }
    }
}

impl core::error::Error for MapError {}

/// Why a walk stopped above the level it was asked for.
#[derive(Clone, Copy, Debug)]
enum Stop {
    /// An empty entry at this level: the whole `span(level)` around the address is free.
    Missing { level: u8 },
    /// A huge page maps the address.
    Huge,
    /// A non-present, non-zero intermediate entry.
    Corrupt { level: u8, raw: u64 },
}

impl Stop {
    fn error(self, va: u64, missing: MapError) -> MapError {
        match self {
            Self::Missing { .. } => missing,
            Self::Huge => MapError::HugePageInTheWay { at: virt(va) },
            Self::Corrupt { level, raw } => MapError::CorruptEntry { at: virt(va), level, raw },
        }
    }
}

/// The leaf bits for `flags` at `level`: PRESENT added, HUGE_PAGE added for 2 MiB.
fn leaf_bits(flags: PageTableFlags, level: u8) -> Result<u64, MapError> {
    if flags.contains(PageTableFlags::HUGE_PAGE) || flags.bits() & ADDR_MASK != 0 {
        return Err(MapError::InvalidFlags { flags });
    }
    Ok(flags.bits() | PRESENT | if level == 2 { HUGE } else { 0 })
}

/// Why a leaf entry that is not an empty slot cannot be mapped over.
fn occupied(va: u64, level: u8, raw: u64) -> MapError {
    let at = virt(va);
    match FarPte::decode(raw) {
        FarPte::Present(_) if !is_leaf(raw, level) => MapError::TableInTheWay { at },
        FarPte::Present(_) => MapError::AlreadyMapped { at },
        state => MapError::FarState { at, state },
    }
}

/// Checks that `raw`, the entry of `va` at `level`, is a present page of that size.
fn mapped_leaf(va: u64, level: u8, raw: u64) -> Result<(), MapError> {
    let at = virt(va);
    match FarPte::decode(raw) {
        FarPte::Untouched => Err(MapError::NotMapped { at }),
        FarPte::Present(_) if !is_leaf(raw, level) => Err(MapError::TableInTheWay { at }),
        FarPte::Present(_) => Ok(()),
        state => Err(MapError::FarState { at, state }),
    }
}

/// A page-table tree and the memory its tables live in.
pub struct AddressSpace<M: PhysMemory> {
    mem: M,
    root: PhysFrame,
}

impl<M: PhysMemory> fmt::Debug for AddressSpace<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddressSpace").field("root", &self.root).finish_non_exhaustive()
    }
}

impl<M: PhysMemory> AddressSpace<M> {
    /// An empty address space with a fresh root table from `mem`.
    pub fn new(mut mem: M) -> Result<Self, MapError> {
        let root = mem.alloc_table().ok_or(MapError::OutOfTables)?;
        Ok(Self { mem, root })
    }

    /// Takes over an existing tree (the one the boot code built).
    ///
    /// # Safety
    ///
    /// `root` and every table reachable from it must satisfy [`PhysMemory`]'s contract
    /// for `mem`; [`free_empty_tables`](Self::free_empty_tables) and
    /// [`destroy`](Self::destroy) hand such tables to `mem.free_table`.
    #[allow(unsafe_code)]
    pub unsafe fn from_root(mem: M, root: PhysFrame) -> Self {
        Self { mem, root }
    }

    /// The root table (what CR3 points to when this space is active).
    pub fn root(&self) -> PhysFrame {
        self.root
    }

    /// The memory the tables live in.
    pub fn memory(&self) -> &M {
        &self.mem
    }

    fn entries(&self, table: PhysFrame) -> &Entries {
        entries(&self.mem, table)
    }

    /// The entry of `va` at `level`, walking existing tables only.
    fn walk(&self, va: u64, level: u8) -> Result<&AtomicPte, Stop> {
        let mut table = self.root;
        let mut at = 4;
        loop {
            let entry = &self.entries(table)[index(va, at)];
            if at == level {
                return Ok(entry);
            }
            let raw = entry.load_raw();
            if raw == 0 {
                return Err(Stop::Missing { level: at });
            }
            if raw & PRESENT == 0 {
                return Err(Stop::Corrupt { level: at, raw });
            }
            if is_leaf(raw, at) {
                return Err(Stop::Huge);
            }
            table = table_of(raw);
            at -= 1;
        }
    }

    /// The table that holds `va`'s entry at `level`, creating missing tables above it.
    fn ensure_path(&mut self, va: u64, level: u8) -> Result<PhysFrame, MapError> {
        let mut table = self.root;
        for at in (level + 1..=4).rev() {
            let i = index(va, at);
            let raw = self.entries(table)[i].load_raw();
            table = if raw == 0 {
                let new = self.mem.alloc_table().ok_or(MapError::OutOfTables)?;
                debug_assert!(
                    self.entries(new).iter().all(|e| e.load_raw() == 0),
                    "PhysMemory::alloc_table gave a table that is not zeroed"
                );
                // The entry is zero, and the CPU never writes a non-present entry.
                self.entries(table)[i].store_raw(new.start_address().as_u64() | TABLE_FLAGS);
                new
            } else if raw & PRESENT == 0 {
                return Err(MapError::CorruptEntry { at: virt(va), level: at, raw });
            } else if is_leaf(raw, at) {
                return Err(MapError::HugePageInTheWay { at: virt(va) });
            } else {
                table_of(raw)
            };
        }
        Ok(table)
    }

    /// The leaf (4 KiB) table holding `page`'s entry, creating the tables on the way.
    /// With [`crate::table::static_entries`] the pager keeps direct access to the
    /// entries of its far region.
    pub fn leaf_table(&mut self, page: Page) -> Result<PhysFrame, MapError> {
        self.ensure_path(to48(page.start_address()), 1)
    }

    /// Maps `page` to `frame` with `flags` (PRESENT is implied; leave out HUGE_PAGE).
    ///
    /// The entry must be empty (never touched): a mapped page is `AlreadyMapped`, a far
    /// state is `FarState`. Missing intermediate tables are created. No TLB flush is
    /// needed: the CPU does not cache non-present entries.
    pub fn map<S: LeafSize>(
        &mut self,
        page: Page<S>,
        frame: PhysFrame<S>,
        flags: PageTableFlags,
    ) -> Result<(), MapError> {
        let bits = leaf_bits(flags, S::LEVEL)?;
        let va = to48(page.start_address());
        let table = self.ensure_path(va, S::LEVEL)?;
        self.entries(table)[index(va, S::LEVEL)]
            .compare_exchange_raw(0, frame.start_address().as_u64() | bits)
            .map(|_| ())
            .map_err(|raw| occupied(va, S::LEVEL, raw))
    }

    /// Maps `pages` to consecutive frames from `first`, all or nothing: if any page is
    /// occupied, nothing is mapped; if tables run out, nothing is mapped (tables created
    /// so far stay, empty).
    pub fn map_range<S: LeafSize>(
        &mut self,
        pages: PageRange<S>,
        first: PhysFrame<S>,
        flags: PageTableFlags,
    ) -> Result<(), MapError> {
        let bits = leaf_bits(flags, S::LEVEL)?;
        let (start, end) = range48(pages);
        let first = first.start_address().as_u64();
        if first.checked_add(end - start).is_none_or(|last| last > PHYS_END) {
            return Err(MapError::FrameOutOfRange);
        }
        // 1. Every entry must be free.
        let mut va = start;
        while va < end {
            match self.walk(va, S::LEVEL) {
                Ok(entry) => {
                    let raw = entry.load_raw();
                    if raw != 0 {
                        return Err(occupied(va, S::LEVEL, raw));
                    }
                    va += S::SIZE;
                }
                Err(Stop::Missing { level }) => va = (va & !(span(level) - 1)) + span(level),
                Err(stop) => return Err(stop.error(va, MapError::OutOfTables)),
            }
        }
        // 2. Every table must exist.
        let per_table = span(S::LEVEL + 1);
        va = start;
        while va < end {
            self.ensure_path(va, S::LEVEL)?;
            va = (va & !(per_table - 1)) + per_table;
        }
        // 3. Nothing can fail now.
        va = start;
        while va < end {
            let table_end = ((va & !(per_table - 1)) + per_table).min(end);
            let table = self.ensure_path(va, S::LEVEL)?;
            let entries = self.entries(table);
            while va < table_end {
                entries[index(va, S::LEVEL)].store_raw((first + (va - start)) | bits);
                va += S::SIZE;
            }
        }
        Ok(())
    }

    /// Unmaps `page`, returning its frame and last flags (DIRTY included), and adds the
    /// page to `batch`: flush it before reusing the frame. The entry becomes
    /// [`FarPte::Untouched`]; far pages are unmapped by the pager through their entry.
    pub fn unmap<S: LeafSize, const N: usize>(
        &mut self,
        page: Page<S>,
        batch: &mut FlushBatch<N>,
    ) -> Result<Unmapped<S>, MapError> {
        let va = to48(page.start_address());
        let entry = self
            .walk(va, S::LEVEL)
            .map_err(|stop| stop.error(va, MapError::NotMapped { at: virt(va) }))?;
        mapped_leaf(va, S::LEVEL, entry.load_raw())?;
        // Only the CPU changes a present entry while we hold `&mut self`, and only its
        // ACCESSED and DIRTY bits: the swap returns the entry with the latest of both.
        let old = entry.swap_raw(0);
        batch.add(page.start_address());
        Ok(Unmapped {
            frame: PhysFrame::containing_address(PhysAddr::new(old & ADDR_MASK)),
            flags: flags_of(old),
        })
    }

    /// Gives `page` the protection `flags` (WRITABLE, USER_ACCESSIBLE, NO_EXECUTE,
    /// caching and software bits). PRESENT, HUGE_PAGE, ACCESSED and DIRTY stay the
    /// entry's own. Returns the previous flags; adds the page to `batch` if they changed.
    pub fn protect<S: LeafSize, const N: usize>(
        &mut self,
        page: Page<S>,
        flags: PageTableFlags,
        batch: &mut FlushBatch<N>,
    ) -> Result<PageTableFlags, MapError> {
        let bits = leaf_bits(flags, S::LEVEL)? & !(ACCESSED | DIRTY);
        let va = to48(page.start_address());
        let entry = self
            .walk(va, S::LEVEL)
            .map_err(|stop| stop.error(va, MapError::NotMapped { at: virt(va) }))?;
        mapped_leaf(va, S::LEVEL, entry.load_raw())?;
        let old = reprotect(entry, bits);
        if old.bits() & !(ACCESSED | DIRTY) != bits {
            batch.add(page.start_address());
        }
        Ok(old)
    }

    /// [`protect`](Self::protect) for every mapped 4 KiB page in `pages`; pages not
    /// mapped are skipped. All or nothing: a 2 MiB page overlapping the range fails it
    /// before anything changes. Returns how many entries changed.
    pub fn protect_range<const N: usize>(
        &mut self,
        pages: PageRange,
        flags: PageTableFlags,
        batch: &mut FlushBatch<N>,
    ) -> Result<usize, MapError> {
        let bits = leaf_bits(flags, 1)? & !(ACCESSED | DIRTY);
        let (start, end) = range48(pages);
        let mut huge = None;
        self.for_each_leaf(start, end, &mut |va, level, _| {
            if level > 1 && huge.is_none() {
                huge = Some(MapError::HugePageInTheWay { at: virt(va) });
            }
        });
        if let Some(err) = huge {
            return Err(err);
        }
        let mut changed = 0;
        self.for_each_leaf(start, end, &mut |va, _, entry| {
            let old = reprotect(entry, bits);
            if old.bits() & !(ACCESSED | DIRTY) != bits {
                batch.add(virt(va));
                changed += 1;
            }
        });
        Ok(changed)
    }

    /// Where `addr` leads, if it is mapped (by a page of any size).
    pub fn translate(&self, addr: VirtAddr) -> Option<Translation> {
        let va = to48(addr);
        let mut table = self.root;
        for level in (1..=4).rev() {
            let raw = self.entries(table)[index(va, level)].load_raw();
            let entry = PresentPte::from_raw(raw)?;
            if is_leaf(raw, level) {
                let size = span(level);
                let base = raw & ADDR_MASK & !(size - 1);
                return Some(Translation {
                    phys: PhysAddr::new(base | (va & (size - 1))),
                    granule: Granule::of_level(level),
                    entry,
                });
            }
            table = table_of(raw);
        }
        None
    }

    /// The leaf entry of a 4 KiB page, for the pager's state transitions. The tables
    /// above it must exist ([`ensure_tables`](Self::ensure_tables)).
    pub fn pte(&self, page: Page) -> Result<&AtomicPte, MapError> {
        let va = to48(page.start_address());
        self.walk(va, 1).map_err(|stop| stop.error(va, MapError::NoTable { at: virt(va) }))
    }

    /// Creates every table needed to hold 4 KiB entries for `pages` (the far region does
    /// this once, so that faults only need [`pte`](Self::pte)).
    pub fn ensure_tables(&mut self, pages: PageRange) -> Result<(), MapError> {
        let (start, end) = range48(pages);
        let mut va = start;
        while va < end {
            self.ensure_path(va, 1)?;
            va = (va & !(span(2) - 1)) + span(2);
        }
        Ok(())
    }

    /// Visits every present leaf (4 KiB, 2 MiB or 1 GiB) that overlaps `pages`, clears
    /// the bits named by `clear` in one atomic instruction each, and calls `f` with the
    /// page's start address and its entry as it was just before. Pages that had a bit
    /// cleared are added to `batch`: flush it before trusting a cleared ACCESSED bit or
    /// copying out a page whose DIRTY bit was cleared. Returns how many leaves `f` saw.
    pub fn harvest<const N: usize>(
        &self,
        pages: PageRange,
        clear: ClearBits,
        batch: &mut FlushBatch<N>,
        mut f: impl FnMut(VirtAddr, PresentPte),
    ) -> usize {
        let (start, end) = range48(pages);
        let mut seen = 0;
        self.harvest48(start, end, clear, batch, &mut |va, _, old| {
            seen += 1;
            f(virt(va), old);
        });
        seen
    }

    /// The evictor's batch: harvests the [`SCAN_PAGES`] pages from `first` (clipped at
    /// the end of the address space) into bitsets.
    pub fn scan<const N: usize>(
        &self,
        first: Page,
        clear: ClearBits,
        batch: &mut FlushBatch<N>,
    ) -> Scan {
        let start = to48(first.start_address());
        let end = (start + SCAN_PAGES as u64 * Size4KiB::SIZE).min(SPACE_END);
        let mut scan = Scan { first, present: 0, accessed: 0, dirty: 0 };
        self.harvest48(start, end, clear, batch, &mut |va, level, old| {
            // A huge page stands for every 4 KiB page of the window it covers.
            let lo = (va.max(start) - start) / Size4KiB::SIZE;
            let hi = ((va + span(level)).min(end) - start) / Size4KiB::SIZE;
            let bits = ((1u64 << hi) - (1u64 << lo)) as u32;
            scan.present |= bits;
            if old.accessed() {
                scan.accessed |= bits;
            }
            if old.dirty() {
                scan.dirty |= bits;
            }
        });
        scan
    }

    fn harvest48<const N: usize>(
        &self,
        start: u64,
        end: u64,
        clear: ClearBits,
        batch: &mut FlushBatch<N>,
        f: &mut impl FnMut(u64, u8, PresentPte),
    ) {
        self.for_each_leaf(start, end, &mut |va, level, entry| {
            if let Some(old) = entry.harvest(clear) {
                if old.raw() & clear.mask() != 0 {
                    batch.add(virt(va));
                }
                f(va, level, old);
            }
        });
    }

    /// Calls `f(start of the leaf, level, entry)` for every present leaf overlapping
    /// `[start, end)`, skipping absent subtrees whole.
    fn for_each_leaf<F: FnMut(u64, u8, &AtomicPte)>(&self, start: u64, end: u64, f: &mut F) {
        if start < end {
            self.visit(self.root, 4, 0, start, end.min(SPACE_END), f);
        }
    }

    fn visit<F: FnMut(u64, u8, &AtomicPte)>(
        &self,
        table: PhysFrame,
        level: u8,
        base: u64,
        start: u64,
        end: u64,
        f: &mut F,
    ) {
        let size = span(level);
        let first = ((start - base) / size) as usize;
        let last = ((end - 1 - base) / size) as usize;
        let entries = self.entries(table);
        for (i, entry) in entries.iter().enumerate().take(last + 1).skip(first) {
            let raw = entry.load_raw();
            if raw & PRESENT == 0 {
                continue;
            }
            let lo = base + i as u64 * size;
            if is_leaf(raw, level) {
                f(lo, level, entry);
            } else {
                let (s, e) = (start.max(lo), end.min(lo + size));
                self.visit(table_of(raw), level - 1, lo, s, e, f);
            }
        }
    }

    /// Frees every intermediate table that holds only empty entries (far states count as
    /// content), then tables left empty by that, up to but not including the root.
    /// Unlinked tables are freed only after `tlb.flush_all()`, so no paging-structure
    /// cache can walk a freed table. Returns how many tables were freed.
    pub fn free_empty_tables<T: Tlb + ?Sized>(&mut self, tlb: &mut T) -> usize {
        let mut pending = Pending::new();
        let mut freed = 0;
        self.sweep(self.root, 4, tlb, &mut pending, &mut freed);
        self.release(&mut pending, tlb, &mut freed);
        if freed > 0 {
            log::debug!("mmu: freed {freed} empty page tables");
        }
        freed
    }

    /// Sweeps the children of `table` (at `level`) and says whether it is now empty.
    fn sweep<T: Tlb + ?Sized>(
        &mut self,
        table: PhysFrame,
        level: u8,
        tlb: &mut T,
        pending: &mut Pending,
        freed: &mut usize,
    ) -> bool {
        if level > 1 {
            for i in 0..ENTRIES {
                let raw = self.entries(table)[i].load_raw();
                if raw & PRESENT == 0 || is_leaf(raw, level) {
                    continue;
                }
                let child = table_of(raw);
                if self.sweep(child, level - 1, tlb, pending, freed) {
                    self.entries(table)[i].store_raw(0);
                    if pending.is_full() {
                        self.release(pending, tlb, freed);
                    }
                    // Cannot fail: there is room now.
                    let _ = pending.push(child);
                }
            }
        }
        self.entries(table).iter().all(|e| e.load_raw() == 0)
    }

    fn release<T: Tlb + ?Sized>(&mut self, pending: &mut Pending, tlb: &mut T, freed: &mut usize) {
        if pending.is_empty() {
            return;
        }
        tlb.flush_all();
        for &table in pending.iter() {
            self.mem.free_table(table);
        }
        *freed += pending.len();
        pending.clear();
    }

    /// Frees every table, root included, and gives the memory back. Mapped frames are
    /// not touched (they are the caller's). The space must not be active in any CPU.
    pub fn destroy(mut self) -> M {
        self.free_subtree(self.root, 4);
        self.mem.free_table(self.root);
        self.mem
    }

    fn free_subtree(&mut self, table: PhysFrame, level: u8) {
        if level == 1 {
            return;
        }
        for i in 0..ENTRIES {
            let raw = self.entries(table)[i].load_raw();
            if raw & PRESENT != 0 && !is_leaf(raw, level) {
                let child = table_of(raw);
                self.free_subtree(child, level - 1);
                self.entries(table)[i].store_raw(0);
                self.mem.free_table(child);
            }
        }
    }

    /// What the CPU does on an access: walks, checks, and sets ACCESSED in every entry it
    /// uses and DIRTY in the leaf on a write. For host tests and benchmarks.
    pub(crate) fn simulate_access(&self, addr: VirtAddr, write: bool) -> Result<PhysAddr, Fault> {
        let va = to48(addr);
        let mut table = self.root;
        for level in (1..=4).rev() {
            let entry = &self.entries(table)[index(va, level)];
            let raw = entry.load_raw();
            if raw & PRESENT == 0 {
                return Err(Fault::NotPresent { level, entry: FarPte::decode(raw) });
            }
            if write && raw & PageTableFlags::WRITABLE.bits() == 0 {
                return Err(Fault::WriteProtected { level });
            }
            let leaf = is_leaf(raw, level);
            let set = ACCESSED | if write && leaf { DIRTY } else { 0 };
            entry.fetch_or_raw(set);
            if leaf {
                let size = span(level);
                return Ok(PhysAddr::new((raw & ADDR_MASK & !(size - 1)) | (va & (size - 1))));
            }
            table = table_of(raw);
        }
        unreachable!("level 1 entries are leaves")
    }
}

/// A page fault, as [`testing::access`](crate::testing::access) reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The entry at `level` is not present; at level 1 it may hold a far state.
    NotPresent {
        /// The table level (4 = PML4).
        level: u8,
        /// What the entry holds.
        entry: FarPte,
    },
    /// A write to a page that is not writable at `level`.
    WriteProtected {
        /// The table level (4 = PML4).
        level: u8,
    },
}

/// Sets the protection bits of a live leaf with a compare-and-swap loop, keeping the
/// address, PRESENT, HUGE_PAGE, ACCESSED and DIRTY. Returns the previous flags.
fn reprotect(entry: &AtomicPte, bits: u64) -> PageTableFlags {
    let mut current = entry.load_raw();
    loop {
        let new = (current & (ADDR_MASK | HUGE | ACCESSED | DIRTY)) | bits;
        if new == current {
            return flags_of(current);
        }
        match entry.compare_exchange_raw(current, new) {
            Ok(_) => return flags_of(current),
            Err(actual) => current = actual,
        }
    }
}

/// Unlinked tables waiting for the flush that must precede their free.
type Pending = heapless::Vec<PhysFrame, 64>;

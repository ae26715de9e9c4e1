//! Stand-ins for the hardware, for host tests and benchmarks (this crate's and the
//! pager's and evictor's).
//!
//! Owns: [`TableArena`], page tables in heap boxes at made-up physical addresses;
//! [`RecordingTlb`], a TLB that writes down what it was asked to flush; and [`access`],
//! which does what the CPU does on a memory access (walk, check, set ACCESSED and DIRTY).
//!
//! Must never: be used by the image. It allocates on the heap, and its physical
//! addresses are made up.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::AtomicU64;

use x86_64::structures::paging::{PageTable, PhysFrame};
use x86_64::{PhysAddr, VirtAddr};

use crate::entry::AtomicPte;
use crate::space::{AddressSpace, Fault};
use crate::table::{ENTRIES, PhysMemory};
use crate::tlb::Tlb;

/// The made-up physical address of the arena's first table.
pub const ARENA_BASE: u64 = 0x40_0000_0000;

/// One table's memory. Entries are atomics, so handing out a pointer derived from a
/// shared reference and writing through it (atomically) is allowed.
#[repr(C, align(4096))]
struct Slot([AtomicU64; ENTRIES]);

const _: () = assert!(size_of::<Slot>() == size_of::<PageTable>());
const _: () = assert!(align_of::<Slot>() == align_of::<PageTable>());

/// Page tables on the heap: table `i` has the physical address `ARENA_BASE + i * 4096`.
///
/// Counts what it hands out, so tests can check that every table comes back; panics on
/// a table it does not know or a double free (bugs in the caller).
#[derive(Default)]
pub struct TableArena {
    slots: Vec<Option<Box<Slot>>>,
    free: Vec<usize>,
    limit: Option<usize>,
    allocated: usize,
    freed: usize,
}

impl TableArena {
    /// An arena with no limit.
    pub fn new() -> Self {
        Self::default()
    }

    /// An arena that refuses to hold more than `max_live` tables at once.
    pub fn with_limit(max_live: usize) -> Self {
        Self { limit: Some(max_live), ..Self::default() }
    }

    /// Tables handed out and not yet freed.
    pub fn live(&self) -> usize {
        self.allocated - self.freed
    }

    /// Tables handed out so far.
    pub fn allocated(&self) -> usize {
        self.allocated
    }

    /// Tables given back so far.
    pub fn freed(&self) -> usize {
        self.freed
    }

    fn slot_index(table: PhysFrame) -> Option<usize> {
        let offset = table.start_address().as_u64().checked_sub(ARENA_BASE)?;
        usize::try_from(offset / 4096).ok()
    }

    fn slot(&self, table: PhysFrame) -> &Slot {
        Self::slot_index(table)
            .and_then(|i| self.slots.get(i))
            .and_then(Option::as_deref)
            .unwrap_or_else(|| panic!("{table:?} is not a live table of this arena"))
    }
}

// SAFETY: every live table is a boxed, 4096-aligned `Slot` of the size of a `PageTable`,
// owned by `slots` until `free_table` drops it (which takes `&mut self`, so no pointer
// handed out by `table_ptr(&self)` can still be in use through a view). Distinct tables
// are distinct boxes. The memory consists of atomics (interior mutability), so writing
// through a pointer derived from `&Slot` is allowed, and this crate only accesses it
// atomically. New boxes are zeroed. Unknown tables make `table_ptr` panic, not lie.
#[allow(unsafe_code)]
unsafe impl PhysMemory for TableArena {
    fn table_ptr(&self, table: PhysFrame) -> *mut PageTable {
        core::ptr::from_ref(self.slot(table)).cast_mut().cast::<PageTable>()
    }

    fn alloc_table(&mut self) -> Option<PhysFrame> {
        if self.limit.is_some_and(|limit| self.live() >= limit) {
            return None;
        }
        let slot = Some(Box::new(Slot([const { AtomicU64::new(0) }; ENTRIES])));
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i] = slot;
                i
            }
            None => {
                self.slots.push(slot);
                self.slots.len() - 1
            }
        };
        self.allocated += 1;
        Some(PhysFrame::containing_address(PhysAddr::new(ARENA_BASE + i as u64 * 4096)))
    }

    fn free_table(&mut self, table: PhysFrame) {
        let i = Self::slot_index(table)
            .filter(|&i| self.slots.get(i).is_some_and(Option::is_some))
            .unwrap_or_else(|| panic!("free_table({table:?}): not a live table (double free?)"));
        self.slots[i] = None;
        self.free.push(i);
        self.freed += 1;
    }
}

/// One request made of a [`RecordingTlb`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlbEvent {
    /// `flush_page(addr)`.
    Page(VirtAddr),
    /// `flush_all()`.
    All,
}

/// A TLB that records what it is asked to flush.
#[derive(Clone, Debug, Default)]
pub struct RecordingTlb {
    /// Every request, in order.
    pub events: Vec<TlbEvent>,
}

impl RecordingTlb {
    /// An empty record.
    pub fn new() -> Self {
        Self::default()
    }

    /// The addresses flushed one by one, in order.
    pub fn pages(&self) -> Vec<VirtAddr> {
        self.events
            .iter()
            .filter_map(|e| match e {
                TlbEvent::Page(addr) => Some(*addr),
                TlbEvent::All => None,
            })
            .collect()
    }

    /// How many full flushes were asked for.
    pub fn full_flushes(&self) -> usize {
        self.events.iter().filter(|e| **e == TlbEvent::All).count()
    }
}

impl Tlb for RecordingTlb {
    fn flush_page(&mut self, addr: VirtAddr) {
        self.events.push(TlbEvent::Page(addr));
    }

    fn flush_all(&mut self) {
        self.events.push(TlbEvent::All);
    }
}

/// Whether an access reads or writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// A load or an instruction fetch.
    Read,
    /// A store.
    Write,
}

/// Accesses `addr` in `space` as the CPU would (ignoring any TLB): walks the tables,
/// checks PRESENT and WRITABLE, sets ACCESSED in every entry used and DIRTY in the leaf on
/// a write, and returns the physical address, or the fault the CPU would raise.
pub fn access<M: PhysMemory>(
    space: &AddressSpace<M>,
    addr: VirtAddr,
    access: Access,
) -> Result<PhysAddr, Fault> {
    space.simulate_access(addr, access == Access::Write)
}

/// What the CPU does to a leaf entry on an access through it: sets ACCESSED, and DIRTY
/// for a write, if the entry is present. Returns the entry as it was, if present.
pub fn touch(pte: &AtomicPte, write: bool) -> Option<crate::PresentPte> {
    let raw = pte.load_raw();
    crate::PresentPte::from_raw(raw)?;
    let bits = crate::entry::ACCESSED | if write { crate::entry::DIRTY } else { 0 };
    crate::PresentPte::from_raw(pte.fetch_or_raw(bits))
}

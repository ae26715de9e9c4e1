//! The bit layout of one page-table entry, and atomic access to it.
//!
//! Owns: how a present entry is read (through the `x86_64` crate's `PageTableEntry` and
//! `PageTableFlags`), how a far page's state is encoded in an entry whose PRESENT bit is
//! clear ([`FarPte`]), and the atomic operations on an entry ([`AtomicPte`]): load,
//! compare-and-swap, the pager's claim, and the evictor's accessed/dirty harvest.
//!
//! Must never: produce a non-present encoding with bit 0 set (it would be walked by the
//! CPU as a mapping); give a meaning to a non-zero value with state 0 (all zero is
//! "never touched", so a fresh table means "never touched"); read-modify-write an entry
//! without an atomic instruction (the CPU sets ACCESSED and DIRTY behind our back, and a
//! lost dirty bit is lost data).
//!
//! # Layout of a non-present entry
//!
//! ```text
//!  63    60 59                                   12 11      4 3     1  0
//! +--------+---------------------------------------+---------+-------+---+
//! |  zero  |           payload (48 bits)           |  zero   | state | 0 |
//! +--------+---------------------------------------+---------+-------+---+
//!
//! state 0  Untouched     the whole entry is zero; payload must be zero
//! state 1  Remote        payload zero
//! state 2  InFlight      payload = tag (u32)
//! state 3  WritingBack   payload = frame number (40 bits), so bits 12..51 hold the
//!                        frame's physical address exactly as a present entry would
//! state 4-7, or any non-zero "zero" field: not ours, decoded as `FarPte::Invalid`
//! ```
//!
//! Bits 5 (ACCESSED) and 6 (DIRTY) are always zero in a non-present entry, so clearing
//! them with one atomic AND is harmless whatever state the entry is in.
//!
//! On CPUs affected by L1 Terminal Fault the address bits of a non-present entry can be
//! used speculatively. Remora runs one application in one trust domain, so a payload in
//! those bits leaks nothing across a boundary; a multi-tenant port would invert the
//! payload as Linux does for swap entries.

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::PhysAddr;
use x86_64::structures::paging::page_table::PageTableEntry;
use x86_64::structures::paging::{PageTableFlags, PhysFrame, Size4KiB};

/// The physical-address field of an entry (bits 12..51).
pub(crate) const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
pub(crate) const PRESENT: u64 = PageTableFlags::PRESENT.bits();
pub(crate) const HUGE: u64 = PageTableFlags::HUGE_PAGE.bits();
pub(crate) const ACCESSED: u64 = PageTableFlags::ACCESSED.bits();
pub(crate) const DIRTY: u64 = PageTableFlags::DIRTY.bits();

const STATE_SHIFT: u32 = 1;
const STATE_MASK: u64 = 0b111 << STATE_SHIFT;
/// First bit of the payload of a non-present entry.
pub const PAYLOAD_SHIFT: u32 = 12;
/// Width of the payload of a non-present entry.
pub const PAYLOAD_BITS: u32 = 48;
const PAYLOAD_MASK: u64 = ((1 << PAYLOAD_BITS) - 1) << PAYLOAD_SHIFT;

const STATE_REMOTE: u64 = 1;
const STATE_IN_FLIGHT: u64 = 2;
const STATE_WRITING_BACK: u64 = 3;

/// The value of a present entry: a frame, its flags, and the ACCESSED and DIRTY bits the
/// CPU set. Always has PRESENT set.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PresentPte(u64);

impl PresentPte {
    /// A present 4 KiB entry mapping `frame` with `flags`.
    ///
    /// PRESENT is added. HUGE_PAGE is dropped: a 4 KiB entry has no such bit (bit 7 is PAT
    /// there, which this crate does not use). Map 2 MiB pages with
    /// [`AddressSpace::map`](crate::AddressSpace::map).
    pub fn new(frame: PhysFrame<Size4KiB>, flags: PageTableFlags) -> Self {
        let flags = (flags | PageTableFlags::PRESENT) - PageTableFlags::HUGE_PAGE;
        Self(frame.start_address().as_u64() | (flags.bits() & !ADDR_MASK))
    }

    /// The entry for `raw`, if its PRESENT bit is set.
    pub const fn from_raw(raw: u64) -> Option<Self> {
        if raw & PRESENT != 0 { Some(Self(raw)) } else { None }
    }

    /// The entry's bits, as stored in the table.
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// The physical address the entry maps (the start of a 4 KiB, 2 MiB or 1 GiB frame).
    pub fn addr(self) -> PhysAddr {
        PhysAddr::new(self.0 & ADDR_MASK)
    }

    /// Every flag of the entry, PRESENT, ACCESSED and DIRTY included.
    pub const fn flags(self) -> PageTableFlags {
        PageTableFlags::from_bits_retain(self.0 & !ADDR_MASK)
    }

    /// The entry as the `x86_64` crate sees it.
    pub fn entry(self) -> PageTableEntry {
        let mut entry = PageTableEntry::new();
        entry.set_addr(self.addr(), self.flags());
        entry
    }

    /// Whether the CPU has used this entry since its ACCESSED bit was last cleared.
    pub const fn accessed(self) -> bool {
        self.0 & ACCESSED != 0
    }

    /// Whether the CPU has written through this entry since its DIRTY bit was last cleared.
    pub const fn dirty(self) -> bool {
        self.0 & DIRTY != 0
    }

    /// Whether this entry maps a 2 MiB or 1 GiB page (only meaningful above level 1).
    pub const fn huge(self) -> bool {
        self.0 & HUGE != 0
    }
}

impl fmt::Debug for PresentPte {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PresentPte")
            .field("addr", &self.addr())
            .field("flags", &self.flags())
            .finish()
    }
}

/// A non-present entry whose bits are not one of this crate's encodings (a bug or a
/// stray write somewhere). Only [`FarPte::decode`] makes one, so it is never present.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct InvalidPte(u64);

impl InvalidPte {
    /// The entry's bits.
    pub const fn raw(self) -> u64 {
        self.0
    }
}

impl fmt::Debug for InvalidPte {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InvalidPte({:#018x})", self.0)
    }
}

/// What one leaf entry says about its page: the far-memory state machine.
///
/// `decode` and `encode` are exact inverses: `FarPte::decode(x).encode() == x` for every
/// `x`, so a decoded value can be used as the expected value of a compare-and-swap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FarPte {
    /// Never touched: the entry is all zero. A fault fills a frame with zeros locally.
    Untouched,
    /// The newest contents are on the memory node and nowhere else.
    Remote,
    /// A read of the page is posted; `tag` names the request (or its waiters' slot).
    InFlight {
        /// The fetching request's tag.
        tag: u32,
    },
    /// The page is unmapped and its contents are being written to the memory node from
    /// `frame`, which still holds them: a fault takes the frame back instead of reading.
    WritingBack {
        /// The frame the write-back reads from.
        frame: PhysFrame<Size4KiB>,
    },
    /// Mapped.
    Present(PresentPte),
    /// Not present and not one of the encodings above.
    Invalid(InvalidPte),
}

impl FarPte {
    /// Reads an entry's bits. Total: every value decodes to exactly one variant.
    pub fn decode(raw: u64) -> Self {
        if raw & PRESENT != 0 {
            return Self::Present(PresentPte(raw));
        }
        if raw == 0 {
            return Self::Untouched;
        }
        if raw & !(STATE_MASK | PAYLOAD_MASK) != 0 {
            return Self::Invalid(InvalidPte(raw));
        }
        let payload = (raw & PAYLOAD_MASK) >> PAYLOAD_SHIFT;
        match (raw & STATE_MASK) >> STATE_SHIFT {
            STATE_REMOTE if payload == 0 => Self::Remote,
            STATE_IN_FLIGHT if payload <= u32::MAX as u64 => Self::InFlight { tag: payload as u32 },
            // A frame number has at most 40 bits (52-bit physical addresses).
            STATE_WRITING_BACK if payload < 1 << 40 => Self::WritingBack {
                frame: PhysFrame::containing_address(PhysAddr::new(payload << PAYLOAD_SHIFT)),
            },
            _ => Self::Invalid(InvalidPte(raw)),
        }
    }

    /// The entry's bits for this state.
    pub fn encode(self) -> u64 {
        match self {
            Self::Untouched => 0,
            Self::Remote => STATE_REMOTE << STATE_SHIFT,
            Self::InFlight { tag } => {
                (STATE_IN_FLIGHT << STATE_SHIFT) | (u64::from(tag) << PAYLOAD_SHIFT)
            }
            Self::WritingBack { frame } => {
                (STATE_WRITING_BACK << STATE_SHIFT) | frame.start_address().as_u64()
            }
            Self::Present(pte) => pte.0,
            Self::Invalid(bad) => bad.0,
        }
    }

    /// Whether the CPU can use the entry.
    pub fn is_present(self) -> bool {
        matches!(self, Self::Present(_))
    }
}

/// What a successful [`AtomicPte::claim`] found, and so what the pager must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Claimed {
    /// The page was never touched: fill a frame with zeros, fetch nothing.
    Untouched,
    /// The page is on the memory node: read it.
    Remote,
}

/// Which of the bits the CPU sets to clear when harvesting an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClearBits {
    /// Report only.
    Nothing,
    /// Clear ACCESSED.
    Accessed,
    /// Clear DIRTY.
    Dirty,
    /// Clear ACCESSED and DIRTY.
    AccessedAndDirty,
}

impl ClearBits {
    /// The entry bits this clears.
    pub const fn mask(self) -> u64 {
        match self {
            Self::Nothing => 0,
            Self::Accessed => ACCESSED,
            Self::Dirty => DIRTY,
            Self::AccessedAndDirty => ACCESSED | DIRTY,
        }
    }
}

/// One page-table entry, accessed only with atomic instructions.
///
/// The leaf entries of an [`AddressSpace`](crate::AddressSpace) are handed out as
/// `&AtomicPte` so that the pager and the evictor can move a page through its states
/// with compare-and-swap while the CPU sets ACCESSED and DIRTY in the same word.
///
/// Any transition out of [`FarPte::Present`] leaves the old translation in TLBs: the page
/// must be flushed (see [`FlushBatch`](crate::FlushBatch)) before its frame is reused or
/// its contents are copied out for a write-back.
#[repr(transparent)]
pub struct AtomicPte(AtomicU64);

impl AtomicPte {
    /// A free-standing entry holding `value` (for tests and scratch use: entries inside
    /// tables are reached through an address space).
    pub fn new(value: FarPte) -> Self {
        Self(AtomicU64::new(value.encode()))
    }

    /// The entry's current state.
    pub fn load(&self) -> FarPte {
        FarPte::decode(self.load_raw())
    }

    /// Replaces `current` with `new` if the entry still holds exactly `current`.
    /// On failure returns what the entry holds instead.
    ///
    /// A present entry whose ACCESSED or DIRTY bit the CPU set since it was loaded no
    /// longer equals the loaded value, so such a swap fails rather than losing the bit.
    pub fn compare_exchange(&self, current: FarPte, new: FarPte) -> Result<(), FarPte> {
        self.0
            .compare_exchange(current.encode(), new.encode(), Ordering::AcqRel, Ordering::Acquire)
            .map(|_| ())
            .map_err(FarPte::decode)
    }

    /// The pager's claim: moves an `Untouched` or `Remote` entry to `InFlight { tag }`,
    /// and says which it was. Any other state means someone else owns the page (a fetch
    /// in flight, a write-back, already present, or an invalid entry): that state is
    /// returned and the entry is left alone.
    pub fn claim(&self, tag: u32) -> Result<Claimed, FarPte> {
        let in_flight = FarPte::InFlight { tag }.encode();
        let mut current = self.load_raw();
        loop {
            let was = match FarPte::decode(current) {
                FarPte::Untouched => Claimed::Untouched,
                FarPte::Remote => Claimed::Remote,
                other => return Err(other),
            };
            match self.0.compare_exchange_weak(
                current,
                in_flight,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(was),
                Err(actual) => current = actual,
            }
        }
    }

    /// Clears the bits named by `clear` in one atomic AND and returns the entry as it was
    /// just before, if it was present. A non-present entry is left unchanged (its
    /// ACCESSED and DIRTY bit positions are always zero).
    ///
    /// A TLB may still hold the entry with the cleared bits set: flush the page before
    /// trusting a cleared ACCESSED bit, and before copying out a page whose DIRTY bit was
    /// cleared (a write through a stale TLB entry would not set DIRTY again).
    pub fn harvest(&self, clear: ClearBits) -> Option<PresentPte> {
        let current = self.load_raw();
        // Bits already clear need no locked instruction: the CPU setting them just after
        // this load is no different from it setting them just after an AND.
        let old = if current & clear.mask() == 0 {
            current
        } else {
            self.0.fetch_and(!clear.mask(), Ordering::AcqRel)
        };
        PresentPte::from_raw(old)
    }

    pub(crate) fn load_raw(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    pub(crate) fn store_raw(&self, raw: u64) {
        self.0.store(raw, Ordering::Release);
    }

    pub(crate) fn swap_raw(&self, raw: u64) -> u64 {
        self.0.swap(raw, Ordering::AcqRel)
    }

    pub(crate) fn compare_exchange_raw(&self, current: u64, new: u64) -> Result<u64, u64> {
        self.0.compare_exchange(current, new, Ordering::AcqRel, Ordering::Acquire)
    }

    /// What the CPU does on a page walk: OR bits into the entry.
    pub(crate) fn fetch_or_raw(&self, bits: u64) -> u64 {
        self.0.fetch_or(bits, Ordering::AcqRel)
    }
}

impl fmt::Debug for AtomicPte {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AtomicPte").field(&self.load()).finish()
    }
}

const _: () = assert!(size_of::<AtomicPte>() == size_of::<PageTableEntry>());
const _: () = assert!(align_of::<AtomicPte>() == align_of::<u64>());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untouched_is_all_zero() {
        assert_eq!(FarPte::Untouched.encode(), 0);
        assert_eq!(FarPte::decode(0), FarPte::Untouched);
    }

    #[test]
    fn far_states_are_distinct_and_non_present() {
        let frame = PhysFrame::containing_address(PhysAddr::new(0x1234_5000));
        let states = [
            FarPte::Remote,
            FarPte::InFlight { tag: 0 },
            FarPte::InFlight { tag: u32::MAX },
            FarPte::WritingBack { frame },
        ];
        for (i, a) in states.iter().enumerate() {
            let raw = a.encode();
            assert_ne!(raw, 0, "{a:?} must not look untouched");
            assert_eq!(raw & PRESENT, 0, "{a:?} must not look present");
            assert_eq!(raw & (ACCESSED | DIRTY), 0);
            for b in &states[i + 1..] {
                assert_ne!(raw, b.encode());
            }
        }
        assert_eq!(FarPte::WritingBack { frame }.encode() & ADDR_MASK, 0x1234_5000);
    }

    #[test]
    fn unknown_encodings_are_invalid() {
        for raw in [1 << 4, 4 << 1, (1 << 1) | (1 << 12), 1 << 62, (2 << 1) | (1 << 44)] {
            assert!(matches!(FarPte::decode(raw), FarPte::Invalid(_)), "{raw:#x}");
            assert_eq!(FarPte::decode(raw).encode(), raw);
        }
    }

    #[test]
    fn present_new_sets_present_and_drops_huge() {
        let frame = PhysFrame::containing_address(PhysAddr::new(0x7000));
        let pte = PresentPte::new(frame, PageTableFlags::WRITABLE | PageTableFlags::HUGE_PAGE);
        assert_eq!(pte.raw(), 0x7000 | 0b11);
        assert_eq!(pte.entry().frame().unwrap(), frame);
    }
}

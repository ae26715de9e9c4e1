//! Event queues: the EQ context (`eqc_bits`), CREATE_EQ and DESTROY_EQ, and the 64-byte
//! event queue entry (`device.h mlx5_eqe`) with the page-request event's data.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::assert_size;
use super::cmd::{InHeader, OutHeader};
use crate::be::{Be16, Be32, Be64};

/// The EQ context.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct EqContext {
    /// 31:28 status; 18 ec; 17 oi; 11:8 st.
    pub flags: Be32,
    pub(crate) _r0: [u8; 4],
    /// 11:6 page offset.
    pub page_offset: Be32,
    /// 28:24 log2 entries; 23:0 UAR page.
    pub size_uar: Be32,
    pub(crate) _r1: [u8; 4],
    /// 7:0 interrupt vector (unused when polling, 0).
    pub intr: Be32,
    /// 28:24 log2 of the buffer's page size in 4 KiB units.
    pub log_page_size: Be32,
    pub(crate) _r2: [u8; 0x28 - 0x1c],
    /// 23:0 consumer counter.
    pub consumer_counter: Be32,
    /// 23:0 producer counter.
    pub producer_counter: Be32,
    pub(crate) _r3: [u8; 0x10],
}
assert_size!(EqContext, 0x40);

impl EqContext {
    /// Sets the log2 number of entries.
    pub fn set_log_size(&mut self, log: u32) {
        self.size_uar.set_bits(28, 24, log);
    }
    /// Sets the UAR page whose doorbells update this EQ.
    pub fn set_uar_page(&mut self, uar: u32) {
        self.size_uar.set_bits(23, 0, uar);
    }
    /// Sets the log2 page size of the buffer (0: 4 KiB pages).
    pub fn set_log_page_size(&mut self, log: u32) {
        self.log_page_size.set_bits(28, 24, log);
    }
}

/// CREATE_EQ input; the buffer's page addresses follow.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct CreateEqIn {
    /// Opcode.
    pub hdr: InHeader,
    pub(crate) _r0: [u8; 8],
    /// The EQ context.
    pub ctx: EqContext,
    pub(crate) _r1: [u8; 8],
    /// Events delivered to this EQ: bit n of word 0 = event type n.
    pub event_bitmask: [Be64; 4],
    pub(crate) _r2: [u8; 0x110 - 0x78],
}
assert_size!(CreateEqIn, 0x110);

/// CREATE_EQ output.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct CreateEqOut {
    /// Status.
    pub hdr: OutHeader,
    pub(crate) _r0: [u8; 3],
    /// The EQ's number.
    pub eq_number: u8,
    pub(crate) _r1: [u8; 4],
}
assert_size!(CreateEqOut, 0x10);

/// DESTROY_EQ input.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct DestroyEqIn {
    /// Opcode.
    pub hdr: InHeader,
    pub(crate) _r0: [u8; 3],
    /// The EQ's number.
    pub eq_number: u8,
    pub(crate) _r1: [u8; 4],
}
assert_size!(DestroyEqIn, 0x10);

/// One event queue entry.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Eqe {
    pub(crate) _r0: u8,
    /// The event type ([`EVENT_PAGE_REQUEST`], ...).
    pub event_type: u8,
    pub(crate) _r1: u8,
    /// Event subtype.
    pub sub_type: u8,
    pub(crate) _r2: [u8; 0x1c],
    /// Event data; for a page request see [`PageRequest`].
    pub data: [u8; 0x1c],
    pub(crate) _r3: [u8; 2],
    /// Signature.
    pub signature: u8,
    /// Bit 0: owner; valid when equal to `(consumer index >> log size) & 1`.
    pub owner: u8,
}
assert_size!(Eqe, 64);

/// The data of a page-request event.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct PageRequest {
    /// Bit 15: embedded CPU function.
    pub ec_function: Be16,
    /// The function that needs pages.
    pub func_id: Be16,
    /// Pages wanted; negative: firmware gives that many back.
    pub num_pages: Be32,
    pub(crate) _r0: [u8; 0x14],
}
assert_size!(PageRequest, 0x1c);

/// Event type: firmware needs (or returns) pages.
pub const EVENT_PAGE_REQUEST: u8 = 0x0b;
/// Event type: a command completed (unused when polling).
pub const EVENT_CMD: u8 = 0x0a;

/// Owner byte every EQE is initialised with: invalid in the first pass.
pub const EQE_OWNER_INIT: u8 = 1;

super::zeroed_default!(EqContext, CreateEqIn, CreateEqOut, DestroyEqIn);

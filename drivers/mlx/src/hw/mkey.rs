//! Memory keys: the MKey context (`mkc_bits`), CREATE_MKEY and DESTROY_MKEY. The driver
//! uses one physical-address key (access mode PA, length64) covering all of memory, so
//! a WQE's data segment carries physical addresses.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::assert_size;
use super::cmd::InHeader;
use crate::be::{Be32, Be64};

/// The MKey context.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct MkeyContext {
    /// 30 free; 28:26 access mode 4:2; 16 umr_en; 14 atomic; 13 remote write; 12 remote
    /// read; 11 local write; 10 local read; 9:8 access mode 1:0.
    pub access: Be32,
    /// 31:8 QPN (0xffffff: any); 7:0 the key's variant byte.
    pub qpn_variant: Be32,
    pub(crate) _r0: [u8; 4],
    /// 31 length64 (the key covers all addresses); 23:0 protection domain.
    pub len64_pd: Be32,
    /// First address covered.
    pub start_addr: Be64,
    /// Bytes covered (ignored with length64).
    pub len: Be64,
    /// BSF size (0).
    pub bsf_octword_size: Be32,
    pub(crate) _r1: [u8; 0x34 - 0x24],
    /// Translation entries, in 16-byte units (0 for PA mode).
    pub translations_octword_size: Be32,
    /// 4:0 log2 page size.
    pub log_page_size: Be32,
    pub(crate) _r2: [u8; 4],
}
assert_size!(MkeyContext, 0x40);

/// Access mode: physical addresses.
pub const ACCESS_MODE_PA: u32 = 0;
/// Access mode: translation table.
pub const ACCESS_MODE_MTT: u32 = 1;
/// QPN meaning "any QP".
pub const MKEY_ANY_QPN: u32 = 0xff_ffff;

impl MkeyContext {
    /// Sets the access mode (low two bits) and the rights.
    pub fn set_access(&mut self, mode: u32, local_read: bool, local_write: bool) {
        self.access.set_bits(9, 8, mode & 3);
        self.access.set_bits(28, 26, mode >> 2);
        self.access.set_bit(10, local_read);
        self.access.set_bit(11, local_write);
    }
    /// Sets the QP restriction and the variant byte.
    pub fn set_qpn_variant(&mut self, qpn: u32, variant: u8) {
        self.qpn_variant.set_bits(31, 8, qpn);
        self.qpn_variant.set_bits(7, 0, variant as u32);
    }
    /// Sets length64 and the protection domain.
    pub fn set_len64_pd(&mut self, len64: bool, pd: u32) {
        self.len64_pd.set_bit(31, len64);
        self.len64_pd.set_bits(23, 0, pd);
    }
}

/// CREATE_MKEY input.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct CreateMkeyIn {
    /// Opcode.
    pub hdr: InHeader,
    pub(crate) _r0: [u8; 4],
    /// 31 pg_access; 30 umem valid.
    pub flags: Be32,
    /// The MKey context.
    pub mkc: MkeyContext,
    pub(crate) _r1: [u8; 0x110 - 0x50],
}
assert_size!(CreateMkeyIn, 0x110);

super::zeroed_default!(MkeyContext, CreateMkeyIn);

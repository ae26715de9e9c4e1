//! The capability pages returned by QUERY_HCA_CAP (`cmd_hca_cap_bits`, `roce_cap_bits`):
//! a 4 KiB page per capability type, of which the driver reads a dozen fields. Each field
//! is named once here with its dword offset and bit range.

use alloc::boxed::Box;

use crate::be::{get_bits, with_bits};

use super::hca::CAP_LEN;

/// A field of a capability page: the big-endian dword at `dw` (byte offset), bits
/// `hi..=lo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapField {
    /// Byte offset of the dword.
    pub dw: usize,
    /// Most significant bit.
    pub hi: u32,
    /// Least significant bit.
    pub lo: u32,
}

const fn field(dw: usize, hi: u32, lo: u32) -> CapField {
    CapField { dw, hi, lo }
}

/// General capabilities.
pub mod general {
    use super::{CapField, field};
    /// log2 of the largest queue pair, in WQEBBs.
    pub const LOG_MAX_QP_SZ: CapField = field(0x10, 23, 16);
    /// log2 of the largest completion queue, in CQEs.
    pub const LOG_MAX_CQ_SZ: CapField = field(0x18, 23, 16);
    /// log2 of the most RDMA READs a QP may have outstanding as requester.
    pub const LOG_MAX_RA_REQ_QP: CapField = field(0x28, 21, 16);
    /// Entries in the GID table.
    pub const GID_TABLE_SIZE: CapField = field(0x2c, 15, 0);
    /// 0 InfiniBand, 1 Ethernet.
    pub const PORT_TYPE: CapField = field(0x34, 9, 8);
    /// log2 of the longest message.
    pub const LOG_MAX_MSG: CapField = field(0x38, 28, 24);
    /// CQE format version (1: QPs carry a user index).
    pub const CQE_VERSION: CapField = field(0x3c, 3, 0);
    /// Command interface checksums (0: off).
    pub const CMDIF_CHECKSUM: CapField = field(0x40, 15, 14);
    /// RoCE supported.
    pub const ROCE: CapField = field(0x40, 2, 2);
    /// log2 of a BlueFlame register's size (both halves).
    pub const LOG_BF_REG_SIZE: CapField = field(0x4c, 20, 16);
    /// log2 of the UAR page size in 4 KiB units.
    pub const LOG_UAR_PAGE_SZ: CapField = field(0x90, 15, 0);
}

/// RoCE capabilities.
pub mod roce {
    use super::{CapField, field};
    /// QPs take a timestamp format (`ts_format`).
    pub const QP_TS_FORMAT: CapField = field(0x00, 1, 0);
}

/// Port type: Ethernet.
pub const PORT_TYPE_ETHERNET: u32 = 1;

/// A capability page.
#[derive(Clone)]
pub struct CapPage(pub Box<[u8; CAP_LEN]>);

impl CapPage {
    /// A page from the `CAP_LEN` bytes of a QUERY_HCA_CAP output (`None` if shorter).
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let mut page = Box::new([0u8; CAP_LEN]);
        page.copy_from_slice(bytes.get(..CAP_LEN)?);
        Some(CapPage(page))
    }

    /// The value of `f`.
    pub fn get(&self, f: CapField) -> u32 {
        let mut dw = [0u8; 4];
        dw.copy_from_slice(&self.0[f.dw..f.dw + 4]);
        get_bits(u32::from_be_bytes(dw), f.hi, f.lo)
    }

    /// Sets `f` to `value`.
    pub fn set(&mut self, f: CapField, value: u32) {
        let mut dw = [0u8; 4];
        dw.copy_from_slice(&self.0[f.dw..f.dw + 4]);
        let word = with_bits(u32::from_be_bytes(dw), f.hi, f.lo, value);
        self.0[f.dw..f.dw + 4].copy_from_slice(&word.to_be_bytes());
    }
}

impl core::fmt::Debug for CapPage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("CapPage { .. }")
    }
}

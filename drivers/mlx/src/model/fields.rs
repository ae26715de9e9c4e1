//! The model's own decoding: byte offsets and bit ranges written out from the brief's
//! tables (`shared/docs/mlx5.md`, from `mlx5_ifc.h`), read and written with helpers of
//! its own. Nothing here uses the driver's layouts or encoders, so an encoding mistake in
//! the driver shows up as a mismatch instead of being mirrored.
//!
//! Offsets are in bytes of the command message (or entry, or WQE); "bits hi:lo" count
//! from 31, the most significant bit of the big-endian dword.

pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub(crate) fn be64(b: &[u8], at: usize) -> u64 {
    (be32(b, at) as u64) << 32 | be32(b, at + 4) as u64
}

/// Bits `hi..=lo` of the dword at `at`.
pub(crate) fn bits(b: &[u8], at: usize, hi: u32, lo: u32) -> u32 {
    let w = be32(b, at) as u64;
    ((w >> lo) & ((1u64 << (hi - lo + 1)) - 1)) as u32
}

pub(crate) fn put_be16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

pub(crate) fn put_be32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

pub(crate) fn put_be64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_be_bytes());
}

/// Stores `v` in bits `hi..=lo` of the dword at `at`.
pub(crate) fn put_bits(b: &mut [u8], at: usize, hi: u32, lo: u32, v: u32) {
    let m = (((1u64 << (hi - lo + 1)) - 1) << lo) as u32;
    let w = be32(b, at) & !m | (v << lo) & m;
    put_be32(b, at, w);
}

/// Offsets of the command queue entry (`device.h mlx5_cmd_layout`).
pub(crate) mod entry {
    pub const TYPE: usize = 0x00;
    pub const IN_LEN: usize = 0x04;
    pub const IN_PTR: usize = 0x08;
    pub const IN_INLINE: usize = 0x10;
    pub const OUT_INLINE: usize = 0x20;
    pub const OUT_PTR: usize = 0x30;
    pub const OUT_LEN: usize = 0x38;
    pub const TOKEN: usize = 0x3c;
    pub const STATUS_OWN: usize = 0x3f;
}

/// Offsets of a mailbox block (`mlx5_cmd_prot_block`).
pub(crate) mod mailbox {
    pub const DATA: usize = 512;
    pub const SIZE: usize = 0x240;
    pub const NEXT: usize = 0x230;
    pub const BLOCK_NUM: usize = 0x238;
    pub const TOKEN: usize = 0x23d;
}

/// General capability fields (offset relative to the capability page, hi, lo).
pub(crate) mod cap {
    pub const LOG_MAX_QP_SZ: (usize, u32, u32) = (0x10, 23, 16);
    pub const LOG_MAX_CQ_SZ: (usize, u32, u32) = (0x18, 23, 16);
    pub const LOG_MAX_RA_REQ_QP: (usize, u32, u32) = (0x28, 21, 16);
    pub const GID_TABLE_SIZE: (usize, u32, u32) = (0x2c, 15, 0);
    pub const PORT_TYPE: (usize, u32, u32) = (0x34, 9, 8);
    pub const LOG_MAX_MSG: (usize, u32, u32) = (0x38, 28, 24);
    pub const CQE_VERSION: (usize, u32, u32) = (0x3c, 3, 0);
    pub const CMDIF_CHECKSUM: (usize, u32, u32) = (0x40, 15, 14);
    pub const ROCE: (usize, u32, u32) = (0x40, 2, 2);
    pub const LOG_BF_REG_SIZE: (usize, u32, u32) = (0x4c, 20, 16);
    pub const LOG_UAR_PAGE_SZ: (usize, u32, u32) = (0x90, 15, 0);
    /// RoCE capability page: qp_ts_format.
    pub const ROCE_QP_TS_FORMAT: (usize, u32, u32) = (0x00, 1, 0);
}

/// QP context fields as offsets in a CREATE_QP / modify message (qpc at 0x18).
pub(crate) mod qpc {
    pub const BASE: usize = 0x18;
    pub const ST: (usize, u32, u32) = (BASE, 23, 16);
    pub const PM_STATE: (usize, u32, u32) = (BASE, 12, 11);
    pub const PD: (usize, u32, u32) = (BASE + 0x04, 23, 0);
    pub const MTU: (usize, u32, u32) = (BASE + 0x08, 31, 29);
    pub const LOG_MSG_MAX: (usize, u32, u32) = (BASE + 0x08, 28, 24);
    pub const LOG_SQ_SIZE: (usize, u32, u32) = (BASE + 0x08, 14, 11);
    pub const TS_FORMAT: (usize, u32, u32) = (BASE + 0x08, 7, 6);
    pub const RLKY: (usize, u32, u32) = (BASE + 0x08, 4, 4);
    pub const UAR_PAGE: (usize, u32, u32) = (BASE + 0x0c, 23, 0);
    pub const USER_INDEX: (usize, u32, u32) = (BASE + 0x10, 23, 0);
    pub const LOG_PAGE_SIZE: (usize, u32, u32) = (BASE + 0x14, 28, 24);
    pub const REMOTE_QPN: (usize, u32, u32) = (BASE + 0x14, 23, 0);
    /// The primary address path, relative to the qpc.
    pub const PATH: usize = BASE + 0x18;
    pub const PKEY_INDEX: (usize, u32, u32) = (PATH, 15, 0);
    pub const GRH: (usize, u32, u32) = (PATH + 0x04, 23, 23);
    pub const ACK_TIMEOUT: (usize, u32, u32) = (PATH + 0x08, 31, 27);
    pub const SRC_ADDR_INDEX: (usize, u32, u32) = (PATH + 0x08, 23, 16);
    pub const HOP_LIMIT: (usize, u32, u32) = (PATH + 0x08, 7, 0);
    pub const RGID: usize = PATH + 0x10;
    pub const UDP_SPORT: (usize, u32, u32) = (PATH + 0x20, 15, 0);
    pub const VHCA_PORT: (usize, u32, u32) = (PATH + 0x24, 23, 16);
    pub const RMAC: usize = PATH + 0x26;
    pub const LOG_SRA_MAX: (usize, u32, u32) = (BASE + 0x70, 23, 21);
    pub const RETRY_COUNT: (usize, u32, u32) = (BASE + 0x70, 18, 16);
    pub const RNR_RETRY: (usize, u32, u32) = (BASE + 0x70, 15, 13);
    pub const NEXT_SEND_PSN: (usize, u32, u32) = (BASE + 0x78, 23, 0);
    pub const CQN_SND: (usize, u32, u32) = (BASE + 0x7c, 23, 0);
    pub const LOG_RRA_MAX: (usize, u32, u32) = (BASE + 0x90, 23, 21);
    pub const RRE: (usize, u32, u32) = (BASE + 0x90, 15, 15);
    pub const RWE: (usize, u32, u32) = (BASE + 0x90, 14, 14);
    pub const MIN_RNR_NAK: (usize, u32, u32) = (BASE + 0x94, 28, 24);
    pub const NEXT_RCV_PSN: (usize, u32, u32) = (BASE + 0x94, 23, 0);
    pub const CQN_RCV: (usize, u32, u32) = (BASE + 0x9c, 23, 0);
    pub const DBR_ADDR: usize = BASE + 0xa0;
    pub const RQ_TYPE: (usize, u32, u32) = (BASE + 0xac, 26, 24);
    /// The physical address list of CREATE_QP.
    pub const PAS: usize = 0x110;
}

/// Command opcodes (the model's own numbers, from the PRM's opcode table).
pub(crate) mod op {
    pub const QUERY_HCA_CAP: u16 = 0x100;
    pub const INIT_HCA: u16 = 0x102;
    pub const TEARDOWN_HCA: u16 = 0x103;
    pub const ENABLE_HCA: u16 = 0x104;
    pub const DISABLE_HCA: u16 = 0x105;
    pub const QUERY_PAGES: u16 = 0x107;
    pub const MANAGE_PAGES: u16 = 0x108;
    pub const SET_HCA_CAP: u16 = 0x109;
    pub const QUERY_ISSI: u16 = 0x10a;
    pub const SET_ISSI: u16 = 0x10b;
    pub const CREATE_MKEY: u16 = 0x200;
    pub const DESTROY_MKEY: u16 = 0x202;
    pub const CREATE_EQ: u16 = 0x301;
    pub const DESTROY_EQ: u16 = 0x302;
    pub const CREATE_CQ: u16 = 0x400;
    pub const DESTROY_CQ: u16 = 0x401;
    pub const CREATE_QP: u16 = 0x500;
    pub const DESTROY_QP: u16 = 0x501;
    pub const RST2INIT_QP: u16 = 0x502;
    pub const INIT2RTR_QP: u16 = 0x503;
    pub const RTR2RTS_QP: u16 = 0x504;
    pub const QUERY_VPORT_STATE: u16 = 0x750;
    pub const QUERY_NIC_VPORT_CONTEXT: u16 = 0x754;
    pub const MODIFY_NIC_VPORT_CONTEXT: u16 = 0x755;
    pub const SET_ROCE_ADDRESS: u16 = 0x761;
    pub const ALLOC_PD: u16 = 0x800;
    pub const DEALLOC_PD: u16 = 0x801;
    pub const ALLOC_UAR: u16 = 0x802;
    pub const DEALLOC_UAR: u16 = 0x803;
}

/// Reads a field given as `(offset, hi, lo)`.
pub(crate) fn field(b: &[u8], f: (usize, u32, u32)) -> u32 {
    bits(b, f.0, f.1, f.2)
}

/// Writes a field given as `(offset, hi, lo)`.
pub(crate) fn put_field(b: &mut [u8], f: (usize, u32, u32), v: u32) {
    put_bits(b, f.0, f.1, f.2, v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_helpers() {
        let mut b = [0u8; 8];
        put_bits(&mut b, 4, 14, 11, 0xa);
        assert_eq!(be32(&b, 4), 0xa << 11);
        assert_eq!(bits(&b, 4, 14, 11), 0xa);
        put_bits(&mut b, 0, 31, 0, 0xdead_beef);
        assert_eq!(bits(&b, 0, 31, 0), 0xdead_beef);
        put_be64(&mut b, 0, 0x0102_0304_0506_0708);
        assert_eq!(be64(&b, 0), 0x0102_0304_0506_0708);
        put_be16(&mut b, 0, 0xabcd);
        assert_eq!(be16(&b, 0), 0xabcd);
    }
}

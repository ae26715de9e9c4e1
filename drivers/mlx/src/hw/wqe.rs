//! Send work queue entries: the control segment (`mlx5_wqe_ctrl_seg`), the remote
//! address segment (`mlx5_wqe_raddr_seg`) and the data segment (`mlx5_wqe_data_seg`). An
//! RDMA READ or WRITE of one buffer is the three of them: 48 bytes (ds = 3) in one 64-byte
//! WQE basic block (WQEBB).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::assert_size;
use crate::be::{Be32, Be64};

/// Bytes of a WQE basic block, the unit of the send queue.
pub const WQEBB: usize = 64;
/// 16-byte units of an RDMA READ/WRITE WQE.
pub const RDMA_DS: u32 = 3;

/// Opcode: no operation.
pub const OPCODE_NOP: u8 = 0x00;
/// Opcode: RDMA WRITE.
pub const OPCODE_RDMA_WRITE: u8 = 0x08;
/// Opcode: RDMA READ.
pub const OPCODE_RDMA_READ: u8 = 0x10;

/// fm_ce_se: always produce a CQE.
pub const CE_ALWAYS: u8 = 0x08;
/// fm_ce_se: produce a CQE only on error.
pub const CE_ON_ERROR: u8 = 0x00;
/// fm_ce_se: fence (wait for earlier READs before executing).
pub const FENCE: u8 = 0x80;

/// The control segment.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct CtrlSeg {
    /// 31:24 opcode modifier; 23:8 WQE index (producer counter, 16 bits); 7:0 opcode.
    pub opmod_idx_opcode: Be32,
    /// 31:8 QPN; 5:0 size in 16-byte units.
    pub qpn_ds: Be32,
    /// Signature.
    pub signature: u8,
    pub(crate) _r0: [u8; 2],
    /// Fence mode, completion and solicited-event flags.
    pub fm_ce_se: u8,
    /// Immediate data.
    pub imm: Be32,
}
assert_size!(CtrlSeg, 16);

/// The remote address segment.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct RaddrSeg {
    /// Address in the peer's registered region.
    pub raddr: Be64,
    /// The peer's key for that region.
    pub rkey: Be32,
    pub(crate) _r0: [u8; 4],
}
assert_size!(RaddrSeg, 16);

/// The data segment: one local buffer.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct DataSeg {
    /// Bytes (bit 31 must be 0: not inline).
    pub byte_count: Be32,
    /// Local key covering the buffer.
    pub lkey: Be32,
    /// The buffer's address (physical, with the PA key).
    pub addr: Be64,
}
assert_size!(DataSeg, 16);

/// An RDMA READ or WRITE WQE, padded to one WQEBB.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct RdmaWqe {
    /// Control.
    pub ctrl: CtrlSeg,
    /// Remote address.
    pub raddr: RaddrSeg,
    /// Local buffer.
    pub data: DataSeg,
    pub(crate) _pad: [u8; 16],
}
assert_size!(RdmaWqe, WQEBB);

impl RdmaWqe {
    /// The WQE for `opcode` at send-queue position `index` of `qpn`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        opcode: u8,
        index: u16,
        qpn: u32,
        fm_ce_se: u8,
        raddr: u64,
        rkey: u32,
        lkey: u32,
        addr: u64,
        len: u32,
    ) -> Self {
        let mut w = RdmaWqe::default();
        w.ctrl.opmod_idx_opcode.set((index as u32) << 8 | opcode as u32);
        w.ctrl.qpn_ds.set(qpn << 8 | RDMA_DS);
        w.ctrl.fm_ce_se = fm_ce_se;
        w.raddr.raddr.set(raddr);
        w.raddr.rkey.set(rkey);
        w.data.byte_count.set(len & 0x7fff_ffff);
        w.data.lkey.set(lkey);
        w.data.addr.set(addr);
        w
    }
}

super::zeroed_default!(CtrlSeg, RaddrSeg, DataSeg, RdmaWqe);

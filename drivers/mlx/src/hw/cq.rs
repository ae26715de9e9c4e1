//! Completion queues: the CQ context (`cqc_bits`), CREATE_CQ and DESTROY_CQ, the 64-byte
//! completion queue entry (`device.h mlx5_cqe64`, `mlx5_err_cqe`), its opcodes and the
//! error syndromes.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::assert_size;
use super::cmd::InHeader;
use crate::be::{Be16, Be32, Be64};

/// The CQ context.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct CqContext {
    /// 31:28 status; 23:21 CQE size (0: 64 bytes); 20 cc; 17 oi.
    pub flags: Be32,
    /// Doorbell umem id (unused).
    pub dbr_umem_id: Be32,
    /// 11:6 page offset.
    pub page_offset: Be32,
    /// 28:24 log2 entries; 23:0 UAR page.
    pub size_uar: Be32,
    /// 27:16 moderation period; 15:0 moderation count.
    pub moderation: Be32,
    /// 7:0 the EQ completion events go to.
    pub c_eqn: Be32,
    /// 28:24 log2 page size of the buffer in 4 KiB units.
    pub log_page_size: Be32,
    pub(crate) _r0: [u8; 4],
    /// Last notified index.
    pub last_notified_index: Be32,
    /// Last solicited index.
    pub last_solicit_index: Be32,
    /// Consumer counter.
    pub consumer_counter: Be32,
    /// Producer counter.
    pub producer_counter: Be32,
    pub(crate) _r1: [u8; 8],
    /// The doorbell record: [0] consumer index, [1] arm.
    pub dbr_addr: Be64,
}
assert_size!(CqContext, 0x40);

impl CqContext {
    /// Sets the CQE size code (0 = 64 bytes).
    pub fn set_cqe_size(&mut self, code: u32) {
        self.flags.set_bits(23, 21, code);
    }
    /// Sets the log2 number of entries.
    pub fn set_log_size(&mut self, log: u32) {
        self.size_uar.set_bits(28, 24, log);
    }
    /// Sets the UAR page of the CQ's doorbells.
    pub fn set_uar_page(&mut self, uar: u32) {
        self.size_uar.set_bits(23, 0, uar);
    }
    /// Sets the EQ for completion events.
    pub fn set_eqn(&mut self, eqn: u8) {
        self.c_eqn.set_bits(7, 0, eqn as u32);
    }
    /// Sets the log2 page size of the buffer (0: 4 KiB pages).
    pub fn set_log_page_size(&mut self, log: u32) {
        self.log_page_size.set_bits(28, 24, log);
    }
}

/// CREATE_CQ input; the buffer's page addresses follow.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct CreateCqIn {
    /// Opcode.
    pub hdr: InHeader,
    pub(crate) _r0: [u8; 8],
    /// The CQ context.
    pub ctx: CqContext,
    /// Umem offset (unused).
    pub cq_umem_offset: Be64,
    /// Umem id (unused).
    pub cq_umem_id: Be32,
    /// Bit 31: umem valid (0: the PAS list follows).
    pub cq_umem_valid: Be32,
    pub(crate) _r1: [u8; 0x110 - 0x60],
}
assert_size!(CreateCqIn, 0x110);

/// One completion queue entry (64-byte format). Success and error CQEs share the
/// tail; `vendor_err_synd` and `syndrome` are meaningful in error CQEs only.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Cqe {
    pub(crate) _r0: [u8; 0x2c],
    /// Bytes transferred.
    pub byte_cnt: Be32,
    pub(crate) _r1: [u8; 6],
    /// Vendor-specific error syndrome (error CQEs).
    pub vendor_err_synd: u8,
    /// Error syndrome (error CQEs), see [`syndrome_name`].
    pub syndrome: u8,
    /// 31:24 the WQE's opcode; 23:0 QPN.
    pub sop_drop_qpn: Be32,
    /// The WQE's index (WQEBB counter) this completion retires.
    pub wqe_counter: Be16,
    /// Signature.
    pub signature: u8,
    /// 7:4 opcode; 3:2 format; 0 owner.
    pub op_own: u8,
}
assert_size!(Cqe, 64);

impl Cqe {
    /// The CQE opcode (op_own 7:4).
    pub fn opcode(&self) -> u8 {
        self.op_own >> 4
    }
    /// The owner bit.
    pub fn owner(&self) -> u8 {
        self.op_own & 1
    }
    /// The QP the completion belongs to.
    pub fn qpn(&self) -> u32 {
        self.sop_drop_qpn.bits(23, 0)
    }
    /// The opcode of the WQE it completes.
    pub fn wqe_opcode(&self) -> u8 {
        self.sop_drop_qpn.bits(31, 24) as u8
    }
}

/// CQE opcode: requester completion, success.
pub const CQE_REQ: u8 = 0x0;
/// CQE opcode: requester error.
pub const CQE_REQ_ERR: u8 = 0xd;
/// CQE opcode: responder error.
pub const CQE_RESP_ERR: u8 = 0xe;
/// CQE opcode: invalid (never written by hardware; what the driver initialises with).
pub const CQE_INVALID: u8 = 0xf;
/// The op_own byte every CQE is initialised with: opcode invalid.
pub const CQE_OP_OWN_INIT: u8 = CQE_INVALID << 4 | 1;
/// CQE size code: 64 bytes.
pub const CQE_SIZE_64: u32 = 0;

/// Error syndrome: local length error.
pub const SYND_LOCAL_LENGTH: u8 = 0x01;
/// Error syndrome: local QP operation error.
pub const SYND_LOCAL_QP_OP: u8 = 0x02;
/// Error syndrome: local protection (bad lkey, or access the key does not grant).
pub const SYND_LOCAL_PROTECTION: u8 = 0x04;
/// Error syndrome: work request flushed (the QP is in error).
pub const SYND_WR_FLUSH: u8 = 0x05;
/// Error syndrome: bad response.
pub const SYND_BAD_RESPONSE: u8 = 0x10;
/// Error syndrome: local access error.
pub const SYND_LOCAL_ACCESS: u8 = 0x11;
/// Error syndrome: remote invalid request.
pub const SYND_REMOTE_INVALID_REQUEST: u8 = 0x12;
/// Error syndrome: remote access (bad rkey, or outside the remote region).
pub const SYND_REMOTE_ACCESS: u8 = 0x13;
/// Error syndrome: remote operation error.
pub const SYND_REMOTE_OP: u8 = 0x14;
/// Error syndrome: transport retries exceeded (no answer: wrong GID, MAC, QPN or PSN, or
/// the link is down).
pub const SYND_TRANSPORT_RETRY: u8 = 0x15;
/// Error syndrome: receiver-not-ready retries exceeded.
pub const SYND_RNR_RETRY: u8 = 0x16;

/// What an error CQE's syndrome means, naming the code and, where there is one, the usual
/// cause.
pub fn syndrome_name(syndrome: u8) -> &'static str {
    match syndrome {
        SYND_LOCAL_LENGTH => "local length error (CQE syndrome 0x01)",
        SYND_LOCAL_QP_OP => "local QP operation error (CQE syndrome 0x02)",
        SYND_LOCAL_PROTECTION => {
            "local protection error: the lkey is invalid or does not cover the buffer (CQE syndrome 0x04)"
        }
        SYND_WR_FLUSH => {
            "flushed: the queue pair is in error after an earlier failure (CQE syndrome 0x05)"
        }
        SYND_BAD_RESPONSE => "bad response from the memory node (CQE syndrome 0x10)",
        SYND_LOCAL_ACCESS => "local access error (CQE syndrome 0x11)",
        SYND_REMOTE_INVALID_REQUEST => "remote invalid request (CQE syndrome 0x12)",
        SYND_REMOTE_ACCESS => {
            "remote access error: the memory node refused the rkey or the address is outside its region (CQE syndrome 0x13)"
        }
        SYND_REMOTE_OP => "remote operation error (CQE syndrome 0x14)",
        SYND_TRANSPORT_RETRY => {
            "transport retries exceeded: no answer from the memory node (wrong GID, MAC, QPN or PSN, or the link is down) (CQE syndrome 0x15)"
        }
        SYND_RNR_RETRY => "receiver-not-ready retries exceeded (CQE syndrome 0x16)",
        0x22 => "aborted (CQE syndrome 0x22)",
        _ => "unknown CQE error syndrome",
    }
}

super::zeroed_default!(CqContext, CreateCqIn);

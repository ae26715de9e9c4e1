//! Queue pairs: the QP context (`qpc_bits`) with its address path (`ads_bits`),
//! CREATE_QP, the state transitions RST2INIT, INIT2RTR and RTR2RTS (one layout), and the
//! QP states.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::assert_size;
use super::cmd::InHeader;
use crate::be::{Be16, Be32, Be64};

/// A path to the peer (`ads_bits`): for RoCE, the peer's GID and MAC, our GID index and
/// the UDP source port.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct AddressPath {
    /// 31 fl; 30 free_ar; 15:0 pkey index.
    pub pkey: Be32,
    /// 23 grh (a global route header: always for RoCE); 22:16 mlid; 15:0 rlid.
    pub grh_rlid: Be32,
    /// 31:27 ack timeout; 23:16 source GID index; 11:8 static rate; 7:0 hop limit.
    pub timeout_gid_hop: Be32,
    /// 27:20 traffic class; 19:0 flow label.
    pub tclass_flow: Be32,
    /// The peer's GID.
    pub rgid: [u8; 16],
    /// 15:0 UDP source port (RoCE v2).
    pub dscp_udp_sport: Be32,
    /// 15 dei; 14:12 Ethernet priority; 11:8 service level; 7:0 vhca port number.
    pub prio_sl_port: Be16,
    /// The peer's MAC address.
    pub rmac: [u8; 6],
}
assert_size!(AddressPath, 0x2c);

impl AddressPath {
    /// Marks the path as carrying a global route header.
    pub fn set_grh(&mut self, on: bool) {
        self.grh_rlid.set_bit(23, on);
    }
    /// Sets the ack timeout exponent (4.096 us << n).
    pub fn set_ack_timeout(&mut self, n: u32) {
        self.timeout_gid_hop.set_bits(31, 27, n);
    }
    /// Sets our GID table index.
    pub fn set_src_addr_index(&mut self, index: u32) {
        self.timeout_gid_hop.set_bits(23, 16, index);
    }
    /// Sets the hop limit.
    pub fn set_hop_limit(&mut self, hops: u32) {
        self.timeout_gid_hop.set_bits(7, 0, hops);
    }
    /// Sets the UDP source port.
    pub fn set_udp_sport(&mut self, port: u16) {
        self.dscp_udp_sport.set_bits(15, 0, port as u32);
    }
    /// Sets the vhca port number (1 for a single-port function).
    pub fn set_vhca_port(&mut self, port: u8) {
        let v = self.prio_sl_port.get() & 0xff00 | port as u16;
        self.prio_sl_port.set(v);
    }
}

/// The QP context.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct QpContext {
    /// 31:28 state; 23:16 service type; 12:11 path migration state.
    pub state_st_pm: Be32,
    /// 23:0 protection domain.
    pub pd: Be32,
    /// 31:29 MTU; 28:24 log max message; 22:19 log RQ size; 18:16 log RQ stride; 15 no
    /// SQ; 14:11 log SQ size (WQEBBs); 7:6 timestamp format; 4 rlky.
    pub mtu_sizes: Be32,
    /// 31:24 counter set; 23:0 UAR page.
    pub uar_page: Be32,
    /// 23:0 user index.
    pub user_index: Be32,
    /// 28:24 log page size of the WQ buffer; 23:0 remote QPN.
    pub page_remote_qpn: Be32,
    /// The primary path.
    pub primary_path: AddressPath,
    /// The alternate path (unused).
    pub secondary_path: AddressPath,
    /// 23:21 log max outstanding READs as requester; 18:16 retry count; 15:13 RNR
    /// retry; 11 fre.
    pub sra_retry: Be32,
    pub(crate) _r0: [u8; 4],
    /// 23:0 next send PSN.
    pub next_send_psn: Be32,
    /// 23:0 send CQ.
    pub cqn_snd: Be32,
    pub(crate) _r1: [u8; 0x90 - 0x80],
    /// 23:21 log max outstanding READs as responder; 15 remote read enable; 14 remote
    /// write enable; 13 remote atomic enable.
    pub rra_access: Be32,
    /// 28:24 minimum RNR NAK timer; 23:0 next receive PSN.
    pub rnr_rcv_psn: Be32,
    pub(crate) _r2: [u8; 4],
    /// 23:0 receive CQ.
    pub cqn_rcv: Be32,
    /// The doorbell record: [0] RQ counter, [1] SQ counter (64-byte aligned).
    pub dbr_addr: Be64,
    pub(crate) _r3: [u8; 4],
    /// 26:24 RQ type ([`RQ_TYPE_NONE`]: no receive queue).
    pub rq_type: Be32,
    pub(crate) _r4: [u8; 0xe8 - 0xb0],
}
assert_size!(QpContext, 0xe8);

/// Service type: reliable connection.
pub const ST_RC: u32 = 0;
/// Path migration state: migrated.
pub const PM_MIGRATED: u32 = 3;
/// RQ type: zero-length (no receive queue).
pub const RQ_TYPE_NONE: u32 = 3;
/// MTU code for 1024 bytes.
pub const MTU_1024: u32 = 3;
/// MTU code for 4096 bytes.
pub const MTU_4096: u32 = 5;

/// QP states (the `state` field).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QpState {
    /// Reset.
    Reset,
    /// Initialised.
    Init,
    /// Ready to receive.
    Rtr,
    /// Ready to send.
    Rts,
    /// Error: every WQE flushes.
    Error,
}

impl QpContext {
    /// Sets the service type and path migration state.
    pub fn set_service(&mut self, st: u32, pm: u32) {
        self.state_st_pm.set_bits(23, 16, st);
        self.state_st_pm.set_bits(12, 11, pm);
    }
    /// Sets the protection domain.
    pub fn set_pd(&mut self, pd: u32) {
        self.pd.set_bits(23, 0, pd);
    }
    /// Sets the MTU code.
    pub fn set_mtu(&mut self, code: u32) {
        self.mtu_sizes.set_bits(31, 29, code);
    }
    /// Sets log2 of the longest message.
    pub fn set_log_msg_max(&mut self, log: u32) {
        self.mtu_sizes.set_bits(28, 24, log);
    }
    /// Sets log2 of the send queue size in WQEBBs.
    pub fn set_log_sq_size(&mut self, log: u32) {
        self.mtu_sizes.set_bits(14, 11, log);
    }
    /// Sets the timestamp format.
    pub fn set_ts_format(&mut self, format: u32) {
        self.mtu_sizes.set_bits(7, 6, format);
    }
    /// Sets the UAR page.
    pub fn set_uar_page(&mut self, uar: u32) {
        self.uar_page.set_bits(23, 0, uar);
    }
    /// Sets the user index.
    pub fn set_user_index(&mut self, index: u32) {
        self.user_index.set_bits(23, 0, index);
    }
    /// Sets log2 of the WQ buffer's page size (0: 4 KiB).
    pub fn set_log_page_size(&mut self, log: u32) {
        self.page_remote_qpn.set_bits(28, 24, log);
    }
    /// Sets the peer's QPN.
    pub fn set_remote_qpn(&mut self, qpn: u32) {
        self.page_remote_qpn.set_bits(23, 0, qpn);
    }
    /// Sets log2 of the READs outstanding as requester, and the retry counts.
    pub fn set_requester(&mut self, log_sra: u32, retry: u32, rnr_retry: u32) {
        self.sra_retry.set_bits(23, 21, log_sra);
        self.sra_retry.set_bits(18, 16, retry);
        self.sra_retry.set_bits(15, 13, rnr_retry);
    }
    /// Sets the first PSN we send.
    pub fn set_next_send_psn(&mut self, psn: u32) {
        self.next_send_psn.set_bits(23, 0, psn);
    }
    /// Sets the send CQ.
    pub fn set_cqn_snd(&mut self, cqn: u32) {
        self.cqn_snd.set_bits(23, 0, cqn);
    }
    /// Sets the receive CQ.
    pub fn set_cqn_rcv(&mut self, cqn: u32) {
        self.cqn_rcv.set_bits(23, 0, cqn);
    }
    /// Sets log2 of the READs accepted as responder and the remote access rights.
    pub fn set_responder(&mut self, log_rra: u32, remote_read: bool, remote_write: bool) {
        self.rra_access.set_bits(23, 21, log_rra);
        self.rra_access.set_bit(15, remote_read);
        self.rra_access.set_bit(14, remote_write);
    }
    /// Sets the RNR NAK timer and the first PSN we expect.
    pub fn set_receiver(&mut self, min_rnr_nak: u32, psn: u32) {
        self.rnr_rcv_psn.set_bits(28, 24, min_rnr_nak);
        self.rnr_rcv_psn.set_bits(23, 0, psn);
    }
    /// Sets the RQ type.
    pub fn set_rq_type(&mut self, rq_type: u32) {
        self.rq_type.set_bits(26, 24, rq_type);
    }
}

/// CREATE_QP input; the WQ buffer's page addresses follow.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct CreateQpIn {
    /// Opcode.
    pub hdr: InHeader,
    /// 23:0 input QPN (0: let the device choose).
    pub input_qpn: Be32,
    pub(crate) _r0: [u8; 4],
    /// Optional parameter mask.
    pub opt_param_mask: Be32,
    /// Enhanced connection establishment (0).
    pub ece: Be32,
    /// The QP context.
    pub qpc: QpContext,
    /// WQ umem offset (unused).
    pub wq_umem_offset: Be64,
    /// WQ umem id (unused).
    pub wq_umem_id: Be32,
    /// Bit 31: umem valid (0: the PAS list follows).
    pub wq_umem_valid: Be32,
}
assert_size!(CreateQpIn, 0x110);

/// Input of RST2INIT_QP, INIT2RTR_QP and RTR2RTS_QP.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct ModifyQpIn {
    /// Opcode (which transition).
    pub hdr: InHeader,
    /// 23:0 the QP.
    pub qpn: Be32,
    pub(crate) _r0: [u8; 4],
    /// Optional parameter mask (0: the transition's required fields only).
    pub opt_param_mask: Be32,
    /// Enhanced connection establishment (0).
    pub ece: Be32,
    /// The fields the transition sets.
    pub qpc: QpContext,
    pub(crate) _r1: [u8; 0x10],
}
assert_size!(ModifyQpIn, 0x110);

super::zeroed_default!(AddressPath, QpContext, CreateQpIn, ModifyQpIn);

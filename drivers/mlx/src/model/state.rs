//! The model's state: the init segment's registers, the lifecycle flags, the object
//! tables, the memory node, and the bookkeeping the rules need (write epochs between
//! barriers, pages firmware owns). Registers and DMA accesses from the driver arrive here;
//! commands and the data path live in `commands` and `datapath`.

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::fields::be32;
use super::memory::Memory;
use super::{Fault, ModelConfig};
use crate::exchange::ConnectRequest;
use crate::hw::cmd::Opcode;
use crate::platform::PAGE_SIZE;

/// A command as the device saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommandRecord {
    /// The opcode.
    pub opcode: Opcode,
    /// The modifier.
    pub op_mod: u16,
    /// The slot it came on.
    pub slot: usize,
    /// Delivery status given.
    pub delivery: u8,
    /// Command status given.
    pub status: u8,
    /// Syndrome given.
    pub syndrome: u32,
}

/// States of a simulated queue pair.
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
    /// Error: WQEs flush.
    Error,
}

/// What the device recorded of a queue pair: every field the driver set, decoded by the
/// model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QpView {
    /// State.
    pub state: QpState,
    /// Protection domain.
    pub pd: u32,
    /// Send CQ.
    pub cqn_snd: u32,
    /// Receive CQ.
    pub cqn_rcv: u32,
    /// log2 WQEBBs.
    pub log_sq_size: u32,
    /// Timestamp format.
    pub ts_format: u32,
    /// User index.
    pub user_index: u32,
    /// MTU code.
    pub mtu: u32,
    /// log2 longest message.
    pub log_msg_max: u32,
    /// The peer's QPN.
    pub remote_qpn: u32,
    /// First PSN expected.
    pub next_rcv_psn: u32,
    /// First PSN sent (as set at RTR2RTS).
    pub next_send_psn: u32,
    /// RNR NAK timer.
    pub min_rnr_nak: u32,
    /// log2 READs accepted.
    pub log_rra_max: u32,
    /// log2 READs outstanding.
    pub log_sra_max: u32,
    /// Transport retries.
    pub retry_count: u32,
    /// RNR retries.
    pub rnr_retry: u32,
    /// Ack timeout exponent.
    pub ack_timeout: u32,
    /// Our GID index.
    pub src_addr_index: u32,
    /// Hop limit.
    pub hop_limit: u32,
    /// Global route header present.
    pub grh: bool,
    /// The peer's GID.
    pub rgid: [u8; 16],
    /// The peer's MAC.
    pub rmac: [u8; 6],
    /// UDP source port.
    pub udp_sport: u32,
    /// vhca port number.
    pub vhca_port: u32,
    /// Remote read allowed into our memory.
    pub remote_read: bool,
    /// Remote write allowed into our memory.
    pub remote_write: bool,
    /// WQEs executed.
    pub executed: u64,
}

/// Counters of the model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModelStats {
    /// Commands completed (any status).
    pub commands: u64,
    /// Send doorbells rung.
    pub send_doorbells: u64,
    /// WQEs executed.
    pub wqes: u64,
    /// RDMA READs done.
    pub reads: u64,
    /// RDMA WRITEs done.
    pub writes: u64,
    /// CQEs written.
    pub cqes: u64,
    /// Error CQEs written.
    pub error_cqes: u64,
    /// EQEs written.
    pub eqes: u64,
    /// Times the CQ ring wrapped (producer side).
    pub cq_wraps: u64,
}

pub(crate) struct EqState {
    pub log_size: u32,
    pub uar: u32,
    pub pas: Vec<u64>,
    pub pi: u32,
    pub ci: u32,
    pub bitmask: u64,
}

pub(crate) struct CqState {
    pub log_size: u32,
    pub uar: u32,
    pub eqn: u8,
    pub pas: Vec<u64>,
    pub dbr: u64,
    pub pi: u32,
}

pub(crate) struct MkeyState {
    pub pd: u32,
    pub variant: u8,
    pub local_read: bool,
    pub local_write: bool,
    pub len64: bool,
    pub start: u64,
    pub len: u64,
    pub valid: bool,
}

pub(crate) struct QpRecord {
    pub view: QpView,
    pub uar: u32,
    pub pas: Vec<u64>,
    pub dbr: u64,
    /// The next WQE index the device fetches.
    pub sq_ci: u16,
    /// The PSN of the next packet sent.
    pub psn: u32,
}

pub(crate) struct GidEntry {
    pub gid: [u8; 16],
    pub mac: [u8; 6],
    pub version: u32,
}

/// A WQE fetched at a doorbell and waiting to execute.
pub(crate) struct Pending {
    pub qpn: u32,
    pub index: u16,
    pub opcode: u8,
    pub signalled: bool,
    pub raddr: u64,
    pub rkey: u32,
    pub len: u32,
    pub lkey: u32,
    pub addr: u64,
}

/// The far end: the memory node's registered region and its queue pair's view of ours.
pub(crate) struct NodeState {
    pub memory: Vec<u8>,
    /// Bytes actually registered (the rest of `memory` is outside the MR).
    pub registered: u64,
    pub peer_qpn: Option<u32>,
    pub peer_gid: [u8; 16],
    pub expected_psn: u32,
}

impl NodeState {
    /// Records our side after an exchange.
    pub fn connect(&mut self, request: &ConnectRequest, registered: u64, psn_skew: u32) {
        if self.memory.len() < request.region_size as usize {
            self.memory.resize(request.region_size as usize, 0);
        }
        self.registered = registered;
        self.peer_qpn = Some(request.qpn.0);
        self.peer_gid = request.gid;
        self.expected_psn = (request.psn.0 + psn_skew) & 0xff_ffff;
    }
}

pub(crate) struct State {
    pub cfg: ModelConfig,
    pub mem: Memory,
    pub violations: Vec<String>,
    pub history: Vec<CommandRecord>,
    pub stats: ModelStats,
    /// Write barriers so far.
    pub epoch: u64,
    /// The epoch of the last driver write to each 64-byte line.
    pub line_epochs: BTreeMap<u64, u64>,
    // Init segment.
    pub init_reads_left: u32,
    pub cmdq_h: u32,
    pub cmdq: Option<u64>,
    pub health_counter: u32,
    pub health_synd: u8,
    // Command engine.
    pub busy: u64,
    pub withheld: Option<(usize, i32)>,
    pub page_request_fired: bool,
    pub pages_toward_request: i64,
    // Lifecycle.
    pub enabled: bool,
    pub issi: u16,
    pub caps_set: bool,
    pub hca_init: bool,
    pub fw_pages: BTreeSet<u64>,
    pub extra_pages: i64,
    pub vport_roce: bool,
    // Objects.
    pub uars: BTreeSet<u32>,
    pub pds: BTreeSet<u32>,
    pub eqs: BTreeMap<u8, EqState>,
    pub cqs: BTreeMap<u32, CqState>,
    pub mkeys: BTreeMap<u32, MkeyState>,
    pub qps: BTreeMap<u32, QpRecord>,
    pub gids: BTreeMap<u32, GidEntry>,
    pub next_id: u32,
    // Data path.
    pub pending: VecDeque<Pending>,
    pub fail_next_wqe: Option<u8>,
    pub node: NodeState,
}

impl State {
    pub fn new(cfg: ModelConfig) -> Self {
        State {
            init_reads_left: cfg.init_delay_reads,
            cfg,
            mem: Memory::new(),
            violations: Vec::new(),
            history: Vec::new(),
            stats: ModelStats::default(),
            epoch: 0,
            line_epochs: BTreeMap::new(),
            cmdq_h: 0,
            cmdq: None,
            health_counter: 0,
            health_synd: 0,
            busy: 0,
            withheld: None,
            page_request_fired: false,
            pages_toward_request: 0,
            enabled: false,
            issi: 0,
            caps_set: false,
            hca_init: false,
            fw_pages: BTreeSet::new(),
            extra_pages: 0,
            vport_roce: false,
            uars: BTreeSet::new(),
            pds: BTreeSet::new(),
            eqs: BTreeMap::new(),
            cqs: BTreeMap::new(),
            mkeys: BTreeMap::new(),
            qps: BTreeMap::new(),
            gids: BTreeMap::new(),
            next_id: 8,
            pending: VecDeque::new(),
            fail_next_wqe: None,
            node: NodeState {
                memory: Vec::new(),
                registered: 0,
                peer_qpn: None,
                peer_gid: [0; 16],
                expected_psn: 0,
            },
        }
    }

    pub fn violation(&mut self, what: String) {
        log::debug!("model violation: {what}");
        self.violations.push(what);
    }

    /// A fresh object number (UAR, PD, CQ, QP, MKey index), never reused.
    pub fn fresh_id(&mut self) -> u32 {
        self.next_id += 1;
        self.next_id
    }

    pub fn inject(&mut self, fault: Fault) {
        match fault {
            Fault::FailNextWqe(s) => self.fail_next_wqe = Some(s),
            Fault::InvalidateMkeys => self.mkeys.values_mut().for_each(|m| m.valid = false),
            Fault::Health(s) => self.health_synd = s,
        }
    }

    // --- Memory as the device sees it.

    pub fn dev_read(&mut self, phys: u64, out: &mut [u8]) {
        if !self.mem.read(phys, out) {
            self.violation(format!(
                "the device was pointed at unmapped memory {phys:#x}+{:#x}",
                out.len()
            ));
        }
    }

    pub fn dev_read_vec(&mut self, phys: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        self.dev_read(phys, &mut v);
        v
    }

    pub fn dev_write(&mut self, phys: u64, data: &[u8]) {
        if !self.mem.write(phys, data) {
            self.violation(format!(
                "the device was pointed at unmapped memory {phys:#x}+{:#x}",
                data.len()
            ));
        }
    }

    // --- Memory as the driver sees it.

    fn in_cq_ring(&self, phys: u64) -> bool {
        self.cqs.values().any(|cq| cq.pas.iter().any(|&p| phys >= p && phys < p + PAGE_SIZE as u64))
    }

    pub fn driver_read(&mut self, phys: u64, out: &mut [u8]) {
        if self.cfg.lazy && !self.pending.is_empty() && self.in_cq_ring(phys) {
            self.execute_pending(1);
        }
        if !self.mem.read(phys, out) {
            self.violation(format!(
                "the driver read unmapped DMA memory {phys:#x}+{:#x}",
                out.len()
            ));
        }
    }

    pub fn driver_write(&mut self, phys: u64, data: &[u8]) {
        let first = phys & !(PAGE_SIZE as u64 - 1);
        let mut page = first;
        while page < phys + data.len() as u64 {
            if self.fw_pages.contains(&page) {
                self.violation(format!(
                    "the driver wrote {phys:#x}+{:#x}, in page {page:#x} which firmware owns",
                    data.len()
                ));
            }
            page += PAGE_SIZE as u64;
        }
        if !self.mem.write(phys, data) {
            self.violation(format!(
                "the driver wrote unmapped DMA memory {phys:#x}+{:#x}",
                data.len()
            ));
            return;
        }
        let mut line = phys & !63;
        while line < phys + data.len() as u64 {
            self.line_epochs.insert(line, self.epoch);
            line += 64;
        }
    }

    /// The epoch of the last driver write to the line of `phys` (0 if never written).
    pub fn written_in(&self, phys: u64) -> Option<u64> {
        self.line_epochs.get(&(phys & !63)).copied()
    }

    pub fn driver_free(&mut self, phys: u64, pages: usize) {
        let end = phys + (pages * PAGE_SIZE) as u64;
        if let Some(&p) = self.fw_pages.range(phys..end).next() {
            self.violation(format!("the driver freed page {p:#x} which firmware still owns"));
        }
        let in_use = |pas: &[u64]| pas.iter().any(|&p| p >= phys && p < end);
        let mut users = Vec::new();
        for (eqn, eq) in &self.eqs {
            if in_use(&eq.pas) {
                users.push(format!("EQ {eqn}"));
            }
        }
        for (cqn, cq) in &self.cqs {
            if in_use(&cq.pas) || (cq.dbr >= phys && cq.dbr < end) {
                users.push(format!("CQ {cqn:#x}"));
            }
        }
        for (qpn, qp) in &self.qps {
            if in_use(&qp.pas) || (qp.dbr >= phys && qp.dbr < end) {
                users.push(format!("QP {qpn:#x}"));
            }
        }
        if self.enabled && self.cmdq.is_some_and(|q| q >= phys && q < end) {
            users.push(String::from("the command queue"));
        }
        if !users.is_empty() {
            self.violation(format!(
                "the driver freed {phys:#x} while {} still use it",
                users.join(", ")
            ));
        }
        if let Err(e) = self.mem.free(phys, pages) {
            self.violation(format!("the driver freed {phys:#x} ({pages} pages): {e}"));
        }
    }

    // --- Registers.

    pub fn read32(&mut self, offset: usize) -> u32 {
        match offset {
            0x000 => 28 << 16 | 16,
            0x004 => 5 << 16 | 1000,
            0x010 => self.cmdq_h,
            0x014 => {
                let low = self.cmdq.map(|q| q as u32 & 0xffff_f000).unwrap_or(0);
                low | self.cfg.cmdq_log_size << 4 | 6
            }
            0x1fc if self.init_reads_left > 0 => {
                self.init_reads_left -= 1;
                1 << 31
            }
            0x1fc => 0,
            0x230 => 16 << 16 | 28,
            0x23c => (self.health_synd as u32) << 16,
            0x1010 => {
                self.health_counter = self.health_counter.wrapping_add(1);
                self.health_counter
            }
            _ => 0,
        }
    }

    fn uar_of(&mut self, offset: usize) -> Option<(u32, usize)> {
        let uar = (offset / PAGE_SIZE) as u32;
        if !self.uars.contains(&uar) {
            self.violation(format!(
                "write to BAR0 {offset:#x}, in UAR page {uar} which is not allocated"
            ));
            return None;
        }
        Some((uar, offset % PAGE_SIZE))
    }

    pub fn write32(&mut self, offset: usize, value: u32) {
        match offset {
            0x010 => self.cmdq_h = value,
            0x014 => {
                if value & 0xfff != 0 {
                    self.violation(format!(
                        "cmdq_addr_l_sz written with {value:#x}: the address must be 4 KiB aligned and nic_interface 0"
                    ));
                }
                let addr = (self.cmdq_h as u64) << 32 | (value & 0xffff_f000) as u64;
                if !self.mem.contains(addr, PAGE_SIZE) {
                    self.violation(format!("command queue at {addr:#x} is not DMA memory"));
                }
                self.cmdq = Some(addr);
                self.init_reads_left = self.cfg.init_delay_reads;
            }
            0x018 => {
                for slot in 0..32 {
                    if value >> slot & 1 == 1 {
                        self.ring_command(slot);
                    }
                }
            }
            o if o < 2 * PAGE_SIZE => {
                self.violation(format!("write of {value:#x} to init segment offset {o:#x}, which is read only or unknown"));
            }
            o => {
                let Some((uar, reg)) = self.uar_of(o) else { return };
                match reg {
                    0x40 | 0x48 => self.eq_doorbell(uar, value),
                    0x800..=0xfff => self.violation(format!(
                        "32-bit write to the send doorbell of UAR {uar}: it must be one 64-bit store"
                    )),
                    r => self.violation(format!("write to UAR {uar} register {r:#x}, which is not a doorbell")),
                }
            }
        }
    }

    pub fn write64(&mut self, offset: usize, value: u64) {
        if offset < 2 * PAGE_SIZE {
            self.violation(format!("64-bit write to init segment offset {offset:#x}"));
            return;
        }
        let Some((uar, reg)) = self.uar_of(offset) else { return };
        let bf = 1usize << self.cfg.log_bf_reg_size;
        match reg {
            0x20 => {}
            r if r == 0x800 || r == 0x800 + bf / 2 => self.send_doorbell(uar, value),
            r => self.violation(format!(
                "64-bit write to UAR {uar} register {r:#x}, which is not a doorbell"
            )),
        }
    }

    pub fn qp_view(&self, qpn: u32) -> Option<QpView> {
        self.qps.get(&qpn).map(|q| q.view)
    }

    /// The doorbell record's consumer index of a CQ.
    pub fn cq_consumer(&mut self, dbr: u64) -> u32 {
        let mut b = [0u8; 4];
        self.dev_read(dbr, &mut b);
        be32(&b, 0) & 0xff_ffff
    }
}

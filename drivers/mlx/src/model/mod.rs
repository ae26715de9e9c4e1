//! A simulated ConnectX (and the memory node at the far end of its queue pair) for host
//! tests: BAR0 as a register file that reacts to doorbells, DMA memory as heap pages with
//! fake physical addresses, and a firmware that decodes every command and WQE with its
//! own decoders ([`fields`]) and enforces the rules the brief lists:
//!
//! - init segment: `initializing` clears after some reads (again after the command queue
//!   address is written), command interface revision 5, the queue address latched and
//!   its alignment checked;
//! - command engine: entry type and ownership, tokens equal in the entry and every
//!   mailbox, block numbers in sequence, chains as long as the lengths, 1 KiB alignment,
//!   per-opcode input and output lengths, the delivery and command status codes;
//! - lifecycle: nothing before ENABLE_HCA, capabilities only after the boot pages,
//!   INIT_HCA only after exactly the boot and init pages (unique, aligned), objects only
//!   after INIT_HCA; no driver write may land in a page firmware owns; at DISABLE_HCA all
//!   pages must have been taken back;
//! - page requests: optionally, mid-command, a PAGE_REQUEST event is posted and the
//!   command withheld until MANAGE_PAGES arrives on another slot;
//! - objects: UAR, PD, EQ, CQ, MKey, QP and GID tables with references, log sizes against
//!   the capabilities, PAS counts, doorbell-record alignment, initial owner bytes; QP
//!   transitions only from the right state (status 0x10), their fields recorded;
//! - data path: the send doorbell must be one 64-bit store after the doorbell record,
//!   itself written after the WQE, with barriers between (write epochs); WQE index, QPN,
//!   DS and opcode decoded and checked; lkey and rkey resolved (bad keys, wrong QPN, GID,
//!   MAC or PSN, and out-of-region addresses give the right syndromes, then the QP flushes);
//!   CQEs written with the owner bit of their pass; CQ overrun and EQ overrun detected;
//! - health: a ticking counter and injectable fatal syndromes.
//!
//! Violations of these rules that real hardware would not report as a status are
//! collected ([`Model::violations`]); tests end with [`Model::assert_clean`].
//!
//! This module owns only simulation. It must never share an encoder or a layout with the
//! driver, and is compiled only for tests (and with the `model` feature).

mod commands;
mod datapath;
pub mod fields;
mod memory;
mod state;

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use remora_rmem::LocalBuf;
use spin::Mutex;

use crate::exchange::{ConnectReply, ConnectRequest, ControlLink, ExchangeError, ReplyStatus};
use crate::hw::cmd::Opcode;
use crate::ids::{Psn, Qpn, Rkey};
use crate::platform::{Bar, Clock, Dma, DmaError, PAGE_SIZE};

use state::State;
pub use state::{CommandRecord, ModelStats, QpState, QpView};

/// How the simulated memory node answers the connection exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeFault {
    /// Correct parameters.
    None,
    /// An rkey that the node's region does not have.
    BadRkey,
    /// A QPN other than the node's queue pair.
    WrongQpn,
    /// The node expects another first PSN from us than the one we sent (its receive
    /// side is out of step).
    WrongPsn,
    /// Another MAC than the node's.
    WrongMac,
    /// The node grants the region asked for but registered only this many bytes of it.
    RegisteredShort(u64),
    /// The node refuses.
    Refuse(ReplyStatus),
    /// The node never answers.
    Silent,
}

/// The simulated memory node.
#[derive(Clone, Copy, Debug)]
pub struct NodeConfig {
    /// Its queue pair.
    pub qpn: u32,
    /// The first PSN it sends.
    pub psn: u32,
    /// Its GID.
    pub gid: [u8; 16],
    /// Its MAC.
    pub mac: [u8; 6],
    /// Its region's key.
    pub rkey: u32,
    /// Its region's base address.
    pub base: u64,
    /// Bytes it can grant.
    pub capacity: u64,
    /// READs it accepts outstanding.
    pub max_reads: u8,
    /// What it gets wrong.
    pub fault: NodeFault,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            qpn: 0x4a1,
            psn: 0x77_0000,
            gid: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1],
            mac: [0x02, 0x52, 0x4d, 0x45, 0x4d, 0x01],
            rkey: 0x0012_3456,
            base: 0x7f00_0000_0000,
            capacity: 64 << 20,
            max_reads: 16,
            fault: NodeFault::None,
        }
    }
}

/// The simulated device.
#[derive(Clone, Debug)]
pub struct ModelConfig {
    /// Pages QUERY_PAGES (boot) asks for.
    pub boot_pages: i32,
    /// Pages QUERY_PAGES (init) asks for.
    pub init_pages: i32,
    /// Reads of `initializing` before it clears, at start and after the queue address.
    pub init_delay_reads: u32,
    /// log2 of the command queue's entries.
    pub cmdq_log_size: u32,
    /// Capabilities.
    pub log_max_qp_sz: u32,
    /// Capabilities.
    pub log_max_cq_sz: u32,
    /// Capabilities.
    pub log_max_ra_req_qp: u32,
    /// Capabilities.
    pub log_max_msg: u32,
    /// Capabilities: the CQE version (1: QPs must carry user index 0xffffff).
    pub cqe_version: u32,
    /// RoCE capability `qp_ts_format`.
    pub qp_ts_format: bool,
    /// Entries of the GID table.
    pub gid_table_size: u32,
    /// log2 of the BlueFlame register size.
    pub log_bf_reg_size: u32,
    /// Ethernet port (false: InfiniBand).
    pub ethernet: bool,
    /// RoCE supported.
    pub roce: bool,
    /// ISSI 1 supported.
    pub issi1: bool,
    /// Link up.
    pub link_up: bool,
    /// The port's MAC.
    pub mac: [u8; 6],
    /// Execute WQEs only as the driver polls the CQ (one per CQ read), so requests are
    /// really in flight; false: at the doorbell.
    pub lazy: bool,
    /// While this command is outstanding, post a PAGE_REQUEST for this many pages (< 0:
    /// firmware gives pages back) and withhold its completion until MANAGE_PAGES comes.
    pub page_request: Option<(Opcode, i32)>,
    /// Never complete this command (the driver must time out).
    pub stall: Option<Opcode>,
    /// Fail this command with this status and syndrome.
    pub fail: Option<(Opcode, u8, u32)>,
    /// Nanoseconds the clock moves per read.
    pub clock_step_ns: u64,
    /// The memory node.
    pub node: NodeConfig,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            boot_pages: 24,
            init_pages: 40,
            init_delay_reads: 5,
            cmdq_log_size: 5,
            log_max_qp_sz: 12,
            log_max_cq_sz: 14,
            log_max_ra_req_qp: 4,
            log_max_msg: 30,
            cqe_version: 1,
            qp_ts_format: true,
            gid_table_size: 16,
            log_bf_reg_size: 9,
            ethernet: true,
            roce: true,
            issi1: true,
            link_up: true,
            mac: [0x02, 0x00, 0xc0, 0xff, 0xee, 0x01],
            lazy: true,
            page_request: None,
            stall: None,
            fail: None,
            clock_step_ns: 1_000,
            node: NodeConfig::default(),
        }
    }
}

/// A fault injected at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The next WQE executed fails with this CQE syndrome (e.g. 0x15: the link went down).
    FailNextWqe(u8),
    /// The device forgets every memory key (lkeys stop resolving).
    InvalidateMkeys,
    /// The health buffer reports this syndrome.
    Health(u8),
}

/// The simulated device; clone it to keep a handle for assertions while the driver owns
/// the [`ModelBar`], [`ModelDma`] and [`ModelClock`].
#[derive(Clone)]
pub struct Model {
    state: Arc<Mutex<State>>,
    clock: Arc<AtomicU64>,
    step: u64,
}

impl Model {
    /// A device as configured, firmware initializing.
    pub fn new(config: ModelConfig) -> Self {
        let step = config.clock_step_ns;
        Model {
            state: Arc::new(Mutex::new(State::new(config))),
            clock: Arc::new(AtomicU64::new(0)),
            step,
        }
    }

    /// BAR0.
    pub fn bar(&self) -> ModelBar {
        ModelBar(self.state.clone())
    }

    /// DMA memory.
    pub fn dma(&self) -> ModelDma {
        ModelDma(self.state.clone())
    }

    /// The clock.
    pub fn clock(&self) -> ModelClock {
        ModelClock(self.clock.clone(), self.step)
    }

    /// The control link to the simulated memory node.
    pub fn control(&self) -> ModelControl {
        ModelControl(self.state.clone())
    }

    /// Rule violations seen so far.
    pub fn violations(&self) -> Vec<String> {
        self.state.lock().violations.clone()
    }

    /// Panics, listing them, if any rule was violated.
    pub fn assert_clean(&self) {
        let v = self.violations();
        assert!(
            v.is_empty(),
            "the device model saw {} violation(s):\n  {}",
            v.len(),
            v.join("\n  ")
        );
    }

    /// Forgets the violations seen so far (after a test provoked some on purpose).
    pub fn take_violations(&self) -> Vec<String> {
        core::mem::take(&mut self.state.lock().violations)
    }

    /// Every command completed (or refused), in order.
    pub fn commands(&self) -> Vec<CommandRecord> {
        self.state.lock().history.clone()
    }

    /// What the device recorded of queue pair `qpn`.
    pub fn qp(&self, qpn: Qpn) -> Option<QpView> {
        self.state.lock().qp_view(qpn.0)
    }

    /// Where queue pair `qpn`'s doorbell record is.
    pub fn qp_doorbell_record(&self, qpn: Qpn) -> Option<u64> {
        self.state.lock().qps.get(&qpn.0).map(|q| q.dbr)
    }

    /// GID table entry `index`: (GID, MAC, RoCE version).
    pub fn gid(&self, index: u32) -> Option<([u8; 16], [u8; 6], u32)> {
        self.state.lock().gids.get(&index).map(|g| (g.gid, g.mac, g.version))
    }

    /// Counters.
    pub fn stats(&self) -> ModelStats {
        self.state.lock().stats
    }

    /// Pages firmware holds.
    pub fn firmware_pages(&self) -> usize {
        self.state.lock().fw_pages.len()
    }

    /// DMA pages allocated (by the driver and by tests).
    pub fn allocated_pages(&self) -> usize {
        self.state.lock().mem.allocated_pages()
    }

    /// Injects a fault.
    pub fn inject(&self, fault: Fault) {
        self.state.lock().inject(fault);
    }

    /// A local buffer of `pages` pages in DMA memory, for posting.
    pub fn alloc_buf(&self, pages: usize) -> LocalBuf {
        self.state.lock().mem.local_buf(pages).expect("model memory")
    }

    /// Gives a buffer from [`Model::alloc_buf`] back.
    pub fn free_buf(&self, buf: LocalBuf) {
        let (_, phys, len) = buf.into_raw();
        self.state.lock().mem.free(phys, len / PAGE_SIZE).expect("a buffer from alloc_buf");
    }

    /// Bytes of the memory node's region at `offset`.
    pub fn node_read(&self, offset: u64, len: usize) -> Vec<u8> {
        let s = self.state.lock();
        s.node.memory[offset as usize..offset as usize + len].to_vec()
    }

    /// Writes the memory node's region at `offset`.
    pub fn node_write(&self, offset: u64, data: &[u8]) {
        let mut s = self.state.lock();
        s.node.memory[offset as usize..offset as usize + data.len()].copy_from_slice(data);
    }

    /// Executes every WQE the device holds (for `lazy` models).
    pub fn drain(&self) {
        self.state.lock().execute_pending(usize::MAX);
    }
}

/// BAR0 of the model.
pub struct ModelBar(Arc<Mutex<State>>);

impl Bar for ModelBar {
    fn read32(&self, offset: usize) -> u32 {
        self.0.lock().read32(offset)
    }
    fn write32(&self, offset: usize, value: u32) {
        self.0.lock().write32(offset, value)
    }
    fn write64(&self, offset: usize, value: u64) {
        self.0.lock().write64(offset, value)
    }
    fn write_barrier(&self) {
        self.0.lock().epoch += 1;
    }
    fn read_barrier(&self) {}
    fn len(&self) -> usize {
        32 << 20
    }
}

/// DMA memory of the model.
pub struct ModelDma(Arc<Mutex<State>>);

impl Dma for ModelDma {
    fn alloc(&self, pages: usize) -> Result<u64, DmaError> {
        self.0.lock().mem.alloc(pages).ok_or(DmaError::OutOfMemory { pages })
    }
    fn free(&self, phys: u64, pages: usize) {
        self.0.lock().driver_free(phys, pages)
    }
    fn read(&self, phys: u64, out: &mut [u8]) {
        self.0.lock().driver_read(phys, out)
    }
    fn write(&self, phys: u64, data: &[u8]) {
        self.0.lock().driver_write(phys, data)
    }
}

/// The model's clock: moves on by a fixed step at every read, so timeouts come after a
/// known number of polls.
pub struct ModelClock(Arc<AtomicU64>, u64);

impl Clock for ModelClock {
    fn now_ns(&self) -> u64 {
        self.0.fetch_add(self.1, Ordering::Relaxed)
    }
}

/// The control link to the simulated memory node: it checks the request, records our
/// queue pair's parameters for the data path, and answers with its own (altered by the
/// configured [`NodeFault`]).
pub struct ModelControl(Arc<Mutex<State>>);

impl ControlLink for ModelControl {
    fn exchange(&mut self, request: &ConnectRequest) -> Result<ConnectReply, ExchangeError> {
        // The request crosses the wire: decode what was encoded.
        let bytes = request.encode();
        let request = ConnectRequest::decode(&bytes)?;
        let mut s = self.0.lock();
        let cfg = s.cfg.node;
        let refuse = |status| Err(ExchangeError::Refused { status });
        match cfg.fault {
            NodeFault::Silent => return Err(ExchangeError::Timeout { tries: 4, waited_ms: 4000 }),
            NodeFault::Refuse(status) => return refuse(status),
            _ => {}
        }
        if request.region_size > cfg.capacity || request.region_size == 0 {
            return refuse(ReplyStatus::NO_CAPACITY);
        }
        if !(1..=5).contains(&request.mtu) {
            return refuse(ReplyStatus::BAD_REQUEST);
        }
        let registered = match cfg.fault {
            NodeFault::RegisteredShort(n) => n.min(request.region_size),
            _ => request.region_size,
        };
        let psn_skew = if cfg.fault == NodeFault::WrongPsn { 7 } else { 0 };
        s.node.connect(&request, registered, psn_skew);
        let mut reply = ConnectReply {
            status: ReplyStatus::OK,
            key: request.key,
            qpn: Qpn(cfg.qpn),
            psn: Psn(cfg.psn),
            gid: cfg.gid,
            mac: cfg.mac,
            mtu: request.mtu,
            max_reads: cfg.max_reads,
            rkey: Rkey(cfg.rkey),
            region_base: cfg.base,
            region_size: request.region_size,
        };
        match cfg.fault {
            NodeFault::BadRkey => reply.rkey = Rkey(cfg.rkey ^ 0x100),
            NodeFault::WrongQpn => reply.qpn = Qpn(cfg.qpn + 1),
            NodeFault::WrongMac => reply.mac[5] ^= 0xff,
            _ => {}
        }
        let bytes = reply.encode();
        ConnectReply::decode(&bytes)
    }
}

//! The model's data path: EQ and send doorbells, fetching and checking WQEs, executing
//! RDMA READ and WRITE against the simulated memory node (keys, connection, bounds), and
//! writing CQEs and EQEs with the owner bit of their pass.

use alloc::format;

use super::fields::{be16, be32, be64, put_be16, put_be32};
use super::state::{Pending, QpState, State};
use crate::platform::PAGE_SIZE;

/// CQE opcodes and syndromes (the model's own copy).
const CQE_REQ: u8 = 0x0;
const CQE_REQ_ERR: u8 = 0xd;
const SYND_LOCAL_LENGTH: u8 = 0x01;
const SYND_LOCAL_QP_OP: u8 = 0x02;
const SYND_LOCAL_PROTECTION: u8 = 0x04;
const SYND_FLUSH: u8 = 0x05;
const SYND_REMOTE_ACCESS: u8 = 0x13;
const SYND_RETRY_EXCEEDED: u8 = 0x15;
/// WQE opcodes.
const OP_WRITE: u8 = 0x08;
const OP_READ: u8 = 0x10;

impl State {
    /// An EQ doorbell (consumer index update) on UAR `uar`.
    pub fn eq_doorbell(&mut self, uar: u32, value: u32) {
        let eqn = (value >> 24) as u8;
        let ci = value & 0xff_ffff;
        let Some(eq) = self.eqs.get_mut(&eqn) else {
            self.violation(format!("EQ doorbell for EQ {eqn}, which does not exist"));
            return;
        };
        let (eq_uar, pi) = (eq.uar, eq.pi);
        eq.ci = ci;
        if eq_uar != uar {
            self.violation(format!(
                "EQ {eqn}'s doorbell rung on UAR {uar}, it was created on UAR {eq_uar}"
            ));
        }
        if ci.wrapping_sub(pi) & 0xff_ffff != 0 && pi.wrapping_sub(ci) & 0xff_ffff > 1 << 23 {
            self.violation(format!("EQ {eqn}: consumer index {ci} passed the producer {pi}"));
        }
    }

    /// Writes an event to EQ `eqn`.
    pub fn post_eqe(&mut self, eqn: u8, event_type: u8, data: &[u8; 0x1c]) {
        let Some(eq) = self.eqs.get_mut(&eqn) else { return };
        let size = 1u32 << eq.log_size;
        if eq.pi.wrapping_sub(eq.ci) >= size {
            let (pi, ci) = (eq.pi, eq.ci);
            self.violation(format!("EQ {eqn} overrun: producer {pi}, consumer {ci}"));
            return;
        }
        let index = (eq.pi & (size - 1)) as usize;
        let at = eq.pas[index * 64 / PAGE_SIZE] + (index * 64 % PAGE_SIZE) as u64;
        let owner = (eq.pi >> eq.log_size & 1) as u8;
        eq.pi = eq.pi.wrapping_add(1);
        let mut e = [0u8; 64];
        e[0x01] = event_type;
        e[0x20..0x3c].copy_from_slice(data);
        self.dev_write(at, &e[..0x3f]);
        self.dev_write(at + 0x3f, &[owner]);
        self.stats.eqes += 1;
    }

    /// The send doorbell: checks the ordering of WQE, doorbell record and doorbell, then
    /// fetches every WQE up to the doorbell record's counter.
    pub fn send_doorbell(&mut self, uar: u32, value: u64) {
        self.stats.send_doorbells += 1;
        let hi = (value >> 32) as u32;
        let lo = value as u32;
        let qpn = lo >> 8;
        let rung = (hi >> 8 & 0xffff) as u16;
        let epoch = self.epoch;
        let Some(qp) = self.qps.get(&qpn) else {
            self.violation(format!("send doorbell for QPN {qpn:#x}, which does not exist"));
            return;
        };
        let (qp_uar, dbr, sq_ci, log_sq, state) =
            (qp.uar, qp.dbr, qp.sq_ci, qp.view.log_sq_size, qp.view.state);
        if qp_uar != uar {
            self.violation(format!(
                "QP {qpn:#x}'s doorbell rung on UAR {uar}, it was created on UAR {qp_uar}"
            ));
        }
        if matches!(state, QpState::Reset | QpState::Init) {
            self.violation(format!("send doorbell on QP {qpn:#x} in state {state:?}"));
            return;
        }
        let dbr_epoch = self.written_in(dbr);
        match dbr_epoch {
            None => {
                self.violation(format!(
                    "QP {qpn:#x}: doorbell rung but the doorbell record was never written"
                ));
                return;
            }
            Some(e) if e >= epoch => self.violation(format!(
                "QP {qpn:#x}: doorbell rung without a write barrier after the doorbell record"
            )),
            _ => {}
        }
        let mut rec = [0u8; 4];
        self.dev_read(dbr + 4, &mut rec);
        let produced = (be32(&rec, 0) & 0xffff) as u16;
        let size = 1u16 << log_sq;
        if produced.wrapping_sub(rung) == 0 || produced.wrapping_sub(rung) > size {
            self.violation(format!(
                "QP {qpn:#x}: doorbell for WQE {rung} but the doorbell record says {produced} (it lags the WQE rung)"
            ));
        }
        if produced.wrapping_sub(sq_ci) > size {
            self.violation(format!(
                "QP {qpn:#x}: {} WQEs outstanding in a queue of {size}",
                produced.wrapping_sub(sq_ci)
            ));
            return;
        }
        let mut index = sq_ci;
        while index != produced {
            self.fetch(qpn, index, dbr_epoch.unwrap_or(0));
            index = index.wrapping_add(1);
        }
        if let Some(qp) = self.qps.get_mut(&qpn) {
            qp.sq_ci = produced;
        }
        if !self.cfg.lazy {
            self.execute_pending(usize::MAX);
        }
    }

    /// Reads and checks WQE `index` of `qpn` and queues it.
    fn fetch(&mut self, qpn: u32, index: u16, dbr_epoch: u64) {
        let qp = &self.qps[&qpn];
        let slot = (index as usize) & ((1usize << qp.view.log_sq_size) - 1);
        let at = qp.pas[slot * 64 / PAGE_SIZE] + (slot * 64 % PAGE_SIZE) as u64;
        match self.written_in(at) {
            Some(e) if e >= dbr_epoch => self.violation(format!(
                "QP {qpn:#x}: WQE {index} written after the doorbell record without a barrier between"
            )),
            None => self.violation(format!("QP {qpn:#x}: WQE {index} was never written")),
            _ => {}
        }
        let w = self.dev_read_vec(at, 64);
        let opcode = w[3];
        let wqe_index = be16(&w, 1);
        let ds = be32(&w, 4) & 0x3f;
        let wqe_qpn = be32(&w, 4) >> 8;
        if wqe_index != index {
            self.violation(format!(
                "QP {qpn:#x}: WQE at position {index} carries index {wqe_index}"
            ));
        }
        if wqe_qpn != qpn {
            self.violation(format!("QP {qpn:#x}: WQE {index} names QPN {wqe_qpn:#x}"));
        }
        if ds != 3 {
            self.violation(format!(
                "QP {qpn:#x}: WQE {index} has ds {ds}, an RDMA WQE with one buffer has 3"
            ));
        }
        if opcode != OP_READ && opcode != OP_WRITE {
            self.violation(format!(
                "QP {qpn:#x}: WQE {index} has opcode {opcode:#x}, the model runs READ and WRITE"
            ));
        }
        let byte_count = be32(&w, 0x20);
        if byte_count >> 31 != 0 {
            self.violation(format!("QP {qpn:#x}: WQE {index} has an inline data segment"));
        }
        self.pending.push_back(Pending {
            qpn,
            index,
            opcode,
            signalled: w[0x0b] & 0x0c == 0x08,
            raddr: be64(&w, 0x10),
            rkey: be32(&w, 0x18),
            len: byte_count & 0x7fff_ffff,
            lkey: be32(&w, 0x24),
            addr: be64(&w, 0x28),
        });
    }

    /// Executes up to `max` queued WQEs.
    pub fn execute_pending(&mut self, max: usize) {
        for _ in 0..max {
            let Some(p) = self.pending.pop_front() else { return };
            self.execute(p);
        }
    }

    /// Whether `lkey` lets the device read (or write) `addr .. addr + len` for `qp_pd`.
    fn check_lkey(
        &self,
        lkey: u32,
        qp_pd: u32,
        addr: u64,
        len: u32,
        write: bool,
    ) -> Result<(), u8> {
        let Some(m) = self.mkeys.get(&(lkey >> 8)) else { return Err(SYND_LOCAL_PROTECTION) };
        if !m.valid || m.variant != lkey as u8 || m.pd != qp_pd {
            return Err(SYND_LOCAL_PROTECTION);
        }
        if write && !m.local_write || !write && !m.local_read {
            return Err(SYND_LOCAL_PROTECTION);
        }
        if !m.len64 && (addr < m.start || addr + len as u64 > m.start + m.len) {
            return Err(SYND_LOCAL_PROTECTION);
        }
        if !self.mem.contains(addr, len as usize)
            || self.fw_pages.contains(&(addr & !(PAGE_SIZE as u64 - 1)))
        {
            return Err(SYND_LOCAL_PROTECTION);
        }
        Ok(())
    }

    /// Whether the memory node would accept this request from `qpn`: (offset in the region).
    fn check_remote(&self, qpn: u32, raddr: u64, rkey: u32, len: u32) -> Result<u64, u8> {
        let qp = &self.qps[&qpn];
        let node = &self.node;
        let cfg = &self.cfg.node;
        // Packets reach the node's QP only with its QPN, GID and MAC, from the QP it was
        // connected to, in sequence.
        let our_gid = self.gids.get(&qp.view.src_addr_index).map(|g| g.gid);
        if qp.view.remote_qpn != cfg.qpn
            || our_gid != Some(node.peer_gid)
            || qp.view.rgid != cfg.gid
            || qp.view.rmac != cfg.mac
            || node.peer_qpn != Some(qpn)
            || qp.psn != node.expected_psn
        {
            return Err(SYND_RETRY_EXCEEDED);
        }
        if rkey != cfg.rkey {
            return Err(SYND_REMOTE_ACCESS);
        }
        let offset = raddr.wrapping_sub(cfg.base);
        if raddr < cfg.base
            || offset.checked_add(len as u64).is_none_or(|end| end > node.registered)
        {
            return Err(SYND_REMOTE_ACCESS);
        }
        Ok(offset)
    }

    fn execute(&mut self, p: Pending) {
        let Some(qp) = self.qps.get(&p.qpn) else { return };
        let (state, pd, cqn, mtu) = (qp.view.state, qp.view.pd, qp.view.cqn_snd, qp.view.mtu);
        self.stats.wqes += 1;
        let result = if state == QpState::Error {
            Err(SYND_FLUSH)
        } else if state != QpState::Rts {
            Err(SYND_LOCAL_QP_OP)
        } else if let Some(s) = self.fail_next_wqe.take() {
            Err(s)
        } else if p.len == 0 || p.len as u64 > 1u64 << self.cfg.log_max_msg {
            Err(SYND_LOCAL_LENGTH)
        } else {
            self.check_lkey(p.lkey, pd, p.addr, p.len, p.opcode == OP_READ)
                .and_then(|()| self.check_remote(p.qpn, p.raddr, p.rkey, p.len))
        };
        let result = match result {
            Ok(offset) => {
                let (from, len) = (offset as usize, p.len as usize);
                if p.opcode == OP_READ {
                    let data = self.node.memory[from..from + len].to_vec();
                    self.dev_write(p.addr, &data);
                    self.stats.reads += 1;
                } else {
                    let data = self.dev_read_vec(p.addr, len);
                    self.node.memory[from..from + len].copy_from_slice(&data);
                    self.stats.writes += 1;
                }
                let packets = (p.len as u64).div_ceil(128u64 << mtu).max(1) as u32;
                let qp = self.qps.get_mut(&p.qpn).expect("looked up");
                qp.psn = (qp.psn + packets) & 0xff_ffff;
                qp.view.executed += 1;
                self.node.expected_psn = (self.node.expected_psn + packets) & 0xff_ffff;
                Ok(())
            }
            Err(s) => {
                if let Some(qp) = self.qps.get_mut(&p.qpn) {
                    qp.view.state = QpState::Error;
                }
                Err(s)
            }
        };
        match result {
            Ok(()) if p.signalled => {
                self.write_cqe(cqn, CQE_REQ, p.qpn, p.index, p.opcode, p.len, 0)
            }
            Ok(()) => {}
            Err(s) => self.write_cqe(cqn, CQE_REQ_ERR, p.qpn, p.index, p.opcode, 0, s),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn write_cqe(
        &mut self,
        cqn: u32,
        opcode: u8,
        qpn: u32,
        index: u16,
        wqe_opcode: u8,
        bytes: u32,
        syndrome: u8,
    ) {
        let Some(cq) = self.cqs.get(&cqn) else { return };
        let (dbr, log, pi) = (cq.dbr, cq.log_size, cq.pi);
        let size = 1u32 << log;
        let consumed = self.cq_consumer(dbr);
        if pi.wrapping_sub(consumed) & 0xff_ffff >= size {
            self.violation(format!(
                "CQ {cqn:#x} overrun: {pi} CQEs produced, the doorbell record says {consumed} consumed, {size} entries"
            ));
        }
        let cq = self.cqs.get_mut(&cqn).expect("looked up");
        let slot = (pi & (size - 1)) as usize;
        let at = cq.pas[slot * 64 / PAGE_SIZE] + (slot * 64 % PAGE_SIZE) as u64;
        let owner = (pi >> log & 1) as u8;
        cq.pi = pi.wrapping_add(1);
        if slot == (size - 1) as usize {
            self.stats.cq_wraps += 1;
        }
        let mut e = [0u8; 64];
        put_be32(&mut e, 0x2c, bytes);
        e[0x37] = syndrome;
        put_be32(&mut e, 0x38, (wqe_opcode as u32) << 24 | qpn);
        put_be16(&mut e, 0x3c, index);
        // The body first, the owner byte last: the driver may look at any time.
        self.dev_write(at, &e[..0x3f]);
        self.dev_write(at + 0x3f, &[opcode << 4 | owner]);
        self.stats.cqes += 1;
        if opcode != CQE_REQ {
            self.stats.error_cqes += 1;
        }
    }
}

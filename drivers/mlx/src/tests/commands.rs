//! The command interface's rules, checked by driving the model with hand-made commands
//! (a deliberately careless driver) and with the real one: delivery status codes for
//! broken entries and mailbox chains, lifecycle refusals, page hand-out before INIT_HCA,
//! illegal QP transitions, objects destroyed while in use.

use alloc::vec;
use alloc::vec::Vec;

use super::support::*;
use crate::hw::cmd::{CmdStatus, Opcode};
use crate::hw::qp::QpContext;
use crate::model::{Model, ModelBar, ModelConfig, ModelDma};
use crate::platform::{Bar, Dma};
use crate::{CmdFailure, Error, Qpn};

/// A hand-made command interface over the model, with its own little encoder.
struct Raw {
    bar: ModelBar,
    dma: ModelDma,
    queue: u64,
    boxes: Vec<u64>,
}

#[derive(Clone, Copy, Default)]
struct Breakage {
    kind: Option<u8>,
    box_token: Option<u8>,
    block_num_skew: u32,
    misalign_in: bool,
    misalign_out: bool,
    short_chain: bool,
    no_barrier: bool,
    not_owned: bool,
}

impl Raw {
    fn new(model: &Model) -> Self {
        let (bar, dma) = (model.bar(), model.dma());
        while bar.read32(0x1fc) >> 31 == 1 {}
        let queue = dma.alloc(1).unwrap();
        bar.write32(0x10, (queue >> 32) as u32);
        bar.write32(0x14, queue as u32);
        while bar.read32(0x1fc) >> 31 == 1 {}
        // Mailboxes 2 KiB apart inside pages, so a misaligned one is still memory.
        let boxes = (0..24).map(|_| dma.alloc(1).unwrap()).collect();
        Raw { bar, dma, queue, boxes }
    }

    /// Runs `input` on slot 0: (delivery status, output).
    fn exec(&mut self, input: &[u8], out_len: usize, b: Breakage) -> (u8, Vec<u8>) {
        let blocks = |len: usize| if len <= 16 { 0 } else { (len - 16).div_ceil(512) };
        let (nin, nout) = (blocks(input.len()), blocks(out_len));
        let token = 0x42;
        let addr = |k: usize, misalign: bool| self.boxes[k] + if misalign { 0x200 } else { 0 };
        for k in 0..nin + nout {
            let is_in = k < nin;
            let misalign = if is_in { b.misalign_in } else { b.misalign_out };
            let mut block = vec![0u8; 0x240];
            if is_in {
                let from = 16 + 512 * k;
                let to = (from + 512).min(input.len());
                block[..to - from].copy_from_slice(&input[from..to]);
            }
            let last = if is_in { k + 1 == nin } else { k + 1 == nin + nout };
            let next = if last || b.short_chain { 0 } else { addr(k + 1, misalign) };
            block[0x230..0x238].copy_from_slice(&next.to_be_bytes());
            let num = if is_in { k } else { k - nin } as u32 + b.block_num_skew;
            block[0x238..0x23c].copy_from_slice(&num.to_be_bytes());
            block[0x23d] = b.box_token.unwrap_or(token);
            self.dma.write(addr(k, misalign), &block);
        }
        let mut e = [0u8; 64];
        e[0] = b.kind.unwrap_or(7);
        e[4..8].copy_from_slice(&(input.len() as u32).to_be_bytes());
        if nin > 0 {
            e[8..16].copy_from_slice(&addr(0, b.misalign_in).to_be_bytes());
        }
        let n = input.len().min(16);
        e[0x10..0x10 + n].copy_from_slice(&input[..n]);
        if nout > 0 {
            e[0x30..0x38].copy_from_slice(&addr(nin, b.misalign_out).to_be_bytes());
        }
        e[0x38..0x3c].copy_from_slice(&(out_len as u32).to_be_bytes());
        e[0x3c] = token;
        e[0x3f] = if b.not_owned { 0 } else { 1 };
        self.dma.write(self.queue, &e);
        if !b.no_barrier {
            self.bar.write_barrier();
        }
        self.bar.write32(0x18, 1);
        let mut entry = [0u8; 64];
        self.dma.read(self.queue, &mut entry);
        let mut out = vec![0u8; out_len.max(16)];
        out[..16].copy_from_slice(&entry[0x20..0x30]);
        for k in 0..nout {
            let from = 16 + 512 * k;
            let to = (from + 512).min(out_len);
            self.dma.read(addr(nin + k, b.misalign_out), &mut out[from..to]);
        }
        (entry[0x3f] >> 1, out)
    }

    fn cmd(&mut self, opcode: u16, op_mod: u16, len: usize, out_len: usize) -> (u8, Vec<u8>) {
        let mut i = vec![0u8; len];
        i[0..2].copy_from_slice(&opcode.to_be_bytes());
        i[6..8].copy_from_slice(&op_mod.to_be_bytes());
        self.exec(&i, out_len, Breakage::default())
    }

    fn status(&mut self, input: &[u8], out_len: usize) -> u8 {
        let (d, out) = self.exec(input, out_len, Breakage::default());
        assert_eq!(d, 0, "delivered");
        out[0]
    }

    fn give_pages(&mut self, pages: &[u64]) -> (u8, u32) {
        let mut i = vec![0u8; 0x10 + 8 * pages.len()];
        i[0..2].copy_from_slice(&0x108u16.to_be_bytes());
        i[6..8].copy_from_slice(&1u16.to_be_bytes());
        i[0x0c..0x10].copy_from_slice(&(pages.len() as u32).to_be_bytes());
        for (k, p) in pages.iter().enumerate() {
            i[0x10 + 8 * k..0x18 + 8 * k].copy_from_slice(&p.to_be_bytes());
        }
        let (_, out) = self.exec(&i, 0x10, Breakage::default());
        (out[0], u32::from_be_bytes([out[4], out[5], out[6], out[7]]))
    }
}

fn enabled(model: &Model) -> Raw {
    let mut raw = Raw::new(model);
    assert_eq!(raw.cmd(0x104, 0, 0x10, 0x10).1[0], 0);
    let mut issi = vec![0u8; 0x10];
    issi[0..2].copy_from_slice(&0x10bu16.to_be_bytes());
    issi[0x0b] = 1;
    assert_eq!(raw.status(&issi, 0x10), 0);
    raw
}

#[test]
fn broken_entries_and_chains_get_their_delivery_status() {
    let model = Model::new(ModelConfig::default());
    let mut raw = enabled(&model);
    // QUERY_HCA_CAP: 8 output blocks. SET_HCA_CAP: 8 input blocks.
    let query = |raw: &mut Raw, b| {
        let mut i = vec![0u8; 0x10];
        i[0..2].copy_from_slice(&0x100u16.to_be_bytes());
        raw.exec(&i, 0x1010, b).0
    };
    let set = |raw: &mut Raw, b| {
        let mut i = vec![0u8; 0x1010];
        i[0..2].copy_from_slice(&0x109u16.to_be_bytes());
        raw.exec(&i, 0x10, b).0
    };
    assert_eq!(query(&mut raw, Breakage { kind: Some(3), ..Default::default() }), 0x10);
    assert_eq!(set(&mut raw, Breakage { box_token: Some(0x99), ..Default::default() }), 0x02);
    assert_eq!(query(&mut raw, Breakage { box_token: Some(0x99), ..Default::default() }), 0x02);
    assert_eq!(set(&mut raw, Breakage { block_num_skew: 1, ..Default::default() }), 0x03);
    assert_eq!(set(&mut raw, Breakage { misalign_in: true, ..Default::default() }), 0x05);
    assert_eq!(query(&mut raw, Breakage { misalign_out: true, ..Default::default() }), 0x04);
    assert_eq!(set(&mut raw, Breakage { short_chain: true, ..Default::default() }), 0x07);
    assert_eq!(query(&mut raw, Breakage { short_chain: true, ..Default::default() }), 0x08);
    model.assert_clean();
}

#[test]
fn doorbells_are_checked_for_ownership_and_barriers() {
    let model = Model::new(ModelConfig::default());
    let mut raw = Raw::new(&model);
    let mut i = vec![0u8; 0x10];
    i[0..2].copy_from_slice(&0x104u16.to_be_bytes());
    raw.exec(&i, 0x10, Breakage { no_barrier: true, ..Default::default() });
    raw.exec(&i, 0x10, Breakage { not_owned: true, ..Default::default() });
    let v = model.take_violations();
    assert!(v.iter().any(|m| m.contains("without a write barrier")), "{v:?}");
    assert!(v.iter().any(|m| m.contains("not handed to hardware")), "{v:?}");
}

#[test]
fn lengths_and_lifecycle_are_enforced() {
    let model = Model::new(ModelConfig::default());
    let mut raw = Raw::new(&model);
    // Nothing before ENABLE_HCA.
    assert_eq!(raw.cmd(0x10a, 0, 0x10, 0x70).1[0], CmdStatus::BAD_SYSTEM_STATE.0);
    assert_eq!(raw.cmd(0x104, 0, 0x10, 0x10).1[0], 0);
    // Wrong input and output lengths.
    assert_eq!(raw.cmd(0x10a, 0, 0x18, 0x70).1[0], CmdStatus::BAD_INPUT_LENGTH.0);
    assert_eq!(raw.cmd(0x10a, 0, 0x10, 0x20).1[0], CmdStatus::BAD_OUTPUT_LENGTH.0);
    // Nothing but ISSI commands before SET_ISSI.
    assert_eq!(raw.cmd(0x107, 1, 0x10, 0x10).1[0], CmdStatus::BAD_SYSTEM_STATE.0);
    let mut issi = vec![0u8; 0x10];
    issi[0..2].copy_from_slice(&0x10bu16.to_be_bytes());
    issi[0x0b] = 1;
    assert_eq!(raw.status(&issi, 0x10), 0);
    // Capabilities only once the boot pages are there.
    assert_eq!(raw.cmd(0x100, 1, 0x10, 0x1010).1[0], CmdStatus::BAD_SYSTEM_STATE.0);
    let (st, out) = raw.cmd(0x107, 1, 0x10, 0x10);
    assert_eq!(st, 0);
    let boot = u32::from_be_bytes([out[12], out[13], out[14], out[15]]) as usize;
    let pages: Vec<u64> = (0..boot + 40).map(|_| raw.dma.alloc(1).unwrap()).collect();
    assert_eq!(raw.give_pages(&[pages[0] + 8]).0, CmdStatus::BAD_PARAMETER.0, "unaligned page");
    assert_eq!(
        raw.give_pages(&[pages[0], pages[0]]).0,
        CmdStatus::BAD_PARAMETER.0,
        "page given twice"
    );
    assert_eq!(raw.give_pages(&pages[..boot]).0, 0);
    let (st, caps) = raw.cmd(0x100, 1, 0x10, 0x1010);
    assert_eq!(st, 0);
    // INIT_HCA before SET_HCA_CAP, then with one init page missing, then right.
    assert_eq!(raw.cmd(0x102, 0, 0x20, 0x10).1[0], CmdStatus::BAD_SYSTEM_STATE.0);
    let mut set = vec![0u8; 0x1010];
    set[0..2].copy_from_slice(&0x109u16.to_be_bytes());
    set[0x10..].copy_from_slice(&caps[0x10..0x1010]);
    set[0x10 + 0x42] &= !0xc0; // cmdif_checksum: bits 15:14 of dw 0x40
    set[0x10 + 0x92..0x10 + 0x94].copy_from_slice(&[0, 0]); // log_uar_page_sz
    assert_eq!(raw.status(&set, 0x10), 0);
    let (_, out) = raw.cmd(0x107, 2, 0x10, 0x10);
    let init = u32::from_be_bytes([out[12], out[13], out[14], out[15]]) as usize;
    assert_eq!(init, 40);
    assert_eq!(raw.give_pages(&pages[boot..boot + init - 1]).0, 0);
    let (_, out) = raw.cmd(0x102, 0, 0x20, 0x10);
    assert_eq!(out[0], CmdStatus::BAD_SYSTEM_STATE.0, "one page short");
    assert_eq!(
        u32::from_be_bytes([out[4], out[5], out[6], out[7]]),
        0x5e05_0000 | (boot + init - 1) as u32
    );
    assert_eq!(raw.give_pages(&pages[boot + init - 1..]).0, 0);
    assert_eq!(raw.cmd(0x102, 0, 0x20, 0x10).1[0], 0);
    // The driver must keep out of pages firmware owns.
    raw.dma.write(pages[3] + 100, &[1]);
    raw.dma.free(pages[4], 1);
    let v = model.take_violations();
    assert!(v.iter().any(|m| m.contains("which firmware owns")), "{v:?}");
    assert!(v.iter().any(|m| m.contains("firmware still owns")), "{v:?}");
    // Unknown opcodes.
    assert_eq!(raw.cmd(0x999, 0, 0x10, 0x10).1[0], CmdStatus::BAD_OPCODE.0);
}

#[test]
fn illegal_qp_transitions_and_busy_objects_are_refused() {
    let model = model();
    let mut t = connect(&model, 8);
    let qpn = t.qpn();
    let dev = t.device_mut();
    let status = |r: Result<(), Error>| match r {
        Err(Error::Command(c)) => match c.failure {
            CmdFailure::Status { status, .. } => (c.opcode, status),
            f => panic!("{f:?}"),
        },
        other => panic!("{other:?}"),
    };
    // The QP is in RTS: none of the transitions start there.
    for op in [Opcode::RST2INIT_QP, Opcode::INIT2RTR_QP, Opcode::RTR2RTS_QP] {
        assert_eq!(
            status(dev.modify_qp(op, qpn, QpContext::default())),
            (op, CmdStatus::BAD_QP_STATE)
        );
    }
    assert_eq!(
        status(dev.modify_qp(Opcode::RST2INIT_QP, Qpn(0x77_7777), QpContext::default())),
        (Opcode::RST2INIT_QP, CmdStatus::BAD_RESOURCE)
    );
    // The PD and UAR are in use by the QP, the EQ by the CQ.
    let (pd, uar) = (dev.pd(), dev.uar());
    assert_eq!(
        status(dev.release(Opcode::DEALLOC_PD, pd.0)),
        (Opcode::DEALLOC_PD, CmdStatus::BAD_RESOURCE_STATE)
    );
    assert_eq!(
        status(dev.release(Opcode::DEALLOC_UAR, uar.0)),
        (Opcode::DEALLOC_UAR, CmdStatus::BAD_RESOURCE_STATE)
    );
    t.shutdown().expect("shutdown");
    model.assert_clean();
}

#[test]
fn a_fresh_qp_moves_only_forward() {
    let model = model();
    let mut dev = bring_up(&model).unwrap();
    let dbr = dev.dma.alloc(1).unwrap();
    let cq = dev.create_cq(4, dbr).unwrap();
    let ring = crate::queues::Ring::alloc(&dev.dma, 4096).unwrap();
    let mut qpc = QpContext::default();
    qpc.set_service(0, 3);
    qpc.set_pd(dev.pd().0);
    qpc.set_log_sq_size(6);
    qpc.set_ts_format(1);
    qpc.set_uar_page(dev.uar().0);
    qpc.set_user_index(0xff_ffff);
    qpc.set_cqn_snd(cq.cqn.0);
    qpc.set_cqn_rcv(cq.cqn.0);
    qpc.dbr_addr.set(dbr + 64);
    qpc.set_rq_type(3);
    let qpn = dev.create_qp(qpc, &ring).unwrap();
    let refused = |r: Result<(), Error>| matches!(r, Err(Error::Command(c)) if c.failure == CmdFailure::Status { status: CmdStatus::BAD_QP_STATE, syndrome: qpn.0 });
    assert!(refused(dev.modify_qp(Opcode::INIT2RTR_QP, qpn, QpContext::default())));
    assert!(refused(dev.modify_qp(Opcode::RTR2RTS_QP, qpn, QpContext::default())));
    let mut init = QpContext::default();
    init.primary_path.set_vhca_port(1);
    dev.modify_qp(Opcode::RST2INIT_QP, qpn, init).unwrap();
    assert!(refused(dev.modify_qp(Opcode::RST2INIT_QP, qpn, init)));
    // INIT2RTR without a GID path is a bad parameter, and the QP stays in INIT.
    let r = dev.modify_qp(Opcode::INIT2RTR_QP, qpn, QpContext::default());
    assert!(
        matches!(r, Err(Error::Command(c)) if matches!(c.failure, CmdFailure::Status { status: CmdStatus::BAD_PARAMETER, .. }))
    );
    assert_eq!(model.qp(qpn).unwrap().state, crate::model::QpState::Init);
    dev.release(Opcode::DESTROY_QP, qpn.0).unwrap();
    ring.free(&dev.dma);
    dev.release(Opcode::DESTROY_CQ, cq.cqn.0).unwrap();
    cq.ring.free(&dev.dma);
    dev.dma.free(dbr, 1);
    dev.shutdown().unwrap();
    assert_eq!(model.allocated_pages(), 0);
    model.assert_clean();
}

//! The model's command engine: ownership, tokens, mailbox chains and lengths at the
//! doorbell, then one handler per opcode with the lifecycle rules and the object tables.
//! Everything is decoded with [`super::fields`].

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::fields::{
    be16, be32, be64, bits, cap, entry, field, mailbox, op, put_be32, put_be64, put_bits,
    put_field, qpc,
};
use super::state::{
    CommandRecord, CqState, EqState, GidEntry, MkeyState, QpRecord, QpState, QpView, State,
};
use crate::hw::cmd::Opcode;
use crate::platform::PAGE_SIZE;

/// A command's failure: (status, syndrome). Syndromes are the model's own, one per rule.
type Fail = (u8, u32);

const BAD_OPCODE: Fail = (0x02, 0x0bad_0000);
const NOT_ENABLED: Fail = (0x04, 0x5e00_0001);
const ISSI_NOT_SET: Fail = (0x04, 0x5e00_0002);
const BOOT_PAGES_MISSING: Fail = (0x04, 0x5e00_0003);
const CAPS_NOT_SET: Fail = (0x04, 0x5e00_0004);
/// The low 16 bits carry the number of pages firmware holds.
const PAGES_NOT_EXACT: Fail = (0x04, 0x5e05_0000);
const NOT_INITIALIZED: Fail = (0x04, 0x5e00_0006);
const ALREADY: Fail = (0x04, 0x5e00_0007);
const ROCE_OFF: Fail = (0x04, 0x5e00_0008);
const RESERVED_NOT_ZERO: Fail = (0x03, 0x0e5e_0001);
const BAD_PARAM: u8 = 0x03;
const BAD_RESOURCE: u8 = 0x05;
const LIMITS: u8 = 0x08;
const BAD_RESOURCE_STATE: u8 = 0x09;
const BAD_QP_STATE: u8 = 0x10;
const BAD_INPUT_LEN: u8 = 0x50;
const BAD_OUTPUT_LEN: u8 = 0x51;

/// Mailbox blocks for `len` message bytes (the model's own count).
fn blocks(len: usize) -> usize {
    if len <= 16 { 0 } else { (len - 16).div_ceil(512) }
}

fn lengths(input: &[u8], want_in: usize, out_len: usize, want_out: usize) -> Result<(), Fail> {
    if input.len() != want_in {
        return Err((BAD_INPUT_LEN, input.len() as u32));
    }
    if out_len < want_out {
        return Err((BAD_OUTPUT_LEN, out_len as u32));
    }
    Ok(())
}

fn pages_for(bytes: usize) -> usize {
    bytes.div_ceil(PAGE_SIZE).max(1)
}

impl State {
    /// The command doorbell for `slot`.
    pub fn ring_command(&mut self, slot: usize) {
        if slot >= 1 << self.cfg.cmdq_log_size {
            self.violation(format!(
                "command doorbell for slot {slot}, the queue has {}",
                1 << self.cfg.cmdq_log_size
            ));
            return;
        }
        let Some(queue) = self.cmdq else {
            self.violation(format!(
                "command doorbell for slot {slot} before the queue address was written"
            ));
            return;
        };
        if self.busy >> slot & 1 == 1 {
            self.violation(format!(
                "command doorbell for slot {slot}, which the device still owns"
            ));
            return;
        }
        let at = queue + slot as u64 * 64;
        match self.written_in(at) {
            Some(e) if e >= self.epoch => self.violation(format!(
                "command doorbell for slot {slot} without a write barrier after the entry was written"
            )),
            None => self.violation(format!("command doorbell for slot {slot} whose entry was never written")),
            _ => {}
        }
        let e = self.dev_read_vec(at, 64);
        if e[entry::STATUS_OWN] & 1 == 0 {
            self.violation(format!(
                "command doorbell for slot {slot} whose entry is not handed to hardware (own bit 0)"
            ));
            return;
        }
        self.busy |= 1 << slot;
        self.run_command(slot);
    }

    /// Decodes and runs the command in `slot` (owned by the device), unless it is to be
    /// withheld or stalled.
    fn run_command(&mut self, slot: usize) {
        let at = self.cmdq.expect("set") + slot as u64 * 64;
        let e = self.dev_read_vec(at, 64);
        let (input, out_len, out_blocks) = match self.decode(&e) {
            Ok(x) => x,
            Err(delivery) => {
                let opcode = Opcode(be16(&e, entry::IN_INLINE));
                self.history.push(CommandRecord {
                    opcode,
                    op_mod: 0,
                    slot,
                    delivery,
                    status: 0,
                    syndrome: 0,
                });
                self.finish(slot, delivery, &[], &[]);
                return;
            }
        };
        let opcode = Opcode(be16(&input, 0));
        let op_mod = be16(&input, 6);
        if self.cfg.stall == Some(opcode) {
            return;
        }
        if let Some((op, pages)) = self.cfg.page_request
            && op == opcode
            && !self.page_request_fired
        {
            let eqn = self.eqs.iter().find(|(_, eq)| eq.bitmask >> 0xb & 1 == 1).map(|(&n, _)| n);
            if let Some(eqn) = eqn {
                self.page_request_fired = true;
                self.withheld = Some((slot, pages));
                self.pages_toward_request = 0;
                self.extra_pages += pages as i64;
                let mut data = [0u8; 0x1c];
                data[4..8].copy_from_slice(&(pages as u32).to_be_bytes());
                self.post_eqe(eqn, 0x0b, &data);
                return;
            }
        }
        let mut out = vec![0u8; out_len.max(16)];
        let result = match self.cfg.fail {
            Some((op, status, syndrome)) if op == opcode => Err((status, syndrome)),
            // uid (the kernel's is 0) and the reserved half-word of the header.
            _ if input[2..6] != [0; 4] => Err(RESERVED_NOT_ZERO),
            _ => self.dispatch(opcode, op_mod, &input, out_len, &mut out),
        };
        let (status, syndrome) = match result {
            Ok(()) => (0, 0),
            Err((status, syndrome)) => {
                out.fill(0);
                out[0] = status;
                put_be32(&mut out, 4, syndrome);
                (status, syndrome)
            }
        };
        out.truncate(out_len.max(16));
        self.history.push(CommandRecord { opcode, op_mod, slot, delivery: 0, status, syndrome });
        self.finish(slot, 0, &out, &out_blocks);
        // A command withheld for a page request runs once the pages have come.
        if let Some((withheld, need)) = self.withheld
            && withheld != slot
            && opcode.0 == op::MANAGE_PAGES
            && status == 0
            && (need > 0 && self.pages_toward_request >= need as i64
                || need < 0 && self.pages_toward_request <= need as i64)
        {
            self.withheld = None;
            self.run_command(withheld);
        }
    }

    /// Checks the entry and walks both mailbox chains: the input, the output length and
    /// the output blocks, or a delivery status.
    fn decode(&mut self, e: &[u8]) -> Result<(Vec<u8>, usize, Vec<u64>), u8> {
        if e[entry::TYPE] != 7 {
            return Err(0x10);
        }
        if e[1..4] != [0, 0, 0] || e[0x3e] != 0 {
            return Err(0x09);
        }
        let token = e[entry::TOKEN];
        let in_len = be32(e, entry::IN_LEN) as usize;
        let out_len = be32(e, entry::OUT_LEN) as usize;
        if in_len < 8 {
            return Err(0x07);
        }
        if out_len < 8 {
            return Err(0x08);
        }
        let in_blocks = self.chain(be64(e, entry::IN_PTR), blocks(in_len), token, 0x05, 0x07)?;
        let out_blocks = self.chain(be64(e, entry::OUT_PTR), blocks(out_len), token, 0x04, 0x08)?;
        let mut input = vec![0u8; 16 + in_blocks.len() * mailbox::DATA];
        input[..16].copy_from_slice(&e[entry::IN_INLINE..entry::IN_INLINE + 16]);
        for (i, &b) in in_blocks.iter().enumerate() {
            let data = self.dev_read_vec(b, mailbox::DATA);
            input[16 + i * mailbox::DATA..16 + (i + 1) * mailbox::DATA].copy_from_slice(&data);
        }
        input.truncate(in_len);
        Ok((input, out_len, out_blocks))
    }

    /// The `n` blocks of a chain starting at `first`.
    fn chain(
        &mut self,
        first: u64,
        n: usize,
        token: u8,
        align: u8,
        length: u8,
    ) -> Result<Vec<u64>, u8> {
        let mut list = Vec::with_capacity(n);
        let mut at = first;
        for i in 0..n {
            if at == 0 {
                return Err(length);
            }
            if !at.is_multiple_of(1024) {
                return Err(align);
            }
            if !self.mem.contains(at, mailbox::SIZE) {
                self.violation(format!("mailbox block at {at:#x} is not DMA memory"));
                return Err(0x06);
            }
            let block = self.dev_read_vec(at, mailbox::SIZE);
            if be32(&block, mailbox::BLOCK_NUM) != i as u32 {
                return Err(0x03);
            }
            if block[mailbox::TOKEN] != token {
                return Err(0x02);
            }
            list.push(at);
            at = be64(&block, mailbox::NEXT);
        }
        Ok(list)
    }

    /// Writes the output and hands the entry back.
    fn finish(&mut self, slot: usize, delivery: u8, out: &[u8], out_blocks: &[u64]) {
        let at = self.cmdq.expect("set") + slot as u64 * 64;
        if delivery == 0 {
            let inline = out.len().min(16);
            self.dev_write(at + entry::OUT_INLINE as u64, &out[..inline]);
            for (i, &b) in out_blocks.iter().enumerate() {
                let from = 16 + i * mailbox::DATA;
                if from < out.len() {
                    let to = (from + mailbox::DATA).min(out.len());
                    self.dev_write(b, &out[from..to]);
                }
            }
        }
        self.dev_write(at + entry::STATUS_OWN as u64, &[delivery << 1]);
        self.busy &= !(1u64 << slot);
        self.stats.commands += 1;
    }

    fn dispatch(
        &mut self,
        opcode: Opcode,
        op_mod: u16,
        i: &[u8],
        out_len: usize,
        out: &mut [u8],
    ) -> Result<(), Fail> {
        let code = opcode.0;
        if !self.enabled && code != op::ENABLE_HCA {
            return Err(NOT_ENABLED);
        }
        match code {
            op::ENABLE_HCA => {
                lengths(i, 0x10, out_len, 0x10)?;
                if self.enabled {
                    return Err(ALREADY);
                }
                self.enabled = true;
            }
            op::DISABLE_HCA => {
                lengths(i, 0x10, out_len, 0x10)?;
                if !self.fw_pages.is_empty() {
                    self.violation(format!(
                        "DISABLE_HCA while firmware still holds {} pages",
                        self.fw_pages.len()
                    ));
                }
                self.enabled = false;
                self.issi = 0;
                self.caps_set = false;
            }
            op::QUERY_ISSI => {
                lengths(i, 0x10, out_len, 0x70)?;
                put_bits(out, 0x08, 15, 0, self.issi as u32);
                put_be32(out, 0x6c, 1 | (self.cfg.issi1 as u32) << 1);
            }
            op::SET_ISSI => {
                lengths(i, 0x10, out_len, 0x10)?;
                let issi = bits(i, 0x08, 15, 0);
                if issi > 1 || issi == 1 && !self.cfg.issi1 {
                    return Err((BAD_PARAM, issi));
                }
                self.issi = issi as u16;
            }
            _ if self.issi != 1 => return Err(ISSI_NOT_SET),
            op::QUERY_PAGES => {
                lengths(i, 0x10, out_len, 0x10)?;
                let n = match op_mod {
                    1 => self.cfg.boot_pages,
                    2 => {
                        if !self.caps_set {
                            return Err(CAPS_NOT_SET);
                        }
                        self.cfg.init_pages
                    }
                    3 => 0,
                    m => return Err((BAD_PARAM, m as u32)),
                };
                put_bits(out, 0x08, 15, 0, 0);
                put_be32(out, 0x0c, n as u32);
            }
            op::MANAGE_PAGES => self.manage_pages(op_mod, i, out_len, out)?,
            op::QUERY_HCA_CAP => {
                lengths(i, 0x10, out_len, 0x1010)?;
                if (self.fw_pages.len() as i64) < self.cfg.boot_pages as i64 {
                    return Err(BOOT_PAGES_MISSING);
                }
                let page = match op_mod >> 1 {
                    0 => self.general_caps(),
                    4 => self.roce_caps(),
                    t => return Err((BAD_PARAM, t as u32)),
                };
                out[0x10..0x1010].copy_from_slice(&page);
            }
            op::SET_HCA_CAP => {
                lengths(i, 0x1010, out_len, 0x10)?;
                if (self.fw_pages.len() as i64) < self.cfg.boot_pages as i64 {
                    return Err(BOOT_PAGES_MISSING);
                }
                if op_mod != 0 {
                    return Err((BAD_PARAM, op_mod as u32));
                }
                let page = &i[0x10..];
                if field(page, cap::CMDIF_CHECKSUM) != 0 {
                    self.violation(format!(
                        "SET_HCA_CAP left command checksums on ({})",
                        field(page, cap::CMDIF_CHECKSUM)
                    ));
                }
                if field(page, cap::LOG_UAR_PAGE_SZ) != 0 {
                    self.violation(format!(
                        "SET_HCA_CAP set log_uar_page_sz {}: UARs must be 4 KiB",
                        field(page, cap::LOG_UAR_PAGE_SZ)
                    ));
                }
                if field(page, cap::LOG_MAX_QP_SZ) != self.cfg.log_max_qp_sz {
                    self.violation(String::from(
                        "SET_HCA_CAP changed log_max_qp_sz: it must start from the current caps",
                    ));
                }
                self.caps_set = true;
            }
            op::INIT_HCA => {
                if i.len() != 0x10 && i.len() != 0x20 {
                    return Err((BAD_INPUT_LEN, i.len() as u32));
                }
                if !self.caps_set {
                    return Err(CAPS_NOT_SET);
                }
                if self.hca_init {
                    return Err(ALREADY);
                }
                let want = (self.cfg.boot_pages + self.cfg.init_pages) as usize;
                if self.fw_pages.len() != want {
                    return Err((
                        PAGES_NOT_EXACT.0,
                        PAGES_NOT_EXACT.1 | (self.fw_pages.len() as u32 & 0xffff),
                    ));
                }
                self.hca_init = true;
            }
            op::TEARDOWN_HCA => {
                lengths(i, 0x10, out_len, 0x10)?;
                if !self.hca_init {
                    return Err(NOT_INITIALIZED);
                }
                let alive = self.qps.len()
                    + self.cqs.len()
                    + self.eqs.len()
                    + self.mkeys.len()
                    + self.pds.len()
                    + self.uars.len();
                if alive > 0 {
                    self.violation(format!("TEARDOWN_HCA with {alive} objects not destroyed"));
                }
                self.hca_init = false;
                self.extra_pages = 0;
            }
            _ if !self.hca_init => return Err(NOT_INITIALIZED),
            op::MODIFY_NIC_VPORT_CONTEXT => {
                lengths(i, 0x200, out_len, 0x10)?;
                if bits(i, 0x0c, 1, 1) == 1 {
                    self.vport_roce = bits(i, 0x100, 0, 0) == 1;
                }
            }
            op::QUERY_NIC_VPORT_CONTEXT => {
                lengths(i, 0x10, out_len, 0x110)?;
                put_bits(out, 0x10, 0, 0, self.vport_roce as u32);
                out[0x106..0x10c].copy_from_slice(&self.cfg.mac);
            }
            op::QUERY_VPORT_STATE => {
                lengths(i, 0x10, out_len, 0x10)?;
                put_bits(out, 0x0c, 7, 4, 1);
                put_bits(out, 0x0c, 3, 0, self.cfg.link_up as u32);
            }
            op::ALLOC_UAR | op::ALLOC_PD => {
                lengths(i, 0x10, out_len, 0x10)?;
                let id = self.fresh_id();
                if code == op::ALLOC_UAR {
                    self.uars.insert(id);
                } else {
                    self.pds.insert(id);
                }
                put_bits(out, 0x08, 23, 0, id);
            }
            op::DEALLOC_UAR => {
                lengths(i, 0x10, out_len, 0x10)?;
                let uar = bits(i, 0x08, 23, 0);
                if !self.uars.contains(&uar) {
                    return Err((BAD_RESOURCE, uar));
                }
                if self.eqs.values().any(|e| e.uar == uar)
                    || self.cqs.values().any(|c| c.uar == uar)
                    || self.qps.values().any(|q| q.uar == uar)
                {
                    return Err((BAD_RESOURCE_STATE, uar));
                }
                self.uars.remove(&uar);
            }
            op::DEALLOC_PD => {
                lengths(i, 0x10, out_len, 0x10)?;
                let pd = bits(i, 0x08, 23, 0);
                if !self.pds.contains(&pd) {
                    return Err((BAD_RESOURCE, pd));
                }
                if self.qps.values().any(|q| q.view.pd == pd)
                    || self.mkeys.values().any(|m| m.pd == pd)
                {
                    return Err((BAD_RESOURCE_STATE, pd));
                }
                self.pds.remove(&pd);
            }
            op::CREATE_EQ => self.create_eq(i, out_len, out)?,
            op::DESTROY_EQ => {
                lengths(i, 0x10, out_len, 0x10)?;
                let eqn = i[0x0b];
                if !self.eqs.contains_key(&eqn) {
                    return Err((BAD_RESOURCE, eqn as u32));
                }
                if self.cqs.values().any(|c| c.eqn == eqn) {
                    return Err((BAD_RESOURCE_STATE, eqn as u32));
                }
                self.eqs.remove(&eqn);
            }
            op::CREATE_CQ => self.create_cq(i, out_len, out)?,
            op::DESTROY_CQ => {
                lengths(i, 0x10, out_len, 0x10)?;
                let cqn = bits(i, 0x08, 23, 0);
                if !self.cqs.contains_key(&cqn) {
                    return Err((BAD_RESOURCE, cqn));
                }
                if self.qps.values().any(|q| q.view.cqn_snd == cqn || q.view.cqn_rcv == cqn) {
                    return Err((BAD_RESOURCE_STATE, cqn));
                }
                self.cqs.remove(&cqn);
            }
            op::CREATE_MKEY => self.create_mkey(i, out_len, out)?,
            op::DESTROY_MKEY => {
                lengths(i, 0x10, out_len, 0x10)?;
                let index = bits(i, 0x08, 23, 0);
                if self.mkeys.remove(&index).is_none() {
                    return Err((BAD_RESOURCE, index));
                }
            }
            op::CREATE_QP => self.create_qp(i, out_len, out)?,
            op::DESTROY_QP => {
                lengths(i, 0x10, out_len, 0x10)?;
                let qpn = bits(i, 0x08, 23, 0);
                if self.qps.remove(&qpn).is_none() {
                    return Err((BAD_RESOURCE, qpn));
                }
                self.pending.retain(|p| p.qpn != qpn);
            }
            op::RST2INIT_QP | op::INIT2RTR_QP | op::RTR2RTS_QP => {
                self.modify_qp(code, i, out_len)?
            }
            op::SET_ROCE_ADDRESS => {
                lengths(i, 0x30, out_len, 0x10)?;
                let index = bits(i, 0x08, 31, 16);
                if index >= self.cfg.gid_table_size {
                    return Err((BAD_PARAM, index));
                }
                let mut gid = [0u8; 16];
                gid.copy_from_slice(&i[0x10..0x20]);
                let mut mac = [0u8; 6];
                mac.copy_from_slice(&i[0x22..0x28]);
                let version = bits(i, 0x28, 7, 0);
                let l3 = bits(i, 0x28, 11, 8);
                if version != 2 || l3 > 1 {
                    return Err((BAD_PARAM, version << 8 | l3));
                }
                if mac != self.cfg.mac {
                    self.violation(format!(
                        "SET_ROCE_ADDRESS with MAC {mac:02x?}, the port's is {:02x?}",
                        self.cfg.mac
                    ));
                }
                self.gids.insert(index, GidEntry { gid, mac, version });
            }
            _ => return Err(BAD_OPCODE),
        }
        Ok(())
    }

    fn general_caps(&self) -> Vec<u8> {
        let c = &self.cfg;
        let mut p = vec![0u8; 0x1000];
        put_field(&mut p, cap::LOG_MAX_QP_SZ, c.log_max_qp_sz);
        put_field(&mut p, cap::LOG_MAX_CQ_SZ, c.log_max_cq_sz);
        put_field(&mut p, cap::LOG_MAX_RA_REQ_QP, c.log_max_ra_req_qp);
        put_field(&mut p, cap::GID_TABLE_SIZE, c.gid_table_size);
        put_field(&mut p, cap::PORT_TYPE, if c.ethernet { 1 } else { 0 });
        put_field(&mut p, cap::LOG_MAX_MSG, c.log_max_msg);
        put_field(&mut p, cap::CQE_VERSION, c.cqe_version);
        put_field(&mut p, cap::CMDIF_CHECKSUM, if self.caps_set { 0 } else { 3 });
        put_field(&mut p, cap::ROCE, c.roce as u32);
        put_field(&mut p, cap::LOG_BF_REG_SIZE, c.log_bf_reg_size);
        put_field(&mut p, cap::LOG_UAR_PAGE_SZ, if self.caps_set { 0 } else { 1 });
        p
    }

    fn roce_caps(&self) -> Vec<u8> {
        let mut p = vec![0u8; 0x1000];
        put_field(&mut p, cap::ROCE_QP_TS_FORMAT, self.cfg.qp_ts_format as u32);
        p
    }

    fn manage_pages(
        &mut self,
        op_mod: u16,
        i: &[u8],
        out_len: usize,
        out: &mut [u8],
    ) -> Result<(), Fail> {
        if i.len() < 0x10 {
            return Err((BAD_INPUT_LEN, i.len() as u32));
        }
        let n = be32(i, 0x0c) as usize;
        match op_mod {
            0 => lengths(i, 0x10, out_len, 0x10)?,
            1 => {
                lengths(i, 0x10 + 8 * n, out_len, 0x10)?;
                let mut given = Vec::with_capacity(n);
                for k in 0..n {
                    let page = be64(i, 0x10 + 8 * k);
                    if !page.is_multiple_of(PAGE_SIZE as u64) {
                        return Err((BAD_PARAM, 0x0a11_0000 | k as u32));
                    }
                    if !self.mem.contains(page, PAGE_SIZE) {
                        self.violation(format!(
                            "MANAGE_PAGES gave {page:#x}, which is not DMA memory"
                        ));
                        return Err((BAD_PARAM, 0x0a12_0000 | k as u32));
                    }
                    if self.fw_pages.contains(&page) || given.contains(&page) {
                        return Err((BAD_PARAM, 0x0a13_0000 | k as u32));
                    }
                    given.push(page);
                }
                self.fw_pages.extend(given);
                self.pages_toward_request += n as i64;
            }
            2 => {
                lengths(i, 0x10, out_len, 0x10 + 8 * n)?;
                let keep = if self.hca_init {
                    ((self.cfg.boot_pages + self.cfg.init_pages) as i64 + self.extra_pages).max(0)
                } else {
                    0
                };
                let surplus = (self.fw_pages.len() as i64 - keep).max(0) as usize;
                let count = n.min(surplus);
                for k in 0..count {
                    let page = *self.fw_pages.iter().next_back().expect("counted");
                    self.fw_pages.remove(&page);
                    put_be64(out, 0x10 + 8 * k, page);
                }
                put_be32(out, 0x08, count as u32);
                self.pages_toward_request -= count as i64;
            }
            m => return Err((BAD_PARAM, m as u32)),
        }
        Ok(())
    }

    /// Checks a physical address list of `n` pages at `at` in `i`.
    fn pas(&mut self, i: &[u8], at: usize, n: usize) -> Result<Vec<u64>, Fail> {
        let mut list = Vec::with_capacity(n);
        for k in 0..n {
            let page = be64(i, at + 8 * k);
            if !page.is_multiple_of(PAGE_SIZE as u64) || !self.mem.contains(page, PAGE_SIZE) {
                return Err((BAD_PARAM, 0x0a5_0000 | k as u32));
            }
            if self.fw_pages.contains(&page) {
                self.violation(format!(
                    "a queue buffer page {page:#x} is a page given to firmware"
                ));
            }
            list.push(page);
        }
        Ok(list)
    }

    fn create_eq(&mut self, i: &[u8], out_len: usize, out: &mut [u8]) -> Result<(), Fail> {
        if i.len() < 0x110 {
            return Err((BAD_INPUT_LEN, i.len() as u32));
        }
        let log = bits(i, 0x1c, 28, 24);
        let n = pages_for(64 << log);
        lengths(i, 0x110 + 8 * n, out_len, 0x10)?;
        let uar = bits(i, 0x1c, 23, 0);
        if !self.uars.contains(&uar) {
            return Err((BAD_RESOURCE, uar));
        }
        if bits(i, 0x28, 28, 24) != 0 {
            return Err((BAD_PARAM, 0xe0_0001));
        }
        let pas = self.pas(i, 0x110, n)?;
        for k in 0..1usize << log {
            let at = pas[k * 64 / PAGE_SIZE] + (k * 64 % PAGE_SIZE) as u64 + 0x3f;
            let mut b = [0u8];
            self.dev_read(at, &mut b);
            if b[0] & 1 != 1 {
                self.violation(format!(
                    "EQE {k}'s owner byte is {:#x}: EQEs must start owned by hardware (1)",
                    b[0]
                ));
                break;
            }
        }
        let bitmask = be64(i, 0x58);
        let eqn = (self.fresh_id() & 0xff) as u8;
        self.eqs.insert(eqn, EqState { log_size: log, uar, pas, pi: 0, ci: 0, bitmask });
        out[0x0b] = eqn;
        Ok(())
    }

    fn create_cq(&mut self, i: &[u8], out_len: usize, out: &mut [u8]) -> Result<(), Fail> {
        if i.len() < 0x110 {
            return Err((BAD_INPUT_LEN, i.len() as u32));
        }
        let log = bits(i, 0x1c, 28, 24);
        if log > self.cfg.log_max_cq_sz {
            return Err((LIMITS, log));
        }
        let n = pages_for(64 << log);
        lengths(i, 0x110 + 8 * n, out_len, 0x10)?;
        if bits(i, 0x10, 23, 21) != 0 {
            return Err((BAD_PARAM, 0xc0_0001));
        }
        let uar = bits(i, 0x1c, 23, 0);
        if !self.uars.contains(&uar) {
            return Err((BAD_RESOURCE, uar));
        }
        let eqn = bits(i, 0x24, 7, 0) as u8;
        if !self.eqs.contains_key(&eqn) {
            return Err((BAD_RESOURCE, eqn as u32));
        }
        if bits(i, 0x28, 28, 24) != 0 {
            return Err((BAD_PARAM, 0xc0_0002));
        }
        let dbr = be64(i, 0x48);
        if !dbr.is_multiple_of(8) || !self.mem.contains(dbr, 8) {
            return Err((BAD_PARAM, 0xc0_0003));
        }
        let pas = self.pas(i, 0x110, n)?;
        for k in 0..1usize << log {
            let at = pas[k * 64 / PAGE_SIZE] + (k * 64 % PAGE_SIZE) as u64 + 0x3f;
            let mut b = [0u8];
            self.dev_read(at, &mut b);
            if b[0] >> 4 != 0xf {
                self.violation(format!(
                    "CQE {k}'s op_own is {:#x}: CQEs must start with the invalid opcode",
                    b[0]
                ));
                break;
            }
        }
        let cqn = self.fresh_id();
        self.cqs.insert(cqn, CqState { log_size: log, uar, eqn, pas, dbr, pi: 0 });
        put_bits(out, 0x08, 23, 0, cqn);
        Ok(())
    }

    fn create_mkey(&mut self, i: &[u8], out_len: usize, out: &mut [u8]) -> Result<(), Fail> {
        lengths(i, 0x110, out_len, 0x10)?;
        let pd = bits(i, 0x1c, 23, 0);
        if !self.pds.contains(&pd) {
            return Err((BAD_RESOURCE, pd));
        }
        let mode = bits(i, 0x10, 9, 8) | bits(i, 0x10, 28, 26) << 2;
        if mode != 0 {
            return Err((BAD_PARAM, 0x3e_0000 | mode));
        }
        if bits(i, 0x10, 12, 12) == 1 || bits(i, 0x10, 13, 13) == 1 {
            self.violation(String::from(
                "the physical-address key grants remote access: it must be local only",
            ));
        }
        let index = self.fresh_id();
        self.mkeys.insert(
            index,
            MkeyState {
                pd,
                variant: bits(i, 0x14, 7, 0) as u8,
                local_read: bits(i, 0x10, 10, 10) == 1,
                local_write: bits(i, 0x10, 11, 11) == 1,
                len64: bits(i, 0x1c, 31, 31) == 1,
                start: be64(i, 0x20),
                len: be64(i, 0x28),
                valid: true,
            },
        );
        put_bits(out, 0x08, 23, 0, index);
        Ok(())
    }

    fn create_qp(&mut self, i: &[u8], out_len: usize, out: &mut [u8]) -> Result<(), Fail> {
        if i.len() < qpc::PAS {
            return Err((BAD_INPUT_LEN, i.len() as u32));
        }
        let log_sq = field(i, qpc::LOG_SQ_SIZE);
        if log_sq > self.cfg.log_max_qp_sz {
            return Err((LIMITS, log_sq));
        }
        let n = pages_for(64 << log_sq);
        lengths(i, qpc::PAS + 8 * n, out_len, 0x10)?;
        if field(i, qpc::ST) != 0 {
            return Err((BAD_PARAM, 0x9c_0001));
        }
        if field(i, qpc::PM_STATE) != 3 {
            return Err((BAD_PARAM, 0x9c_0002));
        }
        let pd = field(i, qpc::PD);
        if !self.pds.contains(&pd) {
            return Err((BAD_RESOURCE, pd));
        }
        let uar = field(i, qpc::UAR_PAGE);
        if !self.uars.contains(&uar) {
            return Err((BAD_RESOURCE, uar));
        }
        let cqn_snd = field(i, qpc::CQN_SND);
        let cqn_rcv = field(i, qpc::CQN_RCV);
        if !self.cqs.contains_key(&cqn_snd) || !self.cqs.contains_key(&cqn_rcv) {
            return Err((BAD_RESOURCE, cqn_snd));
        }
        if field(i, qpc::RQ_TYPE) != 3 {
            return Err((BAD_PARAM, 0x9c_0003));
        }
        let ts = field(i, qpc::TS_FORMAT);
        if ts != self.cfg.qp_ts_format as u32 {
            return Err((BAD_PARAM, 0x9c_0004));
        }
        let user_index = field(i, qpc::USER_INDEX);
        if self.cfg.cqe_version == 1 && user_index != 0xff_ffff {
            return Err((BAD_PARAM, 0x9c_0005));
        }
        if field(i, qpc::LOG_PAGE_SIZE) != 0 {
            return Err((BAD_PARAM, 0x9c_0006));
        }
        if field(i, qpc::RLKY) != 0 {
            self.violation(String::from(
                "CREATE_QP with rlky set: the driver's PA key needs no reserved lkey",
            ));
        }
        let dbr = be64(i, qpc::DBR_ADDR);
        if !dbr.is_multiple_of(64) || !self.mem.contains(dbr, 8) {
            return Err((BAD_PARAM, 0x9c_0007));
        }
        let pas = self.pas(i, qpc::PAS, n)?;
        let qpn = self.fresh_id();
        let view = QpView {
            state: QpState::Reset,
            pd,
            cqn_snd,
            cqn_rcv,
            log_sq_size: log_sq,
            ts_format: ts,
            user_index,
            mtu: 0,
            log_msg_max: 0,
            remote_qpn: 0,
            next_rcv_psn: 0,
            next_send_psn: 0,
            min_rnr_nak: 0,
            log_rra_max: 0,
            log_sra_max: 0,
            retry_count: 0,
            rnr_retry: 0,
            ack_timeout: 0,
            src_addr_index: 0,
            hop_limit: 0,
            grh: false,
            rgid: [0; 16],
            rmac: [0; 6],
            udp_sport: 0,
            vhca_port: 0,
            remote_read: false,
            remote_write: false,
            executed: 0,
        };
        self.qps.insert(qpn, QpRecord { view, uar, pas, dbr, sq_ci: 0, psn: 0 });
        put_bits(out, 0x08, 23, 0, qpn);
        Ok(())
    }

    fn modify_qp(&mut self, code: u16, i: &[u8], out_len: usize) -> Result<(), Fail> {
        lengths(i, 0x110, out_len, 0x10)?;
        let qpn = bits(i, 0x08, 23, 0);
        let (from, to) = match code {
            op::RST2INIT_QP => (QpState::Reset, QpState::Init),
            op::INIT2RTR_QP => (QpState::Init, QpState::Rtr),
            _ => (QpState::Rtr, QpState::Rts),
        };
        let log_max_ra = self.cfg.log_max_ra_req_qp;
        let roce = self.vport_roce;
        let gid_ok = self.gids.contains_key(&field(i, qpc::SRC_ADDR_INDEX));
        let Some(qp) = self.qps.get_mut(&qpn) else {
            return Err((BAD_RESOURCE, qpn));
        };
        if qp.view.state != from {
            return Err((BAD_QP_STATE, qpn));
        }
        let v = &mut qp.view;
        match to {
            QpState::Init => {
                if field(i, qpc::VHCA_PORT) != 1 {
                    return Err((BAD_PARAM, 0x2100_0001));
                }
                if field(i, qpc::PKEY_INDEX) != 0 {
                    return Err((BAD_PARAM, 0x2100_0002));
                }
                v.vhca_port = 1;
                v.remote_read = field(i, qpc::RRE) == 1;
                v.remote_write = field(i, qpc::RWE) == 1;
            }
            QpState::Rtr => {
                if !roce {
                    return Err(ROCE_OFF);
                }
                let mtu = field(i, qpc::MTU);
                if !(1..=5).contains(&mtu) {
                    return Err((BAD_PARAM, 0x2200_0001));
                }
                if field(i, qpc::GRH) != 1 {
                    return Err((BAD_PARAM, 0x2200_0002));
                }
                if !gid_ok {
                    return Err((BAD_PARAM, 0x2200_0003));
                }
                v.mtu = mtu;
                v.log_msg_max = field(i, qpc::LOG_MSG_MAX);
                v.remote_qpn = field(i, qpc::REMOTE_QPN);
                v.next_rcv_psn = field(i, qpc::NEXT_RCV_PSN);
                v.min_rnr_nak = field(i, qpc::MIN_RNR_NAK);
                v.log_rra_max = field(i, qpc::LOG_RRA_MAX);
                v.grh = true;
                v.src_addr_index = field(i, qpc::SRC_ADDR_INDEX);
                v.hop_limit = field(i, qpc::HOP_LIMIT);
                v.rgid.copy_from_slice(&i[qpc::RGID..qpc::RGID + 16]);
                v.udp_sport = field(i, qpc::UDP_SPORT);
                v.rmac.copy_from_slice(&i[qpc::RMAC..qpc::RMAC + 6]);
                if v.rmac == [0; 6] {
                    return Err((BAD_PARAM, 0x2200_0004));
                }
                if field(i, qpc::RRE) == 1 || field(i, qpc::RWE) == 1 {
                    v.remote_read |= field(i, qpc::RRE) == 1;
                    v.remote_write |= field(i, qpc::RWE) == 1;
                }
            }
            _ => {
                let sra = field(i, qpc::LOG_SRA_MAX);
                if sra > log_max_ra {
                    return Err((BAD_PARAM, 0x2300_0001));
                }
                v.log_sra_max = sra;
                v.retry_count = field(i, qpc::RETRY_COUNT);
                v.rnr_retry = field(i, qpc::RNR_RETRY);
                v.next_send_psn = field(i, qpc::NEXT_SEND_PSN);
                v.ack_timeout = field(i, qpc::ACK_TIMEOUT);
                qp.psn = v.next_send_psn;
            }
        }
        qp.view.state = to;
        Ok(())
    }
}

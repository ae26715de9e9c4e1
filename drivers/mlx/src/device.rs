//! [`Device`]: one mlx5 function from firmware start to a state where queues can be
//! created (command queue, ENABLE_HCA, ISSI, pages, capabilities, INIT_HCA, RoCE on the
//! vport, UAR, PD, event queue, physical-address memory key, GID entry), the creation and
//! destruction of completion queues and queue pairs, and teardown.
//!
//! Commands are polled. While one is outstanding the wait loop also polls the event
//! queue: firmware may ask for pages (a PAGE_REQUEST event) before it can finish the
//! command, and that request is answered with MANAGE_PAGES on the command queue's
//! reserved slot, so the driver never deadlocks waiting for itself.
//!
//! This module owns the device's function-level state and every page given to firmware.
//! It never posts work requests and never decides what a completion means (see
//! [`crate::Mlx5Transport`]). The driver uses no interrupts.

use alloc::vec::Vec;

use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes};

use crate::be::Be32;
use crate::command::{CommandQueue, Slot};
use crate::error::{CmdError, CmdFailure, Error};
use crate::hw::caps::{CapPage, PORT_TYPE_ETHERNET, general, roce};
use crate::hw::cmd::{EmptyOut, InHeader, Opcode};
use crate::hw::cq::{CQE_SIZE_64, CreateCqIn};
use crate::hw::eq::{CreateEqIn, CreateEqOut, DestroyEqIn, EVENT_PAGE_REQUEST, PageRequest};
use crate::hw::hca::{
    self, CAP_GENERAL, CAP_LEN, CAP_ROCE, FIELD_SELECT_ROCE_EN, FunctionIn, InitHcaIn,
    ManagePagesIn, ManagePagesOut, ModifyNicVportContextIn, ObjectIn, ObjectOut, QueryHcaCapOut,
    QueryIssiOut, QueryNicVportContextOut, QueryPagesOut, QueryVportStateOut, ROCE_L3_IPV4,
    ROCE_VERSION_2, SetHcaCapIn, SetIssiIn, SetRoceAddressIn, TeardownHcaIn, VPORT_ROCE_EN,
    VPORT_STATE_UP,
};
use crate::hw::init_seg::{CMDIF_REV, INITIALIZING_BIT, health_syndrome_name, reg};
use crate::hw::mkey::{ACCESS_MODE_PA, CreateMkeyIn, MKEY_ANY_QPN};
use crate::hw::qp::{CreateQpIn, ModifyQpIn, QpContext};
use crate::ids::{Cqn, Eqn, FunctionId, Lkey, Pdn, Qpn, UarIndex};
use crate::platform::{Bar, Clock, Dma, PAGE_SIZE};
use crate::queues::{CompletionQueue, EventQueue, Ring};

/// Pages given or taken by one MANAGE_PAGES command.
pub const PAGES_PER_COMMAND: usize = 512;
/// log2 of the event queue's entries.
const LOG_EQ_SIZE: u32 = 6;
/// The GID table entry the driver fills and its queue pair uses.
pub const GID_INDEX: u8 = 0;
/// Variant byte of the memory key.
const MKEY_VARIANT: u8 = 0x5a;

/// What the device needs to know before bring-up.
#[derive(Clone, Copy, Debug)]
pub struct DeviceConfig {
    /// Milliseconds a command may take.
    pub command_timeout_ms: u64,
    /// Milliseconds firmware may stay initializing (the PRM allows two minutes).
    pub firmware_timeout_ms: u64,
    /// This end's IPv4 address; its RoCE v2 GID is `::ffff:a.b.c.d`.
    pub ip: [u8; 4],
}

impl Default for DeviceConfig {
    fn default() -> Self {
        DeviceConfig { command_timeout_ms: 60_000, firmware_timeout_ms: 120_000, ip: [0; 4] }
    }
}

/// What bring-up learned about the device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Firmware version: major, minor, sub-minor.
    pub firmware: (u16, u16, u16),
    /// This function as firmware numbers it.
    pub function_id: FunctionId,
    /// The port's MAC address.
    pub mac: [u8; 6],
    /// Our GID (`::ffff:a.b.c.d`).
    pub gid: [u8; 16],
    /// log2 of the largest send queue in WQEBBs.
    pub log_max_qp_sz: u32,
    /// log2 of the largest completion queue.
    pub log_max_cq_sz: u32,
    /// log2 of the READs a requester may keep outstanding.
    pub log_max_ra_req_qp: u32,
    /// log2 of the longest message.
    pub log_max_msg: u32,
    /// CQE format version.
    pub cqe_version: u32,
    /// The RoCE capability `qp_ts_format` (QPs then take ts_format = 1).
    pub qp_ts_format: bool,
    /// Bytes of a BlueFlame register.
    pub bf_size: usize,
    /// Whether the vport reported its link up at bring-up.
    pub link_up: bool,
}

/// Counters of the command interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceStats {
    /// Commands completed successfully.
    pub commands: u64,
    /// Commands that failed.
    pub command_errors: u64,
    /// PAGE_REQUEST events answered.
    pub page_requests: u64,
    /// Pages given to firmware.
    pub pages_given: u64,
    /// Pages firmware gave back.
    pub pages_returned: u64,
}

/// One mlx5 function, brought up.
pub struct Device<B, D, C> {
    pub(crate) bar: B,
    pub(crate) dma: D,
    pub(crate) clock: C,
    cmd: CommandQueue,
    eq: Option<EventQueue>,
    /// Pages firmware holds.
    fw_pages: Vec<u64>,
    timeout_ns: u64,
    info: DeviceInfo,
    uar: UarIndex,
    pd: Pdn,
    mkey: Option<Lkey>,
    hca_initialized: bool,
    stats: DeviceStats,
}

fn input<T: IntoBytes + Immutable>(head: &T, pas: impl IntoIterator<Item = u64>) -> Vec<u8> {
    let mut v = Vec::from(head.as_bytes());
    for p in pas {
        v.extend_from_slice(&p.to_be_bytes());
    }
    v
}

fn parse<T: FromBytes>(out: &[u8], opcode: Opcode, op_mod: u16) -> Result<T, Error> {
    T::read_from_prefix(out).map(|(v, _)| v).map_err(|_| {
        Error::Command(CmdError {
            opcode,
            op_mod,
            failure: CmdFailure::ShortOutput {
                expected: core::mem::size_of::<T>(),
                got: out.len(),
            },
        })
    })
}

fn wait_ready(bar: &impl Bar, clock: &impl Clock, timeout_ms: u64) -> Result<(), Error> {
    let start = clock.now_ns();
    while bar.read32(reg::INITIALIZING) & INITIALIZING_BIT != 0 {
        let waited = clock.now_ns().saturating_sub(start);
        if waited > timeout_ms.saturating_mul(1_000_000) {
            return Err(Error::FirmwareNotReady { waited_ms: waited / 1_000_000 });
        }
        core::hint::spin_loop();
    }
    Ok(())
}

impl<B: Bar, D: Dma, C: Clock> Device<B, D, C> {
    /// Brings the function up, from waiting for firmware to a GID entry for `config.ip`:
    /// afterwards completion queues and queue pairs can be created.
    ///
    /// On failure the device is left as it is (it needs a reset before another try) and
    /// memory already given to it is not reclaimed.
    pub fn bring_up(bar: B, dma: D, clock: C, config: DeviceConfig) -> Result<Self, Error> {
        // 1. Firmware ready, command queue installed.
        let cmdif_rev = bar.read32(reg::CMDIF_REV_FW_SUB) >> 16;
        if cmdif_rev != CMDIF_REV {
            return Err(Error::UnsupportedInterface { cmdif_rev });
        }
        wait_ready(&bar, &clock, config.firmware_timeout_ms)?;
        let sizes = bar.read32(reg::CMDQ_ADDR_L_SZ);
        let (log_size, log_stride) = (sizes >> 4 & 0xf, sizes & 0xf);
        if log_stride < 6 || log_size < 1 || (1usize << (log_size + log_stride)) > PAGE_SIZE {
            return Err(Error::Unsupported {
                what: "its command queue geometry (needs at least 2 entries of 64 bytes in a page)",
            });
        }
        let cmd = CommandQueue::new(&dma, log_size, log_stride)?;
        bar.write32(reg::CMDQ_ADDR_H, (cmd.page() >> 32) as u32);
        bar.write32(reg::CMDQ_ADDR_L_SZ, cmd.page() as u32 & 0xffff_f000);
        bar.write_barrier();
        wait_ready(&bar, &clock, config.firmware_timeout_ms)?;
        let fw_rev = bar.read32(reg::FW_REV);
        let fw_sub = bar.read32(reg::CMDIF_REV_FW_SUB) & 0xffff;

        let mut dev = Device {
            bar,
            dma,
            clock,
            cmd,
            eq: None,
            fw_pages: Vec::new(),
            timeout_ns: config.command_timeout_ms.saturating_mul(1_000_000),
            info: DeviceInfo {
                firmware: (fw_rev as u16, (fw_rev >> 16) as u16, fw_sub as u16),
                function_id: FunctionId(0),
                mac: [0; 6],
                gid: ipv4_gid(config.ip),
                log_max_qp_sz: 0,
                log_max_cq_sz: 0,
                log_max_ra_req_qp: 0,
                log_max_msg: 0,
                cqe_version: 0,
                qp_ts_format: false,
                bf_size: 0,
                link_up: false,
            },
            uar: UarIndex(0),
            pd: Pdn(0),
            mkey: None,
            hca_initialized: false,
            stats: DeviceStats::default(),
        };

        // 2. ENABLE_HCA.
        dev.simple(Opcode::ENABLE_HCA, 0, &header_only(Opcode::ENABLE_HCA, 0))?;

        // 3. ISSI 1.
        let out =
            dev.exec(Opcode::QUERY_ISSI, 0, header_only(Opcode::QUERY_ISSI, 0).as_bytes(), 0x70)?;
        let issi: QueryIssiOut = parse(&out, Opcode::QUERY_ISSI, 0)?;
        if issi.supported_issi_dw0.get() & 0b10 == 0 {
            return Err(Error::Unsupported { what: "ISSI 1 (interface step sequence 1)" });
        }
        let mut set = SetIssiIn { hdr: InHeader::new(Opcode::SET_ISSI, 0), ..Default::default() };
        set.current_issi.set(1);
        dev.simple(Opcode::SET_ISSI, 0, &set)?;

        // 4. Boot pages.
        dev.satisfy_pages(hca::PAGES_BOOT)?;

        // 6. Capabilities: checksums off, 4 KiB UAR pages.
        let mut caps = dev.query_caps(CAP_GENERAL)?;
        if caps.get(general::PORT_TYPE) != PORT_TYPE_ETHERNET {
            return Err(Error::Unsupported { what: "an Ethernet port (the port is InfiniBand)" });
        }
        if caps.get(general::ROCE) == 0 {
            return Err(Error::Unsupported { what: "RoCE (enable it in the firmware settings)" });
        }
        caps.set(general::CMDIF_CHECKSUM, 0);
        caps.set(general::LOG_UAR_PAGE_SZ, 0);
        let mut set_caps = SetHcaCapIn::new_box_zeroed()
            .map_err(|_| Error::Config { what: "out of heap for SET_HCA_CAP" })?;
        set_caps.hdr = InHeader::new(Opcode::SET_HCA_CAP, hca::cap_op_mod(CAP_GENERAL, false));
        set_caps.capability.copy_from_slice(&caps.0[..]);
        dev.simple(Opcode::SET_HCA_CAP, set_caps.hdr.op_mod.get(), &*set_caps)?;
        let caps = dev.query_caps(CAP_GENERAL)?;
        let roce_caps = dev.query_caps(CAP_ROCE)?;
        dev.info.log_max_qp_sz = caps.get(general::LOG_MAX_QP_SZ);
        dev.info.log_max_cq_sz = caps.get(general::LOG_MAX_CQ_SZ);
        dev.info.log_max_ra_req_qp = caps.get(general::LOG_MAX_RA_REQ_QP);
        dev.info.log_max_msg = caps.get(general::LOG_MAX_MSG);
        dev.info.cqe_version = caps.get(general::CQE_VERSION);
        dev.info.bf_size = 1 << caps.get(general::LOG_BF_REG_SIZE);
        dev.info.qp_ts_format = roce_caps.get(roce::QP_TS_FORMAT) != 0;
        if caps.get(general::GID_TABLE_SIZE) == 0 {
            return Err(Error::Unsupported { what: "a GID table" });
        }

        // 7, 8. Init pages, INIT_HCA.
        dev.satisfy_pages(hca::PAGES_INIT)?;
        dev.simple(
            Opcode::INIT_HCA,
            0,
            &InitHcaIn { hdr: InHeader::new(Opcode::INIT_HCA, 0), ..Default::default() },
        )?;
        dev.hca_initialized = true;

        // 9. RoCE on the vport; the port's MAC; link state.
        let mut modify = ModifyNicVportContextIn::new_zeroed();
        modify.hdr = InHeader::new(Opcode::MODIFY_NIC_VPORT_CONTEXT, 0);
        modify.field_select.set_bit(FIELD_SELECT_ROCE_EN, true);
        modify.context.flags.set_bit(VPORT_ROCE_EN, true);
        dev.simple(Opcode::MODIFY_NIC_VPORT_CONTEXT, 0, &modify)?;
        let query = header_only(Opcode::QUERY_NIC_VPORT_CONTEXT, 0);
        let out = dev.exec(Opcode::QUERY_NIC_VPORT_CONTEXT, 0, query.as_bytes(), 0x110)?;
        let vport: QueryNicVportContextOut = parse(&out, Opcode::QUERY_NIC_VPORT_CONTEXT, 0)?;
        dev.info.mac = vport.context.permanent_mac;
        let query = header_only(Opcode::QUERY_VPORT_STATE, 0);
        let out = dev.exec(Opcode::QUERY_VPORT_STATE, 0, query.as_bytes(), 0x10)?;
        let state: QueryVportStateOut = parse(&out, Opcode::QUERY_VPORT_STATE, 0)?;
        dev.info.link_up = state.state.bits(3, 0) == VPORT_STATE_UP;

        // 10. UAR and PD.
        dev.uar = UarIndex(dev.alloc_object(Opcode::ALLOC_UAR)?);
        dev.pd = Pdn(dev.alloc_object(Opcode::ALLOC_PD)?);

        // 11. The event queue for page requests (never armed: polled).
        dev.create_eq()?;

        // 13. One memory key for all of physical memory.
        let mut mkey =
            CreateMkeyIn { hdr: InHeader::new(Opcode::CREATE_MKEY, 0), ..Default::default() };
        mkey.mkc.set_access(ACCESS_MODE_PA, true, true);
        mkey.mkc.set_qpn_variant(MKEY_ANY_QPN, MKEY_VARIANT);
        mkey.mkc.set_len64_pd(true, dev.pd.0);
        let out = dev.exec(Opcode::CREATE_MKEY, 0, mkey.as_bytes(), 0x10)?;
        let index: ObjectOut = parse(&out, Opcode::CREATE_MKEY, 0)?;
        dev.mkey = Some(Lkey(index.object.bits(23, 0) << 8 | MKEY_VARIANT as u32));

        // 14. Our GID.
        let mut gid = SetRoceAddressIn {
            hdr: InHeader::new(Opcode::SET_ROCE_ADDRESS, 0),
            ..Default::default()
        };
        gid.index.set_bits(31, 16, GID_INDEX as u32);
        gid.address.source_l3_address = dev.info.gid;
        gid.address.source_mac = dev.info.mac;
        gid.address.version.set_bits(11, 8, ROCE_L3_IPV4);
        gid.address.version.set_bits(7, 0, ROCE_VERSION_2);
        dev.simple(Opcode::SET_ROCE_ADDRESS, 0, &gid)?;

        log::info!(
            "mlx5: firmware {}.{}.{}, MAC {:02x?}, link {}, max SQ 2^{} WQEBBs, max CQ 2^{}, {} firmware pages",
            dev.info.firmware.0,
            dev.info.firmware.1,
            dev.info.firmware.2,
            dev.info.mac,
            if dev.info.link_up { "up" } else { "down" },
            dev.info.log_max_qp_sz,
            dev.info.log_max_cq_sz,
            dev.fw_pages.len()
        );
        Ok(dev)
    }

    /// What bring-up learned.
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// Counters of the command interface.
    pub fn stats(&self) -> DeviceStats {
        self.stats
    }

    /// Pages firmware holds.
    pub fn firmware_pages(&self) -> usize {
        self.fw_pages.len()
    }

    /// The protection domain.
    pub fn pd(&self) -> Pdn {
        self.pd
    }

    /// The UAR page of the driver's doorbells.
    pub fn uar(&self) -> UarIndex {
        self.uar
    }

    /// The physical-address local key.
    pub fn lkey(&self) -> Lkey {
        self.mkey.unwrap_or_default()
    }

    /// The event queue's number.
    pub fn eqn(&self) -> Eqn {
        self.eq.as_ref().map(|e| e.eqn).unwrap_or_default()
    }

    /// The health syndrome, if firmware reports one.
    pub fn health(&self) -> Option<(u8, &'static str)> {
        let synd = (self.bar.read32(reg::HEALTH_SYND_WORD) >> 16) as u8;
        (synd != 0).then(|| (synd, health_syndrome_name(synd)))
    }

    /// Runs a command whose output is only the header.
    fn simple<T: IntoBytes + Immutable + ?Sized>(
        &mut self,
        opcode: Opcode,
        op_mod: u16,
        input: &T,
    ) -> Result<(), Error> {
        self.exec(opcode, op_mod, input.as_bytes(), core::mem::size_of::<EmptyOut>()).map(|_| ())
    }

    /// Runs a command on the regular slot and returns its output (`out_len` bytes).
    pub(crate) fn exec(
        &mut self,
        opcode: Opcode,
        op_mod: u16,
        input: &[u8],
        out_len: usize,
    ) -> Result<Vec<u8>, Error> {
        let service = self.eq.is_some() && self.cmd.has_reserved_slot();
        self.exec_on(Slot::Regular, opcode, op_mod, input, out_len, service)
    }

    fn exec_on(
        &mut self,
        slot: Slot,
        opcode: Opcode,
        op_mod: u16,
        input: &[u8],
        out_len: usize,
        service_events: bool,
    ) -> Result<Vec<u8>, Error> {
        self.cmd.post(&self.bar, &self.dma, slot, input, out_len)?;
        let start = self.clock.now_ns();
        while !self.cmd.is_done(&self.dma, slot) {
            if service_events && let Some(request) = self.next_page_request() {
                self.answer_page_request(request)?;
                continue;
            }
            let waited = self.clock.now_ns().saturating_sub(start);
            if waited > self.timeout_ns {
                self.stats.command_errors += 1;
                if let Some((syndrome, what)) = self.health() {
                    return Err(Error::Health { syndrome, what });
                }
                let failure = CmdFailure::Timeout { waited_ms: waited / 1_000_000 };
                return Err(Error::Command(CmdError { opcode, op_mod, failure }));
            }
            core::hint::spin_loop();
        }
        self.bar.read_barrier();
        match self.cmd.finish(&self.dma, slot, opcode, op_mod, out_len) {
            Ok(out) => {
                self.stats.commands += 1;
                Ok(out)
            }
            Err(e) => {
                self.stats.command_errors += 1;
                log::warn!("{e}");
                Err(Error::Command(e))
            }
        }
    }

    /// The next page request waiting in the event queue (other events are dropped).
    fn next_page_request(&mut self) -> Option<(u16, i32)> {
        let eq = self.eq.as_mut()?;
        while let Some(eqe) = eq.next(&self.bar, &self.dma) {
            if eqe.event_type == EVENT_PAGE_REQUEST {
                let (req, _) = PageRequest::read_from_prefix(&eqe.data).ok()?;
                return Some((req.func_id.get(), req.num_pages.get() as i32));
            }
            log::debug!("mlx5: event {:#x} ignored", eqe.event_type);
        }
        None
    }

    /// Answers a page request on the reserved slot.
    fn answer_page_request(&mut self, (function, pages): (u16, i32)) -> Result<(), Error> {
        self.stats.page_requests += 1;
        log::debug!("mlx5: firmware asks for {pages} pages for function {function}");
        if pages > 0 {
            self.give_pages(Slot::Reserved, function, pages as usize)
        } else if pages < 0 {
            self.take_pages(Slot::Reserved, function, pages.unsigned_abs() as usize).map(|_| ())
        } else {
            Ok(())
        }
    }

    /// QUERY_PAGES `op_mod`, then give what firmware asks for.
    fn satisfy_pages(&mut self, op_mod: u16) -> Result<(), Error> {
        let q = header_only(Opcode::QUERY_PAGES, op_mod);
        let out = self.exec(Opcode::QUERY_PAGES, op_mod, q.as_bytes(), 0x10)?;
        let pages: QueryPagesOut = parse(&out, Opcode::QUERY_PAGES, op_mod)?;
        let function = pages.function.bits(15, 0) as u16;
        self.info.function_id = FunctionId(function);
        let n = pages.num_pages.get() as i32;
        if n > 0 {
            self.give_pages(Slot::Regular, function, n as usize)?;
        }
        Ok(())
    }

    /// Gives `count` fresh pages to firmware for `function`.
    fn give_pages(&mut self, slot: Slot, function: u16, count: usize) -> Result<(), Error> {
        let mut left = count;
        while left > 0 {
            let n = left.min(PAGES_PER_COMMAND);
            let mut batch = Vec::with_capacity(n);
            for _ in 0..n {
                match self.dma.alloc(1) {
                    Ok(p) => batch.push(p),
                    Err(e) => {
                        for &p in &batch {
                            self.dma.free(p, 1);
                        }
                        let mut cant = ManagePagesIn {
                            hdr: InHeader::new(Opcode::MANAGE_PAGES, hca::MANAGE_CANT_GIVE),
                            ..Default::default()
                        };
                        cant.function.set_bits(15, 0, function as u32);
                        let _ = self.exec_on(
                            slot,
                            Opcode::MANAGE_PAGES,
                            hca::MANAGE_CANT_GIVE,
                            cant.as_bytes(),
                            0x10,
                            false,
                        );
                        return Err(Error::Dma(e));
                    }
                }
            }
            let mut head = ManagePagesIn {
                hdr: InHeader::new(Opcode::MANAGE_PAGES, hca::MANAGE_GIVE),
                ..Default::default()
            };
            head.function.set_bits(15, 0, function as u32);
            head.num_entries.set(n as u32);
            let msg = input(&head, batch.iter().copied());
            if let Err(e) = self.exec_on(
                slot,
                Opcode::MANAGE_PAGES,
                hca::MANAGE_GIVE,
                &msg,
                0x10,
                slot == Slot::Regular && self.eq.is_some(),
            ) {
                for &p in &batch {
                    self.dma.free(p, 1);
                }
                return Err(e);
            }
            self.stats.pages_given += n as u64;
            self.fw_pages.extend_from_slice(&batch);
            left -= n;
        }
        Ok(())
    }

    /// Takes up to `count` pages back from firmware and frees them; returns how many came
    /// back.
    fn take_pages(&mut self, slot: Slot, function: u16, count: usize) -> Result<usize, Error> {
        let mut returned = 0;
        while returned < count {
            let n = (count - returned).min(PAGES_PER_COMMAND);
            let mut head = ManagePagesIn {
                hdr: InHeader::new(Opcode::MANAGE_PAGES, hca::MANAGE_TAKE),
                ..Default::default()
            };
            head.function.set_bits(15, 0, function as u32);
            head.num_entries.set(n as u32);
            let out = self.exec_on(
                slot,
                Opcode::MANAGE_PAGES,
                hca::MANAGE_TAKE,
                head.as_bytes(),
                0x10 + 8 * n,
                false,
            )?;
            let out_head: ManagePagesOut = parse(&out, Opcode::MANAGE_PAGES, hca::MANAGE_TAKE)?;
            let got = (out_head.num_entries.get() as usize).min(n);
            for i in 0..got {
                let at = 0x10 + 8 * i;
                let mut b = [0u8; 8];
                b.copy_from_slice(&out[at..at + 8]);
                let page = u64::from_be_bytes(b);
                match self.fw_pages.iter().position(|&p| p == page) {
                    Some(k) => {
                        self.fw_pages.swap_remove(k);
                        self.dma.free(page, 1);
                    }
                    None => log::warn!("mlx5: firmware returned page {page:#x} it was never given"),
                }
            }
            returned += got;
            self.stats.pages_returned += got as u64;
            if got < n {
                break;
            }
        }
        Ok(returned)
    }

    fn query_caps(&mut self, cap_type: u16) -> Result<CapPage, Error> {
        let op_mod = hca::cap_op_mod(cap_type, true);
        let q = header_only(Opcode::QUERY_HCA_CAP, op_mod);
        let out = self.exec(
            Opcode::QUERY_HCA_CAP,
            op_mod,
            q.as_bytes(),
            core::mem::size_of::<QueryHcaCapOut>(),
        )?;
        CapPage::from_bytes(out.get(0x10..0x10 + CAP_LEN).unwrap_or(&[])).ok_or(Error::Command(
            CmdError {
                opcode: Opcode::QUERY_HCA_CAP,
                op_mod,
                failure: CmdFailure::ShortOutput { expected: 0x1010, got: out.len() },
            },
        ))
    }

    /// ALLOC_UAR or ALLOC_PD: the new object's number.
    fn alloc_object(&mut self, opcode: Opcode) -> Result<u32, Error> {
        let out = self.exec(opcode, 0, header_only(opcode, 0).as_bytes(), 0x10)?;
        let o: ObjectOut = parse(&out, opcode, 0)?;
        Ok(o.object.bits(23, 0))
    }

    /// A command that names one object (DEALLOC_*, DESTROY_*).
    pub(crate) fn release(&mut self, opcode: Opcode, object: u32) -> Result<(), Error> {
        let mut i = ObjectIn { hdr: InHeader::new(opcode, 0), ..Default::default() };
        i.object = Be32::new(object);
        self.simple(opcode, 0, &i)
    }

    fn create_eq(&mut self) -> Result<(), Error> {
        let ring = EventQueue::alloc_ring(&self.dma, LOG_EQ_SIZE)?;
        let mut c = CreateEqIn { hdr: InHeader::new(Opcode::CREATE_EQ, 0), ..Default::default() };
        c.ctx.set_log_size(LOG_EQ_SIZE);
        c.ctx.set_uar_page(self.uar.0);
        c.ctx.set_log_page_size(0);
        c.event_bitmask[0].set(1 << EVENT_PAGE_REQUEST);
        let msg = input(&c, ring.pas());
        let out = match self.exec(Opcode::CREATE_EQ, 0, &msg, 0x10) {
            Ok(out) => out,
            Err(e) => {
                ring.free(&self.dma);
                return Err(e);
            }
        };
        let created: CreateEqOut = parse(&out, Opcode::CREATE_EQ, 0)?;
        self.eq = Some(EventQueue {
            eqn: Eqn(created.eq_number),
            ring,
            log_size: LOG_EQ_SIZE,
            uar: self.uar,
            ci: 0,
        });
        Ok(())
    }

    /// Creates a completion queue of `1 << log_size` entries whose doorbell record is at
    /// `dbr` (8-byte aligned DMA memory).
    pub(crate) fn create_cq(&mut self, log_size: u32, dbr: u64) -> Result<CompletionQueue, Error> {
        let ring = CompletionQueue::alloc_ring(&self.dma, log_size)?;
        let mut c = CreateCqIn { hdr: InHeader::new(Opcode::CREATE_CQ, 0), ..Default::default() };
        c.ctx.set_cqe_size(CQE_SIZE_64);
        c.ctx.set_log_size(log_size);
        c.ctx.set_uar_page(self.uar.0);
        c.ctx.set_eqn(self.eqn().0);
        c.ctx.set_log_page_size(0);
        c.ctx.dbr_addr.set(dbr);
        let msg = input(&c, ring.pas());
        let out = match self.exec(Opcode::CREATE_CQ, 0, &msg, 0x10) {
            Ok(out) => out,
            Err(e) => {
                ring.free(&self.dma);
                return Err(e);
            }
        };
        let created: ObjectOut = parse(&out, Opcode::CREATE_CQ, 0)?;
        Ok(CompletionQueue { cqn: Cqn(created.object.bits(23, 0)), ring, log_size, dbr, ci: 0 })
    }

    /// Creates a queue pair from `qpc` (the caller fills what is specific to it) on the
    /// send queue buffer `ring`.
    pub(crate) fn create_qp(&mut self, qpc: QpContext, ring: &Ring) -> Result<Qpn, Error> {
        let c = CreateQpIn { hdr: InHeader::new(Opcode::CREATE_QP, 0), qpc, ..Default::default() };
        let msg = input(&c, ring.pas());
        let out = self.exec(Opcode::CREATE_QP, 0, &msg, 0x10)?;
        let created: ObjectOut = parse(&out, Opcode::CREATE_QP, 0)?;
        Ok(Qpn(created.object.bits(23, 0)))
    }

    /// Moves `qpn` through the transition `opcode` with the fields of `qpc`.
    pub(crate) fn modify_qp(
        &mut self,
        opcode: Opcode,
        qpn: Qpn,
        qpc: QpContext,
    ) -> Result<(), Error> {
        let mut m = ModifyQpIn { hdr: InHeader::new(opcode, 0), qpc, ..Default::default() };
        m.qpn.set_bits(23, 0, qpn.0);
        self.simple(opcode, 0, &m)
    }

    /// Tears the function down: the memory key, event queue, PD and UAR, TEARDOWN_HCA,
    /// every page back from firmware, DISABLE_HCA, and frees all memory. Queue pairs and
    /// completion queues must be destroyed first. Stops at the first failing command
    /// (what was not reclaimed stays with the device).
    pub fn shutdown(mut self) -> Result<DeviceStats, Error> {
        if let Some(lkey) = self.mkey.take() {
            self.release(Opcode::DESTROY_MKEY, lkey.0 >> 8)?;
        }
        if let Some(eq) = self.eq.take() {
            let mut d =
                DestroyEqIn { hdr: InHeader::new(Opcode::DESTROY_EQ, 0), ..Default::default() };
            d.eq_number = eq.eqn.0;
            self.simple(Opcode::DESTROY_EQ, 0, &d)?;
            eq.ring.free(&self.dma);
        }
        self.release(Opcode::DEALLOC_PD, self.pd.0)?;
        self.release(Opcode::DEALLOC_UAR, self.uar.0)?;
        if self.hca_initialized {
            self.simple(
                Opcode::TEARDOWN_HCA,
                0,
                &TeardownHcaIn {
                    hdr: InHeader::new(Opcode::TEARDOWN_HCA, 0),
                    ..Default::default()
                },
            )?;
        }
        let function = self.info.function_id.0;
        let held = self.fw_pages.len();
        let back = self.take_pages(Slot::Regular, function, held)?;
        if back < held {
            log::warn!("mlx5: firmware kept {} of {held} pages at teardown", held - back);
        }
        self.simple(Opcode::DISABLE_HCA, 0, &header_only(Opcode::DISABLE_HCA, 0))?;
        let stats = self.stats;
        self.cmd.free(&self.dma);
        Ok(stats)
    }
}

/// The IPv4-mapped GID of `ip`: `::ffff:a.b.c.d`.
pub fn ipv4_gid(ip: [u8; 4]) -> [u8; 16] {
    let mut g = [0u8; 16];
    g[10] = 0xff;
    g[11] = 0xff;
    g[12..].copy_from_slice(&ip);
    g
}

/// The 16-byte input of a command that takes nothing but its header (the function
/// field left 0: this function).
fn header_only(opcode: Opcode, op_mod: u16) -> FunctionIn {
    FunctionIn { hdr: InHeader::new(opcode, op_mod), ..Default::default() }
}

//! The rings shared with the device at run time: the event queue (page requests), the
//! completion queue (polled with the owner bit), and the send queue (WQEs and their
//! doorbells, in the order the hardware requires).
//!
//! This module owns the ring memory's layout and the producer/consumer counters. It
//! never issues commands (the [`crate::Device`] creates and destroys the rings) and never
//! decides what a completion means (the transport does).

use zerocopy::{FromBytes, IntoBytes};

use crate::hw::cq::{CQE_INVALID, CQE_OP_OWN_INIT, Cqe};
use crate::hw::eq::{EQE_OWNER_INIT, Eqe};
use crate::hw::uar;
use crate::hw::wqe::{RdmaWqe, WQEBB};
use crate::ids::{Cqn, Eqn, Qpn, UarIndex};
use crate::platform::{Bar, Dma, DmaError, PAGE_SIZE};

/// Bytes of an EQE and of a CQE.
const ENTRY: usize = 64;

/// A ring buffer: contiguous DMA pages.
#[derive(Debug)]
pub(crate) struct Ring {
    /// Physical address of the first page.
    pub phys: u64,
    /// Pages.
    pub pages: usize,
}

impl Ring {
    /// `bytes` of zeroed ring memory (whole pages).
    pub fn alloc(dma: &impl Dma, bytes: usize) -> Result<Self, DmaError> {
        let pages = bytes.div_ceil(PAGE_SIZE).max(1);
        Ok(Ring { phys: dma.alloc(pages)?, pages })
    }

    /// The physical address list of the ring, one entry per 4 KiB page.
    pub fn pas(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.pages).map(|i| self.phys + (i * PAGE_SIZE) as u64)
    }

    /// Gives the memory back.
    pub fn free(&self, dma: &impl Dma) {
        dma.free(self.phys, self.pages);
    }
}

/// The event queue, polled for page requests while commands are outstanding.
pub(crate) struct EventQueue {
    pub eqn: Eqn,
    pub ring: Ring,
    pub log_size: u32,
    pub uar: UarIndex,
    /// Consumer index.
    pub ci: u32,
}

impl EventQueue {
    /// Ring memory for `1 << log_size` EQEs, every owner byte set to the first pass's
    /// invalid value.
    pub fn alloc_ring(dma: &impl Dma, log_size: u32) -> Result<Ring, DmaError> {
        let ring = Ring::alloc(dma, ENTRY << log_size)?;
        for i in 0..1u64 << log_size {
            dma.write(ring.phys + i * ENTRY as u64 + 0x3f, &[EQE_OWNER_INIT]);
        }
        Ok(ring)
    }

    /// The next event, if the device has written one; consumes it and tells the device.
    pub fn next(&mut self, bar: &impl Bar, dma: &impl Dma) -> Option<Eqe> {
        let mask = (1u32 << self.log_size) - 1;
        let at = self.ring.phys + ((self.ci & mask) as usize * ENTRY) as u64;
        let owner = dma.read_u8(at + 0x3f) & 1;
        if owner != (self.ci >> self.log_size & 1) as u8 {
            return None;
        }
        bar.read_barrier();
        let mut raw = [0u8; ENTRY];
        dma.read(at, &mut raw);
        self.ci = self.ci.wrapping_add(1);
        bar.write32(
            uar::offset(self.uar.0, uar::EQ_UPDATE_CI),
            (self.eqn.0 as u32) << 24 | (self.ci & 0xff_ffff),
        );
        Some(Eqe::read_from_bytes(&raw).expect("64 bytes"))
    }
}

/// The completion queue of the send queue.
pub(crate) struct CompletionQueue {
    pub cqn: Cqn,
    pub ring: Ring,
    pub log_size: u32,
    /// The doorbell record: [0] consumer index, [1] arm.
    pub dbr: u64,
    /// Consumer index.
    pub ci: u32,
}

impl CompletionQueue {
    /// Ring memory for `1 << log_size` CQEs, every opcode set to invalid.
    pub fn alloc_ring(dma: &impl Dma, log_size: u32) -> Result<Ring, DmaError> {
        let ring = Ring::alloc(dma, ENTRY << log_size)?;
        for i in 0..1u64 << log_size {
            dma.write(ring.phys + i * ENTRY as u64 + 0x3f, &[CQE_OP_OWN_INIT]);
        }
        Ok(ring)
    }

    /// Entries.
    pub fn size(&self) -> u32 {
        1 << self.log_size
    }

    /// The next completion, if the device has written one: checks the owner bit against
    /// the pass (it flips each time the ring wraps), consumes the entry and moves the
    /// doorbell record's consumer index on so the device may reuse it.
    pub fn poll(&mut self, bar: &impl Bar, dma: &impl Dma) -> Option<Cqe> {
        let mask = self.size() - 1;
        let at = self.ring.phys + ((self.ci & mask) as usize * ENTRY) as u64;
        let op_own = dma.read_u8(at + 0x3f);
        if op_own >> 4 == CQE_INVALID || op_own & 1 != (self.ci >> self.log_size & 1) as u8 {
            return None;
        }
        // The body must not be read before the owner byte that says it is there.
        bar.read_barrier();
        let mut raw = [0u8; ENTRY];
        dma.read(at, &mut raw);
        self.ci = self.ci.wrapping_add(1);
        dma.write_be32(self.dbr, self.ci & 0xff_ffff);
        Some(Cqe::read_from_bytes(&raw).expect("64 bytes"))
    }
}

/// The send queue of the RC queue pair.
pub(crate) struct SendQueue {
    pub qpn: Qpn,
    pub ring: Ring,
    pub log_size: u32,
    /// The QP's doorbell record: [0] RQ counter, [1] SQ counter.
    pub dbr: u64,
    pub uar: UarIndex,
    /// Producer counter in WQEBBs (16 bits, as the hardware counts).
    pub pi: u16,
    /// Which half of the BlueFlame register the next doorbell goes to.
    pub bf_offset: usize,
    /// Bytes of the BlueFlame register (both halves).
    pub bf_size: usize,
}

impl SendQueue {
    /// WQEBBs in the queue.
    pub fn size(&self) -> u32 {
        1 << self.log_size
    }

    /// Posts one WQE (built for index [`SendQueue::pi`]) and rings the doorbell: WQE,
    /// barrier, doorbell record, barrier, doorbell. Returns the WQE's index.
    pub fn post(&mut self, bar: &impl Bar, dma: &impl Dma, wqe: &RdmaWqe) -> u16 {
        let index = self.pi;
        let slot = (index as u32 & (self.size() - 1)) as usize;
        let bytes = wqe.as_bytes();
        dma.write(self.ring.phys + (slot * WQEBB) as u64, bytes);
        // 1. The WQE is in memory before the doorbell record says it exists.
        bar.write_barrier();
        self.pi = self.pi.wrapping_add(1);
        dma.write_be32(self.dbr + 4, self.pi as u32);
        // 2. The doorbell record is in memory before the device is told to look.
        bar.write_barrier();
        let mut ctrl = [0u8; 8];
        ctrl.copy_from_slice(&bytes[..8]);
        bar.write64(
            uar::offset(self.uar.0, uar::BLUEFLAME + self.bf_offset),
            u64::from_be_bytes(ctrl),
        );
        // 3. For a write-combining mapping: flush before the next doorbell.
        bar.write_barrier();
        if self.bf_size >= 2 {
            self.bf_offset ^= self.bf_size / 2;
        }
        index
    }
}

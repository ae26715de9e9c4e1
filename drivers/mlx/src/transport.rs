//! [`Mlx5Transport`]: the far-memory transport over one RC queue pair. A read is an RDMA
//! READ from the memory node's registered region into the [`LocalBuf`]'s physical
//! address; a write is an RDMA WRITE the other way. Every WQE asks for a completion, so
//! each request completes exactly once, with success or the CQE's error syndrome.
//!
//! Connecting creates the completion queue and the queue pair, exchanges parameters with
//! the memory node over a [`ControlLink`], and moves the queue pair RESET → INIT → RTR →
//! RTS. Our queue pair grants the node no access to local memory (remote read and write
//! disabled): only the image moves data.
//!
//! This module owns the in-flight table (which WQE carries which tag and buffer) and the
//! mapping of completions to requests. It never blocks, never retries a failed request
//! (RC already retried in hardware), and never touches a buffer's memory.

use alloc::vec::Vec;

use remora_rmem::{
    Completion, Direction, LocalBuf, PAGE_SIZE, PostError, PostRejected, Transport, TransportError,
    TransportStats, check_post,
};

use crate::device::{Device, GID_INDEX};
use crate::error::Error;
use crate::exchange::{ConnectReply, ConnectRequest, ControlLink};
use crate::hw::cmd::Opcode;
use crate::hw::cq::{CQE_REQ, CQE_REQ_ERR, CQE_RESP_ERR, Cqe, syndrome_name};
use crate::hw::qp::{MTU_1024, PM_MIGRATED, QpContext, RQ_TYPE_NONE, ST_RC};
use crate::hw::wqe::{CE_ALWAYS, OPCODE_RDMA_READ, OPCODE_RDMA_WRITE, RdmaWqe, WQEBB};
use crate::ids::{Lkey, Psn, Qpn, Rkey};
use crate::platform::{Bar, Clock, Dma};
use crate::queues::{CompletionQueue, Ring, SendQueue};

/// Longest single READ or WRITE the transport accepts.
pub const MAX_TRANSFER_LEN: usize = 256 * 1024;
/// Most requests in flight the transport supports.
pub const MAX_QUEUE_DEPTH: u32 = 4096;
/// Offset of the QP's doorbell record in the doorbell page (the CQ's is at 0).
const QP_DBR_OFFSET: u64 = 64;

/// The queue pair's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QpConfig {
    /// Requests in flight at once (the send queue has the next power of two WQEBBs).
    pub queue_depth: u32,
    /// Completion queue entries, at least `queue_depth` (rounded up to a power of two).
    pub cq_size: u32,
    /// Path MTU code (3 = 1024 bytes, which fits a 1500-byte Ethernet MTU).
    pub mtu: u8,
    /// The first PSN we send.
    pub psn: Psn,
    /// UDP source port of our RoCE v2 packets (0xc000 and up).
    pub udp_sport: u16,
    /// The ack timeout exponent: 4.096 us << n (14 is about 67 ms).
    pub ack_timeout: u8,
    /// Transport retries (0-7).
    pub retry_count: u8,
}

impl Default for QpConfig {
    fn default() -> Self {
        QpConfig {
            queue_depth: 32,
            cq_size: 64,
            mtu: MTU_1024 as u8,
            psn: Psn(0x00_1000),
            udp_sport: 0xc000,
            ack_timeout: 14,
            retry_count: 7,
        }
    }
}

/// The far region asked of the memory node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegionRequest {
    /// The region's key.
    pub key: [u8; 16],
    /// Bytes wanted.
    pub size: u64,
}

/// Where the far region is and how to reach it, as the memory node answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    /// The node's queue pair.
    pub qpn: Qpn,
    /// The region's key.
    pub rkey: Rkey,
    /// The region's first address.
    pub base: u64,
    /// Bytes of the region the transport uses (what was asked for).
    pub size: u64,
    /// The node's MAC.
    pub mac: [u8; 6],
    /// The node's GID.
    pub gid: [u8; 16],
}

/// Counters beyond the common [`TransportStats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mlx5Stats {
    /// Completions with the flush syndrome (after an earlier error).
    pub flushed: u64,
    /// Completions that matched no request in flight (or another QP), dropped.
    pub stray_completions: u64,
    /// CQEs polled.
    pub cqes: u64,
}

struct InFlight {
    tag: u64,
    direction: Direction,
    remote: u64,
    buf: LocalBuf,
}

/// The mlx5 far-memory transport (see the module docs).
pub struct Mlx5Transport<B, D, C> {
    dev: Device<B, D, C>,
    cq: CompletionQueue,
    sq: SendQueue,
    dbr_page: u64,
    lkey: Lkey,
    peer: Peer,
    slots: Vec<Option<InFlight>>,
    in_flight: usize,
    capacity: usize,
    max_transfer: usize,
    stats: TransportStats,
    extra: Mlx5Stats,
    in_error: bool,
}

fn log2(x: u32) -> u32 {
    31 - x.max(1).leading_zeros()
}

impl<B: Bar, D: Dma, C: Clock> Mlx5Transport<B, D, C> {
    /// Creates the queue pair on `dev`, exchanges parameters with the memory node over
    /// `control` and makes the queue pair ready to send. On failure what was created is
    /// destroyed, the device is torn down (as far as it goes) and the first error
    /// returned.
    pub fn connect(
        mut dev: Device<B, D, C>,
        config: QpConfig,
        region: RegionRequest,
        control: &mut impl ControlLink,
    ) -> Result<Self, Error> {
        let mut built = Built::default();
        let connected = match build(&mut dev, &mut built, config, region, control) {
            Ok(c) => c,
            Err(e) => {
                log::warn!("{e}");
                built.undo(dev);
                return Err(e);
            }
        };
        let (Some(cq), Some(ring), Some(qpn), Some(dbr_page)) =
            (built.cq, built.ring, built.qpn, built.dbr_page)
        else {
            unreachable!("build fills every part or fails");
        };
        let info = dev.info();
        let max_transfer = MAX_TRANSFER_LEN.min(1usize << info.log_max_msg.min(30)).max(PAGE_SIZE)
            / PAGE_SIZE
            * PAGE_SIZE;
        let sq = SendQueue {
            qpn,
            ring,
            log_size: connected.log_sq,
            dbr: dbr_page + QP_DBR_OFFSET,
            uar: dev.uar(),
            pi: 0,
            bf_offset: 0,
            bf_size: info.bf_size,
        };
        log::info!(
            "mlx5: {qpn} connected to node {} (region {:#x}+{:#x}, {}), queue depth {}, {} READs outstanding",
            connected.peer.qpn,
            connected.peer.base,
            connected.peer.size,
            connected.peer.rkey,
            config.queue_depth,
            connected.reads
        );
        Ok(Mlx5Transport {
            lkey: dev.lkey(),
            dev,
            cq,
            slots: (0..sq.size()).map(|_| None).collect(),
            sq,
            dbr_page,
            peer: connected.peer,
            in_flight: 0,
            capacity: config.queue_depth as usize,
            max_transfer,
            stats: TransportStats::default(),
            extra: Mlx5Stats::default(),
            in_error: false,
        })
    }

    /// Our queue pair.
    pub fn qpn(&self) -> Qpn {
        self.sq.qpn
    }

    /// The memory node's side.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// The device under the transport.
    pub fn device(&self) -> &Device<B, D, C> {
        &self.dev
    }

    /// The device, for commands on the queue pair in tests.
    #[cfg(test)]
    pub(crate) fn device_mut(&mut self) -> &mut Device<B, D, C> {
        &mut self.dev
    }

    /// Counters of this transport beyond [`TransportStats`].
    pub fn mlx5_stats(&self) -> Mlx5Stats {
        self.extra
    }

    /// Whether a completion has reported an error: the queue pair is then in the error
    /// state and every later request completes with the flush syndrome.
    pub fn is_in_error(&self) -> bool {
        self.in_error
    }

    fn post(
        &mut self,
        direction: Direction,
        remote: u64,
        buf: LocalBuf,
        tag: u64,
    ) -> Result<(), PostRejected> {
        if let Err(error) = check_post(remote, buf.len(), self.peer.size, self.max_transfer) {
            self.stats.bad_posts += 1;
            return Err(PostRejected { error, buf });
        }
        if self.in_flight >= self.capacity {
            self.stats.queue_full += 1;
            return Err(PostRejected {
                error: PostError::QueueFull { capacity: self.capacity },
                buf,
            });
        }
        let opcode = match direction {
            Direction::Read => OPCODE_RDMA_READ,
            Direction::Write => OPCODE_RDMA_WRITE,
        };
        let index = self.sq.pi;
        let wqe = RdmaWqe::new(
            opcode,
            index,
            self.sq.qpn.0,
            CE_ALWAYS,
            self.peer.base + remote,
            self.peer.rkey.0,
            self.lkey.0,
            buf.phys(),
            buf.len() as u32,
        );
        let slot = index as usize & (self.slots.len() - 1);
        debug_assert!(self.slots[slot].is_none(), "send queue slot {slot} still in flight");
        match direction {
            Direction::Read => self.stats.reads_posted += 1,
            Direction::Write => self.stats.writes_posted += 1,
        }
        self.slots[slot] = Some(InFlight { tag, direction, remote, buf });
        self.in_flight += 1;
        self.sq.post(&self.dev.bar, &self.dev.dma, &wqe);
        Ok(())
    }

    /// The request a CQE completes, with its status; `None` for a stray CQE.
    fn complete(&mut self, cqe: &Cqe) -> Option<Completion> {
        self.extra.cqes += 1;
        if cqe.qpn() != self.sq.qpn.0 {
            self.extra.stray_completions += 1;
            log::warn!(
                "mlx5: completion for QPN {:#x}, ours is {}: dropped",
                cqe.qpn(),
                self.sq.qpn
            );
            return None;
        }
        let slot = cqe.wqe_counter.get() as usize & (self.slots.len() - 1);
        let Some(req) = self.slots[slot].take() else {
            self.extra.stray_completions += 1;
            log::warn!(
                "mlx5: completion for WQE {} which is not in flight: dropped",
                cqe.wqe_counter.get()
            );
            return None;
        };
        self.in_flight -= 1;
        let status = match cqe.opcode() {
            CQE_REQ => Ok(()),
            CQE_REQ_ERR | CQE_RESP_ERR => {
                self.in_error = true;
                if cqe.syndrome == crate::hw::cq::SYND_WR_FLUSH {
                    self.extra.flushed += 1;
                } else {
                    log::warn!(
                        "mlx5: {:?} of {:#x} failed: {} (vendor syndrome {:#x})",
                        req.direction,
                        req.remote,
                        syndrome_name(cqe.syndrome),
                        cqe.vendor_err_synd
                    );
                }
                Err(TransportError::Device {
                    code: cqe.syndrome as u32,
                    what: syndrome_name(cqe.syndrome),
                })
            }
            other => Err(TransportError::Device {
                code: 0x100 | other as u32,
                what: "unexpected CQE opcode (code = 0x100 | opcode)",
            }),
        };
        let len = req.buf.len() as u64;
        match (&status, req.direction) {
            (Ok(()), Direction::Read) => self.stats.bytes_read += len,
            (Ok(()), Direction::Write) => self.stats.bytes_written += len,
            _ => {}
        }
        match status {
            Ok(()) => self.stats.completed_ok += 1,
            Err(_) => self.stats.completed_err += 1,
        }
        Some(Completion {
            tag: req.tag,
            direction: req.direction,
            remote: req.remote,
            buf: req.buf,
            status,
        })
    }

    /// Waits (polling, up to the command timeout) for the requests in flight, destroys
    /// the queue pair and completion queue and tears the device down. Buffers of
    /// requests that never completed are forgotten (their memory is the caller's).
    pub fn shutdown(mut self) -> Result<(), Error> {
        let start = self.dev.clock.now_ns();
        while self.in_flight > 0 && self.dev.clock.now_ns().saturating_sub(start) < 5_000_000_000 {
            let _ = self.poll();
        }
        if self.in_flight > 0 {
            log::warn!("mlx5: shutting down with {} requests in flight", self.in_flight);
        }
        let Mlx5Transport { mut dev, cq, sq, dbr_page, .. } = self;
        dev.release(Opcode::DESTROY_QP, sq.qpn.0)?;
        sq.ring.free(&dev.dma);
        dev.release(Opcode::DESTROY_CQ, cq.cqn.0)?;
        cq.ring.free(&dev.dma);
        dev.dma.free(dbr_page, 1);
        dev.shutdown().map(|_| ())
    }
}

/// What `connect` has created so far, for undoing it on failure.
#[derive(Default)]
struct Built {
    dbr_page: Option<u64>,
    cq: Option<CompletionQueue>,
    ring: Option<Ring>,
    qpn: Option<Qpn>,
}

impl Built {
    /// Destroys what was created, in reverse, then tears the device down.
    fn undo<B: Bar, D: Dma, C: Clock>(self, mut dev: Device<B, D, C>) {
        let mut result = Ok(());
        if let Some(qpn) = self.qpn {
            result = dev.release(Opcode::DESTROY_QP, qpn.0);
        }
        if let Some(ring) = self.ring {
            ring.free(&dev.dma);
        }
        if let Some(cq) = self.cq {
            result = result.and(dev.release(Opcode::DESTROY_CQ, cq.cqn.0));
            cq.ring.free(&dev.dma);
        }
        if let Some(page) = self.dbr_page {
            dev.dma.free(page, 1);
        }
        if let Err(e) = result.and_then(|()| dev.shutdown().map(|_| ())) {
            log::warn!("mlx5: teardown after a failed connect: {e}");
        }
    }
}

/// What the connection settled on.
struct Connected {
    peer: Peer,
    log_sq: u32,
    reads: u32,
}

fn build<B: Bar, D: Dma, C: Clock>(
    dev: &mut Device<B, D, C>,
    built: &mut Built,
    config: QpConfig,
    region: RegionRequest,
    control: &mut impl ControlLink,
) -> Result<Connected, Error> {
    let info = dev.info().clone();
    if config.queue_depth == 0 || config.queue_depth > MAX_QUEUE_DEPTH {
        return Err(Error::Config { what: "mlx5.queue_depth must be between 1 and 4096" });
    }
    if config.cq_size < config.queue_depth {
        return Err(Error::Config {
            what: "mlx5.cq_size must be at least mlx5.queue_depth (every request completes)",
        });
    }
    if !(1..=5).contains(&config.mtu) {
        return Err(Error::Config { what: "the path MTU code must be 1 (256) to 5 (4096)" });
    }
    let log_sq = log2(config.queue_depth.next_power_of_two());
    let log_cq = log2(config.cq_size.next_power_of_two());
    if log_sq > info.log_max_qp_sz {
        return Err(Error::Limit {
            what: "send queue (mlx5.queue_depth)",
            wanted: 1 << log_sq,
            max: 1 << info.log_max_qp_sz,
        });
    }
    if log_cq > info.log_max_cq_sz {
        return Err(Error::Limit {
            what: "completion queue (mlx5.cq_size)",
            wanted: 1 << log_cq,
            max: 1 << info.log_max_cq_sz,
        });
    }

    // Doorbell records: the CQ's at 0, the QP's at 64.
    let dbr_page = dev.dma.alloc(1)?;
    built.dbr_page = Some(dbr_page);
    let cq = dev.create_cq(log_cq, dbr_page)?;
    let cqn = cq.cqn;
    built.cq = Some(cq);
    let ring = Ring::alloc(&dev.dma, WQEBB << log_sq)?;
    let mut qpc = QpContext::default();
    qpc.set_service(ST_RC, PM_MIGRATED);
    qpc.set_pd(dev.pd().0);
    qpc.set_log_sq_size(log_sq);
    qpc.set_ts_format(info.qp_ts_format as u32);
    qpc.set_uar_page(dev.uar().0);
    if info.cqe_version == 1 {
        qpc.set_user_index(0xff_ffff);
    }
    qpc.set_log_page_size(0);
    qpc.set_cqn_snd(cqn.0);
    qpc.set_cqn_rcv(cqn.0);
    qpc.dbr_addr.set(dbr_page + QP_DBR_OFFSET);
    qpc.set_rq_type(RQ_TYPE_NONE);
    let created = dev.create_qp(qpc, &ring);
    built.ring = Some(ring);
    let qpn = created?;
    built.qpn = Some(qpn);

    // RESET -> INIT: port 1, no remote access to our memory.
    let mut init = QpContext::default();
    init.primary_path.set_vhca_port(1);
    init.set_responder(0, false, false);
    dev.modify_qp(Opcode::RST2INIT_QP, qpn, init)?;

    // The exchange.
    let our_reads = config.queue_depth.min(1 << info.log_max_ra_req_qp).min(255) as u8;
    let request = ConnectRequest {
        key: region.key,
        region_size: region.size,
        qpn,
        psn: config.psn,
        gid: info.gid,
        mac: info.mac,
        mtu: config.mtu,
        max_reads: our_reads,
    };
    let reply = control.exchange(&request)?;
    let peer = check_reply(&request, &reply)?;

    // INIT -> RTR: the path to the node.
    let mut rtr = QpContext::default();
    rtr.set_mtu(reply.mtu as u32);
    rtr.set_log_msg_max(info.log_max_msg);
    rtr.set_remote_qpn(reply.qpn.0);
    rtr.set_receiver(12, reply.psn.0);
    rtr.set_responder(0, false, false);
    let path = &mut rtr.primary_path;
    path.set_grh(true);
    path.set_src_addr_index(GID_INDEX as u32);
    path.set_hop_limit(64);
    path.rgid = reply.gid;
    path.set_udp_sport(config.udp_sport);
    path.rmac = reply.mac;
    path.set_vhca_port(1);
    dev.modify_qp(Opcode::INIT2RTR_QP, qpn, rtr)?;

    // RTR -> RTS: our PSN, retries, outstanding READs.
    let reads = (our_reads as u32).min(reply.max_reads.max(1) as u32);
    let mut rts = QpContext::default();
    rts.set_next_send_psn(config.psn.0);
    rts.set_requester(log2(reads).min(info.log_max_ra_req_qp), config.retry_count.min(7) as u32, 7);
    rts.primary_path.set_ack_timeout(config.ack_timeout.min(31) as u32);
    dev.modify_qp(Opcode::RTR2RTS_QP, qpn, rts)?;
    Ok(Connected { peer, log_sq, reads })
}

fn check_reply(request: &ConnectRequest, reply: &ConnectReply) -> Result<Peer, Error> {
    if reply.key != request.key {
        return Err(Error::Peer { what: "the reply is for another region key" });
    }
    if reply.region_size < request.region_size {
        return Err(Error::Peer { what: "the region granted is smaller than the one asked for" });
    }
    if reply.mtu != request.mtu {
        return Err(Error::Peer { what: "the node uses another path MTU" });
    }
    if reply.qpn.0 == 0 {
        return Err(Error::Peer { what: "QPN 0 is not a connected queue pair" });
    }
    if reply.region_base.checked_add(reply.region_size).is_none() {
        return Err(Error::Peer { what: "the region wraps around the address space" });
    }
    Ok(Peer {
        qpn: reply.qpn,
        rkey: reply.rkey,
        base: reply.region_base,
        size: request.region_size,
        mac: reply.mac,
        gid: reply.gid,
    })
}

impl<B: Bar, D: Dma, C: Clock> Transport for Mlx5Transport<B, D, C> {
    fn post_read(&mut self, remote: u64, local: LocalBuf, tag: u64) -> Result<(), PostRejected> {
        self.post(Direction::Read, remote, local, tag)
    }

    fn post_write(&mut self, remote: u64, local: LocalBuf, tag: u64) -> Result<(), PostRejected> {
        self.post(Direction::Write, remote, local, tag)
    }

    fn poll(&mut self) -> Option<Completion> {
        loop {
            let cqe = self.cq.poll(&self.dev.bar, &self.dev.dma)?;
            if let Some(done) = self.complete(&cqe) {
                return Some(done);
            }
        }
    }

    fn in_flight(&self) -> usize {
        self.in_flight
    }

    fn capacity(&self) -> usize {
        self.capacity
    }

    fn region_size(&self) -> u64 {
        self.peer.size
    }

    fn max_transfer_len(&self) -> usize {
        self.max_transfer
    }

    fn stats(&self) -> TransportStats {
        self.stats
    }
}

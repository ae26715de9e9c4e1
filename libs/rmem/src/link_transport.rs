//! [`LinkTransport`]: the [`Transport`] that speaks the wire protocol over any datagram
//! [`Link`] (a virtio-net device whose QEMU backend is a socket to `memnode`).
//!
//! This module owns the request engine: request ids, the fixed-size in-flight table,
//! sending each request's frames (with back-pressure from the link), timeouts and
//! retries within a budget, reassembly of multi-page reads, acknowledgement of
//! multi-page writes, and dropping duplicate or late answers. It must never allocate
//! after [`LinkTransport::connect`], never block, and never let a request hang: each one
//! completes, at the latest with [`TransportError::LinkLost`] once its retries are spent.
//!
//! # How a request travels
//! - A post takes a free slot of the table, gives the request the next id of the session
//!   (the node's OpenReply says where ids start, see [`crate::wire`]) and sends it at
//!   once: one ReadRequest for a read run, one WriteRequest per page for a write. If the
//!   link is busy, the rest is sent by later polls.
//! - Each answer is matched to its slot by request id. A read page is copied into its
//!   place in the buffer and marked arrived; a write ack marks its page. When every page
//!   is in, the request completes. An answer for a page already in, or for an id no longer
//!   in flight, is a duplicate: dropped and counted.
//! - A request that goes `timeout` without progress is sent again, for the pages still
//!   missing only (each contiguous run of missing read pages is one ReadRequest), with the
//!   RETRANSMIT flag. After `retries` resends it completes with `LinkLost`.
//!
//! The node makes resending safe: reads change nothing, and it ignores a write older than
//! the page's newest, so a retried or duplicated write never undoes a later one.

use alloc::vec::Vec;
use core::fmt;

use heapless::{Deque, String};

use crate::ethernet::{BROADCAST_MAC, MacDisplay, decode_frame, encode_frame};
use crate::link::{Clock, Link, LinkError};
use crate::transport::{
    Completion, Direction, PostError, PostRejected, Transport, TransportError, TransportStats,
    check_post,
};
use crate::wire::{
    Body, DecodeError, ErrorCode, Flags, MAX_FRAME_LEN, MAX_REASON_LEN, MAX_RUN_PAGES, Message,
    PAGE_SIZE, RegionKey,
};
use crate::{LocalBuf, ethernet};

/// The largest `queue_depth` (`rmem.queue_depth` allows 1..=256).
pub const MAX_QUEUE_DEPTH: usize = 256;

/// Frames handled per [`Transport::poll`] at most, so one poll stays short.
const RX_BUDGET: usize = 64;

/// Settings of a [`LinkTransport`]: the image passes `rmem.queue_depth`,
/// `rmem.timeout_us` and `rmem.retries` here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkConfig {
    /// Requests in flight at once, 1..=[`MAX_QUEUE_DEPTH`].
    pub queue_depth: usize,
    /// Microseconds a request may go without progress before it is sent again (> 0).
    pub timeout_us: u64,
    /// Resends before a request fails with [`TransportError::LinkLost`].
    pub retries: u32,
    /// Pages whose answers may be on the way at once (flow control: what the link can
    /// buffer on the receiving side). A post that would go beyond it is refused with
    /// `QueueFull`, unless nothing is in flight.
    pub window_pages: usize,
}

impl LinkConfig {
    /// The defaults of `Config.toml`: 32 requests, 5 ms, 8 retries, 128 pages.
    pub const DEFAULT: LinkConfig =
        LinkConfig { queue_depth: 32, timeout_us: 5_000, retries: 8, window_pages: 128 };

    fn timeout_ns(&self) -> u64 {
        self.timeout_us.saturating_mul(1000)
    }
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig::DEFAULT
    }
}

/// Why [`LinkTransport::connect`] failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectError {
    /// `queue_depth` is 0 or above [`MAX_QUEUE_DEPTH`].
    BadQueueDepth {
        /// The depth given.
        depth: usize,
    },
    /// `timeout_us` is 0.
    ZeroTimeout,
    /// The size wanted is 0 or not a multiple of [`PAGE_SIZE`].
    BadRegionSize {
        /// The size given.
        size: u64,
    },
    /// No OpenReply came back after `tries` Open requests over `waited_ms`.
    LinkLost {
        /// Open requests sent.
        tries: u32,
        /// Milliseconds from the first to giving up.
        waited_ms: u64,
    },
    /// The link refused every Open request it was given.
    Link(LinkError),
    /// The node refused to open the region.
    Refused {
        /// Why, as a code.
        code: ErrorCode,
        /// Why, in the node's words.
        reason: String<MAX_REASON_LEN>,
    },
    /// The node granted less than was asked, or a size that is not whole pages.
    BadRegionGranted {
        /// Bytes asked for.
        wanted: u64,
        /// Bytes granted.
        granted: u64,
    },
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::BadQueueDepth { depth } => write!(
                f,
                "rmem.queue_depth = {depth} is out of range: it must be 1..={MAX_QUEUE_DEPTH}"
            ),
            ConnectError::ZeroTimeout => write!(f, "rmem.timeout_us must not be 0"),
            ConnectError::BadRegionSize { size } => write!(
                f,
                "far region size {size:#x} must be a non-zero multiple of {PAGE_SIZE} bytes \
                 (rmem.region_size)"
            ),
            ConnectError::LinkLost { tries, waited_ms } => write!(
                f,
                "no memory node answered: {tries} Open requests over {waited_ms} ms went \
                 unanswered; start memnode first (cargo xtask run does) and check the \
                 image's far-memory NIC is connected to its socket"
            ),
            ConnectError::Link(error) => write!(f, "could not send the Open request: {error}"),
            ConnectError::Refused { code, reason } => {
                write!(f, "the memory node refused to open the far region: {code}: {reason}")
            }
            ConnectError::BadRegionGranted { wanted, granted } => write!(
                f,
                "the memory node granted a region of {granted:#x} bytes for {wanted:#x} asked; \
                 is it running the same protocol version?"
            ),
        }
    }
}

/// A [`Transport`] over a datagram [`Link`], timed by a [`Clock`]. Made by
/// [`LinkTransport::connect`].
pub struct LinkTransport<L: Link, C: Clock> {
    link: L,
    clock: C,
    engine: Engine,
}

impl<L: Link, C: Clock> LinkTransport<L, C> {
    /// Opens (creates or finds) the far region named by `key` on the memory node at the
    /// other end of `link`, asking for `size_wanted` bytes, and returns the transport.
    ///
    /// The Open request is broadcast; the node's MAC is learnt from its reply. It is sent
    /// again every `config.timeout_us` up to `config.retries` times; this call busy-waits
    /// for the answer and returns within about `(retries + 1) * timeout_us`.
    ///
    /// This is the only place that allocates: the in-flight table (`queue_depth` slots)
    /// and one frame buffer.
    #[allow(clippy::result_large_err, reason = "called once at boot; the reason text is the point")]
    pub fn connect(
        mut link: L,
        clock: C,
        key: RegionKey,
        size_wanted: u64,
        config: LinkConfig,
    ) -> Result<Self, ConnectError> {
        if config.queue_depth == 0 || config.queue_depth > MAX_QUEUE_DEPTH {
            return Err(ConnectError::BadQueueDepth { depth: config.queue_depth });
        }
        if config.timeout_us == 0 {
            return Err(ConnectError::ZeroTimeout);
        }
        if size_wanted == 0 || !size_wanted.is_multiple_of(PAGE_SIZE as u64) {
            return Err(ConnectError::BadRegionSize { size: size_wanted });
        }

        let mac = link.mac();
        let mut stats = TransportStats::default();
        // Any id will do for the Open; one from the clock makes it unlikely that a late
        // reply to an earlier boot's Open is taken for ours.
        let open_id = clock.now_ns() | 1;
        let open = Message::new(open_id, key, Body::OpenRequest { size_wanted });
        let mut frame = [0u8; ethernet::ETHERNET_HEADER_LEN + crate::wire::HEADER_LEN];
        let frame_len = match encode_frame(BROADCAST_MAC, mac, &open, &mut frame) {
            Ok(len) => len,
            Err(error) => unreachable_encode(error),
        };

        let first_sent = clock.now_ns();
        let mut tries = 0u32;
        let mut sent_any = false;
        let mut last_error = None;
        loop {
            tries += 1;
            match link.send(&frame[..frame_len]) {
                Ok(()) => {
                    sent_any = true;
                    stats.frames_sent += 1;
                }
                Err(error) => {
                    stats.send_failures += 1;
                    last_error = Some(error);
                }
            }
            let deadline = clock.now_ns().saturating_add(config.timeout_ns());
            loop {
                let answer = link.receive(|frame| {
                    stats.frames_received += 1;
                    open_answer(frame, mac, key, open_id)
                });
                match answer {
                    Some(Some(OpenAnswer::Granted { node_mac, region_size, first_request_id })) => {
                        if region_size < size_wanted
                            || !region_size.is_multiple_of(PAGE_SIZE as u64)
                        {
                            return Err(ConnectError::BadRegionGranted {
                                wanted: size_wanted,
                                granted: region_size,
                            });
                        }
                        log::info!(
                            "rmem: far region of {region_size} bytes on memory node {} \
                             ({tries} Open requests)",
                            MacDisplay(node_mac)
                        );
                        let engine = Engine::new(
                            key,
                            mac,
                            node_mac,
                            region_size,
                            first_request_id,
                            config,
                            stats,
                        );
                        return Ok(LinkTransport { link, clock, engine });
                    }
                    Some(Some(OpenAnswer::Refused { code, reason })) => {
                        return Err(ConnectError::Refused { code, reason });
                    }
                    Some(None) => stats.foreign_dropped += 1,
                    None if clock.now_ns() >= deadline => break,
                    // No `pause`: under TCG it costs tens of microseconds.
                    None => {}
                }
            }
            if tries > config.retries {
                return Err(match (sent_any, last_error) {
                    (false, Some(error)) => ConnectError::Link(error),
                    _ => ConnectError::LinkLost {
                        tries,
                        waited_ms: clock.now_ns().saturating_sub(first_sent) / 1_000_000,
                    },
                });
            }
            log::debug!("rmem: no answer to Open, sending it again ({tries} sent)");
        }
    }

    /// The memory node's MAC address, learnt at connect.
    pub fn node_mac(&self) -> [u8; 6] {
        self.engine.node_mac
    }

    /// The settings given to connect.
    pub fn config(&self) -> LinkConfig {
        self.engine.config
    }

    /// The link, e.g. for its own counters.
    pub fn link(&self) -> &L {
        &self.link
    }

    /// The link, mutably. Frames received through it directly are lost to the transport.
    pub fn link_mut(&mut self) -> &mut L {
        &mut self.link
    }

    fn post(
        &mut self,
        direction: Direction,
        remote: u64,
        buf: LocalBuf,
        tag: u64,
    ) -> Result<(), PostRejected> {
        let now = self.clock.now_ns();
        self.engine.post(direction, remote, buf, tag, now)?;
        self.engine.pump(&mut self.link);
        Ok(())
    }
}

impl<L: Link, C: Clock> Transport for LinkTransport<L, C> {
    fn post_read(&mut self, remote: u64, local: LocalBuf, tag: u64) -> Result<(), PostRejected> {
        self.post(Direction::Read, remote, local, tag)
    }

    fn post_write(&mut self, remote: u64, local: LocalBuf, tag: u64) -> Result<(), PostRejected> {
        self.post(Direction::Write, remote, local, tag)
    }

    fn poll(&mut self) -> Option<Completion> {
        if let Some(done) = self.engine.take_done() {
            return Some(done);
        }
        let now = self.clock.now_ns();
        let engine = &mut self.engine;
        for _ in 0..RX_BUDGET {
            if self.link.receive(|frame| engine.on_frame(frame, now)).is_none() {
                break;
            }
        }
        self.engine.expire(now);
        self.engine.pump(&mut self.link);
        self.engine.take_done()
    }

    fn in_flight(&self) -> usize {
        self.engine.slots.len() - self.engine.free.len()
    }

    fn capacity(&self) -> usize {
        self.engine.slots.len()
    }

    fn region_size(&self) -> u64 {
        self.engine.region_size
    }

    fn max_transfer_len(&self) -> usize {
        MAX_RUN_PAGES * PAGE_SIZE
    }

    fn stats(&self) -> TransportStats {
        self.engine.stats
    }
}

/// What a received frame means to a connect in progress.
enum OpenAnswer {
    Granted { node_mac: [u8; 6], region_size: u64, first_request_id: u64 },
    Refused { code: ErrorCode, reason: String<MAX_REASON_LEN> },
}

/// Recognises the answer to our Open; `None` for any other frame.
fn open_answer(frame: &[u8], mac: [u8; 6], key: RegionKey, open_id: u64) -> Option<OpenAnswer> {
    let (header, message) = decode_frame(frame).ok()?;
    if header.dst != mac || message.key != key || message.request_id != open_id {
        return None;
    }
    match message.body {
        Body::OpenReply { region_size, first_request_id } => {
            Some(OpenAnswer::Granted { node_mac: header.src, region_size, first_request_id })
        }
        Body::Error { code, reason, .. } => {
            Some(OpenAnswer::Refused { code, reason: reason_string(reason) })
        }
        _ => None,
    }
}

fn reason_string(reason: &str) -> String<MAX_REASON_LEN> {
    let mut out = String::new();
    // The decoder guarantees at most MAX_REASON_LEN bytes; anything longer is cut.
    let _ = out.push_str(crate::wire::truncate_reason(reason));
    out
}

/// Encoding into a buffer of `MAX_FRAME_LEN` bytes with a valid body cannot fail.
#[cold]
fn unreachable_encode(error: crate::wire::EncodeError) -> ! {
    panic!("rmem: encoding a far-memory frame failed: {error}")
}

/// Where a slot of the in-flight table is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SlotState {
    /// Unused; its index is on the free list.
    Free,
    /// Posted and not finished; its frames are being sent and answered.
    Active,
    /// Finished; its index is on the done queue until `poll` hands it out.
    Done,
}

/// One request of the in-flight table.
struct Slot {
    state: SlotState,
    request_id: u64,
    direction: Direction,
    remote: u64,
    tag: u64,
    /// Pages of the request, 1..=MAX_RUN_PAGES.
    pages: u32,
    buf: Option<LocalBuf>,
    /// Bit `i`: page `i` has arrived (read) or was acknowledged (write).
    arrived: u64,
    /// Bit `i`: page `i`'s frame is still to be sent in this attempt.
    unsent: u64,
    /// Sends of the request so far (1 + retries used).
    tries: u32,
    first_sent_ns: u64,
    /// When the request times out unless it makes progress first.
    deadline_ns: u64,
    status: Result<(), TransportError>,
}

impl Slot {
    const FREE: Slot = Slot {
        state: SlotState::Free,
        request_id: 0,
        direction: Direction::Read,
        remote: 0,
        tag: 0,
        pages: 0,
        buf: None,
        arrived: 0,
        unsent: 0,
        tries: 0,
        first_sent_ns: 0,
        deadline_ns: 0,
        status: Ok(()),
    };

    fn all_pages(&self) -> u64 {
        page_mask(self.pages)
    }

    /// The page index of `offset` in this request, if it is one of its pages.
    fn page_of(&self, offset: u64) -> Option<u32> {
        let delta = offset.checked_sub(self.remote)?;
        if !delta.is_multiple_of(PAGE_SIZE as u64) {
            return None;
        }
        let index = delta / PAGE_SIZE as u64;
        (index < u64::from(self.pages)).then_some(index as u32)
    }
}

/// Bits `0..pages` set.
fn page_mask(pages: u32) -> u64 {
    if pages >= 64 { u64::MAX } else { (1u64 << pages) - 1 }
}

/// Everything but the link and the clock, so that a frame lent by the link can be
/// handled while the link is borrowed.
struct Engine {
    key: RegionKey,
    mac: [u8; 6],
    node_mac: [u8; 6],
    region_size: u64,
    config: LinkConfig,
    next_request_id: u64,
    slots: Vec<Slot>,
    free: heapless::Vec<u16, MAX_QUEUE_DEPTH>,
    done: Deque<u16, MAX_QUEUE_DEPTH>,
    /// No active request times out before this (a lower bound; 0 = check now).
    earliest_deadline_ns: u64,
    /// Some active request has frames left to send.
    has_unsent: bool,
    tx: Vec<u8>,
    stats: TransportStats,
    /// Pages of active requests (answers or acknowledgements still to come).
    pages_in_flight: usize,
}

impl Engine {
    fn new(
        key: RegionKey,
        mac: [u8; 6],
        node_mac: [u8; 6],
        region_size: u64,
        first_request_id: u64,
        config: LinkConfig,
        stats: TransportStats,
    ) -> Self {
        let depth = config.queue_depth;
        let mut slots = Vec::with_capacity(depth);
        slots.resize_with(depth, || Slot::FREE);
        let mut free = heapless::Vec::new();
        // Handed out from the end: slot 0 first.
        for index in (0..depth as u16).rev() {
            let _ = free.push(index);
        }
        let tx = alloc::vec![0; MAX_FRAME_LEN];
        Engine {
            key,
            mac,
            node_mac,
            region_size,
            config,
            next_request_id: first_request_id,
            slots,
            free,
            done: Deque::new(),
            earliest_deadline_ns: u64::MAX,
            has_unsent: false,
            tx,
            stats,
            pages_in_flight: 0,
        }
    }

    fn post(
        &mut self,
        direction: Direction,
        remote: u64,
        buf: LocalBuf,
        tag: u64,
        now: u64,
    ) -> Result<(), PostRejected> {
        let max = MAX_RUN_PAGES * PAGE_SIZE;
        if let Err(error) = check_post(remote, buf.len(), self.region_size, max) {
            self.stats.bad_posts += 1;
            return Err(PostRejected { error, buf });
        }
        let pages = (buf.len() / PAGE_SIZE) as u32;
        let over_window = self.pages_in_flight > 0
            && self.pages_in_flight + pages as usize > self.config.window_pages.max(1);
        let index = match self.free.pop() {
            Some(index) if !over_window => index,
            popped => {
                if let Some(index) = popped {
                    let _ = self.free.push(index);
                }
                self.stats.queue_full += 1;
                let error = PostError::QueueFull { capacity: self.slots.len() };
                return Err(PostRejected { error, buf });
            }
        };
        self.pages_in_flight += pages as usize;
        let request_id = self.next_request_id;
        self.next_request_id = self.next_request_id.wrapping_add(1);
        let deadline_ns = now.saturating_add(self.config.timeout_ns());
        self.slots[usize::from(index)] = Slot {
            state: SlotState::Active,
            request_id,
            direction,
            remote,
            tag,
            pages,
            buf: Some(buf),
            arrived: 0,
            unsent: page_mask(pages),
            tries: 1,
            first_sent_ns: now,
            deadline_ns,
            status: Ok(()),
        };
        self.earliest_deadline_ns = self.earliest_deadline_ns.min(deadline_ns);
        self.has_unsent = true;
        match direction {
            Direction::Read => self.stats.reads_posted += 1,
            Direction::Write => self.stats.writes_posted += 1,
        }
        Ok(())
    }

    /// Sends what active requests have left to send, until the link is busy.
    fn pump(&mut self, link: &mut impl Link) {
        if !self.has_unsent {
            return;
        }
        let Engine { slots, tx, stats, key, mac, node_mac, .. } = self;
        for slot in slots.iter_mut() {
            while slot.state == SlotState::Active && slot.unsent != 0 {
                let first = slot.unsent.trailing_zeros();
                let (body_pages, body) = {
                    let offset = slot.remote + u64::from(first) * PAGE_SIZE as u64;
                    match slot.direction {
                        Direction::Read => {
                            // One ReadRequest for the contiguous run of pages to ask for.
                            let run = (slot.unsent >> first).trailing_ones();
                            let len = u64::from(run) * PAGE_SIZE as u64;
                            (run, Body::ReadRequest { offset, len })
                        }
                        Direction::Write => {
                            let start = first as usize * PAGE_SIZE;
                            let page = slot.buf.as_ref().and_then(|buf| {
                                buf.as_slice().get(start..start + PAGE_SIZE)?.try_into().ok()
                            });
                            // An active write always holds its buffer of `pages` pages.
                            let Some(data) = page else {
                                slot.unsent = 0;
                                break;
                            };
                            (1, Body::WriteRequest { offset, data })
                        }
                    }
                };
                let flags = if slot.tries > 1 { Flags::RETRANSMIT } else { Flags::NONE };
                let message = Message { request_id: slot.request_id, key: *key, flags, body };
                let len = match encode_frame(*node_mac, *mac, &message, tx) {
                    Ok(len) => len,
                    Err(error) => unreachable_encode(error),
                };
                match link.send(&tx[..len]) {
                    Ok(()) => {
                        stats.frames_sent += 1;
                        if slot.tries > 1 {
                            stats.retransmitted_frames += 1;
                        }
                    }
                    // Nothing was queued: keep the rest for the next poll.
                    Err(LinkError::Busy) => return,
                    // Lost like a dropped frame: the timeout resends it.
                    Err(error) => {
                        stats.send_failures += 1;
                        log::debug!("rmem: send failed: {error}");
                    }
                }
                slot.unsent &= !(page_mask(body_pages) << first);
            }
        }
        self.has_unsent = false;
    }

    /// Handles one received frame.
    fn on_frame(&mut self, frame: &[u8], now: u64) {
        self.stats.frames_received += 1;
        let (header, message) = match decode_frame(frame) {
            Ok(decoded) => decoded,
            Err(DecodeError::WrongEtherType { .. }) => {
                self.stats.foreign_dropped += 1;
                return;
            }
            Err(error) => {
                self.stats.malformed_dropped += 1;
                log::debug!("rmem: dropped a malformed frame: {error}");
                return;
            }
        };
        if header.dst != self.mac
            || header.src != self.node_mac
            || message.key != self.key
            || !message.body.op().is_reply()
        {
            self.stats.foreign_dropped += 1;
            return;
        }
        let Some(index) = self.active_slot(message.request_id) else {
            // An answer to a request that completed already (a duplicate, or one that
            // arrived after its request was resent and answered), or a late OpenReply.
            self.stats.duplicates_dropped += 1;
            return;
        };
        let timeout_ns = self.config.timeout_ns();
        let slot = &mut self.slots[index];
        match message.body {
            Body::ReadPage { offset, data } if slot.direction == Direction::Read => {
                let Some(page) = Self::new_page(slot, offset, &mut self.stats) else { return };
                let Some(buf) = slot.buf.as_mut() else { return };
                let start = page as usize * PAGE_SIZE;
                buf.as_mut_slice()[start..start + PAGE_SIZE].copy_from_slice(data);
                self.progress(index, 1 << page, now.saturating_add(timeout_ns));
            }
            Body::WriteAck { offset } if slot.direction == Direction::Write => {
                let Some(page) = Self::new_page(slot, offset, &mut self.stats) else { return };
                self.progress(index, 1 << page, now.saturating_add(timeout_ns));
            }
            Body::Error { code, reason, .. } => {
                self.stats.node_errors += 1;
                log::warn!(
                    "rmem: memory node error for request {}: {code}: {reason}",
                    message.request_id
                );
                self.complete(
                    index,
                    Err(TransportError::NodeError { code, reason: reason_string(reason) }),
                );
            }
            _ => self.stats.malformed_dropped += 1,
        }
    }

    /// The page of `slot` that an answer at `offset` is for, if it is one of the
    /// request's pages and has not been answered yet (else counted and dropped).
    fn new_page(slot: &Slot, offset: u64, stats: &mut TransportStats) -> Option<u32> {
        let Some(page) = slot.page_of(offset) else {
            stats.malformed_dropped += 1;
            return None;
        };
        if slot.arrived & (1u64 << page) != 0 {
            stats.duplicates_dropped += 1;
            return None;
        }
        Some(page)
    }

    fn active_slot(&self, request_id: u64) -> Option<usize> {
        self.slots
            .iter()
            .position(|slot| slot.state == SlotState::Active && slot.request_id == request_id)
    }

    /// Page `bit` of slot `index` is in: record it, push the deadline, finish if whole.
    fn progress(&mut self, index: usize, bit: u64, deadline_ns: u64) {
        let slot = &mut self.slots[index];
        slot.arrived |= bit;
        // No need to ask again for a page that came after all.
        slot.unsent &= !bit;
        slot.deadline_ns = deadline_ns;
        if slot.arrived == slot.all_pages() {
            self.complete(index, Ok(()));
        }
    }

    /// Resends requests that went a timeout without progress; fails those out of retries.
    fn expire(&mut self, now: u64) {
        if now < self.earliest_deadline_ns {
            return;
        }
        let timeout_ns = self.config.timeout_ns();
        let retries = self.config.retries;
        let mut earliest = u64::MAX;
        for index in 0..self.slots.len() {
            let slot = &mut self.slots[index];
            if slot.state != SlotState::Active {
                continue;
            }
            if now < slot.deadline_ns {
                earliest = earliest.min(slot.deadline_ns);
                continue;
            }
            self.stats.timeouts += 1;
            if slot.tries > retries {
                let tries = slot.tries;
                let waited_ms = now.saturating_sub(slot.first_sent_ns) / 1_000_000;
                self.stats.links_lost += 1;
                log::warn!(
                    "rmem: request {} ({:?} of {} pages at {:#x}) got no answer after {tries} \
                     tries over {waited_ms} ms",
                    slot.request_id,
                    slot.direction,
                    slot.pages,
                    slot.remote
                );
                self.complete(index, Err(TransportError::LinkLost { tries, waited_ms }));
                continue;
            }
            slot.tries += 1;
            slot.unsent = slot.all_pages() & !slot.arrived;
            // Exponential back-off (x2 per try, up to x64): a loss is retried quickly, a
            // congested or slow link is not flooded with copies.
            let backoff = timeout_ns.saturating_mul(1 << (slot.tries - 1).min(6));
            slot.deadline_ns = now.saturating_add(backoff);
            earliest = earliest.min(slot.deadline_ns);
            self.has_unsent = true;
        }
        self.earliest_deadline_ns = earliest;
    }

    fn complete(&mut self, index: usize, status: Result<(), TransportError>) {
        let slot = &mut self.slots[index];
        match &status {
            Ok(()) => {
                self.stats.completed_ok += 1;
                let bytes = u64::from(slot.pages) * PAGE_SIZE as u64;
                match slot.direction {
                    Direction::Read => self.stats.bytes_read += bytes,
                    Direction::Write => self.stats.bytes_written += bytes,
                }
            }
            Err(_) => self.stats.completed_err += 1,
        }
        slot.state = SlotState::Done;
        slot.unsent = 0;
        slot.status = status;
        self.pages_in_flight -= slot.pages as usize;
        // The done queue holds MAX_QUEUE_DEPTH >= slots: never full.
        let _ = self.done.push_back(index as u16);
    }

    fn take_done(&mut self) -> Option<Completion> {
        let index = self.done.pop_front()?;
        let slot = &mut self.slots[usize::from(index)];
        let buf = slot.buf.take()?;
        let status = core::mem::replace(&mut slot.status, Ok(()));
        slot.state = SlotState::Free;
        let completion = Completion {
            tag: slot.tag,
            direction: slot.direction,
            remote: slot.remote,
            buf,
            status,
        };
        let _ = self.free.push(index);
        Some(completion)
    }
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkTransport")
            .field("node", &MacDisplay(self.node_mac))
            .field("region_size", &self.region_size)
            .field("in_flight", &(self.slots.len() - self.free.len()))
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<L: Link, C: Clock> fmt::Debug for LinkTransport<L, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.engine, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_masks() {
        assert_eq!(page_mask(1), 1);
        assert_eq!(page_mask(3), 0b111);
        assert_eq!(page_mask(64), u64::MAX);
    }

    #[test]
    fn a_page_belongs_to_a_slot_only_inside_its_run() {
        let slot = Slot { remote: 0x10000, pages: 4, ..Slot::FREE };
        assert_eq!(slot.page_of(0x10000), Some(0));
        assert_eq!(slot.page_of(0x13000), Some(3));
        assert_eq!(slot.page_of(0x14000), None);
        assert_eq!(slot.page_of(0xf000), None);
        assert_eq!(slot.page_of(0x10800), None);
    }
}

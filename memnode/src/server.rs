//! [`Server`]: the memory node's serving logic, one frame in, reply frames out.
//!
//! This module owns the regions (one per region key), their pages and the rules of the
//! protocol on the node's side: Open creates or finds a region within the capacity; a
//! read or write must name a known key and lie inside its region, page aligned; a write
//! older than the page's newest is acknowledged but not applied. It must never touch a
//! socket (the binary does), never panic on a frame, and never change anything for a
//! request it refuses.
//!
//! Region memory is a sparse map of pages: a page never written costs nothing and reads
//! as zeros, so regions of many GiB are cheap until they are used.

use std::collections::HashMap;
use std::fmt;

use remora_rmem::wire::truncate_reason;
use remora_rmem::{
    BROADCAST_MAC, Body, DecodeError, ETHERTYPE_RMEM, ErrorCode, EthernetHeader, Flags,
    MAX_FRAME_LEN, MAX_RUN_PAGES, Message, PAGE_SIZE, RegionKey, encode_frame,
};

use crate::size::SizeDisplay;

/// The node's MAC address unless told otherwise: locally administered, "RMEM", 1.
pub const DEFAULT_NODE_MAC: [u8; 6] = [0x02, 0x52, 0x4d, 0x45, 0x4d, 0x01];

/// How many request ids a session gets before the next Open's ids start: Open replies
/// hand out bases that are multiples of this (see `remora_rmem::wire`).
pub const SESSION_ID_SPAN: u64 = 1 << 40;

const PAGE: u64 = PAGE_SIZE as u64;
const ZERO_PAGE: [u8; PAGE_SIZE] = [0; PAGE_SIZE];

/// What a [`Server`] is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// Bytes all regions together may take (`--capacity`): address space promised, not
    /// memory committed.
    pub capacity: u64,
    /// The node's MAC address: the source of every reply.
    pub mac: [u8; 6],
}

/// One image's far memory.
struct Region {
    size: u64,
    /// Pages written at least once, by page index.
    pages: HashMap<u64, Page>,
    /// The highest request id seen in a read or write.
    highest_request_id: u64,
    /// The first request id handed out by the latest Open.
    session_base: u64,
}

struct Page {
    data: Box<[u8; PAGE_SIZE]>,
    /// The id of the write that set `data`; older writes are ignored.
    written_by: u64,
}

impl Region {
    /// The first request id of a new session: above every id seen and every base given.
    fn next_session_base(&mut self) -> Option<u64> {
        let floor = self.highest_request_id.max(self.session_base);
        let base = (floor / SESSION_ID_SPAN).checked_add(1)?.checked_mul(SESSION_ID_SPAN)?;
        self.session_base = base;
        Some(base)
    }
}

/// Counters of a [`Server`] (and of the socket loop around it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Frames handed to the server.
    pub frames_in: u64,
    /// Reply frames produced.
    pub frames_out: u64,
    /// Frames lost on purpose by `--drop-rate`.
    pub dropped: u64,
    /// Replies the socket could not send.
    pub send_failed: u64,
    /// Open requests answered with a region.
    pub opens: u64,
    /// Regions created.
    pub regions_created: u64,
    /// Read requests served.
    pub reads: u64,
    /// Pages sent in answer to reads.
    pub pages_read: u64,
    /// Pages written.
    pub writes: u64,
    /// Bytes sent in answer to reads.
    pub bytes_read: u64,
    /// Bytes written.
    pub bytes_written: u64,
    /// Writes acknowledged but not applied: older than the page's newest write.
    pub stale_writes: u64,
    /// Requests flagged as resent by the image (it timed out waiting).
    pub retransmits_seen: u64,
    /// Pages holding memory (written at least once), all regions.
    pub pages_committed: u64,
    /// Error replies, by reason.
    pub errors: ErrorCounts,
    /// Frames dropped without a reply, by reason.
    pub bad_frames: BadFrameCounts,
}

/// Error replies sent, by code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ErrorCounts {
    /// [`ErrorCode::UNKNOWN_KEY`].
    pub unknown_key: u64,
    /// [`ErrorCode::OUT_OF_BOUNDS`].
    pub out_of_bounds: u64,
    /// [`ErrorCode::UNALIGNED`].
    pub unaligned: u64,
    /// [`ErrorCode::BAD_LENGTH`].
    pub bad_length: u64,
    /// [`ErrorCode::NO_CAPACITY`].
    pub no_capacity: u64,
    /// [`ErrorCode::SIZE_MISMATCH`].
    pub size_mismatch: u64,
    /// [`ErrorCode::INTERNAL`].
    pub internal: u64,
}

impl ErrorCounts {
    fn count(&mut self, code: ErrorCode) {
        let counter = match code {
            ErrorCode::UNKNOWN_KEY => &mut self.unknown_key,
            ErrorCode::OUT_OF_BOUNDS => &mut self.out_of_bounds,
            ErrorCode::UNALIGNED => &mut self.unaligned,
            ErrorCode::BAD_LENGTH => &mut self.bad_length,
            ErrorCode::NO_CAPACITY => &mut self.no_capacity,
            ErrorCode::SIZE_MISMATCH => &mut self.size_mismatch,
            _ => &mut self.internal,
        };
        *counter += 1;
    }

    /// All error replies.
    pub fn total(&self) -> u64 {
        self.unknown_key
            + self.out_of_bounds
            + self.unaligned
            + self.bad_length
            + self.no_capacity
            + self.size_mismatch
            + self.internal
    }
}

/// Frames dropped without a reply, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BadFrameCounts {
    /// Shorter than an Ethernet header or than the message they declare.
    pub truncated: u64,
    /// Not of EtherType 0x88B5.
    pub wrong_ethertype: u64,
    /// Addressed to another MAC.
    pub not_for_us: u64,
    /// Not starting with the magic "RMEM".
    pub bad_magic: u64,
    /// Of another protocol version.
    pub bad_version: u64,
    /// Of an unknown op.
    pub unknown_op: u64,
    /// Otherwise malformed (lengths, flags, reserved fields).
    pub malformed: u64,
    /// Answers (ops the node sends), not requests.
    pub not_a_request: u64,
}

impl BadFrameCounts {
    fn count(&mut self, error: &DecodeError) {
        let counter = match error {
            DecodeError::Truncated { .. } => &mut self.truncated,
            DecodeError::WrongEtherType { .. } => &mut self.wrong_ethertype,
            DecodeError::BadMagic { .. } => &mut self.bad_magic,
            DecodeError::UnsupportedVersion { .. } => &mut self.bad_version,
            DecodeError::UnknownOp { .. } => &mut self.unknown_op,
            _ => &mut self.malformed,
        };
        *counter += 1;
    }

    /// All frames dropped.
    pub fn total(&self) -> u64 {
        self.truncated
            + self.wrong_ethertype
            + self.not_for_us
            + self.bad_magic
            + self.bad_version
            + self.unknown_op
            + self.malformed
            + self.not_a_request
    }
}

impl fmt::Display for ServerStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "memnode: frames in {}, out {}, dropped {} (--drop-rate), send failed {}",
            self.frames_in, self.frames_out, self.dropped, self.send_failed
        )?;
        writeln!(
            f,
            "memnode: opens {}, regions created {}, pages committed {} ({})",
            self.opens,
            self.regions_created,
            self.pages_committed,
            SizeDisplay(self.pages_committed * PAGE)
        )?;
        writeln!(
            f,
            "memnode: reads {} ({} pages, {} bytes), writes {} ({} bytes), stale writes \
             ignored {}, retransmits seen {}",
            self.reads,
            self.pages_read,
            self.bytes_read,
            self.writes,
            self.bytes_written,
            self.stale_writes,
            self.retransmits_seen
        )?;
        let e = &self.errors;
        writeln!(
            f,
            "memnode: errors {}: unknown key {}, out of bounds {}, unaligned {}, bad length \
             {}, no capacity {}, size mismatch {}, internal {}",
            e.total(),
            e.unknown_key,
            e.out_of_bounds,
            e.unaligned,
            e.bad_length,
            e.no_capacity,
            e.size_mismatch,
            e.internal
        )?;
        let b = &self.bad_frames;
        write!(
            f,
            "memnode: bad frames {}: truncated {}, wrong ethertype {}, not for us {}, bad \
             magic {}, bad version {}, unknown op {}, malformed {}, not a request {}",
            b.total(),
            b.truncated,
            b.wrong_ethertype,
            b.not_for_us,
            b.bad_magic,
            b.bad_version,
            b.unknown_op,
            b.malformed,
            b.not_a_request
        )
    }
}

/// A refused request: the code and the reason to send back.
struct Refusal {
    code: ErrorCode,
    reason: String,
}

fn refuse(code: ErrorCode, reason: String) -> Refusal {
    Refusal { code, reason }
}

/// The memory node's serving logic. Feed it received frames with
/// [`Server::handle_frame`]; it answers through a callback, one frame per reply.
pub struct Server {
    store: Store,
    /// Where replies are built.
    tx: Vec<u8>,
}

/// The regions and the counters: everything but the reply buffer.
struct Store {
    config: ServerConfig,
    regions: HashMap<RegionKey, Region>,
    /// Bytes promised to regions.
    reserved: u64,
    stats: ServerStats,
}

impl Server {
    /// A node with no regions yet.
    pub fn new(config: ServerConfig) -> Self {
        let store =
            Store { config, regions: HashMap::new(), reserved: 0, stats: ServerStats::default() };
        Server { store, tx: vec![0; MAX_FRAME_LEN] }
    }

    /// The configuration given to [`Server::new`].
    pub fn config(&self) -> ServerConfig {
        self.store.config
    }

    /// Counters so far.
    pub fn stats(&self) -> &ServerStats {
        &self.store.stats
    }

    /// Regions open.
    pub fn region_count(&self) -> usize {
        self.store.regions.len()
    }

    /// Bytes of capacity promised to regions.
    pub fn reserved(&self) -> u64 {
        self.store.reserved
    }

    /// Counts a received frame that the socket loop dropped on purpose (`--drop-rate`).
    pub fn record_dropped(&mut self) {
        self.store.stats.frames_in += 1;
        self.store.stats.dropped += 1;
    }

    /// Counts a reply the socket could not send.
    pub fn record_send_failure(&mut self) {
        self.store.stats.send_failed += 1;
    }

    /// Handles one received Ethernet frame; calls `reply` once per answer frame (none for
    /// a frame that is not a well-formed request for this node, one per page for a read).
    pub fn handle_frame(&mut self, frame: &[u8], mut reply: impl FnMut(&[u8])) {
        let store = &mut self.store;
        store.stats.frames_in += 1;
        let (ethernet, body) = match EthernetHeader::parse(frame) {
            Ok(parsed) => parsed,
            Err(error) => return store.stats.bad_frames.count(&error),
        };
        if ethernet.ethertype != ETHERTYPE_RMEM {
            store.stats.bad_frames.wrong_ethertype += 1;
            return;
        }
        if ethernet.dst != store.config.mac && ethernet.dst != BROADCAST_MAC {
            store.stats.bad_frames.not_for_us += 1;
            return;
        }
        let request = match Message::decode(body) {
            Ok(message) => message,
            Err(error) => return store.stats.bad_frames.count(&error),
        };
        if request.body.op().is_reply() {
            store.stats.bad_frames.not_a_request += 1;
            return;
        }
        if request.flags.contains(Flags::RETRANSMIT) {
            store.stats.retransmits_seen += 1;
        }
        let mut out = Replier {
            tx: &mut self.tx,
            node_mac: store.config.mac,
            image_mac: ethernet.src,
            request_id: request.request_id,
            key: request.key,
            sent: 0,
            reply: &mut reply,
        };
        let served = match request.body {
            Body::OpenRequest { size_wanted } => store.open(request.key, size_wanted, &mut out),
            Body::ReadRequest { offset, len } => store.read(&request, offset, len, &mut out),
            Body::WriteRequest { offset, data } => store.write(&request, offset, data, &mut out),
            // Replies were filtered out above.
            _ => Ok(()),
        };
        if let Err(refusal) = served {
            store.stats.errors.count(refusal.code);
            let (offset, len) = match request.body {
                Body::ReadRequest { offset, len } => (offset, len),
                Body::WriteRequest { offset, .. } => (offset, PAGE),
                Body::OpenRequest { size_wanted } => (0, size_wanted),
                _ => (0, 0),
            };
            out.send(Body::Error {
                code: refusal.code,
                offset,
                len,
                reason: truncate_reason(&refusal.reason),
            });
        }
        store.stats.frames_out += out.sent;
    }
}

impl Store {
    fn open(
        &mut self,
        key: RegionKey,
        size_wanted: u64,
        out: &mut Replier<'_, impl FnMut(&[u8])>,
    ) -> Result<(), Refusal> {
        if let Some(region) = self.regions.get_mut(&key) {
            if region.size != size_wanted {
                return Err(refuse(
                    ErrorCode::SIZE_MISMATCH,
                    format!(
                        "region exists with {}, {} asked; use another key or restart memnode",
                        SizeDisplay(region.size),
                        SizeDisplay(size_wanted)
                    ),
                ));
            }
            let first_request_id = region.next_session_base().ok_or_else(|| {
                refuse(ErrorCode::INTERNAL, "request ids of this key are used up".into())
            })?;
            self.stats.opens += 1;
            out.send(Body::OpenReply { region_size: region.size, first_request_id });
            return Ok(());
        }
        if size_wanted == 0 {
            return Err(refuse(ErrorCode::BAD_LENGTH, "a region of 0 bytes was asked".into()));
        }
        if !size_wanted.is_multiple_of(PAGE) {
            return Err(refuse(
                ErrorCode::UNALIGNED,
                format!("region size {size_wanted} is not whole pages of {PAGE_SIZE} bytes"),
            ));
        }
        let capacity = self.config.capacity;
        let left = capacity.saturating_sub(self.reserved);
        if size_wanted > left {
            return Err(refuse(
                ErrorCode::NO_CAPACITY,
                format!(
                    "{} asked, {} of {} left; raise memnode --capacity",
                    SizeDisplay(size_wanted),
                    SizeDisplay(left),
                    SizeDisplay(capacity)
                ),
            ));
        }
        let mut region = Region {
            size: size_wanted,
            pages: HashMap::new(),
            highest_request_id: 0,
            session_base: 0,
        };
        let first_request_id = region.next_session_base().unwrap_or(SESSION_ID_SPAN);
        self.regions.insert(key, region);
        self.reserved += size_wanted;
        self.stats.regions_created += 1;
        self.stats.opens += 1;
        out.send(Body::OpenReply { region_size: size_wanted, first_request_id });
        Ok(())
    }

    /// The region of `key`, with `offset..offset + len` checked to be whole pages inside it.
    fn region_for(
        &mut self,
        key: &RegionKey,
        offset: u64,
        len: u64,
    ) -> Result<&mut Region, Refusal> {
        let region = self.regions.get_mut(key).ok_or_else(|| {
            refuse(ErrorCode::UNKNOWN_KEY, "no region has this key; send Open first".into())
        })?;
        if !offset.is_multiple_of(PAGE) || !len.is_multiple_of(PAGE) {
            return Err(refuse(
                ErrorCode::UNALIGNED,
                format!("offset {offset:#x} length {len:#x}: not whole pages of {PAGE_SIZE}"),
            ));
        }
        match offset.checked_add(len) {
            Some(end) if end <= region.size => Ok(region),
            _ => Err(refuse(
                ErrorCode::OUT_OF_BOUNDS,
                format!("{offset:#x}+{len:#x} is beyond the region's {:#x} bytes", region.size),
            )),
        }
    }

    fn read(
        &mut self,
        request: &Message<'_>,
        offset: u64,
        len: u64,
        out: &mut Replier<'_, impl FnMut(&[u8])>,
    ) -> Result<(), Refusal> {
        if len == 0 || len > (MAX_RUN_PAGES * PAGE_SIZE) as u64 {
            return Err(refuse(
                ErrorCode::BAD_LENGTH,
                format!("read of {len} bytes: 1 to {MAX_RUN_PAGES} pages allowed"),
            ));
        }
        let region = self.region_for(&request.key, offset, len)?;
        region.highest_request_id = region.highest_request_id.max(request.request_id);
        for page_offset in (offset..offset + len).step_by(PAGE_SIZE) {
            let data =
                region.pages.get(&(page_offset / PAGE)).map_or(&ZERO_PAGE, |page| &*page.data);
            out.send(Body::ReadPage { offset: page_offset, data });
        }
        let pages = len / PAGE;
        self.stats.reads += 1;
        self.stats.pages_read += pages;
        self.stats.bytes_read += len;
        Ok(())
    }

    fn write(
        &mut self,
        request: &Message<'_>,
        offset: u64,
        data: &[u8; PAGE_SIZE],
        out: &mut Replier<'_, impl FnMut(&[u8])>,
    ) -> Result<(), Refusal> {
        let region = self.region_for(&request.key, offset, PAGE)?;
        let id = request.request_id;
        region.highest_request_id = region.highest_request_id.max(id);
        let mut committed = 0;
        let mut stale = 0;
        match region.pages.get_mut(&(offset / PAGE)) {
            Some(page) if id < page.written_by => stale = 1,
            Some(page) => {
                page.data.copy_from_slice(data);
                page.written_by = id;
            }
            None => {
                region.pages.insert(offset / PAGE, Page { data: Box::new(*data), written_by: id });
                committed = 1;
            }
        }
        self.stats.pages_committed += committed;
        self.stats.stale_writes += stale;
        self.stats.writes += 1;
        self.stats.bytes_written += PAGE;
        out.send(Body::WriteAck { offset });
        Ok(())
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("capacity", &self.store.config.capacity)
            .field("regions", &self.store.regions.len())
            .field("reserved", &self.store.reserved)
            .finish_non_exhaustive()
    }
}

/// Builds and hands out the replies to one request.
struct Replier<'a, F: FnMut(&[u8])> {
    tx: &'a mut [u8],
    node_mac: [u8; 6],
    image_mac: [u8; 6],
    request_id: u64,
    key: RegionKey,
    /// Frames handed to `reply`.
    sent: u64,
    reply: &'a mut F,
}

impl<F: FnMut(&[u8])> Replier<'_, F> {
    fn send(&mut self, body: Body<'_>) {
        let message = Message::new(self.request_id, self.key, body);
        // The buffer is MAX_FRAME_LEN and reasons are truncated: encoding cannot fail.
        if let Ok(len) = encode_frame(self.image_mac, self.node_mac, &message, self.tx) {
            self.sent += 1;
            (self.reply)(&self.tx[..len]);
        }
    }
}

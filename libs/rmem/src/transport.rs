//! The far-memory transport interface: what the pager and the evictor ask of whichever
//! transport the image chose (`rmem.transport`: virtio-net frames to a memnode through
//! [`crate::LinkTransport`], or RDMA through the mlx5 driver).
//!
//! It is shaped like RDMA verbs: post a read or write of whole pages between the far
//! region and a [`LocalBuf`], then poll for completions. Posting never waits; polling
//! never blocks. At most [`Transport::capacity`] requests are in flight; a post beyond
//! that is refused with [`PostError::QueueFull`] and changes nothing.
//!
//! This module owns the trait, its error values and its counters. It holds no state and
//! never touches memory or a device.

use core::fmt;

use heapless::String;

use crate::LocalBuf;
use crate::wire::{ErrorCode, MAX_REASON_LEN, PAGE_SIZE};

/// Moves pages between local memory and the far region on the memory node.
///
/// # Life of a request
/// 1. [`Transport::post_read`] or [`Transport::post_write`] takes a [`LocalBuf`] and a
///    `tag` of the caller's choosing (the pager uses the page's address). From then on the
///    transport owns the buffer.
/// 2. The caller calls [`Transport::poll`] until it returns the [`Completion`] with that
///    tag. The completion hands the buffer back and says whether the request succeeded.
///    Completions come in the order requests finish, not the order they were posted.
///
/// Every request completes exactly once, with success or an error (the link transport
/// gives up after its retry budget): a caller that polls never hangs.
pub trait Transport {
    /// Starts reading `local.len()` bytes (whole pages, at most
    /// [`Transport::max_transfer_len`]) at byte `remote` of the far region into `local`.
    /// On refusal the buffer comes back in the error and nothing was sent.
    fn post_read(&mut self, remote: u64, local: LocalBuf, tag: u64) -> Result<(), PostRejected>;

    /// Starts writing `local` (whole pages, at most [`Transport::max_transfer_len`]) to
    /// byte `remote` of the far region. The caller must not change `local` before the
    /// completion (it cannot: the transport holds the buffer).
    fn post_write(&mut self, remote: u64, local: LocalBuf, tag: u64) -> Result<(), PostRejected>;

    /// Makes progress (receives answers, resends what timed out) and returns one finished
    /// request, if any. Never blocks; call it in a loop to wait.
    fn poll(&mut self) -> Option<Completion>;

    /// Requests posted whose completion has not been returned by `poll` yet.
    fn in_flight(&self) -> usize;

    /// Most requests in flight at once; posting beyond is [`PostError::QueueFull`].
    fn capacity(&self) -> usize;

    /// Bytes of the far region; every request must lie inside `0..region_size()`.
    fn region_size(&self) -> u64;

    /// Longest read or write one post may ask for, in bytes (a multiple of
    /// [`PAGE_SIZE`]).
    fn max_transfer_len(&self) -> usize;

    /// Counters since the transport was created.
    fn stats(&self) -> TransportStats;

    /// True when a post would be refused with [`PostError::QueueFull`].
    fn is_full(&self) -> bool {
        self.in_flight() >= self.capacity()
    }
}

/// A boxed transport is a transport: the image hands its one transport around as
/// `Box<dyn Transport + Send>` whatever kind it is.
impl<T: Transport + ?Sized> Transport for alloc::boxed::Box<T> {
    fn post_read(&mut self, remote: u64, local: LocalBuf, tag: u64) -> Result<(), PostRejected> {
        (**self).post_read(remote, local, tag)
    }
    fn post_write(&mut self, remote: u64, local: LocalBuf, tag: u64) -> Result<(), PostRejected> {
        (**self).post_write(remote, local, tag)
    }
    fn poll(&mut self) -> Option<Completion> {
        (**self).poll()
    }
    fn in_flight(&self) -> usize {
        (**self).in_flight()
    }
    fn capacity(&self) -> usize {
        (**self).capacity()
    }
    fn region_size(&self) -> u64 {
        (**self).region_size()
    }
    fn max_transfer_len(&self) -> usize {
        (**self).max_transfer_len()
    }
    fn stats(&self) -> TransportStats {
        (**self).stats()
    }
}

/// Which way a request moves data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Far region to local buffer.
    Read,
    /// Local buffer to far region.
    Write,
}

/// A finished request.
#[derive(Debug)]
pub struct Completion {
    /// The tag given at post time.
    pub tag: u64,
    /// Read or write.
    pub direction: Direction,
    /// The far-region offset given at post time.
    pub remote: u64,
    /// The buffer given at post time, back to the caller. After a successful read it
    /// holds the pages; after a failed read its contents are unspecified.
    pub buf: LocalBuf,
    /// Whether the request succeeded.
    pub status: Result<(), TransportError>,
}

/// Why a request failed after it was posted. Nothing here is retried by the caller: the
/// transport has already spent its retry budget, or the node refused outright.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransportError {
    /// The memory node did not answer any of `tries` attempts, over `waited_ms`
    /// milliseconds from the first send to giving up.
    LinkLost {
        /// Sends of the request (1 + retries).
        tries: u32,
        /// Milliseconds between the first send and giving up.
        waited_ms: u64,
    },
    /// The memory node refused the request and changed nothing.
    NodeError {
        /// Why, as a code.
        code: ErrorCode,
        /// Why, in the node's words.
        reason: String<MAX_REASON_LEN>,
    },
    /// The transport's device reported a failure (for transports with hardware queues:
    /// a completion-queue error syndrome).
    Device {
        /// The device's status code.
        code: u32,
        /// What that code means.
        what: &'static str,
    },
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportError::LinkLost { tries, waited_ms } => write!(
                f,
                "link lost: no answer from the memory node after {tries} tries over \
                 {waited_ms} ms; check that memnode is running and reachable (its socket or \
                 address), or raise rmem.timeout_us / rmem.retries for a slow link"
            ),
            TransportError::NodeError { code, reason } => {
                write!(f, "the memory node refused the request: {code}: {reason}")?;
                if *code == ErrorCode::UNKNOWN_KEY {
                    write!(f, " (was memnode restarted? its regions do not survive a restart)")?;
                }
                Ok(())
            }
            TransportError::Device { code, what } => {
                write!(f, "far-memory device error {code:#x}: {what}")
            }
        }
    }
}

/// Why a post was refused. Nothing was sent and the transport is unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PostError {
    /// [`Transport::capacity`] requests are in flight already; poll, then post again.
    QueueFull {
        /// The capacity.
        capacity: usize,
    },
    /// The length is zero, not a multiple of [`PAGE_SIZE`], or longer than
    /// [`Transport::max_transfer_len`].
    BadLength {
        /// The buffer's length.
        len: usize,
        /// The longest allowed.
        max: usize,
    },
    /// The remote offset is not a multiple of [`PAGE_SIZE`].
    Unaligned {
        /// The offset given.
        remote: u64,
    },
    /// The request reaches beyond the far region.
    OutOfRegion {
        /// The offset given.
        remote: u64,
        /// The length given.
        len: usize,
        /// The region's size.
        region_size: u64,
    },
}

impl fmt::Display for PostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PostError::QueueFull { capacity } => write!(
                f,
                "far-memory queue full: {capacity} requests in flight; poll completions \
                 first (or raise rmem.queue_depth)"
            ),
            PostError::BadLength { len, max } => write!(
                f,
                "far-memory transfer of {len} bytes: must be whole pages of {PAGE_SIZE} bytes, \
                 between one page and {max} bytes"
            ),
            PostError::Unaligned { remote } => write!(
                f,
                "far-memory offset {remote:#x} is not a multiple of the page size {PAGE_SIZE}"
            ),
            PostError::OutOfRegion { remote, len, region_size } => write!(
                f,
                "far-memory transfer {remote:#x}+{len:#x} reaches beyond the region of \
                 {region_size:#x} bytes (rmem.region_size)"
            ),
        }
    }
}

/// A refused post: why, and the buffer back.
#[derive(Debug)]
pub struct PostRejected {
    /// Why.
    pub error: PostError,
    /// The buffer given to the post, untouched.
    pub buf: LocalBuf,
}

impl fmt::Display for PostRejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

/// Checks a post against the rules every transport shares: whole pages, page-aligned
/// offset, at most `max_len` bytes, inside the region. Transports call this first.
pub fn check_post(
    remote: u64,
    len: usize,
    region_size: u64,
    max_len: usize,
) -> Result<(), PostError> {
    if len == 0 || !len.is_multiple_of(PAGE_SIZE) || len > max_len {
        return Err(PostError::BadLength { len, max: max_len });
    }
    if !remote.is_multiple_of(PAGE_SIZE as u64) {
        return Err(PostError::Unaligned { remote });
    }
    match remote.checked_add(len as u64) {
        Some(end) if end <= region_size => Ok(()),
        _ => Err(PostError::OutOfRegion { remote, len, region_size }),
    }
}

/// Counters of a transport. Fields a transport has no use for stay zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Reads accepted by `post_read`.
    pub reads_posted: u64,
    /// Writes accepted by `post_write`.
    pub writes_posted: u64,
    /// Bytes of reads that completed successfully.
    pub bytes_read: u64,
    /// Bytes of writes that completed successfully.
    pub bytes_written: u64,
    /// Requests that completed successfully.
    pub completed_ok: u64,
    /// Requests that completed with an error (any [`TransportError`]).
    pub completed_err: u64,
    /// Posts refused with [`PostError::QueueFull`].
    pub queue_full: u64,
    /// Posts refused for another [`PostError`].
    pub bad_posts: u64,
    /// Times a request went without progress for the timeout.
    pub timeouts: u64,
    /// Frames sent again after a timeout.
    pub retransmitted_frames: u64,
    /// Requests that ran out of retries ([`TransportError::LinkLost`]).
    pub links_lost: u64,
    /// Error answers from the memory node ([`TransportError::NodeError`]).
    pub node_errors: u64,
    /// Answers dropped as duplicates: a page that had arrived already, or an answer for a
    /// request that is no longer in flight (late).
    pub duplicates_dropped: u64,
    /// Frames of ours that did not decode, or made no sense (a page outside the request).
    pub malformed_dropped: u64,
    /// Frames that were not for us (other EtherType, MAC or region key).
    pub foreign_dropped: u64,
    /// Frames the link refused to send (each is resent after the timeout).
    pub send_failures: u64,
    /// Frames sent.
    pub frames_sent: u64,
    /// Frames received (all, before any filtering).
    pub frames_received: u64,
}

impl fmt::Display for TransportStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "reads {} ({} bytes), writes {} ({} bytes), ok {}, errors {} (link lost {}, node \
             {}), timeouts {}, retransmitted frames {}, queue full {}, bad posts {}, \
             duplicates dropped {}, malformed {}, foreign {}, send failures {}, frames \
             sent {}, received {}",
            self.reads_posted,
            self.bytes_read,
            self.writes_posted,
            self.bytes_written,
            self.completed_ok,
            self.completed_err,
            self.links_lost,
            self.node_errors,
            self.timeouts,
            self.retransmitted_frames,
            self.queue_full,
            self.bad_posts,
            self.duplicates_dropped,
            self.malformed_dropped,
            self.foreign_dropped,
            self.send_failures,
            self.frames_sent,
            self.frames_received
        )
    }
}

//! What [`crate::LinkTransport`] needs from the machine: a datagram [`Link`] that carries
//! whole Ethernet frames (a virtio-net device in the image, an in-memory queue in tests)
//! and a monotonic [`Clock`] for timeouts.
//!
//! This module owns only these two traits and the link's error. Implementations live
//! where the hardware is (the kernel's virtio glue); nothing here touches a device.

use core::fmt;

/// Sends and receives whole Ethernet frames, one at a time, without blocking.
///
/// Frames may be lost, duplicated or reordered: the transport copes. They must not be
/// corrupted silently (Ethernet's FCS and QEMU's sockets see to that) and the link must
/// carry frames of [`crate::MAX_FRAME_LEN`] bytes.
///
/// For virtio-net (the `virtio-drivers` crate): `send` copies into a transmit buffer and
/// queues it; `receive` takes a filled receive buffer, hands its packet (without the
/// virtio-net header) to `handle`, then recycles the buffer. Receive buffers must be at
/// least [`crate::MAX_FRAME_LEN`] bytes.
pub trait Link {
    /// This end's MAC address (the source of every frame the transport sends).
    fn mac(&self) -> [u8; 6];

    /// Queues `frame` (Ethernet header included, no FCS) for sending. Returns without
    /// waiting for it to leave. [`LinkError::Busy`] means "nothing was queued, try
    /// later"; the transport will.
    fn send(&mut self, frame: &[u8]) -> Result<(), LinkError>;

    /// If a frame has arrived, lends it to `handle` (no copy) and returns what `handle`
    /// returned; otherwise returns `None` at once.
    fn receive<R>(&mut self, handle: impl FnOnce(&[u8]) -> R) -> Option<R>;
}

/// Why a link did not send a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkError {
    /// The transmit queue is full: nothing was queued; try again after some polling.
    Busy,
    /// The frame is longer than the link carries.
    TooLong {
        /// The frame's length.
        len: usize,
        /// The longest the link carries.
        max: usize,
    },
    /// The device failed; `what` says how.
    Failed {
        /// The device's description of the failure.
        what: &'static str,
    },
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            LinkError::Busy => write!(f, "link transmit queue full"),
            LinkError::TooLong { len, max } => write!(
                f,
                "frame of {len} bytes is longer than the link's {max} (far-memory frames \
                 need {} bytes: give the NIC larger buffers)",
                crate::MAX_FRAME_LEN
            ),
            LinkError::Failed { what } => write!(f, "link device failed: {what}"),
        }
    }
}

/// A monotonic clock in nanoseconds (any origin). The transport reads it once per
/// [`crate::Transport::poll`] and per post, to time requests out.
pub trait Clock {
    /// Nanoseconds since an arbitrary origin; never goes backwards.
    fn now_ns(&self) -> u64;
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now_ns(&self) -> u64 {
        (**self).now_ns()
    }
}

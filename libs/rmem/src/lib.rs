//! Far memory for Remora images: the transport interface the pager posts page reads and
//! writes to, the wire protocol spoken with the memory node, and the transport that speaks
//! it over a plain datagram link.
//!
//! | module | owns | must never |
//! |---|---|---|
//! | [`transport`] | the [`Transport`] trait (post read/write, poll completions, like RDMA verbs), its errors and counters | hold state, touch memory or a device |
//! | `local_buf` | [`LocalBuf`], memory lent to a transport; the crate's only `unsafe` | decide anything about the region or the wire |
//! | [`wire`] | the message layout and its codec, shared with `memnode` | allocate, panic on input, decide policy |
//! | [`ethernet`] | the Ethernet framing (EtherType 0x88B5) around each message | look inside a message |
//! | [`link`] | what a link transport needs from the machine: [`Link`] and [`Clock`] | touch hardware (implementations live in the image) |
//! | [`handoff`] | the slot where the connected transport waits for its user | use the transport |
//! | `link_transport` | [`LinkTransport`]: request ids, in-flight table, timeouts and retries, reassembly | allocate after connect, block, let a request hang |
//!
//! # Use
//! ```ignore
//! let mut far = LinkTransport::connect(nic, clock, key, config::rmem::REGION_SIZE, LinkConfig {
//!     queue_depth: config::rmem::QUEUE_DEPTH,
//!     timeout_us: config::rmem::TIMEOUT_US,
//!     retries: config::rmem::RETRIES,
//! })?;
//! // SAFETY: `frame` is a free 4 KiB frame the pager owns; it is untouched until completion.
//! let buf = unsafe { LocalBuf::new(frame_virt, frame_phys, PAGE_SIZE) };
//! far.post_read(page_offset, buf, page_offset)?;
//! let done = loop { if let Some(c) = far.poll() { break c; } };
//! done.status?; // a TransportError says what went wrong (link lost, node refused)
//! ```
//!
//! Nothing here reads the configuration: the image's glue passes `rmem.queue_depth`,
//! `rmem.timeout_us`, `rmem.retries` and `rmem.region_size` in (see `Config.toml`).
//! Everything is testable on the host; `memnode` serves the other end.

#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub mod ethernet;
pub mod handoff;
pub mod link;
mod link_transport;
mod local_buf;
pub mod transport;
pub mod wire;

pub use ethernet::{
    BROADCAST_MAC, ETHERNET_HEADER_LEN, ETHERTYPE_RMEM, EthernetHeader, MacDisplay, decode_frame,
    encode_frame,
};
pub use link::{Clock, Link, LinkError};
pub use link_transport::{ConnectError, LinkConfig, LinkTransport, MAX_QUEUE_DEPTH};
pub use local_buf::LocalBuf;
pub use transport::{
    Completion, Direction, PostError, PostRejected, Transport, TransportError, TransportStats,
    check_post,
};
pub use wire::{
    Body, DecodeError, EncodeError, ErrorCode, Flags, MAX_FRAME_LEN, MAX_REASON_LEN, MAX_RUN_PAGES,
    Message, Op, PAGE_SIZE, RegionKey,
};

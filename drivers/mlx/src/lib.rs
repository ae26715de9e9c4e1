//! The mlx5 driver: RDMA READ and WRITE of pages over one reliable-connected queue pair
//! on a ConnectX-4 or later NIC (RoCE v2), as a far-memory transport
//! ([`remora_rmem::Transport`]), so the pager uses it unchanged. The image's
//! configuration chooses it with `rmem.transport = "mlx5"`.
//!
//! | module | owns | must never |
//! |---|---|---|
//! | [`hw`] | the hardware layouts, one file per object, with compile-time size checks | read or write a device, decide anything |
//! | `be` | big-endian fields and bit ranges | know about the device |
//! | [`ids`] | device handles as types (`Qpn`, `Cqn`, `Pdn`, `Lkey`, `Rkey`...), the PCI ids | talk to a device |
//! | [`platform`] | what the driver needs from the machine: [`Bar`], [`Dma`], [`Clock`] | touch hardware (the image and the model implement it) |
//! | `command` | the command queue: entries, mailbox chains, tokens, doorbell, status decoding | wait, or read events |
//! | [`device`] | [`Device`]: bring-up from ENABLE_HCA to a GID entry, page requests answered on the reserved slot, CQ/QP creation, teardown | post work requests |
//! | `queues` | the rings: event queue, completion queue (owner bit), send queue (doorbell order) | issue commands |
//! | [`transport`] | [`Mlx5Transport`]: connect (QP, exchange, RST→INIT→RTR→RTS), post READ/WRITE, map completions to requests | block, retry, touch a buffer's memory |
//! | [`exchange`] | the connection message exchanged with the memory node and the [`ControlLink`] that carries it | touch the RDMA device |
//! | [`error`] | [`Error`] and [`CmdError`]: every failure names its opcode and syndrome | decide |
//! | `model` (feature `model`, and in tests) | a simulated ConnectX and memory node that decode everything with their own decoders | share code with the driver's encoders |
//!
//! # Use
//! ```ignore
//! let dev = Device::bring_up(bar, dma, clock, DeviceConfig { ip, ..Default::default() })?;
//! let far = Mlx5Transport::connect(dev, QpConfig::default(), RegionRequest { key, size }, &mut control)?;
//! remora_rmem::handoff::install(Box::new(far));
//! ```
//!
//! The driver polls (no interrupts), reaches the device only through the [`platform`]
//! traits and contains no `unsafe` code: the image's glue maps BAR0 and hands out DMA
//! pages, and the host tests run the same code against [`model`]. It has been tested
//! against that model only, not yet on hardware.

#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

mod be;
mod command;
pub mod device;
pub mod error;
pub mod exchange;
pub mod hw;
pub mod ids;
#[cfg(any(test, feature = "model"))]
pub mod model;
pub mod platform;
mod queues;
pub mod transport;

#[cfg(test)]
mod tests;

pub use be::{Be16, Be32, Be64};
pub use device::{Device, DeviceConfig, DeviceInfo, DeviceStats, ipv4_gid};
pub use error::{CmdError, CmdFailure, Error};
pub use exchange::{ConnectReply, ConnectRequest, ControlLink, ExchangeError, FrameControlLink};
pub use ids::{
    Cqn, Eqn, FunctionId, Lkey, PCI_DEVICES, PCI_VENDOR_MELLANOX, Pdn, Psn, Qpn, Rkey, UarIndex,
    supported_device,
};
pub use platform::{Bar, Clock, Dma, DmaError, PAGE_SIZE};
pub use transport::{Mlx5Stats, Mlx5Transport, Peer, QpConfig, RegionRequest};

//! The Remora memory node: a Linux program that keeps the far memory of compute images
//! and serves its pages over the wire protocol of `remora_rmem::wire`.
//!
//! | module | owns | must never |
//! |---|---|---|
//! | [`server`] | [`Server`]: regions by key, their pages, the protocol rules; one frame in, replies out | touch a socket, panic on a frame, change anything for a refused request |
//! | [`size`] | parsing and printing sizes (`4G`) | — |
//! | [`drop_rng`] | [`DropRng`], the seeded coin that loses frames for `--drop-rate` | be used for anything secret |
//!
//! The binary (`src/main.rs`) owns the sockets, the command line and the signals; the
//! serving logic is here so that it is tested without sockets, and reused by
//! `remora-rmem`'s tests as the far end of a simulated link.

pub mod drop_rng;
#[cfg(feature = "rdma")]
pub mod rdma;
pub mod server;
pub mod size;

pub use drop_rng::DropRng;
pub use server::{DEFAULT_NODE_MAC, SESSION_ID_SPAN, Server, ServerConfig, ServerStats};
pub use size::{SizeDisplay, parse_size};

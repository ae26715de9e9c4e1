//! A Redis-compatible server (RESP2) whose data is laid out like Redis's own, for Remora's
//! far memory; the same crate builds as an ordinary Linux program.
//!
//! The core is sans I/O and `no_std` (`alloc` only):
//!
//! | module | owns |
//! |---|---|
//! | [`resp`] | the incremental RESP2 request parser (multibulk and inline), its limits, Redis's protocol errors |
//! | [`reply`] | the reply encoder and the error strings shared by commands |
//! | [`layout`] | the bytes of values in (far) memory: strings `[len][bytes]`, lists as chains of packed nodes; the accessors a prefetcher reads |
//! | [`db`] | the keyspace (hashbrown), expiry (lazy and swept), memory accounting |
//! | `commands` | the command table, Redis's checks before a command (unknown, arity), and every command |
//! | [`connection`] | one client: input buffer, parser, output buffer, closing; [`Connection::feed`] |
//! | [`observer`] | the hook of an app-level prefetch policy ([`Observer`]) |
//! | [`info`] | the counters and the INFO text, with the caller's `# Remora` section |
//! | [`config`] | [`ServerConfig`] |
//! | [`event_loop`] | the single-threaded server loop over a [`Network`](event_loop::Network) of non-blocking sockets |
//! | [`glob`], [`num`] | Redis's glob matching and strict integers |
//!
//! Around it, one adapter per build: `remora_main` (feature `remora`, the default: the
//! image's sockets from `libs/net`) and `linux` (feature `std`: mio sockets, used by the
//! `redis-linux` binary). The two features exclude each other.
//!
//! The core never touches a socket, a clock or a global: time comes from the caller's
//! `fn() -> u64`, bytes through [`Connection::feed`]. It has no `unsafe`.
#![cfg_attr(not(any(feature = "std", test)), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

#[cfg(all(feature = "remora", feature = "std"))]
compile_error!(
    "app-redis: features `remora` (the image, default) and `std` (Linux) exclude each other; \
     build the Linux program with `--no-default-features --features std`"
);

mod commands;
pub mod config;
pub mod connection;
pub mod db;
pub mod event_loop;
pub mod glob;
pub mod info;
pub mod layout;
pub mod num;
pub mod observer;
pub mod reply;
pub mod resp;

#[cfg(feature = "std")]
pub mod linux;
#[cfg(feature = "remora")]
pub mod prefetch;
#[cfg(feature = "remora")]
pub mod remora_main;

pub use commands::Action;
pub use config::ServerConfig;
pub use connection::{Connection, Ctx, State};
pub use db::{Db, Value};
pub use info::Stats;
pub use layout::{End, List, NodeSpans, StrValue};
pub use observer::{NoObserver, Observer};
#[cfg(feature = "remora")]
pub use remora_main::{main, main_with_observer};
pub use resp::Limits;

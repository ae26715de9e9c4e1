//! The image's glue: for each library, the code that hands it what it needs from the
//! platform and the configuration (`crate::config`) at init. `build.rs` calls the
//! `init` of every selected component that has a file here, in dependency order.
//! Libraries never read configuration or touch the platform themselves.

#[cfg(feature = "lib-alloc")]
pub mod alloc;
#[cfg(feature = "lib-evictor")]
pub mod evictor;
#[cfg(feature = "lib-mlx5")]
pub mod mlx5;
#[cfg(feature = "lib-mmu")]
pub mod mmu;
#[cfg(feature = "lib-net")]
pub mod net;
#[cfg(feature = "lib-pager")]
pub mod pager;
#[cfg(feature = "lib-prefetch")]
pub mod prefetch;
#[cfg(feature = "lib-rmem")]
pub mod rmem;
#[cfg(feature = "lib-sched")]
pub mod sched;

//! Remora's build tool as a library: configuration resolution, image building, QEMU
//! running, the test driver. The `xtask` binary is a thin CLI over it; the integration
//! tests in `tests/` use it directly.

pub mod bench;
pub mod config;
pub mod image;
pub mod linux_guest;
pub mod memnode;
pub mod qemu;
pub mod testing;
pub mod vfio;

//! The hardware layouts, one file per hardware object, as `#[repr(C)]` structures of
//! big-endian fields with explicit reserved bytes and a compile-time size assertion each.
//! Offsets follow `mlx5_ifc.h` (rdma-core, Linux) and `device.h` (see `shared/docs/mlx5.md`).
//!
//! | module | the hardware object |
//! |---|---|
//! | [`init_seg`] | the initialization segment at BAR0 + 0 and its health buffer |
//! | [`cmd`] | command queue entry, mailbox block, opcodes, delivery and command status |
//! | [`hca`] | function-level commands: enable, ISSI, pages, capabilities, INIT/TEARDOWN_HCA, UAR, PD, vport, RoCE address |
//! | [`caps`] | the general and RoCE capability pages |
//! | [`eq`] | event queue context, CREATE/DESTROY_EQ, the event queue entry (EQE) |
//! | [`cq`] | completion queue context, CREATE/DESTROY_CQ, the completion queue entry (CQE) |
//! | [`qp`] | queue pair context and address path, CREATE/MODIFY/DESTROY_QP |
//! | [`mkey`] | memory key context, CREATE/DESTROY_MKEY |
//! | [`wqe`] | send WQE segments: control, remote address, data |
//! | [`uar`] | register offsets inside a UAR page |
//!
//! These modules describe bytes; they never read or write a device and decide nothing.
//! Setters take values as the hardware wants them (log sizes, codes); choosing them is
//! the driver's job.

pub mod caps;
pub mod cmd;
pub mod cq;
pub mod eq;
pub mod hca;
pub mod init_seg;
pub mod mkey;
pub mod qp;
pub mod uar;
pub mod wqe;

/// Asserts at compile time that a hardware structure has its documented size.
macro_rules! assert_size {
    ($t:ty, $n:expr) => {
        const _: () = assert!(core::mem::size_of::<$t>() == $n);
    };
}
pub(crate) use assert_size;

/// `Default` for hardware structures: all zeroes (reserved fields must be zero).
macro_rules! zeroed_default {
    ($($t:ty),* $(,)?) => {
        $(impl Default for $t {
            fn default() -> Self {
                <$t as zerocopy::FromZeros>::new_zeroed()
            }
        })*
    };
}
pub(crate) use zeroed_default;

/// One entry of a physical address list: the page's address, big-endian.
pub type PasEntry = crate::be::Be64;

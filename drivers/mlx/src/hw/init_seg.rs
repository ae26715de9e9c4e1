//! The initialization segment at BAR0 + 0 (`device.h mlx5_init_seg`) and its health
//! buffer. Only register offsets are used: the segment lives in MMIO space and is read
//! one register at a time through [`crate::Bar`]; the structure exists so that every
//! offset is derived from one layout that the compiler checks.

use core::mem::offset_of;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::assert_size;
use crate::be::{Be16, Be32};

/// The health buffer at init segment + 0x200 (`device.h health_buffer`).
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct HealthBuffer {
    /// Assertion variables of the last firmware assert.
    pub assert_var: [Be32; 5],
    pub(crate) _r0: [u8; 12],
    /// Where the firmware asserted.
    pub assert_exit_ptr: Be32,
    /// Its caller.
    pub assert_callra: Be32,
    pub(crate) _r1: [u8; 8],
    /// Firmware version.
    pub fw_ver: Be32,
    /// Hardware id.
    pub hw_id: Be32,
    /// Bit 31: reset required (`rfr`).
    pub rfr: Be32,
    /// The iRISC that failed.
    pub irisc_index: u8,
    /// Health syndrome; 0 while healthy.
    pub synd: u8,
    /// Extended syndrome.
    pub ext_synd: Be16,
}
assert_size!(HealthBuffer, 0x40);

/// The initialization segment, up to the health counter.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct InitSegment {
    /// 31:16 minor, 15:0 major.
    pub fw_rev: Be32,
    /// 31:16 command interface revision (must be [`CMDIF_REV`]), 15:0 firmware sub-minor.
    pub cmdif_rev_fw_sub: Be32,
    pub(crate) _r0: [u8; 8],
    /// Command queue address, high 32 bits.
    pub cmdq_addr_h: Be32,
    /// 31:12 command queue address, low bits; 10:8 nic_interface (write 0); 7:4 log
    /// number of entries (read only); 3:0 log entry stride (read only).
    pub cmdq_addr_l_sz: Be32,
    /// Command doorbell: write `1 << slot`.
    pub cmd_dbell: Be32,
    pub(crate) _r1: [u8; 0x1fc - 0x1c],
    /// Bit 31: firmware is initializing; wait until clear.
    pub initializing: Be32,
    /// Health buffer.
    pub health: HealthBuffer,
    pub(crate) _r2: [u8; 0x1000 - 0x240],
    /// Free-running timer, high word.
    pub internal_timer_h: Be32,
    /// Free-running timer, low word.
    pub internal_timer_l: Be32,
    pub(crate) _r3: [u8; 8],
    /// Keeps changing while firmware is alive.
    pub health_counter: Be32,
}
assert_size!(InitSegment, 0x1014);

/// The command interface revision this driver speaks.
pub const CMDIF_REV: u32 = 5;

/// Register offsets within BAR0.
pub mod reg {
    use super::*;
    /// Firmware revision.
    pub const FW_REV: usize = offset_of!(InitSegment, fw_rev);
    /// Command interface revision and firmware sub-minor.
    pub const CMDIF_REV_FW_SUB: usize = offset_of!(InitSegment, cmdif_rev_fw_sub);
    /// Command queue address, high.
    pub const CMDQ_ADDR_H: usize = offset_of!(InitSegment, cmdq_addr_h);
    /// Command queue address, low, with log size and stride.
    pub const CMDQ_ADDR_L_SZ: usize = offset_of!(InitSegment, cmdq_addr_l_sz);
    /// Command doorbell.
    pub const CMD_DBELL: usize = offset_of!(InitSegment, cmd_dbell);
    /// Initializing flag.
    pub const INITIALIZING: usize = offset_of!(InitSegment, initializing);
    /// The health word holding `irisc_index`, `synd` (bits 23:16) and `ext_synd`.
    pub const HEALTH_SYND_WORD: usize =
        offset_of!(InitSegment, health) + offset_of!(HealthBuffer, irisc_index);
    /// Health: firmware version.
    pub const HEALTH_FW_VER: usize =
        offset_of!(InitSegment, health) + offset_of!(HealthBuffer, fw_ver);
    /// Health counter.
    pub const HEALTH_COUNTER: usize = offset_of!(InitSegment, health_counter);

    const _: () = assert!(CMDQ_ADDR_H == 0x10 && CMD_DBELL == 0x18 && INITIALIZING == 0x1fc);
    const _: () = assert!(HEALTH_SYND_WORD == 0x23c && HEALTH_COUNTER == 0x1010);
}

/// Bit 31 of [`InitSegment::initializing`].
pub const INITIALIZING_BIT: u32 = 1 << 31;

/// What a health syndrome means (Linux `health.c hsynd_str`).
pub fn health_syndrome_name(synd: u8) -> &'static str {
    match synd {
        0x01 => "firmware internal error",
        0x07 => "iRISC not responding",
        0x08 => "unrecoverable hardware error",
        0x09 => "firmware CRC error",
        0x0a => "ICM fetch PCI error",
        0x0b => "hardware fatal error",
        0x0c => "async EQ buffer overrun",
        0x0d => "EQ error",
        0x0e => "invalid EQ referenced",
        0x0f => "FFSER error",
        0x10 => "high temperature",
        _ => "unknown health syndrome",
    }
}

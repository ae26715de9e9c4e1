//! The command interface's memory: the 64-byte queue entry (`device.h mlx5_cmd_layout`),
//! the 0x240-byte mailbox block (`mlx5_cmd_prot_block`), the common input and output
//! headers, opcodes, and what delivery and command status codes mean.

use core::fmt;

use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::assert_size;
use crate::be::{Be16, Be32, Be64};

/// [`CmdEntry::kind`] for PCIe commands.
pub const CMD_TYPE_PCIE: u8 = 7;
/// Bytes of input and of output carried inline in the entry.
pub const INLINE_LEN: usize = 16;
/// Data bytes per mailbox block.
pub const MAILBOX_DATA_LEN: usize = 512;
/// Mailbox blocks must be aligned to at least this (Linux's DMA pool uses 1 KiB).
pub const MAILBOX_ALIGN: u64 = 1024;
/// Bit 0 of [`CmdEntry::status_own`]: the hardware owns the entry.
pub const OWNER_HW: u8 = 1;

/// One command queue entry.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct CmdEntry {
    /// [`CMD_TYPE_PCIE`].
    pub kind: u8,
    pub(crate) _r0: [u8; 3],
    /// Input length in bytes (inline part included).
    pub input_len: Be32,
    /// First input mailbox block, or 0.
    pub input_mailbox: Be64,
    /// First 16 input bytes.
    pub input_inline: [u8; INLINE_LEN],
    /// First 16 output bytes (status at 0, syndrome at 4).
    pub output_inline: [u8; INLINE_LEN],
    /// First output mailbox block, or 0.
    pub output_mailbox: Be64,
    /// Output length in bytes (inline part included).
    pub output_len: Be32,
    /// Matches the token of every mailbox block of this command.
    pub token: u8,
    /// Signature (ignored with checksums off).
    pub signature: u8,
    pub(crate) _r1: u8,
    /// Bit 0: owned by hardware; bits 7:1: delivery status.
    pub status_own: u8,
}
assert_size!(CmdEntry, 64);

/// One mailbox block: 512 bytes of message and the chaining fields.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Mailbox {
    /// Message bytes `16 + 512 * block_num ..`.
    pub data: [u8; MAILBOX_DATA_LEN],
    pub(crate) _r0: [u8; 48],
    /// Next block, or 0 at the end of the chain.
    pub next: Be64,
    /// Position in the chain, from 0.
    pub block_num: Be32,
    pub(crate) _r1: u8,
    /// Equal to the entry's token.
    pub token: u8,
    /// Control signature (ignored with checksums off).
    pub ctrl_signature: u8,
    /// Signature (ignored with checksums off).
    pub signature: u8,
}
assert_size!(Mailbox, 0x240);

/// Offset of the chaining fields inside a [`Mailbox`]: only they need writing when the
/// data part is written separately.
pub const MAILBOX_NEXT_OFFSET: usize = core::mem::offset_of!(Mailbox, next);
const _: () = assert!(MAILBOX_NEXT_OFFSET == 0x230);

impl CmdEntry {
    /// An entry for a command of `input_len` input bytes and `output_len` output bytes,
    /// owned by hardware.
    pub fn new(input: &[u8], output_len: u32, in_box: u64, out_box: u64, token: u8) -> Self {
        let mut e = CmdEntry::new_zeroed();
        e.kind = CMD_TYPE_PCIE;
        e.input_len = Be32::new(input.len() as u32);
        e.input_mailbox = Be64::new(in_box);
        let n = input.len().min(INLINE_LEN);
        e.input_inline[..n].copy_from_slice(&input[..n]);
        e.output_mailbox = Be64::new(out_box);
        e.output_len = Be32::new(output_len);
        e.token = token;
        e.status_own = OWNER_HW;
        e
    }

    /// The delivery status (bits 7:1 of `status_own`).
    pub fn delivery_status(&self) -> DeliveryStatus {
        DeliveryStatus(self.status_own >> 1)
    }
}

/// The header every command input starts with.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct InHeader {
    /// The command.
    pub opcode: Be16,
    /// User context id (0: the kernel's).
    pub uid: Be16,
    pub(crate) _r0: [u8; 2],
    /// Opcode modifier.
    pub op_mod: Be16,
}
assert_size!(InHeader, 8);

impl InHeader {
    /// A header for `opcode` with modifier `op_mod`.
    pub fn new(opcode: Opcode, op_mod: u16) -> Self {
        InHeader { opcode: Be16::new(opcode.0), op_mod: Be16::new(op_mod), ..Default::default() }
    }
}

/// The header every command output starts with.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct OutHeader {
    /// [`CmdStatus`]; 0 is success.
    pub status: u8,
    pub(crate) _r0: [u8; 3],
    /// Firmware's syndrome for a failure (look it up in the PRM or firmware dumps).
    pub syndrome: Be32,
}
assert_size!(OutHeader, 8);

/// The output of commands that return nothing but the header.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct EmptyOut {
    /// Status and syndrome.
    pub hdr: OutHeader,
    pub(crate) _r0: [u8; 8],
}
assert_size!(EmptyOut, 0x10);

/// A command opcode.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Opcode(pub u16);

macro_rules! opcodes {
    ($($name:ident = $value:expr,)*) => {
        impl Opcode {
            $(
                #[doc = concat!("`", stringify!($name), "`")]
                pub const $name: Opcode = Opcode($value);
            )*

            /// The command's name as the PRM spells it, or `"UNKNOWN"`.
            pub fn name(self) -> &'static str {
                match self {
                    $(Opcode::$name => stringify!($name),)*
                    _ => "UNKNOWN",
                }
            }
        }
    };
}

opcodes! {
    QUERY_HCA_CAP = 0x100,
    INIT_HCA = 0x102,
    TEARDOWN_HCA = 0x103,
    ENABLE_HCA = 0x104,
    DISABLE_HCA = 0x105,
    QUERY_PAGES = 0x107,
    MANAGE_PAGES = 0x108,
    SET_HCA_CAP = 0x109,
    QUERY_ISSI = 0x10a,
    SET_ISSI = 0x10b,
    CREATE_MKEY = 0x200,
    DESTROY_MKEY = 0x202,
    QUERY_SPECIAL_CONTEXTS = 0x203,
    CREATE_EQ = 0x301,
    DESTROY_EQ = 0x302,
    CREATE_CQ = 0x400,
    DESTROY_CQ = 0x401,
    CREATE_QP = 0x500,
    DESTROY_QP = 0x501,
    RST2INIT_QP = 0x502,
    INIT2RTR_QP = 0x503,
    RTR2RTS_QP = 0x504,
    QP_2ERR = 0x507,
    QP_2RST = 0x50a,
    QUERY_VPORT_STATE = 0x750,
    QUERY_NIC_VPORT_CONTEXT = 0x754,
    MODIFY_NIC_VPORT_CONTEXT = 0x755,
    SET_ROCE_ADDRESS = 0x761,
    ALLOC_PD = 0x800,
    DEALLOC_PD = 0x801,
    ALLOC_UAR = 0x802,
    DEALLOC_UAR = 0x803,
    ACCESS_REG = 0x805,
}

impl fmt::Debug for Opcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:#x})", self.name(), self.0)
    }
}

impl fmt::Display for Opcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Why the command interface could not deliver a command (status_own bits 7:1).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct DeliveryStatus(pub u8);

impl DeliveryStatus {
    /// Delivered.
    pub const OK: DeliveryStatus = DeliveryStatus(0);
    /// Bad signature.
    pub const SIGNATURE: DeliveryStatus = DeliveryStatus(1);
    /// Token of a mailbox differs from the entry's.
    pub const TOKEN: DeliveryStatus = DeliveryStatus(2);
    /// Mailbox block numbers not 0, 1, 2...
    pub const BLOCK_NUMBER: DeliveryStatus = DeliveryStatus(3);
    /// Output mailbox pointer misaligned.
    pub const OUTPUT_POINTER: DeliveryStatus = DeliveryStatus(4);
    /// Input mailbox pointer misaligned.
    pub const INPUT_POINTER: DeliveryStatus = DeliveryStatus(5);
    /// Firmware could not process the entry.
    pub const FIRMWARE: DeliveryStatus = DeliveryStatus(6);
    /// Input length disagrees with the mailbox chain.
    pub const INPUT_LENGTH: DeliveryStatus = DeliveryStatus(7);
    /// Output length disagrees with the mailbox chain.
    pub const OUTPUT_LENGTH: DeliveryStatus = DeliveryStatus(8);
    /// Reserved fields not zero.
    pub const RESERVED_NOT_ZERO: DeliveryStatus = DeliveryStatus(9);
    /// Entry type is not [`CMD_TYPE_PCIE`].
    pub const BAD_TYPE: DeliveryStatus = DeliveryStatus(0x10);

    /// What the code means.
    pub fn name(self) -> &'static str {
        match self.0 {
            0 => "delivered",
            1 => "bad signature",
            2 => "bad token (a mailbox's token differs from the entry's)",
            3 => "bad mailbox block number",
            4 => "output mailbox pointer not aligned",
            5 => "input mailbox pointer not aligned",
            6 => "firmware could not process the entry",
            7 => "input length disagrees with the mailbox chain",
            8 => "output length disagrees with the mailbox chain",
            9 => "reserved fields are not zero",
            0x10 => "bad command type",
            _ => "unknown delivery status",
        }
    }
}

impl fmt::Debug for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:#x})", self.name(), self.0)
    }
}

impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A command's own status (output byte 0).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CmdStatus(pub u8);

impl CmdStatus {
    /// Success.
    pub const OK: CmdStatus = CmdStatus(0);
    /// Internal error.
    pub const INTERNAL: CmdStatus = CmdStatus(1);
    /// Unknown or unsupported opcode.
    pub const BAD_OPCODE: CmdStatus = CmdStatus(2);
    /// A parameter is invalid.
    pub const BAD_PARAMETER: CmdStatus = CmdStatus(3);
    /// The device is not in a state for this command.
    pub const BAD_SYSTEM_STATE: CmdStatus = CmdStatus(4);
    /// A resource (number) is invalid.
    pub const BAD_RESOURCE: CmdStatus = CmdStatus(5);
    /// Resource busy.
    pub const BUSY: CmdStatus = CmdStatus(6);
    /// A limit was exceeded.
    pub const LIMITS: CmdStatus = CmdStatus(8);
    /// The resource is in the wrong state.
    pub const BAD_RESOURCE_STATE: CmdStatus = CmdStatus(9);
    /// Bad index.
    pub const BAD_INDEX: CmdStatus = CmdStatus(0xa);
    /// Out of resources.
    pub const NO_RESOURCES: CmdStatus = CmdStatus(0xf);
    /// The QP is not in a state this transition starts from.
    pub const BAD_QP_STATE: CmdStatus = CmdStatus(0x10);
    /// Input length wrong for the opcode.
    pub const BAD_INPUT_LENGTH: CmdStatus = CmdStatus(0x50);
    /// Output length wrong for the opcode.
    pub const BAD_OUTPUT_LENGTH: CmdStatus = CmdStatus(0x51);

    /// What the code means.
    pub fn name(self) -> &'static str {
        match self.0 {
            0 => "ok",
            1 => "internal error",
            2 => "bad opcode",
            3 => "bad parameter",
            4 => "bad system state",
            5 => "bad resource",
            6 => "resource busy",
            8 => "limits exceeded",
            9 => "bad resource state",
            0xa => "bad index",
            0xf => "no resources",
            0x10 => "bad QP state",
            0x30 => "bad packet",
            0x40 => "bad size of outstanding CQEs",
            0x50 => "bad input length",
            0x51 => "bad output length",
            _ => "unknown command status",
        }
    }
}

impl fmt::Debug for CmdStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:#x})", self.name(), self.0)
    }
}

impl fmt::Display for CmdStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_fields_sit_where_device_h_says() {
        let e = CmdEntry::new(&[0xaa; 20], 0x1010, 0x1000, 0x2000, 0x5c);
        let b = e.as_bytes();
        assert_eq!(b[0], 7);
        assert_eq!(&b[4..8], &[0, 0, 0, 20]);
        assert_eq!(&b[8..16], &0x1000u64.to_be_bytes());
        assert_eq!(b[0x10], 0xaa);
        assert_eq!(&b[0x30..0x38], &0x2000u64.to_be_bytes());
        assert_eq!(&b[0x38..0x3c], &0x1010u32.to_be_bytes());
        assert_eq!(b[0x3c], 0x5c);
        assert_eq!(b[0x3f], 1);
    }

    #[test]
    fn names() {
        assert_eq!(format!("{}", Opcode::CREATE_QP), "CREATE_QP (0x500)");
        assert_eq!(format!("{}", Opcode(0x999)), "UNKNOWN (0x999)");
        assert_eq!(CmdStatus(3).name(), "bad parameter");
        assert_eq!(
            DeliveryStatus(2).name(),
            "bad token (a mailbox's token differs from the entry's)"
        );
    }
}

super::zeroed_default!(InHeader, OutHeader, EmptyOut);

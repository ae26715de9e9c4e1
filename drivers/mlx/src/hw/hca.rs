//! Function-level commands: ENABLE/DISABLE_HCA, QUERY/SET_ISSI, QUERY/MANAGE_PAGES,
//! QUERY/SET_HCA_CAP, INIT/TEARDOWN_HCA, ALLOC/DEALLOC_UAR and _PD, the NIC vport context,
//! the vport state and SET_ROCE_ADDRESS (`mlx5_ifc.h`).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::assert_size;
use super::cmd::{InHeader, OutHeader};
use crate::be::{Be16, Be32};

/// Input of the commands that name only a function (ENABLE_HCA, DISABLE_HCA,
/// QUERY_PAGES, QUERY_HCA_CAP): `function_id` in bits 15:0, `embedded_cpu_function` in 31.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct FunctionIn {
    /// Opcode and modifier.
    pub hdr: InHeader,
    /// 31: embedded CPU function; 15:0: function id (0: this function).
    pub function: Be32,
    pub(crate) _r0: [u8; 4],
}
assert_size!(FunctionIn, 0x10);

/// QUERY_ISSI output.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct QueryIssiOut {
    /// Status.
    pub hdr: OutHeader,
    pub(crate) _r0: [u8; 2],
    /// The ISSI in use.
    pub current_issi: Be16,
    pub(crate) _r1: [u8; 0x6c - 0x0c],
    /// Bit n set: ISSI n supported (the low 32 of the bitmap).
    pub supported_issi_dw0: Be32,
}
assert_size!(QueryIssiOut, 0x70);

/// SET_ISSI input.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct SetIssiIn {
    /// Opcode.
    pub hdr: InHeader,
    pub(crate) _r0: [u8; 2],
    /// The ISSI to use.
    pub current_issi: Be16,
    pub(crate) _r1: [u8; 4],
}
assert_size!(SetIssiIn, 0x10);

/// QUERY_PAGES op_mod: pages needed before INIT_HCA's capability step.
pub const PAGES_BOOT: u16 = 1;
/// QUERY_PAGES op_mod: pages needed for INIT_HCA.
pub const PAGES_INIT: u16 = 2;
/// QUERY_PAGES op_mod: pages needed in regular operation.
pub const PAGES_REGULAR: u16 = 3;

/// QUERY_PAGES output.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct QueryPagesOut {
    /// Status.
    pub hdr: OutHeader,
    /// 15:0: function id.
    pub function: Be32,
    /// Pages wanted (negative: pages firmware would give back).
    pub num_pages: Be32,
}
assert_size!(QueryPagesOut, 0x10);

/// MANAGE_PAGES op_mod: firmware asked and we cannot give.
pub const MANAGE_CANT_GIVE: u16 = 0;
/// MANAGE_PAGES op_mod: give the listed pages.
pub const MANAGE_GIVE: u16 = 1;
/// MANAGE_PAGES op_mod: take pages back (their addresses come in the output).
pub const MANAGE_TAKE: u16 = 2;

/// MANAGE_PAGES input; `num_entries` page addresses follow (GIVE).
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct ManagePagesIn {
    /// Opcode and GIVE/TAKE.
    pub hdr: InHeader,
    /// 15:0: function id.
    pub function: Be32,
    /// Pages given, or wanted back.
    pub num_entries: Be32,
}
assert_size!(ManagePagesIn, 0x10);

/// MANAGE_PAGES output; `num_entries` page addresses follow (TAKE).
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct ManagePagesOut {
    /// Status.
    pub hdr: OutHeader,
    /// Pages returned.
    pub num_entries: Be32,
    pub(crate) _r0: [u8; 4],
}
assert_size!(ManagePagesOut, 0x10);

/// Bytes of a capability page.
pub const CAP_LEN: usize = 0x1000;

/// QUERY_HCA_CAP op_mod: `cap_type << 1 | current`.
pub const fn cap_op_mod(cap_type: u16, current: bool) -> u16 {
    cap_type << 1 | current as u16
}
/// Capability type: general device capabilities.
pub const CAP_GENERAL: u16 = 0;
/// Capability type: RoCE.
pub const CAP_ROCE: u16 = 4;

/// QUERY_HCA_CAP output.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct QueryHcaCapOut {
    /// Status.
    pub hdr: OutHeader,
    pub(crate) _r0: [u8; 8],
    /// The capability page.
    pub capability: [u8; CAP_LEN],
}
assert_size!(QueryHcaCapOut, 0x1010);

/// SET_HCA_CAP input.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct SetHcaCapIn {
    /// Opcode; op_mod = capability type << 1.
    pub hdr: InHeader,
    /// 15:0: function id.
    pub function: Be32,
    pub(crate) _r0: [u8; 4],
    /// The capability page to set.
    pub capability: [u8; CAP_LEN],
}
assert_size!(SetHcaCapIn, 0x1010);

/// INIT_HCA input (with the newer sw_owner_id words, left zero).
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct InitHcaIn {
    /// Opcode.
    pub hdr: InHeader,
    pub(crate) _r0: [u8; 0x18],
}
assert_size!(InitHcaIn, 0x20);

/// TEARDOWN_HCA input.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct TeardownHcaIn {
    /// Opcode.
    pub hdr: InHeader,
    pub(crate) _r0: [u8; 2],
    /// 0: graceful close.
    pub profile: Be16,
    pub(crate) _r1: [u8; 4],
}
assert_size!(TeardownHcaIn, 0x10);

/// Input of the commands that name one 24-bit object in dword 2 (DEALLOC_UAR, DEALLOC_PD,
/// DESTROY_CQ, DESTROY_QP, DESTROY_MKEY, and the QP_2ERR/QP_2RST transitions).
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct ObjectIn {
    /// Opcode.
    pub hdr: InHeader,
    /// 23:0: the object's number.
    pub object: Be32,
    pub(crate) _r0: [u8; 4],
}
assert_size!(ObjectIn, 0x10);

/// Output of the commands that return one 24-bit object in dword 2 (ALLOC_UAR, ALLOC_PD,
/// CREATE_CQ, CREATE_QP, CREATE_MKEY).
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct ObjectOut {
    /// Status.
    pub hdr: OutHeader,
    /// 23:0: the new object's number.
    pub object: Be32,
    pub(crate) _r0: [u8; 4],
}
assert_size!(ObjectOut, 0x10);

/// The NIC vport context (`nic_vport_context_bits`, fixed part).
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct NicVportContext {
    /// Bit 0: RoCE enabled; bits 1, 2: disable local loopback.
    pub flags: Be32,
    pub(crate) _r0: [u8; 0xf4 - 0x04],
    pub(crate) _r1: [u8; 2],
    /// The port's permanent MAC address.
    pub permanent_mac: [u8; 6],
    pub(crate) _r2: [u8; 4],
}
assert_size!(NicVportContext, 0x100);

/// Bit of [`NicVportContext::flags`]: RoCE enabled.
pub const VPORT_ROCE_EN: u32 = 0;
/// Bit of [`ModifyNicVportContextIn::field_select`]: `roce_en` is being set.
pub const FIELD_SELECT_ROCE_EN: u32 = 1;

/// MODIFY_NIC_VPORT_CONTEXT input.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct ModifyNicVportContextIn {
    /// Opcode.
    pub hdr: InHeader,
    /// 31: other vport; 15:0: vport number.
    pub vport: Be32,
    /// Which context fields to change.
    pub field_select: Be32,
    pub(crate) _r0: [u8; 0xf0],
    /// The new values.
    pub context: NicVportContext,
}
assert_size!(ModifyNicVportContextIn, 0x200);

/// QUERY_NIC_VPORT_CONTEXT output.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct QueryNicVportContextOut {
    /// Status.
    pub hdr: OutHeader,
    pub(crate) _r0: [u8; 8],
    /// The context.
    pub context: NicVportContext,
}
assert_size!(QueryNicVportContextOut, 0x110);

/// QUERY_VPORT_STATE output.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct QueryVportStateOut {
    /// Status.
    pub hdr: OutHeader,
    pub(crate) _r0: [u8; 4],
    /// 7:4 administrative state, 3:0 operational state (1 = up).
    pub state: Be32,
}
assert_size!(QueryVportStateOut, 0x10);

/// Vport operational state: link up.
pub const VPORT_STATE_UP: u32 = 1;

/// One entry of the RoCE address (GID) table.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct RoceAddress {
    /// The GID: an IPv6 address, or `::ffff:a.b.c.d` for IPv4.
    pub source_l3_address: [u8; 16],
    /// 28: vlan valid; 27:16: vlan id.
    pub vlan: Be16,
    /// The port's MAC address.
    pub source_mac: [u8; 6],
    /// 11:8 l3 type ([`ROCE_L3_IPV4`], [`ROCE_L3_IPV6`]); 7:0 RoCE version.
    pub version: Be32,
    pub(crate) _r0: [u8; 4],
}
assert_size!(RoceAddress, 0x20);

/// RoCE address l3 type: IPv4.
pub const ROCE_L3_IPV4: u32 = 0;
/// RoCE address l3 type: IPv6.
pub const ROCE_L3_IPV6: u32 = 1;
/// RoCE version 2 (UDP encapsulation).
pub const ROCE_VERSION_2: u32 = 2;

/// SET_ROCE_ADDRESS input.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct SetRoceAddressIn {
    /// Opcode.
    pub hdr: InHeader,
    /// 31:16 table index; 3:0 vhca port number (0 on single-port functions).
    pub index: Be32,
    pub(crate) _r0: [u8; 4],
    /// The entry.
    pub address: RoceAddress,
}
assert_size!(SetRoceAddressIn, 0x30);

super::zeroed_default!(
    FunctionIn,
    SetIssiIn,
    QueryPagesOut,
    ManagePagesIn,
    ManagePagesOut,
    InitHcaIn,
    TeardownHcaIn,
    ObjectIn,
    ObjectOut,
    QueryVportStateOut,
    RoceAddress,
    SetRoceAddressIn
);

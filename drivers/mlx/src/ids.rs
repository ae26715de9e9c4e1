//! Device handles as distinct types, so that a completion-queue number cannot be passed
//! where a protection domain is expected, and the PCI ids of the devices this driver
//! drives.
//!
//! This module owns names and ranges only; it never talks to a device.

use core::fmt;

macro_rules! handle {
    ($(#[$doc:meta])* $name:ident, $inner:ty, $bits:expr, $label:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub $inner);

        impl $name {
            /// Bits the hardware keeps of this handle.
            pub const BITS: u32 = $bits;

            /// The raw number.
            pub const fn get(self) -> $inner {
                self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($label, " {:#x}"), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self, f)
            }
        }
    };
}

handle!(
    /// A queue-pair number (24 bits).
    Qpn, u32, 24, "QPN"
);
handle!(
    /// A completion-queue number (24 bits).
    Cqn, u32, 24, "CQN"
);
handle!(
    /// An event-queue number (8 bits).
    Eqn, u8, 8, "EQN"
);
handle!(
    /// A protection-domain number (24 bits).
    Pdn, u32, 24, "PD"
);
handle!(
    /// A user access region: the index of a 4 KiB doorbell page in BAR0 (24 bits).
    UarIndex, u32, 24, "UAR"
);
handle!(
    /// A local memory key, as put in a WQE's data segment: `mkey index << 8 | variant`.
    Lkey, u32, 32, "lkey"
);
handle!(
    /// A remote memory key granted by the memory node, as put in a WQE's remote-address
    /// segment.
    Rkey, u32, 32, "rkey"
);
handle!(
    /// A packet sequence number (24 bits).
    Psn, u32, 24, "PSN"
);
handle!(
    /// A PCI function as firmware numbers it (for page requests).
    FunctionId, u16, 16, "function"
);

/// Mellanox's PCI vendor id.
pub const PCI_VENDOR_MELLANOX: u16 = 0x15b3;

/// Devices driven by this driver: (device id, name). Physical and virtual functions
/// from ConnectX-4 to ConnectX-8 (Linux `mlx5_core_pci_table`).
pub const PCI_DEVICES: &[(u16, &str)] = &[
    (0x1013, "ConnectX-4"),
    (0x1014, "ConnectX-4 VF"),
    (0x1015, "ConnectX-4 Lx"),
    (0x1016, "ConnectX-4 Lx VF"),
    (0x1017, "ConnectX-5"),
    (0x1018, "ConnectX-5 VF"),
    (0x1019, "ConnectX-5 Ex"),
    (0x101a, "ConnectX-5 Ex VF"),
    (0x101b, "ConnectX-6"),
    (0x101c, "ConnectX-6 VF"),
    (0x101d, "ConnectX-6 Dx"),
    (0x101e, "ConnectX family VF"),
    (0x101f, "ConnectX-6 Lx"),
    (0x1021, "ConnectX-7"),
    (0x1023, "ConnectX-8"),
];

/// The name of a supported device, or `None` for any other vendor or device id.
pub fn supported_device(vendor: u16, device: u16) -> Option<&'static str> {
    if vendor != PCI_VENDOR_MELLANOX {
        return None;
    }
    PCI_DEVICES.iter().find(|(id, _)| *id == device).map(|(_, name)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pci_ids() {
        assert_eq!(supported_device(0x15b3, 0x1017), Some("ConnectX-5"));
        assert_eq!(supported_device(0x15b3, 0x1000), None);
        assert_eq!(supported_device(0x1af4, 0x1017), None);
    }

    #[test]
    fn handles_print_their_kind() {
        assert_eq!(format!("{}", Qpn(0x1c)), "QPN 0x1c");
        assert_eq!(format!("{}", Rkey(5)), "rkey 0x5");
    }
}

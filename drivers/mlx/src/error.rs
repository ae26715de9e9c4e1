//! The driver's errors. Every command failure names the opcode (and its modifier) and,
//! for a status from firmware, the syndrome, which is what a firmware engineer or the PRM
//! needs; every other error says what to check or change.
//!
//! This module owns the error values and their messages; it decides nothing.

use core::fmt;

use crate::exchange::ExchangeError;
use crate::hw::cmd::{CmdStatus, DeliveryStatus, Opcode};
use crate::platform::DmaError;

/// How a command failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmdFailure {
    /// The command interface refused the entry (delivery status, status_own 7:1).
    Delivery(DeliveryStatus),
    /// Firmware ran the command and it failed (output status byte and syndrome).
    Status {
        /// The command status.
        status: CmdStatus,
        /// Firmware's syndrome.
        syndrome: u32,
    },
    /// The device did not hand the entry back within the command timeout.
    Timeout {
        /// Milliseconds waited.
        waited_ms: u64,
    },
    /// The output was shorter than the command's layout.
    ShortOutput {
        /// Bytes expected.
        expected: usize,
        /// Bytes there.
        got: usize,
    },
}

/// A failed command: which one, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CmdError {
    /// The command.
    pub opcode: Opcode,
    /// Its modifier.
    pub op_mod: u16,
    /// What went wrong.
    pub failure: CmdFailure,
}

impl fmt::Display for CmdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "mlx5 command {} op_mod {:#x} failed: ", self.opcode, self.op_mod)?;
        match self.failure {
            CmdFailure::Delivery(status) => write!(f, "delivery status {status}"),
            CmdFailure::Status { status, syndrome } => {
                write!(f, "status {status}, syndrome {syndrome:#010x}")
            }
            CmdFailure::Timeout { waited_ms } => write!(
                f,
                "no completion after {waited_ms} ms (the device may need a reset: unbind and \
                 rebind it, or reset the function, before trying again)"
            ),
            CmdFailure::ShortOutput { expected, got } => {
                write!(f, "output of {got} bytes, expected {expected}")
            }
        }
    }
}

/// An error of the driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// A command failed.
    Command(CmdError),
    /// Firmware stayed in its initializing state.
    FirmwareNotReady {
        /// Milliseconds waited.
        waited_ms: u64,
    },
    /// The device speaks another command interface revision.
    UnsupportedInterface {
        /// The revision it reports.
        cmdif_rev: u32,
    },
    /// The device reports a fatal health syndrome.
    Health {
        /// The syndrome.
        syndrome: u8,
        /// What it means.
        what: &'static str,
    },
    /// The device lacks something the driver needs.
    Unsupported {
        /// What.
        what: &'static str,
    },
    /// A configured size exceeds what the device allows.
    Limit {
        /// Which size.
        what: &'static str,
        /// The size asked for.
        wanted: u64,
        /// The device's maximum.
        max: u64,
    },
    /// The driver's configuration is inconsistent.
    Config {
        /// What is wrong and how to fix it.
        what: &'static str,
    },
    /// No DMA memory.
    Dma(DmaError),
    /// The exchange with the memory node over the control link failed.
    Exchange(ExchangeError),
    /// The memory node's connection parameters are unusable.
    Peer {
        /// What is wrong with them.
        what: &'static str,
    },
}

impl From<CmdError> for Error {
    fn from(e: CmdError) -> Self {
        Error::Command(e)
    }
}

impl From<DmaError> for Error {
    fn from(e: DmaError) -> Self {
        Error::Dma(e)
    }
}

impl From<ExchangeError> for Error {
    fn from(e: ExchangeError) -> Self {
        Error::Exchange(e)
    }
}

impl Error {
    /// The failed command, if this is a command failure.
    pub fn command(&self) -> Option<&CmdError> {
        match self {
            Error::Command(c) => Some(c),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Command(e) => fmt::Display::fmt(e, f),
            Error::FirmwareNotReady { waited_ms } => write!(
                f,
                "mlx5 firmware still initializing after {waited_ms} ms (is the device bound to \
                 vfio-pci and not in use by a host driver? a reset may be needed)"
            ),
            Error::UnsupportedInterface { cmdif_rev } => write!(
                f,
                "mlx5 command interface revision {cmdif_rev}, this driver speaks 5 \
                 (ConnectX-4 and later)"
            ),
            Error::Health { syndrome, what } => {
                write!(f, "mlx5 device health failure: {what} (syndrome {syndrome:#x})")
            }
            Error::Unsupported { what } => write!(f, "mlx5 device does not support {what}"),
            Error::Limit { what, wanted, max } => write!(
                f,
                "mlx5 {what} of {wanted} exceeds the device's maximum of {max}; lower it in \
                 the image config"
            ),
            Error::Config { what } => write!(f, "mlx5 configuration: {what}"),
            Error::Dma(e) => write!(f, "mlx5: {e}"),
            Error::Exchange(e) => write!(f, "mlx5 connection to the memory node: {e}"),
            Error::Peer { what } => write!(f, "mlx5: the memory node's parameters: {what}"),
        }
    }
}

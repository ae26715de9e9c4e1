//! What the driver needs from the machine: [`Bar`] (BAR0's registers, big-endian, with
//! explicit barriers), [`Dma`] (physically contiguous zeroed pages the device can reach,
//! and byte access to them by physical address) and a monotonic [`Clock`] for timeouts
//! (the one `remora_rmem` defines).
//!
//! The kernel implements these with volatile accesses through its direct map (the image's
//! glue); the device model implements them on the host. The driver itself therefore holds
//! no pointer to device memory and contains no `unsafe` code.
//!
//! This module owns the traits only; it never touches hardware.

use core::fmt;

pub use remora_rmem::Clock;

/// Bytes of a page, the unit of DMA allocation and of every PAS (physical address list)
/// entry the driver hands the device.
pub const PAGE_SIZE: usize = 4096;

/// BAR0 of the device: the initialization segment at offset 0 and the UAR (doorbell)
/// pages after it.
///
/// Registers are big-endian: `read32`/`write32`/`write64` take and return host-order
/// values and the implementation swaps bytes. Accesses are uncached and are not
/// reordered with each other; ordering against DMA memory is the caller's business,
/// through [`Bar::write_barrier`] and [`Bar::read_barrier`].
pub trait Bar {
    /// Reads the 32-bit register at `offset` (4-byte aligned).
    fn read32(&self, offset: usize) -> u32;

    /// Writes the 32-bit register at `offset` (4-byte aligned).
    fn write32(&self, offset: usize, value: u32);

    /// Writes the 64-bit register at `offset` (8-byte aligned) in one store: a doorbell
    /// must reach the device whole.
    fn write64(&self, offset: usize, value: u64);

    /// Makes every earlier write (to DMA memory and to registers) visible to the device
    /// before any later one (`wmb`).
    fn write_barrier(&self);

    /// Makes every later read see memory at least as new as the earlier reads saw
    /// (`rmb`): after seeing a completion's owner bit, before reading its body.
    fn read_barrier(&self);

    /// Length of the BAR in bytes.
    fn len(&self) -> usize;

    /// True for an empty BAR (never for a real device).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Memory the device reads and writes: command queue, mailboxes, queues, doorbell records,
/// pages given to firmware. Allocations are whole pages, physically contiguous, aligned to
/// 4 KiB and zeroed.
///
/// The driver reaches this memory only through [`Dma::read`] and [`Dma::write`] by
/// physical address, so the implementation decides how (a direct map in the kernel, a
/// heap in the model). Reads and writes are volatile: the device may change the memory at
/// any time.
pub trait Dma {
    /// `pages` contiguous zeroed pages; their physical address.
    fn alloc(&self, pages: usize) -> Result<u64, DmaError>;

    /// Gives back an allocation made by [`Dma::alloc`] with the same `pages`.
    fn free(&self, phys: u64, pages: usize);

    /// Copies `out.len()` bytes at physical address `phys` into `out`.
    fn read(&self, phys: u64, out: &mut [u8]);

    /// Copies `data` to physical address `phys`.
    fn write(&self, phys: u64, data: &[u8]);

    /// The big-endian `u32` at `phys`.
    fn read_be32(&self, phys: u64) -> u32 {
        let mut b = [0u8; 4];
        self.read(phys, &mut b);
        u32::from_be_bytes(b)
    }

    /// Stores `value` big-endian at `phys`.
    fn write_be32(&self, phys: u64, value: u32) {
        self.write(phys, &value.to_be_bytes());
    }

    /// The byte at `phys`.
    fn read_u8(&self, phys: u64) -> u8 {
        let mut b = [0u8; 1];
        self.read(phys, &mut b);
        b[0]
    }
}

/// Why DMA memory could not be had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DmaError {
    /// No block of `pages` contiguous pages is free.
    OutOfMemory {
        /// Pages asked for.
        pages: usize,
    },
}

impl fmt::Display for DmaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DmaError::OutOfMemory { pages } => {
                write!(f, "no DMA memory for {pages} contiguous pages (give the guest more memory)")
            }
        }
    }
}

impl<T: Bar + ?Sized> Bar for &T {
    fn read32(&self, offset: usize) -> u32 {
        (**self).read32(offset)
    }
    fn write32(&self, offset: usize, value: u32) {
        (**self).write32(offset, value)
    }
    fn write64(&self, offset: usize, value: u64) {
        (**self).write64(offset, value)
    }
    fn write_barrier(&self) {
        (**self).write_barrier()
    }
    fn read_barrier(&self) {
        (**self).read_barrier()
    }
    fn len(&self) -> usize {
        (**self).len()
    }
}

impl<T: Dma + ?Sized> Dma for &T {
    fn alloc(&self, pages: usize) -> Result<u64, DmaError> {
        (**self).alloc(pages)
    }
    fn free(&self, phys: u64, pages: usize) {
        (**self).free(phys, pages)
    }
    fn read(&self, phys: u64, out: &mut [u8]) {
        (**self).read(phys, out)
    }
    fn write(&self, phys: u64, data: &[u8]) {
        (**self).write(phys, data)
    }
}

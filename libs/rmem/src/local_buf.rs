//! [`LocalBuf`]: a piece of local memory lent to a transport for one read or write.
//!
//! This module owns the crate's only `unsafe` code: turning the caller's raw pointer into
//! byte slices. Everything else in the crate goes through [`LocalBuf::as_slice`] and
//! [`LocalBuf::as_mut_slice`]. It must never decide anything about the far region or the
//! wire; it only describes memory.
//!
//! # Ownership
//! A `LocalBuf` is a handle to memory it does not free (the memory belongs to the
//! caller's frame allocator), but it behaves like an owner: whoever holds the `LocalBuf`
//! may use the memory, and nobody else may. Posting a read or write moves it into the
//! transport; the [`crate::Completion`] for that request (or the
//! [`crate::PostRejected`] for a refused post) moves it back. That is what makes the
//! constructor's contract simple to keep: the caller promises not to touch the memory
//! while the `LocalBuf` exists, and the type system tracks who holds it.

#![allow(unsafe_code)]

use core::fmt;
use core::ptr::NonNull;

/// Local memory described for a transport: where the CPU sees it (`virt`) and where a
/// device would (`phys`), and how long it is.
///
/// The link transport copies through `virt`; an RDMA transport hands `phys` to the NIC.
/// Lengths of posted buffers are whole pages (see [`crate::PAGE_SIZE`]); the type itself
/// accepts any non-zero length.
pub struct LocalBuf {
    virt: NonNull<u8>,
    phys: u64,
    len: usize,
}

// SAFETY: a `LocalBuf` is the exclusive owner of its memory (constructor contract), like a
// `Box<[u8]>`: moving it to another thread moves that exclusive access with it.
unsafe impl Send for LocalBuf {}

impl LocalBuf {
    /// Describes `len` bytes at `virt` (CPU address) and `phys` (device address).
    ///
    /// # Safety
    /// Until this `LocalBuf` is dropped or taken apart with [`LocalBuf::into_raw`]:
    /// - `virt .. virt + len` is valid for reads and writes and stays mapped;
    /// - `phys .. phys + len` is the same memory as seen by devices (only transports that
    ///   do DMA read it; give 0 if no device will ever touch it);
    /// - nothing else reads or writes that memory: the holder of the `LocalBuf` has
    ///   exclusive use of it. In particular, once the buffer is posted, the caller must not
    ///   touch the memory until the transport hands the `LocalBuf` back in a completion.
    pub unsafe fn new(virt: NonNull<u8>, phys: u64, len: usize) -> Self {
        LocalBuf { virt, phys, len }
    }

    /// The CPU address of the first byte.
    pub fn virt(&self) -> NonNull<u8> {
        self.virt
    }

    /// The device (physical) address of the first byte.
    pub fn phys(&self) -> u64 {
        self.phys
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for a zero-length buffer (never accepted by a post).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The memory, for reading.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the constructor's contract makes `virt .. virt + len` valid and ours
        // alone while `self` lives; the shared borrow of `self` bounds the slice's life.
        unsafe { core::slice::from_raw_parts(self.virt.as_ptr(), self.len) }
    }

    /// The memory, for writing.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`; the exclusive borrow of `self` makes this the only
        // live slice of the memory.
        unsafe { core::slice::from_raw_parts_mut(self.virt.as_ptr(), self.len) }
    }

    /// Gives the memory back: `(virt, phys, len)`. The contract of [`LocalBuf::new`] ends
    /// here.
    pub fn into_raw(self) -> (NonNull<u8>, u64, usize) {
        (self.virt, self.phys, self.len)
    }
}

impl fmt::Debug for LocalBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LocalBuf {{ virt: {:p}, phys: {:#x}, len: {} }}", self.virt, self.phys, self.len)
    }
}

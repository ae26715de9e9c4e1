//! The model's "physical memory": heap allocations given fake physical addresses, so
//! the driver's DMA and the device's accesses meet in real bytes. Runs are 4 KiB aligned
//! and separated by an unmapped page, so an access that strays off its allocation is
//! caught rather than landing in a neighbour.
//!
//! This module owns the crate's only `unsafe` code: raw reads and writes of those heap
//! runs, and [`LocalBuf`]s made over them. Everything else in the model goes through
//! [`Memory::read`] and [`Memory::write`]. It must never decide anything about the device.

#![allow(unsafe_code)]

use alloc::alloc::{Layout, alloc_zeroed, dealloc};
use alloc::collections::BTreeMap;
use core::ptr::NonNull;

use remora_rmem::LocalBuf;

use crate::platform::PAGE_SIZE;

/// Where the first run's fake physical address starts.
const PHYS_BASE: u64 = 0x1_0000_0000;

struct Run {
    ptr: NonNull<u8>,
    pages: usize,
}

/// Heap runs by fake physical address.
pub(crate) struct Memory {
    runs: BTreeMap<u64, Run>,
    next_phys: u64,
    pages: usize,
}

// SAFETY: the runs are plain heap memory owned by this value; the model only reaches them
// under its lock, so moving the owner between threads moves exclusive access with it.
unsafe impl Send for Memory {}

impl Memory {
    pub fn new() -> Self {
        Memory { runs: BTreeMap::new(), next_phys: PHYS_BASE, pages: 0 }
    }

    fn layout(pages: usize) -> Layout {
        Layout::from_size_align(pages * PAGE_SIZE, PAGE_SIZE).expect("page layout")
    }

    /// `pages` zeroed pages; their fake physical address.
    pub fn alloc(&mut self, pages: usize) -> Option<u64> {
        if pages == 0 {
            return None;
        }
        // SAFETY: the layout has a non-zero size.
        let ptr = NonNull::new(unsafe { alloc_zeroed(Self::layout(pages)) })?;
        let phys = self.next_phys;
        self.next_phys += ((pages + 1) * PAGE_SIZE) as u64;
        self.runs.insert(phys, Run { ptr, pages });
        self.pages += pages;
        Some(phys)
    }

    /// Frees the run at `phys`, which must have `pages` pages.
    pub fn free(&mut self, phys: u64, pages: usize) -> Result<(), &'static str> {
        match self.runs.get(&phys) {
            Some(run) if run.pages == pages => {}
            Some(_) => return Err("freed with another page count than it was allocated with"),
            None => return Err("freed memory that is not the start of an allocation"),
        }
        let run = self.runs.remove(&phys).expect("checked");
        self.pages -= run.pages;
        // SAFETY: allocated in `alloc` with the same layout, and removed from the table so
        // nothing reaches it again.
        unsafe { dealloc(run.ptr.as_ptr(), Self::layout(run.pages)) };
        Ok(())
    }

    /// Pages allocated now.
    pub fn allocated_pages(&self) -> usize {
        self.pages
    }

    /// The run holding `phys .. phys + len`, and the offset in it.
    fn find(&self, phys: u64, len: usize) -> Option<(&Run, usize)> {
        let (&start, run) = self.runs.range(..=phys).next_back()?;
        let off = (phys - start) as usize;
        (off.checked_add(len)? <= run.pages * PAGE_SIZE).then_some((run, off))
    }

    /// Whether `phys .. phys + len` is allocated memory.
    pub fn contains(&self, phys: u64, len: usize) -> bool {
        self.find(phys, len).is_some()
    }

    /// Copies memory out; false (and `out` zeroed) if not all of it is allocated.
    pub fn read(&self, phys: u64, out: &mut [u8]) -> bool {
        match self.find(phys, out.len()) {
            Some((run, off)) => {
                // SAFETY: `find` checked that `off + len` lies inside the run, which is
                // live heap memory; `out` is a distinct Rust buffer.
                unsafe {
                    core::ptr::copy_nonoverlapping(
                        run.ptr.as_ptr().add(off),
                        out.as_mut_ptr(),
                        out.len(),
                    )
                };
                true
            }
            None => {
                out.fill(0);
                false
            }
        }
    }

    /// Copies memory in; false (nothing written) if not all of it is allocated.
    pub fn write(&mut self, phys: u64, data: &[u8]) -> bool {
        match self.find(phys, data.len()) {
            Some((run, off)) => {
                // SAFETY: as in `read`; `&mut self` makes this the only access now.
                unsafe {
                    core::ptr::copy_nonoverlapping(
                        data.as_ptr(),
                        run.ptr.as_ptr().add(off),
                        data.len(),
                    )
                };
                true
            }
            None => false,
        }
    }

    /// A [`LocalBuf`] over a fresh run of `pages` pages.
    pub fn local_buf(&mut self, pages: usize) -> Option<LocalBuf> {
        let phys = self.alloc(pages)?;
        let (run, _) = self.find(phys, pages * PAGE_SIZE)?;
        let virt = run.ptr;
        // SAFETY: the run is live until freed through `free_local_buf` (which takes the
        // LocalBuf back) or the model is dropped; its CPU address is `virt`, its device
        // address `phys`; nothing else hands it out, so the holder has it alone (the
        // simulated device reaches it only as DMA, which the contract allows).
        Some(unsafe { LocalBuf::new(virt, phys, pages * PAGE_SIZE) })
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        for (_, run) in core::mem::take(&mut self.runs) {
            // SAFETY: every run was allocated in `alloc` with this layout and is freed
            // once, here or in `free` (which removes it from the table).
            unsafe { dealloc(run.ptr.as_ptr(), Self::layout(run.pages)) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_separate_and_checked() {
        let mut m = Memory::new();
        let a = m.alloc(1).unwrap();
        let b = m.alloc(2).unwrap();
        assert_eq!(a % 4096, 0);
        assert!(b > a + 4096, "a gap page separates runs");
        assert!(m.write(b + 4096, &[1, 2, 3]));
        let mut out = [0u8; 3];
        assert!(m.read(b + 4096, &mut out));
        assert_eq!(out, [1, 2, 3]);
        assert!(!m.write(a + 4095, &[0, 0]), "crossing out of a run");
        assert!(!m.contains(a + 4096, 1));
        assert!(m.free(b, 1).is_err());
        assert!(m.free(b, 2).is_ok());
        assert!(!m.contains(b, 1));
        assert_eq!(m.allocated_pages(), 1);
    }
}

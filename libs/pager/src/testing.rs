//! Host stand-ins for the machine around the pager, for tests and for tools that replay
//! fault traces (the prefetch library's replay): frames on the heap, page tables as leaked
//! arrays, a CPU that sets accessed and dirty bits, and an in-memory transport that
//! completes requests in any order. Not for the image.

#![allow(unsafe_code)]
#![allow(missing_docs, reason = "test scaffolding, described by the module docs")]

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::ptr::NonNull;

use remora_mmu::testing::touch;
use remora_mmu::{AtomicPte, Entries, FarPte};
use remora_rmem::{
    Completion, Direction, LocalBuf, PostError, PostRejected, Transport, TransportStats, check_post,
};

use crate::{FrameMemory, Pager};

pub const PAGE: u64 = 4096;
pub const BASE: u64 = 0x1000_0000_0000;

/// The memory node and the link, in one: requests complete when polled, in an order
/// chosen by a seeded generator, and data moves at completion time (so a frame that
/// changed under a write-back would be caught).
pub struct FakeTransport {
    pub node: BTreeMap<u64, Box<[u8; 4096]>>,
    pending: Vec<(u64, LocalBuf, u64, Direction)>,
    capacity: usize,
    region_size: u64,
    rng: u64,
    pub stats: TransportStats,
    /// Complete nothing until this many polls have passed (a slow link).
    pub delay_polls: u32,
    polls: u32,
}

impl FakeTransport {
    pub fn new(region_size: u64, capacity: usize, seed: u64) -> Self {
        FakeTransport {
            node: BTreeMap::new(),
            pending: Vec::new(),
            capacity,
            region_size,
            rng: seed | 1,
            stats: TransportStats::default(),
            delay_polls: 0,
            polls: 0,
        }
    }

    fn next(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn post(
        &mut self,
        remote: u64,
        buf: LocalBuf,
        tag: u64,
        dir: Direction,
    ) -> Result<(), PostRejected> {
        if let Err(error) = check_post(remote, buf.len(), self.region_size, 4096) {
            return Err(PostRejected { error, buf });
        }
        if self.pending.len() >= self.capacity {
            return Err(PostRejected {
                error: PostError::QueueFull { capacity: self.capacity },
                buf,
            });
        }
        self.pending.push((remote, buf, tag, dir));
        Ok(())
    }
}

impl Transport for FakeTransport {
    fn post_read(&mut self, remote: u64, local: LocalBuf, tag: u64) -> Result<(), PostRejected> {
        self.post(remote, local, tag, Direction::Read)
    }

    fn post_write(&mut self, remote: u64, local: LocalBuf, tag: u64) -> Result<(), PostRejected> {
        self.post(remote, local, tag, Direction::Write)
    }

    fn poll(&mut self) -> Option<Completion> {
        self.polls += 1;
        if self.pending.is_empty() || !self.polls.is_multiple_of(self.delay_polls + 1) {
            return None;
        }
        let i = (self.next() % self.pending.len() as u64) as usize;
        let (remote, mut buf, tag, direction) = self.pending.swap_remove(i);
        match direction {
            Direction::Read => match self.node.get(&remote) {
                Some(page) => buf.as_mut_slice().copy_from_slice(&page[..]),
                None => buf.as_mut_slice().fill(0),
            },
            Direction::Write => {
                let mut page = Box::new([0u8; 4096]);
                page.copy_from_slice(buf.as_slice());
                self.node.insert(remote, page);
            }
        }
        Some(Completion { tag, direction, remote, buf, status: Ok(()) })
    }

    fn in_flight(&self) -> usize {
        self.pending.len()
    }

    fn capacity(&self) -> usize {
        self.capacity
    }

    fn region_size(&self) -> u64 {
        self.region_size
    }

    fn max_transfer_len(&self) -> usize {
        4096
    }

    fn stats(&self) -> TransportStats {
        self.stats
    }
}

/// Frames on the heap, with made-up physical addresses.
pub struct HeapFrames {
    frames: Vec<(NonNull<u8>, u64)>,
}

impl HeapFrames {
    pub fn new(count: usize) -> Self {
        let frames = (0..count)
            .map(|i| {
                let page: &'static mut [u8; 4096] = Box::leak(Box::new([0xa5u8; 4096]));
                (NonNull::new(page.as_mut_ptr()).unwrap(), 0x4000_0000 + i as u64 * PAGE)
            })
            .collect();
        HeapFrames { frames }
    }
}

// SAFETY: each frame is a distinct leaked heap page used by nothing else.
unsafe impl FrameMemory for HeapFrames {
    fn frames(&self) -> usize {
        self.frames.len()
    }
    fn frame(&self, index: usize) -> (NonNull<u8>, u64) {
        self.frames[index]
    }
}

pub fn leaked_tables(count: usize) -> Vec<&'static Entries> {
    (0..count)
        .map(|_| {
            let table: Box<Entries> =
                Box::new(core::array::from_fn(|_| AtomicPte::new(FarPte::Untouched)));
            &*Box::leak(table)
        })
        .collect()
}

/// The CPU: an access to `addr`, faulting into the pager as often as needed. A write
/// stores `value`; the return is the value at `addr` after the access.
pub fn access<T: Transport>(pager: &mut Pager<T>, addr: u64, write: Option<u64>) -> u64 {
    let page = pager.region().page_of(addr).expect("a far address");
    loop {
        let pte = pager.region().pte(page);
        if let Some(present) = touch(pte, write.is_some()) {
            let frame =
                pager.frame_ptr(present.addr().as_u64()).expect("a mapped frame is a cache frame");
            // SAFETY: the frame is a cache frame of 4096 bytes; the offset is inside it.
            let at = unsafe { frame.as_ptr().add((addr % PAGE) as usize) as *mut u64 };
            // SAFETY: the frame is mapped at this page, which is what the CPU would use.
            unsafe {
                if let Some(v) = write {
                    at.write_unaligned(v);
                }
                return at.read_unaligned();
            }
        }
        pager.handle_fault(addr).expect("the fault is resolved");
    }
}

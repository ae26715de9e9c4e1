//! Cost of the allocators' hot operations, one alloc + free pair per iteration.
//!
//! `cargo bench -p remora-alloc --bench frames -- --quick`
//!
//! - buddy: 1 GiB of frames (262144), `MAX_ORDER` 10. "fresh" starts from whole order-10
//!   blocks, so each pair splits 10 levels and merges them back (the worst case);
//!   "fragmented" keeps every other frame of the first 8 MiB allocated, so a free block of
//!   the order is at hand and nothing merges (the common case under load).
//! - far heap: a 1 GiB region with 10 000 live 64-byte objects and 100 live 16 KiB runs
//!   around the measured pair.

#![allow(clippy::single_range_in_vec_init, reason = "a memory map with one usable range")]

use std::alloc::Layout;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use remora_alloc::{BuddyAllocator, FRAME_SIZE, FarHeap};

const GIB: u64 = 1 << 30;

fn buddy(c: &mut Criterion) {
    let usable = [0..GIB];
    let words = BuddyAllocator::<10>::storage_words(&usable).unwrap();

    let mut storage = vec![0u64; words];
    let mut fresh = BuddyAllocator::<10>::new(&usable, &mut storage).unwrap();
    c.bench_function("buddy/order0 alloc+free (fresh, split+merge 10 levels)", |b| {
        b.iter(|| {
            let frame = fresh.alloc(black_box(0)).unwrap();
            fresh.free(frame, 0).unwrap();
        })
    });
    c.bench_function("buddy/order4 alloc+free (fresh, split+merge 6 levels)", |b| {
        b.iter(|| {
            let block = fresh.alloc(black_box(4)).unwrap();
            fresh.free(block, 4).unwrap();
        })
    });

    let mut storage = vec![0u64; words];
    let mut fragmented = BuddyAllocator::<10>::new(&usable, &mut storage).unwrap();
    let held: Vec<u64> = (0..2048).map(|_| fragmented.alloc(0).unwrap()).collect();
    for frame in held.iter().step_by(2) {
        fragmented.free(*frame, 0).unwrap();
    }
    let blocks: Vec<u64> = (0..256).map(|_| fragmented.alloc(4).unwrap()).collect();
    for block in blocks.iter().step_by(2) {
        fragmented.free(*block, 4).unwrap();
    }
    c.bench_function("buddy/order0 alloc+free (fragmented)", |b| {
        b.iter(|| {
            let frame = fragmented.alloc(black_box(0)).unwrap();
            fragmented.free(frame, 0).unwrap();
        })
    });
    c.bench_function("buddy/order4 alloc+free (fragmented)", |b| {
        b.iter(|| {
            let block = fragmented.alloc(black_box(4)).unwrap();
            fragmented.free(block, 4).unwrap();
        })
    });
    assert!(fragmented.stats().free_frames < fragmented.stats().total_frames);
    assert_eq!(FRAME_SIZE, 4096);
}

fn far_heap(c: &mut Criterion) {
    let base = 0x4000_0000_0000usize;
    let mut heap = FarHeap::new(base, GIB as usize).unwrap();
    let small = Layout::from_size_align(64, 8).unwrap();
    let large = Layout::from_size_align(16 * 1024, 8).unwrap();
    let live_small: Vec<usize> = (0..10_000).map(|_| heap.alloc(small).unwrap()).collect();
    let live_large: Vec<usize> = (0..100).map(|_| heap.alloc(large).unwrap()).collect();

    c.bench_function("far/small 64B alloc+free", |b| {
        b.iter(|| {
            let addr = heap.alloc(black_box(small)).unwrap();
            heap.free(addr, small).unwrap();
        })
    });
    c.bench_function("far/large 16KiB alloc+free", |b| {
        b.iter(|| {
            let addr = heap.alloc(black_box(large)).unwrap();
            heap.free(addr, large).unwrap();
        })
    });
    assert_eq!(heap.stats().small_objects, live_small.len());
    assert_eq!(heap.stats().large_runs, live_large.len());
}

criterion_group!(benches, buddy, far_heap);
criterion_main!(benches);

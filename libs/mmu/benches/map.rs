//! Page-table costs on the host arena: map+unmap of a 4 KiB page with warm tables,
//! translate, and harvest of the evictor's 32-page batch.
//!
//! `cargo bench -p remora-mmu --bench map -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use remora_mmu::testing::{Access, TableArena, access};
use remora_mmu::{
    AddressSpace, ClearBits, FlushBatch, Page, PageTableFlags, PhysAddr, PhysFrame, SCAN_PAGES,
    Size4KiB, Tlb, VirtAddr,
};

/// A TLB that only counts, so the benchmark measures the page tables, not a record.
#[derive(Default)]
struct CountingTlb(u64);

impl Tlb for CountingTlb {
    fn flush_page(&mut self, addr: VirtAddr) {
        self.0 += black_box(addr).as_u64() & 1;
    }

    fn flush_all(&mut self) {
        self.0 += 1;
    }
}

const BASE: u64 = 0x7f00_0000_0000;

fn page(i: u64) -> Page<Size4KiB> {
    Page::containing_address(VirtAddr::new(BASE + i * 4096))
}

fn frame(i: u64) -> PhysFrame {
    PhysFrame::containing_address(PhysAddr::new(0x10_0000 + i * 4096))
}

fn map_unmap(c: &mut Criterion) {
    let mut space = AddressSpace::new(TableArena::new()).unwrap();
    space.ensure_tables(Page::range(page(0), page(512))).unwrap();
    let mut batch: FlushBatch = FlushBatch::new();
    let mut tlb = CountingTlb::default();
    let mut i = 0u64;
    c.bench_function("map+unmap 4KiB (warm tables)", |b| {
        b.iter(|| {
            let p = page(i % 512);
            space.map(p, frame(i % 512), PageTableFlags::WRITABLE).unwrap();
            black_box(space.unmap(p, &mut batch).unwrap());
            if batch.pages().len() == 32 {
                batch.flush(&mut tlb);
            }
            i += 1;
        })
    });
    batch.flush(&mut tlb);
}

fn translate(c: &mut Criterion) {
    let mut space = AddressSpace::new(TableArena::new()).unwrap();
    space.map_range(Page::range(page(0), page(512)), frame(0), PageTableFlags::WRITABLE).unwrap();
    let mut i = 0u64;
    c.bench_function("translate", |b| {
        b.iter(|| {
            let addr = VirtAddr::new(BASE + (i % 512) * 4096 + 123);
            i += 1;
            black_box(space.translate(black_box(addr)))
        })
    });
}

fn harvest(c: &mut Criterion) {
    let mut space = AddressSpace::new(TableArena::new()).unwrap();
    space.map_range(Page::range(page(0), page(512)), frame(0), PageTableFlags::WRITABLE).unwrap();
    let mut tlb = CountingTlb::default();
    // Half of each window accessed, a quarter written, as the CPU would leave them;
    // the harvest clears them, so they are set again (outside the timing) each round.
    let touch = |space: &AddressSpace<TableArena>, first: u64| {
        for k in 0..SCAN_PAGES as u64 {
            let addr = page(first + k).start_address();
            match k % 4 {
                0 => drop(access(space, addr, Access::Write)),
                1 => drop(access(space, addr, Access::Read)),
                _ => {}
            }
        }
    };
    let mut window = 0u64;
    c.bench_function("harvest 32 pages (scan, clear A+D)", |b| {
        b.iter_batched_ref(
            || {
                let first = (window % 16) * SCAN_PAGES as u64;
                window += 1;
                touch(&space, first);
                (page(first), FlushBatch::<32>::new())
            },
            |(first, batch)| {
                let scan = space.scan(*first, ClearBits::AccessedAndDirty, batch);
                batch.flush(&mut tlb);
                black_box(scan)
            },
            criterion::BatchSize::SmallInput,
        )
    });
    c.bench_function("scan 32 untouched pages (nothing to clear)", |b| {
        b.iter(|| {
            let mut batch = FlushBatch::<32>::new();
            black_box(space.scan(page(0), ClearBits::AccessedAndDirty, &mut batch))
        })
    });
}

criterion_group!(benches, map_unmap, translate, harvest);
criterion_main!(benches);

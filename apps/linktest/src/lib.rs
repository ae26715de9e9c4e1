//! `linktest`: the far-memory transport on its own, without the pager.
//!
//! 1. Integrity: writes a pattern over `size=` MiB (default 64) of the region, page by
//!    page with as many writes in flight as the transport takes, reads it all back in runs
//!    of pages, and checks every byte.
//! 2. Latency: `samples=` (default 2000) reads of one page with nothing else in flight:
//!    the round trip p50 and p99.
//! 3. Throughput: single-page reads kept `depth=` (default: the transport's capacity)
//!    deep for `seconds=` (default 2): MiB/s.
//!
//! Prints `linktest: key=value ...`; on a transport error (the memory node is gone)
//! prints what happened and exits with failure.

#![no_std]

extern crate alloc;

use alloc::vec::Vec;
use core::fmt::Write as _;
use core::ptr::NonNull;

use remora_alloc::FRAMES;
use remora_kvm::paging::phys_to_virt;
use remora_kvm::{BootInfo, ExitStatus, println, time};
use remora_rmem::handoff::{self, DynTransport};
use remora_rmem::{Completion, LocalBuf, PostError, Transport};

const PAGE: usize = 4096;

/// Local pages lent to the transport, one per request slot.
struct Buffers {
    free: Vec<(NonNull<u8>, u64)>,
}

impl Buffers {
    fn new(count: usize, pages_each: usize) -> Option<Buffers> {
        let order = pages_each.next_power_of_two().trailing_zeros() as usize;
        let mut free = Vec::new();
        for _ in 0..count {
            let phys = FRAMES.alloc(order).ok()?;
            free.push((NonNull::new(phys_to_virt(phys) as *mut u8)?, phys));
        }
        Some(Buffers { free })
    }

    fn lend(&mut self, len: usize) -> Option<LocalBuf> {
        let (virt, phys) = self.free.pop()?;
        // SAFETY: frames from the frame allocator, owned by this app, each lent once at a
        // time (taken out of `free` until its completion gives it back).
        Some(unsafe { LocalBuf::new(virt, phys, len) })
    }

    fn give_back(&mut self, buf: LocalBuf) {
        let (virt, phys, _) = buf.into_raw();
        self.free.push((virt, phys));
    }
}

fn pattern(page: u64, word: usize) -> u64 {
    let x = page.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ (word as u64).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^ (x >> 31)
}

/// Waits for one completion; a failed one ends the test (its error is printed).
fn next(t: &mut DynTransport) -> Result<Completion, ExitStatus> {
    loop {
        if let Some(c) = t.poll() {
            return match &c.status {
                Ok(()) => Ok(c),
                Err(e) => {
                    println!("linktest: error={e}");
                    Err(ExitStatus::Failure)
                }
            };
        }
    }
}

pub fn main(boot: &'static BootInfo) -> ExitStatus {
    let args = boot.cmdline;
    let number = |k: &str, d: u64| args.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(d);
    let Some(mut t) = handoff::take() else {
        println!("linktest: error=no far-memory transport in this image");
        return ExitStatus::Failure;
    };
    let mib = number("size", 64);
    let pages = (mib * 1024 * 1024 / PAGE as u64).min(t.region_size() / PAGE as u64);
    let run_pages = (t.max_transfer_len() / PAGE).min(16);
    let depth = (number("depth", t.capacity() as u64) as usize).clamp(1, t.capacity());
    let Some(mut bufs) = Buffers::new(t.capacity(), run_pages) else {
        println!("linktest: error=no local frames for buffers");
        return ExitStatus::Failure;
    };

    // 1. Write the pattern, one page per request, the queue kept full.
    let started = time::now_ns();
    let mut next_page = 0;
    let mut in_flight = 0;
    while next_page < pages || in_flight > 0 {
        while next_page < pages && in_flight < t.capacity() {
            let mut buf = bufs.lend(PAGE).expect("one buffer per slot");
            for (i, w) in buf.as_mut_slice().chunks_exact_mut(8).enumerate() {
                w.copy_from_slice(&pattern(next_page, i).to_le_bytes());
            }
            match t.post_write(next_page * PAGE as u64, buf, next_page) {
                Ok(()) => {
                    in_flight += 1;
                    next_page += 1;
                }
                Err(r) if matches!(r.error, PostError::QueueFull { .. }) => {
                    bufs.give_back(r.buf);
                    break;
                }
                Err(r) => {
                    println!("linktest: error={}", r.error);
                    return ExitStatus::Failure;
                }
            }
        }
        match next(&mut t) {
            Ok(c) => bufs.give_back(c.buf),
            Err(status) => return status,
        }
        in_flight -= 1;
    }
    let write_ns = time::now_ns() - started;

    // Read it all back in runs, and check every word.
    let started = time::now_ns();
    let runs = pages.div_ceil(run_pages as u64);
    let (mut next_run, mut in_flight, mut bad) = (0u64, 0usize, None);
    while next_run < runs || in_flight > 0 {
        while next_run < runs && in_flight < t.capacity() {
            let first = next_run * run_pages as u64;
            let len = ((pages - first).min(run_pages as u64) as usize) * PAGE;
            let buf = bufs.lend(len).expect("one buffer per slot");
            if let Err(r) = t.post_read(first * PAGE as u64, buf, first) {
                bufs.give_back(r.buf);
                break;
            }
            in_flight += 1;
            next_run += 1;
        }
        let c = match next(&mut t) {
            Ok(c) => c,
            Err(status) => return status,
        };
        in_flight -= 1;
        for (p, page) in c.buf.as_slice().chunks_exact(PAGE).enumerate() {
            let page_no = c.tag + p as u64;
            for (i, w) in page.chunks_exact(8).enumerate() {
                let got = u64::from_le_bytes(w.try_into().expect("8 bytes"));
                if got != pattern(page_no, i) && bad.is_none() {
                    bad = Some((page_no, i, got));
                }
            }
        }
        bufs.give_back(c.buf);
    }
    let read_ns = time::now_ns() - started;

    // 2. Round trips with nothing else in flight.
    let samples = number("samples", 2000) as usize;
    let mut rtt: Vec<u32> = Vec::with_capacity(samples);
    for s in 0..samples as u64 {
        let buf = bufs.lend(PAGE).expect("a buffer");
        let page = (s * 7919) % pages;
        let t0 = time::now_ns();
        if let Err(r) = t.post_read(page * PAGE as u64, buf, page) {
            println!("linktest: error={}", r.error);
            return ExitStatus::Failure;
        }
        match next(&mut t) {
            Ok(c) => {
                rtt.push((time::now_ns() - t0).min(u32::MAX as u64) as u32);
                bufs.give_back(c.buf);
            }
            Err(status) => return status,
        }
    }
    rtt.sort_unstable();
    let pct = |p: usize| {
        rtt.get((rtt.len() * p / 100).min(rtt.len().saturating_sub(1))).copied().unwrap_or(0)
    };

    // 3. Throughput at depth.
    let seconds = number("seconds", 2);
    let (mut done, mut in_flight, mut s) = (0u64, 0usize, 0u64);
    let started = time::now_ns();
    let end = started + seconds * 1_000_000_000;
    while time::now_ns() < end || in_flight > 0 {
        while time::now_ns() < end && in_flight < depth {
            let buf = bufs.lend(PAGE).expect("a buffer");
            let page = (s * 104_729) % pages;
            s += 1;
            if let Err(r) = t.post_read(page * PAGE as u64, buf, page) {
                bufs.give_back(r.buf);
                break;
            }
            in_flight += 1;
        }
        match next(&mut t) {
            Ok(c) => bufs.give_back(c.buf),
            Err(status) => return status,
        }
        in_flight -= 1;
        done += 1;
    }
    let depth_ns = time::now_ns() - started;

    let mib_s = |bytes: u64, ns: u64| bytes as f64 / (1024.0 * 1024.0) / (ns.max(1) as f64 / 1e9);
    let stats = t.stats();
    let mut line = heapless::String::<512>::new();
    let _ = write!(
        line,
        "linktest: mib={} write_mib_s={:.1} read_mib_s={:.1} rtt_p50_us={:.1} rtt_p99_us={:.1} depth={depth} depth_read_mib_s={:.1} \
         retransmitted={} timeouts={} duplicates={} integrity={}",
        (pages * PAGE as u64) >> 20,
        mib_s(pages * PAGE as u64, write_ns),
        mib_s(pages * PAGE as u64, read_ns),
        pct(50) as f64 / 1000.0,
        pct(99) as f64 / 1000.0,
        mib_s(done * PAGE as u64, depth_ns),
        stats.retransmitted_frames,
        stats.timeouts,
        stats.duplicates_dropped,
        if bad.is_none() { "ok" } else { "MISMATCH" },
    );
    println!("{line}");
    if let Some((page, word, got)) = bad {
        println!(
            "linktest: first mismatch at page {page} word {word}: {got:#x}, expected {:#x}",
            pattern(page, word)
        );
        return ExitStatus::Failure;
    }
    ExitStatus::Success
}

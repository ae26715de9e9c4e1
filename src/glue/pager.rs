//! Remote paging at boot and at run time: the far region's page tables, the local frame
//! cache, the pager behind its lock (with the prefetch policy the configuration chose),
//! the page-fault handler, the far heap, and the fault trace (`trace=<pages>` on the
//! command line records the far pages reached, for replay on the host).
//!
//! The page-fault handler runs with interrupts off and takes the pager lock; so does every
//! other user of the pager (the evictor thread, INFO-style readers), one step at a time.
//! On an error the pager cannot recover from (the memory node is gone) the image prints
//! why and exits with failure: the application's memory is no longer there.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt::Write as _;
use core::ptr::NonNull;

use remora_alloc::{FRAMES, HEAP, IrqLock};
use remora_kvm::kspace::{self, DirectMap};
use remora_kvm::paging::phys_to_virt;
use remora_kvm::traps::{self, FaultOutcome, TrapFrame};
use remora_kvm::{BootInfo, ExitStatus, time};
use remora_mmu::{Page, PageTableFlags, VirtAddr};
use remora_pager::observe::TraceChunk;
use remora_pager::{FarRegion, FrameMemory, Pager, PagerError};
use x86_64::registers::model_specific::{Efer, EferFlags};

use crate::config;
use remora_rmem::handoff::{self, DynTransport};

/// The kernel's pager.
pub type KernelPager = Pager<DynTransport>;

/// The pager, behind the lock the fault handler and the evictor share.
pub static PAGER: IrqLock<Option<KernelPager>> = IrqLock::new(None);

/// Frames allocated at boot for the cache, in blocks of up to 4 MiB.
struct CacheFrames {
    frames: Vec<(NonNull<u8>, u64)>,
}

// SAFETY: each frame comes from the frame allocator, is used by nothing else, and is
// reached through the direct map for the kernel's lifetime.
unsafe impl FrameMemory for CacheFrames {
    fn frames(&self) -> usize {
        self.frames.len()
    }
    fn frame(&self, index: usize) -> (NonNull<u8>, u64) {
        self.frames[index]
    }
}

pub(crate) fn fatal(what: &dyn core::fmt::Display) -> ! {
    let mut out = remora_kvm::console::emergency_writer();
    let _ = writeln!(out, "\n!!! far memory: {what}");
    remora_kvm::exit(ExitStatus::Failure)
}

fn cache_frames(bytes: u64) -> CacheFrames {
    let mut left = bytes.div_ceil(4096);
    let mut frames = Vec::with_capacity(left as usize);
    while left > 0 {
        // The largest block that still fits, down to single frames.
        let mut order = (63 - left.leading_zeros() as usize).min(10);
        let phys = loop {
            match FRAMES.alloc(order) {
                Ok(phys) => break phys,
                Err(_) if order > 0 => order -= 1,
                Err(_) => fatal(&format_args!(
                    "pager.local_memory = {} MiB does not fit in RAM: {} frames short; lower it \
                     or give the guest more memory (kvm.guest_memory)",
                    bytes >> 20,
                    left
                )),
            }
        };
        for i in 0..1u64 << order {
            let p = phys + i * 4096;
            let virt = NonNull::new(phys_to_virt(p) as *mut u8).expect("direct map is not at 0");
            frames.push((virt, p));
        }
        left -= 1 << order;
    }
    CacheFrames { frames }
}

/// The leaf tables of `[base, base + size)`, created now and kept for good.
fn region_tables(base: u64, size: u64) -> Vec<&'static remora_mmu::Entries> {
    let chunks = size.div_ceil(2 << 20);
    (0..chunks)
        .map(|i| {
            let page = Page::containing_address(VirtAddr::new(base + i * (2 << 20)));
            let table = kspace::with_kernel_space(|s| s.leaf_table(page)).unwrap_or_else(|e| {
                fatal(&format_args!("building the far region's page tables: {e}"))
            });
            // SAFETY: a leaf table of the kernel address space, reached through the direct
            // map; the far region's tables are never freed (nothing calls
            // free_empty_tables on the kernel space and the space lives forever).
            unsafe { remora_mmu::static_entries(&DirectMap, table) }
        })
        .collect()
}

fn on_page_fault(frame: &mut TrapFrame, cr2: u64) -> FaultOutcome {
    let base = config::pager::FAR_BASE as u64;
    if cr2 < base || cr2 - base >= config::rmem::REGION_SIZE as u64 || frame.error_code & 1 != 0 {
        // Not far memory, or a protection fault on a mapped page: not the pager's.
        return FaultOutcome::NotHandled;
    }
    let mut guard = PAGER.lock();
    let Some(pager) = guard.as_mut() else { return FaultOutcome::NotHandled };
    match pager.handle_fault(cr2) {
        Ok(_) => {
            let low = pager.free_frames() < super::evictor::low_watermark();
            drop(guard);
            if low {
                super::evictor::wake(frame.rflags & (1 << 9) != 0);
            }
            FaultOutcome::Resolved
        }
        Err(PagerError::NotFarMemory { .. }) => FaultOutcome::NotHandled,
        Err(e) => fatal(&e),
    }
}

/// Runs `f` on the pager, if there is one.
pub fn with_pager<R>(f: impl FnOnce(&mut KernelPager) -> R) -> Option<R> {
    PAGER.lock().as_mut().map(f)
}

/// Most pages `trace=` may ask to keep (8 MiB of the kernel heap).
const MAX_TRACE: usize = 1 << 20;

/// Copies recorded pages `from..` into `out` through a buffer on this stack: the pager's
/// lock is held only while copying into that buffer, so `out` may be in far memory.
fn read_trace(from: usize, out: &mut [u64]) -> Option<TraceChunk> {
    let mut local = [0u64; 128];
    let mut chunk = TraceChunk { copied: 0, kept: 0, recorded: 0 };
    loop {
        let want = (out.len() - chunk.copied).min(local.len());
        let (copied, kept, recorded) = with_pager(|p| {
            let trace = p.trace()?;
            Some((
                trace.copy_out(from + chunk.copied, &mut local[..want]),
                trace.len(),
                trace.recorded(),
            ))
        })??;
        out[chunk.copied..chunk.copied + copied].copy_from_slice(&local[..copied]);
        chunk = TraceChunk { copied: chunk.copied + copied, kept, recorded };
        if copied < want || chunk.copied == out.len() {
            return Some(chunk);
        }
    }
}

/// `4096`, `64M`, `1G`: bytes with an optional binary suffix.
fn parse_size(text: &str) -> Option<u64> {
    let (digits, shift) = match text.as_bytes().last()? {
        b'K' | b'k' => (&text[..text.len() - 1], 10),
        b'M' | b'm' => (&text[..text.len() - 1], 20),
        b'G' | b'g' => (&text[..text.len() - 1], 30),
        _ => (text, 0),
    };
    digits.parse::<u64>().ok()?.checked_mul(1 << shift)
}

pub fn init(boot: &'static BootInfo) {
    let base = config::pager::FAR_BASE as u64;
    let size = config::rmem::REGION_SIZE as u64;
    // `pager.local_memory=` on the command line overrides the configuration for a run
    // (the bench sweeps it without rebuilding the image).
    let local = match boot.cmdline.get("pager.local_memory").map(parse_size) {
        None => config::pager::LOCAL_MEMORY as u64,
        Some(Some(bytes)) if bytes >= 64 * 4096 => bytes,
        Some(_) => {
            fatal(&"pager.local_memory= must be a size of at least 256K (bytes, or with K, M, G)")
        }
    };
    let Some(transport) = handoff::take() else {
        fatal(&"the pager needs the far-memory transport, which did not start");
    };
    let tables = region_tables(base, size);
    let memory = cache_frames(local);
    let mut flags = PageTableFlags::WRITABLE;
    if Efer::read().contains(EferFlags::NO_EXECUTE_ENABLE) {
        flags |= PageTableFlags::NO_EXECUTE;
    }
    let mut pager = Pager::new(
        FarRegion::new(base, size / 4096, tables),
        &memory,
        transport,
        super::evictor::policy(),
        Box::new(remora_mmu::HardwareTlb),
        time::now_ns,
        flags,
    );
    #[cfg(feature = "lib-prefetch")]
    pager.set_prefetch_policy(super::prefetch::policy());
    match boot.cmdline.get("trace").map(str::parse::<usize>) {
        None => {}
        Some(Ok(pages)) if (1..=MAX_TRACE).contains(&pages) => {
            pager.enable_trace(pages);
            log::info!("pager: recording the last {pages} far pages reached (trace=)");
        }
        Some(_) => fatal(&format_args!("trace= takes a number of pages from 1 to {MAX_TRACE}")),
    }
    log::info!(
        "pager: far region {:#x}+{} MiB, local cache {} frames ({} MiB, {}x smaller), victim policy {}, prefetch policy {}",
        base,
        size >> 20,
        pager.frame_count(),
        local >> 20,
        size / local.max(1),
        pager.policy_name(),
        pager.prefetch_policy_name()
    );
    *PAGER.lock() = Some(pager);
    traps::set_page_fault_handler(on_page_fault);
    remora_pager::observe::set_stats_source(|| with_pager(|p| p.stats().clone()));
    remora_pager::observe::set_trace_source(read_trace);
    remora_pager::observe::set_probe(|samples| {
        match with_pager(|p| p.probe_round_trips(samples))? {
            Ok(histogram) => Some(histogram),
            Err(e) => fatal(&e),
        }
    });

    if config::pager::FAR_HEAP {
        if let Err(e) = HEAP.far().init(base as usize, size as usize) {
            fatal(&format_args!("the far heap could not be set up: {e:?}"));
        }
        HEAP.set_far_predicate(app_context);
        log::info!("pager: the application's heap is in far memory");
    }
}

/// Whether an allocation made now is the application's: interrupts on (kernel code that
/// must stay local runs with them off, or allocates at boot before routing is on).
fn app_context() -> bool {
    x86_64::instructions::interrupts::are_enabled()
}

/// Sends the application's allocations to far memory from now on (if configured).
pub fn start_app() {
    if config::pager::FAR_HEAP {
        HEAP.route_to_far(true);
    }
}

//! Threads: the scheduler's `Platform` on top of the KVM platform (TSC clock, one-shot APIC
//! timer, `sti; hlt`, stacks mapped in the kernel's stack range with an unmapped guard
//! page below each), the timer interrupt, and crash reports that name a thread whose stack
//! overflowed.

use core::fmt::Write;

use remora_alloc::{FRAMES, IrqLock};
use remora_kvm::kspace::{self, KERNEL_STACKS, KernelFlushBatch};
use remora_kvm::traps::{self, TrapFrame};
use remora_kvm::{BootInfo, time};
use remora_mmu::{Page, PageTableFlags, PhysAddr, PhysFrame, Size4KiB, VirtAddr};
use remora_sched::{Platform, SchedConfig, Stack};
use x86_64::instructions::interrupts;

use crate::config;

const PAGE: u64 = 4096;

/// Virtual address ranges for stacks: a bump pointer and the ranges given back.
struct StackSpace {
    next: u64,
    free: heapless::Vec<(u64, u64), 64>,
}

static STACK_SPACE: IrqLock<StackSpace> =
    IrqLock::new(StackSpace { next: KERNEL_STACKS.start, free: heapless::Vec::new() });

impl StackSpace {
    /// A range of `len` bytes (guard page included).
    fn take(&mut self, len: u64) -> Option<u64> {
        if let Some(i) = self.free.iter().position(|&(_, l)| l == len) {
            return Some(self.free.swap_remove(i).0);
        }
        let start = self.next;
        (start + len <= KERNEL_STACKS.end).then(|| {
            self.next += len;
            start
        })
    }

    fn give_back(&mut self, start: u64, len: u64) {
        if self.free.push((start, len)).is_err() {
            log::warn!("sched: stack address range {start:#x}+{len:#x} leaked (free list full)");
        }
    }
}

struct KernelPlatform;

static PLATFORM: KernelPlatform = KernelPlatform;

fn unmap_stack_pages(bottom: u64, pages: u64) {
    let mut batch = KernelFlushBatch::new();
    let frames: heapless::Vec<u64, 4096> = kspace::with_kernel_space(|space| {
        (0..pages)
            .filter_map(|i| {
                let page = Page::<Size4KiB>::containing_address(VirtAddr::new(bottom + i * PAGE));
                space.unmap(page, &mut batch).ok().map(|u| u.frame.start_address().as_u64())
            })
            .collect()
    });
    kspace::flush(&mut batch);
    for frame in frames {
        let _ = FRAMES.free(frame, 0);
    }
}

impl Platform for KernelPlatform {
    fn now_ns(&self) -> u64 {
        time::now_ns()
    }

    fn set_timer_deadline(&self, deadline_ns: u64) {
        time::set_deadline(deadline_ns);
    }

    fn halt_until_interrupt(&self) {
        interrupts::enable_and_hlt();
        interrupts::disable();
    }

    fn disable_interrupts(&self) -> bool {
        let were = interrupts::are_enabled();
        interrupts::disable();
        were
    }

    fn restore_interrupts(&self, were_enabled: bool) {
        if were_enabled {
            interrupts::enable();
        }
    }

    fn alloc_stack(&self, size: usize) -> Option<Stack> {
        let pages = (size as u64).div_ceil(PAGE).max(1);
        if pages > 4096 {
            return None;
        }
        let start = STACK_SPACE.lock().take((pages + 1) * PAGE)?;
        let bottom = start + PAGE; // the guard page stays unmapped
        let flags = PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE;
        for i in 0..pages {
            let mapped = FRAMES.alloc(0).ok().and_then(|phys| {
                let page = Page::<Size4KiB>::containing_address(VirtAddr::new(bottom + i * PAGE));
                let frame = PhysFrame::containing_address(PhysAddr::new(phys));
                let done = kspace::with_kernel_space(|space| space.map(page, frame, flags));
                if done.is_err() {
                    let _ = FRAMES.free(phys, 0);
                }
                done.ok()
            });
            if mapped.is_none() {
                unmap_stack_pages(bottom, i);
                STACK_SPACE.lock().give_back(start, (pages + 1) * PAGE);
                return None;
            }
        }
        Some(Stack { bottom: bottom as usize, top: (bottom + pages * PAGE) as usize })
    }

    fn free_stack(&self, stack: Stack) {
        let pages = stack.size() as u64 / PAGE;
        unmap_stack_pages(stack.bottom as u64, pages);
        STACK_SPACE.lock().give_back(stack.bottom as u64 - PAGE, (pages + 1) * PAGE);
    }
}

/// Adds the thread whose stack overflowed to a crash report.
fn report_hook(out: &mut dyn Write, _frame: &TrapFrame, cr2: Option<u64>) {
    if let Some(addr) = cr2
        && let Some((id, name)) = remora_sched::guard_page_owner(addr as usize)
    {
        let _ = writeln!(
            out,
            "    stack overflow: {addr:#x} is in the guard page below the stack of thread {} ({name})",
            id.as_u64()
        );
    }
}

pub fn init(_boot: &'static BootInfo) {
    let config =
        SchedConfig::from_options(config::sched::TIME_SLICE as u64, config::sched::STACK_SIZE);
    traps::set_report_hook(report_hook);
    time::set_timer_handler(remora_sched::on_timer_interrupt);
    match remora_sched::init(&PLATFORM, config) {
        Ok(_) => log::info!(
            "sched: time slice {} us, stacks {} KiB",
            config::sched::TIME_SLICE,
            config::sched::STACK_SIZE / 1024
        ),
        Err(e) => {
            log::error!("sched: {e:?}");
            remora_kvm::early_panic("the scheduler could not start");
        }
    }
    interrupts::enable();
}

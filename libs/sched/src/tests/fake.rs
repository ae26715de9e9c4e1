//! A fake platform for host tests: a clock that moves only when told, a one-shot timer that
//! "fires" (calls `on_timer_interrupt`) when the clock crosses its deadline with interrupts
//! enabled, an interrupt flag, and heap-allocated stacks.

use std::boxed::Box;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};

use crate::{Platform, Stack};

const NO_DEADLINE: u64 = u64::MAX;

pub(crate) struct FakePlatform {
    now: AtomicU64,
    deadline: AtomicU64,
    irq_enabled: AtomicBool,
    /// Live stacks by `bottom`; the boxes own the memory.
    stacks: Mutex<BTreeMap<usize, Box<[u128]>>>,
    pub(crate) stacks_allocated: AtomicUsize,
    pub(crate) stacks_freed: AtomicUsize,
    pub(crate) halts: AtomicUsize,
    pub(crate) fail_alloc: AtomicBool,
}

impl FakePlatform {
    pub(crate) fn new() -> &'static Self {
        Box::leak(Box::new(Self {
            now: AtomicU64::new(1_000_000),
            deadline: AtomicU64::new(NO_DEADLINE),
            irq_enabled: AtomicBool::new(true),
            stacks: Mutex::new(BTreeMap::new()),
            stacks_allocated: AtomicUsize::new(0),
            stacks_freed: AtomicUsize::new(0),
            halts: AtomicUsize::new(0),
            fail_alloc: AtomicBool::new(false),
        }))
    }

    /// Simulates `ns` of CPU work by the calling thread: the clock advances, and the timer
    /// interrupt fires (possibly switching threads) whenever its deadline is crossed. Time
    /// spent in other threads meanwhile does not count towards `ns`.
    pub(crate) fn advance(&self, ns: u64) {
        let mut remaining = ns;
        loop {
            let now = self.now.load(SeqCst);
            let d = self.deadline.load(SeqCst);
            if self.irq_enabled.load(SeqCst) && d <= now + remaining {
                let step = d.saturating_sub(now);
                self.now.store(now + step, SeqCst);
                remaining -= step;
                self.interrupt();
            } else {
                self.now.store(now + remaining, SeqCst);
                return;
            }
        }
    }

    /// The timer interrupt: entry clears IF, the handler runs, `iretq` sets IF again.
    fn interrupt(&self) {
        self.deadline.store(NO_DEADLINE, SeqCst);
        self.irq_enabled.store(false, SeqCst);
        crate::on_timer_interrupt();
        self.irq_enabled.store(true, SeqCst);
    }

    pub(crate) fn interrupts_enabled(&self) -> bool {
        self.irq_enabled.load(SeqCst)
    }

    pub(crate) fn live_stacks(&self) -> usize {
        self.stacks.lock().unwrap().len()
    }
}

impl Platform for FakePlatform {
    fn now_ns(&self) -> u64 {
        self.now.load(SeqCst)
    }

    fn set_timer_deadline(&self, deadline_ns: u64) {
        self.deadline.store(deadline_ns, SeqCst);
    }

    fn halt_until_interrupt(&self) {
        assert!(!self.irq_enabled.load(SeqCst), "halt with interrupts enabled");
        self.halts.fetch_add(1, SeqCst);
        let d = self.deadline.load(SeqCst);
        if d == NO_DEADLINE {
            eprintln!("fake platform: deadlock, every thread is blocked and no timer is armed");
            std::process::abort();
        }
        // sti; hlt: the clock runs to the deadline and the interrupt is taken.
        self.now.fetch_max(d, SeqCst);
        self.deadline.store(NO_DEADLINE, SeqCst);
        crate::on_timer_interrupt();
        // iretq would set IF, then `cli`.
        self.irq_enabled.store(false, SeqCst);
    }

    fn disable_interrupts(&self) -> bool {
        self.irq_enabled.swap(false, SeqCst)
    }

    fn restore_interrupts(&self, were_enabled: bool) {
        if were_enabled {
            self.irq_enabled.store(true, SeqCst);
            // A pending timer interrupt is taken as soon as interrupts are enabled.
            if self.deadline.load(SeqCst) <= self.now.load(SeqCst) {
                self.interrupt();
            }
        }
    }

    fn alloc_stack(&self, size: usize) -> Option<Stack> {
        if self.fail_alloc.load(SeqCst) {
            return None;
        }
        let mem: Box<[u128]> = std::vec![0u128; size.div_ceil(16)].into_boxed_slice();
        let bottom = mem.as_ptr() as usize;
        let stack = Stack { bottom, top: bottom + mem.len() * 16 };
        self.stacks.lock().unwrap().insert(bottom, mem);
        self.stacks_allocated.fetch_add(1, SeqCst);
        Some(stack)
    }

    fn free_stack(&self, stack: Stack) {
        let mem = self.stacks.lock().unwrap().remove(&stack.bottom);
        assert!(mem.is_some(), "freeing a stack that is not live: {stack:?}");
        self.stacks_freed.fetch_add(1, SeqCst);
    }
}

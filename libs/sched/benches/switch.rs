//! Scheduler micro-benchmarks on the host:
//! - `yield_round_trip`: two threads yielding to each other, through the real x86_64
//!   context switch on heap stacks (one iteration = two switches: there and back);
//! - `runqueue_push_pop`: one push and one pop on a run queue holding N threads;
//! - `timerqueue_insert_pop`: arm and expire one deadline among N pending ones.
//!
//! Run: `cargo bench -p remora-sched --bench switch`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use remora_sched::runqueue::RunQueue;
use remora_sched::timer::TimerQueue;
use remora_sched::{Platform, Priority, SchedConfig, Stack};

/// The host as a platform: real monotonic clock, a timer that never fires (no preemption
/// during the measurement), heap stacks.
struct HostPlatform {
    start: Instant,
    irq: AtomicBool,
    deadline: AtomicU64,
    stacks: Mutex<BTreeMap<usize, Box<[u128]>>>,
}

impl Platform for HostPlatform {
    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
    fn set_timer_deadline(&self, deadline_ns: u64) {
        self.deadline.store(deadline_ns, Ordering::Relaxed);
    }
    fn halt_until_interrupt(&self) {
        panic!("benchmark threads never all block");
    }
    fn disable_interrupts(&self) -> bool {
        self.irq.swap(false, Ordering::Relaxed)
    }
    fn restore_interrupts(&self, were_enabled: bool) {
        if were_enabled {
            self.irq.store(true, Ordering::Relaxed);
        }
    }
    fn alloc_stack(&self, size: usize) -> Option<Stack> {
        let mem = vec![0u128; size.div_ceil(16)].into_boxed_slice();
        let bottom = mem.as_ptr() as usize;
        let top = bottom + mem.len() * 16;
        self.stacks.lock().unwrap().insert(bottom, mem);
        Some(Stack { bottom, top })
    }
    fn free_stack(&self, stack: Stack) {
        self.stacks.lock().unwrap().remove(&stack.bottom);
    }
}

fn yield_round_trip(c: &mut Criterion) {
    let platform: &'static HostPlatform = Box::leak(Box::new(HostPlatform {
        start: Instant::now(),
        irq: AtomicBool::new(true),
        deadline: AtomicU64::new(u64::MAX),
        stacks: Mutex::new(BTreeMap::new()),
    }));
    remora_sched::init(platform, SchedConfig::new(10_000_000, 64 * 1024)).expect("init");
    // The partner yields back forever; the process ends with the benchmark.
    let _partner = remora_sched::spawn("partner", Priority::Normal, || {
        loop {
            remora_sched::yield_now();
        }
    })
    .expect("spawn");
    c.bench_function("yield_round_trip", |b| b.iter(remora_sched::yield_now));
}

fn runqueue_push_pop(c: &mut Criterion) {
    let mut group = c.benchmark_group("runqueue_push_pop");
    for n in [2usize, 64] {
        let mut q = RunQueue::new(u64::MAX);
        q.reserve_total(n + 1);
        for k in 0..n {
            q.push(k, Priority::Normal, 0);
        }
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                let p = q.pop(black_box(0)).unwrap();
                q.push(p.key, p.priority, 0);
            })
        });
    }
    group.finish();
}

fn timerqueue_insert_pop(c: &mut Criterion) {
    let mut group = c.benchmark_group("timerqueue_insert_pop");
    for n in [1usize, 64] {
        let mut t = TimerQueue::new();
        t.reserve_keys(n + 1);
        for k in 0..n {
            t.insert(k, 1_000_000 + k as u64);
        }
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                t.insert(n, black_box(10));
                t.pop_expired(black_box(10)).unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, yield_round_trip, runqueue_push_pop, timerqueue_insert_pop);
criterion_main!(benches);

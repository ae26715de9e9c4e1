//! Tests of the scheduler in the running kernel: preemption, sleep accuracy, wait queues,
//! stack overflow, and the cost of a switch.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use core::time::Duration;

use remora_kvm::{BootInfo, println, time};
use remora_sched::{Priority, WaitQueue};

/// Two threads that never yield each count how often the other one ran in between: with
/// preemption both make progress in turns; without it one would finish before the other
/// starts.
pub fn preemption(_: &'static BootInfo) -> Result<(), &'static str> {
    static LAST: AtomicU32 = AtomicU32::new(0);
    static TURNS: AtomicU64 = AtomicU64::new(0);
    const WORK_NS: u64 = 300_000_000;
    let spin = |me: u32| {
        move || {
            let start = time::now_ns();
            let mut iterations = 0u64;
            while time::now_ns() - start < WORK_NS {
                if LAST.swap(me, Ordering::Relaxed) != me {
                    TURNS.fetch_add(1, Ordering::Relaxed);
                }
                iterations += 1;
            }
            iterations
        }
    };
    let a =
        remora_sched::spawn("spinner-a", Priority::Normal, spin(1)).map_err(|_| "spawn failed")?;
    let b =
        remora_sched::spawn("spinner-b", Priority::Normal, spin(2)).map_err(|_| "spawn failed")?;
    let (ia, ib) = (a.join().map_err(|_| "join failed")?, b.join().map_err(|_| "join failed")?);
    let turns = TURNS.load(Ordering::Relaxed);
    let stats = remora_sched::stats();
    println!(
        "preemption: turns={turns} iterations a={ia} b={ib} preemptions={}",
        stats.preemptions
    );
    if turns < 4 {
        return Err("the two spinning threads did not take turns: no preemption");
    }
    Ok(())
}

/// Sleeps of several lengths: never early, and late by no more than `tolerance_ms=`
/// (default 20 ms: under TCG the guest's timer interrupt is taken only between translated
/// blocks, and the host may deschedule QEMU itself for a few ms on a loaded machine).
pub fn sleep(boot: &'static BootInfo) -> Result<(), &'static str> {
    let tolerance_ns: u64 =
        boot.cmdline.get("tolerance_ms").and_then(|v| v.parse().ok()).unwrap_or(20) * 1_000_000;
    let mut lateness = Vec::new();
    for ms in [1u64, 5, 10, 20, 50, 100] {
        let start = time::now_ns();
        remora_sched::sleep(Duration::from_millis(ms));
        let slept = time::now_ns() - start;
        if slept < ms * 1_000_000 {
            return Err("a sleep ended before its deadline");
        }
        lateness.push(slept - ms * 1_000_000);
    }
    // A sleeper wakes while another thread spins: the timer, not a yield, wakes it.
    let spinner = remora_sched::spawn("spinner", Priority::Normal, || {
        let start = time::now_ns();
        while time::now_ns() - start < 200_000_000 {}
    })
    .map_err(|_| "spawn failed")?;
    let start = time::now_ns();
    remora_sched::sleep(Duration::from_millis(30));
    let slept = time::now_ns() - start;
    spinner.join().map_err(|_| "join failed")?;
    lateness.push(slept.saturating_sub(30_000_000));
    let max = *lateness.iter().max().unwrap_or(&0);
    let mean = lateness.iter().sum::<u64>() / lateness.len() as u64;
    println!(
        "sleep: lateness mean={}us max={}us (tolerance {}ms)",
        mean / 1000,
        max / 1000,
        tolerance_ns / 1_000_000
    );
    if max > tolerance_ns {
        return Err("a sleeper woke later than the tolerance");
    }
    Ok(())
}

/// A producer hands 1000 items one at a time to a consumer through a wait queue.
pub fn wait_queue(_: &'static BootInfo) -> Result<(), &'static str> {
    static SLOT: AtomicU64 = AtomicU64::new(0);
    static FILLED: WaitQueue = WaitQueue::new();
    static EMPTIED: WaitQueue = WaitQueue::new();
    const ITEMS: u64 = 1000;
    let consumer = remora_sched::spawn("consumer", Priority::Normal, || {
        let mut sum = 0u64;
        for _ in 0..ITEMS {
            FILLED.wait_until(|| SLOT.load(Ordering::Acquire) != 0);
            sum += SLOT.swap(0, Ordering::AcqRel);
            EMPTIED.wake_one();
        }
        sum
    })
    .map_err(|_| "spawn failed")?;
    for item in 1..=ITEMS {
        EMPTIED.wait_until(|| SLOT.load(Ordering::Acquire) == 0);
        SLOT.store(item, Ordering::Release);
        FILLED.wake_one();
    }
    let sum = consumer.join().map_err(|_| "join failed")?;
    println!("waitqueue: consumer received sum={sum}");
    if sum != ITEMS * (ITEMS + 1) / 2 {
        return Err("items were lost or repeated in the hand-off");
    }
    Ok(())
}

#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let buffer = core::hint::black_box([depth; 64]);
    if depth == u64::MAX { 0 } else { recurse(depth + 1) + buffer[7] }
}

/// A thread that recurses without end: the guard page below its stack must stop it with
/// a report that names it.
pub fn stack_overflow(_: &'static BootInfo) -> Result<(), &'static str> {
    let t = remora_sched::spawn("overflower", Priority::Normal, || recurse(0))
        .map_err(|_| "spawn failed")?;
    let _ = t.join();
    Err("the recursion ended without a fault")
}

/// Two threads yield to each other `rounds=` times (default 20000): the cost of a
/// switch, measured on the TSC.
pub fn switch_cost(boot: &'static BootInfo) -> Result<(), &'static str> {
    static STOP: AtomicBool = AtomicBool::new(false);
    let rounds: u64 = boot.cmdline.get("rounds").and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let partner = remora_sched::spawn("partner", Priority::Normal, || {
        while !STOP.load(Ordering::Relaxed) {
            remora_sched::yield_now();
        }
    })
    .map_err(|_| "spawn failed")?;
    remora_sched::yield_now();
    let before = remora_sched::stats().context_switches;
    let start = time::now_ns();
    for _ in 0..rounds {
        remora_sched::yield_now();
    }
    let elapsed = time::now_ns() - start;
    let switches = remora_sched::stats().context_switches - before;
    STOP.store(true, Ordering::Relaxed);
    partner.join().map_err(|_| "join failed")?;
    if switches < rounds {
        return Err("yield did not switch to the partner thread");
    }
    println!(
        "switch: {switches} switches in {} us: {} ns per switch",
        elapsed / 1000,
        elapsed / switches
    );
    Ok(())
}

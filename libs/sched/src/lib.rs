//! Remora's scheduler: kernel threads with their own stacks, timer preemption, sleep, wait
//! queues and the idle loop, for one application sharing ring 0 with the kernel.
//!
//! # Using it
//! ```ignore
//! // Boot, once, after the kernel heap exists. The caller becomes thread "main".
//! remora_sched::init(&PLATFORM, SchedConfig::from_options(config::sched::TIME_SLICE,
//!                                                        config::sched::STACK_SIZE))?;
//! let h = remora_sched::spawn("worker", Priority::Normal, || 6 * 7)?;
//! assert_eq!(h.join()?, 42);
//! remora_sched::sleep(Duration::from_millis(5));
//! static READY: WaitQueue = WaitQueue::new();
//! READY.wait_until(|| flag.load(Acquire));          // thread
//! READY.wake_all();                                  // any thread or interrupt handler
//! ```
//! The platform implements [`Platform`] and calls [`on_timer_interrupt`] from its timer
//! interrupt; see that function for what the interrupt stub must guarantee.
//!
//! # Modules and what they own
//! | module | owns | must never |
//! |---|---|---|
//! | [`platform`] | the `Platform` trait and `Stack` | grow into a general HAL |
//! | [`config`] | `SchedConfig` | read configuration itself |
//! | [`thread`] | ids, names, priorities, `ThreadInfo` | hold state or allocate |
//! | [`runqueue`] | order of runnable threads, background anti-starvation | allocate in push/pop |
//! | [`timer`] | sleepers' deadlines (indexed min-heap) | allocate in pop/cancel, touch hardware |
//! | `scheduler` | all mutable scheduling state behind one lock, switching | allocate in interrupt paths |
//! | [`wait`] | `WaitQueue` | be touched without the scheduler lock |
//! | `join` | spawning and the return-value hand-over | block in interrupt context |
//! | `global` | the kernel's one scheduler instance | hold anything else |
//! | `arch` | the context switch, all `unsafe` and asm | make decisions, lock, allocate |
//!
//! # Concurrency model
//! One CPU today. All scheduling state sits behind one lock, the *scheduler lock*, always
//! taken with interrupts disabled; per-CPU fields (current thread, idle thread, armed timer)
//! are grouped so that more CPUs mean an array of them. Interrupt handlers may call
//! [`WaitQueue::wake_one`]/[`WaitQueue::wake_all`] and [`on_timer_interrupt`]; nothing on
//! those paths allocates or frees memory.
//!
//! **Requirement on the kernel heap:** the scheduler allocates in thread context with
//! interrupts disabled (spawning, registering on a wait queue), so the heap's lock must also
//! be taken with interrupts disabled; otherwise a thread preempted inside the allocator
//! deadlocks the CPU.
//!
//! # Priorities and starvation
//! [`Priority::Normal`] threads round-robin with a time slice. [`Priority::Background`]
//! threads run only when no normal thread is runnable, except that a background thread
//! runnable for [`SchedConfig::background_max_wait_ns`] (default: 20 time slices) without
//! running gets one slice ahead of the normal threads: starvation is bounded.
//!
//! # Host tests
//! With `cfg(test)` each test OS thread gets its own scheduler instance (see `global`) and a
//! fake platform; the real context switch runs on heap-allocated stacks.

#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

mod arch;
pub mod config;
mod global;
mod join;
pub mod platform;
pub mod runqueue;
mod scheduler;
pub mod thread;
pub mod timer;
pub mod wait;

#[cfg(test)]
mod tests;

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::time::Duration;

pub use config::SchedConfig;
pub use join::{Builder, JoinError, JoinHandle, SpawnError};
pub use platform::{Platform, STACK_GUARD_SIZE, Stack};
pub use scheduler::{InitError, MIN_STACK_SIZE, SchedStats, WakeReason};
pub use thread::{CurrentThread, Priority, ThreadId, ThreadInfo, ThreadName, ThreadState};
pub use wait::WaitQueue;

use global::sched;
use scheduler::Scheduler;

/// Starts the scheduler. The calling (boot) thread becomes thread "main" (id 0, normal
/// priority; its stack is not the scheduler's, so it has no guard-page entry) and an idle
/// thread (id 1) is created. Call once, after the kernel heap exists, with interrupts in any
/// state; they are left as they were.
pub fn init(platform: &'static dyn Platform, config: SchedConfig) -> Result<ThreadId, InitError> {
    if global::try_sched().is_some() {
        return Err(InitError::AlreadyInitialized);
    }
    let s: &'static Scheduler = Box::leak(Box::new(Scheduler::new(platform, config)?));
    let main = s.start()?;
    global::install(s)?;
    Ok(main)
}

/// Spawns a thread running `f` with the default stack size. It is runnable at once and
/// starts with interrupts enabled. See [`Builder`] for a custom stack size.
pub fn spawn<F, T>(name: &str, priority: Priority, f: F) -> Result<JoinHandle<T>, SpawnError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    Builder::new(name).priority(priority).spawn(f)
}

/// Gives the CPU to the next runnable thread of the same or higher priority, if any; the
/// caller goes to the back of its queue.
pub fn yield_now() {
    sched().yield_now();
}

/// Blocks the calling thread for at least `duration` on the monotonic clock.
pub fn sleep(duration: Duration) {
    let s = sched();
    let ns = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
    s.sleep_until(s.platform().now_ns().saturating_add(ns));
}

/// Blocks the calling thread until the monotonic clock reaches `deadline_ns` (returns at
/// once if it has).
pub fn sleep_until(deadline_ns: u64) {
    sched().sleep_until(deadline_ns);
}

/// Ends the calling thread now. Destructors of values on its stack do not run; its
/// [`JoinHandle::join`] returns [`JoinError::Exited`]. Returning from the closure is the
/// normal way to end a thread.
pub fn exit() -> ! {
    sched().exit_current()
}

/// The calling thread (or, in an interrupt handler, the interrupted one).
pub fn current() -> CurrentThread {
    sched().current()
}

/// A snapshot of every thread that has not been reclaimed yet, with its CPU time.
pub fn threads() -> Vec<ThreadInfo> {
    sched().threads()
}

/// Scheduler counters.
pub fn stats() -> SchedStats {
    sched().stats()
}

/// The platform's monotonic clock, in nanoseconds.
pub fn now_ns() -> u64 {
    sched().platform().now_ns()
}

/// When [`init`] ran, on the monotonic clock: the CPU times of all threads (including
/// [`SchedStats::reaped_cpu_time_ns`]) add up to `now_ns() - init_ns()`.
pub fn init_ns() -> u64 {
    sched().init_ns()
}

/// Which thread's stack guard page contains `addr`: for the page-fault / double-fault
/// report ("stack overflow in thread X"). Never blocks and never allocates; returns `None`
/// if the scheduler is not initialised or its guard table is being updated at that moment.
pub fn guard_page_owner(addr: usize) -> Option<(ThreadId, ThreadName)> {
    global::try_sched()?.guard_page_owner(addr)
}

/// The platform's timer interrupt calls this, every time the one-shot timer fires.
///
/// It accounts the running thread's time, makes every sleeper whose deadline passed
/// runnable (in deadline order), switches to another thread if the running one's time slice
/// is over (or a higher-priority thread is runnable), and re-arms the timer.
///
/// The interrupt stub must guarantee:
/// - it runs on the interrupted thread's own stack: no IST entry for the timer vector, no
///   per-CPU interrupt stack (the stack holds the interrupt frame while the thread is
///   switched out, possibly for a long time, while other threads take interrupts);
/// - interrupts are disabled (interrupt gate), and stay so until its `iretq`;
/// - the EOI has been sent before the call (the call may return only much later);
/// - all caller-saved registers are saved and the stack is 16-byte aligned at the call,
///   as for any `extern "C"` call; the kernel target has no SSE state to save;
/// - it holds no lock the scheduler or other threads may need.
///
/// When the call returns, the stub restores registers and `iretq`s as usual: the thread
/// simply continues, whether it was switched out in between or not.
pub fn on_timer_interrupt() {
    if let Some(s) = global::try_sched() {
        s.on_timer_interrupt();
    }
}

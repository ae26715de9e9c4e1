//! The scheduler core: thread records, the scheduler lock, switching, the timer interrupt,
//! sleeping, blocking on wait queues, exit and reclamation, the idle loop.
//!
//! Owns: all mutable scheduling state, behind one lock ([`Scheduler::lock`], "the scheduler
//! lock"): taken with interrupts disabled, never held across a context switch (it is
//! released just before the switch; see "Switch protocol").
//! Must never: allocate or free memory on a path that runs in an interrupt handler
//! (`on_timer_interrupt`, `wake_*`), call the platform's stack allocator with the lock held,
//! or let interrupts be enabled while the lock is held.
//!
//! # Switch protocol
//! A thread gives up the CPU with the lock held and interrupts disabled: it picks the next
//! thread, takes the next thread's saved context ([`Context::take`] marks it running),
//! releases the lock (interrupts stay disabled), and calls [`arch::switch`]. The resumed
//! thread re-enables interrupts itself if it had them enabled when it switched out (each
//! thread's own `IrqOff` guard), and a new thread enables them in [`run_thread`].
//! With several CPUs, a thread another CPU has just switched away from has context 0 until
//! the switch has saved it: a picker would wait for it (single CPU: never happens). All
//! per-CPU fields live in [`Cpu`].
//!
//! # Memory discipline
//! Every container an interrupt-time path writes to is reserved when a thread is spawned
//! (run queue, timer queue); wait-queue entries are pushed by the waiting thread itself
//! (thread context) and only popped by wakers. Exited threads are reclaimed (stack returned,
//! record freed) by `reap`, which runs only in thread context: in `spawn`, `join` and the
//! idle loop. Thread-context paths (spawn, wait registration, `threads()`) do allocate
//! with the lock held and interrupts disabled, so the kernel heap must take its own lock
//! with interrupts disabled too (else a thread preempted inside the allocator would
//! deadlock them).
//!
//! # Locks
//! Every lock of this crate (the scheduler lock, a wait queue's list, the guard-page table,
//! a join slot) is taken with interrupts disabled, so its holder is never preempted while
//! another thread spins on it. Order: scheduler lock, then a wait queue's list.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::{self, Context};
use crate::config::SchedConfig;
use crate::join::{Completion, JoinHandle, JoinSlot, SpawnError, run_catching};
use crate::platform::{Platform, Stack};
use crate::runqueue::RunQueue;
use crate::thread::{
    CurrentThread, Priority, ThreadId, ThreadInfo, ThreadName, ThreadState, thread_name,
};
use crate::timer::TimerQueue;
use crate::wait::{WaitQueue, Waiter};

/// Why a blocked thread was resumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WakeReason {
    /// A `wake_one`/`wake_all` on the queue it waited on.
    Woken,
    /// Its deadline passed first.
    TimedOut,
}

/// Counters, from [`crate::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedStats {
    /// Switches from one thread to another.
    pub context_switches: u64,
    /// Switches forced by the timer (time slice expired or a higher-priority thread woke).
    pub preemptions: u64,
    /// Calls of `on_timer_interrupt`.
    pub timer_interrupts: u64,
    /// Threads spawned since init.
    pub threads_spawned: u64,
    /// Threads reclaimed after they exited.
    pub threads_reaped: u64,
    /// CPU time of reclaimed threads (no longer in [`crate::threads`]), so that the CPU
    /// time of all threads, past and present, adds up to the time since init.
    pub reaped_cpu_time_ns: u64,
}

/// Why `init` failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitError {
    /// `init` already ran.
    AlreadyInitialized,
    /// A configuration value is unusable; the message says which and why.
    InvalidConfig(&'static str),
    /// The platform could not allocate the idle thread's stack of this many bytes.
    NoIdleStack(usize),
}

impl core::fmt::Display for InitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::AlreadyInitialized => write!(f, "the scheduler is already initialised"),
            Self::InvalidConfig(why) => write!(f, "invalid scheduler configuration: {why}"),
            Self::NoIdleStack(size) => write!(
                f,
                "could not allocate the idle thread's {size}-byte stack: is the kernel heap \
                 (alloc) initialised before the scheduler?"
            ),
        }
    }
}

/// Smallest stack the scheduler accepts (Config.toml's lower bound is 16 KiB).
pub const MIN_STACK_SIZE: usize = 4096;

/// What a new thread runs: handed to the arch trampoline, consumed by [`run_thread`].
pub(crate) struct ThreadStart {
    sched: &'static Scheduler,
    main: Box<dyn FnOnce() + Send>,
}

/// Body of every thread after the arch trampoline: enable interrupts, run, exit.
pub(crate) fn run_thread(start: ThreadStart) -> ! {
    let ThreadStart { sched, main } = start;
    // We were switched to with interrupts disabled by a thread that still holds its own
    // interrupt state; a new thread starts with interrupts enabled.
    sched.platform.restore_interrupts(true);
    main();
    sched.exit_current()
}

struct Thread {
    id: ThreadId,
    name: ThreadName,
    priority: Priority,
    state: ThreadState,
    ctx: Arc<Context>,
    stack: Option<Stack>,
    cpu_ns: u64,
    switches: u64,
    /// `Some(token)` while registered on a wait queue and not yet woken.
    wait_token: Option<u64>,
    /// Set when its deadline, not a waker, ended its last wait.
    timed_out: bool,
    /// Told if the thread exits without completing its closure (`exit()`).
    completion: Option<Arc<dyn Completion>>,
}

/// Per-CPU scheduling state (one CPU for now).
struct Cpu {
    current: usize,
    idle: usize,
    /// The priority `current` runs with for this slice (`Normal` for a boosted background
    /// thread, see [`crate::runqueue::Pick::runs_as`]).
    run_as: Priority,
    /// When `current` got the CPU: start of its time slice and of its unaccounted time.
    run_start_ns: u64,
    /// Deadline last given to `set_timer_deadline` that has not fired yet.
    armed_ns: Option<u64>,
    /// A thread that exited on this CPU; reclaimable by any later lock holder on this CPU,
    /// since the exiting thread's switch has completed by then.
    exited: Option<usize>,
}

pub(crate) struct State {
    threads: Vec<Option<Thread>>,
    free_slots: Vec<usize>,
    runq: RunQueue,
    timers: TimerQueue,
    cpu: Cpu,
    zombies: Vec<usize>,
    next_wait_token: u64,
    stats: SchedStats,
}

/// Interrupts disabled by us; restores the previous state when dropped.
pub(crate) struct IrqOff {
    platform: &'static dyn Platform,
    were_enabled: bool,
}

impl IrqOff {
    pub(crate) fn new(platform: &'static dyn Platform) -> Self {
        Self { platform, were_enabled: platform.disable_interrupts() }
    }
}

impl Drop for IrqOff {
    fn drop(&mut self) {
        self.platform.restore_interrupts(self.were_enabled);
    }
}

/// The scheduler lock, held. Fields drop in order: the lock first, then interrupts restored.
pub(crate) struct Locked<'a> {
    guard: spin::MutexGuard<'a, State>,
    _irq: IrqOff,
}

impl Locked<'_> {
    /// Releases the lock but keeps interrupts disabled until the returned guard drops.
    fn unlock_keep_irqs_off(self) -> IrqOff {
        let Locked { guard, _irq } = self;
        drop(guard);
        _irq
    }
}

impl core::ops::Deref for Locked<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        &self.guard
    }
}

impl core::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut State {
        &mut self.guard
    }
}

struct GuardEntry {
    guard: core::ops::Range<usize>,
    id: ThreadId,
    name: ThreadName,
}

/// One scheduler instance: the kernel has one (installed by [`crate::init`]); host tests
/// create one per test thread.
pub(crate) struct Scheduler {
    platform: &'static dyn Platform,
    config: SchedConfig,
    state: spin::Mutex<State>,
    /// Guard pages of live stacks, separate from `state` so a fault handler can look them up
    /// even when the fault hit while the scheduler lock was held.
    guards: spin::RwLock<Vec<GuardEntry>>,
    /// Where an exiting thread's last context goes (never resumed). Per CPU.
    exit_ctx: Context,
    next_id: AtomicU64,
    init_ns: u64,
}

impl State {
    fn thread(&self, slot: usize) -> &Thread {
        self.threads[slot].as_ref().expect("scheduler slot is live")
    }

    fn thread_mut(&mut self, slot: usize) -> &mut Thread {
        self.threads[slot].as_mut().expect("scheduler slot is live")
    }

    fn make_ready(&mut self, slot: usize, now: u64) {
        let t = self.thread_mut(slot);
        debug_assert_eq!(t.state, ThreadState::Blocked);
        t.state = ThreadState::Ready;
        let prio = t.priority;
        self.runq.push(slot, prio, now);
    }

    /// Ends `slot`'s wait because a waker chose it. A thread that registered but has not
    /// blocked yet only loses its token (its commit then returns at once).
    fn wake_waiter(&mut self, w: Waiter, now: u64) -> bool {
        let Some(Some(t)) = self.threads.get_mut(w.slot) else {
            return false;
        };
        if t.wait_token != Some(w.token) {
            return false; // stale: timed out, cancelled, or a reused slot
        }
        t.wait_token = None;
        t.timed_out = false;
        let blocked = t.state == ThreadState::Blocked;
        self.timers.cancel(w.slot);
        if blocked {
            self.make_ready(w.slot, now);
        }
        true
    }

    fn current_priority(&self) -> Option<Priority> {
        (self.cpu.current != self.cpu.idle).then_some(self.cpu.run_as)
    }

    /// When the running thread must give way (`None`: not because of the run queue).
    fn preempt_at(&self, time_slice_ns: u64) -> Option<u64> {
        let prio = self.current_priority()?; // the idle loop re-checks after every interrupt
        let slice_end = self.cpu.run_start_ns.saturating_add(time_slice_ns);
        self.runq.preempt_at(Some(prio), slice_end)
    }

    fn should_preempt(&self, now: u64, time_slice_ns: u64) -> bool {
        if self.cpu.current == self.cpu.idle {
            return !self.runq.is_empty();
        }
        self.preempt_at(time_slice_ns).is_some_and(|t| t <= now)
    }

    /// Programs the one-shot timer for the next event (a sleeper's deadline or a
    /// preemption). Only ever moves an armed deadline earlier: if a later one is wanted, the
    /// armed one fires early and `on_timer_interrupt` re-arms, which saves a timer write on
    /// nearly every switch.
    fn rearm(&mut self, platform: &dyn Platform, time_slice_ns: u64) {
        let want = match (self.preempt_at(time_slice_ns), self.timers.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(deadline) = want
            && self.cpu.armed_ns.is_none_or(|armed| deadline < armed)
        {
            self.cpu.armed_ns = Some(deadline);
            platform.set_timer_deadline(deadline);
        }
    }

    fn alloc_slot(&mut self) -> usize {
        if let Some(slot) = self.free_slots.pop() {
            return slot;
        }
        self.threads.push(None);
        self.threads.len() - 1
    }

    fn info(&self, slot: usize, now: u64) -> ThreadInfo {
        let t = self.thread(slot);
        let running =
            if slot == self.cpu.current { now.saturating_sub(self.cpu.run_start_ns) } else { 0 };
        ThreadInfo {
            id: t.id,
            name: t.name.clone(),
            priority: t.priority,
            state: t.state,
            cpu_time_ns: t.cpu_ns + running,
            switches: t.switches,
            stack: t.stack,
            is_idle: slot == self.cpu.idle,
        }
    }
}

impl Scheduler {
    pub(crate) fn new(
        platform: &'static dyn Platform,
        config: SchedConfig,
    ) -> Result<Self, InitError> {
        if config.time_slice_ns == 0 {
            return Err(InitError::InvalidConfig(
                "time_slice_ns is 0; use at least 100 us (sched.time_slice = 100)",
            ));
        }
        if config.default_stack_size < MIN_STACK_SIZE {
            return Err(InitError::InvalidConfig(
                "default_stack_size is below 4 KiB; use at least 16K (sched.stack_size)",
            ));
        }
        let now = platform.now_ns();
        Ok(Self {
            platform,
            config,
            state: spin::Mutex::new(State {
                threads: Vec::new(),
                free_slots: Vec::new(),
                runq: RunQueue::new(config.background_max_wait_ns),
                timers: TimerQueue::new(),
                cpu: Cpu {
                    current: 0,
                    idle: 0,
                    run_as: Priority::Normal,
                    run_start_ns: now,
                    armed_ns: None,
                    exited: None,
                },
                zombies: Vec::new(),
                next_wait_token: 0,
                stats: SchedStats::default(),
            }),
            guards: spin::RwLock::new(Vec::new()),
            exit_ctx: Context::running(),
            next_id: AtomicU64::new(0),
            init_ns: now,
        })
    }

    /// Adopts the calling code as thread "main" (id 0) and creates the idle thread (id 1).
    pub(crate) fn start(&'static self) -> Result<ThreadId, InitError> {
        // Interrupt handlers run on whatever stack is current, the idle one included: it
        // gets the full default size.
        let idle_stack_size = self.config.default_stack_size;
        let idle_stack = self
            .platform
            .alloc_stack(idle_stack_size)
            .ok_or(InitError::NoIdleStack(idle_stack_size))?;
        let main_id = ThreadId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let idle_id = ThreadId(self.next_id.fetch_add(1, Ordering::Relaxed));
        self.register_guard(&idle_stack, idle_id, thread_name("idle"));
        let idle_ctx = Context::new_thread(
            &idle_stack,
            Box::new(ThreadStart { sched: self, main: Box::new(move || self.idle_loop()) }),
        );
        let mut st = self.lock();
        let thread = |id, name: &str, state, ctx, stack| Thread {
            id,
            name: thread_name(name),
            priority: Priority::Normal,
            state,
            ctx: Arc::new(ctx),
            stack,
            cpu_ns: 0,
            switches: 0,
            wait_token: None,
            timed_out: false,
            completion: None,
        };
        let main = thread(main_id, "main", ThreadState::Running, Context::running(), None);
        let mut idle = thread(idle_id, "idle", ThreadState::Ready, idle_ctx, Some(idle_stack));
        idle.priority = Priority::Background;
        st.threads.push(Some(main));
        st.threads.push(Some(idle));
        st.cpu.current = 0;
        st.cpu.idle = 1;
        st.cpu.run_start_ns = self.platform.now_ns();
        st.runq.reserve_total(2);
        st.timers.reserve_keys(2);
        Ok(main_id)
    }

    pub(crate) fn platform(&self) -> &'static dyn Platform {
        self.platform
    }

    /// Takes the scheduler lock with interrupts disabled.
    pub(crate) fn lock(&self) -> Locked<'_> {
        let irq = IrqOff::new(self.platform);
        Locked { guard: self.state.lock(), _irq: irq }
    }

    fn register_guard(&self, stack: &Stack, id: ThreadId, name: ThreadName) {
        let _irq = IrqOff::new(self.platform);
        self.guards.write().push(GuardEntry { guard: stack.guard(), id, name });
    }

    // ---- spawning, exit, reclamation ----

    pub(crate) fn spawn<F, T>(
        &'static self,
        name: &str,
        priority: Priority,
        stack_size: Option<usize>,
        f: F,
    ) -> Result<JoinHandle<T>, SpawnError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.reap();
        let size = stack_size.unwrap_or(self.config.default_stack_size);
        if size < MIN_STACK_SIZE {
            return Err(SpawnError::StackTooSmall(size));
        }
        let stack = self.platform.alloc_stack(size).ok_or(SpawnError::NoStack(size))?;
        let id = ThreadId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let name = thread_name(name);
        let slot: Arc<JoinSlot<T>> = Arc::new(JoinSlot::new(self.platform));
        let done = slot.clone();
        let main: Box<dyn FnOnce() + Send> = Box::new(move || done.complete(run_catching(f)));
        let ctx = Context::new_thread(&stack, Box::new(ThreadStart { sched: self, main }));
        self.register_guard(&stack, id, name.clone());
        log::debug!("sched: spawn {id} {name:?} {priority:?}, {size}-byte stack");

        let mut st = self.lock();
        let key = st.alloc_slot();
        st.threads[key] = Some(Thread {
            id,
            name,
            priority,
            state: ThreadState::Ready,
            ctx: Arc::new(ctx),
            stack: Some(stack),
            cpu_ns: 0,
            switches: 0,
            wait_token: None,
            timed_out: false,
            completion: Some(slot.clone()),
        });
        let total = st.threads.len();
        st.runq.reserve_total(total);
        st.timers.reserve_keys(total);
        st.stats.threads_spawned += 1;
        let now = self.platform.now_ns();
        st.runq.push(key, priority, now);
        st.rearm(self.platform, self.config.time_slice_ns);
        drop(st);
        Ok(JoinHandle::new(id, slot))
    }

    /// Ends the calling thread. Its `JoinHandle` reports `JoinError::Exited` unless the
    /// closure already returned.
    pub(crate) fn exit_current(&'static self) -> ! {
        let completion = {
            let mut st = self.lock();
            let cur = st.cpu.current;
            assert_ne!(cur, st.cpu.idle, "the idle thread cannot exit");
            st.thread_mut(cur).completion.take()
        };
        if let Some(c) = completion {
            c.abandon();
        }
        log::debug!("sched: exit {}", self.current().id);
        let mut st = self.lock();
        let cur = st.cpu.current;
        st.thread_mut(cur).state = ThreadState::Exited;
        if let Some(previous) = st.cpu.exited.replace(cur) {
            st.zombies.push(previous);
        }
        self.reschedule(st);
        unreachable!("an exited thread was resumed");
    }

    /// Returns the stacks and records of exited threads. Thread context only, no lock held.
    pub(crate) fn reap(&self) {
        let dead: Vec<Thread> = {
            let mut st = self.lock();
            if let Some(z) = st.cpu.exited.take() {
                // We run on this CPU, so the thread that exited here has switched away.
                st.zombies.push(z);
            }
            if st.zombies.is_empty() {
                return;
            }
            let zombies = core::mem::take(&mut st.zombies);
            let mut dead = Vec::with_capacity(zombies.len());
            for z in zombies {
                let t = st.threads[z].take().expect("zombie slot is live");
                st.free_slots.push(z);
                st.stats.threads_reaped += 1;
                st.stats.reaped_cpu_time_ns += t.cpu_ns;
                dead.push(t);
            }
            dead
        };
        {
            let _irq = IrqOff::new(self.platform);
            self.guards.write().retain(|g| !dead.iter().any(|t| t.id == g.id));
        }
        for t in dead {
            if let Some(stack) = t.stack {
                self.platform.free_stack(stack);
            }
        }
    }

    // ---- switching ----

    /// Gives the CPU to the next thread if the current one is not the best choice any more.
    /// The current thread's state says why: `Running` (yield or preemption: it is
    /// requeued), `Blocked` or `Exited` (it is not). Returns when the current thread runs
    /// again (never, if it exited).
    fn reschedule(&'static self, mut st: Locked<'_>) {
        let now = self.platform.now_ns();
        let slice = self.config.time_slice_ns;
        let prev = st.cpu.current;
        let idle = st.cpu.idle;
        let p = st.thread_mut(prev);
        if p.state == ThreadState::Running {
            p.state = ThreadState::Ready;
            let prio = p.priority;
            if prev != idle {
                st.runq.push(prev, prio, now);
            }
        }
        let (next, run_as) = match st.runq.pop(now) {
            Some(pick) => (pick.key, pick.runs_as()),
            None => (idle, Priority::Background),
        };
        st.cpu.run_as = run_as;
        if next == prev {
            st.thread_mut(prev).state = ThreadState::Running;
            st.rearm(self.platform, slice);
            return;
        }

        let ran = now.saturating_sub(st.cpu.run_start_ns);
        let p = st.thread_mut(prev);
        p.cpu_ns += ran;
        let prev_ctx = (p.state != ThreadState::Exited).then(|| p.ctx.clone());
        let n = st.thread_mut(next);
        n.state = ThreadState::Running;
        n.switches += 1;
        // Single CPU: the next thread's context is always saved here. With several CPUs
        // this becomes a wait for the CPU that is still switching away from it.
        let resume =
            n.ctx.take().expect("scheduler bug: switching to a thread whose context is not saved");
        st.cpu.current = next;
        st.cpu.run_start_ns = now;
        st.stats.context_switches += 1;
        st.rearm(self.platform, slice);

        let irq = st.unlock_keep_irqs_off();
        arch::switch(prev_ctx.as_deref().unwrap_or(&self.exit_ctx), resume);
        drop(prev_ctx);
        drop(irq);
    }

    pub(crate) fn yield_now(&'static self) {
        self.reschedule(self.lock());
    }

    pub(crate) fn on_timer_interrupt(&'static self) {
        let mut st = self.lock();
        st.cpu.armed_ns = None;
        st.stats.timer_interrupts += 1;
        let now = self.platform.now_ns();
        while let Some(slot) = st.timers.pop_expired(now) {
            let t = st.thread_mut(slot);
            if t.wait_token.take().is_some() {
                t.timed_out = true;
            }
            st.make_ready(slot, now);
        }
        if st.should_preempt(now, self.config.time_slice_ns) {
            st.stats.preemptions += 1;
            self.reschedule(st);
        } else {
            st.rearm(self.platform, self.config.time_slice_ns);
        }
    }

    /// Body of the idle thread: reclaim, run anything runnable, else halt until an
    /// interrupt.
    fn idle_loop(&'static self) -> ! {
        loop {
            self.reap();
            let mut st = self.lock();
            if !st.runq.is_empty() {
                self.reschedule(st);
                continue;
            }
            st.rearm(self.platform, self.config.time_slice_ns);
            // Interrupts stay disabled from the check above until `halt_until_interrupt`
            // atomically enables them and halts: a wake-up cannot slip in between.
            let irq = st.unlock_keep_irqs_off();
            self.platform.halt_until_interrupt();
            drop(irq);
        }
    }

    // ---- sleeping and waiting ----

    pub(crate) fn sleep_until(&'static self, deadline_ns: u64) {
        let mut st = self.lock();
        if deadline_ns <= self.platform.now_ns() {
            return;
        }
        let cur = st.cpu.current;
        st.timers.insert(cur, deadline_ns);
        st.thread_mut(cur).state = ThreadState::Blocked;
        self.reschedule(st);
    }

    /// Registers the current thread on `wq`. Until `commit_wait` or `cancel_wait`, a waker
    /// that picks it only clears its token.
    pub(crate) fn prepare_wait(&self, st: &mut State, wq: &WaitQueue) -> Waiter {
        let cur = st.cpu.current;
        let token = st.next_wait_token;
        st.next_wait_token += 1;
        let t = st.thread_mut(cur);
        t.wait_token = Some(token);
        t.timed_out = false;
        let w = Waiter { slot: cur, token };
        wq.push(w);
        w
    }

    /// Blocks until a waker picks `w` or `deadline_ns` passes; returns at once if a waker
    /// already picked it after `prepare_wait`.
    pub(crate) fn commit_wait(
        &'static self,
        mut st: Locked<'_>,
        wq: &WaitQueue,
        w: Waiter,
        deadline_ns: Option<u64>,
    ) -> WakeReason {
        if st.thread(w.slot).wait_token != Some(w.token) {
            return WakeReason::Woken;
        }
        if let Some(deadline) = deadline_ns {
            if deadline <= self.platform.now_ns() {
                Self::cancel_wait(&mut st, wq, w);
                return WakeReason::TimedOut;
            }
            st.timers.insert(w.slot, deadline);
        }
        st.thread_mut(w.slot).state = ThreadState::Blocked;
        self.reschedule(st);
        if deadline_ns.is_none() {
            return WakeReason::Woken;
        }
        let st = self.lock();
        if st.thread(w.slot).timed_out {
            wq.remove(w); // our entry is stale; keep the queue from growing
            WakeReason::TimedOut
        } else {
            WakeReason::Woken
        }
    }

    /// Withdraws a registration whose wait turned out unnecessary.
    pub(crate) fn cancel_wait(st: &mut State, wq: &WaitQueue, w: Waiter) {
        let t = st.thread_mut(w.slot);
        if t.wait_token == Some(w.token) {
            t.wait_token = None;
            wq.remove(w);
        }
    }

    /// Wakes up to `max` valid waiters of `wq`, skipping stale entries. Interrupt-safe.
    pub(crate) fn wake(&self, wq: &WaitQueue, max: usize) -> usize {
        let mut st = self.lock();
        let now = self.platform.now_ns();
        let mut woken = 0;
        while woken < max {
            let Some(w) = wq.pop() else { break };
            if st.wake_waiter(w, now) {
                woken += 1;
            }
        }
        if woken > 0 {
            st.rearm(self.platform, self.config.time_slice_ns);
        }
        woken
    }

    // ---- queries ----

    pub(crate) fn current(&self) -> CurrentThread {
        let st = self.lock();
        let t = st.thread(st.cpu.current);
        CurrentThread { id: t.id, name: t.name.clone(), priority: t.priority }
    }

    pub(crate) fn threads(&self) -> Vec<ThreadInfo> {
        let st = self.lock();
        let now = self.platform.now_ns();
        let mut out = Vec::with_capacity(st.threads.len());
        for slot in 0..st.threads.len() {
            if st.threads[slot].is_some() {
                out.push(st.info(slot, now));
            }
        }
        out
    }

    pub(crate) fn stats(&self) -> SchedStats {
        self.lock().stats
    }

    pub(crate) fn init_ns(&self) -> u64 {
        self.init_ns
    }

    /// Which thread's guard page holds `addr`. Does not wait for the scheduler lock (a fault
    /// may hit while it is held); `None` also if the guard table is being updated.
    pub(crate) fn guard_page_owner(&self, addr: usize) -> Option<(ThreadId, ThreadName)> {
        let guards = self.guards.try_read()?;
        guards.iter().find(|g| g.guard.contains(&addr)).map(|g| (g.id, g.name.clone()))
    }
}

//! Wait queues: block a thread until someone (a thread, an interrupt handler, a completion
//! poller) wakes it.
//!
//! Owns: the list of threads registered on one queue, in arrival order.
//! Must never: be touched without the scheduler lock (its own small lock nests inside it,
//! so it is always taken with interrupts disabled), or free memory in `wake_*` (they run
//! in interrupt handlers).
//!
//! # Lost wake-ups
//! [`WaitQueue::wait`] blocks unconditionally: a wake that happened before it is not
//! remembered (like a condition variable). Use [`WaitQueue::wait_until`] with the condition
//! the waker establishes: it registers the thread on the queue *before* re-checking the
//! condition, so a waker that makes the condition true after that check finds the thread
//! registered, and its wake makes the pending block return at once. Wakers must change the
//! condition before calling `wake_one`/`wake_all`.

use alloc::collections::VecDeque;

use crate::global::{sched, try_sched};
use crate::scheduler::WakeReason;

/// One registration: the waiting thread's slot and the token of this particular wait, so a
/// stale entry (timed-out or cancelled wait, or a reused slot) is recognised and skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Waiter {
    pub(crate) slot: usize,
    pub(crate) token: u64,
}

/// A queue of threads waiting for an event. Can live in a `static` (`WaitQueue::new` is
/// `const`). Waking is allowed from interrupt handlers; waiting only from threads.
///
/// ```ignore
/// static RX_READY: WaitQueue = WaitQueue::new();
/// // consumer thread
/// RX_READY.wait_until(|| rx_ring.has_packets());
/// // interrupt handler or completion poller, after the ring changed
/// RX_READY.wake_all();
/// ```
#[derive(Debug, Default)]
pub struct WaitQueue {
    waiters: spin::Mutex<VecDeque<Waiter>>,
}

impl WaitQueue {
    /// An empty queue.
    pub const fn new() -> Self {
        Self { waiters: spin::Mutex::new(VecDeque::new()) }
    }

    /// Blocks the calling thread until a `wake_one`/`wake_all` picks it. Wakes that
    /// happened before the call are not remembered: prefer [`WaitQueue::wait_until`].
    pub fn wait(&self) {
        let s = sched();
        let mut st = s.lock();
        let w = s.prepare_wait(&mut st, self);
        s.commit_wait(st, self, w, None);
    }

    /// Like [`WaitQueue::wait`], but gives up when the monotonic clock reaches
    /// `deadline_ns`.
    pub fn wait_deadline(&self, deadline_ns: u64) -> WakeReason {
        let s = sched();
        let mut st = s.lock();
        let w = s.prepare_wait(&mut st, self);
        s.commit_wait(st, self, w, Some(deadline_ns))
    }

    /// Blocks until `cond()` returns true, without lost wake-ups (see the module docs).
    /// `cond` runs in thread context without the scheduler lock; it may be called several
    /// times, and must not itself wait.
    pub fn wait_until(&self, mut cond: impl FnMut() -> bool) {
        self.wait_until_inner(&mut cond, None);
    }

    /// Like [`WaitQueue::wait_until`], but gives up when the monotonic clock reaches
    /// `deadline_ns`. Returns the condition's final value (true: it held).
    pub fn wait_until_deadline(&self, mut cond: impl FnMut() -> bool, deadline_ns: u64) -> bool {
        self.wait_until_inner(&mut cond, Some(deadline_ns))
    }

    fn wait_until_inner(&self, cond: &mut dyn FnMut() -> bool, deadline: Option<u64>) -> bool {
        loop {
            if cond() {
                return true;
            }
            let s = sched();
            let mut st = s.lock();
            let w = s.prepare_wait(&mut st, self);
            drop(st);
            // Registered: a waker from here on finds us.
            if cond() {
                crate::scheduler::Scheduler::cancel_wait(&mut s.lock(), self, w);
                return true;
            }
            if s.commit_wait(s.lock(), self, w, deadline) == WakeReason::TimedOut {
                return cond();
            }
        }
    }

    /// Wakes the longest-waiting thread; returns whether there was one. Interrupt-safe.
    pub fn wake_one(&self) -> bool {
        try_sched().is_some_and(|s| s.wake(self, 1) == 1)
    }

    /// Wakes every waiting thread; returns how many. Interrupt-safe.
    pub fn wake_all(&self) -> usize {
        try_sched().map_or(0, |s| s.wake(self, usize::MAX))
    }

    pub(crate) fn push(&self, w: Waiter) {
        self.waiters.lock().push_back(w);
    }

    pub(crate) fn pop(&self) -> Option<Waiter> {
        self.waiters.lock().pop_front()
    }

    pub(crate) fn remove(&self, w: Waiter) {
        self.waiters.lock().retain(|x| *x != w);
    }
}

//! The run queue: which runnable thread goes next, and when the running one must yield.
//!
//! Owns: the order of runnable threads: two FIFO queues (normal, background), round-robin
//! within a priority, and the background anti-starvation rule.
//! Must never: allocate on `push`/`pop` once capacity is reserved (both run from interrupt
//! handlers), know about stacks, contexts or clocks (time is passed in).
//!
//! # Policy
//! - Normal threads always go before background threads, FIFO among themselves.
//! - A background thread runs only when no normal thread is runnable, **except** that a
//!   background thread which has waited `background_max_wait_ns` or longer (measured from
//!   when it became runnable) is served first, for one time slice. So a background thread
//!   waits at most about `background_max_wait_ns` plus one slice per starving background
//!   thread ahead of it: starvation is bounded, and background work takes at most roughly
//!   one slice in `background_max_wait_ns / time_slice` while normal work is pending.
//!
//! # Complexity
//! `push`, `pop` and [`RunQueue::preempt_at`] are O(1); `remove` (cancellation, rare) is
//! O(n) in the queue length.

use alloc::collections::VecDeque;

use crate::thread::Priority;

/// One queued thread: its key (the scheduler's slot number) and when it became runnable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    key: usize,
    since_ns: u64,
}

/// What [`RunQueue::pop`] chose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pick {
    /// The thread's key.
    pub key: usize,
    /// Its priority.
    pub priority: Priority,
    /// A starving background thread served ahead of normal ones: for its next slice it
    /// counts as normal (pass [`Pick::runs_as`] to [`RunQueue::preempt_at`]).
    pub boosted: bool,
}

impl Pick {
    /// The priority the thread runs with for this slice: `Normal` if boosted.
    pub fn runs_as(&self) -> Priority {
        if self.boosted { Priority::Normal } else { self.priority }
    }
}

/// Runnable threads by priority. Keys are opaque `usize`s (the scheduler uses thread slots);
/// a key must be queued at most once.
#[derive(Debug)]
pub struct RunQueue {
    normal: VecDeque<Entry>,
    background: VecDeque<Entry>,
    background_max_wait_ns: u64,
}

impl RunQueue {
    /// An empty queue with the given background anti-starvation limit.
    pub const fn new(background_max_wait_ns: u64) -> Self {
        Self { normal: VecDeque::new(), background: VecDeque::new(), background_max_wait_ns }
    }

    /// Makes room for `total` entries in each priority so that `push` never allocates while
    /// at most `total` threads exist. Call in thread context when a thread is created.
    pub fn reserve_total(&mut self, total: usize) {
        for q in [&mut self.normal, &mut self.background] {
            let extra = total.saturating_sub(q.len());
            q.reserve(extra);
        }
    }

    /// Appends `key` at the back of its priority's queue; `now_ns` is when it became
    /// runnable (the start of its wait, for the anti-starvation rule).
    pub fn push(&mut self, key: usize, priority: Priority, now_ns: u64) {
        let entry = Entry { key, since_ns: now_ns };
        match priority {
            Priority::Normal => self.normal.push_back(entry),
            Priority::Background => self.background.push_back(entry),
        }
    }

    /// Takes the thread that runs next at `now_ns`: a starving background thread (boosted),
    /// else the oldest normal one, else the oldest background one.
    pub fn pop(&mut self, now_ns: u64) -> Option<Pick> {
        let pick = |e: Entry, priority, boosted| Pick { key: e.key, priority, boosted };
        if self.background_starving(now_ns) {
            return self.background.pop_front().map(|e| pick(e, Priority::Background, true));
        }
        if let Some(e) = self.normal.pop_front() {
            return Some(pick(e, Priority::Normal, false));
        }
        self.background.pop_front().map(|e| pick(e, Priority::Background, false))
    }

    /// Removes `key` wherever it is queued; returns whether it was there. O(n).
    pub fn remove(&mut self, key: usize) -> bool {
        for q in [&mut self.normal, &mut self.background] {
            if let Some(i) = q.iter().position(|e| e.key == key) {
                q.remove(i);
                return true;
            }
        }
        false
    }

    /// When the running thread must give way, given the priority it runs as
    /// ([`Pick::runs_as`]; `None`: the idle thread) and the end of its time slice. `Some(t)` with `t <= now` means "now"; `None` means
    /// the queue alone never forces a switch (only blocking, yielding or a wake-up can).
    ///
    /// - idle: as soon as anything is runnable;
    /// - background: at once if a normal thread is runnable, at slice end if another
    ///   background thread is (a boosted background thread runs as normal);
    /// - normal: at slice end if another normal thread is runnable; if only background
    ///   threads are, when the oldest one starts starving (but not before slice end).
    pub fn preempt_at(&self, current: Option<Priority>, slice_end_ns: u64) -> Option<u64> {
        match current {
            None => (!self.is_empty()).then_some(0),
            Some(Priority::Background) => {
                if !self.normal.is_empty() {
                    Some(0)
                } else if !self.background.is_empty() {
                    Some(slice_end_ns)
                } else {
                    None
                }
            }
            Some(Priority::Normal) => {
                if !self.normal.is_empty() {
                    Some(slice_end_ns)
                } else {
                    self.background.front().map(|e| {
                        e.since_ns.saturating_add(self.background_max_wait_ns).max(slice_end_ns)
                    })
                }
            }
        }
    }

    /// Number of queued threads.
    pub fn len(&self) -> usize {
        self.normal.len() + self.background.len()
    }

    /// Number of queued threads of one priority.
    pub fn len_of(&self, priority: Priority) -> usize {
        match priority {
            Priority::Normal => self.normal.len(),
            Priority::Background => self.background.len(),
        }
    }

    /// Whether nothing is runnable.
    pub fn is_empty(&self) -> bool {
        self.normal.is_empty() && self.background.is_empty()
    }

    fn background_starving(&self, now_ns: u64) -> bool {
        self.background
            .front()
            .is_some_and(|e| now_ns.saturating_sub(e.since_ns) >= self.background_max_wait_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    const NEVER: u64 = u64::MAX;

    #[test]
    fn normal_before_background_fifo_within_priority() {
        let mut q = RunQueue::new(NEVER);
        q.push(1, Priority::Background, 0);
        q.push(2, Priority::Normal, 0);
        q.push(3, Priority::Background, 0);
        q.push(4, Priority::Normal, 0);
        let order: Vec<usize> = core::iter::from_fn(|| q.pop(0).map(|p| p.key)).collect();
        assert_eq!(order, [2, 4, 1, 3]);
    }

    #[test]
    fn starving_background_goes_first_once() {
        let mut q = RunQueue::new(100);
        q.push(1, Priority::Background, 0);
        q.push(2, Priority::Normal, 50);
        assert_eq!(q.pop(99).map(|p| (p.key, p.boosted)), Some((2, false)));
        q.push(2, Priority::Normal, 99);
        let p = q.pop(100).unwrap();
        assert_eq!((p.key, p.priority, p.boosted), (1, Priority::Background, true));
        assert_eq!(p.runs_as(), Priority::Normal);
        // Requeued background starts a fresh wait.
        q.push(1, Priority::Background, 100);
        assert_eq!(q.pop(150).map(|p| p.key), Some(2));
        let p = q.pop(150).unwrap();
        assert_eq!((p.key, p.boosted, p.runs_as()), (1, false, Priority::Background));
    }

    #[test]
    fn preempt_at_rules() {
        let mut q = RunQueue::new(1000);
        assert_eq!(q.preempt_at(None, 50), None);
        assert_eq!(q.preempt_at(Some(Priority::Normal), 50), None);
        q.push(1, Priority::Background, 10);
        assert_eq!(q.preempt_at(None, 50), Some(0));
        assert_eq!(q.preempt_at(Some(Priority::Background), 50), Some(50));
        assert_eq!(q.preempt_at(Some(Priority::Normal), 50), Some(1010));
        assert_eq!(q.preempt_at(Some(Priority::Normal), 5000), Some(5000));
        q.push(2, Priority::Normal, 10);
        assert_eq!(q.preempt_at(Some(Priority::Background), 50), Some(0));
        assert_eq!(q.preempt_at(Some(Priority::Normal), 50), Some(50));
    }

    #[test]
    fn remove_cancels() {
        let mut q = RunQueue::new(NEVER);
        q.push(1, Priority::Normal, 0);
        q.push(2, Priority::Background, 0);
        assert!(q.remove(2));
        assert!(!q.remove(2));
        assert_eq!(q.len(), 1);
        assert_eq!(q.pop(0).map(|p| (p.key, p.priority)), Some((1, Priority::Normal)));
        assert!(q.is_empty());
    }

    #[derive(Clone, Debug)]
    enum Op {
        Push(usize, bool),
        Pop,
        Remove(usize),
        Tick(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0usize..16, any::<bool>()).prop_map(|(k, b)| Op::Push(k, b)),
            Just(Op::Pop),
            (0usize..16).prop_map(Op::Remove),
            (0u64..40).prop_map(Op::Tick),
        ]
    }

    proptest! {
        /// Against a simple model: normal FIFO before background FIFO, except a background
        /// thread waiting >= the limit goes first; removal takes exactly that key.
        #[test]
        fn matches_model(ops in proptest::collection::vec(op(), 0..200)) {
            const LIMIT: u64 = 100;
            let mut q = RunQueue::new(LIMIT);
            let mut normal: Vec<(usize, u64)> = Vec::new();
            let mut background: Vec<(usize, u64)> = Vec::new();
            let mut now = 0u64;
            for op in ops {
                match op {
                    Op::Push(k, bg) => {
                        if normal.iter().chain(&background).any(|e| e.0 == k) {
                            continue; // a key is queued at most once
                        }
                        let prio = if bg { Priority::Background } else { Priority::Normal };
                        q.push(k, prio, now);
                        if bg { background.push((k, now)) } else { normal.push((k, now)) }
                    }
                    Op::Pop => {
                        let expect = if background.first().is_some_and(|e| now - e.1 >= LIMIT) {
                            Some((background.remove(0).0, Priority::Background, true))
                        } else if !normal.is_empty() {
                            Some((normal.remove(0).0, Priority::Normal, false))
                        } else if !background.is_empty() {
                            Some((background.remove(0).0, Priority::Background, false))
                        } else {
                            None
                        };
                        prop_assert_eq!(q.pop(now).map(|p| (p.key, p.priority, p.boosted)), expect);
                    }
                    Op::Remove(k) => {
                        let was = normal.iter().chain(&background).any(|e| e.0 == k);
                        normal.retain(|e| e.0 != k);
                        background.retain(|e| e.0 != k);
                        prop_assert_eq!(q.remove(k), was);
                    }
                    Op::Tick(d) => now += d,
                }
                prop_assert_eq!(q.len(), normal.len() + background.len());
                prop_assert_eq!(q.len_of(Priority::Normal), normal.len());
            }
        }

        /// Round robin: with n equal-priority threads that each run and requeue, every
        /// thread runs within any window of n consecutive picks.
        #[test]
        fn equal_priority_is_fair(n in 1usize..12, rounds in 1usize..30, bg in any::<bool>()) {
            let prio = if bg { Priority::Background } else { Priority::Normal };
            let mut q = RunQueue::new(NEVER);
            for k in 0..n { q.push(k, prio, 0); }
            let mut runs = alloc::vec![0usize; n];
            for _ in 0..rounds {
                let mut seen = alloc::vec![false; n];
                for _ in 0..n {
                    let p = q.pop(0).unwrap();
                    prop_assert_eq!(p.priority, prio);
                    prop_assert!(!seen[p.key]);
                    seen[p.key] = true;
                    runs[p.key] += 1;
                    q.push(p.key, p.priority, 0);
                }
            }
            prop_assert!(runs.iter().all(|&r| r == rounds));
        }

        /// Background is picked only when no normal thread is runnable (no starvation yet).
        #[test]
        fn background_only_when_no_normal(pushes in proptest::collection::vec(any::<bool>(), 1..40)) {
            let mut q = RunQueue::new(NEVER);
            for (k, bg) in pushes.iter().enumerate() {
                q.push(k, if *bg { Priority::Background } else { Priority::Normal }, 0);
            }
            while let Some(p) = q.pop(0) {
                if p.priority == Priority::Background {
                    prop_assert_eq!(q.len_of(Priority::Normal), 0);
                }
            }
        }
    }
}

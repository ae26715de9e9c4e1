//! The timer queue: which sleeping thread's deadline comes first.
//!
//! Owns: pending deadlines, at most one per key (a thread sleeps on one deadline at a time),
//! their order, and cancellation.
//! Must never: allocate in `pop_expired` or `cancel` (both run from interrupt handlers),
//! read a clock or touch the hardware timer (the scheduler programs the one-shot timer from
//! [`TimerQueue::next_deadline`]).
//!
//! # Choice: an indexed binary min-heap, not a timer wheel
//! The platform gives a one-shot timer with nanosecond deadlines, and a unikernel has tens
//! of threads, not millions of timers. A heap keeps deadlines exact (no tick granularity, no
//! periodic tick to turn a wheel) and the next deadline is O(1) to read. Each key's heap
//! position is tracked, so cancelling is an exact O(log n) removal rather than a tombstone
//! that lingers. Ties are broken by insertion order (FIFO).
//!
//! | operation | cost |
//! |---|---|
//! | `insert` (or re-arm) | O(log n) |
//! | `cancel` | O(log n) |
//! | `pop_expired` | O(log n) per expired timer |
//! | `next_deadline` | O(1) |

use alloc::vec::Vec;

const NOT_QUEUED: usize = usize::MAX;

#[derive(Clone, Copy, Debug)]
struct Timer {
    deadline_ns: u64,
    seq: u64,
    key: usize,
}

impl Timer {
    fn before(&self, other: &Timer) -> bool {
        (self.deadline_ns, self.seq) < (other.deadline_ns, other.seq)
    }
}

/// Deadlines by key (the scheduler uses thread slots), earliest first.
#[derive(Debug, Default)]
pub struct TimerQueue {
    heap: Vec<Timer>,
    /// `pos[key]` = index of `key`'s timer in `heap`, or `NOT_QUEUED`.
    pos: Vec<usize>,
    next_seq: u64,
}

impl TimerQueue {
    /// An empty queue.
    pub const fn new() -> Self {
        Self { heap: Vec::new(), pos: Vec::new(), next_seq: 0 }
    }

    /// Makes room for keys `0..keys` so that no operation on them allocates.
    pub fn reserve_keys(&mut self, keys: usize) {
        if self.pos.len() < keys {
            self.pos.resize(keys, NOT_QUEUED);
        }
        self.heap.reserve(keys.saturating_sub(self.heap.len()));
    }

    /// Arms `key`'s timer at `deadline_ns`, replacing any deadline it had. Allocates only if
    /// `key` is beyond [`TimerQueue::reserve_keys`].
    pub fn insert(&mut self, key: usize, deadline_ns: u64) {
        self.cancel(key);
        self.reserve_keys(key + 1);
        let seq = self.next_seq;
        self.next_seq += 1;
        let i = self.heap.len();
        self.heap.push(Timer { deadline_ns, seq, key });
        self.pos[key] = i;
        self.sift_up(i);
    }

    /// Disarms `key`'s timer; returns the deadline it had, if any.
    pub fn cancel(&mut self, key: usize) -> Option<u64> {
        let i = *self.pos.get(key)?;
        if i == NOT_QUEUED {
            return None;
        }
        Some(self.remove_at(i).deadline_ns)
    }

    /// `key`'s pending deadline, if armed.
    pub fn deadline_of(&self, key: usize) -> Option<u64> {
        let i = *self.pos.get(key)?;
        (i != NOT_QUEUED).then(|| self.heap[i].deadline_ns)
    }

    /// The earliest pending deadline.
    pub fn next_deadline(&self) -> Option<u64> {
        self.heap.first().map(|t| t.deadline_ns)
    }

    /// Removes and returns the earliest key whose deadline is `<= now_ns`. Call in a loop
    /// to collect all expired timers in deadline order.
    pub fn pop_expired(&mut self, now_ns: u64) -> Option<usize> {
        let first = self.heap.first()?;
        (first.deadline_ns <= now_ns).then(|| self.remove_at(0).key)
    }

    /// Number of armed timers.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether no timer is armed.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    fn remove_at(&mut self, i: usize) -> Timer {
        let last = self.heap.len() - 1;
        self.swap(i, last);
        let timer = self.heap.pop().expect("heap is not empty");
        self.pos[timer.key] = NOT_QUEUED;
        if i < self.heap.len() {
            // The element moved into `i` may need to go either way.
            self.sift_down(i);
            self.sift_up(i);
        }
        timer
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        self.pos[self.heap[a].key] = a;
        self.pos[self.heap[b].key] = b;
    }

    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if !self.heap[i].before(&self.heap[parent]) {
                break;
            }
            self.swap(i, parent);
            i = parent;
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut smallest = i;
            if l < self.heap.len() && self.heap[l].before(&self.heap[smallest]) {
                smallest = l;
            }
            if r < self.heap.len() && self.heap[r].before(&self.heap[smallest]) {
                smallest = r;
            }
            if smallest == i {
                break;
            }
            self.swap(i, smallest);
            i = smallest;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;
    use proptest::prelude::*;

    #[test]
    fn expires_in_deadline_order_ties_fifo() {
        let mut t = TimerQueue::new();
        t.insert(3, 30);
        t.insert(1, 10);
        t.insert(2, 10);
        t.insert(4, 5);
        assert_eq!(t.next_deadline(), Some(5));
        assert_eq!(t.pop_expired(4), None);
        let got: Vec<usize> = core::iter::from_fn(|| t.pop_expired(20)).collect();
        assert_eq!(got, [4, 1, 2]);
        assert_eq!(t.len(), 1);
        assert_eq!(t.deadline_of(3), Some(30));
    }

    #[test]
    fn cancel_and_rearm() {
        let mut t = TimerQueue::new();
        t.insert(0, 10);
        t.insert(1, 20);
        assert_eq!(t.cancel(0), Some(10));
        assert_eq!(t.cancel(0), None);
        assert_eq!(t.cancel(99), None);
        t.insert(1, 5); // re-arm replaces
        assert_eq!(t.len(), 1);
        assert_eq!(t.pop_expired(100), Some(1));
        assert!(t.is_empty());
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(usize, u64),
        Cancel(usize),
        Expire(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0usize..24, 0u64..1000).prop_map(|(k, d)| Op::Insert(k, d)),
            1 => (0usize..24).prop_map(Op::Cancel),
            1 => (0u64..1000).prop_map(Op::Expire),
        ]
    }

    proptest! {
        /// Against a BTreeMap model keyed by (deadline, insertion seq): expiry yields exactly
        /// the due keys in deadline order (FIFO on ties); cancel removes exactly one timer.
        #[test]
        fn matches_model(ops in proptest::collection::vec(op(), 0..300)) {
            let mut t = TimerQueue::new();
            let mut model: BTreeMap<(u64, u64), usize> = BTreeMap::new();
            let mut seq = 0u64;
            for op in ops {
                match op {
                    Op::Insert(k, d) => {
                        model.retain(|_, v| *v != k);
                        model.insert((d, seq), k);
                        seq += 1;
                        t.insert(k, d);
                    }
                    Op::Cancel(k) => {
                        let had = model.iter().find(|(_, v)| **v == k).map(|(key, _)| *key);
                        if let Some(key) = had { model.remove(&key); }
                        prop_assert_eq!(t.cancel(k), had.map(|(d, _)| d));
                    }
                    Op::Expire(now) => {
                        let got: Vec<usize> = core::iter::from_fn(|| t.pop_expired(now)).collect();
                        let due: Vec<(u64, u64)> = model.range(..(now + 1, 0)).map(|(k, _)| *k).collect();
                        let want: Vec<usize> = due.iter().map(|k| model.remove(k).unwrap()).collect();
                        prop_assert_eq!(got, want);
                    }
                }
                prop_assert_eq!(t.len(), model.len());
                prop_assert_eq!(t.next_deadline(), model.keys().next().map(|k| k.0));
            }
        }

        /// Popping everything yields non-decreasing deadlines.
        #[test]
        fn sleepers_wake_in_deadline_order(deadlines in proptest::collection::vec(0u64..10_000, 0..64)) {
            let mut t = TimerQueue::new();
            for (k, d) in deadlines.iter().enumerate() { t.insert(k, *d); }
            let mut last = 0;
            while let Some(k) = t.pop_expired(u64::MAX) {
                prop_assert!(deadlines[k] >= last);
                last = deadlines[k];
            }
        }
    }
}

//! Public descriptions of threads: ids, names, priorities, states and the snapshot
//! [`ThreadInfo`] returned by [`crate::threads`].
//!
//! Owns: the vocabulary types shared by the API and the scheduler core.
//! Must never: hold scheduler state or allocate (names are fixed-size so that fault
//! handlers can copy them).

use core::fmt;

/// A thread's identity: unique for the scheduler's lifetime, never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ThreadId(pub(crate) u64);

impl ThreadId {
    /// The raw number (the boot thread is 0, the idle thread 1, spawned threads count up).
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ThreadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Maximum length of a thread name in bytes; longer names are truncated.
pub const THREAD_NAME_MAX: usize = 32;

/// A thread's name, stored inline (no allocation) so fault handlers can copy it.
pub type ThreadName = heapless::String<THREAD_NAME_MAX>;

/// Builds a [`ThreadName`], truncating at a character boundary if `name` is too long.
pub fn thread_name(name: &str) -> ThreadName {
    let mut out = ThreadName::new();
    for c in name.chars() {
        if out.push(c).is_err() {
            break;
        }
    }
    out
}

/// Scheduling class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Priority {
    /// Ordinary work: round-robin with the other normal threads.
    #[default]
    Normal,
    /// Runs only when no normal thread is runnable, except that one that has waited longer
    /// than [`crate::SchedConfig::background_max_wait_ns`] gets a slice ahead of them
    /// (bounded starvation; see [`crate::runqueue`]).
    Background,
}

/// What a thread is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadState {
    /// On the CPU.
    Running,
    /// Runnable, waiting in the run queue.
    Ready,
    /// Sleeping until a deadline, or waiting on a [`crate::WaitQueue`] (maybe with a
    /// deadline).
    Blocked,
    /// Finished; its stack is returned to the platform soon.
    Exited,
}

/// A snapshot of one thread, from [`crate::threads`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreadInfo {
    /// Its id.
    pub id: ThreadId,
    /// Its name.
    pub name: ThreadName,
    /// Its priority (the idle thread reports `Background` and `is_idle`).
    pub priority: Priority,
    /// Its state at the time of the snapshot.
    pub state: ThreadState,
    /// CPU time consumed so far, in nanoseconds of the platform clock, including the
    /// current run if it is running and the interrupts that hit while it ran.
    pub cpu_time_ns: u64,
    /// How many times it was switched onto the CPU.
    pub switches: u64,
    /// Its stack (`None` for the boot thread, whose stack the scheduler does not own).
    pub stack: Option<crate::Stack>,
    /// Whether this is the idle thread (its CPU time is idle time).
    pub is_idle: bool,
}

/// The calling thread, from [`crate::current`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CurrentThread {
    /// Its id.
    pub id: ThreadId,
    /// Its name.
    pub name: ThreadName,
    /// Its priority.
    pub priority: Priority,
}

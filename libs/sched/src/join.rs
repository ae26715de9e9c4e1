//! Spawning threads and collecting their results: [`Builder`], [`JoinHandle`] and their
//! errors.
//!
//! Owns: the hand-over of a thread's return value to whoever joins it.
//! Must never: block in interrupt context, or keep a thread record alive (the scheduler
//! reclaims exited threads whether or not they are joined).

use alloc::sync::Arc;
use core::fmt;

use crate::Platform;
use crate::global::{sched, try_sched};
use crate::scheduler::IrqOff;
use crate::thread::{Priority, ThreadId};
use crate::wait::WaitQueue;

/// Why [`spawn`](crate::spawn) failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpawnError {
    /// [`crate::init`] has not run.
    NotInitialized,
    /// The platform could not allocate a stack of this many bytes.
    NoStack(usize),
    /// The requested stack size is below [`crate::MIN_STACK_SIZE`].
    StackTooSmall(usize),
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotInitialized => write!(f, "remora_sched::init has not run yet"),
            Self::NoStack(size) => write!(
                f,
                "could not allocate a {size}-byte thread stack: memory exhausted (lower \
                 sched.stack_size or spawn fewer threads)"
            ),
            Self::StackTooSmall(size) => write!(
                f,
                "thread stack of {size} bytes is too small (minimum {} bytes)",
                crate::MIN_STACK_SIZE
            ),
        }
    }
}

/// Why [`JoinHandle::join`] has no value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinError {
    /// The thread called [`crate::exit`] instead of returning.
    Exited,
    /// The thread panicked (host tests only: the kernel panics are fatal).
    Panicked,
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exited => write!(f, "the thread called exit() instead of returning a value"),
            Self::Panicked => write!(f, "the thread panicked"),
        }
    }
}

/// Told when a thread ends without completing its closure.
pub(crate) trait Completion: Send + Sync {
    fn abandon(&self);
}

/// Where a thread's outcome waits for its joiner.
pub(crate) struct JoinSlot<T> {
    /// Taken with interrupts disabled, like every lock of this crate, so its holder cannot
    /// be preempted while another thread spins on it.
    outcome: spin::Mutex<Option<Result<T, JoinError>>>,
    done: WaitQueue,
    platform: &'static dyn Platform,
}

impl<T: Send> JoinSlot<T> {
    pub(crate) fn new(platform: &'static dyn Platform) -> Self {
        Self { outcome: spin::Mutex::new(None), done: WaitQueue::new(), platform }
    }

    fn with_outcome<R>(&self, f: impl FnOnce(&mut Option<Result<T, JoinError>>) -> R) -> R {
        let _irq = IrqOff::new(self.platform);
        f(&mut self.outcome.lock())
    }

    pub(crate) fn complete(&self, outcome: Result<T, JoinError>) {
        self.with_outcome(|slot| {
            if slot.is_none() {
                *slot = Some(outcome);
            }
        });
        self.done.wake_all();
    }
}

impl<T: Send> Completion for JoinSlot<T> {
    fn abandon(&self) {
        self.complete(Err(JoinError::Exited));
    }
}

/// Runs a thread's closure. On the host (tests) a panic is caught and reported to the
/// joiner; in the kernel (`panic = "abort"`) it is fatal anyway.
pub(crate) fn run_catching<T>(f: impl FnOnce() -> T) -> Result<T, JoinError> {
    #[cfg(test)]
    {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|_| JoinError::Panicked)
    }
    #[cfg(not(test))]
    {
        Ok(f())
    }
}

/// Owns the right to join a thread. Dropping it detaches the thread.
pub struct JoinHandle<T> {
    id: ThreadId,
    slot: Arc<JoinSlot<T>>,
}

impl<T: Send> JoinHandle<T> {
    pub(crate) fn new(id: ThreadId, slot: Arc<JoinSlot<T>>) -> Self {
        Self { id, slot }
    }

    /// The thread's id.
    pub fn id(&self) -> ThreadId {
        self.id
    }

    /// Whether the thread has finished (returned, exited or panicked).
    pub fn is_finished(&self) -> bool {
        self.slot.with_outcome(|o| o.is_some())
    }

    /// Blocks until the thread finishes and returns its closure's value.
    pub fn join(self) -> Result<T, JoinError> {
        let slot = &self.slot;
        slot.done.wait_until(|| slot.with_outcome(|o| o.is_some()));
        let outcome = slot.with_outcome(Option::take).expect("outcome present");
        sched().reap();
        outcome
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle").field("id", &self.id).finish()
    }
}

/// Spawns a thread with options beyond [`crate::spawn`]'s.
///
/// ```ignore
/// let h = Builder::new("evictor").priority(Priority::Background).stack_size(32 * 1024)
///     .spawn(|| evict_forever())?;
/// ```
#[derive(Clone, Debug)]
pub struct Builder {
    name: crate::ThreadName,
    priority: Priority,
    stack_size: Option<usize>,
}

impl Builder {
    /// A normal-priority thread with the configured default stack size.
    pub fn new(name: &str) -> Self {
        Self {
            name: crate::thread::thread_name(name),
            priority: Priority::Normal,
            stack_size: None,
        }
    }

    /// Sets the priority.
    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the stack size in bytes (the platform may round it up to pages).
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// Creates the thread; it is runnable at once and starts with interrupts enabled.
    pub fn spawn<F, T>(self, f: F) -> Result<JoinHandle<T>, SpawnError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let s = try_sched().ok_or(SpawnError::NotInitialized)?;
        s.spawn(&self.name, self.priority, self.stack_size, f)
    }
}

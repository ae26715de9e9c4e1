//! The scheduler's only door to hardware: the [`Platform`] trait and the [`Stack`] it hands out.
//!
//! Owns: the contract between the scheduler and the platform (clock, one-shot timer, halt,
//! interrupt flag, stack memory).
//! Must never: grow into a general HAL. Anything the scheduler does not need to decide *when*
//! a thread runs stays out of this trait.

use core::ops::Range;

/// Size of the unmapped guard region the platform keeps below every stack it hands out.
pub const STACK_GUARD_SIZE: usize = 4096;

/// A thread stack handed out by [`Platform::alloc_stack`]: the usable bytes are
/// `bottom..top` (the stack grows down from `top`). The platform keeps the
/// [`STACK_GUARD_SIZE`] bytes below `bottom` unmapped, so an overflow faults instead of
/// corrupting a neighbour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stack {
    /// Lowest usable address.
    pub bottom: usize,
    /// One past the highest usable address; the initial stack pointer is derived from it.
    pub top: usize,
}

impl Stack {
    /// Usable size in bytes.
    pub fn size(&self) -> usize {
        self.top - self.bottom
    }

    /// The guard region below the stack: a fault address in it means this stack overflowed.
    pub fn guard(&self) -> Range<usize> {
        self.bottom.saturating_sub(STACK_GUARD_SIZE)..self.bottom
    }
}

/// What the scheduler needs from the machine. The kernel's platform implements it once and
/// passes a `&'static` to [`crate::init`]; host tests implement it with a fake clock.
///
/// Every method may be called with the scheduler lock held and interrupts disabled, so none
/// of them may call back into the scheduler (except `halt_until_interrupt`, during which
/// interrupt handlers run as usual).
pub trait Platform: Sync + 'static {
    /// Monotonic clock in nanoseconds. Never goes backwards.
    fn now_ns(&self) -> u64;

    /// Arms the one-shot timer: at or after `deadline_ns` the platform's timer interrupt
    /// calls [`crate::on_timer_interrupt`] once. A new call replaces the previous deadline
    /// (the scheduler only ever moves it earlier, or re-arms after it fired). A deadline that
    /// has already passed must fire as soon as interrupts are enabled.
    fn set_timer_deadline(&self, deadline_ns: u64);

    /// Atomically enables interrupts and halts until one arrives (`sti; hlt`), lets its
    /// handler run, and returns with interrupts disabled again (`cli`). Called only by the
    /// idle thread, with interrupts disabled and no scheduler lock held.
    fn halt_until_interrupt(&self);

    /// Disables interrupts on this CPU and returns whether they were enabled.
    fn disable_interrupts(&self) -> bool;

    /// Re-enables interrupts if `were_enabled`; otherwise leaves them disabled.
    fn restore_interrupts(&self, were_enabled: bool);

    /// Allocates a stack of at least `size` bytes (the platform may round up to pages),
    /// 16-byte aligned at `top`, with an unmapped guard page below `bottom`.
    /// `None` when memory is exhausted. Called in thread context only, never from an
    /// interrupt handler and never with the scheduler lock held.
    fn alloc_stack(&self, size: usize) -> Option<Stack>;

    /// Returns a stack obtained from [`Platform::alloc_stack`]. The scheduler calls it only
    /// after the owning thread has exited and switched away for good; same context rules as
    /// `alloc_stack`.
    fn free_stack(&self, stack: Stack);
}

//! [`IrqLock`]: a spin lock that is held with interrupts disabled.
//!
//! The allocators are called from threads that the scheduler may preempt, and from code
//! that runs with interrupts off (the scheduler itself, the fault path). A plain spin lock
//! held by a preempted thread would deadlock such code on one CPU; holding the lock inside
//! a critical section (the `critical-section` crate: the image's platform disables
//! interrupts, host tests use the `std` implementation) rules that out. Owns nothing but
//! the lock.

#![allow(unsafe_code)]

use core::mem::ManuallyDrop;
use core::ops::{Deref, DerefMut};

/// A spin lock whose guard also holds a critical section.
pub struct IrqLock<T> {
    inner: spin::Mutex<T>,
}

/// Access to the locked value; interrupts stay off until it is dropped.
pub struct IrqLockGuard<'a, T> {
    guard: ManuallyDrop<spin::MutexGuard<'a, T>>,
    restore: critical_section::RestoreState,
}

impl<T> IrqLock<T> {
    /// A new, unlocked lock.
    pub const fn new(value: T) -> Self {
        IrqLock { inner: spin::Mutex::new(value) }
    }

    /// Enters a critical section, then takes the lock.
    pub fn lock(&self) -> IrqLockGuard<'_, T> {
        // SAFETY: paired with exactly one `release` in the guard's `Drop`, which runs
        // after the inner guard is dropped (nesting order kept).
        let restore = unsafe { critical_section::acquire() };
        IrqLockGuard { guard: ManuallyDrop::new(self.inner.lock()), restore }
    }

    /// Takes the lock if it is free, without waiting.
    pub fn try_lock(&self) -> Option<IrqLockGuard<'_, T>> {
        // SAFETY: as in `lock`; released at once if the lock is taken.
        let restore = unsafe { critical_section::acquire() };
        match self.inner.try_lock() {
            Some(guard) => Some(IrqLockGuard { guard: ManuallyDrop::new(guard), restore }),
            None => {
                // SAFETY: releases the section acquired above, nothing else is held.
                unsafe { critical_section::release(restore) };
                None
            }
        }
    }
}

impl<T> Deref for IrqLockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> DerefMut for IrqLockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

impl<T> Drop for IrqLockGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: the inner guard is dropped exactly once, here, before the critical
        // section it was taken in is left.
        unsafe {
            ManuallyDrop::drop(&mut self.guard);
            critical_section::release(self.restore);
        }
    }
}

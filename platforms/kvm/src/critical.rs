//! The `critical-section` implementation for the image: a critical section is "interrupts
//! off" on this (single) CPU. Libraries that must not be interrupted while holding a lock
//! (the allocators) use `critical_section` and stay platform-independent.

use x86_64::instructions::interrupts;

struct DisableInterrupts;
critical_section::set_impl!(DisableInterrupts);

// SAFETY: acquire returns whether interrupts were on and turns them off; release turns
// them back on only if they were. Nesting restores each level's state.
unsafe impl critical_section::Impl for DisableInterrupts {
    unsafe fn acquire() -> critical_section::RawRestoreState {
        let were_enabled = interrupts::are_enabled();
        interrupts::disable();
        were_enabled
    }

    unsafe fn release(were_enabled: critical_section::RawRestoreState) {
        if were_enabled {
            interrupts::enable();
        }
    }
}

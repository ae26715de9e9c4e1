//! Where the API functions find "the" scheduler.
//!
//! Owns: the one scheduler instance of the kernel, installed by [`crate::init`].
//! Must never: hold more than that pointer. In host unit tests (`cfg(test)`) the instance is
//! per OS thread instead, so tests running in parallel each get their own scheduler; the
//! threads a test spawns run on that same OS thread.

use crate::scheduler::{InitError, Scheduler};

#[cfg(not(test))]
static INSTANCE: spin::Once<&'static Scheduler> = spin::Once::new();

#[cfg(test)]
std::thread_local! {
    static INSTANCE: core::cell::Cell<Option<&'static Scheduler>> =
        const { core::cell::Cell::new(None) };
}

pub(crate) fn try_sched() -> Option<&'static Scheduler> {
    #[cfg(not(test))]
    {
        INSTANCE.get().copied()
    }
    #[cfg(test)]
    {
        INSTANCE.with(|i| i.get())
    }
}

/// The installed scheduler. Panics if [`crate::init`] has not run: calling a thread API
/// before the scheduler exists is a kernel bug, not a runtime condition.
pub(crate) fn sched() -> &'static Scheduler {
    try_sched().expect("remora_sched::init has not run")
}

pub(crate) fn install(s: &'static Scheduler) -> Result<(), InitError> {
    #[cfg(not(test))]
    {
        let mut installed = false;
        INSTANCE.call_once(|| {
            installed = true;
            s
        });
        if installed { Ok(()) } else { Err(InitError::AlreadyInitialized) }
    }
    #[cfg(test)]
    {
        INSTANCE.with(|i| {
            if i.get().is_some() {
                return Err(InitError::AlreadyInitialized);
            }
            i.set(Some(s));
            Ok(())
        })
    }
}

//! Architecture-specific code: the context switch and the first frame of a new thread.
//!
//! Owns: every `unsafe` block of this crate and all inline assembly.
//! Must never: make scheduling decisions, take locks or allocate; it moves stack pointers
//! and nothing else.

#[cfg(target_arch = "x86_64")]
mod x86_64;
#[cfg(target_arch = "x86_64")]
pub(crate) use x86_64::{Context, switch};

#[cfg(not(target_arch = "x86_64"))]
compile_error!("remora-sched has a context switch for x86_64 only");

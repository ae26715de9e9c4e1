//! x86_64 context switch.
//!
//! Owns: the saved-register layout of a switched-out thread, the switch itself and the
//! trampoline a new thread starts in. This is the only module of the crate allowed to use
//! `unsafe`.
//! Must never: touch anything but general-purpose registers and the stacks it is given
//! (the kernel target has no SSE; on the host, SSE registers are caller-saved and spilled
//! by the compiler around the call to [`switch`]).
//!
//! # Layout
//! A switched-out thread's state is its stack pointer alone; the callee-saved registers are
//! pushed on its own stack, below the return address into [`switch`]'s caller:
//!
//! ```text
//!   higher addresses
//!   return address (into `switch`'s caller, or `thread_trampoline` for a new thread)
//!   rbp, rbx, r12, r13, r14, r15   <- saved rsp points at r15
//! ```
//! RFLAGS is not saved: every switch happens with interrupts disabled and every thread
//! restores its own interrupt flag after it is switched back in (the scheduler's `IrqOff`
//! guard), and the ABI keeps DF clear across calls.
//!
//! # The invariant the rest of the crate upholds
//! A [`Context`] built by [`Context::new_thread`] points into the stack it was given; the
//! scheduler returns that stack to the platform only after the thread has exited and another
//! thread runs on this CPU, i.e. after the last switch away from it has completed. A
//! [`Resume`] is only ever obtained from a context that was saved by [`switch`] or built by
//! `new_thread`, and can be used once.

#![allow(unsafe_code)]

use alloc::boxed::Box;
use core::arch::naked_asm;
use core::num::NonZeroUsize;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::platform::Stack;
use crate::scheduler::{ThreadStart, run_thread};

/// Number of machine words in the frame [`switch`] pops: six callee-saved registers and a
/// return address.
const SWITCH_FRAME_WORDS: usize = 7;

/// Where a thread that is not on the CPU resumes: its saved stack pointer, or 0 while it
/// runs (or while a CPU that is switching away from it has not finished saving it).
#[derive(Debug)]
pub(crate) struct Context {
    saved_rsp: AtomicUsize,
}

/// Permission to resume one saved context, taken out of it by [`Context::take`].
#[derive(Debug)]
pub(crate) struct Resume {
    rsp: NonZeroUsize,
}

impl Context {
    /// The context of code that is already running (the boot thread): it gets a saved stack
    /// pointer the first time it is switched away from.
    pub(crate) const fn running() -> Self {
        Self { saved_rsp: AtomicUsize::new(0) }
    }

    /// Builds the first frame of a new thread at the top of `stack`: switching to it "returns"
    /// into the trampoline, which calls [`run_thread`] with `start`.
    pub(crate) fn new_thread(stack: &Stack, start: Box<ThreadStart>) -> Self {
        let top = stack.top & !0xf;
        let frame = top - SWITCH_FRAME_WORDS * core::mem::size_of::<usize>();
        assert!(
            stack.bottom < stack.top && frame >= stack.bottom,
            "stack {stack:?} too small for a thread's first frame"
        );
        let arg = Box::into_raw(start) as usize;
        // Popped in this order by `switch_stacks`: r15, r14, r13, r12, rbx, rbp, then `ret`.
        // rbp = 0 ends frame-pointer walks; r12 carries the start argument. After `ret`,
        // rsp == top, 16-byte aligned, as the trampoline's `call` requires.
        let words: [usize; SWITCH_FRAME_WORDS] =
            [0, 0, 0, arg, 0, 0, thread_trampoline as *const () as usize];
        // SAFETY: `frame..top` lies within `stack.bottom..stack.top` (asserted above), which
        // the platform handed out for this new thread alone and which nothing else uses yet;
        // `frame` is 8-byte aligned because `top` is 16-byte aligned.
        unsafe {
            core::ptr::copy_nonoverlapping(words.as_ptr(), frame as *mut usize, words.len());
        }
        Self { saved_rsp: AtomicUsize::new(frame) }
    }

    /// Takes the saved stack pointer, marking the context as running. `None` if it is not
    /// saved (the thread runs, or another CPU is still switching away from it).
    pub(crate) fn take(&self) -> Option<Resume> {
        NonZeroUsize::new(self.saved_rsp.swap(0, Ordering::Acquire)).map(|rsp| Resume { rsp })
    }
}

/// Saves the running thread's callee-saved registers and stack pointer into `prev` and
/// resumes `next`. Returns when some CPU switches back to `prev`.
///
/// Must be called with interrupts disabled and no lock held that the next thread needs.
pub(crate) fn switch(prev: &Context, next: Resume) {
    // SAFETY: `next.rsp` was saved by `switch_stacks` or built by `Context::new_thread`, so it
    // points at a valid switch frame on a live stack (module invariant), and `Resume` is not
    // `Clone`, so that frame is consumed once. `prev.saved_rsp` is a valid, exclusively
    // ours-to-write word (it is 0 while we run and only read via `take`). Every register the
    // ABI makes callee-saved is restored before `switch_stacks` returns to us.
    unsafe { switch_stacks(prev.saved_rsp.as_ptr(), next.rsp.get()) }
}

/// `prev_rsp` (rdi): where to save our stack pointer; `next_rsp` (rsi): the stack pointer to
/// load. The store to `[rdi]` is the last write to our stack's frame, so once it is visible
/// (x86 stores are ordered) the frame is complete and another CPU may resume it.
#[unsafe(naked)]
unsafe extern "C" fn switch_stacks(prev_rsp: *mut usize, next_rsp: usize) {
    naked_asm!(
        "push rbp",
        "push rbx",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "mov [rdi], rsp",
        "mov rsp, rsi",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbx",
        "pop rbp",
        "ret",
    )
}

/// First code a new thread runs, entered by `switch_stacks`' `ret` with rsp 16-byte aligned
/// and the start argument in r12.
#[unsafe(naked)]
unsafe extern "C" fn thread_trampoline() -> ! {
    naked_asm!(
        "mov rdi, r12",
        "call {start}",
        "ud2",
        start = sym thread_start,
    )
}

extern "C" fn thread_start(arg: usize) -> ! {
    // SAFETY: `arg` is the pointer `Context::new_thread` got from `Box::into_raw`, and the
    // trampoline runs once per context, so ownership is reclaimed exactly once.
    let start = unsafe { Box::from_raw(arg as *mut ThreadStart) };
    run_thread(*start)
}

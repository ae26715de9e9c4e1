//! `ktest`: the kernel's in-QEMU tests. Each boot runs the one test named by `test=` on
//! the command line and exits with success or failure; the integration tests in `tests/`
//! boot it once per test and check the console and the exit status. Tests that must
//! crash (a panic, a page fault, a stack overflow) are judged by their crash report.

#![no_std]

extern crate alloc;

use remora_kvm::{BootInfo, ExitStatus, println};

mod memory_tests;
mod net_tests;
mod platform_tests;
mod thread_tests;

/// A test: what it is called on the command line, and what it does.
type TestFn = fn(&'static BootInfo) -> Result<(), &'static str>;

const TESTS: &[(&str, TestFn)] = &[
    ("panic", platform_tests::panic),
    ("pagefault", platform_tests::page_fault),
    ("timer", platform_tests::timer),
    ("frames", memory_tests::frames),
    ("heap", memory_tests::heap),
    ("oom", memory_tests::out_of_memory),
    ("mmu", memory_tests::mmu),
    ("preemption", thread_tests::preemption),
    ("sleep", thread_tests::sleep),
    ("waitqueue", thread_tests::wait_queue),
    ("overflow", thread_tests::stack_overflow),
    ("switch", thread_tests::switch_cost),
    ("echo", net_tests::echo),
];

pub fn main(boot: &'static BootInfo) -> ExitStatus {
    let Some(name) = boot.cmdline.get("test") else {
        println!("ktest: name a test with test=<name>; tests:");
        for (test, _) in TESTS {
            println!("  {test}");
        }
        return ExitStatus::Failure;
    };
    let Some((_, run)) = TESTS.iter().find(|(test, _)| *test == name) else {
        println!("ktest: no test called {name:?}");
        return ExitStatus::Failure;
    };
    println!("ktest: running {name}");
    match run(boot) {
        Ok(()) => {
            println!("ktest: {name} passed");
            ExitStatus::Success
        }
        Err(why) => {
            println!("ktest: {name} FAILED: {why}");
            ExitStatus::Failure
        }
    }
}

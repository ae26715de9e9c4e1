//! `ktest`: the kernel's in-QEMU tests. Each boot runs the one test named by `test=` on
//! the command line and exits with success or failure; the integration tests in `tests/`
//! boot it once per test and check the console and the exit status. Tests that must
//! crash (a panic, a page fault, a stack overflow) are judged by their crash report.

#![no_std]

use remora_kvm::{BootInfo, ExitStatus, println};

mod platform_tests;

/// A test: what it is called on the command line, and what it does.
struct Test {
    name: &'static str,
    run: fn(&'static BootInfo) -> Result<(), &'static str>,
}

const TESTS: &[Test] = &[
    Test {
        name: "panic",
        run: platform_tests::panic,
    },
    Test {
        name: "pagefault",
        run: platform_tests::page_fault,
    },
    Test {
        name: "timer",
        run: platform_tests::timer,
    },
];

pub fn main(boot: &'static BootInfo) -> ExitStatus {
    let Some(name) = boot.cmdline.get("test") else {
        println!("ktest: name a test with test=<name>; tests:");
        for t in TESTS {
            println!("  {}", t.name);
        }
        return ExitStatus::Failure;
    };
    let Some(test) = TESTS.iter().find(|t| t.name == name) else {
        println!("ktest: no test called {name:?}");
        return ExitStatus::Failure;
    };
    println!("ktest: running {name}");
    match (test.run)(boot) {
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

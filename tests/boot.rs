//! The platform boots, reports crashes readably and ends with the right status.

mod common;

use common::{assert_exit, boot, ktest};
use xtask::qemu::ImageStatus;

#[test]
fn hello_greets_and_exits_with_success() {
    let run = boot("configs/hello.toml", "name=tester");
    assert_exit(&run, ImageStatus::Exited(0));
    assert!(run.console.contains("Hello, tester! Remora is up."));
    // The boot log names the memory map, the PCI devices and the boot time.
    assert!(run.console.contains("memory [0x"), "no memory map in the boot log");
    assert!(
        run.console.contains("pci 00:00.0 8086:29c0 host bridge"),
        "no PCI devices in the boot log"
    );
    assert!(run.console.contains("platform up in"), "no boot time in the boot log");
}

#[test]
fn a_panic_prints_message_and_location_and_fails() {
    let run = ktest("panic", "");
    assert_exit(&run, ImageStatus::Exited(2));
    assert!(run.console.contains("!!! panic: ktest panics on purpose with answer 42"));
    assert!(run.console.contains("at apps/ktest/src/platform_tests.rs:"), "no panic location");
    assert!(run.console.contains("backtrace:"));
}

#[test]
fn a_page_fault_prints_the_report_with_cr2() {
    let run = ktest("pagefault", "");
    assert_exit(&run, ImageStatus::Exited(3));
    assert!(run.console.contains("!!! CPU exception 14 (#PF page fault)"));
    assert!(run.console.contains("CR2 (faulting address) 0x00000000deadb000"));
    assert!(run.console.contains("page not present, read"));
    assert!(run.console.contains("RIP 0x"));
}

#[test]
fn the_one_shot_timer_fires_after_its_deadline() {
    let run = ktest("timer", "");
    assert_exit(&run, ImageStatus::Exited(0));
    assert!(run.console.contains("timer fired"));
}

#[test]
fn an_unknown_test_name_fails_with_the_list() {
    let run = ktest("no-such-test", "");
    assert_exit(&run, ImageStatus::Exited(1));
    assert!(run.console.contains("no test called \"no-such-test\""));
}

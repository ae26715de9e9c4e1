//! The scheduler in a running kernel: preemption, sleep, wait queues, guard pages.

mod common;

use common::{assert_exit, ktest};
use xtask::qemu::ImageStatus;

#[test]
fn pages_are_mapped_used_and_unmapped_at_run_time() {
    let run = ktest("mmu", "");
    assert_exit(&run, ImageStatus::Exited(0));
}

#[test]
fn two_spinning_threads_take_turns_under_preemption() {
    let run = ktest("preemption", "");
    assert_exit(&run, ImageStatus::Exited(0));
    assert!(run.console.contains("preemption: turns="));
}

/// Tolerance 20 ms: see `apps/ktest/src/thread_tests.rs::sleep` for why.
#[test]
fn sleepers_wake_on_time_never_early() {
    let run = ktest("sleep", "tolerance_ms=20");
    assert_exit(&run, ImageStatus::Exited(0));
}

#[test]
fn a_wait_queue_hands_items_over_without_loss() {
    let run = ktest("waitqueue", "");
    assert_exit(&run, ImageStatus::Exited(0));
    assert!(run.console.contains("consumer received sum=500500"));
}

#[test]
fn a_stack_overflow_is_reported_with_the_thread_name() {
    let run = ktest("overflow", "");
    assert_exit(&run, ImageStatus::Exited(3));
    assert!(run.console.contains("#DF double fault"));
    assert!(run.console.contains("is in the guard page below the stack of thread"));
    assert!(run.console.contains("(overflower)"));
}

#[test]
fn yield_switches_between_threads() {
    let run = ktest("switch", "rounds=2000");
    assert_exit(&run, ImageStatus::Exited(0));
    assert!(run.console.contains("ns per switch"));
}

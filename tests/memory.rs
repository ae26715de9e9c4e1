//! The memory libraries in a running kernel: frames, the kernel heap and its report when
//! it runs out.

mod common;

use common::{assert_exit, ktest};
use xtask::qemu::ImageStatus;

#[test]
fn frame_blocks_of_every_order_are_disjoint_and_all_come_back() {
    let run = ktest("frames", "");
    assert_exit(&run, ImageStatus::Exited(0));
    assert!(run.console.contains("frames: "));
}

#[test]
fn the_heap_serves_up_to_a_limit_and_returns_to_empty() {
    let run = ktest("heap", "limit=12");
    assert_exit(&run, ImageStatus::Exited(0));
    assert!(run.console.contains("heap: 192 boxes; used 12"), "{}", run.console);
}

#[test]
fn running_out_of_heap_reports_what_was_asked_and_what_is_left() {
    let run = ktest("oom", "");
    assert_exit(&run, ImageStatus::Exited(2));
    assert!(run.console.contains("!!! panic: memory allocation of 16777217 bytes failed"));
    let report =
        run.console.lines().find(|l| l.contains("kernel heap exhausted")).expect("no heap report");
    assert!(report.contains("asked for 16777217 bytes (align 1)"), "{report}");
    assert!(report.contains("bytes free of 16777216"), "{report}");
}

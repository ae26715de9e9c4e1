//! Far memory end to end: the link to a memory node on its own, and remote paging under
//! membench, with and without frame loss, and a memory node that dies mid-run.

mod common;

use common::{assert_exit, boot, boot_lossy, boot_with, options, summary_value};
use xtask::memnode::{NodeChoice, NodeOptions};
use xtask::qemu::{ImageStatus, RunOptions};

fn number(run: &xtask::qemu::RunOutcome, prefix: &str, key: &str) -> f64 {
    summary_value(run, prefix, key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in the {prefix} line:\n{}", run.console))
}

#[test]
fn the_link_keeps_64_mib_intact_through_frame_loss() {
    // 2 ms timeouts: a lost frame costs a retry, not the default 20 ms.
    let run = boot_lossy(
        "configs/linktest.toml",
        "size=64 seconds=1 samples=500 rmem.timeout_us=2000",
        0.01,
    );
    assert_exit(&run, ImageStatus::Exited(0));
    assert_eq!(summary_value(&run, "linktest:", "integrity"), Some("ok"));
    assert!(number(&run, "linktest:", "retransmitted") > 0.0, "frames were lost but none resent");
    let node = run.node_output.as_deref().unwrap_or_default();
    assert!(
        node.contains("dropped") && !node.contains("dropped 0 "),
        "the node dropped nothing:\n{node}"
    );
}

#[test]
fn a_memory_node_that_dies_is_reported_and_the_image_fails() {
    let run = boot_with(
        "configs/linktest.toml",
        RunOptions {
            cmdline: "size=64".into(),
            far_memory: Some(NodeChoice::Start(NodeOptions::default())),
            kill_node_on: Some("rmem: region of".into()),
            ..options()
        },
    );
    assert_exit(&run, ImageStatus::Exited(1));
    assert!(run.console.contains("link lost: no answer from the memory node"), "{}", run.console);
}

#[test]
fn membench_far_memory_at_8x_local_keeps_every_value() {
    let run = boot("configs/membench.toml", "ops=100000 pattern=random mode=rw");
    assert_exit(&run, ImageStatus::Exited(0));
    assert_eq!(summary_value(&run, "membench:", "integrity"), Some("ok"));
    assert_eq!(number(&run, "membench:", "far_mib"), 64.0);
    assert_eq!(number(&run, "membench:", "local_mib"), 8.0);
    // Pages were evicted dirty and read back from the node.
    assert!(number(&run, "membench:", "evicted_dirty") > 10_000.0);
    assert!(number(&run, "membench:", "remote") > 10_000.0);
}

#[test]
fn membench_keeps_every_value_through_frame_loss() {
    let run = boot_lossy(
        "configs/membench.toml",
        "ops=100000 pattern=random mode=rw rmem.timeout_us=2000",
        0.01,
    );
    assert_exit(&run, ImageStatus::Exited(0));
    assert_eq!(summary_value(&run, "membench:", "integrity"), Some("ok"));
    assert!(number(&run, "membench:", "evicted_dirty") > 10_000.0);
}

#[test]
fn dirty_pages_written_sequentially_read_back_after_eviction() {
    // Every page is written (version 1) in one pass, evicted by the next ones, and read
    // back in a second pass that checks the version.
    let run = boot("configs/membench.toml", "ops=32768 pattern=sequential mode=rw size=64");
    assert_exit(&run, ImageStatus::Exited(0));
    assert_eq!(summary_value(&run, "membench:", "integrity"), Some("ok"));
    assert!(number(&run, "membench:", "remote_writes") >= 16_000.0);
}

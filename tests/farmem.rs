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

/// Boots membench's image `config` with `cmdline`, checks it kept every value, and
/// returns its demand faults (faults that read their page from the node).
fn membench_demand_faults(config: &str, cmdline: &str) -> f64 {
    let run = boot(config, cmdline);
    assert_exit(&run, ImageStatus::Exited(0));
    assert_eq!(summary_value(&run, "membench:", "integrity"), Some("ok"));
    // Every prefetch hit is either a fault on a prefetch in flight or a use with no fault.
    assert_eq!(
        number(&run, "membench:", "faults_avoided") + number(&run, "membench:", "in_flight"),
        number(&run, "membench:", "prefetch_hits"),
        "{}",
        run.console
    );
    number(&run, "membench:", "remote") + number(&run, "membench:", "writing_back")
}

#[test]
fn sequential_readahead_takes_far_fewer_demand_faults_on_a_sequential_walk() {
    let cmdline = "ops=20000 pattern=sequential mode=rw";
    let none = membench_demand_faults("configs/membench-none.toml", cmdline);
    let sequential = membench_demand_faults("configs/membench.toml", cmdline);
    eprintln!("sequential walk: demand faults none={none} sequential={sequential}");
    assert!(none >= 20_000.0, "without prefetching every page is a demand fault: {none}");
    assert!(sequential * 4.0 < none, "none {none}, sequential {sequential}");
}

#[test]
fn majority_follows_a_stride_that_readahead_cannot() {
    let cmdline = "ops=20000 pattern=strided stride=3 mode=rw";
    let sequential = membench_demand_faults("configs/membench.toml", cmdline);
    let majority = membench_demand_faults("configs/membench-majority.toml", cmdline);
    eprintln!("strided walk: demand faults sequential={sequential} majority={majority}");
    assert!(majority * 4.0 < sequential, "sequential {sequential}, majority {majority}");
}

#[test]
fn application_hints_prefetch_a_random_walk() {
    let plain = membench_demand_faults("configs/membench-none.toml", "ops=20000 pattern=random");
    let hinted =
        membench_demand_faults("configs/membench-none.toml", "ops=20000 pattern=random hint=16");
    eprintln!("random walk: demand faults without hints={plain} with hints={hinted}");
    assert!(hinted * 2.0 < plain, "without {plain}, with hints {hinted}");
}

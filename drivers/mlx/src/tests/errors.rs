//! Error completions: bad keys, a wrong peer, addresses outside the registered region,
//! a link that goes down. Each failed request completes once with the CQE syndrome
//! named; everything behind it is flushed; the transport still shuts down cleanly.

use alloc::string::ToString;
use alloc::vec::Vec;

use remora_rmem::{Transport, TransportError};

use super::support::*;
use crate::model::{Fault, Model, ModelConfig, NodeConfig, NodeFault};

fn with_node(fault: NodeFault) -> Model {
    Model::new(ModelConfig {
        node: NodeConfig { fault, ..NodeConfig::default() },
        ..ModelConfig::default()
    })
}

/// Posts `n` reads and returns their statuses in completion order.
#[allow(clippy::result_large_err)]
fn reads(model: &Model, t: &mut ModelTransport, n: u64) -> Vec<Result<(), TransportError>> {
    for k in 0..n {
        t.post_read(k * 4096, model.alloc_buf(1), k).unwrap();
    }
    let mut tags = Vec::new();
    let out = drain(t)
        .into_iter()
        .map(|c| {
            tags.push(c.tag);
            model.free_buf(c.buf);
            c.status
        })
        .collect();
    tags.sort_unstable();
    assert_eq!(tags, (0..n).collect::<Vec<_>>(), "every request completes exactly once");
    out
}

fn code(r: &Result<(), TransportError>) -> u32 {
    match r {
        Err(TransportError::Device { code, .. }) => *code,
        other => panic!("expected a device error, got {other:?}"),
    }
}

/// The first request fails with `syndrome`, the rest flush.
fn first_fails_then_flush(model: &Model, t: &mut ModelTransport, syndrome: u32) {
    let statuses = reads(model, t, 8);
    assert_eq!(code(&statuses[0]), syndrome);
    assert!(statuses[1..].iter().all(|s| code(s) == 0x05), "{statuses:?}");
    assert!(t.is_in_error());
    assert_eq!(t.stats().completed_err, 8);
    assert_eq!(t.mlx5_stats().flushed, 7);
    // Later requests flush too, and still complete.
    let later = reads(model, t, 2);
    assert!(later.iter().all(|s| code(s) == 0x05));
}

fn finish(model: &Model, t: ModelTransport) {
    t.shutdown().expect("shutdown after errors");
    assert_eq!(model.firmware_pages(), 0);
    assert_eq!(model.allocated_pages(), 0);
    model.assert_clean();
}

#[test]
fn a_bad_rkey_is_a_remote_access_error() {
    let model = with_node(NodeFault::BadRkey);
    let mut t = connect(&model, 8);
    first_fails_then_flush(&model, &mut t, 0x13);
    finish(&model, t);
}

#[test]
fn a_wrong_peer_is_a_retry_exceeded_error() {
    for fault in [NodeFault::WrongQpn, NodeFault::WrongPsn, NodeFault::WrongMac] {
        let model = with_node(fault);
        let mut t = connect(&model, 8);
        first_fails_then_flush(&model, &mut t, 0x15);
        finish(&model, t);
    }
}

#[test]
fn outside_the_registered_region_is_a_remote_access_error() {
    let model = with_node(NodeFault::RegisteredShort(16 * 4096));
    let mut t = connect(&model, 16);
    let ok = reads(&model, &mut t, 16);
    assert!(ok.iter().all(|s| s.is_ok()));
    t.post_read(16 * 4096, model.alloc_buf(1), 99).unwrap();
    let c = wait(&mut t);
    assert_eq!(code(&c.status), 0x13);
    model.free_buf(c.buf);
    finish(&model, t);
}

#[test]
fn an_invalid_local_key_is_a_local_protection_error() {
    let model = model();
    let mut t = connect(&model, 8);
    model.inject(Fault::InvalidateMkeys);
    first_fails_then_flush(&model, &mut t, 0x04);
    finish(&model, t);
}

#[test]
fn a_link_going_down_mid_stream() {
    let model = model();
    let mut t = connect(&model, 8);
    assert!(reads(&model, &mut t, 8).iter().all(|s| s.is_ok()));
    model.inject(Fault::FailNextWqe(0x15));
    first_fails_then_flush(&model, &mut t, 0x15);
    finish(&model, t);
}

#[test]
fn device_errors_name_the_syndrome() {
    let model = with_node(NodeFault::BadRkey);
    let mut t = connect(&model, 2);
    t.post_write(0, model.alloc_buf(1), 1).unwrap();
    let c = wait(&mut t);
    let e = c.status.unwrap_err();
    let text = e.to_string();
    assert!(text.contains("0x13") && text.contains("rkey"), "{text}");
    model.free_buf(c.buf);
    assert_eq!(t.stats().bytes_written, 0);
    finish(&model, t);
}

//! `LinkTransport` against the real memory node (`memnode::Server`) over a simulated link
//! that loses, duplicates and reorders frames, on a fake clock.

mod common;

use std::collections::HashMap;

use common::sim::{
    FakeClock, IMAGE_MAC, Impairments, SimLink, buf_with, free_buf, network, new_buf,
};
use memnode::{DEFAULT_NODE_MAC, SESSION_ID_SPAN, ServerConfig};
use proptest::prelude::*;
use remora_rmem::{
    Body, Completion, ConnectError, Direction, ErrorCode, LinkConfig, LinkTransport, MAX_FRAME_LEN,
    MAX_RUN_PAGES, Message, PAGE_SIZE, PostError, RegionKey, Transport, TransportError,
    encode_frame,
};

const KEY: RegionKey = RegionKey::from_u128(0x5eed_0000_0000_0000_0000_0000_0000_0001);
const MIB: u64 = 1 << 20;
const PAGE: u64 = PAGE_SIZE as u64;

/// 1 ms timeout: the simulated latencies are microseconds.
fn config(retries: u32) -> LinkConfig {
    LinkConfig { queue_depth: 32, timeout_us: 1_000, retries, window_pages: 4096 }
}

type Far = LinkTransport<SimLink, FakeClock>;

fn connect(link: &SimLink, clock: &FakeClock, size: u64, config: LinkConfig) -> Far {
    LinkTransport::connect(link.clone(), clock.clone(), KEY, size, config).expect("connect")
}

/// Polls until a completion comes, failing the test instead of hanging.
fn wait(far: &mut Far) -> Completion {
    for _ in 0..10_000_000 {
        if let Some(done) = far.poll() {
            return done;
        }
    }
    panic!("no completion after 10 million polls: {far:?}");
}

/// Polls until every request in flight has completed; returns the completions.
fn drain(far: &mut Far) -> Vec<Completion> {
    let mut done = Vec::new();
    while far.in_flight() > 0 {
        done.push(wait(far));
    }
    done
}

fn pattern(page_index: u64, version: u64) -> Vec<u8> {
    let mut page = vec![0u8; PAGE_SIZE];
    for (i, chunk) in page.chunks_mut(8).enumerate() {
        let word =
            page_index.wrapping_mul(0x9e37_79b9).wrapping_add(version << 32).wrapping_add(i as u64);
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    page
}

fn write(far: &mut Far, remote: u64, bytes: &[u8], tag: u64) {
    far.post_write(remote, buf_with(bytes), tag).expect("post_write");
}

fn read_now(far: &mut Far, remote: u64, len: usize) -> Vec<u8> {
    far.post_read(remote, new_buf(len), remote).expect("post_read");
    let done = wait(far);
    assert_eq!(done.status, Ok(()), "read of {remote:#x}");
    assert_eq!((done.direction, done.remote, done.tag), (Direction::Read, remote, remote));
    free_buf(done.buf)
}

fn write_now(far: &mut Far, remote: u64, bytes: &[u8]) {
    write(far, remote, bytes, remote);
    let done = wait(far);
    assert_eq!(done.status, Ok(()), "write of {remote:#x}");
    assert_eq!((done.direction, done.tag), (Direction::Write, remote));
    free_buf(done.buf);
}

#[test]
fn a_clean_link_reads_back_what_was_written() {
    let (link, clock) = network(64 * MIB, Impairments::CLEAN, 1);
    let mut far = connect(&link, &clock, 16 * MIB, config(3));
    assert_eq!(far.region_size(), 16 * MIB);
    assert_eq!(far.capacity(), 32);
    assert_eq!(far.node_mac(), DEFAULT_NODE_MAC);

    // Never-written pages read as zeros.
    assert!(read_now(&mut far, 0, PAGE_SIZE).iter().all(|&b| b == 0));

    // A run of 8 pages written at once, then read back as one run and page by page.
    let run: Vec<u8> = (0..8).flat_map(|i| pattern(100 + i, 1)).collect();
    write_now(&mut far, 100 * PAGE, &run);
    assert_eq!(read_now(&mut far, 100 * PAGE, run.len()), run);
    for i in 0..8 {
        assert_eq!(read_now(&mut far, (100 + i) * PAGE, PAGE_SIZE), pattern(100 + i, 1));
    }
    // The last page of the region, and the longest read.
    write_now(&mut far, 16 * MIB - PAGE, &pattern(7, 7));
    assert_eq!(read_now(&mut far, 16 * MIB - PAGE, PAGE_SIZE), pattern(7, 7));
    let long = read_now(&mut far, 100 * PAGE, MAX_RUN_PAGES * PAGE_SIZE);
    assert_eq!(&long[..run.len()], &run[..]);

    let stats = far.stats();
    assert_eq!(stats.writes_posted, 2);
    assert_eq!(stats.reads_posted, 12);
    assert_eq!(stats.bytes_written, 9 * PAGE);
    assert_eq!(stats.timeouts + stats.retransmitted_frames + stats.duplicates_dropped, 0);
    assert_eq!(stats.completed_ok, 14);
    assert_eq!(far.in_flight(), 0);
}

#[test]
fn many_requests_in_flight_complete_in_any_order() {
    let jittery = Impairments { jitter_ns: 200_000, ..Impairments::CLEAN };
    let (link, clock) = network(64 * MIB, jittery, 2);
    let mut far = connect(&link, &clock, 4 * MIB, config(3));
    for i in 0..32 {
        write(&mut far, i * 2 * PAGE, &[pattern(i, 1), pattern(i, 2)].concat(), i);
    }
    assert_eq!(far.in_flight(), 32);
    assert!(far.is_full());
    let mut tags: Vec<u64> = drain(&mut far)
        .into_iter()
        .map(|done| {
            assert_eq!(done.status, Ok(()));
            let tag = done.tag;
            free_buf(done.buf);
            tag
        })
        .collect();
    tags.sort_unstable();
    assert_eq!(tags, (0..32).collect::<Vec<_>>());
    for i in 0..32 {
        far.post_read(i * 2 * PAGE, new_buf(2 * PAGE_SIZE), i).unwrap();
    }
    for done in drain(&mut far) {
        assert_eq!(done.status, Ok(()));
        let i = done.tag;
        assert_eq!(free_buf(done.buf), [pattern(i, 1), pattern(i, 2)].concat());
    }
}

#[test]
fn a_lossy_duplicating_reordering_link_keeps_data_intact() {
    let bad = Impairments {
        loss: 0.2,
        duplicate: 0.2,
        latency_ns: 20_000,
        jitter_ns: 300_000,
        late_ns: 5_000_000,
    };
    let (link, clock) = network(64 * MIB, bad, 3);
    let mut far = connect(&link, &clock, 4 * MIB, config(40));
    let run: Vec<u8> = (0..MAX_RUN_PAGES as u64).flat_map(|i| pattern(i, 1)).collect();
    write_now(&mut far, 0, &run);
    for _ in 0..5 {
        assert_eq!(read_now(&mut far, 0, run.len()), run);
    }
    let stats = far.stats();
    assert!(stats.timeouts > 0, "{stats:?}");
    assert!(stats.retransmitted_frames > 0, "{stats:?}");
    assert!(stats.duplicates_dropped > 0, "{stats:?}");
    assert_eq!(stats.completed_err, 0);
}

#[test]
fn duplicated_answers_are_dropped_and_counted() {
    let doubled = Impairments { duplicate: 1.0, late_ns: 100_000, ..Impairments::CLEAN };
    let (link, clock) = network(64 * MIB, doubled, 4);
    let mut far = connect(&link, &clock, 4 * MIB, config(3));
    write_now(&mut far, 0, &pattern(0, 1));
    assert_eq!(read_now(&mut far, 0, PAGE_SIZE), pattern(0, 1));
    // Let the late copies arrive and be dropped.
    for _ in 0..1000 {
        assert!(far.poll().is_none());
    }
    let stats = far.stats();
    assert!(stats.duplicates_dropped >= 2, "{stats:?}");
    assert_eq!(stats.completed_ok, 2);
}

/// A write that wanders late through the network must not undo a newer write of the
/// same page, within a session and across a reconnect (an image that rebooted).
#[test]
fn late_duplicate_writes_never_undo_newer_ones() {
    let late = Impairments { duplicate: 1.0, late_ns: 50_000_000, ..Impairments::CLEAN };
    let (link, clock) = network(64 * MIB, late, 5);
    let mut far = connect(&link, &clock, 4 * MIB, config(3));
    for version in 0..20 {
        write_now(&mut far, 0, &pattern(0, version));
    }
    // A new session with the same key, while copies of the old writes are still on the way.
    drop(far);
    let mut far = connect(&link, &clock, 4 * MIB, config(3));
    write_now(&mut far, 0, &pattern(0, 100));
    clock.advance(100_000_000);
    for _ in 0..100 {
        assert!(far.poll().is_none());
    }
    assert_eq!(link.net.borrow().frames_to_node(), 0);
    assert_eq!(read_now(&mut far, 0, PAGE_SIZE), pattern(0, 100));
    let node = *link.net.borrow().server.stats();
    assert!(node.stale_writes > 0, "{node:?}");
}

#[test]
fn a_dead_node_is_reported_as_link_lost_after_the_retry_budget() {
    let (link, clock) = network(64 * MIB, Impairments::CLEAN, 6);
    let mut far = connect(&link, &clock, 4 * MIB, config(4));
    link.net.borrow_mut().node_alive = false;
    let sends_before = link.net.borrow().image_sends;
    let started = clock.peek();
    far.post_read(0, new_buf(2 * PAGE_SIZE), 42).unwrap();
    let done = wait(&mut far);
    let elapsed_ms = (clock.peek() - started) / 1_000_000;
    assert_eq!(done.tag, 42);
    let Err(TransportError::LinkLost { tries, waited_ms }) = done.status else {
        panic!("expected link lost, got {:?}", done.status);
    };
    assert_eq!(tries, 5);
    // Back-off doubles the wait after each try: 1 + 2 + 4 + 8 + 16 ms.
    assert!((31..=32).contains(&waited_ms), "waited {waited_ms} ms for 5 tries from 1 ms doubling");
    assert!(elapsed_ms <= 32);
    assert_eq!(link.net.borrow().image_sends - sends_before, 5);
    let message = TransportError::LinkLost { tries, waited_ms }.to_string();
    assert!(message.starts_with("link lost: no answer from the memory node after 5 tries over"));
    free_buf(done.buf);
    let stats = far.stats();
    assert_eq!((stats.links_lost, stats.timeouts, stats.completed_err), (1, 5, 1));
    assert_eq!(far.in_flight(), 0);
}

#[test]
fn connecting_to_nobody_fails_after_the_retry_budget() {
    let (link, clock) = network(64 * MIB, Impairments::CLEAN, 7);
    link.net.borrow_mut().node_alive = false;
    let error =
        LinkTransport::connect(link.clone(), clock.clone(), KEY, MIB, config(2)).unwrap_err();
    assert!(matches!(error, ConnectError::LinkLost { tries: 3, waited_ms: 3 }), "{error:?}");
    assert!(error.to_string().contains("start memnode first"));
}

#[test]
fn connect_errors_say_what_the_node_refused() {
    let (link, clock) = network(MIB, Impairments::CLEAN, 8);
    let error =
        LinkTransport::connect(link.clone(), clock.clone(), KEY, 2 * MIB, config(2)).unwrap_err();
    let ConnectError::Refused { code, reason } = &error else { panic!("{error:?}") };
    assert_eq!(*code, ErrorCode::NO_CAPACITY);
    assert!(reason.contains("raise memnode --capacity"), "{reason}");

    // Same key, another size than the region has.
    connect(&link, &clock, MIB / 2, config(2));
    let error =
        LinkTransport::connect(link.clone(), clock.clone(), KEY, MIB / 4, config(2)).unwrap_err();
    assert!(matches!(error, ConnectError::Refused { code: ErrorCode::SIZE_MISMATCH, .. }));

    for (bad, expected) in [
        (LinkConfig { queue_depth: 0, ..config(2) }, ConnectError::BadQueueDepth { depth: 0 }),
        (LinkConfig { queue_depth: 257, ..config(2) }, ConnectError::BadQueueDepth { depth: 257 }),
        (LinkConfig { timeout_us: 0, ..config(2) }, ConnectError::ZeroTimeout),
    ] {
        let error = LinkTransport::connect(link.clone(), clock.clone(), KEY, MIB, bad).unwrap_err();
        assert_eq!(error, expected);
    }
    let error =
        LinkTransport::connect(link.clone(), clock.clone(), KEY, 1000, config(2)).unwrap_err();
    assert_eq!(error, ConnectError::BadRegionSize { size: 1000 });
}

#[test]
fn a_full_queue_refuses_posts_and_touches_nothing() {
    let (link, clock) = network(64 * MIB, Impairments::CLEAN, 9);
    let depth = LinkConfig { queue_depth: 4, ..config(100) };
    let mut far = connect(&link, &clock, 4 * MIB, depth);
    link.net.borrow_mut().node_paused = true;
    for i in 0..4 {
        far.post_read(i * PAGE, new_buf(PAGE_SIZE), i).unwrap();
    }
    let sends = link.net.borrow().image_send_attempts;
    let stats = far.stats();
    let extra = buf_with(&pattern(9, 9));
    let extra_virt = extra.virt();
    let rejected = far.post_write(9 * PAGE, extra, 9).unwrap_err();
    assert_eq!(rejected.error, PostError::QueueFull { capacity: 4 });
    assert_eq!(rejected.buf.virt(), extra_virt);
    assert_eq!(free_buf(rejected.buf), pattern(9, 9));
    assert_eq!(link.net.borrow().image_send_attempts, sends);
    assert_eq!(far.in_flight(), 4);
    assert_eq!(far.stats().queue_full, stats.queue_full + 1);
    assert_eq!(far.stats().writes_posted, stats.writes_posted);

    link.net.borrow_mut().node_paused = false;
    let first = wait(&mut far);
    assert_eq!(first.status, Ok(()));
    free_buf(first.buf);
    far.post_write(9 * PAGE, buf_with(&pattern(9, 9)), 9).unwrap();
    for done in drain(&mut far) {
        assert_eq!(done.status, Ok(()));
        free_buf(done.buf);
    }
}

#[test]
fn bad_posts_are_refused_before_anything_is_sent() {
    let (link, clock) = network(64 * MIB, Impairments::CLEAN, 10);
    let mut far = connect(&link, &clock, MIB, config(2));
    let sends = link.net.borrow().image_send_attempts;
    let max = far.max_transfer_len();
    assert_eq!(max, MAX_RUN_PAGES * PAGE_SIZE);
    let cases = [
        (100, PAGE_SIZE, PostError::Unaligned { remote: 100 }),
        (0, 100, PostError::BadLength { len: 100, max }),
        (0, max + PAGE_SIZE, PostError::BadLength { len: max + PAGE_SIZE, max }),
        (MIB, PAGE_SIZE, PostError::OutOfRegion { remote: MIB, len: PAGE_SIZE, region_size: MIB }),
        (
            MIB - PAGE,
            2 * PAGE_SIZE,
            PostError::OutOfRegion { remote: MIB - PAGE, len: 2 * PAGE_SIZE, region_size: MIB },
        ),
        (
            u64::MAX - PAGE + 1,
            PAGE_SIZE,
            PostError::OutOfRegion {
                remote: u64::MAX - PAGE + 1,
                len: PAGE_SIZE,
                region_size: MIB,
            },
        ),
    ];
    for (remote, len, expected) in cases {
        let rejected = far.post_read(remote, new_buf(len), 0).unwrap_err();
        assert_eq!(rejected.error, expected);
        assert!(!rejected.to_string().is_empty());
        free_buf(rejected.buf);
    }
    assert_eq!(link.net.borrow().image_send_attempts, sends);
    assert_eq!(far.stats().bad_posts, cases.len() as u64);
    assert_eq!(far.in_flight(), 0);
}

#[test]
fn node_errors_complete_the_request_with_the_reason() {
    let (link, clock) = network(64 * MIB, Impairments::CLEAN, 11);
    let mut far = connect(&link, &clock, MIB, config(2));
    write_now(&mut far, 0, &pattern(0, 1));
    link.net.borrow_mut().restart_node(ServerConfig { capacity: 64 * MIB, mac: DEFAULT_NODE_MAC });
    far.post_read(0, new_buf(PAGE_SIZE), 5).unwrap();
    let done = wait(&mut far);
    let Err(error @ TransportError::NodeError { code: ErrorCode::UNKNOWN_KEY, .. }) = &done.status
    else {
        panic!("{:?}", done.status);
    };
    assert!(error.to_string().contains("was memnode restarted?"), "{error}");
    free_buf(done.buf);
    assert_eq!(far.stats().node_errors, 1);
}

#[test]
fn a_busy_link_sends_the_rest_later() {
    let (link, clock) = network(64 * MIB, Impairments::CLEAN, 12);
    let mut far = connect(&link, &clock, MIB, config(2));
    link.net.borrow_mut().busy_every = 3;
    let run: Vec<u8> = (0..16).flat_map(|i| pattern(i, 3)).collect();
    write_now(&mut far, 0, &run);
    assert_eq!(read_now(&mut far, 0, run.len()), run);
    assert_eq!(far.stats().timeouts, 0);
}

#[test]
fn stray_and_nonsense_frames_are_dropped_and_counted() {
    let (link, clock) = network(64 * MIB, Impairments::CLEAN, 13);
    let mut far = connect(&link, &clock, MIB, config(2));
    let page = pattern(1, 1);
    let page: &[u8; PAGE_SIZE] = page.as_slice().try_into().unwrap();
    let frame = |src: [u8; 6], key: RegionKey, request_id: u64, body: Body<'_>| {
        let mut buf = vec![0u8; MAX_FRAME_LEN];
        let message = Message::new(request_id, key, body);
        let len = encode_frame(IMAGE_MAC, src, &message, &mut buf).unwrap();
        buf.truncate(len);
        buf
    };
    // The first request of the first session on a fresh node has this id.
    let first_id = SESSION_ID_SPAN;
    let other_key = RegionKey::from_u128(99);
    let other_mac = [2, 0, 0, 0, 0, 9];
    let read_page = Body::ReadPage { offset: 0, data: page };

    link.net.borrow_mut().node_paused = true;
    far.post_read(0, new_buf(PAGE_SIZE), 1).unwrap();
    let before = far.stats();
    let strays = [
        (vec![0u8; 10], "truncated"),
        ([&[0xffu8; 12][..], &[0x08, 0x06], &[0u8; 46]].concat(), "ARP"),
        (frame(DEFAULT_NODE_MAC, other_key, first_id, read_page), "another key"),
        (frame(other_mac, KEY, first_id, read_page), "another node"),
        (frame(DEFAULT_NODE_MAC, KEY, first_id + 1000, read_page), "an id not in flight"),
        (
            frame(DEFAULT_NODE_MAC, KEY, first_id, Body::ReadPage { offset: 5 * PAGE, data: page }),
            "a page outside the run",
        ),
        (frame(DEFAULT_NODE_MAC, KEY, first_id, Body::WriteAck { offset: 0 }), "an ack for a read"),
        (
            frame(DEFAULT_NODE_MAC, KEY, first_id, Body::ReadRequest { offset: 0, len: PAGE }),
            "a request",
        ),
    ];
    for (stray, _) in &strays {
        link.net.borrow_mut().inject_to_image(stray.clone());
    }
    for _ in 0..strays.len() {
        assert!(far.poll().is_none());
    }
    let after = far.stats();
    assert_eq!(after.frames_received - before.frames_received, strays.len() as u64);
    assert_eq!(after.malformed_dropped - before.malformed_dropped, 3, "{after:?}");
    assert_eq!(after.foreign_dropped - before.foreign_dropped, 4, "{after:?}");
    assert_eq!(after.duplicates_dropped - before.duplicates_dropped, 1, "{after:?}");

    // The real answer still completes the read, with the node's data (zeros).
    link.net.borrow_mut().node_paused = false;
    let done = wait(&mut far);
    assert_eq!(done.status, Ok(()));
    assert!(free_buf(done.buf).iter().all(|&b| b == 0));
}

/// One batch of the model test: requests over distinct pages, in flight together.
#[derive(Clone, Debug)]
enum Step {
    Write { page: u64, pages: u64, version: u64 },
    Read { page: u64, pages: u64 },
}

fn step(region_pages: u64) -> impl Strategy<Value = Step> {
    let write = (0..region_pages, 1u64..5, any::<u64>()).prop_map(move |(page, pages, version)| {
        Step::Write { page, pages: pages.min(region_pages - page), version }
    });
    let read = (0..region_pages, 1u64..9)
        .prop_map(move |(page, pages)| Step::Read { page, pages: pages.min(region_pages - page) });
    prop_oneof![write, read]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Batches of reads and writes over a small region (so pages are rewritten often),
    /// under random loss, duplication and reordering, agree with a plain model of memory.
    #[test]
    fn transport_agrees_with_a_model_of_memory(
        seed in any::<u64>(),
        loss in 0.0f64..0.3,
        duplicate in 0.0f64..0.5,
        batches in prop::collection::vec(prop::collection::vec(step(24), 1..8), 1..12),
    ) {
        let impairments = Impairments { loss, duplicate, latency_ns: 10_000, jitter_ns: 400_000, late_ns: 20_000_000 };
        let (link, clock) = network(64 * MIB, impairments, seed);
        let mut far = connect(&link, &clock, 24 * PAGE, LinkConfig { queue_depth: 8, timeout_us: 1_000, retries: 60, window_pages: 4096 });
        let mut model: HashMap<u64, Vec<u8>> = HashMap::new();
        for batch in batches {
            // Pages touched by this batch; a request overlapping an earlier one waits for
            // the next batch (the pager never has two requests on one page in flight).
            let mut busy = std::collections::HashSet::new();
            let mut expected_reads = HashMap::new();
            for (tag, step) in batch.iter().enumerate() {
                let (page, pages) = match *step {
                    Step::Write { page, pages, .. } | Step::Read { page, pages } => (page, pages),
                };
                if (page..page + pages).any(|p| busy.contains(&p)) {
                    continue;
                }
                busy.extend(page..page + pages);
                match *step {
                    Step::Write { page, pages, version } => {
                        let bytes: Vec<u8> = (page..page + pages).flat_map(|p| pattern(p, version)).collect();
                        write(&mut far, page * PAGE, &bytes, tag as u64);
                        for p in page..page + pages {
                            model.insert(p, pattern(p, version));
                        }
                    }
                    Step::Read { page, pages } => {
                        let expected: Vec<u8> = (page..page + pages)
                            .flat_map(|p| model.get(&p).cloned().unwrap_or_else(|| vec![0; PAGE_SIZE]))
                            .collect();
                        expected_reads.insert(tag as u64, expected);
                        far.post_read(page * PAGE, new_buf((pages * PAGE) as usize), tag as u64).unwrap();
                    }
                }
            }
            for done in drain(&mut far) {
                prop_assert_eq!(&done.status, &Ok(()));
                let tag = done.tag;
                let direction = done.direction;
                let bytes = free_buf(done.buf);
                if direction == Direction::Read {
                    prop_assert!(expected_reads[&tag] == bytes, "read {} differs from the model", tag);
                }
            }
        }
        let stats = far.stats();
        prop_assert_eq!(stats.completed_err, 0);
        prop_assert_eq!(stats.completed_ok, stats.reads_posted + stats.writes_posted);
    }
}

#[test]
fn the_page_window_limits_answers_in_flight() {
    let (link, clock) = network(64 * MIB, Impairments::CLEAN, 21);
    let mut far = connect(&link, &clock, MIB, LinkConfig { window_pages: 8, ..config(3) });
    // Two 4-page reads fill the window of 8 pages; a third is refused, nothing sent.
    far.post_read(0, new_buf(4 * PAGE_SIZE), 1).unwrap();
    far.post_read(4 * PAGE, new_buf(4 * PAGE_SIZE), 2).unwrap();
    let sends = link.net.borrow().image_send_attempts;
    let refused = far.post_read(8 * PAGE, new_buf(4 * PAGE_SIZE), 3).unwrap_err();
    assert!(matches!(refused.error, PostError::QueueFull { .. }));
    assert_eq!(link.net.borrow().image_send_attempts, sends);
    free_buf(refused.buf);
    // Once one completes there is room again.
    let first = wait(&mut far);
    free_buf(first.buf);
    far.post_read(8 * PAGE, new_buf(4 * PAGE_SIZE), 3).unwrap();
    for done in drain(&mut far) {
        assert_eq!(done.status, Ok(()));
        free_buf(done.buf);
    }
    // A single request larger than the window still goes when nothing is in flight.
    far.post_read(0, new_buf(16 * PAGE_SIZE), 4).unwrap();
    let big = wait(&mut far);
    assert_eq!(big.status, Ok(()));
    free_buf(big.buf);
}

//! `memnode::Server` without sockets: regions, isolation between keys, bounds, and frames
//! that are not well-formed requests.

use memnode::{DEFAULT_NODE_MAC, SESSION_ID_SPAN, Server, ServerConfig};
use proptest::prelude::*;
use remora_rmem::wire::{HEADER_LEN, MAX_MESSAGE_LEN};
use remora_rmem::{
    BROADCAST_MAC, Body, ETHERNET_HEADER_LEN, ErrorCode, Flags, MAX_FRAME_LEN, MAX_RUN_PAGES,
    Message, PAGE_SIZE, RegionKey, decode_frame, encode_frame,
};

const IMAGE: [u8; 6] = [0x52, 0x54, 0, 0, 0, 1];
const A: RegionKey = RegionKey::from_u128(0xaaaa);
const B: RegionKey = RegionKey::from_u128(0xbbbb);
const PAGE: u64 = PAGE_SIZE as u64;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// A reply, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reply {
    Opened { region_size: u64, first_request_id: u64 },
    Page { offset: u64, data: Vec<u8> },
    Acked { offset: u64 },
    Refused { code: ErrorCode, reason: String },
}

fn server(capacity: u64) -> Server {
    Server::new(ServerConfig { capacity, mac: DEFAULT_NODE_MAC })
}

fn frame_to(dst: [u8; 6], request_id: u64, key: RegionKey, body: Body<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; MAX_FRAME_LEN];
    let len = encode_frame(dst, IMAGE, &Message::new(request_id, key, body), &mut buf).unwrap();
    buf.truncate(len);
    buf
}

fn frame(request_id: u64, key: RegionKey, body: Body<'_>) -> Vec<u8> {
    frame_to(DEFAULT_NODE_MAC, request_id, key, body)
}

/// Hands `frame` to the server; returns its replies, checking each is addressed back to
/// the image with the request's id and key.
fn exchange(server: &mut Server, frame: &[u8]) -> Vec<Reply> {
    let request = decode_frame(frame).ok().map(|(_, m)| (m.request_id, m.key));
    let mut replies = Vec::new();
    server.handle_frame(frame, |bytes| {
        let (header, message) = decode_frame(bytes).expect("the node's replies decode");
        assert_eq!((header.dst, header.src), (IMAGE, DEFAULT_NODE_MAC));
        assert_eq!(Some((message.request_id, message.key)), request);
        assert_eq!(message.flags, Flags::NONE);
        replies.push(match message.body {
            Body::OpenReply { region_size, first_request_id } => {
                Reply::Opened { region_size, first_request_id }
            }
            Body::ReadPage { offset, data } => Reply::Page { offset, data: data.to_vec() },
            Body::WriteAck { offset } => Reply::Acked { offset },
            Body::Error { code, reason, .. } => Reply::Refused { code, reason: reason.to_owned() },
            other => panic!("the node sent a request: {other:?}"),
        });
    });
    replies
}

fn open(server: &mut Server, key: RegionKey, size: u64) -> Vec<Reply> {
    exchange(server, &frame(1, key, Body::OpenRequest { size_wanted: size }))
}

fn write(
    server: &mut Server,
    id: u64,
    key: RegionKey,
    offset: u64,
    data: &[u8; PAGE_SIZE],
) -> Vec<Reply> {
    exchange(server, &frame(id, key, Body::WriteRequest { offset, data }))
}

fn read(server: &mut Server, id: u64, key: RegionKey, offset: u64, len: u64) -> Vec<Reply> {
    exchange(server, &frame(id, key, Body::ReadRequest { offset, len }))
}

fn refused(replies: &[Reply]) -> ErrorCode {
    match replies {
        [Reply::Refused { code, reason }] => {
            assert!(!reason.is_empty());
            *code
        }
        other => panic!("expected one refusal, got {other:?}"),
    }
}

fn page_of(byte: u8) -> [u8; PAGE_SIZE] {
    [byte; PAGE_SIZE]
}

#[test]
fn open_creates_a_region_once_and_is_idempotent() {
    let mut node = server(GIB);
    assert_eq!(
        open(&mut node, A, 256 * MIB),
        [Reply::Opened { region_size: 256 * MIB, first_request_id: SESSION_ID_SPAN }]
    );
    // Opening again (a resent Open, or the image rebooted) finds the same region, and
    // starts the new session's ids above everything seen.
    write(&mut node, SESSION_ID_SPAN + 5, A, 0, &page_of(1));
    assert_eq!(
        open(&mut node, A, 256 * MIB),
        [Reply::Opened { region_size: 256 * MIB, first_request_id: 2 * SESSION_ID_SPAN }]
    );
    assert_eq!(node.region_count(), 1);
    assert_eq!(node.reserved(), 256 * MIB);
    assert_eq!(
        read(&mut node, 7, A, 0, PAGE),
        [Reply::Page { offset: 0, data: page_of(1).to_vec() }]
    );
    let stats = node.stats();
    assert_eq!((stats.opens, stats.regions_created), (2, 1));
}

#[test]
fn open_refuses_what_does_not_fit_or_does_not_match() {
    let mut node = server(GIB);
    assert_eq!(refused(&open(&mut node, A, 2 * GIB)), ErrorCode::NO_CAPACITY);
    assert_eq!(refused(&open(&mut node, A, 0)), ErrorCode::BAD_LENGTH);
    assert_eq!(refused(&open(&mut node, A, 1000)), ErrorCode::UNALIGNED);
    open(&mut node, A, 768 * MIB);
    let Reply::Refused { code, reason } = &open(&mut node, B, 512 * MIB)[0] else { panic!() };
    assert_eq!(*code, ErrorCode::NO_CAPACITY);
    assert_eq!(reason, "512M asked, 256M of 1G left; raise memnode --capacity");
    assert_eq!(refused(&open(&mut node, A, 512 * MIB)), ErrorCode::SIZE_MISMATCH);
    assert_eq!(node.region_count(), 1);
    assert_eq!(node.stats().errors.total(), 5);
}

#[test]
fn keys_are_isolated() {
    let mut node = server(GIB);
    open(&mut node, A, MIB);
    open(&mut node, B, MIB);
    assert_eq!(write(&mut node, 10, A, 0, &page_of(0xaa)), [Reply::Acked { offset: 0 }]);
    // B sees its own (zero) page at the same offset, and its writes do not reach A.
    assert_eq!(
        read(&mut node, 11, B, 0, PAGE),
        [Reply::Page { offset: 0, data: vec![0; PAGE_SIZE] }]
    );
    write(&mut node, 12, B, 0, &page_of(0xbb));
    assert_eq!(
        read(&mut node, 13, A, 0, PAGE),
        [Reply::Page { offset: 0, data: vec![0xaa; PAGE_SIZE] }]
    );
    // A key never opened gets nothing and changes nothing.
    let stranger = RegionKey::from_u128(0xcccc);
    assert_eq!(refused(&read(&mut node, 14, stranger, 0, PAGE)), ErrorCode::UNKNOWN_KEY);
    assert_eq!(refused(&write(&mut node, 15, stranger, 0, &page_of(0xcc))), ErrorCode::UNKNOWN_KEY);
    assert_eq!(
        read(&mut node, 16, A, 0, PAGE),
        [Reply::Page { offset: 0, data: vec![0xaa; PAGE_SIZE] }]
    );
    assert_eq!(node.stats().errors.unknown_key, 2);
    assert_eq!(node.stats().pages_committed, 2);
}

#[test]
fn requests_outside_the_region_are_refused_and_change_nothing() {
    let mut node = server(GIB);
    open(&mut node, A, MIB);
    let before = *node.stats();
    let cases: [(Vec<Reply>, ErrorCode); 9] = [
        (read(&mut node, 2, A, MIB, PAGE), ErrorCode::OUT_OF_BOUNDS),
        (read(&mut node, 2, A, MIB - PAGE, 2 * PAGE), ErrorCode::OUT_OF_BOUNDS),
        (read(&mut node, 2, A, u64::MAX - PAGE + 1, PAGE), ErrorCode::OUT_OF_BOUNDS),
        (read(&mut node, 2, A, 100, PAGE), ErrorCode::UNALIGNED),
        (read(&mut node, 2, A, 0, 100), ErrorCode::UNALIGNED),
        (read(&mut node, 2, A, 0, 0), ErrorCode::BAD_LENGTH),
        (read(&mut node, 2, A, 0, (MAX_RUN_PAGES as u64 + 1) * PAGE), ErrorCode::BAD_LENGTH),
        (write(&mut node, 2, A, MIB, &page_of(1)), ErrorCode::OUT_OF_BOUNDS),
        (write(&mut node, 2, A, 4095, &page_of(1)), ErrorCode::UNALIGNED),
    ];
    for (i, (replies, expected)) in cases.iter().enumerate() {
        assert_eq!(refused(replies), *expected, "case {i}");
    }
    let after = *node.stats();
    assert_eq!(after.pages_committed, before.pages_committed);
    assert_eq!((after.reads, after.writes), (before.reads, before.writes));
    assert_eq!(after.errors.total(), 9);
    // The edges themselves are fine.
    assert_eq!(
        write(&mut node, 3, A, MIB - PAGE, &page_of(9)),
        [Reply::Acked { offset: MIB - PAGE }]
    );
    assert_eq!(read(&mut node, 4, A, MIB - 64 * PAGE, 64 * PAGE).len(), 64);
}

#[test]
fn a_read_run_is_answered_page_by_page() {
    let mut node = server(GIB);
    open(&mut node, A, MIB);
    write(&mut node, 1, A, 5 * PAGE, &page_of(5));
    write(&mut node, 2, A, 7 * PAGE, &page_of(7));
    let replies = read(&mut node, 3, A, 4 * PAGE, 4 * PAGE);
    let expected: Vec<Reply> = [0u8, 5, 0, 7]
        .iter()
        .enumerate()
        .map(|(i, &byte)| Reply::Page {
            offset: (4 + i as u64) * PAGE,
            data: vec![byte; PAGE_SIZE],
        })
        .collect();
    assert_eq!(replies, expected);
    let stats = node.stats();
    assert_eq!((stats.reads, stats.pages_read, stats.bytes_read), (1, 4, 4 * PAGE));
}

#[test]
fn an_older_write_is_acknowledged_but_not_applied() {
    let mut node = server(GIB);
    open(&mut node, A, MIB);
    write(&mut node, 20, A, 0, &page_of(20));
    // A late copy of write 10 arrives after write 20: acked (the image may still wait
    // for it) but the page keeps the newer data.
    assert_eq!(write(&mut node, 10, A, 0, &page_of(10)), [Reply::Acked { offset: 0 }]);
    // The same write again (a retry) is applied again, harmlessly.
    assert_eq!(write(&mut node, 20, A, 0, &page_of(20)), [Reply::Acked { offset: 0 }]);
    assert_eq!(
        read(&mut node, 21, A, 0, PAGE),
        [Reply::Page { offset: 0, data: vec![20; PAGE_SIZE] }]
    );
    assert_eq!(node.stats().stale_writes, 1);
}

#[test]
fn huge_regions_commit_memory_only_for_written_pages() {
    let mut node = server(1 << 40);
    for key in 0..16u128 {
        let key = RegionKey::from_u128(key);
        assert!(matches!(open(&mut node, key, 8 * GIB)[..], [Reply::Opened { .. }]));
        write(&mut node, 1, key, 8 * GIB - PAGE, &page_of(1));
        assert_eq!(
            read(&mut node, 2, key, 4 * GIB, PAGE)[0],
            Reply::Page { offset: 4 * GIB, data: vec![0; PAGE_SIZE] }
        );
    }
    assert_eq!(node.reserved(), 128 * GIB);
    assert_eq!(node.stats().pages_committed, 16);
}

#[test]
fn broadcast_opens_are_answered_and_other_destinations_ignored() {
    let mut node = server(GIB);
    let replies =
        exchange(&mut node, &frame_to(BROADCAST_MAC, 1, A, Body::OpenRequest { size_wanted: MIB }));
    assert!(matches!(replies[..], [Reply::Opened { .. }]));
    let other = [2, 0, 0, 0, 0, 7];
    assert!(
        exchange(&mut node, &frame_to(other, 2, A, Body::ReadRequest { offset: 0, len: PAGE }))
            .is_empty()
    );
    assert_eq!(node.stats().bad_frames.not_for_us, 1);
}

#[test]
fn bad_frames_are_dropped_and_counted() {
    let mut node = server(GIB);
    open(&mut node, A, MIB);
    let good = frame(2, A, Body::ReadRequest { offset: 0, len: PAGE });
    let with = |at: usize, bytes: &[u8]| {
        let mut frame = good.clone();
        frame[at..at + bytes.len()].copy_from_slice(bytes);
        frame
    };
    let body = ETHERNET_HEADER_LEN;
    let page = page_of(1);
    let bad: Vec<(Vec<u8>, &str)> = vec![
        (good[..5].to_vec(), "truncated"),
        (good[..body + HEADER_LEN - 1].to_vec(), "truncated"),
        (
            frame(3, A, Body::WriteRequest { offset: 0, data: &page })
                [..body + MAX_MESSAGE_LEN - 1]
                .to_vec(),
            "truncated",
        ),
        (with(12, &[0x08, 0x00]), "wrong ethertype"),
        (with(body, b"XMEM"), "bad magic"),
        (with(body + 4, &[2]), "bad version"),
        (with(body + 5, &[99]), "unknown op"),
        (with(body + 6, &[0, 2]), "malformed"),
        (with(body + 58, &[1, 0]), "malformed"),
        (frame(4, A, Body::WriteAck { offset: 0 }), "not a request"),
    ];
    for (frame, why) in &bad {
        assert!(exchange(&mut node, frame).is_empty(), "{why}");
    }
    let counts = node.stats().bad_frames;
    assert_eq!(counts.truncated, 3);
    assert_eq!(counts.wrong_ethertype, 1);
    assert_eq!(counts.bad_magic, 1);
    assert_eq!(counts.bad_version, 1);
    assert_eq!(counts.unknown_op, 1);
    assert_eq!(counts.malformed, 2);
    assert_eq!(counts.not_a_request, 1);
    assert_eq!(counts.total(), bad.len() as u64);
    assert_eq!(node.stats().frames_out, 1, "only the Open was answered");
}

#[test]
fn retransmitted_requests_are_counted() {
    let mut node = server(GIB);
    open(&mut node, A, MIB);
    let mut message = Message::new(5, A, Body::ReadRequest { offset: 0, len: PAGE });
    message.flags = Flags::RETRANSMIT;
    let mut buf = vec![0u8; MAX_FRAME_LEN];
    let len = encode_frame(DEFAULT_NODE_MAC, IMAGE, &message, &mut buf).unwrap();
    node.handle_frame(&buf[..len], |_| {});
    assert_eq!(node.stats().retransmits_seen, 1);
}

#[test]
fn counters_print_every_kind() {
    let mut node = server(GIB);
    open(&mut node, A, MIB);
    let text = node.stats().to_string();
    for needle in [
        "frames in 1, out 1",
        "opens 1",
        "errors 0",
        "bad frames 0",
        "unknown key 0",
        "not for us 0",
    ] {
        assert!(text.contains(needle), "{needle} missing from\n{text}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn random_frames_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..MAX_FRAME_LEN + 8)) {
        let mut node = server(GIB);
        open(&mut node, A, MIB);
        node.handle_frame(&bytes, |_| {});
    }

    #[test]
    fn mutated_requests_never_panic_and_answer_only_their_sender(
        op in 0usize..3,
        offset in prop_oneof![Just(0u64), 0u64..2 * MIB, any::<u64>()],
        len in prop_oneof![Just(PAGE), 0u64..300_000, any::<u64>()],
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
    ) {
        let mut node = server(GIB);
        open(&mut node, A, MIB);
        let page = page_of(3);
        let body = match op {
            0 => Body::OpenRequest { size_wanted: len },
            1 => Body::ReadRequest { offset, len },
            _ => Body::WriteRequest { offset, data: &page },
        };
        let mut bytes = frame(9, A, body);
        for (at, value) in flips {
            let at = at.index(bytes.len());
            bytes[at] = value;
        }
        let mut replies = 0;
        node.handle_frame(&bytes, |reply| {
            replies += 1;
            let (header, _) = decode_frame(reply).expect("replies decode");
            assert_eq!(header.src, DEFAULT_NODE_MAC);
            assert_eq!(&header.dst[..], &bytes[6..12]);
        });
        prop_assert!(replies <= MAX_RUN_PAGES);
    }
}

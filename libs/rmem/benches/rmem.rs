//! Cost of the far-memory data path on the host, without a network.
//!
//! `cargo bench -p remora-rmem --bench rmem -- --quick`
//!
//! - wire: encode a ReadPage frame (the node's answer to a page read) into a buffer and
//!   decode it again: the codec's share of every page fetched.
//! - link_transport: a whole request through `LinkTransport` (post, frames encoded and
//!   sent, `memnode::Server` serving them, answers decoded and copied into the buffer,
//!   completion polled) over an in-memory link with no latency: the software cost per
//!   request on both ends, what a real link adds its round trip to.

use std::collections::VecDeque;
use std::hint::black_box;
use std::ptr::NonNull;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use memnode::{DEFAULT_NODE_MAC, Server, ServerConfig};
use remora_rmem::{
    Body, Clock, Link, LinkConfig, LinkError, LinkTransport, LocalBuf, MAX_FRAME_LEN, Message,
    PAGE_SIZE, RegionKey, Transport, decode_frame, encode_frame,
};

const IMAGE_MAC: [u8; 6] = [0x52, 0x54, 0, 0, 0, 1];
const KEY: RegionKey = RegionKey::from_u128(0xbe_7c4);

fn wire(c: &mut Criterion) {
    let page = [0x5au8; PAGE_SIZE];
    let mut buf = vec![0u8; MAX_FRAME_LEN];
    let mut group = c.benchmark_group("wire");
    group.throughput(Throughput::Bytes(PAGE_SIZE as u64));
    group.bench_function("encode+decode ReadPage frame", |b| {
        b.iter(|| {
            let message = Message::new(
                black_box(7),
                KEY,
                Body::ReadPage { offset: black_box(0x1000), data: &page },
            );
            let len = encode_frame(DEFAULT_NODE_MAC, IMAGE_MAC, &message, &mut buf).unwrap();
            let (_, decoded) = decode_frame(black_box(&buf[..len])).unwrap();
            black_box(decoded.request_id)
        })
    });
    group.finish();
}

/// A link whose far end is a `memnode::Server` called synchronously; answers wait in a
/// queue of reused buffers.
struct DirectLink {
    server: Server,
    inbox: VecDeque<(Box<[u8]>, usize)>,
    spare: Vec<Box<[u8]>>,
}

impl Link for DirectLink {
    fn mac(&self) -> [u8; 6] {
        IMAGE_MAC
    }

    fn send(&mut self, frame: &[u8]) -> Result<(), LinkError> {
        let DirectLink { server, inbox, spare } = self;
        server.handle_frame(frame, |reply| {
            let mut buf =
                spare.pop().unwrap_or_else(|| vec![0u8; MAX_FRAME_LEN].into_boxed_slice());
            buf[..reply.len()].copy_from_slice(reply);
            inbox.push_back((buf, reply.len()));
        });
        Ok(())
    }

    fn receive<R>(&mut self, handle: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let (buf, len) = self.inbox.pop_front()?;
        let result = handle(&buf[..len]);
        self.spare.push(buf);
        Some(result)
    }
}

struct WallClock(Instant);

impl Clock for WallClock {
    fn now_ns(&self) -> u64 {
        self.0.elapsed().as_nanos() as u64
    }
}

fn link_transport(c: &mut Criterion) {
    let link = DirectLink {
        server: Server::new(ServerConfig { capacity: 1 << 30, mac: DEFAULT_NODE_MAC }),
        inbox: VecDeque::new(),
        spare: Vec::new(),
    };
    let mut far =
        LinkTransport::connect(link, WallClock(Instant::now()), KEY, 64 << 20, LinkConfig::DEFAULT)
            .unwrap();
    let mut memory = vec![0u8; 16 * PAGE_SIZE];
    let virt = NonNull::new(memory.as_mut_ptr()).unwrap();
    let round_trip = |far: &mut LinkTransport<DirectLink, WallClock>, write: bool, len: usize| {
        // SAFETY: `memory` is touched only through this buffer, which comes back in the
        // completion before the next request is made.
        let buf = unsafe { LocalBuf::new(virt, 0, len) };
        if write {
            far.post_write(0x10000, buf, 1).unwrap();
        } else {
            far.post_read(0x10000, buf, 1).unwrap();
        }
        loop {
            if let Some(done) = far.poll() {
                assert!(done.status.is_ok());
                return done;
            }
        }
    };
    // Write every page once so reads return data from the node's map, not the zero page.
    round_trip(&mut far, true, 16 * PAGE_SIZE);

    let mut group = c.benchmark_group("link_transport");
    group.throughput(Throughput::Bytes(PAGE_SIZE as u64));
    group.bench_function("read 1 page round trip", |b| {
        b.iter(|| black_box(round_trip(&mut far, false, PAGE_SIZE).tag))
    });
    group.bench_function("write 1 page round trip", |b| {
        b.iter(|| black_box(round_trip(&mut far, true, PAGE_SIZE).tag))
    });
    group.throughput(Throughput::Bytes(16 * PAGE_SIZE as u64));
    group.bench_function("read 16-page run round trip", |b| {
        b.iter(|| black_box(round_trip(&mut far, false, 16 * PAGE_SIZE).tag))
    });
    group.finish();
    assert_eq!(far.stats().timeouts, 0);
}

criterion_group!(benches, wire, link_transport);
criterion_main!(benches);

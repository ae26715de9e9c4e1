//! The data path against the model: READ and WRITE of pages checked against a shadow
//! copy over tens of thousands of operations (so both the CQ ring and the 16-bit WQE
//! counter wrap many times), back-pressure, argument checks, doorbell ordering, and the
//! CQE layout as the model writes it.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;
use remora_rmem::{Direction, LocalBuf, PostError, Transport};
use zerocopy::FromBytes;

use super::support::*;
use crate::hw::cq::Cqe;
use crate::hw::eq::{Eqe, PageRequest};
use crate::model::{Model, ModelConfig, ModelDma};
use crate::platform::{Bar, Dma, DmaError};
use crate::transport::RegionRequest;
use crate::{Device, Mlx5Transport};

#[test]
fn reads_return_what_writes_stored() {
    let model = model();
    let mut t = connect(&model, 8);
    for page in 0..16u64 {
        let mut buf = model.alloc_buf(1);
        fill(&mut buf, &pattern(page, 1));
        t.post_write(page * 4096, buf, page).unwrap();
        let done = wait(&mut t);
        assert_eq!((done.tag, done.direction, done.remote), (page, Direction::Write, page * 4096));
        done.status.unwrap();
        model.free_buf(done.buf);
        assert_eq!(model.node_read(page * 4096, 4096), pattern(page, 1));
    }
    for page in (0..16u64).rev() {
        let buf = model.alloc_buf(1);
        t.post_read(page * 4096, buf, 100 + page).unwrap();
        let done = wait(&mut t);
        assert_eq!(done.tag, 100 + page);
        done.status.unwrap();
        assert_eq!(done.buf.as_slice(), &pattern(page, 1)[..]);
        model.free_buf(done.buf);
    }
    let s = t.stats();
    assert_eq!((s.reads_posted, s.writes_posted, s.completed_ok, s.completed_err), (16, 16, 32, 0));
    assert_eq!((s.bytes_read, s.bytes_written), (16 * 4096, 16 * 4096));
    t.shutdown().unwrap();
    assert_eq!(model.allocated_pages(), 0);
    model.assert_clean();
}

/// Runs `ops` random reads and writes over `pages` pages with `depth` in flight, checking
/// every read against a shadow copy; returns the model.
fn soak(config: ModelConfig, depth: u32, ops: u64, pages: u64, seed: u64) -> Model {
    let model = Model::new(config);
    let mut t = connect(&model, depth);
    let mut shadow: BTreeMap<u64, u32> = BTreeMap::new(); // page -> generation (0: zeroes)
    let mut pending: BTreeMap<u64, (u64, Direction, u32)> = BTreeMap::new(); // tag -> op
    let mut busy: BTreeMap<u64, u64> = BTreeMap::new(); // page -> tag in flight
    let mut free: Vec<LocalBuf> = (0..depth).map(|_| model.alloc_buf(1)).collect();
    let mut x = seed | 1;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let (mut posted, mut completed, mut generation) = (0u64, 0u64, 0u32);
    let check = |c: remora_rmem::Completion,
                 shadow: &mut BTreeMap<u64, u32>,
                 pending: &mut BTreeMap<u64, (u64, Direction, u32)>,
                 busy: &mut BTreeMap<u64, u64>,
                 free: &mut Vec<LocalBuf>| {
        c.status.as_ref().expect("every operation succeeds");
        let (page, dir, generation) = pending.remove(&c.tag).expect("each tag completes once");
        assert_eq!((c.remote, c.direction), (page * 4096, dir));
        busy.remove(&page);
        match dir {
            Direction::Write => {
                shadow.insert(page, generation);
            }
            Direction::Read => {
                let want = match shadow.get(&page) {
                    Some(&g) => pattern(page, g),
                    None => alloc::vec![0u8; 4096],
                };
                assert!(
                    c.buf.as_slice() == &want[..],
                    "page {page} read back wrong (tag {})",
                    c.tag
                );
            }
        }
        free.push(c.buf);
    };
    while completed < ops {
        if posted < ops && !free.is_empty() && rnd() % 4 != 0 {
            let page = rnd() % pages;
            if busy.contains_key(&page) {
                continue;
            }
            let mut buf = free.pop().unwrap();
            let tag = 0x1000_0000 + posted;
            let write = rnd() % 2 == 0;
            let result = if write {
                generation += 1;
                fill(&mut buf, &pattern(page, generation));
                pending.insert(tag, (page, Direction::Write, generation));
                t.post_write(page * 4096, buf, tag)
            } else {
                pending.insert(tag, (page, Direction::Read, 0));
                t.post_read(page * 4096, buf, tag)
            };
            match result {
                Ok(()) => {
                    busy.insert(page, tag);
                    posted += 1;
                }
                Err(rejected) => {
                    assert!(matches!(rejected.error, PostError::QueueFull { .. }));
                    pending.remove(&tag);
                    free.push(rejected.buf);
                }
            }
        } else if let Some(c) = t.poll() {
            check(c, &mut shadow, &mut pending, &mut busy, &mut free);
            completed += 1;
        }
    }
    assert!(pending.is_empty() && t.in_flight() == 0);
    let s = t.stats();
    assert_eq!(s.completed_ok, ops);
    assert_eq!(s.reads_posted + s.writes_posted, ops);
    assert_eq!(t.mlx5_stats().stray_completions, 0);
    for buf in free {
        model.free_buf(buf);
    }
    t.shutdown().unwrap();
    assert_eq!(model.allocated_pages(), 0);
    model.assert_clean();
    model
}

#[test]
fn tens_of_thousands_of_operations_keep_every_page_intact() {
    // 70,000 WQEs: the 16-bit WQE counter wraps, and a 32-entry CQ wraps 2,000 times.
    let model = soak(ModelConfig::default(), 32, 70_000, 512, 0x5eed);
    let stats = model.stats();
    assert_eq!(stats.wqes, 70_000);
    assert!(stats.cq_wraps >= 2_000, "{stats:?}");
    assert_eq!(stats.error_cqes, 0);
}

#[test]
fn completions_written_at_the_doorbell() {
    let model = soak(ModelConfig { lazy: false, ..ModelConfig::default() }, 4, 5_000, 64, 7);
    assert_eq!(model.stats().wqes, 5_000);
}

#[test]
fn a_one_deep_queue() {
    soak(ModelConfig::default(), 1, 2_000, 8, 99);
}

#[test]
fn queue_full_is_back_pressure() {
    let model = model();
    let mut t = connect(&model, 4);
    for k in 0..4 {
        t.post_read(k * 4096, model.alloc_buf(1), k).unwrap();
    }
    assert!(t.is_full());
    let doorbells = model.stats().send_doorbells;
    let rejected = t.post_read(0, model.alloc_buf(1), 9).unwrap_err();
    assert_eq!(rejected.error, PostError::QueueFull { capacity: 4 });
    assert_eq!(model.stats().send_doorbells, doorbells, "nothing reached the device");
    model.free_buf(rejected.buf);
    let done = wait(&mut t);
    model.free_buf(done.buf);
    t.post_read(0, model.alloc_buf(1), 10).unwrap();
    for c in drain(&mut t) {
        c.status.unwrap();
        model.free_buf(c.buf);
    }
    assert_eq!(t.stats().queue_full, 1);
    t.shutdown().unwrap();
    model.assert_clean();
}

#[test]
fn bad_posts_are_refused_before_the_device_sees_them() {
    let model = model();
    let mut t = connect(&model, 4);
    let max = t.max_transfer_len();
    let cases = [
        (100u64, 1usize, "unaligned"),
        (REGION, 1, "past the end"),
        (REGION - 4096, 2, "straddles the end"),
        (0, max / 4096 + 1, "too long"),
    ];
    for (remote, pages, what) in cases {
        let rejected = t.post_read(remote, model.alloc_buf(pages), 0).unwrap_err();
        assert!(
            matches!(
                rejected.error,
                PostError::Unaligned { .. }
                    | PostError::OutOfRegion { .. }
                    | PostError::BadLength { .. }
            ),
            "{what}: {:?}",
            rejected.error
        );
        model.free_buf(rejected.buf);
    }
    assert_eq!(t.stats().bad_posts, 4);
    assert_eq!(model.stats().send_doorbells, 0);
    t.shutdown().unwrap();
    model.assert_clean();
}

#[test]
fn multi_page_transfers() {
    let model = model();
    let mut t = connect(&model, 4);
    let mut buf = model.alloc_buf(16);
    let data: Vec<u8> = (0..16).flat_map(|p| pattern(p, 3)).collect();
    fill(&mut buf, &data);
    t.post_write(32 * 4096, buf, 1).unwrap();
    let c = wait(&mut t);
    c.status.unwrap();
    model.free_buf(c.buf);
    assert_eq!(model.node_read(32 * 4096, 16 * 4096), data);
    t.post_read(32 * 4096, model.alloc_buf(16), 2).unwrap();
    let c = wait(&mut t);
    c.status.unwrap();
    assert_eq!(c.buf.as_slice(), &data[..]);
    model.free_buf(c.buf);
    assert_eq!(t.stats().bytes_read, 16 * 4096);
    t.shutdown().unwrap();
    model.assert_clean();
}

/// BAR0 that forgets write barriers.
struct NoBarriers(crate::model::ModelBar);

impl Bar for NoBarriers {
    fn read32(&self, o: usize) -> u32 {
        self.0.read32(o)
    }
    fn write32(&self, o: usize, v: u32) {
        self.0.write32(o, v)
    }
    fn write64(&self, o: usize, v: u64) {
        self.0.write64(o, v)
    }
    fn write_barrier(&self) {}
    fn read_barrier(&self) {}
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// DMA that loses writes to one address (a doorbell record never updated).
struct LosingDma(ModelDma, Arc<AtomicU64>);

impl Dma for LosingDma {
    fn alloc(&self, pages: usize) -> Result<u64, DmaError> {
        self.0.alloc(pages)
    }
    fn free(&self, phys: u64, pages: usize) {
        self.0.free(phys, pages)
    }
    fn read(&self, phys: u64, out: &mut [u8]) {
        self.0.read(phys, out)
    }
    fn write(&self, phys: u64, data: &[u8]) {
        if phys != self.1.load(Ordering::Relaxed) {
            self.0.write(phys, data)
        }
    }
}

#[test]
fn doorbell_ordering_is_checked() {
    // Without barriers, the model sees the doorbell follow the writes in the same epoch.
    let model = model();
    let dev =
        Device::bring_up(NoBarriers(model.bar()), model.dma(), model.clock(), device_config())
            .unwrap();
    let mut t = Mlx5Transport::connect(
        dev,
        qp_config(4),
        RegionRequest { key: KEY, size: REGION },
        &mut model.control(),
    )
    .unwrap();
    t.post_write(0, model.alloc_buf(1), 1).unwrap();
    let v = model.take_violations();
    assert!(
        v.iter().any(|m| m.contains("command doorbell") && m.contains("without a write barrier")),
        "{v:?}"
    );
    assert!(
        v.iter().any(|m| m.contains("without a write barrier after the doorbell record")),
        "{v:?}"
    );

    // A doorbell record that is not updated lags the rung WQE.
    let model = Model::new(ModelConfig::default());
    let lost = Arc::new(AtomicU64::new(0));
    let dev = Device::bring_up(
        model.bar(),
        LosingDma(model.dma(), lost.clone()),
        model.clock(),
        device_config(),
    )
    .unwrap();
    let mut t = Mlx5Transport::connect(
        dev,
        qp_config(4),
        RegionRequest { key: KEY, size: REGION },
        &mut model.control(),
    )
    .unwrap();
    t.post_write(0, model.alloc_buf(1), 1).unwrap();
    model.free_buf(wait(&mut t).buf);
    model.assert_clean();
    lost.store(model.qp_doorbell_record(t.qpn()).unwrap() + 4, Ordering::Relaxed);
    t.post_write(0, model.alloc_buf(1), 2).unwrap();
    let v = model.take_violations();
    assert!(v.iter().any(|m| m.contains("lags the WQE rung")), "{v:?}");
}

#[test]
fn a_stalled_consumer_index_is_an_overrun() {
    // The driver's CQ doorbell record writes are lost: the device thinks nothing was
    // consumed, and flags the CQE that overwrites an unconsumed one.
    let model = model();
    let lost = Arc::new(AtomicU64::new(0));
    let dev = Device::bring_up(
        model.bar(),
        LosingDma(model.dma(), lost.clone()),
        model.clock(),
        device_config(),
    )
    .unwrap();
    let mut t = Mlx5Transport::connect(
        dev,
        qp_config(4),
        RegionRequest { key: KEY, size: REGION },
        &mut model.control(),
    )
    .unwrap();
    lost.store(model.qp_doorbell_record(t.qpn()).unwrap() - 64, Ordering::Relaxed);
    for k in 0..5 {
        t.post_read(0, model.alloc_buf(1), k).unwrap();
        let c = wait(&mut t);
        model.free_buf(c.buf);
    }
    let v = model.take_violations();
    assert!(v.iter().any(|m| m.contains("overrun")), "{v:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn random_operation_mixes_match_a_shadow_copy(seed in any::<u64>(), depth in 1u32..24, pages in 2u64..40) {
        soak(ModelConfig::default(), depth, 400, pages, seed);
    }
}

proptest! {
    #[test]
    fn cqe_fields_sit_where_the_model_writes_them(
        bytes in proptest::collection::vec(any::<u8>(), 64),
    ) {
        use crate::model::fields::{be16, be32};
        let cqe = Cqe::read_from_bytes(&bytes).unwrap();
        prop_assert_eq!(cqe.opcode(), bytes[0x3f] >> 4);
        prop_assert_eq!(cqe.owner(), bytes[0x3f] & 1);
        prop_assert_eq!(cqe.qpn(), be32(&bytes, 0x38) & 0xff_ffff);
        prop_assert_eq!(cqe.wqe_opcode(), bytes[0x38]);
        prop_assert_eq!(cqe.wqe_counter.get(), be16(&bytes, 0x3c));
        prop_assert_eq!(cqe.byte_cnt.get(), be32(&bytes, 0x2c));
        prop_assert_eq!(cqe.syndrome, bytes[0x37]);
        prop_assert_eq!(cqe.vendor_err_synd, bytes[0x36]);
    }

    #[test]
    fn eqe_page_requests_decode(bytes in proptest::collection::vec(any::<u8>(), 64)) {
        use crate::model::fields::{be16, be32};
        let eqe = Eqe::read_from_bytes(&bytes).unwrap();
        prop_assert_eq!(eqe.event_type, bytes[1]);
        prop_assert_eq!(eqe.owner, bytes[0x3f]);
        let (req, _) = PageRequest::read_from_prefix(&eqe.data).unwrap();
        prop_assert_eq!(req.func_id.get(), be16(&bytes, 0x22));
        prop_assert_eq!(req.num_pages.get(), be32(&bytes, 0x24));
    }

    #[test]
    fn wqe_slots_follow_the_16_bit_counter(start in any::<u16>(), log in 0u32..12) {
        // The slot of WQE index i is i mod size for every i, across the 16-bit wrap.
        let size = 1u32 << log;
        let next = start.wrapping_add(1);
        prop_assert_eq!(next as u32 & (size - 1), (start as u32 + 1) % size);
    }
}

//! The buddy allocator against a model: a set of usable frames and a map of live blocks.
//!
//! After every step: blocks are aligned, inside usable memory and disjoint; the free count
//! matches the model; an allocation fails exactly when the model has no aligned, wholly
//! free block of that order (what full coalescing guarantees); bad frees are refused and
//! change nothing. At the end, freeing everything gives back the initial free-block shape.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use proptest::prelude::*;
use proptest::sample::Index;
use remora_alloc::{BuddyAllocator, FRAME_SIZE, FrameAllocError, FrameAllocator, FrameFreeError};

#[derive(Clone, Debug)]
enum Op {
    Alloc(usize),
    Free(Index),
    DoubleFree(Index),
    FreeWithOtherOrder(Index, bool),
    FreeInside(Index),
}

fn op(max_order: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..=max_order + 1).prop_map(Op::Alloc),
        3 => any::<Index>().prop_map(Op::Free),
        1 => any::<Index>().prop_map(Op::DoubleFree),
        1 => (any::<Index>(), any::<bool>()).prop_map(|(i, up)| Op::FreeWithOtherOrder(i, up)),
        1 => any::<Index>().prop_map(Op::FreeInside),
    ]
}

/// Up to four byte ranges, unaligned and possibly overlapping, inside `window` frames
/// starting at `origin`.
fn ranges(origin: u64, window: u64) -> impl Strategy<Value = Vec<Range<u64>>> {
    let bytes = window * FRAME_SIZE;
    prop::collection::vec((0..bytes, 0..bytes / 2), 1..=4).prop_map(move |spans| {
        spans
            .into_iter()
            .map(|(start, len)| origin + start..origin + (start + len).min(bytes))
            .collect()
    })
}

struct Model {
    usable: BTreeSet<u64>,
    live: BTreeMap<u64, usize>,
    taken: BTreeSet<u64>,
}

impl Model {
    fn new(usable: &[Range<u64>]) -> Self {
        let mut frames = BTreeSet::new();
        for range in usable {
            for frame in range.start.div_ceil(FRAME_SIZE)..range.end / FRAME_SIZE {
                frames.insert(frame);
            }
        }
        Model { usable: frames, live: BTreeMap::new(), taken: BTreeSet::new() }
    }

    fn is_available(&self, frame: u64) -> bool {
        self.usable.contains(&frame) && !self.taken.contains(&frame)
    }

    fn has_free_block(&self, order: usize) -> bool {
        let size = 1u64 << order;
        self.usable
            .iter()
            .filter(|&&frame| frame % size == 0)
            .any(|&frame| (frame..frame + size).all(|f| self.is_available(f)))
    }

    fn pick(&self, index: &Index) -> Option<(u64, usize)> {
        if self.live.is_empty() {
            return None;
        }
        self.live.iter().nth(index.index(self.live.len())).map(|(&frame, &order)| (frame, order))
    }

    fn remove(&mut self, frame: u64, order: usize) {
        self.live.remove(&frame);
        for f in frame..frame + (1 << order) {
            self.taken.remove(&f);
        }
    }
}

fn free_shape<const M: usize>(buddy: &BuddyAllocator<'_, M>) -> Vec<u64> {
    (0..=M).map(|order| buddy.free_blocks(order)).collect()
}

fn run<const M: usize>(usable: &[Range<u64>], ops: &[Op]) -> Result<(), TestCaseError> {
    let words = match BuddyAllocator::<M>::storage_words(usable) {
        Ok(words) => words,
        Err(_) => {
            prop_assert!(Model::new(usable).usable.is_empty());
            return Ok(());
        }
    };
    let mut storage = vec![0xdead_beef; words];
    let mut buddy = BuddyAllocator::<M>::new(usable, &mut storage).unwrap();
    let mut model = Model::new(usable);
    let initial_shape = free_shape(&buddy);
    let initial = buddy.stats();
    prop_assert_eq!(initial.total_frames, model.usable.len() as u64);

    for op in ops {
        match op {
            Op::Alloc(order) => match buddy.alloc_frames(*order) {
                Ok(addr) => {
                    prop_assert!(*order <= M);
                    prop_assert_eq!(addr % (FRAME_SIZE << order), 0, "block not naturally aligned");
                    let frame = addr / FRAME_SIZE;
                    for f in frame..frame + (1 << order) {
                        prop_assert!(model.usable.contains(&f), "frame {:#x} is not usable", f);
                        prop_assert!(model.taken.insert(f), "frame {:#x} handed out twice", f);
                    }
                    model.live.insert(frame, *order);
                }
                Err(FrameAllocError::OrderTooLarge { order: asked, max_order }) => {
                    prop_assert_eq!((asked, max_order), (*order, M));
                    prop_assert!(*order > M);
                }
                Err(FrameAllocError::OutOfMemory { order: asked, .. }) => {
                    prop_assert_eq!(asked, *order);
                    prop_assert!(
                        !model.has_free_block(*order),
                        "order {} refused but a block is free",
                        order
                    );
                }
            },
            Op::Free(index) => {
                if let Some((frame, order)) = model.pick(index) {
                    prop_assert_eq!(buddy.free_frames(frame * FRAME_SIZE, order), Ok(()));
                    model.remove(frame, order);
                }
            }
            Op::DoubleFree(index) => {
                if let Some((frame, order)) = model.pick(index) {
                    let addr = frame * FRAME_SIZE;
                    prop_assert_eq!(buddy.free_frames(addr, order), Ok(()));
                    model.remove(frame, order);
                    let before = buddy.stats();
                    prop_assert_eq!(
                        buddy.free_frames(addr, order),
                        Err(FrameFreeError::AlreadyFree { addr })
                    );
                    prop_assert_eq!(buddy.stats().free_frames, before.free_frames);
                }
            }
            Op::FreeWithOtherOrder(index, up) => {
                if let Some((frame, order)) = model.pick(index) {
                    let other = if *up { order + 1 } else { order.wrapping_sub(1) };
                    if other <= M {
                        let before = free_shape(&buddy);
                        prop_assert!(buddy.free_frames(frame * FRAME_SIZE, other).is_err());
                        prop_assert_eq!(free_shape(&buddy), before);
                    }
                }
            }
            Op::FreeInside(index) => {
                if let Some((frame, order)) = model.pick(index)
                    && order > 0
                {
                    let addr = (frame + (1 << order) - 1) * FRAME_SIZE;
                    let before = free_shape(&buddy);
                    prop_assert_eq!(
                        buddy.free_frames(addr, 0),
                        Err(FrameFreeError::NotAllocated { addr })
                    );
                    prop_assert_eq!(free_shape(&buddy), before);
                }
            }
        }
        let stats = buddy.stats();
        prop_assert_eq!(stats.free_frames, (model.usable.len() - model.taken.len()) as u64);
        prop_assert_eq!(stats.total_frames, initial.total_frames);
    }

    let live: Vec<(u64, usize)> = model.live.iter().map(|(&f, &o)| (f, o)).collect();
    for (frame, order) in live {
        prop_assert_eq!(buddy.free_frames(frame * FRAME_SIZE, order), Ok(()));
    }
    let end = buddy.stats();
    prop_assert_eq!(end.free_frames, end.total_frames, "frames leaked");
    prop_assert_eq!(free_shape(&buddy), initial_shape, "free everything: not fully coalesced");
    prop_assert_eq!(end.largest_free_order, initial.largest_free_order);
    Ok(())
}

proptest! {
    #[test]
    fn small_max_order_matches_the_model(
        usable in ranges(0x10_0000 + 3 * FRAME_SIZE, 300),
        ops in prop::collection::vec(op(5), 1..120),
    ) {
        run::<5>(&usable, &ops)?;
    }

    #[test]
    fn default_max_order_matches_the_model(
        usable in ranges(0x1_0000_0000, 2500),
        ops in prop::collection::vec(op(10), 1..80),
    ) {
        run::<10>(&usable, &ops)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Allocating every frame one by one and freeing them in a random order rebuilds the
    /// initial blocks.
    #[test]
    fn exhausting_and_refilling_restores_the_shape(
        usable in ranges(0, 600),
        seed in any::<u64>(),
    ) {
        let Ok(words) = BuddyAllocator::<6>::storage_words(&usable) else { return Ok(()) };
        let mut storage = vec![0; words];
        let mut buddy = BuddyAllocator::<6>::new(&usable, &mut storage).unwrap();
        let shape = free_shape(&buddy);
        let mut frames = Vec::new();
        while let Ok(frame) = buddy.alloc_frame() {
            frames.push(frame);
        }
        prop_assert_eq!(frames.len() as u64, buddy.stats().total_frames);
        prop_assert_eq!(buddy.stats().largest_free_order, None);
        // A cheap deterministic shuffle.
        let mut state = seed | 1;
        for i in (1..frames.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            frames.swap(i, (state % (i as u64 + 1)) as usize);
        }
        for frame in frames {
            prop_assert_eq!(buddy.free_frame(frame), Ok(()));
        }
        prop_assert_eq!(free_shape(&buddy), shape);
    }
}

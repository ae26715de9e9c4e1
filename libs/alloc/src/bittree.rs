//! A hierarchical bitmap ("bit tree") laid out in words that someone else owns.
//!
//! Level 0 holds one bit per item; each bit of level `L + 1` says whether word `i` of
//! level `L` is non-zero. Finding the lowest set bit therefore walks one word per level
//! (at most [`MAX_LEVELS`], i.e. 64^7 items), and setting or clearing a bit touches one
//! word per level at most.
//!
//! This module owns only the arithmetic of the layout. It never owns memory: every
//! operation takes the word slice the layout was made for, so the frame allocator can keep
//! all its trees in one caller-provided slice. It never allocates and never panics on a
//! slice of the size [`BitTree::words_for`] asked for.

/// Levels a tree may have: 64^7 = 2^42 items, more frames than a 52-bit physical address
/// space holds.
pub(crate) const MAX_LEVELS: usize = 7;

/// Where the levels of one tree sit in a word slice.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct BitTree {
    levels: usize,
    offset: [usize; MAX_LEVELS],
    words: [usize; MAX_LEVELS],
}

impl BitTree {
    /// Words a tree of `bits` items occupies, or `None` if it would need more than
    /// [`MAX_LEVELS`] levels.
    pub(crate) const fn words_for(bits: usize) -> Option<usize> {
        let mut total = 0;
        let mut items = bits;
        let mut level = 0;
        while level < MAX_LEVELS {
            let words = words_for_bits(items);
            total += words;
            if words == 1 {
                return Some(total);
            }
            items = words;
            level += 1;
        }
        None
    }

    /// A tree of `bits` items whose first word is `storage[offset]`. The caller has checked
    /// [`BitTree::words_for`].
    pub(crate) fn new(bits: usize, offset: usize) -> Self {
        let mut tree = BitTree::default();
        let mut items = bits;
        let mut at = offset;
        while tree.levels < MAX_LEVELS {
            let words = words_for_bits(items);
            tree.offset[tree.levels] = at;
            tree.words[tree.levels] = words;
            tree.levels += 1;
            at += words;
            if words == 1 {
                break;
            }
            items = words;
        }
        tree
    }

    /// The index just past the tree's last word.
    pub(crate) fn end(&self) -> usize {
        self.offset[self.levels - 1] + self.words[self.levels - 1]
    }

    /// The words of level 0, as a range of indices into the storage slice.
    pub(crate) fn leaf_words(&self) -> core::ops::Range<usize> {
        self.offset[0]..self.offset[0] + self.words[0]
    }

    /// Whether item `index` is set.
    pub(crate) fn test(&self, storage: &[u64], index: usize) -> bool {
        storage[self.offset[0] + index / 64] & bit(index) != 0
    }

    /// Sets item `index`, marking the summary levels above it.
    pub(crate) fn set(&self, storage: &mut [u64], index: usize) {
        let mut index = index;
        for level in 0..self.levels {
            let word = &mut storage[self.offset[level] + index / 64];
            let was = *word;
            *word = was | bit(index);
            if was != 0 {
                return;
            }
            index /= 64;
        }
    }

    /// Clears item `index`, clearing summary bits whose word became empty.
    pub(crate) fn clear(&self, storage: &mut [u64], index: usize) {
        let mut index = index;
        for level in 0..self.levels {
            let word = &mut storage[self.offset[level] + index / 64];
            *word &= !bit(index);
            if *word != 0 {
                return;
            }
            index /= 64;
        }
    }

    /// The lowest set item, found by walking down from the top word.
    pub(crate) fn first(&self, storage: &[u64]) -> Option<usize> {
        let mut word_index = 0;
        for level in (0..self.levels).rev() {
            let word = storage[self.offset[level] + word_index];
            if word == 0 {
                return None;
            }
            let index = word_index * 64 + word.trailing_zeros() as usize;
            if level == 0 {
                return Some(index);
            }
            word_index = index;
        }
        None
    }

    /// Recomputes every summary level from level 0 (after level 0 was written directly).
    pub(crate) fn rebuild_summaries(&self, storage: &mut [u64]) {
        for level in 1..self.levels {
            let below = self.offset[level - 1];
            let below_words = self.words[level - 1];
            for word in 0..self.words[level] {
                let first = word * 64;
                let last = (first + 64).min(below_words);
                let mut summary = 0u64;
                for (i, child) in storage[below + first..below + last].iter().enumerate() {
                    if *child != 0 {
                        summary |= 1 << i;
                    }
                }
                storage[self.offset[level] + word] = summary;
            }
        }
    }
}

/// Words needed for `bits` bits (at least one, so every tree has a top word).
const fn words_for_bits(bits: usize) -> usize {
    let words = bits.div_ceil(64);
    if words == 0 { 1 } else { words }
}

fn bit(index: usize) -> u64 {
    1 << (index % 64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_cover_every_level() {
        assert_eq!(BitTree::words_for(0), Some(1));
        assert_eq!(BitTree::words_for(64), Some(1));
        assert_eq!(BitTree::words_for(65), Some(2 + 1));
        assert_eq!(BitTree::words_for(64 * 64 + 1), Some(65 + 2 + 1));
        assert_eq!(BitTree::new(64 * 64 + 1, 5).end(), 5 + 65 + 2 + 1);
    }

    #[test]
    fn first_follows_set_and_clear_across_levels() {
        let bits = 64 * 64 * 3;
        let tree = BitTree::new(bits, 1);
        let mut storage = vec![0u64; tree.end()];
        assert_eq!(tree.first(&storage), None);
        for index in [bits - 1, 4097, 70, 9000] {
            tree.set(&mut storage, index);
        }
        assert_eq!(tree.first(&storage), Some(70));
        tree.clear(&mut storage, 70);
        assert_eq!(tree.first(&storage), Some(4097));
        tree.clear(&mut storage, 4097);
        tree.clear(&mut storage, 9000);
        assert_eq!(tree.first(&storage), Some(bits - 1));
        assert!(tree.test(&storage, bits - 1));
        tree.clear(&mut storage, bits - 1);
        assert_eq!(tree.first(&storage), None);
        assert_eq!(storage[0], 0, "the word before the tree is never written");
        assert!(storage.iter().all(|w| *w == 0));
    }

    #[test]
    fn rebuilt_summaries_match_incremental_ones() {
        let bits = 64 * 64 * 2 + 17;
        let tree = BitTree::new(bits, 0);
        let mut incremental = vec![0u64; tree.end()];
        for index in (0..bits).step_by(97) {
            tree.set(&mut incremental, index);
        }
        let mut rebuilt = vec![0u64; tree.end()];
        let leaves = tree.leaf_words();
        rebuilt[leaves.clone()].copy_from_slice(&incremental[leaves]);
        tree.rebuild_summaries(&mut rebuilt);
        assert_eq!(incremental, rebuilt);
    }
}

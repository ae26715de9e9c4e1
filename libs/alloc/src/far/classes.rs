//! Size classes of the far heap's small objects.
//!
//! Owns the table of object sizes and the rule that maps a `Layout` to a class: the
//! smallest class at least as large as the size whose size is a multiple of the
//! alignment. Classes are multiples of 16 spaced 16 bytes apart up to 128, then four per
//! doubling (160, 192, 224, 256, 320, ...), up to `small_max`, so rounding wastes at most
//! 20% above 128 bytes. A class's objects are packed into single pages at multiples of the
//! class size, so no small object straddles a page (one fault fetches all of it).

use alloc::vec::Vec;
use core::alloc::Layout;

use super::PAGE_SIZE;

/// The smallest class and the granule of every class.
pub(crate) const GRANULE: usize = 16;

/// One size class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SizeClass {
    /// Bytes per object.
    pub(crate) size: usize,
    /// Objects in one slab page.
    pub(crate) per_page: usize,
}

/// The classes of one far heap, smallest first.
#[derive(Clone, Debug)]
pub(crate) struct SizeClasses {
    classes: Vec<SizeClass>,
}

impl SizeClasses {
    /// Every standard class below `small_max`, then `small_max` itself. The caller checked
    /// that `small_max` is a multiple of [`GRANULE`] in `GRANULE..=PAGE_SIZE / 2`.
    pub(crate) fn up_to(small_max: usize) -> Self {
        let mut sizes = Vec::new();
        let mut size = GRANULE;
        while size < small_max {
            sizes.push(size);
            // Four classes per doubling above 128: 128 -> 160, 192, 224, 256 -> 320, ...
            size += if size < 128 { GRANULE } else { (1 << size.ilog2()) / 4 };
        }
        sizes.push(small_max);
        let classes =
            sizes.into_iter().map(|size| SizeClass { size, per_page: PAGE_SIZE / size }).collect();
        SizeClasses { classes }
    }

    /// The class serving `layout`, or `None` if it must be a large (whole-page) object.
    pub(crate) fn index_for(&self, layout: Layout) -> Option<usize> {
        let size = layout.size().max(1);
        let first = self.classes.partition_point(|class| class.size < size);
        (first..self.classes.len()).find(|&i| self.classes[i].size.is_multiple_of(layout.align()))
    }

    pub(crate) fn get(&self, index: usize) -> SizeClass {
        self.classes[index]
    }

    pub(crate) fn len(&self) -> usize {
        self.classes.len()
    }

    pub(crate) fn largest(&self) -> usize {
        self.classes.last().map_or(0, |class| class.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(classes: &SizeClasses) -> Vec<usize> {
        (0..classes.len()).map(|i| classes.get(i).size).collect()
    }

    #[test]
    fn default_classes_are_jemalloc_like() {
        let classes = SizeClasses::up_to(2048);
        assert_eq!(
            sizes(&classes),
            [
                16, 32, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512, 640, 768,
                896, 1024, 1280, 1536, 1792, 2048
            ]
        );
        assert_eq!(classes.get(0).per_page, 256);
        assert_eq!(classes.get(classes.len() - 1).per_page, 2);
    }

    #[test]
    fn an_odd_small_max_is_the_last_class() {
        assert_eq!(
            sizes(&SizeClasses::up_to(400)),
            [16, 32, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 400]
        );
        assert_eq!(sizes(&SizeClasses::up_to(16)), [16]);
    }

    #[test]
    fn layouts_map_to_the_smallest_aligned_class() {
        let classes = SizeClasses::up_to(2048);
        let class_of = |size, align| {
            classes
                .index_for(Layout::from_size_align(size, align).unwrap())
                .map(|i| classes.get(i).size)
        };
        assert_eq!(class_of(0, 1), Some(16));
        assert_eq!(class_of(17, 8), Some(32));
        assert_eq!(class_of(40, 32), Some(64), "48 is not 32-aligned");
        assert_eq!(class_of(129, 1), Some(160));
        assert_eq!(class_of(300, 256), Some(512));
        assert_eq!(class_of(2048, 1), Some(2048));
        assert_eq!(class_of(2049, 1), None);
        assert_eq!(class_of(16, 4096), None, "page alignment is a large object");
    }
}

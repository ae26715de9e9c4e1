//! How values lie in (far) memory: the byte layouts an app-level prefetch policy reads.
//!
//! Owns the two value representations and their read-only accessors:
//!
//! - A **string** ([`StrValue`]) is ONE allocation: `[len: u32 LE][bytes]`, contiguous. A
//!   large value therefore occupies whole far-memory pages of its own; [`StrValue::span`]
//!   gives its address and total length (header included), which is all a prefetcher needs
//!   to fetch every page of it at once.
//! - A **list** ([`List`]) is a chain of packed nodes, like Redis's quicklist. Each node is
//!   ONE allocation of at most `list_node_bytes` (unless a single element is larger):
//!
//!   ```text
//!   node:  [count: u32 LE][used: u32 LE][entry][entry]...      used = bytes incl. header
//!   entry: [len: LEB128][len bytes][back: reversed LEB128]     back = size of len + bytes
//!   ```
//!
//!   `back` is read from the entry's end towards its start (its last byte holds the lowest
//!   seven bits, each byte's top bit says another byte precedes it), so a node can be walked
//!   from either end, as Redis's listpack is. The links of the chain (each node's address,
//!   used length and element count, in order) are kept in a spine, a small array apart from
//!   the nodes, instead of `prev`/`next` pointers inside them. Walking from node to node
//!   (LRANGE, finding an index, [`List::node_spans`]) therefore reads only the spine and
//!   never faults on a node it does not need, and the prefetcher gets every node of a range
//!   before the reply loop touches the first one.
//!
//! This module never reads or writes the network, never knows about commands, and needs no
//! `unsafe`: every allocation is a `Vec<u8>` from the global allocator (the far heap in the
//! image).

use alloc::collections::TryReserveError;
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::ops::Range;

/// Bytes of a string value's length header.
pub const STR_HEADER: usize = 4;
/// Bytes of a list node's header (`count`, `used`).
pub const NODE_HEADER: usize = 8;

/// A string value: `[len: u32 LE][bytes]` in one allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrValue {
    buf: Vec<u8>,
}

/// The header's value: lengths past `u32::MAX` saturate (never reached: every string is
/// bounded by `proto-max-bulk-len`, itself below 4 GiB).
fn header(len: usize) -> [u8; 4] {
    u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes()
}

impl StrValue {
    /// A value holding `bytes`, allocated to its exact size; `Err` when memory is short.
    pub fn try_new(bytes: &[u8]) -> Result<StrValue, TryReserveError> {
        let mut buf = Vec::new();
        buf.try_reserve_exact(STR_HEADER + bytes.len())?;
        buf.extend_from_slice(&header(bytes.len()));
        buf.extend_from_slice(bytes);
        Ok(StrValue { buf })
    }

    pub fn bytes(&self) -> &[u8] {
        &self.buf[STR_HEADER..]
    }

    pub fn len(&self) -> usize {
        self.buf.len() - STR_HEADER
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Address and total length (header included) of the value's one allocation: the
    /// byte range a prefetcher fetches.
    pub fn span(&self) -> (usize, usize) {
        (self.buf.as_ptr() as usize, self.buf.len())
    }

    /// Bytes allocated for the value.
    pub fn alloc_bytes(&self) -> usize {
        self.buf.capacity()
    }

    /// Appends `more`, growing like Redis's SDS (double below 1 MiB, then 1 MiB more).
    pub fn try_append(&mut self, more: &[u8]) -> Result<(), TryReserveError> {
        let needed = self.buf.len() + more.len();
        if needed > self.buf.capacity() {
            let target = if needed < 1 << 20 { needed * 2 } else { needed + (1 << 20) };
            if self.buf.try_reserve_exact(target - self.buf.len()).is_err() {
                self.buf.try_reserve_exact(more.len())?;
            }
        }
        self.buf.extend_from_slice(more);
        let len = self.len();
        self.buf[..STR_HEADER].copy_from_slice(&header(len));
        Ok(())
    }

    /// Replaces the bytes in place (INCR and friends: small values, same allocation when
    /// it is big enough).
    pub fn set_bytes(&mut self, bytes: &[u8]) {
        self.buf.truncate(STR_HEADER);
        self.buf.extend_from_slice(bytes);
        self.buf[..STR_HEADER].copy_from_slice(&header(bytes.len()));
    }
}

fn leb_len(mut n: usize) -> usize {
    let mut bytes = 1;
    while n >= 0x80 {
        n >>= 7;
        bytes += 1;
    }
    bytes
}

fn write_leb(out: &mut [u8], mut n: usize) -> usize {
    let mut i = 0;
    loop {
        let low = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out[i] = low;
            return i + 1;
        }
        out[i] = low | 0x80;
        i += 1;
    }
}

/// Reads a LEB128 number at `buf[at..]`: (value, bytes it took).
fn read_leb(buf: &[u8], at: usize) -> (usize, usize) {
    let mut value = 0usize;
    let mut i = 0;
    loop {
        let b = buf[at + i];
        value |= usize::from(b & 0x7f) << (7 * i);
        i += 1;
        if b & 0x80 == 0 {
            return (value, i);
        }
    }
}

/// Reads the reversed LEB128 number that ends just before `end`: (value, bytes it took).
fn read_back_leb(buf: &[u8], end: usize) -> (usize, usize) {
    let mut value = 0usize;
    let mut i = 0;
    loop {
        let b = buf[end - 1 - i];
        value |= usize::from(b & 0x7f) << (7 * i);
        i += 1;
        if b & 0x80 == 0 {
            return (value, i);
        }
    }
}

/// Bytes one element takes in a node.
fn entry_size(len: usize) -> usize {
    let forward = leb_len(len) + len;
    forward + leb_len(forward)
}

/// Writes the entry of `elem` into `out` (exactly `entry_size(elem.len())` bytes).
fn write_entry(out: &mut [u8], elem: &[u8]) {
    let mut at = write_leb(out, elem.len());
    out[at..at + elem.len()].copy_from_slice(elem);
    at += elem.len();
    let mut back = [0u8; 10];
    let n = write_leb(&mut back, at);
    for (i, b) in back[..n].iter().rev().enumerate() {
        out[at + i] = *b;
    }
}

/// One node of a list: its one allocation and its element count (kept in the spine too,
/// so that finding an index never touches the node).
#[derive(Debug, Clone)]
struct Node {
    buf: Vec<u8>,
    count: u32,
}

impl Node {
    fn new(capacity: usize) -> Node {
        let mut buf = Vec::with_capacity(capacity.max(NODE_HEADER));
        buf.extend_from_slice(&[0; NODE_HEADER]);
        Node { buf, count: 0 }
    }

    fn write_header(&mut self) {
        let used = u32::try_from(self.buf.len()).unwrap_or(u32::MAX);
        self.buf[..4].copy_from_slice(&self.count.to_le_bytes());
        self.buf[4..8].copy_from_slice(&used.to_le_bytes());
    }

    /// Makes room for `extra` more bytes, doubling up to `node_bytes`.
    fn grow(&mut self, extra: usize, node_bytes: usize) {
        let needed = self.buf.len() + extra;
        if needed > self.buf.capacity() {
            let target = needed.max((self.buf.capacity() * 2).min(node_bytes));
            self.buf.reserve_exact(target - self.buf.len());
        }
    }

    fn push_front(&mut self, elem: &[u8], node_bytes: usize) {
        let size = entry_size(elem.len());
        self.grow(size, node_bytes);
        let old = self.buf.len();
        self.buf.resize(old + size, 0);
        self.buf.copy_within(NODE_HEADER..old, NODE_HEADER + size);
        write_entry(&mut self.buf[NODE_HEADER..NODE_HEADER + size], elem);
        self.count += 1;
        self.write_header();
    }

    fn push_back(&mut self, elem: &[u8], node_bytes: usize) {
        let size = entry_size(elem.len());
        self.grow(size, node_bytes);
        let old = self.buf.len();
        self.buf.resize(old + size, 0);
        write_entry(&mut self.buf[old..], elem);
        self.count += 1;
        self.write_header();
    }

    /// The element of the entry starting at `at`, and where the next entry starts.
    fn entry_at(&self, at: usize) -> (Range<usize>, usize) {
        let (len, n) = read_leb(&self.buf, at);
        let start = at + n;
        (start..start + len, start + len + leb_len(n + len))
    }

    /// The start of the entry that ends at `end`.
    fn entry_before(&self, end: usize) -> usize {
        let (forward, back) = read_back_leb(&self.buf, end);
        end - back - forward
    }

    /// Offset of the entry with index `i` in this node, walking from the nearer end.
    fn offset_of(&self, i: u32) -> usize {
        if i <= self.count / 2 {
            let mut at = NODE_HEADER;
            for _ in 0..i {
                at = self.entry_at(at).1;
            }
            at
        } else {
            let mut at = self.buf.len();
            for _ in i..self.count {
                at = self.entry_before(at);
            }
            at
        }
    }

    /// Removes the entries in `from..to` (byte offsets), which hold `n` elements.
    fn remove_bytes(&mut self, from: usize, to: usize, n: u32) {
        self.buf.copy_within(to.., from);
        self.buf.truncate(self.buf.len() - (to - from));
        self.count -= n;
        self.write_header();
    }
}

/// Which end of a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    Head,
    Tail,
}

/// A list: a chain of packed nodes (see the module documentation for the bytes).
#[derive(Debug, Clone)]
pub struct List {
    /// The spine: the chain's nodes in order, each with its element count.
    nodes: VecDeque<Node>,
    len: usize,
    /// Bytes allocated for the nodes (capacities) and the spine.
    alloc: usize,
    /// Largest node a push fills (`list_node_bytes`).
    node_bytes: usize,
}

impl List {
    /// An empty list whose nodes hold up to `node_bytes` bytes (header included).
    pub fn new(node_bytes: usize) -> List {
        List {
            nodes: VecDeque::new(),
            len: 0,
            alloc: 0,
            node_bytes: node_bytes.max(NODE_HEADER + 2),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Nodes in the chain.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Bytes allocated for the list (node capacities and the spine).
    pub fn alloc_bytes(&self) -> usize {
        self.alloc + self.nodes.capacity() * core::mem::size_of::<Node>()
    }

    fn node_cap(&self, i: usize) -> usize {
        self.nodes[i].buf.capacity()
    }

    /// Pushes `elem` at `end`: into the end node if it fits in `node_bytes`, else into a
    /// new node (sized for what it holds; it grows by doubling up to `node_bytes`).
    pub fn push(&mut self, end: End, elem: &[u8]) {
        let size = entry_size(elem.len());
        let idx = match end {
            End::Head => 0,
            End::Tail => self.nodes.len().wrapping_sub(1),
        };
        let fits = self.nodes.get(idx).is_some_and(|n| n.buf.len() + size <= self.node_bytes);
        if !fits {
            let node = Node::new(NODE_HEADER + size);
            match end {
                End::Head => self.nodes.push_front(node),
                End::Tail => self.nodes.push_back(node),
            }
            let idx = if end == End::Head { 0 } else { self.nodes.len() - 1 };
            self.alloc += self.node_cap(idx);
        }
        let idx = if end == End::Head { 0 } else { self.nodes.len() - 1 };
        let before = self.node_cap(idx);
        let node_bytes = self.node_bytes;
        match end {
            End::Head => self.nodes[idx].push_front(elem, node_bytes),
            End::Tail => self.nodes[idx].push_back(elem, node_bytes),
        }
        self.alloc = self.alloc + self.node_cap(idx) - before;
        self.len += 1;
    }

    /// Removes the element at `end`, handing it to `f` before it goes.
    pub fn pop<R>(&mut self, end: End, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let idx = match end {
            End::Head => 0,
            End::Tail => self.nodes.len().checked_sub(1)?,
        };
        let node = self.nodes.get_mut(idx)?;
        let (range, from, to) = match end {
            End::Head => {
                let (range, next) = node.entry_at(NODE_HEADER);
                (range, NODE_HEADER, next)
            }
            End::Tail => {
                let start = node.entry_before(node.buf.len());
                (node.entry_at(start).0, start, node.buf.len())
            }
        };
        let result = f(&node.buf[range]);
        node.remove_bytes(from, to, 1);
        if node.count == 0 {
            let cap = node.buf.capacity();
            match end {
                End::Head => self.nodes.pop_front(),
                End::Tail => self.nodes.pop_back(),
            };
            self.alloc -= cap;
        }
        self.len -= 1;
        Some(result)
    }

    /// The node holding element `index` and the element's index within it, found by
    /// walking the spine from the nearer end.
    fn locate(&self, index: usize) -> Option<(usize, u32)> {
        if index >= self.len {
            return None;
        }
        if index < self.len / 2 {
            let mut skipped = 0;
            for (i, node) in self.nodes.iter().enumerate() {
                let count = node.count as usize;
                if index < skipped + count {
                    return Some((i, (index - skipped) as u32));
                }
                skipped += count;
            }
        } else {
            let mut after = self.len;
            for (i, node) in self.nodes.iter().enumerate().rev() {
                let count = node.count as usize;
                after -= count;
                if index >= after {
                    return Some((i, (index - after) as u32));
                }
            }
        }
        None
    }

    /// The element at `index` (0-based from the head).
    pub fn get(&self, index: usize) -> Option<&[u8]> {
        let (node, i) = self.locate(index)?;
        let node = &self.nodes[node];
        let at = node.offset_of(i);
        Some(&node.buf[node.entry_at(at).0])
    }

    /// Calls `f` with every element of `start..=end` (clamped to the list), head to tail,
    /// walking node to node.
    pub fn for_each_in(&self, start: usize, end: usize, mut f: impl FnMut(&[u8])) {
        if start > end {
            return;
        }
        let Some((mut node_idx, i)) = self.locate(start) else { return };
        let mut remaining = end.min(self.len.saturating_sub(1)) + 1 - start;
        let mut at = self.nodes[node_idx].offset_of(i);
        while remaining > 0 {
            let node = &self.nodes[node_idx];
            if at >= node.buf.len() {
                node_idx += 1;
                at = NODE_HEADER;
                continue;
            }
            let (range, next) = node.entry_at(at);
            f(&node.buf[range]);
            at = next;
            remaining -= 1;
        }
    }

    /// Like [`List::for_each_in`], tail to head over `start..=end` (RPOP with a count).
    pub fn for_each_in_rev(&self, start: usize, end: usize, mut f: impl FnMut(&[u8])) {
        if start >= self.len || start > end {
            return;
        }
        let end = end.min(self.len - 1);
        let Some((mut node_idx, i)) = self.locate(end) else { return };
        let mut remaining = end + 1 - start;
        let node = &self.nodes[node_idx];
        let mut at_end = node.entry_at(node.offset_of(i)).1;
        while remaining > 0 {
            let node = &self.nodes[node_idx];
            if at_end <= NODE_HEADER {
                node_idx -= 1;
                at_end = self.nodes[node_idx].buf.len();
                continue;
            }
            let start = node.entry_before(at_end);
            f(&node.buf[node.entry_at(start).0]);
            at_end = start;
            remaining -= 1;
        }
    }

    /// Address and used length of every node holding an element of `start..=end`
    /// (clamped), in order, from the spine alone: the reads a prefetcher issues before
    /// LRANGE's reply loop. Touches no element data.
    pub fn node_spans(&self, start: usize, end: usize) -> NodeSpans<'_> {
        let first = self.locate(start).map(|(n, _)| n);
        let last = if start < self.len {
            self.locate(end.min(self.len - 1)).map(|(n, _)| n)
        } else {
            None
        };
        let range = match (first, last) {
            (Some(a), Some(b)) if a <= b => a..b + 1,
            _ => 0..0,
        };
        NodeSpans { list: self, range }
    }

    /// Address and used length of every node, head to tail.
    pub fn all_node_spans(&self) -> NodeSpans<'_> {
        NodeSpans { list: self, range: 0..self.nodes.len() }
    }

    /// Checks the chain's invariants (counts, headers, entries): for tests.
    pub fn check(&self) -> Result<(), &'static str> {
        let mut total = 0;
        let mut alloc = 0;
        for node in &self.nodes {
            if node.count == 0 {
                return Err("empty node in the chain");
            }
            let count = u32::from_le_bytes([node.buf[0], node.buf[1], node.buf[2], node.buf[3]]);
            let used = u32::from_le_bytes([node.buf[4], node.buf[5], node.buf[6], node.buf[7]]);
            if count != node.count || used as usize != node.buf.len() {
                return Err("node header disagrees with the node");
            }
            let mut at = NODE_HEADER;
            let mut seen = 0;
            while at < node.buf.len() {
                at = node.entry_at(at).1;
                seen += 1;
            }
            if at != node.buf.len() || seen != node.count {
                return Err("node entries do not add up");
            }
            total += node.count as usize;
            alloc += node.buf.capacity();
        }
        if total != self.len {
            return Err("list length disagrees with the nodes");
        }
        if alloc != self.alloc {
            return Err("allocation count is off");
        }
        Ok(())
    }
}

/// Iterator over `(address, used length)` of list nodes; see [`List::node_spans`].
pub struct NodeSpans<'a> {
    list: &'a List,
    range: Range<usize>,
}

impl Iterator for NodeSpans<'_> {
    type Item = (usize, usize);

    fn next(&mut self) -> Option<(usize, usize)> {
        let i = self.range.next()?;
        let node = &self.list.nodes[i];
        Some((node.buf.as_ptr() as usize, node.buf.len()))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.range.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::VecDeque;
    use alloc::vec;
    use proptest::prelude::*;

    fn elements(list: &List) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        list.for_each_in(0, usize::MAX, |e| out.push(e.to_vec()));
        out
    }

    #[test]
    fn string_is_one_allocation_with_a_length_header() {
        let v = StrValue::try_new(b"hello").unwrap();
        let (addr, len) = v.span();
        assert_eq!(len, STR_HEADER + 5);
        assert_eq!(addr, v.buf.as_ptr() as usize);
        assert_eq!(&v.buf[..4], &5u32.to_le_bytes());
        assert_eq!(v.bytes(), b"hello");
        let mut v = v;
        v.try_append(b" world").unwrap();
        assert_eq!(&v.buf[..4], &11u32.to_le_bytes());
        assert_eq!(v.bytes(), b"hello world");
        v.set_bytes(b"42");
        assert_eq!((v.len(), v.bytes()), (2, &b"42"[..]));
        assert_eq!(&v.buf[..4], &2u32.to_le_bytes());
    }

    #[test]
    fn entries_read_both_ways() {
        for len in [0usize, 1, 120, 123, 124, 127, 128, 200, 16_380, 16_384, 70_000] {
            let elem = vec![7u8; len];
            let size = entry_size(len);
            let mut node = Node::new(0);
            node.push_back(&elem, usize::MAX);
            node.push_back(b"x", usize::MAX);
            assert_eq!(node.buf.len(), NODE_HEADER + size + entry_size(1));
            let (range, next) = node.entry_at(NODE_HEADER);
            assert_eq!((range.len(), next), (len, NODE_HEADER + size));
            assert_eq!(node.entry_before(next), NODE_HEADER);
            assert_eq!(node.entry_before(node.buf.len()), next);
        }
    }

    #[test]
    fn nodes_pack_up_to_node_bytes() {
        let mut list = List::new(8192);
        for i in 0..1000u32 {
            list.push(End::Tail, &[i as u8; 100]);
        }
        list.check().unwrap();
        // 102 bytes of entry each: 80 per 8 KiB node.
        assert_eq!(list.node_count(), 1000usize.div_ceil(80));
        for (addr, len) in list.all_node_spans() {
            assert!(addr != 0 && len <= 8192);
        }
        // A big element gets a node of its own.
        list.push(End::Head, &[1; 20_000]);
        list.check().unwrap();
        assert_eq!(list.all_node_spans().next().unwrap().1, NODE_HEADER + entry_size(20_000));
    }

    #[test]
    fn node_spans_cover_exactly_the_range() {
        let mut list = List::new(64);
        for i in 0..100u8 {
            list.push(End::Tail, &[i; 10]);
        }
        // 13-byte entries, 4 per node.
        assert_eq!(list.node_count(), 25);
        let spans: Vec<_> = list.node_spans(5, 13).collect();
        let all: Vec<_> = list.all_node_spans().collect();
        assert_eq!(spans, all[1..=3].to_vec());
        assert_eq!(list.node_spans(99, 1000).count(), 1);
        assert_eq!(list.node_spans(100, 200).count(), 0);
        assert_eq!(list.node_spans(7, 3).count(), 0);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push(bool, Vec<u8>),
        Pop(bool),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (any::<bool>(), prop::collection::vec(any::<u8>(), 0..300))
                .prop_map(|(h, e)| Op::Push(h, e)),
            any::<bool>().prop_map(Op::Pop),
        ]
    }

    proptest! {
        #[test]
        fn behaves_like_a_deque(ops in prop::collection::vec(op(), 0..200), node_bytes in 16usize..2048) {
            let mut list = List::new(node_bytes);
            let mut model: VecDeque<Vec<u8>> = VecDeque::new();
            for op in ops {
                match op {
                    Op::Push(true, e) => { list.push(End::Head, &e); model.push_front(e); }
                    Op::Push(false, e) => { list.push(End::Tail, &e); model.push_back(e); }
                    Op::Pop(true) => prop_assert_eq!(list.pop(End::Head, |e| e.to_vec()), model.pop_front()),
                    Op::Pop(false) => prop_assert_eq!(list.pop(End::Tail, |e| e.to_vec()), model.pop_back()),
                }
                prop_assert_eq!(list.check(), Ok(()));
            }
            prop_assert_eq!(list.len(), model.len());
            prop_assert_eq!(elements(&list), model.iter().cloned().collect::<Vec<_>>());
            for (i, e) in model.iter().enumerate() {
                prop_assert_eq!(list.get(i), Some(&e[..]));
            }
            prop_assert_eq!(list.get(model.len()), None);
            if !model.is_empty() {
                let (a, b) = (model.len() / 3, model.len() * 2 / 3);
                let mut rev = Vec::new();
                list.for_each_in_rev(a, b, |e| rev.push(e.to_vec()));
                let want: Vec<_> = model.iter().skip(a).take(b - a + 1).rev().cloned().collect();
                prop_assert_eq!(rev, want);
            }
        }
    }
}

//! The hook an app-level prefetch policy (issue #10) hangs on.
//!
//! Owns the [`Observer`] trait: the server calls it as it serves, after a command has looked
//! up its object and before it reads the object's data, so that an observer can issue reads
//! for the value's pages ahead of the reply loop. Addresses are those of the allocations
//! described in `layout`. An observer must not touch the keyspace and must not block for
//! long: it runs inside the command.

/// Called by the server while it serves; every method defaults to doing nothing.
pub trait Observer {
    /// A command is about to run: its name as the client sent it, and its arguments.
    fn on_command(&mut self, name: &[u8], args: &[&[u8]]) {
        let _ = (name, args);
    }

    /// A string value is about to be read: its allocation's address and total length
    /// (length header included), from `StrValue::span`.
    fn on_string(&mut self, addr: usize, len: usize) {
        let _ = (addr, len);
    }

    /// A range of a list is about to be read: `(address, used length)` of each node that
    /// holds part of it, in the order they will be read, from `List::node_spans`.
    fn on_list_range(&mut self, nodes: &mut dyn Iterator<Item = (usize, usize)>) {
        let _ = nodes;
    }
}

/// The observer that does nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoObserver;

impl Observer for NoObserver {}

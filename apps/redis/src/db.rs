//! The keyspace: keys to values, with expiry.
//!
//! Owns the hash table (hashbrown; keys, entries and values allocated from the global
//! allocator, i.e. far memory in the image), the index of deadlines, the lazy expiry of a
//! key on access and the bounded sweep the caller drives, and the accounting of the bytes
//! the data takes. Time is given to every call as milliseconds (`now`); a key whose deadline
//! is `at` is alive while `now <= at`, as in Redis. It never parses requests, never writes
//! replies and never reads a clock.

use alloc::boxed::Box;
use alloc::collections::BTreeSet;
use core::mem::size_of;

use foldhash::fast::FixedState;
use hashbrown::HashMap;

use crate::layout::{List, StrValue};

/// A value: a string or a list (see `layout` for their bytes).
#[derive(Debug, Clone)]
pub enum Value {
    Str(StrValue),
    List(List),
}

impl Value {
    /// Bytes allocated for the value.
    pub fn alloc_bytes(&self) -> usize {
        match self {
            Value::Str(s) => s.alloc_bytes(),
            Value::List(l) => l.alloc_bytes(),
        }
    }

    /// The name TYPE answers.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::List(_) => "list",
        }
    }
}

#[derive(Debug)]
struct Entry {
    value: Value,
    expire_at: Option<u64>,
}

/// Counters of the keyspace, for INFO.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyspaceStats {
    pub hits: u64,
    pub misses: u64,
    pub expired_keys: u64,
}

/// The one database (`SELECT 0`).
#[derive(Debug, Default)]
pub struct Db {
    map: HashMap<Box<[u8]>, Entry, FixedState>,
    /// Keys with a deadline, by deadline.
    expires: BTreeSet<(u64, Box<[u8]>)>,
    used: usize,
    pub stats: KeyspaceStats,
}

/// What one key costs besides its bytes and its value: the table slot and its control byte.
const ENTRY_OVERHEAD: usize = size_of::<(Box<[u8]>, Entry)>() + 1;
/// What one deadline costs in the index besides the key's bytes (node share, roughly).
const EXPIRY_OVERHEAD: usize = size_of::<(u64, Box<[u8]>)>() + 16;

fn entry_cost(key: &[u8], value: &Value) -> usize {
    ENTRY_OVERHEAD + key.len() + value.alloc_bytes()
}

impl Db {
    /// An empty keyspace hashing with a fixed seed (tests).
    pub fn new() -> Db {
        Db::default()
    }

    /// An empty keyspace whose hash function is seeded with `seed`: give it something a
    /// client cannot guess (the clock's low bits at start), so that chosen keys cannot all
    /// land in one bucket chain.
    pub fn with_seed(seed: u64) -> Db {
        Db { map: HashMap::with_hasher(FixedState::with_seed(seed)), ..Db::default() }
    }

    /// Keys, including expired ones not yet removed (what DBSIZE says).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Keys with a deadline.
    pub fn expires_len(&self) -> usize {
        self.expires.len()
    }

    /// Approximate bytes held by keys, values and the deadline index.
    pub fn used_bytes(&self) -> usize {
        self.used
    }

    /// Removes `key` if its deadline has passed; true if it did.
    fn expire_if_needed(&mut self, key: &[u8], now: u64) -> bool {
        let expired =
            matches!(self.map.get(key), Some(Entry { expire_at: Some(at), .. }) if now > *at);
        if expired {
            self.remove_entry(key);
            self.stats.expired_keys += 1;
        }
        expired
    }

    fn remove_entry(&mut self, key: &[u8]) -> bool {
        let Some((k, entry)) = self.map.remove_entry(key) else { return false };
        self.used -= entry_cost(&k, &entry.value);
        if let Some(at) = entry.expire_at {
            self.expires.remove(&(at, k));
            self.used -= EXPIRY_OVERHEAD + key.len();
        }
        true
    }

    /// The live value of `key`, as a read (counts a keyspace hit or miss).
    pub fn get(&mut self, key: &[u8], now: u64) -> Option<&Value> {
        self.expire_if_needed(key, now);
        match self.map.get(key) {
            Some(entry) => {
                self.stats.hits += 1;
                Some(&entry.value)
            }
            None => {
                self.stats.misses += 1;
                None
            }
        }
    }

    /// The live value of `key`, before a write (no hit or miss counted).
    pub fn peek(&mut self, key: &[u8], now: u64) -> Option<&Value> {
        self.expire_if_needed(key, now);
        self.map.get(key).map(|e| &e.value)
    }

    /// Whether `key` is alive.
    pub fn contains(&mut self, key: &[u8], now: u64) -> bool {
        self.peek(key, now).is_some()
    }

    /// Runs `f` on the live value of `key` and keeps the accounting right; a list left
    /// empty is removed, as Redis removes it. `None` if there is no such key.
    pub fn update<R>(
        &mut self,
        key: &[u8],
        now: u64,
        f: impl FnOnce(&mut Value) -> R,
    ) -> Option<R> {
        self.expire_if_needed(key, now);
        let entry = self.map.get_mut(key)?;
        let before = entry.value.alloc_bytes();
        let result = f(&mut entry.value);
        let after = entry.value.alloc_bytes();
        let now_empty = matches!(&entry.value, Value::List(l) if l.is_empty());
        self.used = self.used + after - before;
        if now_empty {
            self.remove_entry(key);
        }
        Some(result)
    }

    /// Stores `value` under `key` (SET): replaces any old value, and drops its deadline
    /// unless `keep_ttl`.
    pub fn set(&mut self, key: &[u8], value: Value, keep_ttl: bool, now: u64) {
        self.expire_if_needed(key, now);
        let added = value.alloc_bytes();
        match self.map.get_mut(key) {
            Some(entry) => {
                let old = core::mem::replace(&mut entry.value, value);
                self.used = self.used + added - old.alloc_bytes();
                if !keep_ttl {
                    self.persist(key);
                }
            }
            None => {
                self.used += ENTRY_OVERHEAD + key.len() + added;
                self.map.insert(Box::from(key), Entry { value, expire_at: None });
            }
        }
    }

    /// Deletes `key`; true if it was alive.
    pub fn remove(&mut self, key: &[u8], now: u64) -> bool {
        !self.expire_if_needed(key, now) && self.remove_entry(key)
    }

    /// The deadline of a live key: `None` if there is no such key, `Some(None)` if it has
    /// no deadline.
    pub fn deadline(&mut self, key: &[u8], now: u64) -> Option<Option<u64>> {
        self.expire_if_needed(key, now);
        self.map.get(key).map(|e| e.expire_at)
    }

    /// Sets the deadline of an existing key (absolute, in the clock's milliseconds).
    pub fn set_deadline(&mut self, key: &[u8], at: u64) {
        let Some(entry) = self.map.get_mut(key) else { return };
        let old = entry.expire_at.replace(at);
        match old {
            Some(old) => {
                self.expires.remove(&(old, Box::from(key)));
            }
            None => self.used += EXPIRY_OVERHEAD + key.len(),
        }
        self.expires.insert((at, Box::from(key)));
    }

    /// Drops the deadline of `key`; true if it had one.
    pub fn persist(&mut self, key: &[u8]) -> bool {
        let Some(entry) = self.map.get_mut(key) else { return false };
        let Some(at) = entry.expire_at.take() else { return false };
        self.expires.remove(&(at, Box::from(key)));
        self.used -= EXPIRY_OVERHEAD + key.len();
        true
    }

    /// Removes every key (FLUSHDB, FLUSHALL).
    pub fn clear(&mut self) {
        self.map = HashMap::with_hasher(self.map.hasher().clone());
        self.expires = BTreeSet::new();
        self.used = 0;
    }

    /// One step of the active expiry: removes up to `budget` keys whose deadline has
    /// passed, earliest first; returns how many. The caller runs it periodically.
    pub fn sweep(&mut self, now: u64, budget: usize) -> usize {
        let mut removed = 0;
        while removed < budget {
            match self.expires.first() {
                Some((at, _)) if now > *at => {}
                _ => break,
            }
            let Some((_, key)) = self.expires.pop_first() else { break };
            self.used -= EXPIRY_OVERHEAD + key.len();
            if let Some((k, entry)) = self.map.remove_entry(&key[..]) {
                self.used -= entry_cost(&k, &entry.value);
            }
            self.stats.expired_keys += 1;
            removed += 1;
        }
        removed
    }

    /// Recomputes the accounting from scratch: for tests.
    pub fn check_accounting(&self) -> Result<(), (usize, usize)> {
        let mut used = 0;
        for (k, e) in &self.map {
            used += entry_cost(k, &e.value);
            if let Some(at) = e.expire_at {
                used += EXPIRY_OVERHEAD + k.len();
                if !self.expires.contains(&(at, k.clone())) {
                    return Err((used, self.used));
                }
            }
        }
        if used == self.used
            && self.expires.len() == self.map.values().filter(|e| e.expire_at.is_some()).count()
        {
            Ok(())
        } else {
            Err((used, self.used))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::End;

    fn s(v: &[u8]) -> Value {
        Value::Str(StrValue::try_new(v).unwrap())
    }

    #[test]
    fn set_get_remove() {
        let mut db = Db::new();
        db.set(b"k", s(b"v"), false, 0);
        assert!(matches!(db.get(b"k", 0), Some(Value::Str(v)) if v.bytes() == b"v"));
        assert!(db.get(b"nope", 0).is_none());
        assert_eq!(db.stats, KeyspaceStats { hits: 1, misses: 1, expired_keys: 0 });
        assert!(db.remove(b"k", 0));
        assert!(!db.remove(b"k", 0));
        assert_eq!(db.used_bytes(), 0);
    }

    #[test]
    fn lazy_expiry_and_sweep() {
        let mut db = Db::new();
        db.set(b"a", s(b"1"), false, 0);
        db.set(b"b", s(b"2"), false, 0);
        db.set(b"c", s(b"3"), false, 0);
        db.set_deadline(b"a", 100);
        db.set_deadline(b"b", 200);
        db.check_accounting().unwrap();
        assert!(db.contains(b"a", 100), "alive at its deadline");
        assert!(!db.contains(b"a", 101));
        assert_eq!(db.len(), 2);
        assert_eq!(db.sweep(150, 10), 0);
        assert_eq!(db.sweep(201, 10), 1);
        assert_eq!((db.len(), db.expires_len(), db.stats.expired_keys), (1, 0, 2));
        db.check_accounting().unwrap();
    }

    #[test]
    fn set_drops_or_keeps_the_deadline() {
        let mut db = Db::new();
        db.set(b"k", s(b"1"), false, 0);
        db.set_deadline(b"k", 50);
        db.set(b"k", s(b"2"), true, 0);
        assert_eq!(db.deadline(b"k", 0), Some(Some(50)));
        db.set(b"k", s(b"3"), false, 0);
        assert_eq!(db.deadline(b"k", 0), Some(None));
        assert_eq!(db.expires_len(), 0);
        db.set_deadline(b"k", 10);
        db.set_deadline(b"k", 20);
        assert_eq!(db.expires_len(), 1);
        assert_eq!(db.sweep(15, 10), 0);
        db.check_accounting().unwrap();
    }

    #[test]
    fn emptied_lists_disappear() {
        let mut db = Db::new();
        let mut list = List::new(8192);
        list.push(End::Tail, b"x");
        db.set(b"l", Value::List(list), false, 0);
        db.update(b"l", 0, |v| {
            if let Value::List(l) = v {
                l.push(End::Head, b"y");
            }
        });
        db.check_accounting().unwrap();
        for _ in 0..2 {
            db.update(b"l", 0, |v| {
                if let Value::List(l) = v {
                    l.pop(End::Head, |_| ());
                }
            });
        }
        assert!(db.is_empty());
        assert_eq!(db.used_bytes(), 0);
    }
}

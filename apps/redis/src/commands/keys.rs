//! Keyspace commands: DEL, EXISTS, TYPE, TTL, PTTL, EXPIRE, PEXPIRE, PERSIST, DBSIZE,
//! FLUSHDB, FLUSHALL, SELECT.
//!
//! Each follows its Redis 7 implementation (`db.c`, `expire.c`) in the order of its checks.
//! There is one database: SELECT 0 succeeds, any other index is "out of range", which is
//! what Redis answers when started with `databases 1`.

use alloc::vec::Vec;

use super::{Exec, int_arg, now_ms};
use crate::reply::{self, c_str, keyword_eq};

pub(super) fn del(x: &mut Exec<'_, '_>, args: &[&[u8]]) {
    let removed = args[1..].iter().filter(|key| x.db.remove(key, x.now)).count();
    reply::integer(x.out, removed as i64);
}

pub(super) fn exists(x: &mut Exec<'_, '_>, args: &[&[u8]]) {
    let found = args[1..].iter().filter(|key| x.db.contains(key, x.now)).count();
    reply::integer(x.out, found as i64);
}

pub(super) fn type_(x: &mut Exec<'_, '_>, args: &[&[u8]]) {
    let name = x.db.peek(args[1], x.now).map_or("none", |v| v.type_name());
    reply::status(x.out, name.as_bytes());
}

fn ttl_generic(x: &mut Exec<'_, '_>, key: &[u8], in_ms: bool) {
    let reply = match x.db.deadline(key, x.now) {
        None => -2,
        Some(None) => -1,
        Some(Some(at)) => {
            let left = (at as i64).saturating_sub(now_ms(x)).max(0);
            if in_ms { left } else { (left + 500) / 1000 }
        }
    };
    reply::integer(x.out, reply);
}

pub(super) fn ttl(x: &mut Exec<'_, '_>, args: &[&[u8]]) {
    ttl_generic(x, args[1], false);
}

pub(super) fn pttl(x: &mut Exec<'_, '_>, args: &[&[u8]]) {
    ttl_generic(x, args[1], true);
}

/// Redis's `expireGenericCommand` (relative forms), with its NX XX GT LT options.
fn expire_generic(x: &mut Exec<'_, '_>, args: &[&[u8]], unit_ms: i64, command: &str) {
    const NX: u8 = 1;
    const XX: u8 = 2;
    const GT: u8 = 4;
    const LT: u8 = 8;
    let mut flags = 0u8;
    for opt in &args[3..] {
        flags |= if keyword_eq(opt, "nx") {
            NX
        } else if keyword_eq(opt, "xx") {
            XX
        } else if keyword_eq(opt, "gt") {
            GT
        } else if keyword_eq(opt, "lt") {
            LT
        } else {
            let mut msg = Vec::from(&b"ERR Unsupported option "[..]);
            msg.extend_from_slice(c_str(opt));
            reply::error(x.out, &msg);
            return;
        };
    }
    if flags & NX != 0 && flags & (XX | GT | LT) != 0 {
        reply::error_str(
            x.out,
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        );
        return;
    }
    if flags & GT != 0 && flags & LT != 0 {
        reply::error_str(x.out, "ERR GT and LT options at the same time are not compatible");
        return;
    }
    let Some(when) = int_arg(x.out, args[2]) else { return };
    let invalid = |x: &mut Exec<'_, '_>| {
        let mut msg = Vec::from(&b"ERR invalid expire time in '"[..]);
        msg.extend_from_slice(command.as_bytes());
        msg.extend_from_slice(b"' command");
        reply::error(x.out, &msg);
    };
    let Some(when) = when.checked_mul(unit_ms) else {
        invalid(x);
        return;
    };
    let Some(when) = when.checked_add(now_ms(x)) else {
        invalid(x);
        return;
    };
    let key = args[1];
    let Some(current) = x.db.deadline(key, x.now) else {
        reply::integer(x.out, 0);
        return;
    };
    let current = current.map(|at| at as i64);
    let refused = (flags & NX != 0 && current.is_some())
        || (flags & XX != 0 && current.is_none())
        || (flags & GT != 0 && current.is_none_or(|c| when <= c))
        || (flags & LT != 0 && current.is_some_and(|c| when >= c));
    if refused {
        reply::integer(x.out, 0);
        return;
    }
    if when <= now_ms(x) {
        x.db.remove(key, x.now);
    } else {
        x.db.set_deadline(key, when as u64);
    }
    reply::integer(x.out, 1);
}

pub(super) fn expire(x: &mut Exec<'_, '_>, args: &[&[u8]]) {
    expire_generic(x, args, 1000, "expire");
}

pub(super) fn pexpire(x: &mut Exec<'_, '_>, args: &[&[u8]]) {
    expire_generic(x, args, 1, "pexpire");
}

pub(super) fn persist(x: &mut Exec<'_, '_>, args: &[&[u8]]) {
    let done = x.db.contains(args[1], x.now) && x.db.persist(args[1]);
    reply::integer(x.out, i64::from(done));
}

pub(super) fn dbsize(x: &mut Exec<'_, '_>, _args: &[&[u8]]) {
    reply::integer(x.out, x.db.len() as i64);
}

/// FLUSHDB and FLUSHALL: no option, SYNC or ASYNC (both free at once here).
fn flush(x: &mut Exec<'_, '_>, args: &[&[u8]]) {
    if args.len() > 2
        || (args.len() == 2 && !keyword_eq(args[1], "sync") && !keyword_eq(args[1], "async"))
    {
        reply::error_str(x.out, reply::SYNTAX);
        return;
    }
    x.db.clear();
    reply::ok(x.out);
}

pub(super) fn flushdb(x: &mut Exec<'_, '_>, args: &[&[u8]]) {
    flush(x, args);
}

pub(super) fn flushall(x: &mut Exec<'_, '_>, args: &[&[u8]]) {
    flush(x, args);
}

pub(super) fn select(x: &mut Exec<'_, '_>, args: &[&[u8]]) {
    let Some(index) = int_arg(x.out, args[1]) else { return };
    if i32::try_from(index).is_err() {
        reply::error_str(
            x.out,
            "ERR value is out of range, value must between -2147483648 and 2147483647",
        );
        return;
    }
    if index == 0 {
        reply::ok(x.out);
    } else {
        reply::error_str(x.out, reply::DB_INDEX);
    }
}

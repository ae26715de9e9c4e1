//! List commands: LPUSH, RPUSH, LPUSHX, RPUSHX, LPOP, RPOP (with a count), LLEN, LRANGE,
//! LINDEX.
//!
//! Each follows its Redis 7 implementation (`t_list.c`) in the order of its checks. Before
//! any element is read, the observer is given the nodes that hold the range about to be
//! read (from the list's spine; no element data is touched to find them).

use super::{Exec, arity_error, int_arg};
use crate::db::Value;
use crate::layout::{End, List};
use crate::reply;

/// Redis's `pushGenericCommand`.
fn push(x: &mut Exec<'_, '_>, args: &[&[u8]], end: End, only_existing: bool) {
    let key = args[1];
    let exists = match x.db.peek(key, x.now) {
        None => false,
        Some(Value::List(_)) => true,
        Some(_) => {
            reply::error_str(x.out, reply::WRONGTYPE);
            return;
        }
    };
    if !exists {
        if only_existing {
            reply::integer(x.out, 0);
            return;
        }
        let mut list = List::new(x.ctx.config.list_node_bytes);
        for elem in &args[2..] {
            list.push(end, elem);
        }
        let len = list.len();
        x.db.set(key, Value::List(list), false, x.now);
        reply::integer(x.out, len as i64);
        return;
    }
    let len = x.db.update(key, x.now, |v| match v {
        Value::List(list) => {
            for elem in &args[2..] {
                list.push(end, elem);
            }
            list.len()
        }
        Value::Str(_) => 0,
    });
    reply::integer(x.out, len.unwrap_or(0) as i64);
}

pub(super) fn lpush(x: &mut Exec<'_, '_>, args: &[&[u8]]) {
    push(x, args, End::Head, false);
}

pub(super) fn rpush(x: &mut Exec<'_, '_>, args: &[&[u8]]) {
    push(x, args, End::Tail, false);
}

pub(super) fn lpushx(x: &mut Exec<'_, '_>, args: &[&[u8]]) {
    push(x, args, End::Head, true);
}

pub(super) fn rpushx(x: &mut Exec<'_, '_>, args: &[&[u8]]) {
    push(x, args, End::Tail, true);
}

/// Redis's `popGenericCommand`.
fn pop(x: &mut Exec<'_, '_>, args: &[&[u8]], end: End) {
    if args.len() > 3 {
        arity_error(x.out, if end == End::Head { "lpop" } else { "rpop" });
        return;
    }
    let count = match args.get(2) {
        None => None,
        Some(arg) => match crate::num::parse_i64(arg) {
            Some(n) if n >= 0 => Some(n as usize),
            _ => {
                reply::error_str(x.out, reply::OUT_OF_RANGE_POSITIVE);
                return;
            }
        },
    };
    let len = match x.db.peek(args[1], x.now) {
        None => {
            if count.is_some() {
                reply::null_array(x.out);
            } else {
                reply::null(x.out);
            }
            return;
        }
        Some(Value::List(list)) => list.len(),
        Some(_) => {
            reply::error_str(x.out, reply::WRONGTYPE);
            return;
        }
    };
    if count == Some(0) {
        reply::array(x.out, 0);
        return;
    }
    let n = count.unwrap_or(1).min(len);
    let Exec { db, ctx, out, now, .. } = x;
    db.update(args[1], *now, |v| {
        let Value::List(list) = v else { return };
        let (first, last) = match end {
            End::Head => (0, n - 1),
            End::Tail => (len - n, len - 1),
        };
        ctx.observer.on_list_range(&mut list.node_spans(first, last));
        if count.is_some() {
            reply::array(out, n);
        }
        for _ in 0..n {
            list.pop(end, |elem| reply::bulk(out, elem));
        }
    });
}

pub(super) fn lpop(x: &mut Exec<'_, '_>, args: &[&[u8]]) {
    pop(x, args, End::Head);
}

pub(super) fn rpop(x: &mut Exec<'_, '_>, args: &[&[u8]]) {
    pop(x, args, End::Tail);
}

pub(super) fn llen(x: &mut Exec<'_, '_>, args: &[&[u8]]) {
    match x.db.get(args[1], x.now) {
        None => reply::integer(x.out, 0),
        Some(Value::List(list)) => reply::integer(x.out, list.len() as i64),
        Some(_) => reply::error_str(x.out, reply::WRONGTYPE),
    }
}

pub(super) fn lrange(x: &mut Exec<'_, '_>, args: &[&[u8]]) {
    let Some(start) = int_arg(x.out, args[2]) else { return };
    let Some(end) = int_arg(x.out, args[3]) else { return };
    let list = match x.db.get(args[1], x.now) {
        None => {
            reply::array(x.out, 0);
            return;
        }
        Some(Value::List(list)) => list,
        Some(_) => {
            reply::error_str(x.out, reply::WRONGTYPE);
            return;
        }
    };
    // Redis's addListRangeReply.
    let len = list.len() as i64;
    let mut start = if start < 0 { len + start } else { start };
    let mut end = if end < 0 { len + end } else { end };
    if start < 0 {
        start = 0;
    }
    if start > end || start >= len {
        reply::array(x.out, 0);
        return;
    }
    if end >= len {
        end = len - 1;
    }
    let (start, end) = (start as usize, end as usize);
    x.ctx.observer.on_list_range(&mut list.node_spans(start, end));
    reply::array(x.out, end - start + 1);
    let out = &mut *x.out;
    list.for_each_in(start, end, |elem| reply::bulk(out, elem));
}

pub(super) fn lindex(x: &mut Exec<'_, '_>, args: &[&[u8]]) {
    let list = match x.db.get(args[1], x.now) {
        None => {
            reply::null(x.out);
            return;
        }
        Some(Value::List(list)) => list,
        Some(_) => {
            reply::error_str(x.out, reply::WRONGTYPE);
            return;
        }
    };
    let Some(index) = int_arg(x.out, args[2]) else { return };
    let len = list.len() as i64;
    let index = if index < 0 { len + index } else { index };
    if index < 0 || index >= len {
        reply::null(x.out);
        return;
    }
    let index = index as usize;
    x.ctx.observer.on_list_range(&mut list.node_spans(index, index));
    match list.get(index) {
        Some(elem) => reply::bulk(x.out, elem),
        None => reply::null(x.out),
    }
}

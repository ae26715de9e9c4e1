//! String commands: GET, SET (EX PX EXAT PXAT NX XX KEEPTTL GET), SETNX, SETEX, PSETEX,
//! GETSET, MGET, MSET, INCR, DECR, INCRBY, DECRBY, APPEND, STRLEN.
//!
//! Each follows its Redis 7 implementation (`t_string.c`) in the order of its checks, so
//! that the same request gets the same reply. A value is looked up, the observer is told its
//! span, and only then are its bytes read.

use alloc::vec::Vec;

use super::{Exec, arity_error, int_arg, new_string, now_ms};
use crate::db::Value;
use crate::num::write_i64;
use crate::reply::{self, c_str};

/// Replies with the string at `key` (GET's reply); `false` if it holds another type (the
/// WRONGTYPE error is written).
fn reply_string(x: &mut Exec<'_, '_>, key: &[u8]) -> bool {
    match x.db.get(key, x.now) {
        None => reply::null(x.out),
        Some(Value::Str(s)) => {
            let (addr, len) = s.span();
            x.ctx.observer.on_string(addr, len);
            reply::bulk(x.out, s.bytes());
        }
        Some(_) => {
            reply::error_str(x.out, reply::WRONGTYPE);
            return false;
        }
    }
    true
}

pub(super) fn get(x: &mut Exec<'_, '_>, args: &[&[u8]]) {
    reply_string(x, args[1]);
}

const NX: u32 = 1;
const XX: u32 = 2;
const GET: u32 = 4;
const KEEPTTL: u32 = 8;
const EX: u32 = 16;
const PX: u32 = 32;
const EXAT: u32 = 64;
const PXAT: u32 = 128;
const ANY_EXPIRE: u32 = EX | PX | EXAT | PXAT;

/// What SET was asked to do besides storing the value.
struct SetOptions<'a> {
    flags: u32,
    expire: Option<&'a [u8]>,
}

/// Redis's `parseExtendedStringArgumentsOrReply` for SET: options are matched as C strings,
/// a repeated option is allowed, conflicting ones are a syntax error.
fn parse_set_options<'a>(args: &[&'a [u8]]) -> Option<SetOptions<'a>> {
    let mut flags = 0;
    let mut expire = None;
    let mut j = 3;
    while j < args.len() {
        let opt = c_str(args[j]);
        let next = args.get(j + 1).copied();
        let is = |k: &str| opt.eq_ignore_ascii_case(k.as_bytes());
        if is("nx") && flags & XX == 0 {
            flags |= NX;
        } else if is("xx") && flags & NX == 0 {
            flags |= XX;
        } else if is("get") {
            flags |= GET;
        } else if is("keepttl") && flags & ANY_EXPIRE == 0 {
            flags |= KEEPTTL;
        } else if let Some(next) = next.filter(|_| flags & KEEPTTL == 0) {
            let unit = if is("ex") {
                EX
            } else if is("px") {
                PX
            } else if is("exat") {
                EXAT
            } else if is("pxat") {
                PXAT
            } else {
                return None;
            };
            if flags & ANY_EXPIRE & !unit != 0 {
                return None;
            }
            flags |= unit;
            expire = Some(next);
            j += 1;
        } else {
            return None;
        }
        j += 1;
    }
    Some(SetOptions { flags, expire })
}

/// `-ERR invalid expire time in '<command>' command`.
fn invalid_expire(out: &mut Vec<u8>, command: &str) {
    let mut msg = Vec::from(&b"ERR invalid expire time in '"[..]);
    msg.extend_from_slice(command.as_bytes());
    msg.extend_from_slice(b"' command");
    reply::error(out, &msg);
}

/// Redis's `getExpireMillisecondsOrReply`: the absolute deadline in milliseconds.
fn deadline(x: &mut Exec<'_, '_>, arg: &[u8], flags: u32, command: &str) -> Option<u64> {
    let n = int_arg(x.out, arg)?;
    let seconds = flags & (EX | EXAT) != 0;
    if n <= 0 || (seconds && n > i64::MAX / 1000) {
        invalid_expire(x.out, command);
        return None;
    }
    let mut ms = if seconds { n * 1000 } else { n };
    if flags & (EX | PX) != 0 {
        ms = match ms.checked_add(now_ms(x)) {
            Some(ms) => ms,
            None => {
                invalid_expire(x.out, command);
                return None;
            }
        };
    }
    Some(ms as u64)
}

/// Redis's `setGenericCommand`.
fn set_generic(
    x: &mut Exec<'_, '_>,
    command: &str,
    key: &[u8],
    value: &[u8],
    options: SetOptions<'_>,
    replies: Option<(i64, i64)>,
) {
    let flags = options.flags;
    let deadline = match options.expire {
        Some(arg) => match deadline(x, arg, flags, command) {
            Some(at) => Some(at),
            None => return,
        },
        None => None,
    };
    if flags & GET != 0 && !reply_string(x, key) {
        return;
    }
    let found = x.db.contains(key, x.now);
    if (flags & NX != 0 && found) || (flags & XX != 0 && !found) {
        if flags & GET == 0 {
            match replies {
                Some((_, aborted)) => reply::integer(x.out, aborted),
                None => reply::null(x.out),
            }
        }
        return;
    }
    let Some(value) = new_string(x.out, value) else { return };
    x.db.set(key, value, flags & KEEPTTL != 0, x.now);
    if let Some(at) = deadline {
        x.db.set_deadline(key, at);
    }
    if flags & GET == 0 {
        match replies {
            Some((done, _)) => reply::integer(x.out, done),
            None => reply::ok(x.out),
        }
    }
}

pub(super) fn set(x: &mut Exec<'_, '_>, args: &[&[u8]]) {
    let Some(options) = parse_set_options(args) else {
        reply::error_str(x.out, reply::SYNTAX);
        return;
    };
    set_generic(x, "set", args[1], args[2], options, None);
}

pub(super) fn setnx(x: &mut Exec<'_, '_>, args: &[&[u8]]) {
    let options = SetOptions { flags: NX, expire: None };
    set_generic(x, "setnx", args[1], args[2], options, Some((1, 0)));
}

pub(super) fn setex(x: &mut Exec<'_, '_>, args: &[&[u8]]) {
    let options = SetOptions { flags: EX, expire: Some(args[2]) };
    set_generic(x, "setex", args[1], args[3], options, None);
}

pub(super) fn psetex(x: &mut Exec<'_, '_>, args: &[&[u8]]) {
    let options = SetOptions { flags: PX, expire: Some(args[2]) };
    set_generic(x, "psetex", args[1], args[3], options, None);
}

pub(super) fn getset(x: &mut Exec<'_, '_>, args: &[&[u8]]) {
    if !reply_string(x, args[1]) {
        return;
    }
    let Some(value) = new_string(x.out, args[2]) else { return };
    x.db.set(args[1], value, false, x.now);
}

pub(super) fn mget(x: &mut Exec<'_, '_>, args: &[&[u8]]) {
    reply::array(x.out, args.len() - 1);
    for key in &args[1..] {
        match x.db.get(key, x.now) {
            Some(Value::Str(s)) => {
                let (addr, len) = s.span();
                x.ctx.observer.on_string(addr, len);
                reply::bulk(x.out, s.bytes());
            }
            _ => reply::null(x.out),
        }
    }
}

pub(super) fn mset(x: &mut Exec<'_, '_>, args: &[&[u8]]) {
    if args.len().is_multiple_of(2) {
        arity_error(x.out, "mset");
        return;
    }
    for pair in args[1..].chunks_exact(2) {
        let Some(value) = new_string(x.out, pair[1]) else { return };
        x.db.set(pair[0], value, false, x.now);
    }
    reply::ok(x.out);
}

/// Redis's `incrDecrCommand`.
fn incr_by(x: &mut Exec<'_, '_>, key: &[u8], incr: i64) {
    let old = match x.db.peek(key, x.now) {
        None => None,
        Some(Value::Str(s)) => match crate::num::parse_i64(s.bytes()) {
            Some(n) => Some(n),
            None => {
                reply::error_str(x.out, reply::NOT_INTEGER);
                return;
            }
        },
        Some(_) => {
            reply::error_str(x.out, reply::WRONGTYPE);
            return;
        }
    };
    let Some(new) = old.unwrap_or(0).checked_add(incr) else {
        reply::error_str(x.out, reply::OVERFLOW);
        return;
    };
    let mut digits = Vec::with_capacity(20);
    write_i64(&mut digits, new);
    if old.is_some() {
        x.db.update(key, x.now, |v| {
            if let Value::Str(s) = v {
                s.set_bytes(&digits);
            }
        });
    } else {
        let Some(value) = new_string(x.out, &digits) else { return };
        x.db.set(key, value, false, x.now);
    }
    reply::integer(x.out, new);
}

pub(super) fn incr(x: &mut Exec<'_, '_>, args: &[&[u8]]) {
    incr_by(x, args[1], 1);
}

pub(super) fn decr(x: &mut Exec<'_, '_>, args: &[&[u8]]) {
    incr_by(x, args[1], -1);
}

pub(super) fn incrby(x: &mut Exec<'_, '_>, args: &[&[u8]]) {
    let Some(incr) = int_arg(x.out, args[2]) else { return };
    incr_by(x, args[1], incr);
}

pub(super) fn decrby(x: &mut Exec<'_, '_>, args: &[&[u8]]) {
    let Some(decr) = int_arg(x.out, args[2]) else { return };
    if decr == i64::MIN {
        reply::error_str(x.out, "ERR decrement would overflow");
        return;
    }
    incr_by(x, args[1], -decr);
}

pub(super) fn append(x: &mut Exec<'_, '_>, args: &[&[u8]]) {
    let (key, more) = (args[1], args[2]);
    let max = x.ctx.config.limits.max_bulk;
    let current = match x.db.peek(key, x.now) {
        None => None,
        Some(Value::Str(s)) => Some(s.len()),
        Some(_) => {
            reply::error_str(x.out, reply::WRONGTYPE);
            return;
        }
    };
    let total = match current {
        None => {
            let Some(value) = new_string(x.out, more) else { return };
            x.db.set(key, value, false, x.now);
            more.len()
        }
        Some(len) => {
            if len.checked_add(more.len()).is_none_or(|total| total > max) {
                reply::error_str(x.out, reply::STRING_TOO_LONG);
                return;
            }
            let grown = x.db.update(key, x.now, |v| match v {
                Value::Str(s) => s.try_append(more).map(|()| s.len()).ok(),
                Value::List(_) => None,
            });
            match grown.flatten() {
                Some(total) => total,
                None => {
                    reply::error_str(x.out, reply::OOM);
                    return;
                }
            }
        }
    };
    reply::integer(x.out, total as i64);
}

pub(super) fn strlen(x: &mut Exec<'_, '_>, args: &[&[u8]]) {
    match x.db.get(args[1], x.now) {
        None => reply::integer(x.out, 0),
        Some(Value::Str(s)) => reply::integer(x.out, s.len() as i64),
        Some(_) => reply::error_str(x.out, reply::WRONGTYPE),
    }
}

//! RESP2 replies: the encoder every command writes through.
//!
//! Owns the reply byte formats (`+`, `-`, `:`, `$`, `*`, and the RESP2 nulls) and the
//! error strings Redis shares between commands, so that a message is spelled once. It
//! writes into a caller's `Vec<u8>`; it never decides what to reply.

use alloc::vec::Vec;

use crate::num::{write_i64, write_u64};

pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
pub const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
pub const SYNTAX: &str = "ERR syntax error";
pub const OVERFLOW: &str = "ERR increment or decrement would overflow";
pub const OUT_OF_RANGE_POSITIVE: &str = "ERR value is out of range, must be positive";
pub const STRING_TOO_LONG: &str = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";
pub const DB_INDEX: &str = "ERR DB index is out of range";
pub const MAX_CLIENTS: &str = "ERR max number of clients reached";
pub const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";

pub fn ok(out: &mut Vec<u8>) {
    out.extend_from_slice(b"+OK\r\n");
}

/// `+<text>\r\n`; `text` must not hold CR or LF.
pub fn status(out: &mut Vec<u8>, text: &[u8]) {
    out.push(b'+');
    out.extend_from_slice(text);
    out.extend_from_slice(b"\r\n");
}

/// `-<message>\r\n`, with the message's CR and LF turned into spaces as Redis does for
/// errors that quote user input. `message` starts with its code (`ERR`, `WRONGTYPE`...).
pub fn error(out: &mut Vec<u8>, message: &[u8]) {
    out.push(b'-');
    out.extend(message.iter().map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }));
    out.extend_from_slice(b"\r\n");
}

pub fn error_str(out: &mut Vec<u8>, message: &str) {
    error(out, message.as_bytes());
}

pub fn integer(out: &mut Vec<u8>, n: i64) {
    out.push(b':');
    write_i64(out, n);
    out.extend_from_slice(b"\r\n");
}

pub fn bulk(out: &mut Vec<u8>, data: &[u8]) {
    out.push(b'$');
    write_u64(out, data.len() as u64);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The RESP2 null bulk string, `$-1`.
pub fn null(out: &mut Vec<u8>) {
    out.extend_from_slice(b"$-1\r\n");
}

/// The RESP2 null array, `*-1`.
pub fn null_array(out: &mut Vec<u8>) {
    out.extend_from_slice(b"*-1\r\n");
}

pub fn array(out: &mut Vec<u8>, len: usize) {
    out.push(b'*');
    write_u64(out, len as u64);
    out.extend_from_slice(b"\r\n");
}

/// The bytes of `arg` up to its first NUL: how Redis prints an argument with `%s`.
pub fn c_str(arg: &[u8]) -> &[u8] {
    match arg.iter().position(|&b| b == 0) {
        Some(end) => &arg[..end],
        None => arg,
    }
}

/// Case-insensitive comparison of an argument read as a C string (what `strcasecmp`
/// sees) with a keyword.
pub fn keyword_eq(arg: &[u8], keyword: &str) -> bool {
    c_str(arg).eq_ignore_ascii_case(keyword.as_bytes())
}

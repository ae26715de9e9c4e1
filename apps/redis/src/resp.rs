//! The RESP2 request parser: multibulk (`*<n>\r\n$<len>\r\n<bytes>\r\n...`) and inline
//! commands (a line of words, with Redis's quoting), incrementally.
//!
//! Owns the request grammar and its limits, and mirrors Redis 7's `processMultibulkBuffer`
//! and `processInlineBuffer` byte for byte: the same strict numbers, the same lenience (the
//! two bytes after a bulk are skipped unread, the byte after a count line's `\r` is not
//! checked), the same waits (a NUL before the line's end hides it, as `strchr` does) and the
//! same `Protocol error` messages. It never executes anything, never allocates by a length
//! it was told (a `$536870912` header reserves nothing), and never reads past the buffer.
//!
//! Contract: [`RequestParser::parse`] is given the unconsumed input starting at the request
//! it is working on. Between calls that return `Ok(None)` the caller may only append to that
//! input; after `Ok(Some(request))` it drops `request.consumed` bytes from the front.

use alloc::vec::Vec;
use core::ops::Range;

use crate::num::parse_i64;

/// Redis's `PROTO_INLINE_MAX_SIZE`.
pub const DEFAULT_MAX_INLINE: usize = 64 * 1024;
/// Redis's `proto-max-bulk-len` default.
pub const DEFAULT_MAX_BULK: usize = 512 * 1024 * 1024;
/// Redis accepts up to `INT_MAX` arguments in one request.
pub const DEFAULT_MAX_MULTIBULK: usize = i32::MAX as usize;
/// Redis's `client-query-buffer-limit` default.
pub const DEFAULT_MAX_QUERY_BUFFER: usize = 1024 * 1024 * 1024;

/// What one request may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest bulk argument (`proto-max-bulk-len`); longer is "invalid bulk length".
    pub max_bulk: usize,
    /// Most arguments in one multibulk request; more is "invalid multibulk length".
    pub max_multibulk: usize,
    /// Longest inline request or count line still without its end of line.
    pub max_inline: usize,
    /// Most bytes one unfinished request may hold; past it the connection is closed without
    /// a reply (`client-query-buffer-limit`).
    pub max_query_buffer: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk: DEFAULT_MAX_BULK,
            max_multibulk: DEFAULT_MAX_MULTIBULK,
            max_inline: DEFAULT_MAX_INLINE,
            max_query_buffer: DEFAULT_MAX_QUERY_BUFFER,
        }
    }
}

/// A request the parser refuses; the connection is closed after its reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    TooBigInline,
    UnbalancedQuotes,
    InvalidMultibulkLength,
    TooBigMultibulkCount,
    TooBigBulkCount,
    /// The byte found where a `$` was expected.
    ExpectedDollar(u8),
    InvalidBulkLength,
    /// The unfinished request outgrew [`Limits::max_query_buffer`]: closed with no reply.
    QueryBufferLimit,
}

impl ProtocolError {
    /// The error reply Redis sends before closing (`-ERR Protocol error: ...\r\n`), or
    /// `None` when it closes without one.
    pub fn reply(&self) -> Option<Vec<u8>> {
        let text: &[u8] = match self {
            ProtocolError::TooBigInline => b"too big inline request",
            ProtocolError::UnbalancedQuotes => b"unbalanced quotes in request",
            ProtocolError::InvalidMultibulkLength => b"invalid multibulk length",
            ProtocolError::TooBigMultibulkCount => b"too big mbulk count string",
            ProtocolError::TooBigBulkCount => b"too big bulk count string",
            ProtocolError::InvalidBulkLength => b"invalid bulk length",
            ProtocolError::ExpectedDollar(found) => {
                // addReplyErrorFormat maps CR and LF to spaces.
                let shown = if *found == b'\r' || *found == b'\n' { b' ' } else { *found };
                let mut out = Vec::from(&b"-ERR Protocol error: expected '$', got '"[..]);
                out.push(shown);
                out.extend_from_slice(b"'\r\n");
                return Some(out);
            }
            ProtocolError::QueryBufferLimit => return None,
        };
        let mut out = Vec::from(&b"-ERR Protocol error: "[..]);
        out.extend_from_slice(text);
        out.extend_from_slice(b"\r\n");
        Some(out)
    }
}

/// Where a parsed request's arguments are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Args {
    /// Ranges of the input given to [`RequestParser::parse`]: [`RequestParser::ranges`].
    Ranges,
    /// Unquoted words of an inline request: [`RequestParser::words`].
    Words,
}

/// One complete request: how many input bytes it took and where its arguments are. A
/// request with no arguments (an empty line, `*0`, `*-1`) runs nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    pub consumed: usize,
    pub args: Args,
    pub argc: usize,
}

/// The incremental parser of one connection.
#[derive(Debug)]
pub struct RequestParser {
    limits: Limits,
    /// Progress through the current multibulk request.
    multibulk: Option<Multibulk>,
    ranges: Vec<Range<usize>>,
    words: Vec<Vec<u8>>,
}

#[derive(Clone, Copy, Debug)]
struct Multibulk {
    /// Arguments still to read.
    remaining: usize,
    /// The length of the argument being read, once its `$` line is in.
    bulk_len: Option<usize>,
    /// Offset of the next unread byte of the request.
    pos: usize,
}

/// `strchr(s, c)`: the first `c`, unless a NUL comes before it.
fn c_find(s: &[u8], c: u8) -> Option<usize> {
    let at = s.iter().position(|&b| b == c || b == 0)?;
    (s[at] == c).then_some(at)
}

impl RequestParser {
    pub fn new(limits: Limits) -> Self {
        RequestParser { limits, multibulk: None, ranges: Vec::new(), words: Vec::new() }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The arguments of the last request with [`Args::Ranges`], as ranges of its input.
    pub fn ranges(&self) -> &[Range<usize>] {
        &self.ranges
    }

    /// The arguments of the last request with [`Args::Words`].
    pub fn words(&self) -> &[Vec<u8>] {
        &self.words
    }

    /// Parses the request at the start of `buf`: `Ok(None)` until it is complete.
    pub fn parse(&mut self, buf: &[u8]) -> Result<Option<Request>, ProtocolError> {
        let result = match (self.multibulk.is_some(), buf.first()) {
            (_, None) => Ok(None),
            (true, _) | (false, Some(b'*')) => self.parse_multibulk(buf),
            (false, Some(_)) => self.parse_inline(buf),
        };
        if result.is_err() {
            self.multibulk = None;
        }
        match result {
            Ok(None) if buf.len() > self.limits.max_query_buffer => {
                self.multibulk = None;
                Err(ProtocolError::QueryBufferLimit)
            }
            other => other,
        }
    }

    fn parse_inline(&mut self, buf: &[u8]) -> Result<Option<Request>, ProtocolError> {
        let Some(newline) = c_find(buf, b'\n') else {
            if buf.len() > self.limits.max_inline {
                return Err(ProtocolError::TooBigInline);
            }
            return Ok(None);
        };
        let mut line_end = newline;
        if line_end > 0 && buf[line_end - 1] == b'\r' {
            line_end -= 1;
        }
        self.words.clear();
        split_args(&buf[..line_end], &mut self.words)?;
        Ok(Some(Request { consumed: newline + 1, args: Args::Words, argc: self.words.len() }))
    }

    fn parse_multibulk(&mut self, buf: &[u8]) -> Result<Option<Request>, ProtocolError> {
        let mut state = match self.multibulk {
            Some(state) => state,
            None => {
                let Some(cr) = c_find(buf, b'\r') else {
                    if buf.len() > self.limits.max_inline {
                        return Err(ProtocolError::TooBigMultibulkCount);
                    }
                    return Ok(None);
                };
                if cr + 2 > buf.len() {
                    return Ok(None);
                }
                let count = match parse_i64(&buf[1..cr]) {
                    Some(n) if n <= i32::MAX as i64 && n <= self.limits.max_multibulk as i64 => n,
                    _ => return Err(ProtocolError::InvalidMultibulkLength),
                };
                if count <= 0 {
                    return Ok(Some(Request { consumed: cr + 2, args: Args::Ranges, argc: 0 }));
                }
                self.ranges.clear();
                self.ranges.reserve(count.min(1024) as usize);
                Multibulk { remaining: count as usize, bulk_len: None, pos: cr + 2 }
            }
        };
        let outcome = loop {
            if state.remaining == 0 {
                break Some(Request {
                    consumed: state.pos,
                    args: Args::Ranges,
                    argc: self.ranges.len(),
                });
            }
            let rest = &buf[state.pos..];
            let len = match state.bulk_len {
                Some(len) => len,
                None => {
                    let Some(cr) = c_find(rest, b'\r') else {
                        if rest.len() > self.limits.max_inline {
                            return Err(ProtocolError::TooBigBulkCount);
                        }
                        break None;
                    };
                    if cr + 2 > rest.len() {
                        break None;
                    }
                    if rest[0] != b'$' {
                        return Err(ProtocolError::ExpectedDollar(rest[0]));
                    }
                    let len = match parse_i64(&rest[1..cr]) {
                        Some(n) if n >= 0 && n as u64 <= self.limits.max_bulk as u64 => n as usize,
                        _ => return Err(ProtocolError::InvalidBulkLength),
                    };
                    state.pos += cr + 2;
                    state.bulk_len = Some(len);
                    len
                }
            };
            // The two bytes after the data are skipped without being looked at, as Redis does.
            if buf.len() - state.pos < len + 2 {
                break None;
            }
            self.ranges.push(state.pos..state.pos + len);
            state.pos += len + 2;
            state.bulk_len = None;
            state.remaining -= 1;
        };
        self.multibulk = if outcome.is_some() { None } else { Some(state) };
        Ok(outcome)
    }
}

/// Redis's `sdssplitargs`: words separated by blanks; `"..."` with `\n \r \t \b \a \xHH`
/// and `\<any>` escapes; `'...'` with `\'`; a closing quote must be followed by a blank
/// or the end. `line` holds no NUL (the caller stopped at one).
fn split_args(line: &[u8], words: &mut Vec<Vec<u8>>) -> Result<(), ProtocolError> {
    let at = |i: usize| line.get(i).copied().unwrap_or(0);
    let is_space = |c: u8| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
    let mut p = 0;
    loop {
        while p < line.len() && is_space(line[p]) {
            p += 1;
        }
        if p >= line.len() {
            return Ok(());
        }
        let mut current = Vec::new();
        let (mut in_double, mut in_single) = (false, false);
        loop {
            let c = at(p);
            if in_double {
                if c == b'\\'
                    && at(p + 1) == b'x'
                    && hex(at(p + 2)).is_some()
                    && hex(at(p + 3)).is_some()
                {
                    let byte = hex(at(p + 2)).unwrap_or(0) * 16 + hex(at(p + 3)).unwrap_or(0);
                    current.push(byte);
                    p += 3;
                } else if c == b'\\' && at(p + 1) != 0 {
                    p += 1;
                    current.push(match at(p) {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                } else if c == b'"' {
                    if at(p + 1) != 0 && !is_space(at(p + 1)) {
                        return Err(ProtocolError::UnbalancedQuotes);
                    }
                    p += 1;
                    break;
                } else if c == 0 {
                    return Err(ProtocolError::UnbalancedQuotes);
                } else {
                    current.push(c);
                }
            } else if in_single {
                if c == b'\\' && at(p + 1) == b'\'' {
                    p += 1;
                    current.push(b'\'');
                } else if c == b'\'' {
                    if at(p + 1) != 0 && !is_space(at(p + 1)) {
                        return Err(ProtocolError::UnbalancedQuotes);
                    }
                    p += 1;
                    break;
                } else if c == 0 {
                    return Err(ProtocolError::UnbalancedQuotes);
                } else {
                    current.push(c);
                }
            } else {
                match c {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => {
                        if c != 0 {
                            p += 1;
                        }
                        break;
                    }
                    b'"' => in_double = true,
                    b'\'' => in_single = true,
                    other => current.push(other),
                }
            }
            p += 1;
        }
        words.push(current);
    }
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    /// Every argument list parsed from `input`, fed in one piece; stops at an error.
    fn parse_all(input: &[u8]) -> (Vec<Vec<Vec<u8>>>, Option<ProtocolError>, usize) {
        let mut parser = RequestParser::new(Limits::default());
        let mut out = Vec::new();
        let mut pos = 0;
        loop {
            match parser.parse(&input[pos..]) {
                Ok(Some(req)) => {
                    let args: Vec<Vec<u8>> = match req.args {
                        Args::Ranges => parser
                            .ranges()
                            .iter()
                            .map(|r| input[pos..][r.clone()].to_vec())
                            .collect(),
                        Args::Words => parser.words().to_vec(),
                    };
                    if !args.is_empty() {
                        out.push(args);
                    }
                    pos += req.consumed;
                }
                Ok(None) => return (out, None, pos),
                Err(e) => return (out, Some(e), pos),
            }
        }
    }

    fn words(list: &[&str]) -> Vec<Vec<u8>> {
        list.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    #[test]
    fn multibulk_and_pipelining() {
        let (reqs, err, pos) = parse_all(
            b"*1\r\n$4\r\nPING\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n*2\r\n$3\r\nGET",
        );
        assert_eq!(reqs, vec![words(&["PING"]), words(&["SET", "k", ""])]);
        assert_eq!(err, None);
        assert_eq!(pos, 40);
    }

    #[test]
    fn bulk_trailer_is_not_checked() {
        let (reqs, err, _) = parse_all(b"*1\r\n$4\r\nPINGxx*1\r\n$4\r\nPING\r\n");
        assert_eq!(reqs, vec![words(&["PING"]), words(&["PING"])]);
        assert_eq!(err, None);
    }

    #[test]
    fn empty_multibulk_runs_nothing() {
        let (reqs, err, pos) = parse_all(b"*0\r\n*-1\r\n*1\r\n$1\r\nx\r\n");
        assert_eq!(reqs, vec![words(&["x"])]);
        assert_eq!((err, pos), (None, 20));
    }

    #[test]
    fn inline_commands() {
        let (reqs, err, _) = parse_all(
            b"set a b\r\n\r\n   \n  get   a \nset k \"a\\x41\\n\" 'it\\'s'\nECHO \"\"\r\n",
        );
        assert_eq!(
            reqs,
            vec![
                words(&["set", "a", "b"]),
                words(&["get", "a"]),
                words(&["set", "k", "aA\n", "it's"]),
                words(&["ECHO", ""]),
            ]
        );
        assert_eq!(err, None);
    }

    #[test]
    fn protocol_errors() {
        let cases: &[(&[u8], ProtocolError)] = &[
            (b"*abc\r\n", ProtocolError::InvalidMultibulkLength),
            (b"*01\r\n", ProtocolError::InvalidMultibulkLength),
            (b"*2147483648\r\n", ProtocolError::InvalidMultibulkLength),
            (b"*1\r\n:1\r\n", ProtocolError::ExpectedDollar(b':')),
            (b"*1\r\n$-1\r\n", ProtocolError::InvalidBulkLength),
            (b"*1\r\n$536870913\r\n", ProtocolError::InvalidBulkLength),
            (b"*1\r\n$x\r\n", ProtocolError::InvalidBulkLength),
            (b"get \"a\r\n", ProtocolError::UnbalancedQuotes),
            (b"get \"a\"b\r\n", ProtocolError::UnbalancedQuotes),
            (b"get 'a\r\n", ProtocolError::UnbalancedQuotes),
        ];
        for (input, want) in cases {
            let (_, err, _) = parse_all(input);
            assert_eq!(err, Some(*want), "{:?}", input);
        }
        let long = vec![b'a'; DEFAULT_MAX_INLINE + 1];
        assert_eq!(parse_all(&long).1, Some(ProtocolError::TooBigInline));
        let mut count = b"*".to_vec();
        count.extend(vec![b'1'; DEFAULT_MAX_INLINE + 1]);
        assert_eq!(parse_all(&count).1, Some(ProtocolError::TooBigMultibulkCount));
        let mut bulk = b"*1\r\n$".to_vec();
        bulk.extend(vec![b'1'; DEFAULT_MAX_INLINE + 1]);
        assert_eq!(parse_all(&bulk).1, Some(ProtocolError::TooBigBulkCount));
    }

    #[test]
    fn error_replies_are_redis_s() {
        assert_eq!(
            ProtocolError::ExpectedDollar(b':').reply().unwrap(),
            b"-ERR Protocol error: expected '$', got ':'\r\n"
        );
        assert_eq!(
            ProtocolError::InvalidBulkLength.reply().unwrap(),
            b"-ERR Protocol error: invalid bulk length\r\n"
        );
        assert_eq!(ProtocolError::QueryBufferLimit.reply(), None);
    }

    #[test]
    fn nul_hides_the_line_end_like_strchr() {
        // Redis waits forever (until the size limit) on these.
        assert_eq!(parse_all(b"get\0a b\r\n"), (vec![], None, 0));
        assert_eq!(parse_all(b"*2\r\n$3\r\nget\r\n\0\r\n"), (vec![], None, 0));
    }

    #[test]
    fn huge_bulk_header_allocates_nothing_and_waits() {
        let mut parser = RequestParser::new(Limits::default());
        assert_eq!(parser.parse(b"*2\r\n$3\r\nset\r\n$536870912\r\nabc"), Ok(None));
        assert!(parser.ranges.capacity() <= 4);
    }

    #[test]
    fn query_buffer_limit_closes_without_reply() {
        let limits = Limits { max_query_buffer: 16, ..Limits::default() };
        let mut parser = RequestParser::new(limits);
        assert_eq!(
            parser.parse(b"*1\r\n$100\r\n0123456789abcdef"),
            Err(ProtocolError::QueryBufferLimit)
        );
    }

    #[test]
    fn configured_limits_apply() {
        let limits = Limits { max_bulk: 3, max_multibulk: 2, max_inline: 8, ..Limits::default() };
        let mut parser = RequestParser::new(limits);
        assert_eq!(parser.parse(b"*3\r\n"), Err(ProtocolError::InvalidMultibulkLength));
        assert_eq!(parser.parse(b"*1\r\n$4\r\n"), Err(ProtocolError::InvalidBulkLength));
        assert_eq!(parser.parse(b"123456789"), Err(ProtocolError::TooBigInline));
    }
}

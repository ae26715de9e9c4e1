//! One client connection, sans I/O: bytes in, reply bytes out.
//!
//! Owns a connection's input buffer (the unfinished request), its parser state, its output
//! buffer (replies not yet written to the socket) and whether it is closing. [`Connection::feed`]
//! runs every complete request of the input in order (pipelining) and queues their replies.
//! A protocol error queues Redis's `-ERR Protocol error: ...` and closes the connection; so
//! does QUIT after its `+OK`. Nothing here touches a socket, a clock or a global: the caller
//! moves the bytes and passes the keyspace and the [`Ctx`] in.

use alloc::vec::Vec;
use core::ops::Range;

use crate::commands::{self, Action};
use crate::config::ServerConfig;
use crate::db::Db;
use crate::info::Stats;
use crate::observer::Observer;
use crate::resp::{Args, RequestParser};

/// What every command runs with besides the keyspace.
pub struct Ctx<'a> {
    pub config: &'a ServerConfig,
    pub stats: &'a mut Stats,
    /// Milliseconds; Unix time if EXAT and PXAT are to mean what they say.
    pub clock: fn() -> u64,
    pub observer: &'a mut dyn Observer,
}

/// Where a connection stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Open,
    /// Send what is queued, then close (QUIT, a protocol error, a limit).
    Closing,
    /// SHUTDOWN was asked for: the server stops.
    Shutdown,
}

/// Buffers above this size are given back once empty.
const KEEP_BUFFER: usize = 64 * 1024;

/// Unsent reply bytes past which a connection stops running its pipelined requests until
/// the caller has written some out (then `feed(&[])` resumes them): a client that sends
/// many big requests and reads nothing cannot make the server hold all their replies.
pub const OUTPUT_SOFT_LIMIT: usize = 1024 * 1024;

/// One client's protocol state.
#[derive(Debug)]
pub struct Connection {
    input: Vec<u8>,
    session: Session,
}

#[derive(Debug)]
struct Session {
    parser: RequestParser,
    output: Vec<u8>,
    /// Bytes of `output` already written to the socket.
    sent: usize,
    state: State,
    /// `run` stopped at the output limit with input left.
    paused: bool,
}

impl Connection {
    pub fn new(config: &ServerConfig) -> Connection {
        Connection {
            input: Vec::new(),
            session: Session {
                parser: RequestParser::new(config.limits),
                output: Vec::new(),
                sent: 0,
                state: State::Open,
                paused: false,
            },
        }
    }

    pub fn state(&self) -> State {
        self.session.state
    }

    /// Whether the connection only waits for its queued replies to go out.
    pub fn is_closing(&self) -> bool {
        self.session.state != State::Open
    }

    /// Runs the complete requests in what has arrived so far plus `input`, in order, and
    /// queues the replies; returns how many commands ran. It pauses while more than
    /// [`OUTPUT_SOFT_LIMIT`] reply bytes wait to be written: once some are,
    /// `feed(&[])` runs the rest. Input after QUIT or an error is ignored.
    pub fn feed(&mut self, input: &[u8], db: &mut Db, ctx: &mut Ctx<'_>) -> usize {
        if self.is_closing() {
            return 0;
        }
        ctx.stats.total_net_input_bytes += input.len() as u64;
        let before = self.session.output.len();
        let ran;
        if self.input.is_empty() {
            // The usual case: parse straight from the caller's bytes, keep only the tail.
            let (consumed, n) = self.session.run(input, db, ctx);
            ran = n;
            let rest = &input[consumed..];
            if !self.is_closing() && !rest.is_empty() {
                self.keep_input(rest);
            }
        } else {
            if self.input.try_reserve(input.len()).is_err() {
                self.session.state = State::Closing;
                return 0;
            }
            self.input.extend_from_slice(input);
            let (consumed, n) = self.session.run(&self.input, db, ctx);
            ran = n;
            self.input.drain(..consumed);
            if self.input.is_empty() && self.input.capacity() > KEEP_BUFFER {
                self.input = Vec::new();
            }
        }
        ctx.stats.total_net_output_bytes += (self.session.output.len() - before) as u64;
        ran
    }

    fn keep_input(&mut self, rest: &[u8]) {
        if self.input.try_reserve(rest.len()).is_err() {
            self.session.state = State::Closing;
            return;
        }
        self.input.extend_from_slice(rest);
    }

    /// Whether requests wait for their turn because too many replies are unsent: once
    /// [`Connection::pending_output`] is below [`OUTPUT_SOFT_LIMIT`], `feed(&[])` runs them.
    pub fn is_paused(&self) -> bool {
        self.session.paused
    }

    /// Reply bytes not yet written.
    pub fn pending_output(&self) -> &[u8] {
        &self.session.output[self.session.sent..]
    }

    /// Marks `n` bytes of [`Connection::pending_output`] as written.
    pub fn advance_output(&mut self, n: usize) {
        let s = &mut self.session;
        s.sent = (s.sent + n).min(s.output.len());
        if s.sent == s.output.len() {
            s.sent = 0;
            if s.output.capacity() > KEEP_BUFFER {
                s.output = Vec::new();
            } else {
                s.output.clear();
            }
        } else if s.sent > KEEP_BUFFER && s.sent > s.output.len() / 2 {
            s.output.drain(..s.sent);
            s.sent = 0;
        }
    }

    /// Takes every pending reply byte at once (tests, and callers that write everything).
    pub fn take_output(&mut self) -> Vec<u8> {
        let out = self.pending_output().to_vec();
        self.advance_output(out.len());
        out
    }

    /// Bytes held by this connection's buffers.
    pub fn buffer_bytes(&self) -> usize {
        self.input.capacity() + self.session.output.capacity()
    }
}

/// Up to this many arguments are handed to a command without allocating.
const INLINE_ARGS: usize = 8;

fn with_args<R>(ranges: &[Range<usize>], buf: &[u8], f: impl FnOnce(&[&[u8]]) -> R) -> R {
    if ranges.len() <= INLINE_ARGS {
        let mut args: [&[u8]; INLINE_ARGS] = [&[]; INLINE_ARGS];
        for (slot, r) in args.iter_mut().zip(ranges) {
            *slot = &buf[r.clone()];
        }
        f(&args[..ranges.len()])
    } else {
        let args: Vec<&[u8]> = ranges.iter().map(|r| &buf[r.clone()]).collect();
        f(&args)
    }
}

impl Session {
    /// Runs the requests at the start of `buf`: (bytes consumed, commands run).
    fn run(&mut self, buf: &[u8], db: &mut Db, ctx: &mut Ctx<'_>) -> (usize, usize) {
        let mut consumed = 0;
        let mut ran = 0;
        while self.state == State::Open && self.output.len() - self.sent < OUTPUT_SOFT_LIMIT {
            let request = match self.parser.parse(&buf[consumed..]) {
                Ok(Some(request)) => request,
                Ok(None) => break,
                Err(error) => {
                    if let Some(reply) = error.reply() {
                        self.output.extend_from_slice(&reply);
                    }
                    self.state = State::Closing;
                    break;
                }
            };
            let base = consumed;
            consumed += request.consumed;
            if request.argc == 0 {
                continue;
            }
            let output = &mut self.output;
            let action = match request.args {
                Args::Ranges => with_args(self.parser.ranges(), &buf[base..], |args| {
                    commands::execute(args, db, ctx, output)
                }),
                Args::Words => {
                    let words = self.parser.words();
                    let ranges: Vec<&[u8]> = words.iter().map(Vec::as_slice).collect();
                    commands::execute(&ranges, db, ctx, output)
                }
            };
            ran += 1;
            match action {
                Action::Continue => {}
                Action::Close => self.state = State::Closing,
                Action::Shutdown => self.state = State::Shutdown,
            }
        }
        self.paused = self.state == State::Open
            && self.output.len() - self.sent >= OUTPUT_SOFT_LIMIT
            && consumed < buf.len();
        (consumed, ran)
    }
}

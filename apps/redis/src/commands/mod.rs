//! Command dispatch: the table of supported commands, the checks Redis makes before running
//! one (unknown command, unknown subcommand, arity), and the per-command context.
//!
//! Owns the order of those checks and their exact error replies, and the table that COMMAND
//! reports. Each command family lives in its own file (`strings`, `lists`, `keys`,
//! `server`) and writes its replies through `reply`. Nothing here touches the network or
//! holds state between commands; a command's only effects are on the `Db`, the `Stats`, the
//! reply bytes and the [`Action`] it returns.

mod info_table;
mod keys;
mod lists;
mod server;
mod strings;

use alloc::vec::Vec;

use crate::connection::Ctx;
use crate::db::{Db, Value};
use crate::layout::StrValue;
use crate::num::parse_i64;
use crate::reply::{self, c_str};

/// What the connection does after a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Continue,
    /// QUIT: send what is queued, then close.
    Close,
    /// SHUTDOWN: close every connection and stop serving.
    Shutdown,
}

/// What a command runs with.
pub(crate) struct Exec<'a, 'c> {
    pub db: &'a mut Db,
    pub ctx: &'a mut Ctx<'c>,
    pub out: &'a mut Vec<u8>,
    /// The clock, read once per command (Redis's command time snapshot).
    pub now: u64,
    pub action: Action,
}

type Handler = fn(&mut Exec<'_, '_>, &[&[u8]]);

/// One entry of the command table.
pub(crate) struct Command {
    /// Lower case; `container|sub` for a subcommand.
    pub name: &'static str,
    /// Redis's arity: `n` exactly, `-n` at least.
    pub arity: i32,
    pub run: Handler,
    /// A container's subcommands (CONFIG, COMMAND).
    pub subcommands: &'static [Command],
}

const fn cmd(name: &'static str, arity: i32, run: Handler) -> Command {
    Command { name, arity, run, subcommands: &[] }
}

/// Every supported command.
pub(crate) static COMMANDS: &[Command] = &[
    cmd("get", 2, strings::get),
    cmd("set", -3, strings::set),
    cmd("setnx", 3, strings::setnx),
    cmd("setex", 4, strings::setex),
    cmd("psetex", 4, strings::psetex),
    cmd("getset", 3, strings::getset),
    cmd("mget", -2, strings::mget),
    cmd("mset", -3, strings::mset),
    cmd("incr", 2, strings::incr),
    cmd("decr", 2, strings::decr),
    cmd("incrby", 3, strings::incrby),
    cmd("decrby", 3, strings::decrby),
    cmd("append", 3, strings::append),
    cmd("strlen", 2, strings::strlen),
    cmd("lpush", -3, lists::lpush),
    cmd("rpush", -3, lists::rpush),
    cmd("lpushx", -3, lists::lpushx),
    cmd("rpushx", -3, lists::rpushx),
    cmd("lpop", -2, lists::lpop),
    cmd("rpop", -2, lists::rpop),
    cmd("llen", 2, lists::llen),
    cmd("lrange", 4, lists::lrange),
    cmd("lindex", 3, lists::lindex),
    cmd("del", -2, keys::del),
    cmd("exists", -2, keys::exists),
    cmd("type", 2, keys::type_),
    cmd("ttl", 2, keys::ttl),
    cmd("pttl", 2, keys::pttl),
    cmd("expire", -3, keys::expire),
    cmd("pexpire", -3, keys::pexpire),
    cmd("persist", 2, keys::persist),
    cmd("dbsize", 1, keys::dbsize),
    cmd("flushdb", -1, keys::flushdb),
    cmd("flushall", -1, keys::flushall),
    cmd("select", 2, keys::select),
    cmd("ping", -1, server::ping),
    cmd("echo", 2, server::echo),
    cmd("quit", -1, server::quit),
    cmd("shutdown", -1, server::shutdown),
    cmd("info", -1, server::info),
    Command { name: "config", arity: -2, run: server::container, subcommands: server::CONFIG },
    Command { name: "command", arity: -1, run: server::command, subcommands: server::COMMAND },
];

fn find<'t>(table: &'t [Command], name: &[u8], prefix: usize) -> Option<&'t Command> {
    table.iter().find(|c| c.name.as_bytes()[prefix..].eq_ignore_ascii_case(name))
}

/// The command `args` names: `Ok(command)`, or the rejection Redis replies with.
fn resolve(args: &[&[u8]]) -> Result<&'static Command, Vec<u8>> {
    let Some(base) = find(COMMANDS, args[0], 0) else {
        let mut msg = Vec::from(&b"ERR unknown command '"[..]);
        msg.extend(c_str(args[0]).iter().take(128));
        msg.extend_from_slice(b"', with args beginning with: ");
        let mut quoted = Vec::new();
        for arg in &args[1..] {
            if quoted.len() >= 128 {
                break;
            }
            let room = 128 - quoted.len();
            quoted.push(b'\'');
            quoted.extend(c_str(arg).iter().take(room));
            quoted.extend_from_slice(b"' ");
        }
        msg.extend_from_slice(&quoted);
        return Err(msg);
    };
    if base.subcommands.is_empty() || args.len() == 1 {
        return Ok(base);
    }
    let prefix = base.name.len() + 1;
    find(base.subcommands, args[1], prefix).ok_or_else(|| {
        let mut msg = Vec::from(&b"ERR unknown subcommand '"[..]);
        msg.extend(c_str(args[1]).iter().take(128));
        msg.extend_from_slice(b"'. Try ");
        msg.extend(c_str(args[0]).iter().map(u8::to_ascii_uppercase));
        msg.extend_from_slice(b" HELP.");
        msg
    })
}

/// Runs one request (`args` is never empty) and writes its reply to `out`.
pub(crate) fn execute(args: &[&[u8]], db: &mut Db, ctx: &mut Ctx<'_>, out: &mut Vec<u8>) -> Action {
    let command = match resolve(args) {
        Ok(command) => command,
        Err(msg) => {
            reply::error(out, &msg);
            return Action::Continue;
        }
    };
    let argc = args.len() as i64;
    let arity = i64::from(command.arity);
    if (arity > 0 && arity != argc) || argc < -arity {
        arity_error(out, command.name);
        return Action::Continue;
    }
    ctx.stats.total_commands_processed += 1;
    ctx.observer.on_command(args[0], &args[1..]);
    let now = (ctx.clock)();
    let mut exec = Exec { db, ctx, out, now, action: Action::Continue };
    (command.run)(&mut exec, args);
    exec.action
}

/// `-ERR wrong number of arguments for '<name>' command`.
pub(crate) fn arity_error(out: &mut Vec<u8>, name: &str) {
    let mut msg = Vec::from(&b"ERR wrong number of arguments for '"[..]);
    msg.extend_from_slice(name.as_bytes());
    msg.extend_from_slice(b"' command");
    reply::error(out, &msg);
}

/// An integer argument, or the "not an integer" reply and `None`.
pub(crate) fn int_arg(out: &mut Vec<u8>, arg: &[u8]) -> Option<i64> {
    let n = parse_i64(arg);
    if n.is_none() {
        reply::error_str(out, reply::NOT_INTEGER);
    }
    n
}

/// A new string value holding `bytes`, or the OOM reply and `None` when memory is short.
pub(crate) fn new_string(out: &mut Vec<u8>, bytes: &[u8]) -> Option<Value> {
    match StrValue::try_new(bytes) {
        Ok(v) => Some(Value::Str(v)),
        Err(_) => {
            reply::error_str(out, reply::OOM);
            None
        }
    }
}

/// The clock as Redis's signed milliseconds.
pub(crate) fn now_ms(x: &Exec<'_, '_>) -> i64 {
    i64::try_from(x.now).unwrap_or(i64::MAX)
}

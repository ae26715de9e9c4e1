//! Connection and server commands: PING, ECHO, QUIT, SHUTDOWN, INFO, CONFIG (GET, SET,
//! RESETSTAT, REWRITE, HELP) and COMMAND (COUNT, DOCS, INFO, LIST, HELP).
//!
//! CONFIG GET answers what redis-benchmark and redis-cli ask (`save`, `appendonly`, ...),
//! with Redis's glob patterns. COMMAND INFO gives Redis 7.0's own descriptions of the
//! commands we serve; COMMAND DOCS answers an empty array, which redis-cli accepts. Nothing
//! can be changed at run time: CONFIG SET refuses every parameter.

use alloc::string::String;
use alloc::vec::Vec;

use super::{Action, COMMANDS, Command, Exec, arity_error, cmd, info_table};
use crate::glob::string_match;
use crate::reply::{self, c_str, keyword_eq};

pub(super) fn ping(x: &mut Exec<'_, '_>, args: &[&[u8]]) {
    match args.len() {
        1 => reply::status(x.out, b"PONG"),
        2 => reply::bulk(x.out, args[1]),
        _ => arity_error(x.out, "ping"),
    }
}

pub(super) fn echo(x: &mut Exec<'_, '_>, args: &[&[u8]]) {
    reply::bulk(x.out, args[1]);
}

pub(super) fn quit(x: &mut Exec<'_, '_>, _args: &[&[u8]]) {
    reply::ok(x.out);
    x.action = Action::Close;
}

/// SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT]: there is nothing to save; the server
/// closes every connection without a reply and stops.
pub(super) fn shutdown(x: &mut Exec<'_, '_>, args: &[&[u8]]) {
    let (mut save, mut nosave, mut other, mut abort) = (false, false, false, false);
    for arg in &args[1..] {
        if keyword_eq(arg, "nosave") {
            nosave = true;
        } else if keyword_eq(arg, "save") {
            save = true;
        } else if keyword_eq(arg, "now") || keyword_eq(arg, "force") {
            other = true;
        } else if keyword_eq(arg, "abort") {
            abort = true;
        } else {
            reply::error_str(x.out, reply::SYNTAX);
            return;
        }
    }
    if (abort && (save || nosave || other)) || (save && nosave) {
        reply::error_str(x.out, reply::SYNTAX);
        return;
    }
    if abort {
        reply::error_str(x.out, "ERR No shutdown in progress.");
        return;
    }
    x.action = Action::Shutdown;
}

pub(super) fn info(x: &mut Exec<'_, '_>, args: &[&[u8]]) {
    let text = crate::info::render(&args[1..], x.db, x.ctx, x.now);
    reply::bulk(x.out, text.as_bytes());
}

/// A container's own entry: only reached with no subcommand, which the arity check
/// refuses first; kept for the table's sake.
pub(super) fn container(x: &mut Exec<'_, '_>, args: &[&[u8]]) {
    let mut msg = Vec::from(&b"ERR unknown subcommand '"[..]);
    msg.extend_from_slice(c_str(args.get(1).copied().unwrap_or(b"")));
    msg.extend_from_slice(b"'");
    reply::error(x.out, &msg);
}

pub(super) static CONFIG: &[Command] = &[
    cmd("config|get", -3, config_get),
    cmd("config|set", -4, config_set),
    cmd("config|resetstat", 2, config_resetstat),
    cmd("config|rewrite", 2, config_rewrite),
    cmd("config|help", 2, config_help),
];

pub(super) static COMMAND: &[Command] = &[
    cmd("command|count", 2, command_count),
    cmd("command|docs", -2, command_docs),
    cmd("command|info", -2, command_info),
    cmd("command|list", -2, command_list),
    cmd("command|help", 2, command_help),
];

/// A parameter CONFIG GET knows, with its value.
type Param = (&'static str, fn(&Exec<'_, '_>) -> String);

fn number(n: usize) -> String {
    alloc::format!("{n}")
}

const PARAMS: &[Param] = &[
    ("save", |_| String::new()),
    ("appendonly", |_| String::from("no")),
    ("databases", |_| String::from("1")),
    ("port", |x| number(usize::from(x.ctx.config.port))),
    ("bind", |_| String::from("*")),
    ("maxclients", |x| number(x.ctx.config.maxclients)),
    ("maxmemory", |_| String::from("0")),
    ("maxmemory-policy", |_| String::from("noeviction")),
    ("proto-max-bulk-len", |x| number(x.ctx.config.limits.max_bulk)),
    ("client-query-buffer-limit", |x| number(x.ctx.config.limits.max_query_buffer)),
    ("timeout", |_| String::from("0")),
    ("tcp-keepalive", |_| String::from("0")),
    ("hz", |x| number(x.ctx.config.hz as usize)),
    ("io-threads", |_| String::from("1")),
    ("cluster-enabled", |_| String::from("no")),
    ("list-node-bytes", |x| number(x.ctx.config.list_node_bytes)),
];

fn find_param(name: &[u8]) -> Option<usize> {
    PARAMS.iter().position(|(p, _)| p.as_bytes().eq_ignore_ascii_case(name))
}

/// CONFIG GET pattern [pattern ...]: an exact name is answered under the name as given,
/// a glob (`*`, `?`, `[...]`, case-insensitive) under the parameters' own names.
fn config_get(x: &mut Exec<'_, '_>, args: &[&[u8]]) {
    let mut found: Vec<(&[u8], usize)> = Vec::new();
    for pattern in &args[2..] {
        let c_pattern = c_str(pattern);
        if !c_pattern.iter().any(|b| matches!(b, b'[' | b'*' | b'?')) {
            if let Some(i) = find_param(pattern)
                && !found.iter().any(|&(_, j)| j == i)
            {
                found.push((pattern, i));
            }
            continue;
        }
        for (i, (name, _)) in PARAMS.iter().enumerate() {
            if !found.iter().any(|&(_, j)| j == i) && string_match(pattern, name.as_bytes(), true) {
                found.push((name.as_bytes(), i));
            }
        }
    }
    reply::array(x.out, found.len() * 2);
    for (name, i) in found {
        let value = (PARAMS[i].1)(x);
        reply::bulk(x.out, name);
        reply::bulk(x.out, value.as_bytes());
    }
}

fn config_set(x: &mut Exec<'_, '_>, args: &[&[u8]]) {
    if !args.len().is_multiple_of(2) {
        reply::error_str(x.out, reply::SYNTAX);
        return;
    }
    let name = args[2];
    let mut msg = Vec::new();
    if find_param(name).is_some() {
        msg.extend_from_slice(b"ERR CONFIG SET failed (possibly related to argument '");
        msg.extend_from_slice(c_str(name));
        msg.extend_from_slice(b"') - can't set immutable config");
    } else {
        msg.extend_from_slice(b"ERR Unknown option or number of arguments for CONFIG SET - '");
        msg.extend_from_slice(c_str(name));
        msg.extend_from_slice(b"'");
    }
    reply::error(x.out, &msg);
}

fn config_resetstat(x: &mut Exec<'_, '_>, _args: &[&[u8]]) {
    x.ctx.stats.reset();
    x.db.stats = Default::default();
    reply::ok(x.out);
}

fn config_rewrite(x: &mut Exec<'_, '_>, _args: &[&[u8]]) {
    reply::error_str(x.out, "ERR The server is running without a config file");
}

fn help(out: &mut Vec<u8>, lines: &[&str]) {
    reply::array(out, lines.len());
    for line in lines {
        reply::status(out, line.as_bytes());
    }
}

fn config_help(x: &mut Exec<'_, '_>, _args: &[&[u8]]) {
    help(
        x.out,
        &[
            "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "GET <pattern>",
            "    Return parameters matching the glob-like <pattern> and their values.",
            "SET <directive> <value>",
            "    Set the configuration <directive> to <value>.",
            "RESETSTAT",
            "    Reset statistics reported by the INFO command.",
            "REWRITE",
            "    Rewrite the configuration file.",
            "HELP",
            "    Prints this help.",
        ],
    );
}

/// COMMAND with no subcommand: every command's description.
pub(super) fn command(x: &mut Exec<'_, '_>, _args: &[&[u8]]) {
    reply::array(x.out, COMMANDS.len());
    for c in COMMANDS {
        x.out.extend_from_slice(info_table::describe(c.name));
    }
}

fn command_count(x: &mut Exec<'_, '_>, _args: &[&[u8]]) {
    reply::integer(x.out, COMMANDS.len() as i64);
}

fn command_docs(x: &mut Exec<'_, '_>, _args: &[&[u8]]) {
    reply::array(x.out, 0);
}

fn command_info(x: &mut Exec<'_, '_>, args: &[&[u8]]) {
    if args.len() == 2 {
        command(x, args);
        return;
    }
    reply::array(x.out, args.len() - 2);
    for name in &args[2..] {
        match COMMANDS.iter().find(|c| c.name.as_bytes().eq_ignore_ascii_case(name)) {
            Some(c) => x.out.extend_from_slice(info_table::describe(c.name)),
            None => reply::null(x.out),
        }
    }
}

fn command_list(x: &mut Exec<'_, '_>, args: &[&[u8]]) {
    if args.len() != 2 {
        reply::error_str(x.out, reply::SYNTAX);
        return;
    }
    reply::array(x.out, COMMANDS.len());
    for c in COMMANDS {
        reply::bulk(x.out, c.name.as_bytes());
    }
}

fn command_help(x: &mut Exec<'_, '_>, _args: &[&[u8]]) {
    help(
        x.out,
        &[
            "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "(no subcommand)",
            "    Return details about all Redis commands.",
            "COUNT",
            "    Return the total number of commands in this Redis server.",
            "LIST",
            "    Return a list of all commands in this Redis server.",
            "INFO [<command-name> ...]",
            "    Return details about multiple Redis commands.",
            "    If no command names are given, documentation details for all",
            "    commands are returned.",
            "DOCS [<command-name> ...]",
            "    Return documentation details about multiple Redis commands.",
            "    If no command names are given, documentation details for all",
            "    commands are returned.",
            "HELP",
            "    Prints this help.",
        ],
    );
}

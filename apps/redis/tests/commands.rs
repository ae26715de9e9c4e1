//! Every command on the sans-I/O core: requests fed to a `Connection`, replies checked
//! byte for byte, time moved by hand.

use std::cell::Cell;

use app_redis::{Connection, Ctx, Db, NoObserver, Observer, ServerConfig, State, Stats, Value};

thread_local! {
    static NOW: Cell<u64> = const { Cell::new(1_000_000) };
}

fn clock() -> u64 {
    NOW.with(Cell::get)
}

fn advance(ms: u64) {
    NOW.with(|now| now.set(now.get() + ms));
}

struct Server {
    config: ServerConfig,
    db: Db,
    stats: Stats,
    conn: Connection,
}

fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

impl Server {
    fn new() -> Server {
        Server::with(ServerConfig::default())
    }

    fn with(config: ServerConfig) -> Server {
        let conn = Connection::new(&config);
        Server { config, db: Db::new(), stats: Stats::new(clock(), "test", "none", 1), conn }
    }

    fn feed_with(&mut self, bytes: &[u8], observer: &mut dyn Observer) -> Vec<u8> {
        let mut ctx = Ctx { config: &self.config, stats: &mut self.stats, clock, observer };
        self.conn.feed(bytes, &mut self.db, &mut ctx);
        let mut out = self.conn.take_output();
        while self.conn.is_paused() {
            self.conn.feed(&[], &mut self.db, &mut ctx);
            out.extend(self.conn.take_output());
        }
        out
    }

    fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.feed_with(bytes, &mut NoObserver)
    }

    /// One command given as space-separated words; the reply as text.
    fn run(&mut self, line: &str) -> String {
        let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
        String::from_utf8(self.feed(&encode(&args))).unwrap()
    }

    fn args(&mut self, args: &[&[u8]]) -> Vec<u8> {
        self.feed(&encode(args))
    }
}

const WRONGTYPE: &str = "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";
const NOT_INT: &str = "-ERR value is not an integer or out of range\r\n";

fn arity(name: &str) -> String {
    format!("-ERR wrong number of arguments for '{name}' command\r\n")
}

#[test]
fn ping() {
    let mut s = Server::new();
    assert_eq!(s.run("PING"), "+PONG\r\n");
    assert_eq!(s.run("ping hi"), "$2\r\nhi\r\n");
    assert_eq!(s.run("PING a b"), arity("ping"));
}

#[test]
fn echo() {
    let mut s = Server::new();
    assert_eq!(s.run("ECHO hello"), "$5\r\nhello\r\n");
    assert_eq!(s.args(&[b"ECHO", b""]), b"$0\r\n\r\n");
    assert_eq!(s.run("ECHO"), arity("echo"));
}

#[test]
fn quit_closes_after_ok_and_ignores_the_rest() {
    let mut s = Server::new();
    assert_eq!(s.feed(b"PING\r\nQUIT\r\nPING\r\n"), b"+PONG\r\n+OK\r\n");
    assert_eq!(s.conn.state(), State::Closing);
    assert_eq!(s.feed(b"PING\r\n"), b"");
}

#[test]
fn select() {
    let mut s = Server::new();
    assert_eq!(s.run("SELECT 0"), "+OK\r\n");
    assert_eq!(s.run("SELECT 1"), "-ERR DB index is out of range\r\n");
    assert_eq!(s.run("SELECT x"), NOT_INT);
}

#[test]
fn get_and_set() {
    let mut s = Server::new();
    assert_eq!(s.run("GET k"), "$-1\r\n");
    assert_eq!(s.run("SET k v"), "+OK\r\n");
    assert_eq!(s.run("GET k"), "$1\r\nv\r\n");
    assert_eq!(s.run("SET k"), arity("set"));
    assert_eq!(s.run("SET k v bogus"), "-ERR syntax error\r\n");
    s.run("RPUSH l a");
    assert_eq!(s.run("GET l"), WRONGTYPE);
    // SET replaces a value of any type.
    assert_eq!(s.run("SET l v"), "+OK\r\n");
    assert_eq!(s.run("GET l"), "$1\r\nv\r\n");
}

#[test]
fn set_nx_xx_get_keepttl() {
    let mut s = Server::new();
    assert_eq!(s.run("SET k v XX"), "$-1\r\n");
    assert_eq!(s.run("SET k v NX"), "+OK\r\n");
    assert_eq!(s.run("SET k w NX"), "$-1\r\n");
    assert_eq!(s.run("SET k w XX GET"), "$1\r\nv\r\n");
    assert_eq!(s.run("SET k v NX XX"), "-ERR syntax error\r\n");
    assert_eq!(s.run("SET k v EX 100"), "+OK\r\n");
    assert_eq!(s.run("SET k v2 KEEPTTL"), "+OK\r\n");
    assert_eq!(s.run("TTL k"), ":100\r\n");
    assert_eq!(s.run("SET k v3"), "+OK\r\n");
    assert_eq!(s.run("TTL k"), ":-1\r\n");
    s.run("LPUSH l a");
    assert_eq!(s.run("SET l v GET"), WRONGTYPE);
    assert_eq!(s.run("TYPE l"), "+list\r\n");
}

#[test]
fn set_expiry_ex_px_exat_pxat() {
    let mut s = Server::new();
    assert_eq!(s.run("SET k v EX 10"), "+OK\r\n");
    advance(10_000);
    assert_eq!(s.run("GET k"), "$1\r\nv\r\n", "alive at its deadline");
    advance(1);
    assert_eq!(s.run("GET k"), "$-1\r\n");
    assert_eq!(s.run("SET k v PX 5"), "+OK\r\n");
    assert_eq!(s.run("PTTL k"), ":5\r\n");
    advance(6);
    assert_eq!(s.run("EXISTS k"), ":0\r\n");
    let at = clock() / 1000 + 20;
    assert_eq!(s.run(&format!("SET k v EXAT {at}")), "+OK\r\n");
    assert_eq!(s.run(&format!("SET k2 v PXAT {}", clock() + 50)), "+OK\r\n");
    assert_eq!(s.run("PTTL k2"), ":50\r\n");
    assert_eq!(s.run("SET k v EX 0"), "-ERR invalid expire time in 'set' command\r\n");
    assert_eq!(s.run("SET k v PX -1"), "-ERR invalid expire time in 'set' command\r\n");
    assert_eq!(s.run("SET k v EX x"), NOT_INT);
    assert_eq!(s.run("SET k v EX 1 PX 1"), "-ERR syntax error\r\n");
    assert_eq!(s.stats.total_commands_processed, 13);
}

#[test]
fn setnx_setex_psetex() {
    let mut s = Server::new();
    assert_eq!(s.run("SETNX k a"), ":1\r\n");
    assert_eq!(s.run("SETNX k b"), ":0\r\n");
    assert_eq!(s.run("SETEX k 100 c"), "+OK\r\n");
    assert_eq!(s.run("TTL k"), ":100\r\n");
    assert_eq!(s.run("SETEX k 0 c"), "-ERR invalid expire time in 'setex' command\r\n");
    assert_eq!(s.run("PSETEX k 1500 d"), "+OK\r\n");
    assert_eq!(s.run("TTL k"), ":2\r\n");
    assert_eq!(s.run("PSETEX k 0 d"), "-ERR invalid expire time in 'psetex' command\r\n");
}

#[test]
fn getset() {
    let mut s = Server::new();
    assert_eq!(s.run("GETSET k a"), "$-1\r\n");
    s.run("EXPIRE k 100");
    assert_eq!(s.run("GETSET k b"), "$1\r\na\r\n");
    assert_eq!(s.run("TTL k"), ":-1\r\n");
    s.run("LPUSH l x");
    assert_eq!(s.run("GETSET l b"), WRONGTYPE);
}

#[test]
fn del_and_exists() {
    let mut s = Server::new();
    s.run("MSET a 1 b 2");
    assert_eq!(s.run("EXISTS a a b c"), ":3\r\n");
    assert_eq!(s.run("DEL a a c"), ":1\r\n");
    assert_eq!(s.run("DEL"), arity("del"));
    assert_eq!(s.run("EXISTS a"), ":0\r\n");
}

#[test]
fn mget_and_mset() {
    let mut s = Server::new();
    assert_eq!(s.run("MSET a 1 b 2"), "+OK\r\n");
    assert_eq!(s.run("MSET a 1 b"), arity("mset"));
    s.run("RPUSH l x");
    assert_eq!(s.run("MGET a l b nokey"), "*4\r\n$1\r\n1\r\n$-1\r\n$1\r\n2\r\n$-1\r\n");
}

#[test]
fn incr_decr_incrby_decrby() {
    let mut s = Server::new();
    assert_eq!(s.run("INCR n"), ":1\r\n");
    assert_eq!(s.run("INCRBY n 41"), ":42\r\n");
    assert_eq!(s.run("DECR n"), ":41\r\n");
    assert_eq!(s.run("DECRBY n 50"), ":-9\r\n");
    assert_eq!(s.run("INCRBY n x"), NOT_INT);
    s.run("SET n 9223372036854775807");
    assert_eq!(s.run("INCR n"), "-ERR increment or decrement would overflow\r\n");
    assert_eq!(s.run("DECRBY n -9223372036854775808"), "-ERR decrement would overflow\r\n");
    s.run("SET t 1x");
    assert_eq!(s.run("INCR t"), NOT_INT);
    s.run("RPUSH l x");
    assert_eq!(s.run("DECR l"), WRONGTYPE);
    // INCR keeps the deadline.
    s.run("SET e 5 EX 100");
    s.run("INCR e");
    assert_eq!(s.run("TTL e"), ":100\r\n");
}

#[test]
fn append_and_strlen() {
    let mut config = ServerConfig::default();
    config.limits.max_bulk = 10;
    let mut s = Server::with(config);
    assert_eq!(s.run("APPEND k hello"), ":5\r\n");
    assert_eq!(s.run("APPEND k 12345"), ":10\r\n");
    assert_eq!(
        s.run("APPEND k x"),
        "-ERR string exceeds maximum allowed size (proto-max-bulk-len)\r\n"
    );
    assert_eq!(s.run("STRLEN k"), ":10\r\n");
    assert_eq!(s.run("STRLEN nokey"), ":0\r\n");
    s.run("RPUSH l x");
    assert_eq!(s.run("APPEND l x"), WRONGTYPE);
    assert_eq!(s.run("STRLEN l"), WRONGTYPE);
}

#[test]
fn lpush_rpush_and_their_x_forms() {
    let mut s = Server::new();
    assert_eq!(s.run("LPUSH l a b c"), ":3\r\n");
    assert_eq!(s.run("RPUSH l d"), ":4\r\n");
    assert_eq!(s.run("LRANGE l 0 -1"), "*4\r\n$1\r\nc\r\n$1\r\nb\r\n$1\r\na\r\n$1\r\nd\r\n");
    assert_eq!(s.run("LPUSHX nol a"), ":0\r\n");
    assert_eq!(s.run("RPUSHX l e"), ":5\r\n");
    assert_eq!(s.run("LPUSH l"), arity("lpush"));
    s.run("SET str v");
    assert_eq!(s.run("RPUSH str x"), WRONGTYPE);
}

#[test]
fn lpop_rpop_with_and_without_count() {
    let mut s = Server::new();
    s.run("RPUSH l a b c d e");
    assert_eq!(s.run("LPOP l"), "$1\r\na\r\n");
    assert_eq!(s.run("RPOP l"), "$1\r\ne\r\n");
    assert_eq!(s.run("RPOP l 2"), "*2\r\n$1\r\nd\r\n$1\r\nc\r\n");
    assert_eq!(s.run("LPOP l 0"), "*0\r\n");
    assert_eq!(s.run("LPOP l -1"), "-ERR value is out of range, must be positive\r\n");
    assert_eq!(s.run("LPOP l 9"), "*1\r\n$1\r\nb\r\n");
    assert_eq!(s.run("EXISTS l"), ":0\r\n", "an emptied list is removed");
    assert_eq!(s.run("LPOP l"), "$-1\r\n");
    assert_eq!(s.run("LPOP l 3"), "*-1\r\n");
    assert_eq!(s.run("LPOP l 1 2"), arity("lpop"));
}

#[test]
fn llen_lrange_lindex() {
    let mut s = Server::new();
    s.run("RPUSH l a b c");
    assert_eq!(s.run("LLEN l"), ":3\r\n");
    assert_eq!(s.run("LLEN nol"), ":0\r\n");
    assert_eq!(s.run("LRANGE l -2 100"), "*2\r\n$1\r\nb\r\n$1\r\nc\r\n");
    assert_eq!(s.run("LRANGE l 2 1"), "*0\r\n");
    assert_eq!(s.run("LRANGE nol 0 -1"), "*0\r\n");
    assert_eq!(s.run("LRANGE l x 1"), NOT_INT);
    assert_eq!(s.run("LINDEX l -1"), "$1\r\nc\r\n");
    assert_eq!(s.run("LINDEX l 3"), "$-1\r\n");
    assert_eq!(s.run("LINDEX l x"), NOT_INT);
    assert_eq!(s.run("LINDEX nol x"), "$-1\r\n");
    s.run("SET str v");
    assert_eq!(s.run("LLEN str"), WRONGTYPE);
    assert_eq!(s.run("LINDEX str 0"), WRONGTYPE);
}

#[test]
fn long_lists_span_many_nodes() {
    let config = ServerConfig { list_node_bytes: 256, ..Default::default() };
    let mut s = Server::with(config);
    let elems: Vec<String> =
        (0..1000).map(|i| format!("element-{i}-{}", "x".repeat(i % 50))).collect();
    for e in &elems {
        s.run(&format!("RPUSH l {e}"));
    }
    let Some(Value::List(list)) = s.db.get(b"l", clock()) else { panic!("no list") };
    assert!(list.node_count() > 100);
    list.check().unwrap();
    for (i, e) in elems.iter().enumerate().step_by(37) {
        assert_eq!(s.run(&format!("LINDEX l {i}")), format!("${}\r\n{e}\r\n", e.len()));
    }
    let reply = s.run("LRANGE l 100 199");
    let want: String = std::iter::once("*100\r\n".to_string())
        .chain(elems[100..200].iter().map(|e| format!("${}\r\n{e}\r\n", e.len())))
        .collect();
    assert_eq!(reply, want);
}

#[test]
fn type_ttl_pttl_expire_pexpire_persist() {
    let mut s = Server::new();
    s.run("SET k v");
    assert_eq!(s.run("TYPE k"), "+string\r\n");
    assert_eq!(s.run("TYPE nokey"), "+none\r\n");
    assert_eq!(s.run("TTL k"), ":-1\r\n");
    assert_eq!(s.run("TTL nokey"), ":-2\r\n");
    assert_eq!(s.run("EXPIRE k 10"), ":1\r\n");
    assert_eq!(s.run("EXPIRE k 20 NX"), ":0\r\n");
    assert_eq!(s.run("EXPIRE k 5 GT"), ":0\r\n");
    assert_eq!(s.run("EXPIRE k 5 LT"), ":1\r\n");
    assert_eq!(s.run("PEXPIRE k 2500"), ":1\r\n");
    assert_eq!(s.run("TTL k"), ":3\r\n", "rounded like Redis");
    assert_eq!(s.run("PERSIST k"), ":1\r\n");
    assert_eq!(s.run("PERSIST k"), ":0\r\n");
    assert_eq!(s.run("EXPIRE k 1 foo"), "-ERR Unsupported option foo\r\n");
    assert_eq!(s.run("EXPIRE k 0"), ":1\r\n");
    assert_eq!(s.run("EXISTS k"), ":0\r\n");
    assert_eq!(s.run("EXPIRE k 10"), ":0\r\n");
}

#[test]
fn dbsize_flushdb_flushall() {
    let mut s = Server::new();
    s.run("MSET a 1 b 2");
    s.run("RPUSH l x");
    assert_eq!(s.run("DBSIZE"), ":3\r\n");
    assert_eq!(s.run("FLUSHDB bogus"), "-ERR syntax error\r\n");
    assert_eq!(s.run("FLUSHDB"), "+OK\r\n");
    assert_eq!(s.run("DBSIZE"), ":0\r\n");
    s.run("SET a 1");
    assert_eq!(s.run("FLUSHALL ASYNC"), "+OK\r\n");
    assert_eq!(s.run("DBSIZE"), ":0\r\n");
    assert_eq!(s.db.used_bytes(), 0);
}

#[test]
fn active_expiry_sweeps_in_bounded_steps() {
    let mut s = Server::new();
    for i in 0..50 {
        s.run(&format!("SET k{i} v PX {}", 10 + i));
    }
    s.run("SET keep v");
    advance(30);
    assert_eq!(s.db.sweep(clock(), 5), 5);
    assert_eq!(s.db.sweep(clock(), 100), 15);
    assert_eq!(s.run("DBSIZE"), ":31\r\n");
    advance(100);
    assert_eq!(s.db.sweep(clock(), 100), 30);
    assert_eq!(s.run("DBSIZE"), ":1\r\n");
    assert_eq!(s.db.stats.expired_keys, 50);
    s.db.check_accounting().unwrap();
}

fn remora_section(out: &mut String) {
    out.push_str("pager_faults:7\r\nprefetch_issued:3\n");
}

#[test]
fn info_has_redis_sections_and_the_remora_callback() {
    let config = ServerConfig { remora_info: Some(remora_section), ..Default::default() };
    let mut s = Server::with(config);
    s.run("SET k v EX 100");
    let reply = s.run("INFO");
    let body = reply.split_once("\r\n").unwrap().1;
    for section in [
        "# Server",
        "# Clients",
        "# Memory",
        "# Persistence",
        "# Stats",
        "# Replication",
        "# Keyspace",
    ] {
        assert!(body.contains(&format!("{section}\r\n")), "{section} missing");
    }
    assert!(body.contains("redis_version:7.0.15\r\n"));
    assert!(body.contains("db0:keys=1,expires=1,avg_ttl=0\r\n"));
    assert!(body.contains("\r\n\r\n# Remora\r\npager_faults:7\r\nprefetch_issued:3\r\n"));
    assert_eq!(reply.len(), reply.find("\r\n").unwrap() + 2 + body.len());
    let only = s.run("INFO remora");
    let text = "# Remora\r\npager_faults:7\r\nprefetch_issued:3\r\n";
    assert_eq!(only, format!("${}\r\n{text}\r\n", text.len()));
    assert_eq!(s.run("INFO nosuch"), "$0\r\n\r\n");
    let two = s.run("INFO keyspace CLIENTS");
    assert!(
        two.contains("# Clients\r\n")
            && two.contains("\r\n\r\n# Keyspace\r\n")
            && !two.contains("# Server")
    );
}

#[test]
fn config_get_and_friends() {
    let mut s = Server::new();
    assert_eq!(s.run("CONFIG GET save"), "*2\r\n$4\r\nsave\r\n$0\r\n\r\n");
    assert_eq!(s.run("CONFIG GET appendonly"), "*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n");
    assert_eq!(s.run("CONFIG GET PORT"), "*2\r\n$4\r\nPORT\r\n$4\r\n6379\r\n");
    assert_eq!(s.run("CONFIG GET list-node*"), "*2\r\n$15\r\nlist-node-bytes\r\n$4\r\n8192\r\n");
    assert_eq!(s.run("CONFIG GET nosuch"), "*0\r\n");
    assert!(s.run("CONFIG GET *").starts_with("*32\r\n"));
    assert_eq!(s.run("CONFIG GET"), arity("config|get"));
    assert_eq!(s.run("CONFIG BOGUS"), "-ERR unknown subcommand 'BOGUS'. Try CONFIG HELP.\r\n");
    assert_eq!(s.run("CONFIG RESETSTAT"), "+OK\r\n");
    assert_eq!(s.stats.total_commands_processed, 0);
}

#[test]
fn command_count_info_docs_list() {
    let mut s = Server::new();
    let count: usize = s.run("COMMAND COUNT").trim_start_matches(':').trim().parse().unwrap();
    assert!(count >= 40);
    assert!(s.run("COMMAND").starts_with(&format!("*{count}\r\n*10\r\n$3\r\nget\r\n")));
    assert_eq!(s.run("COMMAND DOCS"), "*0\r\n");
    assert!(s.run("COMMAND INFO get nosuch").ends_with("$-1\r\n"));
    assert!(s.run("COMMAND LIST").starts_with(&format!("*{count}\r\n")));
    assert_eq!(s.run("COMMAND BOGUS"), "-ERR unknown subcommand 'BOGUS'. Try COMMAND HELP.\r\n");
}

#[test]
fn shutdown_stops_the_server() {
    let mut s = Server::new();
    assert_eq!(s.run("SHUTDOWN bogus"), "-ERR syntax error\r\n");
    assert_eq!(s.feed(b"SHUTDOWN NOSAVE\r\nPING\r\n"), b"");
    assert_eq!(s.conn.state(), State::Shutdown);
}

#[test]
fn unknown_commands_and_arity() {
    let mut s = Server::new();
    assert_eq!(
        s.run("NOSUCH a b"),
        "-ERR unknown command 'NOSUCH', with args beginning with: 'a' 'b' \r\n"
    );
    assert_eq!(
        s.args(&[b"x", b"a\r\nb"]),
        b"-ERR unknown command 'x', with args beginning with: 'a  b' \r\n"
    );
    assert_eq!(s.run("GET"), arity("get"));
    assert_eq!(s.stats.total_commands_processed, 0);
}

#[test]
fn pipelined_commands_run_in_order() {
    let mut s = Server::new();
    let mut input = Vec::new();
    for i in 0..100 {
        input.extend(encode(&[b"RPUSH", b"l", format!("{i}").as_bytes()]));
    }
    input.extend_from_slice(b"LLEN l\r\nLINDEX l 42\r\n");
    let out = String::from_utf8(s.feed(&input)).unwrap();
    let want: String =
        (1..=100).map(|i| format!(":{i}\r\n")).collect::<String>() + ":100\r\n$2\r\n42\r\n";
    assert_eq!(out, want);
}

#[test]
fn a_pipeline_pauses_while_its_replies_are_unsent() {
    let mut s = Server::new();
    let elem = vec![b'e'; 1000];
    for _ in 0..100 {
        s.args(&[b"RPUSH", b"l", &elem]);
    }
    // 50 replies of about 100 KB each, sent in one go and not read.
    let mut input = Vec::new();
    for _ in 0..50 {
        input.extend(encode(&[b"LRANGE", b"l", b"0", b"-1"]));
    }
    let mut ctx = Ctx { config: &s.config, stats: &mut s.stats, clock, observer: &mut NoObserver };
    let ran = s.conn.feed(&input, &mut s.db, &mut ctx);
    assert!(ran < 50 && s.conn.is_paused(), "{ran} ran");
    let held = s.conn.pending_output().len();
    assert!((1 << 20..(1 << 20) + 110_000).contains(&held), "{held} bytes held");
    assert_eq!(s.conn.feed(&[], &mut s.db, &mut ctx), 0, "nothing runs until replies go out");
    let mut total = s.conn.take_output().len();
    let mut runs = ran;
    while s.conn.is_paused() {
        runs += s.conn.feed(&[], &mut s.db, &mut ctx);
        total += s.conn.take_output().len();
    }
    assert_eq!(runs, 50);
    assert_eq!(total, 50 * (6 + 100 * (7 + 1000 + 2)));
}

#[test]
fn requests_split_anywhere_give_the_same_replies() {
    let mut input = Vec::new();
    input.extend(encode(&[b"SET", b"k", &[7u8; 3000]]));
    input.extend_from_slice(b"get k\r\n");
    input.extend(encode(&[b"RPUSH", b"l", b"a", b"bb", b"ccc"]));
    input.extend(encode(&[b"LRANGE", b"l", b"0", b"-1"]));
    input.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
    let whole = Server::new().feed(&input);
    for chunk in [1, 2, 3, 7, 100, 1000] {
        let mut s = Server::new();
        let mut out = Vec::new();
        for piece in input.chunks(chunk) {
            out.extend(s.feed(piece));
        }
        assert_eq!(out, whole, "chunks of {chunk}");
    }
}

#[test]
fn protocol_error_replies_then_closes() {
    let mut s = Server::new();
    assert_eq!(
        s.feed(b"PING\r\n*1\r\n$x\r\nPING\r\n"),
        b"+PONG\r\n-ERR Protocol error: invalid bulk length\r\n"
    );
    assert_eq!(s.conn.state(), State::Closing);
}

#[test]
fn query_buffer_limit_closes_silently() {
    let mut config = ServerConfig::default();
    config.limits.max_query_buffer = 1000;
    let mut s = Server::with(config);
    assert_eq!(s.feed(b"*2\r\n$3\r\nGET\r\n$5000\r\n"), b"");
    assert_eq!(s.feed(&[b'x'; 999]), b"");
    assert_eq!(s.conn.state(), State::Closing);
}

#[derive(Default)]
struct Recorder {
    commands: Vec<String>,
    strings: Vec<(usize, usize)>,
    ranges: Vec<Vec<(usize, usize)>>,
}

impl Observer for Recorder {
    fn on_command(&mut self, name: &[u8], args: &[&[u8]]) {
        self.commands.push(format!("{} {}", String::from_utf8_lossy(name), args.len()));
    }
    fn on_string(&mut self, addr: usize, len: usize) {
        self.strings.push((addr, len));
    }
    fn on_list_range(&mut self, nodes: &mut dyn Iterator<Item = (usize, usize)>) {
        self.ranges.push(nodes.collect());
    }
}

#[test]
fn observer_sees_the_value_spans_before_the_reply() {
    let config = ServerConfig { list_node_bytes: 8 + 10 * 102, ..Default::default() };
    let mut s = Server::with(config);
    let mut rec = Recorder::default();
    let value = vec![b'v'; 100_000];
    s.feed_with(&encode(&[b"SET", b"big", &value]), &mut rec);
    s.feed_with(b"GET big\r\nMGET big nokey\r\n", &mut rec);
    let Some(Value::Str(stored)) = s.db.get(b"big", clock()) else { panic!() };
    let span = stored.span();
    assert_eq!(span.1, 4 + 100_000);
    assert_eq!(rec.strings, vec![span, span]);
    assert_eq!(rec.commands, vec!["SET 2", "GET 1", "MGET 2"]);

    let elem = vec![b'e'; 100];
    for _ in 0..100 {
        s.feed_with(&encode(&[b"RPUSH", b"l", &elem]), &mut rec);
    }
    s.feed_with(b"LRANGE l 0 19\r\nLINDEX l 50\r\nLPOP l\r\nRPOP l 3\r\n", &mut rec);
    let Some(Value::List(list)) = s.db.get(b"l", clock()) else { panic!() };
    // 102-byte entries, 10 per node.
    assert_eq!(rec.ranges[0].len(), 2);
    assert!(rec.ranges[0].iter().all(|&(addr, len)| addr != 0 && len == 8 + 10 * 102));
    assert_eq!(rec.ranges[1].len(), 1);
    assert_eq!(rec.ranges[2].len(), 1);
    assert_eq!(rec.ranges[3].len(), 1);
    // The spans are the list's own nodes.
    let nodes: Vec<_> = list.all_node_spans().collect();
    assert_eq!(rec.ranges[1][0], nodes[5]);
}

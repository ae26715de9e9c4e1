//! Our server and a real redis-server, side by side: the same script of commands (every
//! supported command, its options and its errors), the same bytes back.
//!
//! Needs `redis-server` on the PATH (Debian: `apt-get install redis-server`); without it the
//! tests say so and pass.

mod common;

use std::time::Duration;

use common::{Client, Server, encode, exchange_raw, show, start_ours, start_redis};

fn servers() -> Option<(Server, Server)> {
    match start_redis() {
        Some(redis) => Some((redis, start_ours(&[]))),
        None => {
            eprintln!("SKIPPED: redis-server is not installed (apt-get install redis-server)");
            None
        }
    }
}

/// One step of the script.
enum Step {
    /// A command, sent as a multibulk request; one reply.
    Cmd(Vec<Vec<u8>>),
    /// Raw bytes, then `n` replies.
    Raw(Vec<u8>, usize),
}

fn words(line: &str) -> Step {
    Step::Cmd(line.split(' ').map(|w| w.as_bytes().to_vec()).collect())
}

fn args(list: &[&[u8]]) -> Step {
    Step::Cmd(list.iter().map(|a| a.to_vec()).collect())
}

/// Elements of varied sizes, some larger than a list node.
fn element(i: usize) -> Vec<u8> {
    let len = match i % 7 {
        0 => 0,
        1 => 1,
        2 => 100,
        3 => 1000,
        4 => 127,
        5 => 128,
        _ => 20_000,
    };
    (0..len).map(|j| b'a' + ((i + j) % 26) as u8).collect()
}

fn script() -> Vec<Step> {
    let mut s: Vec<Step> = Vec::new();
    let mut w = |line: &str| s.push(words(line));
    // Connection and server.
    for line in [
        "FLUSHALL",
        "PING",
        "PING hello",
        "PING a b",
        "ping",
        "ECHO hi",
        "ECHO",
        "ECHO a b",
        "SELECT 0",
        "SELECT 1",
        "SELECT -1",
        "SELECT abc",
        "SELECT 99999999999",
        "SELECT",
        "select 0 1",
        "DBSIZE",
        "DBSIZE x",
    ] {
        w(line);
    }
    // Strings: SET and its options.
    for line in [
        "GET nokey",
        "GET",
        "GET a b",
        "SET k v",
        "GET k",
        "SET k v2 XX",
        "SET k2 v NX",
        "SET k2 v3 NX",
        "SET k3 v XX",
        "SET k v NX XX",
        "SET k v XX NX",
        "SET k v EX",
        "SET k v EX 0",
        "SET k v EX -5",
        "SET k v EX abc",
        "SET k v EX 1.5",
        "SET k v PX 0",
        "SET k v EX 9223372036854775807",
        "SET k v PX 9223372036854775807",
        "SET k v EXAT 0",
        "SET k v EX 100 PX 100",
        "SET k v KEEPTTL EX 10",
        "SET k v EX 10 KEEPTTL",
        "SET k v EX 10 EX 100",
        "TTL k",
        "SET k v EX 100",
        "TTL k",
        "PTTL nokey",
        "SET k v3 KEEPTTL",
        "TTL k",
        "SET k v4",
        "TTL k",
        "SET k v5 GET",
        "SET newk v GET",
        "SET k v6 NX GET",
        "SET nok v6 XX GET",
        "GET k",
        "SET k v EXAT 99999999999",
        "EXISTS k",
        "SET k v PXAT 1",
        "GET k",
        "EXISTS k",
        "SET k v foo",
        "SET k",
        "set k v ex 100 nx",
        "set k v px 100000 xx get",
        "SET k v KEEPTTL KEEPTTL",
        "SET k v GET GET",
        "SET k v NX NX",
        "SETNX k x",
        "SETNX sn x",
        "SETNX sn",
        "SETEX se 100 v",
        "TTL se",
        "SETEX se 0 v",
        "SETEX se abc v",
        "SETEX se 100",
        "PSETEX pe 100000 v",
        "PSETEX pe -1 v",
        "GETSET k new",
        "GET k",
        "GETSET nokey2 x",
        "GETSET k",
        "DEL k k2 nokey k",
        "DEL",
        "EXISTS k k k2 nokey sn sn",
        "EXISTS",
        "MSET a 1 b 2 c 3",
        "MSET a 1 b",
        "MSET a",
        "MGET a b nokey c",
        "MGET",
        "INCR a",
        "INCR nokey3",
        "DECR nokey4",
        "INCRBY a 10",
        "INCRBY a abc",
        "INCRBY a 9223372036854775807",
        "INCRBY a -9223372036854775808",
        "DECRBY a 5",
        "DECRBY a -9223372036854775808",
        "DECRBY a abc",
        "INCR",
        "SET s hello",
        "INCR s",
        "SET big 9223372036854775807",
        "INCR big",
        "INCRBY big 0",
        "SET neg -9223372036854775808",
        "DECR neg",
        "SET lead 007",
        "INCR lead",
        "SET maxdigits 99999999999999999999",
        "INCR maxdigits",
        "APPEND s -world",
        "GET s",
        "APPEND newapp abc",
        "APPEND s",
        "STRLEN s",
        "STRLEN nokey",
        "STRLEN",
        "SET e \"\"",
        "STRLEN e",
        "TYPE s",
        "TYPE nokey",
    ] {
        w(line);
    }
    s.push(args(&[b"SET", b"sp", b" 1"]));
    s.push(args(&[b"INCR", b"sp"]));
    s.push(args(&[b"SET", b"empty", b""]));
    s.push(args(&[b"GET", b"empty"]));
    s.push(args(&[b"APPEND", b"empty", b""]));
    // Binary-safe keys and values.
    s.push(args(&[b"SET", b"bin\0key\r\n", b"val\0ue\r\n\xff"]));
    s.push(args(&[b"GET", b"bin\0key\r\n"]));
    s.push(args(&[b"STRLEN", b"bin\0key\r\n"]));
    // Keys and expiry.
    let mut w = |line: &str| s.push(words(line));
    for line in [
        "EXPIRE s 100",
        "TTL s",
        "EXPIRE s 100 NX",
        "EXPIRE s 200 XX",
        "EXPIRE s 50 GT",
        "EXPIRE s 300 GT",
        "EXPIRE s 50 LT",
        "EXPIRE s 60 LT",
        "TTL s",
        "EXPIRE s 10 FOO",
        "EXPIRE s 10 NX XX",
        "EXPIRE s 10 GT LT",
        "EXPIRE s 10 nx gt",
        "EXPIRE nokey 10",
        "EXPIRE s abc",
        "EXPIRE s",
        "EXPIRE s 9223372036854775807",
        "EXPIRE s -9223372036854775808",
        "PEXPIRE s 100000",
        "PTTL nokey",
        "PERSIST s",
        "PERSIST s",
        "PERSIST nokey",
        "TTL s",
        "EXPIRE sn 100 XX",
        "EXPIRE sn 100 GT",
        "EXPIRE sn 100 LT",
        "TTL sn",
        "EXPIRE s -1",
        "EXISTS s",
        "PEXPIRE sn 0",
        "GET sn",
    ] {
        w(line);
    }
    // Lists.
    for line in [
        "LPUSH l a b c",
        "RPUSH l d e",
        "LPUSH a x",
        "RPUSH a x",
        "LPUSH l",
        "LPUSHX nolist a",
        "RPUSHX l f",
        "LPUSHX l z y",
        "LPUSHX a z",
        "LLEN l",
        "LLEN nokey",
        "LLEN a",
        "TYPE l",
        "GET l",
        "APPEND l x",
        "STRLEN l",
        "INCR l",
        "GETSET l x",
        "MGET a l",
        "SET l x GET",
        "LRANGE l 0 -1",
        "LRANGE l 1 2",
        "LRANGE l -3 -1",
        "LRANGE l 5 1",
        "LRANGE l 100 200",
        "LRANGE l -100 100",
        "LRANGE l 0 0",
        "LRANGE l -1 -1",
        "LRANGE l a b",
        "LRANGE l 0 b",
        "LRANGE nokey 0 -1",
        "LRANGE a 0 -1",
        "LRANGE a x 1",
        "LRANGE l 0",
        "LINDEX l 0",
        "LINDEX l -1",
        "LINDEX l 3",
        "LINDEX l 100",
        "LINDEX l -100",
        "LINDEX l abc",
        "LINDEX nokey abc",
        "LINDEX a 0",
        "LINDEX a abc",
        "LINDEX l",
        "LPOP l",
        "RPOP l",
        "LPOP l 2",
        "RPOP l 2",
        "LPOP l 0",
        "LPOP l -1",
        "LPOP l abc",
        "RPOP l -1",
        "LPOP nolist",
        "LPOP nolist 2",
        "LPOP nolist -2",
        "LPOP nolist 0",
        "RPOP nolist",
        "LPOP a",
        "LPOP a 2",
        "LPOP l 1 2",
        "LPOP",
        "LLEN l",
        "RPOP l 100",
        "EXISTS l",
        "LPOP l",
        "RPUSH l x",
        "RPOP l 0",
        "LPOP l 1",
        "EXISTS l",
        "RPUSH l \"\"",
        "LINDEX l 0",
        "DEL l",
    ] {
        w(line);
    }
    // A long list over many nodes, with elements larger than a node.
    for chunk in (0..300).collect::<Vec<usize>>().chunks(30) {
        let mut cmd = vec![b"RPUSH".to_vec(), b"biglist".to_vec()];
        cmd.extend(chunk.iter().map(|&i| element(i)));
        s.push(Step::Cmd(cmd));
    }
    for i in 300..330 {
        s.push(Step::Cmd(vec![b"LPUSH".to_vec(), b"biglist".to_vec(), element(i)]));
    }
    let mut w = |line: &str| s.push(words(line));
    for line in [
        "LLEN biglist",
        "LRANGE biglist 0 -1",
        "LRANGE biglist 100 200",
        "LRANGE biglist -50 -40",
        "LINDEX biglist 150",
        "LINDEX biglist -7",
        "LPOP biglist 3",
        "RPOP biglist 3",
        "RPOP biglist",
        "LRANGE biglist 0 10",
        "LLEN biglist",
    ] {
        w(line);
    }
    // A large string over many pages.
    let big: Vec<u8> = (0..150_000).map(|i| (i % 251) as u8).collect();
    s.push(Step::Cmd(vec![b"SET".to_vec(), b"bigstr".to_vec(), big.clone()]));
    s.push(words("GET bigstr"));
    s.push(Step::Cmd(vec![b"APPEND".to_vec(), b"bigstr".to_vec(), big[..70_000].to_vec()]));
    s.push(words("STRLEN bigstr"));
    s.push(words("GET bigstr"));
    s.push(words("MGET bigstr a"));
    // Unknown commands and the quoting of their arguments.
    let long = "x".repeat(200);
    s.push(words("FOO"));
    s.push(words("foo a b"));
    s.push(words(&format!("foo {long}")));
    s.push(words(&format!("foo {long} b")));
    s.push(words(&format!("{long} a")));
    s.push(words(&format!("foo {} {} {} {}", "a".repeat(50), "b".repeat(50), "c".repeat(50), "d")));
    s.push(args(&[b"foo", b"with\r\nnewline", b"nul\0byte"]));
    s.push(args(&[b"get\0x", b"a"]));
    s.push(args(&[b"fo\ro", b"a"]));
    s.push(args(&[b""]));
    // CONFIG and COMMAND.
    let mut w = |line: &str| s.push(words(line));
    for line in [
        "CONFIG GET save",
        "CONFIG GET appendonly",
        "CONFIG GET SAVE",
        "CONFIG GET sav?",
        "CONFIG GET appendonl[xy]",
        "CONFIG GET proto-max-bulk-len",
        "CONFIG GET client-query-buffer-limit",
        "CONFIG GET maxmemory",
        "CONFIG GET maxmemory-policy",
        "CONFIG GET databases",
        "CONFIG GET timeout",
        "CONFIG GET hz",
        "CONFIG GET io-threads",
        "CONFIG GET cluster-enabled",
        "CONFIG GET nosuch",
        "CONFIG GET nosuch*",
        "CONFIG GET save save",
        "CONFIG GET",
        "CONFIG",
        "CONFIG FOO",
        "config foo bar",
        "CONFIG SET foo bar",
        "CONFIG SET save",
        "CONFIG SET a b c",
        "CONFIG RESETSTAT x",
        "CONFIG HELP",
        "CONFIG HELP x",
        "CONFIG REWRITE",
        "COMMAND INFO get set lpush nosuch",
        "COMMAND INFO GET",
        "COMMAND FOO",
        "COMMAND COUNT x",
        "COMMAND DOCS nosuch",
        "COMMAND LIST x",
    ] {
        w(line);
    }
    // Flushing.
    for line in [
        "DBSIZE",
        "FLUSHDB foo",
        "FLUSHALL a b",
        "FLUSHDB ASYNC",
        "DBSIZE",
        "SET x 1",
        "FLUSHALL sync",
        "FLUSHDB",
        "DBSIZE",
        "SHUTDOWN foo",
        "SHUTDOWN ABORT",
        "SHUTDOWN NOSAVE SAVE",
        "SHUTDOWN ABORT NOW",
    ] {
        w(line);
    }
    // Inline commands, with Redis's quoting.
    s.push(Step::Raw(b"set inl \"a\\x41b\\n\"\r\nget inl\r\n".to_vec(), 2));
    s.push(Step::Raw(b"echo 'it\\'s' \"tab\\there\"\r\n".to_vec(), 1));
    s.push(Step::Raw(b"\r\n   \r\nPING\r\n".to_vec(), 1));
    s.push(Step::Raw(b"  lpush   il  a  b\nlrange il 0 -1\n".to_vec(), 2));
    s.push(Step::Raw(b"nosuch \"quoted arg\" x\r\n".to_vec(), 1));
    s.push(Step::Raw(b"*0\r\n*-1\r\nPING\r\n".to_vec(), 1));
    // The two bytes after a bulk are not checked.
    s.push(Step::Raw(b"*1\r\n$4\r\nPINGxx".to_vec(), 1));
    // A pipeline of many commands in one write.
    let mut pipeline = Vec::new();
    for i in 0..200 {
        let key = format!("p{}", i % 10);
        pipeline.extend(encode(&[b"INCR", key.as_bytes()]));
        pipeline.extend(encode(&[b"RPUSH", b"plist", key.as_bytes()]));
    }
    pipeline.extend(encode(&[b"LRANGE", b"plist", b"0", b"-1"]));
    s.push(Step::Raw(pipeline, 401));
    s.push(words("QUIT now"));
    s
}

#[test]
fn every_command_and_error_matches_redis() {
    let Some((redis, ours)) = servers() else { return };
    let mut theirs = Client::new(redis.port);
    let mut mine = Client::new(ours.port);
    let mut checked = 0;
    for (i, step) in script().iter().enumerate() {
        let (bytes, n, label) = match step {
            Step::Cmd(cmd) => {
                let refs: Vec<&[u8]> = cmd.iter().map(Vec::as_slice).collect();
                (encode(&refs), 1, show(&cmd.join(&b' ')))
            }
            Step::Raw(bytes, n) => (bytes.clone(), *n, show(bytes)),
        };
        theirs.send(&bytes);
        mine.send(&bytes);
        for r in 0..n {
            let want = theirs.read_reply();
            let got = mine.read_reply();
            assert_eq!(
                show(&got),
                show(&want),
                "step {i} ({label}), reply {r}: ours differs from redis-server"
            );
            assert_eq!(got, want, "step {i} ({label}), reply {r}");
            checked += 1;
        }
    }
    // After QUIT both closed the connection.
    for client in [&mut theirs, &mut mine] {
        use std::io::Read;
        let mut rest = Vec::new();
        client.stream.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
    }
    eprintln!("{checked} replies identical to redis-server's");
}

/// Requests Redis refuses: the same error, then the connection closed.
#[test]
fn protocol_errors_match_redis() {
    let Some((redis, ours)) = servers() else { return };
    let big_inline = vec![b'a'; 70_000];
    let mut big_count = b"*".to_vec();
    big_count.extend(vec![b'1'; 70_000]);
    let mut big_bulk_count = b"*1\r\n$".to_vec();
    big_bulk_count.extend(vec![b'1'; 70_000]);
    let cases: Vec<Vec<u8>> = vec![
        b"*abc\r\n".to_vec(),
        b"*1x\r\n".to_vec(),
        b"*3000000000\r\n".to_vec(),
        b"*1\r\n:1\r\n".to_vec(),
        b"*1\r\n\r\n".to_vec(),
        b"*2\r\n$3\r\nget\r\n+x\r\n".to_vec(),
        b"*1\r\n$-1\r\n".to_vec(),
        b"*1\r\n$abc\r\n".to_vec(),
        b"*1\r\n$01\r\n".to_vec(),
        b"*1\r\n$536870913\r\n".to_vec(),
        b"get \"a\r\n".to_vec(),
        b"get \"a\"b\r\n".to_vec(),
        b"get 'a\r\n".to_vec(),
        b"PING\r\n*x\r\nPING\r\n".to_vec(),
        b"SET a b\r\nGET a\r\n*1\r\n$4\r\nPING\r\n*1\r\n:x\r\nGET a\r\n".to_vec(),
        big_inline,
        big_count,
        big_bulk_count,
        b"PING\r\nQUIT\r\nPING\r\n".to_vec(),
        b"*1\r\n$4\r\nQUIT\r\n*1\r\n$4\r\nPING\r\n".to_vec(),
    ];
    for case in &cases {
        let (want, want_closed) = exchange_raw(redis.port, case, Duration::from_secs(2));
        let (got, got_closed) = exchange_raw(ours.port, case, Duration::from_secs(2));
        assert_eq!(show(&got), show(&want), "request {}", show(case));
        assert_eq!(got, want, "request {}", show(case));
        assert_eq!(got_closed, want_closed, "request {}: closed?", show(case));
        assert!(got_closed, "request {}: the connection must be closed", show(case));
    }
}

/// Multi-key CONFIG GET replies come in hash order in Redis: compare them as sets.
#[test]
fn config_get_patterns_match_redis_as_sets() {
    let Some((redis, ours)) = servers() else { return };
    let mut theirs = Client::new(redis.port);
    let mut mine = Client::new(ours.port);
    for line in [
        "CONFIG GET save appendonly",
        "CONFIG GET appendonly save databases",
        "CONFIG GET maxmemory*",
    ] {
        let pairs = |reply: Vec<u8>| {
            let text = String::from_utf8(reply).unwrap();
            let lines: Vec<&str> =
                text.split("\r\n").skip(1).filter(|l| !l.starts_with('$')).collect();
            let mut pairs: Vec<(String, String)> = lines
                .chunks(2)
                .filter(|c| c.len() == 2)
                .map(|c| (c[0].into(), c[1].into()))
                .collect();
            pairs.sort();
            pairs
        };
        let want = pairs(theirs.cmd(line));
        let got = pairs(mine.cmd(line));
        if line.ends_with('*') {
            // Redis knows more maxmemory-* parameters: ours must be among them.
            for pair in &got {
                assert!(want.contains(pair), "{line}: {pair:?} not in {want:?}");
            }
        } else {
            assert_eq!(got, want, "{line}");
        }
    }
}

//! Bad input and bad clients never take the server down; the other clients keep being
//! served. Runs the Linux build of the server.

mod common;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use common::{Client, connect, encode, exchange_raw, start_ours};

fn alive(port: u16) {
    let mut c = Client::new(port);
    assert_eq!(c.cmd("PING"), b"+PONG\r\n");
}

#[test]
fn disconnect_mid_request_leaves_others_served() {
    let server = start_ours(&[]);
    let mut other = Client::new(server.port);
    assert_eq!(other.cmd("SET k v"), b"+OK\r\n");
    for partial in [
        &b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\nabc"[..],
        b"*3\r\n$3\r\nSET",
        b"*",
        b"SET k partial-inline",
        b"*2\r\n$3\r\nGET\r\n$1\r\n",
    ] {
        let mut c = connect(server.port);
        c.write_all(partial).unwrap();
        drop(c);
        assert_eq!(other.cmd("GET k"), b"$1\r\nv\r\n");
    }
    // Half-closed after a complete request: the reply still arrives.
    let mut c = connect(server.port);
    c.write_all(b"PING\r\n").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let mut reply = Vec::new();
    c.read_to_end(&mut reply).unwrap();
    assert_eq!(reply, b"+PONG\r\n");
    alive(server.port);
}

#[test]
fn huge_bulk_lengths_allocate_nothing_and_hurt_no_one() {
    let server = start_ours(&[]);
    let mut clients = Vec::new();
    // Announce 512 MiB arguments (the limit) on many connections, send a little, go away.
    for _ in 0..20 {
        let mut c = connect(server.port);
        c.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870912\r\n").unwrap();
        c.write_all(&[b'x'; 1000]).unwrap();
        clients.push(c);
    }
    let mut probe = Client::new(server.port);
    let info = String::from_utf8(probe.cmd("INFO memory")).unwrap();
    let used: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    assert!(used < 16 << 20, "{used} bytes used after 20 announced 512 MiB bulks");
    drop(clients);
    // One more than the limit is refused at once.
    let (reply, closed) =
        exchange_raw(server.port, b"*2\r\n$4\r\nECHO\r\n$536870913\r\n", Duration::from_secs(5));
    assert_eq!(reply, b"-ERR Protocol error: invalid bulk length\r\n");
    assert!(closed);
    alive(server.port);
}

#[test]
fn configured_limits_are_enforced() {
    let server =
        start_ours(&["--proto-max-bulk-len", "1000", "--client-query-buffer-limit", "100000"]);
    let (reply, closed) =
        exchange_raw(server.port, b"*2\r\n$4\r\nECHO\r\n$1001\r\n", Duration::from_secs(5));
    assert_eq!((reply, closed), (b"-ERR Protocol error: invalid bulk length\r\n".to_vec(), true));
    let mut c = Client::new(server.port);
    let at_limit = vec![b'a'; 1000];
    assert_eq!(c.call(&[b"SET", b"k", &at_limit]), b"+OK\r\n");
    assert_eq!(
        c.call(&[b"APPEND", b"k", b"x"]),
        b"-ERR string exceeds maximum allowed size (proto-max-bulk-len)\r\n"
    );
    // A request bigger than the query buffer limit: closed without a reply.
    let mut many = b"*200000\r\n".to_vec();
    for _ in 0..20_000 {
        many.extend_from_slice(b"$1\r\nx\r\n");
    }
    let (reply, closed) = exchange_raw(server.port, &many, Duration::from_secs(5));
    assert_eq!((reply, closed), (Vec::new(), true));
    alive(server.port);
}

#[test]
fn maxclients_refuses_the_one_too_many() {
    let server = start_ours(&["--maxclients", "2"]);
    // Let the server see the start-up probe connection close.
    thread::sleep(Duration::from_millis(300));
    let mut a = Client::new(server.port);
    let mut b = Client::new(server.port);
    assert_eq!(a.cmd("PING"), b"+PONG\r\n");
    assert_eq!(b.cmd("PING"), b"+PONG\r\n");
    let (reply, closed) = exchange_raw(server.port, b"PING\r\n", Duration::from_secs(5));
    assert_eq!(reply, b"-ERR max number of clients reached\r\n");
    assert!(closed);
    drop(b);
    thread::sleep(Duration::from_millis(300));
    alive(server.port);
    assert_eq!(a.cmd("PING"), b"+PONG\r\n");
}

#[test]
fn garbage_from_many_clients() {
    let server = start_ours(&[]);
    let mut seed = 0x1234_5678_9abc_def0u64;
    for _ in 0..200 {
        let mut bytes = Vec::new();
        for _ in 0..(seed % 2000) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            // Mostly protocol characters, so the parser gets deep.
            let b = match seed % 8 {
                0 => b'*',
                1 => b'$',
                2 => b'\r',
                3 => b'\n',
                4 => b'0' + (seed >> 8) as u8 % 10,
                _ => (seed >> 16) as u8,
            };
            bytes.push(b);
        }
        let mut c = connect(server.port);
        let _ = c.write_all(&bytes);
    }
    alive(server.port);
}

#[test]
fn many_concurrent_clients_with_pipelining() {
    let server = start_ours(&[]);
    let port = server.port;
    let threads: Vec<_> = (0..40)
        .map(|t| {
            thread::spawn(move || {
                let mut c = Client::new(port);
                for round in 0..20 {
                    let mut batch = Vec::new();
                    for i in 0..10 {
                        batch.extend(encode(&[b"INCR", b"shared"]));
                        batch.extend(encode(&[
                            b"RPUSH",
                            format!("list{t}").as_bytes(),
                            format!("{round}-{i}").as_bytes(),
                        ]));
                    }
                    c.send(&batch);
                    for _ in 0..20 {
                        c.read_reply();
                    }
                }
                let len = c.cmd(&format!("LLEN list{t}"));
                assert_eq!(len, b":200\r\n");
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut c = Client::new(port);
    assert_eq!(c.cmd("GET shared"), b"$4\r\n8000\r\n");
}

#[test]
fn a_client_that_never_reads_does_not_stall_others() {
    let server = start_ours(&[]);
    let mut setup = Client::new(server.port);
    let elem = vec![b'e'; 1000];
    for _ in 0..1000 {
        setup.call(&[b"RPUSH", b"l", &elem]);
    }
    // About 1 MB of reply per LRANGE, 200 of them, never read.
    let mut hog = connect(server.port);
    let mut batch = Vec::new();
    for _ in 0..200 {
        batch.extend(encode(&[b"LRANGE", b"l", b"0", b"-1"]));
    }
    hog.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    let _ = hog.write_all(&batch);
    for _ in 0..50 {
        alive(server.port);
    }
    // Its replies are held back, not all made: the server holds about one soft limit.
    let mut probe = Client::new(server.port);
    let info = String::from_utf8(probe.cmd("INFO memory")).unwrap();
    let used: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    assert!(used < 16 << 20, "{used} bytes used with 200 unread 1 MB replies");
    drop(hog);
    alive(server.port);
}

#[test]
fn shutdown_ends_the_process() {
    let port = common::free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_redis-linux"))
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut c = loop {
        if let Ok(c) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            break c;
        }
        thread::sleep(Duration::from_millis(20));
    };
    c.write_all(b"SHUTDOWN NOSAVE\r\n").unwrap();
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest);
    assert!(rest.is_empty());
    assert!(child.wait().unwrap().success());
}

#[test]
fn expired_keys_are_swept_without_being_touched() {
    let server = start_ours(&[]);
    let mut c = Client::new(server.port);
    let mut batch = Vec::new();
    for i in 0..1000 {
        batch.extend(encode(&[b"SET", format!("k{i}").as_bytes(), b"v", b"PX", b"50"]));
    }
    batch.extend(encode(&[b"SET", b"stays", b"v"]));
    c.send(&batch);
    for _ in 0..1001 {
        c.read_reply();
    }
    assert_eq!(c.cmd("DBSIZE"), b":1001\r\n");
    let mut dbsize = Vec::new();
    for _ in 0..50 {
        thread::sleep(Duration::from_millis(100));
        dbsize = c.cmd("DBSIZE");
        if dbsize == b":1\r\n" {
            break;
        }
    }
    assert_eq!(dbsize, b":1\r\n");
    let info = String::from_utf8(c.cmd("INFO stats")).unwrap();
    assert!(info.contains("expired_keys:1000\r\n"), "{info}");
}

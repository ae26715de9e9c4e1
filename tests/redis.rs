//! The Redis image end to end: real clients (redis-cli, redis-benchmark) over QEMU's user
//! networking, replies compared with a real redis-server, bad input, and paging under
//! load with local memory smaller than the data.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{assert_exit, boot_with, options};
use xtask::qemu::{AppNet, ImageStatus, RunOptions, RunOutcome};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Sends raw bytes on a new connection and collects what comes back until the peer closes
/// or goes quiet (empty if nothing listens).
fn exchange(port: u16, request: &[u8], wait: Duration) -> Vec<u8> {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return Vec::new() };
    s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 65536];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) if !out.is_empty() => break,
            Err(_) => {}
        }
    }
    out
}

/// The Redis image, booted in the background, served on a host port.
struct Image {
    port: u16,
    run: JoinHandle<RunOutcome>,
}

impl Image {
    fn start(cmdline: &str) -> Image {
        let port = free_port();
        let cmdline = cmdline.to_string();
        let run = std::thread::spawn(move || {
            boot_with(
                "configs/redis.toml",
                RunOptions {
                    cmdline,
                    app_net: Some(AppNet::User { host_port: port, guest_port: 6379 }),
                    timeout: Duration::from_secs(600),
                    ..options()
                },
            )
        });
        let deadline = Instant::now() + Duration::from_secs(120);
        while exchange(port, b"PING\r\n", Duration::from_secs(2)) != b"+PONG\r\n" {
            assert!(Instant::now() < deadline, "the Redis image never answered PING");
            assert!(!run.is_finished(), "the Redis image stopped before answering");
            std::thread::sleep(Duration::from_millis(300));
        }
        Image { port, run }
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli runs (apt-get install redis-tools)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn info(&self, key: &str) -> u64 {
        let text = self.cli(&["INFO", "remora"]);
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':')?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {key} in INFO remora:\n{text}"))
    }

    /// SHUTDOWN ends the image with success.
    fn stop(self) -> RunOutcome {
        let _ = exchange(self.port, b"SHUTDOWN NOSAVE\r\n", Duration::from_secs(2));
        self.run.join().expect("the run thread")
    }
}

fn real_redis() -> Option<(Child, u16)> {
    let port = free_port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--save", "", "--appendonly", "no", "--databases", "1"])
        .stdout(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while exchange(port, b"PING\r\n", Duration::from_millis(500)) != b"+PONG\r\n" {
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Some((child, port))
}

fn resp(args: &[&str]) -> Vec<u8> {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    xtask::bench::workload::encode_command(&args)
}

#[test]
fn redis_cli_and_real_redis_agree_with_the_image() {
    let image = Image::start("");
    assert_eq!(image.cli(&["PING"]).trim(), "PONG");
    assert_eq!(image.cli(&["SET", "greeting", "hello far memory"]).trim(), "OK");
    assert_eq!(image.cli(&["GET", "greeting"]).trim(), "hello far memory");
    assert_eq!(image.cli(&["RPUSH", "l", "a", "b", "c"]).trim(), "3");
    assert_eq!(image.cli(&["LRANGE", "l", "0", "-1"]), "a\nb\nc\n");

    // The same script, byte for byte, against a real redis-server.
    let script: &[&[&str]] = &[
        &["FLUSHALL"],
        &["PING"],
        &["ECHO", "x y"],
        &["SELECT", "0"],
        &["SELECT", "1"],
        &["SET", "k", "v"],
        &["SET", "k", "v2", "NX"],
        &["SET", "k", "v3", "XX", "PX", "100000"],
        &["SET", "k", "v", "EX", "0"],
        &["SET", "k"],
        &["GET", "k"],
        &["GETSET", "k", "v4"],
        &["MSET", "a", "1", "b", "2"],
        &["MGET", "a", "b", "nope"],
        &["INCR", "a"],
        &["INCRBY", "a", "10"],
        &["DECR", "a"],
        &["INCR", "k"],
        &["APPEND", "b", "xyz"],
        &["STRLEN", "b"],
        &["EXISTS", "a", "b", "zz"],
        &["DEL", "a", "zz"],
        &["LPUSH", "list", "1", "2", "3"],
        &["RPUSH", "list", "4"],
        &["LLEN", "list"],
        &["LRANGE", "list", "0", "-1"],
        &["LRANGE", "list", "-100", "100"],
        &["LINDEX", "list", "1"],
        &["LPOP", "list"],
        &["RPOP", "list", "2"],
        &["LPUSH", "k", "x"],
        &["GET", "list"],
        &["DBSIZE"],
        &["NOSUCHCOMMAND", "a"],
        &["GET"],
        &["CONFIG", "GET", "save"],
        &["FLUSHDB"],
        &["DBSIZE"],
    ];
    let Some((mut redis, redis_port)) = real_redis() else {
        eprintln!(
            "SKIPPED the comparison: redis-server is not installed (apt-get install redis-server)"
        );
        image.stop();
        return;
    };
    for command in script {
        let request = resp(command);
        let ours = exchange(image.port, &request, Duration::from_secs(5));
        let theirs = exchange(redis_port, &request, Duration::from_secs(5));
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs),
            "different replies to {command:?}"
        );
    }
    let _ = redis.kill();
    let run = image.stop();
    assert_exit(&run, ImageStatus::Exited(0));
}

#[test]
fn bad_input_closes_that_connection_and_others_keep_being_served() {
    let image = Image::start("");
    let reply = exchange(image.port, b"*1\r\n$abc\r\n", Duration::from_secs(5));
    assert_eq!(String::from_utf8_lossy(&reply), "-ERR Protocol error: invalid bulk length\r\n");
    // A huge bulk length and a client that disconnects mid-request.
    let reply =
        exchange(image.port, b"*2\r\n$3\r\nSET\r\n$99999999999\r\n", Duration::from_secs(5));
    assert!(String::from_utf8_lossy(&reply).starts_with("-ERR Protocol error"), "{reply:?}");
    {
        let mut s = TcpStream::connect(("127.0.0.1", image.port)).unwrap();
        s.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100\r\nonly part").unwrap();
    }
    assert_eq!(image.cli(&["PING"]).trim(), "PONG");
    let run = image.stop();
    assert_exit(&run, ImageStatus::Exited(0));
}

#[test]
fn redis_benchmark_runs_clean_with_local_memory_smaller_than_the_data() {
    // 2 MiB of local memory; about 32 MiB of values first, then the benchmark.
    let image = Image::start("pager.local_memory=2M");
    let port = image.port.to_string();
    // The data, on one pipelined connection: 8192 values of 4 KiB.
    let mut loader = TcpStream::connect(("127.0.0.1", image.port)).unwrap();
    loader.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let value = "v".repeat(4096);
    for batch in 0..512 {
        let mut request = Vec::new();
        for i in 0..16 {
            request.extend(resp(&["SET", &format!("key:{:012}", batch * 16 + i), &value]));
        }
        loader.write_all(&request).unwrap();
        let mut replies = vec![0u8; 16 * 5];
        loader.read_exact(&mut replies).unwrap();
        assert_eq!(replies, "+OK\r\n".repeat(16).as_bytes(), "loading batch {batch}");
    }
    let bench = Command::new("redis-benchmark")
        .args(["-p", &port, "-q", "-n", "20000", "-P", "16"])
        .args(["-t", "ping,set,get,incr,lpush,rpush,lpop,rpop,lrange_100"])
        .output()
        .expect("redis-benchmark runs");
    let out = String::from_utf8_lossy(&bench.stdout).replace('\r', "\n");
    let err = String::from_utf8_lossy(&bench.stderr);
    eprintln!("{out}\n{err}");
    assert!(bench.status.success(), "redis-benchmark failed: {err}");
    assert!(!out.to_lowercase().contains("error") && !err.to_lowercase().contains("error"));
    for test in
        ["PING_INLINE", "SET", "GET", "INCR", "LPUSH", "RPUSH", "LPOP", "RPOP", "LRANGE_100"]
    {
        assert!(
            out.lines().any(|l| l.starts_with(test) && l.contains("requests per second")),
            "no {test} result"
        );
    }
    assert!(image.info("pager_faults_remote") > 0, "the data never left local memory");
    assert!(image.info("pager_evicted_dirty") > 0);
    let run = image.stop();
    assert_exit(&run, ImageStatus::Exited(0));
}

/// Demand faults (faults that read their own page from the node) of the Redis image with
/// `policy`, serving `workload` with local memory at 12.5% of a 16 MiB data set.
fn demand_faults(policy: &str, workload: xtask::bench::workload::Workload, requests: u64) -> u64 {
    use xtask::bench::{self, workload};
    let working_set = 16 << 20;
    let dir = xtask::image::repo_root().join("target").join("test-configs");
    let config = bench::remora_config(&dir, policy, working_set).unwrap();
    let elf = common::image(config.to_str().unwrap());
    let (running, port) =
        bench::start_remora(&elf, working_set / 8, working_set, common::accel()).unwrap();
    let keys = workload.keys_for(working_set);
    workload::load(port, workload, keys).unwrap();
    let before = bench::remora_counters(port).unwrap();
    workload::drive(port, workload, keys, requests, 4, 1).unwrap();
    let after = bench::remora_counters(port).unwrap();
    running.stop();
    after.0 - before.0
}

#[test]
fn redis_own_prefetching_takes_far_fewer_demand_faults() {
    use xtask::bench::workload::Workload;
    for (workload, requests) in [(Workload::GetMix, 300), (Workload::Lrange, 60)] {
        let none = demand_faults("none", workload, requests);
        let sequential = demand_faults("sequential", workload, requests);
        let redis = demand_faults("redis", workload, requests);
        eprintln!(
            "{}: demand faults none {none}, sequential {sequential}, redis {redis}",
            workload.name()
        );
        assert!(
            redis * 2 < sequential,
            "{}: redis {redis} vs sequential {sequential}",
            workload.name()
        );
        assert!(redis * 2 < none, "{}: redis {redis} vs none {none}", workload.name());
    }
}

//! The baseline of the bench: Debian's Linux under QEMU running the real redis-server in a
//! 32 MiB memory cgroup, swapping to a virtio-blk disk served by qemu-nbd from host RAM.
//! Loads more than the local memory, reads it all back, and checks that the guest swapped;
//! then the same with our own server built for Linux.
//!
//! Needs (CI installs them): qemu-system-x86, qemu-utils (qemu-nbd), redis-server,
//! redis-tools (redis-cli), and apt's access to Debian's mirror for the kernel and
//! busybox on the first run (cached in target/linux-guest/).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use xtask::bench::workload::encode_command as command;
use xtask::linux_guest::{GuestOptions, LinuxGuest, Server};

const LOCAL: u64 = 32 << 20;
const VALUES: usize = 1000;
const VALUE_SIZE: usize = 64 << 10;

/// Fails with what to install when a program the test needs is missing.
fn require(program: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|p| p.join(program).is_file()));
    assert!(found, "{program} is missing: apt-get install {package}");
}

fn value(i: usize) -> Vec<u8> {
    // Distinct, incompressible enough, and checkable.
    let mut x = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (0..VALUE_SIZE)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn read_line(r: &mut impl BufRead) -> String {
    let mut line = String::new();
    r.read_line(&mut line).expect("reply");
    assert!(line.ends_with("\r\n"), "truncated reply {line:?}");
    line.trim_end().to_string()
}

fn read_bulk(r: &mut impl BufRead) -> Option<Vec<u8>> {
    let header = read_line(r);
    let len: i64 = header
        .strip_prefix('$')
        .unwrap_or_else(|| panic!("expected a bulk reply, got {header:?}"))
        .parse()
        .expect("bulk length");
    if len < 0 {
        return None;
    }
    let mut data = vec![0u8; len as usize + 2];
    r.read_exact(&mut data).expect("bulk data");
    data.truncate(len as usize);
    Some(data)
}

/// Boots a guest with `server`, SETs `values` values of 64 KiB (more than the local
/// memory), reads them all back, checks that the server's memory went to the remote swap,
/// and stops the guest.
fn load_and_read_back(server: Server, values: usize) {
    require("qemu-system-x86_64", "qemu-system-x86");
    require("qemu-nbd", "qemu-utils");
    require("redis-server", "redis-server");
    require("redis-cli", "redis-tools");

    let name = format!("{server:?}");
    let mut options = GuestOptions::new(server, LOCAL);
    options.accel = common::accel();
    options.swap = 256 << 20;
    options.echo = std::env::var_os("REMORA_ECHO").is_some();
    let t0 = Instant::now();
    let mut guest = LinuxGuest::start(&options).unwrap_or_else(|e| panic!("{e:#}"));
    let port = guest.port();
    eprintln!(
        "[{name}] linux guest ready in {:.1} s ({}; {:.1} s with the assets), server on \
         127.0.0.1:{port}",
        guest.boot_time().as_secs_f64(),
        guest.accel(),
        t0.elapsed().as_secs_f64()
    );

    let ping = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "PING"])
        .output()
        .expect("redis-cli runs");
    assert_eq!(String::from_utf8_lossy(&ping.stdout).trim(), "PONG", "{ping:?}");

    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);

    // SET more than the local memory, pipelined in batches.
    let t = Instant::now();
    for batch in (0..values).collect::<Vec<_>>().chunks(32) {
        let mut out = Vec::new();
        for &i in batch {
            out.extend(command(&[b"SET", format!("key:{i}").as_bytes(), &value(i)]));
        }
        writer.write_all(&out).unwrap();
        for _ in batch {
            assert_eq!(read_line(&mut reader), "+OK");
        }
    }
    let loaded = t.elapsed();
    let during = guest.stats().unwrap_or_else(|e| panic!("{e:#}"));
    eprintln!(
        "[{name}] loaded {values} x {} KiB in {:.1} s; {during:?}",
        VALUE_SIZE >> 10,
        loaded.as_secs_f64()
    );

    // Read every value back, in another order than written.
    let t = Instant::now();
    for batch in (0..values).rev().collect::<Vec<_>>().chunks(32) {
        let mut out = Vec::new();
        for &i in batch {
            out.extend(command(&[b"GET", format!("key:{i}").as_bytes()]));
        }
        writer.write_all(&out).unwrap();
        for &i in batch {
            let got = read_bulk(&mut reader).unwrap_or_else(|| panic!("key:{i} is missing"));
            assert!(got == value(i), "key:{i} came back different");
        }
    }
    eprintln!("[{name}] read back and checked in {:.1} s", t.elapsed().as_secs_f64());

    writer.write_all(&command(&[b"INFO", b"memory"])).unwrap();
    let info = String::from_utf8(read_bulk(&mut reader).unwrap()).unwrap();
    let used: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory in INFO memory");
    let data = (values * VALUE_SIZE) as u64;
    assert!(used >= data, "the server reports {used} B for {data} B of values");
    drop(writer);
    drop(reader);

    let report = guest.stop().unwrap_or_else(|e| panic!("{e:#}"));
    eprintln!(
        "---- console of {name}\n{}\n---- boot {:.1} s, run {:.1} s",
        report.console,
        report.boot_time.as_secs_f64(),
        report.wall_time.as_secs_f64()
    );
    assert!(report.clean, "the guest did not power off cleanly");
    let stats = report.stats.expect("the guest printed its counters at the end");
    assert_eq!(stats.oom_kills(), 0, "the OOM killer ran: {stats:?}");
    // Everything beyond the local memory must be in swap (less a little slack for what
    // the cgroup holds besides the values: the binary's stack, socket buffers).
    assert!(
        during.cgroup_swap() > data.saturating_sub(LOCAL) * 9 / 10,
        "the server's cgroup should hold what exceeds its local memory in swap: {during:?}"
    );
    assert!(
        during.pages_swapped_out() * 4096 > data.saturating_sub(LOCAL) * 9 / 10,
        "too little swap-out: {during:?}"
    );
    assert!(stats.pages_swapped_in() > 0, "reading back should have swapped in: {stats:?}");
}

#[test]
fn real_redis_swaps_to_the_remote_block_device() {
    load_and_read_back(Server::RealRedis, VALUES);
}

/// The same guest with our Redis-compatible server built for Linux: the application held
/// equal, so that the bench compares operating-system paths.
#[test]
fn our_redis_server_swaps_to_the_remote_block_device() {
    let status = xtask::image::cargo()
        .args(["build", "--release", "--quiet", "-p", "app-redis", "--no-default-features"])
        .args(["--features", "std", "--bin", "redis-linux"])
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building redis-linux failed");
    let binary = xtask::image::target_dir().join("release").join("redis-linux");
    load_and_read_back(Server::Ours(binary), VALUES);
}

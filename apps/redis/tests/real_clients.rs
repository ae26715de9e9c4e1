//! The real clients against the Linux build: redis-benchmark completes without errors,
//! redis-cli gets its answers. Skipped (with a message) where the tools are missing.

mod common;

use std::process::Command;

use common::{have, start_ours};

#[test]
fn redis_benchmark_completes_without_errors() {
    if !have("redis-benchmark") {
        eprintln!("SKIPPED: redis-benchmark is not installed (apt-get install redis-tools)");
        return;
    }
    let server = start_ours(&[]);
    let tests = "ping,set,get,incr,lpush,rpush,lpop,rpop,lrange_100";
    let output = Command::new("redis-benchmark")
        .args(["-p", &server.port.to_string(), "-q", "-n", "2000", "-t", tests, "-P", "16"])
        .output()
        .expect("run redis-benchmark");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "redis-benchmark failed: {stdout}\n{stderr}");
    // -q prints one line per test (progress lines end in \r).
    let results: Vec<&str> =
        stdout.split(['\r', '\n']).filter(|l| l.contains("requests per second")).collect();
    for name in [
        "PING_INLINE",
        "PING_MBULK",
        "SET",
        "GET",
        "INCR",
        "LPUSH",
        "RPUSH",
        "LPOP",
        "RPOP",
        "LRANGE_100",
    ] {
        assert!(
            results
                .iter()
                .any(|l| l.starts_with(&format!("{name}:")) || l.starts_with(&format!("{name} "))),
            "no result for {name} in:\n{stdout}"
        );
    }
    for text in [&stdout, &stderr] {
        assert!(
            !text.contains("ERR") && !text.to_lowercase().contains("error"),
            "{stdout}\n{stderr}"
        );
    }
    for line in results {
        eprintln!("{line}");
    }
}

#[test]
fn redis_cli_gets_its_answers() {
    if !have("redis-cli") {
        eprintln!("SKIPPED: redis-cli is not installed (apt-get install redis-tools)");
        return;
    }
    let server = start_ours(&[]);
    let port = server.port.to_string();
    let cli = |args: &[&str]| {
        let out = Command::new("redis-cli")
            .args(["-p", &port])
            .args(args)
            .output()
            .expect("run redis-cli");
        assert!(
            out.status.success(),
            "redis-cli {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(cli(&["PING"]), "PONG\n");
    assert_eq!(cli(&["SET", "greeting", "hello world"]), "OK\n");
    assert_eq!(cli(&["GET", "greeting"]), "hello world\n");
    assert_eq!(cli(&["RPUSH", "l", "a", "b", "c"]), "3\n");
    assert_eq!(cli(&["LRANGE", "l", "0", "-1"]), "a\nb\nc\n");
    assert_eq!(cli(&["--no-raw", "LRANGE", "l", "0", "-1"]), "1) \"a\"\n2) \"b\"\n3) \"c\"\n");
    assert_eq!(
        cli(&["GET", "l"]).trim_end(),
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    );
    assert_eq!(cli(&["CONFIG", "GET", "save"]), "save\n\n");
    assert!(cli(&["INFO"]).contains("redis_version:7.0.15"));
    assert_eq!(cli(&["DBSIZE"]), "2\n");
    // Commands on standard input, as `redis-cli < script` sends them.
    let mut child = Command::new("redis-cli")
        .args(["-p", &port])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"INCR n\nINCR n\nECHO \"two words\"\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n2\ntwo words\n");
}

//! The workloads of the seed's Figure 2, driven against any Redis-compatible server on a
//! TCP port: loading the data set with a pipelined RESP client, then `redis-benchmark`
//! (the real client) for throughput and latency percentiles, and `INFO` for the server's
//! own counters.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// Value sizes of the GET mix: six equal shares.
pub const GET_SIZES: [usize; 6] = [4 << 10, 8 << 10, 16 << 10, 32 << 10, 64 << 10, 128 << 10];
/// Elements per list and bytes per element of the LRANGE workload.
pub const LIST_LEN: usize = 200;
pub const ELEMENT_BYTES: usize = 1024;

/// Which workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Workload {
    /// GET over values of 4, 8, 16, 32, 64 and 128 KiB in equal shares.
    GetMix,
    /// LRANGE 0 199 over lists of 200 elements of 1 KiB.
    Lrange,
}

impl Workload {
    pub const ALL: [Workload; 2] = [Workload::GetMix, Workload::Lrange];

    pub fn name(self) -> &'static str {
        match self {
            Workload::GetMix => "get-mix",
            Workload::Lrange => "lrange",
        }
    }

    /// Keys needed for a data set of about `bytes`.
    pub fn keys_for(self, bytes: u64) -> u64 {
        let per_key = match self {
            Workload::GetMix => GET_SIZES.iter().sum::<usize>() as u64 / GET_SIZES.len() as u64,
            Workload::Lrange => (LIST_LEN * ELEMENT_BYTES) as u64,
        };
        (bytes / per_key).max(6)
    }

    /// The `redis-benchmark` command (after the options) for this workload.
    fn command(self) -> Vec<&'static str> {
        match self {
            Workload::GetMix => vec!["GET", "key:__rand_int__"],
            Workload::Lrange => vec!["LRANGE", "list:__rand_int__", "0", "199"],
        }
    }
}

fn key(prefix: &str, i: u64) -> String {
    // redis-benchmark's __rand_int__ is a 12-digit zero-padded number.
    format!("{prefix}:{i:012}")
}

/// A request as RESP: an array of bulk strings (what every Redis client sends).
pub fn encode_command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    resp_command(&mut out, args);
    out
}

fn resp_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// Reads `count` replies and fails on the first error reply.
fn read_replies(reader: &mut BufReader<TcpStream>, count: usize) -> Result<()> {
    let mut line = String::new();
    for _ in 0..count {
        line.clear();
        reader.read_line(&mut line).context("reading a reply")?;
        match line.as_bytes().first() {
            Some(b'+') | Some(b':') => {}
            Some(b'$') => {
                let len: i64 = line[1..].trim().parse().unwrap_or(-1);
                if len >= 0 {
                    let mut skip = vec![0u8; len as usize + 2];
                    reader.read_exact(&mut skip)?;
                }
            }
            Some(b'-') => bail!("the server refused the load: {}", line.trim()),
            _ => bail!("unexpected reply while loading: {line:?}"),
        }
    }
    Ok(())
}

fn connect(port: u16) -> Result<TcpStream> {
    let stream = TcpStream::connect(("127.0.0.1", port))
        .with_context(|| format!("connecting to 127.0.0.1:{port}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(300)))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Empties the server and loads the workload's data set of `keys` keys.
pub fn load(port: u16, workload: Workload, keys: u64) -> Result<()> {
    let stream = connect(port)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut batch = Vec::new();
    resp_command(&mut batch, &[b"FLUSHALL"]);
    writer.write_all(&batch)?;
    read_replies(&mut reader, 1)?;
    let element = vec![b'e'; ELEMENT_BYTES];
    let mut pending = 0;
    for i in 0..keys {
        batch.clear();
        match workload {
            Workload::GetMix => {
                let size = GET_SIZES[(i % GET_SIZES.len() as u64) as usize];
                let value: Vec<u8> =
                    (0..size).map(|b| b"0123456789abcdef"[(b + i as usize) % 16]).collect();
                resp_command(&mut batch, &[b"SET", key("key", i).as_bytes(), &value]);
            }
            Workload::Lrange => {
                let k = key("list", i);
                let mut args: Vec<&[u8]> = vec![b"RPUSH", k.as_bytes()];
                args.extend(std::iter::repeat_n(element.as_slice(), LIST_LEN));
                resp_command(&mut batch, &args);
            }
        }
        writer.write_all(&batch)?;
        pending += 1;
        if pending == 16 {
            read_replies(&mut reader, pending)?;
            pending = 0;
        }
    }
    read_replies(&mut reader, pending)
}

/// What `redis-benchmark` measured.
#[derive(Clone, Copy, Debug, Default)]
pub struct Measured {
    pub requests: u64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Runs `redis-benchmark` for `requests` requests over `keys` keys.
pub fn drive(
    port: u16,
    workload: Workload,
    keys: u64,
    requests: u64,
    clients: u32,
    pipeline: u32,
) -> Result<Measured> {
    let output = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-c", &clients.to_string(), "-n", &requests.to_string(), "-r", &keys.to_string()])
        .args(["-P", &pipeline.to_string(), "--csv"])
        .args(workload.command())
        .output()
        .context("cannot run redis-benchmark (apt-get install redis-tools)")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "redis-benchmark failed: {}{}",
            stdout.trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    parse_csv(&stdout, requests)
}

/// Reads the data line of `redis-benchmark --csv`.
pub fn parse_csv(text: &str, requests: u64) -> Result<Measured> {
    let line = text
        .lines()
        .find(|l| !l.starts_with("\"test\"") && l.starts_with('"'))
        .with_context(|| format!("no result in redis-benchmark's output: {text:?}"))?;
    let fields: Vec<f64> =
        line.split(',').skip(1).map(|f| f.trim_matches('"').parse().unwrap_or(f64::NAN)).collect();
    if fields.len() < 6 || fields.iter().any(|f| f.is_nan()) {
        bail!("cannot read redis-benchmark's result line {line:?}");
    }
    Ok(Measured { requests, rps: fields[0], p50_ms: fields[3], p99_ms: fields[5] })
}

/// `INFO` as key/value pairs.
pub fn info(port: u16) -> Result<Vec<(String, String)>> {
    let stream = connect(port)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut request = Vec::new();
    resp_command(&mut request, &[b"INFO", b"everything"]);
    writer.write_all(&request)?;
    let mut header = String::new();
    reader.read_line(&mut header)?;
    let len: usize = header
        .trim()
        .trim_start_matches('$')
        .parse()
        .context("INFO did not answer a bulk string")?;
    let mut body = vec![0u8; len + 2];
    reader.read_exact(&mut body)?;
    Ok(String::from_utf8_lossy(&body)
        .lines()
        .filter_map(|l| l.split_once(':').map(|(k, v)| (k.to_string(), v.trim().to_string())))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_benchmark_csv_is_read() {
        let text = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\"GET key:__rand_int__\",\"50000.00\",\"0.235\",\"0.024\",\"0.055\",\"0.103\",\"2.967\",\"23.039\"\n";
        let m = parse_csv(text, 2000).unwrap();
        assert_eq!(m.rps, 50000.0);
        assert_eq!(m.p50_ms, 0.055);
        assert_eq!(m.p99_ms, 2.967);
        assert!(parse_csv("nothing", 1).is_err());
    }

    #[test]
    fn data_sets_are_sized_from_bytes() {
        assert_eq!(Workload::GetMix.keys_for((42 * 6) << 10), 6);
        assert_eq!(Workload::Lrange.keys_for(100 * (LIST_LEN * ELEMENT_BYTES) as u64), 100);
    }
}

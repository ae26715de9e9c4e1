//! `cargo xtask bench`: the seed's experiment (Figure 2), reproduced.
//!
//! For every system and every local-memory fraction of the working set, a server is
//! started, each workload's data set is loaded and then driven by `redis-benchmark`; the
//! rows go to `target/bench/<timestamp>/results.csv`, `report.md` and `figure2.svg`.
//!
//! Systems, all under the same accelerator in one run:
//! - `remora-<policy>`: the Redis image with its memory node, one image per prefetch
//!   policy (`none`, `sequential`, `majority`, `redis`), local memory set per run;
//! - `linux-redis`: a Linux guest running the real redis-server in a memory cgroup,
//!   swapping to an NBD-backed disk (see `linux_guest`);
//! - `linux-ours`: the same guest running our server built for Linux.
//!
//! Owns the matrix, its order and the progress display; the workloads are in `workload`,
//! the outputs in `report`.

pub mod report;
pub mod workload;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};

use crate::image;
use crate::linux_guest::{GuestOptions, LinuxGuest, Server};
use crate::memnode::{NodeChoice, NodeOptions};
use crate::qemu::{self, Accel, AppNet, RunOptions};
use report::Row;
use workload::Workload;

/// Prefetch policies measured for Remora.
pub const POLICIES: [&str; 4] = ["none", "sequential", "majority", "redis"];

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Bytes of each workload's data set.
    pub working_set: u64,
    /// Local memory as fractions of the working set.
    pub fractions: Vec<f64>,
    /// Systems, by name (`remora-<policy>`, `linux-redis`, `linux-ours`).
    pub systems: Vec<String>,
    pub workloads: Vec<Workload>,
    /// Requests per measurement (GET; LRANGE takes a fifth, each moves 200 KiB).
    pub requests: u64,
    pub clients: u32,
    pub pipeline: u32,
    pub accel: Accel,
    pub out_dir: PathBuf,
}

impl BenchOptions {
    /// The full matrix with `working_set` bytes.
    pub fn full(working_set: u64, accel: Accel) -> Self {
        let mut systems: Vec<String> = POLICIES.iter().map(|p| format!("remora-{p}")).collect();
        systems.extend(["linux-redis".to_string(), "linux-ours".to_string()]);
        BenchOptions {
            working_set,
            fractions: vec![1.0, 0.5, 0.25, 0.125],
            systems,
            workloads: Workload::ALL.to_vec(),
            requests: 5000,
            // QEMU's user networking (slirp) resets some connections when about 40 or more
            // open at once while the guest is busy sending large replies; 10 clients keep
            // every system's network path the same and reliable.
            clients: 10,
            pipeline: 1,
            accel,
            out_dir: default_out_dir(),
        }
    }

    /// A reduced matrix that runs in a few minutes: every system and workload, two
    /// fractions, a small data set, few requests.
    pub fn quick(accel: Accel) -> Self {
        BenchOptions {
            working_set: 16 << 20,
            fractions: vec![1.0, 0.125],
            requests: 600,
            ..Self::full(16 << 20, accel)
        }
    }

    fn requests_for(&self, workload: Workload) -> u64 {
        match workload {
            Workload::GetMix => self.requests,
            Workload::Lrange => (self.requests / 5).max(50),
        }
    }
}

fn default_out_dir() -> PathBuf {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    image::repo_root().join("target").join("bench").join(format!("{stamp}"))
}

/// A server under test, reachable on a host port, stopped when dropped.
pub enum Running {
    Remora {
        stop: Arc<AtomicBool>,
        thread: Option<std::thread::JoinHandle<Result<qemu::RunOutcome>>>,
    },
    Linux(Option<LinuxGuest>),
}

impl Running {
    /// Stops the server; its console.
    pub fn stop(mut self) -> String {
        match &mut self {
            Running::Remora { stop, thread } => {
                stop.store(true, Ordering::SeqCst);
                match thread.take().map(|t| t.join()) {
                    Some(Ok(Ok(outcome))) => outcome.console,
                    _ => String::new(),
                }
            }
            Running::Linux(guest) => {
                guest.take().and_then(|g| g.stop().ok()).map(|r| r.console).unwrap_or_default()
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Running::Remora { stop, .. } = self {
            stop.store(true, Ordering::SeqCst);
        }
    }
}

/// Writes the image config of `remora-<policy>`: Redis with that prefetch policy and a far
/// region large enough for `working_set`.
pub fn remora_config(dir: &Path, policy: &str, working_set: u64) -> Result<PathBuf> {
    let base = std::fs::read_to_string(image::repo_root().join("configs/redis.toml"))
        .context("reading configs/redis.toml")?;
    let mut table: toml::Table = base.parse().context("configs/redis.toml is not TOML")?;
    let set = |table: &mut toml::Table, section: &str, key: &str, value: toml::Value| {
        let entry = table.entry(section).or_insert_with(|| toml::Value::Table(Default::default()));
        if let Some(t) = entry.as_table_mut() {
            t.insert(key.into(), value);
        }
    };
    set(&mut table, "image", "name", toml::Value::String(format!("bench-redis-{policy}")));
    set(&mut table, "prefetch", "policy", toml::Value::String(policy.into()));
    let region_mib = ((working_set * 3) >> 20).max(256).next_power_of_two();
    set(&mut table, "rmem", "region_size", toml::Value::String(format!("{region_mib}M")));
    let path = dir.join(format!("redis-{policy}.toml"));
    std::fs::create_dir_all(dir)?;
    std::fs::write(&path, toml::to_string(&table)?)?;
    Ok(path)
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Waits until the server answers a PING.
fn wait_ready(port: u16, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 7];
            if s.write_all(b"PING\r\n").is_ok()
                && s.read_exact(&mut buf).is_ok()
                && &buf == b"+PONG\r\n"
            {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("the server on port {port} did not answer PING within {} s", timeout.as_secs());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn start_remora(
    elf: &Path,
    local: u64,
    working_set: u64,
    accel: Accel,
) -> Result<(Running, u16)> {
    let port = free_port()?;
    let stop = Arc::new(AtomicBool::new(false));
    let options = RunOptions {
        accel,
        timeout: Duration::from_secs(3600),
        memory_mib: (local >> 20) + 384,
        cmdline: format!("pager.local_memory={local}"),
        far_memory: Some(NodeChoice::Start(NodeOptions {
            capacity: (working_set * 4).max(1 << 30),
            ..NodeOptions::default()
        })),
        app_net: Some(AppNet::User { host_port: port, guest_port: 6379 }),
        stop: Some(stop.clone()),
        ..RunOptions::default()
    };
    let elf = elf.to_path_buf();
    let thread = std::thread::spawn(move || qemu::run(&elf, &options));
    let running = Running::Remora { stop, thread: Some(thread) };
    wait_ready(port, Duration::from_secs(120))?;
    Ok((running, port))
}

fn start_linux(
    server: Server,
    local: u64,
    working_set: u64,
    accel: Accel,
) -> Result<(Running, u16)> {
    let mut options = GuestOptions::new(server, local);
    options.swap = (working_set * 3).max(256 << 20);
    options.accel = accel;
    let guest = LinuxGuest::start(&options)?;
    let port = guest.port();
    wait_ready(port, Duration::from_secs(60))?;
    Ok((Running::Linux(Some(guest)), port))
}

/// The pager's counters from a Remora server's INFO.
pub fn remora_counters(port: u16) -> Option<(u64, u64, u64)> {
    let info = workload::info(port).ok()?;
    let get =
        |k: &str| info.iter().find(|(key, _)| key == k).and_then(|(_, v)| v.parse::<u64>().ok());
    // Faults that read their page from the node themselves. A fault on a page that a
    // prefetch is still bringing (a late hit) waits less: it is not counted here.
    let demand = get("pager_faults_remote")? + get("pager_faults_writing_back")?;
    Some((demand, get("pager_remote_reads")?, get("prefetch_waste").unwrap_or(0)))
}

/// Runs the matrix and writes the outputs. Returns the output directory and how many
/// rows failed.
pub fn run(options: &BenchOptions) -> Result<(PathBuf, usize)> {
    std::fs::create_dir_all(&options.out_dir)?;
    let accel = options.accel.resolve()?;
    let steps = (options.systems.len() * options.fractions.len()) as u64;
    let bar = ProgressBar::new(steps);
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} servers, {eta} left: {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );

    // Build every server first, so a build failure shows before the long part.
    let mut elves = std::collections::BTreeMap::new();
    for system in &options.systems {
        if let Some(policy) = system.strip_prefix("remora-") {
            bar.set_message(format!("building {system}"));
            let config =
                remora_config(&options.out_dir.join("configs"), policy, options.working_set)?;
            let built = image::build(&config, true).map(|i| i.elf);
            elves.insert(system.clone(), built.map_err(|e| format!("{e:#}")));
        }
    }
    let ours = if options.systems.iter().any(|s| s == "linux-ours") {
        bar.set_message("building redis-linux");
        Some(build_redis_linux().map_err(|e| format!("{e:#}")))
    } else {
        None
    };

    let mut rows = Vec::new();
    for &fraction in &options.fractions {
        let local = ((options.working_set as f64 * fraction) as u64).max(4 << 20) & !0xfff;
        for system in &options.systems {
            bar.set_message(format!("{system} at {}% local memory", fraction * 100.0));
            let started = match system.as_str() {
                "linux-redis" => start_linux(Server::RealRedis, local, options.working_set, accel),
                "linux-ours" => match &ours {
                    Some(Ok(path)) => {
                        start_linux(Server::Ours(path.clone()), local, options.working_set, accel)
                    }
                    Some(Err(e)) => Err(anyhow::anyhow!("redis-linux did not build: {e}")),
                    None => Err(anyhow::anyhow!("redis-linux was not built")),
                },
                other => match elves.get(other) {
                    Some(Ok(elf)) => start_remora(elf, local, options.working_set, accel),
                    Some(Err(e)) => Err(anyhow::anyhow!("image did not build: {e}")),
                    None => Err(anyhow::anyhow!("unknown system {other}")),
                },
            };
            let base_row = |workload: Workload| Row {
                system: system.clone(),
                workload,
                fraction,
                local_mib: local >> 20,
                working_set_mib: options.working_set >> 20,
                requests: options.requests_for(workload),
                rps: 0.0,
                p50_ms: 0.0,
                p99_ms: 0.0,
                demand_faults: None,
                pages_fetched: None,
                prefetch_waste: None,
                swapped_in: None,
                error: None,
            };
            let (mut running, port) = match started {
                Ok(s) => s,
                Err(e) => {
                    for &w in &options.workloads {
                        rows.push(Row { error: Some(format!("{e:#}")), ..base_row(w) });
                    }
                    bar.inc(1);
                    continue;
                }
            };
            for &workload in &options.workloads {
                let mut row = base_row(workload);
                if let Err(e) = measure(&mut row, &mut running, port, options) {
                    row.error = Some(format!("{e:#}"));
                }
                bar.println(format!(
                    "{:<18} {:<8} local {:>6.1}%: {}",
                    row.system,
                    workload.name(),
                    fraction * 100.0,
                    match &row.error {
                        None => format!("{:.0} req/s, p99 {:.2} ms", row.rps, row.p99_ms),
                        Some(e) => format!("failed: {e}"),
                    }
                ));
                rows.push(row);
                report::write_csv(&options.out_dir.join("results.csv"), &rows)?;
            }
            let _ = running.stop();
            bar.inc(1);
        }
    }
    bar.finish_with_message("done");

    let header = format!(
        "Working set {} MiB per workload; {} GET requests, {} LRANGE requests per measurement; \
         {} clients, pipeline {}; accelerator {accel}; systems in one run on one machine.",
        options.working_set >> 20,
        options.requests_for(Workload::GetMix),
        options.requests_for(Workload::Lrange),
        options.clients,
        options.pipeline,
    );
    std::fs::write(options.out_dir.join("report.md"), report::markdown(&rows, &header))?;
    std::fs::write(options.out_dir.join("figure2.svg"), report::svg(&rows))?;
    Ok((options.out_dir.clone(), rows.iter().filter(|r| r.error.is_some()).count()))
}

/// Loads one workload, warms it up, measures it, and fills in `row`.
fn measure(row: &mut Row, running: &mut Running, port: u16, options: &BenchOptions) -> Result<()> {
    let keys = row.workload.keys_for(options.working_set);
    workload::load(port, row.workload, keys)?;
    // A short warm-up so that the measurement sees the steady state, not the load's tail.
    let warm = (row.requests / 10).max(10);
    workload::drive(port, row.workload, keys, warm, options.clients, options.pipeline)?;
    let before = remora_counters(port);
    let swap_before = match running {
        Running::Linux(Some(g)) => g.stats().ok().map(|s| s.pages_swapped_in()),
        _ => None,
    };
    let m =
        workload::drive(port, row.workload, keys, row.requests, options.clients, options.pipeline)?;
    row.rps = m.rps;
    row.p50_ms = m.p50_ms;
    row.p99_ms = m.p99_ms;
    if let (Some(b), Some(a)) = (before, remora_counters(port)) {
        row.demand_faults = Some(a.0 - b.0);
        row.pages_fetched = Some(a.1 - b.1);
        row.prefetch_waste = Some(a.2 - b.2);
    }
    if let (Some(b), Running::Linux(Some(g))) = (swap_before, running) {
        row.swapped_in = g.stats().ok().map(|s| s.pages_swapped_in() - b);
    }
    Ok(())
}

/// Builds our server for Linux and returns the binary.
fn build_redis_linux() -> Result<PathBuf> {
    let status = image::cargo()
        .args(["build", "--release", "--quiet", "-p", "app-redis", "--no-default-features"])
        .args(["--features", "std", "--bin", "redis-linux"])
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("building redis-linux failed");
    }
    Ok(image::target_dir().join("release").join("redis-linux"))
}

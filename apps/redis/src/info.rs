//! INFO: the server's counters and their text.
//!
//! Owns [`Stats`] (what the server counts as it serves) and the INFO reply: the sections
//! `server`, `clients`, `memory`, `persistence`, `stats`, `replication` and `keyspace`
//! laid out as Redis lays them out (`# Name`, `field:value` lines, a blank line between
//! sections; redis-cli and redis-benchmark parse some of them), plus `# Remora`, whose
//! lines come from the caller's callback. It never changes what it reports.

use alloc::string::String;
use core::fmt::Write as _;

use crate::connection::Ctx;
use crate::db::Db;

/// The version INFO reports: the Redis whose replies this server reproduces.
pub const REDIS_VERSION: &str = "7.0.15";

/// What the server counts, and what it says about itself.
#[derive(Clone, Debug)]
pub struct Stats {
    /// Clock reading at start, in milliseconds.
    pub start_ms: u64,
    /// `os:` of INFO.
    pub os: &'static str,
    /// `multiplexing_api:` of INFO.
    pub multiplexing_api: &'static str,
    pub process_id: u32,
    pub run_id: [u8; 40],
    pub connected_clients: usize,
    pub total_connections_received: u64,
    pub rejected_connections: u64,
    pub total_commands_processed: u64,
    pub total_net_input_bytes: u64,
    pub total_net_output_bytes: u64,
    /// Bytes held by connections' input and output buffers right now.
    pub client_buffer_bytes: usize,
}

impl Stats {
    /// Counters at zero; `start_ms` seeds the run id.
    pub fn new(
        start_ms: u64,
        os: &'static str,
        multiplexing_api: &'static str,
        process_id: u32,
    ) -> Stats {
        let mut run_id = [b'0'; 40];
        let mut seed = start_ms ^ (u64::from(process_id) << 32) ^ (&run_id as *const _ as u64);
        for chunk in run_id.chunks_mut(16) {
            seed = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(0x2545_f491_4f6c_dd1d);
            let mut v = seed ^ (seed >> 29);
            for b in chunk {
                *b = b"0123456789abcdef"[(v & 15) as usize];
                v >>= 4;
            }
        }
        Stats {
            start_ms,
            os,
            multiplexing_api,
            process_id,
            run_id,
            connected_clients: 0,
            total_connections_received: 0,
            rejected_connections: 0,
            total_commands_processed: 0,
            total_net_input_bytes: 0,
            total_net_output_bytes: 0,
            client_buffer_bytes: 0,
        }
    }

    /// CONFIG RESETSTAT: the counters (not the gauges) back to zero.
    pub fn reset(&mut self) {
        self.total_connections_received = 0;
        self.rejected_connections = 0;
        self.total_commands_processed = 0;
        self.total_net_input_bytes = 0;
        self.total_net_output_bytes = 0;
    }
}

/// Redis's `bytesToHuman`.
fn human(out: &mut String, n: u64) {
    let d = n as f64;
    let _ = match n {
        n if n < 1 << 10 => write!(out, "{n}B"),
        n if n < 1 << 20 => write!(out, "{:.2}K", d / 1024.0),
        n if n < 1 << 30 => write!(out, "{:.2}M", d / (1u64 << 20) as f64),
        n if n < 1 << 40 => write!(out, "{:.2}G", d / (1u64 << 30) as f64),
        n if n < 1 << 50 => write!(out, "{:.2}T", d / (1u64 << 40) as f64),
        _ => write!(out, "{:.2}P", d / (1u64 << 50) as f64),
    };
}

const SECTIONS: &[&str] =
    &["server", "clients", "memory", "persistence", "stats", "replication", "keyspace", "remora"];

/// The INFO text for the sections `args` asks for (none, `default`, `all`, `everything`:
/// every section; unknown names are ignored).
pub fn render(args: &[&[u8]], db: &Db, ctx: &Ctx<'_>, now: u64) -> String {
    let mut wanted = [args.is_empty(); SECTIONS.len()];
    for arg in args {
        let arg = crate::reply::c_str(arg);
        let all =
            ["default", "all", "everything"].iter().any(|k| arg.eq_ignore_ascii_case(k.as_bytes()));
        for (i, name) in SECTIONS.iter().enumerate() {
            if all || arg.eq_ignore_ascii_case(name.as_bytes()) {
                wanted[i] = true;
            }
        }
    }
    let stats = &*ctx.stats;
    let config = ctx.config;
    let mut out = String::new();
    let mut first = true;
    let mut section = |out: &mut String, name: &str| {
        if !first {
            out.push_str("\r\n");
        }
        first = false;
        let _ = write!(out, "# {name}\r\n");
    };
    let uptime = now.saturating_sub(stats.start_ms) / 1000;
    if wanted[0] {
        section(&mut out, "Server");
        let _ = write!(
            out,
            "redis_version:{REDIS_VERSION}\r\nredis_git_sha1:00000000\r\nredis_git_dirty:0\r\n\
             redis_mode:standalone\r\nos:{}\r\narch_bits:64\r\nmultiplexing_api:{}\r\n\
             process_id:{}\r\nrun_id:{}\r\ntcp_port:{}\r\nserver_time_usec:{}\r\n\
             uptime_in_seconds:{uptime}\r\nuptime_in_days:{}\r\nhz:{}\r\nconfigured_hz:{}\r\n\
             executable:\r\nconfig_file:\r\nio_threads_active:0\r\n",
            stats.os,
            stats.multiplexing_api,
            stats.process_id,
            core::str::from_utf8(&stats.run_id).unwrap_or(""),
            config.port,
            now.saturating_mul(1000),
            uptime / 86400,
            config.hz,
            config.hz,
        );
    }
    if wanted[1] {
        section(&mut out, "Clients");
        let _ = write!(
            out,
            "connected_clients:{}\r\ncluster_connections:0\r\nmaxclients:{}\r\n\
             blocked_clients:0\r\ntracking_clients:0\r\nclients_in_timeout_table:0\r\n",
            stats.connected_clients, config.maxclients,
        );
    }
    if wanted[2] {
        section(&mut out, "Memory");
        let dataset = db.used_bytes() as u64;
        let used = dataset + stats.client_buffer_bytes as u64;
        let _ = write!(out, "used_memory:{used}\r\nused_memory_human:");
        human(&mut out, used);
        let _ = write!(
            out,
            "\r\nused_memory_dataset:{dataset}\r\nmaxmemory:0\r\nmaxmemory_human:0B\r\n\
             maxmemory_policy:noeviction\r\n"
        );
    }
    if wanted[3] {
        section(&mut out, "Persistence");
        let _ = write!(
            out,
            "loading:0\r\nasync_loading:0\r\nrdb_changes_since_last_save:0\r\n\
             rdb_bgsave_in_progress:0\r\nrdb_last_save_time:{}\r\nrdb_last_bgsave_status:ok\r\n\
             aof_enabled:0\r\naof_rewrite_in_progress:0\r\n",
            stats.start_ms / 1000,
        );
    }
    if wanted[4] {
        section(&mut out, "Stats");
        let _ = write!(
            out,
            "total_connections_received:{}\r\ntotal_commands_processed:{}\r\n\
             instantaneous_ops_per_sec:0\r\ntotal_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\n\
             rejected_connections:{}\r\nexpired_keys:{}\r\nevicted_keys:0\r\n\
             keyspace_hits:{}\r\nkeyspace_misses:{}\r\n",
            stats.total_connections_received,
            stats.total_commands_processed,
            stats.total_net_input_bytes,
            stats.total_net_output_bytes,
            stats.rejected_connections,
            db.stats.expired_keys,
            db.stats.hits,
            db.stats.misses,
        );
    }
    if wanted[5] {
        section(&mut out, "Replication");
        out.push_str("role:master\r\nconnected_slaves:0\r\n");
    }
    if wanted[6] {
        section(&mut out, "Keyspace");
        if !db.is_empty() {
            let _ = write!(out, "db0:keys={},expires={},avg_ttl=0\r\n", db.len(), db.expires_len());
        }
    }
    if wanted[7]
        && let Some(fill) = config.remora_info
    {
        section(&mut out, "Remora");
        let mut text = String::new();
        fill(&mut text);
        for line in text.lines().filter(|l| !l.is_empty()) {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out
}

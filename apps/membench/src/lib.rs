//! `membench`: allocates a far working set several times larger than local memory,
//! fills it, walks it in a chosen pattern (sequential, reverse, strided, uniform random,
//! zipfian; read-only or read-verify-write), verifies every value it reads, and prints one
//! summary line: `membench: key=value ...` with `integrity=ok` (or the first mismatch),
//! fault counts by kind, prefetch counts (issued, hits, waste, demand faults avoided) and
//! fault latency percentiles.
//!
//! Every page holds a self-describing record at a page-dependent offset: its page number,
//! a version, and a checksum of both. The version each page should have is kept in a
//! separate array (also in far memory), so a lost write-back shows as a stale version.
//!
//! Parameters (command line overrides the image config): `pattern=`, `mode=ro|rw`,
//! `size=<MiB>`, `ops=`, `stride=<pages>`, `seed=`, `theta=<zipf skew x100>`,
//! `hint=<ops>` (announce each page that many operations ahead with
//! [`remora_prefetch::hint`], as an application that knows its future would).
//!
//! With `trace=<pages>` on the command line the image records the far pages reached;
//! membench then prints them after the summary, as lines `trace: <page> <page> ...`
//! (decimal page numbers in the far region, oldest first) that the prefetch library's
//! replay tool reads.

#![no_std]

extern crate alloc;

use alloc::vec::Vec;
use core::fmt::Write as _;

use remora_kvm::{BootInfo, ExitStatus, println, time};
use remora_pager::observe;

const PAGE: usize = 4096;
const WORDS_PER_PAGE: usize = PAGE / 8;

/// Knobs with their defaults from the image config.
pub struct Defaults {
    pub working_set: usize,
    pub local_memory: usize,
    pub ops: u64,
    pub pattern: &'static str,
    pub mode: &'static str,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Pattern {
    Sequential,
    Reverse,
    Strided,
    Random,
    Zipfian,
}

impl Pattern {
    fn parse(s: &str) -> Option<Pattern> {
        Some(match s {
            "sequential" | "seq" => Pattern::Sequential,
            "reverse" => Pattern::Reverse,
            "strided" | "stride" => Pattern::Strided,
            "random" | "uniform" => Pattern::Random,
            "zipfian" | "zipf" => Pattern::Zipfian,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Pattern::Sequential => "sequential",
            Pattern::Reverse => "reverse",
            Pattern::Strided => "strided",
            Pattern::Random => "random",
            Pattern::Zipfian => "zipfian",
        }
    }
}

/// xorshift64*: small, fast, good enough to spread accesses.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `[0, n)`.
    fn below(&mut self, n: u64) -> u64 {
        ((self.next() >> 32) * n) >> 32
    }
}

/// Zipfian ranks over `n` items with skew `theta` (Gray et al.'s generator, as in YCSB),
/// scattered over the pages so hot pages are not neighbours.
struct Zipf {
    n: u64,
    theta: f64,
    alpha: f64,
    zetan: f64,
    eta: f64,
}

fn powf(base: f64, exp: f64) -> f64 {
    // exp(exp * ln(base)) with series that are accurate enough for a workload generator.
    exp_approx(exp * ln_approx(base))
}

fn ln_approx(x: f64) -> f64 {
    // ln(x) = 2 artanh((x-1)/(x+1)), after scaling x into [0.5, 2).
    let mut x = x;
    let mut k = 0.0;
    while x > 2.0 {
        x /= 2.0;
        k += 1.0;
    }
    while x < 0.5 {
        x *= 2.0;
        k -= 1.0;
    }
    let y = (x - 1.0) / (x + 1.0);
    let y2 = y * y;
    let mut term = y;
    let mut sum = 0.0;
    let mut i = 1.0;
    while i < 40.0 {
        sum += term / i;
        term *= y2;
        i += 2.0;
    }
    2.0 * sum + k * core::f64::consts::LN_2
}

fn exp_approx(x: f64) -> f64 {
    // e^x = (e^(x/2^k))^(2^k) with a Taylor series for the small part.
    let mut k = 0;
    let mut r = x;
    while !(-0.5..=0.5).contains(&r) {
        r /= 2.0;
        k += 1;
    }
    let mut sum = 1.0;
    let mut term = 1.0;
    for i in 1..20 {
        term *= r / i as f64;
        sum += term;
    }
    for _ in 0..k {
        sum *= sum;
    }
    sum
}

impl Zipf {
    fn new(n: u64, theta: f64) -> Zipf {
        let zeta = |m: u64| (1..=m).map(|i| 1.0 / powf(i as f64, theta)).sum::<f64>();
        let zetan = zeta(n);
        let zeta2 = zeta(2.min(n));
        let alpha = 1.0 / (1.0 - theta);
        let eta = (1.0 - powf(2.0 / n as f64, 1.0 - theta)) / (1.0 - zeta2 / zetan);
        Zipf { n, theta, alpha, zetan, eta }
    }

    fn next(&self, rng: &mut Rng) -> u64 {
        let u = (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
        let uz = u * self.zetan;
        let rank = if uz < 1.0 {
            0
        } else if uz < 1.0 + powf(0.5, self.theta) {
            1
        } else {
            ((self.n as f64) * powf(self.eta * u - self.eta + 1.0, self.alpha)) as u64
        };
        // Scatter ranks over pages.
        (rank.min(self.n - 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)) % self.n
    }
}

fn mix(page: u64, version: u64, seed: u64) -> u64 {
    let mut x = page ^ version.rotate_left(32) ^ seed;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x
}

/// Where in its page a page's record lives: spread so that not every access hits the
/// same cache line, always whole records inside the page.
fn slot(page: u64) -> usize {
    page as usize * 7 % (WORDS_PER_PAGE - 3)
}

/// Nanoseconds printed as microseconds with two decimals.
struct Micros(u64);

impl core::fmt::Display for Micros {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}.{:02}", self.0 / 1000, self.0 % 1000 / 10)
    }
}

/// The pages of a walk, one per operation.
#[derive(Clone)]
struct Walk<'z> {
    pattern: Pattern,
    pages: u64,
    stride: u64,
    rng: Rng,
    zipf: Option<&'z Zipf>,
    op: u64,
}

impl Walk<'_> {
    fn next_page(&mut self) -> u64 {
        let op = self.op;
        self.op += 1;
        match self.pattern {
            Pattern::Sequential => op % self.pages,
            Pattern::Reverse => self.pages - 1 - op % self.pages,
            Pattern::Strided => (op * self.stride) % self.pages,
            Pattern::Random => self.rng.below(self.pages),
            Pattern::Zipfian => self.zipf.map_or(0, |z| z.next(&mut self.rng)),
        }
    }
}

/// Prints the recorded trace, if the image records one, as `trace:` lines.
fn print_trace() {
    let mut buf = [0u64; 256];
    let Some(first) = observe::read_trace(0, &mut buf) else { return };
    println!(
        "trace: # far pages reached, oldest first: {} kept of {} recorded",
        first.kept, first.recorded
    );
    let mut from = 0;
    let mut chunk = first;
    while chunk.copied > 0 {
        let mut line = heapless::String::<4096>::new();
        let _ = line.push_str("trace:");
        for page in &buf[..chunk.copied] {
            let _ = write!(line, " {page}");
        }
        println!("{line}");
        from += chunk.copied;
        match observe::read_trace(from, &mut buf) {
            Some(next) => chunk = next,
            None => break,
        }
    }
}

struct Mismatch {
    page: u64,
    op: u64,
    expected_version: u64,
    found: [u64; 3],
}

pub fn main(boot: &'static BootInfo, defaults: Defaults) -> ExitStatus {
    let args = boot.cmdline;
    let parse = |key: &str| args.get(key).and_then(|v| v.parse::<u64>().ok());
    let pattern_name = args.get("pattern").unwrap_or(defaults.pattern);
    let Some(pattern) = Pattern::parse(pattern_name) else {
        println!(
            "membench: error=unknown pattern {pattern_name:?} (sequential, reverse, strided, random, zipfian)"
        );
        return ExitStatus::Failure;
    };
    let mode = args.get("mode").unwrap_or(defaults.mode);
    let write = match mode {
        "rw" => true,
        "ro" => false,
        other => {
            println!("membench: error=unknown mode {other:?} (ro, rw)");
            return ExitStatus::Failure;
        }
    };
    let bytes = match parse("size") {
        Some(mib) => mib as usize * 1024 * 1024,
        None if defaults.working_set > 0 => defaults.working_set,
        None => defaults.local_memory * 8,
    };
    let pages = (bytes / PAGE).max(1) as u64;
    let ops = parse("ops").unwrap_or(defaults.ops);
    let stride = parse("stride").unwrap_or(3).max(1);
    let seed = parse("seed").unwrap_or(0x5eed);
    let theta = parse("theta").unwrap_or(99).min(99) as f64 / 100.0;
    let hint_ahead = parse("hint").unwrap_or(0);

    // The working set and the expected versions: ordinary vectors, in far memory.
    let mut data: Vec<u64> = Vec::new();
    if data.try_reserve_exact(pages as usize * WORDS_PER_PAGE).is_err() {
        println!(
            "membench: error=cannot allocate {} MiB of far memory (rmem.region_size too small?)",
            bytes >> 20
        );
        return ExitStatus::Failure;
    }
    let mut versions: Vec<u32> = alloc::vec![0; pages as usize];
    let fill_started = time::now_ns();
    // One pass: every page written once, with its record.
    for page in 0..pages {
        let record = slot(page);
        data.extend((0..WORDS_PER_PAGE).map(|w| match w.wrapping_sub(record) {
            0 => page ^ seed,
            1 => 0,
            2 => mix(page, 0, seed),
            _ => 0,
        }));
    }
    let fill_ns = time::now_ns() - fill_started;
    // The wire's own round trip, measured now, in this run, for comparison.
    let rtt = observe::probe_round_trips(parse("rtt_samples").unwrap_or(1000) as usize);
    let before = observe::current_stats();

    let zipf = (pattern == Pattern::Zipfian).then(|| Zipf::new(pages, theta));
    let mut walk = Walk { pattern, pages, stride, rng: Rng(seed | 1), zipf: zipf.as_ref(), op: 0 };
    // The same walk, `hint` operations ahead: what the hints announce.
    let mut ahead = walk.clone();
    if hint_ahead > 0 {
        for _ in 0..hint_ahead {
            ahead.next_page();
        }
    }
    let mut mismatch = None;
    let started = time::now_ns();
    for op in 0..ops {
        let page = walk.next_page();
        if hint_ahead > 0 {
            // The record the walk will read `hint` operations from now.
            let future = ahead.next_page();
            let at = future as usize * WORDS_PER_PAGE + slot(future);
            remora_prefetch::hint(data.as_ptr() as usize + at * 8, 3 * 8);
        }
        let at = page as usize * WORDS_PER_PAGE + slot(page);
        let found = [data[at], data[at + 1], data[at + 2]];
        let expected = versions[page as usize] as u64;
        if found != [page ^ seed, expected, mix(page, expected, seed)] {
            mismatch = Some(Mismatch { page, op, expected_version: expected, found });
            break;
        }
        if write {
            let next = expected + 1;
            data[at + 1] = next;
            data[at + 2] = mix(page, next, seed);
            versions[page as usize] = next as u32;
        }
    }
    let elapsed = time::now_ns() - started;
    let done_ops = mismatch.as_ref().map_or(ops, |m| m.op);

    let mut line = heapless::String::<2048>::new();
    let _ = write!(
        line,
        "membench: pattern={} mode={mode} far_mib={} local_mib={} ops={done_ops} elapsed_ms={} ops_per_s={} fill_ms={}",
        pattern.name(),
        (pages as usize * PAGE) >> 20,
        defaults.local_memory >> 20,
        elapsed / 1_000_000,
        (done_ops as u128 * 1_000_000_000 / elapsed.max(1) as u128) as u64,
        fill_ns / 1_000_000,
    );
    match &mismatch {
        None => {
            let _ = write!(line, " integrity=ok");
        }
        Some(m) => {
            let _ = write!(
                line,
                " integrity=MISMATCH page={} op={} expected_version={} found={:#x},{},{:#x}",
                m.page, m.op, m.expected_version, m.found[0], m.found[1], m.found[2]
            );
        }
    }
    if let (Some(before), Some(after)) = (before, observe::current_stats()) {
        let d = |f: fn(&remora_pager::PagerStats) -> u64| f(&after) - f(&before);
        let fault = after.fault_latency.since(&before.fault_latency);
        let fetch = after.fetch_latency.since(&before.fetch_latency);
        let us = |ns: u64| Micros(ns);
        let _ = write!(
            line,
            " faults={} zero_fill={} remote={} in_flight={} writing_back={} evicted_clean={} evicted_dirty={} \
             remote_reads={} remote_writes={} direct_reclaims={} prefetch_issued={} prefetch_hinted={} \
             prefetch_hits={} prefetch_waste={} faults_avoided={} fault_p50_us={} fault_p99_us={} fault_mean_us={} \
             fetch_p50_us={} fetch_mean_us={}",
            d(|s| s.faults()),
            d(|s| s.faults_zero_fill),
            d(|s| s.faults_remote),
            d(|s| s.faults_in_flight),
            d(|s| s.faults_writing_back),
            d(|s| s.evicted_clean),
            d(|s| s.evicted_dirty),
            d(|s| s.remote_reads),
            d(|s| s.remote_writes),
            d(|s| s.direct_reclaims),
            d(|s| s.prefetch_issued),
            d(|s| s.prefetch_hinted),
            d(|s| s.prefetch_hits),
            d(|s| s.prefetch_waste),
            d(|s| s.faults_avoided),
            us(fault.percentile(50.0)),
            us(fault.percentile(99.0)),
            us(fault.mean()),
            us(fetch.percentile(50.0)),
            us(fetch.mean()),
        );
        if let Some(rtt) = rtt.filter(|r| r.count() > 0) {
            let ratio = fault.percentile(50.0) as f64 / rtt.percentile(50.0).max(1) as f64;
            let mean_ratio = fault.mean() as f64 / rtt.mean().max(1) as f64;
            let _ = write!(
                line,
                " rtt_p50_us={} rtt_p99_us={} rtt_mean_us={} fault_over_rtt_p50={:.2} fault_over_rtt_mean={:.2}",
                us(rtt.percentile(50.0)),
                us(rtt.percentile(99.0)),
                us(rtt.mean()),
                ratio,
                mean_ratio
            );
        }
    }
    println!("{line}");
    print_trace();
    drop(versions);
    drop(data);
    if mismatch.is_some() { ExitStatus::Failure } else { ExitStatus::Success }
}

//! The bench's outputs: `results.csv` (one row per measurement), `report.md` (the tables
//! of the seed's Figure 2 and the ratios it reports) and `figure2.svg` (one panel per
//! workload, throughput per local-memory fraction, one bar per system).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

use super::workload::Workload;

/// One measurement: a system serving a workload with a local-memory fraction.
#[derive(Clone, Debug)]
pub struct Row {
    pub system: String,
    pub workload: Workload,
    /// Local memory as a fraction of the working set (1.0, 0.5, 0.25, 0.125).
    pub fraction: f64,
    pub local_mib: u64,
    pub working_set_mib: u64,
    pub requests: u64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Remora: demand faults, pages fetched and prefetched pages wasted during the run.
    pub demand_faults: Option<u64>,
    pub pages_fetched: Option<u64>,
    pub prefetch_waste: Option<u64>,
    /// Linux: pages swapped in during the run.
    pub swapped_in: Option<u64>,
    /// Why the row has no figures, if it failed.
    pub error: Option<String>,
}

fn opt(v: Option<u64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

pub fn write_csv(path: &Path, rows: &[Row]) -> Result<()> {
    let mut out = String::from(
        "system,workload,local_fraction,local_mib,working_set_mib,requests,rps,p50_ms,p99_ms,demand_faults,pages_fetched,prefetch_waste,swapped_in,error\n",
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{:.1},{:.3},{:.3},{},{},{},{},{}",
            r.system,
            r.workload.name(),
            r.fraction,
            r.local_mib,
            r.working_set_mib,
            r.requests,
            r.rps,
            r.p50_ms,
            r.p99_ms,
            opt(r.demand_faults),
            opt(r.pages_fetched),
            opt(r.prefetch_waste),
            opt(r.swapped_in),
            r.error.as_deref().unwrap_or("").replace([',', '\n'], ";")
        );
    }
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}

fn fractions(rows: &[Row]) -> Vec<f64> {
    let mut f: Vec<f64> = rows.iter().map(|r| r.fraction).collect();
    f.sort_by(|a, b| b.partial_cmp(a).unwrap_or(std::cmp::Ordering::Equal));
    f.dedup();
    f
}

fn systems(rows: &[Row]) -> Vec<String> {
    let mut s: Vec<String> = Vec::new();
    for r in rows {
        if !s.contains(&r.system) {
            s.push(r.system.clone());
        }
    }
    s
}

fn find<'a>(rows: &'a [Row], system: &str, workload: Workload, fraction: f64) -> Option<&'a Row> {
    rows.iter().find(|r| {
        r.system == system && r.workload == workload && r.fraction == fraction && r.error.is_none()
    })
}

fn percent(f: f64) -> String {
    format!("{}%", (f * 1000.0).round() / 10.0)
}

/// The markdown report.
pub fn markdown(rows: &[Row], header: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Remora: the seed's Figure 2\n\n{header}\n");
    let fracs = fractions(rows);
    for workload in Workload::ALL {
        if !rows.iter().any(|r| r.workload == workload) {
            continue;
        }
        let _ = writeln!(out, "## {} — requests per second (p99 ms)\n", workload.name());
        let _ = write!(out, "| system |");
        for f in &fracs {
            let _ = write!(out, " local {} |", percent(*f));
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "|---|{}", "---|".repeat(fracs.len()));
        for system in systems(rows) {
            let _ = write!(out, "| {system} |");
            for f in &fracs {
                match rows
                    .iter()
                    .find(|r| r.system == system && r.workload == workload && r.fraction == *f)
                {
                    Some(r) if r.error.is_none() => {
                        let _ = write!(out, " {:.0} ({:.2}) |", r.rps, r.p99_ms);
                    }
                    Some(r) => {
                        let _ = write!(out, " failed: {} |", r.error.as_deref().unwrap_or("?"));
                    }
                    None => {
                        let _ = write!(out, " — |");
                    }
                }
            }
            let _ = writeln!(out);
        }
        let _ = writeln!(out);
        if rows.iter().any(|r| r.workload == workload && r.demand_faults.is_some()) {
            let _ = writeln!(
                out,
                "Remora's pager during the run (demand faults / pages fetched / prefetches wasted):\n"
            );
            let _ = writeln!(
                out,
                "| system |{}",
                fracs.iter().map(|f| format!(" local {} |", percent(*f))).collect::<String>()
            );
            let _ = writeln!(out, "|---|{}", "---|".repeat(fracs.len()));
            for system in systems(rows).iter().filter(|s| s.starts_with("remora")) {
                let _ = write!(out, "| {system} |");
                for f in &fracs {
                    match find(rows, system, workload, *f) {
                        Some(r) => {
                            let _ = write!(
                                out,
                                " {} / {} / {} |",
                                opt(r.demand_faults),
                                opt(r.pages_fetched),
                                opt(r.prefetch_waste)
                            );
                        }
                        None => {
                            let _ = write!(out, " — |");
                        }
                    }
                }
                let _ = writeln!(out);
            }
            let _ = writeln!(out);
        }
    }

    let _ = writeln!(out, "## Ratios the seed reports\n");
    let ratio = |a: Option<&Row>, b: Option<&Row>, f: fn(&Row) -> f64| -> String {
        match (a, b) {
            (Some(a), Some(b)) if f(b) > 0.0 => format!("{:.2}x", f(a) / f(b)),
            _ => "—".into(),
        }
    };
    let _ = writeln!(
        out,
        "| ratio | workload |{}",
        fracs.iter().map(|f| format!(" {} |", percent(*f))).collect::<String>()
    );
    let _ = writeln!(out, "|---|---|{}", "---|".repeat(fracs.len()));
    for remora in systems(rows).iter().filter(|s| s.starts_with("remora")) {
        for workload in Workload::ALL {
            let _ = write!(out, "| {remora} / linux-redis throughput | {} |", workload.name());
            for f in &fracs {
                let _ = write!(
                    out,
                    " {} |",
                    ratio(
                        find(rows, remora, workload, *f),
                        find(rows, "linux-redis", workload, *f),
                        |r| r.rps
                    )
                );
            }
            let _ = writeln!(out);
            let _ = write!(out, "| linux-redis / {remora} p99 latency | {} |", workload.name());
            for f in &fracs {
                let _ = write!(
                    out,
                    " {} |",
                    ratio(
                        find(rows, "linux-redis", workload, *f),
                        find(rows, remora, workload, *f),
                        |r| r.p99_ms
                    )
                );
            }
            let _ = writeln!(out);
        }
    }
    let _ = write!(out, "| remora-redis / remora-sequential throughput | lrange |");
    for f in &fracs {
        let _ = write!(
            out,
            " {} |",
            ratio(
                find(rows, "remora-redis", Workload::Lrange, *f),
                find(rows, "remora-sequential", Workload::Lrange, *f),
                |r| r.rps
            )
        );
    }
    let _ = writeln!(out);
    for workload in Workload::ALL {
        let _ = write!(
            out,
            "| remora-redis / linux-ours throughput (same server) | {} |",
            workload.name()
        );
        for f in &fracs {
            let _ = write!(
                out,
                " {} |",
                ratio(
                    find(rows, "remora-redis", workload, *f),
                    find(rows, "linux-ours", workload, *f),
                    |r| r.rps
                )
            );
        }
        let _ = writeln!(out);
    }
    out
}

/// The chart, as SVG: one panel per workload, groups of bars per fraction.
pub fn svg(rows: &[Row]) -> String {
    const PANEL_W: f64 = 560.0;
    const PANEL_H: f64 = 300.0;
    const MARGIN: f64 = 60.0;
    const COLOURS: [&str; 8] =
        ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#9c755f"];
    let fracs = fractions(rows);
    let systems = systems(rows);
    let workloads: Vec<Workload> =
        Workload::ALL.into_iter().filter(|w| rows.iter().any(|r| r.workload == *w)).collect();
    let width = MARGIN + workloads.len() as f64 * (PANEL_W + MARGIN);
    let height = PANEL_H + 2.0 * MARGIN + 20.0 * systems.len() as f64;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    for (p, workload) in workloads.iter().enumerate() {
        let x0 = MARGIN + p as f64 * (PANEL_W + MARGIN);
        let y0 = MARGIN;
        let max =
            rows.iter().filter(|r| r.workload == *workload).map(|r| r.rps).fold(1.0, f64::max)
                * 1.1;
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" font-size=\"14\" text-anchor=\"middle\">{} (requests/s)</text>",
            x0 + PANEL_W / 2.0,
            y0 - 20.0,
            workload.name()
        );
        let _ = writeln!(
            out,
            "<line x1=\"{x0}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>",
            y0 + PANEL_H,
            x0 + PANEL_W,
            y0 + PANEL_H
        );
        let _ = writeln!(
            out,
            "<line x1=\"{x0}\" y1=\"{y0}\" x2=\"{x0}\" y2=\"{}\" stroke=\"black\"/>",
            y0 + PANEL_H
        );
        for tick in 0..=4 {
            let v = max * tick as f64 / 4.0;
            let y = y0 + PANEL_H - PANEL_H * tick as f64 / 4.0;
            let _ = writeln!(
                out,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{:.0}</text>",
                x0 - 4.0,
                y + 4.0,
                v
            );
        }
        let group_w = PANEL_W / fracs.len().max(1) as f64;
        let bar_w = group_w * 0.8 / systems.len().max(1) as f64;
        for (g, f) in fracs.iter().enumerate() {
            let gx = x0 + g as f64 * group_w + group_w * 0.1;
            let _ = writeln!(
                out,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">local {}</text>",
                gx + group_w * 0.4,
                y0 + PANEL_H + 16.0,
                percent(*f)
            );
            for (s, system) in systems.iter().enumerate() {
                if let Some(r) = find(rows, system, *workload, *f) {
                    let h = PANEL_H * r.rps / max;
                    let _ = writeln!(
                        out,
                        "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{system}: {:.0} req/s, p99 {:.2} ms</title></rect>",
                        gx + s as f64 * bar_w,
                        y0 + PANEL_H - h,
                        bar_w * 0.95,
                        h,
                        COLOURS[s % COLOURS.len()],
                        r.rps,
                        r.p99_ms
                    );
                }
            }
        }
    }
    for (s, system) in systems.iter().enumerate() {
        let y = MARGIN + PANEL_H + 40.0 + 18.0 * s as f64;
        let _ = writeln!(
            out,
            "<rect x=\"{MARGIN}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{}\"/>",
            y - 10.0,
            COLOURS[s % COLOURS.len()]
        );
        let _ = writeln!(out, "<text x=\"{}\" y=\"{y}\">{system}</text>", MARGIN + 18.0);
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(system: &str, workload: Workload, fraction: f64, rps: f64) -> Row {
        Row {
            system: system.into(),
            workload,
            fraction,
            local_mib: 8,
            working_set_mib: 64,
            requests: 100,
            rps,
            p50_ms: 1.0,
            p99_ms: 2.0,
            demand_faults: system.starts_with("remora").then_some(10),
            pages_fetched: None,
            prefetch_waste: None,
            swapped_in: None,
            error: None,
        }
    }

    #[test]
    fn report_has_every_row_and_the_ratios() {
        let rows = vec![
            row("remora-redis", Workload::Lrange, 0.125, 300.0),
            row("remora-sequential", Workload::Lrange, 0.125, 150.0),
            row("linux-redis", Workload::Lrange, 0.125, 100.0),
            row("linux-redis", Workload::GetMix, 1.0, 100.0),
        ];
        let md = markdown(&rows, "test");
        assert!(md.contains("| remora-redis | — | 300 (2.00) |"), "{md}");
        assert!(
            md.contains("| remora-redis / remora-sequential throughput | lrange | — | 2.00x |"),
            "{md}"
        );
        assert!(
            md.contains("| remora-redis / linux-redis throughput | lrange | — | 3.00x |"),
            "{md}"
        );
        let chart = svg(&rows);
        assert_eq!(chart.matches("<rect x=").count(), 4 + 3, "4 bars and 3 legend swatches");
    }
}

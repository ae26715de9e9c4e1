//! `replay`: runs fault traces through each prefetch policy over a simulated pager and
//! prints what each one cost: demand faults, pages fetched, prefetch hits, waste, and the
//! page payload on the wire.
//!
//! ```text
//! cargo run -p remora-prefetch --example replay -- [--local-pages 64] [--queue-depth 32]
//!     [--max-window 8] [--low-watermark 4] [--high-watermark 8] libs/prefetch/traces/*.trace
//! ```
//!
//! A trace file holds decimal far page numbers (`#` comments), or is a console log with
//! `trace:` lines, as membench prints them with `trace=<pages>` on the image's command
//! line. See `sim.rs` for what is simulated.

mod sim;

use std::process::ExitCode;

const USAGE: &str = "usage: replay [--local-pages N] [--queue-depth N] [--max-window N] \
[--low-watermark PERCENT] [--high-watermark PERCENT] TRACE...";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(table) => {
            print!("{table}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("replay: {message}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Vec<String>) -> Result<String, String> {
    let mut setup = sim::Setup::default();
    let mut files = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut number = |what: &str| -> Result<u64, String> {
            let value = args.next().ok_or_else(|| format!("{what} needs a number"))?;
            value.parse().map_err(|_| format!("{what} {value}: not a number"))
        };
        match arg.as_str() {
            "--local-pages" => setup.local_pages = number("--local-pages")?.max(2) as usize,
            "--queue-depth" => setup.queue_depth = number("--queue-depth")?.max(1) as usize,
            "--max-window" => setup.max_window = number("--max-window")?.clamp(1, 32) as u32,
            "--low-watermark" => setup.low_watermark = number("--low-watermark")?.min(90) as u32,
            "--high-watermark" => setup.high_watermark = number("--high-watermark")?.min(90) as u32,
            "-h" | "--help" => return Err("prints a table per trace and policy".into()),
            flag if flag.starts_with("--") => return Err(format!("unknown option {flag}")),
            file => files.push(file.to_string()),
        }
    }
    if files.is_empty() {
        return Err("no trace files given".into());
    }
    let mut rows = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
        let trace = sim::parse(file, &text)?;
        let name = std::path::Path::new(file)
            .file_name()
            .map_or(file.clone(), |n| n.to_string_lossy().into_owned());
        rows.push((name, sim::replay_all(&trace, &setup)));
    }
    Ok(format!(
        "local pages {}, queue depth {}, max window {}, evictor watermarks {}%..{}%\n{}",
        setup.local_pages,
        setup.queue_depth,
        setup.max_window,
        setup.low_watermark,
        setup.high_watermark,
        sim::table(&rows)
    ))
}

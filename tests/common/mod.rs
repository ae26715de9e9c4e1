//! Shared by the integration tests: build an image once per test binary, boot it under
//! QEMU with the accelerator `cargo xtask test` chose (REMORA_ACCEL, TCG by default).

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use xtask::image;
use xtask::memnode::{NodeChoice, NodeOptions};
use xtask::qemu::{self, Accel, ImageStatus, RunOptions, RunOutcome};

/// Builds the image of `config` (once per test process) and returns its ELF.
pub fn image(config: &str) -> PathBuf {
    static BUILT: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let built = built.get_or_insert_with(HashMap::new);
    if let Some(elf) = built.get(config) {
        return elf.clone();
    }
    let image = image::build(Path::new(config), true)
        .unwrap_or_else(|e| panic!("building {config} failed: {e:#}"));
    built.insert(config.to_string(), image.elf.clone());
    image.elf
}

pub fn accel() -> Accel {
    Accel::from_env_or(Accel::Tcg).expect("REMORA_ACCEL")
}

/// Boots `config` with `cmdline` and returns what happened.
pub fn boot(config: &str, cmdline: &str) -> RunOutcome {
    boot_with(config, RunOptions { cmdline: cmdline.into(), ..options() })
}

pub fn options() -> RunOptions {
    RunOptions { accel: accel(), timeout: Duration::from_secs(120), ..RunOptions::default() }
}

pub fn boot_with(config: &str, mut options: RunOptions) -> RunOutcome {
    let elf = image(config);
    if let Ok(resolved) = image::resolve(Path::new(config)) {
        options.memory_mib = image::guest_memory_mib(&resolved);
        // An image with far memory gets a memory node of its own.
        if resolved.component("rmem").is_some() && options.far_memory.is_none() {
            options.far_memory = Some(NodeChoice::Start(NodeOptions {
                capacity: image::region_size(&resolved) * 2,
                ..NodeOptions::default()
            }));
        }
    }
    let outcome = qemu::run(&elf, &options).expect("QEMU runs");
    eprintln!(
        "---- console of {config} [{}]\n{}\n---- {}",
        options.cmdline, outcome.console, outcome.status
    );
    outcome
}

/// Boots the ktest image with `test=<name>` (plus `extra`).
pub fn ktest(name: &str, extra: &str) -> RunOutcome {
    boot("configs/ktest.toml", &format!("test={name} {extra}"))
}

pub fn assert_exit(outcome: &RunOutcome, status: ImageStatus) {
    assert_eq!(
        outcome.status, status,
        "unexpected end of the image; console:\n{}",
        outcome.console
    );
}

/// Boots `config` against a memory node that loses `drop_rate` of the frames it gets.
pub fn boot_lossy(config: &str, cmdline: &str, drop_rate: f64) -> RunOutcome {
    let resolved = image::resolve(Path::new(config)).expect("config resolves");
    let node = NodeOptions { capacity: image::region_size(&resolved) * 2, drop_rate, seed: 7 };
    boot_with(
        config,
        RunOptions {
            cmdline: cmdline.into(),
            far_memory: Some(NodeChoice::Start(node)),
            ..options()
        },
    )
}

/// The value of `key=` in the line of the console that starts with `prefix`.
pub fn summary_value<'a>(run: &'a RunOutcome, prefix: &str, key: &str) -> Option<&'a str> {
    let line = run.console.lines().find(|l| l.starts_with(prefix))?;
    line.split_whitespace().find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

//! `cargo xtask test`: every test of the project, host tests first, then the integration
//! tests that boot images under QEMU (`tests/` of the image crate).

use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::image::cargo;
use crate::qemu::Accel;

pub fn run_all(accel: Accel, host_only: bool, filter: Option<&str>) -> Result<ExitCode> {
    eprintln!("== host tests (every library and tool)");
    let status = cargo()
        .args(["test"]) // the default members: every host-testable crate
        .status()
        .context("cannot run cargo test")?;
    if !status.success() {
        eprintln!("host tests failed");
        return Ok(ExitCode::FAILURE);
    }
    eprintln!("== the Redis server built for Linux (and compared with a real redis-server)");
    let status = cargo()
        .args(["test", "--package", "app-redis", "--no-default-features", "--features", "std"])
        .status()
        .context("cannot run cargo test")?;
    if !status.success() {
        eprintln!("Redis server tests failed");
        return Ok(ExitCode::FAILURE);
    }
    if std::path::Path::new("/usr/include/infiniband/verbs.h").exists() {
        eprintln!("== memnode with its RDMA side (libibverbs)");
        let status = cargo()
            .args(["test", "--package", "memnode", "--features", "rdma"])
            .status()
            .context("cannot run cargo test")?;
        if !status.success() {
            eprintln!("memnode's RDMA side failed");
            return Ok(ExitCode::FAILURE);
        }
    } else {
        eprintln!("== skipped memnode's RDMA side: libibverbs-dev is not installed");
    }
    if host_only {
        return Ok(ExitCode::SUCCESS);
    }
    let accel = accel.resolve()?;
    eprintln!("== integration tests (images under QEMU with {accel})");
    let mut cmd = cargo();
    cmd.args(["test", "--package", "remora", "--tests"]);
    cmd.env("REMORA_ACCEL", accel.to_string());
    if let Some(f) = filter {
        cmd.args(["--", f]);
    }
    let status = cmd.status().context("cannot run cargo test")?;
    Ok(if status.success() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Crates built for the bare target only (the image's parts that are not host-tested).
const BARE_CRATES: &[&str] = &["remora-kvm"];

/// `cargo xtask lint`: formatting, then clippy with warnings as errors, for the host
/// crates and for every crate of the image built for the bare target.
pub fn lint() -> Result<ExitCode> {
    let run = |what: &str, args: &[&str]| -> Result<bool> {
        eprintln!("== {what}");
        let status = cargo().args(args).status().context("cannot run cargo")?;
        Ok(status.success())
    };
    let mut ok = run("formatting", &["fmt", "--all", "--", "--check"])?;
    ok &= run(
        "clippy, host crates",
        &["clippy", "--workspace", "--all-targets", "--quiet", "--", "-D", "warnings"],
    )?;
    let mut bare = vec!["clippy", "--target", crate::image::TARGET, "--quiet"];
    for krate in BARE_CRATES {
        bare.extend(["--package", krate]);
    }
    bare.extend(["--", "-D", "warnings"]);
    ok &= run("clippy, bare-metal platform", &bare)?;
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

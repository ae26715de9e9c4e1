//! Building an image: resolve its configuration, build the image crate for the bare
//! target with the features the configuration selects, and copy the ELF to
//! `target/images/<name>.elf` beside its resolved configuration.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::config;

pub const TARGET: &str = "x86_64-unknown-none";

/// The repository root (the workspace that holds xtask).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the repository root")
        .to_path_buf()
}

/// Cargo's target directory for this workspace.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() { dir } else { repo_root().join(dir) }
        }
        None => repo_root().join("target"),
    }
}

/// Where images and their resolved configurations go.
pub fn images_dir() -> PathBuf {
    repo_root().join("target").join("images")
}

/// A built image.
#[derive(Clone, Debug)]
pub struct Image {
    pub name: String,
    pub elf: PathBuf,
    pub resolved_config: PathBuf,
    pub resolved: config::Resolved,
}

/// A `cargo` command for inner builds, without the environment of the outer one that
/// would change how the image is compiled.
pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(repo_root());
    for var in
        ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_RUSTFLAGS", "CARGO_BUILD_TARGET"]
    {
        cmd.env_remove(var);
    }
    cmd
}

/// Resolves `config_path` (relative to the current directory or the repository root).
pub fn resolve(config_path: &Path) -> Result<config::Resolved> {
    let root = repo_root();
    let path = if config_path.exists() {
        config_path.to_path_buf()
    } else if root.join(config_path).exists() {
        root.join(config_path)
    } else {
        bail!(
            "no image config at {} (the configs are in {})",
            config_path.display(),
            root.join("configs").display()
        );
    };
    let catalog = config::discover(&root).map_err(|e| anyhow::anyhow!("{e}"))?;
    config::resolve(&catalog, &path).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Builds the image described by `config_path`.
pub fn build(config_path: &Path, quiet: bool) -> Result<Image> {
    let resolved = resolve(config_path)?;
    let name = resolved.image_name().to_string();
    let images = images_dir();
    std::fs::create_dir_all(&images)
        .with_context(|| format!("cannot create {}", images.display()))?;

    // One build at a time in this workspace: the image crate's output file is shared by
    // every image, so build and copy must not interleave with another build.
    let lock = File::create(images.join(".build.lock"))?;
    lock.lock().context("cannot lock target/images/.build.lock")?;

    let resolved_config = images.join(format!("{name}.config.toml"));
    write_if_changed(&resolved_config, &resolved.to_toml())?;

    let features = resolved.cargo_features().join(",");
    let mut cmd = cargo();
    cmd.args(["build", "--release", "--package", "remora", "--target", TARGET]);
    cmd.args(["--no-default-features", "--features", &features]);
    cmd.env("REMORA_CONFIG", &resolved_config);
    if quiet {
        cmd.arg("--quiet");
    }
    let status = cmd.status().context("cannot run cargo")?;
    if !status.success() {
        bail!("building image {name} failed");
    }
    let built = target_dir().join(TARGET).join("release").join("remora");
    let elf = images.join(format!("{name}.elf"));
    std::fs::copy(&built, &elf)
        .with_context(|| format!("cannot copy {} to {}", built.display(), elf.display()))?;
    drop(lock);
    Ok(Image { name, elf, resolved_config, resolved })
}

/// Writes `contents` unless the file already holds them (keeps cargo's change tracking
/// quiet).
fn write_if_changed(path: &Path, contents: &str) -> Result<()> {
    if std::fs::read_to_string(path).ok().as_deref() == Some(contents) {
        return Ok(());
    }
    std::fs::write(path, contents).with_context(|| format!("cannot write {}", path.display()))
}

/// The guest RAM an image asks for (`kvm.guest_memory`), in MiB.
pub fn guest_memory_mib(resolved: &config::Resolved) -> u64 {
    match resolved.option("kvm", "guest_memory") {
        Some(config::Value::Size(bytes)) => (bytes / (1024 * 1024)).max(1),
        _ => 512,
    }
}

/// The far-memory region an image asks of its memory node (`rmem.region_size`), in bytes;
/// 0 without far memory.
pub fn region_size(resolved: &config::Resolved) -> u64 {
    match resolved.option("rmem", "region_size") {
        Some(config::Value::Size(bytes)) => *bytes,
        _ => 0,
    }
}

/// The TCP port the image's application serves (its `port` option; 6379 for Redis), for
/// forwarding.
pub fn service_port(resolved: &config::Resolved) -> u16 {
    match resolved.option(resolved.app(), "port") {
        Some(config::Value::Int(port)) => u16::try_from(*port).unwrap_or(6379),
        _ => 6379,
    }
}

/// A copy of the image config `config` with `[rmem] transport` set to `transport`, written
/// under target/images (for `cargo xtask run --transport`).
pub fn with_transport(config: &Path, transport: &str) -> Result<PathBuf> {
    let path = if config.exists() { config.to_path_buf() } else { repo_root().join(config) };
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut table: toml::Table =
        text.parse().with_context(|| format!("{} is not TOML", path.display()))?;
    let rmem = table.entry("rmem").or_insert_with(|| toml::Value::Table(Default::default()));
    let Some(rmem) = rmem.as_table_mut() else {
        bail!("{}: [rmem] is not a table", path.display())
    };
    rmem.insert("transport".into(), toml::Value::String(transport.into()));
    let image = table.entry("image").or_insert_with(|| toml::Value::Table(Default::default()));
    if let Some(image) = image.as_table_mut() {
        let name = image.get("name").and_then(|n| n.as_str()).unwrap_or("image").to_string();
        image.insert("name".into(), toml::Value::String(format!("{name}-{transport}")));
    }
    let out = images_dir().join(format!(
        "{}-{transport}.toml",
        path.file_stem().and_then(|s| s.to_str()).unwrap_or("image")
    ));
    std::fs::create_dir_all(images_dir())?;
    std::fs::write(&out, toml::to_string(&table)?)?;
    Ok(out)
}

//! The baseline the seed paper beat, rebuilt: a Linux guest that swaps to a remote block
//! device, booted under QEMU by the bench.
//!
//! # What it is
//! Debian's own kernel boots with a small initramfs (busybox, the virtio modules, and the
//! server with its shared libraries). Its `/init` puts the server, either the host's real
//! `redis-server` or our Redis-compatible server built for Linux, in a memory cgroup whose
//! `memory.max` is the local memory of the experiment and whose swap is unlimited, and
//! swaps to `/dev/vda`. That disk is a virtio-blk device whose QEMU backend is an NBD
//! export: `qemu-nbd` serves a raw file in `/dev/shm`, that is, in the memory node's RAM.
//! The server is reached on a host port that QEMU's user networking forwards to the
//! guest's 6379, like the Remora image's own.
//!
//! # How it mirrors Infiniswap
//! Infiniswap (NSDI'17) is a Linux block device whose blocks live in remote memory: the
//! unmodified kernel swaps to it through the ordinary swap path (reclaim, swap cache,
//! readahead, block layer), and the block device turns each request into an RDMA transfer
//! to a memory node that keeps the pages in its RAM. Its experiments limit the
//! application's local memory with a cgroup. Here the same Linux path runs unchanged down
//! to the block layer; the block device is virtio-blk instead of Infiniswap's, and the
//! transfer to the memory node is QEMU's NBD client over a Unix socket instead of RDMA.
//! The Remora image's own far memory crosses the same host the same way (a socket to a
//! process that keeps the pages in RAM), so the two systems differ in the operating
//! system's path, not in the wire. With `Server::Ours`, the application is held equal too.
//!
//! # What differs
//! - No RDMA, no slab placement over several memory nodes, no disk backup: one node, one
//!   export, the whole swap device.
//! - The memory node's transport is a Unix socket on one host (an NBD export can be served
//!   over TCP from another host just as well: `qemu-nbd` with `--bind`).
//! - The guest runs under QEMU like the unikernel, so both pay the same virtualization
//!   (under TCG on these machines, emulation too); absolute numbers are not the paper's.
//! - The guest kernel is Debian's 6.1 with its default settings (swap readahead
//!   `vm.page-cluster` = 3, speculative-execution mitigations on); `GuestOptions::
//!   kernel_args` can change them (`mitigations=off`, `sysctl.vm.page-cluster=0`).
//!
//! # What it must never do
//! Install anything on the host: the kernel and busybox are `apt-get download`ed and
//! unpacked with `dpkg-deb -x` into `target/linux-guest/` (apt's package lists are
//! refreshed when a download fails and we are root). Nothing else is written outside the
//! repository's target directory but the swap file in `/dev/shm` and the sockets of a
//! run, and those go when the guest does.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::image::repo_root;
use crate::memnode;
use crate::qemu::{self, Accel, AppNet};

/// The port the server listens on inside the guest.
pub const GUEST_PORT: u16 = 6379;

/// The metapackage whose dependency names Debian's current kernel package.
const KERNEL_METAPACKAGE: &str = "linux-image-amd64";

/// The modules the guest loads, with their dependencies found in the modules' own
/// `.modinfo` (the package has no `modules.dep`: depmod runs at installation).
const GUEST_MODULES: &[&str] = &["virtio_pci", "virtio_blk", "virtio_net"];

/// Every line `/init` prints for the host starts with this.
const MARK: &str = "remora-linux:";

/// Which server the guest runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Server {
    /// The host's `redis-server` (Debian's package), with persistence off.
    RealRedis,
    /// Our Redis-compatible server built for Linux (`redis-linux` of app-redis), started
    /// as `remora-redis --port 6379` plus `GuestOptions::server_args`.
    Ours(PathBuf),
}

impl Server {
    /// The name `/init` knows it by (`remora.server=`).
    fn guest_name(&self) -> &'static str {
        match self {
            Server::RealRedis => "redis",
            Server::Ours(_) => "remora-redis",
        }
    }
}

/// Everything about one guest.
#[derive(Clone, Debug)]
pub struct GuestOptions {
    pub server: Server,
    /// The server's memory cgroup limit (`memory.max`), in bytes: the local memory.
    pub local_memory: u64,
    /// The size of the remote swap device, in bytes (the memory node's RAM it may use).
    pub swap: u64,
    /// Guest RAM in MiB. Must exceed the local memory by what the kernel and the
    /// initramfs need (at least 64 MiB; `new` gives 192), so that the cgroup, not the
    /// guest, is the limit.
    pub guest_memory_mib: u64,
    /// Virtual CPUs (1, like the Remora image).
    pub cpus: u32,
    /// The host port (on 127.0.0.1) forwarded to the guest's 6379; 0 picks a free one.
    pub host_port: u16,
    pub accel: Accel,
    /// How long the guest may take to boot and start its server.
    pub timeout: Duration,
    /// Extra arguments for the server (after the ones the guest gives it).
    pub server_args: Vec<String>,
    /// Extra kernel command-line arguments: `mitigations=off`, or a sysctl such as
    /// `sysctl.vm.page-cluster=0` (no swap readahead).
    pub kernel_args: String,
    /// Copy the guest's console to our stderr as it arrives.
    pub echo: bool,
}

impl GuestOptions {
    /// A guest for `server` with `local_memory` bytes of local memory, four times that in
    /// swap (at least 256 MiB), and enough RAM for the kernel beside the cgroup.
    pub fn new(server: Server, local_memory: u64) -> GuestOptions {
        GuestOptions {
            server,
            local_memory,
            swap: (local_memory * 4).max(256 << 20),
            guest_memory_mib: local_memory.div_ceil(1 << 20) + 192,
            cpus: 1,
            host_port: 0,
            accel: Accel::Auto,
            timeout: Duration::from_secs(120),
            server_args: Vec::new(),
            kernel_args: String::new(),
            echo: false,
        }
    }

    fn check(&self) -> Result<()> {
        if self.local_memory < 4 << 20 {
            bail!("local memory {} B: at least 4 MiB", self.local_memory);
        }
        if self.swap < 1 << 20 {
            bail!("swap {} B: at least 1 MiB (mkswap needs ten pages)", self.swap);
        }
        let needed = self.local_memory.div_ceil(1 << 20) + 64;
        if self.guest_memory_mib < needed {
            bail!(
                "guest memory {} MiB: it must exceed the local memory ({} MiB) by the kernel's \
                 own needs; give at least {needed} MiB",
                self.guest_memory_mib,
                self.local_memory >> 20
            );
        }
        if self.cpus == 0 {
            bail!("cpus: at least 1");
        }
        if let Server::Ours(path) = &self.server
            && !path.is_file()
        {
            bail!(
                "no server binary at {} (build it: cargo build --release -p app-redis \
                 --no-default-features --features std --bin redis-linux)",
                path.display()
            );
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Assets

/// The kernel and the base initramfs, prepared once under `target/linux-guest/`.
#[derive(Clone, Debug)]
pub struct Assets {
    /// Debian's kernel as the ELF inside its bzImage (`vmlinux`): QEMU boots it through
    /// its PVH note, which skips the firmware's real-mode path and the kernel's own xz
    /// decompression (about 3 s of every boot under TCG). The bzImage is kept beside it
    /// (`vmlinuz`).
    pub kernel: PathBuf,
    /// gzip-compressed newc cpio: busybox, the modules, `/init`, `redis-server` and its
    /// libraries.
    pub initramfs: PathBuf,
    /// The kernel package (`linux-image-6.1.0-48-amd64`) and its version.
    pub kernel_package: String,
    pub kernel_version: String,
    /// The kernel release (`6.1.0-48-amd64`).
    pub kernel_release: String,
}

/// Where the assets are kept.
pub fn assets_dir() -> PathBuf {
    repo_root().join("target").join("linux-guest")
}

/// Prepares the kernel and the base initramfs, or finds them ready (then it costs a few
/// file reads). The first run downloads Debian's kernel package (~70 MB) and busybox
/// (~1 MB) with `apt-get download` and says what it does on stderr.
pub fn prepare_assets() -> Result<Assets> {
    let dir = assets_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // One preparation at a time (tests run in parallel, in several processes).
    let lock = File::create(dir.join(".lock"))?;
    lock.lock().context("cannot lock target/linux-guest/.lock")?;

    let kernel = prepare_kernel(&dir)?;
    let busybox = prepare_busybox(&dir)?;
    let redis = host_redis_server()?;
    let key = format!(
        "kernel {} {}\nbusybox {}\nredis-server {}\ninit {:016x}\n",
        kernel.package,
        kernel.version,
        busybox.version,
        file_fingerprint(&redis)?,
        fnv1a(INIT_SCRIPT.as_bytes()),
    );
    let initramfs = dir.join("initramfs.cpio.gz");
    let key_file = dir.join("initramfs.key");
    if !(initramfs.is_file() && std::fs::read_to_string(&key_file).ok().as_deref() == Some(&key)) {
        progress(
            "building the initramfs (busybox, virtio modules, redis-server and its libraries)",
        );
        let mut cpio = Cpio::default();
        for d in ["bin", "sbin", "usr/bin", "usr/sbin", "proc", "sys", "dev", "tmp", "etc/remora"] {
            cpio.dir(d);
        }
        cpio.char_device("dev/console", 5, 1);
        cpio.char_device("dev/null", 1, 3);
        cpio.file("bin/busybox", 0o755, &read(&busybox.binary)?);
        cpio.symlink("bin/sh", "busybox");
        cpio.file("init", 0o755, INIT_SCRIPT.as_bytes());
        let mut order = String::new();
        for module in &kernel.modules {
            let name = module.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            cpio.file(&format!("lib/modules/{name}"), 0o644, &read(module)?);
            order.push_str(name.trim_end_matches(".ko"));
            order.push('\n');
        }
        cpio.file("lib/modules/order", 0o644, order.as_bytes());
        add_program(&mut cpio, &redis, "usr/bin/redis-server")?;
        let gz = gzip(&cpio.finish())?;
        write_atomically(&initramfs, &gz)?;
        std::fs::write(&key_file, &key)?;
        progress(&format!("initramfs ready: {} ({} KiB)", initramfs.display(), gz.len() >> 10));
    }
    drop(lock);
    Ok(Assets {
        kernel: kernel.vmlinux,
        initramfs,
        kernel_package: kernel.package,
        kernel_version: kernel.version,
        kernel_release: kernel.release,
    })
}

fn progress(message: &str) {
    eprintln!("linux-guest: {message}");
}

struct Kernel {
    package: String,
    version: String,
    release: String,
    vmlinux: PathBuf,
    /// In load order.
    modules: Vec<PathBuf>,
}

/// Debian's kernel: `target/linux-guest/kernel/{vmlinuz, vmlinux, modules/*.ko, package}`. Once
/// there, it is used as is (a newer kernel in the archive does not change a prepared
/// baseline; remove the directory to take it).
fn prepare_kernel(dir: &Path) -> Result<Kernel> {
    let kdir = dir.join("kernel");
    let stamp = kdir.join("package");
    if let Ok(text) = std::fs::read_to_string(&stamp) {
        let mut lines = text.lines();
        if let (Some(package), Some(version), Some(release), Some(order)) =
            (lines.next(), lines.next(), lines.next(), lines.next())
        {
            let modules: Vec<PathBuf> =
                order.split_whitespace().map(|m| kdir.join("modules").join(m)).collect();
            let vmlinux = kdir.join("vmlinux");
            if vmlinux.is_file() && modules.iter().all(|m| m.is_file()) {
                return Ok(Kernel {
                    package: package.into(),
                    version: version.into(),
                    release: release.into(),
                    vmlinux,
                    modules,
                });
            }
        }
    }
    require_tool("apt-cache", "apt")?;
    require_tool("apt-get", "apt")?;
    require_tool("dpkg-deb", "dpkg")?;
    let work = fresh_dir(&dir.join("tmp-kernel"))?;
    let (package, deb) = with_fresh_package_lists(|| {
        let package = kernel_package()?;
        progress(&format!("downloading Debian's kernel {package} (about 70 MB, once)"));
        let deb = apt_download(&package, &work)?;
        Ok((package, deb))
    })?;
    let version = deb_version(&deb)?;
    progress(&format!("unpacking {}", deb.display()));
    let root = work.join("root");
    run_tool(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root), "dpkg-deb -x")?;

    let modules_root = root.join("lib/modules");
    let release = single_entry(&modules_root)?;
    let bzimage_src = root.join("boot").join(format!("vmlinuz-{release}"));
    if !bzimage_src.is_file() {
        bail!("{package} has no boot/vmlinuz-{release}");
    }
    let mut index = HashMap::new();
    index_modules(&modules_root.join(&release), &mut index)?;
    let ordered = module_load_order(GUEST_MODULES, &index)?;

    let staging = fresh_dir(&dir.join("tmp-kernel-staging"))?;
    std::fs::create_dir_all(staging.join("modules"))?;
    std::fs::copy(&bzimage_src, staging.join("vmlinuz"))?;
    progress("decompressing the kernel for PVH boot (saves its own decompression at every boot)");
    let vmlinux = extract_vmlinux(&read(&bzimage_src)?)?;
    write_atomically(&staging.join("vmlinux"), &vmlinux)?;
    let mut names = Vec::new();
    for name in &ordered {
        let file = format!("{name}.ko");
        std::fs::copy(&index[name], staging.join("modules").join(&file))?;
        names.push(file);
    }
    std::fs::write(
        staging.join("package"),
        format!("{package}\n{version}\n{release}\n{}\n", names.join(" ")),
    )?;
    let _ = std::fs::remove_dir_all(&kdir);
    std::fs::rename(&staging, &kdir)?;
    std::fs::remove_dir_all(&work)?;
    progress(&format!("kernel {release} ready, modules {}", ordered.join(" ")));
    prepare_kernel(dir)
}

/// The ELF kernel inside a bzImage: the payload the setup header points at
/// (`payload_offset` and `payload_length`, boot protocol 2.08 and later), xz-compressed in
/// Debian's build (`CONFIG_KERNEL_XZ`), decompressed with xz.
fn extract_vmlinux(bzimage: &[u8]) -> Result<Vec<u8>> {
    let u32_at = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(bzimage.get(at..at + 4)?.try_into().ok()?))
    };
    if bzimage.get(0x202..0x206) != Some(b"HdrS") {
        bail!("the kernel image is not a bzImage (no HdrS header)");
    }
    let setup_sectors = match bzimage[0x1f1] {
        0 => 4,
        n => n as usize,
    };
    let protected_mode = (setup_sectors + 1) * 512;
    let (offset, length) = u32_at(0x248).zip(u32_at(0x24c)).context("bzImage header too short")?;
    let start = protected_mode + offset as usize;
    let payload = bzimage
        .get(start..start + length as usize)
        .context("the bzImage's payload lies outside it")?;
    if !payload.starts_with(b"\xfd7zXZ\0") {
        bail!(
            "the kernel's payload is not xz-compressed (magic {:02x?}); this code knows \
             Debian's xz kernels only",
            &payload[..payload.len().min(6)]
        );
    }
    // The payload is the xz stream followed by the decompressed size (4 bytes, LE).
    require_tool("xz", "xz-utils")?;
    let vmlinux = pipe_through(
        Command::new("xz").args(["-d", "-c", "-q", "--single-stream"]),
        payload,
        "xz -d",
    )?;
    let expected = u32::from_le_bytes(payload[payload.len() - 4..].try_into().expect("4 bytes"));
    if !vmlinux.starts_with(b"\x7fELF") || vmlinux.len() != expected as usize {
        bail!(
            "the kernel's payload did not decompress to an ELF file of {expected} bytes (got {})",
            vmlinux.len()
        );
    }
    Ok(vmlinux)
}

/// The kernel package the metapackage depends on now (`linux-image-6.1.0-48-amd64`).
fn kernel_package() -> Result<String> {
    let out = Command::new("apt-cache")
        .args(["depends", KERNEL_METAPACKAGE])
        .output()
        .context("cannot run apt-cache")?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends:"))
        .map(str::trim)
        .find(|p| p.starts_with("linux-image-") && !p.contains("signed"))
        .map(str::to_string)
        .with_context(|| {
            format!(
                "apt-cache finds no kernel package behind {KERNEL_METAPACKAGE} (run apt-get \
                 update first): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )
        })
}

struct Busybox {
    version: String,
    binary: PathBuf,
}

/// busybox-static: `target/linux-guest/busybox/{busybox, version}`.
fn prepare_busybox(dir: &Path) -> Result<Busybox> {
    let bdir = dir.join("busybox");
    if let Ok(version) = std::fs::read_to_string(bdir.join("version"))
        && bdir.join("busybox").is_file()
    {
        return Ok(Busybox { version: version.trim().into(), binary: bdir.join("busybox") });
    }
    require_tool("apt-get", "apt")?;
    require_tool("dpkg-deb", "dpkg")?;
    let work = fresh_dir(&dir.join("tmp-busybox"))?;
    progress("downloading busybox-static (about 1 MB, once)");
    let deb = with_fresh_package_lists(|| apt_download("busybox-static", &work))?;
    let version = deb_version(&deb)?;
    let root = work.join("root");
    run_tool(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root), "dpkg-deb -x")?;
    let staging = fresh_dir(&dir.join("tmp-busybox-staging"))?;
    std::fs::copy(root.join("bin/busybox"), staging.join("busybox"))
        .context("busybox-static has no bin/busybox")?;
    std::fs::write(staging.join("version"), format!("{version}\n"))?;
    let _ = std::fs::remove_dir_all(&bdir);
    std::fs::rename(&staging, &bdir)?;
    std::fs::remove_dir_all(&work)?;
    prepare_busybox(dir)
}

/// The host's `redis-server` (the real binary behind Debian's symlink).
fn host_redis_server() -> Result<PathBuf> {
    let found = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths).map(|p| p.join("redis-server")).collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/bin/redis-server")])
        .find(|p| p.is_file());
    match found {
        Some(path) => Ok(path),
        None => bail!("no redis-server on this host: apt-get install redis-server"),
    }
}

/// Puts `binary` at `dest` in the archive with every shared library `ldd` lists, at the
/// paths the dynamic loader will look for them.
fn add_program(cpio: &mut Cpio, binary: &Path, dest: &str) -> Result<()> {
    cpio.file(dest, 0o755, &read(binary)?);
    for lib in shared_libraries(binary)? {
        let name = lib.to_string_lossy().trim_start_matches('/').to_string();
        cpio.file(&name, 0o755, &read(&lib)?);
    }
    Ok(())
}

/// The shared libraries of `binary`, from `ldd` (none for a static binary).
fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    require_tool("ldd", "libc-bin")?;
    let out = Command::new("ldd").arg(binary).output().context("cannot run ldd")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let all = format!("{text}{}", String::from_utf8_lossy(&out.stderr));
        if all.contains("not a dynamic executable") || all.contains("statically linked") {
            return Ok(Vec::new());
        }
        bail!("ldd {} failed: {}", binary.display(), all.trim());
    }
    let mut libs = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.contains("statically linked") {
            continue;
        }
        if line.contains("=> not found") {
            bail!("{}: a shared library is missing on this host: {line}", binary.display());
        }
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.trim(),
            None => line,
        };
        let path = path.split_whitespace().next().unwrap_or("");
        if path.starts_with('/') {
            libs.push(PathBuf::from(path));
        }
    }
    Ok(libs)
}

/// Every `.ko` under `dir`, by module name (dashes read as underscores, as the kernel
/// does).
fn index_modules(dir: &Path, index: &mut HashMap<String, PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            index_modules(&path, index)?;
        } else if let Some(name) = path.file_name().and_then(|n| n.to_str())
            && let Some(stem) = name.strip_suffix(".ko")
        {
            index.insert(stem.replace('-', "_"), path);
        }
    }
    Ok(())
}

/// `roots` and everything they depend on, dependencies first.
fn module_load_order(roots: &[&str], index: &HashMap<String, PathBuf>) -> Result<Vec<String>> {
    fn visit(
        name: &str,
        index: &HashMap<String, PathBuf>,
        done: &mut Vec<String>,
        active: &mut BTreeSet<String>,
    ) -> Result<()> {
        if done.iter().any(|d| d == name) {
            return Ok(());
        }
        if !active.insert(name.to_string()) {
            bail!("module dependency cycle through {name}");
        }
        let path = index.get(name).with_context(|| {
            format!("the kernel package has no module {name} (is it built in, or renamed?)")
        })?;
        for dep in module_depends(&read(path)?) {
            visit(&dep, index, done, active)?;
        }
        active.remove(name);
        done.push(name.to_string());
        Ok(())
    }
    let mut done = Vec::new();
    let mut active = BTreeSet::new();
    for root in roots {
        visit(root, index, &mut done, &mut active)?;
    }
    Ok(done)
}

/// The `depends=` entry of a module's `.modinfo` section (NUL-separated `key=value`
/// strings), read straight from the file.
fn module_depends(ko: &[u8]) -> Vec<String> {
    const KEY: &[u8] = b"\0depends=";
    let Some(at) = ko.windows(KEY.len()).position(|w| w == KEY) else { return Vec::new() };
    let rest = &ko[at + KEY.len()..];
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end])
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.replace('-', "_"))
        .collect()
}

/// Runs `step`; if it fails and we are root, refreshes apt's package lists once (a fresh
/// machine may have none, an old one may name versions the mirror no longer has) and
/// runs it again.
fn with_fresh_package_lists<T>(mut step: impl FnMut() -> Result<T>) -> Result<T> {
    let first = match step() {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    let is_root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    });
    if !is_root {
        return Err(first.context("as root, `apt-get update` may fix this"));
    }
    progress(&format!("{first:#}; refreshing apt's package lists (apt-get update) and retrying"));
    run_tool(Command::new("apt-get").args(["update", "-qq"]), "apt-get update")?;
    step()
}

fn apt_download(package: &str, dir: &Path) -> Result<PathBuf> {
    let out = Command::new("apt-get")
        .args(["download", "-q", package])
        .current_dir(dir)
        .output()
        .context("cannot run apt-get")?;
    if !out.status.success() {
        bail!(
            "apt-get download {package} failed (is the network to Debian's mirror up, and \
             apt-get update done?): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .with_context(|| format!("apt-get download {package} left no .deb"))
}

fn deb_version(deb: &Path) -> Result<String> {
    let out = Command::new("dpkg-deb")
        .args(["-f"])
        .arg(deb)
        .arg("Version")
        .output()
        .context("cannot run dpkg-deb")?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || version.is_empty() {
        bail!("dpkg-deb -f {} Version failed", deb.display());
    }
    Ok(version)
}

fn single_entry(dir: &Path) -> Result<String> {
    let names: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    match names.as_slice() {
        [one] => Ok(one.clone()),
        _ => bail!("expected one kernel release in {}, found {names:?}", dir.display()),
    }
}

/// Fails with what to install when `tool` is not on PATH.
fn require_tool(tool: &str, package: &str) -> Result<()> {
    let on_path = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|p| p.join(tool).is_file()));
    if !on_path {
        bail!("{tool} is not installed: apt-get install {package}");
    }
    Ok(())
}

fn run_tool(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd.output().with_context(|| format!("cannot run {what}"))?;
    if !out.status.success() {
        bail!("{what} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    require_tool("gzip", "gzip")?;
    pipe_through(Command::new("gzip").args(["-6", "-n", "-c"]), data, "gzip")
}

/// Runs `cmd` with `input` on its stdin and returns its stdout.
fn pipe_through(cmd: &mut Command, input: &[u8], what: &str) -> Result<Vec<u8>> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {what}"))?;
    let mut stdin = child.stdin.take().expect("piped");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let mut out = Vec::new();
    child.stdout.take().expect("piped").read_to_end(&mut out)?;
    let mut err = String::new();
    child.stderr.take().expect("piped").read_to_string(&mut err)?;
    let written = writer.join().map_err(|_| anyhow::anyhow!("{what}: writer panicked"))?;
    if !child.wait()?.success() || written.is_err() {
        bail!("{what} failed: {}", err.trim());
    }
    Ok(out)
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

fn fresh_dir(path: &Path) -> Result<PathBuf> {
    let _ = std::fs::remove_dir_all(path);
    std::fs::create_dir_all(path).with_context(|| format!("cannot create {}", path.display()))?;
    Ok(path.to_path_buf())
}

fn write_atomically(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Path, size and modification time: enough to notice that a binary changed.
fn file_fingerprint(path: &Path) -> Result<String> {
    let meta = std::fs::metadata(path)?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Ok(format!("{} {} {mtime}", path.display(), meta.len()))
}

fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

/// A newc ("070701") cpio archive, the format the kernel unpacks an initramfs from.
/// Parent directories are added before their first entry (the kernel does not create
/// them).
#[derive(Default)]
struct Cpio {
    out: Vec<u8>,
    inode: u32,
    dirs: BTreeSet<String>,
}

impl Cpio {
    const DIR: u32 = 0o040_000;
    const FILE: u32 = 0o100_000;
    const LINK: u32 = 0o120_000;
    const CHAR: u32 = 0o020_000;

    fn dir(&mut self, name: &str) {
        if name.is_empty() || self.dirs.contains(name) {
            return;
        }
        self.parents(name);
        self.dirs.insert(name.to_string());
        self.entry(name, Self::DIR | 0o755, &[], (0, 0));
    }

    fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        self.parents(name);
        self.entry(name, Self::FILE | perm, data, (0, 0));
    }

    fn symlink(&mut self, name: &str, target: &str) {
        self.parents(name);
        self.entry(name, Self::LINK | 0o777, target.as_bytes(), (0, 0));
    }

    fn char_device(&mut self, name: &str, major: u32, minor: u32) {
        self.parents(name);
        self.entry(name, Self::CHAR | 0o600, &[], (major, minor));
    }

    fn parents(&mut self, name: &str) {
        if let Some((parent, _)) = name.rsplit_once('/') {
            self.dir(parent);
        }
    }

    fn entry(&mut self, name: &str, mode: u32, data: &[u8], rdev: (u32, u32)) {
        self.inode += 1;
        let nlink = if mode & 0o170_000 == Self::DIR { 2 } else { 1 };
        let fields = [
            self.inode,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime: reproducible archives
            data.len() as u32,
            0, // devmajor
            0, // devminor
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0, // check
        ];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[], (0, 0));
        self.out
    }
}

/// The guest's `/init` (busybox sh). It prints `remora-linux: ...` lines for the host:
/// `ready` when the server listens, `stats` with the swap counters (on `stats` typed on
/// the console, and at the end), `error: ...` when setup fails, `exit` before powering
/// off. `stop` on the console stops the server.
const INIT_SCRIPT: &str = r#"#!/bin/sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s
M=remora-linux:
fail() { echo "$M error: $*"; poweroff -f; sleep 10; }
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev || fail "cannot mount devtmpfs"
mount -t cgroup2 cgroup2 /sys/fs/cgroup || fail "cannot mount cgroup2"
stty -F /dev/console -echo 2>/dev/null
param() { for w in $(cat /proc/cmdline); do case "$w" in "$1="*) echo "${w#*=}";; esac; done; }
server=$(param remora.server)
local=$(param remora.local)
port=$(param remora.port)
[ -n "$server" ] || fail "no remora.server= on the kernel command line"
[ -n "$local" ] || fail "no remora.local= on the kernel command line"
[ -n "$port" ] || port=6379

for m in $(cat /lib/modules/order); do
    insmod /lib/modules/$m.ko || fail "insmod $m"
done
n=0
while [ ! -b /dev/vda ] || [ ! -e /sys/class/net/eth0 ]; do
    n=$((n + 1)); [ $n -gt 500 ] && fail "no /dev/vda or eth0 after the virtio modules"
    usleep 20000
done

ip link set lo up
ip addr add 10.0.2.15/24 dev eth0 || fail "cannot address eth0"
ip link set eth0 up || fail "cannot bring eth0 up"
ip route add default via 10.0.2.2

mkswap /dev/vda >/dev/null || fail "mkswap /dev/vda"
swapon /dev/vda || fail "swapon /dev/vda"
echo 1 > /proc/sys/vm/overcommit_memory

C=/sys/fs/cgroup/server
echo +memory > /sys/fs/cgroup/cgroup.subtree_control || fail "no memory controller"
mkdir -p $C
echo "$local" > $C/memory.max || fail "cannot set memory.max=$local"
echo max > $C/memory.swap.max || fail "cannot set memory.swap.max"

case "$server" in
redis)
    set -- /usr/bin/redis-server --port "$port" --bind 0.0.0.0 --protected-mode no \
        --save "" --appendonly no --maxmemory 0 --dir /tmp --daemonize no --loglevel warning ;;
remora-redis)
    [ -x /usr/bin/remora-redis ] || fail "remora-redis is not in the initramfs"
    set -- /usr/bin/remora-redis --port "$port" ;;
*) fail "unknown remora.server=$server" ;;
esac
if [ -f /etc/remora/server.args ]; then
    while IFS= read -r a; do set -- "$@" "$a"; done < /etc/remora/server.args
fi

stats() {
    st=$(grep -E '^(SwapTotal|SwapFree):' /proc/meminfo | tr -s ' ' | sed 's/: /=/; s/ kB//' | tr '\n' ' ')
    vm=$(grep -E '^(pswpin|pswpout) ' /proc/vmstat | tr ' ' '=' | tr '\n' ' ')
    ev=$(grep -E '^(max|oom|oom_kill) ' $C/memory.events | sed 's/^/memcg_events_/' | tr ' ' '=' | tr '\n' ' ')
    echo "$M stats $st$vm${ev}memcg_current=$(cat $C/memory.current) memcg_swap_current=$(cat $C/memory.swap.current) memcg_max=$(cat $C/memory.max)"
}

sh -c 'echo $$ > '$C'/cgroup.procs && exec "$@"' server "$@" &
pid=$!
hex=$(printf '%04X' "$port")
n=0
until grep -qE ":$hex [0-9A-F]+:0000 0A" /proc/net/tcp /proc/net/tcp6 2>/dev/null; do
    kill -0 $pid 2>/dev/null || { wait $pid; fail "the server exited at start (status $?)"; }
    n=$((n + 1)); [ $n -gt 3000 ] && fail "the server does not listen on $port"
    usleep 20000
done
echo "$M ready server=$server port=$port local=$local swap_kb=$(grep -E '^SwapTotal:' /proc/meminfo | tr -s ' ' | cut -d' ' -f2)"

(
    while read -r cmd; do
        case "$cmd" in
        stop) kill -TERM $pid; (sleep 20; kill -KILL $pid) 2>/dev/null & ;;
        stats) stats ;;
        esac
    done
) < /dev/console &
reader=$!
wait $pid
status=$?
kill $reader 2>/dev/null
echo "$M server exited status=$status"
stats
echo "$M exit"
poweroff -f
"#;

// ---------------------------------------------------------------------------------------
// The remote block device

/// Whether process `pid` has `file` open (from `/proc/PID/fd`).
fn holds_open(pid: u32, file: &Path) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return false };
    fds.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok()).any(|target| target == file)
}

/// The memory node's side of the baseline: `qemu-nbd` exporting a raw file in
/// `/dev/shm` (host RAM) over a Unix socket. The file is unlinked as soon as qemu-nbd has
/// it open, so its RAM goes back to the host when qemu-nbd exits, however it exits.
pub struct RemoteBlockDevice {
    child: Option<Child>,
    pub socket: PathBuf,
    pub size: u64,
    output: Arc<Mutex<String>>,
}

impl RemoteBlockDevice {
    /// Starts an export of `size` bytes on `socket` and waits until it accepts clients.
    pub fn start(socket: &Path, size: u64) -> Result<RemoteBlockDevice> {
        require_tool("qemu-nbd", "qemu-utils")?;
        let shm = Path::new("/dev/shm");
        if !shm.is_dir() {
            bail!("no /dev/shm on this host: the remote swap lives in host RAM there");
        }
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let file = shm.join(format!("remora-swap-{}-{n}.raw", std::process::id()));
        File::create(&file)
            .and_then(|f| f.set_len(size))
            .with_context(|| format!("cannot create {} ({size} B)", file.display()))?;
        let _ = std::fs::remove_file(socket);
        let spawned = Command::new("qemu-nbd")
            .arg(format!("--socket={}", socket.display()))
            .args(["--format=raw", "--persistent", "--shared=1"])
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                let _ = std::fs::remove_file(&file);
                return Err(e).context("cannot start qemu-nbd (apt-get install qemu-utils)");
            }
        };
        let output = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("piped");
        let out = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut o = out.lock().expect("nbd output");
                o.push_str(&line);
                o.push('\n');
            }
        });
        let mut device =
            RemoteBlockDevice { child: Some(child), socket: socket.to_path_buf(), size, output };
        let deadline = Instant::now() + Duration::from_secs(10);
        let pid = device.child.as_ref().map_or(0, Child::id);
        let ready = loop {
            // qemu-nbd listens before it opens the image: wait for both.
            if holds_open(pid, &file) && std::os::unix::net::UnixStream::connect(socket).is_ok() {
                break Ok(());
            }
            if let Some(Ok(Some(status))) = device.child.as_mut().map(Child::try_wait) {
                break Err(anyhow::anyhow!(
                    "qemu-nbd exited at start ({status}): {}",
                    device.output().trim()
                ));
            }
            if Instant::now() > deadline {
                break Err(anyhow::anyhow!(
                    "qemu-nbd did not listen on {} within 10 s",
                    socket.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        // qemu-nbd has the file open (or failed): its name is no longer needed.
        let _ = std::fs::remove_file(&file);
        ready.map(|()| device)
    }

    /// The QEMU arguments that attach the export as the guest's virtio-blk disk.
    pub fn qemu_args(&self) -> Vec<String> {
        vec![
            "-drive".into(),
            format!(
                "driver=nbd,server.type=unix,server.path={},if=none,id=swap,cache=none",
                self.socket.display()
            ),
            "-device".into(),
            "virtio-blk-pci,drive=swap".into(),
        ]
    }

    /// What qemu-nbd printed.
    pub fn output(&self) -> String {
        self.output.lock().expect("nbd output").clone()
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

impl Drop for RemoteBlockDevice {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------------------------------
// The guest

/// The swap counters the guest printed (`remora-linux: stats ...`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GuestStats {
    /// Every `key=value` of the line (`SwapTotal`, `SwapFree` in KiB; `pswpin`, `pswpout`
    /// in pages; `memcg_*` in bytes or events).
    pub values: BTreeMap<String, u64>,
}

impl GuestStats {
    fn parse(line: &str) -> Option<GuestStats> {
        let rest = line.split_once(&format!("{MARK} stats "))?.1;
        let values = rest
            .split_whitespace()
            .filter_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect();
        Some(GuestStats { values })
    }

    pub fn get(&self, key: &str) -> u64 {
        self.values.get(key).copied().unwrap_or(0)
    }

    /// Bytes of swap in use in the whole guest.
    pub fn swap_used(&self) -> u64 {
        self.get("SwapTotal").saturating_sub(self.get("SwapFree")) * 1024
    }

    /// Bytes of the server's memory in swap (the cgroup's `memory.swap.current`).
    pub fn cgroup_swap(&self) -> u64 {
        self.get("memcg_swap_current")
    }

    /// Pages read from and written to the swap device since boot.
    pub fn pages_swapped_in(&self) -> u64 {
        self.get("pswpin")
    }

    pub fn pages_swapped_out(&self) -> u64 {
        self.get("pswpout")
    }

    /// Processes the OOM killer killed in the cgroup (0 in a sound run).
    pub fn oom_kills(&self) -> u64 {
        self.get("memcg_events_oom_kill")
    }
}

/// What a stopped guest leaves.
#[derive(Clone, Debug)]
pub struct GuestReport {
    /// The serial console, lines with `\r` removed.
    pub console: String,
    /// The server's exit status as `/init` saw it.
    pub server_status: Option<i32>,
    /// The counters at the end, after the server exited.
    pub stats: Option<GuestStats>,
    /// From QEMU's start to the readiness line.
    pub boot_time: Duration,
    /// From QEMU's start to its end.
    pub wall_time: Duration,
    /// Whether `/init` reached its end and powered off (not killed by us).
    pub clean: bool,
}

type Lines = Arc<Mutex<Vec<(Duration, String)>>>;

/// A running Linux guest with its server listening on `port()`. `stop()` ends it in
/// order; dropping it kills QEMU and the NBD server.
pub struct LinuxGuest {
    qemu: Option<Child>,
    stdin: Option<ChildStdin>,
    nbd: RemoteBlockDevice,
    /// Removed (with the initrd and sockets in it) when the guest is dropped.
    _run_dir: memnode::RunDir,
    lines: Lines,
    readers: Vec<std::thread::JoinHandle<()>>,
    qemu_stderr: Arc<Mutex<String>>,
    port: u16,
    accel: Accel,
    started: Instant,
    boot_time: Duration,
}

impl LinuxGuest {
    /// Prepares the assets (cached), starts the remote block device and the guest, and
    /// waits until the server listens.
    pub fn start(options: &GuestOptions) -> Result<LinuxGuest> {
        let assets = prepare_assets()?;
        LinuxGuest::start_with(&assets, options)
    }

    /// As `start`, with assets already prepared.
    pub fn start_with(assets: &Assets, options: &GuestOptions) -> Result<LinuxGuest> {
        options.check()?;
        let accel = options.accel.resolve()?;
        let port = if options.host_port == 0 { free_port()? } else { options.host_port };
        let run_dir = memnode::run_dir()?;

        // The initrd of this run: the cached base, then a small archive with what differs
        // per run (the kernel unpacks concatenated archives in order).
        let mut overlay = Cpio::default();
        let args: String = options.server_args.iter().map(|a| format!("{a}\n")).collect();
        overlay.file("etc/remora/server.args", 0o644, args.as_bytes());
        if let Server::Ours(binary) = &options.server {
            add_program(&mut overlay, binary, "usr/bin/remora-redis")?;
        }
        let mut initrd = read(&assets.initramfs)?;
        // An uncompressed archive after a compressed one must start 4-byte aligned;
        // zeros in between are skipped.
        initrd.resize(initrd.len().next_multiple_of(4), 0);
        initrd.extend_from_slice(&overlay.finish());
        let initrd_path = run_dir.path().join("initrd");
        std::fs::write(&initrd_path, &initrd)?;

        let nbd = RemoteBlockDevice::start(&run_dir.path().join("swap.sock"), options.swap)?;

        let cmdline = format!(
            "console=ttyS0 quiet panic=-1 remora.server={} remora.local={} remora.port={GUEST_PORT} {}",
            options.server.guest_name(),
            options.local_memory,
            options.kernel_args
        );
        let mut cmd = Command::new(qemu::qemu_binary());
        cmd.args(["-M", "q35", "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot"]);
        if let Some(fw) = qemu::firmware() {
            cmd.arg("-bios").arg(fw);
        }
        match accel {
            Accel::Kvm => cmd.args(["-accel", "kvm", "-cpu", "host"]),
            _ => cmd.args(["-accel", "tcg", "-cpu", "max"]),
        };
        cmd.arg("-smp").arg(options.cpus.to_string());
        cmd.arg("-m").arg(format!("{}M", options.guest_memory_mib));
        cmd.args(["-serial", "stdio"]);
        cmd.arg("-kernel").arg(&assets.kernel);
        cmd.arg("-initrd").arg(&initrd_path);
        cmd.arg("-append").arg(cmdline.trim());
        cmd.args(nbd.qemu_args());
        cmd.args(AppNet::User { host_port: port, guest_port: GUEST_PORT }.qemu_args());
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());

        let started = Instant::now();
        let mut child = cmd.spawn().with_context(|| {
            format!("cannot start {} (apt-get install qemu-system-x86)", qemu::qemu_binary())
        })?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let lines: Lines = Arc::default();
        let qemu_stderr = Arc::new(Mutex::new(String::new()));
        let (ready_tx, ready_rx) = mpsc::channel::<String>();
        let readers = vec![
            {
                let lines = lines.clone();
                let echo = options.echo;
                qemu::read_console_lines(stdout, move |line| {
                    if echo {
                        eprintln!("{line}");
                    }
                    if line.contains(&format!("{MARK} ready"))
                        || line.contains(&format!("{MARK} error"))
                    {
                        let _ = ready_tx.send(line.clone());
                    }
                    lines.lock().expect("console").push((started.elapsed(), line));
                })
            },
            {
                let out = qemu_stderr.clone();
                std::thread::spawn(move || {
                    let mut text = String::new();
                    let _ = BufReader::new(stderr).read_to_string(&mut text);
                    out.lock().expect("qemu stderr").push_str(&text);
                })
            },
        ];
        let mut guest = LinuxGuest {
            qemu: Some(child),
            stdin,
            nbd,
            _run_dir: run_dir,
            lines,
            readers,
            qemu_stderr,
            port,
            accel,
            started,
            boot_time: Duration::ZERO,
        };
        loop {
            match ready_rx.recv_timeout(Duration::from_millis(20)) {
                Ok(line) if line.contains(&format!("{MARK} ready")) => {
                    guest.boot_time = started.elapsed();
                    return Ok(guest);
                }
                Ok(line) => bail!("the Linux guest failed to set up: {line}\n{}", guest.tail()),
                Err(_) => {}
            }
            if let Some(Ok(Some(status))) = guest.qemu.as_mut().map(Child::try_wait) {
                // Let the reader catch the last lines.
                std::thread::sleep(Duration::from_millis(50));
                bail!(
                    "QEMU ended ({status}) before the guest's server was ready\n{}",
                    guest.tail()
                );
            }
            if started.elapsed() > options.timeout {
                bail!(
                    "the Linux guest was not ready within {:.0} s ({accel}); QEMU killed\n{}",
                    options.timeout.as_secs_f64(),
                    guest.tail()
                );
            }
        }
    }

    /// The host port (on 127.0.0.1) that reaches the server.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The accelerator QEMU runs with.
    pub fn accel(&self) -> Accel {
        self.accel
    }

    /// From QEMU's start to the server listening.
    pub fn boot_time(&self) -> Duration {
        self.boot_time
    }

    /// The console so far.
    pub fn console(&self) -> String {
        let lines = self.lines.lock().expect("console");
        lines.iter().map(|(_, l)| l.as_str()).collect::<Vec<_>>().join("\n")
    }

    /// The swap counters now (the guest prints them when asked on its console).
    pub fn stats(&mut self) -> Result<GuestStats> {
        let before = self.count_stats_lines();
        self.send("stats")?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let found = {
                let lines = self.lines.lock().expect("console");
                lines.iter().filter_map(|(_, l)| GuestStats::parse(l)).nth(before)
            };
            if let Some(stats) = found {
                return Ok(stats);
            }
            if Instant::now() > deadline {
                bail!("the guest did not print its counters within 20 s\n{}", self.tail());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn count_stats_lines(&self) -> usize {
        let lines = self.lines.lock().expect("console");
        lines.iter().filter(|(_, l)| GuestStats::parse(l).is_some()).count()
    }

    fn send(&mut self, command: &str) -> Result<()> {
        let stdin = self.stdin.as_mut().context("the guest's console is closed")?;
        stdin
            .write_all(format!("{command}\n").as_bytes())
            .and_then(|()| stdin.flush())
            .context("cannot write to the guest's console (has QEMU ended?)")
    }

    /// Stops the server, lets the guest print its counters and power off, and cleans up
    /// (QEMU, qemu-nbd, the swap file, the sockets). Kills QEMU after 60 s.
    pub fn stop(mut self) -> Result<GuestReport> {
        let _ = self.send("stop");
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut clean = false;
        while let Some(child) = self.qemu.as_mut() {
            if let Ok(Some(_)) = child.try_wait() {
                clean = true;
                break;
            }
            if Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let wall_time = self.started.elapsed();
        self.kill();
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        let console = self.console();
        let clean = clean && console.contains(&format!("{MARK} exit"));
        let stats = console.lines().filter_map(GuestStats::parse).next_back();
        let server_status = console.lines().find_map(|l| {
            l.split_once(&format!("{MARK} server exited status="))?.1.trim().parse().ok()
        });
        Ok(GuestReport {
            console,
            server_status,
            stats,
            boot_time: self.boot_time,
            wall_time,
            clean,
        })
    }

    /// The last console lines and QEMU's and qemu-nbd's errors, for failure messages.
    fn tail(&mut self) -> String {
        self.kill();
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        let console = self.console();
        let lines: Vec<&str> = console.lines().collect();
        let from = lines.len().saturating_sub(40);
        let mut text = format!("---- last console lines\n{}", lines[from..].join("\n"));
        let qemu_err = self.qemu_stderr.lock().expect("qemu stderr").clone();
        if !qemu_err.trim().is_empty() {
            text.push_str(&format!("\n---- QEMU\n{}", qemu_err.trim()));
        }
        let nbd = self.nbd.output();
        if !nbd.trim().is_empty() {
            text.push_str(&format!("\n---- qemu-nbd\n{}", nbd.trim()));
        }
        text
    }

    fn kill(&mut self) {
        self.stdin = None;
        if let Some(mut child) = self.qemu.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.nbd.stop();
    }
}

impl Drop for LinuxGuest {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port on 127.0.0.1 that nothing listens on now.
fn free_port() -> Result<u16> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").context("cannot find a free local port")?;
    Ok(listener.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpio_entries_are_aligned_and_parents_come_first() {
        let mut c = Cpio::default();
        c.file("a/b/c", 0o644, b"hello");
        let out = c.finish();
        assert_eq!(out.len() % 4, 0);
        let text = String::from_utf8_lossy(&out);
        let a = text.find("a\0").unwrap();
        let ab = text.find("a/b\0").unwrap();
        let abc = text.find("a/b/c\0").unwrap();
        assert!(a < ab && ab < abc);
        assert!(text.contains("hello"));
        assert!(text.contains("TRAILER!!!"));
        // Header: magic and 13 fields of 8 hex digits.
        assert!(out.starts_with(b"070701"));
    }

    #[test]
    fn module_depends_reads_modinfo() {
        let ko = b"\x7fELF junk\0license=GPL\0depends=virtio_ring,virtio,net-failover\0name=x\0";
        assert_eq!(module_depends(ko), vec!["virtio_ring", "virtio", "net_failover"]);
        assert!(module_depends(b"\0depends=\0").is_empty());
        assert!(module_depends(b"nothing").is_empty());
    }

    #[test]
    fn stats_line_parses() {
        let s = GuestStats::parse(
            "remora-linux: stats SwapTotal=262140 SwapFree=100 pswpin=5 pswpout=9 \
             memcg_events_oom_kill=0 memcg_swap_current=4096",
        )
        .unwrap();
        assert_eq!(s.swap_used(), (262140 - 100) * 1024);
        assert_eq!(s.pages_swapped_out(), 9);
        assert_eq!(s.cgroup_swap(), 4096);
        assert_eq!(s.oom_kills(), 0);
    }
}

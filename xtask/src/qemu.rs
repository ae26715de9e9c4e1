//! Running an image under QEMU: the accelerator choice, the command line, streaming the
//! serial console, the timeout, Ctrl-C, and turning QEMU's exit status back into the
//! image's own (see `platforms/kvm/src/exit.rs` for the encoding).

use std::fmt;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::memnode::{self, MemoryNode, NodeChoice};

/// The accelerator QEMU runs the guest with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Accel {
    /// KVM where `/dev/kvm` is usable, else TCG.
    Auto,
    Kvm,
    Tcg,
}

impl Accel {
    /// Resolves `Auto`, and refuses `Kvm` where it cannot work.
    pub fn resolve(self) -> Result<Accel> {
        match self {
            Accel::Auto => Ok(if kvm_usable() { Accel::Kvm } else { Accel::Tcg }),
            Accel::Kvm if !kvm_usable() => {
                bail!(
                    "--accel kvm: /dev/kvm is missing or not writable by this user; use --accel tcg"
                )
            }
            other => Ok(other),
        }
    }

    /// The accelerator named by `REMORA_ACCEL`, or `default`.
    pub fn from_env_or(default: Accel) -> Result<Accel> {
        match std::env::var("REMORA_ACCEL") {
            Ok(v) => <Accel as clap::ValueEnum>::from_str(&v, true)
                .map_err(|_| anyhow::anyhow!("REMORA_ACCEL={v}: expected auto, kvm or tcg")),
            Err(_) => Ok(default),
        }
    }
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Accel::Auto => "auto",
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        })
    }
}

fn kvm_usable() -> bool {
    std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_ok()
}

/// How the image ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageStatus {
    /// The image reported this status through the debug-exit device (0 is success).
    Exited(u8),
    /// QEMU ended without a status from the image: a triple fault or reset.
    NoStatus,
    /// QEMU itself failed (bad arguments, missing firmware...).
    QemuFailed(i32),
    /// Killed by a signal (not by us).
    Signalled,
    TimedOut(Duration),
    Interrupted,
}

impl ImageStatus {
    pub fn success(&self) -> bool {
        *self == ImageStatus::Exited(0)
    }

    /// The status for xtask's own exit.
    pub fn process_code(&self) -> i32 {
        match self {
            ImageStatus::Exited(code) => *code as i32,
            ImageStatus::TimedOut(_) => 124,
            ImageStatus::Interrupted => 130,
            _ => 125,
        }
    }

    fn from_qemu(code: Option<i32>) -> ImageStatus {
        match code {
            Some(0) => ImageStatus::NoStatus,
            Some(c) if c >= 3 && c % 2 == 1 => ImageStatus::Exited(((c - 3) / 2) as u8),
            Some(c) => ImageStatus::QemuFailed(c),
            None => ImageStatus::Signalled,
        }
    }
}

impl fmt::Display for ImageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageStatus::Exited(0) => write!(f, "the image exited with success"),
            ImageStatus::Exited(1) => write!(f, "the image exited with status 1 (failure)"),
            ImageStatus::Exited(2) => write!(f, "the image exited with status 2 (panic)"),
            ImageStatus::Exited(3) => write!(f, "the image exited with status 3 (CPU exception)"),
            ImageStatus::Exited(c) => write!(f, "the image exited with status {c}"),
            ImageStatus::NoStatus => {
                write!(f, "QEMU stopped without a status from the image (triple fault or reset)")
            }
            ImageStatus::QemuFailed(c) => write!(f, "QEMU failed with exit code {c}"),
            ImageStatus::Signalled => write!(f, "QEMU was killed by a signal"),
            ImageStatus::TimedOut(t) => {
                write!(f, "timed out after {:.1} s: QEMU killed", t.as_secs_f64())
            }
            ImageStatus::Interrupted => write!(f, "interrupted (Ctrl-C): QEMU killed"),
        }
    }
}

/// Everything about one QEMU run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub accel: Accel,
    pub timeout: Duration,
    /// Guest RAM in MiB.
    pub memory_mib: u64,
    /// The kernel command line (`-append`).
    pub cmdline: String,
    /// Extra QEMU arguments, appended last.
    pub extra_args: Vec<String>,
    /// Copy the console to our stdout as it arrives.
    pub echo: bool,
    /// Give QEMU our stdin (interactive use); otherwise it reads nothing.
    pub interactive: bool,
    /// Connect the far-memory NIC to a memory node (started for the run, or running).
    pub far_memory: Option<NodeChoice>,
    /// Kill the started memory node when a console line contains this (tests of a lost
    /// node).
    pub kill_node_on: Option<String>,
    /// Give the image its application network card.
    pub app_net: Option<AppNet>,
    /// Set from another thread to stop the image (QEMU is killed; the run ends as
    /// interrupted).
    pub stop: Option<Arc<AtomicBool>>,
}

/// How the image's application network card reaches the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppNet {
    /// QEMU user networking: the image is at 10.0.2.15 behind QEMU's NAT, and host port
    /// `host_port` on 127.0.0.1 is forwarded to `guest_port` in the image.
    User { host_port: u16, guest_port: u16 },
    /// A TAP interface the user created (faster); the image takes its address from its
    /// configuration (`net.ip`, or DHCP).
    Tap { ifname: String },
}

impl AppNet {
    /// The QEMU arguments for this card.
    pub fn qemu_args(&self) -> Vec<String> {
        let netdev = match self {
            AppNet::User { host_port, guest_port } => {
                format!("user,id=appnet,hostfwd=tcp:127.0.0.1:{host_port}-:{guest_port}")
            }
            AppNet::Tap { ifname } => {
                format!("tap,id=appnet,ifname={ifname},script=no,downscript=no")
            }
        };
        vec![
            "-netdev".into(),
            netdev,
            "-device".into(),
            format!("virtio-net-pci,netdev=appnet,addr={APP_NIC_PCI_SLOT},mac=52:54:00:12:34:56"),
        ]
    }
}

/// Where the application's card sits on the PCI bus.
pub const APP_NIC_PCI_SLOT: &str = "0x11";

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            accel: Accel::Auto,
            timeout: Duration::from_secs(60),
            memory_mib: 512,
            cmdline: String::new(),
            extra_args: Vec::new(),
            echo: false,
            interactive: false,
            far_memory: None,
            kill_node_on: None,
            app_net: None,
            stop: None,
        }
    }
}

/// What a run produced.
#[derive(Clone, Debug)]
pub struct RunOutcome {
    pub status: ImageStatus,
    pub accel: Accel,
    /// The serial console, with `\r` removed.
    pub console: String,
    /// Console lines with the time since QEMU was started when each arrived.
    pub lines: Vec<(Duration, String)>,
    pub wall_time: Duration,
    /// What the memory node started for the run printed (its counters at exit).
    pub node_output: Option<String>,
}

impl RunOutcome {
    /// The time from QEMU's start to the first console line containing `needle`.
    pub fn time_to(&self, needle: &str) -> Option<Duration> {
        self.lines.iter().find(|(_, l)| l.contains(needle)).map(|(t, _)| *t)
    }
}

pub(crate) fn qemu_binary() -> String {
    std::env::var("REMORA_QEMU").unwrap_or_else(|_| "qemu-system-x86_64".into())
}

/// The firmware: qboot where installed (fast: ~0.1 s to the kernel), else QEMU's default.
pub(crate) fn firmware() -> Option<PathBuf> {
    ["/usr/share/qemu/qboot.rom", "/usr/share/qemu/firmware/qboot.rom"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// The QEMU command for `image` (without spawning it).
pub fn command(image: &Path, options: &RunOptions, accel: Accel) -> Command {
    let mut cmd = Command::new(qemu_binary());
    cmd.args(["-M", "q35", "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot"]);
    if let Some(fw) = firmware() {
        cmd.arg("-bios").arg(fw);
    }
    match accel {
        Accel::Kvm => cmd.args(["-accel", "kvm", "-cpu", "host"]),
        _ => cmd.args(["-accel", "tcg", "-cpu", "max"]),
    };
    cmd.args(["-smp", "1", "-m"]).arg(format!("{}M", options.memory_mib));
    cmd.args(["-serial", "stdio", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
    cmd.arg("-kernel").arg(image);
    if !options.cmdline.is_empty() {
        cmd.arg("-append").arg(&options.cmdline);
    }
    cmd.args(&options.extra_args);
    cmd
}

fn interrupted_flag() -> &'static Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let f = flag.clone();
        // If another handler is installed already (a test harness), we simply go without.
        let _ = ctrlc::set_handler(move || f.store(true, Ordering::SeqCst));
        flag
    })
}

/// Kills QEMU when dropped, whatever path leaves `run`.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Boots `image` and waits for it to end, time out or be interrupted.
pub fn run(image: &Path, options: &RunOptions) -> Result<RunOutcome> {
    if !image.exists() {
        bail!("no image at {}: build it first", image.display());
    }
    let accel = options.accel.resolve()?;
    let interrupted = interrupted_flag().clone();
    let mut options = options.clone();
    // Dropped last: the sockets in it outlive the node and QEMU.
    let mut sockets_dir = None;
    let mut node = None;
    if let Some(choice) = options.far_memory.clone() {
        let dir = sockets_dir.insert(memnode::run_dir()?).path().to_path_buf();
        let image_socket = dir.join("image.sock");
        let args = match choice {
            NodeChoice::Start(node_options) => {
                let started = MemoryNode::start(
                    &memnode_binary()?,
                    &dir.join("memnode.sock"),
                    &node_options,
                )?;
                let args = memnode::qemu_args_unix(&started.socket, &image_socket);
                node = Some(started);
                args
            }
            NodeChoice::Socket(socket) => memnode::qemu_args_unix(&socket, &image_socket),
            NodeChoice::Udp { remote, local } => memnode::qemu_args_udp(&remote, &local)?,
        };
        options.extra_args.splice(0..0, args);
        options.cmdline = format!(
            "rmem.key={} rmem.nic={} {}",
            memnode::fresh_key(),
            memnode::FAR_NIC_ADDRESS,
            options.cmdline
        );
    }
    if let Some(net) = &options.app_net {
        let args = net.qemu_args();
        options.extra_args.splice(0..0, args);
        options.cmdline = format!("net.nic=00:11.0 {}", options.cmdline);
    }
    let options = &options;
    let killer = node.as_ref().map(MemoryNode::killer);
    let mut cmd = command(image, options, accel);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if options.interactive { Stdio::inherit() } else { Stdio::null() });
    let started = Instant::now();
    let child = cmd.spawn().with_context(|| {
        format!("cannot start {} (apt-get install qemu-system-x86)", qemu_binary())
    })?;
    let mut child = KillOnDrop(child);

    let lines: Arc<Mutex<Vec<(Duration, String)>>> = Arc::default();
    let stdout = child.0.stdout.take().expect("stdout is piped");
    let reader = {
        let lines = lines.clone();
        let echo = options.echo;
        let elf = image.to_path_buf();
        let kill_on = options.kill_node_on.clone().zip(killer);
        read_console_lines(stdout, move |mut line| {
            if let Some(symbol) = symbolize_backtrace_line(&elf, &line) {
                line.push_str("  ");
                line.push_str(&symbol);
            }
            if echo {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
            if let Some((needle, killer)) = &kill_on
                && line.contains(needle.as_str())
            {
                killer.kill();
            }
            lines.lock().expect("console lock").push((started.elapsed(), line));
        })
    };
    let stderr = child.0.stderr.take().expect("stderr is piped");
    let stderr_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut text);
        text
    });

    let status = loop {
        if let Some(exit) = child.0.try_wait()? {
            break ImageStatus::from_qemu(exit.code());
        }
        if started.elapsed() > options.timeout {
            break ImageStatus::TimedOut(options.timeout);
        }
        if interrupted.swap(false, Ordering::SeqCst)
            || options.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst))
        {
            break ImageStatus::Interrupted;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    drop(child);
    let wall_time = started.elapsed();
    let _ = reader.join();
    let qemu_stderr = stderr_reader.join().unwrap_or_default();
    let lines = std::mem::take(&mut *lines.lock().expect("console lock"));
    let mut console = lines.iter().map(|(_, l)| l.as_str()).collect::<Vec<_>>().join("\n");
    if !qemu_stderr.trim().is_empty() {
        if options.echo {
            eprint!("{qemu_stderr}");
        }
        if matches!(status, ImageStatus::QemuFailed(_)) {
            console.push_str("\n[qemu] ");
            console.push_str(qemu_stderr.trim());
        }
    }
    let node_output = node.map(MemoryNode::stop);
    if options.echo
        && let Some(text) = &node_output
    {
        eprint!("{text}");
    }
    Ok(RunOutcome { status, accel, console, lines, wall_time, node_output })
}

/// For a backtrace line of a crash report (`      #3  0x0000000000101399`), the function
/// and source line at that address, from the image's debug info (binutils' addr2line).
fn symbolize_backtrace_line(elf: &Path, line: &str) -> Option<String> {
    let rest = line.trim_start().strip_prefix('#')?;
    let (depth, address) = rest.split_once(char::is_whitespace)?;
    let depth: u32 = depth.parse().ok()?;
    let address = u64::from_str_radix(address.trim().strip_prefix("0x")?, 16).ok()?;
    // Frames above the first hold return addresses: look up the call instruction.
    let lookup = if depth == 0 { address } else { address.saturating_sub(1) };
    let output = Command::new("addr2line")
        .args(["-f", "-C", "-e"])
        .arg(elf)
        .arg(format!("{lookup:#x}"))
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let mut parts = text.lines();
    let function = parts.next()?.trim();
    let location = parts.next()?.trim();
    if function == "??" {
        return None;
    }
    let root = format!("{}/", crate::image::repo_root().display());
    let location = location
        .strip_prefix(root.as_str())
        .or_else(|| location.split_once("/library/").map(|(_, l)| l))
        .unwrap_or(location);
    Some(format!("{function} ({location})"))
}

/// The memory node program, built once per process.
fn memnode_binary() -> Result<PathBuf> {
    static BUILT: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = built.as_ref() {
        return Ok(path.clone());
    }
    let path = memnode::build()?;
    *built = Some(path.clone());
    Ok(path)
}

/// Reads a guest's serial console line by line on a thread of its own and hands each line
/// (without `\r` and the newline) to `on_line`, until the console closes.
pub(crate) fn read_console_lines(
    console: impl std::io::Read + Send + 'static,
    mut on_line: impl FnMut(String) + Send + 'static,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(console);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&buf);
                    on_line(text.trim_end_matches(['\n', '\r']).replace('\r', ""));
                }
            }
        }
    })
}

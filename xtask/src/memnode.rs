//! Memory nodes for runs: building the `memnode` program, starting one on a private Unix
//! socket for an image, waiting until it listens, and stopping it (its counters are in
//! its output) when the image is done. Also the QEMU arguments that connect an image's
//! far-memory NIC to a node, and the region key the image is given.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::image::{cargo, target_dir};

/// Where the far-memory NIC sits on the PCI bus, and its MAC.
pub const FAR_NIC_PCI_SLOT: &str = "0x10";
pub const FAR_NIC_ADDRESS: &str = "00:10.0";
const FAR_NIC_MAC: &str = "52:54:00:fa:00:01";

/// How an image reaches far memory.
#[derive(Clone, Debug)]
pub enum NodeChoice {
    /// Start a node for this run with these settings.
    Start(NodeOptions),
    /// A node already listening on this Unix socket.
    Socket(PathBuf),
    /// A node already listening on this UDP address (`host:port`); the image's side binds
    /// `local` (`host:port`).
    Udp { remote: String, local: String },
}

/// Settings of a node started for a run.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// Bytes all regions may take.
    pub capacity: u64,
    /// Fraction of frames the node loses on purpose.
    pub drop_rate: f64,
    pub seed: u64,
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions { capacity: 4 << 30, drop_rate: 0.0, seed: 1 }
    }
}

/// Builds `memnode` (release) and returns its path.
pub fn build() -> Result<PathBuf> {
    let status = cargo()
        .args(["build", "--release", "--quiet", "--package", "memnode"])
        .status()
        .context("cannot run cargo to build memnode")?;
    if !status.success() {
        bail!("building memnode failed");
    }
    Ok(target_dir().join("release").join("memnode"))
}

/// A running memory node, stopped when dropped.
pub struct MemoryNode {
    child: Arc<Mutex<Option<Child>>>,
    pub socket: PathBuf,
    output: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl MemoryNode {
    /// Starts a node listening on `socket` and waits until it says so.
    pub fn start(binary: &Path, socket: &Path, options: &NodeOptions) -> Result<MemoryNode> {
        let _ = std::fs::remove_file(socket);
        let mut child = Command::new(binary)
            .arg("--socket")
            .arg(socket)
            .arg("--capacity")
            .arg(format!("{}", options.capacity))
            .arg("--drop-rate")
            .arg(format!("{}", options.drop_rate))
            .arg("--seed")
            .arg(format!("{}", options.seed))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let output = Arc::new(Mutex::new(String::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let out = output.clone();
        let readers = vec![
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if line.contains("listening on") {
                        let _ = ready_tx.send(());
                    }
                    let mut o = out.lock().expect("node output");
                    o.push_str(&line);
                    o.push('\n');
                }
            }),
            {
                let out = output.clone();
                std::thread::spawn(move || {
                    let mut text = String::new();
                    let _ = BufReader::new(stderr).read_to_string(&mut text);
                    out.lock().expect("node output").push_str(&text);
                })
            },
        ];
        let child = Arc::new(Mutex::new(Some(child)));
        let node = MemoryNode { child, socket: socket.to_path_buf(), output, readers };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if ready_rx.recv_timeout(Duration::from_millis(20)).is_ok() {
                return Ok(node);
            }
            if let Some(status) = node.try_wait() {
                bail!("memnode exited at start ({status}): {}", node.output().trim());
            }
            if Instant::now() > deadline {
                bail!("memnode did not start listening within 10 s: {}", node.output().trim());
            }
        }
    }

    fn try_wait(&self) -> Option<std::process::ExitStatus> {
        let mut guard = self.child.lock().expect("node handle");
        guard.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// A handle that can kill the node from another thread (tests of a lost node).
    pub fn killer(&self) -> NodeKiller {
        NodeKiller(self.child.clone())
    }

    /// What the node printed so far.
    pub fn output(&self) -> String {
        self.output.lock().expect("node output").clone()
    }

    /// Asks the node to exit (SIGTERM, so it prints its counters), waits, returns its
    /// output.
    pub fn stop(mut self) -> String {
        self.terminate();
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        self.output()
    }

    fn terminate(&mut self) {
        let Some(mut child) = self.child.lock().expect("node handle").take() else { return };
        if child.try_wait().ok().flatten().is_none() {
            // SIGTERM through kill(1), so the node prints its counters; SIGKILL if that
            // does not work.
            let terminated = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .is_ok_and(|s| s.success());
            if !terminated {
                let _ = child.kill();
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
        }
        let _ = child.wait();
        let _ = std::fs::remove_file(&self.socket);
    }
}

impl Drop for MemoryNode {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// Kills a node abruptly.
#[derive(Clone)]
pub struct NodeKiller(Arc<Mutex<Option<Child>>>);

impl NodeKiller {
    pub fn kill(&self) {
        if let Some(child) = self.0.lock().expect("node handle").as_mut() {
            let _ = child.kill();
        }
    }
}

/// QEMU arguments that give the image its far-memory NIC on a Unix-socket node.
pub fn qemu_args_unix(node_socket: &Path, image_socket: &Path) -> Vec<String> {
    let _ = std::fs::remove_file(image_socket);
    vec![
        "-netdev".into(),
        format!(
            "dgram,id=farmem,local.type=unix,local.path={},remote.type=unix,remote.path={}",
            image_socket.display(),
            node_socket.display()
        ),
        "-device".into(),
        format!("virtio-net-pci,netdev=farmem,addr={FAR_NIC_PCI_SLOT},mac={FAR_NIC_MAC}"),
    ]
}

/// QEMU arguments for a node reached over UDP.
pub fn qemu_args_udp(remote: &str, local: &str) -> Result<Vec<String>> {
    let split = |a: &str| -> Result<(String, String)> {
        let (host, port) =
            a.rsplit_once(':').with_context(|| format!("{a}: expected host:port"))?;
        Ok((host.to_string(), port.to_string()))
    };
    let (rh, rp) = split(remote)?;
    let (lh, lp) = split(local)?;
    Ok(vec![
        "-netdev".into(),
        format!(
            "dgram,id=farmem,local.type=inet,local.host={lh},local.port={lp},remote.type=inet,remote.host={rh},remote.port={rp}"
        ),
        "-device".into(),
        format!("virtio-net-pci,netdev=farmem,addr={FAR_NIC_PCI_SLOT},mac={FAR_NIC_MAC}"),
    ])
}

/// A fresh 128-bit region key, as 32 hex digits.
pub fn fresh_key() -> String {
    let mut bytes = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut bytes);
    }
    if bytes == [0; 16] {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        bytes = (t ^ (std::process::id() as u128) << 64).to_be_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A private directory for one run's sockets, removed when dropped.
pub struct RunDir(PathBuf);

impl RunDir {
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Creates a [`RunDir`].
pub fn run_dir() -> Result<RunDir> {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("remora-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(RunDir(dir))
}

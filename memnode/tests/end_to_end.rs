//! The `memnode` binary on real sockets: a client speaking the wire codec by hand over a
//! Unix datagram socket, `remora_rmem::LinkTransport` over UDP with frames dropped on
//! purpose, signals, and start-up errors.

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use remora_rmem::{
    Body, Clock, ErrorCode, Link, LinkConfig, LinkError, LinkTransport, LocalBuf, MAX_FRAME_LEN,
    Message, PAGE_SIZE, RegionKey, Transport, decode_frame, encode_frame,
};

const NODE_MAC: [u8; 6] = memnode::DEFAULT_NODE_MAC;
const IMAGE_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0xab, 0xcd, 0xef];
const KEY: RegionKey = RegionKey::from_u128(0x1234_5678_9abc_def0_0fed_cba9_8765_4321);
const WAIT: Duration = Duration::from_secs(10);

/// A running memnode and the lines of its standard output.
struct Node {
    child: Child,
    lines: Receiver<String>,
}

impl Node {
    fn start(args: &[&str]) -> (Node, String) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_memnode"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("memnode starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut node = Node { child, lines };
        let ready = node.line_containing("memnode: listening on");
        (node, ready)
    }

    fn line_containing(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(error) => panic!("memnode never printed '{needle}': {error}"),
            }
        }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Sends SIGTERM; returns the exit code and the rest of the output.
    fn stop(mut self) -> (i32, String) {
        self.signal("TERM");
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "memnode did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(10));
        };
        let rest: Vec<String> = self.lines.iter().collect();
        (status.code().expect("exited, not killed"), rest.join("\n"))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client socket speaking the codec by hand.
struct Client {
    socket: UnixDatagram,
    node: std::path::PathBuf,
}

impl Client {
    fn send(&self, request_id: u64, key: RegionKey, body: Body<'_>) {
        let mut buf = vec![0u8; MAX_FRAME_LEN];
        let len = encode_frame(NODE_MAC, IMAGE_MAC, &Message::new(request_id, key, body), &mut buf)
            .unwrap();
        self.socket.send_to(&buf[..len], &self.node).unwrap();
    }

    fn receive(&self) -> Vec<u8> {
        let mut buf = vec![0u8; MAX_FRAME_LEN + 100];
        let len = self.socket.recv(&mut buf).expect("an answer within the timeout");
        buf.truncate(len);
        buf
    }
}

#[test]
fn serves_a_client_on_a_unix_socket_and_exits_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let node_path = dir.path().join("memnode.sock");
    let (mut node, ready) =
        Node::start(&["--socket", node_path.to_str().unwrap(), "--capacity", "4G"]);
    assert_eq!(ready, format!("memnode: listening on {} (capacity 4G)", node_path.display()));

    let client_path = dir.path().join("image.sock");
    let socket = UnixDatagram::bind(&client_path).unwrap();
    socket.set_read_timeout(Some(WAIT)).unwrap();
    let client = Client { socket, node: node_path.clone() };

    client.send(1, KEY, Body::OpenRequest { size_wanted: 8 << 30 });
    let answer = client.receive();
    let (header, message) = decode_frame(&answer).unwrap();
    assert_eq!((header.dst, header.src), (IMAGE_MAC, NODE_MAC));
    let Body::Error { code: ErrorCode::NO_CAPACITY, reason, .. } = message.body else {
        panic!("{message:?}")
    };
    assert!(reason.contains("raise memnode --capacity"));

    client.send(2, KEY, Body::OpenRequest { size_wanted: 1 << 30 });
    let answer = client.receive();
    let Body::OpenReply { region_size, first_request_id } = decode_frame(&answer).unwrap().1.body
    else {
        panic!()
    };
    assert_eq!(region_size, 1 << 30);

    let page: Vec<u8> = (0..PAGE_SIZE).map(|i| (i * 7) as u8).collect();
    let page: &[u8; PAGE_SIZE] = page.as_slice().try_into().unwrap();
    let id = first_request_id;
    client.send(id, KEY, Body::WriteRequest { offset: 0x7000, data: page });
    let answer = client.receive();
    assert_eq!(decode_frame(&answer).unwrap().1.body, Body::WriteAck { offset: 0x7000 });

    client.send(id + 1, KEY, Body::ReadRequest { offset: 0x6000, len: 2 * PAGE_SIZE as u64 });
    let mut pages = [client.receive(), client.receive()];
    pages.sort_by_key(|frame| match decode_frame(frame).unwrap().1.body {
        Body::ReadPage { offset, .. } => offset,
        _ => u64::MAX,
    });
    assert_eq!(
        decode_frame(&pages[0]).unwrap().1.body,
        Body::ReadPage { offset: 0x6000, data: &[0; PAGE_SIZE] }
    );
    assert_eq!(
        decode_frame(&pages[1]).unwrap().1.body,
        Body::ReadPage { offset: 0x7000, data: page }
    );

    // Another key gets nothing of this region.
    client.send(
        id + 2,
        RegionKey::from_u128(1),
        Body::ReadRequest { offset: 0x7000, len: PAGE_SIZE as u64 },
    );
    let answer = client.receive();
    let message = decode_frame(&answer).unwrap().1;
    assert!(
        matches!(message.body, Body::Error { code: ErrorCode::UNKNOWN_KEY, .. }),
        "{message:?}"
    );

    // Garbage is dropped without an answer; the node keeps serving.
    client.socket.send_to(b"short", &node_path).unwrap();
    client.send(id + 3, KEY, Body::ReadRequest { offset: 0x7000, len: PAGE_SIZE as u64 });
    let answer = client.receive();
    assert_eq!(decode_frame(&answer).unwrap().1.request_id, id + 3);

    node.signal("USR1");
    let counters = node.line_containing("memnode: reads");
    assert!(counters.contains("reads 2 (3 pages"), "{counters}");

    let (code, output) = node.stop();
    assert_eq!(code, 0, "{output}");
    for needle in [
        "frames in 7, out 7",
        "writes 1 (4096 bytes)",
        "unknown key 1",
        "no capacity 1",
        "truncated 1",
        "memnode: exiting",
    ] {
        assert!(output.contains(needle), "'{needle}' missing from:\n{output}");
    }
    assert!(!node_path.exists(), "the socket is removed on exit");
}

/// The image's end of a UDP link, as QEMU's `-netdev dgram` with `remote.type=inet` is.
struct UdpLink {
    socket: UdpSocket,
    buf: Vec<u8>,
}

impl Link for UdpLink {
    fn mac(&self) -> [u8; 6] {
        IMAGE_MAC
    }

    fn send(&mut self, frame: &[u8]) -> Result<(), LinkError> {
        match self.socket.send(frame) {
            Ok(_) => Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => Err(LinkError::Busy),
            Err(_) => Err(LinkError::Failed { what: "UDP send failed" }),
        }
    }

    fn receive<R>(&mut self, handle: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let len = self.socket.recv(&mut self.buf).ok()?;
        Some(handle(&self.buf[..len]))
    }
}

struct WallClock(Instant);

impl Clock for WallClock {
    fn now_ns(&self) -> u64 {
        self.0.elapsed().as_nanos() as u64
    }
}

#[test]
fn link_transport_works_against_the_binary_over_lossy_udp() {
    let (node, ready) = Node::start(&[
        "--udp",
        "127.0.0.1:0",
        "--drop-rate",
        "0.1",
        "--seed",
        "7",
        "--capacity",
        "64M",
    ]);
    let addr = ready
        .strip_prefix("memnode: listening on udp ")
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("unexpected ready line: {ready}"));
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.connect(addr).unwrap();
    socket.set_nonblocking(true).unwrap();
    let link = UdpLink { socket, buf: vec![0; MAX_FRAME_LEN + 64] };
    let config = LinkConfig { queue_depth: 16, timeout_us: 20_000, retries: 50, window_pages: 256 };
    let mut far = LinkTransport::connect(link, WallClock(Instant::now()), KEY, 16 << 20, config)
        .expect("connects to memnode");

    let mut memory = vec![0u8; 64 * PAGE_SIZE];
    for (i, byte) in memory.iter_mut().enumerate() {
        *byte = (i / 3) as u8 ^ (i >> 12) as u8;
    }
    let run = 8 * PAGE_SIZE;
    // Writes of 8-page runs, all in flight together, then reads of the same runs.
    for (chunk, base) in memory.chunks_mut(run).zip((0u64..).step_by(run)) {
        let virt = std::ptr::NonNull::new(chunk.as_mut_ptr()).unwrap();
        // SAFETY: `chunk` is not touched until every request has completed below.
        let buf = unsafe { LocalBuf::new(virt, 0, run) };
        far.post_write(base + (1 << 20), buf, base).unwrap();
    }
    wait_all(&mut far);
    let mut back = vec![0u8; memory.len()];
    for (chunk, base) in back.chunks_mut(run).zip((0u64..).step_by(run)) {
        let virt = std::ptr::NonNull::new(chunk.as_mut_ptr()).unwrap();
        // SAFETY: as above.
        let buf = unsafe { LocalBuf::new(virt, 0, run) };
        far.post_read(base + (1 << 20), buf, base).unwrap();
    }
    wait_all(&mut far);
    assert!(back == memory, "far memory read back differs from what was written");
    let stats = far.stats();
    assert!(stats.retransmitted_frames > 0, "10% loss should cost retries: {stats:?}");

    let (code, output) = node.stop();
    assert_eq!(code, 0);
    assert!(!output.contains("dropped 0 "), "{output}");
}

fn wait_all<L: Link, C: Clock>(far: &mut LinkTransport<L, C>) {
    let deadline = Instant::now() + WAIT;
    while far.in_flight() > 0 {
        if let Some(done) = far.poll() {
            assert_eq!(done.status, Ok(()), "request {:#x}", done.tag);
        }
        assert!(Instant::now() < deadline, "requests still in flight: {far:?}");
    }
}

#[test]
fn a_second_node_on_the_same_socket_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memnode.sock");
    let (first, _) = Node::start(&["--socket", path.to_str().unwrap()]);
    let second = Command::new(env!("CARGO_BIN_EXE_memnode"))
        .args(["--socket", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("another process is listening on"), "{stderr}");
    let (code, _) = first.stop();
    assert_eq!(code, 0);
}

#[test]
fn a_stale_socket_file_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memnode.sock");
    drop(UnixDatagram::bind(&path).unwrap());
    assert!(path.exists());
    let (node, _) = Node::start(&["--socket", path.to_str().unwrap()]);
    let (code, _) = node.stop();
    assert_eq!(code, 0);
    assert!(!Path::new(&path).exists());
}

#[test]
fn bad_arguments_are_explained() {
    let run = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_memnode")).args(args).output().unwrap();
        (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
    };
    let (code, stderr) = run(&["--capacity", "4X"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("'4X' is not a size"), "{stderr}");
    let (code, stderr) = run(&["--drop-rate", "2"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("between 0 and 1"), "{stderr}");
    let (code, stderr) = run(&["--socket", "/nonexistent-dir/memnode.sock"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("cannot create the socket /nonexistent-dir/memnode.sock"), "{stderr}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, "keep me").unwrap();
    let (code, stderr) = run(&["--socket", file.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("is not a socket; refusing to replace it"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
}

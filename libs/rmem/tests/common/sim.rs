//! A simulated network for `LinkTransport`: the image's end of a link, a fake clock, and
//! the real `memnode::Server` at the far end, with frames that can be lost, duplicated
//! (copies may arrive much later) and reordered (random delivery delays).
//!
//! Everything is single-threaded and deterministic for a seed: the network advances only
//! when the image's link is polled, and time only when the clock is read.

#![allow(dead_code, reason = "each test uses a part of the simulation")]

use std::cell::{Cell, RefCell};
use std::ptr::NonNull;
use std::rc::Rc;

use memnode::{DEFAULT_NODE_MAC, DropRng, Server, ServerConfig};
use remora_rmem::{Clock, Link, LinkError, LocalBuf, MAX_FRAME_LEN};

/// The image's MAC address in the simulation.
pub const IMAGE_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

/// How frames fare on the way, in both directions.
#[derive(Clone, Copy, Debug)]
pub struct Impairments {
    /// Fraction of frames lost.
    pub loss: f64,
    /// Fraction of frames delivered twice; the copy arrives up to `late_ns` later.
    pub duplicate: f64,
    /// Latency of every frame, nanoseconds.
    pub latency_ns: u64,
    /// Random extra delay up to this, per frame: reorders frames.
    pub jitter_ns: u64,
    /// How late a duplicate may arrive after the original.
    pub late_ns: u64,
}

impl Impairments {
    /// A perfect link with 5 µs latency.
    pub const CLEAN: Impairments =
        Impairments { loss: 0.0, duplicate: 0.0, latency_ns: 5_000, jitter_ns: 0, late_ns: 0 };
}

struct Frame {
    deliver_at: u64,
    /// Ties broken by order of sending, so a clean link is FIFO.
    order: u64,
    data: Vec<u8>,
}

/// The simulated network and the memory node behind it.
pub struct Network {
    pub server: Server,
    pub impairments: Impairments,
    /// The node answers nothing while false (frames to it are lost).
    pub node_alive: bool,
    /// Frames to the node are held, not delivered, while true.
    pub node_paused: bool,
    /// Every `n`-th send of the image is refused with `LinkError::Busy` (0: never).
    pub busy_every: u64,
    to_node: Vec<Frame>,
    to_image: Vec<Frame>,
    rng: DropRng,
    clock: FakeClock,
    sequence: u64,
    /// Frames the image handed to the link (accepted ones).
    pub image_sends: u64,
    /// Send attempts of the image, accepted or not.
    pub image_send_attempts: u64,
}

impl Network {
    fn transmit(&mut self, toward_node: bool, data: &[u8]) {
        let now = self.clock.peek();
        let imp = self.impairments;
        if self.rng.chance(imp.loss) {
            return;
        }
        let copies = if self.rng.chance(imp.duplicate) { 2 } else { 1 };
        for copy in 0..copies {
            let jitter = if imp.jitter_ns > 0 { self.rng.below(imp.jitter_ns) } else { 0 };
            let late = if copy > 0 && imp.late_ns > 0 { self.rng.below(imp.late_ns) } else { 0 };
            self.sequence += 1;
            let frame = Frame {
                deliver_at: now + imp.latency_ns + jitter + late,
                order: self.sequence,
                data: data.to_vec(),
            };
            if toward_node { self.to_node.push(frame) } else { self.to_image.push(frame) }
        }
    }

    /// Delivers every frame due at the node; its replies go on the way back.
    fn run_node(&mut self) {
        if self.node_paused {
            return;
        }
        let now = self.clock.peek();
        while let Some(frame) = take_due(&mut self.to_node, now) {
            if !self.node_alive {
                continue;
            }
            let mut replies = Vec::new();
            self.server.handle_frame(&frame.data, |reply| replies.push(reply.to_vec()));
            for reply in replies {
                self.transmit(false, &reply);
            }
        }
    }

    /// Frames still on the way to the image.
    pub fn frames_to_image(&self) -> usize {
        self.to_image.len()
    }

    /// Frames still on the way to the node.
    pub fn frames_to_node(&self) -> usize {
        self.to_node.len()
    }

    /// Puts `frame` on the way to the image, due now.
    pub fn inject_to_image(&mut self, frame: Vec<u8>) {
        self.sequence += 1;
        self.to_image.push(Frame {
            deliver_at: self.clock.peek(),
            order: self.sequence,
            data: frame,
        });
    }

    /// Replaces the node by a fresh one (a restart: every region is gone).
    pub fn restart_node(&mut self, config: ServerConfig) {
        self.server = Server::new(config);
    }
}

/// The earliest due frame, if any.
fn take_due(queue: &mut Vec<Frame>, now: u64) -> Option<Frame> {
    let (index, _) = queue
        .iter()
        .enumerate()
        .filter(|(_, frame)| frame.deliver_at <= now)
        .min_by_key(|(_, frame)| (frame.deliver_at, frame.order))?;
    Some(queue.swap_remove(index))
}

/// A clock that advances `tick_ns` every time it is read, so busy-waiting makes time
/// pass.
#[derive(Clone)]
pub struct FakeClock {
    now: Rc<Cell<u64>>,
    tick_ns: u64,
}

impl FakeClock {
    pub fn new(tick_ns: u64) -> Self {
        FakeClock { now: Rc::new(Cell::new(1_000_000_000)), tick_ns }
    }

    /// The time without advancing it.
    pub fn peek(&self) -> u64 {
        self.now.get()
    }

    pub fn advance(&self, ns: u64) {
        self.now.set(self.now.get() + ns);
    }
}

impl Clock for FakeClock {
    fn now_ns(&self) -> u64 {
        let now = self.now.get() + self.tick_ns;
        self.now.set(now);
        now
    }
}

/// The image's end of the simulated link.
#[derive(Clone)]
pub struct SimLink {
    pub net: Rc<RefCell<Network>>,
}

impl Link for SimLink {
    fn mac(&self) -> [u8; 6] {
        IMAGE_MAC
    }

    fn send(&mut self, frame: &[u8]) -> Result<(), LinkError> {
        let mut net = self.net.borrow_mut();
        net.image_send_attempts += 1;
        if net.busy_every > 0 && net.image_send_attempts.is_multiple_of(net.busy_every) {
            return Err(LinkError::Busy);
        }
        if frame.len() > MAX_FRAME_LEN {
            return Err(LinkError::TooLong { len: frame.len(), max: MAX_FRAME_LEN });
        }
        net.image_sends += 1;
        net.transmit(true, frame);
        Ok(())
    }

    fn receive<R>(&mut self, handle: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let frame = {
            let mut net = self.net.borrow_mut();
            net.run_node();
            let now = net.clock.peek();
            take_due(&mut net.to_image, now)?
        };
        Some(handle(&frame.data))
    }
}

/// A network with a node of `capacity` bytes, and the clock it runs on.
pub fn network(capacity: u64, impairments: Impairments, seed: u64) -> (SimLink, FakeClock) {
    let clock = FakeClock::new(1_000);
    let net = Network {
        server: Server::new(ServerConfig { capacity, mac: DEFAULT_NODE_MAC }),
        impairments,
        node_alive: true,
        node_paused: false,
        busy_every: 0,
        to_node: Vec::new(),
        to_image: Vec::new(),
        rng: DropRng::new(seed),
        clock: clock.clone(),
        sequence: 0,
        image_sends: 0,
        image_send_attempts: 0,
    };
    (SimLink { net: Rc::new(RefCell::new(net)) }, clock)
}

/// Local memory for a request: `len` bytes from the heap, owned by the returned
/// `LocalBuf` until [`free_buf`].
pub fn new_buf(len: usize) -> LocalBuf {
    let memory: &'static mut [u8] = Box::leak(vec![0u8; len].into_boxed_slice());
    let virt = NonNull::from(memory).cast::<u8>();
    // SAFETY: the leaked allocation is valid for `len` bytes and nothing else refers to
    // it; it is freed only by `free_buf`, which takes the `LocalBuf`.
    unsafe { LocalBuf::new(virt, 0, len) }
}

/// A buffer holding `bytes`.
pub fn buf_with(bytes: &[u8]) -> LocalBuf {
    let mut buf = new_buf(bytes.len());
    buf.as_mut_slice().copy_from_slice(bytes);
    buf
}

/// Frees a buffer made by [`new_buf`], returning its contents.
pub fn free_buf(buf: LocalBuf) -> Vec<u8> {
    let (virt, _, len) = buf.into_raw();
    let slice = std::ptr::slice_from_raw_parts_mut(virt.as_ptr(), len);
    // SAFETY: `virt`/`len` come from the `Box<[u8]>` leaked by `new_buf`, and the
    // `LocalBuf` that owned it is gone.
    let memory = unsafe { Box::from_raw(slice) };
    memory.into_vec()
}

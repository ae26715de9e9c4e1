//! The connection exchange with the memory node over the control link: the image sends
//! its queue pair's number, first PSN, GID and MAC with the region it wants; the node
//! answers with its own QPN, PSN, GID and MAC and the region's base address, size and
//! rkey. RDMA CM is not used (it needs a UD QP1 and CM MADs); this small message does
//! what `rc_pingpong`'s TCP exchange does.
//!
//! Both messages are fixed-size and big-endian, with a magic, a version and a kind byte,
//! and travel as the payload of one Ethernet frame of EtherType [`EXCHANGE_ETHERTYPE`]
//! (the same NIC and socket that carry the far-memory link, so the node's other traffic
//! is unaffected). The codec is shared with `memnode` (feature `rdma`).
//!
//! | offset | request (64 bytes) | reply (80 bytes) |
//! |---|---|---|
//! | 0 | magic `RMRC` | magic `RMRC` |
//! | 4 | version 1 | version 1 |
//! | 5 | kind 1 | kind 2 |
//! | 6 | path MTU code (3 = 1024) | path MTU code |
//! | 7 | READs we keep outstanding | READs the node accepts outstanding |
//! | 8 | region key (16) | region key (16) |
//! | 24 | region size wanted (8) | region base address (8) |
//! | 32 | our QPN (4) | region size granted (8) |
//! | 36 | our first PSN (4) | |
//! | 40 | our GID (16) | node QPN (4) |
//! | 44 | | node first PSN (4) |
//! | 48 | | rkey (4) |
//! | 52 | | status (1), reserved (1) |
//! | 54 | | node MAC (6) |
//! | 56 | our MAC (6), reserved (2) | |
//! | 60 | | reserved (4) |
//! | 64 | | node GID (16) |
//!
//! This module owns the messages, their codec and the [`ControlLink`] interface; over a
//! frame [`Link`] it also owns retries. It never touches the RDMA device.

use core::fmt;

use remora_rmem::{BROADCAST_MAC, Clock, Link, LinkError};

use crate::ids::{Psn, Qpn, Rkey};

/// EtherType of the exchange's frames (the far-memory link uses 0x88B5).
pub const EXCHANGE_ETHERTYPE: u16 = 0x88b6;
/// First bytes of every message.
pub const MAGIC: [u8; 4] = *b"RMRC";
/// The version this code speaks.
pub const VERSION: u8 = 1;
/// Bytes of a [`ConnectRequest`].
pub const REQUEST_LEN: usize = 64;
/// Bytes of a [`ConnectReply`].
pub const REPLY_LEN: usize = 80;
/// Bytes of an Ethernet header.
const ETH: usize = 14;

const KIND_REQUEST: u8 = 1;
const KIND_REPLY: u8 = 2;

/// The image's half: sent to the memory node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectRequest {
    /// The region's key (as the link protocol's `RegionKey`).
    pub key: [u8; 16],
    /// Bytes of far memory wanted.
    pub region_size: u64,
    /// Our queue pair.
    pub qpn: Qpn,
    /// The first PSN we send (the node's expected receive PSN).
    pub psn: Psn,
    /// Our GID (`::ffff:a.b.c.d` for RoCE v2 over IPv4).
    pub gid: [u8; 16],
    /// Our MAC address.
    pub mac: [u8; 6],
    /// Path MTU code (1 = 256 ... 5 = 4096).
    pub mtu: u8,
    /// RDMA READs we keep outstanding (the node's `max_dest_rd_atomic` must be at least
    /// this).
    pub max_reads: u8,
}

/// Whether the node accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyStatus(pub u8);

impl ReplyStatus {
    /// Accepted: the parameters are valid.
    pub const OK: ReplyStatus = ReplyStatus(0);
    /// The node has no room for the region.
    pub const NO_CAPACITY: ReplyStatus = ReplyStatus(1);
    /// The request made no sense (MTU, sizes).
    pub const BAD_REQUEST: ReplyStatus = ReplyStatus(2);
    /// The node's RDMA setup failed (see its log).
    pub const RDMA_FAILED: ReplyStatus = ReplyStatus(3);

    /// What the status means.
    pub fn name(self) -> &'static str {
        match self.0 {
            0 => "accepted",
            1 => "no capacity for the region (raise memnode --capacity)",
            2 => "bad request",
            3 => "the node's RDMA setup failed (see its log)",
            _ => "unknown status",
        }
    }
}

/// The memory node's half: its queue pair and the region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectReply {
    /// [`ReplyStatus::OK`] or why not.
    pub status: ReplyStatus,
    /// The key the request named.
    pub key: [u8; 16],
    /// The node's queue pair.
    pub qpn: Qpn,
    /// The first PSN the node sends (our expected receive PSN).
    pub psn: Psn,
    /// The node's GID.
    pub gid: [u8; 16],
    /// The node's MAC address (RoCE needs the peer's MAC in the address path).
    pub mac: [u8; 6],
    /// Path MTU code the node uses.
    pub mtu: u8,
    /// READs the node accepts outstanding from us.
    pub max_reads: u8,
    /// The key of the registered region.
    pub rkey: Rkey,
    /// The region's first address in the node's address space.
    pub region_base: u64,
    /// Bytes of the region.
    pub region_size: u64,
}

/// Why an exchange failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExchangeError {
    /// A message shorter than its kind.
    Short {
        /// Bytes there.
        len: usize,
        /// Bytes needed.
        need: usize,
    },
    /// Not an exchange message.
    BadMagic,
    /// Another version of the exchange.
    BadVersion {
        /// The version found.
        version: u8,
    },
    /// A request where a reply was expected, or the reverse.
    BadKind {
        /// The kind found.
        kind: u8,
    },
    /// The node refused.
    Refused {
        /// Why.
        status: ReplyStatus,
    },
    /// No reply.
    Timeout {
        /// Requests sent.
        tries: u32,
        /// Milliseconds from the first send to giving up.
        waited_ms: u64,
    },
    /// The link refused to send.
    Link(LinkError),
}

impl fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExchangeError::Short { len, need } => {
                write!(f, "message of {len} bytes, the exchange needs {need}")
            }
            ExchangeError::BadMagic => write!(f, "not an exchange message (bad magic)"),
            ExchangeError::BadVersion { version } => {
                write!(f, "exchange version {version}, this image speaks {VERSION}")
            }
            ExchangeError::BadKind { kind } => write!(f, "unexpected message kind {kind}"),
            ExchangeError::Refused { status } => {
                write!(f, "the memory node refused: {} ({})", status.name(), status.0)
            }
            ExchangeError::Timeout { tries, waited_ms } => write!(
                f,
                "no answer after {tries} tries over {waited_ms} ms: is memnode running with \
                 its rdma feature, and is the control link connected?"
            ),
            ExchangeError::Link(e) => write!(f, "{e}"),
        }
    }
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(x)
}

fn check(b: &[u8], kind: u8, need: usize) -> Result<(), ExchangeError> {
    if b.len() < 6 {
        return Err(ExchangeError::Short { len: b.len(), need });
    }
    if b[..4] != MAGIC {
        return Err(ExchangeError::BadMagic);
    }
    if b[4] != VERSION {
        return Err(ExchangeError::BadVersion { version: b[4] });
    }
    if b[5] != kind {
        return Err(ExchangeError::BadKind { kind: b[5] });
    }
    if b.len() < need {
        return Err(ExchangeError::Short { len: b.len(), need });
    }
    Ok(())
}

impl ConnectRequest {
    /// The message's bytes.
    pub fn encode(&self) -> [u8; REQUEST_LEN] {
        let mut b = [0u8; REQUEST_LEN];
        b[..4].copy_from_slice(&MAGIC);
        b[4] = VERSION;
        b[5] = KIND_REQUEST;
        b[6] = self.mtu;
        b[7] = self.max_reads;
        b[8..24].copy_from_slice(&self.key);
        b[24..32].copy_from_slice(&self.region_size.to_be_bytes());
        b[32..36].copy_from_slice(&self.qpn.0.to_be_bytes());
        b[36..40].copy_from_slice(&self.psn.0.to_be_bytes());
        b[40..56].copy_from_slice(&self.gid);
        b[56..62].copy_from_slice(&self.mac);
        b
    }

    /// Reads a request (trailing bytes are ignored).
    pub fn decode(b: &[u8]) -> Result<Self, ExchangeError> {
        check(b, KIND_REQUEST, REQUEST_LEN)?;
        let mut key = [0u8; 16];
        key.copy_from_slice(&b[8..24]);
        let mut gid = [0u8; 16];
        gid.copy_from_slice(&b[40..56]);
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&b[56..62]);
        Ok(ConnectRequest {
            key,
            region_size: be64(b, 24),
            qpn: Qpn(be32(b, 32) & 0xff_ffff),
            psn: Psn(be32(b, 36) & 0xff_ffff),
            gid,
            mac,
            mtu: b[6],
            max_reads: b[7],
        })
    }
}

impl ConnectReply {
    /// The message's bytes.
    pub fn encode(&self) -> [u8; REPLY_LEN] {
        let mut b = [0u8; REPLY_LEN];
        b[..4].copy_from_slice(&MAGIC);
        b[4] = VERSION;
        b[5] = KIND_REPLY;
        b[6] = self.mtu;
        b[7] = self.max_reads;
        b[8..24].copy_from_slice(&self.key);
        b[24..32].copy_from_slice(&self.region_base.to_be_bytes());
        b[32..40].copy_from_slice(&self.region_size.to_be_bytes());
        b[40..44].copy_from_slice(&self.qpn.0.to_be_bytes());
        b[44..48].copy_from_slice(&self.psn.0.to_be_bytes());
        b[48..52].copy_from_slice(&self.rkey.0.to_be_bytes());
        b[52] = self.status.0;
        b[54..60].copy_from_slice(&self.mac);
        b[64..80].copy_from_slice(&self.gid);
        b
    }

    /// Reads a reply (trailing bytes are ignored). A refusal decodes; turning it into an
    /// error is the caller's choice.
    pub fn decode(b: &[u8]) -> Result<Self, ExchangeError> {
        check(b, KIND_REPLY, REPLY_LEN)?;
        let mut key = [0u8; 16];
        key.copy_from_slice(&b[8..24]);
        let mut gid = [0u8; 16];
        gid.copy_from_slice(&b[64..80]);
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&b[54..60]);
        Ok(ConnectReply {
            status: ReplyStatus(b[52]),
            key,
            qpn: Qpn(be32(b, 40) & 0xff_ffff),
            psn: Psn(be32(b, 44) & 0xff_ffff),
            gid,
            mac,
            mtu: b[6],
            max_reads: b[7],
            rkey: Rkey(be32(b, 48)),
            region_base: be64(b, 24),
            region_size: be64(b, 32),
        })
    }

    /// A refusal of `request` for `status`.
    pub fn refusal(request: &ConnectRequest, status: ReplyStatus) -> Self {
        ConnectReply {
            status,
            key: request.key,
            qpn: Qpn(0),
            psn: Psn(0),
            gid: [0; 16],
            mac: [0; 6],
            mtu: request.mtu,
            max_reads: 0,
            rkey: Rkey(0),
            region_base: 0,
            region_size: 0,
        }
    }
}

/// An Ethernet frame carrying `message` from `src` to `dst`.
pub fn encode_frame(dst: [u8; 6], src: [u8; 6], message: &[u8], out: &mut [u8]) -> usize {
    out[..6].copy_from_slice(&dst);
    out[6..12].copy_from_slice(&src);
    out[12..14].copy_from_slice(&EXCHANGE_ETHERTYPE.to_be_bytes());
    out[ETH..ETH + message.len()].copy_from_slice(message);
    ETH + message.len()
}

/// The sender's MAC and the payload of an exchange frame, or `None` for any other frame.
pub fn parse_frame(frame: &[u8]) -> Option<([u8; 6], &[u8])> {
    if frame.len() < ETH || frame[12..14] != EXCHANGE_ETHERTYPE.to_be_bytes() {
        return None;
    }
    let mut src = [0u8; 6];
    src.copy_from_slice(&frame[6..12]);
    Some((src, &frame[ETH..]))
}

/// Carries one exchange to the memory node and back.
pub trait ControlLink {
    /// Sends `request` and returns the node's reply (a refusal is an
    /// [`ExchangeError::Refused`]).
    fn exchange(&mut self, request: &ConnectRequest) -> Result<ConnectReply, ExchangeError>;
}

/// The exchange over a frame [`Link`] (the far-memory NIC): broadcast the request, wait
/// for the reply with the same key, send again after `timeout_ns`, at most `tries` times.
pub struct FrameControlLink<L, C> {
    link: L,
    clock: C,
    timeout_ns: u64,
    tries: u32,
}

impl<L: Link, C: Clock> FrameControlLink<L, C> {
    /// The exchange over `link`; each try waits `timeout_ns` for the reply.
    pub fn new(link: L, clock: C, timeout_ns: u64, tries: u32) -> Self {
        FrameControlLink { link, clock, timeout_ns, tries: tries.max(1) }
    }

    /// The link back.
    pub fn into_inner(self) -> L {
        self.link
    }
}

impl<L: Link, C: Clock> ControlLink for FrameControlLink<L, C> {
    fn exchange(&mut self, request: &ConnectRequest) -> Result<ConnectReply, ExchangeError> {
        let mut frame = [0u8; ETH + REQUEST_LEN];
        let len = encode_frame(BROADCAST_MAC, self.link.mac(), &request.encode(), &mut frame);
        let started = self.clock.now_ns();
        for _ in 0..self.tries {
            match self.link.send(&frame[..len]) {
                Ok(()) | Err(LinkError::Busy) => {}
                Err(e) => return Err(ExchangeError::Link(e)),
            }
            let sent = self.clock.now_ns();
            while self.clock.now_ns().saturating_sub(sent) < self.timeout_ns {
                let got = self.link.receive(|f| {
                    let (_, payload) = parse_frame(f)?;
                    ConnectReply::decode(payload).ok()
                });
                if let Some(Some(reply)) = got
                    && reply.key == request.key
                {
                    if reply.status != ReplyStatus::OK {
                        return Err(ExchangeError::Refused { status: reply.status });
                    }
                    return Ok(reply);
                }
                core::hint::spin_loop();
            }
        }
        Err(ExchangeError::Timeout {
            tries: self.tries,
            waited_ms: self.clock.now_ns().saturating_sub(started) / 1_000_000,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn request() -> ConnectRequest {
        ConnectRequest {
            key: [7; 16],
            region_size: 1 << 30,
            qpn: Qpn(0x1234),
            psn: Psn(0xabcdef),
            gid: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 2],
            mac: [2, 0, 0, 0, 0, 1],
            mtu: 3,
            max_reads: 16,
        }
    }

    #[test]
    fn request_round_trip_and_layout() {
        let r = request();
        let b = r.encode();
        assert_eq!(&b[..6], b"RMRC\x01\x01");
        assert_eq!(&b[32..36], &[0, 0, 0x12, 0x34]);
        assert_eq!(ConnectRequest::decode(&b), Ok(r));
    }

    #[test]
    fn reply_round_trip_and_refusals() {
        let mut reply = ConnectReply::refusal(&request(), ReplyStatus::OK);
        reply.qpn = Qpn(0x99);
        reply.rkey = Rkey(0xdead_beef);
        reply.region_base = 0x7f00_0000_0000;
        reply.region_size = 1 << 30;
        reply.mac = [1, 2, 3, 4, 5, 6];
        let b = reply.encode();
        assert_eq!(ConnectReply::decode(&b), Ok(reply));
        assert_eq!(ConnectReply::decode(&b[..70]), Err(ExchangeError::Short { len: 70, need: 80 }));
        assert_eq!(ConnectRequest::decode(&b), Err(ExchangeError::BadKind { kind: 2 }));
        let mut bad = b;
        bad[4] = 9;
        assert_eq!(ConnectReply::decode(&bad), Err(ExchangeError::BadVersion { version: 9 }));
        bad[0] = b'X';
        assert_eq!(ConnectReply::decode(&bad), Err(ExchangeError::BadMagic));
    }

    #[test]
    fn frames() {
        let mut out = [0u8; 100];
        let n = encode_frame([0xff; 6], [2; 6], &request().encode(), &mut out);
        let (src, payload) = parse_frame(&out[..n]).unwrap();
        assert_eq!(src, [2; 6]);
        assert_eq!(ConnectRequest::decode(payload), Ok(request()));
        out[12] = 0x08;
        assert!(parse_frame(&out[..n]).is_none());
    }

    proptest! {
        #[test]
        fn decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
            let _ = ConnectRequest::decode(&bytes);
            let _ = ConnectReply::decode(&bytes);
            let _ = parse_frame(&bytes);
        }
    }
}

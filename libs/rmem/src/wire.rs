//! The wire protocol between a compute image and the memory node: the message body
//! carried in each Ethernet frame (see [`crate::ethernet`] for the frame around it).
//!
//! This module owns the byte layout, its constants and the codec. It is shared verbatim
//! by both ends (the image's transport and `memnode`). It must never allocate, never
//! panic on input, and never decide policy: whether an offset lies inside a region, or a
//! request may be retried, is for the node and the transport. The decoder checks only
//! that a message is well formed, and accepts exactly what the encoder produces (plus
//! trailing padding): `encode(decode(bytes))` gives the same bytes back.
//!
//! # Layout (all integers big-endian)
//! ```text
//! offset size field
//!      0    4 magic           "RMEM" (52 4d 45 4d)
//!      4    1 version         1
//!      5    1 op              see `Op`
//!      6    2 flags           bit 0: RETRANSMIT (a request sent again); others zero
//!      8    8 request id      chosen by the image; answers carry the request's id
//!     16   16 region key      the image's 128-bit secret; answers carry it back
//!     32    8 offset          byte offset in the region (page aligned for data ops)
//!     40    8 length          bytes (meaning per op, below)
//!     48    8 aux             per op: Open reply's first request id; Error's code
//!     56    2 payload length  bytes following the header
//!     58    2 reserved        zero
//!     60    n payload         a page (4096) for ReadPage and WriteRequest; the reason for Error
//! ```
//!
//! | op | code | offset | length | aux | payload |
//! |---|---|---|---|---|---|
//! | OpenRequest | 1 | 0 | region size wanted | 0 | none |
//! | OpenReply | 2 | 0 | region size granted | first request id of the session | none |
//! | ReadRequest | 3 | first page | bytes of the run (pages) | 0 | none |
//! | ReadPage | 4 | this page | 4096 | 0 | the page |
//! | WriteRequest | 5 | this page | 4096 | 0 | the page |
//! | WriteAck | 6 | this page | 4096 | 0 | none |
//! | Error | 7 | the request's | the request's | error code | reason, UTF-8, at most 120 bytes |
//!
//! A ReadRequest for a run of pages is answered by one ReadPage per page, in any order,
//! each naming its own offset. A write of a run is one WriteRequest per page under one
//! request id, each acknowledged on its own.
//!
//! # Request ids and idempotence
//! The OpenReply's `aux` is the first request id the image may use in this session: the
//! node picks it above every id it has seen for the region, so ids grow across sessions
//! (an image that reboots and reconnects) as well as within one. The node ignores a
//! WriteRequest whose id is lower than the last one applied to that page, so a write that
//! wanders late through the network never overwrites newer data; it still acknowledges
//! it. Reads change nothing. Every request can therefore be sent again safely.

use core::fmt;

/// Bytes in one far-memory page: the unit of every read and write.
pub const PAGE_SIZE: usize = 4096;

/// The first four bytes of every message.
pub const MAGIC: [u8; 4] = *b"RMEM";

/// The protocol version this crate speaks.
pub const VERSION: u8 = 1;

/// Bytes of the message header, before the payload.
pub const HEADER_LEN: usize = 60;

/// Longest reason text an Error message carries, in bytes.
pub const MAX_REASON_LEN: usize = 120;

/// Most pages one ReadRequest (or one posted write) may cover: 256 KiB.
pub const MAX_RUN_PAGES: usize = 64;

/// Longest message body: a header and one page.
pub const MAX_MESSAGE_LEN: usize = HEADER_LEN + PAGE_SIZE;

/// Longest frame: Ethernet header, message header, one page (4170 bytes). The link must
/// carry frames this long (a jumbo frame; QEMU's socket backends do), and receive
/// buffers must hold one.
pub const MAX_FRAME_LEN: usize = crate::ethernet::ETHERNET_HEADER_LEN + MAX_MESSAGE_LEN;

/// The 128-bit secret that names an image's region on the memory node. Whoever knows it
/// can read and write the region, so it is shown abbreviated in `Debug` output.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegionKey(pub [u8; 16]);

impl RegionKey {
    /// The key from its 16 bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        RegionKey(bytes)
    }

    /// The key from a `u128` (big-endian bytes).
    pub const fn from_u128(value: u128) -> Self {
        RegionKey(value.to_be_bytes())
    }

    /// The key's 16 bytes.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Debug for RegionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RegionKey({:02x}{:02x}..)", self.0[0], self.0[1])
    }
}

/// The operation a message carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Op {
    /// Image to node: create (or find) the region for this key.
    OpenRequest = 1,
    /// Node to image: the region's size and the session's first request id.
    OpenReply = 2,
    /// Image to node: read a run of pages.
    ReadRequest = 3,
    /// Node to image: one page of a read run.
    ReadPage = 4,
    /// Image to node: write one page.
    WriteRequest = 5,
    /// Node to image: one page written.
    WriteAck = 6,
    /// Node to image: the request was refused; nothing was changed.
    Error = 7,
}

impl Op {
    /// The op for its code, if known.
    pub fn from_code(code: u8) -> Option<Op> {
        Some(match code {
            1 => Op::OpenRequest,
            2 => Op::OpenReply,
            3 => Op::ReadRequest,
            4 => Op::ReadPage,
            5 => Op::WriteRequest,
            6 => Op::WriteAck,
            7 => Op::Error,
            _ => return None,
        })
    }

    /// True for the ops the node sends (answers).
    pub fn is_reply(self) -> bool {
        matches!(self, Op::OpenReply | Op::ReadPage | Op::WriteAck | Op::Error)
    }
}

/// Message flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Flags(u16);

impl Flags {
    /// No flag set.
    pub const NONE: Flags = Flags(0);
    /// The request was sent before and timed out (informational; the node counts it).
    pub const RETRANSMIT: Flags = Flags(1);
    /// Every flag this version defines; a decoder rejects others.
    pub const KNOWN: Flags = Flags(1);

    /// The flags from their bits, if every bit is known.
    pub fn from_bits(bits: u16) -> Option<Flags> {
        (bits & !Self::KNOWN.0 == 0).then_some(Flags(bits))
    }

    /// The bits.
    pub fn bits(self) -> u16 {
        self.0
    }

    /// True if every flag of `other` is set.
    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
}

/// Why the node refused a request: the code in an Error message. A newtype rather than
/// an enum so that a node newer than the image can add codes without making its errors
/// undecodable; [`ErrorCode::name`] says "unrecognized" for those.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub u16);

impl ErrorCode {
    /// No region has this key on the node (never opened, or the node was restarted).
    pub const UNKNOWN_KEY: ErrorCode = ErrorCode(1);
    /// The offset and length reach beyond the region.
    pub const OUT_OF_BOUNDS: ErrorCode = ErrorCode(2);
    /// The offset or length is not a multiple of the page size.
    pub const UNALIGNED: ErrorCode = ErrorCode(3);
    /// A length the operation does not take (zero, or a run longer than
    /// [`MAX_RUN_PAGES`]).
    pub const BAD_LENGTH: ErrorCode = ErrorCode(4);
    /// The node's capacity cannot hold the region asked for.
    pub const NO_CAPACITY: ErrorCode = ErrorCode(5);
    /// A region with this key exists with another size.
    pub const SIZE_MISMATCH: ErrorCode = ErrorCode(6);
    /// The node sends only answers; this message was one.
    pub const NOT_A_REQUEST: ErrorCode = ErrorCode(7);
    /// Something went wrong inside the node.
    pub const INTERNAL: ErrorCode = ErrorCode(8);

    /// A short name for the code.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::UNKNOWN_KEY => "unknown region key",
            ErrorCode::OUT_OF_BOUNDS => "out of the region's bounds",
            ErrorCode::UNALIGNED => "not page aligned",
            ErrorCode::BAD_LENGTH => "bad length",
            ErrorCode::NO_CAPACITY => "no capacity left on the memory node",
            ErrorCode::SIZE_MISMATCH => "region exists with another size",
            ErrorCode::NOT_A_REQUEST => "not a request",
            ErrorCode::INTERNAL => "memory node internal error",
            _ => "unrecognized error code",
        }
    }
}

impl fmt::Debug for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ErrorCode({}: {})", self.0, self.name())
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (code {})", self.name(), self.0)
    }
}

/// What a message says, by operation. Payloads borrow the buffer they were decoded from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body<'a> {
    /// Create or find the region for the message's key, `size_wanted` bytes.
    OpenRequest {
        /// Bytes wanted; a multiple of [`PAGE_SIZE`].
        size_wanted: u64,
    },
    /// The region exists.
    OpenReply {
        /// Its size in bytes.
        region_size: u64,
        /// The first request id this session may use; later ids count up from it.
        first_request_id: u64,
    },
    /// Read `len` bytes (whole pages) from `offset`.
    ReadRequest {
        /// First byte; page aligned.
        offset: u64,
        /// Bytes; a multiple of [`PAGE_SIZE`], at most [`MAX_RUN_PAGES`] pages.
        len: u64,
    },
    /// One page of a read.
    ReadPage {
        /// The page's offset in the region.
        offset: u64,
        /// Its contents.
        data: &'a [u8; PAGE_SIZE],
    },
    /// Write one page.
    WriteRequest {
        /// The page's offset in the region.
        offset: u64,
        /// Its new contents.
        data: &'a [u8; PAGE_SIZE],
    },
    /// One page was written (or was already newer than this write).
    WriteAck {
        /// The page's offset in the region.
        offset: u64,
    },
    /// The request was refused.
    Error {
        /// Why, as a code.
        code: ErrorCode,
        /// The request's offset.
        offset: u64,
        /// The request's length.
        len: u64,
        /// Why, in words (at most [`MAX_REASON_LEN`] bytes).
        reason: &'a str,
    },
}

impl Body<'_> {
    /// The operation.
    pub fn op(&self) -> Op {
        match self {
            Body::OpenRequest { .. } => Op::OpenRequest,
            Body::OpenReply { .. } => Op::OpenReply,
            Body::ReadRequest { .. } => Op::ReadRequest,
            Body::ReadPage { .. } => Op::ReadPage,
            Body::WriteRequest { .. } => Op::WriteRequest,
            Body::WriteAck { .. } => Op::WriteAck,
            Body::Error { .. } => Op::Error,
        }
    }

    /// `(offset, length, aux, payload)` as laid out on the wire.
    fn fields(&self) -> (u64, u64, u64, &[u8]) {
        let page = PAGE_SIZE as u64;
        match *self {
            Body::OpenRequest { size_wanted } => (0, size_wanted, 0, &[]),
            Body::OpenReply { region_size, first_request_id } => {
                (0, region_size, first_request_id, &[])
            }
            Body::ReadRequest { offset, len } => (offset, len, 0, &[]),
            Body::ReadPage { offset, data } => (offset, page, 0, data),
            Body::WriteRequest { offset, data } => (offset, page, 0, data),
            Body::WriteAck { offset } => (offset, page, 0, &[]),
            Body::Error { code, offset, len, reason } => {
                (offset, len, u64::from(code.0), reason.as_bytes())
            }
        }
    }
}

/// One message: who asks (request id, region key), how (flags) and what (body).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    /// The request's id; an answer carries the id of the request it answers.
    pub request_id: u64,
    /// The region's key.
    pub key: RegionKey,
    /// Flags.
    pub flags: Flags,
    /// The operation and its fields.
    pub body: Body<'a>,
}

impl<'a> Message<'a> {
    /// A message with no flags.
    pub fn new(request_id: u64, key: RegionKey, body: Body<'a>) -> Self {
        Message { request_id, key, flags: Flags::NONE, body }
    }

    /// Bytes [`Message::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.body.fields().3.len()
    }

    /// Writes the message at the start of `buf`; returns its length. Fails only if `buf`
    /// is too short or an Error's reason is longer than [`MAX_REASON_LEN`].
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        let (offset, length, aux, payload) = self.body.fields();
        if let Body::Error { reason, .. } = self.body
            && reason.len() > MAX_REASON_LEN
        {
            return Err(EncodeError::ReasonTooLong { len: reason.len(), max: MAX_REASON_LEN });
        }
        let need = HEADER_LEN + payload.len();
        let Some(out) = buf.get_mut(..need) else {
            return Err(EncodeError::BufferTooSmall { need, got: buf.len() });
        };
        out[0..4].copy_from_slice(&MAGIC);
        out[4] = VERSION;
        out[5] = self.body.op() as u8;
        out[6..8].copy_from_slice(&self.flags.bits().to_be_bytes());
        out[8..16].copy_from_slice(&self.request_id.to_be_bytes());
        out[16..32].copy_from_slice(&self.key.0);
        out[32..40].copy_from_slice(&offset.to_be_bytes());
        out[40..48].copy_from_slice(&length.to_be_bytes());
        out[48..56].copy_from_slice(&aux.to_be_bytes());
        // The payload is at most a page or a reason: always fits in u16.
        out[56..58].copy_from_slice(&(payload.len() as u16).to_be_bytes());
        out[58..60].copy_from_slice(&[0, 0]);
        out[HEADER_LEN..].copy_from_slice(payload);
        Ok(need)
    }

    /// Reads a message from the start of `bytes`, checking everything that makes it well
    /// formed; bytes after the payload are ignored. Never panics.
    pub fn decode(bytes: &'a [u8]) -> Result<Message<'a>, DecodeError> {
        let Some(header) = bytes.first_chunk::<HEADER_LEN>() else {
            // Say what is wrong with the bytes there are, before complaining about length.
            if bytes.len() >= 4 && bytes[0..4] != MAGIC {
                return Err(DecodeError::BadMagic {
                    found: [bytes[0], bytes[1], bytes[2], bytes[3]],
                });
            }
            return Err(DecodeError::Truncated { need: HEADER_LEN, got: bytes.len() });
        };
        let u64_at = |at: usize| {
            let mut word = [0; 8];
            word.copy_from_slice(&header[at..at + 8]);
            u64::from_be_bytes(word)
        };
        if header[0..4] != MAGIC {
            return Err(DecodeError::BadMagic {
                found: [header[0], header[1], header[2], header[3]],
            });
        }
        if header[4] != VERSION {
            return Err(DecodeError::UnsupportedVersion { found: header[4], supported: VERSION });
        }
        let op = Op::from_code(header[5]).ok_or(DecodeError::UnknownOp { found: header[5] })?;
        let flag_bits = u16::from_be_bytes([header[6], header[7]]);
        let flags =
            Flags::from_bits(flag_bits).ok_or(DecodeError::UnknownFlags { found: flag_bits })?;
        let request_id = u64_at(8);
        let mut key = [0; 16];
        key.copy_from_slice(&header[16..32]);
        let key = RegionKey(key);
        let offset = u64_at(32);
        let length = u64_at(40);
        let aux = u64_at(48);
        let payload_len = usize::from(u16::from_be_bytes([header[56], header[57]]));
        if header[58..60] != [0, 0] {
            return Err(DecodeError::NonZeroField { op, field: "reserved" });
        }

        let expected_payload = match op {
            Op::ReadPage | Op::WriteRequest => Some(PAGE_SIZE),
            Op::Error => None,
            _ => Some(0),
        };
        match expected_payload {
            Some(expected) if payload_len != expected => {
                return Err(DecodeError::BadLength {
                    op,
                    field: "payload",
                    expected,
                    found: payload_len as u64,
                });
            }
            None if payload_len > MAX_REASON_LEN => {
                return Err(DecodeError::ReasonTooLong { len: payload_len, max: MAX_REASON_LEN });
            }
            _ => {}
        }
        let Some(payload) = bytes.get(HEADER_LEN..HEADER_LEN + payload_len) else {
            return Err(DecodeError::Truncated {
                need: HEADER_LEN + payload_len,
                got: bytes.len(),
            });
        };

        let zero = |field: &'static str, value: u64| {
            if value == 0 { Ok(()) } else { Err(DecodeError::NonZeroField { op, field }) }
        };
        let one_page = |value: u64| {
            if value == PAGE_SIZE as u64 {
                Ok(())
            } else {
                Err(DecodeError::BadLength {
                    op,
                    field: "length",
                    expected: PAGE_SIZE,
                    found: value,
                })
            }
        };
        let page = |payload: &'a [u8]| -> Result<&'a [u8; PAGE_SIZE], DecodeError> {
            payload.try_into().map_err(|_| DecodeError::BadLength {
                op,
                field: "payload",
                expected: PAGE_SIZE,
                found: payload.len() as u64,
            })
        };

        let body = match op {
            Op::OpenRequest => {
                zero("offset", offset)?;
                zero("aux", aux)?;
                Body::OpenRequest { size_wanted: length }
            }
            Op::OpenReply => {
                zero("offset", offset)?;
                Body::OpenReply { region_size: length, first_request_id: aux }
            }
            Op::ReadRequest => {
                zero("aux", aux)?;
                Body::ReadRequest { offset, len: length }
            }
            Op::ReadPage => {
                one_page(length)?;
                zero("aux", aux)?;
                Body::ReadPage { offset, data: page(payload)? }
            }
            Op::WriteRequest => {
                one_page(length)?;
                zero("aux", aux)?;
                Body::WriteRequest { offset, data: page(payload)? }
            }
            Op::WriteAck => {
                one_page(length)?;
                zero("aux", aux)?;
                Body::WriteAck { offset }
            }
            Op::Error => {
                let code =
                    u16::try_from(aux).map_err(|_| DecodeError::BadErrorCode { found: aux })?;
                let reason = core::str::from_utf8(payload).map_err(|_| DecodeError::BadReason)?;
                Body::Error { code: ErrorCode(code), offset, len: length, reason }
            }
        };
        Ok(Message { request_id, key, flags, body })
    }
}

/// Why bytes are not a well-formed frame or message. The receiver drops such a frame and
/// counts it; nothing else happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than the header or the declared payload needs.
    Truncated {
        /// Bytes needed.
        need: usize,
        /// Bytes there were.
        got: usize,
    },
    /// The Ethernet frame is not of [`crate::ETHERTYPE_RMEM`]: some other traffic.
    WrongEtherType {
        /// The EtherType found.
        found: u16,
    },
    /// The body does not start with [`MAGIC`].
    BadMagic {
        /// The first four bytes found.
        found: [u8; 4],
    },
    /// The message is of another protocol version.
    UnsupportedVersion {
        /// Its version.
        found: u8,
        /// The version this side speaks.
        supported: u8,
    },
    /// The op code is not defined.
    UnknownOp {
        /// The code found.
        found: u8,
    },
    /// A flag bit that this version does not define is set.
    UnknownFlags {
        /// The flag bits found.
        found: u16,
    },
    /// A length field does not fit the operation (a page op whose length or payload is not
    /// one page, a request with a payload).
    BadLength {
        /// The operation.
        op: Op,
        /// Which length: `"length"` or `"payload"`.
        field: &'static str,
        /// What the operation takes.
        expected: usize,
        /// What the message says.
        found: u64,
    },
    /// A field the operation does not use is not zero.
    NonZeroField {
        /// The operation.
        op: Op,
        /// The field.
        field: &'static str,
    },
    /// An Error message's code does not fit in 16 bits.
    BadErrorCode {
        /// The `aux` field found.
        found: u64,
    },
    /// An Error message's reason is longer than [`MAX_REASON_LEN`].
    ReasonTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An Error message's reason is not UTF-8.
    BadReason,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DecodeError::Truncated { need, got } => {
                write!(f, "truncated far-memory message: need {need} bytes, got {got}")
            }
            DecodeError::WrongEtherType { found } => write!(
                f,
                "not a far-memory frame: EtherType {found:#06x}, expected {:#06x}",
                crate::ETHERTYPE_RMEM
            ),
            DecodeError::BadMagic { found } => {
                write!(f, "not a far-memory message: magic {found:02x?}, expected \"RMEM\"")
            }
            DecodeError::UnsupportedVersion { found, supported } => write!(
                f,
                "far-memory protocol version {found} is not supported (this side speaks \
                 {supported}); run a memnode and an image built from the same sources"
            ),
            DecodeError::UnknownOp { found } => write!(f, "unknown far-memory op code {found}"),
            DecodeError::UnknownFlags { found } => {
                write!(f, "unknown far-memory flags {found:#06x}")
            }
            DecodeError::BadLength { op, field, expected, found } => {
                write!(f, "{op:?} with {field} {found}, expected {expected}")
            }
            DecodeError::NonZeroField { op, field } => {
                write!(f, "{op:?} with a non-zero {field} field (unused, must be 0)")
            }
            DecodeError::BadErrorCode { found } => {
                write!(f, "Error message with code {found}, which does not fit in 16 bits")
            }
            DecodeError::ReasonTooLong { len, max } => {
                write!(f, "Error message reason of {len} bytes, at most {max} allowed")
            }
            DecodeError::BadReason => write!(f, "Error message reason is not UTF-8"),
        }
    }
}

/// Why a message could not be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The buffer is shorter than the message.
    BufferTooSmall {
        /// Bytes needed.
        need: usize,
        /// Bytes given.
        got: usize,
    },
    /// An Error message's reason is longer than [`MAX_REASON_LEN`]; shorten it (see
    /// [`truncate_reason`]).
    ReasonTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            EncodeError::BufferTooSmall { need, got } => write!(
                f,
                "buffer of {got} bytes is too small for a far-memory message of {need} bytes \
                 (MAX_FRAME_LEN always suffices)"
            ),
            EncodeError::ReasonTooLong { len, max } => {
                write!(f, "error reason of {len} bytes is longer than the {max} allowed")
            }
        }
    }
}

/// The longest prefix of `reason` that fits an Error message, cut at a character
/// boundary.
pub fn truncate_reason(reason: &str) -> &str {
    if reason.len() <= MAX_REASON_LEN {
        return reason;
    }
    let mut end = MAX_REASON_LEN;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: RegionKey = RegionKey::from_u128(0x0123_4567_89ab_cdef_0011_2233_4455_6677);

    #[test]
    fn read_page_layout_is_as_documented() {
        let page = [0xa5; PAGE_SIZE];
        let message = Message {
            request_id: 0x1122_3344_5566_7788,
            key: KEY,
            flags: Flags::RETRANSMIT,
            body: Body::ReadPage { offset: 0x3000, data: &page },
        };
        let mut buf = [0u8; MAX_MESSAGE_LEN];
        assert_eq!(message.encode(&mut buf), Ok(MAX_MESSAGE_LEN));
        assert_eq!(&buf[0..4], b"RMEM");
        assert_eq!(buf[4], 1);
        assert_eq!(buf[5], 4);
        assert_eq!(buf[6..8], [0, 1]);
        assert_eq!(buf[8..16], 0x1122_3344_5566_7788u64.to_be_bytes());
        assert_eq!(buf[16..32], KEY.0);
        assert_eq!(buf[32..40], 0x3000u64.to_be_bytes());
        assert_eq!(buf[40..48], 4096u64.to_be_bytes());
        assert_eq!(buf[48..56], [0; 8]);
        assert_eq!(buf[56..58], 4096u16.to_be_bytes());
        assert_eq!(buf[58..60], [0, 0]);
        assert!(buf[60..].iter().all(|&b| b == 0xa5));
        assert_eq!(Message::decode(&buf), Ok(message));
    }

    #[test]
    fn padding_after_the_message_is_ignored() {
        let message = Message::new(7, KEY, Body::WriteAck { offset: 4096 });
        let mut buf = [0xeeu8; 100];
        let len = message.encode(&mut buf).unwrap();
        assert_eq!(len, HEADER_LEN);
        assert_eq!(Message::decode(&buf), Ok(message));
    }

    #[test]
    fn short_buffers_are_refused() {
        let message = Message::new(7, KEY, Body::OpenRequest { size_wanted: 1 << 20 });
        let mut buf = [0u8; HEADER_LEN - 1];
        assert_eq!(
            message.encode(&mut buf),
            Err(EncodeError::BufferTooSmall { need: HEADER_LEN, got: HEADER_LEN - 1 })
        );
    }

    #[test]
    fn reasons_are_truncated_at_char_boundaries() {
        assert_eq!(truncate_reason("short"), "short");
        // Two-byte characters: 120 bytes is a boundary.
        assert_eq!(truncate_reason(&"é".repeat(100)).len(), 120);
        // One ASCII byte first: byte 120 falls inside a character, so 119 are kept.
        let odd = format!("a{}", "é".repeat(70));
        assert_eq!(truncate_reason(&odd).len(), 119);
    }
}

//! Properties of the wire codec: every message round-trips, the decoder accepts exactly
//! what the encoder writes (plus trailing padding), and rejects every truncation and
//! corruption with a reason instead of panicking.

use proptest::prelude::*;
use remora_rmem::wire::{HEADER_LEN, MAX_MESSAGE_LEN, VERSION};
use remora_rmem::{
    Body, DecodeError, ETHERNET_HEADER_LEN, ETHERTYPE_RMEM, EncodeError, ErrorCode, EthernetHeader,
    Flags, MAX_FRAME_LEN, MAX_REASON_LEN, Message, Op, PAGE_SIZE, RegionKey, decode_frame,
    encode_frame,
};

/// A message's fields, owned, so that proptest can generate them.
#[derive(Clone, Debug)]
enum OwnedBody {
    OpenRequest(u64),
    OpenReply(u64, u64),
    ReadRequest(u64, u64),
    ReadPage(u64, Box<[u8; PAGE_SIZE]>),
    WriteRequest(u64, Box<[u8; PAGE_SIZE]>),
    WriteAck(u64),
    Error(u16, u64, u64, String),
}

impl OwnedBody {
    fn body(&self) -> Body<'_> {
        match self {
            OwnedBody::OpenRequest(size_wanted) => Body::OpenRequest { size_wanted: *size_wanted },
            OwnedBody::OpenReply(region_size, first_request_id) => {
                Body::OpenReply { region_size: *region_size, first_request_id: *first_request_id }
            }
            OwnedBody::ReadRequest(offset, len) => Body::ReadRequest { offset: *offset, len: *len },
            OwnedBody::ReadPage(offset, data) => Body::ReadPage { offset: *offset, data },
            OwnedBody::WriteRequest(offset, data) => Body::WriteRequest { offset: *offset, data },
            OwnedBody::WriteAck(offset) => Body::WriteAck { offset: *offset },
            OwnedBody::Error(code, offset, len, reason) => {
                Body::Error { code: ErrorCode(*code), offset: *offset, len: *len, reason }
            }
        }
    }
}

fn page() -> impl Strategy<Value = Box<[u8; PAGE_SIZE]>> {
    // A seed byte and a stride make distinct pages without generating 4096 values.
    (any::<u8>(), any::<u8>()).prop_map(|(seed, stride)| {
        let mut page = Box::new([0u8; PAGE_SIZE]);
        for (i, byte) in page.iter_mut().enumerate() {
            *byte = seed.wrapping_add(stride.wrapping_mul(i as u8));
        }
        page
    })
}

fn reason() -> impl Strategy<Value = String> {
    // Any Unicode text that fits the reason field.
    any::<String>().prop_map(|text| remora_rmem::wire::truncate_reason(&text).to_owned())
}

fn owned_body() -> impl Strategy<Value = OwnedBody> {
    prop_oneof![
        any::<u64>().prop_map(OwnedBody::OpenRequest),
        (any::<u64>(), any::<u64>()).prop_map(|(a, b)| OwnedBody::OpenReply(a, b)),
        (any::<u64>(), any::<u64>()).prop_map(|(a, b)| OwnedBody::ReadRequest(a, b)),
        (any::<u64>(), page()).prop_map(|(a, p)| OwnedBody::ReadPage(a, p)),
        (any::<u64>(), page()).prop_map(|(a, p)| OwnedBody::WriteRequest(a, p)),
        any::<u64>().prop_map(OwnedBody::WriteAck),
        (any::<u16>(), any::<u64>(), any::<u64>(), reason())
            .prop_map(|(c, o, l, r)| OwnedBody::Error(c, o, l, r)),
    ]
}

fn flags() -> impl Strategy<Value = Flags> {
    prop_oneof![Just(Flags::NONE), Just(Flags::RETRANSMIT)]
}

fn key() -> impl Strategy<Value = RegionKey> {
    any::<[u8; 16]>().prop_map(RegionKey::from_bytes)
}

/// A valid encoded frame of any op.
fn valid_frame() -> impl Strategy<Value = Vec<u8>> {
    (any::<u64>(), key(), flags(), owned_body(), any::<[u8; 6]>(), any::<[u8; 6]>()).prop_map(
        |(request_id, key, flags, body, dst, src)| {
            let message = Message { request_id, key, flags, body: body.body() };
            let mut buf = vec![0u8; MAX_FRAME_LEN];
            let len = encode_frame(dst, src, &message, &mut buf).unwrap();
            buf.truncate(len);
            buf
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn every_message_round_trips(
        request_id in any::<u64>(),
        key in key(),
        flags in flags(),
        body in owned_body(),
        dst in any::<[u8; 6]>(),
        src in any::<[u8; 6]>(),
        padding in 0usize..64,
    ) {
        let message = Message { request_id, key, flags, body: body.body() };
        let mut buf = vec![0xa5u8; MAX_FRAME_LEN + 64];
        let len = encode_frame(dst, src, &message, &mut buf).unwrap();
        prop_assert_eq!(len, ETHERNET_HEADER_LEN + message.encoded_len());
        prop_assert!(len <= MAX_FRAME_LEN);
        // Decoding sees the frame with some padding after it, as short Ethernet frames have.
        let (header, decoded) = decode_frame(&buf[..len + padding]).unwrap();
        prop_assert_eq!(header, EthernetHeader { dst, src, ethertype: ETHERTYPE_RMEM });
        prop_assert_eq!(decoded, message);
    }

    #[test]
    fn every_truncation_is_rejected(frame in valid_frame(), cut in any::<prop::sample::Index>()) {
        let cut = cut.index(frame.len());
        match decode_frame(&frame[..cut]) {
            Err(DecodeError::Truncated { need, got }) => {
                prop_assert_eq!(got, cut.saturating_sub(if cut >= ETHERNET_HEADER_LEN { ETHERNET_HEADER_LEN } else { 0 }));
                prop_assert!(need > got);
            }
            other => prop_assert!(false, "cut at {} of {}: {:?}", cut, frame.len(), other),
        }
    }

    /// Whatever a corrupted frame decodes to is canonical: encoding it again gives the
    /// same bytes. So the decoder accepts nothing the encoder would not write.
    #[test]
    fn corrupted_frames_never_panic_and_accepted_ones_are_canonical(
        frame in valid_frame(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut frame = frame;
        for (at, value) in flips {
            let at = at.index(frame.len());
            frame[at] = value;
        }
        check_canonical(&frame)?;
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..MAX_FRAME_LEN + 16)) {
        check_canonical(&bytes)?;
        let _ = Message::decode(&bytes);
    }

    /// Random bytes behind a valid header prefix reach the per-op checks.
    #[test]
    fn random_bodies_behind_a_valid_prefix_never_panic(
        op in 0u8..10,
        rest in prop::collection::vec(any::<u8>(), 0..HEADER_LEN + PAGE_SIZE),
    ) {
        let mut body = b"RMEM".to_vec();
        body.push(VERSION);
        body.push(op);
        body.extend_from_slice(&rest);
        if let Ok(message) = Message::decode(&body) {
            let mut again = vec![0u8; MAX_MESSAGE_LEN];
            let len = message.encode(&mut again).unwrap();
            prop_assert_eq!(&again[..len], &body[..len]);
        }
    }
}

fn check_canonical(frame: &[u8]) -> Result<(), TestCaseError> {
    if let Ok((header, message)) = decode_frame(frame) {
        let mut again = vec![0u8; MAX_FRAME_LEN];
        let len = encode_frame(header.dst, header.src, &message, &mut again).unwrap();
        prop_assert_eq!(&again[..len], &frame[..len]);
    }
    Ok(())
}

/// A valid ReadPage message body, to corrupt field by field.
fn read_page_body() -> Vec<u8> {
    let page = [7u8; PAGE_SIZE];
    let message =
        Message::new(9, RegionKey::from_u128(5), Body::ReadPage { offset: 0, data: &page });
    let mut buf = vec![0u8; MAX_MESSAGE_LEN];
    let len = message.encode(&mut buf).unwrap();
    buf.truncate(len);
    buf
}

#[test]
fn each_corruption_gets_its_own_reason() {
    let good = read_page_body();
    let with = |at: usize, bytes: &[u8]| {
        let mut body = good.clone();
        body[at..at + bytes.len()].copy_from_slice(bytes);
        Message::decode(&body).map(|_| ())
    };
    assert_eq!(with(0, b"RMEN"), Err(DecodeError::BadMagic { found: *b"RMEN" }));
    assert_eq!(with(4, &[2]), Err(DecodeError::UnsupportedVersion { found: 2, supported: 1 }));
    assert_eq!(with(5, &[0]), Err(DecodeError::UnknownOp { found: 0 }));
    assert_eq!(with(5, &[8]), Err(DecodeError::UnknownOp { found: 8 }));
    assert_eq!(with(6, &[0x80, 0]), Err(DecodeError::UnknownFlags { found: 0x8000 }));
    assert_eq!(
        with(40, &8192u64.to_be_bytes()),
        Err(DecodeError::BadLength {
            op: Op::ReadPage,
            field: "length",
            expected: 4096,
            found: 8192
        })
    );
    assert_eq!(
        with(48, &[0, 0, 0, 0, 0, 0, 0, 1]),
        Err(DecodeError::NonZeroField { op: Op::ReadPage, field: "aux" })
    );
    assert_eq!(
        with(56, &100u16.to_be_bytes()),
        Err(DecodeError::BadLength {
            op: Op::ReadPage,
            field: "payload",
            expected: 4096,
            found: 100
        })
    );
    assert_eq!(
        with(58, &[0, 1]),
        Err(DecodeError::NonZeroField { op: Op::ReadPage, field: "reserved" })
    );
    assert_eq!(
        Message::decode(&good[..HEADER_LEN + 10]),
        Err(DecodeError::Truncated { need: HEADER_LEN + PAGE_SIZE, got: HEADER_LEN + 10 })
    );
    assert_eq!(Message::decode(b"RM"), Err(DecodeError::Truncated { need: HEADER_LEN, got: 2 }));
    assert_eq!(Message::decode(b"GET / HTTP"), Err(DecodeError::BadMagic { found: *b"GET " }));
}

#[test]
fn error_messages_are_checked() {
    let error = |code: u64, reason: &[u8]| {
        let message = Message::new(
            1,
            RegionKey::from_u128(1),
            Body::Error { code: ErrorCode(1), offset: 0, len: 0, reason: "" },
        );
        let mut buf = vec![0u8; MAX_MESSAGE_LEN];
        message.encode(&mut buf).unwrap();
        buf[48..56].copy_from_slice(&code.to_be_bytes());
        buf[56..58].copy_from_slice(&(reason.len() as u16).to_be_bytes());
        buf[HEADER_LEN..HEADER_LEN + reason.len()].copy_from_slice(reason);
        let decoded = Message::decode(&buf).map(|m| m.body);
        decoded.map(|body| match body {
            Body::Error { code, reason, .. } => (code, reason.to_owned()),
            other => panic!("{other:?}"),
        })
    };
    assert_eq!(error(3, b"unaligned"), Ok((ErrorCode::UNALIGNED, "unaligned".to_owned())));
    assert_eq!(error(1 << 16, b""), Err(DecodeError::BadErrorCode { found: 1 << 16 }));
    assert_eq!(error(1, &[0xff, 0xfe]), Err(DecodeError::BadReason));
    assert_eq!(
        error(1, &[b'x'; MAX_REASON_LEN + 1]),
        Err(DecodeError::ReasonTooLong { len: MAX_REASON_LEN + 1, max: MAX_REASON_LEN })
    );
    // A code from a newer node still decodes, and says it is not recognised.
    let (code, _) = error(999, b"new").unwrap();
    assert_eq!(code.name(), "unrecognized error code");
}

#[test]
fn frames_of_other_protocols_are_told_apart() {
    let mut frame = vec![0u8; 64];
    EthernetHeader { dst: [0xff; 6], src: [2; 6], ethertype: 0x0806 }.write(&mut frame).unwrap();
    assert_eq!(decode_frame(&frame), Err(DecodeError::WrongEtherType { found: 0x0806 }));
    assert_eq!(decode_frame(&frame[..13]), Err(DecodeError::Truncated { need: 14, got: 13 }));
}

#[test]
fn encoding_checks_its_inputs() {
    let long = "x".repeat(MAX_REASON_LEN + 1);
    let message = Message::new(
        1,
        RegionKey::from_u128(1),
        Body::Error { code: ErrorCode::INTERNAL, offset: 0, len: 0, reason: &long },
    );
    let mut buf = vec![0u8; MAX_FRAME_LEN];
    assert_eq!(
        message.encode(&mut buf),
        Err(EncodeError::ReasonTooLong { len: MAX_REASON_LEN + 1, max: MAX_REASON_LEN })
    );
    let page = [0u8; PAGE_SIZE];
    let message =
        Message::new(1, RegionKey::from_u128(1), Body::WriteRequest { offset: 0, data: &page });
    assert_eq!(
        encode_frame([0; 6], [0; 6], &message, &mut buf[..MAX_FRAME_LEN - 1]),
        Err(EncodeError::BufferTooSmall { need: MAX_FRAME_LEN, got: MAX_FRAME_LEN - 1 })
    );
    assert_eq!(MAX_FRAME_LEN, 4170);
}

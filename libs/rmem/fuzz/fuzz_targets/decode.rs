//! The wire decoder on arbitrary bytes: it must never panic, and whatever it accepts must
//! be canonical (encoding the decoded message gives the same bytes back).

#![no_main]

use libfuzzer_sys::fuzz_target;
use remora_rmem::{MAX_FRAME_LEN, Message, decode_frame, encode_frame};

fuzz_target!(|data: &[u8]| {
    let mut again = [0u8; MAX_FRAME_LEN];
    if let Ok((header, message)) = decode_frame(data) {
        let len = encode_frame(header.dst, header.src, &message, &mut again)
            .expect("a decoded message encodes");
        assert_eq!(&again[..len], &data[..len], "decoded frame is not canonical");
    }
    // The body decoder alone, on the same bytes.
    if let Ok(message) = Message::decode(data) {
        let len = message.encode(&mut again).expect("a decoded message encodes");
        assert_eq!(&again[..len], &data[..len], "decoded message is not canonical");
    }
});

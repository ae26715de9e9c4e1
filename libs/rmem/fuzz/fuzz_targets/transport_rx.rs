//! `LinkTransport`'s receive path on hostile frames: a transport with reads and writes in
//! flight receives frames made from the fuzz input, with the addresses, key and request
//! ids patched in often enough to reach reassembly. It must never panic, never complete a
//! request twice, and keep its in-flight accounting right.

#![no_main]

use std::cell::Cell;
use std::collections::VecDeque;
use std::ptr::NonNull;

use libfuzzer_sys::fuzz_target;
use remora_rmem::{
    Body, Clock, ETHERNET_HEADER_LEN, Link, LinkConfig, LinkError, LinkTransport, LocalBuf,
    MAX_FRAME_LEN, Message, RegionKey, Transport, encode_frame,
};

const IMAGE: [u8; 6] = [0x52, 0x54, 0, 0, 0, 1];
const NODE: [u8; 6] = [2, 0x52, 0x4d, 0x45, 0x4d, 1];
const KEY: RegionKey = RegionKey::from_u128(0xf022);
const FIRST_ID: u64 = 1 << 40;

struct ScriptedLink {
    inbox: VecDeque<Vec<u8>>,
    open_id: Option<u64>,
}

impl Link for ScriptedLink {
    fn mac(&self) -> [u8; 6] {
        IMAGE
    }

    fn send(&mut self, frame: &[u8]) -> Result<(), LinkError> {
        if self.open_id.is_none() {
            // The Open: remember its id to answer it.
            let id = u64::from_be_bytes(frame[ETHERNET_HEADER_LEN + 8..][..8].try_into().unwrap());
            self.open_id = Some(id);
            let reply = Message::new(
                id,
                KEY,
                Body::OpenReply { region_size: 1 << 20, first_request_id: FIRST_ID },
            );
            let mut buf = vec![0u8; MAX_FRAME_LEN];
            let len = encode_frame(IMAGE, NODE, &reply, &mut buf).unwrap();
            buf.truncate(len);
            self.inbox.push_back(buf);
        }
        Ok(())
    }

    fn receive<R>(&mut self, handle: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let frame = self.inbox.pop_front()?;
        Some(handle(&frame))
    }
}

struct StepClock(Cell<u64>);

impl Clock for StepClock {
    fn now_ns(&self) -> u64 {
        self.0.set(self.0.get() + 1000);
        self.0.get()
    }
}

fuzz_target!(|data: &[u8]| {
    let link = ScriptedLink { inbox: VecDeque::new(), open_id: None };
    let config = LinkConfig { queue_depth: 4, timeout_us: 1_000_000, retries: 1, window_pages: 256 };
    let Ok(mut far) = LinkTransport::connect(link, StepClock(Cell::new(0)), KEY, 1 << 20, config)
    else {
        panic!("connect to the scripted node failed");
    };
    let mut memory = vec![0u8; 4 * 4 * 4096];
    let base = memory.as_mut_ptr();
    for (i, write) in [false, true, false, true].into_iter().enumerate() {
        let virt = NonNull::new(base.wrapping_add(i * 4 * 4096)).unwrap();
        // SAFETY: each request gets its own 16 KiB of `memory`, untouched until the end.
        let buf = unsafe { LocalBuf::new(virt, 0, 4 * 4096) };
        let remote = (i as u64) * 4 * 4096;
        let posted = if write {
            far.post_write(remote, buf, i as u64)
        } else {
            far.post_read(remote, buf, i as u64)
        };
        assert!(posted.is_ok());
    }
    // Frames: chunks of the input separated by 0xff 0xff; each patched unless its first
    // byte is odd.
    for chunk in data.split(|&b| b == 0xff).filter(|c| !c.is_empty()) {
        let mut frame = chunk.to_vec();
        if chunk[0] & 1 == 0 && frame.len() >= ETHERNET_HEADER_LEN + 60 {
            frame[0..6].copy_from_slice(&IMAGE);
            frame[6..12].copy_from_slice(&NODE);
            frame[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
            let body = &mut frame[ETHERNET_HEADER_LEN..];
            body[0..5].copy_from_slice(b"RMEM\x01");
            let id = FIRST_ID + u64::from(body[8] % 6);
            body[8..16].copy_from_slice(&id.to_be_bytes());
            body[16..32].copy_from_slice(&KEY.0);
        }
        far.link_mut().inbox.push_back(frame);
    }
    let mut completed = Vec::new();
    for _ in 0..data.len() + 8 {
        if let Some(done) = far.poll() {
            assert!(!completed.contains(&done.tag), "request completed twice");
            completed.push(done.tag);
        }
    }
    assert_eq!(far.in_flight() + completed.len(), 4);
});

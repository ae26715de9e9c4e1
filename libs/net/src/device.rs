//! smoltcp's `Device` over a [`Nic`]: a received frame is copied into the device's one
//! receive buffer for smoltcp to read; a frame to send is built in its one transmit buffer
//! and handed to the card.

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;

use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// What the stack needs from a network card. The image implements it on its virtio-net
/// device.
pub trait Nic: Send {
    /// The card's MAC address.
    fn mac(&self) -> [u8; 6];
    /// Whether the card can take a frame now. The stack asks before building one, so a
    /// busy card makes TCP wait rather than lose segments (a lost segment costs a
    /// retransmission timeout).
    fn can_send(&mut self) -> bool;
    /// Queues an Ethernet frame; false if the card has no room (the frame is dropped).
    fn send(&mut self, frame: &[u8]) -> bool;
    /// Copies the next received frame into `buf` and returns its length, if one arrived.
    fn receive_into(&mut self, buf: &mut [u8]) -> Option<usize>;
}

/// Largest frame handled (standard Ethernet MTU plus header).
const MAX_FRAME: usize = 1514;

pub(crate) struct NicDevice {
    nic: Box<dyn Nic>,
    rx: Vec<u8>,
    tx: Vec<u8>,
    pub(crate) received: u64,
    pub(crate) sent: u64,
    pub(crate) dropped: u64,
}

impl NicDevice {
    pub(crate) fn new(nic: Box<dyn Nic>) -> Self {
        NicDevice {
            nic,
            rx: vec![0; MAX_FRAME + 64],
            tx: vec![0; MAX_FRAME],
            received: 0,
            sent: 0,
            dropped: 0,
        }
    }

    pub(crate) fn mac(&self) -> [u8; 6] {
        self.nic.mac()
    }
}

pub(crate) struct RxToken<'a>(&'a [u8]);

pub(crate) struct TxToken<'a> {
    nic: &'a mut dyn Nic,
    buf: &'a mut Vec<u8>,
    sent: &'a mut u64,
    dropped: &'a mut u64,
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        if self.buf.len() < len {
            self.buf.resize(len, 0);
        }
        let result = f(&mut self.buf[..len]);
        if self.nic.send(&self.buf[..len]) {
            *self.sent += 1;
        } else {
            *self.dropped += 1;
        }
        result
    }
}

impl phy::Device for NicDevice {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _timestamp: Instant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        // A received frame may need an answer: take it only if one can be sent.
        if !self.nic.can_send() {
            return None;
        }
        let len = self.nic.receive_into(&mut self.rx)?;
        self.received += 1;
        let NicDevice { nic, rx, tx, sent, dropped, .. } = self;
        Some((RxToken(&rx[..len]), TxToken { nic: nic.as_mut(), buf: tx, sent, dropped }))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<TxToken<'_>> {
        if !self.nic.can_send() {
            return None;
        }
        let NicDevice { nic, tx, sent, dropped, .. } = self;
        Some(TxToken { nic: nic.as_mut(), buf: tx, sent, dropped })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MAX_FRAME;
        caps.max_burst_size = Some(32);
        caps
    }
}

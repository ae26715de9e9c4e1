//! A virtio-net device as a plain frame pipe: every receive buffer is posted at start and
//! re-posted as soon as its frame has been handled; transmit buffers are reused once the
//! device has sent them. Both the far-memory link and the application's network stack
//! sit on one of these. Buffers are large enough for a far-memory frame (a whole page plus
//! headers); the NIC runs without interrupts, polled by its user.

use alloc::boxed::Box;
use alloc::vec::Vec;

use virtio_drivers::device::net::VirtIONetRaw;
use virtio_drivers::transport::pci::PciTransport;

use crate::virtio::VirtioHal;

/// Descriptors in each of the NIC's queues.
const QUEUE_SIZE: usize = 256;
/// Receive buffers posted: every descriptor of the receive queue.
pub const RX_BUFFERS: usize = QUEUE_SIZE;
/// Transmit buffers.
const TX_BUFFERS: usize = 128;
/// Bytes per buffer: the virtio-net header and a frame of up to 4.5 KiB.
pub const BUFFER_LEN: usize = 4608;

/// Why a frame was not sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// Every transmit buffer is in use: try again after the device has sent some.
    Busy,
    /// Longer than a buffer holds.
    TooLong {
        /// The frame's length.
        len: usize,
        /// The longest frame a buffer holds.
        max: usize,
    },
    /// The device refused it.
    Device,
}

/// A polled virtio-net device.
pub struct VirtioNet {
    device: VirtIONetRaw<VirtioHal, PciTransport, QUEUE_SIZE>,
    /// Receive buffers, indexed by the token of the request they are posted with.
    rx: Vec<Option<Box<[u8]>>>,
    /// Transmit buffers and the token each is in flight with, if any.
    tx: Vec<(Box<[u8]>, Option<u16>)>,
}

// SAFETY: the link is used under the pager's lock only; the device and its buffers move
// with it as a whole.
unsafe impl Send for VirtioNet {}

impl VirtioNet {
    /// Starts the device behind `transport` with all receive buffers posted.
    pub fn new(transport: PciTransport) -> Result<Self, virtio_drivers::Error> {
        let mut device = VirtIONetRaw::<VirtioHal, PciTransport, QUEUE_SIZE>::new(transport)?;
        device.disable_interrupts();
        let mut rx: Vec<Option<Box<[u8]>>> = (0..QUEUE_SIZE).map(|_| None).collect();
        for _ in 0..RX_BUFFERS {
            let mut buf = alloc::vec![0u8; BUFFER_LEN].into_boxed_slice();
            // SAFETY: the buffer is kept in `rx` under its token, untouched until the
            // device hands it back (`receive_complete`).
            let token = unsafe { device.receive_begin(&mut buf)? };
            rx[token as usize] = Some(buf);
        }
        let tx = (0..TX_BUFFERS)
            .map(|_| (alloc::vec![0u8; BUFFER_LEN].into_boxed_slice(), None))
            .collect();
        Ok(VirtioNet { device, rx, tx })
    }

    /// Takes back transmit buffers the device is done with.
    fn reap_transmitted(&mut self) {
        while let Some(token) = self.device.poll_transmit() {
            if let Some(slot) = self.tx.iter_mut().find(|(_, t)| *t == Some(token)) {
                // SAFETY: the same buffer that was given to `transmit_begin` with `token`.
                let _ = unsafe { self.device.transmit_complete(token, &slot.0) };
                slot.1 = None;
            } else {
                break;
            }
        }
    }
}

impl VirtioNet {
    /// The device's MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.device.mac_address()
    }

    /// Whether a frame can be queued now (a transmit buffer is free).
    pub fn can_send(&mut self) -> bool {
        self.reap_transmitted();
        self.tx.iter().any(|(_, token)| token.is_none())
    }

    /// Queues `frame` (an Ethernet frame) for sending.
    pub fn send(&mut self, frame: &[u8]) -> Result<(), SendError> {
        self.reap_transmitted();
        let Some(slot) = self.tx.iter_mut().find(|(_, t)| t.is_none()) else {
            return Err(SendError::Busy);
        };
        let header = self.device.fill_buffer_header(&mut slot.0).map_err(|_| SendError::Device)?;
        if header + frame.len() > slot.0.len() {
            return Err(SendError::TooLong { len: frame.len(), max: slot.0.len() - header });
        }
        slot.0[header..header + frame.len()].copy_from_slice(frame);
        // SAFETY: the buffer stays in `tx`, marked in flight, until `poll_transmit`
        // returns its token.
        let token = unsafe { self.device.transmit_begin(&slot.0[..header + frame.len()]) }
            .map_err(|_| SendError::Busy)?;
        slot.1 = Some(token);
        Ok(())
    }

    /// Lends the next received frame to `handle`, if one has arrived.
    pub fn receive<R>(&mut self, handle: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let token = self.device.poll_receive()?;
        let mut buf = self.rx.get_mut(token as usize)?.take()?;
        // SAFETY: `buf` is the buffer posted with `token`.
        let result = match unsafe { self.device.receive_complete(token, &mut buf) } {
            Ok((header, len)) => Some(handle(&buf[header..header + len])),
            Err(_) => None,
        };
        // SAFETY: as at start: kept under its new token until handed back.
        if let Ok(token) = unsafe { self.device.receive_begin(&mut buf) } {
            self.rx[token as usize] = Some(buf);
        }
        result
    }
}

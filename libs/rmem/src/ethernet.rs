//! The Ethernet framing of the wire protocol: one message per frame, EtherType
//! [`ETHERTYPE_RMEM`] (0x88B5, IEEE 802 "local experimental").
//!
//! This module owns the 14-byte Ethernet II header (destination MAC, source MAC,
//! EtherType, no VLAN tag, no FCS: devices and QEMU's socket backends add and strip
//! those) and the two helpers that put a [`Message`] in a frame and take it out. It must
//! never look inside the message body; that is [`crate::wire`]'s job.

use core::fmt;

use crate::wire::{DecodeError, EncodeError, Message};

/// The EtherType of every Remora far-memory frame (IEEE 802 local experimental 1).
pub const ETHERTYPE_RMEM: u16 = 0x88B5;

/// Bytes of the Ethernet II header: destination, source, EtherType.
pub const ETHERNET_HEADER_LEN: usize = 14;

/// The broadcast MAC address: where the compute image sends its Open before it knows the
/// memory node's address.
pub const BROADCAST_MAC: [u8; 6] = [0xff; 6];

/// An Ethernet II header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EthernetHeader {
    /// Where the frame goes.
    pub dst: [u8; 6],
    /// Who sent it.
    pub src: [u8; 6],
    /// What it carries ([`ETHERTYPE_RMEM`] for ours).
    pub ethertype: u16,
}

impl EthernetHeader {
    /// A header for a far-memory frame from `src` to `dst`.
    pub fn rmem(dst: [u8; 6], src: [u8; 6]) -> Self {
        EthernetHeader { dst, src, ethertype: ETHERTYPE_RMEM }
    }

    /// Writes the header into the first [`ETHERNET_HEADER_LEN`] bytes of `buf`.
    pub fn write(&self, buf: &mut [u8]) -> Result<(), EncodeError> {
        let Some(out) = buf.get_mut(..ETHERNET_HEADER_LEN) else {
            return Err(EncodeError::BufferTooSmall { need: ETHERNET_HEADER_LEN, got: buf.len() });
        };
        out[0..6].copy_from_slice(&self.dst);
        out[6..12].copy_from_slice(&self.src);
        out[12..14].copy_from_slice(&self.ethertype.to_be_bytes());
        Ok(())
    }

    /// Reads the header at the start of `frame`; returns it and the rest of the frame.
    /// Any EtherType is accepted here; [`decode_frame`] insists on ours.
    pub fn parse(frame: &[u8]) -> Result<(Self, &[u8]), DecodeError> {
        let Some((head, rest)) = frame.split_first_chunk::<ETHERNET_HEADER_LEN>() else {
            return Err(DecodeError::Truncated { need: ETHERNET_HEADER_LEN, got: frame.len() });
        };
        let mut dst = [0; 6];
        let mut src = [0; 6];
        dst.copy_from_slice(&head[0..6]);
        src.copy_from_slice(&head[6..12]);
        let ethertype = u16::from_be_bytes([head[12], head[13]]);
        Ok((EthernetHeader { dst, src, ethertype }, rest))
    }
}

/// Builds a whole frame, Ethernet header then `message`, at the start of `buf`; returns
/// the frame's length. Nothing is allocated; `buf` of [`crate::MAX_FRAME_LEN`] bytes
/// always suffices.
pub fn encode_frame(
    dst: [u8; 6],
    src: [u8; 6],
    message: &Message<'_>,
    buf: &mut [u8],
) -> Result<usize, EncodeError> {
    let need = ETHERNET_HEADER_LEN + message.encoded_len();
    if buf.len() < need {
        return Err(EncodeError::BufferTooSmall { need, got: buf.len() });
    }
    EthernetHeader::rmem(dst, src).write(buf)?;
    let body = message.encode(&mut buf[ETHERNET_HEADER_LEN..])?;
    Ok(ETHERNET_HEADER_LEN + body)
}

/// Takes a frame apart: its Ethernet header and the message it carries. A frame of
/// another EtherType is [`DecodeError::WrongEtherType`]; bytes after the message (the
/// padding of a minimum-size Ethernet frame) are ignored.
pub fn decode_frame(frame: &[u8]) -> Result<(EthernetHeader, Message<'_>), DecodeError> {
    let (header, body) = EthernetHeader::parse(frame)?;
    if header.ethertype != ETHERTYPE_RMEM {
        return Err(DecodeError::WrongEtherType { found: header.ethertype });
    }
    Ok((header, Message::decode(body)?))
}

/// Displays a MAC address as `52:54:00:12:34:56`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct MacDisplay(pub [u8; 6]);

impl fmt::Display for MacDisplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for MacDisplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

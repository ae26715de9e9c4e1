//! Big-endian fields: [`Be16`], [`Be32`], [`Be64`], and the bit-field arithmetic the
//! hardware layouts use ("dw 0x08 bits 14:11").
//!
//! Every mlx5 structure is big-endian. These wrappers are byte arrays, so a `#[repr(C)]`
//! struct made of them has alignment 1 and no hidden padding: its layout is exactly the
//! fields in order, which the size assertion beside each struct then checks. They derive
//! `zerocopy`'s traits, so a whole structure converts to and from bytes without `unsafe`.
//!
//! This module owns byte order and bit ranges only; it knows nothing of the device.

use core::fmt;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// A mask of bits `hi..=lo` (31 = most significant of a 32-bit word).
pub const fn mask(hi: u32, lo: u32) -> u32 {
    let width = hi - lo + 1;
    if width >= 32 { u32::MAX } else { ((1u32 << width) - 1) << lo }
}

/// Bits `hi..=lo` of `word`, shifted down.
pub const fn get_bits(word: u32, hi: u32, lo: u32) -> u32 {
    (word & mask(hi, lo)) >> lo
}

/// `word` with bits `hi..=lo` replaced by `value` (which must fit; extra bits are cut off
/// and a debug build panics).
pub fn with_bits(word: u32, hi: u32, lo: u32, value: u32) -> u32 {
    let m = mask(hi, lo);
    debug_assert!(
        value << lo & !m == 0 || hi - lo + 1 >= 32,
        "{value:#x} does not fit bits {hi}:{lo}"
    );
    (word & !m) | ((value << lo) & m)
}

/// A big-endian `u16`.
#[derive(
    Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(transparent)]
pub struct Be16([u8; 2]);

impl Be16 {
    /// The field holding `value`.
    pub const fn new(value: u16) -> Self {
        Be16(value.to_be_bytes())
    }
    /// The value.
    pub const fn get(self) -> u16 {
        u16::from_be_bytes(self.0)
    }
    /// Stores `value`.
    pub fn set(&mut self, value: u16) {
        self.0 = value.to_be_bytes();
    }
}

/// A big-endian `u32`, with bit-field access.
#[derive(
    Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(transparent)]
pub struct Be32([u8; 4]);

impl Be32 {
    /// The field holding `value`.
    pub const fn new(value: u32) -> Self {
        Be32(value.to_be_bytes())
    }
    /// The value.
    pub const fn get(self) -> u32 {
        u32::from_be_bytes(self.0)
    }
    /// Stores `value`.
    pub fn set(&mut self, value: u32) {
        self.0 = value.to_be_bytes();
    }
    /// Bits `hi..=lo`, shifted down.
    pub const fn bits(self, hi: u32, lo: u32) -> u32 {
        get_bits(self.get(), hi, lo)
    }
    /// Stores `value` in bits `hi..=lo`, leaving the others.
    pub fn set_bits(&mut self, hi: u32, lo: u32, value: u32) {
        self.set(with_bits(self.get(), hi, lo, value));
    }
    /// Bit `bit`.
    pub const fn bit(self, bit: u32) -> bool {
        self.get() >> bit & 1 == 1
    }
    /// Sets or clears bit `bit`.
    pub fn set_bit(&mut self, bit: u32, on: bool) {
        self.set_bits(bit, bit, on as u32);
    }
}

/// A big-endian `u64`.
#[derive(
    Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(transparent)]
pub struct Be64([u8; 8]);

impl Be64 {
    /// The field holding `value`.
    pub const fn new(value: u64) -> Self {
        Be64(value.to_be_bytes())
    }
    /// The value.
    pub const fn get(self) -> u64 {
        u64::from_be_bytes(self.0)
    }
    /// Stores `value`.
    pub fn set(&mut self, value: u64) {
        self.0 = value.to_be_bytes();
    }
}

impl fmt::Debug for Be16 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.get())
    }
}

impl fmt::Debug for Be32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.get())
    }
}

impl fmt::Debug for Be64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_big_endian() {
        assert_eq!(Be32::new(0x0102_0304).as_bytes(), &[1, 2, 3, 4]);
        assert_eq!(Be16::new(0xabcd).as_bytes(), &[0xab, 0xcd]);
        assert_eq!(Be64::new(0x0102_0304_0506_0708).as_bytes(), &[1, 2, 3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn bit_fields_round_trip() {
        let mut w = Be32::new(0xffff_ffff);
        w.set_bits(14, 11, 0x5);
        assert_eq!(w.bits(14, 11), 0x5);
        assert_eq!(w.get(), 0xffff_afff);
        w.set_bits(31, 0, 7);
        assert_eq!(w.get(), 7);
        w.set_bit(31, true);
        assert!(w.bit(31));
        assert_eq!(mask(23, 0), 0x00ff_ffff);
    }
}

//! Small formatting helpers for boot logs and reports.

use core::fmt;

/// A byte count printed with a binary unit: `512K`, `1.5G`.
pub struct Size(pub u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
        let unit = (0..UNITS.len()).rev().find(|&u| self.0 >= 1u64 << (10 * u)).unwrap_or(0);
        let scale = 1u64 << (10 * unit);
        let text = if self.0.is_multiple_of(scale) {
            alloc_free_fmt(format_args!("{}{}", self.0 / scale, UNITS[unit]))
        } else {
            let tenths = (self.0 as u128 * 10 / scale as u128) as u64;
            alloc_free_fmt(format_args!("{}.{}{}", tenths / 10, tenths % 10, UNITS[unit]))
        };
        f.pad(&text)
    }
}

/// Formats into a small stack buffer so that `pad` can align the result.
fn alloc_free_fmt(args: fmt::Arguments<'_>) -> StackStr {
    let mut s = StackStr { buf: [0; 32], len: 0 };
    let _ = fmt::write(&mut s, args);
    s
}

struct StackStr {
    buf: [u8; 32],
    len: usize,
}

impl fmt::Write for StackStr {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

impl core::ops::Deref for StackStr {
    type Target = str;
    fn deref(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("?")
    }
}

/// A MAC address as `52:54:00:12:34:56`.
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}

//! Byte sizes as people write them: `4G`, `512M`, `4096`. K, M, G and T are powers of
//! 1024, as in the image configs (docs/config.md). This module only parses and prints.

use std::fmt;

const UNITS: [(char, u32); 4] = [('K', 10), ('M', 20), ('G', 30), ('T', 40)];

/// Parses `"4G"`, `"512m"`, `"4096"`; the error says what is accepted.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let bad = || {
        format!(
            "'{text}' is not a size: write a number of bytes with an optional suffix K, M, G \
             or T (powers of 1024), e.g. 4G, 512M or 1073741824"
        )
    };
    let (digits, shift) = match trimmed.chars().last() {
        Some(last) if last.is_ascii_alphabetic() => {
            let unit = last.to_ascii_uppercase();
            let shift = UNITS.iter().find(|(name, _)| *name == unit).ok_or_else(bad)?.1;
            (&trimmed[..trimmed.len() - 1], shift)
        }
        _ => (trimmed, 0),
    };
    let number: u64 = digits.parse().map_err(|_| bad())?;
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("'{text}' is too large: sizes go up to 16 EiB - 1"))
}

/// Displays a byte count in the largest unit that divides it: `1G`, `1536M`, `4097`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SizeDisplay(pub u64);

impl fmt::Display for SizeDisplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.0;
        if bytes == 0 {
            return write!(f, "0");
        }
        for (name, shift) in UNITS.iter().rev() {
            if bytes.is_multiple_of(1 << shift) {
                return write!(f, "{}{name}", bytes >> shift);
            }
        }
        write!(f, "{bytes}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("4K"), Ok(4096));
        assert_eq!(parse_size("512m"), Ok(512 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size(" 2T "), Ok(2 << 40));
    }

    #[test]
    fn bad_sizes_say_what_is_accepted() {
        for bad in ["", "G", "4X", "-1G", "1.5G", "4GB"] {
            let error = parse_size(bad).unwrap_err();
            assert!(error.contains("suffix K, M, G or T"), "{bad}: {error}");
        }
        assert!(parse_size("99999999999T").unwrap_err().contains("too large"));
    }

    #[test]
    fn sizes_display_in_the_largest_unit() {
        assert_eq!(SizeDisplay(1 << 30).to_string(), "1G");
        assert_eq!(SizeDisplay(1536 << 20).to_string(), "1536M");
        assert_eq!(SizeDisplay(4097).to_string(), "4097");
        assert_eq!(SizeDisplay(0).to_string(), "0");
    }
}

//! Option types and values: what a `bool`, `int`, `size`, `enum` or `string` option
//! accepts, how sizes are written (`64M`), and why a value is refused.

use std::fmt;

use super::diag::{closest, quoted_list};
use super::doc::Node;

/// An option's type, as declared by `type = "..."` in a schema, with its constraints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptionType {
    Bool,
    /// A signed integer; `range` is inclusive.
    Int {
        range: Option<(i64, i64)>,
    },
    /// A byte count (`64M`); `range` is inclusive.
    Size {
        range: Option<(u64, u64)>,
    },
    /// One string among `values`.
    Enum {
        values: Vec<String>,
    },
    String,
}

/// The type names a schema may use, in the order we list them to users.
pub(crate) const TYPE_NAMES: [&str; 5] = ["bool", "int", "size", "enum", "string"];

impl OptionType {
    /// The schema's name for this type: `bool`, `int`, `size`, `enum` or `string`.
    pub fn name(&self) -> &'static str {
        match self {
            OptionType::Bool => "bool",
            OptionType::Int { .. } => "int",
            OptionType::Size { .. } => "size",
            OptionType::Enum { .. } => "enum",
            OptionType::String => "string",
        }
    }

    /// What a value of this type looks like, for "expected ..." messages.
    pub(crate) fn expectation(&self) -> String {
        match self {
            OptionType::Bool => "true or false".to_owned(),
            OptionType::Int { .. } => "an integer".to_owned(),
            OptionType::Size { .. } => "a size like 64M".to_owned(),
            OptionType::Enum { values } => format!(
                "one of {} (a string)",
                quoted_list(&values.iter().map(String::as_str).collect::<Vec<_>>())
            ),
            OptionType::String => "a string".to_owned(),
        }
    }

    /// The range as a user writes it (`1M..=1G`), if there is one.
    pub(crate) fn range_text(&self) -> Option<String> {
        match self {
            OptionType::Int { range: Some((lo, hi)) } => Some(format!("from {lo} to {hi}")),
            OptionType::Size { range: Some((lo, hi)) } => {
                Some(format!("from {} to {}", format_size(*lo), format_size(*hi)))
            }
            _ => None,
        }
    }

    /// Reads a TOML value as a value of this type, checking range and allowed values.
    pub(crate) fn read(&self, node: &Node) -> Result<Value, ValueError> {
        let value = self.read_unchecked(node)?;
        self.check(&value)?;
        Ok(value)
    }

    /// Reads a TOML value as a value of this type, without range or allowed-value checks.
    fn read_unchecked(&self, node: &Node) -> Result<Value, ValueError> {
        let wrong =
            || ValueError::WrongType { expected: self.expectation(), found: node.type_name() };
        match (self, node) {
            (OptionType::Bool, Node::Bool(b)) => Ok(Value::Bool(*b)),
            (OptionType::Int { .. }, Node::Int(i)) => Ok(Value::Int(*i)),
            (OptionType::Size { .. }, Node::Int(i)) => {
                u64::try_from(*i).map(Value::Size).map_err(|_| ValueError::BadSize {
                    text: i.to_string(),
                    why: "a size cannot be negative".to_owned(),
                })
            }
            (OptionType::Size { .. }, Node::Str(s)) => parse_size(s)
                .map(Value::Size)
                .map_err(|why| ValueError::BadSize { text: format!("\"{s}\""), why }),
            (OptionType::Enum { .. }, Node::Str(s)) => Ok(Value::Enum(s.clone())),
            (OptionType::String, Node::Str(s)) => Ok(Value::String(s.clone())),
            _ => Err(wrong()),
        }
    }

    /// Reads a value written as plain text (in a `depends` condition) as this type.
    pub(crate) fn read_text(&self, text: &str) -> Result<Value, ValueError> {
        let node = match self {
            OptionType::Bool => match text {
                "true" => Node::Bool(true),
                "false" => Node::Bool(false),
                _ => Node::Str(text.to_owned()),
            },
            OptionType::Int { .. } => match text.parse::<i64>() {
                Ok(i) => Node::Int(i),
                Err(_) => Node::Str(text.to_owned()),
            },
            _ => Node::Str(text.to_owned()),
        };
        // A condition's operand need not lie within the option's range.
        let value = self.read_unchecked(&node)?;
        if let (OptionType::Enum { .. }, Value::Enum(_)) = (self, &value) {
            self.check(&value)?;
        }
        Ok(value)
    }

    /// Checks a value of this type against its range or allowed values.
    pub(crate) fn check(&self, value: &Value) -> Result<(), ValueError> {
        match (self, value) {
            (OptionType::Int { range: Some((lo, hi)) }, Value::Int(i)) if i < lo || i > hi => {
                Err(ValueError::OutOfRange {
                    value: value.clone(),
                    range: self.range_text().unwrap_or_default(),
                })
            }
            (OptionType::Size { range: Some((lo, hi)) }, Value::Size(s)) if s < lo || s > hi => {
                Err(ValueError::OutOfRange {
                    value: value.clone(),
                    range: self.range_text().unwrap_or_default(),
                })
            }
            (OptionType::Enum { values }, Value::Enum(v)) if !values.contains(v) => {
                Err(ValueError::NotAllowed { found: v.clone(), allowed: values.clone() })
            }
            _ => Ok(()),
        }
    }
}

/// A resolved option value; its variant is its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Bool(bool),
    Int(i64),
    /// Bytes.
    Size(u64),
    Enum(String),
    String(String),
}

impl Value {
    /// The schema's name for this value's type.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Size(_) => "size",
            Value::Enum(_) => "enum",
            Value::String(_) => "string",
        }
    }

    /// The value as a TOML literal: integers for int and size, strings quoted.
    pub fn to_toml(&self) -> String {
        match self {
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Size(s) => s.to_string(),
            Value::Enum(s) | Value::String(s) => toml::Value::String(s.clone()).to_string(),
        }
    }
}

impl fmt::Display for Value {
    /// As a user would write it: sizes with a suffix (`16M`), strings quoted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Size(s) => f.write_str(&format_size(*s)),
            other => f.write_str(&other.to_toml()),
        }
    }
}

/// Why a value was refused. Turned into a message by [`ValueError::describe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ValueError {
    WrongType { expected: String, found: &'static str },
    BadSize { text: String, why: String },
    OutOfRange { value: Value, range: String },
    NotAllowed { found: String, allowed: Vec<String> },
}

impl ValueError {
    /// `(message, fix)` for a value found under `key`.
    pub(crate) fn describe(&self, key: &str) -> (String, Option<String>) {
        match self {
            ValueError::WrongType { expected, found } => (
                format!("wrong type for `{key}`: expected {expected}, found {found}"),
                None,
            ),
            ValueError::BadSize { text, why } => (
                format!("bad size {text} for `{key}`: {why}"),
                Some("write a whole number of bytes with an optional K, M, G or T suffix (powers of 1024), like \"64M\"".to_owned()),
            ),
            ValueError::OutOfRange { value, range } => (
                format!("`{key}` = {value} is out of range"),
                Some(format!("use a value {range} (inclusive)")),
            ),
            ValueError::NotAllowed { found, allowed } => {
                let allowed: Vec<&str> = allowed.iter().map(String::as_str).collect();
                let near = closest(found, allowed.iter().copied())
                    .map(|n| format!("did you mean \"{n}\"? "))
                    .unwrap_or_default();
                (
                    format!("`{key}` = \"{found}\" is not allowed"),
                    Some(format!("{near}allowed values: {}", quoted_list(&allowed))),
                )
            }
        }
    }
}

/// Parses a size: a whole number with an optional `K`, `M`, `G` or `T` suffix (also
/// `KiB`...), powers of 1024. The error says what is wrong.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, suffix) = t.split_at(digits_end);
    if digits.is_empty() {
        return Err("expected a number first".to_owned());
    }
    let shift = match suffix.trim_start().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KIB" => 10,
        "M" | "MIB" => 20,
        "G" | "GIB" => 30,
        "T" | "TIB" => 40,
        other => return Err(format!("unknown suffix `{other}`")),
    };
    let number: u64 = digits.parse().map_err(|_| "the number is too large".to_owned())?;
    number
        .checked_mul(1 << shift)
        .filter(|&bytes| i64::try_from(bytes).is_ok())
        .ok_or_else(|| "the size is too large (at most 8E - 1 bytes)".to_owned())
}

/// Formats a byte count with the largest suffix that divides it exactly (`16M`, `1536K`,
/// `100`).
pub fn format_size(bytes: u64) -> String {
    for (suffix, shift) in [("T", 40), ("G", 30), ("M", 20), ("K", 10)] {
        if bytes != 0 && bytes.is_multiple_of(1 << shift) {
            return format!("{}{suffix}", bytes >> shift);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("4K"), Ok(4096));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("2 GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1t"), Ok(1 << 40));
        assert!(parse_size("12Q").unwrap_err().contains("unknown suffix"));
        assert!(parse_size("M").is_err());
        assert!(parse_size("-1M").is_err());
        assert!(parse_size("1.5M").is_err());
        assert!(parse_size("99999999999T").unwrap_err().contains("too large"));
    }

    #[test]
    fn sizes_format_with_the_largest_exact_suffix() {
        assert_eq!(format_size(0), "0");
        assert_eq!(format_size(100), "100");
        assert_eq!(format_size(1536 << 10), "1536K");
        assert_eq!(format_size(16 << 20), "16M");
        assert_eq!(format_size(3 << 40), "3T");
    }

    #[test]
    fn reading_checks_type_and_range() {
        let size = OptionType::Size { range: Some((1 << 20, 1 << 30)) };
        assert_eq!(size.read(&Node::Str("8M".into())), Ok(Value::Size(8 << 20)));
        let (message, fix) = size.read(&Node::Bool(true)).unwrap_err().describe("a.b");
        assert_eq!(message, "wrong type for `a.b`: expected a size like 64M, found boolean");
        assert_eq!(fix, None);
        let (message, fix) = size.read(&Node::Str("2G".into())).unwrap_err().describe("a.b");
        assert_eq!(message, "`a.b` = 2G is out of range");
        assert_eq!(fix.unwrap(), "use a value from 1M to 1G (inclusive)");
        let colours = OptionType::Enum { values: vec!["red".into(), "green".into()] };
        let (message, fix) = colours.read(&Node::Str("gren".into())).unwrap_err().describe("c");
        assert_eq!(message, "`c` = \"gren\" is not allowed");
        assert_eq!(fix.unwrap(), "did you mean \"green\"? allowed values: \"red\", \"green\"");
    }
}

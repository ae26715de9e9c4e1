//! `depends` conditions: `lib`, `!lib`, `lib.flag`, `!lib.flag`, `lib.option <op> value`
//! and `lib.choice == member`.
//!
//! Parsing happens in two steps: [`parse`] reads the syntax of one string, and the catalog
//! (which knows every component's options and choices) turns it into a typed
//! [`Condition`]. Evaluation against a resolved image is the resolver's job.

use std::fmt;

use super::value::Value;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Ge,
    Le,
    Gt,
    Lt,
}

impl Op {
    /// Two-character operators first, so `>=` is not read as `>`.
    const ALL: [(&'static str, Op); 6] = [
        ("==", Op::Eq),
        ("!=", Op::Ne),
        (">=", Op::Ge),
        ("<=", Op::Le),
        (">", Op::Gt),
        ("<", Op::Lt),
    ];

    pub fn symbol(self) -> &'static str {
        match self {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Ge => ">=",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Lt => "<",
        }
    }

    /// Whether the operator orders values (only ints and sizes are ordered).
    pub fn is_ordering(self) -> bool {
        !matches!(self, Op::Eq | Op::Ne)
    }

    /// `left <op> right`; ordering operators are false on values that have no order.
    pub fn holds(self, left: &Value, right: &Value) -> bool {
        let ordering = match (left, right) {
            (Value::Int(a), Value::Int(b)) => Some(a.cmp(b)),
            (Value::Size(a), Value::Size(b)) => Some(a.cmp(b)),
            _ => None,
        };
        match self {
            Op::Eq => left == right,
            Op::Ne => left != right,
            Op::Ge => ordering.is_some_and(|o| o.is_ge()),
            Op::Le => ordering.is_some_and(|o| o.is_le()),
            Op::Gt => ordering.is_some_and(|o| o.is_gt()),
            Op::Lt => ordering.is_some_and(|o| o.is_lt()),
        }
    }
}

/// One checked `depends` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// As written in the schema.
    pub text: String,
    pub test: Test,
}

/// What a condition requires of the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Test {
    /// `lib`: the component is in the image.
    Present(String),
    /// `!lib`: the component is not in the image.
    Absent(String),
    /// `lib.key <op> value`: the component is in the image and its option or choice
    /// `key` compares so with `value` (a choice's member is a [`Value::Enum`]).
    /// `lib.flag` is `lib.flag == true`, `!lib.flag` is `lib.flag == false`.
    Compare { component: String, key: String, op: Op, value: Value },
}

impl Condition {
    /// The component the condition looks at.
    pub fn component(&self) -> &str {
        match &self.test {
            Test::Present(c) | Test::Absent(c) => c,
            Test::Compare { component, .. } => component,
        }
    }

    /// Whether the condition needs its component in the image (and so before the
    /// dependent in init order).
    pub fn needs_component(&self) -> bool {
        !matches!(self.test, Test::Absent(_))
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The syntax of a condition, before the catalog has checked its names and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawCondition {
    pub negated: bool,
    pub component: String,
    pub key: Option<String>,
    pub compare: Option<(Op, String)>,
}

/// Reads the syntax of one `depends` entry. The error says what is wrong.
pub(crate) fn parse(text: &str) -> Result<RawCondition, String> {
    let trimmed = text.trim();
    let (negated, rest) = match trimmed.strip_prefix('!') {
        Some(rest) => (true, rest.trim_start()),
        None => (false, trimmed),
    };
    let mut compare = None;
    let mut path = rest;
    if let Some((at, symbol, op)) = find_operator(rest) {
        path = rest[..at].trim_end();
        let operand = rest[at + symbol.len()..].trim();
        let operand = strip_quotes(operand);
        if operand.is_empty() {
            return Err(format!("nothing after `{symbol}`"));
        }
        compare = Some((op, operand.to_owned()));
    }
    let mut parts = path.split('.');
    let component = parts.next().unwrap_or_default();
    let key = parts.next();
    if parts.next().is_some() {
        return Err(format!("`{path}` has too many dots; write `lib` or `lib.option`"));
    }
    for name in std::iter::once(component).chain(key) {
        if !is_identifier(name) {
            return Err(if name.is_empty() {
                "expected `lib`, `lib.option` or `lib.option <op> value`".to_owned()
            } else {
                format!("`{name}` is not a component, option or choice name")
            });
        }
    }
    if compare.is_some() && key.is_none() {
        return Err(format!(
            "`{component}` is a component: only its options and choices compare, as `{component}.option == value`"
        ));
    }
    if negated && compare.is_some() {
        return Err("`!` cannot precede a comparison; use `!=` or the opposite operator".to_owned());
    }
    Ok(RawCondition {
        negated,
        component: component.to_owned(),
        key: key.map(str::to_owned),
        compare,
    })
}

fn find_operator(text: &str) -> Option<(usize, &'static str, Op)> {
    (0..text.len()).find_map(|at| {
        Op::ALL
            .iter()
            .find(|(symbol, _)| text[at..].starts_with(symbol))
            .map(|&(symbol, op)| (at, symbol, op))
    })
}

fn strip_quotes(text: &str) -> &str {
    for quote in ['"', '\''] {
        if let Some(inner) = text.strip_prefix(quote).and_then(|t| t.strip_suffix(quote)) {
            return inner;
        }
    }
    text
}

/// Component, option and choice names: lowercase ASCII letters, digits and `_`, starting
/// with a letter (they become cargo features, cfg names and Rust constants).
pub(crate) fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(
        negated: bool,
        component: &str,
        key: Option<&str>,
        compare: Option<(Op, &str)>,
    ) -> RawCondition {
        RawCondition {
            negated,
            component: component.into(),
            key: key.map(Into::into),
            compare: compare.map(|(op, v)| (op, v.into())),
        }
    }

    #[test]
    fn parses_every_form() {
        assert_eq!(parse("mmu"), Ok(raw(false, "mmu", None, None)));
        assert_eq!(parse(" !net "), Ok(raw(true, "net", None, None)));
        assert_eq!(parse("kvm.debug"), Ok(raw(false, "kvm", Some("debug"), None)));
        assert_eq!(parse("!kvm.debug"), Ok(raw(true, "kvm", Some("debug"), None)));
        assert_eq!(
            parse("pager.local_memory >= 1M"),
            Ok(raw(false, "pager", Some("local_memory"), Some((Op::Ge, "1M"))))
        );
        assert_eq!(
            parse("rmem.transport==\"virtio-net\""),
            Ok(raw(false, "rmem", Some("transport"), Some((Op::Eq, "virtio-net"))))
        );
        assert_eq!(parse("a.b < 3"), Ok(raw(false, "a", Some("b"), Some((Op::Lt, "3")))));
        assert_eq!(parse("a.b != x"), Ok(raw(false, "a", Some("b"), Some((Op::Ne, "x")))));
    }

    #[test]
    fn refuses_malformed_conditions() {
        assert!(parse("").is_err());
        assert!(parse("a.b.c").unwrap_err().contains("too many dots"));
        assert!(parse("a.b >=").unwrap_err().contains("nothing after `>=`"));
        assert!(parse("a == 1").unwrap_err().contains("is a component"));
        assert!(parse("!a.b == 1").is_err());
        assert!(parse("Alloc").is_err());
    }

    #[test]
    fn operators_compare_like_numbers() {
        let (one, two) = (Value::Size(1), Value::Size(2));
        assert!(Op::Lt.holds(&one, &two));
        assert!(Op::Le.holds(&one, &one));
        assert!(!Op::Gt.holds(&one, &two));
        assert!(Op::Ne.holds(&one, &two));
        assert!(!Op::Ge.holds(&Value::Enum("a".into()), &Value::Enum("a".into())));
    }
}

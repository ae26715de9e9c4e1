//! An ordered view of a TOML document.
//!
//! `toml::Table` sorts its keys; we keep them in the order they were written, so options
//! and choices are listed, reported and resolved in the order their schema declares them.
//! This module only parses: it knows nothing about schemas or image configs.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A table's entries, in document order.
pub(crate) type Table = Vec<(String, Node)>;

/// One TOML value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Datetime(String),
    Array(Vec<Node>),
    Table(Table),
}

impl Node {
    /// The TOML name of this value's type, as a user reads it in an error message.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Node::Bool(_) => "boolean",
            Node::Int(_) => "integer",
            Node::Float(_) => "float",
            Node::Str(_) => "string",
            Node::Datetime(_) => "datetime",
            Node::Array(_) => "array",
            Node::Table(_) => "table",
        }
    }

    #[cfg(test)]
    pub(crate) fn as_table(&self) -> Option<&Table> {
        match self {
            Node::Table(t) => Some(t),
            _ => None,
        }
    }
}

impl fmt::Display for Node {
    /// The value as it would be written in TOML (tables abbreviated).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Bool(b) => write!(f, "{b}"),
            Node::Int(i) => write!(f, "{i}"),
            Node::Float(x) => write!(f, "{x}"),
            Node::Str(s) => write!(f, "{}", toml::Value::String(s.clone())),
            Node::Datetime(d) => write!(f, "{d}"),
            Node::Array(items) => {
                write!(f, "[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{item}")?;
                }
                write!(f, "]")
            }
            Node::Table(_) => write!(f, "{{...}}"),
        }
    }
}

/// Looks a key up in a table.
pub(crate) fn get<'a>(table: &'a Table, key: &str) -> Option<&'a Node> {
    table.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// Parses a TOML document. The error is one line: `line L, column C: <what>`.
pub(crate) fn parse(text: &str) -> Result<Table, String> {
    match toml::from_str::<Node>(text) {
        Ok(Node::Table(table)) => Ok(table),
        Ok(other) => Err(format!("expected a TOML document, found a {}", other.type_name())),
        Err(e) => {
            let message = e.message().trim().replace('\n', " ");
            match e.span() {
                Some(span) => {
                    let (line, column) = line_column(text, span.start);
                    Err(format!("line {line}, column {column}: {message}"))
                }
                None => Err(message),
            }
        }
    }
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The key under which the `toml` crate hands a datetime to a deserializer.
const DATETIME_KEY: &str = "$__toml_private_datetime";

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a TOML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        i64::try_from(v).map(Node::Int).map_err(|_| E::custom(format!("integer {v} is too large")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Str(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
        Ok(Node::Str(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == DATETIME_KEY {
                let text: String = map.next_value()?;
                return Ok(Node::Datetime(text));
            }
            let value: Node = map.next_value()?;
            entries.push((key, value));
        }
        Ok(Node::Table(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_document_order() {
        let table =
            parse("[options.zeta]\ntype = 1\n[options.alpha]\ntype = 2\n[b]\n[a]\n").unwrap();
        let keys: Vec<_> = table.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["options", "b", "a"]);
        let options = get(&table, "options").unwrap().as_table().unwrap();
        let names: Vec<_> = options.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["zeta", "alpha"]);
    }

    #[test]
    fn reads_every_kind_of_value() {
        let table =
            parse("a = true\nb = -3\nc = 1.5\nd = \"x\"\ne = 1979-05-27\nf = [1, 2]\n").unwrap();
        assert_eq!(get(&table, "a"), Some(&Node::Bool(true)));
        assert_eq!(get(&table, "b"), Some(&Node::Int(-3)));
        assert_eq!(get(&table, "c"), Some(&Node::Float(1.5)));
        assert_eq!(get(&table, "d"), Some(&Node::Str("x".into())));
        assert_eq!(get(&table, "e").unwrap().type_name(), "datetime");
        assert_eq!(get(&table, "f"), Some(&Node::Array(vec![Node::Int(1), Node::Int(2)])));
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let err = parse("a = 1\nb = \n").unwrap_err();
        assert!(err.starts_with("line 2, column"), "{err}");
        assert!(!err.contains('\n'));
    }
}

//! Reading one `Config.toml` on its own: its shape, names, types, ranges and defaults.
//! What it says about other components is checked by `link`.

use super::{ChoiceRef, ChoiceSchema, ComponentSchema, Kind, OptionSchema, Parsed};
use crate::config::condition::{self, is_identifier};
use crate::config::diag::{Diagnostic, a, suggestion};
use crate::config::doc::{self, Node, Table};
use crate::config::value::{OptionType, TYPE_NAMES, Value, ValueError};

/// Reads a schema file's values, reporting problems under its path.
struct Reader<'a> {
    file: &'a str,
    diags: &'a mut Vec<Diagnostic>,
}

impl Reader<'_> {
    fn error(&mut self, key: &str, message: impl Into<String>, fix: Option<String>) {
        self.diags.push(Diagnostic::new(self.file, Some(key), message).maybe_fix(fix));
    }

    fn wrong_type(&mut self, key: &str, expected: &str, node: &Node) {
        self.error(
            key,
            format!("wrong type for `{key}`: expected {expected}, found {}", node.type_name()),
            None,
        );
    }

    /// Reports keys of `table` that are not `known`; `prefix` is the table's dotted key.
    fn unknown_keys(&mut self, prefix: &str, table: &Table, known: &[&str]) {
        for (key, _) in table {
            if !known.contains(&key.as_str()) {
                let fix = suggestion(key, known, &format!("keys of [{prefix}]"), "");
                self.error(
                    &format!("{prefix}.{key}"),
                    format!("unknown key `{prefix}.{key}`"),
                    Some(fix),
                );
            }
        }
    }

    fn string(&mut self, key: &str, node: Option<&Node>) -> Option<String> {
        match node? {
            Node::Str(s) => Some(s.clone()),
            other => {
                self.wrong_type(key, "a string", other);
                None
            }
        }
    }

    fn bool(&mut self, key: &str, node: Option<&Node>) -> Option<bool> {
        match node? {
            Node::Bool(b) => Some(*b),
            other => {
                self.wrong_type(key, "true or false", other);
                None
            }
        }
    }

    fn strings(&mut self, key: &str, node: Option<&Node>) -> Vec<String> {
        match node {
            None => Vec::new(),
            Some(Node::Array(items)) if items.iter().all(|i| matches!(i, Node::Str(_))) => items
                .iter()
                .filter_map(|i| match i {
                    Node::Str(s) => Some(s.clone()),
                    _ => None,
                })
                .collect(),
            Some(other) => {
                self.wrong_type(key, "an array of strings", other);
                Vec::new()
            }
        }
    }

    fn table<'t>(&mut self, key: &str, node: &'t Node) -> Option<&'t Table> {
        match node {
            Node::Table(t) => Some(t),
            other => {
                self.wrong_type(key, "a table", other);
                None
            }
        }
    }

    fn identifier(&mut self, key: &str, what: &str, name: &str) -> bool {
        if is_identifier(name) {
            return true;
        }
        self.error(
            key,
            format!("`{name}` is not a valid {what} name"),
            Some("use lowercase ASCII letters, digits and `_`, starting with a letter".into()),
        );
        false
    }
}

const TOP_KEYS: [&str; 3] = ["component", "options", "choice"];
const COMPONENT_KEYS: [&str; 9] =
    ["name", "kind", "crate", "help", "depends", "selects", "always", "provides", "member"];
const OPTION_KEYS: [&str; 5] = ["type", "default", "range", "values", "help"];
const CHOICE_KEYS: [&str; 3] = ["help", "default", "members"];

/// The kind a schema's path implies (`libs/...` holds libs).
fn kind_of_path(path: &str) -> Option<Kind> {
    let dir = path.split('/').next()?;
    Kind::ALL.into_iter().find(|k| k.dir() == dir)
}

pub(super) fn parse_schema(path: &str, text: &str, diags: &mut Vec<Diagnostic>) -> Option<Parsed> {
    let table = match doc::parse(text) {
        Ok(t) => t,
        Err(e) => {
            diags.push(Diagnostic::new(path, None, format!("not valid TOML: {e}")));
            return None;
        }
    };
    let mut r = Reader { file: path, diags };
    for (key, _) in &table {
        if !TOP_KEYS.contains(&key.as_str()) {
            let fix = suggestion(
                key,
                &TOP_KEYS,
                "a schema has [component], [options.<name>] and [choice.<name>]",
                "",
            );
            r.error(key, format!("unknown table `[{key}]`"), Some(fix));
        }
    }
    let Some(component) = doc::get(&table, "component") else {
        r.error(
            "component",
            "missing [component] table",
            Some("add [component] with `name`, `kind` and `crate` (see docs/config.md)".into()),
        );
        return None;
    };
    let component = r.table("component", component)?;
    r.unknown_keys("component", component, &COMPONENT_KEYS);
    let field = |key: &str| doc::get(component, key);

    let name = r.string("component.name", field("name"));
    let name = match name {
        Some(name) if r.identifier("component.name", "component", &name) => name,
        Some(_) => return None,
        None => {
            r.error(
                "component.name",
                "missing `component.name`",
                Some("add `name = \"<name>\"` under [component]; image configs use it".into()),
            );
            return None;
        }
    };
    if name == "image" {
        r.error(
            "component.name",
            "`image` cannot name a component: image configs use [image] for the image itself",
            Some("choose another name".into()),
        );
    }
    let path_kind = kind_of_path(path);
    let kind = match r.string("component.kind", field("kind")) {
        None => path_kind.unwrap_or(Kind::Lib),
        Some(text) => match Kind::from_name(&text) {
            Some(kind) => kind,
            None => {
                let kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
                let fix = suggestion(&text, &kinds, "kinds", "");
                r.error(
                    "component.kind",
                    format!("unknown kind `{text}` in `component.kind`"),
                    Some(fix),
                );
                path_kind.unwrap_or(Kind::Lib)
            }
        },
    };
    if let Some(expected) = path_kind.filter(|&k| k != kind) {
        r.error(
            "component.kind",
            format!("`component.kind` is `{kind}`, but the schema is under {}/", expected.dir()),
            Some(format!("set `kind = \"{expected}\"` or move the component to {}/", kind.dir())),
        );
    }
    let crate_name = r.string("component.crate", field("crate")).unwrap_or_else(|| {
        if field("crate").is_none() {
            r.error(
                "component.crate",
                "missing `component.crate`",
                Some(format!(
                    "add `crate = \"<cargo package>\"` under [component], e.g. `crate = \"remora-{name}\"`"
                )),
            );
        }
        String::new()
    });
    let help = r.string("component.help", field("help")).unwrap_or_default();
    let always = r.bool("component.always", field("always")).unwrap_or(false);
    if always && !kind.is_library() {
        r.error(
            "component.always",
            format!("`component.always` applies to libraries and drivers, not to {}", a(kind)),
            Some("remove `always`".into()),
        );
    }
    let selects = r.strings("component.selects", field("selects"));
    let member = r.string("component.member", field("member")).unwrap_or_else(|| name.clone());
    if member.is_empty() {
        r.error(
            "component.member",
            "`component.member` is empty",
            Some(
                "remove it (the member name defaults to the component name) or name the member"
                    .into(),
            ),
        );
    }

    let mut raw_depends = Vec::new();
    for text in r.strings("component.depends", field("depends")) {
        match condition::parse(&text) {
            Ok(raw) => raw_depends.push((text, raw)),
            Err(why) => r.error(
                "component.depends",
                format!("bad condition \"{text}\" in `component.depends`: {why}"),
                Some("write `lib`, `!lib`, `lib.flag`, `lib.option <op> value` (op: == != >= <= > <) or `lib.choice == member`".into()),
            ),
        }
    }

    let mut provides = Vec::new();
    for text in r.strings("component.provides", field("provides")) {
        match text.split_once('.') {
            Some((component, choice)) if is_identifier(component) && is_identifier(choice) => {
                provides
                    .push(ChoiceRef { component: component.to_owned(), choice: choice.to_owned() })
            }
            _ => r.error(
                "component.provides",
                format!("bad choice group \"{text}\" in `component.provides`"),
                Some("name a choice as \"<component>.<choice>\", like \"rmem.transport\"".into()),
            ),
        }
    }

    let mut options = Vec::new();
    if let Some(node) = doc::get(&table, "options")
        && let Some(entries) = r.table("options", node)
    {
        for (option_name, node) in entries {
            let key = format!("options.{option_name}");
            if !r.identifier(&key, "option", option_name) {
                continue;
            }
            if let Some(t) = r.table(&key, node)
                && let Some(option) = parse_option(&mut r, option_name, t)
            {
                options.push(option);
            }
        }
    }

    let mut choices = Vec::new();
    if let Some(node) = doc::get(&table, "choice")
        && let Some(entries) = r.table("choice", node)
    {
        for (choice_name, node) in entries {
            let key = format!("choice.{choice_name}");
            if !r.identifier(&key, "choice", choice_name) {
                continue;
            }
            if options.iter().any(|o: &OptionSchema| &o.name == choice_name) {
                r.error(
                    &key,
                    format!("`{choice_name}` is both an option and a choice"),
                    Some("image configs set both by name under one table: rename one".into()),
                );
                continue;
            }
            if let Some(t) = r.table(&key, node) {
                choices.push(parse_choice(&mut r, choice_name, t));
            }
        }
    }

    Some(Parsed {
        schema: ComponentSchema {
            name,
            kind,
            crate_name,
            help,
            depends: Vec::new(),
            selects,
            always,
            provides,
            member,
            options,
            choices,
            schema_path: path.to_owned(),
        },
        raw_depends,
    })
}

fn parse_option(r: &mut Reader<'_>, name: &str, table: &Table) -> Option<OptionSchema> {
    let prefix = format!("options.{name}");
    r.unknown_keys(&prefix, table, &OPTION_KEYS);
    let field = |key: &str| doc::get(table, key);
    let type_key = format!("{prefix}.type");
    let Some(type_name) = r.string(&type_key, field("type")) else {
        if field("type").is_none() {
            r.error(
                &type_key,
                format!("missing `{type_key}`"),
                Some(format!("add `type = \"...\"` ({})", TYPE_NAMES.join(", "))),
            );
        }
        return None;
    };
    if !TYPE_NAMES.contains(&type_name.as_str()) {
        let fix = suggestion(&type_name, &TYPE_NAMES, "types", "");
        r.error(&type_key, format!("unknown type `{type_name}` in `{type_key}`"), Some(fix));
        return None;
    }

    let range_key = format!("{prefix}.range");
    let range_node = field("range");
    if range_node.is_some() && !matches!(type_name.as_str(), "int" | "size") {
        r.error(
            &range_key,
            format!("`{range_key}` applies only to int and size options, not {type_name}"),
            Some("remove `range`".into()),
        );
    }
    let values_key = format!("{prefix}.values");
    if field("values").is_some() && type_name != "enum" {
        r.error(
            &values_key,
            format!("`{values_key}` applies only to enum options, not {type_name}"),
            Some("remove `values` or make the option `type = \"enum\"`".into()),
        );
    }

    let ty = match type_name.as_str() {
        "bool" => OptionType::Bool,
        "string" => OptionType::String,
        "int" => {
            let base = OptionType::Int { range: None };
            let range =
                read_range(r, &range_key, range_node, &base)?.map(|(lo, hi)| match (lo, hi) {
                    (Value::Int(lo), Value::Int(hi)) => (lo, hi),
                    _ => unreachable!("an int range reads as ints"),
                });
            OptionType::Int { range }
        }
        "size" => {
            let base = OptionType::Size { range: None };
            let range =
                read_range(r, &range_key, range_node, &base)?.map(|(lo, hi)| match (lo, hi) {
                    (Value::Size(lo), Value::Size(hi)) => (lo, hi),
                    _ => unreachable!("a size range reads as sizes"),
                });
            OptionType::Size { range }
        }
        _ => {
            let values = r.strings(&values_key, field("values"));
            if values.is_empty() {
                r.error(
                    &values_key,
                    format!("enum option `{name}` has no `values`"),
                    Some("list the allowed strings: `values = [\"a\", \"b\"]`".into()),
                );
                return None;
            }
            for (i, v) in values.iter().enumerate() {
                if values[..i].contains(v) {
                    r.error(
                        &values_key,
                        format!("\"{v}\" appears twice in `{values_key}`"),
                        Some("list each value once".into()),
                    );
                }
            }
            OptionType::Enum { values }
        }
    };

    let default_key = format!("{prefix}.default");
    let default = match field("default") {
        None => None,
        Some(node) => match ty.read(node) {
            Ok(v) => Some(v),
            Err(ValueError::OutOfRange { value, range }) => {
                r.error(
                    &default_key,
                    format!(
                        "default {value} of option `{name}` is outside its own range ({range})"
                    ),
                    Some("change `default` or `range`".into()),
                );
                None
            }
            Err(e) => {
                let (message, fix) = e.describe(&default_key);
                r.error(&default_key, message, fix);
                None
            }
        },
    };
    let help = r.string(&format!("{prefix}.help"), field("help")).unwrap_or_default();
    Some(OptionSchema { name: name.to_owned(), ty, default, help })
}

/// Reads `range = [lo, hi]` with `base`'s type. `None` when the range is malformed
/// (reported); `Some(None)` when there is no range.
fn read_range(
    r: &mut Reader<'_>,
    key: &str,
    node: Option<&Node>,
    base: &OptionType,
) -> Option<Option<(Value, Value)>> {
    let Some(node) = node else {
        return Some(None);
    };
    let items = match node {
        Node::Array(items) if items.len() == 2 => items,
        other => {
            r.error(
                key,
                format!(
                    "`{key}` must be [min, max], found {}",
                    if let Node::Array(items) = other {
                        format!("an array of {}", items.len())
                    } else {
                        other.type_name().to_owned()
                    }
                ),
                Some(format!(
                    "write e.g. `range = {}`",
                    if base.name() == "size" { "[\"1M\", \"1G\"]" } else { "[1, 100]" }
                )),
            );
            return None;
        }
    };
    let mut bounds = Vec::new();
    for item in items {
        match base.read(item) {
            Ok(v) => bounds.push(v),
            Err(e) => {
                let (message, fix) = e.describe(key);
                r.error(key, message, fix);
                return None;
            }
        }
    }
    let hi = bounds.pop()?;
    let lo = bounds.pop()?;
    let ordered = match (&lo, &hi) {
        (Value::Int(a), Value::Int(b)) => a <= b,
        (Value::Size(a), Value::Size(b)) => a <= b,
        _ => true,
    };
    if !ordered {
        r.error(
            key,
            format!("`{key}` is empty: its minimum {lo} is above its maximum {hi}"),
            Some("write the range as [min, max]".into()),
        );
        return None;
    }
    Some(Some((lo, hi)))
}

fn parse_choice(r: &mut Reader<'_>, name: &str, table: &Table) -> ChoiceSchema {
    let prefix = format!("choice.{name}");
    r.unknown_keys(&prefix, table, &CHOICE_KEYS);
    let field = |key: &str| doc::get(table, key);
    let members_key = format!("{prefix}.members");
    let members = r.strings(&members_key, field("members"));
    for (i, m) in members.iter().enumerate() {
        if m.is_empty() {
            r.error(&members_key, format!("empty member name in `{members_key}`"), None);
        } else if members[..i].contains(m) {
            r.error(
                &members_key,
                format!("\"{m}\" appears twice in `{members_key}`"),
                Some("list each member once".into()),
            );
        }
    }
    ChoiceSchema {
        name: name.to_owned(),
        help: r.string(&format!("{prefix}.help"), field("help")).unwrap_or_default(),
        default: r.string(&format!("{prefix}.default"), field("default")),
        members,
        providers: Vec::new(),
    }
}

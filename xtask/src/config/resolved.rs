//! A resolved image configuration: every component in init order with why it is there,
//! and every option and choice with its value and where the value came from.
//!
//! It is written as `target/images/<name>.config.toml` ([`Resolved::to_toml`]), read back
//! by [`load_resolved`], and shown to users by [`Resolved::render_tree`]. The root
//! `build.rs` parses the same file with the `toml` crate, so its layout is an interface.

use std::fmt::{self, Write as _};

use super::diag::{ConfigError, Diagnostic};
use super::doc::{self, Node, Table};
use super::schema::Kind;
use super::value::{Value, format_size};

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The schema's default.
    Default,
    /// Set in this image config (path relative to the repository root).
    Config(String),
    /// A choice whose member component is in the image for another reason (listed in
    /// `image.libraries`, selected): the component named here.
    Implied(String),
}

impl Source {
    fn parse(text: &str) -> Source {
        match text {
            "default" => Source::Default,
            _ => match text.strip_prefix("implied by ") {
                Some(component) => Source::Implied(component.to_owned()),
                None => Source::Config(text.to_owned()),
            },
        }
    }
}

impl fmt::Display for Source {
    /// `default`, `configs/x.toml` or `implied by mlx5`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::Config(path) => f.write_str(path),
            Source::Implied(component) => write!(f, "implied by {component}"),
        }
    }
}

/// An option's resolved value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedOption {
    pub name: String,
    pub value: Value,
    pub source: Source,
}

/// A choice's chosen member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedChoice {
    pub name: String,
    pub value: String,
    /// The component that provides the member, when it is not built in.
    pub member_component: Option<String>,
    pub source: Source,
}

/// A component in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedComponent {
    pub name: String,
    pub kind: Kind,
    pub crate_name: String,
    /// The image crate's feature: `lib-<name>`, `platform-<name>` or `app-<name>`.
    pub feature: String,
    /// Why it is in the image: `app`, `platform`, `always (platform kvm)`,
    /// `chosen in image.libraries`, `chosen as rmem.transport`,
    /// `choice default of rmem.transport`, `selected by pager`.
    pub reason: String,
    pub options: Vec<ResolvedOption>,
    pub choices: Vec<ResolvedChoice>,
}

impl ResolvedComponent {
    pub fn option(&self, name: &str) -> Option<&ResolvedOption> {
        self.options.iter().find(|o| o.name == name)
    }

    pub fn choice(&self, name: &str) -> Option<&ResolvedChoice> {
        self.choices.iter().find(|c| c.name == name)
    }
}

/// The resolved configuration of one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub(crate) image_name: String,
    pub(crate) app: String,
    pub(crate) platform: String,
    pub(crate) config: String,
    pub(crate) components: Vec<ResolvedComponent>,
    pub(crate) notes: Vec<String>,
}

impl Resolved {
    /// `image.name`: the image is `target/images/<name>.elf`.
    pub fn image_name(&self) -> &str {
        &self.image_name
    }

    pub fn app(&self) -> &str {
        &self.app
    }

    pub fn platform(&self) -> &str {
        &self.platform
    }

    /// The image config it was resolved from, relative to the repository root.
    pub fn config_path(&self) -> &str {
        &self.config
    }

    /// Every component, in init order: each after everything it depends on or selects;
    /// the app last.
    pub fn components(&self) -> &[ResolvedComponent] {
        &self.components
    }

    pub fn component(&self, name: &str) -> Option<&ResolvedComponent> {
        self.components.iter().find(|c| c.name == name)
    }

    /// The value of `<component>.<option>`, if the component is in the image.
    pub fn option(&self, component: &str, option: &str) -> Option<&Value> {
        Some(&self.component(component)?.option(option)?.value)
    }

    /// The chosen member of `<component>.<choice>`, if the component is in the image.
    pub fn choice(&self, component: &str, choice: &str) -> Option<&str> {
        Some(&self.component(component)?.choice(choice)?.value)
    }

    /// The image crate's features, in init order.
    pub fn cargo_features(&self) -> Vec<String> {
        self.components.iter().map(|c| c.feature.clone()).collect()
    }

    /// What resolution did by itself that a user may not expect ("sched selected by
    /// pager").
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The resolved file, `target/images/<name>.config.toml`. Notes are kept as
    /// `# note:` comments, which [`load_resolved`] reads back.
    pub fn to_toml(&self) -> String {
        let mut out = String::new();
        let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
        let _ =
            writeln!(out, "# Resolved by `cargo xtask config` from {}; do not edit.", self.config);
        for note in &self.notes {
            let _ = writeln!(out, "# note: {note}");
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "[image]");
        let _ = writeln!(out, "name = {}", q(&self.image_name));
        let _ = writeln!(out, "app = {}", q(&self.app));
        let _ = writeln!(out, "platform = {}", q(&self.platform));
        let _ = writeln!(out, "config = {}", q(&self.config));
        for c in &self.components {
            let _ = writeln!(out);
            let _ = writeln!(out, "[[component]]");
            let _ = writeln!(out, "name = {}", q(&c.name));
            let _ = writeln!(out, "kind = {}", q(c.kind.name()));
            let _ = writeln!(out, "crate = {}", q(&c.crate_name));
            let _ = writeln!(out, "feature = {}", q(&c.feature));
            let _ = writeln!(out, "reason = {}", q(&c.reason));
        }
        for c in &self.components {
            for o in &c.options {
                let _ = writeln!(out);
                let _ = writeln!(out, "[option.{}.{}]", c.name, o.name);
                let _ = writeln!(out, "type = {}", q(o.value.type_name()));
                let _ = writeln!(out, "value = {}", o.value.to_toml());
                let _ = writeln!(out, "source = {}", q(&o.source.to_string()));
            }
        }
        for c in &self.components {
            for ch in &c.choices {
                let _ = writeln!(out);
                let _ = writeln!(out, "[choice.{}.{}]", c.name, ch.name);
                let _ = writeln!(out, "value = {}", q(&ch.value));
                if let Some(m) = &ch.member_component {
                    let _ = writeln!(out, "member_component = {}", q(m));
                }
                let _ = writeln!(out, "source = {}", q(&ch.source.to_string()));
            }
        }
        out
    }

    /// The report `cargo xtask config` prints: every component in init order with why it
    /// is in the image, then its options and choices with value and source.
    pub fn render_tree(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "image {} (from {}): app {}, platform {}",
            self.image_name, self.config, self.app, self.platform
        );
        let _ = writeln!(out, "components in init order:");
        let last = self.components.len().saturating_sub(1);
        for (i, c) in self.components.iter().enumerate() {
            let (branch, stem) = if i == last { ("└─", "   ") } else { ("├─", "│  ") };
            let _ = writeln!(
                out,
                "{branch} {} ({} {}, feature {}): {}",
                c.name, c.kind, c.crate_name, c.feature, c.reason
            );
            let entries = c.options.len() + c.choices.len();
            let mut n = 0;
            let mut leaf = |text: String| {
                n += 1;
                let twig = if n == entries { "└─" } else { "├─" };
                let _ = writeln!(out, "{stem}{twig} {text}");
            };
            for o in &c.options {
                let value = match &o.value {
                    Value::Size(bytes) if format_size(*bytes) != bytes.to_string() => {
                        format!("{} ({bytes} bytes)", format_size(*bytes))
                    }
                    other => other.to_string(),
                };
                leaf(format!(
                    "{}.{} = {value}  [{}, {}]",
                    c.name,
                    o.name,
                    o.value.type_name(),
                    o.source
                ));
            }
            for ch in &c.choices {
                let member = match &ch.member_component {
                    Some(m) => format!(" (component {m})"),
                    None => String::new(),
                };
                leaf(format!(
                    "{}.{} = \"{}\"{member}  [choice, {}]",
                    c.name, ch.name, ch.value, ch.source
                ));
            }
        }
        if !self.notes.is_empty() {
            let _ = writeln!(out, "notes:");
            for note in &self.notes {
                let _ = writeln!(out, "  - {note}");
            }
        }
        out
    }
}

/// What [`load_resolved`] calls the text it reads, in diagnostics.
const RESOLVED_FILE: &str = "<resolved configuration>";

/// Reads a file written by [`Resolved::to_toml`].
pub fn load_resolved(toml_text: &str) -> Result<Resolved, ConfigError> {
    let fail = |key: &str, message: String| {
        ConfigError::single(
            Diagnostic::new(RESOLVED_FILE, Some(key), message)
                .fix("regenerate it with `cargo xtask config`"),
        )
    };
    let table = doc::parse(toml_text).map_err(|e| fail("", format!("not valid TOML: {e}")))?;
    let string = |t: &Table, prefix: &str, key: &str| -> Result<String, ConfigError> {
        match doc::get(t, key) {
            Some(Node::Str(s)) => Ok(s.clone()),
            _ => Err(fail(
                &format!("{prefix}.{key}"),
                format!("`{prefix}.{key}` is missing or not a string"),
            )),
        }
    };
    let tables = |key: &str| -> Result<Vec<(String, Table)>, ConfigError> {
        match doc::get(&table, key) {
            None => Ok(Vec::new()),
            Some(Node::Table(t)) => t
                .iter()
                .map(|(k, v)| match v {
                    Node::Table(inner) => Ok((k.clone(), inner.clone())),
                    _ => Err(fail(&format!("{key}.{k}"), format!("`{key}.{k}` is not a table"))),
                })
                .collect(),
            Some(_) => Err(fail(key, format!("`{key}` is not a table"))),
        }
    };

    let image = match doc::get(&table, "image") {
        Some(Node::Table(t)) => t,
        _ => return Err(fail("image", "missing [image]".to_owned())),
    };
    let mut resolved = Resolved {
        image_name: string(image, "image", "name")?,
        app: string(image, "image", "app")?,
        platform: string(image, "image", "platform")?,
        config: string(image, "image", "config")?,
        components: Vec::new(),
        notes: toml_text
            .lines()
            .map_while(|l| l.strip_prefix('#'))
            .filter_map(|l| l.trim_start().strip_prefix("note: "))
            .map(str::to_owned)
            .collect(),
    };
    let components = match doc::get(&table, "component") {
        Some(Node::Array(items)) => items.as_slice(),
        None => &[],
        Some(_) => {
            return Err(fail("component", "`component` is not an array of tables".to_owned()));
        }
    };
    for item in components {
        let Node::Table(t) = item else {
            return Err(fail("component", "`component` is not an array of tables".to_owned()));
        };
        let kind = string(t, "component", "kind")?;
        let kind = Kind::from_name(&kind)
            .ok_or_else(|| fail("component.kind", format!("unknown kind `{kind}`")))?;
        resolved.components.push(ResolvedComponent {
            name: string(t, "component", "name")?,
            kind,
            crate_name: string(t, "component", "crate")?,
            feature: string(t, "component", "feature")?,
            reason: string(t, "component", "reason")?,
            options: Vec::new(),
            choices: Vec::new(),
        });
    }

    for (component, options) in tables("option")? {
        let prefix = format!("option.{component}");
        let index = resolved
            .components
            .iter()
            .position(|c| c.name == component)
            .ok_or_else(|| fail(&prefix, format!("`{prefix}` names no [[component]]")))?;
        for (name, node) in options {
            let Node::Table(t) = node else {
                return Err(fail(&format!("{prefix}.{name}"), "not a table".to_owned()));
            };
            let key = format!("{prefix}.{name}");
            let ty = string(&t, &key, "type")?;
            let value = match (ty.as_str(), doc::get(&t, "value")) {
                ("bool", Some(Node::Bool(b))) => Value::Bool(*b),
                ("int", Some(Node::Int(i))) => Value::Int(*i),
                ("size", Some(Node::Int(i))) if *i >= 0 => Value::Size(i.unsigned_abs()),
                ("enum", Some(Node::Str(s))) => Value::Enum(s.clone()),
                ("string", Some(Node::Str(s))) => Value::String(s.clone()),
                _ => {
                    return Err(fail(
                        &format!("{key}.value"),
                        format!("`{key}.value` is missing or not a {ty}"),
                    ));
                }
            };
            let source = Source::parse(&string(&t, &key, "source")?);
            resolved.components[index].options.push(ResolvedOption { name, value, source });
        }
    }

    for (component, choices) in tables("choice")? {
        let prefix = format!("choice.{component}");
        let index = resolved
            .components
            .iter()
            .position(|c| c.name == component)
            .ok_or_else(|| fail(&prefix, format!("`{prefix}` names no [[component]]")))?;
        for (name, node) in choices {
            let Node::Table(t) = node else {
                return Err(fail(&format!("{prefix}.{name}"), "not a table".to_owned()));
            };
            let key = format!("{prefix}.{name}");
            let member_component = match doc::get(&t, "member_component") {
                Some(_) => Some(string(&t, &key, "member_component")?),
                None => None,
            };
            resolved.components[index].choices.push(ResolvedChoice {
                value: string(&t, &key, "value")?,
                member_component,
                source: Source::parse(&string(&t, &key, "source")?),
                name,
            });
        }
    }
    Ok(resolved)
}

//! Schemas: reading every component's `Config.toml` into a checked [`Catalog`].
//!
//! A catalog is only built when every schema is valid on its own and all of them agree
//! with each other (unique names, `selects`, `depends` and `provides` naming things that
//! exist, choice defaults that are members). Resolution can then trust it.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use super::condition::{Condition, RawCondition};
use super::diag::{ConfigError, Diagnostic};
use super::value::{OptionType, Value};

mod link;
mod parse;

/// What a component is; decides its cargo feature and where it may appear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Lib,
    Platform,
    Driver,
    App,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Lib, Kind::Platform, Kind::Driver, Kind::App];

    /// The schema's name: `lib`, `platform`, `driver` or `app`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Lib => "lib",
            Kind::Platform => "platform",
            Kind::Driver => "driver",
            Kind::App => "app",
        }
    }

    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The top-level directory that holds components of this kind.
    pub fn dir(self) -> &'static str {
        match self {
            Kind::Lib => "libs",
            Kind::Platform => "platforms",
            Kind::Driver => "drivers",
            Kind::App => "apps",
        }
    }

    /// The image crate's feature for a component of this kind called `name`.
    pub fn feature(self, name: &str) -> String {
        match self {
            Kind::Lib | Kind::Driver => format!("lib-{name}"),
            Kind::Platform => format!("platform-{name}"),
            Kind::App => format!("app-{name}"),
        }
    }

    /// Libraries and drivers: what `image.libraries` and `selects` may name.
    pub fn is_library(self) -> bool {
        matches!(self, Kind::Lib | Kind::Driver)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One `[options.<name>]` of a schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionSchema {
    pub name: String,
    pub ty: OptionType,
    /// `None`: every image config must set it.
    pub default: Option<Value>,
    pub help: String,
}

/// A component that joins a choice group with `provides`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    /// Its member name in the group.
    pub member: String,
    pub component: String,
}

/// One `[choice.<name>]` of a schema: exactly one member is chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChoiceSchema {
    pub name: String,
    pub help: String,
    /// `None`: every image config that has this component must set it.
    pub default: Option<String>,
    /// Built-in members, as listed in `members`.
    pub members: Vec<String>,
    /// Components that declared `provides = ["<owner>.<name>"]`.
    pub providers: Vec<Provider>,
}

impl ChoiceSchema {
    /// Every member: built-in ones first, then components'.
    pub fn all_members(&self) -> Vec<&str> {
        self.members
            .iter()
            .map(String::as_str)
            .chain(self.providers.iter().map(|p| p.member.as_str()))
            .collect()
    }

    /// The component that provides `member`, if it is not built in.
    pub fn provider(&self, member: &str) -> Option<&str> {
        self.providers.iter().find(|p| p.member == member).map(|p| p.component.as_str())
    }
}

/// `<component>.<choice>`, as named by `provides`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChoiceRef {
    pub component: String,
    pub choice: String,
}

impl fmt::Display for ChoiceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.component, self.choice)
    }
}

/// One component's `Config.toml`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentSchema {
    pub name: String,
    pub kind: Kind,
    /// The cargo package (`crate = "..."`).
    pub crate_name: String,
    pub help: String,
    pub depends: Vec<Condition>,
    pub selects: Vec<String>,
    pub always: bool,
    pub provides: Vec<ChoiceRef>,
    /// Its member name in the groups it provides.
    pub member: String,
    pub options: Vec<OptionSchema>,
    pub choices: Vec<ChoiceSchema>,
    /// The schema file, relative to the repository root.
    pub schema_path: String,
}

impl ComponentSchema {
    pub fn option(&self, name: &str) -> Option<&OptionSchema> {
        self.options.iter().find(|o| o.name == name)
    }

    pub fn choice(&self, name: &str) -> Option<&ChoiceSchema> {
        self.choices.iter().find(|c| c.name == name)
    }

    /// Names that can be set under `[<name>]` in an image config: options, then choices.
    pub fn keys(&self) -> Vec<&str> {
        self.options
            .iter()
            .map(|o| o.name.as_str())
            .chain(self.choices.iter().map(|c| c.name.as_str()))
            .collect()
    }
}

/// Every component found in a repository.
#[derive(Debug, Clone)]
pub struct Catalog {
    root: PathBuf,
    components: Vec<ComponentSchema>,
    by_name: HashMap<String, usize>,
}

impl Catalog {
    /// The repository root the catalog was discovered in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every component, grouped by directory (`libs`, `platforms`, `drivers`, `apps`) in
    /// name order.
    pub fn components(&self) -> &[ComponentSchema] {
        &self.components
    }

    pub fn get(&self, name: &str) -> Option<&ComponentSchema> {
        self.by_name.get(name).map(|&i| &self.components[i])
    }

    /// Names of the components of some kinds, in catalog order.
    pub(crate) fn names_of(&self, kinds: &[Kind]) -> Vec<&str> {
        self.components
            .iter()
            .filter(|c| kinds.contains(&c.kind))
            .map(|c| c.name.as_str())
            .collect()
    }

    /// Builds a catalog from schema texts, each with its path relative to `root`
    /// (`libs/alloc/Config.toml`). The path's first directory decides the expected kind.
    pub fn from_sources(
        root: &Path,
        sources: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Catalog, ConfigError> {
        let mut diags = Vec::new();
        let mut parsed = Vec::new();
        for (path, text) in sources {
            if let Some(component) = parse::parse_schema(&path, &text, &mut diags) {
                parsed.push(component);
            }
        }
        let catalog = link::link(root, parsed, &mut diags);
        if diags.is_empty() { Ok(catalog) } else { Err(ConfigError::new(diags)) }
    }
}

/// Finds and checks every schema under `repo_root`: `libs/*/Config.toml`,
/// `platforms/*/Config.toml`, `drivers/*/Config.toml` and `apps/*/Config.toml`.
/// A directory without a `Config.toml` is not a component.
pub fn discover(repo_root: &Path) -> Result<Catalog, ConfigError> {
    let mut sources = Vec::new();
    let mut diags = Vec::new();
    for kind in Kind::ALL {
        let dir = repo_root.join(kind.dir());
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(_) => continue,
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().join("Config.toml").is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in names {
            let relative = format!("{}/{name}/Config.toml", kind.dir());
            match fs::read_to_string(repo_root.join(&relative)) {
                Ok(text) => sources.push((relative, text)),
                Err(e) => diags.push(Diagnostic::new(
                    &relative,
                    None,
                    format!("cannot read the schema: {e}"),
                )),
            }
        }
    }
    match Catalog::from_sources(repo_root, sources) {
        Ok(catalog) if diags.is_empty() => Ok(catalog),
        Ok(_) => Err(ConfigError::new(diags)),
        Err(e) => {
            diags.extend(e.diagnostics().iter().cloned());
            Err(ConfigError::new(diags))
        }
    }
}

/// A parsed schema whose cross-references are not checked yet.
struct Parsed {
    schema: ComponentSchema,
    raw_depends: Vec<(String, RawCondition)>,
}

//! Resolution: an image config plus the catalog give the [`Resolved`] image.
//!
//! Follows docs/config.md "Resolution rules": which components are in the image and why,
//! the value of every option and choice, then the checks (`depends`, one member per
//! choice, no cycles) and the init order. Every problem found is reported, not just the
//! first; the resolver never guesses past an error into a build.

use std::fmt;
use std::fs;
use std::path::{Component, Path, PathBuf};

use super::condition::{Op, Test};
use super::diag::{ConfigError, Diagnostic, a, closest, quoted_list, suggestion};
use super::doc::{self, Node, Table};
use super::resolved::{Resolved, ResolvedChoice, ResolvedComponent, ResolvedOption, Source};
use super::schema::{Catalog, ChoiceSchema, ComponentSchema, Kind};
use super::value::Value;

/// Resolves the image config at `image_config` (absolute, relative to the current
/// directory, or relative to the catalog's repository root).
pub fn resolve(catalog: &Catalog, image_config: &Path) -> Result<Resolved, ConfigError> {
    let path = if image_config.is_relative() && !image_config.exists() {
        catalog.root().join(image_config)
    } else {
        image_config.to_path_buf()
    };
    let display = display_path(catalog.root(), &path);
    let text = fs::read_to_string(&path).map_err(|e| {
        ConfigError::single(
            Diagnostic::new(&display, None, format!("cannot read the image config: {e}"))
                .fix("pass an existing file to --config, like configs/hello.toml"),
        )
    })?;
    resolve_source(catalog, &display, &text)
}

/// Resolves an image config given as text; `config_path` (relative to the repository
/// root) is what diagnostics and sources name, and its file stem is the default image
/// name.
pub fn resolve_source(
    catalog: &Catalog,
    config_path: &str,
    text: &str,
) -> Result<Resolved, ConfigError> {
    let table = doc::parse(text).map_err(|e| {
        ConfigError::single(Diagnostic::new(config_path, None, format!("not valid TOML: {e}")))
    })?;
    let mut resolver = Resolver {
        catalog,
        file: config_path,
        diags: Vec::new(),
        notes: Vec::new(),
        image: Vec::new(),
        expanded: 0,
        app: None,
        platform: None,
        settings: Vec::new(),
        tables: Vec::new(),
    };
    let resolved = resolver.run(&table);
    if resolver.diags.is_empty() {
        return Ok(resolved);
    }
    let mut unique: Vec<Diagnostic> = Vec::new();
    for d in resolver.diags {
        if !unique.contains(&d) {
            unique.push(d);
        }
    }
    Err(ConfigError::new(unique))
}

/// `path` relative to `root` with `/` separators when it is inside it, else as given.
fn display_path(root: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(root).map(Path::to_path_buf).ok().or_else(|| {
        match (root.canonicalize(), path.canonicalize()) {
            (Ok(root), Ok(path)) => path.strip_prefix(&root).map(Path::to_path_buf).ok(),
            _ => None,
        }
    });
    let shown: PathBuf = relative.unwrap_or_else(|| path.to_path_buf());
    shown
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            Component::RootDir => Some(String::new()),
            Component::ParentDir => Some("..".to_owned()),
            Component::Prefix(p) => Some(p.as_os_str().to_string_lossy().into_owned()),
            Component::CurDir => None,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Why a component is in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reason {
    App,
    Platform,
    Always(String),
    Listed,
    Chosen(String),
    ChoiceDefault(String),
    SelectedBy(String),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::App => f.write_str("app"),
            Reason::Platform => f.write_str("platform"),
            Reason::Always(platform) if platform.is_empty() => f.write_str("always"),
            Reason::Always(platform) => write!(f, "always (platform {platform})"),
            Reason::Listed => f.write_str("chosen in image.libraries"),
            Reason::Chosen(choice) => write!(f, "chosen as {choice}"),
            Reason::ChoiceDefault(choice) => write!(f, "choice default of {choice}"),
            Reason::SelectedBy(by) => write!(f, "selected by {by}"),
        }
    }
}

/// A value the image config sets under `[<component>]`.
enum Setting {
    Option(Value),
    Choice(String),
}

struct Member<'a> {
    schema: &'a ComponentSchema,
    reason: Reason,
}

struct Resolver<'a> {
    catalog: &'a Catalog,
    file: &'a str,
    diags: Vec<Diagnostic>,
    notes: Vec<String>,
    /// Components in the image, in the order they joined.
    image: Vec<Member<'a>>,
    /// How many of `image` have had their `selects` and choices followed.
    expanded: usize,
    app: Option<&'a ComponentSchema>,
    platform: Option<&'a ComponentSchema>,
    /// `(component, key, value)` for every valid setting of the image config.
    settings: Vec<(&'a str, String, Setting)>,
    /// Components that have a table in the image config.
    tables: Vec<&'a ComponentSchema>,
}

const IMAGE_KEYS: [&str; 4] = ["name", "app", "platform", "libraries"];

impl<'a> Resolver<'a> {
    fn error(&mut self, key: Option<&str>, message: impl Into<String>, fix: Option<String>) {
        self.diags.push(Diagnostic::new(self.file, key, message).maybe_fix(fix));
    }

    fn run(&mut self, table: &Table) -> Resolved {
        // Tables in file order, so diagnostics follow the file.
        let mut image = None;
        for (key, node) in table {
            if key != "image" {
                self.read_component_table(key, node);
                continue;
            }
            image = Some(match node {
                Node::Table(t) => self.read_image(t),
                other => {
                    self.error(
                        Some("image"),
                        format!("`image` must be a table, found {}", other.type_name()),
                        Some("write [image] with `app` and `platform`".into()),
                    );
                    (String::new(), Vec::new())
                }
            });
        }
        let (name, libraries) = image.unwrap_or_else(|| {
            self.error(
                Some("image"),
                "missing [image] table",
                Some("add [image] with `app = \"...\"` and `platform = \"...\"`".into()),
            );
            (String::new(), Vec::new())
        });

        self.gather(&libraries);
        let values = self.resolve_values();
        self.check_unused_tables();
        self.check_depends(&values);
        let order = self.init_order();

        let components = order
            .into_iter()
            .map(|i| {
                let m = &self.image[i];
                let (options, choices) = values[i].clone();
                ResolvedComponent {
                    name: m.schema.name.clone(),
                    kind: m.schema.kind,
                    crate_name: m.schema.crate_name.clone(),
                    feature: m.schema.kind.feature(&m.schema.name),
                    reason: m.reason.to_string(),
                    options,
                    choices,
                }
            })
            .collect();
        Resolved {
            image_name: name,
            app: self.app.map(|a| a.name.clone()).unwrap_or_default(),
            platform: self.platform.map(|p| p.name.clone()).unwrap_or_default(),
            config: self.file.to_owned(),
            components,
            notes: std::mem::take(&mut self.notes),
        }
    }

    /// Reads `[image]`: the image name and the explicitly listed libraries; sets the app
    /// and platform.
    fn read_image(&mut self, t: &Table) -> (String, Vec<&'a ComponentSchema>) {
        for (key, _) in t {
            if !IMAGE_KEYS.contains(&key.as_str()) {
                let fix = suggestion(key, &IMAGE_KEYS, "keys of [image]", "");
                self.error(
                    Some(&format!("image.{key}")),
                    format!("unknown key `image.{key}`"),
                    Some(fix),
                );
            }
        }
        let stem =
            self.file.rsplit('/').next().unwrap_or_default().trim_end_matches(".toml").to_owned();
        let name = match doc::get(t, "name") {
            None => stem,
            Some(Node::Str(s))
                if !s.is_empty()
                    && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
            {
                s.clone()
            }
            Some(Node::Str(s)) => {
                self.error(
                    Some("image.name"),
                    format!("`image.name` \"{s}\" cannot name an image file"),
                    Some("use ASCII letters, digits, `-` and `_`".into()),
                );
                stem
            }
            Some(other) => {
                self.error(
                    Some("image.name"),
                    format!(
                        "wrong type for `image.name`: expected a string, found {}",
                        other.type_name()
                    ),
                    None,
                );
                stem
            }
        };
        self.app = self.read_root(t, Kind::App);
        self.platform = self.read_root(t, Kind::Platform);

        let mut libraries = Vec::new();
        let names = match doc::get(t, "libraries") {
            None => Vec::new(),
            Some(Node::Array(items)) => items.clone(),
            Some(other) => {
                self.error(
                    Some("image.libraries"),
                    format!(
                        "wrong type for `image.libraries`: expected an array of strings, found {}",
                        other.type_name()
                    ),
                    Some("write e.g. `libraries = [\"pager\", \"prefetch\"]`".into()),
                );
                Vec::new()
            }
        };
        let known = self.catalog.names_of(&[Kind::Lib, Kind::Driver]);
        for item in names {
            let Node::Str(name) = item else {
                self.error(
                    Some("image.libraries"),
                    format!(
                        "wrong type in `image.libraries`: expected library names (strings), found {}",
                        item.type_name()
                    ),
                    None,
                );
                continue;
            };
            match self.catalog.get(&name) {
                None => {
                    let fix = suggestion(&name, &known, "libraries", "there are no libraries");
                    self.error(
                        Some("image.libraries"),
                        format!("unknown library `{name}` in `image.libraries`"),
                        Some(fix),
                    );
                }
                Some(c) if !c.kind.is_library() => {
                    let key = if c.kind == Kind::App { "app" } else { "platform" };
                    self.error(
                        Some("image.libraries"),
                        format!(
                            "`image.libraries` names `{name}`, which is {}, not a library",
                            a(c.kind)
                        ),
                        Some(format!("set it as `image.{key}` instead")),
                    );
                }
                Some(c) if libraries.iter().any(|l: &&ComponentSchema| l.name == c.name) => {}
                Some(c) => libraries.push(c),
            }
        }
        (name, libraries)
    }

    /// Reads `image.app` or `image.platform`.
    fn read_root(&mut self, t: &Table, kind: Kind) -> Option<&'a ComponentSchema> {
        let field = kind.name();
        let key = format!("image.{field}");
        let known = self.catalog.names_of(&[kind]);
        let plural = format!("{field}s");
        match doc::get(t, field) {
            None => {
                self.error(
                    Some(&key),
                    format!("missing `{key}`"),
                    Some(format!(
                        "add `{field} = \"<name>\"` under [image] ({plural}: {})",
                        known.join(", ")
                    )),
                );
                None
            }
            Some(Node::Str(name)) => match self.catalog.get(name) {
                Some(c) if c.kind == kind => Some(c),
                Some(c) => {
                    self.error(
                        Some(&key),
                        format!("`{key}` names `{name}`, which is {}, not {}", a(c.kind), a(field)),
                        Some(format!("{plural}: {}", known.join(", "))),
                    );
                    None
                }
                None => {
                    let fix = suggestion(name, &known, &plural, &format!("there are no {plural}"));
                    self.error(
                        Some(&key),
                        format!("unknown {field} `{name}` in `{key}`"),
                        Some(fix),
                    );
                    None
                }
            },
            Some(other) => {
                self.error(
                    Some(&key),
                    format!(
                        "wrong type for `{key}`: expected a string, found {}",
                        other.type_name()
                    ),
                    None,
                );
                None
            }
        }
    }

    /// Reads `[<component>]`: option values and choice members.
    fn read_component_table(&mut self, name: &str, node: &Node) {
        let Some(component) = self.catalog.get(name) else {
            let components: Vec<&str> =
                self.catalog.components().iter().map(|c| c.name.as_str()).collect();
            let list = format!("tables: [image] and one per component: {}", components.join(", "));
            let candidates = components.iter().copied().chain(["image"]);
            let fix = match closest(name, candidates) {
                Some(near) => format!("did you mean `[{near}]`? ({list})"),
                None => list,
            };
            let (message, fix) = match node {
                Node::Table(_) => (format!("unknown table `[{name}]`"), fix),
                _ if IMAGE_KEYS.contains(&name) => {
                    (format!("`{name}` is outside any table"), "move it under [image]".to_owned())
                }
                _ => (
                    format!(
                        "unknown key `{name}`: settings go under [image] or a component's table"
                    ),
                    fix,
                ),
            };
            self.error(Some(name), message, Some(fix));
            return;
        };
        let Node::Table(table) = node else {
            self.error(
                Some(name),
                format!("`{name}` must be a table of its options, found {}", node.type_name()),
                Some(format!("write [{name}] and its options below it")),
            );
            return;
        };
        self.tables.push(component);
        for (key, value) in table {
            let full = format!("{name}.{key}");
            if let Some(option) = component.option(key) {
                match option.ty.read(value) {
                    Ok(v) => self.settings.push((&component.name, key.clone(), Setting::Option(v))),
                    Err(e) => {
                        let (message, fix) = e.describe(&full);
                        self.error(Some(&full), message, fix);
                    }
                }
            } else if let Some(choice) = component.choice(key) {
                if let Some(member) = self.read_member(&full, choice, value) {
                    self.settings.push((&component.name, key.clone(), Setting::Choice(member)));
                }
            } else {
                let keys = component.keys();
                let label = if component.choices.is_empty() {
                    format!("options of {name}")
                } else {
                    format!("options and choices of {name}")
                };
                let fix = suggestion(key, &keys, &label, &format!("{name} has no options"));
                self.error(Some(&full), format!("unknown option `{full}`"), Some(fix));
            }
        }
    }

    fn read_member(&mut self, key: &str, choice: &ChoiceSchema, node: &Node) -> Option<String> {
        let members = choice.all_members();
        let Node::Str(member) = node else {
            self.error(
                Some(key),
                format!(
                    "wrong type for `{key}`: expected a member name (a string: {}), found {}",
                    quoted_list(&members),
                    node.type_name()
                ),
                None,
            );
            return None;
        };
        if members.contains(&member.as_str()) {
            return Some(member.clone());
        }
        let near = closest(member, members.iter().copied())
            .map(|n| format!("did you mean \"{n}\"? "))
            .unwrap_or_default();
        self.error(
            Some(key),
            format!("`{key}` = \"{member}\" is not a member of this choice"),
            Some(format!("{near}members: {}", quoted_list(&members))),
        );
        None
    }

    fn setting(&self, component: &str, key: &str) -> Option<&Setting> {
        self.settings.iter().find(|(c, k, _)| *c == component && k == key).map(|(_, _, s)| s)
    }

    fn chosen_member(&self, component: &str, choice: &str) -> Option<&str> {
        match self.setting(component, choice) {
            Some(Setting::Choice(m)) => Some(m),
            _ => None,
        }
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.image.iter().position(|m| m.schema.name == name)
    }

    /// Puts a component in the image; false if it already was (or cannot be).
    fn add(&mut self, name: &str, reason: Reason) -> bool {
        if self.index(name).is_some() {
            return false;
        }
        let Some(schema) = self.catalog.get(name) else {
            return false;
        };
        let is_root = matches!(reason, Reason::App | Reason::Platform);
        if !schema.kind.is_library() && !is_root {
            // Only a choice can reach here: schemas cannot select apps or platforms.
            let (Reason::Chosen(choice) | Reason::ChoiceDefault(choice)) = &reason else {
                return false;
            };
            let current = match schema.kind {
                Kind::App => self.app,
                _ => self.platform,
            }
            .map_or("none".to_owned(), |c| format!("`{}`", c.name));
            self.error(
                Some(choice),
                format!(
                    "`{choice}` = \"{}\" is provided by {} `{name}`, but this image's {} is {current}",
                    schema.member, schema.kind, schema.kind
                ),
                Some(format!("choose another member of {choice}")),
            );
            return false;
        }
        self.image.push(Member { schema, reason });
        true
    }

    /// Rule 1: the app, the platform, `always` libraries, `image.libraries`, chosen
    /// members, and transitively what they select.
    fn gather(&mut self, libraries: &[&'a ComponentSchema]) {
        let platform_name = self.platform.map(|p| p.name.clone()).unwrap_or_default();
        if let Some(p) = self.platform {
            self.add(&p.name, Reason::Platform);
        }
        for c in self.catalog.components() {
            if c.always && c.kind.is_library() {
                self.add(&c.name, Reason::Always(platform_name.clone()));
            }
        }
        for lib in libraries {
            if !self.add(&lib.name, Reason::Listed) {
                let reason = self.index(&lib.name).map(|i| self.image[i].reason.to_string());
                self.notes.push(format!(
                    "{} is listed in image.libraries but is in the image anyway ({})",
                    lib.name,
                    reason.unwrap_or_default()
                ));
            }
        }
        if let Some(a) = self.app {
            self.add(&a.name, Reason::App);
        }
        loop {
            while self.expanded < self.image.len() {
                let schema = self.image[self.expanded].schema;
                self.expanded += 1;
                for selected in &schema.selects {
                    if self.add(selected, Reason::SelectedBy(schema.name.clone())) {
                        self.notes.push(format!("{selected} selected by {}", schema.name));
                    }
                }
                for choice in &schema.choices {
                    let group = format!("{}.{}", schema.name, choice.name);
                    if let Some(member) = self.chosen_member(&schema.name, &choice.name)
                        && let Some(provider) = choice.provider(member)
                    {
                        let provider = provider.to_owned();
                        self.add(&provider, Reason::Chosen(group));
                    }
                }
            }
            // One default at a time: the component it pulls in may settle other choices.
            if !self.pull_one_default() {
                break;
            }
        }
    }

    /// Pulls in the component that is the default of a choice nothing else settles.
    fn pull_one_default(&mut self) -> bool {
        for i in 0..self.image.len() {
            let schema = self.image[i].schema;
            for choice in &schema.choices {
                if self.chosen_member(&schema.name, &choice.name).is_some()
                    || choice.providers.iter().any(|p| self.index(&p.component).is_some())
                {
                    continue;
                }
                let Some(provider) = choice.default.as_deref().and_then(|d| choice.provider(d))
                else {
                    continue;
                };
                let group = format!("{}.{}", schema.name, choice.name);
                let provider = provider.to_owned();
                if self.add(&provider, Reason::ChoiceDefault(group.clone())) {
                    self.notes.push(format!("{provider} pulled in as the default of {group}"));
                    return true;
                }
            }
        }
        false
    }

    /// Rule 2: every option and choice of every component in the image, indexed like
    /// `self.image`.
    fn resolve_values(&mut self) -> Vec<(Vec<ResolvedOption>, Vec<ResolvedChoice>)> {
        let mut all = Vec::new();
        for i in 0..self.image.len() {
            let schema = self.image[i].schema;
            let mut options = Vec::new();
            for option in &schema.options {
                let key = format!("{}.{}", schema.name, option.name);
                let (value, source) = match self.setting(&schema.name, &option.name) {
                    Some(Setting::Option(v)) => (v.clone(), Source::Config(self.file.to_owned())),
                    _ => match &option.default {
                        Some(v) => (v.clone(), Source::Default),
                        None => {
                            if !self.has_invalid_setting(&key) {
                                self.error(
                                    Some(&key),
                                    format!("option `{key}` has no default and is not set"),
                                    Some(format!(
                                        "add `{} = <{}>` under [{}] ({})",
                                        option.name,
                                        option.ty.name(),
                                        schema.name,
                                        option.ty.expectation()
                                    )),
                                );
                            }
                            continue;
                        }
                    },
                };
                options.push(ResolvedOption { name: option.name.clone(), value, source });
            }
            let mut choices = Vec::new();
            for choice in &schema.choices {
                if let Some(c) = self.resolve_choice(schema, choice) {
                    choices.push(c);
                }
            }
            all.push((options, choices));
        }
        all
    }

    /// Whether a diagnostic was already given for this key (so "not set" is not reported
    /// on top of "wrong type").
    fn has_invalid_setting(&self, key: &str) -> bool {
        self.diags.iter().any(|d| d.key.as_deref() == Some(key))
    }

    fn resolve_choice(
        &mut self,
        schema: &ComponentSchema,
        choice: &ChoiceSchema,
    ) -> Option<ResolvedChoice> {
        let key = format!("{}.{}", schema.name, choice.name);
        // Every member something asks for, with where the request came from.
        let mut wanted: Vec<(String, String, Source)> = Vec::new();
        if let Some(member) = self.chosen_member(&schema.name, &choice.name) {
            wanted.push((
                member.to_owned(),
                format!("set as `{key}` in {}", self.file),
                Source::Config(self.file.to_owned()),
            ));
        }
        for provider in &choice.providers {
            // An application offers its member (Redis's own prefetch policy) without
            // choosing it: being the image's app says nothing about the choice.
            if let Some(i) = self.index(&provider.component)
                && self.image[i].schema.kind.is_library()
                && !wanted.iter().any(|(m, _, _)| *m == provider.member)
            {
                let reason = &self.image[i].reason;
                let source = match reason {
                    Reason::Listed => Source::Config(self.file.to_owned()),
                    Reason::ChoiceDefault(_) => Source::Default,
                    _ => Source::Implied(provider.component.clone()),
                };
                wanted.push((
                    provider.member.clone(),
                    format!("{} is in the image: {reason}", provider.component),
                    source,
                ));
            }
        }
        if wanted.len() > 1 {
            let described: Vec<String> =
                wanted.iter().map(|(m, why, _)| format!("\"{m}\" ({why})")).collect();
            self.error(
                Some(&key),
                format!("two members of choice `{key}`: {}", described.join(" and ")),
                Some("exactly one member may be chosen: keep one and remove the other".into()),
            );
            return None;
        }
        let (value, source) = match wanted.pop() {
            Some((member, _, source)) => (member, source),
            None => match &choice.default {
                Some(default) => (default.clone(), Source::Default),
                None => {
                    if !self.has_invalid_setting(&key) {
                        self.error(
                            Some(&key),
                            format!("choice `{key}` has no default and is not set"),
                            Some(format!(
                                "add `{} = \"<member>\"` under [{}] (members: {})",
                                choice.name,
                                schema.name,
                                quoted_list(&choice.all_members())
                            )),
                        );
                    }
                    return None;
                }
            },
        };
        if let Source::Implied(by) = &source {
            self.notes.push(format!("{key} = \"{value}\" because {by} is in the image"));
        }
        Some(ResolvedChoice {
            member_component: choice.provider(&value).map(str::to_owned),
            name: choice.name.clone(),
            value,
            source,
        })
    }

    /// A table for a component that is not in the image is a mistake: its settings would
    /// be silently ignored.
    fn check_unused_tables(&mut self) {
        for component in self.tables.clone() {
            if self.index(&component.name).is_some() {
                continue;
            }
            let name = &component.name;
            let (message, fix) = match component.kind {
                Kind::Lib | Kind::Driver => (
                    format!("[{name}] sets options of `{name}`, which is not in this image"),
                    format!("add \"{name}\" to [image] libraries, or remove [{name}]"),
                ),
                kind => {
                    let current = match kind {
                        Kind::App => self.app,
                        _ => self.platform,
                    }
                    .map_or("not set".to_owned(), |c| format!("`{}`", c.name));
                    (
                        format!(
                            "[{name}] sets options of {kind} `{name}`, but this image's {kind} is {current}"
                        ),
                        format!("remove [{name}], or set `image.{kind} = \"{name}\"`"),
                    )
                }
            };
            self.error(Some(name), message, Some(fix));
        }
    }

    /// Rule 3: every `depends` of every component in the image holds.
    fn check_depends(&mut self, values: &[(Vec<ResolvedOption>, Vec<ResolvedChoice>)]) {
        for i in 0..self.image.len() {
            let schema = self.image[i].schema;
            for condition in &schema.depends {
                let who = format!(
                    "unmet dependency: `{}` depends on `{}` ({})",
                    schema.name, condition.text, schema.schema_path
                );
                let target = condition.component();
                let present = self.index(target);
                match (&condition.test, present) {
                    (Test::Absent(_), None) | (Test::Present(_), Some(_)) => {}
                    (Test::Absent(_), Some(t)) => {
                        let reason = self.image[t].reason.to_string();
                        self.error(
                            Some("image.libraries"),
                            format!("{who}, but `{target}` is in the image ({reason})"),
                            Some(format!(
                                "`{}` and `{target}` cannot be in one image: remove one of them",
                                schema.name
                            )),
                        );
                    }
                    (Test::Present(_) | Test::Compare { .. }, None) => {
                        let kind = self.catalog.get(target).map(|c| c.kind);
                        let fix = match kind {
                            Some(Kind::Platform) => format!(
                                "set `platform = \"{target}\"` under [image], or remove `{}`",
                                schema.name
                            ),
                            _ => format!("add \"{target}\" to [image] libraries"),
                        };
                        self.error(
                            Some("image.libraries"),
                            format!("{who}, but `{target}` is not in this image"),
                            Some(fix),
                        );
                    }
                    (Test::Compare { key, op, value, .. }, Some(t)) => {
                        let (options, choices) = &values[t];
                        let current = options
                            .iter()
                            .find(|o| o.name == *key)
                            .map(|o| (o.value.clone(), o.source.clone()))
                            .or_else(|| {
                                choices
                                    .iter()
                                    .find(|c| c.name == *key)
                                    .map(|c| (Value::Enum(c.value.clone()), c.source.clone()))
                            });
                        // An option without a value has been reported already.
                        let Some((current, source)) = current else {
                            continue;
                        };
                        if op.holds(&current, value) {
                            continue;
                        }
                        let full = format!("{target}.{key}");
                        let source = match source {
                            Source::Default => "the default".to_owned(),
                            Source::Config(path) => format!("set in {path}"),
                            Source::Implied(by) => format!("implied by {by}"),
                        };
                        self.error(
                            Some(&full),
                            format!("{who}, but `{full}` is {current} ({source})"),
                            Some(fix_for(target, key, *op, value)),
                        );
                    }
                }
            }
        }
    }

    /// Init order: indices into `self.image`, each component after everything it
    /// depends on or selects, ties broken by arrival; the app last. A cycle is reported.
    fn init_order(&mut self) -> Vec<usize> {
        let n = self.image.len();
        let app = self.app.and_then(|a| self.index(&a.name));
        // needs[i]: components that must come before i, with the edge's description.
        let mut needs: Vec<Vec<(usize, &'static str)>> = vec![Vec::new(); n];
        for (i, m) in self.image.iter().enumerate() {
            let depends = m
                .schema
                .depends
                .iter()
                .filter(|c| c.needs_component())
                .map(|c| (c.component(), "depends on"));
            let selects = m.schema.selects.iter().map(|s| (s.as_str(), "selects"));
            for (name, how) in depends.chain(selects) {
                if let Some(j) = self.index(name)
                    && j != i
                    && !needs[i].iter().any(|&(k, _)| k == j)
                {
                    needs[i].push((j, how));
                }
            }
        }
        // A library or driver that is a member of X's choice (the mlx5 driver as
        // rmem's transport) comes after X and before everything that needs X: whoever
        // uses X uses its chosen member.
        for (p, m) in self.image.iter().enumerate() {
            if Some(p) == app {
                continue;
            }
            for joined in &m.schema.provides {
                let Some(x) = self.index(&joined.component) else { continue };
                if x != p && !needs[p].iter().any(|&(k, _)| k == x) {
                    needs[p].push((x, "joins a choice of"));
                }
                for (d, needed) in needs.iter_mut().enumerate() {
                    if d != p
                        && needed.iter().any(|&(k, _)| k == x)
                        && !needed.iter().any(|&(k, _)| k == p)
                    {
                        needed.push((p, "uses the chosen member"));
                    }
                }
            }
        }
        let mut placed = vec![false; n];
        let mut order = Vec::with_capacity(n);
        loop {
            let next = (0..n).find(|&i| {
                !placed[i]
                    && Some(i) != app
                    && needs[i].iter().all(|&(j, _)| placed[j] || Some(j) == app)
            });
            match next {
                Some(i) => {
                    placed[i] = true;
                    order.push(i);
                }
                None => break,
            }
        }
        if let Some(a) = app {
            placed[a] = true;
            order.push(a);
        }
        if order.len() < n {
            self.report_cycle(&needs, &placed);
            // Keep every component so the caller still has a complete (if unordered) list.
            order.extend((0..n).filter(|&i| !placed[i]));
        }
        order
    }

    fn report_cycle(&mut self, needs: &[Vec<(usize, &'static str)>], placed: &[bool]) {
        let Some(start) = (0..needs.len()).find(|&i| !placed[i]) else {
            return;
        };
        // Walk unplaced prerequisites until a component repeats: that is a cycle.
        let mut path = vec![start];
        let mut edges = Vec::new();
        let cycle_start = loop {
            let current = *path.last().unwrap_or(&start);
            let Some(&(next, how)) = needs[current].iter().find(|&&(j, _)| !placed[j]) else {
                return;
            };
            edges.push((current, how, next));
            if let Some(pos) = path.iter().position(|&p| p == next) {
                break pos;
            }
            path.push(next);
        };
        let cycle = &path[cycle_start..];
        let edges = &edges[cycle_start..];
        let names: Vec<&str> = cycle
            .iter()
            .chain(std::iter::once(&cycle[0]))
            .map(|&i| self.image[i].schema.name.as_str())
            .collect();
        let detail: Vec<String> = edges
            .iter()
            .map(|&(a, how, b)| {
                format!(
                    "{} {how} {} in {}",
                    self.image[a].schema.name,
                    self.image[b].schema.name,
                    self.image[a].schema.schema_path
                )
            })
            .collect();
        let first = self.image[cycle[0]].schema;
        self.diags.push(
            Diagnostic::new(
                &first.schema_path,
                Some("component.depends"),
                format!("dependency cycle: {} ({})", names.join(" -> "), detail.join("; ")),
            )
            .fix("no init order exists: remove one of these edges from `depends` or `selects`"),
        );
    }
}

/// How to make `<component>.<key> <op> <value>` hold.
fn fix_for(component: &str, key: &str, op: Op, value: &Value) -> String {
    let set = |v: &str| format!("set `{key} = {v}` under [{component}]");
    let literal = match value {
        Value::Size(_) => format!("\"{value}\""),
        _ => value.to_string(),
    };
    match op {
        Op::Eq => set(&literal),
        Op::Ne => format!("set `{component}.{key}` to anything but {value}"),
        Op::Ge => format!("set `{component}.{key}` to at least {value}"),
        Op::Gt => format!("set `{component}.{key}` above {value}"),
        Op::Le => format!("set `{component}.{key}` to at most {value}"),
        Op::Lt => format!("set `{component}.{key}` below {value}"),
    }
}

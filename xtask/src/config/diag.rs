//! Diagnostics: what went wrong in which file, under which key, and how to fix it.
//!
//! Every error the configuration system reports is a [`Diagnostic`]; a failed discovery or
//! resolution returns all of them at once in a [`ConfigError`], so a user fixes a config in
//! one pass instead of one error per build.

use std::fmt;

/// One problem in one file.
///
/// Displayed as `<file>: <message>; <fix>`, for example
/// ``configs/bad.toml: unknown option `alloc.heap_siz`; did you mean `heap_size`? (options of alloc: heap_size, far_small_max)``.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file at fault, relative to the repository root (`configs/redis.toml`,
    /// `libs/alloc/Config.toml`).
    pub file: String,
    /// The dotted key at fault (`alloc.heap_size`, `image.app`, `options.heap_size.default`),
    /// when there is one.
    pub key: Option<String>,
    /// What is wrong; names the key.
    pub message: String,
    /// What would fix it, when we can tell.
    pub fix: Option<String>,
}

impl Diagnostic {
    pub(crate) fn new(file: &str, key: Option<&str>, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.to_owned(),
            key: key.map(str::to_owned),
            message: message.into(),
            fix: None,
        }
    }

    pub(crate) fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }

    pub(crate) fn maybe_fix(mut self, fix: Option<String>) -> Self {
        self.fix = fix;
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file, self.message)?;
        if let Some(fix) = &self.fix {
            write!(f, "; {fix}")?;
        }
        Ok(())
    }
}

/// Every problem found in one discovery or resolution; never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    diagnostics: Vec<Diagnostic>,
}

impl ConfigError {
    pub(crate) fn new(diagnostics: Vec<Diagnostic>) -> Self {
        debug_assert!(!diagnostics.is_empty());
        ConfigError { diagnostics }
    }

    pub(crate) fn single(diagnostic: Diagnostic) -> Self {
        ConfigError::new(vec![diagnostic])
    }

    /// The problems, in the order they were found.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }
}

impl fmt::Display for ConfigError {
    /// One diagnostic per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, diagnostic) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// The candidate closest to `input`, if it is close enough to be what the user meant.
pub(crate) fn closest<'a>(
    input: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let mut best: Option<(&str, f64)> = None;
    for candidate in candidates {
        let score = strsim::jaro_winkler(input, candidate);
        let edits = strsim::levenshtein(input, candidate);
        let close =
            score >= 0.85 || (input.chars().count() >= 3 && edits <= (input.len() / 4).max(1));
        if close && best.is_none_or(|(_, s)| score > s) {
            best = Some((candidate, score));
        }
    }
    best.map(|(c, _)| c)
}

/// `did you mean `x`? (<label>: a, b, c)`, or just `<label>: a, b, c` when nothing is
/// close, or `<empty>` when there are no candidates at all.
pub(crate) fn suggestion(input: &str, candidates: &[&str], label: &str, empty: &str) -> String {
    if candidates.is_empty() {
        return empty.to_owned();
    }
    let list = candidates.join(", ");
    match closest(input, candidates.iter().copied()) {
        Some(near) => format!("did you mean `{near}`? ({label}: {list})"),
        None => format!("{label}: {list}"),
    }
}

/// `"a", "b", "c"`: a list of string values as a user would write them.
pub(crate) fn quoted_list(values: &[&str]) -> String {
    values.iter().map(|v| format!("\"{v}\"")).collect::<Vec<_>>().join(", ")
}

/// `an app`, `a lib`: a word with its indefinite article.
pub(crate) fn a(word: impl std::fmt::Display) -> String {
    let word = word.to_string();
    let article = if word.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
    format!("{article} {word}")
}

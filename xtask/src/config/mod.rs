//! Configuration: Kconfig-like TOML schemas and image configs (docs/config.md).
//!
//! This module owns reading every component's `Config.toml` ([`discover`]), resolving an
//! image config against them ([`resolve`]) and the resolved file the image's `build.rs`
//! reads ([`Resolved::to_toml`], [`load_resolved`]). It is a pure library: it never runs
//! cargo and never prints; every problem comes back as a [`Diagnostic`] that names the
//! file, the key, what is wrong and how to fix it.
//!
//! - `doc`: TOML parsed with its key order kept.
//! - `value`: option types, values, sizes.
//! - `condition`: `depends` conditions.
//! - `schema`: `Config.toml` files into a checked [`Catalog`].
//! - `resolve`: an image config into a [`Resolved`] image.
//! - `resolved`: the resolved image, its file and its report.

mod condition;
mod diag;
mod doc;
mod resolve;
mod resolved;
mod schema;
mod value;

pub use condition::{Condition, Op, Test};
pub use diag::{ConfigError, Diagnostic};
pub use resolve::{resolve, resolve_source};
pub use resolved::{
    Resolved, ResolvedChoice, ResolvedComponent, ResolvedOption, Source, load_resolved,
};
pub use schema::{
    Catalog, ChoiceRef, ChoiceSchema, ComponentSchema, Kind, OptionSchema, Provider, discover,
};
pub use value::{OptionType, Value, format_size, parse_size};

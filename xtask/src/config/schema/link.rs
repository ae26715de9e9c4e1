//! What schemas say about each other: unique names, `provides` joining choices that
//! exist, choice defaults that are members, `selects` and `depends` naming real things.

use std::collections::HashMap;
use std::path::Path;

use super::{Catalog, ComponentSchema, Kind, Parsed, Provider};
use crate::config::condition::{self, Condition, RawCondition, Test};
use crate::config::diag::{Diagnostic, a, closest, quoted_list, suggestion};
use crate::config::value::OptionType;

/// Checks what schemas say about each other and builds the catalog.
pub(super) fn link(root: &Path, parsed: Vec<Parsed>, diags: &mut Vec<Diagnostic>) -> Catalog {
    // Unique names: the first one found wins, the others are reported.
    let mut by_name: HashMap<String, usize> = HashMap::new();
    let mut components: Vec<ComponentSchema> = Vec::new();
    let mut raw_depends = Vec::new();
    for p in parsed {
        if let Some(&first) = by_name.get(&p.schema.name) {
            diags.push(
                Diagnostic::new(
                    &p.schema.schema_path,
                    Some("component.name"),
                    format!(
                        "duplicate component name `{}`: {} already declares it",
                        p.schema.name, components[first].schema_path
                    ),
                )
                .fix("component names are unique across libs/, platforms/, drivers/ and apps/: rename one"),
            );
            continue;
        }
        by_name.insert(p.schema.name.clone(), components.len());
        components.push(p.schema);
        raw_depends.push(p.raw_depends);
    }
    let mut catalog = Catalog { root: root.to_path_buf(), components, by_name };

    link_providers(&mut catalog, diags);
    check_choice_defaults(&catalog, diags);
    check_selects(&catalog, diags);
    for (i, raws) in raw_depends.into_iter().enumerate() {
        let mut depends = Vec::new();
        for (text, raw) in raws {
            match check_condition(&catalog, &catalog.components[i], &text, raw) {
                Ok(c) => depends.push(c),
                Err((message, fix)) => diags.push(
                    Diagnostic::new(
                        &catalog.components[i].schema_path,
                        Some("component.depends"),
                        format!("bad condition \"{text}\" in `component.depends`: {message}"),
                    )
                    .maybe_fix(fix),
                ),
            }
        }
        catalog.components[i].depends = depends;
    }
    catalog
}

/// Attaches every `provides` to its choice group.
fn link_providers(catalog: &mut Catalog, diags: &mut Vec<Diagnostic>) {
    let mut joins = Vec::new();
    for component in &catalog.components {
        for group in &component.provides {
            let diag = |message: String, fix: String| {
                Diagnostic::new(&component.schema_path, Some("component.provides"), message)
                    .fix(fix)
            };
            let Some(owner) = catalog.get(&group.component) else {
                let names: Vec<&str> = catalog.components.iter().map(|c| c.name.as_str()).collect();
                diags.push(diag(
                    format!(
                        "`component.provides` names \"{group}\", but there is no component `{}`",
                        group.component
                    ),
                    suggestion(&group.component, &names, "components", "there are no components"),
                ));
                continue;
            };
            let Some(choice) = owner.choice(&group.choice) else {
                let names: Vec<&str> = owner.choices.iter().map(|c| c.name.as_str()).collect();
                diags.push(diag(
                    format!(
                        "`component.provides` names \"{group}\", but {} has no choice `{}`",
                        owner.name, group.choice
                    ),
                    suggestion(
                        &group.choice,
                        &names,
                        &format!("choices of {}", owner.name),
                        &format!("{} declares no [choice.*]", owner.name),
                    ),
                ));
                continue;
            };
            if choice.members.contains(&component.member) {
                diags.push(diag(
                    format!(
                        "member `{}` of {group} is both built in ({}) and provided by {}",
                        component.member, owner.schema_path, component.name
                    ),
                    "set another `member` name, or remove it from the choice's `members`".into(),
                ));
                continue;
            }
            joins.push((
                owner.name.clone(),
                group.choice.clone(),
                component.member.clone(),
                component.name.clone(),
                component.schema_path.clone(),
            ));
        }
    }
    for (owner, choice_name, member, provider, path) in joins {
        let Some(&i) = catalog.by_name.get(&owner) else {
            continue;
        };
        let Some(choice) = catalog.components[i].choices.iter_mut().find(|c| c.name == choice_name)
        else {
            continue;
        };
        if let Some(other) = choice.providers.iter().find(|p| p.member == member) {
            diags.push(
                Diagnostic::new(
                    &path,
                    Some("component.provides"),
                    format!(
                        "member `{member}` of {owner}.{choice_name} is provided by both {} and {provider}",
                        other.component
                    ),
                )
                .fix("give one of them another `member` name"),
            );
            continue;
        }
        choice.providers.push(Provider { member, component: provider });
    }
}

fn check_choice_defaults(catalog: &Catalog, diags: &mut Vec<Diagnostic>) {
    for component in &catalog.components {
        for choice in &component.choices {
            let key = format!("choice.{}", choice.name);
            let members = choice.all_members();
            if members.is_empty() {
                diags.push(
                    Diagnostic::new(
                        &component.schema_path,
                        Some(&key),
                        format!("choice `{}.{}` has no members", component.name, choice.name),
                    )
                    .fix(format!(
                        "list built-in `members`, or declare `provides = [\"{}.{}\"]` in a component",
                        component.name, choice.name
                    )),
                );
                continue;
            }
            if let Some(default) = &choice.default
                && !members.contains(&default.as_str())
            {
                let near = closest(default, members.iter().copied())
                    .map(|n| format!("did you mean \"{n}\"? "))
                    .unwrap_or_default();
                diags.push(
                    Diagnostic::new(
                        &component.schema_path,
                        Some(&format!("{key}.default")),
                        format!(
                            "default \"{default}\" of choice `{}.{}` is not one of its members",
                            component.name, choice.name
                        ),
                    )
                    .fix(format!("{near}members: {}", quoted_list(&members))),
                );
            }
        }
    }
}

fn check_selects(catalog: &Catalog, diags: &mut Vec<Diagnostic>) {
    let libraries = catalog.names_of(&[Kind::Lib, Kind::Driver]);
    for component in &catalog.components {
        for selected in &component.selects {
            let diag = |message: String| {
                Diagnostic::new(&component.schema_path, Some("component.selects"), message)
            };
            match catalog.get(selected) {
                None => diags.push(
                    diag(format!("`component.selects` names `{selected}`, which is not a component"))
                        .fix(suggestion(selected, &libraries, "libraries", "there are no libraries")),
                ),
                Some(s) if !s.kind.is_library() => diags.push(
                    diag(format!(
                        "`component.selects` names `{selected}`, which is {}; only libraries and drivers can be selected",
                        a(s.kind)
                    ))
                    .fix(format!("remove `{selected}` from `selects`")),
                ),
                Some(s) if s.name == component.name => diags.push(
                    diag(format!("`{selected}` selects itself"))
                        .fix(format!("remove `{selected}` from `selects`")),
                ),
                Some(_) => {}
            }
        }
    }
}

/// Checks a condition's names, operator and operand against the catalog.
fn check_condition(
    catalog: &Catalog,
    owner: &ComponentSchema,
    text: &str,
    raw: RawCondition,
) -> Result<Condition, (String, Option<String>)> {
    let Some(target) = catalog.get(&raw.component) else {
        let names: Vec<&str> = catalog.components.iter().map(|c| c.name.as_str()).collect();
        return Err((
            format!("there is no component `{}`", raw.component),
            Some(suggestion(&raw.component, &names, "components", "")),
        ));
    };
    if target.kind == Kind::App && owner.kind != Kind::App {
        return Err((
            format!("`{}` is an app; {} cannot depend on an app", target.name, a(owner.kind)),
            Some(
                "depend on a library, or on a choice the app provides (`lib.choice == member`)"
                    .into(),
            ),
        ));
    }
    let test = match (raw.key, raw.compare) {
        (None, _) if raw.negated => Test::Absent(raw.component),
        (None, _) => Test::Present(raw.component),
        (Some(key), compare) => {
            let (ty, what) = if let Some(option) = target.option(&key) {
                (option.ty.clone(), "option")
            } else if let Some(choice) = target.choice(&key) {
                let values = choice.all_members().into_iter().map(str::to_owned).collect();
                (OptionType::Enum { values }, "choice")
            } else {
                let keys = target.keys();
                return Err((
                    format!("{} has no option or choice `{key}`", target.name),
                    Some(suggestion(
                        &key,
                        &keys,
                        &format!("options and choices of {}", target.name),
                        &format!("{} has no options or choices", target.name),
                    )),
                ));
            };
            let (op, operand) = match compare {
                Some(compare) => compare,
                None if matches!(ty, OptionType::Bool) => {
                    (condition::Op::Eq, (!raw.negated).to_string())
                }
                None => {
                    return Err((
                        format!(
                            "`{}.{key}` is {} {what}, not a bool: it must be compared",
                            target.name,
                            a(ty.name())
                        ),
                        Some(format!("write e.g. `{}.{key} == <value>`", target.name)),
                    ));
                }
            };
            if op.is_ordering() && !matches!(ty, OptionType::Int { .. } | OptionType::Size { .. }) {
                return Err((
                    format!(
                        "`{}` compares {} {what}; only int and size options are ordered",
                        op.symbol(),
                        a(ty.name())
                    ),
                    Some("use `==` or `!=`".into()),
                ));
            }
            let value = ty.read_text(&operand).map_err(|e| {
                let (message, fix) = e.describe(&format!("{}.{key}", target.name));
                (message, fix)
            })?;
            Test::Compare { component: raw.component, key, op, value }
        }
    };
    Ok(Condition { text: text.trim().to_owned(), test })
}

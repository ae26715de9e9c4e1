//! `xtask::config` against its own fixture repository (`tests/config_fixtures/repo`): a
//! fake tree of libs/, platforms/, drivers/, apps/ and configs/ that exercises every rule
//! of docs/config.md, and a table of invalid image configs and schemas with the message
//! each must produce.

use std::path::{Path, PathBuf};

use xtask::config::{
    self, Catalog, ConfigError, Kind, Resolved, Source, Test, Value, load_resolved,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/config_fixtures")
}

fn repo() -> PathBuf {
    fixtures().join("repo")
}

fn catalog() -> Catalog {
    match config::discover(&repo()) {
        Ok(catalog) => catalog,
        Err(e) => panic!("the fixture schemas are valid, but:\n{e}"),
    }
}

fn resolve_file(name: &str) -> Resolved {
    let path = repo().join("configs").join(name);
    match config::resolve(&catalog(), &path) {
        Ok(resolved) => resolved,
        Err(e) => panic!("configs/{name} resolves, but:\n{e}"),
    }
}

fn resolve_text(text: &str) -> Result<Resolved, ConfigError> {
    config::resolve_source(&catalog(), "configs/bad.toml", text)
}

fn names(resolved: &Resolved) -> Vec<&str> {
    resolved.components().iter().map(|c| c.name.as_str()).collect()
}

const HEAD: &str = "[image]\napp = \"hello\"\nplatform = \"kvm\"\n";

/// `[image]` for hello on kvm with these libraries, then `rest`.
fn image_with(libraries: &[&str], rest: &str) -> String {
    let list: Vec<String> = libraries.iter().map(|l| format!("\"{l}\"")).collect();
    format!("{HEAD}libraries = [{}]\n{rest}", list.join(", "))
}

// ---------------------------------------------------------------------------------------
// Discovery

#[test]
fn discovers_every_schema_and_skips_directories_without_one() {
    let catalog = catalog();
    let mut found: Vec<(&str, Kind)> =
        catalog.components().iter().map(|c| (c.name.as_str(), c.kind)).collect();
    found.sort();
    assert_eq!(
        found,
        [
            ("alloc", Kind::Lib),
            ("cycle_a", Kind::Lib),
            ("cycle_b", Kind::Lib),
            ("evictor", Kind::Lib),
            ("hello", Kind::App),
            ("kvm", Kind::Platform),
            ("mlx5", Kind::Driver),
            ("mmu", Kind::Lib),
            ("pager", Kind::Lib),
            ("prefetch", Kind::Lib),
            ("redis", Kind::App),
            ("rmem", Kind::Lib),
            ("sched", Kind::Lib),
            ("sim", Kind::Platform),
            ("trace", Kind::Lib),
        ]
    );
    assert!(catalog.get("no_schema").is_none());
    let alloc = catalog.get("alloc").unwrap();
    assert_eq!(alloc.schema_path, "libs/alloc/Config.toml");
    assert_eq!(alloc.crate_name, "remora-alloc");
    // Options keep the order the schema declares them in.
    let options: Vec<&str> = alloc.options.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(options, ["heap_size", "far_small_max"]);
    assert_eq!(alloc.options[0].default, Some(Value::Size(8 << 20)));
    // A provider joins the choice group it names.
    let transport = catalog.get("rmem").unwrap().choice("transport").unwrap();
    assert_eq!(transport.all_members(), ["virtio-net", "mlx5"]);
    assert_eq!(transport.provider("mlx5"), Some("mlx5"));
    // Conditions are typed.
    let pager = catalog.get("pager").unwrap();
    assert_eq!(pager.depends[1].text, "alloc.heap_size >= 4M");
    assert!(matches!(
        &pager.depends[1].test,
        Test::Compare { component, key, value: Value::Size(v), .. }
            if component == "alloc" && key == "heap_size" && *v == 4 << 20
    ));
}

#[test]
fn discovery_reports_every_schema_error_with_its_file() {
    let err = config::discover(&fixtures().join("broken")).unwrap_err();
    let text = err.to_string();
    for expected in [
        "apps/app/Config.toml: `component.always` applies to libraries and drivers, not to an app",
        "libs/bad/Config.toml: default 2G of option `heap` is outside its own range (from 1M to 1G); change `default` or `range`",
        "libs/bad/Config.toml: unknown type `strng` in `options.mode.type`; did you mean `string`? (types: bool, int, size, enum, string)",
        "libs/twin/Config.toml: duplicate component name `good`: libs/good/Config.toml already declares it",
        "libs/bad/Config.toml: `component.provides` names \"good.policy\", but good has no choice `policy`; good declares no [choice.*]",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert_eq!(err.diagnostics().len(), 5, "{text}");
    assert!(err.diagnostics().iter().all(|d| d.file.ends_with("Config.toml")));
}

/// A minimal valid catalog plus `extra` schema files.
fn catalog_with(extra: &[(&str, &str)]) -> Result<Catalog, ConfigError> {
    let mut sources = vec![
        (
            "platforms/kvm/Config.toml".to_owned(),
            "[component]\nname = \"kvm\"\nkind = \"platform\"\ncrate = \"k\"\n".to_owned(),
        ),
        (
            "apps/hello/Config.toml".to_owned(),
            "[component]\nname = \"hello\"\nkind = \"app\"\ncrate = \"h\"\n".to_owned(),
        ),
        (
            "libs/rmem/Config.toml".to_owned(),
            "[component]\nname = \"rmem\"\nkind = \"lib\"\ncrate = \"r\"\n\
             [options.size]\ntype = \"size\"\ndefault = \"1M\"\n\
             [options.mode]\ntype = \"enum\"\nvalues = [\"a\", \"b\"]\ndefault = \"a\"\n\
             [choice.transport]\nmembers = [\"virtio-net\"]\ndefault = \"virtio-net\"\n"
                .to_owned(),
        ),
    ];
    sources.extend(extra.iter().map(|(p, t)| (p.to_string(), t.to_string())));
    Catalog::from_sources(Path::new("/repo"), sources)
}

#[test]
fn schema_errors_name_file_key_and_fix() {
    let lib =
        |body: &str| format!("[component]\nname = \"x\"\nkind = \"lib\"\ncrate = \"c\"\n{body}");
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "bad type name",
            lib("[options.a]\ntype = \"sise\"\n"),
            "libs/x/Config.toml: unknown type `sise` in `options.a.type`; did you mean `size`? (types: bool, int, size, enum, string)",
        ),
        (
            "default out of its own range",
            lib("[options.heap]\ntype = \"size\"\ndefault = \"2G\"\nrange = [\"1M\", \"1G\"]\n"),
            "default 2G of option `heap` is outside its own range (from 1M to 1G)",
        ),
        (
            "int default out of range",
            lib("[options.n]\ntype = \"int\"\ndefault = 0\nrange = [1, 9]\n"),
            "default 0 of option `n` is outside its own range (from 1 to 9)",
        ),
        (
            "default of the wrong type",
            lib("[options.f]\ntype = \"bool\"\ndefault = \"yes\"\n"),
            "wrong type for `options.f.default`: expected true or false, found string",
        ),
        (
            "enum default not a value",
            lib("[options.p]\ntype = \"enum\"\nvalues = [\"lru\", \"fifo\"]\ndefault = \"lfu\"\n"),
            "`options.p.default` = \"lfu\" is not allowed; did you mean \"lru\"? allowed values: \"lru\", \"fifo\"",
        ),
        (
            "enum without values",
            lib("[options.p]\ntype = \"enum\"\n"),
            "enum option `p` has no `values`",
        ),
        (
            "range on a string",
            lib("[options.s]\ntype = \"string\"\nrange = [1, 2]\n"),
            "`options.s.range` applies only to int and size options, not string",
        ),
        (
            "empty range",
            lib("[options.n]\ntype = \"int\"\nrange = [9, 1]\n"),
            "`options.n.range` is empty: its minimum 9 is above its maximum 1",
        ),
        (
            "bad size in a range",
            lib("[options.n]\ntype = \"size\"\nrange = [\"1X\", \"2M\"]\n"),
            "bad size \"1X\" for `options.n.range`: unknown suffix `X`",
        ),
        (
            "provides a missing choice",
            lib("provides = [\"rmem.transprt\"]\n"),
            "`component.provides` names \"rmem.transprt\", but rmem has no choice `transprt`; did you mean `transport`? (choices of rmem: transport)",
        ),
        (
            "provides for a missing component",
            lib("provides = [\"rmen.transport\"]\n"),
            "`component.provides` names \"rmen.transport\", but there is no component `rmen`; did you mean `rmem`?",
        ),
        (
            "provides a built-in member",
            lib("provides = [\"rmem.transport\"]\nmember = \"virtio-net\"\n"),
            "member `virtio-net` of rmem.transport is both built in (libs/rmem/Config.toml) and provided by x",
        ),
        (
            "unknown component key",
            lib("dependz = [\"rmem\"]\n"),
            "libs/x/Config.toml: unknown key `component.dependz`; did you mean `depends`?",
        ),
        (
            "unknown option key",
            lib("[options.a]\ntype = \"int\"\ndefualt = 1\n"),
            "unknown key `options.a.defualt`; did you mean `default`? (keys of [options.a]: type, default, range, values, help)",
        ),
        (
            "singular [option]",
            lib("[option.a]\ntype = \"int\"\n"),
            "unknown table `[option]`; did you mean `options`?",
        ),
        (
            "unknown kind",
            "[component]\nname = \"x\"\nkind = \"libb\"\ncrate = \"c\"\n".into(),
            "unknown kind `libb` in `component.kind`; did you mean `lib`? (kinds: lib, platform, driver, app)",
        ),
        (
            "kind against directory",
            "[component]\nname = \"x\"\nkind = \"app\"\ncrate = \"c\"\n".into(),
            "`component.kind` is `app`, but the schema is under libs/; set `kind = \"lib\"` or move the component to apps/",
        ),
        (
            "missing crate",
            "[component]\nname = \"x\"\n".into(),
            "missing `component.crate`; add `crate = \"<cargo package>\"` under [component], e.g. `crate = \"remora-x\"`",
        ),
        (
            "missing [component]",
            "[options.a]\ntype = \"int\"\n".into(),
            "libs/x/Config.toml: missing [component] table",
        ),
        (
            "bad component name",
            "[component]\nname = \"My-Lib\"\ncrate = \"c\"\n".into(),
            "`My-Lib` is not a valid component name; use lowercase ASCII letters, digits and `_`, starting with a letter",
        ),
        (
            "invalid TOML",
            "[component\nname = \"x\"\n".into(),
            "libs/x/Config.toml: not valid TOML: line 1, column",
        ),
        (
            "wrong type for a list",
            lib("selects = \"rmem\"\n"),
            "wrong type for `component.selects`: expected an array of strings, found string",
        ),
        (
            "selects an unknown library",
            lib("selects = [\"rmme\"]\n"),
            "`component.selects` names `rmme`, which is not a component; did you mean `rmem`?",
        ),
        (
            "selects an app",
            lib("selects = [\"hello\"]\n"),
            "`component.selects` names `hello`, which is an app; only libraries and drivers can be selected",
        ),
        (
            "choice default not a member",
            lib("[choice.c]\nmembers = [\"one\", \"two\"]\ndefault = \"three\"\n"),
            "default \"three\" of choice `x.c` is not one of its members; members: \"one\", \"two\"",
        ),
        (
            "choice without members",
            lib("[choice.c]\n"),
            "choice `x.c` has no members; list built-in `members`, or declare `provides = [\"x.c\"]` in a component",
        ),
        (
            "option and choice share a name",
            lib("[options.c]\ntype = \"bool\"\n[choice.c]\nmembers = [\"a\"]\n"),
            "`c` is both an option and a choice",
        ),
        (
            "malformed condition",
            lib("depends = [\"rmem.size.x\"]\n"),
            "bad condition \"rmem.size.x\" in `component.depends`: `rmem.size.x` has too many dots",
        ),
        (
            "condition on an unknown option",
            lib("depends = [\"rmem.sise >= 1M\"]\n"),
            "bad condition \"rmem.sise >= 1M\" in `component.depends`: rmem has no option or choice `sise`; did you mean `size`?",
        ),
        (
            "condition on an unknown component",
            lib("depends = [\"rmme\"]\n"),
            "there is no component `rmme`; did you mean `rmem`?",
        ),
        (
            "ordering an enum",
            lib("depends = [\"rmem.mode > a\"]\n"),
            "`>` compares an enum option; only int and size options are ordered; use `==` or `!=`",
        ),
        (
            "a size alone",
            lib("depends = [\"rmem.size\"]\n"),
            "`rmem.size` is a size option, not a bool: it must be compared",
        ),
        (
            "bad size in a condition",
            lib("depends = [\"rmem.size >= lots\"]\n"),
            "bad size \"lots\" for `rmem.size`",
        ),
        (
            "member not in a choice",
            lib("depends = [\"rmem.transport == tcp\"]\n"),
            "`rmem.transport` = \"tcp\" is not allowed; allowed values: \"virtio-net\"",
        ),
        (
            "depends on an app",
            lib("depends = [\"hello\"]\n"),
            "`hello` is an app; a lib cannot depend on an app",
        ),
    ];
    let mut failures = Vec::new();
    for (what, text, expected) in &cases {
        match catalog_with(&[("libs/x/Config.toml", text)]) {
            Ok(_) => failures.push(format!("{what}: accepted")),
            Err(e) => {
                let message = e.to_string();
                if !message.contains(expected) {
                    failures
                        .push(format!("{what}:\n  expected {expected:?}\n  got      {message:?}"));
                }
                if !e.diagnostics().iter().all(|d| d.file == "libs/x/Config.toml") {
                    failures.push(format!("{what}: a diagnostic names another file: {message}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn duplicate_names_name_both_files() {
    let twin = "[component]\nname = \"rmem\"\nkind = \"lib\"\ncrate = \"other\"\n";
    let err = catalog_with(&[("libs/rmem2/Config.toml", twin)]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "libs/rmem2/Config.toml: duplicate component name `rmem`: libs/rmem/Config.toml already declares it; \
         component names are unique across libs/, platforms/, drivers/ and apps/: rename one"
    );
}

// ---------------------------------------------------------------------------------------
// Invalid image configs

#[test]
fn the_documented_example_message() {
    let err = resolve_text(&format!("{HEAD}[alloc]\nheap_siz = \"16M\"\n")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "configs/bad.toml: unknown option `alloc.heap_siz`; did you mean `heap_size`? \
         (options and choices of alloc: heap_size, far_small_max, allocator)"
    );
    let d = &err.diagnostics()[0];
    assert_eq!(d.file, "configs/bad.toml");
    assert_eq!(d.key.as_deref(), Some("alloc.heap_siz"));
}

#[test]
fn invalid_image_configs_name_file_key_and_fix() {
    let cases: Vec<(&str, String, &[&str])> = vec![
        (
            "unknown table",
            format!("{HEAD}[aloc]\nheap_size = \"16M\"\n"),
            &[
                "configs/bad.toml: unknown table `[aloc]`; did you mean `[alloc]`? (tables: [image] and one per component: alloc,",
            ],
        ),
        (
            "unknown table, nothing close",
            format!("{HEAD}[zzzzzz]\n"),
            &["unknown table `[zzzzzz]`; tables: [image] and one per component:"],
        ),
        (
            "unknown image key",
            "[image]\napp = \"hello\"\nplaform = \"kvm\"\n".into(),
            &[
                "unknown key `image.plaform`; did you mean `platform`? (keys of [image]: name, app, platform, libraries)",
                "missing `image.platform`; add `platform = \"<name>\"` under [image] (platforms: kvm, sim)",
            ],
        ),
        (
            "unknown option, nothing close",
            format!("{HEAD}[mmu]\nzzz = 1\n"),
            &["unknown option `mmu.zzz`; options of mmu: huge_pages"],
        ),
        (
            "option of a component without options",
            image_with(&["trace", "sched"], "[trace]\nlevel = 1\n"),
            &["unknown option `trace.level`; trace has no options"],
        ),
        (
            "key outside any table",
            "app = \"hello\"\n[image]\nplatform = \"kvm\"\n".into(),
            &["`app` is outside any table; move it under [image]"],
        ),
        (
            "a component that is not a table",
            format!("alloc = 3\n{HEAD}"),
            &[
                "`alloc` must be a table of its options, found integer; write [alloc] and its options below it",
            ],
        ),
        (
            "wrong type: size",
            format!("{HEAD}[alloc]\nheap_size = true\n"),
            &[
                "configs/bad.toml: wrong type for `alloc.heap_size`: expected a size like 64M, found boolean",
            ],
        ),
        (
            "wrong type: int",
            format!("{HEAD}[kvm]\nserial_port = \"com1\"\n"),
            &["wrong type for `kvm.serial_port`: expected an integer, found string"],
        ),
        (
            "wrong type: bool",
            format!("{HEAD}[mmu]\nhuge_pages = 1\n"),
            &["wrong type for `mmu.huge_pages`: expected true or false, found integer"],
        ),
        (
            "wrong type: enum",
            image_with(&["sched"], "[sched]\npolicy = 2\n"),
            &[
                "wrong type for `sched.policy`: expected one of \"round_robin\", \"fifo\" (a string), found integer",
            ],
        ),
        (
            "wrong type: string",
            format!("{HEAD}[hello]\ngreeting = [\"hi\"]\n"),
            &["wrong type for `hello.greeting`: expected a string, found array"],
        ),
        (
            "wrong type: choice",
            format!("{HEAD}[alloc]\nallocator = false\n"),
            &[
                "wrong type for `alloc.allocator`: expected a member name (a string: \"buddy\", \"bump\"), found boolean",
            ],
        ),
        (
            "size out of range",
            format!("{HEAD}[alloc]\nheap_size = \"2G\"\n"),
            &[
                "configs/bad.toml: `alloc.heap_size` = 2G is out of range; use a value from 1M to 1G (inclusive)",
            ],
        ),
        (
            "int out of range",
            format!("{HEAD}[kvm]\nserial_port = 70000\n"),
            &["`kvm.serial_port` = 70000 is out of range; use a value from 0 to 65535 (inclusive)"],
        ),
        (
            "enum value not allowed",
            image_with(&["sched"], "[sched]\npolicy = \"lifo\"\n"),
            &[
                "`sched.policy` = \"lifo\" is not allowed; did you mean \"fifo\"? allowed values: \"round_robin\", \"fifo\"",
            ],
        ),
        (
            "bad size suffix",
            format!("{HEAD}[alloc]\nheap_size = \"12Q\"\n"),
            &[
                "bad size \"12Q\" for `alloc.heap_size`: unknown suffix `Q`; write a whole number of bytes with an optional K, M, G or T suffix (powers of 1024), like \"64M\"",
            ],
        ),
        (
            "bad size number",
            format!("{HEAD}[alloc]\nheap_size = \"1.5M\"\n"),
            &["bad size \"1.5M\" for `alloc.heap_size`: unknown suffix `.5M`"],
        ),
        (
            "negative size",
            format!("{HEAD}[alloc]\nheap_size = -1\n"),
            &["bad size -1 for `alloc.heap_size`: a size cannot be negative"],
        ),
        (
            "not a member of the choice",
            image_with(&["pager"], "[rmem]\ntransport = \"virtio\"\n"),
            &[
                "`rmem.transport` = \"virtio\" is not a member of this choice; did you mean \"virtio-net\"? members: \"virtio-net\", \"mlx5\"",
            ],
        ),
        (
            "depends on a missing library",
            image_with(&["prefetch"], ""),
            &[
                "configs/bad.toml: unmet dependency: `prefetch` depends on `pager` (libs/prefetch/Config.toml), but `pager` is not in this image; add \"pager\" to [image] libraries",
            ],
        ),
        (
            "depends on another platform",
            "[image]\napp = \"hello\"\nplatform = \"sim\"\n".into(),
            &[
                "unmet dependency: `mmu` depends on `kvm` (libs/mmu/Config.toml), but `kvm` is not in this image; set `platform = \"kvm\"` under [image], or remove `mmu`",
            ],
        ),
        (
            "size condition false",
            image_with(&["pager"], "[alloc]\nheap_size = \"2M\"\n"),
            &[
                "unmet dependency: `pager` depends on `alloc.heap_size >= 4M` (libs/pager/Config.toml), but `alloc.heap_size` is 2M (set in configs/bad.toml); set `alloc.heap_size` to at least 4M",
            ],
        ),
        (
            "enum, bool and int conditions false",
            image_with(&["trace", "sched"], "[kvm]\ndebug_exit = false\n"),
            &[
                "unmet dependency: `trace` depends on `sched.policy == fifo` (libs/trace/Config.toml), but `sched.policy` is \"round_robin\" (the default); set `policy = \"fifo\"` under [sched]",
                "unmet dependency: `trace` depends on `kvm.debug_exit` (libs/trace/Config.toml), but `kvm.debug_exit` is false (set in configs/bad.toml); set `debug_exit = true` under [kvm]",
                "unmet dependency: `trace` depends on `sched.time_slice_us < 5000` (libs/trace/Config.toml), but `sched.time_slice_us` is 10000 (the default); set `sched.time_slice_us` below 5000",
            ],
        ),
        (
            "condition on a missing library",
            image_with(&["trace"], ""),
            &[
                "unmet dependency: `trace` depends on `sched.policy == fifo` (libs/trace/Config.toml), but `sched` is not in this image; add \"sched\" to [image] libraries",
            ],
        ),
        (
            "a conflicting library",
            image_with(
                &["trace", "sched", "prefetch", "pager"],
                "[sched]\npolicy = \"fifo\"\ntime_slice_us = 1000\n",
            ),
            &[
                "unmet dependency: `trace` depends on `!prefetch` (libs/trace/Config.toml), but `prefetch` is in the image (chosen in image.libraries); `trace` and `prefetch` cannot be in one image: remove one of them",
            ],
        ),
        (
            "two members of one choice",
            image_with(&["pager", "mlx5"], "[rmem]\ntransport = \"virtio-net\"\n"),
            &[
                "configs/bad.toml: two members of choice `rmem.transport`: \"virtio-net\" (set as `rmem.transport` in configs/bad.toml) and \"mlx5\" (mlx5 is in the image: chosen in image.libraries); exactly one member may be chosen",
            ],
        ),
        (
            "dependency cycle",
            image_with(&["cycle_b"], ""),
            &[
                "libs/cycle_b/Config.toml: dependency cycle: cycle_b -> cycle_a -> cycle_b (cycle_b selects cycle_a in libs/cycle_b/Config.toml; cycle_a depends on cycle_b in libs/cycle_a/Config.toml); no init order exists",
            ],
        ),
        (
            "missing app",
            "[image]\nplatform = \"kvm\"\n".into(),
            &[
                "configs/bad.toml: missing `image.app`; add `app = \"<name>\"` under [image] (apps: hello, redis)",
            ],
        ),
        (
            "unknown app",
            "[image]\napp = \"helo\"\nplatform = \"kvm\"\n".into(),
            &[
                "configs/bad.toml: unknown app `helo` in `image.app`; did you mean `hello`? (apps: hello, redis)",
            ],
        ),
        (
            "unknown platform",
            "[image]\napp = \"hello\"\nplatform = \"kvn\"\n".into(),
            &[
                "unknown platform `kvn` in `image.platform`; did you mean `kvm`? (platforms: kvm, sim)",
            ],
        ),
        (
            "an app that is a lib",
            "[image]\napp = \"alloc\"\nplatform = \"kvm\"\n".into(),
            &["`image.app` names `alloc`, which is a lib, not an app; apps: hello, redis"],
        ),
        (
            "a platform that is an app",
            "[image]\napp = \"hello\"\nplatform = \"redis\"\n".into(),
            &[
                "`image.platform` names `redis`, which is an app, not a platform; platforms: kvm, sim",
            ],
        ),
        (
            "unknown library",
            image_with(&["pagr"], ""),
            &[
                "unknown library `pagr` in `image.libraries`; did you mean `pager`? (libraries: alloc,",
            ],
        ),
        (
            "a platform among libraries",
            image_with(&["kvm"], ""),
            &[
                "`image.libraries` names `kvm`, which is a platform, not a library; set it as `image.platform` instead",
            ],
        ),
        (
            "libraries not a list",
            format!("{HEAD}libraries = \"pager\"\n"),
            &["wrong type for `image.libraries`: expected an array of strings, found string"],
        ),
        (
            "options of a library not in the image",
            format!("{HEAD}[pager]\nlocal_memory = \"1G\"\n"),
            &[
                "configs/bad.toml: [pager] sets options of `pager`, which is not in this image; add \"pager\" to [image] libraries, or remove [pager]",
            ],
        ),
        (
            "options of another app",
            format!("{HEAD}[redis]\nport = 1\n"),
            &[
                "[redis] sets options of app `redis`, but this image's app is `hello`; remove [redis], or set `image.app = \"redis\"`",
            ],
        ),
        (
            "a member provided by another app",
            image_with(&["pager", "prefetch"], "[prefetch]\npolicy = \"redis\"\n"),
            &[
                "`prefetch.policy` = \"redis\" is provided by app `redis`, but this image's app is `hello`; choose another member of prefetch.policy",
            ],
        ),
        (
            "bad image name",
            format!("{HEAD}name = \"my image\"\n"),
            &[
                "`image.name` \"my image\" cannot name an image file; use ASCII letters, digits, `-` and `_`",
            ],
        ),
        (
            "invalid TOML",
            format!("{HEAD}[alloc\n"),
            &["configs/bad.toml: not valid TOML: line 4, column"],
        ),
        (
            "missing [image]",
            "[alloc]\nheap_size = \"16M\"\n".into(),
            &[
                "configs/bad.toml: missing [image] table; add [image] with `app = \"...\"` and `platform = \"...\"`",
            ],
        ),
    ];
    let mut failures = Vec::new();
    for (what, text, expected) in &cases {
        match resolve_text(text) {
            Ok(_) => failures.push(format!("{what}: accepted")),
            Err(e) => {
                let message = e.to_string();
                for expected in expected.iter() {
                    if !message.contains(expected) {
                        failures.push(format!(
                            "{what}:\n  expected {expected:?}\n  got      {message:?}"
                        ));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_error_is_reported_at_once() {
    let text = "[image]\napp = \"helo\"\nplatform = \"kvm\"\nlibraries = [\"pagr\"]\n\
                [alloc]\nheap_size = \"2G\"\nfar_small_max = true\n[sched]\npolicy = \"x\"\n";
    let err = resolve_text(text).unwrap_err();
    let keys: Vec<Option<&str>> = err.diagnostics().iter().map(|d| d.key.as_deref()).collect();
    for key in [
        "image.app",
        "image.libraries",
        "alloc.heap_size",
        "alloc.far_small_max",
        "sched.policy",
        "sched",
    ] {
        assert!(keys.contains(&Some(key)), "no diagnostic for {key}: {err}");
    }
    assert_eq!(err.to_string().lines().count(), err.diagnostics().len());
}

#[test]
fn options_without_default_must_be_set() {
    let lib = "[component]\nname = \"net\"\nkind = \"lib\"\ncrate = \"n\"\n\
               [options.mac]\ntype = \"string\"\n\
               [choice.device]\nmembers = [\"virtio\", \"e1000\"]\n";
    let catalog = catalog_with(&[("libs/net/Config.toml", lib)]).unwrap();
    let head = "[image]\napp = \"hello\"\nplatform = \"kvm\"\nlibraries = [\"net\"]\n";
    let err = config::resolve_source(&catalog, "configs/n.toml", head).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("configs/n.toml: option `net.mac` has no default and is not set; add `mac = <string>` under [net] (a string)"), "{text}");
    assert!(text.contains("configs/n.toml: choice `net.device` has no default and is not set; add `device = \"<member>\"` under [net] (members: \"virtio\", \"e1000\")"), "{text}");
    let ok = format!("{head}[net]\nmac = \"52:54:00:12:34:56\"\ndevice = \"e1000\"\n");
    let resolved = config::resolve_source(&catalog, "configs/n.toml", &ok).unwrap();
    assert_eq!(resolved.choice("net", "device"), Some("e1000"));
}

#[test]
fn a_missing_config_file_is_reported() {
    let err = config::resolve(&catalog(), Path::new("configs/nope.toml")).unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("configs/nope.toml: cannot read the image config"), "{text}");
}

// ---------------------------------------------------------------------------------------
// Resolution

#[test]
fn defaults_fill_in_everything_left_out() {
    let hello = resolve_file("hello.toml");
    assert_eq!(hello.image_name(), "hello");
    assert_eq!(hello.app(), "hello");
    assert_eq!(hello.platform(), "kvm");
    assert_eq!(hello.config_path(), "configs/hello.toml");
    assert_eq!(names(&hello), ["kvm", "mmu", "alloc", "hello"]);
    assert_eq!(hello.option("alloc", "heap_size"), Some(&Value::Size(8 << 20)));
    assert_eq!(hello.option("kvm", "serial_port"), Some(&Value::Int(0x3f8)));
    assert_eq!(hello.option("hello", "greeting"), Some(&Value::String("hello from remora".into())));
    assert_eq!(hello.choice("alloc", "allocator"), Some("buddy"));
    for c in hello.components() {
        assert!(c.options.iter().all(|o| o.source == Source::Default));
        assert!(c.choices.iter().all(|o| o.source == Source::Default));
    }
    let reasons: Vec<&str> = hello.components().iter().map(|c| c.reason.as_str()).collect();
    assert_eq!(reasons, ["platform", "selected by alloc", "always (platform kvm)", "app"]);
    assert_eq!(hello.notes(), ["mmu selected by alloc"]);
}

#[test]
fn selects_are_transitive_and_noted() {
    let redis = resolve_file("redis.toml");
    let reason = |name: &str| redis.component(name).map(|c| c.reason.clone());
    assert_eq!(reason("pager").as_deref(), Some("selected by redis"));
    assert_eq!(reason("prefetch").as_deref(), Some("selected by redis"));
    assert_eq!(reason("sched").as_deref(), Some("selected by pager"));
    assert_eq!(reason("rmem").as_deref(), Some("selected by pager"));
    for note in ["pager selected by redis", "sched selected by pager", "rmem selected by pager"] {
        assert!(redis.notes().iter().any(|n| n == note), "{:?}", redis.notes());
    }
}

#[test]
fn a_component_default_of_a_choice_joins_the_image() {
    let redis = resolve_file("redis.toml");
    let evictor = redis.component("evictor").expect("evictor pulled in");
    assert_eq!(evictor.reason, "choice default of pager.eviction");
    let eviction = redis.component("pager").unwrap().choice("eviction").unwrap();
    assert_eq!(eviction.value, "evictor");
    assert_eq!(eviction.member_component.as_deref(), Some("evictor"));
    assert_eq!(eviction.source, Source::Default);
    assert!(
        redis.notes().contains(&"evictor pulled in as the default of pager.eviction".to_owned())
    );

    // Choosing the built-in member instead leaves the component out.
    let text = image_with(&["pager"], "[pager]\neviction = \"none\"\n");
    let resolved = resolve_text(&text).unwrap();
    assert!(resolved.component("evictor").is_none());
    assert_eq!(resolved.choice("pager", "eviction"), Some("none"));
}

#[test]
fn choosing_a_component_member_pulls_it_in() {
    let rdma = resolve_file("rdma.toml");
    assert_eq!(rdma.image_name(), "rdma", "the name defaults to the file stem");
    let mlx5 = rdma.component("mlx5").expect("mlx5 chosen");
    assert_eq!(mlx5.reason, "chosen as rmem.transport");
    assert_eq!(mlx5.kind, Kind::Driver);
    assert_eq!(mlx5.feature, "lib-mlx5");
    assert_eq!(rdma.option("mlx5", "queue_depth"), Some(&Value::Int(128)));
    let transport = rdma.component("rmem").unwrap().choice("transport").unwrap();
    assert_eq!(transport.value, "mlx5");
    assert_eq!(transport.member_component.as_deref(), Some("mlx5"));
    assert_eq!(transport.source, Source::Config("configs/rdma.toml".into()));

    // The app's own member of a choice: set in the config, provided by the app.
    let redis = resolve_file("redis.toml");
    let policy = redis.component("prefetch").unwrap().choice("policy").unwrap();
    assert_eq!(policy.value, "redis");
    assert_eq!(policy.member_component.as_deref(), Some("redis"));
}

#[test]
fn a_member_component_in_the_image_settles_its_choice() {
    let resolved = resolve_text(&image_with(&["pager", "mlx5"], "")).unwrap();
    let transport = resolved.component("rmem").unwrap().choice("transport").unwrap();
    assert_eq!(transport.value, "mlx5");
    assert_eq!(transport.source, Source::Config("configs/bad.toml".into()));
    assert_eq!(resolved.component("mlx5").unwrap().reason, "chosen in image.libraries");
}

#[test]
fn built_in_choice_defaults_apply() {
    let rdma = resolve_file("redis.toml");
    let transport = rdma.component("rmem").unwrap().choice("transport").unwrap();
    assert_eq!(transport.value, "virtio-net");
    assert_eq!(transport.member_component, None);
    assert_eq!(transport.source, Source::Default);
    assert_eq!(rdma.choice("alloc", "allocator"), Some("buddy"));
}

#[test]
fn init_order_respects_depends_and_selects() {
    let catalog = catalog();
    for file in ["hello.toml", "redis.toml", "rdma.toml"] {
        let resolved = resolve_file(file);
        let order = names(&resolved);
        let position = |name: &str| order.iter().position(|n| *n == name);
        for (i, c) in resolved.components().iter().enumerate() {
            let schema = catalog.get(&c.name).unwrap();
            let before = schema
                .depends
                .iter()
                .filter(|d| d.needs_component())
                .map(|d| d.component().to_owned())
                .chain(schema.selects.iter().cloned());
            for b in before {
                let at = position(&b).unwrap_or_else(|| panic!("{file}: {b} missing"));
                assert!(at < i, "{file}: {} before {b} in {order:?}", c.name);
            }
        }
        assert_eq!(order.last(), Some(&resolved.app()), "{file}: app last");
    }
    assert_eq!(
        names(&resolve_file("redis.toml")),
        // evictor joins pager.eviction: it comes right after pager.
        ["kvm", "mmu", "alloc", "sched", "rmem", "pager", "evictor", "prefetch", "redis"]
    );
}

#[test]
fn different_configs_give_different_features_and_values() {
    let hello = resolve_file("hello.toml");
    let redis = resolve_file("redis.toml");
    assert_eq!(hello.cargo_features(), ["platform-kvm", "lib-mmu", "lib-alloc", "app-hello"]);
    assert_eq!(
        redis.cargo_features(),
        [
            "platform-kvm",
            "lib-mmu",
            "lib-alloc",
            "lib-sched",
            "lib-rmem",
            "lib-pager",
            "lib-evictor",
            "lib-prefetch",
            "app-redis"
        ]
    );
    assert_eq!(hello.option("alloc", "heap_size"), Some(&Value::Size(8 << 20)));
    assert_eq!(redis.option("alloc", "heap_size"), Some(&Value::Size(16 << 20)));
    let heap = redis.component("alloc").unwrap().option("heap_size").unwrap();
    assert_eq!(heap.source, Source::Config("configs/redis.toml".into()));
    assert_eq!(redis.option("redis", "port"), Some(&Value::Int(7379)));
    assert!(hello.option("redis", "port").is_none());
}

#[test]
fn a_config_is_found_relative_to_the_repository() {
    let catalog = catalog();
    let relative = config::resolve(&catalog, Path::new("configs/hello.toml")).unwrap();
    let absolute = config::resolve(&catalog, &repo().join("configs/hello.toml")).unwrap();
    assert_eq!(relative, absolute);
    assert_eq!(relative.config_path(), "configs/hello.toml");
}

// ---------------------------------------------------------------------------------------
// The resolved file and the report

#[test]
fn the_resolved_file_has_the_documented_layout() {
    let text = resolve_file("redis.toml").to_toml();
    let doc: toml::Table = text.parse().expect("the resolved file is TOML");
    let image = doc["image"].as_table().unwrap();
    assert_eq!(image["name"].as_str(), Some("redis"));
    assert_eq!(image["app"].as_str(), Some("redis"));
    assert_eq!(image["platform"].as_str(), Some("kvm"));
    assert_eq!(image["config"].as_str(), Some("configs/redis.toml"));
    let components = doc["component"].as_array().unwrap();
    let alloc = components.iter().find(|c| c["name"].as_str() == Some("alloc")).unwrap();
    assert_eq!(alloc["kind"].as_str(), Some("lib"));
    assert_eq!(alloc["crate"].as_str(), Some("remora-alloc"));
    assert_eq!(alloc["feature"].as_str(), Some("lib-alloc"));
    assert_eq!(alloc["reason"].as_str(), Some("always (platform kvm)"));
    let heap = &doc["option"]["alloc"]["heap_size"];
    assert_eq!(heap["type"].as_str(), Some("size"));
    assert_eq!(heap["value"].as_integer(), Some(16 << 20));
    assert_eq!(heap["source"].as_str(), Some("configs/redis.toml"));
    assert_eq!(doc["option"]["sched"]["policy"]["type"].as_str(), Some("enum"));
    assert_eq!(doc["option"]["sched"]["policy"]["value"].as_str(), Some("round_robin"));
    assert_eq!(doc["option"]["kvm"]["debug_exit"]["value"].as_bool(), Some(true));
    let eviction = &doc["choice"]["pager"]["eviction"];
    assert_eq!(eviction["value"].as_str(), Some("evictor"));
    assert_eq!(eviction["member_component"].as_str(), Some("evictor"));
    assert_eq!(eviction["source"].as_str(), Some("default"));
    let transport = &doc["choice"]["rmem"]["transport"];
    assert!(transport.get("member_component").is_none());
    assert!(text.contains(
        "[option.alloc.heap_size]\ntype = \"size\"\nvalue = 16777216\nsource = \"configs/redis.toml\"\n"
    ));
    assert!(text.contains(
        "[[component]]\nname = \"alloc\"\nkind = \"lib\"\ncrate = \"remora-alloc\"\nfeature = \"lib-alloc\"\nreason = \"always (platform kvm)\"\n"
    ));
}

#[test]
fn the_resolved_file_round_trips() {
    for file in ["hello.toml", "redis.toml", "rdma.toml"] {
        let resolved = resolve_file(file);
        let text = resolved.to_toml();
        let loaded = load_resolved(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(loaded, resolved, "{file}");
        assert_eq!(loaded.to_toml(), text, "{file}");
    }
    let implied =
        resolve_text(&image_with(&["pager"], "[hello]\ngreeting = \"say \\\"hi\\\"\"\n")).unwrap();
    assert_eq!(load_resolved(&implied.to_toml()).unwrap(), implied);
}

#[test]
fn a_damaged_resolved_file_is_refused() {
    let text = resolve_file("hello.toml").to_toml();
    let damaged = text.replace("value = 8388608", "value = \"8M\"");
    let err = load_resolved(&damaged).unwrap_err().to_string();
    assert!(err.contains("`option.alloc.heap_size.value` is missing or not a size"), "{err}");
    assert!(load_resolved("[image]\nname = \"x\"\n").is_err());
}

#[test]
fn the_report_shows_reasons_values_and_sources() {
    let tree = resolve_file("redis.toml").render_tree();
    for expected in [
        "image redis (from configs/redis.toml): app redis, platform kvm",
        "alloc (lib remora-alloc, feature lib-alloc): always (platform kvm)",
        "sched (lib remora-sched, feature lib-sched): selected by pager",
        "evictor (lib remora-evictor, feature lib-evictor): choice default of pager.eviction",
        "└─ redis (app remora-app-redis, feature app-redis): app",
        "alloc.heap_size = 16M (16777216 bytes)  [size, configs/redis.toml]",
        "alloc.far_small_max = 2K (2048 bytes)  [size, default]",
        "kvm.serial_port = 1016  [int, default]",
        "sched.policy = \"round_robin\"  [enum, default]",
        "pager.eviction = \"evictor\" (component evictor)  [choice, default]",
        "prefetch.policy = \"redis\" (component redis)  [choice, configs/redis.toml]",
        "rmem.transport = \"virtio-net\"  [choice, default]",
        "notes:\n",
        "  - sched selected by pager\n",
    ] {
        assert!(tree.contains(expected), "missing {expected:?} in:\n{tree}");
    }
    // Every component and every option appears.
    let redis = resolve_file("redis.toml");
    for c in redis.components() {
        assert!(tree.contains(&format!(" {} (", c.name)), "{}", c.name);
        for o in &c.options {
            assert!(tree.contains(&format!("{}.{} = ", c.name, o.name)));
        }
    }
}

#[test]
fn implied_choices_are_noted_and_reported() {
    let resolved = resolve_text(&image_with(&["rmem"], "")).unwrap();
    assert!(resolved.component("mlx5").is_none());
    // mlx5 pulled in by something other than the config: a catalog where pager selects it.
    let lib = "[component]\nname = \"fast\"\nkind = \"lib\"\ncrate = \"f\"\nselects = [\"rdma\"]\n";
    let driver = "[component]\nname = \"rdma\"\nkind = \"driver\"\ncrate = \"d\"\nprovides = [\"rmem.transport\"]\n";
    let catalog =
        catalog_with(&[("libs/fast/Config.toml", lib), ("drivers/rdma/Config.toml", driver)])
            .unwrap();
    let head = "[image]\napp = \"hello\"\nplatform = \"kvm\"\nlibraries = [\"rmem\", \"fast\"]\n";
    let resolved = config::resolve_source(&catalog, "configs/f.toml", head).unwrap();
    let transport = resolved.component("rmem").unwrap().choice("transport").unwrap();
    assert_eq!(transport.value, "rdma");
    assert_eq!(transport.source, Source::Implied("rdma".into()));
    assert!(
        resolved
            .notes()
            .contains(&"rmem.transport = \"rdma\" because rdma is in the image".to_owned())
    );
    assert!(
        resolved
            .render_tree()
            .contains("rmem.transport = \"rdma\" (component rdma)  [choice, implied by rdma]")
    );
    assert_eq!(load_resolved(&resolved.to_toml()).unwrap(), resolved);
}

#[test]
fn a_chosen_member_comes_after_its_choice_and_before_its_users() {
    // rdma.toml chooses the mlx5 driver as rmem's transport; pager uses rmem.
    let resolved = resolve_file("rdma.toml");
    let order = names(&resolved);
    let at = |name: &str| order.iter().position(|n| *n == name).unwrap();
    assert!(at("rmem") < at("mlx5"), "{order:?}");
    if order.contains(&"pager") {
        assert!(at("mlx5") < at("pager"), "{order:?}");
    }
}

#[test]
fn an_app_offers_its_member_without_choosing_it() {
    // The fixture's redis app provides prefetch.policy = "redis"; a config that does not
    // choose it gets the default.
    let catalog = catalog();
    let text = "[image]\nname = \"r\"\napp = \"redis\"\nplatform = \"kvm\"\n";
    let resolved = xtask::config::resolve_source(&catalog, "configs/r.toml", text).unwrap();
    let policy = resolved.component("prefetch").unwrap().choice("policy").unwrap();
    assert_ne!(
        policy.value, "redis",
        "the app's member was chosen just because the app is in the image"
    );
}

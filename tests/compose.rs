//! Image composition: configurations select what goes into an image, and bad ones stop
//! the build with an error that says what to fix.

mod common;

use std::path::{Path, PathBuf};

use object::{Object, ObjectSymbol};
use xtask::image;

/// Names of every symbol in an ELF's symbol table (mangled).
fn symbols(elf: &Path) -> Vec<String> {
    let data = std::fs::read(elf).expect("read the image");
    let file = object::File::parse(&*data).expect("parse the image as ELF");
    file.symbols().filter_map(|s| s.name().ok().map(str::to_string)).collect()
}

fn has_symbol_of(symbols: &[String], crate_name: &str) -> bool {
    symbols.iter().any(|s| s.contains(crate_name))
}

/// Writes a config under target/test-configs and returns its path.
fn scratch_config(name: &str, text: &str) -> PathBuf {
    let dir = image::repo_root().join("target").join("test-configs");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn two_configs_make_two_images_with_only_their_own_components() {
    let hello = common::image("configs/hello.toml");
    let ktest = common::image("configs/ktest.toml");
    assert_ne!(std::fs::read(&hello).unwrap(), std::fs::read(&ktest).unwrap());
    let hello_symbols = symbols(&hello);
    let ktest_symbols = symbols(&ktest);
    assert!(has_symbol_of(&hello_symbols, "app_hello"));
    assert!(
        !has_symbol_of(&hello_symbols, "app_ktest"),
        "the unselected ktest app is in hello.elf"
    );
    assert!(has_symbol_of(&ktest_symbols, "app_ktest"));
    assert!(
        !has_symbol_of(&ktest_symbols, "app_hello"),
        "the unselected hello app is in ktest.elf"
    );
    // The resolved configuration is written next to the image.
    let resolved = std::fs::read_to_string(hello.with_extension("config.toml")).unwrap();
    assert!(resolved.contains("name = \"hello\""));
}

#[test]
fn a_misspelled_key_stops_the_build_with_file_key_and_suggestion() {
    let path = scratch_config(
        "misspelled",
        "[image]\nname = \"misspelled\"\napp = \"hello\"\nplatform = \"kvm\"\n\n[kvm]\nlog_levle = \"debug\"\n",
    );
    let _ = std::fs::remove_file(image::images_dir().join("misspelled.elf"));
    let err = image::build(&path, true).expect_err("a misspelled key must fail").to_string();
    assert!(err.contains("target/test-configs/misspelled.toml"), "no file in: {err}");
    assert!(err.contains("kvm.log_levle"), "no key in: {err}");
    assert!(err.contains("did you mean `log_level`"), "no suggestion in: {err}");
    assert!(!image::images_dir().join("misspelled.elf").exists(), "an image was built anyway");
}

#[test]
fn an_out_of_range_value_names_the_range() {
    let path = scratch_config(
        "range",
        "[image]\nname = \"range\"\napp = \"hello\"\nplatform = \"kvm\"\n\n[kvm]\nguest_memory = \"16M\"\n",
    );
    let err = image::build(&path, true).expect_err("16M is below the range").to_string();
    assert!(err.contains("kvm.guest_memory"), "{err}");
    assert!(err.contains("64M"), "the range is not named: {err}");
}

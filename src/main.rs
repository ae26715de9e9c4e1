//! The Remora image: the kernel entry that the platform calls once the machine is up. It
//! runs the selected libraries' initialisation, then the application, and turns the
//! application's result into the image's exit status.
//!
//! On the host this crate builds to a small program that says how to build an image, so
//! that workspace-wide host commands (clippy, tests) work.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod kernel;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "remora is a kernel image: build one with `cargo xtask build --config configs/hello.toml`"
    );
    std::process::exit(2);
}

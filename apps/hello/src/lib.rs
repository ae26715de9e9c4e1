//! `hello`: boots, greets, and exits with success. The smallest Remora application, and
//! the first thing to try on a new host.

#![no_std]

use remora_kvm::{BootInfo, ExitStatus};

pub fn main(boot: &'static BootInfo) -> ExitStatus {
    let name = boot.cmdline.get("name").unwrap_or("world");
    remora_kvm::println!("Hello, {name}! Remora is up.");
    ExitStatus::Success
}

//! The image's kernel side: entry from the platform, panic handling, the call into the
//! application.

use core::fmt::Write;

use remora_kvm::{BootInfo, ExitStatus, console, exit};

/// Called by the platform once the machine is up.
#[unsafe(no_mangle)]
fn remora_image_main(boot: &'static BootInfo) -> ! {
    let status = crate::kernel::run_app(boot);
    exit(status)
}

fn run_app(boot: &'static BootInfo) -> ExitStatus {
    app_hello::main(boot)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let mut out = console::emergency_writer();
    let _ = writeln!(out, "\n!!! panic: {}", info.message());
    if let Some(location) = info.location() {
        let _ = writeln!(out, "    at {}:{}:{}", location.file(), location.line(), location.column());
    }
    let (rip, rbp): (u64, u64);
    // SAFETY: reads the instruction and frame pointers, nothing else.
    unsafe {
        core::arch::asm!("lea {}, [rip]", "mov {}, rbp", out(reg) rip, out(reg) rbp);
    }
    let _ = remora_kvm::traps::write_backtrace(&mut out, rip, rbp);
    exit(ExitStatus::Panic)
}

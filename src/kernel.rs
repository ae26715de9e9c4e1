//! The image's kernel side: entry from the platform, component init, the call into the
//! application, panic handling.

use core::fmt::Write;

use remora_kvm::{BootInfo, ExitStatus, console, exit};

#[cfg(not(feature = "platform-kvm"))]
compile_error!("an image needs a platform: build it with `cargo xtask build`");

/// Called by the platform once the machine is up.
#[unsafe(no_mangle)]
fn remora_image_main(boot: &'static BootInfo) -> ! {
    if boot.cmdline.get("loglevel").is_none()
        && let Ok(level) = crate::config::kvm::LOG_LEVEL.parse::<log::LevelFilter>()
    {
        log::set_max_level(level);
    }
    log::info!("image {}: components {:?}", crate::config::IMAGE_NAME, crate::config::COMPONENTS);
    crate::config::init_components(boot);
    #[cfg(feature = "lib-pager")]
    crate::glue::pager::start_app();
    exit(run_app(boot))
}

fn run_app(boot: &'static BootInfo) -> ExitStatus {
    #[cfg(feature = "app-hello")]
    return app_hello::main(boot);
    #[cfg(feature = "app-ktest")]
    return app_ktest::main(boot);
    #[cfg(feature = "app-linktest")]
    return app_linktest::main(boot);
    #[cfg(feature = "app-membench")]
    return app_membench::main(
        boot,
        app_membench::Defaults {
            working_set: crate::config::membench::WORKING_SET,
            local_memory: crate::config::pager::LOCAL_MEMORY,
            ops: crate::config::membench::OPS as u64,
            pattern: crate::config::membench::PATTERN,
            mode: crate::config::membench::MODE,
        },
    );
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let mut out = console::emergency_writer();
    let _ = writeln!(out, "\n!!! panic: {}", info.message());
    if let Some(location) = info.location() {
        let _ =
            writeln!(out, "    at {}:{}:{}", location.file(), location.line(), location.column());
    }
    #[cfg(feature = "lib-alloc")]
    if let Some(report) = remora_alloc::HEAP.kernel().last_failure() {
        let _ = writeln!(out, "    {report}");
    }
    let (rip, rbp): (u64, u64);
    // SAFETY: reads the instruction and frame pointers, nothing else.
    unsafe {
        core::arch::asm!("lea {}, [rip]", "mov {}, rbp", out(reg) rip, out(reg) rbp);
    }
    let _ = remora_kvm::traps::write_backtrace(&mut out, rip, rbp);
    exit(ExitStatus::Panic)
}

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
    #[cfg(feature = "app-redis")]
    return app_redis::main_with_observer(
        boot,
        app_redis::ServerConfig {
            port: crate::config::redis::PORT as u16,
            maxclients: crate::config::redis::MAXCLIENTS as usize,
            limits: app_redis::Limits {
                max_bulk: crate::config::redis::MAX_BULK,
                ..app_redis::Limits::default()
            },
            list_node_bytes: crate::config::redis::LIST_NODE_BYTES,
            remora_info: Some(remora_info),
            ..app_redis::ServerConfig::default()
        },
        redis_observer(),
    );
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

/// The server's observer: Redis's own prefetch policy when the configuration chooses it.
#[cfg(feature = "app-redis")]
fn redis_observer() -> &'static mut dyn app_redis::Observer {
    #[cfg(remora_prefetch_policy = "redis")]
    return alloc::boxed::Box::leak(alloc::boxed::Box::new(app_redis::prefetch::RedisPrefetcher));
    #[cfg(not(remora_prefetch_policy = "redis"))]
    return alloc::boxed::Box::leak(alloc::boxed::Box::new(app_redis::NoObserver));
}

/// The `# Remora` section of the Redis app's INFO: the pager's and the prefetcher's
/// counters, and the network's.
#[cfg(feature = "app-redis")]
fn remora_info(out: &mut alloc::string::String) {
    use core::fmt::Write as _;
    #[cfg(feature = "lib-pager")]
    if let Some(s) = remora_pager::observe::current_stats() {
        let mut line = |name: &str, value: u64| {
            let _ = write!(out, "{name}:{value}\r\n");
        };
        line("pager_faults", s.faults());
        line("pager_faults_zero_fill", s.faults_zero_fill);
        line("pager_faults_remote", s.faults_remote);
        line("pager_faults_in_flight", s.faults_in_flight);
        line("pager_faults_writing_back", s.faults_writing_back);
        line("pager_remote_reads", s.remote_reads);
        line("pager_remote_writes", s.remote_writes);
        line("pager_bytes_read", s.bytes_read);
        line("pager_bytes_written", s.bytes_written);
        line("pager_evicted_clean", s.evicted_clean);
        line("pager_evicted_dirty", s.evicted_dirty);
        line("pager_direct_reclaims", s.direct_reclaims);
        line("pager_fault_p50_us", s.fault_latency.percentile(50.0) / 1000);
        line("pager_fault_p99_us", s.fault_latency.percentile(99.0) / 1000);
        line("prefetch_issued", s.prefetch_issued);
        line("prefetch_hits", s.prefetch_hits);
        line("prefetch_waste", s.prefetch_waste);
        line("prefetch_faults_avoided", s.faults_avoided);
        line("prefetch_hinted", s.prefetch_hinted);
    }
    #[cfg(feature = "lib-prefetch")]
    {
        let _ = write!(out, "prefetch_policy:{}\r\n", crate::config::PREFETCH_POLICY);
    }
    #[cfg(remora_prefetch_policy = "redis")]
    {
        let p = app_redis::prefetch::stats();
        let _ = write!(
            out,
            "redis_prefetch_strings:{}\r\nredis_prefetch_list_ranges:{}\r\nredis_prefetch_reads:{}\r\n",
            p.strings, p.list_ranges, p.reads_issued
        );
    }
    if let Some((net, _)) = remora_net::stats() {
        let _ = write!(
            out,
            "net_accepted:{}\r\nnet_frames_in:{}\r\nnet_frames_out:{}\r\nnet_frames_dropped:{}\r\n\
             net_peer_closed:{}\r\nnet_resets:{}\r\nnet_write_refused:{}\r\n",
            net.accepted,
            net.frames_in,
            net.frames_out,
            net.frames_dropped,
            net.peer_closed,
            net.resets,
            net.write_refused
        );
    }
}

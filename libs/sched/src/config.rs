//! Scheduler tunables, passed in by the image's glue at init.
//!
//! Owns: the values and their defaults.
//! Must never: read configuration itself (no env, no files); the image's `build.rs`
//! turns `libs/sched/Config.toml` options into constants and the glue builds this struct.

/// Tunables of the scheduler. Build it with [`SchedConfig::new`] (or `Default`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchedConfig {
    /// How long a thread runs before the timer preempts it in favour of another runnable
    /// thread of the same priority (Config.toml `sched.time_slice`, in microseconds there).
    pub time_slice_ns: u64,
    /// Stack size of threads spawned without an explicit size (Config.toml
    /// `sched.stack_size`).
    pub default_stack_size: usize,
    /// Anti-starvation limit: a background thread that has been runnable this long without
    /// running is served ahead of normal threads for one time slice.
    /// [`SchedConfig::new`] sets it to [`BACKGROUND_MAX_WAIT_SLICES`] time slices.
    pub background_max_wait_ns: u64,
}

/// Default anti-starvation limit for background threads, in time slices.
pub const BACKGROUND_MAX_WAIT_SLICES: u64 = 20;

impl SchedConfig {
    /// A configuration with the given time slice and default stack size; the background
    /// anti-starvation limit is [`BACKGROUND_MAX_WAIT_SLICES`] time slices.
    pub const fn new(time_slice_ns: u64, default_stack_size: usize) -> Self {
        Self {
            time_slice_ns,
            default_stack_size,
            background_max_wait_ns: time_slice_ns.saturating_mul(BACKGROUND_MAX_WAIT_SLICES),
        }
    }

    /// Builds the configuration from Config.toml units (`time_slice` in microseconds).
    pub const fn from_options(time_slice_us: u64, stack_size: usize) -> Self {
        Self::new(time_slice_us.saturating_mul(1000), stack_size)
    }
}

impl Default for SchedConfig {
    /// The Config.toml defaults: 10 ms slices, 64 KiB stacks.
    fn default() -> Self {
        Self::from_options(10_000, 64 * 1024)
    }
}

//! Prefetching: the policy chosen in the configuration (`prefetch.policy`, with
//! `prefetch.max_window`), which the pager's glue installs when it builds the pager, and
//! the route of the application's hints ([`remora_prefetch::hint`]) to the pager.
//!
//! This runs before the pager exists (the pager selects prefetch, so prefetch comes first
//! in init order): nothing here may need the pager at init. A hint made before the pager
//! is up finds no pager and reads nothing.

use alloc::boxed::Box;

use remora_kvm::BootInfo;
use remora_prefetch::{Majority, NoPrefetch, PrefetchPolicy, Sequential};

use crate::config;

/// The prefetch policy chosen in the configuration.
pub fn policy() -> Box<dyn PrefetchPolicy> {
    let max_window = config::prefetch::MAX_WINDOW as u32;
    match config::PREFETCH_POLICY {
        "none" => Box::new(NoPrefetch),
        "sequential" => Box::new(Sequential::new(max_window)),
        "majority" => Box::new(Majority::new(max_window)),
        // A policy provided by the application joins here, under its cfg:
        // #[cfg(remora_prefetch_policy = "<member>")] "<member>" => Box::new(...),
        _ => remora_kvm::early_panic("prefetch.policy names a policy this image does not have"),
    }
}

pub fn init(_boot: &'static BootInfo) {
    #[cfg(feature = "lib-pager")]
    remora_prefetch::set_hint_handler(|addr, len| {
        super::pager::with_pager(|p| p.hint(addr, len)).unwrap_or(0)
    });
}

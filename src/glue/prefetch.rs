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
    general(config::PREFETCH_POLICY)
}

fn general(name: &str) -> Box<dyn PrefetchPolicy> {
    let max_window = config::prefetch::MAX_WINDOW as u32;
    match name {
        "none" => Box::new(NoPrefetch),
        "sequential" => Box::new(Sequential::new(max_window)),
        "majority" => Box::new(Majority::new(max_window)),
        // Redis's own policy announces what its commands will read (apps/redis,
        // src/prefetch.rs, as the server's observer); every other fault goes to the
        // general policy it names as its fallback.
        #[cfg(remora_prefetch_policy = "redis")]
        "redis" => general(config::redis::PREFETCH_FALLBACK),
        _ => remora_kvm::early_panic("prefetch.policy names a policy this image does not have"),
    }
}

pub fn init(_boot: &'static BootInfo) {
    #[cfg(feature = "lib-pager")]
    remora_prefetch::set_hint_handler(|addr, len| {
        match super::pager::with_pager(|p| p.hint(addr, len)) {
            Some(Ok(issued)) => issued,
            Some(Err(e)) => super::pager::fatal(&e),
            None => 0,
        }
    });
}

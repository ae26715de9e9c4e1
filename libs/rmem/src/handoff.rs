//! The image's one far-memory transport, handed from the code that connects it (the
//! image's glue for the chosen transport: virtio-net or mlx5) to the code that uses it
//! (the pager, or a test application that drives the link directly). Owns only that slot.

use alloc::boxed::Box;

use spin::Mutex;

use crate::transport::Transport;

/// A transport of any kind.
pub type DynTransport = Box<dyn Transport + Send>;

static SLOT: Mutex<Option<DynTransport>> = Mutex::new(None);

/// Leaves the connected transport for its user. A second call replaces the first.
pub fn install(transport: DynTransport) {
    *SLOT.lock() = Some(transport);
}

/// Takes the transport; `None` if none was installed or it was taken already.
pub fn take() -> Option<DynTransport> {
    SLOT.lock().take()
}

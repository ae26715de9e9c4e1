//! The application's hint call. The image installs once where hints go (the pager, behind
//! its lock); before that, and in an image without far memory, a hint does nothing.

use spin::Once;

static HANDLER: Once<fn(u64, u64) -> usize> = Once::new();

/// Installs where hints go (the image's glue). Only the first call counts.
pub fn set_hint_handler(handler: fn(u64, u64) -> usize) {
    HANDLER.call_once(|| handler);
}

/// Announces that the application is about to touch `[addr, addr + len)`: the pager
/// starts reading the range's remote pages, in order, until its transport queue or its
/// free frames run out. Never waits for a read. Returns how many reads were issued (0
/// without a pager, or when every page is already local or on its way).
pub fn hint(addr: usize, len: usize) -> usize {
    HANDLER.get().map_or(0, |handler| handler(addr as u64, len as u64))
}

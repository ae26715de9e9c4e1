//! [`FnCell`]: a replaceable function pointer that an interrupt or fault handler can read
//! without a lock (the hooks the image installs into the platform: the page-fault handler,
//! interrupt handlers, the timer's tick, the frame source). The crate's only place that
//! turns a stored address back into a function.

use core::marker::PhantomData;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::traps::{InterruptHandler, PageFaultHandler, ReportHook};

/// Function pointer types a [`FnCell`] may hold. Sealed: only plain `fn` types, which are
/// one non-null address each.
pub trait FnPointer: Copy + sealed::Sealed {}

mod sealed {
    pub trait Sealed {}
}

macro_rules! fn_pointers {
    ($($t:ty),* $(,)?) => {$(
        impl sealed::Sealed for $t {}
        impl FnPointer for $t {}
    )*};
}

fn_pointers!(
    fn(),
    fn(usize) -> Option<u64>,
    fn(u64, usize),
    PageFaultHandler,
    ReportHook,
    InterruptHandler
);

/// A function pointer, empty until set; set again to replace it.
pub struct FnCell<F: FnPointer> {
    address: AtomicUsize,
    kind: PhantomData<F>,
}

impl<F: FnPointer> FnCell<F> {
    pub const fn empty() -> Self {
        FnCell { address: AtomicUsize::new(0), kind: PhantomData }
    }

    pub fn set(&self, f: F) {
        const { assert!(size_of::<usize>() == size_of::<fn()>()) };
        // SAFETY: `F` is a plain fn pointer type (sealed `FnPointer`), the size of a usize.
        let address = unsafe { core::mem::transmute_copy::<F, usize>(&f) };
        self.address.store(address, Ordering::Release);
    }

    pub fn get(&self) -> Option<F> {
        let address = self.address.load(Ordering::Acquire);
        // SAFETY: a non-zero address was stored by `set` from a value of this very `F`.
        (address != 0).then(|| unsafe { core::mem::transmute_copy::<usize, F>(&address) })
    }
}

//! Shutdown with a status. Under QEMU the `isa-debug-exit` device (port 0xf4) ends the
//! process with `(value << 1) | 1`; the image writes `status + 1`, so QEMU exits with
//! `2 * status + 3`: every image status is odd and at least 3, and nothing else QEMU does
//! (its own errors exit 1, a triple fault with `-no-reboot` exits 0) can look like a
//! success. `cargo xtask run` turns it back into the image's status.
//! Without the device (a real host), the CPU halts with interrupts off.

use x86_64::instructions::port::Port;

/// How an image ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitStatus {
    Success = 0,
    /// The application reported a failure (a test that failed, an error it returned).
    Failure = 1,
    Panic = 2,
    CpuException = 3,
}

const DEBUG_EXIT_PORT: u16 = 0xf4;

/// Ends the image with `status`.
pub fn exit(status: ExitStatus) -> ! {
    exit_code(status as u8)
}

/// Ends the image with a raw status (0-126).
pub fn exit_code(code: u8) -> ! {
    x86_64::instructions::interrupts::disable();
    // SAFETY: port 0xf4 is the debug-exit device under QEMU; elsewhere the write is
    // ignored (no device decodes it) and the halt loop below follows.
    unsafe { Port::<u32>::new(DEBUG_EXIT_PORT).write(code as u32 + 1) };
    loop {
        x86_64::instructions::hlt();
    }
}

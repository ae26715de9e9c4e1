//! The serial console (COM1, a 16550 UART) and the `log` backend that writes to it.
//!
//! Owns the UART. Every line goes out whole under one lock taken with interrupts off, so
//! an interrupt handler that logs cannot deadlock against the code it interrupted. The
//! crash path ([`emergency_writer`]) bypasses the lock: it runs when the lock holder may
//! never return. It must never be used on a hot path: each byte costs a port I/O exit.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};

use spin::Mutex;
use x86_64::instructions::interrupts;
use x86_64::instructions::port::Port;

const COM1: u16 = 0x3f8;

struct Uart {
    base: u16,
}

impl Uart {
    fn init(&mut self) {
        let b = self.base;
        // SAFETY: COM1's registers; the standard 16550 set-up sequence.
        unsafe {
            Port::<u8>::new(b + 1).write(0x00); // no interrupts
            Port::<u8>::new(b + 3).write(0x80); // DLAB on
            Port::<u8>::new(b).write(0x01); // divisor 1: 115200 baud
            Port::<u8>::new(b + 1).write(0x00);
            Port::<u8>::new(b + 3).write(0x03); // 8N1, DLAB off
            Port::<u8>::new(b + 2).write(0xc7); // FIFO on, cleared
            Port::<u8>::new(b + 4).write(0x03); // DTR, RTS
        }
    }

    fn put(&mut self, byte: u8) {
        // SAFETY: COM1's line status and data registers.
        unsafe {
            let mut lsr = Port::<u8>::new(self.base + 5);
            let mut spins = 0u32;
            // Wait for the transmitter, but never forever (a missing UART reads 0xff).
            while lsr.read() & 0x20 == 0 && spins < 100_000 {
                spins += 1;
            }
            Port::<u8>::new(self.base).write(byte);
        }
    }
}

impl Write for Uart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                self.put(b'\r');
            }
            self.put(b);
        }
        Ok(())
    }
}

static UART: Mutex<Uart> = Mutex::new(Uart { base: COM1 });
static LOGGER: SerialLogger = SerialLogger;
static INITIALISED: AtomicBool = AtomicBool::new(false);

/// Sets up the UART and installs the logger. `level` comes from the command line.
pub fn init(level: log::LevelFilter) {
    if !INITIALISED.swap(true, Ordering::AcqRel) {
        UART.lock().init();
        let _ = log::set_logger(&LOGGER);
    }
    log::set_max_level(level);
}

/// Writes formatted text to the console, whole, with interrupts off.
///
/// If the console is already held on this CPU (formatting touched far memory and the
/// fault path reports something), the text goes out without the lock instead of waiting
/// for a holder that cannot run.
pub fn print(args: fmt::Arguments<'_>) {
    interrupts::without_interrupts(|| match UART.try_lock() {
        Some(mut uart) => {
            let _ = uart.write_fmt(args);
        }
        None => {
            let _ = emergency_writer().write_fmt(args);
        }
    });
}

/// A writer for crash reports that does not take the console lock: the code that holds
/// it may be the code that crashed.
pub fn emergency_writer() -> impl Write {
    Uart { base: COM1 }
}

#[macro_export]
macro_rules! println {
    () => { $crate::console::print(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::console::print(format_args!("{}\n", format_args!($($arg)*))) };
}

struct SerialLogger;

impl log::Log for SerialLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let us = crate::time::now_ns() / 1_000;
        let target = record.target();
        let target = target.strip_prefix("remora_").unwrap_or(target);
        print(format_args!(
            "[{:4}.{:06}] {:<5} {}: {}\n",
            us / 1_000_000,
            us % 1_000_000,
            record.level(),
            target,
            record.args()
        ));
    }

    fn flush(&self) {}
}

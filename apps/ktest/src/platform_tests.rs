//! Tests of the platform itself: crash reports and the timer.

use core::sync::atomic::{AtomicU64, Ordering};

use remora_kvm::{BootInfo, println, time};

/// Panics with a known message: the report must carry it and its location.
pub fn panic(_: &'static BootInfo) -> Result<(), &'static str> {
    let answer = core::hint::black_box(42);
    panic!("ktest panics on purpose with answer {answer}");
}

/// Reads an address that nothing maps: the report must show it as CR2.
pub fn page_fault(_: &'static BootInfo) -> Result<(), &'static str> {
    let address = core::hint::black_box(0xdead_b000usize) as *const u64;
    // SAFETY: none; this read is meant to fault and end the image with a report.
    let value = unsafe { address.read_volatile() };
    println!("read {value:#x} from an unmapped address");
    Err("the read of an unmapped address did not fault")
}

static FIRED_AT: AtomicU64 = AtomicU64::new(0);

fn on_timer() {
    FIRED_AT.store(time::now_ns(), Ordering::SeqCst);
}

/// Arms the one-shot timer for 20 ms ahead and checks when it fires.
pub fn timer(_: &'static BootInfo) -> Result<(), &'static str> {
    const DELAY_NS: u64 = 20_000_000;
    time::set_timer_handler(on_timer);
    let armed = time::now_ns();
    time::set_deadline(armed + DELAY_NS);
    x86_64::instructions::interrupts::enable();
    while FIRED_AT.load(Ordering::SeqCst) == 0 {
        if time::now_ns() - armed > 50 * DELAY_NS {
            return Err("the timer interrupt never came");
        }
        x86_64::instructions::hlt();
    }
    x86_64::instructions::interrupts::disable();
    let late = FIRED_AT.load(Ordering::SeqCst) as i64 - (armed + DELAY_NS) as i64;
    println!("timer fired {} us after its deadline", late / 1000);
    if late < 0 {
        return Err("the timer fired before its deadline");
    }
    Ok(())
}

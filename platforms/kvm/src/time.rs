//! Time: the TSC as the monotonic clock, calibrated at boot against the PIT together with
//! the local APIC timer, and the one-shot timer interrupt built on the APIC timer.
//!
//! Owns the calibration results and the timer vector. `now_ns()` is cheap (one `rdtsc`
//! and a multiply) and never goes backwards on one CPU.

use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::instructions::port::Port;

use crate::apic;
use crate::fn_cell::FnCell;
use crate::traps::{self, TrapFrame};

/// The vector of the timer interrupt.
pub const TIMER_VECTOR: u8 = traps::FIRST_IRQ_VECTOR;

const PIT_HZ: u64 = 1_193_182;
const CALIBRATION_MS: u64 = 10;

static TSC_HZ: AtomicU64 = AtomicU64::new(0);
static APIC_TIMER_HZ: AtomicU64 = AtomicU64::new(0);
/// TSC value that `now_ns()` counts from: the first thing the kernel reads at entry.
static TSC_ORIGIN: AtomicU64 = AtomicU64::new(0);
static TIMER_HANDLER: FnCell<fn()> = FnCell::empty();

pub fn rdtsc() -> u64 {
    // SAFETY: rdtsc has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Records the entry time; everything `now_ns` reports counts from here.
pub fn mark_origin(tsc: u64) {
    TSC_ORIGIN.store(tsc, Ordering::Relaxed);
}

pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

pub fn apic_timer_hz() -> u64 {
    APIC_TIMER_HZ.load(Ordering::Relaxed)
}

/// Nanoseconds since kernel entry; 0 before calibration.
pub fn now_ns() -> u64 {
    let hz = TSC_HZ.load(Ordering::Relaxed);
    if hz == 0 {
        return 0;
    }
    let ticks = rdtsc().saturating_sub(TSC_ORIGIN.load(Ordering::Relaxed));
    (ticks as u128 * 1_000_000_000 / hz as u128) as u64
}

/// Converts TSC ticks to nanoseconds.
pub fn tsc_to_ns(ticks: u64) -> u64 {
    let hz = TSC_HZ.load(Ordering::Relaxed).max(1);
    (ticks as u128 * 1_000_000_000 / hz as u128) as u64
}

/// Measures the TSC and APIC timer frequencies over a PIT one-shot of 10 ms.
pub fn calibrate() {
    // SAFETY: PIT channel 2 and its gate in port 0x61: gate on, speaker off, mode 0,
    // count loaded, then the gate is pulsed to start counting.
    let (tsc_ticks, apic_ticks) = unsafe {
        let mut gate = Port::<u8>::new(0x61);
        let mut command = Port::<u8>::new(0x43);
        let mut channel2 = Port::<u8>::new(0x42);
        let count = PIT_HZ * CALIBRATION_MS / 1000;
        let g = gate.read();
        gate.write((g & !0x02) & !0x01);
        command.write(0b1011_0000); // channel 2, lo/hi byte, mode 0, binary
        channel2.write(count as u8);
        channel2.write((count >> 8) as u8);
        let g = gate.read();
        gate.write(g | 0x01); // start counting
        apic::start_timer(u32::MAX, None);
        let tsc_start = rdtsc();
        let mut polls = 0u64;
        while gate.read() & 0x20 == 0 {
            polls += 1;
            if polls > 100_000_000 {
                crate::early_panic("the PIT never counted down: cannot calibrate the clock");
            }
        }
        let tsc_end = rdtsc();
        let apic_left = apic::timer_current();
        apic::stop_timer();
        (tsc_end - tsc_start, u32::MAX - apic_left)
    };
    TSC_HZ.store(tsc_ticks * 1000 / CALIBRATION_MS, Ordering::Relaxed);
    APIC_TIMER_HZ.store(apic_ticks as u64 * 1000 / CALIBRATION_MS, Ordering::Relaxed);
    traps::set_interrupt_handler(TIMER_VECTOR, on_timer);
}

/// Registers what runs on each timer interrupt (the scheduler's tick).
pub fn set_timer_handler(handler: fn()) {
    TIMER_HANDLER.set(handler);
}

fn on_timer(_frame: &mut TrapFrame) {
    if let Some(handler) = TIMER_HANDLER.get() {
        handler();
    }
}

/// Arms the one-shot timer to interrupt at `deadline_ns` (as `now_ns`); a deadline in
/// the past fires at once. Replaces any earlier deadline.
pub fn set_deadline(deadline_ns: u64) {
    let now = now_ns();
    let delta_ns = deadline_ns.saturating_sub(now);
    let hz = APIC_TIMER_HZ.load(Ordering::Relaxed);
    let ticks = (delta_ns as u128 * hz as u128 / 1_000_000_000).clamp(1, u32::MAX as u128);
    apic::start_timer(ticks as u32, Some(TIMER_VECTOR));
}

/// Disarms the timer.
pub fn cancel_deadline() {
    apic::stop_timer();
}

/// Busy-waits for `ns` nanoseconds.
pub fn spin_for(ns: u64) {
    let end = now_ns() + ns;
    while now_ns() < end {
        core::hint::spin_loop();
    }
}

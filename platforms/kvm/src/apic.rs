//! The local APIC (xAPIC, memory mapped): enabling it, the end-of-interrupt write, and its
//! timer in one-shot mode. Also masks the legacy 8259 PICs, which are never used.

use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::instructions::port::Port;
use x86_64::registers::model_specific::Msr;

use crate::paging;
use crate::traps::SPURIOUS_VECTOR;

const IA32_APIC_BASE: u32 = 0x1b;
const REG_ID: u64 = 0x20;
const REG_EOI: u64 = 0xb0;
const REG_SPURIOUS: u64 = 0xf0;
const REG_LVT_TIMER: u64 = 0x320;
const REG_TIMER_INITIAL: u64 = 0x380;
const REG_TIMER_CURRENT: u64 = 0x390;
const REG_TIMER_DIVIDE: u64 = 0x3e0;
const LVT_MASKED: u32 = 1 << 16;
/// Divide configuration value for "divide by 1".
const DIVIDE_BY_1: u32 = 0b1011;

/// Virtual address of the APIC registers; 0 until [`init`].
static BASE: AtomicU64 = AtomicU64::new(0);

fn read(reg: u64) -> u32 {
    let base = BASE.load(Ordering::Relaxed);
    // SAFETY: `base` is the direct-map (uncached) address of the local APIC page, set by
    // `init`; `reg` is one of its 32-bit registers.
    unsafe { ((base + reg) as *const u32).read_volatile() }
}

fn write(reg: u64, value: u32) {
    let base = BASE.load(Ordering::Relaxed);
    // SAFETY: as in `read`.
    unsafe { ((base + reg) as *mut u32).write_volatile(value) }
}

/// Masks the 8259 PICs (after moving their vectors out of the exception range) and
/// enables the local APIC with the spurious vector.
pub fn init() {
    // SAFETY: the standard 8259 initialisation sequence, then mask every line.
    unsafe {
        let mut master_cmd = Port::<u8>::new(0x20);
        let mut master_data = Port::<u8>::new(0x21);
        let mut slave_cmd = Port::<u8>::new(0xa0);
        let mut slave_data = Port::<u8>::new(0xa1);
        master_cmd.write(0x11);
        slave_cmd.write(0x11);
        master_data.write(0x20);
        slave_data.write(0x28);
        master_data.write(4);
        slave_data.write(2);
        master_data.write(1);
        slave_data.write(1);
        master_data.write(0xff);
        slave_data.write(0xff);
    }
    // SAFETY: reading and setting the enable bit of IA32_APIC_BASE, an architectural MSR.
    let phys = unsafe {
        let mut msr = Msr::new(IA32_APIC_BASE);
        let value = msr.read();
        msr.write(value | (1 << 11));
        value & 0x000f_ffff_ffff_f000
    };
    BASE.store(paging::phys_to_virt(phys), Ordering::Relaxed);
    write(REG_SPURIOUS, 0x100 | SPURIOUS_VECTOR as u32);
    write(REG_LVT_TIMER, LVT_MASKED);
    write(REG_TIMER_DIVIDE, DIVIDE_BY_1);
}

pub fn id() -> u32 {
    read(REG_ID) >> 24
}

/// Acknowledges the interrupt being handled.
pub fn end_of_interrupt() {
    if BASE.load(Ordering::Relaxed) != 0 {
        write(REG_EOI, 0);
    }
}

/// Starts the timer counting down from `count` ticks, firing `vector` at zero (or never,
/// for calibration, when `vector` is `None`).
pub fn start_timer(count: u32, vector: Option<u8>) {
    write(REG_LVT_TIMER, vector.map_or(LVT_MASKED, u32::from));
    write(REG_TIMER_INITIAL, count);
}

pub fn timer_current() -> u32 {
    read(REG_TIMER_CURRENT)
}

pub fn stop_timer() {
    write(REG_TIMER_INITIAL, 0);
}

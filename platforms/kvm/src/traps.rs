//! The IDT, the entry stubs for all 256 vectors, and what happens on each: CPU exceptions
//! (a page-fault hook for the pager, a readable report for everything else), device and
//! timer interrupts (dispatched to registered handlers after the EOI).
//!
//! Every vector enters through one stub that saves all general-purpose registers into a
//! [`TrapFrame`] on the current stack and calls [`remora_trap`]. Only the double fault,
//! NMI and machine check switch to stacks of their own (IST); everything else runs on
//! the interrupted thread's stack, so a handler may switch threads (the scheduler does,
//! from the timer interrupt) and resume later. Handlers run with interrupts disabled.

use core::arch::global_asm;
use core::fmt::{self, Write};

use spin::Once;
use x86_64::registers::control::Cr2;
use x86_64::structures::DescriptorTablePointer;

use crate::fn_cell::FnCell;
use crate::{apic, console, exit, gdt, paging};

/// Registers saved on entry, in the order the entry stub pushes them (lowest address
/// first).
#[repr(C)]
#[derive(Clone, Debug)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}
const _: () = assert!(core::mem::size_of::<TrapFrame>() == 22 * 8);

pub const PAGE_FAULT: u8 = 14;
pub const DOUBLE_FAULT: u8 = 8;
/// First vector free for interrupts (the legacy PICs are remapped below it and masked).
pub const FIRST_IRQ_VECTOR: u8 = 0x30;
pub const SPURIOUS_VECTOR: u8 = 0xff;

// One 16-byte stub per vector: push a zero where the CPU pushes no error code, push the
// vector, jump to the common path. Vectors with a CPU error code: 8, 10-14, 17, 21, 29, 30.
global_asm!(
    r#"
    .section .text.traps, "ax"
    .balign 16
    .global remora_trap_stubs
remora_trap_stubs:
    .set trap_vector, 0
    .rept 256
    .balign 16
    .if (trap_vector == 8) || ((trap_vector >= 10) && (trap_vector <= 14)) || (trap_vector == 17) || (trap_vector == 21) || (trap_vector == 29) || (trap_vector == 30)
    .else
    pushq $0
    .endif
    pushq $trap_vector
    jmp remora_trap_common
    .set trap_vector, trap_vector + 1
    .endr

remora_trap_common:
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, %rdi
    cld
    call remora_trap
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
    addq $16, %rsp
    iretq
    .text
"#,
    options(att_syntax)
);

unsafe extern "C" {
    static remora_trap_stubs: u8;
}

const STUB_SIZE: u64 = 16;

#[repr(C)]
#[derive(Clone, Copy)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    attributes: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}
const _: () = assert!(core::mem::size_of::<Gate>() == 16);

const INTERRUPT_GATE: u8 = 0x8e; // present, DPL 0, 64-bit interrupt gate (IF cleared)

#[repr(C, align(16))]
struct Idt([Gate; 256]);

/// Every vector points at its stub; only the double fault, NMI and machine check use IST.
static IDT: Once<Idt> = Once::new();

fn build_idt() -> Idt {
    // The stubs are 16 bytes apart from this address on.
    let stubs = &raw const remora_trap_stubs as u64;
    let selector = gdt::code_selector();
    Idt(core::array::from_fn(|vector| {
        let handler = stubs + vector as u64 * STUB_SIZE;
        let ist = match vector as u8 {
            DOUBLE_FAULT => gdt::IST_DOUBLE_FAULT,
            2 => gdt::IST_NMI,
            18 => gdt::IST_MACHINE_CHECK,
            _ => 0,
        };
        Gate {
            offset_low: handler as u16,
            selector,
            ist,
            attributes: INTERRUPT_GATE,
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }))
}

/// Fills and loads the IDT. Runs on the boot CPU before interrupts are enabled.
pub fn init() {
    let idt = IDT.call_once(build_idt);
    let pointer = DescriptorTablePointer {
        limit: (core::mem::size_of::<Idt>() - 1) as u16,
        base: x86_64::VirtAddr::new(idt as *const Idt as u64),
    };
    // SAFETY: the IDT is 'static and every gate points at a valid stub.
    unsafe { x86_64::instructions::tables::lidt(&pointer) };
}

/// What a page-fault handler did with a fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultOutcome {
    /// Fixed: return and retry the instruction.
    Resolved,
    /// Not ours: report it as a crash.
    NotHandled,
}

/// Called on every page fault with the frame and CR2.
pub type PageFaultHandler = fn(&mut TrapFrame, u64) -> FaultOutcome;
/// Called for an interrupt vector, after the EOI.
pub type InterruptHandler = fn(&mut TrapFrame);
/// Adds lines to a crash report: the running thread, whether CR2 hit a stack guard page.
pub type ReportHook = fn(&mut dyn Write, &TrapFrame, Option<u64>);

static PAGE_FAULT_HANDLER: FnCell<PageFaultHandler> = FnCell::empty();
static REPORT_HOOK: FnCell<ReportHook> = FnCell::empty();
static INTERRUPT_HANDLERS: [FnCell<InterruptHandler>; 256] = [const { FnCell::empty() }; 256];

/// Installs the page-fault handler (the pager's). Faults it does not resolve are reported.
pub fn set_page_fault_handler(handler: PageFaultHandler) {
    PAGE_FAULT_HANDLER.set(handler);
}

/// Installs a hook that adds context to crash reports.
pub fn set_report_hook(hook: ReportHook) {
    REPORT_HOOK.set(hook);
}

/// Registers `handler` for `vector` (at least [`FIRST_IRQ_VECTOR`]).
pub fn set_interrupt_handler(vector: u8, handler: InterruptHandler) {
    assert!(
        (FIRST_IRQ_VECTOR..SPURIOUS_VECTOR).contains(&vector),
        "vector {vector:#x} is reserved"
    );
    INTERRUPT_HANDLERS[vector as usize].set(handler);
}

/// The common trap path, called by the entry stubs with the saved frame.
#[unsafe(no_mangle)]
extern "C" fn remora_trap(frame: &mut TrapFrame) {
    let vector = frame.vector as u8;
    match vector {
        PAGE_FAULT => {
            let cr2 = Cr2::read_raw();
            if let Some(handler) = PAGE_FAULT_HANDLER.get()
                && handler(frame, cr2) == FaultOutcome::Resolved
            {
                return;
            }
            crash(frame, Some(cr2));
        }
        DOUBLE_FAULT => crash(frame, Some(Cr2::read_raw())),
        0..=31 => crash(frame, None),
        SPURIOUS_VECTOR => {}
        _ => {
            apic::end_of_interrupt();
            match INTERRUPT_HANDLERS[vector as usize].get() {
                Some(handler) => handler(frame),
                None => log::warn!("interrupt on vector {vector:#x} with no handler"),
            }
        }
    }
}

fn exception_name(vector: u8) -> &'static str {
    match vector {
        0 => "#DE divide error",
        1 => "#DB debug",
        2 => "NMI",
        3 => "#BP breakpoint",
        4 => "#OF overflow",
        5 => "#BR bound range exceeded",
        6 => "#UD invalid opcode",
        7 => "#NM device not available",
        8 => "#DF double fault",
        10 => "#TS invalid TSS",
        11 => "#NP segment not present",
        12 => "#SS stack-segment fault",
        13 => "#GP general protection",
        14 => "#PF page fault",
        16 => "#MF x87 floating-point error",
        17 => "#AC alignment check",
        18 => "#MC machine check",
        19 => "#XM SIMD floating-point",
        20 => "#VE virtualization exception",
        21 => "#CP control protection",
        28 => "#HV hypervisor injection",
        29 => "#VC VMM communication",
        30 => "#SX security exception",
        _ => "reserved",
    }
}

struct PageFaultCode(u64);

impl fmt::Display for PageFaultCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        f.write_str(if e & 1 != 0 { "protection violation" } else { "page not present" })?;
        f.write_str(if e & 2 != 0 { ", write" } else { ", read" })?;
        if e & 16 != 0 {
            f.write_str(", instruction fetch")?;
        }
        if e & 4 != 0 {
            f.write_str(", user mode")?;
        }
        if e & 8 != 0 {
            f.write_str(", reserved bit set")?;
        }
        Ok(())
    }
}

/// Prints the report for a fatal exception and exits with [`exit::ExitStatus::CpuException`].
fn crash(frame: &TrapFrame, cr2: Option<u64>) -> ! {
    let mut out = console::emergency_writer();
    let _ = write_report(&mut out, frame, cr2);
    exit::exit(exit::ExitStatus::CpuException);
}

fn write_report(out: &mut dyn Write, frame: &TrapFrame, cr2: Option<u64>) -> fmt::Result {
    let vector = frame.vector as u8;
    writeln!(out)?;
    writeln!(
        out,
        "!!! CPU exception {vector} ({}), error code {:#x}",
        exception_name(vector),
        frame.error_code
    )?;
    if vector == PAGE_FAULT {
        writeln!(out, "    {}", PageFaultCode(frame.error_code))?;
    }
    if let Some(cr2) = cr2 {
        writeln!(out, "    CR2 (faulting address) {cr2:#018x}")?;
        if let Some(note) = paging::describe_address(cr2) {
            writeln!(out, "    {note}")?;
        }
    }
    writeln!(
        out,
        "    RIP {:#018x}  RSP {:#018x}  RFLAGS {:#010x}  CS {:#x}  SS {:#x}",
        frame.rip, frame.rsp, frame.rflags, frame.cs, frame.ss
    )?;
    let regs = [
        ("RAX", frame.rax),
        ("RBX", frame.rbx),
        ("RCX", frame.rcx),
        ("RDX", frame.rdx),
        ("RSI", frame.rsi),
        ("RDI", frame.rdi),
        ("RBP", frame.rbp),
        ("R8 ", frame.r8),
        ("R9 ", frame.r9),
        ("R10", frame.r10),
        ("R11", frame.r11),
        ("R12", frame.r12),
        ("R13", frame.r13),
        ("R14", frame.r14),
        ("R15", frame.r15),
    ];
    for row in regs.chunks(4) {
        write!(out, "   ")?;
        for (name, value) in row {
            write!(out, " {name} {value:#018x}")?;
        }
        writeln!(out)?;
    }
    if let Some(hook) = REPORT_HOOK.get() {
        hook(out, frame, cr2);
    }
    write_backtrace(out, frame.rip, frame.rbp)
}

/// Prints return addresses found by following frame pointers (the image is built with
/// them). `cargo xtask run` turns these lines into function names.
pub fn write_backtrace(out: &mut dyn Write, rip: u64, mut rbp: u64) -> fmt::Result {
    writeln!(out, "    backtrace:")?;
    writeln!(out, "      #0  {rip:#018x}")?;
    for depth in 1..32 {
        if rbp == 0
            || !rbp.is_multiple_of(8)
            || !paging::is_mapped(rbp)
            || !paging::is_mapped(rbp + 8)
        {
            break;
        }
        // SAFETY: `rbp` is 8-aligned and both words are mapped; frame-pointer chains
        // hold (saved rbp, return address) pairs.
        let (next, ret) = unsafe {
            (core::ptr::read(rbp as *const u64), core::ptr::read((rbp + 8) as *const u64))
        };
        if ret == 0 {
            break;
        }
        writeln!(out, "      #{depth:<2} {ret:#018x}")?;
        if next <= rbp {
            break;
        }
        rbp = next;
    }
    Ok(())
}

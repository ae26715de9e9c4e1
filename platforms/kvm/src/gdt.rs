//! The GDT and the TSS. The TSS exists for its interrupt stack table: double faults,
//! NMIs and machine checks run on stacks of their own, so that a kernel stack overflow
//! (which faults on the guard page while pushing the exception frame) still produces a
//! report instead of a triple fault.

use spin::LazyLock as Lazy;
use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::registers::segmentation::SegmentSelector;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable};
use x86_64::structures::tss::TaskStateSegment;

/// IST slots (1-based in the IDT, 0-based in the TSS).
pub const IST_DOUBLE_FAULT: u8 = 1;
pub const IST_NMI: u8 = 2;
pub const IST_MACHINE_CHECK: u8 = 3;

const IST_STACK_SIZE: usize = 16 * 1024;

#[repr(C, align(16))]
struct IstStack([u8; IST_STACK_SIZE]);

static mut IST_STACKS: [IstStack; 3] = [const { IstStack([0; IST_STACK_SIZE]) }; 3];

static TSS: Lazy<TaskStateSegment> = Lazy::new(|| {
    let mut tss = TaskStateSegment::new();
    // Only the addresses are taken; the CPU is the stacks' only user.
    let stacks = &raw const IST_STACKS as u64;
    let mut table = tss.interrupt_stack_table;
    for (slot, entry) in table.iter_mut().take(3).enumerate() {
        *entry = VirtAddr::new(stacks + ((slot + 1) * IST_STACK_SIZE) as u64);
    }
    tss.interrupt_stack_table = table;
    tss
});

struct Gdt {
    table: GlobalDescriptorTable,
    code: SegmentSelector,
    data: SegmentSelector,
    tss: SegmentSelector,
}

static GDT: Lazy<Gdt> = Lazy::new(|| {
    let mut table = GlobalDescriptorTable::new();
    let code = table.append(Descriptor::kernel_code_segment());
    let data = table.append(Descriptor::kernel_data_segment());
    let tss = table.append(Descriptor::tss_segment(&TSS));
    Gdt { table, code, data, tss }
});

pub fn init() {
    GDT.table.load();
    // SAFETY: the selectors index the GDT just loaded; code and data are flat 64-bit
    // kernel segments, the TSS descriptor points at a 'static TSS.
    unsafe {
        CS::set_reg(GDT.code);
        DS::set_reg(GDT.data);
        ES::set_reg(GDT.data);
        SS::set_reg(GDT.data);
        load_tss(GDT.tss);
    }
}

/// The kernel code segment selector, for IDT gates.
pub fn code_selector() -> u16 {
    GDT.code.0
}

//! PVH entry: the ELF note QEMU looks for, the 32-bit trampoline into long mode, and the
//! boot stack.
//!
//! QEMU (`-kernel image.elf`) enters `pvh_start32` in 32-bit protected mode with paging
//! off and `ebx` holding the physical address of the `hvm_start_info`. The trampoline
//! zeroes `.bss`, loads page tables laid out at link time (the first 1 GiB identity
//! mapped with 2 MiB pages), enables long mode with NX, and calls
//! [`crate::remora_kvm_start`] on the boot stack. It owns nothing after that: the real
//! page tables are built in Rust (`paging.rs`).

use core::arch::global_asm;

/// Size of the boot stack, which becomes the main thread's stack.
pub const BOOT_STACK_SIZE: usize = 512 * 1024;

global_asm!(
    r#"
    .section .note.Xen, "a", @note
    .balign 4
    .long 4            /* name size: "Xen\0" */
    .long 8            /* descriptor size */
    .long 18           /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .balign 4
    .quad pvh_start32
    .balign 4

    .section .text.boot, "ax"
    .code32
    .global pvh_start32
pvh_start32:
    cli
    cld
    movl %ebx, %esi                     /* keep the start info pointer */

    /* Zero .bss (the loader may not). Nothing below uses the stack before this. */
    movl $__bss_start, %edi
    movl $__bss_end, %ecx
    subl %edi, %ecx
    xorl %eax, %eax
    rep stosb

    movl $boot_pml4, %eax
    movl %eax, %cr3

    movl %cr4, %eax                     /* PAE, PGE */
    orl $((1 << 5) | (1 << 7)), %eax
    movl %eax, %cr4

    /* EFER: long mode enable, plus no-execute if the CPU has it. */
    movl $0x80000001, %eax
    cpuid
    movl %edx, %ebx                     /* feature bits; rdmsr overwrites edx */
    movl $0xC0000080, %ecx
    rdmsr
    orl $(1 << 8), %eax
    btl $20, %ebx
    jnc 1f
    orl $(1 << 11), %eax
1:
    wrmsr

    movl %cr0, %eax                     /* paging, write protect, protected mode */
    orl $((1 << 31) | (1 << 16) | 1), %eax
    movl %eax, %cr0

    lgdt boot_gdt_pointer
    ljmpl $0x08, $long_mode_entry

    .code64
long_mode_entry:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorw %ax, %ax
    movw %ax, %fs
    movw %ax, %gs
    movabsq $boot_stack_top, %rsp
    xorl %ebp, %ebp
    movl %esi, %edi                     /* start info (physical) */
    call remora_kvm_start
2:
    cli
    hlt
    jmp 2b

    .section .data.boot_tables, "aw"
    .balign 4096
    .global boot_pml4
boot_pml4:
    .quad boot_pdpt + 0x3
    .fill 511, 8, 0
boot_pdpt:
    .quad boot_pd + 0x3
    .fill 511, 8, 0
boot_pd:
    .set boot_pd_index, 0
    .rept 512
    .quad (boot_pd_index << 21) + 0x83  /* present, writable, 2 MiB */
    .set boot_pd_index, boot_pd_index + 1
    .endr

    .balign 8
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff            /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff            /* 0x10: data */
boot_gdt_pointer:
    .word boot_gdt_pointer - boot_gdt - 1
    .long boot_gdt

    .section .bss.boot_stack, "aw", @nobits
    .balign 4096
    .global boot_stack_guard
boot_stack_guard:
    .skip 4096
    .global boot_stack_bottom
boot_stack_bottom:
    .skip {stack_size}
    .global boot_stack_top
boot_stack_top:
    .text
"#,
    stack_size = const BOOT_STACK_SIZE,
    options(att_syntax)
);

unsafe extern "C" {
    static boot_stack_guard: u8;
    static boot_stack_bottom: u8;
    static boot_stack_top: u8;
    static __kernel_start: u8;
    static __kernel_end: u8;
    static __text_start: u8;
    static __text_end: u8;
    static __rodata_start: u8;
    static __rodata_end: u8;
    static __data_start: u8;
}

/// Addresses of the image's sections, from the linker script.
#[derive(Clone, Copy, Debug)]
pub struct ImageLayout {
    pub start: u64,
    pub text: (u64, u64),
    pub rodata: (u64, u64),
    /// `.data` and `.bss` up to the end of the image.
    pub data: (u64, u64),
    pub end: u64,
    /// The page below the boot stack, left unmapped.
    pub stack_guard: u64,
    pub stack: (u64, u64),
}

pub fn image_layout() -> ImageLayout {
    // Taking the address of a linker symbol reads nothing.
    let addr = |s: &u8| s as *const u8 as u64;
    // SAFETY: these statics are linker-script symbols; only their addresses are used.
    unsafe {
        ImageLayout {
            start: addr(&__kernel_start),
            text: (addr(&__text_start), addr(&__text_end)),
            rodata: (addr(&__rodata_start), addr(&__rodata_end)),
            data: (addr(&__data_start), addr(&__kernel_end)),
            end: addr(&__kernel_end),
            stack_guard: addr(&boot_stack_guard),
            stack: (addr(&boot_stack_bottom), addr(&boot_stack_top)),
        }
    }
}

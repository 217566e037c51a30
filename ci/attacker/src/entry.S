/*
 * Attacker entry: the arm64 Image header (Linux booting.rst), relocation,
 * a flat identity map with the MMU and caches on, the exception vectors
 * and the switch to EL0 and back.
 *
 * Boot protocol: x0 = DTB physical address, MMU off, EL1h, DAIF masked.
 * Secondary vCPUs (PSCI CPU_ON) enter at attacker_secondary_entry with
 * x0 = the top of their stack.
 */

.macro adr_l reg, sym
    adrp    \reg, \sym
    add     \reg, \reg, :lo12:\sym
.endm

/* Stage-1 block descriptors (ARM ARM D8.3): 1 GiB blocks at level 1. */
.equ BLOCK_NORMAL_EL1, 0x0040000000000705   /* AttrIndx 1, ISH, AF, UXN; EL1 RW */
.equ BLOCK_NORMAL_EL0, 0x0020000000000745   /* AttrIndx 1, ISH, AF, PXN; EL0 RW */
.equ BLOCK_DEVICE, 0x0060000000000441       /* AttrIndx 0, AF, PXN, UXN; EL0 RW */
.equ MAIR_VALUE, 0xff04                     /* Attr0 Device-nGnRE, Attr1 Normal WB */
/* TCR_EL1: T0SZ 25 (39-bit VA, walks start at level 1), WB walks, ISH,
 * 4K granule, EPD1 (no TTBR1 walks), IPS 40 bits. */
.equ TCR_VALUE, 0x200803519
/* SCTLR_EL1: RES1 bits, M, C, I, CP15BEN, nTWI, nTWE (EL0 WFI/WFE reach
 * EL2's traps, not EL1's), UCT, DZE, UCI; ITD = 0 so that T32 IT blocks work. */
.equ SCTLR_VALUE, 0x34d5d825

.section .text.head, "ax"
.global _start
_start:
    b       primary_entry           /* code0 */
    .long   0                       /* code1 */
    .quad   0                       /* text_offset */
    .quad   __image_size            /* image_size, including BSS */
    .quad   0xa                     /* flags: LE, 4K pages, place anywhere */
    .quad   0
    .quad   0
    .quad   0
    .ascii  "ARM\x64"
    .long   0

.text
primary_entry:
    /* Entry registers, kept for the gpr-snoop scenario. */
    adr_l   x9, ENTRY_REGS
    stp     x0, x1, [x9]
    stp     x2, x3, [x9, #16]
    stp     x4, x5, [x9, #32]
    stp     x6, x7, [x9, #48]
    stp     x8, x10, [x9, #64]
    stp     x11, x12, [x9, #80]
    stp     x13, x14, [x9, #96]
    stp     x15, x16, [x9, #112]
    stp     x17, x18, [x9, #128]
    stp     x19, x20, [x9, #144]
    stp     x21, x22, [x9, #160]
    stp     x23, x24, [x9, #176]
    stp     x25, x26, [x9, #192]
    stp     x27, x28, [x9, #208]
    stp     x29, x30, [x9, #224]
    mov     x19, x0                 /* DTB */
    adr_l   x20, __image_start      /* load address */

    /* Zero BSS (the stacks and page table live there). ENTRY_REGS is in .data. */
    adr_l   x1, __bss_start
    adr_l   x2, __bss_end
1:  cmp     x1, x2
    b.hs    2f
    stp     xzr, xzr, [x1], #16
    b       1b
2:
    /* R_AARCH64_RELATIVE relocations: add the load address. */
    adr_l   x2, __rela_start
    adr_l   x3, __rela_end
3:  cmp     x2, x3
    b.hs    5f
    ldp     x4, x5, [x2], #16
    ldr     x6, [x2], #8
    cmp     x5, #1027
    b.ne    3b
    add     x6, x6, x20
    str     x6, [x20, x4]
    b       3b
5:
    /* One level-1 table: VA = IPA everywhere, RAM's 1 GiB (0x4000_0000)
     * normal memory for EL1, the same RAM again at 0x8000_0000 for EL0
     * code, and every other GiB Device memory. */
    adr_l   x1, PAGE_TABLE
    mov     x2, #0
6:  lsl     x3, x2, #30
    ldr     x4, =BLOCK_DEVICE
    cmp     x2, #1
    b.ne    7f
    ldr     x4, =BLOCK_NORMAL_EL1
7:  cmp     x2, #2
    b.ne    8f
    mov     x3, #0x40000000
    ldr     x4, =BLOCK_NORMAL_EL0
8:  orr     x3, x3, x4
    str     x3, [x1, x2, lsl #3]
    add     x2, x2, #1
    cmp     x2, #512
    b.lo    6b
    dsb     sy

    adr_l   x0, BOOT_STACK_TOP
    mov     sp, x0
    bl      mmu_on
    mov     x0, x19
    bl      attacker_main
9:  wfe
    b       9b

.global attacker_secondary_entry
attacker_secondary_entry:
    mov     sp, x0
    bl      mmu_on
    bl      attacker_secondary_main
10: wfe
    b       10b

/* mmu_on: the shared table, vectors, MMU and caches on. Clobbers x0-x3. */
mmu_on:
    adr_l   x0, attacker_vectors
    msr     vbar_el1, x0
    ldr     x0, =MAIR_VALUE
    msr     mair_el1, x0
    ldr     x0, =TCR_VALUE
    msr     tcr_el1, x0
    adr_l   x0, PAGE_TABLE
    msr     ttbr0_el1, x0
    isb
    tlbi    vmalle1
    dsb     nsh
    isb
    ldr     x0, =SCTLR_VALUE
    msr     sctlr_el1, x0
    isb
    ret

/*
 * enter_el0(x0 = pc, x1 = spsr, x2 = &[u64; 16] initial x0..x15): runs
 * code at EL0 (AArch64 or AArch32) until it takes an exception that the
 * Rust handler ends the run on (it returns 1); then returns here.
 */
.global enter_el0
enter_el0:
    sub     sp, sp, #96
    stp     x19, x20, [sp]
    stp     x21, x22, [sp, #16]
    stp     x23, x24, [sp, #32]
    stp     x25, x26, [sp, #48]
    stp     x27, x28, [sp, #64]
    stp     x29, x30, [sp, #80]
    mrs     x9, tpidr_el1           /* this vCPU's index */
    adr_l   x10, EL0_SAVED_SP
    mov     x11, sp
    str     x11, [x10, x9, lsl #3]
    msr     elr_el1, x0
    msr     spsr_el1, x1
    mov     x16, x2
    ldp     x0, x1, [x16]
    ldp     x2, x3, [x16, #16]
    ldp     x4, x5, [x16, #32]
    ldp     x6, x7, [x16, #48]
    ldp     x8, x9, [x16, #64]
    ldp     x10, x11, [x16, #80]
    ldp     x12, x13, [x16, #96]
    ldp     x14, x15, [x16, #112]
    eret

/* Exception frame: x0-x30, ELR_EL1, SPSR_EL1 (34 slots, 16-byte aligned). */
.equ FRAME, 272

.macro ventry kind
.balign 0x80
    sub     sp, sp, #FRAME
    stp     x0, x1, [sp]
    mov     x1, #\kind
    b       vector_common
.endm

.balign 0x800
.global attacker_vectors
attacker_vectors:
    ventry 0
    ventry 1
    ventry 2
    ventry 3
    ventry 4
    ventry 5
    ventry 6
    ventry 7
    ventry 8
    ventry 9
    ventry 10
    ventry 11
    ventry 12
    ventry 13
    ventry 14
    ventry 15

vector_common:
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x19, [sp, #144]
    stp     x20, x21, [sp, #160]
    stp     x22, x23, [sp, #176]
    stp     x24, x25, [sp, #192]
    stp     x26, x27, [sp, #208]
    stp     x28, x29, [sp, #224]
    mrs     x2, elr_el1
    stp     x30, x2, [sp, #240]
    mrs     x2, spsr_el1
    str     x2, [sp, #256]
    mov     x0, sp
    bl      attacker_exception
    cbnz    x0, el0_done
    ldr     x2, [sp, #256]
    msr     spsr_el1, x2
    ldp     x30, x2, [sp, #240]
    msr     elr_el1, x2
    ldp     x0, x1, [sp]
    ldp     x2, x3, [sp, #16]
    ldp     x4, x5, [sp, #32]
    ldp     x6, x7, [sp, #48]
    ldp     x8, x9, [sp, #64]
    ldp     x10, x11, [sp, #80]
    ldp     x12, x13, [sp, #96]
    ldp     x14, x15, [sp, #112]
    ldp     x16, x17, [sp, #128]
    ldp     x18, x19, [sp, #144]
    ldp     x20, x21, [sp, #160]
    ldp     x22, x23, [sp, #176]
    ldp     x24, x25, [sp, #192]
    ldp     x26, x27, [sp, #208]
    ldp     x28, x29, [sp, #224]
    add     sp, sp, #FRAME
    eret

/* The EL0 run is over (the handler kept its frame): back into enter_el0's caller. */
el0_done:
    mrs     x9, tpidr_el1
    adr_l   x10, EL0_SAVED_SP
    ldr     x11, [x10, x9, lsl #3]
    mov     sp, x11
    ldp     x19, x20, [sp]
    ldp     x21, x22, [sp, #16]
    ldp     x23, x24, [sp, #32]
    ldp     x25, x26, [sp, #48]
    ldp     x27, x28, [sp, #64]
    ldp     x29, x30, [sp, #80]
    add     sp, sp, #96
    ret

.section .data
.balign 8
/* x0-x8, x10-x30 as the vCPU entered (x9 is the pointer). */
.global ENTRY_REGS
ENTRY_REGS:
    .fill 30, 8, 0

.section .bss
.balign 4096
.global PAGE_TABLE
PAGE_TABLE:
    .space 4096
.balign 16
BOOT_STACK:
    /* 128 KiB: parsing the DTB holds a few copies of the 12 KiB
     * shared::platform::Platform (64 KiB overflowed when it grew). */
    .space 0x20000
BOOT_STACK_TOP:
/* Per-vCPU stack pointer of an enter_el0 call in progress. */
.global EL0_SAVED_SP
EL0_SAVED_SP:
    .space 64
/* Stacks of vCPUs 1..7, 64 KiB each. */
.balign 16
.global SECONDARY_STACKS
SECONDARY_STACKS:
    .space 0x70000

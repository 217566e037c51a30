/*
 * Guest kernel entry: the arm64 Image header, self-relocation to the
 * kernel's high virtual address, boot page tables, and the jump into Rust.
 *
 * The kernel runs in the upper VA range (TTBR1_EL1) at
 * PAGE_OFFSET + physical address, like Linux's linear map, so one mapping
 * serves both the image and all of RAM. Until Rust builds the real tables,
 * one 1 GiB block around the image is mapped twice: identity in TTBR0 (for
 * the instruction that turns the MMU on) and high in TTBR1.
 *
 * Boot protocol (booting.rst): x0 = DTB physical address, MMU off, EL1.
 *
 * Call frame information (.cfi_*, .debug_frame): the boot paths are the
 * outermost frames (x30 undefined), so gdb's backtraces end there.
 */


.equ PAGE_OFFSET_HI, 0xffff         /* PAGE_OFFSET = 0xffff << 48 */
.equ BLOCK_ATTRS, 0x705             /* valid block, AttrIndx 1, inner shareable, AF */
.equ MAIR_VALUE, 0xff04             /* Attr0 Device-nGnRE, Attr1 Normal WB */

/*
 * set_mair_tcr: MAIR_EL1 and TCR_EL1 for the kernel's tables, the same on
 * every CPU: T0SZ = T1SZ = 16, 4K granules, write-back walks, inner
 * shareable, IPS from ID_AA64MMFR0_EL1. Clobbers x3, x4.
 */
.macro set_mair_tcr
    ldr     x3, =MAIR_VALUE
    msr     mair_el1, x3
    ldr     x3, =0xb5103510
    mrs     x4, id_aa64mmfr0_el1
    and     x4, x4, #7
    orr     x3, x3, x4, lsl #32
    msr     tcr_el1, x3
.endm

.section .text.head, "ax"
.global _start
_start:
    .cfi_startproc
    .cfi_undefined x30
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
    .cfi_endproc

.text
primary_entry:
    .cfi_startproc
    .cfi_undefined x30
    mov     x19, x0                 /* DTB */
    adr_l   x20, __image_start      /* load address (physical) */

    /* Zero BSS (boot tables and stack live there). */
    adr_l   x1, __bss_start
    adr_l   x2, __bss_end
1:  cmp     x1, x2
    b.hs    2f
    stp     xzr, xzr, [x1], #16
    b       1b
2:
    /* Relocate for VA = PAGE_OFFSET + PA. */
    mov     x0, x20
    mov     x1, #PAGE_OFFSET_HI
    lsl     x1, x1, #48
    add     x1, x1, x20
    mov     x21, x1                 /* x21 = high VA of the image */
    bl      apply_relocations

    /* Boot tables: L0[0] -> L1; L1[pa >> 30] = 1 GiB block at pa. */
    adr_l   x1, BOOT_L0
    adr_l   x2, BOOT_L1
    orr     x3, x2, #3              /* table descriptor */
    str     x3, [x1]
    lsr     x4, x20, #30
    lsl     x5, x4, #30
    mov     x6, #BLOCK_ATTRS
    orr     x5, x5, x6
    str     x5, [x2, x4, lsl #3]
    dsb     sy

    set_mair_tcr
    msr     ttbr0_el1, x1
    msr     ttbr1_el1, x1
    isb
    tlbi    vmalle1
    dsb     nsh
    isb
    mrs     x3, sctlr_el1
    mov     x4, #((1 << 0) | (1 << 2) | (1 << 12))  /* M, C, I */
    orr     x3, x3, x4
    msr     sctlr_el1, x3
    isb

    ldr     x3, =high_entry         /* absolute: relocated to the high VA */
    br      x3

high_entry:
    adr_l   x1, KERNEL_STACKS
    add     x1, x1, #KERNEL_STACK_SIZE
    mov     sp, x1
    adr_l   x1, kernel_vectors
    msr     vbar_el1, x1
    isb
    mov     x0, x19                 /* DTB (physical) */
    mov     x1, x20                 /* load address (physical) */
    adr_l   x2, __image_end
    bl      kernel_main
3:  wfe
    b       3b
    .cfi_endproc

/* apply_relocations(x0 = load address, x1 = value added to each addend). */
apply_relocations:
    .cfi_startproc
    adr_l   x2, __rela_start
    adr_l   x3, __rela_end
1:  cmp     x2, x3
    b.hs    3f
    ldp     x4, x5, [x2], #16
    ldr     x6, [x2], #8
    cmp     x5, #1027               /* R_AARCH64_RELATIVE */
    b.ne    2f
    add     x6, x6, x1
    str     x6, [x0, x4]
    b       1b
2:  wfe
    b       2b
3:  ret
    .cfi_endproc

/*
 * secondary_entry: where PSCI CPU_ON starts a secondary CPU (x0 = context
 * id = its logical number), at EL1 with the MMU off. Same MMU set-up as
 * the boot CPU, but TTBR1 gets the kernel's real tables (mmu::init left
 * their address in SECONDARY_TTBR1, cleaned to memory for this
 * cache-off reader), then run on its own boot stack.
 */
.text
.global secondary_entry
secondary_entry:
    .cfi_startproc
    .cfi_undefined x30
    mov     x19, x0
    set_mair_tcr
    adr_l   x1, BOOT_L0
    msr     ttbr0_el1, x1
    adr_l   x2, SECONDARY_TTBR1
    ldr     x2, [x2]
    msr     ttbr1_el1, x2
    isb
    tlbi    vmalle1
    dsb     nsh
    isb
    mrs     x3, sctlr_el1
    mov     x4, #((1 << 0) | (1 << 2) | (1 << 12))  /* M, C, I */
    orr     x3, x3, x4
    msr     sctlr_el1, x3
    isb
    ldr     x3, =secondary_high
    br      x3

secondary_high:
    adr_l   x1, KERNEL_STACKS
    mov     x2, #KERNEL_STACK_SIZE
    madd    x1, x19, x2, x1
    add     x1, x1, x2
    mov     sp, x1
    adr_l   x1, kernel_vectors
    msr     vbar_el1, x1
    isb
    mov     x0, x19
    bl      secondary_main
4:  wfe
    b       4b
    .cfi_endproc

/*
 * Hypervisor entry: the arm64 Image header, the drop from EL3 (if a board
 * starts us there), self-relocation and the jump into Rust; and the two
 * MMU switches Rust calls (enable_mmu, replace_ttbr0).
 *
 * Boot protocol (Linux Documentation/arch/arm64/booting.rst): x0 = physical
 * address of the DTB, x1-x3 = 0, MMU off, D-cache off or cleaned, image at a
 * 2 MiB aligned address + text_offset. We may be entered at EL3, EL2 or EL1.
 *
 * Until hyp_main turns the MMU on (boot.rs), every data access is
 * Device-nGnRnE: this code and the early Rust code use plain loads and
 * stores only, never an exclusive or atomic (ARM ARM B2.9).
 *
 * Call frame information (.cfi_*, .debug_frame): the boot paths are the
 * outermost frames (x30 undefined), so gdb's backtraces end there.
 */


.section .text.head, "ax"
.global _start
_start:
    .cfi_startproc
    .cfi_undefined x30
    /* Image header: 64 bytes. */
    b       primary_entry           /* code0 */
    .long   0                       /* code1 */
    .quad   0                       /* text_offset */
    .quad   __image_size            /* image_size, including BSS */
    .quad   0xa                     /* flags: LE, 4K pages, place anywhere */
    .quad   0                       /* res2 */
    .quad   0                       /* res3 */
    .quad   0                       /* res4 */
    .ascii  "ARM\x64"               /* magic */
    .long   0                       /* res5 (PE header offset) */
    .cfi_endproc

.text
primary_entry:
    .cfi_startproc
    .cfi_undefined x30
    mov     x19, x0                 /* x19 = DTB for the whole boot path */

    mrs     x1, CurrentEL
    ubfx    x1, x1, #2, #2
    cmp     x1, #3
    b.eq    drop_from_el3
    cmp     x1, #2
    b.eq    at_el2
    /* At EL1 (or EL0): no hypervisor possible. Rust prints why and powers off. */
    mov     x20, #1
    b       common_setup

drop_from_el3:
    /* SCR_EL3: NS, SMD clear (SMC allowed), HCE (HVC enabled), RW (EL2 is AArch64). */
    mov     x1, #((1 << 0) | (1 << 8) | (1 << 10))
    msr     scr_el3, x1
    mov     x1, #0x3c9              /* SPSR: EL2h, DAIF masked */
    msr     spsr_el3, x1
    adr     x1, at_el2
    msr     elr_el3, x1
    isb
    eret

at_el2:
    mov     x20, #0
    /* SCTLR_EL2: RES1 bits only, MMU and caches off, little-endian. */
    ldr     x1, =0x30c50830
    msr     sctlr_el2, x1
    /* No per-CPU data yet (smp::cpu_index reads it; UNKNOWN at reset). */
    msr     tpidr_el2, xzr
    isb

common_setup:
    /* Zero BSS (it holds the boot stack, so before any call). */
    adr_l   x1, __bss_start
    adr_l   x2, __bss_end
1:  cmp     x1, x2
    b.hs    2f
    stp     xzr, xzr, [x1], #16
    b       1b
2:
    /*
     * Apply R_AARCH64_RELATIVE relocations for where we were loaded. With
     * the MMU and D-cache off these stores (and the BSS zeroing above) go
     * to memory; enable_mmu invalidates the image's cache lines before the
     * cache is turned on, so no stale line (the loader's, cleaned to PoC
     * per booting.rst, or a speculative fill) can hide them.
     */
    adr_l   x0, __image_start       /* load address = offset to add */
    mov     x1, x0
    bl      apply_relocations

    /* Boot stack: the top of CPU 0's stack. */
    adr_l   x1, BOOT_STACKS
    add     x1, x1, #BOOT_STACK_SIZE
    mov     sp, x1

    mov     x0, x19                 /* DTB */
    adr_l   x1, __image_start       /* image base */
    adr_l   x2, __image_end
    mov     x3, x20                 /* 1 if we started below EL2 */
    bl      hyp_main
3:  wfe
    b       3b
    .cfi_endproc

/*
 * apply_relocations(x0 = load address, x1 = value to add to each addend)
 * Walks .rela.dyn; every entry must be R_AARCH64_RELATIVE (1027), which is
 * all a static PIE has. Clobbers x2-x7.
 */
.global apply_relocations
apply_relocations:
    .cfi_startproc
    adr_l   x2, __rela_start
    adr_l   x3, __rela_end
1:  cmp     x2, x3
    b.hs    3f
    ldp     x4, x5, [x2], #16       /* r_offset, r_info */
    ldr     x6, [x2], #8            /* r_addend */
    cmp     x5, #1027
    b.ne    2f
    add     x6, x6, x1
    str     x6, [x0, x4]
    b       1b
2:  /* Unknown relocation type: stop here rather than run a broken image. */
    wfe
    b       2b
3:  ret
    .cfi_endproc

/*
 * Secondary CPU entry, started by PSCI CPU_ON with x0 = &SecondaryBoot
 * (see arch/aarch64/smp.rs). That block was cleaned to the point of
 * coherency, so it can be read with the MMU and caches off. The MMU and
 * caches go on here, with the boot CPU's full map, before any Rust code
 * (and so before any lock or atomic). This CPU wrote nothing with its
 * caches off, and its caches come out of reset invalid, so no maintenance
 * is needed beyond the TLB and I-cache.
 */
.global secondary_entry
secondary_entry:
    .cfi_startproc
    .cfi_undefined x30
    mov     x19, x0
    ldr     x1, =0x30c50830
    msr     sctlr_el2, x1
    isb
    ldp     x1, x2, [x19, #0]       /* mair, tcr */
    msr     mair_el2, x1
    msr     tcr_el2, x2
    ldp     x1, x2, [x19, #16]      /* ttbr0, sctlr */
    msr     ttbr0_el2, x1
    isb
    tlbi    alle2
    dsb     nsh
    isb
    msr     sctlr_el2, x2
    isb
    ic      iallu                   /* as __enable_mmu in Linux head.S */
    dsb     nsh
    isb
    /* MMU and caches on: Rust (locks, atomics) may run from here. */
    ldp     x1, x2, [x19, #32]      /* stack top, vbar */
    mov     sp, x1
    msr     vbar_el2, x2
    isb
    ldr     x0, [x19, #48]          /* cpu index */
    bl      secondary_main
4:  wfe
    b       4b
    .cfi_endproc

/*
 * enable_mmu(x0 = TTBR0_EL2, x1 = MAIR_EL2, x2 = TCR_EL2,
 *            x3 = start, x4 = end of the range written with the MMU off)
 * Turns the EL2 MMU, D-cache and I-cache on, from MMU off, with an identity
 * map of the running code. Touches no memory (no stack) from the first
 * invalidation to the end. The sequence is Linux's (head.S create_idmap's
 * dcache_inval_poc, then __enable_mmu):
 * 1. DMB SY (Device stores are not ordered with DC by VA otherwise);
 *    DC IVAC over [x3, x4): drop any line a cache may hold for memory we
 *    wrote with the caches off (image relocation, BSS, the tables, the
 *    stack), so that it is read back from memory once the cache is on;
 *    DSB SY: done, and the tables are in memory for the walker (whose
 *    accesses are cacheable, TCR_EL2.IRGN0/ORGN0 = WB).
 * 2. MAIR, TCR, TTBR0; ISB; TLBI ALLE2 (nothing stale from before reset
 *    or from the loader); DSB NSH; ISB.
 * 3. SCTLR_EL2 |= M | C | SA | I; ISB; IC IALLU (instructions fetched
 *    before from the PoC may be stale); DSB NSH; ISB.
 */
.global enable_mmu
enable_mmu:
    .cfi_startproc
    dmb     sy                      /* the MMU-off stores before the DC IVACs */
    mrs     x5, ctr_el0
    ubfx    x5, x5, #16, #4         /* DminLine: log2(words) */
    mov     x6, #4
    lsl     x5, x6, x5              /* D-cache line size in bytes */
    sub     x6, x5, #1
    bic     x3, x3, x6
1:  cmp     x3, x4
    b.hs    2f
    dc      ivac, x3
    add     x3, x3, x5
    b       1b
2:  dsb     sy
    msr     mair_el2, x1
    msr     tcr_el2, x2
    msr     ttbr0_el2, x0
    isb
    tlbi    alle2
    dsb     nsh
    isb
    mrs     x5, sctlr_el2
    mov     x6, #0x100d             /* I (12), SA (3), C (2), M (0) */
    orr     x5, x5, x6
    msr     sctlr_el2, x5
    isb
    ic      iallu
    dsb     nsh
    isb
    ret
    .cfi_endproc

/*
 * replace_ttbr0(x0 = new TTBR0_EL2): moves EL2 from one identity map to
 * another (the early map to the full one). The two map the running code
 * with the same attributes but possibly with different block sizes, and a
 * TLB holding entries of both for one address may raise a TLB conflict
 * abort (ARM ARM D8, "TLB conflict aborts", "Using break-before-make").
 * So, as pKVM's __pkvm_init_switch_pgd does: MMU off (no data access in
 * between: no memory is touched, interrupts are masked at EL2), TLBI,
 * TTBR0, MMU back on. The caches stay on and keep their (coherent)
 * contents; DSB ISH first makes the new tables' stores visible to the
 * walker.
 */
.global replace_ttbr0
replace_ttbr0:
    .cfi_startproc
    dsb     ish
    mrs     x1, sctlr_el2
    bic     x2, x1, #1              /* M = 0 */
    msr     sctlr_el2, x2
    isb
    tlbi    alle2
    msr     ttbr0_el2, x0
    dsb     nsh
    isb
    msr     sctlr_el2, x1
    isb
    ic      iallu
    dsb     nsh
    isb
    ret
    .cfi_endproc

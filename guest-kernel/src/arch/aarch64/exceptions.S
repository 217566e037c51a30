/*
 * EL1 exception vectors, the trap frame, the return to EL0 (eret), the
 * context switch (cpu_switch_to) and the first return of a new task
 * (ret_from_fork). Linux: arch/arm64/kernel/entry.S.
 *
 * Vector table (ARM ARM D1.10.2): 16 slots of 0x80 bytes: current EL with
 * SP_EL0, current EL with SP_ELx, lower EL AArch64, lower EL AArch32; each
 * with sync, IRQ, FIQ, SError. Each slot makes room for a TrapFrame on the
 * current kernel stack, saves x0/x1, puts the slot number in x1 and
 * branches to the common save (4 of its 32 instructions).
 *
 * Kernel stacks: a task at EL0 has an empty kernel stack, so an exception
 * from EL0 builds its TrapFrame at the top of the task's kernel stack
 * (SP_EL1 is left there by the eret). An exception from EL1 pushes a frame
 * below the interrupted code's stack.
 *
 * Call frame information (.cfi_*, in .debug_frame: debuggers only) lets
 * gdb unwind through trap_entry into the interrupted code: the TrapFrame
 * holds the caller's registers, its sp and, in the return-address column
 * (x30), the interrupted pc (ELR). So `bt` from a handler ends
 * `trap_entry` then the pc the exception interrupted (docs/debugging.md).
 */


.equ FRAME_SIZE, 8 * 36             /* struct TrapFrame */
.equ F_SP, 8 * 31
.equ F_ELR, 8 * 32
.equ F_ESR, 8 * 34

/*
 * trap_frame_cfi: CFI for "sp -> a complete TrapFrame": CFA = sp +
 * FRAME_SIZE; the caller's x0-x29 and sp are saved in the frame, and its
 * pc (the return-address column, x30) is ELR. So gdb shows ELR, not the
 * interrupted x30, as the caller's x30: that one is in the frame's x[30].
 */
.macro trap_frame_cfi
    .cfi_def_cfa sp, FRAME_SIZE
    .irp r, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29
    .cfi_offset \r, 8 * \r - FRAME_SIZE
    .endr
    .cfi_offset 31, F_SP - FRAME_SIZE
    .cfi_offset 30, F_ELR - FRAME_SIZE
.endm

.macro ventry kind
    .balign 0x80
    sub     sp, sp, #FRAME_SIZE
    stp     x0, x1, [sp, #8 * 0]
    mov     x1, #\kind
    b       trap_entry
.endm

/*
 * trap_entry: x1 = vector slot, sp -> TrapFrame with x0/x1 saved. Saves
 * the rest, calls handle_exception(frame, slot) with the C ABI, and
 * returns through ret_from_exception. Interrupts stay masked (PSTATE.I
 * set by the exception) until the Rust handler decides otherwise.
 */
trap_entry:
    .cfi_startproc
    /* Until ELR is saved there is no caller to show. */
    .cfi_def_cfa sp, FRAME_SIZE
    .cfi_undefined x30
    stp     x2, x3, [sp, #8 * 2]
    stp     x4, x5, [sp, #8 * 4]
    stp     x6, x7, [sp, #8 * 6]
    stp     x8, x9, [sp, #8 * 8]
    stp     x10, x11, [sp, #8 * 10]
    stp     x12, x13, [sp, #8 * 12]
    stp     x14, x15, [sp, #8 * 14]
    stp     x16, x17, [sp, #8 * 16]
    stp     x18, x19, [sp, #8 * 18]
    stp     x20, x21, [sp, #8 * 20]
    stp     x22, x23, [sp, #8 * 22]
    stp     x24, x25, [sp, #8 * 24]
    stp     x26, x27, [sp, #8 * 26]
    stp     x28, x29, [sp, #8 * 28]
    str     x30, [sp, #8 * 30]
    /* Slots 8..15 come from EL0: the interrupted sp is SP_EL0. */
    cmp     x1, #8
    b.lo    1f
    mrs     x2, sp_el0
    b       2f
1:  add     x2, sp, #FRAME_SIZE
2:  str     x2, [sp, #F_SP]
    mrs     x2, elr_el1
    mrs     x3, spsr_el1
    stp     x2, x3, [sp, #F_ELR]
    mrs     x2, esr_el1
    mrs     x3, far_el1
    stp     x2, x3, [sp, #F_ESR]
    /* The interrupted context, as gdb should see trap_entry's caller. */
    trap_frame_cfi
    mov     x0, sp
    mov     x29, #0                 /* terminate frame-pointer walks */
    bl      handle_exception
    /* fall through */

/*
 * ret_from_exception: sp -> TrapFrame. Restores it and erets to the level
 * SPSR_EL1 names; a return to EL0 also restores SP_EL0. Runs with
 * interrupts masked so ELR/SPSR cannot be clobbered.
 */
.global ret_from_exception
ret_from_exception:
    msr     daifset, #0xf
    ldp     x2, x3, [sp, #F_ELR]
    msr     elr_el1, x2
    msr     spsr_el1, x3
    tst     x3, #0xf                /* M[3:0] = 0: EL0t */
    b.ne    1f
    ldr     x2, [sp, #F_SP]
    msr     sp_el0, x2
1:  ldp     x0, x1, [sp, #8 * 0]
    ldp     x2, x3, [sp, #8 * 2]
    ldp     x4, x5, [sp, #8 * 4]
    ldp     x6, x7, [sp, #8 * 6]
    ldp     x8, x9, [sp, #8 * 8]
    ldp     x10, x11, [sp, #8 * 10]
    ldp     x12, x13, [sp, #8 * 12]
    ldp     x14, x15, [sp, #8 * 14]
    ldp     x16, x17, [sp, #8 * 16]
    ldp     x18, x19, [sp, #8 * 18]
    ldp     x20, x21, [sp, #8 * 20]
    ldp     x22, x23, [sp, #8 * 22]
    ldp     x24, x25, [sp, #8 * 24]
    ldp     x26, x27, [sp, #8 * 26]
    ldp     x28, x29, [sp, #8 * 28]
    ldr     x30, [sp, #8 * 30]
    add     sp, sp, #FRAME_SIZE
    eret
    .cfi_endproc

/*
 * cpu_switch_to(prev: *mut CpuContext, next: *const CpuContext)
 * (arch/arm64/kernel/entry.S): saves the callee-saved registers, sp and
 * the return address of prev, the user thread pointer TPIDR_EL0 (Linux
 * does that in __switch_to → tls_thread_switch) and the FP/SIMD registers
 * (EL0 state: the kernel itself is built soft-float and never touches
 * them), then loads next's and returns on next's stack. The caller has
 * already pointed TPIDR_EL1 at next's thread.
 *
 * CpuContext: x19..x28, x29, x30 (pc), sp, tpidr_el0, then q0..q31, fpcr,
 * fpsr.
 */
.arch_extension fp
.arch_extension simd
.global cpu_switch_to
cpu_switch_to:
    .cfi_startproc
    stp     x19, x20, [x0, #16 * 0]
    stp     x21, x22, [x0, #16 * 1]
    stp     x23, x24, [x0, #16 * 2]
    stp     x25, x26, [x0, #16 * 3]
    stp     x27, x28, [x0, #16 * 4]
    stp     x29, x30, [x0, #16 * 5]
    mov     x9, sp
    mrs     x10, tpidr_el0
    stp     x9, x10, [x0, #16 * 6]
    add     x9, x0, #16 * 7
    stp     q0, q1, [x9, #32 * 0]
    stp     q2, q3, [x9, #32 * 1]
    stp     q4, q5, [x9, #32 * 2]
    stp     q6, q7, [x9, #32 * 3]
    stp     q8, q9, [x9, #32 * 4]
    stp     q10, q11, [x9, #32 * 5]
    stp     q12, q13, [x9, #32 * 6]
    stp     q14, q15, [x9, #32 * 7]
    stp     q16, q17, [x9, #32 * 8]
    stp     q18, q19, [x9, #32 * 9]
    stp     q20, q21, [x9, #32 * 10]
    stp     q22, q23, [x9, #32 * 11]
    stp     q24, q25, [x9, #32 * 12]
    stp     q26, q27, [x9, #32 * 13]
    stp     q28, q29, [x9, #32 * 14]
    stp     q30, q31, [x9, #32 * 15]
    mrs     x10, fpcr
    mrs     x11, fpsr
    add     x9, x9, #32 * 16
    stp     x10, x11, [x9]

    add     x9, x1, #16 * 7
    ldp     q0, q1, [x9, #32 * 0]
    ldp     q2, q3, [x9, #32 * 1]
    ldp     q4, q5, [x9, #32 * 2]
    ldp     q6, q7, [x9, #32 * 3]
    ldp     q8, q9, [x9, #32 * 4]
    ldp     q10, q11, [x9, #32 * 5]
    ldp     q12, q13, [x9, #32 * 6]
    ldp     q14, q15, [x9, #32 * 7]
    ldp     q16, q17, [x9, #32 * 8]
    ldp     q18, q19, [x9, #32 * 9]
    ldp     q20, q21, [x9, #32 * 10]
    ldp     q22, q23, [x9, #32 * 11]
    ldp     q24, q25, [x9, #32 * 12]
    ldp     q26, q27, [x9, #32 * 13]
    ldp     q28, q29, [x9, #32 * 14]
    ldp     q30, q31, [x9, #32 * 15]
    add     x9, x9, #32 * 16
    ldp     x10, x11, [x9]
    msr     fpcr, x10
    msr     fpsr, x11
    ldp     x19, x20, [x1, #16 * 0]
    ldp     x21, x22, [x1, #16 * 1]
    ldp     x23, x24, [x1, #16 * 2]
    ldp     x25, x26, [x1, #16 * 3]
    ldp     x27, x28, [x1, #16 * 4]
    ldp     x29, x30, [x1, #16 * 5]
    ldp     x9, x10, [x1, #16 * 6]
    mov     sp, x9
    msr     tpidr_el0, x10
    ret
    .cfi_endproc

/*
 * ret_from_fork: where a new task first runs (its CpuContext's pc).
 * x19 = kernel-thread function or 0, x20 = its argument, x21/x22 = the
 * CLONE_CHILD_SETTID address (or 0) and the tid to store there; sp -> the
 * TrapFrame slot at the top of its kernel stack. schedule_tail ends the
 * switch (releases the run-queue lock) and stores the tid; a kernel
 * thread's function returns only once kernel_execve has written a user
 * TrapFrame; then, as for a forked user task, that frame is restored and
 * we eret to EL0.
 */
.global ret_from_fork
ret_from_fork:
    .cfi_startproc
    .cfi_undefined x30              /* a new task's outermost frame */
    mov     x0, x21
    mov     x1, x22
    bl      schedule_tail
    cbz     x19, 1f
    mov     x0, x20
    blr     x19
1:  b       ret_from_exception
    .cfi_endproc

.section .text.vectors, "ax"
.balign 0x800
.global kernel_vectors
kernel_vectors:
    ventry 0        /* EL1t sync */
    ventry 1        /* EL1t IRQ */
    ventry 2        /* EL1t FIQ */
    ventry 3        /* EL1t SError */
    ventry 4        /* EL1h sync */
    ventry 5        /* EL1h IRQ */
    ventry 6        /* EL1h FIQ */
    ventry 7        /* EL1h SError */
    ventry 8        /* EL0 AArch64 sync */
    ventry 9        /* EL0 AArch64 IRQ */
    ventry 10       /* EL0 AArch64 FIQ */
    ventry 11       /* EL0 AArch64 SError */
    ventry 12       /* EL0 AArch32 sync */
    ventry 13       /* EL0 AArch32 IRQ */
    ventry 14       /* EL0 AArch32 FIQ */
    ventry 15       /* EL0 AArch32 SError */

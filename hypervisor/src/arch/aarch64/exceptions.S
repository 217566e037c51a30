/*
 * EL2 exception vectors and the world switch.
 *
 * The shape is KVM's nVHE one (arch/arm64/kvm/hyp/entry.S):
 *
 *   exit = __guest_enter(&vcpu.regs, &cpu.host)
 *
 * saves the host's callee-saved registers and stack pointer, loads the
 * guest's general registers, PC and PSTATE, and ERETs to EL1. The next
 * exception from the guest lands in a "lower EL" vector below, which stores
 * the guest's registers back and returns from __guest_enter with the exit
 * kind in x0, as if it were an ordinary function call. Everything else
 * (EL1 system registers, stage-2, vGIC, timer) is switched by Rust code
 * around that call, and only when another vCPU takes over the CPU.
 *
 * TPIDR_EL2 holds this CPU's HostRegs; HostRegs.guest points to the
 * GuestRegs of the vCPU that is running. Layouts: arch/aarch64/switch.rs.
 *
 * The fast path (KVM's fixup_guest_exit, Hafnium's sysreg fast path): a
 * synchronous exit first calls hyp_fast_exit(HostRegs.fast), Rust with the
 * C ABI on the host's stack (arch/aarch64/fastpath.rs). If it answered the
 * exit (returns 0), the guest's registers are loaded again and the guest
 * resumed at once: the host's callee-saved registers are neither restored
 * nor saved again, and the run loop does not run.
 *
 * Call frame information (.cfi_*, .debug_frame) for gdb: an exit handler's
 * backtrace runs through Rust frames only (__guest_enter has returned by
 * then) down to the boot path; the guest's pc is in GuestRegs, not on the
 * stack. guest_exit shows no caller until the host's registers are back; a
 * crash frame unwinds into the EL2 code that faulted (ELR as its pc).
 */


.equ GUEST_PC,      8 * 31
.equ GUEST_PSTATE,  8 * 32
.equ HOST_SP,       8 * 13
.equ HOST_GUEST,    8 * 14
.equ HOST_FAST,     8 * 15

.equ EXIT_SYNC,     0
.equ EXIT_IRQ,      1
.equ EXIT_FIQ,      2
.equ EXIT_SERROR,   3
.equ EXIT_AARCH32,  4

/* u64 __guest_enter(GuestRegs *x0, HostRegs *x1, FastCtx *x2) */
.global __guest_enter
__guest_enter:
    .cfi_startproc
    str     x2, [x1, #HOST_FAST]
    /* Host callee-saved state, per AAPCS64: x18-x30 and sp. */
    stp     x18, x19, [x1, #8 * 0]
    stp     x20, x21, [x1, #8 * 2]
    stp     x22, x23, [x1, #8 * 4]
    stp     x24, x25, [x1, #8 * 6]
    stp     x26, x27, [x1, #8 * 8]
    stp     x28, x29, [x1, #8 * 10]
    str     x30, [x1, #8 * 12]
    mov     x2, sp
    str     x2, [x1, #HOST_SP]
    str     x0, [x1, #HOST_GUEST]
    msr     tpidr_el2, x1

    /* Expects x0 = GuestRegs; the host's state is saved. */
guest_load:
    /* x20-x28 here; the rest is the fast exit's reload, which follows. */
    ldp     x20, x21, [x0, #8 * 20]
    ldp     x22, x23, [x0, #8 * 22]
    ldp     x24, x25, [x0, #8 * 24]
    ldp     x26, x27, [x0, #8 * 26]
    ldr     x28, [x0, #8 * 28]

/*
 * Resumes the guest after a fast exit: x0 = GuestRegs. x20-x28 were
 * neither saved nor touched (see guest_exit), so only the rest is loaded.
 */
guest_load_volatile:
    /* Guest PC and PSTATE go where ERET takes them from. */
    ldp     x2, x3, [x0, #GUEST_PC]
    msr     elr_el2, x2
    msr     spsr_el2, x3
    ldp     x2, x3, [x0, #8 * 2]
    ldp     x4, x5, [x0, #8 * 4]
    ldp     x6, x7, [x0, #8 * 6]
    ldp     x8, x9, [x0, #8 * 8]
    ldp     x10, x11, [x0, #8 * 10]
    ldp     x12, x13, [x0, #8 * 12]
    ldp     x14, x15, [x0, #8 * 14]
    ldp     x16, x17, [x0, #8 * 16]
    ldp     x18, x19, [x0, #8 * 18]
    ldp     x29, x30, [x0, #8 * 29]
    /* x0 last since it is the base. */
    ldp     x0, x1, [x0, #8 * 0]
    eret
    dsb     nsh                     /* no speculation past ERET (SB is */
    isb                             /* not in every core we support)  */
    .cfi_endproc

/*
 * Common exit path. Expects: [sp] = guest x0, x1 (pushed by the vector),
 * x0 = exit kind. Leaves: guest state in GuestRegs, host state restored,
 * x0 = exit kind, returning to __guest_enter's caller.
 *
 * Only the registers the fast path's Rust code may clobber are saved
 * first (AAPCS64's caller-saved x0-x18, and x19 for free in the pair;
 * x29 and x30): hyp_fast_exit keeps x20-x28 as the C ABI requires, so
 * they still hold the guest's values when it returns, and a fast exit
 * reloads only what was saved (guest_load_volatile). An exit that goes
 * to the run loop saves x20-x28 too before the host's registers come
 * back. Hafnium's volatile-only exit; the fast path leaves an access
 * whose register is one of x20-x28 to the run loop
 * (fastpath::handle).
 */
guest_exit:
    .cfi_startproc
    .cfi_undefined x30              /* the guest was interrupted, not a caller */
    mrs     x1, tpidr_el2
    ldr     x1, [x1, #HOST_GUEST]
    stp     x2, x3, [x1, #8 * 2]
    stp     x4, x5, [x1, #8 * 4]
    stp     x6, x7, [x1, #8 * 6]
    stp     x8, x9, [x1, #8 * 8]
    stp     x10, x11, [x1, #8 * 10]
    stp     x12, x13, [x1, #8 * 12]
    stp     x14, x15, [x1, #8 * 14]
    stp     x16, x17, [x1, #8 * 16]
    stp     x18, x19, [x1, #8 * 18]
    stp     x29, x30, [x1, #8 * 29]
    ldp     x2, x3, [sp], #16
    stp     x2, x3, [x1, #8 * 0]
    mrs     x2, elr_el2
    mrs     x3, spsr_el2
    stp     x2, x3, [x1, #GUEST_PC]

    /* A synchronous exit the fast path answers goes straight back. SP is
     * the host's, whose frame is above it. */
    cbnz    x0, 3f
    mrs     x1, tpidr_el2
    ldr     x0, [x1, #HOST_FAST]
    bl      hyp_fast_exit
    cbnz    x0, 1f
    mrs     x1, tpidr_el2
    ldr     x0, [x1, #HOST_GUEST]
    b       guest_load_volatile
1:  mov     x0, #EXIT_SYNC

    /* To the run loop: the rest of the guest's registers. */
3:  mrs     x1, tpidr_el2
    ldr     x1, [x1, #HOST_GUEST]
    stp     x20, x21, [x1, #8 * 20]
    stp     x22, x23, [x1, #8 * 22]
    stp     x24, x25, [x1, #8 * 24]
    stp     x26, x27, [x1, #8 * 26]
    str     x28, [x1, #8 * 28]

    mrs     x1, tpidr_el2
    ldp     x18, x19, [x1, #8 * 0]
    ldp     x20, x21, [x1, #8 * 2]
    ldp     x22, x23, [x1, #8 * 4]
    ldp     x24, x25, [x1, #8 * 6]
    ldp     x26, x27, [x1, #8 * 8]
    ldp     x28, x29, [x1, #8 * 10]
    ldr     x30, [x1, #8 * 12]
    ldr     x2, [x1, #HOST_SP]
    mov     sp, x2
    /* Back in __guest_enter's caller's frame: it returns there. */
    .cfi_def_cfa sp, 0
    .cfi_same_value x30
    ret
    .cfi_endproc

/* A vector slot for an exit from the guest: 3 of 32 instructions. */
.macro guest_vector kind
    .balign 0x80
    stp     x0, x1, [sp, #-16]!
    mov     x0, #\kind
    b       guest_exit
.endm

/*
 * A vector slot for an exception taken from EL2 itself: a hypervisor bug.
 * Saves every register in a CrashFrame on the stack and calls
 * hyp_crash(frame, kind), which prints a report and never returns.
 */
.macro crash_vector kind
    .balign 0x80
    sub     sp, sp, #8 * 36
    stp     x0, x1, [sp, #8 * 0]
    mov     x0, #\kind
    b       crash_common
.endm

crash_common:
    .cfi_startproc
    .cfi_def_cfa sp, 8 * 36
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
    add     x2, sp, #8 * 36
    str     x2, [sp, #8 * 31]
    mrs     x2, elr_el2
    mrs     x3, spsr_el2
    stp     x2, x3, [sp, #8 * 32]
    mrs     x2, esr_el2
    mrs     x3, far_el2
    stp     x2, x3, [sp, #8 * 34]
    /* The faulting context is the caller: its x0-x29 and sp are in the
     * CrashFrame, its pc (the return-address column, x30) is ELR. */
    .irp r, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29
    .cfi_offset \r, 8 * \r - 8 * 36
    .endr
    .cfi_offset 31, 8 * 31 - 8 * 36
    .cfi_offset 30, 8 * 32 - 8 * 36
    mov     x1, x0
    mov     x0, sp
    bl      hyp_crash
1:  wfe
    b       1b
    .cfi_endproc

.section .text.vectors, "ax"
.balign 0x800
.global hyp_vectors
hyp_vectors:
    /* Current EL with SP_EL0: never used. */
    crash_vector 0
    crash_vector 1
    crash_vector 2
    crash_vector 3
    /* Current EL with SP_ELx: a fault in the hypervisor. */
    crash_vector 4
    crash_vector 5
    crash_vector 6
    crash_vector 7
    /* Lower EL, AArch64: the guest. */
    guest_vector EXIT_SYNC
    guest_vector EXIT_IRQ
    guest_vector EXIT_FIQ
    guest_vector EXIT_SERROR
    /* Lower EL, AArch32: a guest's 32-bit EL0 program (EL1 is always
     * AArch64, HCR_EL2.RW = 1). Same handling; the syndrome formats of the
     * exits we act on do not depend on the register width. */
    guest_vector EXIT_SYNC
    guest_vector EXIT_IRQ
    guest_vector EXIT_FIQ
    guest_vector EXIT_SERROR

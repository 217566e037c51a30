//! The arch half of signal delivery (Linux arch/arm64/kernel/signal.c):
//! the user registers in and out of the trap frame, and the live FP/SIMD
//! registers, which hold the current task's EL0 state while it is in the
//! kernel (the kernel is built soft-float and never touches them; the
//! context switch saves them). The frame's layout is pure:
//! `task/sigframe.rs`.

use super::trap::TrapFrame;
use crate::task::sigframe::{FpRegs, UserRegs};

core::arch::global_asm!(
    ".arch_extension fp",
    ".arch_extension simd",
    // fpsimd_save(dst: *mut FpRegs): q0-q31, then fpsr, fpcr (u32 each).
    ".global fpsimd_save",
    "fpsimd_save:",
    "stp q0, q1, [x0, #32 * 0]",
    "stp q2, q3, [x0, #32 * 1]",
    "stp q4, q5, [x0, #32 * 2]",
    "stp q6, q7, [x0, #32 * 3]",
    "stp q8, q9, [x0, #32 * 4]",
    "stp q10, q11, [x0, #32 * 5]",
    "stp q12, q13, [x0, #32 * 6]",
    "stp q14, q15, [x0, #32 * 7]",
    "stp q16, q17, [x0, #32 * 8]",
    "stp q18, q19, [x0, #32 * 9]",
    "stp q20, q21, [x0, #32 * 10]",
    "stp q22, q23, [x0, #32 * 11]",
    "stp q24, q25, [x0, #32 * 12]",
    "stp q26, q27, [x0, #32 * 13]",
    "stp q28, q29, [x0, #32 * 14]",
    "stp q30, q31, [x0, #32 * 15]",
    "mrs x1, fpsr",
    "mrs x2, fpcr",
    "add x3, x0, #512",
    "stp w1, w2, [x3]",
    "ret",
    // fpsimd_load(src: *const FpRegs)
    ".global fpsimd_load",
    "fpsimd_load:",
    "ldp q0, q1, [x0, #32 * 0]",
    "ldp q2, q3, [x0, #32 * 1]",
    "ldp q4, q5, [x0, #32 * 2]",
    "ldp q6, q7, [x0, #32 * 3]",
    "ldp q8, q9, [x0, #32 * 4]",
    "ldp q10, q11, [x0, #32 * 5]",
    "ldp q12, q13, [x0, #32 * 6]",
    "ldp q14, q15, [x0, #32 * 7]",
    "ldp q16, q17, [x0, #32 * 8]",
    "ldp q18, q19, [x0, #32 * 9]",
    "ldp q20, q21, [x0, #32 * 10]",
    "ldp q22, q23, [x0, #32 * 11]",
    "ldp q24, q25, [x0, #32 * 12]",
    "ldp q26, q27, [x0, #32 * 13]",
    "ldp q28, q29, [x0, #32 * 14]",
    "ldp q30, q31, [x0, #32 * 15]",
    "add x3, x0, #512",
    "ldp w1, w2, [x3]",
    "msr fpsr, x1",
    "msr fpcr, x2",
    "ret",
);

unsafe extern "C" {
    fn fpsimd_save(dst: *mut FpRegs);
    fn fpsimd_load(src: *const FpRegs);
}

const _: () = assert!(core::mem::offset_of!(FpRegs, fpsr) == 512 && core::mem::offset_of!(FpRegs, fpcr) == 516);

/// The current task's FP/SIMD registers (`fpsimd_signal_preserve_current_state`).
pub fn fpsimd_current() -> FpRegs {
    let mut f = FpRegs::default();
    // SAFETY: stores 528 bytes into `f`, an FpRegs (offsets checked
    // above); touches only FP registers, which hold the current task's
    // user state (the kernel never uses them).
    unsafe { fpsimd_save(&mut f) };
    f
}

/// Makes `f` the current task's FP/SIMD registers (`rt_sigreturn`).
pub fn fpsimd_set_current(f: &FpRegs) {
    // SAFETY: reads the 528 bytes of `f`; writes only FP registers and
    // FPSR/FPCR, which are the current task's user state.
    unsafe { fpsimd_load(f) };
}

/// The user registers in a trap frame from EL0.
pub fn user_regs(f: &TrapFrame) -> UserRegs {
    UserRegs { x: f.x, sp: f.sp, pc: f.elr, pstate: f.spsr }
}

/// Puts `r` back into a trap frame, to be resumed at EL0. Only the
/// condition flags of PSTATE are taken: `sigframe::parse` has already
/// cleared the rest, and EL0t with DAIF clear is what `eret` returns to.
pub fn set_user_regs(f: &mut TrapFrame, r: &UserRegs) {
    f.x = r.x;
    f.sp = r.sp;
    f.elr = r.pc;
    f.spsr = r.pstate & 0xf000_0000;
}

//! The trap frame (Linux's `struct pt_regs`) and the decoding of ESR_EL1
//! (Linux asm/esr.h): what every handler of an exception reads. The
//! dispatch of the vector slots is `entry_common.rs`.
//!
//! ARM ARM D17.2.37 (ESR_ELx): EC in bits 31:26, IL in bit 25, ISS in bits
//! 24:0.

/// Registers saved by a trap vector (exceptions.S `trap_entry`); also the
/// user register state of a task while it is in the kernel.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TrapFrame {
    /// x0..x30.
    pub x: [u64; 31],
    /// The interrupted stack pointer (SP_EL0 for an exception from EL0).
    pub sp: u64,
    /// ELR_EL1: where eret resumes.
    pub elr: u64,
    /// SPSR_EL1: the PSTATE eret restores.
    pub spsr: u64,
    /// ESR_EL1 at entry.
    pub esr: u64,
    /// FAR_EL1 at entry.
    pub far: u64,
}

/// Size of a TrapFrame (FRAME_SIZE in exceptions.S).
pub const FRAME_SIZE: usize = core::mem::size_of::<TrapFrame>();
const _: () = assert!(FRAME_SIZE == 8 * 36);

/// SPSR for a fresh EL0 task: EL0t, all interrupts unmasked.
pub const SPSR_EL0T: u64 = 0;

/// ESR_EL1 exception classes the kernel handles (ARM ARM D17.2.37).
pub mod ec {
    /// Unknown reason (e.g. an undefined instruction).
    pub const UNKNOWN: u64 = 0x00;
    /// SVC in AArch64.
    pub const SVC64: u64 = 0x15;
    /// Instruction abort from a lower EL.
    pub const IABT_LOW: u64 = 0x20;
    /// Instruction abort from the current EL.
    pub const IABT_CUR: u64 = 0x21;
    /// PC alignment fault.
    pub const PC_ALIGN: u64 = 0x22;
    /// Data abort from a lower EL.
    pub const DABT_LOW: u64 = 0x24;
    /// Data abort from the current EL.
    pub const DABT_CUR: u64 = 0x25;
    /// SP alignment fault.
    pub const SP_ALIGN: u64 = 0x26;
    /// BRK instruction.
    pub const BRK64: u64 = 0x3c;
}

/// The exception class of an ESR value.
pub const fn esr_ec(esr: u64) -> u64 {
    (esr >> 26) & 0x3f
}

/// Data abort ISS: WnR, the access was a write (ARM ARM D17.2.40).
pub const fn esr_is_write(esr: u64) -> bool {
    esr & (1 << 6) != 0
}

/// Data/instruction abort ISS: the fault status code (DFSC/IFSC).
pub const fn esr_fsc(esr: u64) -> u64 {
    esr & 0x3f
}

/// True for translation (0b0001LL), access flag (0b0010LL) and permission
/// (0b0011LL) faults: the ones a page-fault handler can resolve or turn
/// into SIGSEGV. Others (alignment, external aborts) are not memory-map
/// problems.
pub const fn fsc_is_mm_fault(fsc: u64) -> bool {
    matches!(fsc >> 2, 0b0001..=0b0011)
}

/// Vector slot numbers (exceptions.S).
pub mod slot {
    pub const EL1H_SYNC: u64 = 4;
    pub const EL1H_IRQ: u64 = 5;
    pub const EL0_SYNC: u64 = 8;
    pub const EL0_IRQ: u64 = 9;
}

//! Exception handling: the trap frame, decoding of ESR_EL1, and dispatch
//! of every vector slot (exceptions.S) to its handler.
//!
//! Linux: arch/arm64/kernel/entry-common.c (`el1h_64_sync_handler`,
//! `el0t_64_sync_handler`, ...). ARM ARM D17.2.37 (ESR_ELx): EC in bits
//! 31:26, IL in bit 25, ISS in bits 24:0.

use super::psci;
use core::fmt::Write;

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

/// Rust entry for every vector slot.
#[unsafe(no_mangle)]
extern "C" fn handle_exception(frame: &mut TrapFrame, slot: u64) {
    match slot {
        slot::EL1H_SYNC => el1_sync(frame),
        slot::EL1H_IRQ => super::irq::handle_irq(frame, false),
        slot::EL0_SYNC => super::process::el0_sync(frame),
        slot::EL0_IRQ => super::irq::handle_irq(frame, true),
        _ => die(frame, slot, "unexpected exception"),
    }
}

/// A synchronous exception taken from the kernel itself. Only a data abort
/// on a user address by a uaccess instruction is expected: it may be a page
/// that is not present yet (demand paging, COW), else the extable fixup
/// makes the access return -EFAULT. A probe's refused instruction (UNDEF)
/// also resumes at its fixup.
fn el1_sync(frame: &mut TrapFrame) {
    let ec = esr_ec(frame.esr);
    if ec == ec::DABT_CUR
        && let Some(fixup) = super::uaccess::search_extable(frame.elr as usize)
    {
        let fsc = esr_fsc(frame.esr);
        if fsc_is_mm_fault(fsc)
            && (frame.far as usize) < crate::mm::mm_struct::TASK_SIZE
            && crate::kernel::fault::user_fault(frame.far as usize, esr_is_write(frame.esr), false)
        {
            return; // resolved: retry the access
        }
        frame.elr = fixup as u64;
        return;
    }
    // A fetch a probe expects to abort (`uaccess::probe_exec`): ELR_EL1 is
    // the address it could not fetch, the probe's return address (x30) is
    // in the exception table.
    if ec == ec::IABT_CUR
        && let Some(fixup) = super::uaccess::search_extable(frame.x[30] as usize)
    {
        super::uaccess::FETCH_ABORT[0].store(frame.esr, core::sync::atomic::Ordering::Relaxed);
        super::uaccess::FETCH_ABORT[1].store(frame.far, core::sync::atomic::Ordering::Relaxed);
        frame.elr = fixup as u64;
        return;
    }
    // An instruction a probe expects to be refused (`uaccess::probe_pmu`).
    if ec == ec::UNKNOWN
        && let Some(fixup) = super::uaccess::search_extable(frame.elr as usize)
    {
        frame.elr = fixup as u64;
        return;
    }
    die(frame, slot::EL1H_SYNC, "kernel fault")
}

/// An exception the kernel cannot survive: report it and power off.
pub fn die(frame: &TrapFrame, slot: u64, why: &str) -> ! {
    let mut w = Emergency;
    let _ = writeln!(
        w,
        "\n*** guest-kernel: {why} (vector {slot}): ESR_EL1 {:#x} (EC {:#x}) FAR_EL1 {:#x} ELR_EL1 {:#x} SPSR {:#x}",
        frame.esr,
        esr_ec(frame.esr),
        frame.far,
        frame.elr,
        frame.spsr
    );
    for row in 0..8 {
        for col in 0..4 {
            let n = row * 4 + col;
            if n < 31 {
                let _ = write!(w, " x{n:<2} {:#018x}", frame.x[n]);
            }
        }
        let _ = writeln!(w);
    }
    psci::system_off()
}

/// Console writer that never waits for the console lock.
pub struct Emergency;
impl Write for Emergency {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        crate::console::emergency_print(format_args!("{s}"));
        Ok(())
    }
}

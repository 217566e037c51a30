//! Exception handling: the dispatch of every vector slot (exceptions.S)
//! to its handler, the kernel's own synchronous exceptions (uaccess
//! fixups), and `die`.
//!
//! Linux: arch/arm64/kernel/entry-common.c (`el1h_64_sync_handler`,
//! `el0t_64_sync_handler`, ...) and traps.c (`die`).

use core::fmt::Write;

use super::psci;
use super::trap::{TrapFrame, ec, esr_ec, esr_fsc, esr_is_write, fsc_is_mm_fault, slot};

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

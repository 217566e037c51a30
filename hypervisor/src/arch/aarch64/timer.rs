//! The generic timer as the hypervisor uses it (ARM ARM D11): the physical
//! counter as the clock, and the EL2 physical timer (CNTHP_*, PPI 10) as
//! the one alarm of each physical CPU: the end of a vCPU's time slice, or
//! the earliest virtual-timer deadline of a vCPU that is not loaded.

use super::sysreg::{isb, read_sysreg, write_sysreg};

/// The physical count (CNTPCT_EL0).
pub fn now() -> u64 {
    isb();
    read_sysreg!(cntpct_el0)
}

/// Counter ticks per second (CNTFRQ_EL0).
pub fn frequency() -> u64 {
    read_sysreg!(cntfrq_el0).max(1)
}

/// Arms the EL2 physical timer for absolute count `deadline`.
pub fn arm_hyp(deadline: u64) {
    write_sysreg!(cnthp_cval_el2, deadline);
    write_sysreg!(cnthp_ctl_el2, 1); // ENABLE, not masked
    isb();
}

/// Arms the EL2 physical timer for `deadline` unless it is already armed
/// for an earlier one.
pub fn arm_hyp_by(deadline: u64) {
    let armed = read_sysreg!(cnthp_ctl_el2) & 1 != 0;
    if !armed || read_sysreg!(cnthp_cval_el2) > deadline {
        arm_hyp(deadline);
    }
}

/// Disarms the EL2 physical timer.
pub fn cancel_hyp() {
    write_sysreg!(cnthp_ctl_el2, 0);
    isb();
}

/// CNTV_CTL_EL0 bits.
pub const CTL_ENABLE: u64 = 1 << 0;
pub const CTL_IMASK: u64 = 1 << 1;

/// The deadline (physical count) of a saved virtual timer, if it is armed
/// and unmasked. CNTVOFF_EL2 is 0 for every VM.
pub fn vtimer_deadline(ctl: u64, cval: u64) -> Option<u64> {
    (ctl & CTL_ENABLE != 0 && ctl & CTL_IMASK == 0).then_some(cval)
}

/// Masks the loaded (running) vCPU's virtual timer after it fired, so the
/// physical PPI stops until the guest reprograms it (as Linux's handler
/// does) — the interrupt itself is delivered through the vGIC.
pub fn mask_loaded_vtimer() {
    let ctl = read_sysreg!(cntv_ctl_el0);
    write_sysreg!(cntv_ctl_el0, ctl | CTL_IMASK);
    isb();
}

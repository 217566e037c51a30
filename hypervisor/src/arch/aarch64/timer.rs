//! The generic timer as the hypervisor uses it (ARM ARM D11): the physical
//! counter as the clock, and the EL2 physical timer (CNTHP_*, PPI 10) as
//! the one alarm of each physical CPU: the end of a vCPU's time slice, or
//! the earliest virtual-timer deadline of a vCPU that is not loaded. Each
//! VM has its own virtual counter offset (CNTVOFF_EL2); the arithmetic is
//! the pure `vtimer` module's.

use super::sysreg::CNTHP_CVAL_EL2;
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{CNTFRQ_EL0, CNTHP_CTL_EL2, CNTPCT_EL0, CNTV_CTL_EL0, CNTVOFF_EL2, Readable, Writeable};

/// The physical count (CNTPCT_EL0).
pub fn now() -> u64 {
    barrier::isb(barrier::SY);
    CNTPCT_EL0.get()
}

/// Counter ticks per second (CNTFRQ_EL0).
pub fn frequency() -> u64 {
    CNTFRQ_EL0.get().max(1)
}

/// Arms the EL2 physical timer for absolute count `deadline`.
pub fn arm_hyp(deadline: u64) {
    CNTHP_CVAL_EL2.set(deadline);
    CNTHP_CTL_EL2.write(CNTHP_CTL_EL2::ENABLE::SET); // not masked
    barrier::isb(barrier::SY);
}

/// Arms the EL2 physical timer for `deadline` unless it is already armed
/// for an earlier one.
pub fn arm_hyp_by(deadline: u64) {
    let armed = CNTHP_CTL_EL2.is_set(CNTHP_CTL_EL2::ENABLE);
    if !armed || CNTHP_CVAL_EL2.get() > deadline {
        arm_hyp(deadline);
    }
}

/// Disarms the EL2 physical timer.
pub fn cancel_hyp() {
    CNTHP_CTL_EL2.set(0);
    barrier::isb(barrier::SY);
}

/// Loads a VM's virtual counter offset, CNTVOFF_EL2: its vCPUs read
/// CNTVCT_EL0 = CNTPCT_EL0 - CNTVOFF_EL2 and their virtual timers compare
/// against that (ARM ARM D11.2.2).
pub fn set_cntvoff(offset: u64) {
    CNTVOFF_EL2.set(offset);
    barrier::isb(barrier::SY);
}

/// Whether the loaded vCPU's virtual timer asserts its interrupt output
/// now (ENABLE, not IMASK, ISTATUS: ARM ARM D11.2.4).
pub fn loaded_vtimer_asserted() -> bool {
    barrier::isb(barrier::SY);
    crate::vtimer::output_asserted(CNTV_CTL_EL0.get())
}

/// Enables or disables the virtual timer's physical PPI on this CPU, and
/// notes which: while it is disabled, every exit must resample the line
/// (`resample_vtimer_line`), so the run loop's fast path is off
/// (`fastpath`).
pub fn set_vtimer_ppi(enabled: bool) {
    super::gic::set_private_enabled(super::gic::INTID_VTIMER, enabled);
    super::smp::this_cpu().vtimer_masked = !enabled;
}

/// Lowers the virtual-timer line of the loaded vCPU `vcpu` in its vGIC if
/// the timer no longer asserts its output, and unmasks the physical PPI
/// again. The timer's output is a level: while it is high the physical PPI
/// stays disabled at the GIC (not through CNTV_CTL_EL0.IMASK, which the
/// guest reads back) and the vGIC re-presents the level-sensitive PPI after
/// each EOI (IHI 0069H §4.1.2); every exit resamples it here. Returns
/// whether the line is still high.
///
/// `vgic` is the locked vGIC: only lowering the line takes it mutably, so
/// a resample that changes nothing is not a vGIC change (the run loop's
/// fast path, `sync::CountedMutex`).
pub fn resample_vtimer_line(vgic: &mut impl core::ops::DerefMut<Target = crate::vgic::Vgic>, vcpu: usize) -> bool {
    let intid = super::gic::INTID_VTIMER;
    let high = vgic.irq_state(vcpu, intid).is_some_and(|irq| irq.line_level);
    if high && !loaded_vtimer_asserted() {
        let _ = vgic.set_level(vcpu, intid, false);
        set_vtimer_ppi(true);
        return false;
    }
    high
}

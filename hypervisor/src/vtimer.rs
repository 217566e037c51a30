//! The EL1 virtual timer of a vCPU, as a pure core (ARM ARM D11.2 "The
//! AArch64 view of the Generic Timer"): the arithmetic between the VM's
//! virtual count and the physical count the hypervisor schedules by, and
//! the level of the timer's interrupt output. The glue that reads and
//! writes the registers is `arch/aarch64/timer.rs`.
//!
//! - The virtual count is the physical count minus the VM's offset:
//!   CNTVCT_EL0 = CNTPCT_EL0 - CNTVOFF_EL2 (ARM ARM D11.2.2).
//! - The timer condition is met when CNTVCT_EL0 >= CNTV_CVAL_EL0, both
//!   64-bit and zero-extended (CNTV_CVAL_EL0: "treated as zero-extended in
//!   all counter calculations"); with CNTV_CTL_EL0.ENABLE = 0 it is not met.
//! - The interrupt output is asserted while ENABLE = 1, IMASK = 0 and the
//!   condition is met (CNTV_CTL_EL0.ISTATUS, D11.2.4): a level, which the
//!   vGIC models as a level-sensitive PPI (IHI 0069H §4.1.2).

/// CNTV_CTL_EL0.ENABLE.
pub const CTL_ENABLE: u64 = 1 << 0;
/// CNTV_CTL_EL0.IMASK.
pub const CTL_IMASK: u64 = 1 << 1;
/// CNTV_CTL_EL0.ISTATUS (read-only: the hardware's view of the condition).
pub const CTL_ISTATUS: u64 = 1 << 2;

/// The virtual count for physical count `physical` in a VM whose offset
/// is `cntvoff` (modulo 2^64, as the hardware subtracts).
pub const fn virtual_count(physical: u64, cntvoff: u64) -> u64 {
    physical.wrapping_sub(cntvoff)
}

/// Whether the output of a timer the CPU is running is asserted, from
/// CNTV_CTL_EL0 as read (ISTATUS computed by the hardware).
pub const fn output_asserted(ctl: u64) -> bool {
    ctl & (CTL_ENABLE | CTL_IMASK | CTL_ISTATUS) == CTL_ENABLE | CTL_ISTATUS
}

/// The physical count at which a saved timer (`ctl`, `cval`) of a VM with
/// offset `cntvoff` asserts its output; `None` if it never will: disabled,
/// masked, or a compare value the virtual count cannot reach before the
/// physical count wraps.
pub const fn deadline(ctl: u64, cval: u64, cntvoff: u64) -> Option<u64> {
    if ctl & CTL_ENABLE == 0 || ctl & CTL_IMASK != 0 {
        return None;
    }
    // CNTVCT >= CVAL  <=>  CNTPCT - CNTVOFF >= CVAL  <=>  CNTPCT >= CVAL + CNTVOFF,
    // for physical counts at or above the offset (the VM's lifetime).
    cval.checked_add(cntvoff)
}

/// Whether a saved timer's output is asserted at physical count `now`.
pub fn due(ctl: u64, cval: u64, cntvoff: u64, now: u64) -> bool {
    deadline(ctl, cval, cntvoff).is_some_and(|d| now >= d)
}

/// The EL1 physical timer of a vCPU, emulated as KVM's "ptimer"
/// (`arch/arm64/kvm/arch_timer.c`): CNTHCTL_EL2.EL1PCEN is clear, so every
/// guest access to CNTP_CTL_EL0, CNTP_CVAL_EL0 and CNTP_TVAL_EL0 traps
/// (ARM ARM D19.2.x "CNTHCTL_EL2") and is answered from the vCPU's own
/// `ctl` and `cval`; the guest's physical count is the machine's
/// (CNTPCT_EL0 is not trapped and has no offset), so the compare value is
/// a physical count and [`deadline`] applies with an offset of zero. The
/// interrupt output is the level of [`ptimer_asserted`], delivered as PPI
/// 30 through the vGIC.
pub mod ptimer {
    use super::{CTL_ENABLE, CTL_IMASK, CTL_ISTATUS};

    /// The guest's interrupt ID of the EL1 physical timer (the PPI its
    /// DTB's timer node lists second, `layout::TIMER_PPIS`).
    pub const INTID: u32 = 30;

    /// CNTP_CTL_EL0 as the guest reads it: ENABLE and IMASK as written,
    /// ISTATUS = the timer condition (ARM ARM D19.11.x "CNTP_CTL_EL0").
    pub const fn read_ctl(ctl: u64, cval: u64, now: u64) -> u64 {
        let ctl = ctl & (CTL_ENABLE | CTL_IMASK);
        if ctl & CTL_ENABLE != 0 && now >= cval { ctl | CTL_ISTATUS } else { ctl }
    }

    /// The stored control value after the guest writes `value` (ISTATUS
    /// is read-only, the other bits RES0).
    pub const fn write_ctl(value: u64) -> u64 {
        value & (CTL_ENABLE | CTL_IMASK)
    }

    /// CNTP_TVAL_EL0 as read: `(CVAL - CNTPCT)[31:0]`, a signed 32-bit
    /// "time left" (ARM ARM D19.11.x "CNTP_TVAL_EL0"; bits [63:32] RES0).
    pub const fn read_tval(cval: u64, now: u64) -> u64 {
        cval.wrapping_sub(now) & 0xffff_ffff
    }

    /// The compare value after the guest writes `tval` to CNTP_TVAL_EL0:
    /// CNTPCT + SignExtend(TVAL[31:0]).
    pub const fn write_tval(tval: u64, now: u64) -> u64 {
        now.wrapping_add(tval as u32 as i32 as i64 as u64)
    }

    /// Whether the timer's interrupt output is asserted at `now`.
    pub fn asserted(ctl: u64, cval: u64, now: u64) -> bool {
        super::due(ctl, cval, 0, now)
    }

    /// The physical count at which the output will be asserted, if ever.
    pub const fn deadline(ctl: u64, cval: u64) -> Option<u64> {
        super::deadline(ctl, cval, 0)
    }

    /// Sets the timer's PPI line in vCPU `vcpu`'s vGIC to its output level
    /// at physical count `now` (a level: high while enabled, unmasked and
    /// due; ARM ARM D11.2.4). Only a change is a vGIC change. Returns the
    /// deadline when the output is low but will rise. `vgic` is the locked
    /// vGIC, taken mutably only for a change (`sync::CountedMutex`).
    pub fn update_line(
        vgic: &mut impl core::ops::DerefMut<Target = crate::vgic::Vgic>,
        vcpu: usize,
        ctl: u64,
        cval: u64,
        now: u64,
    ) -> Option<u64> {
        let level = asserted(ctl, cval, now);
        let high = vgic.irq_state(vcpu, INTID).is_some_and(|irq| irq.line_level);
        if level != high {
            let _ = vgic.set_level(vcpu, INTID, level);
        }
        if level { None } else { deadline(ctl, cval) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_physical_timer_answers_as_the_architecture_says() {
        use ptimer::*;
        // TVAL = 1000 at count 5000: CVAL 6000, 1000 to go.
        let cval = write_tval(1000, 5000);
        assert_eq!(cval, 6000);
        assert_eq!(read_tval(cval, 5400), 600);
        // Past the deadline TVAL counts down through zero, as a signed value.
        assert_eq!(read_tval(cval, 6001) as u32 as i32, -1);
        // A negative TVAL puts the deadline in the past.
        assert_eq!(write_tval(0xffff_fff6, 100), 90);
        // Upper bits of a TVAL write are ignored (RES0).
        assert_eq!(write_tval(0xffff_ffff_0000_0010, 100), 116);
        // ISTATUS is the condition, whatever IMASK says, and only while enabled.
        assert_eq!(read_ctl(CTL_ENABLE, 6000, 5999), CTL_ENABLE);
        assert_eq!(read_ctl(CTL_ENABLE, 6000, 6000), CTL_ENABLE | CTL_ISTATUS);
        assert_eq!(read_ctl(CTL_ENABLE | CTL_IMASK, 6000, 7000), CTL_ENABLE | CTL_IMASK | CTL_ISTATUS);
        assert_eq!(read_ctl(0, 0, 7000), 0);
        assert_eq!(write_ctl(0xffff_ffff_ffff_ffff), CTL_ENABLE | CTL_IMASK);
        // The output: enabled, unmasked and due.
        assert!(asserted(CTL_ENABLE, 6000, 6000));
        assert!(!asserted(CTL_ENABLE, 6000, 5999));
        assert!(!asserted(CTL_ENABLE | CTL_IMASK, 6000, 9000));
        assert!(!asserted(0, 6000, 9000));
        assert_eq!(deadline(CTL_ENABLE, 6000), Some(6000));
        assert_eq!(deadline(CTL_ENABLE | CTL_IMASK, 6000), None);
    }

    #[test]
    fn virtual_count_subtracts_the_offset() {
        assert_eq!(virtual_count(1_000, 400), 600);
        assert_eq!(virtual_count(5, 0), 5);
        // The hardware subtracts modulo 2^64.
        assert_eq!(virtual_count(1, 2), u64::MAX);
    }

    #[test]
    fn deadlines_are_in_physical_time() {
        let off = 62_500_000 * 3; // a VM created 3 s after the counter started
        // Enabled, unmasked: the deadline is the compare value plus the offset.
        assert_eq!(deadline(CTL_ENABLE, 1_000, off), Some(off + 1_000));
        assert!(!due(CTL_ENABLE, 1_000, off, off + 999));
        assert!(due(CTL_ENABLE, 1_000, off, off + 1_000));
        // The compare value alone, read as a physical count, is long past:
        // forgetting the offset would fire every timer at once.
        assert!(1_000 < off);
        // ISTATUS in a saved value does not matter, ENABLE and IMASK do.
        assert_eq!(deadline(CTL_ENABLE | CTL_ISTATUS, 7, 0), Some(7));
        assert_eq!(deadline(0, 1_000, off), None);
        assert_eq!(deadline(CTL_ENABLE | CTL_IMASK, 1_000, off), None);
        assert!(!due(CTL_ENABLE | CTL_IMASK, 0, 0, u64::MAX));
        // "Never" (a compare value the virtual count cannot reach).
        assert_eq!(deadline(CTL_ENABLE, u64::MAX, off), None);
        assert_eq!(deadline(CTL_ENABLE, u64::MAX - off, off), Some(u64::MAX));
    }

    #[test]
    fn the_output_is_a_level() {
        assert!(output_asserted(CTL_ENABLE | CTL_ISTATUS));
        assert!(!output_asserted(CTL_ENABLE), "condition not met");
        assert!(!output_asserted(CTL_ENABLE | CTL_IMASK | CTL_ISTATUS), "masked");
        assert!(!output_asserted(CTL_ISTATUS), "disabled (ISTATUS UNKNOWN)");
    }
}

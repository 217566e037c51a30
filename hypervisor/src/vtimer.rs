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

#[cfg(test)]
mod tests {
    use super::*;

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

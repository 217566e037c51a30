//! Stolen time: how long each vCPU was ready to run but did not, told to
//! its guest through the paravirtualized-time interface (Arm DEN0057;
//! KVM's `arch/arm64/kvm/pvtime.c`). The guest finds its vCPU's 64-byte
//! structure with the `PV_TIME_ST` hypercall (`smccc`) in a read-only page
//! at `layout::PVTIME_BASE`, and subtracts the time from what it charges
//! its tasks (Linux: `steal` in /proc/stat and `update_rq_clock_task`).
//!
//! [`Steal`] is the accounting; the run loop (`arch/aarch64/vmm.rs`) calls
//! it as a vCPU becomes runnable and as it starts to run, and writes the
//! total into the structure before the vCPU enters.

use shared::hvc::pv_time::{STOLEN_TIME_OFFSET, STRUCT_SIZE};
use shared::layout::{PVTIME_BASE, PVTIME_SIZE};

/// The most vCPUs the page holds structures for: every vCPU a VM may have.
pub const MAX_VCPUS: usize = (PVTIME_SIZE / STRUCT_SIZE) as usize;
const _: () = assert!(MAX_VCPUS >= shared::platform::MAX_VCPUS);

/// The IPA of vCPU `vcpu`'s structure.
pub fn ipa(vcpu: usize) -> u64 {
    PVTIME_BASE + vcpu as u64 * STRUCT_SIZE
}

/// Byte offset in the page of vCPU `vcpu`'s `stolen_time` (revision and
/// attributes, before it, stay 0).
pub fn stolen_time_offset(vcpu: usize) -> usize {
    (vcpu as u64 * STRUCT_SIZE + STOLEN_TIME_OFFSET) as usize
}

/// A vCPU's stolen time, in counter ticks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Steal {
    /// Since when it has been runnable without running, if it is.
    waiting_since: Option<u64>,
    /// Ticks stolen so far.
    stolen: u64,
}

impl Steal {
    /// It became runnable (woken, or taken off its CPU while still
    /// runnable) at `now`.
    pub fn runnable(&mut self, now: u64) {
        self.waiting_since.get_or_insert(now);
    }

    /// It starts to run at `now`: the wait since it became runnable is
    /// stolen.
    pub fn runs(&mut self, now: u64) {
        if let Some(since) = self.waiting_since.take() {
            self.stolen += now.saturating_sub(since);
        }
    }

    /// Ticks stolen so far.
    pub fn ticks(&self) -> u64 {
        self.stolen
    }

    /// Nanoseconds stolen so far with a `freq` Hz counter (what the
    /// structure holds).
    pub fn nanoseconds(&self, freq: u64) -> u64 {
        if freq == 0 {
            return 0;
        }
        // A counter whose tick is a whole number of nanoseconds (1 GHz,
        // 62.5 MHz, ...) needs one multiply on this path of every switch.
        if 1_000_000_000 % freq == 0 {
            return self.stolen.saturating_mul(1_000_000_000 / freq);
        }
        u64::try_from(u128::from(self.stolen) * 1_000_000_000 / u128::from(freq)).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pvtime_waits_while_runnable_are_stolen_once() {
        let mut s = Steal::default();
        s.runs(5); // it ran at once: nothing stolen
        assert_eq!(s.ticks(), 0);
        s.runnable(10);
        s.runnable(12); // still the same wait
        s.runs(30);
        assert_eq!(s.ticks(), 20);
        s.runs(40); // no wait since
        assert_eq!(s.ticks(), 20);
        s.runnable(50);
        s.runs(55);
        assert_eq!(s.nanoseconds(1_000_000_000), 25);
        assert_eq!(s.nanoseconds(62_500_000), 25 * 16);
        assert_eq!(s.nanoseconds(0), 0);
        assert_eq!(s.nanoseconds(24_000_000), 25 * 1_000_000_000 / 24_000_000);
    }

    #[test]
    fn pvtime_structures_are_64_bytes_apart_in_one_page() {
        assert_eq!(ipa(0), PVTIME_BASE);
        assert_eq!(ipa(3), PVTIME_BASE + 192);
        assert_eq!(stolen_time_offset(2), 136);
    }
}

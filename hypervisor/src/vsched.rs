//! The vCPU scheduler's policy: weighted fair sharing of the physical CPUs
//! in virtual time, with an optional cap per VM.
//!
//! Each vCPU has a virtual run time that grows while it runs, the more
//! slowly the heavier its VM's weight ([`charged`]); a physical CPU runs the
//! runnable vCPU with the smallest one ([`pick`]), for at most a time slice
//! when others wait. Over many slices the CPU time of CPU-bound vCPUs is in
//! the ratio of their weights. This is the rule of Linux's CFS (LKD ch. 4,
//! "The Linux Scheduling Algorithm": `vruntime`, `place_entity`,
//! `check_preempt_wakeup`), applied to vCPUs as KVM gets it from running
//! vCPUs as tasks. Xen's credit2 reaches the same shares with credits
//! burned at a rate inverse to the weight and reset in epochs; virtual time
//! needs no reset, and the one number per vCPU is the one the guest kernel's
//! own `sched/fair.rs` keeps, so the project explains a single rule twice
//! rather than two. The weight is per vCPU, as in credit2: a VM with two
//! busy vCPUs gets twice the CPU of a one-vCPU VM of the same weight.
//!
//! A vCPU that has waited does not come back with the small virtual time it
//! stopped at (it would then run alone for as long as it slept): it is
//! placed at most a slice behind the others ([`placed`]), and preempts the
//! running vCPU if it is behind by more than a wake-up granularity
//! ([`preempts`]), so that a vCPU whose interrupt is pending runs soon.
//!
//! The cap is Xen's: at most `cap` percent of one physical CPU per
//! accounting period for all the VM's vCPUs together ([`Cap`]); a VM over
//! it waits for the next period even when CPUs are idle.
//!
//! The arch run loop (`arch/aarch64/vmm.rs`, `run_cpu`) applies these
//! rules; everything here is pure and unit-tested on the host.

/// A VM's weight when its configuration names none (Xen's default).
pub const DEFAULT_WEIGHT: u32 = 256;
pub use crate::vmspec::MAX_WEIGHT;
/// The cap's accounting period, in milliseconds (Xen credit2's default
/// budget period is 10 ms; ten slices make a 2:1 cap measurable).
pub const CAP_PERIOD_MS: u64 = 100;

/// A configured weight (0 = absent) as used.
pub fn weight(configured: u32) -> u32 {
    if configured == 0 { DEFAULT_WEIGHT } else { configured.min(MAX_WEIGHT) }
}

/// Virtual run time after running `ran` counter ticks with `weight`: at the
/// default weight virtual time is real time; twice the weight, half as fast.
pub fn charged(vruntime: u64, ran: u64, weight: u32) -> u64 {
    // u64 arithmetic (one multiply, one divide) on this path of every
    // vCPU switch; a product that overflows (a run of 2^56 ticks) saturates.
    let delta = match weight {
        DEFAULT_WEIGHT => ran,
        w => ran.checked_mul(u64::from(DEFAULT_WEIGHT)).map_or(u64::MAX, |x| x / u64::from(w.max(1))),
    };
    vruntime.saturating_add(delta)
}

/// Where a vCPU that waited re-enters the timeline (`place_entity`): not
/// earlier than `credit` before the least virtual time of those that ran,
/// and never earlier than it was. `min_vruntime` is the CPU's: what it
/// last chose to run, never decreasing (CFS keeps one per run queue).
pub fn placed(vruntime: u64, min_vruntime: u64, credit: u64) -> u64 {
    vruntime.max(min_vruntime.saturating_sub(credit))
}

/// Whether a vCPU just woken with `woken` virtual time should take the CPU
/// from one at `running` (`check_preempt_wakeup`).
pub fn preempts(woken: u64, running: u64, granularity: u64) -> bool {
    woken.saturating_add(granularity) < running
}

/// A runnable vCPU as [`pick`] sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub vruntime: u64,
    /// It gave the CPU away by yielding (vendor YIELD, WFE) on this CPU's
    /// last run: taken only when nothing else is runnable (CFS's skip
    /// buddy), so that a yield hands the CPU to someone else.
    pub yielded: bool,
    /// It ran on this CPU last: preferred among equals (cache and TLB).
    pub warm: bool,
}

/// The candidate to run: the least virtual time among those that did not
/// just yield, ties to the warm one, then the first; `None` if there is
/// none.
pub fn pick(candidates: &[Candidate]) -> Option<usize> {
    let best = |yielded: bool| {
        candidates
            .iter()
            .enumerate()
            .filter(|(_, c)| c.yielded == yielded)
            .min_by_key(|(_, c)| (c.vruntime, !c.warm))
            .map(|(i, _)| i)
    };
    best(false).or_else(|| best(true))
}

/// A VM's CPU cap: `percent` of one physical CPU per period, for all its
/// vCPUs together (Xen's `cap`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cap {
    /// Counter ticks the VM may run per period.
    budget: u64,
    period: u64,
    /// Start of the current period.
    start: u64,
    /// Ticks run in it (more than the budget after an overrun: the debt
    /// is carried into the next period).
    used: u64,
}

impl Cap {
    /// A cap of `percent` (1..=100 per vCPU) with `period` ticks, from `now`.
    pub fn new(percent: u32, period: u64, now: u64) -> Self {
        let budget = u64::try_from(u128::from(period) * u128::from(percent) / 100).unwrap_or(u64::MAX);
        Cap { budget, period: period.max(1), start: now, used: 0 }
    }

    /// Moves to the period `now` is in; each period that ended pays off
    /// one budget of what was used.
    fn roll(&mut self, now: u64) {
        if now >= self.start + self.period {
            let periods = (now - self.start) / self.period;
            self.start += periods * self.period;
            self.used = self.used.saturating_sub(self.budget.saturating_mul(periods));
        }
    }

    /// One of the VM's vCPUs ran `ran` ticks, ending at `now`.
    pub fn charge(&mut self, now: u64, ran: u64) {
        self.roll(now);
        self.used = self.used.saturating_add(ran);
    }

    /// When the VM may run again if it is over its cap at `now` (the start
    /// of the first period whose budget covers the debt); `None` if it may
    /// run now.
    pub fn throttled_until(&mut self, now: u64) -> Option<u64> {
        self.roll(now);
        if self.used < self.budget {
            return None;
        }
        let periods = (self.used - self.budget) / self.budget.max(1) + 1;
        Some(self.start + periods * self.period)
    }

    /// Ticks left in this period's budget at `now` (the most a vCPU of the
    /// VM may run before the CPU looks again).
    pub fn left(&mut self, now: u64) -> u64 {
        self.roll(now);
        self.budget.saturating_sub(self.used)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vsched_weights_set_the_rate_of_virtual_time() {
        assert_eq!(charged(0, 1000, DEFAULT_WEIGHT), 1000);
        assert_eq!(charged(0, 1000, 2 * DEFAULT_WEIGHT), 500);
        assert_eq!(charged(10, 1000, DEFAULT_WEIGHT / 2), 2010);
        assert_eq!(charged(u64::MAX - 1, 1000, 1), u64::MAX, "saturates");
        assert_eq!(weight(0), DEFAULT_WEIGHT);
        assert_eq!(weight(512), 512);
    }

    /// Two CPU-bound vCPUs of weights 2:1 on one CPU, scheduled by `pick`
    /// in 10-tick slices: their CPU time is 2:1.
    #[test]
    fn vsched_two_busy_vcpus_share_in_the_ratio_of_their_weights() {
        let weights = [512, 256];
        let mut vr = [0u64; 2];
        let mut ran = [0u64; 2];
        for _ in 0..3000 {
            let c: Vec<Candidate> =
                vr.iter().map(|&v| Candidate { vruntime: v, yielded: false, warm: false }).collect();
            let i = pick(&c).unwrap();
            vr[i] = charged(vr[i], 10, weights[i]);
            ran[i] += 10;
        }
        assert_eq!(ran[0], 2 * ran[1]);
    }

    #[test]
    fn vsched_pick_prefers_least_then_warm_and_skips_a_yielder() {
        let c = |vruntime, yielded, warm| Candidate { vruntime, yielded, warm };
        assert_eq!(pick(&[]), None);
        assert_eq!(pick(&[c(5, false, false), c(3, false, false)]), Some(1));
        assert_eq!(pick(&[c(3, false, false), c(3, false, true)]), Some(1));
        assert_eq!(pick(&[c(1, true, true), c(9, false, false)]), Some(1));
        assert_eq!(pick(&[c(1, true, false)]), Some(0), "a yielder alone runs again");
    }

    #[test]
    fn vsched_a_sleeper_is_placed_near_the_others_and_preempts() {
        assert_eq!(placed(100, 10_000, 1000), 9000);
        assert_eq!(placed(9500, 10_000, 1000), 9500, "never moved back");
        assert_eq!(placed(0, 500, 1000), 0);
        assert!(preempts(9000, 10_000, 500));
        assert!(!preempts(9600, 10_000, 500));
    }

    #[test]
    fn vsched_cap_throttles_until_the_budget_covers_the_debt() {
        // 50% of a 100-tick period.
        let mut cap = Cap::new(50, 100, 0);
        assert_eq!(cap.left(0), 50);
        cap.charge(30, 30);
        assert_eq!(cap.throttled_until(30), None);
        cap.charge(60, 30);
        assert_eq!(cap.throttled_until(60), Some(100));
        assert_eq!(cap.throttled_until(100), None, "a new period pays 50 of the 60");
        assert_eq!(cap.left(100), 40);
        // A long overrun (two vCPUs for a whole period) is paid over
        // several periods.
        cap.charge(200, 200);
        assert_eq!(cap.throttled_until(200), Some(600));
        assert_eq!(cap.throttled_until(599), Some(600));
        assert_eq!(cap.throttled_until(600), None);
        // 150% (two vCPUs) of a period; a run is charged to the period it
        // ends in.
        let mut cap = Cap::new(150, 100, 0);
        cap.charge(100, 140);
        assert_eq!(cap.left(100), 10);
    }
}

//! Softirqs (kernel/softirq.c). LKD ch. 8, "Softirqs": ten statically
//! defined vectors, raised by setting a pending bit and run on interrupt exit
//! by `do_softirq`; a handler may raise softirqs again, so `__do_softirq`
//! restarts at most MAX_SOFTIRQ_RESTART times (and for at most 2 ms) and
//! then leaves the rest to the per-CPU ksoftirqd thread.

pub const HI_SOFTIRQ: usize = 0;
pub const TIMER_SOFTIRQ: usize = 1;
pub const NET_TX_SOFTIRQ: usize = 2;
pub const NET_RX_SOFTIRQ: usize = 3;
pub const BLOCK_SOFTIRQ: usize = 4;
pub const IRQ_POLL_SOFTIRQ: usize = 5;
pub const TASKLET_SOFTIRQ: usize = 6;
pub const SCHED_SOFTIRQ: usize = 7;
pub const HRTIMER_SOFTIRQ: usize = 8;
pub const RCU_SOFTIRQ: usize = 9;
pub const NR_SOFTIRQS: usize = 10;

pub const SOFTIRQ_NAMES: [&str; NR_SOFTIRQS] =
    ["HI", "TIMER", "NET_TX", "NET_RX", "BLOCK", "IRQ_POLL", "TASKLET", "SCHED", "HRTIMER", "RCU"];

/// `MAX_SOFTIRQ_RESTART`.
pub const MAX_SOFTIRQ_RESTART: u32 = 10;
/// `MAX_SOFTIRQ_TIME`: 2 ms.
pub const MAX_SOFTIRQ_TIME_NS: u64 = 2_000_000;

/// How a `do_softirq` pass ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SoftirqExit {
    /// Nothing left pending.
    Done,
    /// Still pending after the restart or time limit: wake ksoftirqd.
    WakeKsoftirqd,
}

/// Per-CPU softirq state: `__softirq_pending` and run counts.
#[derive(Clone, Debug, Default)]
pub struct SoftirqState {
    pending: u32,
    pub runs: [u64; NR_SOFTIRQS],
    /// ksoftirqd has been asked to run.
    pub ksoftirqd_wakeup: bool,
}

impl SoftirqState {
    pub const fn new() -> Self {
        SoftirqState { pending: 0, runs: [0; NR_SOFTIRQS], ksoftirqd_wakeup: false }
    }

    /// `raise_softirq_irqoff`.
    pub fn raise_softirq(&mut self, nr: usize) {
        assert!(nr < NR_SOFTIRQS);
        self.pending |= 1 << nr;
    }

    /// `local_softirq_pending`.
    pub fn pending(&self) -> u32 {
        self.pending
    }

    /// `__do_softirq`: run the pending vectors in number order; `action`
    /// runs vector `nr` and may raise more through the `&mut SoftirqState`.
    /// `clock` reads the time in ns; `need_resched` stops restarts early.
    pub fn do_softirq(
        &mut self,
        mut action: impl FnMut(usize, &mut SoftirqState),
        mut clock: impl FnMut() -> u64,
        need_resched: bool,
    ) -> SoftirqExit {
        let end = clock() + MAX_SOFTIRQ_TIME_NS;
        let mut max_restart = MAX_SOFTIRQ_RESTART;
        loop {
            let mut pending = core::mem::take(&mut self.pending);
            while pending != 0 {
                let nr = pending.trailing_zeros() as usize;
                pending &= !(1 << nr);
                self.runs[nr] += 1;
                action(nr, self);
            }
            if self.pending == 0 {
                return SoftirqExit::Done;
            }
            max_restart -= 1;
            if clock() >= end || need_resched || max_restart == 0 {
                self.ksoftirqd_wakeup = true;
                return SoftirqExit::WakeKsoftirqd;
            }
        }
    }

    /// `run_ksoftirqd`: the thread runs one full pass in process context.
    pub fn run_ksoftirqd(&mut self, action: impl FnMut(usize, &mut SoftirqState)) -> SoftirqExit {
        self.ksoftirqd_wakeup = false;
        self.do_softirq(action, || 0, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_in_vector_order_once() {
        let mut s = SoftirqState::new();
        s.raise_softirq(RCU_SOFTIRQ);
        s.raise_softirq(HI_SOFTIRQ);
        s.raise_softirq(NET_RX_SOFTIRQ);
        let mut order = alloc::vec::Vec::new();
        assert_eq!(s.do_softirq(|nr, _| order.push(nr), || 0, false), SoftirqExit::Done);
        assert_eq!(order, [HI_SOFTIRQ, NET_RX_SOFTIRQ, RCU_SOFTIRQ]);
        assert_eq!(s.pending(), 0);
    }

    #[test]
    fn restart_limit_defers_to_ksoftirqd() {
        let mut s = SoftirqState::new();
        s.raise_softirq(NET_RX_SOFTIRQ);
        // A handler that always re-raises itself (a network flood).
        let exit = s.do_softirq(|nr, st| st.raise_softirq(nr), || 0, false);
        assert_eq!(exit, SoftirqExit::WakeKsoftirqd);
        assert_eq!(s.runs[NET_RX_SOFTIRQ], u64::from(MAX_SOFTIRQ_RESTART));
        assert!(s.ksoftirqd_wakeup);
        assert_ne!(s.pending(), 0);
        // Re-raising only a few times finishes in place.
        let mut s = SoftirqState::new();
        s.raise_softirq(TIMER_SOFTIRQ);
        let mut left = 3;
        let exit = s.do_softirq(
            |nr, st| {
                if left > 0 {
                    left -= 1;
                    st.raise_softirq(nr);
                }
            },
            || 0,
            false,
        );
        assert_eq!(exit, SoftirqExit::Done);
        assert_eq!(s.runs[TIMER_SOFTIRQ], 4);
    }

    #[test]
    fn time_limit_and_need_resched_stop_restarts() {
        let mut s = SoftirqState::new();
        s.raise_softirq(BLOCK_SOFTIRQ);
        let mut t = 0;
        let exit = s.do_softirq(
            |nr, st| st.raise_softirq(nr),
            || {
                t += 1_000_000;
                t
            },
            false,
        );
        assert_eq!(exit, SoftirqExit::WakeKsoftirqd);
        assert!(s.runs[BLOCK_SOFTIRQ] < u64::from(MAX_SOFTIRQ_RESTART));
        let mut s = SoftirqState::new();
        s.raise_softirq(BLOCK_SOFTIRQ);
        assert_eq!(s.do_softirq(|nr, st| st.raise_softirq(nr), || 0, true), SoftirqExit::WakeKsoftirqd);
        assert_eq!(s.runs[BLOCK_SOFTIRQ], 1);
    }
}

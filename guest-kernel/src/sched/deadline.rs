//! The deadline class: SCHED_DEADLINE, earliest deadline first with the
//! constant bandwidth server (CBS), and admission control.
//!
//! 《Linux内核深度解析》§2.8.1/§2.8.3: deadline tasks have the highest priority
//! after the stop class; each has (runtime, deadline, period) and the one with
//! the earliest absolute deadline runs. kernel/sched/deadline.c: CBS throttles a
//! task that has used its runtime until its next period, and
//! `sched_setattr` refuses (-EBUSY) a task whose bandwidth would overflow.

use alloc::collections::BTreeSet;

use super::TaskId;

/// `BW_SHIFT`: bandwidths are runtime/period in 20-bit fixed point.
pub const BW_SHIFT: u32 = 20;
pub const BW_UNIT: u64 = 1 << BW_SHIFT;

/// `to_ratio(period, runtime)`.
pub fn to_ratio(period: u64, runtime: u64) -> u64 {
    if period == 0 {
        return 0;
    }
    ((u128::from(runtime) << BW_SHIFT) / u128::from(period)) as u64
}

/// `struct sched_dl_entity`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SchedDlEntity {
    /// Parameters set by `sched_setattr`.
    pub dl_runtime: u64,
    pub dl_deadline: u64,
    pub dl_period: u64,
    pub dl_bw: u64,
    /// Remaining runtime in the current instance (negative after overrun).
    pub runtime: i64,
    /// Absolute deadline of the current instance.
    pub deadline: u64,
    /// Runtime used up: off the run queue until `replenish_at`.
    pub dl_throttled: bool,
    pub replenish_at: u64,
}

impl SchedDlEntity {
    pub fn new(runtime: u64, deadline: u64, period: u64) -> Self {
        SchedDlEntity {
            dl_runtime: runtime,
            dl_deadline: deadline,
            dl_period: period,
            dl_bw: to_ratio(period, runtime),
            ..Default::default()
        }
    }

    /// `setup_new_dl_entity`: the first instance starts now.
    pub fn setup_new(&mut self, now: u64) {
        self.deadline = now + self.dl_deadline;
        self.runtime = self.dl_runtime as i64;
    }

    /// `dl_entity_overflow`: would running the remaining runtime before the
    /// current deadline exceed the reserved bandwidth?
    /// runtime / (deadline - now) > dl_runtime / dl_period.
    fn overflow(&self, now: u64) -> bool {
        let left = u128::from(self.dl_period) * self.runtime.max(0) as u128;
        let right = u128::from(self.deadline.saturating_sub(now)) * u128::from(self.dl_runtime);
        left > right
    }

    /// `update_dl_entity`: the CBS wakeup rule. A task waking after its
    /// deadline, or with more runtime than its bandwidth allows before it,
    /// gets a fresh instance.
    pub fn update_on_wakeup(&mut self, now: u64) {
        if self.deadline <= now || self.overflow(now) {
            self.deadline = now + self.dl_deadline;
            self.runtime = self.dl_runtime as i64;
        }
    }

    /// `replenish_dl_entity`: push the deadline one period on per runtime
    /// refill until the runtime is positive again.
    pub fn replenish(&mut self, now: u64) {
        while self.runtime <= 0 {
            self.deadline += self.dl_period;
            self.runtime += self.dl_runtime as i64;
        }
        if self.deadline < now {
            self.deadline = now + self.dl_deadline;
            self.runtime = self.dl_runtime as i64;
        }
        self.dl_throttled = false;
    }

    /// `update_curr_dl`: charge `delta`; true if the runtime is exhausted and
    /// the task is throttled until its next period (`start_dl_timer` arms at
    /// deadline - dl_deadline + dl_period).
    pub fn charge(&mut self, delta: u64) -> bool {
        self.runtime -= delta as i64;
        if self.runtime > 0 {
            return false;
        }
        self.dl_throttled = true;
        self.replenish_at = self.deadline - self.dl_deadline + self.dl_period;
        true
    }
}

/// `struct dl_rq`: runnable deadline tasks ordered by absolute deadline. The
/// running task stays queued (a BTreeSet stands in for the rb-tree).
#[derive(Default)]
pub struct DlRq {
    tree: BTreeSet<(u64, TaskId)>,
}

impl DlRq {
    pub fn enqueue(&mut self, id: TaskId, deadline: u64) {
        self.tree.insert((deadline, id));
    }
    pub fn dequeue(&mut self, id: TaskId, deadline: u64) -> bool {
        self.tree.remove(&(deadline, id))
    }
    /// `pick_next_task_dl`: the earliest deadline.
    pub fn pick_next(&self) -> Option<TaskId> {
        self.tree.first().map(|&(_, id)| id)
    }
    pub fn earliest_deadline(&self) -> Option<u64> {
        self.tree.first().map(|&(d, _)| d)
    }
    pub fn nr_running(&self) -> usize {
        self.tree.len()
    }
}

/// `struct dl_bw` of the root domain: the admitted total and the bound.
#[derive(Clone, Copy, Debug)]
pub struct DlBw {
    /// Per-CPU bound: sched_rt_runtime / sched_rt_period = 950 ms / 1 s.
    pub bw: u64,
    pub total_bw: u64,
}

impl DlBw {
    pub fn new() -> Self {
        DlBw { bw: to_ratio(1_000_000_000, 950_000_000), total_bw: 0 }
    }

    /// `__dl_overflow`: replacing `old_bw` by `new_bw` would exceed the bound
    /// times the number of CPUs.
    pub fn overflow(&self, cpus: usize, old_bw: u64, new_bw: u64) -> bool {
        self.bw * (cpus as u64) < self.total_bw - old_bw + new_bw
    }

    /// `sched_dl_overflow`: admit the change or refuse it.
    pub fn admit(&mut self, cpus: usize, old_bw: u64, new_bw: u64) -> bool {
        if new_bw != old_bw && self.overflow(cpus, old_bw, new_bw) {
            return false;
        }
        self.total_bw = self.total_bw - old_bw + new_bw;
        true
    }
}

impl Default for DlBw {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edf_orders_by_absolute_deadline() {
        let mut rq = DlRq::default();
        rq.enqueue(TaskId(1), 300);
        rq.enqueue(TaskId(2), 100);
        rq.enqueue(TaskId(3), 200);
        assert_eq!(rq.pick_next(), Some(TaskId(2)));
        rq.dequeue(TaskId(2), 100);
        assert_eq!(rq.pick_next(), Some(TaskId(3)));
    }

    #[test]
    fn admission_refuses_past_95_percent_per_cpu() {
        let mut bw = DlBw::new();
        let half = to_ratio(100, 50);
        assert!(bw.admit(1, 0, half));
        assert!(bw.admit(1, 0, to_ratio(100, 40)));
        // 50 % + 40 % + 10 % = 100 % > 95 %.
        assert!(!bw.admit(1, 0, to_ratio(100, 10)));
        // Two CPUs give room for it.
        assert!(bw.admit(2, 0, to_ratio(100, 10)));
        // Leaving frees the bandwidth.
        assert!(bw.admit(1, half, 0));
    }

    #[test]
    fn cbs_throttles_and_replenishes() {
        let mut dl = SchedDlEntity::new(10, 100, 100);
        dl.setup_new(0);
        assert_eq!((dl.runtime, dl.deadline), (10, 100));
        assert!(!dl.charge(6));
        assert!(dl.charge(6));
        assert!(dl.dl_throttled);
        assert_eq!(dl.replenish_at, 100);
        dl.replenish(100);
        assert_eq!((dl.runtime, dl.deadline), (8, 200));
        // Waking late: a fresh instance.
        dl.update_on_wakeup(500);
        assert_eq!((dl.runtime, dl.deadline), (10, 600));
    }
}

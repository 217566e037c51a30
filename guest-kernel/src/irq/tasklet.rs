//! Tasklets, built on HI_SOFTIRQ / TASKLET_SOFTIRQ. LKD ch. 8, "Tasklets":
//! a scheduled tasklet runs once on the CPU that scheduled it, never twice
//! at the same time; scheduling it again while pending does nothing, and a
//! disabled tasklet stays queued until it is enabled.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use super::softirq::{HI_SOFTIRQ, SoftirqState, TASKLET_SOFTIRQ};

/// Handle of a `tasklet_struct`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskletId(pub u32);

/// `struct tasklet_struct`.
#[derive(Clone, Copy, Debug)]
pub struct Tasklet<F> {
    /// `TASKLET_STATE_SCHED`: queued.
    pub scheduled: bool,
    /// `TASKLET_STATE_RUN`: running now (on SMP).
    pub running: bool,
    /// Disable count (`tasklet_disable` nests).
    pub count: u32,
    /// What runs: a typed function pointer in the kernel.
    pub func: F,
    pub data: u64,
}

/// The tasklets and the per-CPU `tasklet_vec` / `tasklet_hi_vec` lists (one
/// CPU's worth; the glue keeps one of these per CPU).
pub struct TaskletQueue<F> {
    tasklets: Vec<Tasklet<F>>,
    vec: VecDeque<TaskletId>,
    hi_vec: VecDeque<TaskletId>,
}

impl<F> Default for TaskletQueue<F> {
    fn default() -> Self {
        TaskletQueue { tasklets: Vec::new(), vec: VecDeque::new(), hi_vec: VecDeque::new() }
    }
}

impl<F: Copy> TaskletQueue<F> {
    pub fn new() -> Self {
        Self::default()
    }

    /// `tasklet_init`.
    pub fn tasklet_init(&mut self, func: F, data: u64) -> TaskletId {
        self.tasklets.push(Tasklet { scheduled: false, running: false, count: 0, func, data });
        TaskletId(self.tasklets.len() as u32 - 1)
    }

    pub fn get(&self, t: TaskletId) -> &Tasklet<F> {
        &self.tasklets[t.0 as usize]
    }

    fn schedule_on(&mut self, t: TaskletId, hi: bool, softirq: &mut SoftirqState) -> bool {
        let ts = &mut self.tasklets[t.0 as usize];
        if ts.scheduled {
            return false;
        }
        ts.scheduled = true;
        if hi {
            self.hi_vec.push_back(t);
            softirq.raise_softirq(HI_SOFTIRQ);
        } else {
            self.vec.push_back(t);
            softirq.raise_softirq(TASKLET_SOFTIRQ);
        }
        true
    }

    /// `tasklet_schedule`: queue once and raise TASKLET_SOFTIRQ.
    pub fn tasklet_schedule(&mut self, t: TaskletId, softirq: &mut SoftirqState) -> bool {
        self.schedule_on(t, false, softirq)
    }

    /// `tasklet_hi_schedule`.
    pub fn tasklet_hi_schedule(&mut self, t: TaskletId, softirq: &mut SoftirqState) -> bool {
        self.schedule_on(t, true, softirq)
    }

    /// `tasklet_disable`.
    pub fn tasklet_disable(&mut self, t: TaskletId) {
        self.tasklets[t.0 as usize].count += 1;
    }

    /// `tasklet_enable`.
    pub fn tasklet_enable(&mut self, t: TaskletId) {
        let ts = &mut self.tasklets[t.0 as usize];
        ts.count = ts.count.saturating_sub(1);
    }

    /// `tasklet_action` / `tasklet_hi_action` (the softirq handler): run
    /// each queued, enabled tasklet via `run(func, data)`; a disabled one goes
    /// back on the list and the softirq is raised again.
    pub fn tasklet_action(&mut self, hi: bool, softirq: &mut SoftirqState, mut run: impl FnMut(F, u64)) {
        let list = core::mem::take(if hi { &mut self.hi_vec } else { &mut self.vec });
        for t in list {
            let ts = &mut self.tasklets[t.0 as usize];
            if !ts.running && ts.count == 0 {
                ts.running = true;
                ts.scheduled = false;
                let (f, d) = (ts.func, ts.data);
                run(f, d);
                self.tasklets[t.0 as usize].running = false;
                continue;
            }
            if hi {
                self.hi_vec.push_back(t);
                softirq.raise_softirq(HI_SOFTIRQ);
            } else {
                self.vec.push_back(t);
                softirq.raise_softirq(TASKLET_SOFTIRQ);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_runs_once_and_disable_defers() {
        let mut q = TaskletQueue::new();
        let mut softirq = SoftirqState::new();
        let a = q.tasklet_init(1, 10);
        let b = q.tasklet_init(2, 20);
        assert!(q.tasklet_schedule(a, &mut softirq));
        assert!(!q.tasklet_schedule(a, &mut softirq), "already scheduled");
        q.tasklet_schedule(b, &mut softirq);
        q.tasklet_disable(b);
        let mut ran = Vec::new();
        softirq.do_softirq(
            |nr, st| {
                if nr == TASKLET_SOFTIRQ {
                    q.tasklet_action(false, st, |f, d| ran.push((f, d)));
                }
            },
            || 0,
            false,
        );
        // a ran exactly once; b stayed queued and kept the softirq raised
        // until the restart limit handed it to ksoftirqd.
        assert_eq!(ran, [(1, 10)]);
        assert!(q.get(b).scheduled);
        assert!(softirq.ksoftirqd_wakeup);
        q.tasklet_enable(b);
        ran.clear();
        softirq.run_ksoftirqd(|nr, st| {
            if nr == TASKLET_SOFTIRQ {
                q.tasklet_action(false, st, |f, d| ran.push((f, d)));
            }
        });
        assert_eq!(ran, [(2, 20)]);
        assert!(!q.get(b).scheduled);
        // Scheduling again after it ran queues it again.
        assert!(q.tasklet_schedule(a, &mut softirq));
    }
}

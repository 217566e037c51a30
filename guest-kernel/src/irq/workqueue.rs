//! Work queues. LKD ch. 8, "Work Queues": deferred work that runs in process
//! context, in a kernel worker thread, so it may sleep. `queue_work` adds a
//! work item once (a pending item is not queued twice) and wakes the worker;
//! the worker's loop takes items in order and runs them.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use crate::sched::{Scheduler, TaskId};

/// Handle of a `work_struct`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkId(pub u32);

/// `struct work_struct`.
#[derive(Clone, Copy, Debug)]
pub struct WorkStruct<F> {
    /// `WORK_STRUCT_PENDING`.
    pub pending: bool,
    /// What runs: a typed function pointer in the kernel.
    pub func: F,
    pub data: u64,
}

/// A single-threaded workqueue with its worker (`kworker`).
pub struct Workqueue<F> {
    works: Vec<WorkStruct<F>>,
    worklist: VecDeque<WorkId>,
    /// The worker thread, once created (e.g. through `kthread_create`).
    pub worker: Option<TaskId>,
}

impl<F: Copy> Default for Workqueue<F> {
    fn default() -> Self {
        Self::new()
    }
}

impl<F: Copy> Workqueue<F> {
    pub fn new() -> Self {
        Workqueue { works: Vec::new(), worklist: VecDeque::new(), worker: None }
    }

    /// `INIT_WORK`.
    pub fn init_work(&mut self, func: F, data: u64) -> WorkId {
        self.works.push(WorkStruct { pending: false, func, data });
        WorkId(self.works.len() as u32 - 1)
    }

    pub fn get(&self, w: WorkId) -> &WorkStruct<F> {
        &self.works[w.0 as usize]
    }

    /// `queue_work`: false if it was already pending. Safe from interrupt
    /// context; the worker is woken to run it later.
    pub fn queue_work(&mut self, w: WorkId, sched: &mut Scheduler, now: u64) -> bool {
        let ws = &mut self.works[w.0 as usize];
        if ws.pending {
            return false;
        }
        ws.pending = true;
        self.worklist.push_back(w);
        if let Some(worker) = self.worker {
            sched.wake_up_process(worker, now);
        }
        true
    }

    /// `process_one_work`, from the worker thread: take the next item, clear
    /// its pending bit (so it may be queued again while it runs) and return
    /// what to call.
    pub fn process_one_work(&mut self) -> Option<(WorkId, F, u64)> {
        let w = self.worklist.pop_front()?;
        let ws = &mut self.works[w.0 as usize];
        ws.pending = false;
        Some((w, ws.func, ws.data))
    }

    /// `worker_thread`'s loop body: run everything queued, in order, in the
    /// worker's (process) context; returns how many ran. The caller then sets
    /// the worker TASK_INTERRUPTIBLE and schedules.
    pub fn worker_thread(&mut self, mut run: impl FnMut(&mut Self, F, u64)) -> usize {
        let mut n = 0;
        while let Some((_, f, d)) = self.process_one_work() {
            run(self, f, d);
            n += 1;
        }
        n
    }

    pub fn has_pending(&self) -> bool {
        !self.worklist.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::TaskState;

    #[test]
    fn queued_once_run_in_order_by_the_worker() {
        let mut sched = Scheduler::new(100, &[TaskId(50)]);
        sched.sched_fork(TaskId(7), TaskId(50), 0).unwrap();
        sched.set_task_state(TaskId(7), TaskState::Interruptible);
        let mut wq = Workqueue::new();
        wq.worker = Some(TaskId(7));
        let a = wq.init_work(1, 0);
        let b = wq.init_work(2, 0);
        assert!(wq.queue_work(a, &mut sched, 0));
        assert!(!wq.queue_work(a, &mut sched, 0), "already pending");
        assert!(sched.task(TaskId(7)).unwrap().on_rq, "worker woken");
        wq.queue_work(b, &mut sched, 0);
        let mut ran = Vec::new();
        let mut requeued = false;
        let n = wq.worker_thread(|wq, f, _| {
            ran.push(f);
            // Work may requeue itself while running (pending was cleared).
            if f == 1 && !requeued {
                requeued = true;
                assert!(wq.queue_work(a, &mut sched, 0));
            }
        });
        assert_eq!(ran, [1, 2, 1]);
        assert_eq!(n, 3);
        assert!(!wq.has_pending());
    }
}

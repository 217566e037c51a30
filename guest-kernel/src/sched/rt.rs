//! The real-time class: SCHED_FIFO and SCHED_RR.
//!
//! 《Linux内核深度解析》§2.8.1: FIFO tasks run until they block or yield; RR
//! tasks have a time slice and go to the tail of their priority's queue when it
//! is used up. The run queue is `struct rt_prio_array`: one FIFO list per
//! priority and a bitmap of the non-empty ones, so picking is a find-first-bit.

use alloc::collections::VecDeque;

use super::TaskId;

/// `MAX_RT_PRIO`: kernel priorities 0..99 are real-time (0 is the highest).
pub const MAX_RT_PRIO: usize = 100;

/// `RR_TIMESLICE`: 100 ms.
pub const RR_TIMESLICE_MS: u64 = 100;

/// `struct rt_rq` with its `rt_prio_array`.
pub struct RtRq {
    queue: [VecDeque<TaskId>; MAX_RT_PRIO],
    bitmap: [u64; 2],
    pub rt_nr_running: usize,
}

impl Default for RtRq {
    fn default() -> Self {
        Self::new()
    }
}

impl RtRq {
    pub fn new() -> Self {
        RtRq { queue: core::array::from_fn(|_| VecDeque::new()), bitmap: [0; 2], rt_nr_running: 0 }
    }

    /// `enqueue_task_rt` / `__enqueue_rt_entity`: at the tail, or at the head
    /// (ENQUEUE_HEAD, used when a preempted task is put back).
    pub fn enqueue(&mut self, id: TaskId, prio: usize, head: bool) {
        debug_assert!(prio < MAX_RT_PRIO);
        if head {
            self.queue[prio].push_front(id);
        } else {
            self.queue[prio].push_back(id);
        }
        self.bitmap[prio / 64] |= 1 << (prio % 64);
        self.rt_nr_running += 1;
    }

    /// `dequeue_task_rt`.
    pub fn dequeue(&mut self, id: TaskId, prio: usize) -> bool {
        let q = &mut self.queue[prio];
        let Some(pos) = q.iter().position(|&t| t == id) else {
            return false;
        };
        q.remove(pos);
        if q.is_empty() {
            self.bitmap[prio / 64] &= !(1 << (prio % 64));
        }
        self.rt_nr_running -= 1;
        true
    }

    /// `requeue_task_rt`: move to the tail of its list (RR rotation, yield).
    pub fn requeue(&mut self, id: TaskId, prio: usize) {
        if self.dequeue(id, prio) {
            self.enqueue(id, prio, false);
        }
    }

    /// `sched_find_first_bit`: the highest non-empty priority.
    pub fn highest_prio(&self) -> Option<usize> {
        if self.bitmap[0] != 0 {
            Some(self.bitmap[0].trailing_zeros() as usize)
        } else if self.bitmap[1] != 0 {
            Some(64 + self.bitmap[1].trailing_zeros() as usize)
        } else {
            None
        }
    }

    /// `pick_next_rt_entity`: the head of the highest non-empty list. The
    /// running RT task stays queued, as in Linux.
    pub fn pick_next(&self) -> Option<TaskId> {
        self.highest_prio().and_then(|p| self.queue[p].front().copied())
    }

    /// Is `id` the only task at `prio` (no one to rotate with)?
    pub fn is_alone(&self, prio: usize) -> bool {
        self.queue[prio].len() <= 1
    }

    /// Queued tasks, highest priority first.
    pub fn iter(&self) -> impl Iterator<Item = TaskId> + '_ {
        self.queue.iter().flat_map(|q| q.iter().copied())
    }
}

/// `struct sched_rt_entity`: the RR slice left, in ticks.
#[derive(Clone, Copy, Debug, Default)]
pub struct SchedRtEntity {
    pub time_slice: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmap_picks_highest_priority_fifo_order() {
        let mut rq = RtRq::new();
        rq.enqueue(TaskId(1), 50, false);
        rq.enqueue(TaskId(2), 10, false);
        rq.enqueue(TaskId(3), 10, false);
        rq.enqueue(TaskId(4), 99, false);
        assert_eq!(rq.pick_next(), Some(TaskId(2)));
        rq.requeue(TaskId(2), 10);
        assert_eq!(rq.pick_next(), Some(TaskId(3)));
        assert!(rq.dequeue(TaskId(3), 10));
        assert!(rq.dequeue(TaskId(2), 10));
        assert_eq!(rq.highest_prio(), Some(50));
        assert!(rq.dequeue(TaskId(1), 50));
        assert_eq!(rq.pick_next(), Some(TaskId(4)));
        assert!(rq.dequeue(TaskId(4), 99));
        assert_eq!(rq.pick_next(), None);
        assert_eq!(rq.rt_nr_running, 0);
    }
}

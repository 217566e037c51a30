//! Wait queues: `wait_queue_head_t`, `prepare_to_wait`, `finish_wait`,
//! `wake_up` with exclusive waiters.
//!
//! LKD ch. 4, "Sleeping and Waking Up": a sleeper puts itself on a wait queue,
//! marks itself sleeping and calls `schedule()`, in a loop that re-checks its
//! condition, because a wakeup does not mean the condition holds.

use alloc::collections::VecDeque;

use super::TaskId;
use super::core::{Scheduler, TASK_NORMAL, TaskState};

/// `struct wait_queue_entry`, with `autoremove_wake_function` semantics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitQueueEntry {
    pub task: TaskId,
    /// `WQ_FLAG_EXCLUSIVE`: at most `nr_exclusive` of these wake per wake_up.
    pub exclusive: bool,
}

/// `wait_queue_head_t`. Non-exclusive entries sit at the head, exclusive ones
/// at the tail, as `prepare_to_wait` / `prepare_to_wait_exclusive` add them.
#[derive(Default, Debug)]
pub struct WaitQueueHead {
    entries: VecDeque<WaitQueueEntry>,
}

/// One step of the `wait_event` loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitEvent {
    /// The condition held: the wait is over (`finish_wait` done).
    Done,
    /// The task went to sleep: the caller context-switches to the returned
    /// task and calls `wait_event` again when it runs next.
    Slept(TaskId),
}

impl WaitQueueHead {
    pub const fn new() -> Self {
        WaitQueueHead { entries: VecDeque::new() }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    pub fn contains(&self, task: TaskId) -> bool {
        self.entries.iter().any(|e| e.task == task)
    }

    /// `prepare_to_wait[_exclusive]`: queue the CPU's current task (once) and
    /// set its state before the condition is checked, so that a wakeup
    /// between the check and `schedule` is not lost.
    pub fn prepare_to_wait(&mut self, sched: &mut Scheduler, cpu: usize, state: TaskState, exclusive: bool) {
        let task = sched.current(cpu);
        if !self.contains(task) {
            let e = WaitQueueEntry { task, exclusive };
            if exclusive {
                self.entries.push_back(e);
            } else {
                self.entries.push_front(e);
            }
        }
        sched.set_current_state(cpu, state);
    }

    /// `finish_wait`: running again, and off the queue.
    pub fn finish_wait(&mut self, sched: &mut Scheduler, cpu: usize) {
        let task = sched.current(cpu);
        sched.set_current_state(cpu, TaskState::Running);
        self.entries.retain(|e| e.task != task);
    }

    /// `__wake_up`: wake every non-exclusive waiter and up to `nr_exclusive`
    /// exclusive ones (0 = all). Woken entries are removed
    /// (`autoremove_wake_function`). Returns how many woke.
    pub fn wake_up_nr(&mut self, sched: &mut Scheduler, nr_exclusive: usize, now: u64) -> usize {
        let mut woken = 0;
        let mut exclusive_left = nr_exclusive;
        let mut i = 0;
        while i < self.entries.len() {
            let e = self.entries[i];
            if sched.try_to_wake_up(e.task, TASK_NORMAL, now) {
                self.entries.remove(i);
                woken += 1;
                if e.exclusive && nr_exclusive != 0 {
                    exclusive_left -= 1;
                    if exclusive_left == 0 {
                        break;
                    }
                }
            } else {
                i += 1;
            }
        }
        woken
    }

    /// `wake_up`: all non-exclusive waiters and one exclusive waiter.
    pub fn wake_up(&mut self, sched: &mut Scheduler, now: u64) -> usize {
        self.wake_up_nr(sched, 1, now)
    }

    /// `wake_up_all`.
    pub fn wake_up_all(&mut self, sched: &mut Scheduler, now: u64) -> usize {
        self.wake_up_nr(sched, 0, now)
    }

    /// One pass of `wait_event(wq, condition)` for the CPU's current task:
    ///
    /// ```text
    /// for (;;) {
    ///     prepare_to_wait(&wq, &wait, TASK_UNINTERRUPTIBLE);
    ///     if (condition) break;
    ///     schedule();
    /// }
    /// finish_wait(&wq, &wait);
    /// ```
    ///
    /// Each call is one trip round the loop; after `Slept` the task calls it
    /// again when it is next scheduled, so a wakeup without the condition only
    /// puts it back to sleep.
    pub fn wait_event(&mut self, sched: &mut Scheduler, cpu: usize, condition: bool, now: u64) -> WaitEvent {
        self.prepare_to_wait(sched, cpu, TaskState::Uninterruptible, false);
        if condition {
            self.finish_wait(sched, cpu);
            return WaitEvent::Done;
        }
        WaitEvent::Slept(sched.schedule(cpu, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::SchedAttr;

    fn setup() -> (Scheduler, TaskId, TaskId) {
        let mut s = Scheduler::new(100, &[TaskId(100)]);
        for id in [1, 2] {
            s.sched_fork(TaskId(id), TaskId(100), 0).unwrap();
            s.sched_setattr(TaskId(id), SchedAttr::normal(0), 0).unwrap();
            s.wake_up_new_task(TaskId(id), 0);
        }
        (s, TaskId(1), TaskId(2))
    }

    #[test]
    fn spurious_wakeup_sleeps_again() {
        let (mut s, a, b) = setup();
        let mut wq = WaitQueueHead::new();
        // B sleeps on something else, so only A and idle are left.
        s.set_task_state(b, TaskState::Interruptible);
        while s.schedule(0, 0) != a {
            s.set_current_state(0, TaskState::Interruptible);
        }
        // A waits for a condition that is false: it sleeps, idle runs.
        assert_eq!(wq.wait_event(&mut s, 0, false, 1), WaitEvent::Slept(TaskId(100)));
        assert!(!s.task(a).unwrap().on_rq);
        // Someone wakes the queue without making the condition true.
        assert_eq!(wq.wake_up(&mut s, 2), 1);
        assert!(s.task(a).unwrap().on_rq && s.need_resched(0));
        assert_eq!(s.schedule(0, 3), a);
        // A re-checks: still false, so it sleeps again and stays queued.
        assert_eq!(wq.wait_event(&mut s, 0, false, 4), WaitEvent::Slept(TaskId(100)));
        assert!(!s.task(a).unwrap().on_rq);
        assert!(wq.contains(a));
        // Now the condition holds and A is woken: the loop ends.
        wq.wake_up(&mut s, 5);
        assert_eq!(s.schedule(0, 6), a);
        assert_eq!(wq.wait_event(&mut s, 0, true, 7), WaitEvent::Done);
        assert_eq!(s.task(a).unwrap().state, TaskState::Running);
        assert!(wq.is_empty());
    }

    #[test]
    fn exclusive_waiters_wake_one_at_a_time() {
        let mut s = Scheduler::new(100, &[TaskId(100)]);
        let mut wq = WaitQueueHead::new();
        for id in 1..=4 {
            s.sched_fork(TaskId(id), TaskId(100), 0).unwrap();
            s.wake_up_new_task(TaskId(id), 0);
        }
        for _ in 1..=4 {
            let cur = s.schedule(0, 0);
            let excl = cur.0 != 4;
            wq.prepare_to_wait(&mut s, 0, TaskState::Interruptible, excl);
        }
        s.schedule(0, 0);
        assert_eq!(wq.len(), 4);
        // Task 4 is non-exclusive and wakes with the first exclusive one.
        assert_eq!(wq.wake_up(&mut s, 1), 2);
        assert_eq!(wq.wake_up(&mut s, 1), 1);
        assert_eq!(wq.wake_up_all(&mut s, 1), 1);
        assert!(wq.is_empty());
    }
}

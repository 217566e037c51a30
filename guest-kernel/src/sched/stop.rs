//! The stop class: one stop task per CPU (`migration/N`), above every other
//! class; it preempts everything and nothing preempts it.
//! 《Linux内核深度解析》§2.8.3.

use super::TaskId;

/// The per-CPU stop task and whether it is runnable.
#[derive(Default)]
pub struct StopRq {
    pub stop: Option<TaskId>,
    pub queued: bool,
}

impl StopRq {
    /// `pick_next_task_stop`.
    pub fn pick_next(&self) -> Option<TaskId> {
        if self.queued { self.stop } else { None }
    }
}

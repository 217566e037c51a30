//! The idle class: each CPU's idle task (pid 0), picked only when no other
//! class has a runnable task. 《Linux内核深度解析》§2.8.3.

use super::TaskId;

/// The per-CPU idle task.
pub struct IdleRq {
    pub idle: TaskId,
}

impl IdleRq {
    /// `pick_next_task_idle`: always succeeds.
    pub fn pick_next(&self) -> TaskId {
        self.idle
    }
}

//! Processes: task descriptors, pids, fork/clone, exit/wait and reparenting,
//! kernel threads, and the cgroup pids controller.
//!
//! LKD ch. 3, "Process Management"; 《Linux内核深度解析》§2.3-§2.6.
//!
//! The run state (`TASK_RUNNING`, `TASK_INTERRUPTIBLE`, ...) is the
//! scheduler's, in [`crate::sched::SchedTask::state`]; a [`TaskStruct`] holds
//! identity, family links, signal and reaper flags, and `exit_state`.

pub mod cred;
pub mod exit;
pub mod fork;
pub mod kthread;
pub mod pgrp;
pub mod pid;
pub mod pids_limit;
pub mod rlimit;
pub mod sigframe;
pub mod signal;
pub mod table;
pub mod task_struct;

pub use self::table::TaskTable;
pub use self::task_struct::{ExitState, TaskStruct};
pub use crate::sched::{TaskId, TaskState};

/// Linux errno values (include/uapi/asm-generic/errno-base.h); syscalls
/// return them negated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Errno {
    EPERM = 1,
    ESRCH = 3,
    ECHILD = 10,
    EAGAIN = 11,
    ENOMEM = 12,
    EACCES = 13,
    EBUSY = 16,
    EINVAL = 22,
}

/// Pid type (`pid_t`).
pub type Pid = i32;

#[cfg(test)]
mod tests;

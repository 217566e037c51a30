//! The process scheduler: a core that walks the scheduling classes in priority
//! order (stop, deadline, real-time, fair, idle) over per-CPU run queues.
//!
//! LKD ch. 4, "The Linux Scheduling Algorithm": the scheduler is modular, each
//! class has a priority and the core iterates over the classes in that order.
//! 《Linux内核深度解析》§2.8: the five classes, CFS formulae, scheduling points,
//! kernel preemption and bandwidth control; §2.9: SMP balancing and affinity.
//!
//! Everything here is pure Rust: the arch glue supplies the clock (`now`, in
//! nanoseconds), calls [`Scheduler::scheduler_tick`] from the timer interrupt,
//! [`Scheduler::schedule`] at scheduling points, and performs the context switch
//! to the task id that `schedule` returns.

pub mod attr;
pub mod core;
pub mod deadline;
pub mod fair;
pub mod idle;
pub mod rt;
pub mod stop;
pub mod waitqueue;

pub use self::core::{CpuMask, PREEMPT_OFFSET, SchedAttr, SchedClass, SchedPolicy, SchedTask, Scheduler, TaskState};
pub use self::waitqueue::{WaitEvent, WaitQueueHead};

/// Index of a task descriptor in the task arena; the scheduler's handle for a
/// task. (Pids are not unique handles: every CPU's idle task has pid 0.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId(pub u32);

/// Nanoseconds per millisecond, for the tunables below.
pub const NSEC_PER_MSEC: u64 = 1_000_000;

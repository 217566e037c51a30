//! Processes on the CPU (stub until the scheduler glue lands).

use super::trap::{TrapFrame, die, slot};

/// A synchronous exception from EL0.
pub fn el0_sync(frame: &mut TrapFrame) {
    die(frame, slot::EL0_SYNC, "exception from EL0")
}

/// A fault on a user address; true if it was resolved.
pub fn user_fault(_addr: usize, _write: bool, _exec: bool) -> bool {
    false
}

/// The first thing a new task runs (ret_from_fork).
#[unsafe(no_mangle)]
extern "C" fn schedule_tail() {}

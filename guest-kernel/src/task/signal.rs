//! The slice of signal delivery the process core needs: pending bits,
//! SIGKILL waking a sleeper, and init's immunity to fatal signals.
//! 《Linux内核深度解析》§2.5.1: init ignores fatal signals, it cannot be killed.

use super::task_struct::{SIGKILL, SIGSTOP};
use super::{Errno, Pid, TaskTable};
use crate::sched::{Scheduler, TaskState};

impl TaskTable {
    /// `kill(pid, sig)` / `send_signal`. A signal from user space that would
    /// kill or stop an unkillable task (init) is dropped (`sig_task_ignored`).
    /// Returns whether the signal was queued.
    pub fn send_signal(
        &mut self,
        sched: &mut Scheduler,
        pid: Pid,
        sig: u32,
        from_user: bool,
        now: u64,
    ) -> Result<bool, Errno> {
        if sig == 0 || sig > 63 {
            return Err(Errno::EINVAL);
        }
        let id = self.find_by_pid(pid).ok_or(Errno::ESRCH)?;
        let t = self.tsm(id);
        if from_user && t.signal_unkillable && (sig == SIGKILL || sig == SIGSTOP) {
            return Ok(false);
        }
        t.pending |= 1 << sig;
        // signal_wake_up: interruptible sleepers see the signal; SIGKILL also
        // resumes a stopped task.
        let mut mask = TaskState::Interruptible.bits();
        if sig == SIGKILL {
            mask |= TaskState::Stopped.bits();
        }
        sched.try_to_wake_up(id, mask, now);
        // A target running on another CPU sees it on its next way out.
        sched.kick_process(id);
        Ok(true)
    }

    /// `signal_pending`.
    pub fn signal_pending(&self, id: crate::sched::TaskId) -> bool {
        self.get(id).is_some_and(|t| t.pending != 0)
    }
}

//! Process groups and sessions (Linux kernel/sys.c `setpgid`, `setsid`;
//! LKD ch. 3 and ULK ch. 3 "Process groups"): a thread group's pgid and
//! sid live on its leader (`signal_struct`'s `pids[PIDTYPE_PGID]` and
//! `[PIDTYPE_SID]`), are inherited at fork, and name the targets of
//! `kill(0 or -pgid)` and `wait4(0 or -pgid)`. The terminal's foreground
//! group comes with the tty.

use alloc::vec::Vec;

use super::task_struct::PF_FORKNOEXEC;
use super::{Errno, ExitState, Pid, TaskId, TaskTable};

impl TaskTable {
    fn leader_of(&self, id: TaskId) -> TaskId {
        self.ts(id).group_leader
    }

    /// The process group of task `id`'s process.
    pub fn pgid(&self, id: TaskId) -> Pid {
        self.ts(self.leader_of(id)).pgid
    }

    /// The session of task `id`'s process.
    pub fn sid(&self, id: TaskId) -> Pid {
        self.ts(self.leader_of(id)).sid
    }

    /// The live processes (leaders) of process group `pgid`.
    pub fn pgrp_members(&self, pgid: Pid) -> Vec<TaskId> {
        self.iter()
            .filter(|t| t.thread_group_leader() && t.pgid == pgid && t.exit_state == ExitState::None && !t.is_kthread())
            .map(|t| t.id)
            .collect()
    }

    /// `will_become_orphaned_pgrp`/`is_current_pgrp_orphaned`: no process
    /// of group `pgid` has a parent in another group of the same session
    /// (so nobody is there to continue it if it stops).
    pub fn pgrp_orphaned(&self, pgid: Pid) -> bool {
        !self.pgrp_members(pgid).into_iter().any(|m| {
            let t = self.ts(m);
            t.real_parent
                .and_then(|p| self.get(p))
                .map(|p| self.ts(p.group_leader))
                .is_some_and(|p| p.pgid != pgid && p.sid == t.sid && p.pid > 0)
        })
    }

    /// `getpgid(pid)` / `getsid(pid)` target: 0 is the caller.
    fn target(&self, caller: TaskId, pid: Pid) -> Result<TaskId, Errno> {
        match pid {
            0 => Ok(caller),
            p if p < 0 => Err(Errno::ESRCH),
            p => self.find_by_pid(p).ok_or(Errno::ESRCH),
        }
    }

    /// `getpgid(pid)`.
    pub fn getpgid(&self, caller: TaskId, pid: Pid) -> Result<Pid, Errno> {
        Ok(self.pgid(self.target(caller, pid)?))
    }

    /// `getsid(pid)`.
    pub fn getsid(&self, caller: TaskId, pid: Pid) -> Result<Pid, Errno> {
        Ok(self.sid(self.target(caller, pid)?))
    }

    /// `setpgid(pid, pgid)` by `caller`: move process `pid` (0: the
    /// caller) into group `pgid` (0: its own pid). The target is the
    /// caller or one of its children in its session that has not yet
    /// exec'd (else ESRCH, EPERM, EACCES); a session leader cannot move
    /// (EPERM); the group must exist in the same session unless it is the
    /// target's own (EPERM).
    pub fn setpgid(&mut self, caller: TaskId, pid: Pid, pgid: Pid) -> Result<(), Errno> {
        if pgid < 0 {
            return Err(Errno::EINVAL);
        }
        let me = self.leader_of(caller);
        let target = if pid == 0 { me } else { self.find_by_pid(pid).ok_or(Errno::ESRCH)? };
        let target = self.leader_of(target);
        let t = self.ts(target);
        let tpid = t.pid;
        let pgid = if pgid == 0 { tpid } else { pgid };
        if target != me {
            let child = t.real_parent.map(|p| self.leader_of(p)) == Some(me);
            if !child {
                return Err(Errno::ESRCH);
            }
            if t.sid != self.sid(me) {
                return Err(Errno::EPERM);
            }
            if t.flags & PF_FORKNOEXEC == 0 {
                return Err(Errno::EACCES);
            }
        }
        if t.sid == tpid {
            return Err(Errno::EPERM);
        }
        if pgid != tpid && !self.iter().any(|o| o.thread_group_leader() && o.pgid == pgid && o.sid == self.sid(me)) {
            return Err(Errno::EPERM);
        }
        self.tsm(target).pgid = pgid;
        Ok(())
    }

    /// `setsid()`: the caller's process becomes the leader of a new
    /// session and group, both named by its pid, without a controlling
    /// terminal, unless it already leads a process group (EPERM). Returns
    /// the new session id.
    pub fn setsid(&mut self, caller: TaskId) -> Result<Pid, Errno> {
        let me = self.leader_of(caller);
        let pid = self.ts(me).pid;
        if self.iter().any(|t| t.thread_group_leader() && t.pgid == pid) {
            return Err(Errno::EPERM);
        }
        let t = self.tsm(me);
        t.sid = pid;
        t.pgid = pid;
        t.ctty = false;
        Ok(pid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::Scheduler;
    use crate::task::task_struct::SIGCHLD;

    fn setup() -> (TaskTable, Scheduler, TaskId) {
        let (mut tt, idle) = TaskTable::new(32768, 1);
        let mut s = Scheduler::new(100, &idle);
        let (init, _) = tt.rest_init(&mut s, 0).unwrap();
        let shell = tt.copy_process(&mut s, init, u64::from(SIGCHLD), 0).unwrap();
        tt.tsm(shell).flags &= !(PF_FORKNOEXEC | crate::task::task_struct::PF_KTHREAD);
        (tt, s, shell)
    }

    #[test]
    fn a_shell_makes_a_session_and_puts_a_job_in_its_own_group() {
        let (mut tt, mut s, shell) = setup();
        let sh = tt.ts(shell).pid;
        assert_eq!(tt.setsid(shell), Ok(sh));
        assert_eq!((tt.getpgid(shell, 0), tt.getsid(shell, 0)), (Ok(sh), Ok(sh)));
        assert_eq!(tt.setsid(shell), Err(Errno::EPERM), "already a group leader");
        assert_eq!(tt.setpgid(shell, 0, 0), Err(Errno::EPERM), "a session leader cannot move");
        let job = tt.copy_process(&mut s, shell, u64::from(SIGCHLD), 0).unwrap();
        let jp = tt.ts(job).pid;
        assert_eq!(tt.pgid(job), sh, "inherited");
        tt.setpgid(shell, jp, 0).unwrap();
        assert_eq!(tt.pgid(job), jp);
        let second = tt.copy_process(&mut s, shell, u64::from(SIGCHLD), 0).unwrap();
        tt.setpgid(shell, tt.ts(second).pid, jp).unwrap();
        assert_eq!(tt.pgrp_members(jp), [job, second]);
        assert_eq!(tt.setpgid(shell, tt.ts(second).pid, 999), Err(Errno::EPERM), "no such group");
        tt.tsm(second).flags &= !PF_FORKNOEXEC;
        assert_eq!(tt.setpgid(shell, tt.ts(second).pid, 0), Err(Errno::EACCES), "after exec");
        let init = tt.child_reaper.unwrap();
        assert_eq!(tt.setpgid(shell, tt.ts(init).pid, 0), Err(Errno::ESRCH), "not a child");
        assert_eq!(tt.getpgid(shell, 4242), Err(Errno::ESRCH));
    }
}

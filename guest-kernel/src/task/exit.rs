//! Process termination: `do_exit`, `exit_notify`, reparenting
//! (`forget_original_parent` / `find_new_reaper`), `wait4` and `release_task`.
//!
//! LKD ch. 3, "Process Termination": the descriptor stays as a zombie until the
//! parent's wait4; `find_new_reaper` finds the orphans a new parent.
//! 《Linux内核深度解析》§2.6: reaper order — another live thread of the same
//! thread group, then the nearest ancestor that is a child subreaper, then
//! the namespace's init, which reaps orphans and cannot be killed.

use alloc::vec::Vec;

use super::signal::{CLD_DUMPED, CLD_EXITED, CLD_KILLED, SigInfo, WCOREFLAG};
use super::task_struct::{ExitState, PF_EXITING, SIGCHLD};
use super::{Errno, Pid, TaskId, TaskTable};
use crate::sched::Scheduler;

/// `WNOHANG`.
pub const WNOHANG: u32 = 0x0000_0001;

/// `WUNTRACED`: also report children that stopped.
pub const WUNTRACED: u32 = 0x0000_0002;
/// `WCONTINUED`: also report children that SIGCONT resumed.
pub const WCONTINUED: u32 = 0x0000_0008;

/// What `wait4` found among the children.
enum Found {
    Zombie,
    Stopped,
    Continued,
}

/// What `wait4` returns when it does not fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitResult {
    /// A zombie child was reaped, or a stopped or continued one reported:
    /// its pid and wait status.
    Reaped { pid: Pid, status: i32 },
    /// WNOHANG and no child has exited yet (wait4 returns 0).
    NoneYet,
    /// The caller must sleep on its `wait_chldexit` queue and call again
    /// (the `do_wait` loop).
    MustSleep,
}

/// Which children `wait4` looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitPid {
    /// `pid > 0`.
    Pid(Pid),
    /// `pid == -1`.
    Any,
    /// `pid == 0` (the caller's group) or `pid < -1` (group `-pid`).
    Pgrp(Pid),
}

impl WaitPid {
    /// Decode wait4's pid argument for a caller in process group
    /// `own_pgid`.
    pub fn from_raw(pid: Pid, own_pgid: Pid) -> Self {
        match pid {
            p if p > 0 => WaitPid::Pid(p),
            -1 => WaitPid::Any,
            0 => WaitPid::Pgrp(own_pgid),
            p => WaitPid::Pgrp(p.saturating_neg()),
        }
    }
}

impl TaskTable {
    /// `find_alive_thread`: a thread of `p`'s group that is not exiting.
    fn find_alive_thread(&self, p: TaskId) -> Option<TaskId> {
        let leader = self.ts(p).group_leader;
        let l = self.ts(leader);
        core::iter::once(leader).chain(l.thread_group.iter().copied()).find(|&t| t != p && !self.ts(t).is_exiting())
    }

    /// `find_child_reaper` + `find_new_reaper`: where `father`'s children go.
    pub fn find_new_reaper(&self, father: TaskId) -> TaskId {
        let init = self.child_reaper.expect("no init");
        if let Some(t) = self.find_alive_thread(father) {
            return t;
        }
        if self.ts(father).has_child_subreaper {
            // Walk up: the nearest ancestor that is a subreaper and has a live
            // thread takes them; stop at init.
            let mut reaper = self.ts(father).real_parent;
            while let Some(r) = reaper {
                if r == init {
                    break;
                }
                let rt = self.ts(r);
                if rt.is_child_subreaper {
                    if !rt.is_exiting() {
                        return r;
                    }
                    if let Some(t) = self.find_alive_thread(r) {
                        return t;
                    }
                }
                reaper = rt.real_parent;
            }
        }
        init
    }

    /// `do_notify_parent`: SIGCHLD (or the chosen exit signal) to the parent
    /// and wake its wait4. Returns true if the child is auto-reaped (the
    /// parent ignores SIGCHLD or set SA_NOCLDWAIT).
    fn do_notify_parent(&mut self, sched: &mut Scheduler, child: TaskId, now: u64) -> bool {
        let c = self.ts(child);
        let (sig, pid, code) = (c.exit_signal, c.tgid, c.group_exit_code.unwrap_or(c.exit_code));
        let Some(parent) = c.parent else { return true };
        let autoreap = sig == SIGCHLD as i32 && self.ignores_children(parent);
        if sig > 0 && !autoreap {
            let (si_code, status) = match code & 0x7f {
                0 => (CLD_EXITED, (code >> 8) & 0xff),
                s if code & WCOREFLAG != 0 => (CLD_DUMPED, s),
                s => (CLD_KILLED, s),
            };
            let info = SigInfo { signo: sig as u32, code: si_code, pid, status, ..SigInfo::default() };
            self.send_signal_info(sched, parent, info, true, false, now);
        }
        self.wake_up_parent(sched, parent, now);
        autoreap
    }

    /// `__wake_up_parent`: the parent's whole thread group may be in wait4.
    pub(super) fn wake_up_parent(&mut self, sched: &mut Scheduler, parent: TaskId, now: u64) {
        let leader = self.ts(parent).group_leader;
        let mut q = core::mem::take(&mut self.tsm(leader).wait_chldexit);
        q.wake_up_all(sched, now);
        self.tsm(leader).wait_chldexit = q;
    }

    fn thread_group_empty(&self, leader: TaskId) -> bool {
        self.ts(leader).thread_group.is_empty()
    }

    /// `forget_original_parent`: hand every child to the new reaper, in
    /// order, notifying it at once of children that are already zombies.
    fn forget_original_parent(&mut self, sched: &mut Scheduler, father: TaskId, now: u64) -> Vec<TaskId> {
        let children = core::mem::take(&mut self.tsm(father).children);
        if children.is_empty() {
            return Vec::new();
        }
        let reaper = self.find_new_reaper(father);
        let mut dead = Vec::new();
        for &c in &children {
            let t = self.tsm(c);
            t.real_parent = Some(reaper);
            t.parent = Some(reaper);
            // Its threads, running elsewhere, learn their new parent
            // (getppid reads a per-CPU copy: `kernel.rs`).
            for &th in t.thread_group.iter().chain([&c]) {
                sched.kick_process(th);
            }
            let t = self.tsm(c);
            // A thread's exit_signal goes to its new parent as SIGCHLD.
            if t.exit_signal != -1 || t.group_leader == c {
                t.exit_signal = SIGCHLD as i32;
            }
            // reparent_leader: a zombie leader with no threads is reported now.
            if t.exit_state == ExitState::Zombie
                && t.group_leader == c
                && self.thread_group_empty(c)
                && self.do_notify_parent(sched, c, now)
            {
                self.tsm(c).exit_state = ExitState::Dead;
                dead.push(c);
            }
        }
        self.tsm(reaper).children.extend(children);
        dead
    }

    /// `do_exit` for the task `id` (the current task of its CPU): mark it
    /// exiting, complete vfork, reparent its children, become a zombie (or
    /// be auto-reaped), notify the parent and tell the scheduler it is dead;
    /// the caller then calls `schedule` and never returns to it.
    ///
    /// -EPERM if `id` is init with no other live thread: Linux panics
    /// ("Attempted to kill init!"); the glue should do the same.
    pub fn do_exit(&mut self, sched: &mut Scheduler, id: TaskId, code: i32, now: u64) -> Result<(), Errno> {
        if Some(id) == self.child_reaper && self.find_alive_thread(id).is_none() {
            return Err(Errno::EPERM);
        }
        let t = self.tsm(id);
        t.flags |= PF_EXITING;
        t.exit_code = code;
        self.mm_release(sched, id, now);
        // A live thread of init becomes the child reaper (init's threads).
        if Some(id) == self.child_reaper {
            self.child_reaper = self.find_alive_thread(id);
        }

        // exit_notify.
        let mut dead = self.forget_original_parent(sched, id, now);
        let t = self.ts(id);
        let leader = t.group_leader;
        let autoreap = if t.group_leader == id {
            // delay_group_leader: a leader is not reported while threads live.
            if self.thread_group_empty(id) { self.do_notify_parent(sched, id, now) } else { false }
        } else {
            // Threads are reaped at once (exit_signal == -1).
            true
        };
        self.tsm(id).exit_state = if autoreap { ExitState::Dead } else { ExitState::Zombie };
        sched.task_dead(id);
        if autoreap {
            dead.push(id);
        }
        for d in dead {
            self.release_task(sched, d, now);
        }
        let _ = leader;
        Ok(())
    }

    /// `release_task`: unhash, free the pid, drop the cgroup charge, unlink
    /// from the parent and the thread group; if this leaves a zombie leader
    /// alone, report it to its parent now.
    pub fn release_task(&mut self, sched: &mut Scheduler, id: TaskId, now: u64) {
        let t = self.ts(id);
        let (pid, cg, leader, parent) = (t.pid, t.pids_cgroup, t.group_leader, t.real_parent);
        if let Some(p) = parent
            && let Some(pt) = self.get_mut(p)
        {
            pt.children.retain(|&c| c != id);
        }
        if leader != id {
            self.tsm(leader).thread_group.retain(|&c| c != id);
        }
        self.pidmap.free_pid(pid);
        self.pids_cgroups.uncharge(cg);
        // `__unhash_process`: nr_threads-- (boot's own tasks were never
        // counted, hence the saturation).
        self.nr_threads = self.nr_threads.saturating_sub(1);
        let t = self.remove(id);
        self.put_sighand_ref(t.sighand);
        sched.remove_task(id);
        if leader != id
            && self.get(leader).is_some_and(|l| l.exit_state == ExitState::Zombie)
            && self.thread_group_empty(leader)
            && self.do_notify_parent(sched, leader, now)
        {
            self.tsm(leader).exit_state = ExitState::Dead;
            self.release_task(sched, leader, now);
        }
    }

    /// `wait4(pid, &status, options, NULL)` for the CPU's current task:
    /// reap an eligible zombie child of its thread group, or report that
    /// there is none yet (WNOHANG), that the caller must sleep, or -ECHILD.
    pub fn wait4(
        &mut self,
        sched: &mut Scheduler,
        current: TaskId,
        which: WaitPid,
        options: u32,
        now: u64,
    ) -> Result<WaitResult, Errno> {
        let leader = self.ts(current).group_leader;
        let threads: Vec<TaskId> =
            core::iter::once(leader).chain(self.ts(leader).thread_group.iter().copied()).collect();
        let mut any_child = false;
        let mut found = None;
        'outer: for th in threads {
            for &c in &self.ts(th).children {
                let ct = self.ts(c);
                // Threads of other groups are not waited for; only leaders.
                if ct.group_leader != c {
                    continue;
                }
                match which {
                    WaitPid::Pid(p) if ct.pid != p => continue,
                    WaitPid::Pgrp(g) if ct.pgid != g => continue,
                    _ => {}
                }
                any_child = true;
                // wait_consider_task: a zombie, then a stop, then a
                // continue not yet reported.
                if ct.exit_state == ExitState::Zombie && self.thread_group_empty(c) {
                    found = Some((c, Found::Zombie));
                    break 'outer;
                }
                if options & WUNTRACED != 0 && ct.group_stop.is_some() && !ct.stop_reported {
                    found = Some((c, Found::Stopped));
                    break 'outer;
                }
                if options & WCONTINUED != 0 && ct.continued {
                    found = Some((c, Found::Continued));
                    break 'outer;
                }
            }
        }
        match found {
            Some((z, Found::Zombie)) => {
                let t = self.tsm(z);
                // wait_task_zombie: a group exit's code wins over the leader's.
                let (pid, status) = (t.pid, t.group_exit_code.unwrap_or(t.exit_code));
                t.exit_state = ExitState::Dead;
                self.release_task(sched, z, now);
                return Ok(WaitResult::Reaped { pid, status });
            }
            Some((c, Found::Stopped)) => {
                let t = self.tsm(c);
                t.stop_reported = true;
                let sig = t.group_stop.unwrap_or(0) as i32;
                return Ok(WaitResult::Reaped { pid: t.pid, status: (sig << 8) | 0x7f });
            }
            Some((c, Found::Continued)) => {
                let t = self.tsm(c);
                t.continued = false;
                return Ok(WaitResult::Reaped { pid: t.pid, status: 0xffff });
            }
            None => {}
        }
        if !any_child {
            return Err(Errno::ECHILD);
        }
        if options & WNOHANG != 0 {
            return Ok(WaitResult::NoneYet);
        }
        Ok(WaitResult::MustSleep)
    }
}

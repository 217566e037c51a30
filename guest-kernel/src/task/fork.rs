//! fork/clone: `copy_process`, `kernel_clone` (`do_fork`), vfork completion,
//! and the boot-time creation of init and kthreadd (`rest_init`).
//!
//! LKD ch. 3, "Process Creation" and "The Linux Implementation of Threads";
//! 《Linux内核深度解析》§2.5.1: the clone flag rules, the parent choice for
//! CLONE_PARENT / CLONE_THREAD, the pids controller, init as child reaper.

use super::task_struct::{ExitState, PF_FORKNOEXEC, PF_KTHREAD, SIGCHLD, TaskStruct};
use super::{Errno, Pid, TaskId, TaskTable};
use crate::sched::{Scheduler, TaskState};

pub const CSIGNAL: u64 = 0x0000_00ff;
pub const CLONE_VM: u64 = 0x0000_0100;
pub const CLONE_FS: u64 = 0x0000_0200;
pub const CLONE_FILES: u64 = 0x0000_0400;
pub const CLONE_SIGHAND: u64 = 0x0000_0800;
pub const CLONE_VFORK: u64 = 0x0000_4000;
pub const CLONE_PARENT: u64 = 0x0000_8000;
pub const CLONE_THREAD: u64 = 0x0001_0000;
pub const CLONE_NEWNS: u64 = 0x0002_0000;
/// Share System V semaphore undo lists (there are none here: accepted).
pub const CLONE_SYSVSEM: u64 = 0x0004_0000;
/// The child's TPIDR_EL0 is clone's `tls` argument.
pub const CLONE_SETTLS: u64 = 0x0008_0000;
/// Store the child's tid at `parent_tid` (in the parent's memory).
pub const CLONE_PARENT_SETTID: u64 = 0x0010_0000;
/// Zero `child_tid` and futex-wake it when the child exits or execs.
pub const CLONE_CHILD_CLEARTID: u64 = 0x0020_0000;
pub const CLONE_UNTRACED: u64 = 0x0080_0000;
/// Store the child's tid at `child_tid` (in the child's memory).
pub const CLONE_CHILD_SETTID: u64 = 0x0100_0000;

/// What the caller of `kernel_clone` does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForkResult {
    pub child: TaskId,
    pub pid: Pid,
    /// CLONE_VFORK: the parent is now TASK_UNINTERRUPTIBLE; the caller must
    /// `schedule()`; it is woken when the child execs or exits.
    pub vfork_wait: bool,
}

impl TaskTable {
    /// `copy_process`: validate the flags, check `max_threads`, charge the pids cgroup, allocate a
    /// pid, duplicate the descriptor and link it into the family. The child is
    /// TASK_NEW in the scheduler until `wake_up_new_task`.
    pub fn copy_process(
        &mut self,
        sched: &mut Scheduler,
        current: TaskId,
        clone_flags: u64,
        now: u64,
    ) -> Result<TaskId, Errno> {
        if clone_flags & (CLONE_NEWNS | CLONE_FS) == (CLONE_NEWNS | CLONE_FS) {
            return Err(Errno::EINVAL);
        }
        // Thread groups must share signals; shared signal handlers require a
        // shared address space.
        if clone_flags & CLONE_THREAD != 0 && clone_flags & CLONE_SIGHAND == 0 {
            return Err(Errno::EINVAL);
        }
        if clone_flags & CLONE_SIGHAND != 0 && clone_flags & CLONE_VM == 0 {
            return Err(Errno::EINVAL);
        }
        let cur = self.ts(current);
        // Siblings of init would have no reaper; init cannot make them. Its
        // threads are fine (Linux checks CLONE_PARENT only).
        if clone_flags & CLONE_PARENT != 0 && cur.signal_unkillable {
            return Err(Errno::EINVAL);
        }
        // kernel/fork.c: "if (data_race(nr_threads >= max_threads))": EAGAIN.
        if self.nr_threads >= self.max_threads {
            return Err(Errno::EAGAIN);
        }
        let cgroup = cur.pids_cgroup;
        self.pids_cgroups.try_charge(cgroup)?;
        let pid = match self.pidmap.alloc_pid() {
            Ok(p) => p,
            Err(e) => {
                self.pids_cgroups.uncharge(cgroup);
                return Err(e);
            }
        };

        let cur = self.ts(current);
        let mut child = TaskStruct::new(TaskId(u32::MAX), pid, &cur.comm);
        child.flags = (cur.flags & PF_KTHREAD) | PF_FORKNOEXEC;
        child.pids_cgroup = cgroup;
        child.is_child_subreaper = false;
        let thread = clone_flags & CLONE_THREAD != 0;
        if thread {
            child.is_child_subreaper = cur.is_child_subreaper;
            child.has_child_subreaper = cur.has_child_subreaper;
            // One signal_struct per thread group: init's threads share its
            // SIGNAL_UNKILLABLE.
            child.signal_unkillable = cur.signal_unkillable;
        } else {
            child.has_child_subreaper = cur.has_child_subreaper || cur.is_child_subreaper;
        }
        child.blocked = cur.blocked;
        child.cred = cur.cred.clone();
        let cur_leader = self.ts(cur.group_leader);
        (child.pgid, child.sid, child.ctty) = (cur_leader.pgid, cur_leader.sid, cur_leader.ctty);
        child.rlim = cur_leader.rlim;
        child.sigtramp = cur.sigtramp;
        // A thread on the same stack must not inherit the parent's
        // alternate signal stack (copy_process).
        if clone_flags & (CLONE_VM | CLONE_VFORK) != CLONE_VM {
            child.altstack = cur.altstack;
        }
        let cur_sighand = cur.sighand;
        let cur_mm = cur.mm;
        let (real_parent, exit_signal) = if clone_flags & (CLONE_PARENT | CLONE_THREAD) != 0 {
            let leader_sig = self.ts(cur.group_leader).exit_signal;
            (cur.real_parent, if thread { -1 } else { leader_sig })
        } else {
            (Some(current), (clone_flags & CSIGNAL) as i32)
        };
        child.real_parent = real_parent;
        child.parent = real_parent;
        child.exit_signal = exit_signal;
        if thread {
            child.tgid = cur.tgid;
            child.group_leader = cur.group_leader;
        }
        child.mm = if child.flags & PF_KTHREAD != 0 {
            None
        } else if clone_flags & CLONE_VM != 0 {
            cur_mm
        } else {
            Some(self.new_mm())
        };
        child.sighand = self.copy_sighand(cur_sighand, clone_flags & CLONE_SIGHAND != 0);
        let leader = child.group_leader;
        let id = self.insert(child);

        if let Err(e) = sched.sched_fork(id, current, now) {
            let t = self.remove(id);
            self.put_sighand_ref(t.sighand);
            self.pidmap.free_pid(pid);
            self.pids_cgroups.uncharge(cgroup);
            return Err(e);
        }
        if thread {
            self.tsm(leader).thread_group.push(id);
        }
        if let Some(p) = real_parent {
            self.tsm(p).children.push(id);
        }
        self.nr_threads += 1;
        Ok(id)
    }

    /// `kernel_clone` (`do_fork`): copy_process + wake_up_new_task; with
    /// CLONE_VFORK the parent sleeps until `mm_release` of the child.
    pub fn kernel_clone(
        &mut self,
        sched: &mut Scheduler,
        cpu: usize,
        clone_flags: u64,
        now: u64,
    ) -> Result<ForkResult, Errno> {
        let current = sched.current(cpu);
        let child = self.copy_process(sched, current, clone_flags, now)?;
        let vfork = clone_flags & CLONE_VFORK != 0;
        if vfork {
            self.tsm(child).vfork_done = Some(current);
        }
        sched.wake_up_new_task(child, now);
        if vfork {
            sched.set_current_state(cpu, TaskState::Uninterruptible);
        }
        Ok(ForkResult { child, pid: self.ts(child).pid, vfork_wait: vfork })
    }

    /// `fork()` = `clone(SIGCHLD)`.
    pub fn do_fork(&mut self, sched: &mut Scheduler, cpu: usize, now: u64) -> Result<ForkResult, Errno> {
        self.kernel_clone(sched, cpu, u64::from(SIGCHLD), now)
    }

    /// `mm_release` → `complete_vfork_done`: on exec or exit, release a
    /// parent waiting in vfork.
    pub fn mm_release(&mut self, sched: &mut Scheduler, id: TaskId, now: u64) {
        if let Some(parent) = self.tsm(id).vfork_done.take() {
            sched.try_to_wake_up(parent, TaskState::Uninterruptible.bits(), now);
        }
    }

    /// `exec` bookkeeping the process core cares about: a fresh mm, no longer
    /// PF_FORKNOEXEC, and vfork completion.
    pub fn exec(&mut self, sched: &mut Scheduler, id: TaskId, now: u64) {
        self.mm_release(sched, id, now);
        let mm = self.new_mm();
        let t = self.tsm(id);
        t.mm = Some(mm);
        t.flags &= !(PF_FORKNOEXEC | PF_KTHREAD);
    }

    /// `rest_init`: CPU 0's idle task forks init (pid 1, the child reaper,
    /// unkillable) and kthreadd (pid 2). Both are kernel threads until init
    /// execs its user program.
    pub fn rest_init(&mut self, sched: &mut Scheduler, now: u64) -> Result<(TaskId, TaskId), Errno> {
        let idle0 = sched.current(0);
        let flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_UNTRACED;
        let init = self.copy_process(sched, idle0, flags, now)?;
        let kthreadd = self.copy_process(sched, idle0, flags, now)?;
        for (id, name) in [(init, "init"), (kthreadd, "kthreadd")] {
            let t = self.tsm(id);
            t.comm = alloc::string::String::from(name);
            t.flags |= PF_KTHREAD;
            t.mm = None;
            // Parent is the idle task (pid 0), as `ps` shows PPID 0 for both.
            t.exit_signal = SIGCHLD as i32;
        }
        self.tsm(init).signal_unkillable = true;
        self.child_reaper = Some(init);
        self.kthreadd = Some(kthreadd);
        sched.wake_up_new_task(init, now);
        sched.wake_up_new_task(kthreadd, now);
        debug_assert_eq!(self.ts(init).pid, 1);
        debug_assert_eq!(self.ts(kthreadd).pid, 2);
        debug_assert_eq!(self.ts(init).exit_state, ExitState::None);
        Ok((init, kthreadd))
    }
}

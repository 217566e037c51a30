//! `struct task_struct`: the process descriptor.
//!
//! LKD ch. 3, "Process Descriptor and the Task Structure"; 《Linux内核深度解析》
//! §2.3 (pid, tgid, group leader) and §2.6 (exit, zombies, reapers).
//! Links are arena indices ([`TaskId`]), not pointers.

use alloc::string::String;
use alloc::vec::Vec;

use super::cred::Cred;
use super::rlimit::Rlimits;
use super::signal::{AltStack, SigPending, SighandId};
use super::{Pid, TaskId};
use crate::sched::WaitQueueHead;

/// `PF_EXITING`: in `do_exit`.
pub const PF_EXITING: u32 = 0x0000_0004;
/// `PF_FORKNOEXEC`: forked but not yet exec'd.
pub const PF_FORKNOEXEC: u32 = 0x0000_0040;
/// `PF_IDLE`: an idle task.
pub const PF_IDLE: u32 = 0x0000_0002;
/// `PF_KTHREAD`: a kernel thread (no user address space).
pub const PF_KTHREAD: u32 = 0x0020_0000;

/// Signal numbers the process core uses (arm64 = asm-generic numbering).
pub const SIGKILL: u32 = 9;
pub const SIGSEGV: u32 = 11;
pub const SIGCHLD: u32 = 17;
pub const SIGSTOP: u32 = 19;

/// An armed ITIMER_REAL: the wheel timer that sends SIGALRM (its id),
/// when it expires and its interval (ns of the counter clock; interval 0:
/// one-shot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ItimerReal {
    pub timer: u32,
    pub expires: u64,
    pub interval: u64,
}

/// `task->exit_state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitState {
    /// Alive.
    None,
    /// `EXIT_ZOMBIE`: exited, waiting for the parent's wait4.
    Zombie,
    /// `EXIT_DEAD`: reaped (or auto-reaped), about to be freed.
    Dead,
}

/// An opaque handle for the address space (the mm subsystem owns `mm_struct`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmHandle(pub u32);

/// The process descriptor. Scheduling state lives in the scheduler's
/// [`crate::sched::SchedTask`] under the same [`TaskId`].
#[derive(Debug)]
pub struct TaskStruct {
    pub id: TaskId,
    pub pid: Pid,
    /// Thread group id: the group leader's pid.
    pub tgid: Pid,
    pub comm: String,
    pub flags: u32,
    pub exit_state: ExitState,
    /// Wait status as wait4 reports it (`(code & 0xff) << 8`, or the signal).
    pub exit_code: i32,
    /// Signal sent to the parent on exit; -1 for threads (auto-reaped).
    pub exit_signal: i32,
    /// Who wait4 reports to; `parent` is the same unless ptraced.
    pub real_parent: Option<TaskId>,
    pub parent: Option<TaskId>,
    /// Our children, oldest first (`children` list; `sibling` is the order).
    pub children: Vec<TaskId>,
    pub group_leader: TaskId,
    /// On the leader: the other threads of the group, oldest first.
    pub thread_group: Vec<TaskId>,
    /// `None` for kernel threads.
    pub mm: Option<MmHandle>,
    /// Signals sent to this thread alone (`task->pending`).
    pub pending: SigPending,
    /// On the leader: signals sent to the thread group
    /// (`signal->shared_pending`).
    pub shared_pending: SigPending,
    /// `task->blocked`.
    pub blocked: u64,
    /// `task->saved_sigmask`: the mask `rt_sigsuspend` replaced, put back
    /// once its handler has run.
    pub saved_sigmask: Option<u64>,
    /// On the leader: the process group and session (`signal_struct`'s
    /// PIDTYPE_PGID and PIDTYPE_SID), inherited at fork.
    pub pgid: Pid,
    pub sid: Pid,
    /// On the leader: the console is the process's controlling terminal
    /// (`signal->tty`), inherited at fork, lost by `setsid`.
    pub ctty: bool,
    /// On the leader: resource limits (`signal->rlim`), inherited at fork.
    pub rlim: Rlimits,
    /// On the leader: ITIMER_REAL (`signal->real_timer`), if armed.
    pub itimer: Option<ItimerReal>,
    /// `task->cred`: who the task acts as.
    pub cred: Cred,
    /// The handler table (`task->sighand`).
    pub sighand: SighandId,
    /// `sigaltstack`.
    pub altstack: AltStack,
    /// Where the address space's `rt_sigreturn` trampoline is
    /// (`mm->context.vdso`, kept per task: the tasks of an mm agree, and a
    /// fork's copy has it at the same place); 0 until the first handler
    /// that needs it runs.
    pub sigtramp: u64,
    /// `restart_block` of an interrupted `nanosleep`: its deadline (ns)
    /// and `rem` pointer, for `restart_syscall`.
    pub restart_block: Option<(u64, usize)>,
    /// On the leader: the group is stopped (SIGSTOP, SIGTSTP...; the
    /// signal), and whether wait4's WUNTRACED has reported it yet.
    pub group_stop: Option<u32>,
    pub stop_reported: bool,
    /// On the leader: SIGCONT resumed it; wait4's WCONTINUED has not yet
    /// reported it.
    pub continued: bool,
    /// `signal->flags & SIGNAL_UNKILLABLE`: init ignores fatal signals.
    pub signal_unkillable: bool,
    /// `prctl(PR_SET_CHILD_SUBREAPER)`.
    pub is_child_subreaper: bool,
    /// Some ancestor is a subreaper (inherited at fork).
    pub has_child_subreaper: bool,
    /// `vfork_done`: the parent waiting in vfork until we exec or exit.
    pub vfork_done: Option<TaskId>,
    /// The pids cgroup charged for this task.
    pub pids_cgroup: usize,
    /// `signal->wait_chldexit`: where wait4 sleeps.
    pub wait_chldexit: WaitQueueHead,
    /// `clear_child_tid` (CLONE_CHILD_CLEARTID, `set_tid_address(2)`): the
    /// user word the kernel zeroes and futex-wakes when the task leaves
    /// its address space (exit or exec); 0 for none.
    pub clear_child_tid: usize,
    /// On the leader: `signal->group_exit_code` once an `exit_group` (or a
    /// fatal signal) has started ending the whole group
    /// (SIGNAL_GROUP_EXIT); wait4 reports it for the process.
    pub group_exit_code: Option<i32>,
    /// Its `files_struct` and `fs_struct` in the VFS (`crate::fs::Vfs`'s
    /// tables), or 0 for none (kernel threads, a task that has exited).
    pub files: u32,
    pub fs: u32,
}

impl TaskStruct {
    pub fn new(id: TaskId, pid: Pid, comm: &str) -> Self {
        TaskStruct {
            id,
            pid,
            tgid: pid,
            comm: String::from(comm),
            flags: 0,
            exit_state: ExitState::None,
            exit_code: 0,
            exit_signal: SIGCHLD as i32,
            real_parent: None,
            parent: None,
            children: Vec::new(),
            group_leader: id,
            thread_group: Vec::new(),
            mm: None,
            pending: SigPending::default(),
            shared_pending: SigPending::default(),
            blocked: 0,
            saved_sigmask: None,
            pgid: 0,
            sid: 0,
            ctty: false,
            cred: Cred::root(),
            rlim: Rlimits::default(),
            itimer: None,
            sighand: SighandId(0),
            altstack: AltStack::default(),
            sigtramp: 0,
            restart_block: None,
            group_stop: None,
            stop_reported: false,
            continued: false,
            signal_unkillable: false,
            is_child_subreaper: false,
            has_child_subreaper: false,
            vfork_done: None,
            pids_cgroup: 0,
            wait_chldexit: WaitQueueHead::new(),
            clear_child_tid: 0,
            group_exit_code: None,
            files: 0,
            fs: 0,
        }
    }

    pub fn is_kthread(&self) -> bool {
        self.flags & PF_KTHREAD != 0
    }
    pub fn is_exiting(&self) -> bool {
        self.flags & PF_EXITING != 0
    }
    pub fn thread_group_leader(&self) -> bool {
        self.group_leader == self.id
    }
    /// Signal `sig` is pending for this thread alone.
    pub fn sigismember(&self, sig: u32) -> bool {
        self.pending.signal & super::signal::sigmask(sig) != 0
    }
}

/// `W_EXITCODE(code, 0)`: how `exit(code)` shows in wait4's status.
pub const fn exit_status(code: i32) -> i32 {
    (code & 0xff) << 8
}

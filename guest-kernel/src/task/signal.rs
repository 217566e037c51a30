//! Signals, the part that is not tied to the CPU (Linux kernel/signal.c):
//! the handler table (`sighand_struct`, shared by CLONE_SIGHAND), the
//! pending sets (per thread, and the thread group's shared one on the
//! leader, `signal_struct.shared_pending`), blocked masks, and which
//! signal a task takes next and what becomes of it (`get_signal`). The
//! frame a handler runs on is the arch's (`arch/aarch64/signal.rs`).
//!
//! LKD ch. 3 and 《Linux内核深度解析》§2.5.1 (init ignores the fatal
//! signals it has no handler for); ULK ch. 11 "Signals" for the data
//! structures: a signal is *generated* (`send_signal`: set a pending bit,
//! wake a thread that does not block it) and later *delivered* by that
//! thread on its way back to user space (`get_signal`). A signal whose
//! action is to be ignored is dropped when it is generated unless it is
//! blocked (`sig_ignored`), so a sleeper is never woken for nothing.

use alloc::vec::Vec;

use super::task_struct::{SIGCHLD, SIGKILL, SIGSTOP};
use super::{Errno, Pid, TaskId, TaskTable};
use crate::sched::{Scheduler, TaskState};

/// `SIG_DFL`: the default action.
pub const SIG_DFL: u64 = 0;
/// `SIG_IGN`: ignore the signal.
pub const SIG_IGN: u64 = 1;

/// `sa_flags` bits (include/uapi/asm-generic/signal-defs.h).
pub const SA_NOCLDSTOP: u64 = 0x0000_0001;
pub const SA_NOCLDWAIT: u64 = 0x0000_0002;
pub const SA_SIGINFO: u64 = 0x0000_0004;
pub const SA_RESTORER: u64 = 0x0400_0000;
pub const SA_ONSTACK: u64 = 0x0800_0000;
pub const SA_RESTART: u64 = 0x1000_0000;
pub const SA_NODEFER: u64 = 0x4000_0000;
pub const SA_RESETHAND: u64 = 0x8000_0000;
/// The flags `rt_sigaction` keeps (the rest are dropped, as Linux's
/// `sigaction_compat_abi` + the UAPI mask leave them).
const SA_KNOWN: u64 =
    SA_NOCLDSTOP | SA_NOCLDWAIT | SA_SIGINFO | SA_RESTORER | SA_ONSTACK | SA_RESTART | SA_NODEFER | SA_RESETHAND;

/// The highest signal number (`_NSIG`).
pub const NSIG: u32 = 64;

/// The bit of signal `sig` in a `sigset_t` (signal 1 is bit 0, as Linux).
pub const fn sigmask(sig: u32) -> u64 {
    1 << (sig - 1)
}

/// Signals no mask can block and no handler can catch.
pub const UNBLOCKABLE: u64 = sigmask(SIGKILL) | sigmask(SIGSTOP);

/// `SIG_KERNEL_IGNORE_MASK`: ignored by default (SIGCONT, SIGCHLD,
/// SIGWINCH, SIGURG).
const DEFAULT_IGNORE: u64 = sigmask(18) | sigmask(SIGCHLD) | sigmask(28) | sigmask(23);
/// `SIG_KERNEL_STOP_MASK`: stop by default (SIGSTOP, SIGTSTP, SIGTTIN,
/// SIGTTOU).
const DEFAULT_STOP: u64 = sigmask(SIGSTOP) | sigmask(20) | sigmask(21) | sigmask(22);
/// `SYNCHRONOUS_MASK`: faults, delivered before any other pending signal
/// (SIGSEGV, SIGBUS, SIGILL, SIGTRAP, SIGFPE, SIGSYS).
const SYNCHRONOUS: u64 = sigmask(11) | sigmask(7) | sigmask(4) | sigmask(5) | sigmask(8) | sigmask(31);

/// The core-dump bit of a wait status (`WCOREFLAG`). Never set here: no
/// core file is written, as on Linux with its default `RLIMIT_CORE` of 0,
/// where a SIGSEGV child's status is plain 11.
pub const WCOREFLAG: i32 = 0x80;

/// `struct k_sigaction` as arm64's `rt_sigaction` passes it (32 bytes:
/// handler, flags, restorer, mask).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct SigAction {
    pub handler: u64,
    pub flags: u64,
    pub restorer: u64,
    pub mask: u64,
}

/// `sighand_struct`: the 64 actions, shared by the tasks cloned with
/// CLONE_SIGHAND (every thread of a group).
#[derive(Clone, Debug)]
pub struct Sighand {
    pub action: [SigAction; NSIG as usize],
    refs: u32,
}

/// Which `sighand_struct` a task uses: an index in [`TaskTable`]'s arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SighandId(pub u32);

/// `stack_t`: an alternate signal stack (`sigaltstack`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AltStack {
    pub sp: u64,
    pub size: u64,
    /// `SS_AUTODISARM` as given; `SS_DISABLE` is `size == 0`.
    pub flags: u32,
}

/// `SS_ONSTACK`: `sigaltstack` reports that the caller runs on it.
pub const SS_ONSTACK: u32 = 1;
/// `SS_DISABLE`: no alternate stack.
pub const SS_DISABLE: u32 = 2;
/// `MINSIGSTKSZ` on arm64.
pub const MINSIGSTKSZ: u64 = 5120;

impl AltStack {
    /// `on_sig_stack(sp)`.
    pub fn contains(&self, sp: u64) -> bool {
        self.size != 0 && sp > self.sp && sp - self.sp <= self.size
    }
}

/// `si_code` of a signal sent by `kill` (`SI_USER`).
pub const SI_USER: i32 = 0;
/// `si_code` of `tkill`/`tgkill` (`SI_TKILL`).
pub const SI_TKILL: i32 = -6;
/// `si_code` of a SIGSEGV for an unmapped address (`SEGV_MAPERR`).
pub const SEGV_MAPERR: i32 = 1;
/// `si_code` of SIGCHLD for an exited child (`CLD_EXITED`), killed one
/// (`CLD_KILLED`) or one that dumped core (`CLD_DUMPED`).
pub const CLD_EXITED: i32 = 1;
pub const CLD_KILLED: i32 = 2;
pub const CLD_DUMPED: i32 = 3;
/// `si_code` of SIGCHLD for a child that stopped (`CLD_STOPPED`) or was
/// continued (`CLD_CONTINUED`).
pub const CLD_STOPPED: i32 = 5;
pub const CLD_CONTINUED: i32 = 6;

/// What a `siginfo_t` says about a pending signal (the fields of the
/// union arm64 programs read: `_kill`, `_sigfault`, `_sigchld`). One per
/// pending standard signal, as Linux keeps one queued `sigqueue` for a
/// signal that is not yet pending.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SigInfo {
    pub signo: u32,
    pub code: i32,
    /// The sender's tgid (`si_pid`), or the child's for SIGCHLD.
    pub pid: Pid,
    /// The sender's uid (`si_uid`).
    pub uid: u32,
    /// SIGSEGV's faulting address (`si_addr`).
    pub addr: u64,
    /// SIGCHLD's `si_status`.
    pub status: i32,
}

impl SigInfo {
    /// A signal from `kill` by `pid`.
    pub const fn user(signo: u32, pid: Pid) -> Self {
        SigInfo { signo, code: SI_USER, pid, uid: 0, addr: 0, status: 0 }
    }
}

/// A pending set and what it carries (`struct sigpending`).
#[derive(Clone, Debug, Default)]
pub struct SigPending {
    pub signal: u64,
    info: Vec<SigInfo>,
}

impl SigPending {
    /// Adds `info` unless its signal is already pending (standard signals
    /// do not queue twice: `legacy_queue`).
    fn add(&mut self, info: SigInfo) {
        let bit = sigmask(info.signo);
        if self.signal & bit == 0 {
            self.signal |= bit;
            self.info.push(info);
        }
    }
    /// Takes signal `sig` out, with what it carried.
    fn take(&mut self, sig: u32) -> SigInfo {
        self.signal &= !sigmask(sig);
        match self.info.iter().position(|i| i.signo == sig) {
            Some(at) => self.info.swap_remove(at),
            None => SigInfo { signo: sig, ..SigInfo::default() },
        }
    }
    /// Forgets the signals in `mask` (`flush_sigqueue_mask`).
    fn flush(&mut self, mask: u64) {
        self.signal &= !mask;
        self.info.retain(|i| mask & sigmask(i.signo) == 0);
    }
    /// The next signal to take among `allowed`: faults first, then the
    /// lowest number (`next_signal`).
    fn next(&self, allowed: u64) -> Option<u32> {
        let ready = self.signal & allowed;
        let pick = if ready & SYNCHRONOUS != 0 { ready & SYNCHRONOUS } else { ready };
        (pick != 0).then(|| pick.trailing_zeros() + 1)
    }
}

/// What becomes of a system call a signal interrupted (`do_signal`'s
/// restart rules).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restart {
    /// Run it again (x0 and the `svc` put back).
    Again,
    /// Run `restart_syscall` instead (the rest of a `nanosleep`).
    RestartBlock,
    /// Return EINTR.
    Eintr,
}

/// Linux's restart codes (include/linux/errno.h), never seen by programs.
pub const ERESTARTSYS: i32 = 512;
pub const ERESTARTNOHAND: i32 = 514;
pub const ERESTART_RESTARTBLOCK: i32 = 516;

/// The fate of a call that returned restart code `code` (errno), when a
/// handler with `flags` is about to run (`Some`) or none is (`None`):
/// without a handler it always restarts; with one, only ERESTARTSYS under
/// SA_RESTART does, and the rest give EINTR.
pub fn restart(code: i32, handler_flags: Option<u64>) -> Option<Restart> {
    if ![ERESTARTSYS, ERESTARTNOHAND, ERESTART_RESTARTBLOCK].contains(&code) {
        return None;
    }
    Some(match handler_flags {
        None if code == ERESTART_RESTARTBLOCK => Restart::RestartBlock,
        None => Restart::Again,
        Some(f) if code == ERESTARTSYS && f & SA_RESTART != 0 => Restart::Again,
        Some(_) => Restart::Eintr,
    })
}

/// What the task that took a signal does with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Run the handler (`handle_signal`): the action as it was when the
    /// signal was taken, and the mask to restore on `rt_sigreturn`.
    Handler { info: SigInfo, action: SigAction, old_blocked: u64 },
    /// End the thread group (`do_group_exit`) with this wait status: the
    /// signal (no core is dumped: see [`WCOREFLAG`]).
    Fatal { status: i32 },
    /// Stop the thread group (the default action of SIGSTOP, SIGTSTP,
    /// SIGTTIN, SIGTTOU): the signal.
    Stop { sig: u32 },
}

/// Why an action could not be changed.
fn check_sig(sig: u32) -> Result<(), Errno> {
    if sig == 0 || sig > NSIG { Err(Errno::EINVAL) } else { Ok(()) }
}

impl TaskTable {
    /// A new handler table, all default actions.
    pub(super) fn new_sighand(&mut self) -> SighandId {
        let s = Sighand { action: [SigAction::default(); NSIG as usize], refs: 1 };
        self.put_sighand(s)
    }

    fn put_sighand(&mut self, s: Sighand) -> SighandId {
        match self.sighands.iter().position(Option::is_none) {
            Some(i) => {
                self.sighands[i] = Some(s);
                SighandId(i as u32)
            }
            None => {
                self.sighands.push(Some(s));
                SighandId(self.sighands.len() as u32 - 1)
            }
        }
    }

    /// `copy_sighand`: CLONE_SIGHAND shares the table, otherwise the child
    /// gets a copy.
    pub(super) fn copy_sighand(&mut self, from: SighandId, share: bool) -> SighandId {
        let s = self.sighand_mut(from);
        if share {
            s.refs += 1;
            return from;
        }
        let mut copy = s.clone();
        copy.refs = 1;
        self.put_sighand(copy)
    }

    /// `__cleanup_sighand`: the last user frees the table.
    pub(super) fn put_sighand_ref(&mut self, id: SighandId) {
        let s = self.sighand_mut(id);
        s.refs -= 1;
        if s.refs == 0 {
            self.sighands[id.0 as usize] = None;
        }
    }

    fn sighand_mut(&mut self, id: SighandId) -> &mut Sighand {
        self.sighands[id.0 as usize].as_mut().expect("freed sighand")
    }

    /// The handler table of task `id`.
    pub fn sighand(&self, id: TaskId) -> &Sighand {
        self.sighands[self.ts(id).sighand.0 as usize].as_ref().expect("freed sighand")
    }

    /// The action of signal `sig` for task `id`.
    pub fn action(&self, id: TaskId, sig: u32) -> SigAction {
        self.sighand(id).action[sig as usize - 1]
    }

    /// `do_sigaction`: the old action of `sig`, after installing `new` if
    /// given. SIGKILL and SIGSTOP cannot be caught or ignored. A signal now
    /// ignored is discarded from every pending set of the group, as
    /// POSIX wants.
    pub fn do_sigaction(&mut self, id: TaskId, sig: u32, new: Option<SigAction>) -> Result<SigAction, Errno> {
        check_sig(sig)?;
        if new.is_some() && UNBLOCKABLE & sigmask(sig) != 0 {
            return Err(Errno::EINVAL);
        }
        let sh = self.ts(id).sighand;
        let old = self.sighand_mut(sh).action[sig as usize - 1];
        if let Some(mut a) = new {
            a.flags &= SA_KNOWN;
            a.mask &= !UNBLOCKABLE;
            self.sighand_mut(sh).action[sig as usize - 1] = a;
            if Self::ignores(&a, sig) {
                let leader = self.ts(id).group_leader;
                for t in self.group_of(leader) {
                    self.tsm(t).pending.flush(sigmask(sig));
                }
                self.tsm(leader).shared_pending.flush(sigmask(sig));
            }
        }
        Ok(old)
    }

    /// `sig_handler_ignored`: the action is SIG_IGN, or SIG_DFL for a
    /// signal ignored by default.
    fn ignores(a: &SigAction, sig: u32) -> bool {
        a.handler == SIG_IGN || (a.handler == SIG_DFL && DEFAULT_IGNORE & sigmask(sig) != 0)
    }

    /// The leader and every other thread of its group.
    fn group_of(&self, leader: TaskId) -> Vec<TaskId> {
        core::iter::once(leader).chain(self.ts(leader).thread_group.iter().copied()).collect()
    }

    /// `sig_ignored`: generating `sig` for task `id` would have no effect
    /// (ignored and not blocked; init's default-fatal signals from user
    /// space).
    fn sig_ignored(&self, id: TaskId, sig: u32, from_user: bool) -> bool {
        let t = self.ts(id);
        if t.blocked & sigmask(sig) != 0 {
            return false;
        }
        let a = self.action(id, sig);
        if t.signal_unkillable && a.handler == SIG_DFL && from_user {
            // SIGKILL and SIGSTOP from user space never reach init; the
            // rest only when it has a handler (§2.5.1).
            return true;
        }
        Self::ignores(&a, sig)
    }

    /// `kill(pid, sig)` for one process (`kill_pid_info` →
    /// `__send_signal` with a shared pending set): `pid` names a thread
    /// group. Returns whether the signal was queued (false: ignored).
    pub fn send_signal(
        &mut self,
        sched: &mut Scheduler,
        pid: Pid,
        sig: u32,
        from_user: bool,
        now: u64,
    ) -> Result<bool, Errno> {
        if sig > NSIG {
            return Err(Errno::EINVAL);
        }
        let id = self.find_by_pid(pid).ok_or(Errno::ESRCH)?;
        if sig == 0 {
            return Ok(false);
        }
        let info = SigInfo::user(sig, 0);
        Ok(self.send_signal_info(sched, id, info, false, from_user, now))
    }

    /// `send_signal` with its `siginfo`: to the thread group of `id`
    /// (`group`, the shared pending set) or to thread `id` alone (a fault,
    /// `tgkill`). Stop and continue signals cancel each other first
    /// (`prepare_signal`). Returns whether it was queued.
    pub fn send_signal_info(
        &mut self,
        sched: &mut Scheduler,
        id: TaskId,
        info: SigInfo,
        group: bool,
        from_user: bool,
        now: u64,
    ) -> bool {
        let sig = info.signo;
        let leader = self.ts(id).group_leader;
        if self.ts(leader).exit_state != super::ExitState::None && self.ts(leader).thread_group.is_empty() {
            return false;
        }
        if DEFAULT_STOP & sigmask(sig) != 0 {
            for t in self.group_of(leader) {
                self.tsm(t).pending.flush(sigmask(18));
            }
            self.tsm(leader).shared_pending.flush(sigmask(18));
        } else if sig == 18 {
            for t in self.group_of(leader) {
                self.tsm(t).pending.flush(DEFAULT_STOP);
            }
            self.tsm(leader).shared_pending.flush(DEFAULT_STOP);
            self.wake_stopped(sched, leader, now);
        }
        if self.sig_ignored(id, sig, from_user) {
            return false;
        }
        if group {
            self.tsm(leader).shared_pending.add(info);
        } else {
            self.tsm(id).pending.add(info);
        }
        // complete_signal: SIGKILL to a group wakes every thread (even a
        // stopped one) to die; otherwise wake a thread that can take it,
        // the target first.
        if group && sig == SIGKILL {
            for t in self.group_of(leader) {
                self.signal_wake_up(sched, t, true, now);
            }
            return true;
        }
        let wants = |tt: &TaskTable, t: TaskId| {
            let ts = tt.ts(t);
            ts.blocked & sigmask(sig) == 0 && !ts.is_exiting()
        };
        let target = if !group || wants(self, id) {
            Some(id)
        } else {
            self.group_of(leader).into_iter().find(|&t| wants(self, t))
        };
        if let Some(t) = target {
            self.signal_wake_up(sched, t, sig == SIGKILL, now);
        }
        true
    }

    /// `check_kill_permission`: may task `from` send `sig` to task `to`?
    /// By credentials (root, or matching real/saved uids), or SIGCONT
    /// within one session.
    pub fn may_kill(&self, from: TaskId, to: TaskId, sig: u32) -> bool {
        let (f, t) = (self.ts(from), self.ts(to));
        f.cred.may_signal(&t.cred) || (sig == 18 && self.sid(from) == self.sid(to))
    }

    /// `signal_wake_up`: an interruptible sleeper sees the signal; SIGKILL
    /// also resumes a stopped task. A target running on another CPU sees
    /// it on its next way out.
    fn signal_wake_up(&mut self, sched: &mut Scheduler, id: TaskId, fatal: bool, now: u64) {
        let mut mask = TaskState::Interruptible.bits();
        if fatal {
            mask |= TaskState::Stopped.bits();
        }
        sched.try_to_wake_up(id, mask, now);
        sched.kick_process(id);
    }

    /// SIGCONT resumes a stopped group (`prepare_signal`'s
    /// `wake_up_state(t, __TASK_STOPPED)`).
    fn wake_stopped(&mut self, sched: &mut Scheduler, leader: TaskId, now: u64) {
        let l = self.tsm(leader);
        if l.group_stop.take().is_none() {
            return;
        }
        l.continued = true;
        for t in self.group_of(leader) {
            sched.try_to_wake_up(t, TaskState::Stopped.bits(), now);
        }
        self.notify_parent_cldstop(sched, leader, CLD_CONTINUED, 18, now);
    }

    /// The thread group of `id` is stopped (a stop signal's default
    /// action, until SIGCONT).
    pub fn group_stopped(&self, id: TaskId) -> bool {
        self.get(id).and_then(|t| self.get(t.group_leader)).is_some_and(|l| l.group_stop.is_some())
    }

    /// `do_signal_stop`: task `id` took stop signal `sig`: its group
    /// stops (each thread stops on its way back to user space: the
    /// returned ones must be kicked), and the parent hears of it
    /// (SIGCHLD with CLD_STOPPED unless it set SA_NOCLDSTOP; wait4's
    /// WUNTRACED).
    pub fn do_signal_stop(&mut self, sched: &mut Scheduler, id: TaskId, sig: u32, now: u64) -> Vec<TaskId> {
        let leader = self.ts(id).group_leader;
        let l = self.tsm(leader);
        l.group_stop = Some(sig);
        l.stop_reported = false;
        l.continued = false;
        self.notify_parent_cldstop(sched, leader, CLD_STOPPED, sig as i32, now);
        self.group_of(leader).into_iter().filter(|&t| t != id).collect()
    }

    /// `do_notify_parent_cldstop`: SIGCHLD to the parent of group `leader`
    /// with `code` (CLD_STOPPED or CLD_CONTINUED), unless the parent set
    /// SA_NOCLDSTOP; its wait4 is woken either way.
    fn notify_parent_cldstop(&mut self, sched: &mut Scheduler, leader: TaskId, code: i32, status: i32, now: u64) {
        let Some(parent) = self.ts(leader).parent else { return };
        let pid = self.ts(leader).tgid;
        if self.action(parent, SIGCHLD).flags & SA_NOCLDSTOP == 0 {
            let info = SigInfo { signo: SIGCHLD, code, pid, status, ..SigInfo::default() };
            self.send_signal_info(sched, parent, info, true, false, now);
        }
        self.wake_up_parent(sched, parent, now);
    }

    /// `signal_pending(id)`: a signal that task `id` does not block waits
    /// in its own or its group's pending set. Interruptible sleeps end on
    /// it.
    pub fn signal_pending(&self, id: TaskId) -> bool {
        self.get(id).is_some_and(|t| {
            let shared = self.get(t.group_leader).map_or(0, |l| l.shared_pending.signal);
            (t.pending.signal | shared) & !t.blocked != 0
        })
    }

    /// `fatal_signal_pending`: SIGKILL is pending, for the thread (a group
    /// exit sends it to every thread) or its group (`kill`).
    pub fn fatal_signal_pending(&self, id: TaskId) -> bool {
        self.get(id).is_some_and(|t| {
            let shared = self.get(t.group_leader).map_or(0, |l| l.shared_pending.signal);
            (t.pending.signal | shared) & sigmask(SIGKILL) != 0
        })
    }

    /// `dequeue_signal`: the next signal task `id` does not block, its own
    /// pending set first, then the group's.
    fn dequeue_signal(&mut self, id: TaskId) -> Option<SigInfo> {
        let t = self.ts(id);
        let allowed = !t.blocked;
        if let Some(sig) = t.pending.next(allowed) {
            return Some(self.tsm(id).pending.take(sig));
        }
        let leader = t.group_leader;
        let sig = self.ts(leader).shared_pending.next(allowed)?;
        Some(self.tsm(leader).shared_pending.take(sig))
    }

    /// `dequeue_signal` for `rt_sigtimedwait`: the next pending signal of
    /// task `id` that is in `set`, blocked or not, its own first.
    pub fn dequeue_from(&mut self, id: TaskId, set: u64) -> Option<SigInfo> {
        let set = set & !UNBLOCKABLE;
        let t = self.ts(id);
        if let Some(sig) = t.pending.next(set) {
            return Some(self.tsm(id).pending.take(sig));
        }
        let leader = t.group_leader;
        let sig = self.ts(leader).shared_pending.next(set)?;
        Some(self.tsm(leader).shared_pending.take(sig))
    }

    /// `get_signal`: what task `id` does with its next deliverable signal,
    /// if any. Ignored ones are dropped on the way; a handler's mask (and
    /// the signal itself, unless SA_NODEFER) is blocked while it runs, and
    /// SA_RESETHAND puts the default action back; init ignores the
    /// default-fatal signals it has no handler for.
    pub fn get_signal(&mut self, id: TaskId) -> Option<Delivery> {
        loop {
            let info = self.dequeue_signal(id)?;
            let sig = info.signo;
            let action = self.action(id, sig);
            if Self::ignores(&action, sig) {
                continue;
            }
            if action.handler != SIG_DFL {
                let sh = self.ts(id).sighand;
                if action.flags & SA_RESETHAND != 0 {
                    self.sighand_mut(sh).action[sig as usize - 1] = SigAction::default();
                }
                let t = self.tsm(id);
                let old_blocked = t.blocked;
                let mut add = action.mask;
                if action.flags & SA_NODEFER == 0 {
                    add |= sigmask(sig);
                }
                t.blocked |= add & !UNBLOCKABLE;
                return Some(Delivery::Handler { info, action, old_blocked });
            }
            // init survives what it has no handler for, but not its own
            // faults (Linux's force_sig_info clears SIGNAL_UNKILLABLE).
            if self.ts(id).signal_unkillable && sig != SIGKILL && SYNCHRONOUS & sigmask(sig) == 0 {
                continue;
            }
            if DEFAULT_STOP & sigmask(sig) != 0 {
                return Some(Delivery::Stop { sig });
            }
            return Some(Delivery::Fatal { status: sig as i32 });
        }
    }

    /// `sigprocmask`/`set_current_blocked`: task `id`'s new mask
    /// (SIGKILL and SIGSTOP stay unblocked); returns the old one.
    pub fn set_blocked(&mut self, id: TaskId, mask: u64) -> u64 {
        let t = self.tsm(id);
        core::mem::replace(&mut t.blocked, mask & !UNBLOCKABLE)
    }

    /// `rt_sigpending`: the blocked signals pending for task `id`, its own
    /// and its group's.
    pub fn sigpending(&self, id: TaskId) -> u64 {
        let t = self.ts(id);
        (t.pending.signal | self.ts(t.group_leader).shared_pending.signal) & t.blocked
    }

    /// `flush_signal_handlers` at execve: caught signals go back to their
    /// default action, ignored ones stay ignored; the table is unshared
    /// first if another process shares it (`unshare_sighand`); the
    /// alternate stack is forgotten.
    pub fn flush_signal_handlers(&mut self, id: TaskId) {
        let sh = self.ts(id).sighand;
        let shared_with_other_process = self.iter().any(|t| {
            t.sighand == sh && t.group_leader != self.ts(id).group_leader && t.exit_state == super::ExitState::None
        });
        let sh = if shared_with_other_process {
            let new = self.copy_sighand(sh, false);
            self.put_sighand_ref(sh);
            self.tsm(id).sighand = new;
            new
        } else {
            sh
        };
        for a in self.sighand_mut(sh).action.iter_mut() {
            if a.handler != SIG_IGN {
                *a = SigAction::default();
            } else {
                a.flags = 0;
                a.mask = 0;
                a.restorer = 0;
            }
        }
        self.tsm(id).altstack = AltStack::default();
    }

    /// Whether the parent `id` wants no zombies: its SIGCHLD action is
    /// SIG_IGN or has SA_NOCLDWAIT (`do_notify_parent`'s autoreap).
    pub fn ignores_children(&self, id: TaskId) -> bool {
        let a = self.action(id, SIGCHLD);
        a.handler == SIG_IGN || a.flags & SA_NOCLDWAIT != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::task_struct::SIGSEGV;

    const SIGUSR1: u32 = 10;
    const SIGUSR2: u32 = 12;
    const SIGTERM: u32 = 15;

    fn setup() -> (TaskTable, Scheduler, TaskId) {
        let (mut tt, idle) = TaskTable::new(32768, 1);
        let mut s = Scheduler::new(100, &idle);
        let (init, _) = tt.rest_init(&mut s, 0).unwrap();
        let child = tt.copy_process(&mut s, init, u64::from(SIGCHLD), 0).unwrap();
        s.wake_up_new_task(child, 0);
        (tt, s, child)
    }

    fn handler(h: u64, flags: u64, mask: u64) -> SigAction {
        SigAction { handler: h, flags, restorer: 0, mask }
    }

    #[test]
    fn default_actions_terminate_stop_or_ignore() {
        let (mut tt, mut s, c) = setup();
        let pid = tt.ts(c).pid;
        assert!(!tt.send_signal(&mut s, pid, SIGCHLD, true, 0).unwrap(), "SIGCHLD is ignored by default");
        assert!(!tt.signal_pending(c));
        tt.send_signal(&mut s, pid, SIGTERM, true, 0).unwrap();
        assert_eq!(tt.get_signal(c), Some(Delivery::Fatal { status: SIGTERM as i32 }));
        tt.send_signal(&mut s, pid, SIGSEGV, true, 0).unwrap();
        assert_eq!(tt.get_signal(c), Some(Delivery::Fatal { status: SIGSEGV as i32 }));
        tt.send_signal(&mut s, pid, 20, true, 0).unwrap();
        assert_eq!(tt.get_signal(c), Some(Delivery::Stop { sig: 20 }));
        assert_eq!(tt.get_signal(c), None);
    }

    #[test]
    fn a_handler_blocks_its_signal_and_mask_unless_nodefer_and_resethand_resets() {
        let (mut tt, mut s, c) = setup();
        let pid = tt.ts(c).pid;
        tt.do_sigaction(c, SIGUSR1, Some(handler(0x1000, SA_RESETHAND, sigmask(SIGUSR2)))).unwrap();
        tt.send_signal(&mut s, pid, SIGUSR1, true, 0).unwrap();
        let Some(Delivery::Handler { info, action, old_blocked }) = tt.get_signal(c) else { panic!() };
        assert_eq!((info.signo, action.handler, old_blocked), (SIGUSR1, 0x1000, 0));
        assert_eq!(tt.ts(c).blocked, sigmask(SIGUSR1) | sigmask(SIGUSR2));
        assert_eq!(tt.action(c, SIGUSR1), SigAction::default(), "SA_RESETHAND");
        tt.set_blocked(c, 0);
        tt.do_sigaction(c, SIGUSR2, Some(handler(0x2000, SA_NODEFER, 0))).unwrap();
        tt.send_signal(&mut s, pid, SIGUSR2, true, 0).unwrap();
        assert!(matches!(tt.get_signal(c), Some(Delivery::Handler { .. })));
        assert_eq!(tt.ts(c).blocked, 0, "SA_NODEFER");
    }

    #[test]
    fn blocked_signals_wait_and_ignoring_discards_them() {
        let (mut tt, mut s, c) = setup();
        let pid = tt.ts(c).pid;
        tt.do_sigaction(c, SIGUSR1, Some(handler(0x1000, 0, 0))).unwrap();
        tt.set_blocked(c, sigmask(SIGUSR1) | UNBLOCKABLE);
        assert_eq!(tt.ts(c).blocked, sigmask(SIGUSR1), "SIGKILL/SIGSTOP cannot be blocked");
        tt.send_signal(&mut s, pid, SIGUSR1, true, 0).unwrap();
        assert!(!tt.signal_pending(c));
        assert_eq!(tt.sigpending(c), sigmask(SIGUSR1));
        assert_eq!(tt.get_signal(c), None);
        tt.do_sigaction(c, SIGUSR1, Some(handler(SIG_IGN, 0, 0))).unwrap();
        assert_eq!(tt.sigpending(c), 0, "setting SIG_IGN discards the pending signal");
        assert_eq!(tt.do_sigaction(c, SIGKILL, Some(handler(SIG_IGN, 0, 0))), Err(Errno::EINVAL));
        assert_eq!(tt.do_sigaction(c, 65, None), Err(Errno::EINVAL));
    }

    #[test]
    fn faults_come_first_and_a_standard_signal_does_not_queue_twice() {
        let (mut tt, mut s, c) = setup();
        for sig in [SIGUSR1, SIGUSR2, SIGSEGV] {
            tt.do_sigaction(c, sig, Some(handler(0x1000, SA_NODEFER, 0))).unwrap();
        }
        let pid = tt.ts(c).pid;
        tt.send_signal(&mut s, pid, SIGUSR2, true, 0).unwrap();
        tt.send_signal(&mut s, pid, SIGUSR1, true, 0).unwrap();
        tt.send_signal(&mut s, pid, SIGUSR1, true, 0).unwrap();
        tt.send_signal_info(
            &mut s,
            c,
            SigInfo { signo: SIGSEGV, code: SEGV_MAPERR, addr: 8, ..SigInfo::default() },
            false,
            false,
            0,
        );
        let order: Vec<u32> = core::iter::from_fn(|| match tt.get_signal(c) {
            Some(Delivery::Handler { info, .. }) => Some(info.signo),
            _ => None,
        })
        .collect();
        assert_eq!(order, [SIGSEGV, SIGUSR1, SIGUSR2]);
    }

    #[test]
    fn init_ignores_default_fatal_signals_but_runs_its_handlers() {
        let (mut tt, mut s, _) = setup();
        let init = tt.child_reaper.unwrap();
        tt.tsm(init).signal_unkillable = true;
        assert!(!tt.send_signal(&mut s, 1, SIGKILL, true, 0).unwrap());
        assert!(!tt.send_signal(&mut s, 1, SIGTERM, true, 0).unwrap());
        tt.do_sigaction(init, SIGTERM, Some(handler(0x1000, 0, 0))).unwrap();
        assert!(tt.send_signal(&mut s, 1, SIGTERM, true, 0).unwrap());
        assert!(matches!(tt.get_signal(init), Some(Delivery::Handler { .. })));
    }

    #[test]
    fn cont_discards_pending_stops_and_stop_discards_cont() {
        let (mut tt, mut s, c) = setup();
        let pid = tt.ts(c).pid;
        tt.do_sigaction(c, 18, Some(handler(0x1000, 0, 0))).unwrap();
        tt.set_blocked(c, sigmask(20) | sigmask(18));
        tt.send_signal(&mut s, pid, 20, true, 0).unwrap();
        tt.send_signal(&mut s, pid, 18, true, 0).unwrap();
        assert_eq!(tt.sigpending(c), sigmask(18));
        tt.send_signal(&mut s, pid, 20, true, 0).unwrap();
        assert_eq!(tt.sigpending(c), sigmask(20));
    }

    #[test]
    fn a_stop_is_reported_to_wait4_once_and_cont_resumes() {
        use crate::task::exit::{WCONTINUED, WUNTRACED, WaitPid, WaitResult};
        let (mut tt, mut s, c) = setup();
        let init = tt.child_reaper.unwrap();
        let pid = tt.ts(c).pid;
        tt.send_signal(&mut s, pid, SIGSTOP, true, 0).unwrap();
        assert_eq!(tt.get_signal(c), Some(Delivery::Stop { sig: SIGSTOP }));
        tt.do_signal_stop(&mut s, c, SIGSTOP, 0);
        assert!(tt.group_stopped(c));
        let w = |tt: &mut TaskTable, s: &mut Scheduler, o| tt.wait4(s, init, WaitPid::Any, o, 0);
        assert_eq!(w(&mut tt, &mut s, 1), Ok(WaitResult::NoneYet), "no WUNTRACED: not reported");
        let stopped = WaitResult::Reaped { pid, status: (SIGSTOP as i32) << 8 | 0x7f };
        assert_eq!(w(&mut tt, &mut s, 1 | WUNTRACED), Ok(stopped));
        assert_eq!(w(&mut tt, &mut s, 1 | WUNTRACED), Ok(WaitResult::NoneYet), "reported once");
        tt.send_signal(&mut s, pid, 18, true, 0).unwrap();
        assert!(!tt.group_stopped(c));
        assert_eq!(w(&mut tt, &mut s, 1 | WCONTINUED), Ok(WaitResult::Reaped { pid, status: 0xffff }));
        // A stopped group sees a SIGKILL sent to it.
        tt.send_signal(&mut s, pid, SIGSTOP, true, 0).unwrap();
        assert_eq!(tt.get_signal(c), Some(Delivery::Stop { sig: SIGSTOP }));
        tt.do_signal_stop(&mut s, c, SIGSTOP, 0);
        assert!(!tt.fatal_signal_pending(c));
        tt.send_signal(&mut s, pid, SIGKILL, true, 0).unwrap();
        assert!(tt.group_stopped(c) && tt.fatal_signal_pending(c), "it must wake and die");
        assert_eq!(tt.get_signal(c), Some(Delivery::Fatal { status: SIGKILL as i32 }));
    }

    #[test]
    fn interrupted_calls_restart_as_sa_restart_and_the_code_say() {
        assert_eq!(restart(4, None), None, "EINTR itself is final");
        assert_eq!(restart(ERESTARTSYS, None), Some(Restart::Again));
        assert_eq!(restart(ERESTARTNOHAND, None), Some(Restart::Again));
        assert_eq!(restart(ERESTART_RESTARTBLOCK, None), Some(Restart::RestartBlock));
        assert_eq!(restart(ERESTARTSYS, Some(SA_RESTART)), Some(Restart::Again));
        assert_eq!(restart(ERESTARTSYS, Some(0)), Some(Restart::Eintr));
        assert_eq!(restart(ERESTARTNOHAND, Some(SA_RESTART)), Some(Restart::Eintr));
        assert_eq!(restart(ERESTART_RESTARTBLOCK, Some(SA_RESTART)), Some(Restart::Eintr));
    }

    #[test]
    fn sigtimedwait_takes_a_blocked_signal_of_its_set() {
        let (mut tt, mut s, c) = setup();
        let pid = tt.ts(c).pid;
        tt.do_sigaction(c, SIGUSR1, Some(handler(0x1000, 0, 0))).unwrap();
        tt.set_blocked(c, sigmask(SIGUSR1) | sigmask(SIGUSR2));
        tt.send_signal(&mut s, pid, SIGUSR2, true, 0).unwrap();
        tt.send_signal(&mut s, pid, SIGUSR1, true, 0).unwrap();
        assert_eq!(tt.dequeue_from(c, sigmask(SIGUSR1)).map(|i| i.signo), Some(SIGUSR1));
        assert_eq!(tt.dequeue_from(c, sigmask(SIGUSR1)), None);
        assert_eq!(tt.sigpending(c), sigmask(SIGUSR2), "the other stays pending");
    }

    #[test]
    fn exec_resets_caught_signals_keeps_ignored_and_unshares() {
        let (mut tt, mut s, c) = setup();
        tt.do_sigaction(c, SIGUSR1, Some(handler(0x1000, 0, 0))).unwrap();
        tt.do_sigaction(c, SIGUSR2, Some(handler(SIG_IGN, 0, 0))).unwrap();
        let clone = crate::task::fork::CLONE_VM | crate::task::fork::CLONE_SIGHAND | u64::from(SIGCHLD);
        let sib = tt.copy_process(&mut s, c, clone, 0).unwrap();
        assert_eq!(tt.ts(sib).sighand, tt.ts(c).sighand);
        tt.flush_signal_handlers(sib);
        assert_ne!(tt.ts(sib).sighand, tt.ts(c).sighand, "unshared at exec");
        assert_eq!(tt.action(sib, SIGUSR1), SigAction::default());
        assert_eq!(tt.action(sib, SIGUSR2).handler, SIG_IGN);
        assert_eq!(tt.action(c, SIGUSR1).handler, 0x1000, "the other process keeps its handler");
    }
}

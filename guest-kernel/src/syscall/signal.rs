//! Signal calls (Linux kernel/signal.c; ULK ch. 11 "System Calls Related
//! to Signal Handling"): `rt_sigaction`, `rt_sigprocmask`,
//! `rt_sigpending`, `rt_sigsuspend`, `sigaltstack`, `kill`, `tkill`,
//! `tgkill`. `rt_sigreturn` is `kernel/signal.rs`'s, as it rewrites the
//! whole register frame. Sets are 8 bytes (`sizeof(sigset_t)` of the
//! kernel ABI); another size is EINVAL.

use super::table::R;
use crate::arch::aarch64::cpu::smp_processor_id;
use crate::arch::aarch64::irq::now_ns;
use crate::arch::aarch64::process::current;
use crate::arch::aarch64::uaccess::{copy_from_user, copy_to_user, get_user_u64, put_user_u64};
use crate::kernel::sched::schedule_locked;
use crate::kernel::{KGuard, Kernel, lock};
use crate::mm::Errno;
use crate::sched::{TaskId, TaskState};
use crate::task::signal::{AltStack, MINSIGSTKSZ, NSIG, SS_DISABLE, SS_ONSTACK, SigAction, SigInfo};
use crate::task::task_struct::SIGKILL;

const SIGSET_SIZE: usize = 8;
const SIG_BLOCK: u64 = 0;
const SIG_UNBLOCK: u64 = 1;
const SIG_SETMASK: u64 = 2;
/// `SS_AUTODISARM`: the alternate stack is disabled while a handler runs
/// on it.
const SS_AUTODISARM: u32 = 1 << 31;

fn check_setsize(size: usize) -> Result<(), Errno> {
    if size == SIGSET_SIZE { Ok(()) } else { Err(Errno::EINVAL) }
}

/// `rt_sigaction(sig, act, oact, sigsetsize)`.
pub(super) fn sys_rt_sigaction(sig: u32, act: usize, oact: usize, setsize: usize) -> R {
    check_setsize(setsize)?;
    let new = if act != 0 {
        let mut b = [0u8; 32];
        copy_from_user(&mut b, act)?;
        let w = |i: usize| u64::from_le_bytes(b[8 * i..8 * i + 8].try_into().expect("8 bytes"));
        Some(SigAction { handler: w(0), flags: w(1), restorer: w(2), mask: w(3) })
    } else {
        None
    };
    let old = lock().tasks.do_sigaction(current(), sig, new)?;
    if oact != 0 {
        let mut b = [0u8; 32];
        for (i, w) in [old.handler, old.flags, old.restorer, old.mask].into_iter().enumerate() {
            b[8 * i..8 * i + 8].copy_from_slice(&w.to_le_bytes());
        }
        copy_to_user(oact, &b)?;
    }
    Ok(0)
}

/// `rt_sigprocmask(how, set, oset, sigsetsize)`. A signal it unblocks is
/// taken on the way out of the call.
pub(super) fn sys_rt_sigprocmask(how: u64, set: usize, oset: usize, setsize: usize) -> R {
    check_setsize(setsize)?;
    let new = if set != 0 { Some(get_user_u64(set)?) } else { None };
    let me = current();
    let mut k = lock();
    let old = k.tasks.get(me).expect("current task").blocked;
    if let Some(s) = new {
        let mask = match how {
            SIG_BLOCK => old | s,
            SIG_UNBLOCK => old & !s,
            SIG_SETMASK => s,
            _ => return Err(Errno::EINVAL),
        };
        k.tasks.set_blocked(me, mask);
        if k.tasks.signal_pending(me) {
            k.sched.kick_process(me);
        }
    }
    drop(k);
    if oset != 0 {
        put_user_u64(oset, old)?;
    }
    Ok(0)
}

/// `rt_sigpending(set, sigsetsize)`: the pending signals that are blocked.
pub(super) fn sys_rt_sigpending(set: usize, setsize: usize) -> R {
    check_setsize(setsize)?;
    let p = lock().tasks.sigpending(current());
    put_user_u64(set, p)?;
    Ok(0)
}

/// Sleeps until a signal the current mask lets through is pending.
fn wait_for_signal(k: &mut KGuard, me: TaskId) {
    while !k.tasks.signal_pending(me) {
        k.sched.set_current_state(smp_processor_id(), TaskState::Interruptible);
        schedule_locked(k);
    }
}

/// `rt_sigsuspend(mask, sigsetsize)`: wait for a signal with `mask` in
/// force; the old mask comes back after the handler (it is the one saved
/// in the frame). Always "fails" with EINTR once a handler has run.
pub(super) fn sys_rt_sigsuspend(mask: usize, setsize: usize) -> R {
    check_setsize(setsize)?;
    let m = get_user_u64(mask)?;
    let me = current();
    let mut k = lock();
    let old = k.tasks.set_blocked(me, m);
    k.tasks.get_mut(me).expect("current task").saved_sigmask = Some(old);
    wait_for_signal(&mut k, me);
    Err(Errno::ERESTARTNOHAND)
}

/// `do_sigaltstack`'s checks and update for task `id` running at `sp`:
/// no change while running on the current alternate stack (EPERM); flags
/// 0, SS_ONSTACK or SS_DISABLE, optionally with SS_AUTODISARM (else
/// EINVAL); an enabled stack of at least MINSIGSTKSZ bytes (else ENOMEM).
pub fn set_altstack(k: &mut Kernel, id: TaskId, new: AltStack, sp: u64) -> Result<(), Errno> {
    let t = k.tasks.get_mut(id).ok_or(Errno::ESRCH)?;
    if t.altstack.contains(sp) {
        return Err(Errno::EPERM);
    }
    let mode = new.flags & !SS_AUTODISARM;
    if mode != 0 && mode != SS_ONSTACK && mode != SS_DISABLE {
        return Err(Errno::EINVAL);
    }
    t.altstack = if mode == SS_DISABLE {
        AltStack::default()
    } else if new.size < MINSIGSTKSZ {
        return Err(Errno::ENOMEM);
    } else {
        AltStack { flags: new.flags & SS_AUTODISARM, ..new }
    };
    Ok(())
}

/// `sigaltstack(ss, old_ss)` (`stack_t`: ss_sp, ss_flags, ss_size).
pub(super) fn sys_sigaltstack(ss: usize, old_ss: usize, sp: u64) -> R {
    let new = if ss != 0 {
        let mut b = [0u8; 24];
        copy_from_user(&mut b, ss)?;
        let sp = u64::from_le_bytes(b[0..8].try_into().expect("8 bytes"));
        let flags = u32::from_le_bytes(b[8..12].try_into().expect("4 bytes"));
        let size = u64::from_le_bytes(b[16..24].try_into().expect("8 bytes"));
        Some(AltStack { sp, size, flags })
    } else {
        None
    };
    let me = current();
    let mut k = lock();
    let old = k.tasks.get(me).expect("current task").altstack;
    if let Some(n) = new {
        set_altstack(&mut k, me, n, sp)?;
    }
    drop(k);
    if old_ss != 0 {
        let flags = if old.size == 0 {
            SS_DISABLE
        } else if old.contains(sp) {
            SS_ONSTACK | old.flags
        } else {
            old.flags
        };
        let mut b = [0u8; 24];
        b[0..8].copy_from_slice(&old.sp.to_le_bytes());
        b[8..12].copy_from_slice(&flags.to_le_bytes());
        b[16..24].copy_from_slice(&old.size.to_le_bytes());
        copy_to_user(old_ss, &b)?;
    }
    Ok(0)
}

/// `kill(pid, sig)` (`kill_something_info`): `pid` > 0 names a process;
/// 0 the caller's process group, below -1 group `-pid`; -1 every process
/// but init and the caller. A target the caller may not signal (its
/// credentials) is EPERM; a group or -1 succeeds if any one target was
/// signalled. Signal 0 only checks.
pub(super) fn sys_kill(pid: i32, sig: u32) -> R {
    if sig > NSIG {
        return Err(Errno::EINVAL);
    }
    let me = current();
    let mut k = lock();
    let t = now_ns();
    let from = k.tasks.get(me).map_or(0, |t| t.tgid);
    let targets: alloc::vec::Vec<TaskId> = match pid {
        p if p > 0 => alloc::vec![k.tasks.find_by_pid(p).ok_or(Errno::ESRCH)?],
        -1 => k
            .tasks
            .iter()
            .filter(|t| t.thread_group_leader() && t.pid > 1 && t.tgid != from && !t.is_kthread())
            .map(|t| t.id)
            .collect(),
        0 => k.tasks.pgrp_members(k.tasks.pgid(me)),
        p => k.tasks.pgrp_members(p.saturating_neg()),
    };
    if targets.is_empty() {
        return Err(Errno::ESRCH);
    }
    let mut result = Err(Errno::EPERM);
    for id in targets {
        if !k.tasks.may_kill(me, id, sig) {
            continue;
        }
        result = Ok(0);
        if sig == 0 {
            continue;
        }
        let k2 = &mut *k;
        let leader = k2.tasks.get(id).map_or(id, |t| t.group_leader);
        k2.tasks.send_signal_info(&mut k2.sched, leader, SigInfo::user(sig, from), true, true, t);
        if sig == SIGKILL
            && let Some(cpu) = k.sched.task(id).map(|s| s.cpu)
        {
            // Make a victim running on another CPU notice soon.
            k.sched.resched_curr(cpu);
        }
    }
    result
}

/// `tgkill(tgid, tid, sig)` (and `tkill`: no `tgid`): signal one
/// thread, which must belong to `tgid` when that is given.
pub(super) fn sys_tgkill(tgid: Option<i32>, tid: i32, sig: u32) -> R {
    if tid <= 0 || tgid.is_some_and(|g| g <= 0) || sig > NSIG {
        return Err(Errno::EINVAL);
    }
    let me = current();
    let mut k = lock();
    let id = k.tasks.find_by_pid(tid).ok_or(Errno::ESRCH)?;
    if tgid.is_some_and(|g| k.tasks.get(id).map(|t| t.tgid) != Some(g)) {
        return Err(Errno::ESRCH);
    }
    if !k.tasks.may_kill(me, id, sig) {
        return Err(Errno::EPERM);
    }
    if sig == 0 {
        return Ok(0);
    }
    let from = k.tasks.get(me).map_or(0, |t| t.tgid);
    let info = SigInfo { code: crate::task::signal::SI_TKILL, ..SigInfo::user(sig, from) };
    let t = now_ns();
    let k2 = &mut *k;
    k2.tasks.send_signal_info(&mut k2.sched, id, info, false, true, t);
    Ok(0)
}

/// `rt_sigtimedwait(set, info, timeout, sigsetsize)`: take a pending
/// signal of `set` (normally blocked) without running its handler,
/// waiting for one until `timeout` (NULL: for ever); EAGAIN when the time
/// runs out, EINTR when another signal comes. While it waits, `set` is
/// unblocked so that its signals wake it (Linux's `do_sigtimedwait`).
pub(super) fn sys_rt_sigtimedwait(set: usize, info: usize, timeout: usize, setsize: usize) -> R {
    check_setsize(setsize)?;
    let want = get_user_u64(set)? & !crate::task::signal::UNBLOCKABLE;
    let deadline = if timeout != 0 {
        let mut ts = [0u8; 16];
        copy_from_user(&mut ts, timeout)?;
        let sec = i64::from_le_bytes(ts[..8].try_into().expect("8 bytes"));
        let nsec = i64::from_le_bytes(ts[8..].try_into().expect("8 bytes"));
        Some(now_ns().saturating_add(super::timespec_to_ns(sec, nsec).ok_or(Errno::EINVAL)?))
    } else {
        None
    };
    let me = current();
    let mut k = lock();
    let blocked = k.tasks.get(me).expect("current task").blocked;
    let got = loop {
        if let Some(i) = k.tasks.dequeue_from(me, want) {
            break Ok(i);
        }
        let now = now_ns();
        if deadline.is_some_and(|d| now >= d) {
            break Err(Errno::EAGAIN);
        }
        if k.tasks.signal_pending(me) {
            break Err(Errno::EINTR);
        }
        k.tasks.set_blocked(me, blocked & !want);
        match deadline {
            Some(d) => {
                let hz = k.jiffies.hz();
                let j = super::ns_to_sleep_jiffies(d - now, hz);
                crate::kernel::sched::schedule_timeout(&mut k, j, TaskState::Interruptible);
            }
            None => {
                k.sched.set_current_state(smp_processor_id(), TaskState::Interruptible);
                schedule_locked(&mut k);
            }
        }
        k.tasks.set_blocked(me, blocked);
    };
    k.tasks.set_blocked(me, blocked);
    drop(k);
    let i = got?;
    if info != 0 {
        copy_to_user(info, &crate::task::sigframe::siginfo_bytes(&i))?;
    }
    Ok(i.signo as isize)
}

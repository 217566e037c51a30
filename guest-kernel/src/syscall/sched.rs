//! Scheduling calls (LKD ch. 4, "Scheduler-Related System Calls"; Linux
//! kernel/sched/core.c, syscalls.c): nice, affinity, policies and
//! `sched_attr`, `sched_yield`.

use super::table::{R, task_of};
use super::*;
use crate::arch::aarch64::cpu::nr_cpus;
use crate::arch::aarch64::irq::now_ns;
use crate::arch::aarch64::process::current;
use crate::arch::aarch64::uaccess::{copy_from_user, copy_to_user, put_user_i32};
use crate::kernel::lock;
use crate::kernel::sched::{schedule, schedule_locked};
use crate::mm::Errno;
use crate::sched::{CpuMask, SchedAttr, SchedPolicy, attr};

/// `sched_yield(2)` (`do_sched_yield`): the class's `yield_task`, then
/// `schedule()`.
pub(super) fn sys_sched_yield() -> R {
    let mut k = lock();
    let cpu = crate::arch::aarch64::cpu::smp_processor_id();
    k.sched.yield_task(cpu, now_ns());
    schedule_locked(&mut k);
    Ok(0)
}

pub(super) fn sys_setpriority(which: u64, who: i32, nice: i32) -> R {
    if which != PRIO_PROCESS {
        return Err(Errno::EINVAL);
    }
    let id = task_of(who)?;
    let mut k = lock();
    let t = now_ns();
    k.sched.set_user_nice(id, nice.clamp(-20, 19), t)?;
    Ok(0)
}

pub(super) fn sys_getpriority(which: u64, who: i32) -> R {
    if which != PRIO_PROCESS {
        return Err(Errno::EINVAL);
    }
    let id = task_of(who)?;
    let k = lock();
    // The syscall returns 20 - nice (1..40) so that it is never negative.
    Ok((20 - k.sched.task(id).ok_or(Errno::ESRCH)?.nice()) as isize)
}

pub(super) fn online_mask() -> u64 {
    if nr_cpus() >= 64 { u64::MAX } else { (1u64 << nr_cpus()) - 1 }
}

pub(super) fn sys_sched_setaffinity(pid: i32, len: usize, ptr: usize) -> R {
    let id = task_of(pid)?;
    let mut b = [0u8; 8];
    let n = len.min(8);
    copy_from_user(&mut b[..n], ptr)?;
    let mask = u64::from_le_bytes(b) & online_mask();
    if mask == 0 {
        return Err(Errno::EINVAL);
    }
    {
        let mut k = lock();
        let t = now_ns();
        k.sched.set_cpus_allowed(id, CpuMask(mask), t)?;
    }
    if id == current() && mask & (1 << crate::arch::aarch64::cpu::smp_processor_id()) == 0 {
        schedule();
    }
    Ok(0)
}

pub(super) fn sys_sched_getaffinity(pid: i32, len: usize, ptr: usize) -> R {
    if len < 8 {
        return Err(Errno::EINVAL);
    }
    let id = task_of(pid)?;
    let mask = lock().sched.task(id).ok_or(Errno::ESRCH)?.cpus_allowed.0 & online_mask();
    copy_to_user(ptr, &mask.to_le_bytes())?;
    Ok(8)
}

pub(super) fn sys_sched_setscheduler(pid: i32, policy: i32, param: usize) -> R {
    let mut b = [0u8; 4];
    copy_from_user(&mut b, param)?;
    let prio = i32::from_le_bytes(b);
    let id = task_of(pid)?;
    // SCHED_DEADLINE has no parameters here: the scheduler refuses it
    // (EINVAL, __checkparam_dl), as Linux does.
    let policy = attr::policy_from_abi((policy & !0x4000_0000) as u32)?;
    if prio < 0 {
        return Err(Errno::EINVAL);
    }
    let mut k = lock();
    let nice = k.sched.task(id).ok_or(Errno::ESRCH)?.nice();
    let attr = match policy {
        SchedPolicy::Fifo | SchedPolicy::Rr => SchedAttr::rt(policy, prio as u32),
        _ if prio != 0 => return Err(Errno::EINVAL),
        _ => SchedAttr { policy, ..SchedAttr::normal(nice) },
    };
    let t = now_ns();
    k.sched.sched_setattr(id, attr, t)?;
    drop(k);
    schedule();
    Ok(0)
}

/// `sched_setattr(2)`: any policy with its parameters in one `struct
/// sched_attr` (`sched::attr` decodes it; the scheduler checks and admits
/// it, EBUSY past the deadline bandwidth). A size this kernel cannot take
/// is E2BIG, with the size it knows written back for the program.
pub(super) fn sys_sched_setattr(pid: i32, uattr: usize, flags: u32) -> R {
    if uattr == 0 || pid < 0 || flags != 0 {
        return Err(Errno::EINVAL);
    }
    let mut w = [0u8; 4];
    copy_from_user(&mut w, uattr)?;
    let decoded = attr::size_to_copy(u32::from_le_bytes(w)).and_then(|size| {
        let mut b = alloc::vec![0u8; size];
        copy_from_user(&mut b, uattr)?;
        attr::decode(&b)
    });
    let a = match decoded {
        Err(Errno::E2BIG) => {
            copy_to_user(uattr, &(attr::SIZE_VER1 as u32).to_le_bytes())?;
            return Err(Errno::E2BIG);
        }
        r => r?,
    };
    let id = task_of(pid)?;
    {
        let mut k = lock();
        let t = k.sched.task(id).ok_or(Errno::ESRCH)?;
        // A deadline task may run on every CPU of its root domain: a
        // narrower affinity is EPERM (__sched_setscheduler).
        if a.policy == SchedPolicy::Deadline && t.cpus_allowed.0 & online_mask() != online_mask() {
            return Err(Errno::EPERM);
        }
        let now = now_ns();
        k.sched.sched_setattr(id, a, now)?;
    }
    schedule();
    Ok(0)
}

/// `sched_getattr(2)`: the task's `struct sched_attr`, as much of it as
/// the program's `usize` holds (at least VER0), `size` saying how much.
pub(super) fn sys_sched_getattr(pid: i32, uattr: usize, usize: u32, flags: u32) -> R {
    let usize = usize as usize;
    if uattr == 0 || pid < 0 || !(attr::SIZE_VER0..=attr::SIZE_MAX).contains(&usize) || flags != 0 {
        return Err(Errno::EINVAL);
    }
    let id = task_of(pid)?;
    let (b, n) = attr::encode(lock().sched.task(id).ok_or(Errno::ESRCH)?, usize);
    copy_to_user(uattr, &b[..n])?;
    Ok(0)
}

/// `sched_setparam(2)`: a new real-time priority, the policy kept (0 for
/// the others; a deadline task has no priority to set: EINVAL).
pub(super) fn sys_sched_setparam(pid: i32, param: usize) -> R {
    if param == 0 || pid < 0 {
        return Err(Errno::EINVAL);
    }
    let mut b = [0u8; 4];
    copy_from_user(&mut b, param)?;
    let prio = i32::from_le_bytes(b);
    let id = task_of(pid)?;
    {
        let mut k = lock();
        let t = k.sched.task(id).ok_or(Errno::ESRCH)?;
        let a = match t.policy {
            SchedPolicy::Fifo | SchedPolicy::Rr if prio > 0 => SchedAttr::rt(t.policy, prio as u32),
            SchedPolicy::Normal | SchedPolicy::Batch | SchedPolicy::Idle if prio == 0 => {
                SchedAttr { policy: t.policy, ..SchedAttr::normal(t.nice()) }
            }
            _ => return Err(Errno::EINVAL),
        };
        let now = now_ns();
        k.sched.sched_setattr(id, a, now)?;
    }
    schedule();
    Ok(0)
}

/// `sched_getparam(2)`: the real-time priority (0 for other policies).
pub(super) fn sys_sched_getparam(pid: i32, param: usize) -> R {
    if param == 0 || pid < 0 {
        return Err(Errno::EINVAL);
    }
    let id = task_of(pid)?;
    let prio = {
        let k = lock();
        let t = k.sched.task(id).ok_or(Errno::ESRCH)?;
        if matches!(t.policy, SchedPolicy::Fifo | SchedPolicy::Rr) { t.rt_priority as i32 } else { 0 }
    };
    put_user_i32(param, prio)?;
    Ok(0)
}

/// `sched_rr_get_interval(2)`: the task's round-robin time slice (its
/// class's `get_rr_interval`), as a timespec.
pub(super) fn sys_sched_rr_get_interval(pid: i32, tp: usize) -> R {
    if pid < 0 {
        return Err(Errno::EINVAL);
    }
    let id = task_of(pid)?;
    let ns = lock().sched.rr_interval_ns(id).ok_or(Errno::ESRCH)?;
    let mut ts = [0u8; 16];
    ts[..8].copy_from_slice(&(ns / 1_000_000_000).to_le_bytes());
    ts[8..].copy_from_slice(&(ns % 1_000_000_000).to_le_bytes());
    copy_to_user(tp, &ts)?;
    Ok(0)
}

pub(super) fn sys_sched_getscheduler(pid: i32) -> R {
    let id = task_of(pid)?;
    let k = lock();
    Ok(k.sched.task(id).ok_or(Errno::ESRCH)?.policy as u32 as isize)
}

//! Time calls (LKD ch. 11; Linux kernel/time/): `nanosleep` and
//! `clock_gettime`.

use alloc::vec::Vec;

use super::table::R;
use super::*;
use crate::arch::aarch64::irq::now_ns;
use crate::arch::aarch64::process::current;
use crate::arch::aarch64::uaccess::{copy_from_user, copy_to_user};
use crate::kernel::lock;
use crate::kernel::sched::schedule_timeout;
use crate::mm::Errno;
use crate::sched::{TaskId, TaskState};

/// `nanosleep(req, rem)`: sleep for `req`. A signal ends the sleep with
/// the time left in `rem`: EINTR if a handler runs, otherwise the sleep
/// goes on through `restart_syscall` for the rest of the time
/// (`hrtimer_nanosleep`'s restart block).
pub(super) fn sys_nanosleep(req: usize, rem: usize) -> R {
    let mut ts = [0u8; 16];
    copy_from_user(&mut ts, req)?;
    let sec = i64::from_le_bytes(ts[..8].try_into().unwrap());
    let nsec = i64::from_le_bytes(ts[8..].try_into().unwrap());
    let ns = timespec_to_ns(sec, nsec).ok_or(Errno::EINVAL)?;
    nanosleep_until(now_ns().saturating_add(ns), rem)
}

/// `restart_syscall`: the rest of an interrupted `nanosleep`, or EINTR if
/// there is nothing to restart.
pub(super) fn sys_restart_syscall() -> R {
    let me = current();
    let block = lock().tasks.get_mut(me).and_then(|t| t.restart_block.take());
    match block {
        Some((deadline, rem)) => nanosleep_until(deadline, rem),
        None => Err(Errno::EINTR),
    }
}

fn nanosleep_until(deadline: u64, rem: usize) -> R {
    let mut k = lock();
    let hz = k.jiffies.hz();
    let me = current();
    loop {
        let now = now_ns();
        if now >= deadline {
            return Ok(0);
        }
        if k.tasks.signal_pending(me) {
            if let Some(t) = k.tasks.get_mut(me) {
                t.restart_block = Some((deadline, rem));
            }
            drop(k);
            if rem != 0 {
                let left = deadline - now_ns().min(deadline);
                let mut out = [0u8; 16];
                out[..8].copy_from_slice(&((left / 1_000_000_000) as i64).to_le_bytes());
                out[8..].copy_from_slice(&((left % 1_000_000_000) as i64).to_le_bytes());
                copy_to_user(rem, &out)?;
            }
            return Err(Errno::ERESTART_RESTARTBLOCK);
        }
        let j = ns_to_sleep_jiffies(deadline - now, hz);
        schedule_timeout(&mut k, j, TaskState::Interruptible);
    }
}

/// `clock_gettime(2)`: the system clocks read the architected counter;
/// `CLOCK_PROCESS_CPUTIME_ID` and `CLOCK_THREAD_CPUTIME_ID` the CPU time the
/// scheduler charged (`sum_exec_runtime`) to the thread group or the thread.
pub(super) fn sys_clock_gettime(clk: u64, tp: usize) -> R {
    const CLOCK_PROCESS_CPUTIME_ID: u64 = 2;
    const CLOCK_THREAD_CPUTIME_ID: u64 = 3;
    if clk > 11 {
        return Err(Errno::EINVAL);
    }
    let ns = match clk {
        CLOCK_PROCESS_CPUTIME_ID | CLOCK_THREAD_CPUTIME_ID => {
            let mut k = lock();
            let (me, now) = (current(), now_ns());
            let tgid = k.tasks.get(me).expect("current task").tgid;
            let threads: Vec<TaskId> = if clk == CLOCK_THREAD_CPUTIME_ID {
                alloc::vec![me]
            } else {
                k.tasks.iter().filter(|t| t.tgid == tgid).map(|t| t.id).collect()
            };
            threads.into_iter().map(|t| k.sched.task_sched_runtime(t, now)).sum()
        }
        _ => now_ns(),
    };
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&((ns / 1_000_000_000) as i64).to_le_bytes());
    out[8..].copy_from_slice(&((ns % 1_000_000_000) as i64).to_le_bytes());
    copy_to_user(tp, &out)?;
    Ok(0)
}

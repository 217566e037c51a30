//! Time calls (LKD ch. 11; Linux kernel/time/): `nanosleep`,
//! `clock_nanosleep`, `clock_gettime`, `clock_getres`, `gettimeofday`,
//! `times`, and the ITIMER_REAL interval timer (`setitimer`,
//! `getitimer`).

use super::table::R;
use super::*;
use crate::arch::aarch64::irq::now_ns;
use crate::arch::aarch64::process::current;
use crate::arch::aarch64::uaccess::{copy_from_user, copy_to_user};
use crate::kernel::lock;
use crate::kernel::sched::schedule_timeout;
use crate::mm::Errno;
use crate::sched::TaskState;

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
            crate::kernel::sched::cputime(&mut lock(), current(), clk == CLOCK_PROCESS_CPUTIME_ID, now_ns())
        }
        _ => now_ns(),
    };
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&((ns / 1_000_000_000) as i64).to_le_bytes());
    out[8..].copy_from_slice(&((ns % 1_000_000_000) as i64).to_le_bytes());
    copy_to_user(tp, &out)?;
    Ok(0)
}

/// `TIMER_ABSTIME`.
const TIMER_ABSTIME: u64 = 1;

/// `clock_nanosleep(clock, flags, req, rem)`: relative as `nanosleep`, or
/// until the absolute time `req` of the clock (the system clocks all read
/// the counter here) with TIMER_ABSTIME, where `rem` is not written.
pub(super) fn sys_clock_nanosleep(clk: u64, flags: u64, req: usize, rem: usize) -> R {
    if clk > 11 || clk == 2 || clk == 3 {
        // The CPU-time clocks cannot be slept on (Linux: EINVAL for the
        // thread clock, ENOTSUP for the process one).
        return Err(Errno::EINVAL);
    }
    if flags & !TIMER_ABSTIME != 0 {
        return Err(Errno::EINVAL);
    }
    if flags & TIMER_ABSTIME == 0 {
        return sys_nanosleep(req, rem);
    }
    let mut ts = [0u8; 16];
    copy_from_user(&mut ts, req)?;
    let sec = i64::from_le_bytes(ts[..8].try_into().unwrap());
    let nsec = i64::from_le_bytes(ts[8..].try_into().unwrap());
    let deadline = timespec_to_ns(sec, nsec).ok_or(Errno::EINVAL)?;
    nanosleep_until(deadline, 0)
}

/// `clock_getres(clock, res)`: 1 ns for every clock (the counter is read
/// directly, as Linux's hrtimer-backed clocks report).
pub(super) fn sys_clock_getres(clk: u64, res: usize) -> R {
    if clk > 11 {
        return Err(Errno::EINVAL);
    }
    if res != 0 {
        let mut out = [0u8; 16];
        out[8..].copy_from_slice(&1i64.to_le_bytes());
        copy_to_user(res, &out)?;
    }
    Ok(0)
}

/// `gettimeofday(tv, tz)`: seconds and microseconds of the clock; the
/// time zone is UTC (zeros).
pub(super) fn sys_gettimeofday(tv: usize, tz: usize) -> R {
    let ns = now_ns();
    if tv != 0 {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&((ns / 1_000_000_000) as i64).to_le_bytes());
        out[8..].copy_from_slice(&(((ns % 1_000_000_000) / 1000) as i64).to_le_bytes());
        copy_to_user(tv, &out)?;
    }
    if tz != 0 {
        copy_to_user(tz, &[0u8; 8])?;
    }
    Ok(0)
}

/// `USER_HZ`: the unit of `clock_t`.
const USER_HZ: u64 = 100;

/// `times(buf)`: the caller's process CPU time (all counted as user
/// time), its reaped children's (not kept yet: 0), and the clock in
/// ticks since boot.
pub(super) fn sys_times(buf: usize) -> R {
    let now = now_ns();
    let utime = crate::kernel::sched::cputime(&mut lock(), current(), true, now);
    if buf != 0 {
        let mut out = [0u8; 32];
        out[..8].copy_from_slice(&(utime / (1_000_000_000 / USER_HZ)).to_le_bytes());
        copy_to_user(buf, &out)?;
    }
    Ok((now / (1_000_000_000 / USER_HZ)) as isize)
}

/// A `struct itimerval` (interval, then value; each a `timeval`) in ns.
fn read_itimerval(p: usize) -> Result<(u64, u64), Errno> {
    let mut b = [0u8; 32];
    copy_from_user(&mut b, p)?;
    let w = |i: usize| i64::from_le_bytes(b[8 * i..8 * i + 8].try_into().expect("8 bytes"));
    let tv = |s: i64, us: i64| {
        if s < 0 || !(0..1_000_000).contains(&us) { None } else { timespec_to_ns(s, us * 1000) }
    };
    Ok((tv(w(0), w(1)).ok_or(Errno::EINVAL)?, tv(w(2), w(3)).ok_or(Errno::EINVAL)?))
}

fn write_itimerval(p: usize, left: u64, interval: u64) -> Result<(), Errno> {
    let mut b = [0u8; 32];
    for (i, ns) in [interval, left].into_iter().enumerate() {
        b[16 * i..16 * i + 8].copy_from_slice(&((ns / 1_000_000_000) as i64).to_le_bytes());
        b[16 * i + 8..16 * i + 16].copy_from_slice(&((ns % 1_000_000_000).div_ceil(1000) as i64).to_le_bytes());
    }
    copy_to_user(p, &b)
}

/// `ITIMER_REAL`; the CPU-time timers (VIRTUAL, PROF) are not kept:
/// EINVAL.
const ITIMER_REAL: u64 = 0;

/// `setitimer(which, new, old)`: ITIMER_REAL sends SIGALRM when it
/// expires (`kernel/itimer.rs`).
pub(super) fn sys_setitimer(which: u64, new: usize, old: usize) -> R {
    if which != ITIMER_REAL {
        return Err(Errno::EINVAL);
    }
    let (interval, value) = if new != 0 { read_itimerval(new)? } else { (0, 0) };
    let (left, ival) = {
        let mut k = lock();
        let leader = k.tasks.get(current()).expect("current task").group_leader;
        crate::kernel::itimer::set_real(&mut k, leader, value, interval)
    };
    if old != 0 {
        write_itimerval(old, left, ival)?;
    }
    Ok(0)
}

/// `getitimer(which, cur)`.
pub(super) fn sys_getitimer(which: u64, cur: usize) -> R {
    if which != ITIMER_REAL {
        return Err(Errno::EINVAL);
    }
    let (left, ival) = {
        let k = lock();
        let leader = k.tasks.get(current()).expect("current task").group_leader;
        crate::kernel::itimer::get(&k, leader)
    };
    write_itimerval(cur, left, ival)?;
    Ok(0)
}

//! Process calls (LKD ch. 3; Linux kernel/exit.c, kernel/sys.c,
//! kernel/signal.c, fs/exec.c): `getppid`, `execve`, `wait4`, `kill`,
//! `prctl`, `reboot`.

use alloc::vec::Vec;

use super::table::{R, with_me};
use super::time::fatal_signal_pending;
use super::*;
use crate::arch::aarch64::irq::now_ns;
use crate::arch::aarch64::process::{self, current};
use crate::arch::aarch64::uaccess::{copy_from_user, get_user_u64, put_user_i32};
use crate::kernel::sched::schedule_locked;
use crate::kernel::{self, lock};
use crate::mm::Errno;
use crate::sched::TaskState;
use crate::task::exit::{WaitPid, WaitResult};
use crate::task::task_struct::SIGKILL;

/// `reboot(2)`: power off (or halt) and restart through PSCI once the magic
/// numbers match; anything else is EINVAL. There are no credentials here,
/// so every process may (as root may on Linux).
pub(super) fn sys_reboot(magic1: u64, magic2: u64, cmd: u64) -> R {
    use crate::syscall::reboot::*;
    if magic1 != MAGIC1 || magic2 != MAGIC2 {
        return Err(Errno::EINVAL);
    }
    match cmd {
        CMD_POWER_OFF | CMD_HALT => process::poweroff(),
        CMD_RESTART => crate::arch::aarch64::psci::system_reset(),
        _ => Err(Errno::EINVAL),
    }
}

/// `getppid(2)`: from the per-CPU copy of the parent's tgid, without the
/// kernel lock (Linux reads `current->real_parent` under RCU).
pub(super) fn sys_getppid() -> R {
    Ok(kernel::current_ppid() as isize)
}

/// Copies a NUL-terminated string of at most `max` bytes from user memory.
pub(super) fn strncpy_from_user(addr: usize, max: usize) -> Result<Vec<u8>, Errno> {
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    loop {
        copy_from_user(&mut b, addr + out.len())?;
        if b[0] == 0 {
            return Ok(out);
        }
        if out.len() == max {
            return Err(Errno::ENAMETOOLONG);
        }
        out.push(b[0]);
    }
}

pub(super) fn sys_execve(path: usize, argv: usize) -> R {
    let path = strncpy_from_user(path, PATH_MAX)?;
    let mut args: Vec<Vec<u8>> = Vec::new();
    if argv != 0 {
        loop {
            let p = get_user_u64(argv + 8 * args.len())? as usize;
            if p == 0 {
                break;
            }
            if args.len() == MAX_ARGS {
                return Err(Errno::E2BIG);
            }
            args.push(
                strncpy_from_user(p, MAX_ARG_LEN).map_err(|e| if e == Errno::EFAULT { e } else { Errno::E2BIG })?,
            );
        }
    }
    let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
    crate::kernel::exec::kernel_execve(current(), &path, &refs)?;
    Ok(0)
}

pub(super) fn sys_wait4(pid: i32, status: usize, options: u32) -> R {
    if options & !(crate::task::exit::WNOHANG | 0x4000_0000 | 0x8000_0000 | 2 | 8) != 0 {
        return Err(Errno::EINVAL);
    }
    if status != 0 && !crate::arch::aarch64::uaccess::access_ok(status, 4) {
        return Err(Errno::EFAULT);
    }
    let mut k = lock();
    let me = current();
    loop {
        let t = now_ns();
        let k2 = &mut *k;
        match k2.tasks.wait4(&mut k2.sched, me, WaitPid::from_raw(pid), options, t) {
            Ok(WaitResult::Reaped { pid, status: st }) => {
                k.oom_victims.retain(|&p| p != pid);
                drop(k);
                if status != 0 {
                    put_user_i32(status, st)?;
                }
                return Ok(pid as isize);
            }
            Ok(WaitResult::NoneYet) => return Ok(0),
            Ok(WaitResult::MustSleep) => {
                if fatal_signal_pending(&k, me) {
                    return Err(Errno::EINTR);
                }
                let leader = k.tasks.get(me).map(|t| t.group_leader).expect("current");
                // This CPU now: after a sleep we may have woken on another.
                let cpu = crate::arch::aarch64::cpu::smp_processor_id();
                let k2 = &mut *k;
                let ts = k2.tasks.get_mut(leader).expect("leader");
                ts.wait_chldexit.prepare_to_wait(&mut k2.sched, cpu, TaskState::Interruptible, false);
                schedule_locked(&mut k);
                let cpu_now = crate::arch::aarch64::cpu::smp_processor_id();
                let k2 = &mut *k;
                if let Some(ts) = k2.tasks.get_mut(leader) {
                    ts.wait_chldexit.finish_wait(&mut k2.sched, cpu_now);
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

pub(super) fn sys_kill(pid: i32, sig: u32) -> R {
    if pid <= 0 {
        return Err(Errno::EINVAL);
    }
    if sig > 63 {
        return Err(Errno::EINVAL);
    }
    let mut k = lock();
    if sig == 0 {
        return k.tasks.find_by_pid(pid).map(|_| 0).ok_or(Errno::ESRCH);
    }
    let t = now_ns();
    let k2 = &mut *k;
    k2.tasks.send_signal(&mut k2.sched, pid, sig, true, t)?;
    if sig == SIGKILL
        && let Some(id) = k.tasks.find_by_pid(pid)
        && let Some(cpu) = k.sched.task(id).map(|s| s.cpu)
    {
        // Make a victim running on another CPU notice soon.
        k.sched.resched_curr(cpu);
    }
    Ok(0)
}

pub(super) fn sys_prctl(option: u64, arg2: u64) -> R {
    match option {
        PR_SET_CHILD_SUBREAPER => {
            let mut k = lock();
            let me = current();
            k.tasks.get_mut(me).expect("current").is_child_subreaper = arg2 != 0;
            Ok(0)
        }
        PR_GET_CHILD_SUBREAPER => {
            let v = with_me(|t| t.is_child_subreaper);
            put_user_i32(arg2 as usize, i32::from(v))?;
            Ok(0)
        }
        // `comm`, at most TASK_COMM_LEN - 1 = 15 bytes (busybox names a
        // forked applet that does not exec this way).
        PR_SET_NAME => {
            let mut name = [0u8; 16];
            copy_from_user(&mut name[..1], arg2 as usize)?;
            let mut n = 0;
            while n < 15 && name[n] != 0 {
                n += 1;
                copy_from_user(&mut name[n..n + 1], arg2 as usize + n)?;
            }
            let comm = alloc::string::String::from_utf8_lossy(&name[..n]).into_owned();
            lock().tasks.get_mut(current()).expect("current").comm = comm;
            Ok(0)
        }
        PR_GET_NAME => {
            let comm = with_me(|t| t.comm.clone());
            let mut name = [0u8; 16];
            let n = comm.len().min(15);
            name[..n].copy_from_slice(&comm.as_bytes()[..n]);
            crate::arch::aarch64::uaccess::copy_to_user(arg2 as usize, &name)?;
            Ok(0)
        }
        _ => Err(Errno::EINVAL),
    }
}

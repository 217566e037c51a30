//! Process calls (LKD ch. 3; Linux kernel/exit.c, kernel/sys.c,
//! kernel/signal.c, fs/exec.c): `getppid`, `execve`, `wait4`, `kill`,
//! `prctl`, `reboot`, process groups and sessions (`kill` is with the
//! signal calls).

use alloc::vec::Vec;

use super::table::{R, with_me};
use super::*;
use crate::arch::aarch64::irq::now_ns;
use crate::arch::aarch64::process::{self, current};
use crate::arch::aarch64::uaccess::{copy_from_user, get_user_u64, put_user_i32};
use crate::kernel::sched::schedule_locked;
use crate::kernel::{self, lock};
use crate::mm::Errno;
use crate::sched::TaskState;
use crate::task::exit::{WaitPid, WaitResult};

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

/// Copies a NUL-terminated string of at most `max` bytes from user
/// memory (`strncpy_from_user`): in chunks that never cross a page, so a
/// string that ends just before an unmapped page is read.
pub(super) fn strncpy_from_user(addr: usize, max: usize) -> Result<Vec<u8>, Errno> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 64];
    loop {
        let at = addr.checked_add(out.len()).ok_or(Errno::EFAULT)?;
        let to_page_end = crate::mm::page::PAGE_SIZE - at % crate::mm::page::PAGE_SIZE;
        let n = chunk.len().min(to_page_end);
        copy_from_user(&mut chunk[..n], at)?;
        for &c in &chunk[..n] {
            if c == 0 {
                return Ok(out);
            }
            if out.len() == max {
                return Err(Errno::ENAMETOOLONG);
            }
            out.push(c);
        }
    }
}

/// `MAX_ARG_STRLEN`: the longest argument or environment string, its NUL
/// included (32 pages).
const MAX_ARG_STRLEN: usize = 32 * 4096;
/// The most bytes of argument and environment strings and pointers
/// together: a quarter of the 8 MiB stack limit, as Linux's
/// `bprm->rlim_stack.rlim_cur / 4`.
const ARG_MAX: usize = 2 << 20;

/// An `argv` or `envp` array from user memory (`copy_strings`); `budget`
/// is what is left of [`ARG_MAX`]. A string too long, or too many bytes
/// in all, is E2BIG.
fn copy_strings(array: usize, budget: &mut usize) -> Result<Vec<Vec<u8>>, Errno> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    if array == 0 {
        return Ok(out);
    }
    loop {
        let p = get_user_u64(array + 8 * out.len())? as usize;
        if p == 0 {
            return Ok(out);
        }
        let s =
            strncpy_from_user(p, MAX_ARG_STRLEN - 1).map_err(|e| if e == Errno::EFAULT { e } else { Errno::E2BIG })?;
        let cost = s.len() + 1 + 8;
        *budget = budget.checked_sub(cost).ok_or(Errno::E2BIG)?;
        out.push(s);
    }
}

/// `execve(path, argv, envp)`.
pub(super) fn sys_execve(path: usize, argv: usize, envp: usize) -> R {
    let path = strncpy_from_user(path, PATH_MAX)?;
    let mut budget = ARG_MAX;
    let args = copy_strings(argv, &mut budget)?;
    let env = copy_strings(envp, &mut budget)?;
    let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
    let env_refs: Vec<&[u8]> = env.iter().map(|a| a.as_slice()).collect();
    crate::kernel::exec::kernel_execve(current(), &path, &refs, &env_refs)?;
    Ok(0)
}

pub(super) fn sys_wait4(pid: i32, status: usize, options: u32) -> R {
    use crate::task::exit::{WCONTINUED, WNOHANG, WUNTRACED};
    if options & !(WNOHANG | WUNTRACED | WCONTINUED | 0x4000_0000 | 0x8000_0000) != 0 {
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
        let which = WaitPid::from_raw(pid, k2.tasks.pgid(me));
        match k2.tasks.wait4(&mut k2.sched, me, which, options, t) {
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
                if k.tasks.signal_pending(me) {
                    return Err(Errno::ERESTARTSYS);
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

/// `setpgid(pid, pgid)` (rules: `TaskTable::setpgid`).
pub(super) fn sys_setpgid(pid: i32, pgid: i32) -> R {
    let mut k = lock();
    k.tasks.setpgid(current(), pid, pgid).map(|()| 0).map_err(Errno::from)
}

/// `getpgid(pid)`.
pub(super) fn sys_getpgid(pid: i32) -> R {
    lock().tasks.getpgid(current(), pid).map(|g| g as isize).map_err(Errno::from)
}

/// `getsid(pid)`.
pub(super) fn sys_getsid(pid: i32) -> R {
    lock().tasks.getsid(current(), pid).map(|s| s as isize).map_err(Errno::from)
}

/// `setsid()`.
pub(super) fn sys_setsid() -> R {
    lock().tasks.setsid(current()).map(|s| s as isize).map_err(Errno::from)
}

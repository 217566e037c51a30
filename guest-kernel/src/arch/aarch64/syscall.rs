//! The system-call dispatcher (Linux arch/arm64/kernel/syscall.c
//! `invoke_syscall`) and the calls themselves. User memory is reached only
//! through `uaccess`, never with the kernel lock held; every pointer a
//! program passes is checked, and a bad one gives -EFAULT.

use alloc::vec::Vec;

use super::cpu::nr_cpus;
use super::irq::now_ns;
use super::mm::{GlobalAcct, current_mm};
use super::pgtable::UserPageTable;
use super::process::{self, current, schedule, schedule_locked, schedule_timeout};
use super::trap::TrapFrame;
use super::uaccess::{copy_from_user, copy_to_user, get_user_u64, put_user_i32};
use crate::kernel::exit::{do_exit, do_group_exit};
use crate::kernel::fault::LockedPages;
use crate::kernel::fork::{CloneArgs, do_clone};
use crate::kernel::{self, Kernel, lock};
use crate::mm::Errno;
use crate::mm::mm_struct::MmStruct;
use crate::sched::{CpuMask, SchedAttr, SchedPolicy, TaskId, TaskState, attr};
use crate::syscall::*;
use crate::task::exit::{WaitPid, WaitResult};
use crate::task::task_struct::{SIGCHLD, SIGKILL, exit_status};

type R = Result<isize, Errno>;

/// Runs the system call in x8 with x0-x5; returns x0.
pub fn dispatch(f: &mut TrapFrame) -> isize {
    let a = f.x;
    let r: R = match a[8] {
        nr::WRITE => sys_write(a[0], a[1] as usize, a[2] as usize),
        nr::READ => sys_read(a[0], a[1] as usize, a[2] as usize),
        nr::EXIT => do_exit(exit_status(a[0] as i32)),
        nr::EXIT_GROUP => do_group_exit(exit_status(a[0] as i32)),
        nr::GETPID => Ok(with_me(|t| t.tgid) as isize),
        nr::GETTID => Ok(with_me(|t| t.pid) as isize),
        nr::GETPPID => sys_getppid(),
        nr::SCHED_YIELD => sys_sched_yield(),
        nr::NANOSLEEP => sys_nanosleep(a[0] as usize, a[1] as usize),
        nr::CLOCK_GETTIME => sys_clock_gettime(a[0], a[1] as usize),
        nr::CLONE => do_clone(
            f,
            CloneArgs { flags: a[0], newsp: a[1], parent_tid: a[2] as usize, tls: a[3], child_tid: a[4] as usize },
        )
        .map(|p| p as isize),
        nr::FUTEX => {
            super::futex::sys_futex(a[0] as usize, a[1] as u32, a[2] as u32, a[3] as usize, a[4] as usize, a[5] as u32)
        }
        nr::SET_TID_ADDRESS => super::futex::sys_set_tid_address(a[0] as usize),
        nr::EXECVE => sys_execve(a[0] as usize, a[1] as usize),
        nr::WAIT4 => sys_wait4(a[0] as i32, a[1] as usize, a[2] as u32),
        nr::KILL => sys_kill(a[0] as i32, a[1] as u32),
        nr::PRCTL => sys_prctl(a[0], a[1]),
        nr::SETPRIORITY => sys_setpriority(a[0], a[1] as i32, a[2] as i32),
        nr::GETPRIORITY => sys_getpriority(a[0], a[1] as i32),
        nr::REBOOT => sys_reboot(a[0], a[1], a[2]),
        nr::SCHED_SETAFFINITY => sys_sched_setaffinity(a[0] as i32, a[1] as usize, a[2] as usize),
        nr::SCHED_GETAFFINITY => sys_sched_getaffinity(a[0] as i32, a[1] as usize, a[2] as usize),
        nr::SCHED_SETSCHEDULER => sys_sched_setscheduler(a[0] as i32, a[1] as i32, a[2] as usize),
        nr::SCHED_GETSCHEDULER => sys_sched_getscheduler(a[0] as i32),
        nr::SCHED_SETATTR => sys_sched_setattr(a[0] as i32, a[1] as usize, a[2] as u32),
        nr::SCHED_GETATTR => sys_sched_getattr(a[0] as i32, a[1] as usize, a[2] as u32, a[3] as u32),
        nr::SCHED_SETPARAM => sys_sched_setparam(a[0] as i32, a[1] as usize),
        nr::SCHED_GETPARAM => sys_sched_getparam(a[0] as i32, a[1] as usize),
        nr::SCHED_GET_PRIORITY_MAX => attr::priority_max(a[0] as u32).map(|p| p as isize),
        nr::SCHED_GET_PRIORITY_MIN => attr::priority_min(a[0] as u32).map(|p| p as isize),
        nr::SCHED_RR_GET_INTERVAL => sys_sched_rr_get_interval(a[0] as i32, a[1] as usize),
        nr::MMAP => sys_mmap(a[0] as usize, a[1] as usize, a[2] as u32, a[3] as u32, a[4] as i64),
        nr::MUNMAP => {
            with_mm(|mm, pt| mm.munmap(pt, &mut LockedPages, &mut GlobalAcct, a[0] as usize, a[1] as usize).map(|_| 0))
        }
        nr::MPROTECT => with_mm(|mm, pt| mm.mprotect(pt, a[0] as usize, a[1] as usize, a[2] as u32).map(|_| 0)),
        nr::BRK => with_mm(|mm, pt| Ok(mm.brk(pt, &mut LockedPages, &mut GlobalAcct, a[0] as usize) as isize)),
        _ => Err(Errno::ENOSYS),
    };
    r.unwrap_or_else(|e| e.to_syscall_ret())
}

fn with_me<T>(f: impl FnOnce(&crate::task::TaskStruct) -> T) -> T {
    let k = lock();
    f(k.tasks.get(current()).expect("current task"))
}

/// Runs `f` on the current address space with its `mmap_lock` held for
/// writing and its page-table lock (`mmap`, `munmap`, `mprotect`, `brk`),
/// without the kernel lock: calls on different address spaces do not
/// contend (`arch/aarch64/mm.rs`).
fn with_mm(f: impl FnOnce(&mut MmStruct, &mut UserPageTable) -> R) -> R {
    let m = current_mm().ok_or(Errno::EFAULT)?;
    let mut vmas = m.mmap_lock.write();
    let mut pt = m.page_table_lock.lock_irqsave();
    f(&mut vmas, &mut pt)
}

/// Resolves a pid argument (0 = the caller) to a task.
fn task_of(pid: i32) -> Result<TaskId, Errno> {
    if pid < 0 {
        return Err(Errno::EINVAL);
    }
    if pid == 0 {
        return Ok(current());
    }
    lock().tasks.find_by_pid(pid).ok_or(Errno::ESRCH)
}

fn sys_write(fd: u64, buf: usize, len: usize) -> R {
    if fd != 1 && fd != 2 {
        return Err(Errno::EBADF);
    }
    let mut chunk = [0u8; 256];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(chunk.len());
        if let Err(e) = copy_from_user(&mut chunk[..n], buf + done) {
            return if done > 0 { Ok(done as isize) } else { Err(e) };
        }
        crate::console::write_bytes(&chunk[..n]);
        done += n;
    }
    Ok(done as isize)
}

/// `read(2)` of the console (`n_tty_read`, canonical mode): sleep until a
/// line (or an end-of-file mark) is ready, then copy up to `len` bytes of
/// it. Without an input driver, stdin is at end of file. A fatal signal
/// ends the wait with EINTR; the buffer is checked before anything is
/// taken from the tty, so a bad pointer loses no input.
fn sys_read(fd: u64, buf: usize, len: usize) -> R {
    if fd != 0 {
        return Err(Errno::EBADF);
    }
    if !super::uaccess::access_ok(buf, len) {
        return Err(Errno::EFAULT);
    }
    let mut k = lock();
    let me = current();
    loop {
        if !k.tty.has_input() {
            return Ok(0);
        }
        if let Some(data) = k.tty.read(len) {
            drop(k);
            copy_to_user(buf, &data)?;
            return Ok(data.len() as isize);
        }
        if fatal_signal_pending(&k, me) {
            return Err(Errno::EINTR);
        }
        let cpu = super::cpu::smp_processor_id();
        let k2 = &mut *k;
        k2.tty.read_wait.prepare_to_wait(&mut k2.sched, cpu, TaskState::Interruptible, false);
        schedule_locked(&mut k);
        let cpu = super::cpu::smp_processor_id();
        let k2 = &mut *k;
        k2.tty.read_wait.finish_wait(&mut k2.sched, cpu);
    }
}

/// `reboot(2)`: power off (or halt) and restart through PSCI once the magic
/// numbers match; anything else is EINVAL. There are no credentials here,
/// so every process may (as root may on Linux).
fn sys_reboot(magic1: u64, magic2: u64, cmd: u64) -> R {
    use crate::syscall::reboot::*;
    if magic1 != MAGIC1 || magic2 != MAGIC2 {
        return Err(Errno::EINVAL);
    }
    match cmd {
        CMD_POWER_OFF | CMD_HALT => process::poweroff(),
        CMD_RESTART => super::psci::system_reset(),
        _ => Err(Errno::EINVAL),
    }
}

/// `getppid(2)`: from the per-CPU copy of the parent's tgid, without the
/// kernel lock (Linux reads `current->real_parent` under RCU).
fn sys_getppid() -> R {
    Ok(kernel::current_ppid() as isize)
}

/// `sched_yield(2)` (`do_sched_yield`): the class's `yield_task`, then
/// `schedule()`.
fn sys_sched_yield() -> R {
    let mut k = lock();
    let cpu = super::cpu::smp_processor_id();
    k.sched.yield_task(cpu, now_ns());
    schedule_locked(&mut k);
    Ok(0)
}

fn fatal_signal_pending(k: &Kernel, id: TaskId) -> bool {
    k.tasks.get(id).is_some_and(|t| t.pending & !(1 << SIGCHLD) != 0)
}

fn sys_nanosleep(req: usize, rem: usize) -> R {
    let mut ts = [0u8; 16];
    copy_from_user(&mut ts, req)?;
    let sec = i64::from_le_bytes(ts[..8].try_into().unwrap());
    let nsec = i64::from_le_bytes(ts[8..].try_into().unwrap());
    let ns = timespec_to_ns(sec, nsec).ok_or(Errno::EINVAL)?;
    let deadline = now_ns().saturating_add(ns);
    let mut k = lock();
    let hz = k.jiffies.hz();
    let me = current();
    loop {
        let now = now_ns();
        if now >= deadline {
            return Ok(0);
        }
        if fatal_signal_pending(&k, me) {
            drop(k);
            if rem != 0 {
                let left = deadline - now_ns().min(deadline);
                let mut out = [0u8; 16];
                out[..8].copy_from_slice(&((left / 1_000_000_000) as i64).to_le_bytes());
                out[8..].copy_from_slice(&((left % 1_000_000_000) as i64).to_le_bytes());
                copy_to_user(rem, &out)?;
            }
            return Err(Errno::EINTR);
        }
        let j = ns_to_sleep_jiffies(deadline - now, hz);
        schedule_timeout(&mut k, j, TaskState::Interruptible);
    }
}

/// `clock_gettime(2)`: the system clocks read the architected counter;
/// `CLOCK_PROCESS_CPUTIME_ID` and `CLOCK_THREAD_CPUTIME_ID` the CPU time the
/// scheduler charged (`sum_exec_runtime`) to the thread group or the thread.
fn sys_clock_gettime(clk: u64, tp: usize) -> R {
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

/// Copies a NUL-terminated string of at most `max` bytes from user memory.
fn strncpy_from_user(addr: usize, max: usize) -> Result<Vec<u8>, Errno> {
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

fn sys_execve(path: usize, argv: usize) -> R {
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
    super::exec::kernel_execve(current(), &path, &refs)?;
    Ok(0)
}

fn sys_wait4(pid: i32, status: usize, options: u32) -> R {
    if options & !(crate::task::exit::WNOHANG | 0x4000_0000 | 0x8000_0000 | 2 | 8) != 0 {
        return Err(Errno::EINVAL);
    }
    if status != 0 && !super::uaccess::access_ok(status, 4) {
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
                let cpu = super::cpu::smp_processor_id();
                let k2 = &mut *k;
                let ts = k2.tasks.get_mut(leader).expect("leader");
                ts.wait_chldexit.prepare_to_wait(&mut k2.sched, cpu, TaskState::Interruptible, false);
                schedule_locked(&mut k);
                let cpu_now = super::cpu::smp_processor_id();
                let k2 = &mut *k;
                if let Some(ts) = k2.tasks.get_mut(leader) {
                    ts.wait_chldexit.finish_wait(&mut k2.sched, cpu_now);
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn sys_kill(pid: i32, sig: u32) -> R {
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

fn sys_prctl(option: u64, arg2: u64) -> R {
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
        _ => Err(Errno::EINVAL),
    }
}

fn sys_setpriority(which: u64, who: i32, nice: i32) -> R {
    if which != PRIO_PROCESS {
        return Err(Errno::EINVAL);
    }
    let id = task_of(who)?;
    let mut k = lock();
    let t = now_ns();
    k.sched.set_user_nice(id, nice.clamp(-20, 19), t)?;
    Ok(0)
}

fn sys_getpriority(which: u64, who: i32) -> R {
    if which != PRIO_PROCESS {
        return Err(Errno::EINVAL);
    }
    let id = task_of(who)?;
    let k = lock();
    // The syscall returns 20 - nice (1..40) so that it is never negative.
    Ok((20 - k.sched.task(id).ok_or(Errno::ESRCH)?.nice()) as isize)
}

fn online_mask() -> u64 {
    if nr_cpus() >= 64 { u64::MAX } else { (1u64 << nr_cpus()) - 1 }
}

fn sys_sched_setaffinity(pid: i32, len: usize, ptr: usize) -> R {
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
    if id == current() && mask & (1 << super::cpu::smp_processor_id()) == 0 {
        schedule();
    }
    Ok(0)
}

fn sys_sched_getaffinity(pid: i32, len: usize, ptr: usize) -> R {
    if len < 8 {
        return Err(Errno::EINVAL);
    }
    let id = task_of(pid)?;
    let mask = lock().sched.task(id).ok_or(Errno::ESRCH)?.cpus_allowed.0 & online_mask();
    copy_to_user(ptr, &mask.to_le_bytes())?;
    Ok(8)
}

fn sys_sched_setscheduler(pid: i32, policy: i32, param: usize) -> R {
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
fn sys_sched_setattr(pid: i32, uattr: usize, flags: u32) -> R {
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
fn sys_sched_getattr(pid: i32, uattr: usize, usize: u32, flags: u32) -> R {
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
fn sys_sched_setparam(pid: i32, param: usize) -> R {
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
fn sys_sched_getparam(pid: i32, param: usize) -> R {
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
fn sys_sched_rr_get_interval(pid: i32, tp: usize) -> R {
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

fn sys_sched_getscheduler(pid: i32) -> R {
    let id = task_of(pid)?;
    let k = lock();
    Ok(k.sched.task(id).ok_or(Errno::ESRCH)?.policy as u32 as isize)
}

fn sys_mmap(addr: usize, len: usize, prot: u32, flags: u32, fd: i64) -> R {
    use crate::mm::mm_struct::map::MAP_ANONYMOUS;
    if flags & MAP_ANONYMOUS == 0 {
        // No files yet: only anonymous memory can be mapped.
        return Err(if fd < 0 { Errno::EBADF } else { Errno::ENODEV });
    }
    with_mm(|mm, pt| mm.mmap(pt, &mut LockedPages, &mut GlobalAcct, addr, len, prot, flags, None).map(|a| a as isize))
}

//! The system-call table (Linux arch/arm64/kernel/syscall.c
//! `invoke_syscall` and include/uapi/asm-generic/unistd.h): one line per
//! call, from the number in x8 to its handler, which lives with its
//! subsystem's calls (`fs.rs` for descriptors, `namei.rs` for paths,
//! `pipe.rs`, `process.rs`, `sched.rs`, `time.rs`,
//! `mm.rs`; the futex glue is `kernel/futex.rs`, `execve`'s loader
//! `kernel/exec.rs`). User memory is reached only through
//! `uaccess`, never with the kernel lock held; every pointer a program
//! passes is checked, and a bad one gives -EFAULT. An unknown number gives
//! -ENOSYS.

use super::cred::*;
use super::fs::*;
use super::mm::*;
use super::namei::*;
use super::pipe::*;
use super::poll::*;
use super::process::*;
use super::sched::*;
use super::signal::*;
use super::sys::*;
use super::time::*;

use super::*;
use crate::arch::aarch64::mm::GlobalAcct;
use crate::arch::aarch64::process::current;
use crate::arch::aarch64::trap::TrapFrame;
use crate::kernel::exit::{do_exit, do_group_exit};
use crate::kernel::fault::LockedPages;
use crate::kernel::fork::{CloneArgs, do_clone};
use crate::kernel::lock;
use crate::mm::Errno;
use crate::sched::{TaskId, attr};
use crate::task::task_struct::exit_status;

/// A call's result: the value for x0, or the errno (negated into x0).
pub(super) type R = Result<isize, Errno>;

/// Runs the system call in x8 with x0-x5; returns x0.
pub fn dispatch(f: &mut TrapFrame) -> isize {
    // The six argument registers only: copying the whole x0-x30 array
    // here costs a 248-byte memcpy on every call (150 instructions of
    // getppid's 360: scripts/profile null_syscall).
    let a = [f.x[0], f.x[1], f.x[2], f.x[3], f.x[4], f.x[5]];
    let r: R = match f.x[8] {
        nr::WRITE => sys_write(a[0] as i32, a[1] as usize, a[2] as usize),
        nr::READ => sys_read(a[0] as i32, a[1] as usize, a[2] as usize),
        nr::READV => sys_readv(a[0] as i32, a[1] as usize, a[2] as usize),
        nr::WRITEV => sys_writev(a[0] as i32, a[1] as usize, a[2] as usize),
        nr::PREAD64 => sys_pread64(a[0] as i32, a[1] as usize, a[2] as usize, a[3] as i64),
        nr::PWRITE64 => sys_pwrite64(a[0] as i32, a[1] as usize, a[2] as usize, a[3] as i64),
        nr::LSEEK => sys_lseek(a[0] as i32, a[1] as i64, a[2] as u32),
        nr::OPENAT => sys_openat(a[0] as i32, a[1] as usize, a[2] as u32, a[3] as u32),
        nr::CLOSE => sys_close(a[0] as i32),
        nr::DUP => sys_dup(a[0] as i32),
        nr::DUP3 => sys_dup3(a[0] as i32, a[1] as i32, a[2] as u32),
        nr::FCNTL => sys_fcntl(a[0] as i32, a[1] as u32, a[2]),
        nr::IOCTL => sys_ioctl(a[0] as i32, a[1] as u32, a[2] as usize),
        nr::PIPE2 => sys_pipe2(a[0] as usize, a[1] as u32),
        nr::GETDENTS64 => sys_getdents64(a[0] as i32, a[1] as usize, a[2] as usize),
        nr::FSTAT => sys_fstat(a[0] as i32, a[1] as usize),
        nr::NEWFSTATAT => sys_newfstatat(a[0] as i32, a[1] as usize, a[2] as usize, a[3] as u32),
        nr::STATX => sys_statx(a[0] as i32, a[1] as usize, a[2] as u32, a[3] as u32, a[4] as usize),
        nr::FACCESSAT => sys_faccessat2(a[0] as i32, a[1] as usize, a[2] as u32, 0),
        nr::FACCESSAT2 => sys_faccessat2(a[0] as i32, a[1] as usize, a[2] as u32, a[3] as u32),
        nr::READLINKAT => sys_readlinkat(a[0] as i32, a[1] as usize, a[2] as usize, a[3] as i32),
        nr::SYMLINKAT => sys_symlinkat(a[0] as usize, a[1] as i32, a[2] as usize),
        nr::LINKAT => sys_linkat(a[0] as i32, a[1] as usize, a[2] as i32, a[3] as usize, a[4] as u32),
        nr::UNLINKAT => sys_unlinkat(a[0] as i32, a[1] as usize, a[2] as u32),
        nr::RENAMEAT => sys_renameat2(a[0] as i32, a[1] as usize, a[2] as i32, a[3] as usize, 0),
        nr::RENAMEAT2 => sys_renameat2(a[0] as i32, a[1] as usize, a[2] as i32, a[3] as usize, a[4] as u32),
        nr::MKDIRAT => sys_mkdirat(a[0] as i32, a[1] as usize, a[2] as u32),
        nr::MKNODAT => sys_mknodat(a[0] as i32, a[1] as usize, a[2] as u32, a[3]),
        nr::FCHMODAT => sys_fchmodat(a[0] as i32, a[1] as usize, a[2] as u32),
        nr::FCHMOD => sys_fchmod(a[0] as i32, a[1] as u32),
        nr::FCHOWNAT => sys_fchownat(a[0] as i32, a[1] as usize, a[2] as u32, a[3] as u32, a[4] as u32),
        nr::FCHOWN => sys_fchown(a[0] as i32, a[1] as u32, a[2] as u32),
        nr::UTIMENSAT => sys_utimensat(a[0] as i32, a[1] as usize, a[2] as usize, a[3] as u32),
        nr::FTRUNCATE => sys_ftruncate(a[0] as i32, a[1] as i64),
        nr::TRUNCATE => sys_truncate(a[0] as usize, a[1] as i64),
        nr::CHDIR => sys_chdir(a[0] as usize),
        nr::FCHDIR => sys_fchdir(a[0] as i32),
        nr::CHROOT => sys_chroot(a[0] as usize),
        nr::GETCWD => sys_getcwd(a[0] as usize, a[1] as usize),
        nr::UMASK => sys_umask(a[0] as u32),
        nr::MOUNT => sys_mount(a[0] as usize, a[1] as usize, a[2] as usize, a[3], a[4] as usize),
        nr::UMOUNT2 => sys_umount2(a[0] as usize, a[1] as u32),
        nr::SENDFILE => sys_sendfile(a[0] as i32, a[1] as i32, a[2] as usize, a[3] as usize),
        nr::PPOLL => sys_ppoll(a[0] as usize, a[1] as usize, a[2] as usize, a[3] as usize, a[4] as usize),
        nr::SYNC => Ok(0),
        nr::FSYNC | nr::FDATASYNC => sys_fsync(a[0] as i32),
        nr::EXIT => do_exit(exit_status(a[0] as i32)),
        nr::EXIT_GROUP => do_group_exit(exit_status(a[0] as i32)),
        nr::GETPID => Ok(with_me(|t| t.tgid) as isize),
        nr::GETTID => Ok(with_me(|t| t.pid) as isize),
        nr::GETPPID => sys_getppid(),
        nr::SCHED_YIELD => sys_sched_yield(),
        nr::NANOSLEEP => sys_nanosleep(a[0] as usize, a[1] as usize),
        nr::CLOCK_GETTIME => sys_clock_gettime(a[0], a[1] as usize),
        nr::CLOCK_GETRES => sys_clock_getres(a[0], a[1] as usize),
        nr::CLOCK_NANOSLEEP => sys_clock_nanosleep(a[0], a[1], a[2] as usize, a[3] as usize),
        nr::GETTIMEOFDAY => sys_gettimeofday(a[0] as usize, a[1] as usize),
        nr::TIMES => sys_times(a[0] as usize),
        nr::SETITIMER => sys_setitimer(a[0], a[1] as usize, a[2] as usize),
        nr::GETITIMER => sys_getitimer(a[0], a[1] as usize),
        nr::PRLIMIT64 => sys_prlimit64(a[0] as i32, a[1] as u32, a[2] as usize, a[3] as usize),
        nr::GETRLIMIT => sys_prlimit64(0, a[0] as u32, 0, a[1] as usize),
        nr::SETRLIMIT => sys_prlimit64(0, a[0] as u32, a[1] as usize, 0),
        nr::GETRUSAGE => sys_getrusage(a[0] as i32, a[1] as usize),
        nr::GETRANDOM => sys_getrandom(a[0] as usize, a[1] as usize, a[2] as u32),
        nr::CLONE => do_clone(
            f,
            CloneArgs { flags: a[0], newsp: a[1], parent_tid: a[2] as usize, tls: a[3], child_tid: a[4] as usize },
        )
        .map(|p| p as isize),
        nr::FUTEX => crate::kernel::futex::sys_futex(
            a[0] as usize,
            a[1] as u32,
            a[2] as u32,
            a[3] as usize,
            a[4] as usize,
            a[5] as u32,
        ),
        nr::SET_TID_ADDRESS => crate::kernel::futex::sys_set_tid_address(a[0] as usize),
        nr::EXECVE => sys_execve(a[0] as usize, a[1] as usize, a[2] as usize),
        nr::WAIT4 => sys_wait4(a[0] as i32, a[1] as usize, a[2] as u32),
        nr::KILL => sys_kill(a[0] as i32, a[1] as u32),
        nr::TKILL => sys_tgkill(None, a[0] as i32, a[1] as u32),
        nr::TGKILL => sys_tgkill(Some(a[0] as i32), a[1] as i32, a[2] as u32),
        nr::RT_SIGACTION => sys_rt_sigaction(a[0] as u32, a[1] as usize, a[2] as usize, a[3] as usize),
        nr::RT_SIGPROCMASK => sys_rt_sigprocmask(a[0], a[1] as usize, a[2] as usize, a[3] as usize),
        nr::RT_SIGPENDING => sys_rt_sigpending(a[0] as usize, a[1] as usize),
        nr::RT_SIGSUSPEND => sys_rt_sigsuspend(a[0] as usize, a[1] as usize),
        nr::RT_SIGTIMEDWAIT => sys_rt_sigtimedwait(a[0] as usize, a[1] as usize, a[2] as usize, a[3] as usize),
        nr::RT_SIGRETURN => return crate::kernel::signal::sys_rt_sigreturn(f),
        nr::SIGALTSTACK => sys_sigaltstack(a[0] as usize, a[1] as usize, f.sp),
        nr::RESTART_SYSCALL => sys_restart_syscall(),
        nr::PRCTL => sys_prctl(a[0], a[1]),
        nr::SETPRIORITY => sys_setpriority(a[0], a[1] as i32, a[2] as i32),
        nr::GETPRIORITY => sys_getpriority(a[0], a[1] as i32),
        nr::REBOOT => sys_reboot(a[0], a[1], a[2]),
        nr::GETUID => sys_getid(|c| c.uid),
        nr::GETEUID => sys_getid(|c| c.euid),
        nr::GETGID => sys_getid(|c| c.gid),
        nr::GETEGID => sys_getid(|c| c.egid),
        nr::SETUID => sys_setid(|c| c.setuid(a[0] as u32)),
        nr::SETGID => sys_setid(|c| c.setgid(a[0] as u32)),
        nr::SETREUID => sys_setid(|c| c.setreuid(a[0] as u32, a[1] as u32)),
        nr::SETREGID => sys_setid(|c| c.setregid(a[0] as u32, a[1] as u32)),
        nr::SETRESUID => sys_setid(|c| c.setresuid(a[0] as u32, a[1] as u32, a[2] as u32)),
        nr::SETRESGID => sys_setid(|c| c.setresgid(a[0] as u32, a[1] as u32, a[2] as u32)),
        nr::GETRESUID => sys_getres(|c| [c.uid, c.euid, c.suid], [a[0] as usize, a[1] as usize, a[2] as usize]),
        nr::GETRESGID => sys_getres(|c| [c.gid, c.egid, c.sgid], [a[0] as usize, a[1] as usize, a[2] as usize]),
        nr::SETFSUID => sys_setfsid(|c| c.setfsuid(a[0] as u32)),
        nr::SETFSGID => sys_setfsid(|c| c.setfsgid(a[0] as u32)),
        nr::GETGROUPS => sys_getgroups(a[0] as i32, a[1] as usize),
        nr::SETGROUPS => sys_setgroups(a[0] as i32, a[1] as usize),
        nr::SETPGID => sys_setpgid(a[0] as i32, a[1] as i32),
        nr::GETPGID => sys_getpgid(a[0] as i32),
        nr::GETSID => sys_getsid(a[0] as i32),
        nr::SETSID => sys_setsid(),
        nr::UNAME => sys_uname(a[0] as usize),
        nr::SYSINFO => sys_sysinfo(a[0] as usize),
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
        nr::MADVISE => {
            with_mm(|mm, pt| mm.madvise(pt, &mut LockedPages, a[0] as usize, a[1] as usize, a[2] as u32).map(|_| 0))
        }
        nr::MSYNC => sys_msync(a[0] as usize, a[1] as usize, a[2] as u32),
        nr::MPROTECT => with_mm(|mm, pt| mm.mprotect(pt, a[0] as usize, a[1] as usize, a[2] as u32).map(|_| 0)),
        nr::BRK => with_mm(|mm, pt| Ok(mm.brk(pt, &mut LockedPages, &mut GlobalAcct, a[0] as usize) as isize)),
        _ => Err(Errno::ENOSYS),
    };
    r.unwrap_or_else(|e| e.to_syscall_ret())
}

/// Runs `f` on the current task (the kernel lock held).
pub(super) fn with_me<T>(f: impl FnOnce(&crate::task::TaskStruct) -> T) -> T {
    let k = lock();
    f(k.tasks.get(current()).expect("current task"))
}

/// Resolves a pid argument (0 = the caller) to a task.
pub(super) fn task_of(pid: i32) -> Result<TaskId, Errno> {
    if pid < 0 {
        return Err(Errno::EINVAL);
    }
    if pid == 0 {
        return Ok(current());
    }
    lock().tasks.find_by_pid(pid).ok_or(Errno::ESRCH)
}

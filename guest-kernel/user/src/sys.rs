//! Linux aarch64 system calls (numbers from `include/uapi/asm-generic/unistd.h`).

use core::fmt::{self, Write};
use core::sync::atomic::AtomicU32;

/// Syscall numbers.
pub mod nr {
    pub const READ: usize = 63;
    pub const WRITE: usize = 64;
    pub const EXIT: usize = 93;
    pub const EXIT_GROUP: usize = 94;
    pub const SET_TID_ADDRESS: usize = 96;
    pub const FUTEX: usize = 98;
    pub const NANOSLEEP: usize = 101;
    pub const CLOCK_GETTIME: usize = 113;
    pub const SCHED_SETPARAM: usize = 118;
    pub const SCHED_SETSCHEDULER: usize = 119;
    pub const SCHED_GETSCHEDULER: usize = 120;
    pub const SCHED_GETPARAM: usize = 121;
    pub const SCHED_SETAFFINITY: usize = 122;
    pub const SCHED_GETAFFINITY: usize = 123;
    pub const SCHED_YIELD: usize = 124;
    pub const SCHED_GET_PRIORITY_MAX: usize = 125;
    pub const SCHED_GET_PRIORITY_MIN: usize = 126;
    pub const SCHED_RR_GET_INTERVAL: usize = 127;
    pub const KILL: usize = 129;
    pub const TKILL: usize = 130;
    pub const TGKILL: usize = 131;
    pub const SIGALTSTACK: usize = 132;
    pub const RT_SIGSUSPEND: usize = 133;
    pub const RT_SIGACTION: usize = 134;
    pub const RT_SIGPROCMASK: usize = 135;
    pub const RT_SIGPENDING: usize = 136;
    pub const RT_SIGRETURN: usize = 139;
    pub const SETPRIORITY: usize = 140;
    pub const GETPRIORITY: usize = 141;
    pub const REBOOT: usize = 142;
    pub const PRCTL: usize = 167;
    pub const GETPID: usize = 172;
    pub const GETPPID: usize = 173;
    pub const GETTID: usize = 178;
    pub const BRK: usize = 214;
    pub const MUNMAP: usize = 215;
    pub const CLONE: usize = 220;
    pub const EXECVE: usize = 221;
    pub const MMAP: usize = 222;
    pub const MPROTECT: usize = 226;
    pub const WAIT4: usize = 260;
    pub const SCHED_SETATTR: usize = 274;
    pub const SCHED_GETATTR: usize = 275;
}

/// A raw system call with up to six arguments. Returns x0 as the kernel
/// left it: a value, or a negative errno.
#[inline(always)]
pub fn syscall6(n: usize, a: [usize; 6]) -> isize {
    #[cfg(target_arch = "aarch64")]
    {
        let ret: isize;
        // SAFETY: `svc #0` enters the kernel, which validates every
        // argument; the kernel preserves all registers but x0.
        unsafe {
            core::arch::asm!(
                "svc #0",
                inlateout("x0") a[0] => ret,
                in("x1") a[1], in("x2") a[2], in("x3") a[3], in("x4") a[4], in("x5") a[5],
                in("x8") n,
                options(nostack)
            );
        }
        ret
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        let _ = (n, a);
        -38 // ENOSYS: host builds never make system calls.
    }
}

/// `read(fd, buf, len)`.
pub fn read(fd: usize, buf: &mut [u8]) -> isize {
    syscall6(nr::READ, [fd, buf.as_mut_ptr() as usize, buf.len(), 0, 0, 0])
}

/// `write(fd, buf, len)`.
pub fn write(fd: usize, buf: &[u8]) -> isize {
    syscall6(nr::WRITE, [fd, buf.as_ptr() as usize, buf.len(), 0, 0, 0])
}

/// `exit_group(code)`: ends every thread of the process.
pub fn exit_group(code: i32) -> ! {
    syscall6(nr::EXIT_GROUP, [code as usize, 0, 0, 0, 0, 0]);
    #[allow(clippy::empty_loop)]
    loop {}
}

/// `getpid()`.
pub fn getpid() -> isize {
    syscall6(nr::GETPID, [0; 6])
}

/// `getppid()`.
pub fn getppid() -> isize {
    syscall6(nr::GETPPID, [0; 6])
}

/// `gettid()`.
pub fn gettid() -> isize {
    syscall6(nr::GETTID, [0; 6])
}

/// `exit(code)`: ends the calling thread only.
pub fn exit(code: i32) -> ! {
    syscall6(nr::EXIT, [code as usize, 0, 0, 0, 0, 0]);
    #[allow(clippy::empty_loop)]
    loop {}
}

/// `SIGCHLD`, the exit signal of a forked child.
pub const SIGCHLD: usize = 17;
/// `SIGKILL`.
pub const SIGKILL: usize = 9;
/// `SIGSEGV`.
pub const SIGSEGV: usize = 11;

/// `fork()` as `clone(SIGCHLD, 0, 0, 0, 0)`: the child's pid, 0 in the
/// child, or a negative errno.
pub fn fork() -> isize {
    syscall6(nr::CLONE, [SIGCHLD, 0, 0, 0, 0, 0])
}

/// `clone` flags (include/uapi/linux/sched.h).
pub mod clone {
    pub const CLONE_VM: usize = 0x100;
    pub const CLONE_FS: usize = 0x200;
    pub const CLONE_FILES: usize = 0x400;
    pub const CLONE_SIGHAND: usize = 0x800;
    pub const CLONE_VFORK: usize = 0x4000;
    pub const CLONE_THREAD: usize = 0x1_0000;
    pub const CLONE_SYSVSEM: usize = 0x4_0000;
    pub const CLONE_SETTLS: usize = 0x8_0000;
    pub const CLONE_PARENT_SETTID: usize = 0x10_0000;
    pub const CLONE_CHILD_CLEARTID: usize = 0x20_0000;
    pub const CLONE_CHILD_SETTID: usize = 0x100_0000;
    /// What glibc's `pthread_create` passes (minus CLONE_SETTLS, which the
    /// caller adds with a TLS pointer).
    pub const THREAD_FLAGS: usize = CLONE_VM
        | CLONE_FS
        | CLONE_FILES
        | CLONE_SIGHAND
        | CLONE_THREAD
        | CLONE_SYSVSEM
        | CLONE_PARENT_SETTID
        | CLONE_CHILD_CLEARTID;
}

/// A new task sharing what `flags` says, running `f(arg)` on the stack
/// whose top is `stack_top` (16-byte aligned): the raw `clone(flags,
/// stack_top, parent_tid, tls, child_tid)` in the arm64 argument order.
/// Returns the child's tid (or -errno); `f` must end with `exit`.
///
/// # Safety
/// With CLONE_VM the stack must be memory nobody else uses until the
/// child has exited, and everything `f` touches must outlive it.
pub unsafe fn clone_thread(
    flags: usize,
    stack_top: usize,
    parent_tid: usize,
    tls: usize,
    child_tid: usize,
    f: extern "C" fn(usize) -> !,
    arg: usize,
) -> isize {
    #[cfg(target_arch = "aarch64")]
    {
        let ret: isize;
        // SAFETY: the parent only makes the call; the child (x0 = 0) starts
        // on its own stack and never comes back into this function: it
        // calls f, which exits. x9/x10 survive the svc in both (the kernel
        // copies the parent's registers into the child).
        unsafe {
            core::arch::asm!(
                "svc #0",
                "cbnz x0, 2f",
                "mov x0, x10",
                "blr x9",
                "brk #0",
                "2:",
                inlateout("x0") flags => ret,
                in("x1") stack_top, in("x2") parent_tid, in("x3") tls, in("x4") child_tid,
                in("x8") nr::CLONE, in("x9") f as usize, in("x10") arg,
                options(nostack)
            );
        }
        ret
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        let _ = (flags, stack_top, parent_tid, tls, child_tid, f, arg);
        -38
    }
}

/// `futex(2)` operations and flags (include/uapi/linux/futex.h).
pub mod futex {
    pub const FUTEX_WAIT: usize = 0;
    pub const FUTEX_WAKE: usize = 1;
    pub const FUTEX_REQUEUE: usize = 3;
    pub const FUTEX_CMP_REQUEUE: usize = 4;
    pub const FUTEX_WAIT_BITSET: usize = 9;
    pub const FUTEX_WAKE_BITSET: usize = 10;
    pub const FUTEX_PRIVATE_FLAG: usize = 128;
}

/// The raw `futex(uaddr, op, val, timeout or val2, uaddr2, val3)`.
pub fn futex(uaddr: usize, op: usize, val: u32, arg4: usize, uaddr2: usize, val3: u32) -> isize {
    syscall6(nr::FUTEX, [uaddr, op, val as usize, arg4, uaddr2, val3 as usize])
}

/// FUTEX_WAIT (`private`: FUTEX_WAIT_PRIVATE) while `*word == val`, for at
/// most `timeout_ns` if given: 0 when woken, else -EAGAIN, -ETIMEDOUT, ...
pub fn futex_wait(word: &AtomicU32, val: u32, timeout_ns: Option<u64>, private: bool) -> isize {
    let op = futex::FUTEX_WAIT | if private { futex::FUTEX_PRIVATE_FLAG } else { 0 };
    let ts = timeout_ns.map(|ns| [(ns / 1_000_000_000) as i64, (ns % 1_000_000_000) as i64]);
    let tp = ts.as_ref().map_or(0, |t| t.as_ptr() as usize);
    futex(word.as_ptr() as usize, op, val, tp, 0, 0)
}

/// FUTEX_WAKE (`private`: FUTEX_WAKE_PRIVATE) of up to `nr` waiters of
/// `word`: how many woke.
pub fn futex_wake(word: &AtomicU32, nr: u32, private: bool) -> isize {
    let op = futex::FUTEX_WAKE | if private { futex::FUTEX_PRIVATE_FLAG } else { 0 };
    futex(word.as_ptr() as usize, op, nr, 0, 0, 0)
}

/// `set_tid_address(tidptr)`: the caller's tid.
pub fn set_tid_address(tidptr: usize) -> isize {
    syscall6(nr::SET_TID_ADDRESS, [tidptr, 0, 0, 0, 0, 0])
}

/// TPIDR_EL0, the EL0 thread pointer (TLS base).
pub fn tpidr_el0() -> usize {
    #[cfg(target_arch = "aarch64")]
    {
        let v: usize;
        // SAFETY: EL0 may read its thread pointer; no memory is touched.
        unsafe { core::arch::asm!("mrs {}, tpidr_el0", out(reg) v, options(nomem, nostack)) };
        v
    }
    #[cfg(not(target_arch = "aarch64"))]
    0
}

/// Sets TPIDR_EL0 (EL0 may write it; the kernel saves it per task).
pub fn set_tpidr_el0(v: usize) {
    #[cfg(target_arch = "aarch64")]
    // SAFETY: EL0 may write its thread pointer; nothing here uses TLS.
    unsafe {
        core::arch::asm!("msr tpidr_el0, {}", in(reg) v, options(nomem, nostack))
    };
    #[cfg(not(target_arch = "aarch64"))]
    let _ = v;
}

/// `wait4(pid, &status, options, NULL)`: (pid or -errno, status).
pub fn wait4(pid: isize, options: usize) -> (isize, i32) {
    let mut status: i32 = 0;
    let r = syscall6(nr::WAIT4, [pid as usize, &mut status as *mut i32 as usize, options, 0, 0, 0]);
    (r, status)
}

/// `kill(pid, sig)`.
pub fn kill(pid: isize, sig: usize) -> isize {
    syscall6(nr::KILL, [pid as usize, sig, 0, 0, 0, 0])
}

/// `sched_yield()`.
pub fn sched_yield() -> isize {
    syscall6(nr::SCHED_YIELD, [0; 6])
}

/// `nanosleep` for `ms` milliseconds.
pub fn sleep_ms(ms: u64) -> isize {
    let ts = [(ms / 1000) as i64, ((ms % 1000) * 1_000_000) as i64];
    syscall6(nr::NANOSLEEP, [ts.as_ptr() as usize, 0, 0, 0, 0, 0])
}

/// `clock_gettime(CLOCK_THREAD_CPUTIME_ID)`: this thread's CPU time in ns.
pub fn thread_cpu_ns() -> u64 {
    let mut ts = [0i64; 2];
    syscall6(nr::CLOCK_GETTIME, [3, ts.as_mut_ptr() as usize, 0, 0, 0, 0]);
    (ts[0] as u64) * 1_000_000_000 + ts[1] as u64
}

/// `clock_gettime(CLOCK_MONOTONIC)` in nanoseconds.
pub fn clock_ns() -> u64 {
    let mut ts = [0i64; 2];
    syscall6(nr::CLOCK_GETTIME, [1, ts.as_mut_ptr() as usize, 0, 0, 0, 0]);
    ts[0] as u64 * 1_000_000_000 + ts[1] as u64
}

/// `mmap(addr, len, prot, flags, fd, off)`.
pub fn mmap(addr: usize, len: usize, prot: usize, flags: usize, fd: isize, off: usize) -> isize {
    syscall6(nr::MMAP, [addr, len, prot, flags, fd as usize, off])
}

/// `munmap(addr, len)`.
pub fn munmap(addr: usize, len: usize) -> isize {
    syscall6(nr::MUNMAP, [addr, len, 0, 0, 0, 0])
}

/// `mprotect(addr, len, prot)`.
pub fn mprotect(addr: usize, len: usize, prot: usize) -> isize {
    syscall6(nr::MPROTECT, [addr, len, prot, 0, 0, 0])
}

/// `brk(addr)`: the new (or unchanged) break.
pub fn brk(addr: usize) -> isize {
    syscall6(nr::BRK, [addr, 0, 0, 0, 0, 0])
}

/// `execve(path, argv, envp = NULL)`; `path` and each argument must end in NUL.
pub fn execve(path: &[u8], argv: &[*const u8]) -> isize {
    syscall6(nr::EXECVE, [path.as_ptr() as usize, argv.as_ptr() as usize, 0, 0, 0, 0])
}

/// `execve(path, argv, envp)`; both arrays NULL-terminated.
pub fn execve_env(path: &[u8], argv: &[*const u8], envp: &[*const u8]) -> isize {
    syscall6(nr::EXECVE, [path.as_ptr() as usize, argv.as_ptr() as usize, envp.as_ptr() as usize, 0, 0, 0])
}

/// `reboot(LINUX_REBOOT_CMD_POWER_OFF)`: returns only on failure.
pub fn power_off() -> isize {
    syscall6(nr::REBOOT, [0xfee1_dead, 672_274_793, 0x4321_fedc, 0, 0, 0])
}

/// The virtual counter (CNTVCT_EL0), readable at EL0 on Linux and on our
/// kernel (CNTKCTL_EL1.EL0VCTEN). Under QEMU `-icount shift=0` one
/// nanosecond of virtual time is one instruction, so `ticks * 1e9 /
/// cntfrq()` counts instructions. The ISB keeps the read from being
/// hoisted above earlier instructions (ARM ARM D12.1.2).
#[inline(always)]
pub fn cntvct() -> u64 {
    #[cfg(target_arch = "aarch64")]
    {
        let v: u64;
        // SAFETY: reads a counter register; no memory is touched.
        unsafe { core::arch::asm!("isb", "mrs {}, cntvct_el0", out(reg) v, options(nomem, nostack)) };
        v
    }
    #[cfg(not(target_arch = "aarch64"))]
    0
}

/// The counter frequency in Hz (CNTFRQ_EL0).
pub fn cntfrq() -> u64 {
    #[cfg(target_arch = "aarch64")]
    {
        let v: u64;
        // SAFETY: reads a read-only register; no memory is touched.
        unsafe { core::arch::asm!("mrs {}, cntfrq_el0", out(reg) v, options(nomem, nostack)) };
        v
    }
    #[cfg(not(target_arch = "aarch64"))]
    1
}

/// `prctl(option, arg2)`.
pub fn prctl(option: usize, arg2: usize) -> isize {
    syscall6(nr::PRCTL, [option, arg2, 0, 0, 0, 0])
}

/// `setpriority(PRIO_PROCESS, pid, nice)`.
pub fn setpriority(pid: isize, nice: isize) -> isize {
    syscall6(nr::SETPRIORITY, [0, pid as usize, nice as usize, 0, 0, 0])
}

/// `getpriority(PRIO_PROCESS, pid)`: 20 - nice.
pub fn getpriority(pid: isize) -> isize {
    syscall6(nr::GETPRIORITY, [0, pid as usize, 0, 0, 0, 0])
}

/// `sched_setaffinity(pid, 8, &mask)`.
pub fn sched_setaffinity(pid: isize, mask: u64) -> isize {
    syscall6(nr::SCHED_SETAFFINITY, [pid as usize, 8, &mask as *const u64 as usize, 0, 0, 0])
}

/// `sched_getaffinity(pid, 8, &mask)`: (result, mask).
pub fn sched_getaffinity(pid: isize) -> (isize, u64) {
    let mut mask = 0u64;
    let r = syscall6(nr::SCHED_GETAFFINITY, [pid as usize, 8, &mut mask as *mut u64 as usize, 0, 0, 0]);
    (r, mask)
}

/// `sched_setscheduler(pid, policy, &param)`.
pub fn sched_setscheduler(pid: isize, policy: usize, prio: i32) -> isize {
    syscall6(nr::SCHED_SETSCHEDULER, [pid as usize, policy, &prio as *const i32 as usize, 0, 0, 0])
}

/// `struct sched_attr` (include/uapi/linux/sched/types.h), the 56-byte
/// layout (SCHED_ATTR_SIZE_VER1).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedAttr {
    pub size: u32,
    pub sched_policy: u32,
    pub sched_flags: u64,
    pub sched_nice: i32,
    pub sched_priority: u32,
    pub sched_runtime: u64,
    pub sched_deadline: u64,
    pub sched_period: u64,
    pub sched_util_min: u32,
    pub sched_util_max: u32,
}

/// `sched_setattr(pid, attr, flags)`.
pub fn sched_setattr(pid: isize, attr: &mut SchedAttr, flags: usize) -> isize {
    syscall6(nr::SCHED_SETATTR, [pid as usize, attr as *mut SchedAttr as usize, flags, 0, 0, 0])
}

/// `sched_getattr(pid, attr, size, flags)`.
pub fn sched_getattr(pid: isize, attr: &mut SchedAttr, size: usize, flags: usize) -> isize {
    syscall6(nr::SCHED_GETATTR, [pid as usize, attr as *mut SchedAttr as usize, size, flags, 0, 0])
}

/// `sched_setparam(pid, &prio)`.
pub fn sched_setparam(pid: isize, prio: i32) -> isize {
    syscall6(nr::SCHED_SETPARAM, [pid as usize, &prio as *const i32 as usize, 0, 0, 0, 0])
}

/// `sched_getparam(pid, &prio)`: (return value, priority).
pub fn sched_getparam(pid: isize) -> (isize, i32) {
    let mut prio = -1i32;
    let r = syscall6(nr::SCHED_GETPARAM, [pid as usize, &mut prio as *mut i32 as usize, 0, 0, 0, 0]);
    (r, prio)
}

/// `sched_get_priority_max(policy)` and `sched_get_priority_min(policy)`.
pub fn sched_priority_range(policy: isize) -> (isize, isize) {
    let max = syscall6(nr::SCHED_GET_PRIORITY_MAX, [policy as usize, 0, 0, 0, 0, 0]);
    let min = syscall6(nr::SCHED_GET_PRIORITY_MIN, [policy as usize, 0, 0, 0, 0, 0]);
    (max, min)
}

/// `sched_rr_get_interval(pid, &ts)`: (return value, interval in ns).
pub fn sched_rr_get_interval(pid: isize) -> (isize, u64) {
    let mut ts = [0i64; 2];
    let r = syscall6(nr::SCHED_RR_GET_INTERVAL, [pid as usize, ts.as_mut_ptr() as usize, 0, 0, 0, 0]);
    (r, ts[0] as u64 * 1_000_000_000 + ts[1] as u64)
}

/// `sched_getscheduler(pid)`.
pub fn sched_getscheduler(pid: isize) -> isize {
    syscall6(nr::SCHED_GETSCHEDULER, [pid as usize, 0, 0, 0, 0, 0])
}

/// Writes all of `b` to fd 1 (as many `write(2)` calls as it takes).
fn write_all(mut b: &[u8]) -> fmt::Result {
    while !b.is_empty() {
        let n = write(1, b);
        if n <= 0 {
            return Err(fmt::Error);
        }
        b = &b[n as usize..];
    }
    Ok(())
}

/// What one `print` collects before it writes: the kernel writes a
/// `write(2)` of up to 256 bytes to the console in one piece.
const LINE: usize = 256;

/// A `print`'s text on its way to fd 1: collected, then written with one
/// `write(2)` (more only for text longer than [`LINE`]), as a line-buffered
/// stdout does. Written piece by piece, the lines of two processes
/// printing at once came out interleaved mid-line on 2 CPUs.
struct LineBuf {
    buf: [u8; LINE],
    len: usize,
}

impl LineBuf {
    fn flush(&mut self) -> fmt::Result {
        let r = write_all(&self.buf[..self.len]);
        self.len = 0;
        r
    }
}

impl Write for LineBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut b = s.as_bytes();
        while !b.is_empty() {
            if self.len == LINE {
                self.flush()?;
            }
            let n = b.len().min(LINE - self.len);
            self.buf[self.len..self.len + n].copy_from_slice(&b[..n]);
            self.len += n;
            b = &b[n..];
        }
        Ok(())
    }
}

/// Formats and writes to fd 1, in one `write(2)` when the text fits
/// [`LINE`] bytes.
pub fn print(args: fmt::Arguments) {
    let mut b = LineBuf { buf: [0; LINE], len: 0 };
    if b.write_fmt(args).is_ok() {
        let _ = b.flush();
    }
}

#[cfg(target_os = "none")]
mod rt {
    // Program entry (Linux aarch64 ELF ABI): sp -> argc, argv[], NULL, envp[].
    core::arch::global_asm!(
        ".section .text._start, \"ax\"",
        ".global _start",
        "_start:",
        "    mov x29, #0",
        "    mov x30, #0",
        "    ldr x0, [sp]",
        "    add x1, sp, #8",
        "    bl __user_main",
        "1:  b 1b",
    );

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo) -> ! {
        super::print(format_args!("panic: {info}\n"));
        super::exit_group(101)
    }
}

/// Signals: the kernel's `struct sigaction` and `stack_t`, and the calls.
pub mod signal {
    use super::{nr, syscall6};

    pub const SIGUSR1: usize = 10;
    pub const SIGUSR2: usize = 12;
    pub const SIGSTOP: usize = 19;
    pub const SIGCONT: usize = 18;
    pub const SIG_DFL: usize = 0;
    pub const SIG_IGN: usize = 1;
    pub const SA_NOCLDWAIT: u64 = 0x2;
    pub const SA_SIGINFO: u64 = 0x4;
    pub const SA_RESTORER: u64 = 0x0400_0000;
    pub const SA_ONSTACK: u64 = 0x0800_0000;
    pub const SA_RESTART: u64 = 0x1000_0000;
    pub const SA_NODEFER: u64 = 0x4000_0000;
    pub const SA_RESETHAND: u64 = 0x8000_0000;
    pub const SIG_BLOCK: usize = 0;
    pub const SIG_UNBLOCK: usize = 1;
    pub const SIG_SETMASK: usize = 2;
    pub const SS_ONSTACK: i32 = 1;
    pub const SS_DISABLE: i32 = 2;

    /// The bit of `sig` in a signal set.
    pub const fn bit(sig: usize) -> u64 {
        1 << (sig - 1)
    }

    /// `struct sigaction` as the arm64 kernel takes it.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    #[repr(C)]
    pub struct SigAction {
        pub handler: usize,
        pub flags: u64,
        pub restorer: usize,
        pub mask: u64,
    }

    /// `stack_t`.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    #[repr(C)]
    pub struct StackT {
        pub sp: usize,
        pub flags: i32,
        pub size: usize,
    }

    #[cfg(target_arch = "aarch64")]
    core::arch::global_asm!(".global guest_user_restore_rt", "guest_user_restore_rt:", "mov x8, #139", "svc #0",);

    /// The address of this library's `rt_sigreturn` trampoline, for
    /// SA_RESTORER (libc's `__restore_rt`).
    pub fn restorer() -> usize {
        #[cfg(target_arch = "aarch64")]
        {
            unsafe extern "C" {
                fn guest_user_restore_rt();
            }
            guest_user_restore_rt as *const () as usize
        }
        #[cfg(not(target_arch = "aarch64"))]
        0
    }

    /// `rt_sigaction(sig, act, oact, 8)`.
    pub fn sigaction(sig: usize, act: Option<&SigAction>, oact: Option<&mut SigAction>) -> isize {
        let a = act.map_or(0, |a| a as *const SigAction as usize);
        let o = oact.map_or(0, |o| o as *mut SigAction as usize);
        syscall6(nr::RT_SIGACTION, [sig, a, o, 8, 0, 0])
    }

    /// `rt_sigprocmask(how, set, &old, 8)`: (result, old mask).
    pub fn sigprocmask(how: usize, set: Option<u64>) -> (isize, u64) {
        let mut old = 0u64;
        let s = set.as_ref().map_or(0, |s| s as *const u64 as usize);
        let r = syscall6(nr::RT_SIGPROCMASK, [how, s, &mut old as *mut u64 as usize, 8, 0, 0]);
        (r, old)
    }

    /// `rt_sigpending(&set, 8)`.
    pub fn sigpending() -> u64 {
        let mut set = 0u64;
        syscall6(nr::RT_SIGPENDING, [&mut set as *mut u64 as usize, 8, 0, 0, 0, 0]);
        set
    }

    /// `rt_sigsuspend(&mask, 8)`.
    pub fn sigsuspend(mask: u64) -> isize {
        syscall6(nr::RT_SIGSUSPEND, [&mask as *const u64 as usize, 8, 0, 0, 0, 0])
    }

    /// `sigaltstack(new, &old)`: (result, old).
    pub fn sigaltstack(new: Option<&StackT>) -> (isize, StackT) {
        let mut old = StackT::default();
        let n = new.map_or(0, |n| n as *const StackT as usize);
        let r = syscall6(nr::SIGALTSTACK, [n, &mut old as *mut StackT as usize, 0, 0, 0, 0]);
        (r, old)
    }

    /// `tgkill(tgid, tid, sig)`.
    pub fn tgkill(tgid: isize, tid: isize, sig: usize) -> isize {
        syscall6(nr::TGKILL, [tgid as usize, tid as usize, sig, 0, 0, 0])
    }
}

//! Linux aarch64 system calls (numbers from `include/uapi/asm-generic/unistd.h`).

use core::fmt::{self, Write};

/// Syscall numbers.
pub mod nr {
    pub const READ: usize = 63;
    pub const WRITE: usize = 64;
    pub const EXIT: usize = 93;
    pub const EXIT_GROUP: usize = 94;
    pub const NANOSLEEP: usize = 101;
    pub const CLOCK_GETTIME: usize = 113;
    pub const SCHED_SETSCHEDULER: usize = 119;
    pub const SCHED_GETSCHEDULER: usize = 120;
    pub const SCHED_SETAFFINITY: usize = 122;
    pub const SCHED_GETAFFINITY: usize = 123;
    pub const SCHED_YIELD: usize = 124;
    pub const KILL: usize = 129;
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

/// `sched_getscheduler(pid)`.
pub fn sched_getscheduler(pid: isize) -> isize {
    syscall6(nr::SCHED_GETSCHEDULER, [pid as usize, 0, 0, 0, 0, 0])
}

struct Stdout;
impl Write for Stdout {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut b = s.as_bytes();
        while !b.is_empty() {
            let n = write(1, b);
            if n <= 0 {
                return Err(fmt::Error);
            }
            b = &b[n as usize..];
        }
        Ok(())
    }
}

/// Formats and writes to fd 1.
pub fn print(args: fmt::Arguments) {
    let _ = Stdout.write_fmt(args);
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

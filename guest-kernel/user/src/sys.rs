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

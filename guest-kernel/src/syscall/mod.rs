//! The system-call layer: numbers of the Linux aarch64 ABI (the asm-generic
//! table, include/uapi/asm-generic/unistd.h) and the ABI constants and
//! conversions the calls use (pure, host-tested), and, on the target, the
//! table (`table.rs`: `svc #0`, number in x8, arguments in x0-x5, result
//! or negative errno in x0) with the handlers grouped by subsystem.

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod cred;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod fs;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod mm;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod namei;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod pipe;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod poll;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod process;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod sched;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod signal;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod sys;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod table;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod time;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod tty;

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub use signal::set_altstack;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub use sys::NODENAME;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub use table::dispatch;

/// Syscall numbers.
pub mod nr {
    pub const GETCWD: u64 = 17;
    pub const DUP: u64 = 23;
    pub const DUP3: u64 = 24;
    pub const FCNTL: u64 = 25;
    pub const IOCTL: u64 = 29;
    pub const MKNODAT: u64 = 33;
    pub const MKDIRAT: u64 = 34;
    pub const UNLINKAT: u64 = 35;
    pub const SYMLINKAT: u64 = 36;
    pub const LINKAT: u64 = 37;
    pub const RENAMEAT: u64 = 38;
    pub const UMOUNT2: u64 = 39;
    pub const MOUNT: u64 = 40;
    pub const TRUNCATE: u64 = 45;
    pub const FTRUNCATE: u64 = 46;
    pub const FACCESSAT: u64 = 48;
    pub const CHDIR: u64 = 49;
    pub const FCHDIR: u64 = 50;
    pub const CHROOT: u64 = 51;
    pub const FCHMOD: u64 = 52;
    pub const FCHMODAT: u64 = 53;
    pub const FCHOWNAT: u64 = 54;
    pub const FCHOWN: u64 = 55;
    pub const OPENAT: u64 = 56;
    pub const CLOSE: u64 = 57;
    pub const PIPE2: u64 = 59;
    pub const GETDENTS64: u64 = 61;
    pub const LSEEK: u64 = 62;
    pub const READ: u64 = 63;
    pub const WRITE: u64 = 64;
    pub const READV: u64 = 65;
    pub const WRITEV: u64 = 66;
    pub const PREAD64: u64 = 67;
    pub const PWRITE64: u64 = 68;
    pub const SENDFILE: u64 = 71;
    pub const PPOLL: u64 = 73;
    pub const READLINKAT: u64 = 78;
    pub const NEWFSTATAT: u64 = 79;
    pub const FSTAT: u64 = 80;
    pub const SYNC: u64 = 81;
    pub const FSYNC: u64 = 82;
    pub const FDATASYNC: u64 = 83;
    pub const UTIMENSAT: u64 = 88;
    pub const EXIT: u64 = 93;
    pub const EXIT_GROUP: u64 = 94;
    pub const SET_TID_ADDRESS: u64 = 96;
    pub const FUTEX: u64 = 98;
    pub const NANOSLEEP: u64 = 101;
    pub const GETITIMER: u64 = 102;
    pub const SETITIMER: u64 = 103;
    pub const CLOCK_GETTIME: u64 = 113;
    pub const CLOCK_GETRES: u64 = 114;
    pub const CLOCK_NANOSLEEP: u64 = 115;
    pub const SCHED_SETPARAM: u64 = 118;
    pub const SCHED_SETSCHEDULER: u64 = 119;
    pub const SCHED_GETSCHEDULER: u64 = 120;
    pub const SCHED_GETPARAM: u64 = 121;
    pub const SCHED_SETAFFINITY: u64 = 122;
    pub const SCHED_GETAFFINITY: u64 = 123;
    pub const SCHED_YIELD: u64 = 124;
    pub const SCHED_GET_PRIORITY_MAX: u64 = 125;
    pub const SCHED_GET_PRIORITY_MIN: u64 = 126;
    pub const SCHED_RR_GET_INTERVAL: u64 = 127;
    pub const RESTART_SYSCALL: u64 = 128;
    pub const KILL: u64 = 129;
    pub const TKILL: u64 = 130;
    pub const TGKILL: u64 = 131;
    pub const SIGALTSTACK: u64 = 132;
    pub const RT_SIGSUSPEND: u64 = 133;
    pub const RT_SIGACTION: u64 = 134;
    pub const RT_SIGPROCMASK: u64 = 135;
    pub const RT_SIGPENDING: u64 = 136;
    pub const RT_SIGTIMEDWAIT: u64 = 137;
    pub const RT_SIGRETURN: u64 = 139;
    pub const SETPRIORITY: u64 = 140;
    pub const GETPRIORITY: u64 = 141;
    pub const REBOOT: u64 = 142;
    pub const SETREGID: u64 = 143;
    pub const SETGID: u64 = 144;
    pub const SETREUID: u64 = 145;
    pub const SETUID: u64 = 146;
    pub const SETRESUID: u64 = 147;
    pub const GETRESUID: u64 = 148;
    pub const SETRESGID: u64 = 149;
    pub const GETRESGID: u64 = 150;
    pub const SETFSUID: u64 = 151;
    pub const SETFSGID: u64 = 152;
    pub const SETPGID: u64 = 154;
    pub const GETPGID: u64 = 155;
    pub const GETSID: u64 = 156;
    pub const SETSID: u64 = 157;
    pub const GETGROUPS: u64 = 158;
    pub const SETGROUPS: u64 = 159;
    pub const TIMES: u64 = 153;
    pub const GETRLIMIT: u64 = 163;
    pub const SETRLIMIT: u64 = 164;
    pub const GETRUSAGE: u64 = 165;
    pub const UNAME: u64 = 160;
    pub const UMASK: u64 = 166;
    pub const PRCTL: u64 = 167;
    pub const GETPID: u64 = 172;
    pub const GETPPID: u64 = 173;
    pub const GETTIMEOFDAY: u64 = 169;
    pub const GETUID: u64 = 174;
    pub const GETEUID: u64 = 175;
    pub const GETGID: u64 = 176;
    pub const GETEGID: u64 = 177;
    pub const GETTID: u64 = 178;
    pub const SYSINFO: u64 = 179;
    pub const BRK: u64 = 214;
    pub const MUNMAP: u64 = 215;
    pub const CLONE: u64 = 220;
    pub const EXECVE: u64 = 221;
    pub const MMAP: u64 = 222;
    pub const MPROTECT: u64 = 226;
    pub const MSYNC: u64 = 227;
    pub const MADVISE: u64 = 233;
    pub const WAIT4: u64 = 260;
    pub const PRLIMIT64: u64 = 261;
    pub const SCHED_SETATTR: u64 = 274;
    pub const SCHED_GETATTR: u64 = 275;
    pub const RENAMEAT2: u64 = 276;
    pub const GETRANDOM: u64 = 278;
    pub const STATX: u64 = 291;
    pub const FACCESSAT2: u64 = 439;
}

/// `PR_SET_NAME`, `PR_GET_NAME`.
pub const PR_SET_NAME: u64 = 15;
pub const PR_GET_NAME: u64 = 16;
/// `PR_SET_CHILD_SUBREAPER`.
pub const PR_SET_CHILD_SUBREAPER: u64 = 36;
/// `PR_GET_CHILD_SUBREAPER`.
pub const PR_GET_CHILD_SUBREAPER: u64 = 37;
/// `reboot(2)`'s magic numbers and commands (include/uapi/linux/reboot.h).
pub mod reboot {
    pub const MAGIC1: u64 = 0xfee1_dead;
    pub const MAGIC2: u64 = 672_274_793;
    pub const CMD_RESTART: u64 = 0x0123_4567;
    pub const CMD_HALT: u64 = 0xcdef_0123;
    pub const CMD_POWER_OFF: u64 = 0x4321_fedc;
}

/// `PRIO_PROCESS` (set/getpriority's `which`).
pub const PRIO_PROCESS: u64 = 0;
/// Longest path execve accepts (PATH_MAX).
pub const PATH_MAX: usize = 4096;

/// Nanoseconds of a `struct timespec`, or None if tv_nsec is out of range
/// (EINVAL) or the time is negative.
pub fn timespec_to_ns(sec: i64, nsec: i64) -> Option<u64> {
    if sec < 0 || !(0..1_000_000_000).contains(&nsec) {
        return None;
    }
    Some((sec as u64).saturating_mul(1_000_000_000).saturating_add(nsec as u64))
}

/// Jiffies to sleep for `ns` (rounded up, plus one so that at least the
/// requested time passes: the current tick is already partly gone).
pub fn ns_to_sleep_jiffies(ns: u64, hz: u32) -> u64 {
    let j = (ns as u128 * u128::from(hz)).div_ceil(1_000_000_000) as u64;
    j.saturating_add(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timespec_checks_and_rounding() {
        assert_eq!(timespec_to_ns(1, 5), Some(1_000_000_005));
        assert_eq!(timespec_to_ns(0, 1_000_000_000), None);
        assert_eq!(timespec_to_ns(-1, 0), None);
        assert_eq!(timespec_to_ns(i64::MAX, 999_999_999), Some(u64::MAX));
        assert_eq!(ns_to_sleep_jiffies(0, 100), 1);
        assert_eq!(ns_to_sleep_jiffies(10_000_000, 100), 2);
        assert_eq!(ns_to_sleep_jiffies(10_000_001, 100), 3);
    }
}

/// `struct new_utsname` (include/uapi/linux/utsname.h): six NUL-padded
/// fields of 65 bytes. `sysname` is "Linux" and `release` a Linux version,
/// as programs read them to learn which ABI they run on (the guest kernel
/// implements Linux 6.1's); `machine` is "aarch64".
pub fn new_utsname(nodename: &str) -> [u8; 6 * UTS_LEN] {
    let mut b = [0u8; 6 * UTS_LEN];
    let fields = ["Linux", nodename, UTS_RELEASE, UTS_VERSION, "aarch64", "(none)"];
    for (i, f) in fields.iter().enumerate() {
        let n = f.len().min(UTS_LEN - 1);
        b[i * UTS_LEN..i * UTS_LEN + n].copy_from_slice(&f.as_bytes()[..n]);
    }
    b
}

/// `__NEW_UTS_LEN + 1`.
pub const UTS_LEN: usize = 65;
/// What `uname -r` says: the Linux ABI the kernel implements, and which
/// kernel it is.
pub const UTS_RELEASE: &str = "6.1.0-guest-kernel";
/// What `uname -v` says.
pub const UTS_VERSION: &str = "#1 SMP";

/// What `sysinfo(2)` reports (include/uapi/linux/sysinfo.h), memory in
/// pages of `mem_unit` bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SysInfo {
    pub uptime_s: i64,
    /// 1, 5 and 15 minute load averages, fixed point with 16 fraction bits.
    pub loads: [u64; 3],
    pub totalram: u64,
    pub freeram: u64,
    pub procs: u16,
    pub mem_unit: u32,
}

impl SysInfo {
    /// The 112-byte `struct sysinfo` of a 64-bit ABI.
    pub fn encode(&self) -> [u8; 112] {
        let mut b = [0u8; 112];
        b[0..8].copy_from_slice(&self.uptime_s.to_le_bytes());
        for (i, l) in self.loads.iter().enumerate() {
            b[8 + 8 * i..16 + 8 * i].copy_from_slice(&l.to_le_bytes());
        }
        b[32..40].copy_from_slice(&self.totalram.to_le_bytes());
        b[40..48].copy_from_slice(&self.freeram.to_le_bytes());
        // sharedram, bufferram, totalswap, freeswap (48..80): 0.
        b[80..82].copy_from_slice(&self.procs.to_le_bytes());
        // pad (82..88), totalhigh, freehigh (88..104): 0.
        b[104..108].copy_from_slice(&self.mem_unit.to_le_bytes());
        b
    }
}

#[cfg(test)]
mod uts_tests {
    use super::*;

    #[test]
    fn utsname_fields_are_65_bytes_nul_padded() {
        let u = new_utsname("vm-a");
        assert_eq!(&u[..6], b"Linux\0");
        assert_eq!(&u[65..70], b"vm-a\0");
        assert_eq!(&u[130..130 + UTS_RELEASE.len()], UTS_RELEASE.as_bytes());
        assert_eq!(&u[260..268], b"aarch64\0");
        let long = "n".repeat(100);
        assert_eq!(new_utsname(&long)[65 + 64], 0, "a long name is cut and stays terminated");
    }

    #[test]
    fn sysinfo_has_the_64_bit_layout() {
        let s = SysInfo { uptime_s: 7, loads: [1, 2, 3], totalram: 100, freeram: 40, procs: 5, mem_unit: 4096 };
        let b = s.encode();
        assert_eq!(b[0], 7);
        assert_eq!((b[8], b[16], b[24]), (1, 2, 3));
        assert_eq!((b[32], b[40], b[80], u32::from_le_bytes(b[104..108].try_into().unwrap())), (100, 40, 5, 4096));
    }
}

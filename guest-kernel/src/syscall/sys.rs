//! System information calls (Linux kernel/sys.c): `uname`, `sysinfo`,
//! resource limits and usage, and `getrandom`.

use super::table::R;
use super::{SysInfo, new_utsname};
use crate::arch::aarch64::irq::now_ns;
use crate::arch::aarch64::memory;
use crate::arch::aarch64::uaccess::copy_to_user;
use crate::kernel::lock;
use crate::mm::Errno;
use crate::mm::page::PAGE_SIZE;

/// The host name `uname` reports: the VM's name under the hypervisor,
/// "(none)" natively (Linux's default before `sethostname`). Set at boot.
pub static NODENAME: spin::Once<alloc::string::String> = spin::Once::new();

/// `uname(2)`: `struct new_utsname`.
pub(super) fn sys_uname(buf: usize) -> R {
    let node = NODENAME.get().map_or("(none)", |n| n.as_str());
    copy_to_user(buf, &new_utsname(node))?;
    Ok(0)
}

/// `sysinfo(2)`: uptime, memory in pages and the number of tasks. There is
/// no swap, shared or buffer memory, and the load averages are not kept
/// yet: 0.
pub(super) fn sys_sysinfo(info: usize) -> R {
    let (totalram, freeram) = memory::with_pages(|pa| (pa.totalram_pages(), pa.nr_free_pages()));
    let procs = lock().tasks.nr_threads;
    let s = SysInfo {
        uptime_s: (now_ns() / 1_000_000_000) as i64,
        loads: [0; 3],
        totalram: totalram as u64,
        freeram: freeram as u64,
        procs: procs.min(usize::from(u16::MAX)) as u16,
        mem_unit: PAGE_SIZE as u32,
    };
    copy_to_user(info, &s.encode())?;
    Ok(0)
}

/// `prlimit64(pid, resource, new, old)` (and `getrlimit`/`setrlimit`,
/// pid 0): the limits of process `pid`; setting another process's needs
/// root (EPERM).
pub(super) fn sys_prlimit64(pid: i32, resource: u32, new: usize, old: usize) -> R {
    use crate::task::rlimit::Rlimit;
    let new = if new != 0 {
        let mut b = [0u8; 16];
        crate::arch::aarch64::uaccess::copy_from_user(&mut b, new)?;
        let w = |i: usize| u64::from_le_bytes(b[8 * i..8 * i + 8].try_into().expect("8 bytes"));
        Some(Rlimit { cur: w(0), max: w(1) })
    } else {
        None
    };
    let me = crate::arch::aarch64::process::current();
    let prev = {
        let mut k = lock();
        let target = match pid {
            0 => me,
            p if p < 0 => return Err(Errno::EINVAL),
            p => k.tasks.find_by_pid(p).ok_or(Errno::ESRCH)?,
        };
        let root = k.tasks.get(me).is_some_and(|t| t.cred.is_root());
        if new.is_some() && !root && k.tasks.get(target).map(|t| t.tgid) != k.tasks.get(me).map(|t| t.tgid) {
            return Err(Errno::EPERM);
        }
        let leader = k.tasks.get(target).map(|t| t.group_leader).ok_or(Errno::ESRCH)?;
        let t = k.tasks.get_mut(leader).ok_or(Errno::ESRCH)?;
        t.rlim.prlimit(resource as usize, new, root)?
    };
    if old != 0 {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&prev.cur.to_le_bytes());
        b[8..].copy_from_slice(&prev.max.to_le_bytes());
        copy_to_user(old, &b)?;
    }
    Ok(0)
}

/// `getrusage(who, usage)`: the CPU time of the caller's process
/// (RUSAGE_SELF) or thread (RUSAGE_THREAD), all counted as user time; the
/// reaped children's (RUSAGE_CHILDREN) and the other fields are not kept
/// yet: 0.
pub(super) fn sys_getrusage(who: i32, usage: usize) -> R {
    const RUSAGE_SELF: i32 = 0;
    const RUSAGE_CHILDREN: i32 = -1;
    const RUSAGE_THREAD: i32 = 1;
    let now = now_ns();
    let ns = match who {
        RUSAGE_CHILDREN => 0,
        RUSAGE_SELF | RUSAGE_THREAD => {
            let me = crate::arch::aarch64::process::current();
            crate::kernel::sched::cputime(&mut lock(), me, who == RUSAGE_SELF, now)
        }
        _ => return Err(Errno::EINVAL),
    };
    let mut b = [0u8; 144];
    b[..8].copy_from_slice(&((ns / 1_000_000_000) as i64).to_le_bytes());
    b[8..16].copy_from_slice(&(((ns % 1_000_000_000) / 1000) as i64).to_le_bytes());
    copy_to_user(usage, &b)?;
    Ok(0)
}

/// `getrandom(buf, len, flags)`: `len` bytes (at most 32 MiB a call)
/// from a SplitMix64 generator seeded from the boot seed and the
/// counter. Not a cryptographic generator: enough for hash seeds and
/// temporary names, not for keys. Unknown flags: EINVAL.
pub(super) fn sys_getrandom(buf: usize, len: usize, flags: u32) -> R {
    const GRND_NONBLOCK: u32 = 1;
    const GRND_RANDOM: u32 = 2;
    const GRND_INSECURE: u32 = 4;
    if flags & !(GRND_NONBLOCK | GRND_RANDOM | GRND_INSECURE) != 0
        || flags & (GRND_RANDOM | GRND_INSECURE) == (GRND_RANDOM | GRND_INSECURE)
    {
        return Err(Errno::EINVAL);
    }
    let len = len.min(32 << 20);
    let mut state = {
        let mut k = lock();
        k.seed = k.seed.wrapping_add(0x9e37_79b9_7f4a_7c15) ^ now_ns();
        k.seed
    };
    let mut chunk = [0u8; 256];
    let mut done = 0;
    while done < len {
        for w in chunk.chunks_exact_mut(8) {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            w.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
        }
        let n = (len - done).min(chunk.len());
        if let Err(e) = copy_to_user(buf + done, &chunk[..n]) {
            return if done > 0 { Ok(done as isize) } else { Err(e) };
        }
        done += n;
    }
    Ok(done as isize)
}

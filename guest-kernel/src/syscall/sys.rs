//! System information calls (Linux kernel/sys.c): `uname` and
//! `sysinfo`, from the kernel's own state.

use super::table::R;
use super::{SysInfo, new_utsname};
use crate::arch::aarch64::irq::now_ns;
use crate::arch::aarch64::memory;
use crate::arch::aarch64::uaccess::copy_to_user;
use crate::kernel::lock;
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

//! Memory management, as LKD (ch. 12 "Memory Management", ch. 15 "The
//! Process Address Space") and 《Linux内核深度解析》 (ch. 3 内存管理) describe it.
//!
//! Every file is a pure core: no asm, no MMIO, no system registers. What the
//! hardware must do (zero or copy a frame, edit a page table, know the CPU
//! number) is behind a small trait the arch glue implements and the host
//! tests fake.
//!
//! | file | what | book |
//! | --- | --- | --- |
//! | [`memblock`] | boot memory: RAM and reserved regions from the DTB, early top-down allocation, hand-over to the buddy allocator | 《深度解析》§3.6 |
//! | [`page`] | `struct page`, PFNs, migrate and zone types, page flags | LKD ch. 12 "Pages"; §3.5.3 |
//! | [`gfp`] | GFP flags | LKD ch. 12 "gfp_mask Flags" |
//! | [`buddy`] | per-zone free lists per order and migrate type, split/merge, fallback stealing | LKD ch. 12 "Getting Pages"; §3.7.1, §3.7.3 |
//! | [`pcp`] | per-CPU page lists (`per_cpu_pages`): refill and drain a batch at a time | LKD ch. 12 "Per-CPU Allocations"; Gorman §6.5; §3.7.4 |
//! | [`zone`] | zones, watermarks, lowmem_reserve, zonelist, the zone and pcp locks, `alloc_pages`/`__free_pages`, buddyinfo | LKD ch. 12 "Zones"; §3.7.2, §3.7.4, §3.7.5 |
//! | [`slab`] | `kmem_cache` with full/partial/free slabs and per-CPU array caches, kmalloc, the kernel heap (its per-CPU arrays outside the heap lock) | LKD ch. 12 "Slab Layer"; §3.8 |
//! | [`vmalloc`] | virtually contiguous areas | LKD ch. 12 "vmalloc()"; §3.9 |
//! | [`percpu`] | per-CPU variables with a preempt-disable guard | LKD ch. 12 "Per-CPU Allocations"; §3.10 |
//! | [`vma`] | `vm_area_struct` and the ordered VMA tree | LKD ch. 15 "Virtual Memory Areas"; §3.4.2 |
//! | [`mm_struct`] | address-space layout and ASLR, mmap, munmap, mprotect, brk, stack growth, fork copy | LKD ch. 15; §3.2.2, §3.4 |
//! | [`fault`] | demand paging, copy-on-write, stack growth, SIGSEGV kinds | LKD ch. 15; ch. 3 页错误异常处理 |
//! | [`oom`] | overcommit policies and the OOM killer's victim choice | §3.4.4; ch. 3 内存耗尽杀手 |
//!
//! Boot order for the arch glue: [`memblock::Memblock`] (add RAM, reserve
//! image/DTB/initrd) → allocate the mem_map with `Memblock::alloc` and
//! [`page::mem_map_init`] → [`zone::PageAllocator::free_area_init`] →
//! `Memblock::free_all` (hand-over + watermarks) → [`slab::KernelHeap`]
//! switches from its early heap to kmalloc.

pub mod buddy;
pub mod fault;
pub mod gfp;
pub mod memblock;
pub mod mm_struct;
pub mod oom;
pub mod page;
pub mod pcp;
pub mod percpu;
pub mod slab;
pub mod vma;
pub mod vmalloc;
pub mod zone;

/// A Linux errno value (returned negated by system calls).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub i32);

impl Errno {
    /// Operation not permitted.
    pub const EPERM: Errno = Errno(1);
    /// No such file or directory.
    pub const ENOENT: Errno = Errno(2);
    /// No such process.
    pub const ESRCH: Errno = Errno(3);
    /// Interrupted system call.
    pub const EINTR: Errno = Errno(4);
    /// Argument list too long.
    pub const E2BIG: Errno = Errno(7);
    /// Exec format error.
    pub const ENOEXEC: Errno = Errno(8);
    /// Bad file descriptor.
    pub const EBADF: Errno = Errno(9);
    /// Try again.
    pub const EAGAIN: Errno = Errno(11);
    /// Out of memory.
    pub const ENOMEM: Errno = Errno(12);
    /// Permission denied.
    pub const EACCES: Errno = Errno(13);
    /// Bad address.
    pub const EFAULT: Errno = Errno(14);
    /// Exists.
    pub const EEXIST: Errno = Errno(17);
    /// No child processes.
    pub const ECHILD: Errno = Errno(10);
    /// Device or resource busy.
    pub const EBUSY: Errno = Errno(16);
    /// No such device (mmap of something that is not memory).
    pub const ENODEV: Errno = Errno(19);
    /// Invalid argument.
    pub const EINVAL: Errno = Errno(22);
    /// File name too long.
    pub const ENAMETOOLONG: Errno = Errno(36);
    /// Function not implemented.
    pub const ENOSYS: Errno = Errno(38);
    /// Too many levels of symbolic links (or of `#!` interpreters).
    pub const ELOOP: Errno = Errno(40);
    /// No such device or address (a FIFO opened for writing, O_NONBLOCK, no reader).
    pub const ENXIO: Errno = Errno(6);
    /// Cross-device link.
    pub const EXDEV: Errno = Errno(18);
    /// Not a directory.
    pub const ENOTDIR: Errno = Errno(20);
    /// Is a directory.
    pub const EISDIR: Errno = Errno(21);
    /// File table overflow.
    pub const ENFILE: Errno = Errno(23);
    /// Too many open files.
    pub const EMFILE: Errno = Errno(24);
    /// Not a typewriter.
    pub const ENOTTY: Errno = Errno(25);
    /// File too large.
    pub const EFBIG: Errno = Errno(27);
    /// No space left on device.
    pub const ENOSPC: Errno = Errno(28);
    /// Illegal seek.
    pub const ESPIPE: Errno = Errno(29);
    /// Too many links.
    pub const EMLINK: Errno = Errno(31);
    /// Broken pipe.
    pub const EPIPE: Errno = Errno(32);
    /// Result out of range.
    pub const ERANGE: Errno = Errno(34);
    /// Operation not supported.
    pub const EOPNOTSUPP: Errno = Errno(95);
    /// Directory not empty.
    pub const ENOTEMPTY: Errno = Errno(39);
    /// Connection timed out (a futex wait's timeout ran out).
    pub const ETIMEDOUT: Errno = Errno(110);
    /// A sleep a signal interrupted: restarted if no handler runs or the
    /// handler has SA_RESTART, else EINTR (never seen by programs;
    /// include/linux/errno.h).
    pub const ERESTARTSYS: Errno = Errno(crate::task::signal::ERESTARTSYS);
    /// As ERESTARTSYS, but EINTR whenever a handler runs.
    pub const ERESTARTNOHAND: Errno = Errno(crate::task::signal::ERESTARTNOHAND);
    /// As ERESTARTNOHAND, but restarted through `restart_syscall` (the
    /// rest of a `nanosleep`).
    pub const ERESTART_RESTARTBLOCK: Errno = Errno(crate::task::signal::ERESTART_RESTARTBLOCK);

    /// The value a system call returns in x0.
    pub const fn to_syscall_ret(self) -> isize {
        -(self.0 as isize)
    }
}

impl From<crate::task::Errno> for Errno {
    fn from(e: crate::task::Errno) -> Errno {
        Errno(e as i32)
    }
}

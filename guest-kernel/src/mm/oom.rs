//! Overcommit accounting and the OOM killer's choice of victim.
//!
//! 《Linux内核深度解析》§3.4.4 (虚拟内存过量提交策略): `__vm_enough_memory`
//! decides, per policy, whether a new private writable mapping may be
//! committed; and ch. 3 "内存耗尽杀手": `oom_badness()` scores every process
//! by the memory it would free, adjusted by `oom_score_adj`, and the highest
//! score is killed. init and kernel threads are never chosen.

use alloc::vec::Vec;

use super::Errno;
use super::page::PAGE_SIZE;

/// `vm.overcommit_memory`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OvercommitPolicy {
    /// 0: heuristic estimate of what could be freed (the default).
    Guess = 0,
    /// 1: always allow.
    Always = 1,
    /// 2: never commit beyond CommitLimit.
    Never = 2,
}

/// The memory figures `__vm_enough_memory` looks at, in pages. The kernel
/// refreshes them from the page allocator before each check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemInfo {
    /// `totalram_pages()`.
    pub totalram: usize,
    /// `NR_FREE_PAGES`.
    pub free: usize,
    /// File-backed page cache pages (could be dropped).
    pub file_pages: usize,
    /// Shared memory pages (cannot be dropped, only swapped).
    pub shmem_pages: usize,
    /// Reclaimable slab pages.
    pub slab_reclaimable: usize,
    /// Total swap pages.
    pub total_swap: usize,
    /// Free swap pages.
    pub free_swap: usize,
    /// `totalreserve_pages`: high watermarks plus lowmem reserves.
    pub totalreserve: usize,
}

/// Overcommit state (`vm_committed_as` and the sysctls).
#[derive(Clone, Debug)]
pub struct Overcommit {
    /// `vm.overcommit_memory`.
    pub policy: OvercommitPolicy,
    /// `vm.overcommit_ratio` (percent of RAM, default 50).
    pub ratio: usize,
    /// `vm.overcommit_kbytes` (overrides the ratio when non-zero).
    pub kbytes: usize,
    /// `vm.admin_reserve_kbytes` (default 8 MiB).
    pub admin_reserve_kbytes: usize,
    /// `vm.user_reserve_kbytes` (default 128 MiB).
    pub user_reserve_kbytes: usize,
    /// `Committed_AS`, in pages.
    pub committed: usize,
    /// Current memory figures.
    pub meminfo: MemInfo,
}

impl Overcommit {
    /// Defaults for a machine with `meminfo`.
    pub fn new(meminfo: MemInfo) -> Self {
        Overcommit {
            policy: OvercommitPolicy::Guess,
            ratio: 50,
            kbytes: 0,
            admin_reserve_kbytes: 8192,
            user_reserve_kbytes: 131_072,
            committed: 0,
            meminfo,
        }
    }

    fn kb_to_pages(kb: usize) -> usize {
        kb / (PAGE_SIZE / 1024)
    }

    /// `vm_commit_limit()`: CommitLimit = RAM * ratio / 100 + swap.
    pub fn commit_limit(&self) -> usize {
        let ram =
            if self.kbytes != 0 { Self::kb_to_pages(self.kbytes) } else { self.meminfo.totalram * self.ratio / 100 };
        ram + self.meminfo.total_swap
    }

    /// `__vm_enough_memory()`: account `pages` and decide. On refusal the
    /// pages are unaccounted again and `ENOMEM` returned.
    ///
    /// `mm_total_vm` is the caller's address-space size in pages (the user
    /// reserve is at most 1/32 of it).
    pub fn vm_enough_memory(&mut self, pages: usize, cap_sys_admin: bool, mm_total_vm: usize) -> Result<(), Errno> {
        self.committed += pages;
        if self.allows(self.committed, pages, cap_sys_admin, mm_total_vm) {
            Ok(())
        } else {
            self.committed -= pages;
            Err(Errno::ENOMEM)
        }
    }

    /// The decision of [`vm_enough_memory`](Self::vm_enough_memory) for a
    /// charge of `pages` that brought `Committed_AS` to `committed` (for a
    /// caller that keeps the counter elsewhere, e.g. in an atomic, as
    /// Linux's `vm_committed_as` is a per-CPU counter).
    pub fn allows(&self, committed: usize, pages: usize, cap_sys_admin: bool, mm_total_vm: usize) -> bool {
        let admin_reserve = Self::kb_to_pages(self.admin_reserve_kbytes);
        match self.policy {
            OvercommitPolicy::Always => true,
            OvercommitPolicy::Guess => {
                let m = &self.meminfo;
                let mut free = m.free + m.file_pages.saturating_sub(m.shmem_pages);
                free += m.free_swap + m.slab_reclaimable;
                free = free.saturating_sub(m.totalreserve);
                if !cap_sys_admin {
                    free = free.saturating_sub(admin_reserve);
                }
                free > pages
            }
            OvercommitPolicy::Never => {
                let mut allowed = self.commit_limit();
                if !cap_sys_admin {
                    allowed = allowed.saturating_sub(admin_reserve);
                }
                let user_reserve = Self::kb_to_pages(self.user_reserve_kbytes);
                allowed = allowed.saturating_sub((mm_total_vm / 32).min(user_reserve));
                committed <= allowed
            }
        }
    }

    /// `vm_unacct_memory()`.
    pub fn vm_unacct_memory(&mut self, pages: usize) {
        self.committed = self.committed.saturating_sub(pages);
    }
}

/// Where the address-space code charges and uncharges commitments: the
/// [`Overcommit`] state itself (host tests), or the kernel's, whose
/// counter is an atomic (`arch/aarch64/mm.rs`), so that the address
/// spaces of different processes share no lock for it (Linux:
/// `vm_committed_as` is a per-CPU counter).
pub trait VmAcct {
    /// `__vm_enough_memory()`.
    fn vm_enough_memory(&mut self, pages: usize, cap_sys_admin: bool, mm_total_vm: usize) -> Result<(), Errno>;
    /// `vm_unacct_memory()`.
    fn vm_unacct_memory(&mut self, pages: usize);
}

impl VmAcct for Overcommit {
    fn vm_enough_memory(&mut self, pages: usize, cap_sys_admin: bool, mm_total_vm: usize) -> Result<(), Errno> {
        Overcommit::vm_enough_memory(self, pages, cap_sys_admin, mm_total_vm)
    }
    fn vm_unacct_memory(&mut self, pages: usize) {
        Overcommit::vm_unacct_memory(self, pages)
    }
}

/// `OOM_SCORE_ADJ_MIN`: never kill.
pub const OOM_SCORE_ADJ_MIN: i32 = -1000;
/// `OOM_SCORE_ADJ_MAX`: kill first.
pub const OOM_SCORE_ADJ_MAX: i32 = 1000;

/// What the OOM killer needs to know about a process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OomTask {
    /// Process id.
    pub pid: u32,
    /// Resident pages (`get_mm_rss`).
    pub rss: usize,
    /// Swapped-out pages (`MM_SWAPENTS`).
    pub swapents: usize,
    /// Bytes of page tables (`mm_pgtables_bytes`).
    pub pgtables_bytes: usize,
    /// `signal->oom_score_adj`.
    pub oom_score_adj: i32,
    /// Kernel thread (no mm of its own).
    pub is_kthread: bool,
    /// Already chosen and dying (`tsk_is_oom_victim`).
    pub oom_victim: bool,
}

/// `oom_badness()`: pages the kill would free, plus `oom_score_adj` in
/// thousandths of `totalpages`; `None` for unkillable tasks.
pub fn oom_badness(t: &OomTask, totalpages: usize) -> Option<i64> {
    if t.pid == 1 || t.is_kthread || t.oom_score_adj == OOM_SCORE_ADJ_MIN {
        return None;
    }
    let mut points = (t.rss + t.swapents + t.pgtables_bytes / PAGE_SIZE) as i64;
    points += t.oom_score_adj as i64 * totalpages as i64 / 1000;
    Some(points.max(1))
}

/// What `select_bad_process()` decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OomChoice {
    /// Kill this pid (its badness).
    Kill(u32, i64),
    /// A victim is still exiting: wait for it instead of killing another.
    Wait(u32),
    /// Nothing killable (the kernel panics: "no killable processes").
    NoVictim,
}

/// `select_bad_process()`: the task with the highest badness.
pub fn select_bad_process(tasks: &[OomTask], totalpages: usize) -> OomChoice {
    let mut best: Option<(u32, i64)> = None;
    for t in tasks {
        if t.oom_victim && !t.is_kthread && t.pid != 1 {
            return OomChoice::Wait(t.pid);
        }
        let Some(points) = oom_badness(t, totalpages) else {
            continue;
        };
        if best.is_none_or(|(_, b)| points > b) {
            best = Some((t.pid, points));
        }
    }
    best.map_or(OomChoice::NoVictim, |(pid, p)| OomChoice::Kill(pid, p))
}

/// `/proc/<pid>/oom_score`: badness scaled to 0..=1000 of `totalpages`.
pub fn oom_score(t: &OomTask, totalpages: usize) -> i64 {
    match oom_badness(t, totalpages) {
        Some(p) if totalpages > 0 => (p * 1000 / totalpages as i64).clamp(0, 1000),
        _ => 0,
    }
}

/// Tasks sorted by decreasing badness (for a kernel log report).
pub fn dump_tasks(tasks: &[OomTask], totalpages: usize) -> Vec<(u32, Option<i64>)> {
    let mut v: Vec<_> = tasks.iter().map(|t| (t.pid, oom_badness(t, totalpages))).collect();
    v.sort_by_key(|e| core::cmp::Reverse(e.1));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(pid: u32, rss: usize, adj: i32) -> OomTask {
        OomTask { pid, rss, swapents: 0, pgtables_bytes: 0, oom_score_adj: adj, is_kthread: false, oom_victim: false }
    }

    fn meminfo() -> MemInfo {
        MemInfo { totalram: 1 << 18, free: 1 << 17, ..MemInfo::default() }
    }

    #[test]
    fn never_refuses_beyond_commit_limit() {
        let mut oc = Overcommit::new(meminfo());
        oc.policy = OvercommitPolicy::Never;
        // CommitLimit = 50% of 1 GiB = 131072 pages; minus 2048 admin reserve.
        assert_eq!(oc.commit_limit(), 1 << 17);
        let allowed = (1 << 17) - 2048;
        assert_eq!(oc.vm_enough_memory(allowed, false, 0), Ok(()));
        assert_eq!(oc.vm_enough_memory(1, false, 0), Err(Errno::ENOMEM));
        assert_eq!(oc.committed, allowed, "a refusal is unaccounted");
        assert_eq!(oc.vm_enough_memory(1, true, 0), Ok(()), "root may use the admin reserve");
        oc.vm_unacct_memory(1000);
        // The user reserve: min(total_vm / 32, 128 MiB) is kept back.
        assert_eq!(oc.vm_enough_memory(999, false, 32 * 1000), Err(Errno::ENOMEM));
        assert_eq!(oc.vm_enough_memory(999, false, 0), Ok(()));
    }

    #[test]
    fn guess_and_always() {
        let mut oc = Overcommit::new(meminfo());
        assert_eq!(oc.vm_enough_memory(1 << 16, false, 0), Ok(()));
        assert_eq!(oc.vm_enough_memory(1 << 17, false, 0), Err(Errno::ENOMEM));
        oc.meminfo.free_swap = 1 << 17;
        assert_eq!(oc.vm_enough_memory(1 << 17, false, 0), Ok(()));
        oc.policy = OvercommitPolicy::Always;
        assert_eq!(oc.vm_enough_memory(1 << 40, false, 0), Ok(()));
        assert!(oc.committed > 1 << 40);
    }

    #[test]
    fn victim_is_biggest_adjusted_and_never_init_or_kthread() {
        let total = 100_000;
        let mut init = task(1, 90_000, 0);
        let mut kthread = task(2, 80_000, 0);
        kthread.is_kthread = true;
        let big = task(10, 20_000, 0);
        let mut small_but_hated = task(11, 1_000, 500); // +50000
        let protected = task(12, 60_000, OOM_SCORE_ADJ_MIN);
        let tasks = [init.clone(), kthread.clone(), big.clone(), small_but_hated.clone(), protected];
        assert_eq!(select_bad_process(&tasks, total), OomChoice::Kill(11, 51_000));
        small_but_hated.oom_score_adj = -500;
        let mut with_tables = big.clone();
        with_tables.pgtables_bytes = 10 * PAGE_SIZE;
        assert_eq!(oom_badness(&with_tables, total), Some(20_010));
        assert_eq!(oom_badness(&small_but_hated, total), Some(1), "clamped to 1");
        let tasks = [init.clone(), big.clone(), small_but_hated];
        assert_eq!(select_bad_process(&tasks, total), OomChoice::Kill(10, 20_000));
        assert_eq!(oom_score(&big, total), 200);
        assert_eq!(select_bad_process(&[init.clone(), kthread], total), OomChoice::NoVictim);
        init.oom_victim = true; // init cannot be a victim, ignored
        let mut dying = task(20, 5, 0);
        dying.oom_victim = true;
        assert_eq!(select_bad_process(&[init, big, dying], total), OomChoice::Wait(20));
    }
}

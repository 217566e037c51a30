//! The guest kernel's system-call argument handling, as far as it is a pure
//! core (the dispatcher itself, `arch::aarch64::syscall`, is bare-metal
//! glue): what mmap, munmap, mprotect and brk do with any addresses,
//! lengths, protections and flags a program passes (`mm::mm_struct`),
//! page faults at any address (`mm::fault`), fork's copy of the address
//! space, nanosleep's timespec checks, and sched_setscheduler /
//! setpriority / sched_setaffinity arguments (`sched::core`). Nothing may
//! panic or loop; the address space stays well-formed (sorted, disjoint,
//! page-aligned VMAs inside user space, PTEs only inside VMAs with the
//! VMA's permissions, `total_vm` and the overcommit charge matching the
//! VMAs, page reference counts matching the PTEs).

use std::collections::BTreeMap;

use arbitrary::{Result, Unstructured};
use guest_kernel::mm::Errno;
use guest_kernel::mm::fault::{Access, handle_mm_fault};
use guest_kernel::mm::mm_struct::{
    MMAP_MIN_ADDR, MmConfig, MmStruct, PageOps, PageTable, Pte, PteProt, TASK_SIZE, map,
};
use guest_kernel::mm::oom::{MemInfo, Overcommit, OvercommitPolicy};
use guest_kernel::mm::page::{PAGE_SIZE, Pfn, align_down};
use guest_kernel::mm::vma::vm_flags::*;
use guest_kernel::sched::{CpuMask, SchedAttr, SchedPolicy, Scheduler, TaskId};
use guest_kernel::syscall::{ns_to_sleep_jiffies, timespec_to_ns};

const MAX_OPS: usize = 256;

/// A page table as a map from page address to entry.
#[derive(Clone, Default, Debug)]
struct FakePt(BTreeMap<usize, (Pfn, PteProt)>);

impl PageTable for FakePt {
    fn lookup(&self, va: usize) -> Option<Pte> {
        self.0.get(&va).map(|&(pfn, p)| Pte { pfn, writable: p.write })
    }
    fn map(&mut self, va: usize, pfn: Pfn, prot: PteProt) -> core::result::Result<(), Errno> {
        assert_eq!(va % PAGE_SIZE, 0, "unaligned map");
        assert!((MMAP_MIN_ADDR..TASK_SIZE).contains(&va), "map of {va:#x} outside user space");
        self.0.insert(va, (pfn, prot));
        Ok(())
    }
    fn unmap(&mut self, va: usize) -> Option<Pfn> {
        self.0.remove(&va).map(|e| e.0)
    }
    fn protect(&mut self, va: usize, prot: PteProt) {
        self.0.get_mut(&va).expect("protect of an unmapped page").1 = prot;
    }
    fn mapped(&self, start: usize, end: usize, max: usize) -> Vec<(usize, Pte)> {
        if start >= end {
            return Vec::new();
        }
        self.0.range(start..end).take(max).map(|(&va, &(pfn, p))| (va, Pte { pfn, writable: p.write })).collect()
    }
}

/// Page reference counts; allocation fails after a budget.
#[derive(Default, Debug)]
struct FakePages {
    next: Pfn,
    counts: BTreeMap<Pfn, u32>,
    budget: usize,
}

impl PageOps for FakePages {
    fn alloc_user_page(&mut self) -> Option<Pfn> {
        if self.budget == 0 {
            return None;
        }
        self.budget -= 1;
        self.next += 1;
        self.counts.insert(self.next, 1);
        Some(self.next)
    }
    fn copy_page(&mut self, dst: Pfn, src: Pfn) {
        assert!(self.counts.contains_key(&dst) && self.counts.contains_key(&src), "copy of a free page");
    }
    fn get_page(&mut self, pfn: Pfn) {
        *self.counts.get_mut(&pfn).expect("get_page of a free page") += 1;
    }
    fn put_page(&mut self, pfn: Pfn) {
        let c = self.counts.get_mut(&pfn).expect("put_page of a free page");
        *c -= 1;
        if *c == 0 {
            self.counts.remove(&pfn);
        }
    }
    fn page_count(&self, pfn: Pfn) -> u32 {
        self.counts.get(&pfn).copied().unwrap_or(0)
    }
}

struct Process {
    mm: MmStruct,
    pt: FakePt,
}

/// Input: the address-space configuration, then system calls and faults.
pub fn fuzz(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let _ = run(&mut u);
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let policy = *u.choose(&[OvercommitPolicy::Guess, OvercommitPolicy::Always, OvercommitPolicy::Never])?;
    let mut acct = Overcommit::new(MemInfo { totalram: 1 << 18, free: 1 << 18, ..MemInfo::default() });
    acct.policy = policy;
    let cfg = MmConfig {
        randomize: u.arbitrary()?,
        seed: u.arbitrary()?,
        cap_sys_admin: u.arbitrary()?,
        ..MmConfig::default()
    };
    let mut pages = FakePages { budget: 4096, ..FakePages::default() };
    let mut first = Process { mm: MmStruct::new(cfg), pt: FakePt::default() };
    let stack = u.int_in_range(0..=1usize << 24)?;
    let _ = first.mm.setup_stack(stack, &mut acct);
    first.mm.setup_brk(u.int_in_range(MMAP_MIN_ADDR..=1usize << 40)?);
    let mut procs = vec![first];
    let mut sched = Sched::new();
    check(&procs, &acct, &pages);
    for _ in 0..MAX_OPS {
        if u.is_empty() {
            break;
        }
        let p = u.choose_index(procs.len())?;
        match u.int_in_range(0u8..=11)? {
            0 | 1 => mmap(u, &mut procs[p], &mut pages, &mut acct)?,
            2 => munmap(u, &mut procs[p], &mut pages, &mut acct)?,
            3 => mprotect(u, &mut procs[p])?,
            4 => brk(u, &mut procs[p], &mut pages, &mut acct)?,
            5 | 6 => fault(u, &mut procs[p], &mut pages, &mut acct)?,
            7 if procs.len() < 3 => {
                let parent = &mut procs[p];
                let mut child_pt = FakePt::default();
                if let Ok(mm) = parent.mm.dup_mmap(&mut parent.pt, &mut child_pt, &mut pages, &mut acct) {
                    procs.push(Process { mm, pt: child_pt });
                }
            }
            7 => {
                let mut gone = procs.swap_remove(p);
                gone.mm.exit_mmap(&mut gone.pt, &mut pages, &mut acct);
                assert!(gone.pt.0.is_empty(), "exit_mmap left PTEs");
                if procs.is_empty() {
                    return Ok(());
                }
            }
            8 => timespec(u)?,
            _ => sched.op(u)?,
        }
        check(&procs, &acct, &pages);
    }
    for mut p in procs {
        p.mm.exit_mmap(&mut p.pt, &mut pages, &mut acct);
        assert!(p.pt.0.is_empty(), "exit_mmap left PTEs");
    }
    assert!(pages.counts.is_empty(), "pages leaked: {:?}", pages.counts);
    assert_eq!(acct.committed, 0, "commit charge left after every exit");
    Ok(())
}

/// An address or length as a program might pass one: small, near the
/// edges of user space, page-aligned or not, or anything.
fn size_arg(u: &mut Unstructured<'_>) -> Result<usize> {
    Ok(match u.int_in_range(0u8..=9)? {
        0 => u.arbitrary()?,
        1 => {
            *u.choose(&[0, 1, PAGE_SIZE - 1, PAGE_SIZE, PAGE_SIZE + 1, TASK_SIZE, TASK_SIZE - PAGE_SIZE, usize::MAX])?
        }
        2 => usize::MAX - u.int_in_range(0..=2 * PAGE_SIZE)?,
        3 => TASK_SIZE - u.int_in_range(0..=16)? * PAGE_SIZE,
        4 => u.int_in_range(0..=1usize << 40)?,
        _ => u.int_in_range(0..=64)? * PAGE_SIZE + if u.ratio(1u8, 8)? { 1 } else { 0 },
    })
}

fn addr_arg(u: &mut Unstructured<'_>, mm: &MmStruct) -> Result<usize> {
    Ok(match u.int_in_range(0u8..=7)? {
        0..=2 => {
            // Near an existing VMA's edges.
            let vmas: Vec<_> = mm.vmas.iter().copied().collect();
            if vmas.is_empty() {
                return size_arg(u);
            }
            let v = vmas[u.choose_index(vmas.len())?];
            let delta = u.int_in_range(0..=8)? * PAGE_SIZE;
            match u.int_in_range(0u8..=3)? {
                0 => v.start.wrapping_add(delta),
                1 => v.start.wrapping_sub(delta),
                2 => v.end.wrapping_add(delta),
                _ => v.end.wrapping_sub(delta),
            }
        }
        3 => mm.brk,
        _ => size_arg(u)?,
    })
}

fn mmap(u: &mut Unstructured<'_>, p: &mut Process, pages: &mut FakePages, acct: &mut Overcommit) -> Result<()> {
    let addr = addr_arg(u, &p.mm)?;
    let len = size_arg(u)?;
    let prot = if u.ratio(7u8, 8)? { u.int_in_range(0..=7)? } else { u.arbitrary()? };
    let flags = if u.ratio(7u8, 8)? {
        let mut f =
            map::MAP_ANONYMOUS | *u.choose(&[map::MAP_PRIVATE, map::MAP_SHARED, map::MAP_SHARED_VALIDATE, 0])?;
        for extra in [map::MAP_FIXED, map::MAP_FIXED_NOREPLACE, map::MAP_GROWSDOWN, map::MAP_NORESERVE] {
            if u.ratio(1u8, 4)? {
                f |= extra;
            }
        }
        f
    } else {
        u.arbitrary()?
    };
    // sys_mmap refuses file mappings before the core sees them.
    if flags & map::MAP_ANONYMOUS == 0 {
        return Ok(());
    }
    if let Ok(at) = p.mm.mmap(&mut p.pt, pages, acct, addr, len, prot, flags, None) {
        let len = len.next_multiple_of(PAGE_SIZE);
        assert_eq!(at % PAGE_SIZE, 0);
        assert!(at >= MMAP_MIN_ADDR && at + len <= TASK_SIZE, "mmap at {at:#x}+{len:#x}");
        if flags & (map::MAP_FIXED | map::MAP_FIXED_NOREPLACE) != 0 {
            assert_eq!(at, addr, "MAP_FIXED moved the mapping");
        }
        assert!(covered(&p.mm, at, at + len), "mmap({addr:#x}, {len:#x}) = {at:#x} is not covered by VMAs");
        assert!(p.pt.mapped(at, at + len, 1).is_empty(), "a new mapping has old pages");
    }
    Ok(())
}

fn covered(mm: &MmStruct, start: usize, end: usize) -> bool {
    let mut at = start;
    for v in mm.vmas.iter() {
        if v.start <= at && at < v.end {
            at = v.end;
        }
    }
    at >= end
}

fn snapshot(p: &Process) -> (Vec<guest_kernel::mm::vma::Vma>, usize, usize) {
    (p.mm.vmas.iter().copied().collect(), p.mm.total_vm, p.pt.0.len())
}

fn munmap(u: &mut Unstructured<'_>, p: &mut Process, pages: &mut FakePages, acct: &mut Overcommit) -> Result<()> {
    let start = addr_arg(u, &p.mm)?;
    let len = size_arg(u)?;
    let before = snapshot(p);
    match p.mm.munmap(&mut p.pt, pages, acct, start, len) {
        Ok(()) => {
            let end = start + len.next_multiple_of(PAGE_SIZE);
            assert!(p.mm.vmas.find_vma_intersection(start, end).is_none(), "munmap left a VMA");
            assert!(p.pt.mapped(start, end, 1).is_empty(), "munmap left pages");
        }
        Err(_) => assert_eq!(snapshot(p), before, "a failed munmap changed the address space"),
    }
    Ok(())
}

fn mprotect(u: &mut Unstructured<'_>, p: &mut Process) -> Result<()> {
    let start = addr_arg(u, &p.mm)?;
    let len = size_arg(u)?;
    let prot = if u.ratio(7u8, 8)? { u.int_in_range(0..=7)? } else { u.arbitrary()? };
    let before = snapshot(p);
    let ptes = p.pt.0.clone();
    match p.mm.mprotect(&mut p.pt, start, len, prot) {
        Ok(()) if len > 0 => {
            let end = start.checked_add(len.next_multiple_of(PAGE_SIZE)).expect("accepted range wraps");
            assert!(covered(&p.mm, start, end), "mprotect succeeded on an unmapped range");
            for v in p.mm.vmas.iter().filter(|v| v.start < end && start < v.end) {
                assert_eq!(v.flags & VM_ACCESS_FLAGS, u64::from(prot) & VM_ACCESS_FLAGS, "mprotect: VMA {v:?}");
            }
        }
        Ok(()) => assert_eq!(snapshot(p), before),
        Err(_) => {
            assert_eq!(snapshot(p), before, "a failed mprotect changed the VMAs");
            assert_eq!(p.pt.0, ptes, "a failed mprotect changed the PTEs");
        }
    }
    Ok(())
}

fn brk(u: &mut Unstructured<'_>, p: &mut Process, pages: &mut FakePages, acct: &mut Overcommit) -> Result<()> {
    let old = p.mm.brk;
    let new = match u.int_in_range(0u8..=3)? {
        0 => old.wrapping_add(u.int_in_range(0..=64)? * PAGE_SIZE + u.int_in_range(0..=PAGE_SIZE)?),
        1 => old.wrapping_sub(u.int_in_range(0..=64)? * PAGE_SIZE),
        _ => size_arg(u)?,
    };
    let got = p.mm.brk(&mut p.pt, pages, acct, new);
    assert_eq!(got, p.mm.brk);
    assert!(got == old || got == new, "brk({new:#x}) from {old:#x} returned {got:#x}");
    assert!(got >= p.mm.start_brk && got <= TASK_SIZE, "break {got:#x} outside [start_brk, TASK_SIZE)");
    Ok(())
}

fn fault(u: &mut Unstructured<'_>, p: &mut Process, pages: &mut FakePages, acct: &mut Overcommit) -> Result<()> {
    let addr = addr_arg(u, &p.mm)?.wrapping_add(u.int_in_range(0..=PAGE_SIZE - 1)?);
    let access = *u.choose(&[Access::Read, Access::Write, Access::Exec])?;
    if handle_mm_fault(&mut p.mm, &mut p.pt, pages, acct, addr, access).is_ok() {
        let pte = p.pt.0.get(&align_down(addr, PAGE_SIZE)).expect("a handled fault maps the page");
        match access {
            Access::Read => assert!(pte.1.read, "readable after a read fault"),
            Access::Write => assert!(pte.1.write, "writable after a write fault"),
            Access::Exec => assert!(pte.1.exec, "executable after an exec fault"),
        }
    }
    Ok(())
}

/// The address space invariants, over every process.
fn check(procs: &[Process], acct: &Overcommit, pages: &FakePages) {
    let mut charged = 0;
    let mut refs: BTreeMap<Pfn, u32> = BTreeMap::new();
    for p in procs {
        let mut last_end = 0;
        let mut total = 0;
        for v in p.mm.vmas.iter() {
            assert!(v.start < v.end, "empty VMA {v:?}");
            assert!(v.start % PAGE_SIZE == 0 && v.end % PAGE_SIZE == 0, "unaligned VMA {v:?}");
            assert!(v.start >= MMAP_MIN_ADDR && v.end <= TASK_SIZE, "VMA {v:?} outside user space");
            assert!(v.start >= last_end, "VMAs overlap or are unsorted at {v:?}");
            last_end = v.end;
            total += v.pages();
            if v.flags & VM_ACCOUNT != 0 {
                charged += v.pages();
            }
        }
        assert_eq!(p.mm.total_vm, total, "total_vm does not match the VMAs");
        for (&va, &(pfn, prot)) in &p.pt.0 {
            let v =
                p.mm.find_vma(va).filter(|v| v.start <= va).unwrap_or_else(|| panic!("PTE at {va:#x} outside VMAs"));
            if prot.write {
                assert!(v.flags & VM_WRITE != 0, "writable PTE at {va:#x} in {v:?}");
            }
            if prot.exec {
                assert!(v.flags & VM_EXEC != 0, "executable PTE at {va:#x} in {v:?}");
            }
            *refs.entry(pfn).or_default() += 1;
        }
    }
    assert_eq!(acct.committed, charged, "commit charge does not match the accounted VMAs");
    assert_eq!(refs, pages.counts, "page reference counts do not match the PTEs");
}

fn timespec(u: &mut Unstructured<'_>) -> Result<()> {
    let (sec, nsec): (i64, i64) = (u.arbitrary()?, u.arbitrary()?);
    let hz = *u.choose(&[100u32, 250, 300, 1000])?;
    match timespec_to_ns(sec, nsec) {
        Some(ns) => {
            assert!(sec >= 0 && (0..1_000_000_000).contains(&nsec));
            let j = ns_to_sleep_jiffies(ns, hz);
            assert!(j >= 1, "a sleep of {ns} ns takes no tick");
            assert!(u128::from(j - 1) * 1_000_000_000 >= u128::from(ns) * u128::from(hz) || j == u64::MAX);
        }
        None => assert!(sec < 0 || !(0..1_000_000_000).contains(&nsec), "timespec {sec}.{nsec} refused"),
    }
    Ok(())
}

/// Two CPUs, their idle tasks, and three tasks the calls act on.
struct Sched {
    s: Scheduler,
    now: u64,
}

const TASKS: [TaskId; 3] = [TaskId(1), TaskId(2), TaskId(3)];

impl Sched {
    fn new() -> Self {
        let mut s = Scheduler::new(1000, &[TaskId(1000), TaskId(1001)]);
        s.sched_fork(TASKS[0], TaskId(1000), 0).expect("fork from idle");
        s.wake_up_new_task(TASKS[0], 0);
        for &t in &TASKS[1..] {
            s.sched_fork(t, TASKS[0], 0).expect("fork");
            s.wake_up_new_task(t, 0);
        }
        Sched { s, now: 0 }
    }

    fn op(&mut self, u: &mut Unstructured<'_>) -> Result<()> {
        self.now += u.int_in_range(0..=10_000_000)?;
        let now = self.now;
        let id = *u.choose(&TASKS)?;
        match u.int_in_range(0u8..=5)? {
            0 | 1 => {
                // sched_setscheduler's policies; the priority as the program passed it.
                let policy = *u.choose(&[
                    SchedPolicy::Normal,
                    SchedPolicy::Fifo,
                    SchedPolicy::Rr,
                    SchedPolicy::Batch,
                    SchedPolicy::Idle,
                ])?;
                let prio: u32 = if u.arbitrary()? { u.int_in_range(0..=100)? } else { u.arbitrary()? };
                let nice: i32 = if u.arbitrary()? { u.int_in_range(-21..=20)? } else { u.arbitrary()? };
                let rt = matches!(policy, SchedPolicy::Fifo | SchedPolicy::Rr);
                let attr =
                    if rt { SchedAttr::rt(policy, prio) } else { SchedAttr { policy, ..SchedAttr::normal(nice) } };
                let valid = if rt { (1..=99).contains(&prio) } else { (-20..=19).contains(&nice) };
                let result = self.s.sched_setattr(id, attr, now);
                assert_eq!(result.is_ok(), valid, "sched_setattr({attr:?}) = {result:?}");
                if result.is_ok() {
                    let t = self.s.task(id).expect("task");
                    assert_eq!(t.policy, policy);
                    if rt {
                        assert_eq!(t.rt_priority, prio);
                    } else {
                        assert_eq!(t.nice(), nice);
                    }
                }
            }
            2 => {
                let nice: i32 = u.arbitrary()?;
                assert!(self.s.set_user_nice(id, nice, now).is_ok(), "setpriority clamps, so it must succeed");
            }
            3 => {
                let mask: u64 = u.arbitrary()?;
                let result = self.s.set_cpus_allowed(id, CpuMask(mask), now);
                assert_eq!(result.is_ok(), mask & 3 != 0, "sched_setaffinity({mask:#x})");
            }
            4 => {
                let cpu = u.int_in_range(0..=1)?;
                self.s.scheduler_tick(cpu, now);
            }
            _ => {
                let cpu = u.int_in_range(0..=1)?;
                let next = self.s.schedule(cpu, now);
                let t = self.s.task(next).expect("scheduled task exists");
                assert!(t.cpus_allowed.contains(cpu), "task {next:?} runs on a CPU it may not use");
            }
        }
        Ok(())
    }
}

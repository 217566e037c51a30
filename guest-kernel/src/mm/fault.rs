//! Page-fault handling for user addresses (`do_page_fault` →
//! `handle_mm_fault`).
//!
//! LKD ch. 15 and ch. 3 (copy-on-write); 《Linux内核深度解析》ch. 3, page-fault
//! handling (页错误异常处理): find the VMA (growing a stack VMA downwards if
//! the address is just below it), check the access against the VMA, then
//! either map a zeroed page (demand paging of anonymous memory) or break
//! copy-on-write on a write to a read-only private page — reusing the page
//! when this mapping is its only user, copying it otherwise. Anything else
//! is a SIGSEGV with SEGV_MAPERR (no mapping) or SEGV_ACCERR (not allowed).

use super::Errno;
use super::mm_struct::{MmStruct, PageOps, PageTable, PteProt};
use super::oom::VmAcct;
use super::page::{PAGE_SIZE, align_down};
use super::vma::vm_flags::*;

/// What the faulting instruction tried to do (from ESR_EL1.WnR / the EC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Data read.
    Read,
    /// Data write.
    Write,
    /// Instruction fetch.
    Exec,
}

/// `si_code` of the SIGSEGV.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegvCode {
    /// No mapping at the address.
    MapErr = 1,
    /// Mapping exists but forbids the access.
    AccErr = 2,
}

/// Why a fault could not be resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultError {
    /// Deliver SIGSEGV to the task.
    Segv(SegvCode),
    /// No memory for the page (`VM_FAULT_OOM`): the OOM killer runs.
    Oom,
}

/// What the fault handler did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultAction {
    /// `do_anonymous_page`: a new zeroed page was mapped.
    DemandZero,
    /// `wp_page_copy`: the shared page was copied for this writer.
    CowCopy,
    /// `wp_page_reuse`: sole user of the page, made writable in place.
    CowReuse,
    /// A write to a shared mapping's read-only PTE: made writable.
    SharedWrite,
    /// The PTE already allowed the access (another CPU fixed it first).
    Spurious,
}

/// `handle_mm_fault()` with the VMA checks of arm64's `__do_page_fault()`.
/// A stack expansion shows up as the grown VMA in `mm.vmas`. Needs the
/// address space for writing (`mmap_lock` held for writing) only when the
/// stack grows ([`needs_stack_growth`]); otherwise
/// [`handle_mm_fault_read_locked`] does the same with it held for reading.
pub fn handle_mm_fault<T: PageTable, P: PageOps>(
    mm: &mut MmStruct,
    pt: &mut T,
    pages: &mut P,
    acct: &mut impl VmAcct,
    addr: usize,
    access: Access,
) -> Result<FaultAction, FaultError> {
    if needs_stack_growth(mm, addr) {
        let vma = *mm.find_vma(addr).ok_or(FaultError::Segv(SegvCode::MapErr))?;
        mm.expand_stack(acct, vma.start, addr).map_err(|_| FaultError::Segv(SegvCode::MapErr))?;
    }
    handle_mm_fault_read_locked(mm, pt, pages, addr, access)
}

/// Whether a fault at `addr` lies just below a stack VMA that must grow
/// to cover it (`expand_stack`, which changes the VMA tree).
pub fn needs_stack_growth(mm: &MmStruct, addr: usize) -> bool {
    mm.find_vma(addr).is_some_and(|v| v.start > addr && v.flags & VM_GROWSDOWN != 0)
}

/// [`handle_mm_fault`] for a fault that changes no VMA (the caller holds
/// `mmap_lock` for reading and the page-table lock): only the PTE and the
/// page are touched. A fault below a stack that would need growing is
/// SEGV_MAPERR here; see [`needs_stack_growth`].
pub fn handle_mm_fault_read_locked<T: PageTable, P: PageOps>(
    mm: &MmStruct,
    pt: &mut T,
    pages: &mut P,
    addr: usize,
    access: Access,
) -> Result<FaultAction, FaultError> {
    let vma = *mm.find_vma(addr).ok_or(FaultError::Segv(SegvCode::MapErr))?;
    if vma.start > addr {
        return Err(FaultError::Segv(SegvCode::MapErr));
    }
    let needed = match access {
        Access::Read => VM_READ | VM_WRITE | VM_EXEC,
        Access::Write => VM_WRITE,
        Access::Exec => VM_EXEC,
    };
    if vma.flags & needed == 0 {
        return Err(FaultError::Segv(SegvCode::AccErr));
    }
    let va = align_down(addr, PAGE_SIZE);
    let shared = vma.flags & VM_SHARED != 0;
    let Some(pte) = pt.lookup(va) else {
        // do_anonymous_page(): demand-zero.
        let pfn = pages.alloc_user_page().ok_or(FaultError::Oom)?;
        let prot = PteProt::from_vm_flags(vma.flags, true);
        if let Err(e) = pt.map(va, pfn, prot) {
            pages.put_page(pfn);
            debug_assert_eq!(e, Errno::ENOMEM);
            return Err(FaultError::Oom);
        }
        return Ok(FaultAction::DemandZero);
    };
    if access != Access::Write || pte.writable {
        return Ok(FaultAction::Spurious);
    }
    let writable = PteProt::from_vm_flags(vma.flags, true);
    if shared {
        pt.protect(va, writable);
        return Ok(FaultAction::SharedWrite);
    }
    // do_wp_page() on a private mapping.
    if pages.page_count(pte.pfn) == 1 {
        pt.protect(va, writable);
        return Ok(FaultAction::CowReuse);
    }
    // wp_page_copy(): every byte of the new page is copied, so it need
    // not be zeroed first.
    let new = pages.alloc_user_page_for_copy().ok_or(FaultError::Oom)?;
    pages.copy_page(new, pte.pfn);
    if pt.replace(va, new, writable).is_err() {
        pages.put_page(new);
        return Err(FaultError::Oom);
    }
    pages.put_page(pte.pfn);
    Ok(FaultAction::CowCopy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mm::mm_struct::map::*;
    use crate::mm::mm_struct::prot::*;
    use crate::mm::mm_struct::tests::{FakePages, FakePt, acct, norand};
    use crate::mm::mm_struct::{DEFAULT_STACK_RLIMIT, STACK_GUARD_GAP, UserPages};
    use crate::mm::zone::tests::node;

    const RW: u32 = PROT_READ | PROT_WRITE;
    const ANON: u32 = MAP_PRIVATE | MAP_ANONYMOUS;

    #[test]
    fn demand_zero_then_spurious() {
        let (mut pt, mut pg, mut oc) = (FakePt::default(), FakePages::default(), acct());
        let mut mm = MmStruct::new(norand());
        let a = mm.mmap(&mut pt, &mut pg, &mut oc, 0, 2 * PAGE_SIZE, RW, ANON, None).unwrap();
        let r = handle_mm_fault(&mut mm, &mut pt, &mut pg, &mut oc, a + 8, Access::Write);
        assert_eq!(r, Ok(FaultAction::DemandZero));
        assert!(pt.lookup(a).unwrap().writable);
        let r = handle_mm_fault(&mut mm, &mut pt, &mut pg, &mut oc, a + 16, Access::Read);
        assert_eq!(r, Ok(FaultAction::Spurious));
        pg.fail = true;
        let r = handle_mm_fault(&mut mm, &mut pt, &mut pg, &mut oc, a + PAGE_SIZE, Access::Read);
        assert_eq!(r, Err(FaultError::Oom));
    }

    #[test]
    fn segv_kinds() {
        let (mut pt, mut pg, mut oc) = (FakePt::default(), FakePages::default(), acct());
        let mut mm = MmStruct::new(norand());
        let ro = mm.mmap(&mut pt, &mut pg, &mut oc, 0, PAGE_SIZE, PROT_READ, ANON, None).unwrap();
        let none = mm.mmap(&mut pt, &mut pg, &mut oc, 0, PAGE_SIZE, PROT_NONE, ANON, None).unwrap();
        let mut f = |addr, acc| handle_mm_fault(&mut mm, &mut pt, &mut pg, &mut oc, addr, acc);
        assert_eq!(f(0x1234, Access::Read), Err(FaultError::Segv(SegvCode::MapErr)), "below a non-stack VMA");
        assert_eq!(f(usize::MAX - 5, Access::Read), Err(FaultError::Segv(SegvCode::MapErr)), "above all VMAs");
        assert_eq!(f(ro, Access::Write), Err(FaultError::Segv(SegvCode::AccErr)));
        assert_eq!(f(ro, Access::Exec), Err(FaultError::Segv(SegvCode::AccErr)));
        assert_eq!(f(none, Access::Read), Err(FaultError::Segv(SegvCode::AccErr)));
        assert_eq!(f(ro, Access::Read), Ok(FaultAction::DemandZero));
    }

    #[test]
    fn cow_copy_when_shared_reuse_when_alone_with_real_refcounts() {
        let mut pa = node(0, 4096, 1 << 20, &[(0, 4096)]);
        let mut oc = acct();
        let (mut pt, mut child_pt) = (FakePt::default(), FakePt::default());
        let mut mm = MmStruct::new(norand());
        let a = {
            let mut pg = UserPages { pa: &mut pa, cpu: 0 };
            let a = mm.mmap(&mut pt, &mut pg, &mut oc, 0, PAGE_SIZE, RW, ANON, None).unwrap();
            handle_mm_fault(&mut mm, &mut pt, &mut pg, &mut oc, a, Access::Write).unwrap();
            a
        };
        let orig = pt.lookup(a).unwrap().pfn;
        let free_before = pa.nr_free_pages();
        let mut pg = UserPages { pa: &mut pa, cpu: 0 };
        let mut child = mm.dup_mmap(&mut pt, &mut child_pt, &mut pg, &mut oc).unwrap();
        assert_eq!(pg.page_count(orig), 2);
        // Child writes: refcount 2 -> copy.
        let r = handle_mm_fault(&mut child, &mut child_pt, &mut pg, &mut oc, a + 4, Access::Write);
        assert_eq!(r, Ok(FaultAction::CowCopy));
        let copy = child_pt.lookup(a).unwrap();
        assert!(copy.writable && copy.pfn != orig);
        assert_eq!(pg.page_count(orig), 1);
        assert_eq!(*pg.pa.mem.copies.borrow(), [(copy.pfn, orig)]);
        // Parent writes: now the only user -> reuse in place.
        let r = handle_mm_fault(&mut mm, &mut pt, &mut pg, &mut oc, a, Access::Write);
        assert_eq!(r, Ok(FaultAction::CowReuse));
        assert_eq!(pt.lookup(a).unwrap().pfn, orig);
        assert_eq!(pa.nr_free_pages(), free_before - 1);
        // Exit of both gives every page back.
        let mut pg = UserPages { pa: &mut pa, cpu: 0 };
        child.exit_mmap(&mut child_pt, &mut pg, &mut oc);
        mm.exit_mmap(&mut pt, &mut pg, &mut oc);
        assert_eq!(pa.nr_free_pages(), free_before + 1);
        assert_eq!(oc.committed, 0);
    }

    #[test]
    fn shared_mapping_write_after_fork_stays_shared() {
        let (mut pt, mut pg, mut oc) = (FakePt::default(), FakePages::default(), acct());
        let mut mm = MmStruct::new(norand());
        let s = mm.mmap(&mut pt, &mut pg, &mut oc, 0, PAGE_SIZE, RW, MAP_SHARED | MAP_ANONYMOUS, None).unwrap();
        handle_mm_fault(&mut mm, &mut pt, &mut pg, &mut oc, s, Access::Read).unwrap();
        mm.mprotect(&mut pt, s, PAGE_SIZE, PROT_READ).unwrap();
        mm.mprotect(&mut pt, s, PAGE_SIZE, RW).unwrap();
        pt.protect(s, PteProt { read: true, write: false, exec: false });
        let r = handle_mm_fault(&mut mm, &mut pt, &mut pg, &mut oc, s, Access::Write);
        assert_eq!(r, Ok(FaultAction::SharedWrite));
        assert!(pg.copies.is_empty());
    }

    #[test]
    fn stack_grows_within_rlimit_and_guard_gap() {
        let (mut pt, mut pg, mut oc) = (FakePt::default(), FakePages::default(), acct());
        let mut mm = MmStruct::new(norand());
        let bottom = mm.setup_stack(4 * PAGE_SIZE, &mut oc).unwrap();
        let below = bottom - 10 * PAGE_SIZE + 24;
        let r = handle_mm_fault(&mut mm, &mut pt, &mut pg, &mut oc, below, Access::Write);
        assert_eq!(r, Ok(FaultAction::DemandZero));
        let v = *mm.find_vma(below).unwrap();
        assert_eq!(v.start, align_down(below, PAGE_SIZE));
        assert_eq!(v.end, mm.stack_top);
        assert_eq!(oc.committed, 14);
        // Beyond RLIMIT_STACK: SIGSEGV.
        let far = mm.stack_top - DEFAULT_STACK_RLIMIT - PAGE_SIZE;
        let r = handle_mm_fault(&mut mm, &mut pt, &mut pg, &mut oc, far, Access::Write);
        assert_eq!(r, Err(FaultError::Segv(SegvCode::MapErr)));
        // Another mapping within the guard gap below blocks growth.
        let v_start = mm.find_vma(below).unwrap().start;
        let blocker = v_start - STACK_GUARD_GAP - 4 * PAGE_SIZE;
        mm.mmap(&mut pt, &mut pg, &mut oc, blocker, PAGE_SIZE, RW, ANON | MAP_FIXED, None).unwrap();
        let r = handle_mm_fault(&mut mm, &mut pt, &mut pg, &mut oc, v_start - 4 * PAGE_SIZE, Access::Read);
        assert_eq!(r, Err(FaultError::Segv(SegvCode::MapErr)));
        // ... and get_unmapped_area keeps the gap free too.
        let placed = mm.get_unmapped_area(v_start - PAGE_SIZE, PAGE_SIZE).unwrap();
        assert!(placed + PAGE_SIZE + STACK_GUARD_GAP <= v_start || placed > mm.stack_top);
    }

    #[test]
    fn the_read_locked_fault_leaves_stack_growth_to_the_writer() {
        let (mut pt, mut pg, mut oc) = (FakePt::default(), FakePages::default(), acct());
        let mut mm = MmStruct::new(norand());
        let bottom = mm.setup_stack(4 * PAGE_SIZE, &mut oc).unwrap();
        let below = bottom - 2 * PAGE_SIZE;
        assert!(needs_stack_growth(&mm, below));
        assert!(!needs_stack_growth(&mm, bottom), "inside the stack VMA");
        // With mmap_lock held for reading, no VMA changes: SEGV_MAPERR and
        // the VMA tree untouched, so the caller retries as a writer.
        let r = handle_mm_fault_read_locked(&mm, &mut pt, &mut pg, below, Access::Write);
        assert_eq!(r, Err(FaultError::Segv(SegvCode::MapErr)));
        assert_eq!(mm.find_vma(below).unwrap().start, bottom);
        assert_eq!(
            handle_mm_fault_read_locked(&mm, &mut pt, &mut pg, bottom, Access::Write),
            Ok(FaultAction::DemandZero)
        );
        // The writer grows it.
        let r = handle_mm_fault(&mut mm, &mut pt, &mut pg, &mut oc, below, Access::Write);
        assert_eq!(r, Ok(FaultAction::DemandZero));
        assert!(!needs_stack_growth(&mm, below));
    }
}

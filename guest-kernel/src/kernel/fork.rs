//! Process creation (LKD ch. 3, "Process Creation"; Linux kernel/fork.c):
//! `clone` for the current task, and an address space's lifetime
//! (`mmput`, `mm_release`).

use alloc::sync::Arc;

use super::{Kernel, lock};
use crate::arch::aarch64::cpu::smp_processor_id;
use crate::arch::aarch64::irq::now_ns;
use crate::arch::aarch64::mm::{GlobalAcct, Mm, current_mm};
use crate::arch::aarch64::pgtable::UserPageTable;
use crate::arch::aarch64::process::{Thread, copy_thread, current};
use crate::arch::aarch64::trap::TrapFrame;
use crate::arch::aarch64::uaccess::put_user_i32;
use crate::kernel::fault::LockedPages;
use crate::kernel::sched::schedule_locked;
use crate::mm::Errno;
use crate::mm::mm_struct::{MmStruct, PageOps, PageTable, TASK_SIZE};
use crate::sched::TaskState;
use crate::task::task_struct::MmHandle;

/// `mmput`: drops one user of the address space `h`. The last one takes
/// it out of the table and gets it back, to unmap everything
/// ([`Mm::exit_mmap`]) once the kernel lock is released (`exit_mmap`
/// takes `mmap_lock`, which may sleep).
#[must_use = "the last user must call exit_mmap"]
pub fn mmput(k: &mut Kernel, h: MmHandle) -> Option<Arc<Mm>> {
    let m = k.mms.get(&h.0)?;
    if m.put_user() { k.mms.remove(&h.0) } else { None }
}

/// Installs a new address space under handle `h`, with one user.
pub fn mm_install(k: &mut Kernel, h: MmHandle, mm: MmStruct, pt: UserPageTable) -> Arc<Mm> {
    let m = Mm::new(h.0, mm, pt);
    k.mms.insert(h.0, Arc::clone(&m));
    m
}

/// A fresh `MmConfig` (randomization on unless `norandmaps`).
pub fn mm_config(k: &mut Kernel) -> crate::mm::mm_struct::MmConfig {
    k.seed = k.seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407) ^ now_ns();
    crate::mm::mm_struct::MmConfig { randomize: k.randomize, seed: k.seed, ..Default::default() }
}

/// `clone(flags, newsp, parent_tid, tls, child_tid)`: the arm64 argument
/// order (CONFIG_CLONE_BACKWARDS: tls before child_tid).
#[derive(Clone, Copy, Debug)]
pub struct CloneArgs {
    pub flags: u64,
    pub newsp: u64,
    pub parent_tid: usize,
    pub tls: u64,
    pub child_tid: usize,
}

/// `clone` for the current task (`kernel_clone` + `copy_thread`): the child
/// gets a copy of our user frame (x0 = 0, sp = `newsp` if given), our mm
/// (shared with CLONE_VM, a COW copy otherwise) and our TPIDR_EL0, or
/// `tls` with CLONE_SETTLS. CLONE_PARENT_SETTID stores the tid at
/// `parent_tid` before the child can run; CLONE_CHILD_SETTID has the
/// child store it at `child_tid` first thing (`schedule_tail`);
/// CLONE_CHILD_CLEARTID makes `child_tid` its `clear_child_tid`. Faults on
/// those addresses are ignored, as in Linux. Returns the child's pid.
pub fn do_clone(frame: &TrapFrame, args: CloneArgs) -> Result<i32, Errno> {
    use crate::task::fork::{
        CLONE_CHILD_CLEARTID, CLONE_CHILD_SETTID, CLONE_PARENT_SETTID, CLONE_SETTLS, CLONE_VFORK, CLONE_VM,
    };
    let CloneArgs { flags, newsp, parent_tid, tls, child_tid } = args;
    // dup_mmap first, so a failure leaves nothing to undo; with the
    // parent's mmap_lock for writing and its page-table lock (its PTEs
    // become copy-on-write), not the kernel lock: the child's address
    // space is nobody else's yet.
    let new_mm = match current_mm() {
        Some(parent) if flags & CLONE_VM == 0 => {
            let mut child_pt = UserPageTable::new()?;
            let dup = {
                let vmas = parent.mmap_lock.write();
                let mut pt = parent.page_table_lock.lock_irqsave();
                vmas.dup_mmap(&mut *pt, &mut child_pt, &mut LockedPages, &mut GlobalAcct)
            };
            match dup {
                Ok(mm) => Some((mm, child_pt)),
                Err(e) => {
                    // Unmap what was copied before the failure.
                    crate::mm::mm_struct::for_each_mapped(&mut child_pt, 0, TASK_SIZE, |pt, va, pte| {
                        pt.unmap(va);
                        LockedPages.put_page(pte.pfn);
                    });
                    child_pt.destroy();
                    return Err(e);
                }
            }
        }
        _ => None,
    };
    let mut k = lock();
    let cpu = smp_processor_id();
    let me = k.sched.current(cpu);
    let t = now_ns();
    let Some(mut thread) = Thread::new_kernel_stack() else {
        if let Some((mut mm, mut pt)) = new_mm {
            mm.exit_mmap(&mut pt, &mut LockedPages, &mut GlobalAcct);
            pt.destroy();
        }
        return Err(Errno::ENOMEM);
    };
    let k2 = &mut *k;
    let child = match k2.tasks.copy_process(&mut k2.sched, me, flags, t) {
        Ok(c) => c,
        Err(e) => {
            if let Some((mut mm, mut pt)) = new_mm {
                mm.exit_mmap(&mut pt, &mut LockedPages, &mut GlobalAcct);
                pt.destroy();
            }
            return Err(match e {
                crate::task::Errno::EAGAIN => Errno::EAGAIN,
                crate::task::Errno::ENOMEM => Errno::ENOMEM,
                crate::task::Errno::EINVAL => Errno::EINVAL,
                _ => Errno::EAGAIN,
            });
        }
    };
    match (new_mm, k.tasks.get(child).and_then(|t| t.mm)) {
        (Some((mm, pt)), Some(h)) => drop(mm_install(&mut k, h, mm, pt)),
        (None, Some(h)) => {
            if let Some(m) = k.mms.get(&h.0) {
                m.mmget();
            }
        }
        _ => {}
    }
    super::fs::copy_files(&mut k, me, child, flags);
    let pid = k.tasks.get(child).map_or(0, |t| t.pid);
    copy_thread(
        &mut thread,
        frame,
        newsp,
        (flags & CLONE_SETTLS != 0).then_some(tls),
        (flags & CLONE_CHILD_SETTID != 0).then_some((child_tid, pid)),
    );
    k.threads.insert(child, thread);
    let vfork = flags & CLONE_VFORK != 0;
    if let Some(c) = k.tasks.get_mut(child) {
        if vfork {
            c.vfork_done = Some(me);
        }
        if flags & CLONE_CHILD_CLEARTID != 0 {
            c.clear_child_tid = child_tid;
        }
    }
    if flags & CLONE_PARENT_SETTID != 0 {
        // Before wake_up_new_task, as Linux: whoever shares the memory finds
        // the tid there once the child runs. The child is TASK_NEW until
        // then, so the lock may go for the user access.
        drop(k);
        let _ = put_user_i32(parent_tid, pid);
        k = lock();
    }
    let t = now_ns();
    k.sched.wake_up_new_task(child, t);
    if vfork {
        // Wait (uninterruptibly) until the child execs or exits. The CPU is
        // read each time round: a wake-up may have moved us.
        while k.tasks.get(child).is_some_and(|c| c.vfork_done.is_some()) {
            k.sched.set_current_state(smp_processor_id(), TaskState::Uninterruptible);
            schedule_locked(&mut k);
        }
    }
    Ok(pid)
}

/// `mm_release`'s CLONE_CHILD_CLEARTID part (kernel/fork.c), on exit and
/// exec: forget `clear_child_tid`, and if others still use the address
/// space, write 0 there and FUTEX_WAKE one waiter (a shared futex
/// operation, as Linux's `do_futex(..., FUTEX_WAKE, 1, ...)`: glibc's
/// pthread_join waits with a shared FUTEX_WAIT). User memory is touched
/// with the lock released; a fault is ignored, as in Linux.
pub fn mm_release_child_tid() {
    let addr = {
        let mut k = lock();
        let me = current();
        k.futex.unqueue(me);
        let Some(t) = k.tasks.get_mut(me) else { return };
        let addr = core::mem::take(&mut t.clear_child_tid);
        let mm = t.mm;
        let shared = mm.and_then(|h| k.mms.get(&h.0)).is_some_and(|m| m.users() > 1);
        if addr == 0 || !shared {
            return;
        }
        addr
    };
    let _ = put_user_i32(addr, 0);
    let _ = crate::kernel::futex::futex_wake(addr, false, 1, crate::futex::FUTEX_BITSET_MATCH_ANY);
}

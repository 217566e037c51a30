//! `futex(2)` glue (Linux kernel/futex/syscalls.c, core.c, waitwake.c,
//! requeue.c): keys from the current address space, the futex word read
//! under the kernel lock, and the sleep/wake loop around the pure core
//! ([`crate::futex`]).
//!
//! The word must be read with the lock held, so that a waker (who changes
//! the word, then takes the lock to wake) cannot slip between the check
//! and the sleep. Linux reads it with page faults disabled under the
//! hash-bucket lock; here a fault would need the kernel lock itself, so
//! the word is read through the linear map after a page-table lookup, and
//! a page that is not present is faulted in with the lock released and
//! the whole step retried (`futex_wait_setup`'s `fault_in` / `goto retry`).

use crate::arch::aarch64::irq::now_ns;
use crate::arch::aarch64::mm::current_mm;
use crate::arch::aarch64::process::current;
use crate::arch::aarch64::uaccess::{access_ok, copy_from_user};
use crate::futex::{FutexCmd, FutexError, FutexKey, decode};
use crate::kernel::sched::{schedule_locked, schedule_timeout};
use crate::kernel::{KGuard, Kernel, lock};
use crate::mm::Errno;
use crate::mm::mm_struct::PageTable;
use crate::mm::page::{PAGE_SIZE, align_down};
use crate::mm::vma::vm_flags::{VM_ACCESS_FLAGS, VM_MAYSHARE, VM_SHARED};
use crate::sched::TaskState;
use crate::sched::core::{DEFAULT_PRIO, TASK_NORMAL};
use crate::syscall::{ns_to_sleep_jiffies, timespec_to_ns};

type R = Result<isize, Errno>;

/// How often one call faults a page in before giving up with EFAULT (a
/// page another thread keeps unmapping; Linux would retry for ever).
const MAX_FAULT_INS: u32 = 64;

impl From<FutexError> for Errno {
    fn from(e: FutexError) -> Errno {
        match e {
            FutexError::Inval => Errno::EINVAL,
            FutexError::NoSys => Errno::ENOSYS,
        }
    }
}

/// `sys_futex(uaddr, op, val, timeout or val2, uaddr2, val3)`.
pub fn sys_futex(uaddr: usize, op: u32, val: u32, arg4: usize, uaddr2: usize, val3: u32) -> R {
    let call = decode(uaddr, op, val, arg4, uaddr2, val3)?;
    match call.cmd {
        FutexCmd::Wait { val, timeout, absolute, bitset } => {
            futex_wait(call.uaddr, call.private, val, timeout, absolute, bitset)
        }
        FutexCmd::Wake { nr, bitset } => futex_wake(call.uaddr, call.private, nr, bitset),
        FutexCmd::Requeue { nr_wake, nr_requeue, uaddr2, cmpval } => {
            futex_requeue(call.uaddr, call.private, nr_wake, nr_requeue, uaddr2, cmpval)
        }
    }
}

/// A lookup that needs the page present first.
struct FaultIn;

/// `get_futex_key` for the current task, without the kernel lock (the
/// address space's own locks: `arch/aarch64/mm.rs`). Private: (mm,
/// address), after `access_ok` only, as Linux. Shared: the VMA decides; a
/// MAP_SHARED one keys by the page frame (the page must be present), any
/// other by (mm, address) marked shared. No VMA: fault in (the stack may
/// grow; or the fault-in reports EFAULT). As in Linux, the key may be
/// stale by the time the hash is locked if another thread remaps the
/// word meanwhile; that is the program's race.
fn get_futex_key(uaddr: usize, private: bool) -> Result<Result<FutexKey, FaultIn>, Errno> {
    if !access_ok(uaddr, 4) {
        return Err(Errno::EFAULT);
    }
    let mm = current_mm().ok_or(Errno::EFAULT)?;
    if private {
        return Ok(Ok(FutexKey::Private { mm: mm.id, addr: uaddr }));
    }
    let vmas = mm.mmap_lock.read();
    let Some(vma) = vmas.find_vma(uaddr).filter(|v| v.contains(uaddr)) else { return Ok(Err(FaultIn)) };
    if vma.flags & (VM_SHARED | VM_MAYSHARE) == 0 {
        return Ok(Ok(FutexKey::MmShared { mm: mm.id, addr: uaddr }));
    }
    let pte = mm.page_table_lock.lock_irqsave().lookup(align_down(uaddr, PAGE_SIZE));
    Ok(match pte {
        Some(pte) => Ok(FutexKey::Page { pfn: pte.pfn, offset: uaddr % PAGE_SIZE }),
        None => Err(FaultIn),
    })
}

/// Whether the futex word lies in a readable VMA (checked before the
/// kernel lock is taken: `mmap_lock` may sleep).
fn word_readable(uaddr: usize) -> bool {
    current_mm().is_some_and(|mm| {
        mm.mmap_lock.read().find_vma(uaddr).is_some_and(|v| v.contains(uaddr) && v.flags & VM_ACCESS_FLAGS != 0)
    })
}

/// `get_futex_value_locked`: the futex word, with the kernel lock held,
/// if its page is present; `None` means fault it in and retry. The
/// page-table lock (taken inside the kernel lock) keeps the frame mapped
/// while it is read; the VMA was checked before ([`word_readable`]).
fn get_futex_value_locked(_k: &Kernel, uaddr: usize) -> Option<u32> {
    current_mm()?.page_table_lock.lock_irqsave().load_u32(uaddr)
}

/// `fault_in_user_writeable` / `get_user` with no lock held: maps the page
/// (demand paging, stack growth) or reports EFAULT.
/// Finds `uaddr`'s futex key (and, with `value`, checks the word's VMA),
/// faulting the page in while it is not present, then takes the kernel
/// lock.
fn lock_with_key(uaddr: usize, private: bool, value: bool, tries: &mut u32) -> Result<(KGuard, FutexKey), Errno> {
    loop {
        match get_futex_key(uaddr, private)? {
            Ok(key) if !value || word_readable(uaddr) => return Ok((lock(), key)),
            _ => fault_in(uaddr, tries)?,
        }
    }
}

fn fault_in(uaddr: usize, tries: &mut u32) -> Result<(), Errno> {
    *tries += 1;
    if *tries > MAX_FAULT_INS {
        return Err(Errno::EFAULT);
    }
    let mut b = [0u8; 4];
    copy_from_user(&mut b, uaddr)
}

/// `futex_init_timeout`: the deadline in nanoseconds of the counter
/// clock (which is what CLOCK_MONOTONIC and CLOCK_REALTIME read here).
fn deadline(timeout: usize, absolute: bool) -> Result<Option<u64>, Errno> {
    if timeout == 0 {
        return Ok(None);
    }
    let mut ts = [0u8; 16];
    copy_from_user(&mut ts, timeout)?;
    let sec = i64::from_le_bytes(ts[..8].try_into().unwrap());
    let nsec = i64::from_le_bytes(ts[8..].try_into().unwrap());
    let ns = timespec_to_ns(sec, nsec).ok_or(Errno::EINVAL)?;
    Ok(Some(if absolute { ns } else { now_ns().saturating_add(ns) }))
}

/// `futex_wait`: sleep while `*uaddr == val`, until woken, the deadline,
/// or a fatal signal. 0 when woken; EAGAIN if the word differs; ETIMEDOUT;
/// a signal (restarted, or EINTR: see the end). A spurious wake-up
/// re-reads the word.
fn futex_wait(uaddr: usize, private: bool, val: u32, timeout: usize, absolute: bool, bitset: u32) -> R {
    let deadline = deadline(timeout, absolute)?;
    let me = current();
    let mut tries = 0;
    loop {
        // futex_wait_setup: the key and the word, with the lock held.
        let (mut k, key) = lock_with_key(uaddr, private, true, &mut tries)?;
        let Some(word) = get_futex_value_locked(&k, uaddr) else {
            drop(k);
            fault_in(uaddr, &mut tries)?;
            continue;
        };
        if word != val {
            return Err(Errno::EAGAIN);
        }
        // futex_wait_queue: queue, then sleep unless the deadline has
        // passed or a signal is already pending (schedule() would return
        // at once in Linux: signal_pending_state).
        let prio = k.sched.task(me).map_or(DEFAULT_PRIO, |t| t.normal_prio);
        k.futex.queue(key, me, bitset, prio);
        let now = now_ns();
        if !k.tasks.signal_pending(me) && deadline.is_none_or(|d| now < d) {
            match deadline {
                Some(d) => {
                    let hz = k.jiffies.hz();
                    schedule_timeout(&mut k, ns_to_sleep_jiffies(d - now, hz), TaskState::Interruptible);
                }
                None => {
                    k.sched.set_current_state(crate::arch::aarch64::cpu::smp_processor_id(), TaskState::Interruptible);
                    schedule_locked(&mut k);
                }
            }
        }
        // "If we were woken (and unqueued), we succeeded, whatever."
        if !k.futex.unqueue(me) {
            return Ok(0);
        }
        if deadline.is_some_and(|d| now_ns() >= d) {
            return Err(Errno::ETIMEDOUT);
        }
        if k.tasks.signal_pending(me) {
            // Restarted unless a handler without SA_RESTART runs; a
            // relative timeout would start again, so that one is EINTR.
            return Err(if deadline.is_some() { Errno::EINTR } else { Errno::ERESTARTSYS });
        }
        // A spurious wake-up (a stray wake_up_process): again.
    }
}

/// `futex_wake`: wake up to `nr` sleepers of `uaddr` whose bitset matches;
/// returns how many.
pub fn futex_wake(uaddr: usize, private: bool, nr: i32, bitset: u32) -> R {
    let (mut k, key) = lock_with_key(uaddr, private, false, &mut 0)?;
    let now = now_ns();
    let k2 = &mut *k;
    let sched = &mut k2.sched;
    let n = k2.futex.wake(key, nr, bitset, |t| {
        sched.try_to_wake_up(t, TASK_NORMAL, now);
    });
    Ok(n as isize)
}

/// `futex_requeue` (FUTEX_REQUEUE, FUTEX_CMP_REQUEUE): wake `nr_wake`
/// sleepers of `uaddr`, move up to `nr_requeue` others to `uaddr2`; with
/// `cmpval`, only if `*uaddr` still holds it (else EAGAIN). Returns woken +
/// requeued.
fn futex_requeue(uaddr: usize, private: bool, nr_wake: i32, nr_requeue: i32, uaddr2: usize, cmpval: Option<u32>) -> R {
    let mut tries = 0;
    loop {
        let keys = (get_futex_key(uaddr, private)?, get_futex_key(uaddr2, private)?);
        let (from, to) = match keys {
            (Ok(a), Ok(b)) => (a, b),
            (Err(FaultIn), _) => {
                fault_in(uaddr, &mut tries)?;
                continue;
            }
            (_, Err(FaultIn)) => {
                fault_in(uaddr2, &mut tries)?;
                continue;
            }
        };
        if cmpval.is_some() && !word_readable(uaddr) {
            fault_in(uaddr, &mut tries)?;
            continue;
        }
        let mut k = lock();
        if let Some(cmp) = cmpval {
            let Some(word) = get_futex_value_locked(&k, uaddr) else {
                drop(k);
                fault_in(uaddr, &mut tries)?;
                continue;
            };
            if word != cmp {
                return Err(Errno::EAGAIN);
            }
        }
        let now = now_ns();
        let k2 = &mut *k;
        let sched = &mut k2.sched;
        let n = k2.futex.requeue(from, to, nr_wake, nr_requeue, |t| {
            sched.try_to_wake_up(t, TASK_NORMAL, now);
        });
        return Ok(n as isize);
    }
}

/// `set_tid_address(2)`: the word to clear and futex-wake at exit; returns
/// the caller's tid. The address is not checked (Linux does not either;
/// a bad one is ignored at exit).
pub fn sys_set_tid_address(tidptr: usize) -> R {
    let mut k = lock();
    let me = current();
    let t = k.tasks.get_mut(me).ok_or(Errno::ESRCH)?;
    t.clear_child_tid = tidptr;
    Ok(t.pid as isize)
}

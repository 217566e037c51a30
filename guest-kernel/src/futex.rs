//! Fast user-space mutexes: the futex hash table and the `futex(2)`
//! argument decoding (Linux kernel/futex/: core.c, waitwake.c,
//! requeue.c, syscalls.c).
//!
//! futex(2): a waiter sleeps only while the 32-bit word at `uaddr` still
//! holds the value it expects; a waker changes the word in user space,
//! then asks the kernel to wake up to N sleepers of that word. Sleepers
//! are `futex_q` entries in a hash of wait queues, keyed like Linux's
//! `get_futex_key`: a private futex (FUTEX_PRIVATE_FLAG) by (mm, address),
//! a shared one on a private mapping by (mm, address) marked shared
//! (FUT_OFF_MMSHARED, a different key: a shared wake does not reach a
//! private waiter, which is why glibc joins a CLONE_CHILD_CLEARTID thread
//! with a shared FUTEX_WAIT), and a shared one on a MAP_SHARED mapping by
//! the page it lands on (Linux: the shmem inode and page offset), so that
//! processes mapping the page at different addresses meet.
//!
//! Waking removes the entry (`futex_wake_mark` → `__futex_unqueue`) and
//! only then wakes the task, so the sleeper's test is "am I still queued?"
//! and a wake-up is never lost to a sleeper that happens to be running
//! (a wait queue's autoremove would keep such an entry and give the wake
//! to no one). The sleeper re-checks in a loop, as LKD ch. 4 "Sleeping and
//! Waking Up" prescribes: still queued after `schedule()` means a timeout,
//! a signal or a spurious wake-up; the last makes it re-read the word and
//! wait again (`futex_wait`'s `goto retry`).
//!
//! Pure Rust: the glue (`kernel::futex`) computes keys, reads
//! the word with the kernel lock held, and sleeps and wakes tasks.

use alloc::vec::Vec;

use crate::sched::TaskId;
use crate::sched::rt::MAX_RT_PRIO;

/// `futex(2)` operations (include/uapi/linux/futex.h).
pub const FUTEX_WAIT: u32 = 0;
pub const FUTEX_WAKE: u32 = 1;
pub const FUTEX_REQUEUE: u32 = 3;
pub const FUTEX_CMP_REQUEUE: u32 = 4;
pub const FUTEX_WAIT_BITSET: u32 = 9;
pub const FUTEX_WAKE_BITSET: u32 = 10;
/// The futex is private to the process (no cross-process key needed).
pub const FUTEX_PRIVATE_FLAG: u32 = 128;
/// FUTEX_WAIT_BITSET's absolute timeout is CLOCK_REALTIME.
pub const FUTEX_CLOCK_REALTIME: u32 = 256;
/// The operation without the flags.
pub const FUTEX_CMD_MASK: u32 = !(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
/// A bitset matching every waiter (plain WAIT and WAKE use it).
pub const FUTEX_BITSET_MATCH_ANY: u32 = u32::MAX;

/// Errors of the futex core, with their Linux meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FutexError {
    /// EINVAL: misaligned address, zero bitset, bad timeout, negative count.
    Inval,
    /// ENOSYS: an operation this kernel does not implement (PI, WAKE_OP, ...).
    NoSys,
}

/// What a futex is keyed by (`union futex_key`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FutexKey {
    /// FUTEX_PRIVATE_FLAG: address space and user address.
    Private { mm: u32, addr: usize },
    /// A shared-mode operation on a private (anonymous or copy-on-write)
    /// mapping: address space and address, kept apart from `Private`
    /// (Linux sets FUT_OFF_MMSHARED in the key's offset).
    MmShared { mm: u32, addr: usize },
    /// A shared-mode operation on a MAP_SHARED mapping: the page frame and
    /// the offset in it, the same for every process mapping the page.
    Page { pfn: usize, offset: usize },
}

impl FutexKey {
    /// `hash_futex`: Linux uses jhash2 over the key; any good mix of the
    /// words will do (a 64-bit multiplicative hash, folded).
    fn hash(&self) -> u64 {
        let (tag, a, b) = match *self {
            FutexKey::Private { mm, addr } => (1u64, u64::from(mm), addr as u64),
            FutexKey::MmShared { mm, addr } => (2, u64::from(mm), addr as u64),
            FutexKey::Page { pfn, offset } => (3, pfn as u64, offset as u64),
        };
        let mut h = tag.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h = (h ^ a).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h = (h ^ b).wrapping_mul(0x94d0_49bb_1331_11eb);
        h ^ (h >> 31)
    }
}

/// A decoded `futex(uaddr, op, val, timeout/val2, uaddr2, val3)` call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FutexCmd {
    /// FUTEX_WAIT / FUTEX_WAIT_BITSET: sleep while `*uaddr == val`.
    /// `timeout` is the user pointer to a timespec (0: none); `absolute`
    /// says how to read it (WAIT: relative; WAIT_BITSET: absolute).
    Wait { val: u32, timeout: usize, absolute: bool, bitset: u32 },
    /// FUTEX_WAKE / FUTEX_WAKE_BITSET: wake up to `nr` waiters.
    Wake { nr: i32, bitset: u32 },
    /// FUTEX_REQUEUE / FUTEX_CMP_REQUEUE: wake `nr_wake` waiters of
    /// `uaddr`, move up to `nr_requeue` more to `uaddr2`; CMP first checks
    /// `*uaddr == cmpval` (else EAGAIN).
    Requeue { nr_wake: i32, nr_requeue: i32, uaddr2: usize, cmpval: Option<u32> },
}

/// A decoded call: the command and whether the futex is private.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FutexCall {
    pub uaddr: usize,
    pub private: bool,
    pub cmd: FutexCmd,
}

/// `do_futex`'s argument checks (kernel/futex/syscalls.c): the operation
/// and flags, the address alignment (`get_futex_key`: EINVAL), zero
/// bitsets and negative requeue counts (EINVAL). `arg4` is the timeout
/// pointer or, for the requeue operations, the count `val2`.
pub fn decode(uaddr: usize, op: u32, val: u32, arg4: usize, uaddr2: usize, val3: u32) -> Result<FutexCall, FutexError> {
    let cmd = op & FUTEX_CMD_MASK;
    let private = op & FUTEX_PRIVATE_FLAG != 0;
    if op & FUTEX_CLOCK_REALTIME != 0 && cmd != FUTEX_WAIT && cmd != FUTEX_WAIT_BITSET {
        return Err(FutexError::NoSys);
    }
    let cmd = match cmd {
        FUTEX_WAIT => FutexCmd::Wait { val, timeout: arg4, absolute: false, bitset: FUTEX_BITSET_MATCH_ANY },
        FUTEX_WAIT_BITSET => FutexCmd::Wait { val, timeout: arg4, absolute: true, bitset: val3 },
        FUTEX_WAKE => FutexCmd::Wake { nr: val as i32, bitset: FUTEX_BITSET_MATCH_ANY },
        FUTEX_WAKE_BITSET => FutexCmd::Wake { nr: val as i32, bitset: val3 },
        FUTEX_REQUEUE | FUTEX_CMP_REQUEUE => {
            let (nr_wake, nr_requeue) = (val as i32, arg4 as u32 as i32);
            if nr_wake < 0 || nr_requeue < 0 {
                return Err(FutexError::Inval);
            }
            let cmpval = (cmd == FUTEX_CMP_REQUEUE).then_some(val3);
            if !uaddr2.is_multiple_of(4) {
                return Err(FutexError::Inval);
            }
            FutexCmd::Requeue { nr_wake, nr_requeue, uaddr2, cmpval }
        }
        _ => return Err(FutexError::NoSys),
    };
    if let FutexCmd::Wait { bitset: 0, .. } | FutexCmd::Wake { bitset: 0, .. } = cmd {
        return Err(FutexError::Inval);
    }
    if !uaddr.is_multiple_of(4) {
        return Err(FutexError::Inval);
    }
    Ok(FutexCall { uaddr, private, cmd })
}

/// `struct futex_q`: one sleeper.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FutexQ {
    pub key: FutexKey,
    pub task: TaskId,
    /// FUTEX_WAIT_BITSET's bitset: only wakes whose bitset overlaps match.
    pub bitset: u32,
    /// `plist` priority: the task's `normal_prio`, capped at MAX_RT_PRIO,
    /// so real-time waiters wake first by priority and the rest in FIFO
    /// order.
    pub prio: i32,
}

/// `futex_queues`: the hash of wait queues (`struct futex_hash_bucket`).
pub struct FutexHash {
    buckets: Vec<Vec<FutexQ>>,
    /// Where each sleeping task is queued, by task id: the key it waits
    /// on now (a requeue moves it). Linux keeps this in the `futex_q` on
    /// the sleeper's stack (`q->key`, `q->lock_ptr`).
    queued_on: Vec<Option<FutexKey>>,
}

impl FutexHash {
    /// A table of `nr_buckets` queues, rounded up to a power of two (Linux:
    /// `roundup_pow_of_two(256 * num_possible_cpus())`).
    pub fn new(nr_buckets: usize) -> Self {
        let n = nr_buckets.max(1).next_power_of_two();
        FutexHash { buckets: (0..n).map(|_| Vec::new()).collect(), queued_on: Vec::new() }
    }

    fn bucket(&self, key: &FutexKey) -> usize {
        (key.hash() as usize) & (self.buckets.len() - 1)
    }

    /// `futex_queue`: add `task` as a sleeper of `key`, after every queued
    /// entry of the same or higher priority (`plist_add`).
    pub fn queue(&mut self, key: FutexKey, task: TaskId, bitset: u32, prio: i32) {
        debug_assert!(!self.is_queued(task), "a task sleeps on one futex at a time");
        let prio = prio.min(MAX_RT_PRIO as i32);
        let b = self.bucket(&key);
        self.insert(b, FutexQ { key, task, bitset, prio });
    }

    fn insert(&mut self, b: usize, q: FutexQ) {
        let list = &mut self.buckets[b];
        let at = list.iter().position(|e| e.prio > q.prio).unwrap_or(list.len());
        list.insert(at, q);
        let i = q.task.0 as usize;
        if self.queued_on.len() <= i {
            self.queued_on.resize(i + 1, None);
        }
        self.queued_on[i] = Some(q.key);
    }

    fn forget(&mut self, task: TaskId) {
        if let Some(slot) = self.queued_on.get_mut(task.0 as usize) {
            *slot = None;
        }
    }

    /// Whether `task` is still queued (not yet woken).
    pub fn is_queued(&self, task: TaskId) -> bool {
        self.queued_on.get(task.0 as usize).is_some_and(|k| k.is_some())
    }

    /// `futex_unqueue`: take `task` off its queue; true if it was still
    /// queued (so nobody woke it), false if a waker got there first.
    pub fn unqueue(&mut self, task: TaskId) -> bool {
        let Some(key) = self.queued_on.get(task.0 as usize).copied().flatten() else { return false };
        let b = self.bucket(&key);
        let list = &mut self.buckets[b];
        let Some(i) = list.iter().position(|e| e.task == task) else { return false };
        list.remove(i);
        self.forget(task);
        true
    }

    /// `futex_wake`: dequeue up to `nr` sleepers of `key` whose bitset
    /// overlaps `bitset`, in queue order, and hand each to `wake`. As in
    /// Linux, `nr` <= 0 still wakes one (`if (++ret >= nr_wake) break`).
    /// Returns how many were woken.
    pub fn wake(&mut self, key: FutexKey, nr: i32, bitset: u32, mut wake: impl FnMut(TaskId)) -> usize {
        let b = self.bucket(&key);
        let mut woken = 0usize;
        let mut i = 0;
        while i < self.buckets[b].len() {
            let q = self.buckets[b][i];
            if q.key != key || q.bitset & bitset == 0 {
                i += 1;
                continue;
            }
            self.buckets[b].remove(i);
            self.forget(q.task);
            wake(q.task);
            woken += 1;
            if woken as i64 >= i64::from(nr) {
                break;
            }
        }
        woken
    }

    /// `futex_requeue` (without PI): dequeue and wake the first `nr_wake`
    /// sleepers of `from`, then move up to `nr_requeue` more to `to`
    /// (`requeue_futex`), in order. Returns woken + requeued, as Linux.
    pub fn requeue(
        &mut self,
        from: FutexKey,
        to: FutexKey,
        nr_wake: i32,
        nr_requeue: i32,
        mut wake: impl FnMut(TaskId),
    ) -> usize {
        let b = self.bucket(&from);
        // Collect first: moving to the same bucket (or key) must not meet
        // the moved entries again.
        let matching: Vec<FutexQ> = self.buckets[b].iter().filter(|q| q.key == from).copied().collect();
        let (nr_wake, nr_requeue) = (nr_wake.max(0) as usize, nr_requeue.max(0) as usize);
        let mut done = 0;
        for (n, q) in matching.into_iter().enumerate() {
            if n >= nr_wake + nr_requeue {
                break;
            }
            let list = &mut self.buckets[b];
            let i = list.iter().position(|e| e.task == q.task).expect("still queued");
            list.remove(i);
            if n < nr_wake {
                self.forget(q.task);
                wake(q.task);
            } else {
                let nb = self.bucket(&to);
                self.insert(nb, FutexQ { key: to, ..q });
            }
            done += 1;
        }
        done
    }

    /// Sleepers of `key` (for tests and statistics).
    pub fn waiters(&self, key: FutexKey) -> usize {
        self.buckets[self.bucket(&key)].iter().filter(|q| q.key == key).count()
    }

    /// Sleepers in the whole table.
    pub fn len(&self) -> usize {
        self.buckets.iter().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: i32 = 120;

    fn private(mm: u32, addr: usize) -> FutexKey {
        FutexKey::Private { mm, addr }
    }

    #[test]
    fn decode_checks_like_linux() {
        let wait = decode(0x1000, FUTEX_WAIT | FUTEX_PRIVATE_FLAG, 5, 0x2000, 0, 0).unwrap();
        assert!(wait.private);
        assert_eq!(
            wait.cmd,
            FutexCmd::Wait { val: 5, timeout: 0x2000, absolute: false, bitset: FUTEX_BITSET_MATCH_ANY }
        );
        assert!(!decode(0x1000, FUTEX_WAKE, 1, 0, 0, 0).unwrap().private);
        assert_eq!(decode(0x1002, FUTEX_WAKE, 1, 0, 0, 0), Err(FutexError::Inval), "misaligned");
        assert_eq!(decode(0x1000, FUTEX_WAIT_BITSET, 0, 0, 0, 0), Err(FutexError::Inval), "zero bitset");
        assert_eq!(decode(0x1000, FUTEX_WAKE_BITSET, 1, 0, 0, 0), Err(FutexError::Inval), "zero bitset");
        assert_eq!(decode(0x1000, FUTEX_WAKE | FUTEX_CLOCK_REALTIME, 1, 0, 0, 0), Err(FutexError::NoSys));
        assert!(decode(0x1000, FUTEX_WAIT_BITSET | FUTEX_CLOCK_REALTIME, 0, 0, 0, 1).is_ok());
        assert_eq!(decode(0x1000, 6, 0, 0, 0, 0), Err(FutexError::NoSys), "LOCK_PI is not implemented");
        assert_eq!(decode(0x1000, 99, 0, 0, 0, 0), Err(FutexError::NoSys));
        assert_eq!(decode(0x1000, FUTEX_REQUEUE, 1, u32::MAX as usize, 0x2000, 0), Err(FutexError::Inval));
        assert_eq!(
            decode(0x1000, FUTEX_CMP_REQUEUE, 1, 7, 0x2000, 9).unwrap().cmd,
            FutexCmd::Requeue { nr_wake: 1, nr_requeue: 7, uaddr2: 0x2000, cmpval: Some(9) }
        );
    }

    #[test]
    fn keys_separate_address_spaces_and_kinds() {
        let mut h = FutexHash::new(4);
        h.queue(private(1, 0x1000), TaskId(1), FUTEX_BITSET_MATCH_ANY, P);
        h.queue(private(2, 0x1000), TaskId(2), FUTEX_BITSET_MATCH_ANY, P);
        h.queue(FutexKey::MmShared { mm: 1, addr: 0x1000 }, TaskId(3), FUTEX_BITSET_MATCH_ANY, P);
        h.queue(FutexKey::Page { pfn: 7, offset: 0x10 }, TaskId(4), FUTEX_BITSET_MATCH_ANY, P);
        let mut woken = Vec::new();
        // A shared wake on a private mapping does not reach private waiters.
        assert_eq!(
            h.wake(FutexKey::MmShared { mm: 1, addr: 0x1000 }, 10, FUTEX_BITSET_MATCH_ANY, |t| woken.push(t)),
            1
        );
        assert_eq!(woken, [TaskId(3)]);
        assert_eq!(h.wake(private(1, 0x1004), 10, FUTEX_BITSET_MATCH_ANY, |t| woken.push(t)), 0);
        assert_eq!(h.wake(private(2, 0x1000), 10, FUTEX_BITSET_MATCH_ANY, |t| woken.push(t)), 1);
        assert_eq!(h.wake(FutexKey::Page { pfn: 7, offset: 0x10 }, 1, FUTEX_BITSET_MATCH_ANY, |t| woken.push(t)), 1);
        assert_eq!(woken, [TaskId(3), TaskId(2), TaskId(4)]);
        assert!(h.is_queued(TaskId(1)) && !h.is_queued(TaskId(2)));
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn wake_counts_order_and_bitsets() {
        let mut h = FutexHash::new(256);
        let k = private(1, 0x4000);
        for t in 1..=5 {
            h.queue(k, TaskId(t), if t == 3 { 0b10 } else { 0b01 }, P);
        }
        // An RT waiter (prio 10) goes first; the rest FIFO.
        h.queue(k, TaskId(6), FUTEX_BITSET_MATCH_ANY, 10);
        let mut woken = Vec::new();
        assert_eq!(h.wake(k, 2, FUTEX_BITSET_MATCH_ANY, |t| woken.push(t)), 2);
        assert_eq!(woken, [TaskId(6), TaskId(1)]);
        // The bitset filters: only task 3 has bit 1.
        assert_eq!(h.wake(k, 10, 0b10, |t| woken.push(t)), 1);
        assert_eq!(woken[2], TaskId(3));
        // nr 0 still wakes one, as Linux's loop does.
        assert_eq!(h.wake(k, 0, FUTEX_BITSET_MATCH_ANY, |t| woken.push(t)), 1);
        assert_eq!(woken[3], TaskId(2));
        assert_eq!(h.waiters(k), 2);
        // Unqueue (timeout, signal) reports whether the task was still queued.
        assert!(h.unqueue(TaskId(4)));
        assert!(!h.unqueue(TaskId(4)));
        assert!(!h.unqueue(TaskId(2)), "already woken");
        assert_eq!(h.wake(k, i32::MAX, FUTEX_BITSET_MATCH_ANY, |t| woken.push(t)), 1);
        assert!(h.is_empty());
    }

    #[test]
    fn requeue_loses_nobody() {
        let mut h = FutexHash::new(2); // tiny: both keys may share a bucket
        let (a, b) = (private(1, 0x1000), private(1, 0x2000));
        for t in 1..=6 {
            h.queue(a, TaskId(t), FUTEX_BITSET_MATCH_ANY, P);
        }
        h.queue(b, TaskId(7), FUTEX_BITSET_MATCH_ANY, P);
        let mut woken = Vec::new();
        // Wake one, move three: 4 done, 2 stay on a.
        assert_eq!(h.requeue(a, b, 1, 3, |t| woken.push(t)), 4);
        assert_eq!(woken, [TaskId(1)]);
        assert_eq!((h.waiters(a), h.waiters(b)), (2, 4));
        assert!((2..=7).all(|t| h.is_queued(TaskId(t))));
        // Requeued sleepers follow those already on b, in their order.
        assert_eq!(h.wake(b, i32::MAX, FUTEX_BITSET_MATCH_ANY, |t| woken.push(t)), 4);
        assert_eq!(woken[1..], [TaskId(7), TaskId(2), TaskId(3), TaskId(4)]);
        // A requeue onto the same key just keeps everyone.
        assert_eq!(h.requeue(a, a, 0, 10, |t| woken.push(t)), 2);
        assert_eq!(h.waiters(a), 2);
        assert_eq!(h.wake(a, i32::MAX, FUTEX_BITSET_MATCH_ANY, |t| woken.push(t)), 2);
        woken.sort();
        assert_eq!(woken, (1..=7).map(TaskId).collect::<Vec<_>>(), "every sleeper woken exactly once");
        assert!(h.is_empty() && (1..=7).all(|t| !h.is_queued(TaskId(t))));
    }
}

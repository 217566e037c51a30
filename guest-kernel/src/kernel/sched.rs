//! `schedule()` and sleeping on the scheduler (LKD ch. 4; Linux
//! kernel/sched/core.c `__schedule`, kernel/time/timer.c
//! `schedule_timeout`): the pure scheduler (`crate::sched`) picks, the arch
//! glue switches (`context_switch`); and the scheduler's side of the
//! sleeping locks.

use super::{KGuard, Kernel, lock};
use crate::arch::aarch64::cpu::smp_processor_id;
use crate::arch::aarch64::irq::now_ns;
use crate::arch::aarch64::process::context_switch;
use crate::sched::TaskState;
use crate::sched::waitqueue::WaitQueueHead;
use crate::sync;
use crate::time::delay::process_timeout;

/// `schedule()`.
pub fn schedule() {
    let mut k = lock();
    schedule_locked(&mut k);
}

/// The CPU time (ns, `sum_exec_runtime`) of task `me`, or of its whole
/// thread group: what CLOCK_THREAD/PROCESS_CPUTIME_ID, `times` and
/// `getrusage` report.
pub fn cputime(k: &mut Kernel, me: crate::sched::TaskId, whole_group: bool, now: u64) -> u64 {
    if !whole_group {
        return k.sched.task_sched_runtime(me, now);
    }
    let tgid = k.tasks.get(me).map_or(0, |t| t.tgid);
    let threads: alloc::vec::Vec<_> = k.tasks.iter().filter(|t| t.tgid == tgid).map(|t| t.id).collect();
    threads.into_iter().map(|t| k.sched.task_sched_runtime(t, now)).sum()
}

/// `__schedule` with the lock held; returns with it held again (by hand-over).
pub fn schedule_locked(k: &mut KGuard) {
    let cpu = smp_processor_id();
    let prev = k.sched.current(cpu);
    let next = k.sched.schedule(cpu, now_ns());
    if next != prev {
        context_switch(k, cpu, prev, next);
    }
}

/// The scheduler's side of the sleeping locks (`sync::rwsem`, e.g. an
/// address space's `mmap_lock`): the kernel lock, a scheduler wait queue,
/// TASK_UNINTERRUPTIBLE and `schedule` (LKD ch. 4, "Sleeping and Waking
/// Up"). Only contention comes here.
pub struct SchedSleep;

impl sync::Sleep for SchedSleep {
    type Guard = KGuard;
    type Queue = WaitQueueHead;
    fn lock() -> KGuard {
        lock()
    }
    fn prepare_to_wait(k: &mut KGuard, q: &mut WaitQueueHead) {
        q.prepare_to_wait(&mut k.sched, smp_processor_id(), TaskState::Uninterruptible, false);
    }
    fn schedule(k: &mut KGuard) {
        schedule_locked(k);
    }
    fn finish_wait(k: &mut KGuard, q: &mut WaitQueueHead) {
        // The CPU is read again: the wake-up may have moved us.
        q.finish_wait(&mut k.sched, smp_processor_id());
    }
    fn wake_up_all(k: &mut KGuard, q: &mut WaitQueueHead) {
        q.wake_up_all(&mut k.sched, now_ns());
    }
}

/// `schedule_timeout`: sleep until woken or `timeout` jiffies pass. Returns
/// the jiffies left (0 if the timer ran out).
pub fn schedule_timeout(k: &mut KGuard, timeout: u64, state: TaskState) -> u64 {
    let cpu = smp_processor_id();
    let me = k.sched.current(cpu);
    let expires = k.jiffies.get().wrapping_add(timeout);
    let t = k.wheel.timer_setup(process_timeout_fn, u64::from(me.0));
    k.wheel.add_timer(t, expires);
    k.sched.set_current_state(cpu, state);
    schedule_locked(k);
    k.wheel.del_timer(t);
    k.wheel.destroy_timer(t);
    let now = k.jiffies.get();
    if crate::time::time_after(expires, now) { expires.wrapping_sub(now) } else { 0 }
}

/// `process_timeout`, the callback of [`schedule_timeout`]'s timer: wake
/// the task in `data`.
fn process_timeout_fn(k: &mut Kernel, data: u64, now: u64) {
    process_timeout(&mut k.sched, data, now);
}

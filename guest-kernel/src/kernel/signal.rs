//! Signals on the way back to user space (LKD ch. 3; Linux
//! arch/arm64/kernel/signal.c `do_notify_resume`): reschedule if asked,
//! then act on pending signals; and the signal a faulting program gets.

use core::sync::atomic::Ordering;

use super::exit::do_group_exit;
use super::{THREAD_INFO, lock};
use crate::arch::aarch64::cpu::smp_processor_id;
use crate::arch::aarch64::process::current;
use crate::arch::aarch64::trap::TrapFrame;
use crate::kernel::sched::schedule_locked;
use crate::task::task_struct::{SIGCHLD, SIGSEGV};

/// `do_notify_resume` on the way back to EL0: reschedule if asked, and act
/// on pending signals (default actions: SIGCHLD ignored, the rest fatal).
pub fn ret_to_user(_frame: &mut TrapFrame) {
    // Interrupts are masked: an IPI that sets `work` after this load is
    // taken as soon as `eret` unmasks them, and comes back here.
    if !THREAD_INFO[smp_processor_id()].work.load(Ordering::Relaxed) {
        return;
    }
    loop {
        let mut k = lock();
        let cpu = smp_processor_id();
        if k.sched.need_resched(cpu) {
            schedule_locked(&mut k);
            continue;
        }
        let me = k.sched.current(cpu);
        let Some(t) = k.tasks.get_mut(me) else { return };
        t.pending &= !(1 << SIGCHLD);
        if t.pending == 0 {
            // Nothing left: the fast path again until a kick (the lock's
            // release raises the flag again if this section kicked us).
            THREAD_INFO[cpu].work.store(false, Ordering::Relaxed);
            return;
        }
        let sig = t.pending.trailing_zeros() as i32;
        t.pending = 0;
        drop(k);
        do_group_exit(sig & 0x7f);
    }
}

/// Queues SIGSEGV for the current task, after saying why on the console
/// (Linux's `show_unhandled_signals`); it acts on the way out.
pub fn segv(frame: &TrapFrame, what: &str) {
    let me = current();
    {
        let mut k = lock();
        let pid = k.tasks.get(me).map_or(0, |t| t.pid);
        let comm = k.tasks.get(me).map(|t| t.comm.clone()).unwrap_or_default();
        drop(k);
        crate::println!(
            "guest-kernel: {comm}[{pid}]: {what} at {:#x} pc {:#x} (ESR {:#x}): SIGSEGV",
            frame.far,
            frame.elr,
            frame.esr
        );
        k = lock();
        if let Some(t) = k.tasks.get_mut(me) {
            t.pending |= 1 << SIGSEGV;
        }
        k.sched.kick_process(me);
    }
}

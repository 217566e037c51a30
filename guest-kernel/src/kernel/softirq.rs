//! Interrupts on the kernel's side (LKD ch. 7-8; Linux kernel/irq/,
//! kernel/softirq.c): `irq_enter`, the registered actions of an interrupt
//! (`generic_handle_irq`), and on `irq_exit` the softirqs (the timer
//! wheel, tasklets), preemption and the return-to-user work. The tick's
//! top half and the GIC are the arch glue's.

use super::sched::schedule_locked;
use super::signal::ret_to_user;
use super::{Kernel, lock, ready};
use crate::arch::aarch64::irq::{self, now_ns};
use crate::arch::aarch64::trap::TrapFrame;
use crate::irq::softirq::{HI_SOFTIRQ, SoftirqState, TASKLET_SOFTIRQ, TIMER_SOFTIRQ};
use crate::irq::{IrqReturn, IrqTable};

/// `irq_enter`.
pub fn irq_enter(cpu: usize) {
    if ready() {
        lock().sched.irq_enter(cpu);
    }
}

/// `generic_handle_irq`: run the actions registered for `intid`. Before the
/// process subsystem is up only the tick can fire, and it is just re-armed.
pub fn generic_handle_irq(intid: u32) {
    if !ready() {
        if intid == irq::timer_intid() {
            irq::timer_ack();
        }
        return;
    }
    let mut k = lock();
    let mut table = core::mem::replace(&mut k.irqs, IrqTable::new(0));
    let ret = table.handle_irq(intid, &mut *k);
    k.irqs = table;
    if ret == IrqReturn::None {
        crate::println!("guest-kernel: nobody handled IRQ {intid}");
    }
}

/// `tasklet_action` / `tasklet_hi_action` for this CPU.
fn run_tasklets(k: &mut Kernel, cpu: usize, hi: bool, s: &mut SoftirqState) {
    let mut q = core::mem::take(&mut k.tasklets[cpu]);
    q.tasklet_action(hi, s, |func, data| func(k, data));
    k.tasklets[cpu] = q;
}

/// `run_timer_softirq`: the timers of the wheel that expired, each
/// callback with its data.
pub(crate) fn run_timer_softirq(k: &mut Kernel, _cpu: usize) {
    let j = k.jiffies.get();
    let t = now_ns();
    for e in k.wheel.run_timers(j) {
        (e.function)(k, e.data, t);
    }
}

/// `irq_exit`: softirqs, then preemption (`preempt_schedule_irq`) when the
/// interrupted context may be preempted; from EL0, the return-to-user work.
pub fn irq_exit(cpu: usize, frame: &mut TrapFrame, from_el0: bool) {
    if !ready() {
        return;
    }
    let mut k = lock();
    let mut s = core::mem::take(&mut k.softirq[cpu]);
    s.do_softirq(
        |nr, s| match nr {
            TIMER_SOFTIRQ => run_timer_softirq(&mut k, cpu),
            HI_SOFTIRQ | TASKLET_SOFTIRQ => run_tasklets(&mut k, cpu, nr == HI_SOFTIRQ, s),
            _ => {}
        },
        now_ns,
        false,
    );
    k.softirq[cpu] = s;
    let preempt = k.sched.irq_exit(cpu);
    if preempt && !from_el0 {
        schedule_locked(&mut k);
    }
    drop(k);
    if from_el0 {
        ret_to_user(frame, None);
    }
}

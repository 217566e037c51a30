//! Processes on the CPU: the threads' kernel stacks and saved registers
//! (`copy_thread`, `new_thread`), the context switch (`context_switch` →
//! `cpu_switch_to`), `current`, the idle loop, the tick's top half, and
//! the EL0 exception entry that hands system calls and faults to the
//! kernel (`crate::kernel`: the kernel state and its lock, `schedule`,
//! softirqs, kernel threads, fork, exit, faults, signals).
//!
//! LKD ch. 3 (processes), ch. 4 (preemption), ch. 11 (the tick);
//! 《Linux内核深度解析》§2.5-§2.8 (cpu_switch_to saves x19-x29, sp and pc;
//! `current` in a system register; preemption on return from interrupt
//! when preempt_count is zero).

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{ReadWriteable, Readable, TCR_EL1, TPIDR_EL0, TPIDR_EL1, Writeable};
use alloc::boxed::Box;
use core::sync::atomic::Ordering;

use super::cpu::{local_irq_disable, local_irq_enable, smp_processor_id};
use super::irq::{self, now_ns};
use super::mm::set_current_mm;
use super::pgtable::{empty_ttbr0, switch_ttbr0};
use super::trap::{FRAME_SIZE, TrapFrame, ec, esr_ec, esr_fsc, esr_is_write, fsc_is_mm_fault};
use super::uaccess::put_user_i32;
use crate::irq::IrqReturn;
use crate::irq::softirq::TIMER_SOFTIRQ;
use crate::kernel::fault::user_fault;
use crate::kernel::signal::{Syscall, ret_to_user, segv};
use crate::kernel::{KGuard, Kernel, lock, switched_to};
use crate::sched::TaskId;
use crate::task::task_struct::ExitState;

// ----- threads ------------------------------------------------------------------

/// Free pages user allocations leave to the kernel: a user page fault
/// meets "out of memory" (and the OOM killer) before the kernel's own
/// allocations (slab, page tables, stacks) would fail.
pub const USER_RESERVE_PAGES: usize = 2048;

/// Bytes of each task's kernel stack (THREAD_SIZE).
pub const THREAD_SIZE: usize = 32 * 1024;

/// A kernel stack from kmalloc; allocation failure is an error (fork gets
/// ENOMEM), never a panic.
struct KStack(core::ptr::NonNull<u8>);

const KSTACK_LAYOUT: core::alloc::Layout = match core::alloc::Layout::from_size_align(THREAD_SIZE, 16) {
    Ok(l) => l,
    Err(_) => panic!("bad kernel stack layout"),
};

impl KStack {
    fn new() -> Option<Self> {
        // SAFETY: the layout has a non-zero size.
        core::ptr::NonNull::new(unsafe { alloc::alloc::alloc(KSTACK_LAYOUT) }).map(KStack)
    }
}

impl Drop for KStack {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout, freed once.
        unsafe { alloc::alloc::dealloc(self.0.as_ptr(), KSTACK_LAYOUT) };
    }
}

// SAFETY: the stack is plain memory owned by its Thread.
unsafe impl Send for KStack {}

/// `struct cpu_context` plus the FP/SIMD state (exceptions.S).
#[repr(C, align(16))]
pub struct CpuContext {
    x19_x28: [u64; 10],
    fp: u64,
    pc: u64,
    sp: u64,
    /// The user thread pointer (`thread.uw.tp_value`): TLS of the task's
    /// EL0 code, set by CLONE_SETTLS or by EL0 itself.
    tpidr_el0: u64,
    vregs: [u128; 32],
    fpcr: u64,
    fpsr: u64,
}

impl CpuContext {
    const fn zero() -> Self {
        CpuContext { x19_x28: [0; 10], fp: 0, pc: 0, sp: 0, tpidr_el0: 0, vregs: [0; 32], fpcr: 0, fpsr: 0 }
    }
}

/// The arch part of a task (`thread_struct` + its kernel stack).
pub struct Thread {
    ctx: CpuContext,
    stack: Option<KStack>,
}

impl Thread {
    /// A thread with a kernel stack of its own; None if there is no
    /// memory for the stack (fork then fails with ENOMEM).
    pub fn new_kernel_stack() -> Option<Box<Self>> {
        let stack = KStack::new()?;
        Some(Box::new(Thread { ctx: CpuContext::zero(), stack: Some(stack) }))
    }

    fn stack_top(&self) -> usize {
        self.stack.as_ref().map_or(0, |s| s.0.as_ptr() as usize + THREAD_SIZE)
    }

    /// An idle task's thread: it runs on the CPU's boot stack.
    pub fn idle() -> Box<Self> {
        Box::new(Thread { ctx: CpuContext::zero(), stack: None })
    }

    /// The user register frame at the top of the kernel stack.
    fn user_frame(&mut self) -> &mut TrapFrame {
        let p = (self.stack_top() - FRAME_SIZE) as *mut TrapFrame;
        // SAFETY: the top FRAME_SIZE bytes of our own stack hold the frame
        // (exceptions.S builds it there for an exception from EL0).
        unsafe { &mut *p }
    }
}

/// `copy_thread` (arch/arm64/kernel/process.c) for a user task's clone:
/// the child starts in `ret_from_fork` on its own kernel stack, with a
/// copy of the parent's user frame `frame` in which x0 = 0 (the child's
/// return value) and sp = `newsp` if given; its TPIDR_EL0 is `tls`
/// (CLONE_SETTLS) or the parent's. `set_child_tid` (CLONE_CHILD_SETTID:
/// address, tid) is handed to `schedule_tail` in x21/x22.
pub fn copy_thread(
    thread: &mut Thread,
    frame: &TrapFrame,
    newsp: u64,
    tls: Option<u64>,
    set_child_tid: Option<(usize, i32)>,
) {
    let top = thread.stack_top();
    thread.ctx.sp = (top - FRAME_SIZE) as u64;
    thread.ctx.pc = ret_from_fork as *const () as u64;
    thread.ctx.tpidr_el0 = tls.unwrap_or_else(read_tpidr_el0);
    if let Some((addr, tid)) = set_child_tid {
        // ret_from_fork hands x21/x22 to schedule_tail.
        thread.ctx.x19_x28[2] = addr as u64;
        thread.ctx.x19_x28[3] = tid as u64;
    }
    let f = thread.user_frame();
    *f = *frame;
    f.x[0] = 0;
    if newsp != 0 {
        f.sp = newsp;
    }
}

unsafe extern "C" {
    fn cpu_switch_to(prev: *mut CpuContext, next: *const CpuContext);
    fn ret_from_fork();
}

/// The boot CPU starts with the empty user table in TTBR0 and TTBR0
/// walks on (once the kernel state exists).
pub(crate) fn start_user_tables() {
    switch_ttbr0(empty_ttbr0());
    enable_ttbr0_walks();
}

/// Clears TCR_EL1.EPD0 (mmu::init set it): TTBR0 now always holds a user
/// table or the empty one.
pub fn enable_ttbr0_walks() {
    // TTBR0 holds a valid (possibly empty) table on this CPU.
    TCR_EL1.modify(TCR_EL1::EPD0::EnableTTBR0Walks);
    barrier::isb(barrier::SY);
}

/// TPIDR_EL1 = the current task's id + 1 (`current`; 0 = none).
pub(crate) fn set_current_thread(id: TaskId) {
    let v = u64::from(id.0) + 1;
    // TPIDR_EL1 is the kernel's per-CPU scratch register.
    TPIDR_EL1.set(v);
}

/// `current`: the task this CPU runs (from TPIDR_EL1).
pub fn current() -> TaskId {
    let v = TPIDR_EL1.get();
    TaskId(v.saturating_sub(1) as u32)
}

fn now() -> u64 {
    now_ns()
}

// ----- schedule -----------------------------------------------------------------

/// `context_switch`: switch the address space, then the registers. A dead
/// prev's thread is parked for the next task to free.
pub(crate) fn context_switch(k: &mut KGuard, cpu: usize, prev: TaskId, next: TaskId) {
    crate::event!("sched_switch cpu={=u8} prev={=u32} next={=u32}", cpu as u8, prev.0, next.0);
    let next_mm = k.tasks.get(next).and_then(|t| t.mm).and_then(|h| k.mms.get(&h.0)).cloned();
    switch_ttbr0(next_mm.as_ref().map_or_else(empty_ttbr0, |m| m.ttbr0()));
    // The previous address space's reference may be its last (`mmdrop`
    // of a dead task's mm): its page tables go now that TTBR0 has left.
    drop(set_current_mm(next_mm));
    let prev_dead = k.tasks.get(prev).is_none_or(|t| t.exit_state != ExitState::None);
    let prev_ctx: *mut CpuContext = if prev_dead {
        let t = k.threads.remove(&prev).expect("prev thread");
        let slot = &mut k.dead[cpu];
        *slot = Some(t);
        &mut slot.as_mut().unwrap().ctx
    } else {
        &mut k.threads.get_mut(&prev).expect("prev thread").ctx
    };
    let next_ctx: *const CpuContext = &k.threads.get(&next).expect("next thread").ctx;
    set_current_thread(next);
    // SAFETY: both contexts live in boxed Threads that stay put while the
    // lock is held; the lock passes to `next`, which releases it.
    unsafe { cpu_switch_to(prev_ctx, next_ctx) };
    finish_task_switch(k);
}

/// `finish_task_switch`: we run again (lock held); free a thread that died
/// on this CPU before the switch.
fn finish_task_switch(k: &mut KGuard) {
    let cpu = smp_processor_id();
    k.dead[cpu] = None;
    switched_to(k, cpu);
}

/// First code of a new task (ret_from_fork): end the switch and release the
/// lock that the previous task handed over; then, for CLONE_CHILD_SETTID,
/// store the tid at `set_child_tid` in the new task's memory (Linux
/// `schedule_tail`; a bad address is ignored, as there).
#[unsafe(no_mangle)]
extern "C" fn schedule_tail(set_child_tid: usize, tid: u64) {
    let mut k = KGuard::handed_over();
    finish_task_switch(&mut k);
    drop(k); // releases KLOCK, sends IPIs, unmasks interrupts (daif 0)
    if set_child_tid != 0 {
        let _ = put_user_i32(set_child_tid, tid as i32);
    }
}

/// TPIDR_EL0 of the running task (its live user thread pointer).
fn read_tpidr_el0() -> u64 {
    TPIDR_EL0.get()
}

/// `flush_thread` → `tls_thread_flush` on exec: the new image starts with
/// TPIDR_EL0 = 0.
pub fn tls_thread_flush() {
    // TPIDR_EL0 is the running task's user thread pointer; the kernel
    // never uses it.
    TPIDR_EL0.set(0);
}

// ----- idle, tick, timers ---------------------------------------------------------

/// The idle loop (`do_idle`): run whatever is runnable, otherwise wait for
/// an interrupt; without a working tick, poll the counter for timers.
pub fn cpu_idle() -> ! {
    loop {
        local_irq_disable();
        let cpu = smp_processor_id();
        let busy = {
            let k = lock();
            k.sched.need_resched(cpu) || k.sched.rq(cpu).nr_running() > 0
        };
        if busy {
            crate::kernel::sched::schedule();
        } else if irq::TICK_WORKS.load(Ordering::Relaxed) {
            // Waits for an interrupt, which stays pending while masked.
            aarch64_cpu::asm::wfi();
        } else {
            run_timers_polled(cpu);
        }
        local_irq_enable();
    }
}

/// jiffies from the counter: every tick (any CPU) catches up to it, so
/// ticks lost or doubled across CPUs do not skew it.
fn update_jiffies(k: &mut Kernel) {
    let target = crate::time::jiffies::initial_jiffies(k.hz)
        .wrapping_add((now_ns() as u128 * u128::from(k.hz) / 1_000_000_000) as u64);
    let cur = k.jiffies.get();
    if crate::time::time_after(target, cur) {
        k.jiffies.do_timer(target.wrapping_sub(cur));
    }
}

fn run_timers_polled(cpu: usize) {
    let mut k = lock();
    update_jiffies(&mut k);
    crate::kernel::softirq::run_timer_softirq(&mut k, cpu);
}

/// The timer interrupt's top half (`tick_periodic` →
/// `update_process_times`): re-arm the timer, then jiffies,
/// `scheduler_tick`, and raising TIMER_SOFTIRQ.
pub(crate) fn timer_interrupt(_irq: u32, _dev: usize, k: &mut Kernel) -> IrqReturn {
    let cpu = smp_processor_id();
    irq::timer_ack();
    update_jiffies(k);
    let t = now();
    k.sched.scheduler_tick(cpu, t);
    k.softirq[cpu].raise_softirq(TIMER_SOFTIRQ);
    IrqReturn::Handled
}

// ----- kernel threads -------------------------------------------------------------

/// Gives task `id` a kernel stack whose first run calls `f(arg)` (or, with
/// `f` = None, returns to EL0 through the user frame at the stack top).
pub(crate) fn new_thread(
    k: &mut Kernel,
    id: TaskId,
    f: Option<extern "C" fn(usize)>,
    arg: usize,
) -> Option<&mut Thread> {
    let mut t = Thread::new_kernel_stack()?;
    let top = t.stack_top();
    t.ctx.sp = (top - FRAME_SIZE) as u64;
    t.ctx.pc = ret_from_fork as *const () as u64;
    t.ctx.x19_x28[0] = f.map_or(0, |f| f as usize as u64);
    t.ctx.x19_x28[1] = arg as u64;
    *t.user_frame() = TrapFrame::default();
    k.threads.insert(id, t);
    k.threads.get_mut(&id).map(|b| &mut **b)
}

// ----- return to user, signals, faults ----------------------------------------------

/// A synchronous exception from EL0: system call, page fault, or a fault
/// that kills the process with SIGSEGV (or SIGILL/SIGBUS, shown as SIGSEGV
/// and SIGKILL's siblings here).
pub fn el0_sync(frame: &mut TrapFrame) {
    local_irq_enable();
    let e = esr_ec(frame.esr);
    let mut syscall = None;
    match e {
        ec::SVC64 => {
            // rt_sigreturn's x0 is the restored one, not a result to act
            // on (Linux's `forget_syscall`).
            if frame.x[8] != crate::syscall::nr::RT_SIGRETURN {
                syscall = Some(Syscall { orig_x0: frame.x[0] });
            }
            let ret = crate::syscall::dispatch(frame);
            frame.x[0] = ret as u64;
        }
        ec::DABT_LOW | ec::IABT_LOW => {
            let fsc = esr_fsc(frame.esr);
            let addr = frame.far as usize;
            let ok = fsc_is_mm_fault(fsc)
                && user_fault(addr, e == ec::DABT_LOW && esr_is_write(frame.esr), e == ec::IABT_LOW);
            if !ok {
                segv(frame, "segfault");
            }
        }
        ec::UNKNOWN | ec::PC_ALIGN | ec::SP_ALIGN | ec::BRK64 => segv(frame, "bad instruction or alignment"),
        _ => segv(frame, "unhandled exception"),
    }
    local_irq_disable();
    ret_to_user(frame, syscall);
}

/// Stops the other CPUs and powers off (PSCI SYSTEM_OFF).
pub fn poweroff() -> ! {
    let others = ((1u64 << super::cpu::nr_cpus()) - 1) & !(1 << smp_processor_id());
    irq::send_ipi(others, irq::IPI_CPU_STOP);
    super::psci::system_off()
}

/// The user register frame of task `id` (top of its kernel stack).
pub fn user_frame_of(k: &mut Kernel, id: TaskId) -> &mut TrapFrame {
    k.threads.get_mut(&id).expect("thread").user_frame()
}

/// A secondary CPU joins: its idle task becomes `current`, with the empty
/// user table in TTBR0.
pub fn secondary_start(cpu: usize) {
    let _ = super::pvtime::init_cpu(cpu);
    let idle = lock().sched.current(cpu);
    set_current_thread(idle);
    switch_ttbr0(empty_ttbr0());
    enable_ttbr0_walks();
}

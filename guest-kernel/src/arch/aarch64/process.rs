//! Processes on the CPU: the threads' kernel stacks and saved registers,
//! the context switch (`context_switch` → `cpu_switch_to`), idle,
//! kthreadd, the tick and softirqs, sleeping with timeouts, kernel
//! threads, and the EL0 exception entry that hands system calls and faults
//! to the kernel (`crate::kernel`, which owns the kernel state and its
//! lock).
//!
//! LKD ch. 3 (processes), ch. 4 (schedule, preemption, wait queues),
//! ch. 11 (the tick, schedule_timeout); 《Linux内核深度解析》§2.5-§2.8
//! (cpu_switch_to saves x19-x29, sp and pc; `current` in a system register;
//! preemption on return from interrupt when preempt_count is zero).

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{ReadWriteable, Readable, TCR_EL1, TPIDR_EL0, TPIDR_EL1, Writeable};
use alloc::boxed::Box;
use core::sync::atomic::Ordering;

use super::cpu::{local_irq_disable, local_irq_enable, smp_processor_id};
use super::irq::{self, now_ns};
use super::mm::set_current_mm;
use super::pgtable::{empty_ttbr0, switch_ttbr0};
use super::trap::{FRAME_SIZE, TrapFrame, die, ec, esr_ec, esr_fsc, esr_is_write, fsc_is_mm_fault, slot};
use super::uaccess::put_user_i32;
use crate::irq::softirq::{HI_SOFTIRQ, SoftirqState, TASKLET_SOFTIRQ, TIMER_SOFTIRQ};
use crate::irq::{IrqReturn, IrqTable};
use crate::kernel::fault::user_fault;
use crate::kernel::signal::{ret_to_user, segv};
use crate::kernel::{KGuard, Kernel, forget_ppid, lock, ready, set_work};
use crate::sched::waitqueue::WaitQueueHead;
use crate::sched::{TaskId, TaskState};
use crate::sync;
use crate::task::task_struct::ExitState;
use crate::time::delay::process_timeout;
use alloc::vec::Vec;

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

/// `schedule()`.
pub fn schedule() {
    let mut k = lock();
    schedule_locked(&mut k);
}

/// `__schedule` with the lock held; returns with it held again (by hand-over).
pub fn schedule_locked(k: &mut KGuard) {
    let cpu = smp_processor_id();
    let prev = k.sched.current(cpu);
    let next = k.sched.schedule(cpu, now());
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
        q.wake_up_all(&mut k.sched, now());
    }
}

/// `context_switch`: switch the address space, then the registers. A dead
/// prev's thread is parked for the next task to free.
fn context_switch(k: &mut KGuard, cpu: usize, prev: TaskId, next: TaskId) {
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
    set_work(k, cpu);
    forget_ppid(cpu);
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
            schedule();
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
    run_timer_softirq(&mut k, cpu);
}

/// `irq_enter`.
pub fn irq_enter(cpu: usize) {
    if ready() {
        lock().sched.irq_enter(cpu);
    }
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

fn run_timer_softirq(k: &mut Kernel, _cpu: usize) {
    let j = k.jiffies.get();
    let t = now();
    for e in k.wheel.run_timers(j) {
        (e.function)(k, e.data, t);
    }
}

/// `process_timeout`, the callback of [`schedule_timeout`]'s timer: wake
/// the task in `data`.
fn process_timeout_fn(k: &mut Kernel, data: u64, now: u64) {
    process_timeout(&mut k.sched, data, now);
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
        now,
        false,
    );
    k.softirq[cpu] = s;
    let preempt = k.sched.irq_exit(cpu);
    if preempt && !from_el0 {
        schedule_locked(&mut k);
    }
    drop(k);
    if from_el0 {
        ret_to_user(frame);
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

// ----- kernel threads -------------------------------------------------------------

/// Gives task `id` a kernel stack whose first run calls `f(arg)` (or, with
/// `f` = None, returns to EL0 through the user frame at the stack top).
fn new_thread(k: &mut Kernel, id: TaskId, f: Option<extern "C" fn(usize)>, arg: usize) -> Option<&mut Thread> {
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

/// The path init execs (`init=` on the command line) and its arguments
/// (the command line's words after `--`), set once by `rest_init`.
static INIT: spin::Once<(alloc::string::String, alloc::string::String)> = spin::Once::new();

/// `rest_init`: init (pid 1) and kthreadd (pid 2) as kernel threads; init
/// will exec `init_path` (`/bin/init` unless the command line says `init=`)
/// with `init_args`.
pub fn rest_init(init_path: &str, init_args: &str) {
    INIT.call_once(|| (init_path.into(), init_args.into()));
    let mut k = lock();
    let t = now();
    let k2 = &mut *k;
    let (init, kthreadd) = k2.tasks.rest_init(&mut k2.sched, t).expect("rest_init");
    new_thread(&mut k, init, Some(init_thread), 0).expect("init's stack");
    new_thread(&mut k, kthreadd, Some(kthreadd_thread), 0).expect("kthreadd's stack");
    // `workqueue_init`: the events workqueue's worker, made by kthreadd.
    let k2 = &mut *k;
    k2.tasks.kthread_create(&mut k2.sched, "kworker/u:0", worker_thread as extern "C" fn(usize) as usize, None, t);
}

/// `worker_thread` of the events workqueue: run queued work items in
/// process context, without the kernel lock; sleep when there are none.
extern "C" fn worker_thread(_: usize) {
    loop {
        let mut k = lock();
        k.events.worker = Some(current());
        match k.events.process_one_work() {
            Some((_, func, data)) => {
                drop(k);
                func(data);
            }
            None => {
                // queue_work runs under the lock too: no wakeup is lost
                // between this check and the sleep.
                k.sched.set_current_state(smp_processor_id(), TaskState::Interruptible);
                schedule_locked(&mut k);
            }
        }
    }
}

/// kthreadd: forks the kernel threads others ask for, then sleeps.
extern "C" fn kthreadd_thread(_: usize) {
    loop {
        let mut k = lock();
        let cpu = smp_processor_id();
        let t = now();
        let k2 = &mut *k;
        let created = k2.tasks.kthreadd_run(&mut k2.sched, cpu, t);
        for id in created {
            let f = k.tasks.kthread_create_list.threadfns.iter().find(|(i, _)| *i == id).map(|(_, f)| *f);
            if let Some(f) = f {
                // SAFETY: kthread_create callers pass the address of an
                // `extern "C" fn(usize)`.
                let f: extern "C" fn(usize) = unsafe { core::mem::transmute(f) };
                if new_thread(&mut k, id, Some(f), 0).is_some() {
                    // Every request here is a `kthread_run`: start it.
                    k.sched.wake_up_process(id, t);
                }
            }
        }
        if k.tasks.kthread_create_list_is_empty() {
            k.sched.set_current_state(cpu, TaskState::Interruptible);
            schedule_locked(&mut k);
        }
    }
}

/// init's kernel half (`kernel_init`): exec the first user program.
extern "C" fn init_thread(_: usize) {
    let me = current();
    let (path, args) = INIT.get().map_or(("/bin/init", ""), |(p, a)| (p.as_str(), a.as_str()));
    let name = path.rsplit('/').next().unwrap_or(path);
    let argv: Vec<&[u8]> =
        core::iter::once(name.as_bytes()).chain(args.split_ascii_whitespace().map(str::as_bytes)).collect();
    let r = crate::kernel::exec::kernel_execve(me, path.as_bytes(), &argv);
    if let Err(e) = r {
        crate::println!("guest-kernel: cannot run {path} ({e:?}); powering off");
        super::psci::system_off();
    }
    // Returning lands in ret_from_fork's eret to the user frame exec wrote.
}

// ----- return to user, signals, faults ----------------------------------------------

/// A synchronous exception from EL0: system call, page fault, or a fault
/// that kills the process with SIGSEGV (or SIGILL/SIGBUS, shown as SIGSEGV
/// and SIGKILL's siblings here).
pub fn el0_sync(frame: &mut TrapFrame) {
    local_irq_enable();
    let e = esr_ec(frame.esr);
    match e {
        ec::SVC64 => {
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
    ret_to_user(frame);
}

/// Stops the other CPUs and powers off (PSCI SYSTEM_OFF).
pub fn poweroff() -> ! {
    let others = ((1u64 << super::cpu::nr_cpus()) - 1) & !(1 << smp_processor_id());
    irq::send_ipi(others, irq::IPI_CPU_STOP);
    super::psci::system_off()
}

/// `die` for a kernel bug found while handling a user request.
pub fn bug(frame: &TrapFrame, why: &str) -> ! {
    die(frame, slot::EL0_SYNC, why)
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

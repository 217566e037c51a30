//! Processes on the CPU: the kernel lock and state, the context switch
//! (`context_switch` → `cpu_switch_to`), idle, kthreadd, the tick, sleeping
//! with timeouts, the return-to-user work (signals, preemption), page
//! faults from EL0, and process lifetime (fork/clone, exec, exit, wait).
//!
//! LKD ch. 3 (processes), ch. 4 (schedule, preemption, wait queues),
//! ch. 11 (the tick, schedule_timeout); 《Linux内核深度解析》§2.5-§2.8
//! (cpu_switch_to saves x19-x29, sp and pc; `current` in a system register;
//! preemption on return from interrupt when preempt_count is zero).
//!
//! Locking: one lock, [`KLOCK`], covers the scheduler, the task table,
//! the table of address spaces (not their contents: each [`Mm`] has its
//! own `mmap_lock` and page-table lock, `arch/aarch64/mm.rs`), timers,
//! futexes and the tty, taken with interrupts masked (the order of all the
//! kernel's locks: `crate::sync`). Like Linux's run-queue lock it is held
//! across the context switch and released by the task that runs next
//! (`finish_task_switch` / [`schedule_tail`]). The page allocator and the
//! heap have their own locks, taken inside it. User memory is never
//! touched with it held (a fault may sleep on `mmap_lock`, and sleeping
//! takes it). The way back to user space and `getppid` read a per-CPU
//! copy ([`ThreadInfo`]) instead of taking it.

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{ReadWriteable, Readable, TCR_EL1, TPIDR_EL0, TPIDR_EL1, Writeable};
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};

use super::cpu::{local_irq_disable, local_irq_enable, local_irq_restore, local_irq_save, smp_processor_id};
use super::irq::{self, now_ns};
use super::mm::{GlobalAcct, Mm, current_mm, set_current_mm};
use super::pgtable::{UserPageTable, empty_ttbr0, switch_ttbr0};
use super::trap::{FRAME_SIZE, TrapFrame, die, ec, esr_ec, esr_fsc, esr_is_write, fsc_is_mm_fault, slot};
use super::uaccess::put_user_i32;
use super::{MAX_CPUS, memory};
use crate::futex::FutexHash;
use crate::irq::softirq::{HI_SOFTIRQ, SoftirqState, TASKLET_SOFTIRQ, TIMER_SOFTIRQ};
use crate::irq::tasklet::TaskletQueue;
use crate::irq::workqueue::Workqueue;
use crate::irq::{IrqReturn, IrqTable};
use crate::mm::Errno;
use crate::mm::fault::{Access, FaultError, handle_mm_fault};
use crate::mm::mm_struct::{MmStruct, PageOps, PageTable, TASK_SIZE};
use crate::mm::oom::{MemInfo, OomChoice, OomTask, Overcommit, OvercommitPolicy, select_bad_process};
use crate::mm::page::Pfn;
use crate::sched::waitqueue::WaitQueueHead;
use crate::sched::{Scheduler, TaskId, TaskState};
use crate::sync;
use crate::task::TaskTable;
use crate::task::task_struct::{ExitState, MmHandle, SIGCHLD, SIGKILL, SIGSEGV};
use crate::time::delay::{PROCESS_TIMEOUT, process_timeout};
use crate::time::{Jiffies, TimerWheel};

// ----- the kernel lock --------------------------------------------------------

/// The kernel lock: a test-and-set spin lock whose word holds the owner
/// (CPU + 1) and whose waiters wait in WFE (`sync::spinlock::wait_until_free`;
/// the release is a store-release plus, if anyone waits, `dsb ishst;
/// sev`), so under QEMU's
/// round-robin TCG (-icount) a waiter gives its time slice to the holder
/// instead of spinning it away. It is released by whichever task runs
/// next on the CPU that took it (the hand-over across `cpu_switch_to`),
/// which a guard tied to one stack frame cannot express, so it is not a
/// `SpinLock<T>`; taking it twice on one CPU is caught instead of
/// hanging, with or without lockdep. Lockdep class [`sync::KLOCK`]: the
/// outermost lock; the per-CPU held stack follows the hand-over, as the
/// lock stays on its CPU.
///
/// Like `sync::RawSpinLock` (not a ticket lock, on measurement: see
/// `sync::spinlock`), but the word is the owner, so
/// that a second `lock` on the same CPU is reported.
pub struct KernelLock {
    owner: AtomicU32,
    waiters: AtomicU32,
}

impl KernelLock {
    const fn new() -> Self {
        KernelLock { owner: AtomicU32::new(0), waiters: AtomicU32::new(0) }
    }
    fn lock(&self) {
        let me = smp_processor_id() as u32 + 1;
        sync::lockdep::acquire(&sync::KLOCK, true);
        loop {
            match self.owner.compare_exchange_weak(0, me, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return,
                Err(o) if o == me => {
                    crate::console::emergency_print(format_args!(
                        "*** guest-kernel: kernel lock taken twice on CPU{}\n",
                        me - 1
                    ));
                    super::psci::system_off();
                }
                Err(0) => {}
                Err(_) => sync::spinlock::wait_until_free(&self.owner, &self.waiters),
            }
        }
    }
    fn unlock(&self) {
        self.owner.store(0, Ordering::Release);
        sync::spinlock::wake_waiters(&self.waiters);
        sync::lockdep::release(&sync::KLOCK);
    }
}

/// The kernel lock.
pub static KLOCK: KernelLock = KernelLock::new();
static mut KERNEL: Option<Kernel> = None;
static KERNEL_READY: AtomicBool = AtomicBool::new(false);

/// Proof that this CPU holds [`KLOCK`] with interrupts masked; derefs to
/// the kernel state. Dropping it releases the lock and restores DAIF.
pub struct KGuard {
    daif: u64,
}

/// Takes the kernel lock.
pub fn lock() -> KGuard {
    let daif = local_irq_save();
    KLOCK.lock();
    KGuard { daif }
}

impl core::ops::Deref for KGuard {
    type Target = Kernel;
    fn deref(&self) -> &Kernel {
        // SAFETY: KLOCK is held: nobody else touches KERNEL; it was set
        // before KERNEL_READY, which every path to `lock` follows.
        unsafe { (*core::ptr::addr_of!(KERNEL)).as_ref().expect("kernel state") }
    }
}

impl core::ops::DerefMut for KGuard {
    fn deref_mut(&mut self) -> &mut Kernel {
        // SAFETY: as for Deref; the guard is unique on this CPU.
        unsafe { (*core::ptr::addr_of_mut!(KERNEL)).as_mut().expect("kernel state") }
    }
}

impl Drop for KGuard {
    fn drop(&mut self) {
        let cpu = smp_processor_id();
        // The CPUs asked to reschedule or kicked (this one included) have
        // work on their way out, and perhaps a new parent; the others get
        // the IPI (their `current` cannot change while we hold the lock).
        let kicked = self.sched.take_resched_ipis();
        for c in kicked.iter(self.sched.nr_cpus()) {
            THREAD_INFO[c].work.store(true, Ordering::Relaxed);
            forget_ppid(c);
        }
        KLOCK.unlock();
        irq::send_ipi(kicked.0 & !(1 << cpu), irq::IPI_RESCHEDULE);
        local_irq_restore(self.daif);
    }
}

// ----- thread_info: what EL0's hot paths read without the lock -------------------

/// The part of `thread_info` that the way back to user space and
/// `getppid` read without the kernel lock, kept per CPU for the task that
/// CPU runs (Linux keeps TIF flags in the task and reads `real_parent`
/// under RCU). Written only with the lock held, so always about the CPU's
/// `current` (which only changes under the lock): set in full after each
/// context switch (`finish_task_switch`); `work` raised, and `ppid`
/// forgotten, for each CPU the scheduler asks to reschedule or that
/// `kick_process` names (a signal, a new parent) as the lock is released,
/// before the IPI; `work` lowered only by the slow path of
/// [`ret_to_user`] when it finds nothing left to do.
struct ThreadInfo {
    /// `TIF_NEED_RESCHED | TIF_SIGPENDING`: the current task must
    /// reschedule or has a pending signal (SIGCHLD included: the slow path
    /// drops it, as it is ignored).
    work: AtomicBool,
    /// `task_tgid_vnr(current->real_parent)` of the current thread group,
    /// or [`PPID_UNKNOWN`].
    ppid: AtomicI32,
}

/// [`ThreadInfo::ppid`] when it must be looked up again.
const PPID_UNKNOWN: i32 = -1;

static THREAD_INFO: [ThreadInfo; MAX_CPUS] =
    [const { ThreadInfo { work: AtomicBool::new(false), ppid: AtomicI32::new(PPID_UNKNOWN) } }; MAX_CPUS];

/// Rewrites `cpu`'s `work` flag from the kernel state (lock held).
fn set_work(k: &Kernel, cpu: usize) {
    let signal = k.tasks.get(k.sched.current(cpu)).is_some_and(|t| t.pending != 0);
    THREAD_INFO[cpu].work.store(signal || k.sched.need_resched(cpu), Ordering::Relaxed);
}

/// Forgets `cpu`'s copy of its task's parent (lock held): after a context
/// switch, and for a kicked CPU (its task may have a new parent). The
/// next `getppid` there takes the lock once to look it up again.
fn forget_ppid(cpu: usize) {
    THREAD_INFO[cpu].ppid.store(PPID_UNKNOWN, Ordering::Relaxed);
}

/// `getppid`: the parent of the thread group this CPU runs, from this
/// CPU's copy, without the lock unless the copy was forgotten since (a
/// switch, a kick); interrupts masked so that the CPU cannot change
/// under us.
pub fn current_ppid() -> i32 {
    let daif = local_irq_save();
    let cpu = smp_processor_id();
    let mut ppid = THREAD_INFO[cpu].ppid.load(Ordering::Relaxed);
    if ppid == PPID_UNKNOWN {
        let k = lock();
        ppid = k.tasks.get(k.sched.current(cpu)).map_or(0, |t| {
            let leader = k.tasks.get(t.group_leader).unwrap_or(t);
            leader.real_parent.and_then(|p| k.tasks.get(p)).map_or(0, |p| p.tgid)
        });
        // Stored with the lock held: a kick, which forgets it, cannot
        // come between the lookup and the store.
        THREAD_INFO[cpu].ppid.store(ppid, Ordering::Relaxed);
        drop(k);
    }
    local_irq_restore(daif);
    ppid
}

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
    fn new_kernel_stack() -> Option<Box<Self>> {
        let stack = KStack::new()?;
        Some(Box::new(Thread { ctx: CpuContext::zero(), stack: Some(stack) }))
    }

    fn stack_top(&self) -> usize {
        self.stack.as_ref().map_or(0, |s| s.0.as_ptr() as usize + THREAD_SIZE)
    }

    /// The user register frame at the top of the kernel stack.
    fn user_frame(&mut self) -> &mut TrapFrame {
        let p = (self.stack_top() - FRAME_SIZE) as *mut TrapFrame;
        // SAFETY: the top FRAME_SIZE bytes of our own stack hold the frame
        // (exceptions.S builds it there for an exception from EL0).
        unsafe { &mut *p }
    }
}

unsafe extern "C" {
    fn cpu_switch_to(prev: *mut CpuContext, next: *const CpuContext);
    fn ret_from_fork();
}

/// Everything behind the kernel lock.
pub struct Kernel {
    pub sched: Scheduler,
    pub tasks: TaskTable,
    pub threads: BTreeMap<TaskId, Box<Thread>>,
    /// The address spaces by handle (`task.mm`), while they have users.
    /// Only the table is behind the kernel lock: each [`Mm`] has its own
    /// locks (`arch/aarch64/mm.rs`).
    pub mms: BTreeMap<u32, Arc<Mm>>,
    pub wheel: TimerWheel,
    /// `futex_queues`.
    pub futex: FutexHash,
    pub jiffies: Jiffies,
    pub softirq: [SoftirqState; MAX_CPUS],
    /// The irq descriptor table: the timer and the console's UART are
    /// registered with `request_irq` and dispatched by `generic_handle_irq`.
    pub irqs: IrqTable<Kernel>,
    /// Each CPU's tasklet lists (`tasklet_vec`).
    pub tasklets: [TaskletQueue; MAX_CPUS],
    /// `system_wq` and its kworker.
    pub events: Workqueue,
    /// The console tty.
    pub tty: super::tty::ConsoleTty,
    /// A dead task's thread, freed by the next task on that CPU.
    dead: [Option<Box<Thread>>; MAX_CPUS],
    pub randomize: bool,
    pub initrd: &'static [u8],
    /// OOM victims not yet reaped (by pid).
    pub oom_victims: Vec<i32>,
    seed: u64,
    hz: u32,
}

/// Initialises the process subsystem on the boot CPU (`sched_init`,
/// `fork_init`, the timer wheel), with `nr_cpus` idle tasks; the boot CPU
/// becomes idle task 0.
pub fn init(nr_cpus: usize, hz: u32, randomize: bool, overcommit: OvercommitPolicy, initrd: &'static [u8]) {
    let (mut tasks, idle) = TaskTable::new(32768, nr_cpus);
    let mut sched = Scheduler::new(u64::from(hz), &idle);
    // Stolen time (DEN0057 PV_TIME) under a hypervisor that reports it:
    // each CPU maps its structure as it starts (`secondary_start`).
    if super::pvtime::probe()
        && let Some(ipa) = super::pvtime::init_cpu(0)
    {
        sched.set_steal_clock(super::pvtime::steal_clock);
        crate::println!("guest-kernel: stolen time: PV_TIME (DEN0057), CPU0's record at IPA {ipa:#x}");
    }
    let jiffies = Jiffies::new(hz);
    let total = memory::with_pages(|pa| pa.totalram_pages());
    // fork_init: a fork bomb meets EAGAIN at max_threads, as on Linux.
    tasks.set_max_threads((total * crate::mm::page::PAGE_SIZE) as u64, THREAD_SIZE);
    let mut acct = Overcommit::new(MemInfo { totalram: total, free: total, ..MemInfo::default() });
    acct.policy = overcommit;
    super::mm::init_acct(acct);
    let mut threads = BTreeMap::new();
    for &id in &idle {
        threads.insert(id, Box::new(Thread { ctx: CpuContext::zero(), stack: None }));
    }
    let k = Kernel {
        sched,
        tasks,
        threads,
        mms: BTreeMap::new(),
        wheel: TimerWheel::new(jiffies.get()),
        futex: FutexHash::new(256 * nr_cpus),
        jiffies,
        softirq: core::array::from_fn(|_| SoftirqState::new()),
        irqs: IrqTable::new(1020),
        tasklets: core::array::from_fn(|_| TaskletQueue::new()),
        events: Workqueue::new(),
        tty: Default::default(),
        dead: core::array::from_fn(|_| None),
        randomize,
        initrd,
        oom_victims: Vec::new(),
        seed: now_ns() | 1,
        hz,
    };
    // SAFETY: single CPU, before KERNEL_READY: nobody else can look.
    unsafe { *core::ptr::addr_of_mut!(KERNEL) = Some(k) };
    let mut k = lock();
    // The tick's top half; the line is per-CPU (a PPI), the action shared.
    k.irqs.request_irq(irq::timer_intid(), timer_interrupt, 0, "arch_timer", 0).expect("timer irq");
    drop(k);
    set_current_thread(idle[0]);
    KERNEL_READY.store(true, Ordering::Release);
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

/// Whether `init` has run (secondary CPUs wait for it).
pub fn ready() -> bool {
    KERNEL_READY.load(Ordering::Acquire)
}

/// TPIDR_EL1 = the current task's id + 1 (`current`; 0 = none).
fn set_current_thread(id: TaskId) {
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
    let mut k = KGuard { daif: 0 };
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
fn timer_interrupt(_irq: u32, _dev: usize, k: &mut Kernel) -> IrqReturn {
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
    q.tasklet_action(hi, s, |func, _data| {
        if func == super::tty::FLIP_TASKLET {
            super::tty::flip_tasklet(k, now());
        }
    });
    k.tasklets[cpu] = q;
}

fn run_timer_softirq(k: &mut Kernel, _cpu: usize) {
    let j = k.jiffies.get();
    let t = now();
    for e in k.wheel.run_timers(j) {
        if e.function == PROCESS_TIMEOUT {
            process_timeout(&mut k.sched, e.data, t);
        }
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
    let t = k.wheel.timer_setup(PROCESS_TIMEOUT, u64::from(me.0));
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
            Some((_, func, _data)) => {
                drop(k);
                if func == super::tty::ECHO_WORK {
                    super::tty::echo_work();
                }
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
    let r = super::exec::kernel_execve(me, path.as_bytes(), &argv);
    if let Err(e) = r {
        crate::println!("guest-kernel: cannot run {path} ({e:?}); powering off");
        super::psci::system_off();
    }
    // Returning lands in ret_from_fork's eret to the user frame exec wrote.
}

// ----- return to user, signals, faults ----------------------------------------------

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

/// A synchronous exception from EL0: system call, page fault, or a fault
/// that kills the process with SIGSEGV (or SIGILL/SIGBUS, shown as SIGSEGV
/// and SIGKILL's siblings here).
pub fn el0_sync(frame: &mut TrapFrame) {
    local_irq_enable();
    let e = esr_ec(frame.esr);
    match e {
        ec::SVC64 => {
            let ret = super::syscall::dispatch(frame);
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

fn segv(frame: &TrapFrame, what: &str) {
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

/// Page-frame operations on the shared page allocator: a user page comes
/// from this CPU's pcp list (its lock only), reference counts are atomics.
pub struct LockedPages;

impl PageOps for LockedPages {
    fn alloc_user_page(&mut self) -> Option<Pfn> {
        memory::with_pages(|pa| {
            pa.alloc_page(
                crate::mm::gfp::Gfp::GFP_HIGHUSER_MOVABLE | crate::mm::gfp::Gfp::__GFP_ZERO,
                smp_processor_id(),
            )
        })
    }
    fn alloc_user_page_for_copy(&mut self) -> Option<Pfn> {
        memory::with_pages(|pa| pa.alloc_page(crate::mm::gfp::Gfp::GFP_HIGHUSER_MOVABLE, smp_processor_id()))
    }
    fn copy_page(&mut self, dst: Pfn, src: Pfn) {
        use crate::mm::zone::PhysMem;
        memory::LinearMem.copy_page(dst, src);
    }
    fn get_page(&mut self, pfn: Pfn) {
        memory::with_pages(|pa| pa.get_page(pfn));
    }
    fn put_page(&mut self, pfn: Pfn) {
        memory::with_pages(|pa| pa.put_page(pfn, smp_processor_id()));
    }
    fn page_count(&self, pfn: Pfn) -> u32 {
        memory::with_pages(|pa| pa.page_count(pfn))
    }
}

/// `do_page_fault` for a user address in the current address space.
/// Returns whether the access may be retried; on OOM the OOM killer runs
/// (and the faulting task may be its victim).
///
/// Locking: the address space's own locks only (`arch/aarch64/mm.rs`):
/// `mmap_lock` for reading and the page-table lock, or `mmap_lock` for
/// writing when a stack must grow (`expand_stack` changes the VMA tree).
/// The kernel lock is taken only to sleep on a contended `mmap_lock` (the
/// scheduler is behind it) and for the OOM killer, which reads the task
/// table and signals the victim; the fault's own locks are released
/// first, as Linux's `VM_FAULT_OOM` → `pagefault_out_of_memory` does.
pub fn user_fault(addr: usize, write: bool, exec: bool) -> bool {
    use crate::mm::fault::{handle_mm_fault_read_locked, needs_stack_growth};
    let access = if exec {
        Access::Exec
    } else if write {
        Access::Write
    } else {
        Access::Read
    };
    if !ready() {
        return false;
    }
    let Some(mm) = current_mm() else { return false };
    let r = {
        let vmas = mm.mmap_lock.read();
        if needs_stack_growth(&vmas, addr) {
            drop(vmas);
            let mut vmas = mm.mmap_lock.write();
            let mut pt = mm.page_table_lock.lock_irqsave();
            handle_mm_fault(&mut vmas, &mut *pt, &mut LockedPages, &mut GlobalAcct, addr, access)
        } else {
            let mut pt = mm.page_table_lock.lock_irqsave();
            handle_mm_fault_read_locked(&vmas, &mut *pt, &mut LockedPages, addr, access)
        }
    };
    drop(mm);
    match r {
        Ok(_) => true,
        Err(FaultError::Segv(_)) => false,
        Err(FaultError::Oom) => {
            out_of_memory(&mut lock());
            // Retry: memory comes back once the victim exits; if we are
            // the victim, the pending SIGKILL ends us on the way out.
            true
        }
    }
}

/// `out_of_memory`: choose the process with the highest badness and kill it.
pub fn out_of_memory(k: &mut KGuard) {
    let victims: Vec<i32> = k.oom_victims.clone();
    let list: Vec<OomTask> = k
        .tasks
        .iter()
        .filter(|t| t.thread_group_leader() && t.exit_state == ExitState::None)
        .map(|t| {
            let rss = t.mm.and_then(|h| k.mms.get(&h.0)).map_or(0, |m| m.page_table_lock.lock().rss());
            OomTask {
                pid: t.pid as u32,
                rss,
                swapents: 0,
                pgtables_bytes: 0,
                oom_score_adj: 0,
                is_kthread: t.is_kthread(),
                oom_victim: victims.contains(&t.pid),
            }
        })
        .collect();
    let total = memory::with_pages(|pa| pa.totalram_pages());
    match select_bad_process(&list, total) {
        OomChoice::Kill(pid, points) => {
            crate::println!("guest-kernel: Out of memory: Killed process {pid} (badness {points})");
            k.oom_victims.push(pid as i32);
            let t = now();
            let k2 = &mut **k;
            let _ = k2.tasks.send_signal(&mut k2.sched, pid as i32, SIGKILL, false, t);
        }
        OomChoice::Wait(_) => {}
        OomChoice::NoVictim => {
            crate::println!("guest-kernel: Out of memory and no killable processes");
        }
    }
}

// ----- fork, exit, wait -------------------------------------------------------------

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

/// `exit_mm`: the current task stops using its address space (`task.mm`
/// = None); the last user unmaps it, with no lock held. The page tables
/// stay until the CPU switches away from them (`set_current_mm` in the
/// context switch drops the last reference).
pub fn exit_mm(me: TaskId) {
    let last = {
        let mut k = lock();
        let Some(h) = k.tasks.get_mut(me).and_then(|t| t.mm.take()) else { return };
        mmput(&mut k, h)
    };
    if let Some(m) = last {
        m.exit_mmap();
    }
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
    let t = now();
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
    let pid = k.tasks.get(child).map_or(0, |t| t.pid);
    let top = thread.stack_top();
    thread.ctx.sp = (top - FRAME_SIZE) as u64;
    thread.ctx.pc = ret_from_fork as *const () as u64;
    thread.ctx.tpidr_el0 = if flags & CLONE_SETTLS != 0 { tls } else { read_tpidr_el0() };
    if flags & CLONE_CHILD_SETTID != 0 {
        // ret_from_fork hands x21/x22 to schedule_tail.
        thread.ctx.x19_x28[2] = child_tid as u64;
        thread.ctx.x19_x28[3] = pid as u64;
    }
    k.threads.insert(child, thread);
    let f = k.threads.get_mut(&child).expect("child thread").user_frame();
    *f = *frame;
    f.x[0] = 0;
    if newsp != 0 {
        f.sp = newsp;
    }
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
    let t = now();
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
    let _ = super::futex::futex_wake(addr, false, 1, crate::futex::FUTEX_BITSET_MATCH_ANY);
}

/// `do_exit` for the current task with wait status `status`; never returns.
/// init's exit powers the machine off, as Linux panics ("Attempted to kill
/// init!") — after saying why.
pub fn do_exit(status: i32) -> ! {
    mm_release_child_tid();
    exit_mm(current());
    let mut k = lock();
    let cpu = smp_processor_id();
    let me = k.sched.current(cpu);
    let pid = k.tasks.get(me).map_or(0, |t| t.pid);
    let t = now();
    let k2 = &mut *k;
    if k2.tasks.do_exit(&mut k2.sched, me, status, t).is_err() {
        drop(k);
        let (code, sig) = ((status >> 8) & 0xff, status & 0x7f);
        if sig != 0 {
            crate::println!("guest-kernel: init (pid 1) killed by signal {sig}; powering off");
        } else {
            crate::println!("guest-kernel: init (pid 1) exited with status {code}; powering off");
        }
        poweroff();
    }
    k.oom_victims.retain(|&p| p != pid);
    schedule_locked(&mut k);
    unreachable!("a dead task was scheduled");
}

/// `do_group_exit`: SIGKILL every other thread of the group, then exit.
/// The first caller records its status as the group's (`group_exit_code`,
/// SIGNAL_GROUP_EXIT); the threads it kills, dying through here too, exit
/// with that status instead of SIGKILL's, as in Linux.
pub fn do_group_exit(status: i32) -> ! {
    let status = {
        let mut k = lock();
        let me = current();
        let t = now();
        let leader = k.tasks.get(me).map(|t| t.group_leader);
        let group = leader.and_then(|l| k.tasks.get_mut(l));
        match group {
            Some(l) if l.group_exit_code.is_some() => l.group_exit_code.unwrap_or(status),
            Some(l) => {
                l.group_exit_code = Some(status);
                let mut threads: Vec<TaskId> = l.thread_group.clone();
                threads.push(l.id);
                for th in threads.into_iter().filter(|&th| th != me) {
                    if let Some(tt) = k.tasks.get_mut(th) {
                        tt.pending |= 1 << SIGKILL;
                    }
                    k.sched.wake_up_process(th, t);
                    k.sched.kick_process(th);
                }
                status
            }
            None => status,
        }
    };
    do_exit(status)
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

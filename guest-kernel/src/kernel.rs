//! The kernel's state and its lock: everything the scheduler, the task
//! table, timers, futexes and the tty share lives in one [`Kernel`] value
//! behind [`KLOCK`], reached through the [`KGuard`] that [`lock`] returns;
//! and the per-CPU [`ThreadInfo`] that the way back to user space and
//! `getppid` read without it. The parts of process management that are
//! not tied to the CPU are in `kernel/` (fork, exit, exec, fault, oom,
//! signal, futex, sched, softirq, kthread), as Linux's `kernel/`
//! directory; the threads' registers, the context switch, the idle loop
//! and the tick's top half are the arch glue's (`arch/aarch64/process.rs`).
//!
//! Locking: one lock, [`KLOCK`], covers the scheduler, the task table,
//! the table of address spaces (not their contents: each [`Mm`] has its
//! own `mmap_lock` and page-table lock, `arch/aarch64/mm.rs`), timers,
//! futexes and the tty, taken with interrupts masked (the order of all the
//! kernel's locks: `crate::sync`). Like Linux's run-queue lock it is held
//! across the context switch and released by the task that runs next
//! (`finish_task_switch` / `schedule_tail`). The page allocator and the
//! heap have their own locks, taken inside it. User memory is never
//! touched with it held (a fault may sleep on `mmap_lock`, and sleeping
//! takes it). LKD ch. 9-10 (kernel synchronization).
//!
//! Why each part of [`Kernel`] is still behind the one lock (issue 14
//! wants the big lock gone; docs/guest-kernel.md, "What is left"):
//! - `sched`: one `Scheduler` value holds every run queue and every task's
//!   scheduling state; a lock per run queue needs that state split by run
//!   queue first (Linux's `task_rq_lock`).
//! - `threads`, `dead`, `mms`: the context switch reads the next task's
//!   registers and address space with the scheduler's lock held, so they
//!   share it until the scheduler has its own.
//! - `tasks`: fork, exit and wait change the process tree and wake
//!   through the scheduler in one step; a reader-writer `tasklist_lock`
//!   outside the scheduler's lock comes with the split above. `getppid`
//!   and the way back to user space already read per-CPU copies.
//! - `wheel`, `jiffies`, `softirq`, `tasklets`, `events`, `futex`, `tty`:
//!   every one of them sleeps or wakes through the scheduler under the
//!   same lock (a timer wakes a sleeper, a futex queues one); they can
//!   have their own locks, taken before the scheduler's, once it has one.

pub mod exec;
pub mod exit;
pub mod fault;
pub mod fork;
pub mod fs;
pub mod futex;
pub mod itimer;
pub mod kthread;
pub mod oom;
pub mod sched;
pub mod signal;
pub mod softirq;

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};

use crate::arch::aarch64::cpu::{local_irq_restore, local_irq_save, smp_processor_id};
use crate::arch::aarch64::irq::{self, now_ns};
use crate::arch::aarch64::mm::Mm;
use crate::arch::aarch64::process::{self, Thread};
use crate::arch::aarch64::pvtime;
use crate::arch::aarch64::{MAX_CPUS, memory};
use crate::futex::FutexHash;
use crate::irq::IrqTable;
use crate::irq::softirq::SoftirqState;
use crate::irq::tasklet::TaskletQueue;
use crate::irq::workqueue::Workqueue;
use crate::mm::oom::{MemInfo, Overcommit, OvercommitPolicy};
use crate::sched::{Scheduler, TaskId};
use crate::sync;
use crate::task::TaskTable;
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
                    crate::arch::aarch64::psci::system_off();
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

impl KGuard {
    /// The guard of the lock handed over across `cpu_switch_to` to a new
    /// task's first code (`schedule_tail`), which releases it and unmasks
    /// interrupts (DAIF 0): only there does this CPU hold KLOCK without a
    /// guard.
    pub(crate) fn handed_over() -> KGuard {
        KGuard { daif: 0 }
    }
}

#[allow(unsafe_code)] // the one way to the kernel state: with the lock held
impl core::ops::Deref for KGuard {
    type Target = Kernel;
    fn deref(&self) -> &Kernel {
        // SAFETY: KLOCK is held: nobody else touches KERNEL; it was set
        // before KERNEL_READY, which every path to `lock` follows.
        unsafe { (*core::ptr::addr_of!(KERNEL)).as_ref().expect("kernel state") }
    }
}

#[allow(unsafe_code)] // as Deref
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
pub struct ThreadInfo {
    /// `TIF_NEED_RESCHED | TIF_SIGPENDING`: the current task must
    /// reschedule or has a pending signal (SIGCHLD included: the slow path
    /// drops it, as it is ignored).
    pub work: AtomicBool,
    /// `task_tgid_vnr(current->real_parent)` of the current thread group,
    /// or [`PPID_UNKNOWN`].
    ppid: AtomicI32,
}

/// [`ThreadInfo::ppid`] when it must be looked up again.
const PPID_UNKNOWN: i32 = -1;

pub(crate) static THREAD_INFO: [ThreadInfo; MAX_CPUS] =
    [const { ThreadInfo { work: AtomicBool::new(false), ppid: AtomicI32::new(PPID_UNKNOWN) } }; MAX_CPUS];

/// `cpu` has just switched tasks (`finish_task_switch`, lock held): its
/// copy is made about the new `current`: `work` exactly as the kernel
/// state has it, the parent forgotten (looked up at the next `getppid`).
pub(crate) fn switched_to(k: &Kernel, cpu: usize) {
    let signal = k.tasks.signal_pending(k.sched.current(cpu)) || k.tasks.group_stopped(k.sched.current(cpu));
    THREAD_INFO[cpu].work.store(signal || k.sched.need_resched(cpu), Ordering::Relaxed);
    forget_ppid(cpu);
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

/// A timer's callback (`timer_list.function`): runs in the timer softirq
/// with the kernel lock held, with the timer's data and the time (ns).
pub type TimerFn = fn(&mut Kernel, u64, u64);
/// A tasklet's function: runs in the tasklet softirq with the kernel lock
/// held, with the tasklet's data.
pub type TaskletFn = fn(&mut Kernel, u64);
/// A work item's function: runs in the events worker (`kworker`), in
/// process context without the kernel lock, with the item's data.
pub type WorkFn = fn(u64);

/// Everything behind the kernel lock.
pub struct Kernel {
    pub sched: Scheduler,
    pub tasks: TaskTable,
    pub threads: BTreeMap<TaskId, Box<Thread>>,
    /// The address spaces by handle (`task.mm`), while they have users.
    /// Only the table is behind the kernel lock: each [`Mm`] has its own
    /// locks (`arch/aarch64/mm.rs`).
    pub mms: BTreeMap<u32, Arc<Mm>>,
    pub wheel: TimerWheel<TimerFn>,
    /// `futex_queues`.
    pub futex: FutexHash,
    pub jiffies: Jiffies,
    pub softirq: [SoftirqState; MAX_CPUS],
    /// The irq descriptor table: the timer and the console's UART are
    /// registered with `request_irq` and dispatched by `generic_handle_irq`.
    pub irqs: IrqTable<Kernel>,
    /// Each CPU's tasklet lists (`tasklet_vec`).
    pub tasklets: [TaskletQueue<TaskletFn>; MAX_CPUS],
    /// `system_wq` and its kworker.
    pub events: Workqueue<WorkFn>,
    /// The console tty.
    pub tty: crate::arch::aarch64::tty::ConsoleTty,
    /// The VFS: files, directories, open files, descriptor tables, pipes
    /// (`kernel/fs.rs`). Behind the kernel lock because pipes sleep and
    /// wake through the scheduler; the dentry tree and file data could
    /// have their own lock once the scheduler has its own.
    pub vfs: crate::fs::Vfs,
    /// A dead task's thread, freed by the next task on that CPU.
    pub dead: [Option<Box<Thread>>; MAX_CPUS],
    pub randomize: bool,
    pub initrd: &'static [u8],
    /// OOM victims not yet reaped (by pid).
    pub oom_victims: Vec<i32>,
    pub seed: u64,
    pub hz: u32,
}

/// Initialises the process subsystem on the boot CPU (`sched_init`,
/// `fork_init`, the timer wheel), with `nr_cpus` idle tasks; the boot CPU
/// becomes idle task 0.
#[allow(unsafe_code)] // KERNEL is written once, before anyone can read it
pub fn init(nr_cpus: usize, hz: u32, randomize: bool, overcommit: OvercommitPolicy, initrd: &'static [u8]) {
    let (mut tasks, idle) = TaskTable::new(32768, nr_cpus);
    let mut sched = Scheduler::new(u64::from(hz), &idle);
    // Stolen time (DEN0057 PV_TIME) under a hypervisor that reports it:
    // each CPU maps its structure as it starts (`secondary_start`).
    if pvtime::probe()
        && let Some(ipa) = pvtime::init_cpu(0)
    {
        sched.set_steal_clock(pvtime::steal_clock);
        crate::println!("guest-kernel: stolen time: PV_TIME (DEN0057), CPU0's record at IPA {ipa:#x}");
    }
    let jiffies = Jiffies::new(hz);
    let total = memory::with_pages(|pa| pa.totalram_pages());
    // fork_init: a fork bomb meets EAGAIN at max_threads, as on Linux.
    tasks.set_max_threads((total * crate::mm::page::PAGE_SIZE) as u64, process::THREAD_SIZE);
    let mut acct = Overcommit::new(MemInfo { totalram: total, free: total, ..MemInfo::default() });
    acct.policy = overcommit;
    crate::arch::aarch64::mm::init_acct(acct);
    let mut threads = BTreeMap::new();
    for &id in &idle {
        threads.insert(id, Thread::idle());
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
        vfs: fs::boot_vfs(initrd, total),
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
    k.irqs.request_irq(irq::timer_intid(), process::timer_interrupt, 0, "arch_timer", 0).expect("timer irq");
    drop(k);
    process::set_current_thread(idle[0]);
    KERNEL_READY.store(true, Ordering::Release);
    process::start_user_tables();
}

/// Whether `init` has run (secondary CPUs wait for it).
pub fn ready() -> bool {
    KERNEL_READY.load(Ordering::Acquire)
}

//! `tests`: the EL0 test suite init runs at boot. Each test prints
//! `ok - NAME` or `FAIL - NAME: why`; the last line is `N passed, N failed`.
//! Child processes do the dangerous parts (bad pointers, segfaults, OOM,
//! fork bombs), so a kernel that survives them keeps running the suite.
#![cfg_attr(target_os = "none", no_std, no_main)]

use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use guest_user::println;
use guest_user::sys::clone::{CLONE_CHILD_SETTID, CLONE_SETTLS, THREAD_FLAGS};
use guest_user::sys::futex::{FUTEX_CMP_REQUEUE, FUTEX_PRIVATE_FLAG, FUTEX_WAIT, FUTEX_WAKE};
use guest_user::sys::{self, SIGKILL, SIGSEGV};

const EFAULT: isize = -14;
const ENOENT: isize = -2;
const ESRCH: isize = -3;
const ECHILD: isize = -10;
const EAGAIN: isize = -11;
const EINVAL: isize = -22;
const E2BIG: isize = -7;
const EPERM: isize = -1;
const EBUSY: isize = -16;
const ENOSYS: isize = -38;
const ELOOP: isize = -40;
const ETIMEDOUT: isize = -110;
const PROT_READ: usize = 1;
const PROT_WRITE: usize = 2;
const MAP_SHARED: usize = 0x01;
const MAP_PRIVATE: usize = 0x02;
const MAP_ANONYMOUS: usize = 0x20;
const MAP_NORESERVE: usize = 0x4000;
const SCHED_OTHER: usize = 0;
const SCHED_FIFO: usize = 1;
const SCHED_RR: usize = 2;
const SCHED_DEADLINE: usize = 6;
#[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
const CLONE_VM: usize = 0x100;
#[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
const CLONE_VFORK: usize = 0x4000;
const PR_SET_CHILD_SUBREAPER: usize = 36;

/// How many checks the suite has, and how many of them need two or more
/// CPUs (skipped, and counted as such, with one). The suite prints both
/// first; a run that reports a different number of checks fails, so a check
/// cannot vanish (an early return, a lost branch) without a failure.
const CHECKS: u32 = 80;
const CHECKS_NEED_2_CPUS: u32 = 2;

struct Suite {
    passed: u32,
    failed: u32,
    skipped: u32,
}

impl Suite {
    fn skip(&mut self, name: &str, why: &str) {
        self.skipped += 1;
        println!("skip - {name}: {why}");
    }

    fn check(&mut self, name: &str, ok: bool, why: core::fmt::Arguments) {
        if ok {
            self.passed += 1;
            println!("ok - {name}");
        } else {
            self.failed += 1;
            println!("FAIL - {name}: {why}");
        }
    }
}

/// Runs `f` in a forked child; returns its wait status.
fn in_child(f: impl FnOnce() -> i32) -> i32 {
    let pid = sys::fork();
    if pid == 0 {
        sys::exit_group(f());
    }
    if pid < 0 {
        return -1;
    }
    let (r, status) = sys::wait4(pid, 0);
    if r != pid { -2 } else { status }
}

/// A shared anonymous page, touched so that children share it after fork.
fn shared_page() -> *mut u64 {
    let p = sys::mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert!(p > 0, "shared mmap failed");
    let p = p as *mut u64;
    // SAFETY: a fresh read-write page of ours.
    unsafe { core::ptr::write_bytes(p, 0, 512) };
    p
}

fn read_shared(p: *mut u64, i: usize) -> u64 {
    // SAFETY: index within the shared page.
    unsafe { core::ptr::read_volatile(p.add(i)) }
}

fn write_shared(p: *mut u64, i: usize, v: u64) {
    // SAFETY: index within the shared page.
    unsafe { core::ptr::write_volatile(p.add(i), v) }
}

/// Word `i` of a shared page as an atomic.
fn shared_atomic(p: *mut u64, i: usize) -> &'static AtomicU64 {
    // SAFETY: index within the shared page, which is mapped for the life of
    // the process and only ever accessed atomically through this word.
    unsafe { AtomicU64::from_ptr(p.add(i)) }
}

/// Word 0 of a shared page as a 32-bit futex word (it is used no other way).
fn ready_word(p: *mut u64) -> &'static AtomicU32 {
    // SAFETY: the first 4 bytes of the shared page, mapped for the life of
    // the process and only ever accessed atomically as this u32.
    unsafe { AtomicU32::from_ptr(p.cast::<u32>()) }
}

/// Two spinners pinned to one CPU, nice 0 and nice 5, from a common start
/// until the stop rule; checks their CPU times against the weights.
fn nice_shares(s: &mut Suite) {
    const TICK_NS: u64 = 10_000_000; // the coarsest tick the suite runs at (HZ=100)
    const MIN_WINDOW_NS: u64 = 1_000_000_000;
    const MAX_WINDOW_NS: u64 = 30_000_000_000;
    // Shared words: 0 the barrier (a futex word, `ready_word`), the stop
    // flag, then per task (slot 0: nice 0, slot 1: nice 5) CPU time in the
    // window, largest charge, iterations, CPU time the barrier took.
    let (stop, cpu, jump, iters, barrier) = (1, 2, 4, 6, 8);
    let cpu_mask = 1u64 << (ncpus() - 1);
    let sh = shared_page();
    let w = |i: usize| shared_atomic(sh, i);
    let spin = |slot: usize, nice: isize| {
        move || {
            sys::sched_setaffinity(0, cpu_mask);
            sys::setpriority(0, nice);
            // The first one here sleeps until the other arrives: a spinning
            // wait would gain it virtual time the other does not, a head
            // start for the other of a whole slice (or of what a loaded
            // host stretched it to). A woken sleeper is placed at most half
            // a latency behind (place_entity), so the two start level. The
            // CPU time the barrier took counts as a charge all the same.
            let gate = ready_word(sh);
            let prev = sys::thread_cpu_ns();
            if gate.fetch_add(1, Ordering::SeqCst) == 0 {
                while gate.load(Ordering::SeqCst) < 2 {
                    sys::futex_wait(gate, 1, None, false);
                }
            } else {
                sys::futex_wake(gate, 1, false);
            }
            let start = sys::thread_cpu_ns();
            let mut largest = start - prev;
            w(jump + slot).store(largest, Ordering::SeqCst);
            w(barrier + slot).store(largest, Ordering::SeqCst);
            let (mut prev, mut n) = (start, 0u64);
            while w(stop).load(Ordering::SeqCst) == 0 {
                for _ in 0..1000 {
                    n = core::hint::black_box(n + 1);
                }
                let t = sys::thread_cpu_ns();
                largest = largest.max(t - prev);
                prev = t;
                w(cpu + slot).store(t - start, Ordering::SeqCst);
                w(jump + slot).store(largest, Ordering::SeqCst);
                // The stop rule, the same for both: enough CPU time in the
                // window, and long against the error bound below.
                let total = w(cpu).load(Ordering::SeqCst) + w(cpu + 1).load(Ordering::SeqCst);
                let e = TICK_NS + w(jump).load(Ordering::SeqCst).max(w(jump + 1).load(Ordering::SeqCst));
                if total >= MAX_WINDOW_NS || total >= MIN_WINDOW_NS.max(120 * e) {
                    w(stop).store(1, Ordering::SeqCst);
                }
            }
            w(iters + slot).store(n, Ordering::SeqCst);
            0
        }
    };
    let a = sys::fork();
    if a == 0 {
        sys::exit_group(spin(0, 0)());
    }
    let b = sys::fork();
    if b == 0 {
        sys::exit_group(spin(1, 5)());
    }
    sys::wait4(a, 0);
    sys::wait4(b, 0);
    let (t0, t5) = (w(cpu).load(Ordering::SeqCst), w(cpu + 1).load(Ordering::SeqCst));
    let e = TICK_NS + w(jump).load(Ordering::SeqCst).max(w(jump + 1).load(Ordering::SeqCst));
    // At the stop, vruntimes t0 and t5 * 1024/335 differ by at most one
    // charge (e, weighted), each task may be charged up to e more before it
    // sees the stop, and one of them may start up to a charge ahead (the
    // barrier's sleeper placement, half a latency, or a charge before it):
    // |t0 * 335 - t5 * 1024| <= 3 * (335 + 1024) * e. A window of
    // 120 e makes weights 20% off (ratio 2.5 or 3.7) fail that bound.
    let off = (i128::from(t0) * 335 - i128::from(t5) * 1024).unsigned_abs();
    let bound = 3 * (335 + 1024) * u128::from(e);
    let ratio_x100 = (t0 * 100).checked_div(t5).unwrap_or(0);
    println!(
        "tests: nice 0 vs nice 5 on one CPU: {} vs {} ms of CPU time, ratio {}.{:02} (weights: 3.06), \
         largest charge {} ms; {} vs {} iterations; barrier {} vs {} us",
        t0 / 1_000_000,
        t5 / 1_000_000,
        ratio_x100 / 100,
        ratio_x100 % 100,
        (e - TICK_NS) / 1_000_000,
        w(iters).load(Ordering::SeqCst),
        w(iters + 1).load(Ordering::SeqCst),
        w(barrier).load(Ordering::SeqCst) / 1000,
        w(barrier + 1).load(Ordering::SeqCst) / 1000,
    );
    // However large the charges a loaded host makes, equal weights (1.0)
    // or inverted ones never pass: the ratio must also lie in 1.5..6.
    s.check(
        "CFS shares CPU by nice weight (1024:335 of CPU time, within the error the largest charge allows)",
        t5 > 0 && off <= bound && (150..=600).contains(&ratio_x100),
        format_args!("|t0*335 - t5*1024| = {off}, bound {bound}, ratio x100 {ratio_x100}"),
    );
}

/// SCHED_DEADLINE with `runtime`, `deadline` and `period` in ns.
fn dl_attr(runtime: u64, deadline: u64, period: u64) -> sys::SchedAttr {
    sys::SchedAttr {
        size: 56,
        sched_policy: SCHED_DEADLINE as u32,
        sched_runtime: runtime,
        sched_deadline: deadline,
        sched_period: period,
        ..Default::default()
    }
}

/// sched_setattr and friends, SCHED_DEADLINE's parameters and admission
/// control (LKD ch. 4; kernel/sched/deadline.c, `sched_dl_overflow`), as
/// Linux 6.1 answers them.
fn deadline_tests(s: &mut Suite) {
    const MS: u64 = 1_000_000;
    // A deadline task reads back its parameters and may not fork.
    let st = in_child(|| {
        let mut a = dl_attr(2 * MS, 10 * MS, 20 * MS);
        if sys::sched_setattr(0, &mut a, 0) != 0 {
            return 1;
        }
        let mut got = sys::SchedAttr::default();
        if sys::sched_getattr(0, &mut got, 56, 0) != 0 || got != dl_attr(2 * MS, 10 * MS, 20 * MS) {
            return 2;
        }
        let mut old = sys::SchedAttr::default();
        if sys::sched_getattr(0, &mut old, 48, 0) != 0 || old.size != 48 || old.sched_period != 20 * MS {
            return 3;
        }
        if sys::sched_getscheduler(0) != SCHED_DEADLINE as isize {
            return 4;
        }
        if sys::fork() != EAGAIN {
            return 5;
        }
        0
    });
    s.check(
        "sched_setattr SCHED_DEADLINE: sched_getattr reads back runtime, deadline, period (and the size asked); fork is EAGAIN",
        st == 0,
        format_args!("status {st:#x}"),
    );

    // What Linux refuses, it refuses with the same errno.
    let mut bad = [
        dl_attr(2 * MS, 0, 0),            // no deadline
        dl_attr(3 * MS, 2 * MS, 5 * MS),  // runtime > deadline
        dl_attr(MS, 5 * MS, 2 * MS),      // deadline > period
        dl_attr(500, MS, MS),             // runtime < 1024 ns
        dl_attr(2_000, 50_000, 50_000),   // period < 100 us
        dl_attr(MS, 10 * MS, 8_000 * MS), // period > 2^22 us
    ];
    let einval: [isize; 6] = core::array::from_fn(|i| sys::sched_setattr(0, &mut bad[i], 0));
    let mut iso = sys::SchedAttr { size: 56, sched_policy: 4, ..Default::default() };
    let mut short = sys::SchedAttr { size: 40, ..Default::default() };
    let short_r = sys::sched_setattr(0, &mut short, 0);
    let more = [
        sys::sched_setattr(0, &mut iso, 0),
        sys::sched_setattr(-1, &mut sys::SchedAttr::default(), 0),
        sys::sched_setattr(0, &mut sys::SchedAttr::default(), 1),
        sys::sched_getattr(0, &mut sys::SchedAttr::default(), 47, 0),
        sys::syscall6(sys::nr::SCHED_SETATTR, [0, 0, 0, 0, 0, 0]),
    ];
    // A deadline task must be allowed on every CPU (EPERM if pinned); the
    // child exits with the errno.
    let pinned = if ncpus() >= 2 {
        in_child(|| {
            sys::sched_setaffinity(0, 1);
            -sys::sched_setattr(0, &mut dl_attr(MS, 10 * MS, 10 * MS), 0) as i32
        }) >> 8
    } else {
        -EPERM as i32
    };
    s.check(
        "sched_setattr refuses bad deadline parameters and policies (EINVAL), a short struct (E2BIG, size 56 written back), a pinned deadline task (EPERM)",
        einval == [EINVAL; 6] && more == [EINVAL; 5] && short_r == E2BIG && short.size == 56 && pinned == -EPERM as i32,
        format_args!("{einval:?} {more:?} short {short_r} size {} pinned {pinned}", short.size),
    );

    // Admission: tasks of half a CPU each, until EBUSY: 95% of every CPU
    // (sched_rt_runtime_us / sched_rt_period_us) admits floor(1.9 N).
    let sh = shared_page();
    let gate = ready_word(sh);
    let mut pids = [0isize; 16];
    let mut admitted = 0;
    let mut refused = 0;
    for (i, pid) in pids.iter_mut().enumerate() {
        let p = sys::fork();
        if p == 0 {
            let r = sys::sched_setattr(0, &mut dl_attr(5 * MS, 10 * MS, 10 * MS), 0);
            write_shared(sh, 8 + i, (r as u64) | 1 << 63);
            while r == 0 && gate.load(Ordering::SeqCst) == 0 {
                sys::futex_wait(gate, 0, None, false);
            }
            sys::exit_group(0);
        }
        *pid = p;
        while read_shared(sh, 8 + i) == 0 {
            sys::sched_yield();
        }
        match read_shared(sh, 8 + i) & !(1 << 63) {
            0 => admitted += 1,
            r => {
                refused = r as u32 as i32 as isize;
                break;
            }
        }
    }
    gate.store(1, Ordering::SeqCst);
    sys::futex_wake(gate, i32::MAX as u32, false);
    for &p in pids.iter().filter(|&&p| p > 0) {
        sys::wait4(p, 0);
    }
    // Their exits gave the bandwidth back. Linux gives a dead deadline
    // task's bandwidth back at its 0-lag time, when the inactive timer
    // fires (deadline.c, `task_non_contending`, `inactive_task_timer`):
    // up to a period (10 ms) after the exit. Three periods of sleep: that
    // timer expires before ours does, however loaded the machine.
    sys::sleep_ms(30);
    let again = in_child(|| -sys::sched_setattr(0, &mut dl_attr(5 * MS, 10 * MS, 10 * MS), 0) as i32);
    let expect = (19 * ncpus() / 10) as usize;
    s.check(
        "SCHED_DEADLINE admission: half-CPU tasks are admitted up to 95% of the CPUs, then EBUSY; exits give it back",
        admitted == expect && refused == EBUSY && again == 0,
        format_args!("admitted {admitted} (expected {expect}), then {refused}; after the exits {again}"),
    );

    // Priority ranges, parameters and the RR slice.
    let ranges = [0, 1, 2, 3, 5, 6].map(sys::sched_priority_range);
    let iso = sys::sched_priority_range(4);
    let st = in_child(|| {
        if sys::sched_setscheduler(0, SCHED_RR, 10) != 0 || sys::sched_getparam(0) != (0, 10) {
            return 1;
        }
        if sys::sched_rr_get_interval(0) != (0, 100 * MS) {
            return 2;
        }
        if sys::sched_setparam(0, 20) != 0 || sys::sched_getparam(0) != (0, 20) || sys::sched_setparam(0, 0) != EINVAL {
            return 3;
        }
        if sys::sched_setscheduler(0, SCHED_FIFO, 5) != 0 || sys::sched_rr_get_interval(0) != (0, 0) {
            return 4;
        }
        0
    });
    s.check(
        "sched_get_priority_max/min (99/1 for FIFO and RR, else 0), sched_getparam/setparam, sched_rr_get_interval (RR 100 ms, FIFO 0)",
        st == 0 && ranges == [(0, 0), (99, 1), (99, 1), (0, 0), (0, 0), (0, 0)] && iso == (EINVAL, EINVAL),
        format_args!("status {st:#x} ranges {ranges:?} policy 4 {iso:?}"),
    );
}

fn ncpus() -> u32 {
    sys::sched_getaffinity(0).1.count_ones()
}

/// Stack of each test thread.
const THREAD_STACK: usize = 64 * 1024;
/// What the threads of one test share with the main thread (CLONE_VM: it
/// lives on the main thread's stack).
#[derive(Default)]
struct Shared {
    /// parent_tid and child_tid: the tid, zeroed at exit (CLONE_CHILD_CLEARTID).
    tid: AtomicU32,
    /// Results the thread reports.
    slot: [AtomicUsize; 4],
    /// A word to wait on.
    word: AtomicU32,
}

/// A thread (glibc's pthread_create flags, plus CLONE_SETTLS with `tls`)
/// running `f(&shared)` on a fresh stack: (tid or -errno, stack).
fn spawn(f: extern "C" fn(usize) -> !, shared: &Shared, tls: Option<usize>) -> (isize, usize) {
    let stack = sys::mmap(0, THREAD_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if stack < 0 {
        return (stack, 0);
    }
    let tidp = shared.tid.as_ptr() as usize;
    let flags = THREAD_FLAGS | tls.map_or(0, |_| CLONE_SETTLS);
    let arg = shared as *const Shared as usize;
    // SAFETY: the stack is the thread's alone until `join` sees it gone;
    // `shared` outlives the thread (every caller joins before returning).
    let r = unsafe { sys::clone_thread(flags, stack as usize + THREAD_STACK, tidp, tls.unwrap_or(0), tidp, f, arg) };
    (r, stack as usize)
}

/// pthread_join: wait (shared FUTEX_WAIT, as glibc) until the kernel has
/// zeroed the tid word; frees the stack. It waits as long as it takes: a
/// thread that never exits hangs the suite, which the QEMU test's time limit
/// reports (no time limit here, which a loaded host could overrun).
fn join(shared: &Shared, stack: usize) -> bool {
    loop {
        let t = shared.tid.load(Ordering::Acquire);
        if t == 0 {
            sys::munmap(stack, THREAD_STACK);
            return true;
        }
        sys::futex_wait(&shared.tid, t, None, false);
    }
}

/// The argument a test thread gets.
fn shared_of(arg: usize) -> &'static Shared {
    // SAFETY: `spawn` passes a pointer to a Shared that outlives the thread.
    unsafe { &*(arg as *const Shared) }
}

/// Reports its tid, pid and a write to a static, then exits (the thread
/// only: `exit`, not `exit_group`).
extern "C" fn thread_share(arg: usize) -> ! {
    let s = shared_of(arg);
    s.slot[0].store(sys::gettid() as usize, Ordering::Relaxed);
    s.slot[1].store(sys::getpid() as usize, Ordering::Relaxed);
    THREAD_STATIC.fetch_add(1, Ordering::Relaxed);
    sys::exit(0)
}
static THREAD_STATIC: AtomicUsize = AtomicUsize::new(0);

const TLS_MAIN: usize = 0x5eed_0000_1111;
const TLS_THREAD: usize = 0x5eed_0000_2222;

/// Checks its TPIDR_EL0 around yields and a sleep.
extern "C" fn thread_tls(arg: usize) -> ! {
    let s = shared_of(arg);
    let mut ok = sys::tpidr_el0() == TLS_THREAD;
    for _ in 0..50 {
        sys::sched_yield();
        ok &= sys::tpidr_el0() == TLS_THREAD;
    }
    sys::sleep_ms(5);
    ok &= sys::tpidr_el0() == TLS_THREAD;
    s.slot[0].store(1 + usize::from(ok), Ordering::Relaxed);
    sys::exit(0)
}

/// Sleeps `slot[0]` ms, then exits.
extern "C" fn thread_sleep_exit(arg: usize) -> ! {
    let s = shared_of(arg);
    sys::sleep_ms(s.slot[0].load(Ordering::Relaxed) as u64);
    sys::exit(0)
}

/// Moves its clear_child_tid to `word` with set_tid_address, then exits.
extern "C" fn thread_set_tid(arg: usize) -> ! {
    let s = shared_of(arg);
    s.slot[0].store(sys::set_tid_address(s.word.as_ptr() as usize) as usize, Ordering::Relaxed);
    sys::exit(0)
}

/// The words of the requeue test: waiters start on the first and are
/// moved to the second.
static REQUEUE_FROM: AtomicU32 = AtomicU32::new(0);
static REQUEUE_TO: AtomicU32 = AtomicU32::new(0);

/// FUTEX_WAIT_PRIVATE on REQUEUE_FROM (value 0, up to 5 s): the result in
/// slot 0, offset by 1000 so that 0 means "not done".
extern "C" fn thread_wait_requeue(arg: usize) -> ! {
    let s = shared_of(arg);
    let r = sys::futex_wait(&REQUEUE_FROM, 0, None, true);
    s.slot[0].store((1000 + r) as usize, Ordering::Release);
    sys::exit(0)
}

/// Sleeps 20 ms, then `exit_group(7)`: the whole process ends.
extern "C" fn thread_exit_group(_: usize) -> ! {
    sys::sleep_ms(20);
    sys::exit_group(7)
}

/// The thread and futex tests (clone(2) with CLONE_THREAD and friends,
/// futex(2), set_tid_address(2)).
fn thread_tests(s: &mut Suite) {
    // Threads share memory, the pid and the statics; each has its own tid.
    let sh = Shared::default();
    let before = THREAD_STATIC.load(Ordering::Relaxed);
    let (tid, stack) = spawn(thread_share, &sh, None);
    let joined = tid > 0 && join(&sh, stack);
    let (t_tid, t_pid) = (sh.slot[0].load(Ordering::Relaxed), sh.slot[1].load(Ordering::Relaxed));
    s.check(
        "threads share memory: one pid, own tid, CLONE_PARENT_SETTID, a static seen by both",
        joined
            && t_tid == tid as usize
            && t_pid == sys::getpid() as usize
            && t_tid != t_pid
            && THREAD_STATIC.load(Ordering::Relaxed) == before + 1,
        format_args!("tid {tid} joined {joined} thread saw tid {t_tid} pid {t_pid}"),
    );

    // CLONE_SETTLS: the thread's TPIDR_EL0; ours survives the switches.
    // Both on one CPU, so that the yields really switch between them.
    let (_, all) = sys::sched_getaffinity(0);
    sys::sched_setaffinity(0, 1 << (ncpus() - 1));
    sys::set_tpidr_el0(TLS_MAIN);
    let sh = Shared::default();
    let (tid, stack) = spawn(thread_tls, &sh, Some(TLS_THREAD));
    let mut ok = true;
    for _ in 0..50 {
        sys::sched_yield();
        ok &= sys::tpidr_el0() == TLS_MAIN;
    }
    let joined = tid > 0 && join(&sh, stack);
    ok &= sys::tpidr_el0() == TLS_MAIN;
    let forked = in_child(|| i32::from(sys::tpidr_el0() != TLS_MAIN));
    sys::set_tpidr_el0(0);
    sys::sched_setaffinity(0, all);
    let child_ok = sh.slot[0].load(Ordering::Relaxed);
    s.check(
        "CLONE_SETTLS sets the thread's TPIDR_EL0; the parent's is untouched after switches; fork copies it",
        joined && ok && child_ok == 2 && forked == 0,
        format_args!("joined {joined} parent ok {ok} thread {child_ok} fork {forked:#x}"),
    );

    // CLONE_CHILD_CLEARTID: exit zeroes the tid and futex-wakes the joiner.
    let sh = Shared::default();
    sh.slot[0].store(100, Ordering::Relaxed);
    let (tid, stack) = spawn(thread_sleep_exit, &sh, None);
    let t = sh.tid.load(Ordering::Acquire);
    let r = sys::futex_wait(&sh.tid, t, None, false);
    let cleared = sh.tid.load(Ordering::Acquire);
    let joined = join(&sh, stack);
    s.check(
        "CLONE_CHILD_CLEARTID: the thread's exit zeroes the tid and FUTEX_WAKE wakes the joiner",
        tid > 0 && t == tid as u32 && r == 0 && cleared == 0 && joined,
        format_args!("tid {tid} word {t} wait {r} after {cleared}"),
    );

    // set_tid_address moves the word exit clears.
    let sh = Shared::default();
    sh.word.store(0xdead, Ordering::Relaxed);
    let (tid, stack) = spawn(thread_set_tid, &sh, None);
    let mut gone = false;
    while !gone {
        gone = sh.word.load(Ordering::Acquire) == 0;
        if !gone {
            sys::futex_wait(&sh.word, 0xdead, None, false);
        }
    }
    let ret = sh.slot[0].load(Ordering::Relaxed);
    let old = sh.tid.load(Ordering::Relaxed);
    if gone {
        sys::sleep_ms(10); // the thread is past its last user access
        sys::munmap(stack, THREAD_STACK);
    }
    s.check(
        "set_tid_address returns the tid; exit clears the new word, not the old",
        gone && ret == tid as usize && old == tid as u32,
        format_args!("tid {tid} returned {ret} old word {old} cleared {gone}"),
    );

    // FUTEX_WAIT: EAGAIN, ETIMEDOUT, EFAULT, EINVAL, ENOSYS, as Linux.
    let w = AtomicU32::new(1);
    let again = (sys::futex_wait(&w, 2, None, true), sys::futex_wait(&w, 2, None, false));
    let t0 = sys::clock_ns();
    let timed = sys::futex_wait(&w, 1, Some(20_000_000), true);
    let dt = sys::clock_ns() - t0;
    let zero = sys::futex_wait(&w, 1, Some(0), false);
    s.check("FUTEX_WAIT with a stale value gives EAGAIN", again == (EAGAIN, EAGAIN), format_args!("{again:?}"));
    s.check(
        "FUTEX_WAIT with a timeout gives ETIMEDOUT after it (20 ms; 0 at once)",
        timed == ETIMEDOUT && dt >= 20_000_000 && zero == ETIMEDOUT,
        format_args!("{timed} after {} us, zero timeout {zero}", dt / 1000),
    );
    let wp = w.as_ptr() as usize;
    let bad = [
        sys::futex(0x10, FUTEX_WAIT | FUTEX_PRIVATE_FLAG, 0, 0, 0, 0),
        sys::futex(0xffff_0000_0000_0000, FUTEX_WAIT, 0, 0, 0, 0),
        sys::futex(wp, FUTEX_WAIT, 1, 0x18, 0, 0),
        sys::futex(0x10, FUTEX_WAKE, 1, 0, 0, 0),
    ];
    let private_wake = sys::futex(0x10, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, 1, 0, 0, 0);
    let inval =
        [sys::futex(wp + 2, FUTEX_WAKE, 1, 0, 0, 0), sys::futex(wp, FUTEX_WAIT, 1, [5i64, -1].as_ptr() as usize, 0, 0)];
    // An unknown operation, and FUTEX_CLOCK_REALTIME on a wake.
    let nosys = [sys::futex(wp, 99, 0, 0, 0, 0), sys::futex(wp, FUTEX_WAKE | 256, 1, 0, 0, 0)];
    s.check(
        "futex bad pointers give EFAULT (word, timeout); misaligned or bad timespec EINVAL; unknown op ENOSYS",
        bad == [EFAULT; 4] && private_wake == 0 && inval == [EINVAL; 2] && nosys == [ENOSYS; 2],
        format_args!("{bad:?} private wake {private_wake} {inval:?} {nosys:?}"),
    );

    // A bad CLONE_CHILD_SETTID/CLEARTID address is ignored, as in Linux.
    let sh = Shared::default();
    sh.slot[0].store(1, Ordering::Relaxed);
    let stack = sys::mmap(0, THREAD_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    let flags = THREAD_FLAGS | CLONE_CHILD_SETTID; // CLONE_CHILD_CLEARTID is in THREAD_FLAGS
    // SAFETY: the thread sleeps 1 ms and exits; its stack is never freed.
    let r = unsafe {
        sys::clone_thread(flags, stack as usize + THREAD_STACK, sh.tid.as_ptr() as usize, 0, 0x10, thread_sleep_exit, {
            &sh as *const Shared as usize
        })
    };
    sys::sleep_ms(30);
    s.check(
        "clone with a bad child_tid pointer: the thread runs and exits, nothing crashes",
        r > 0 && sh.tid.load(Ordering::Relaxed) == r as u32,
        format_args!("{r}"),
    );

    // A shared futex on a MAP_SHARED page wakes a waiter in another process.
    let page = shared_page();
    // SAFETY: the first word of our shared page.
    let word = unsafe { &*(page as *const AtomicU32) };
    let pid = sys::fork();
    if pid == 0 {
        let r = sys::futex_wait(word, 0, None, false);
        sys::exit_group(if r == 0 { 0 } else { 1 });
    }
    // Until the child waits (however long the host takes to run it).
    let mut woke;
    loop {
        woke = sys::futex_wake(word, 1, false);
        if woke != 0 {
            break;
        }
        sys::sleep_ms(5);
    }
    let (w, st) = sys::wait4(pid, 0);
    s.check(
        "FUTEX_WAKE on a MAP_SHARED page wakes a FUTEX_WAIT in another process",
        woke == 1 && w == pid && st == 0,
        format_args!("woke {woke} status {st:#x}"),
    );

    // FUTEX_CMP_REQUEUE: two waiters moved to another word, woken there.
    let (a, b) = (Shared::default(), Shared::default());
    let (t1, s1) = spawn(thread_wait_requeue, &a, None);
    let (t2, s2) = spawn(thread_wait_requeue, &b, None);
    let mut moved = 0;
    loop {
        // Move whoever waits already (nobody is woken: nr_wake 0).
        let r = sys::futex(
            REQUEUE_FROM.as_ptr() as usize,
            FUTEX_CMP_REQUEUE | FUTEX_PRIVATE_FLAG,
            0,
            2,
            REQUEUE_TO.as_ptr() as usize,
            0,
        );
        moved += r.max(0);
        if moved >= 2 {
            break;
        }
        sys::sleep_ms(5);
    }
    let stale = sys::futex(
        REQUEUE_FROM.as_ptr() as usize,
        FUTEX_CMP_REQUEUE | FUTEX_PRIVATE_FLAG,
        0,
        2,
        REQUEUE_TO.as_ptr() as usize,
        1,
    );
    let left = sys::futex_wake(&REQUEUE_FROM, 10, true);
    let woken = sys::futex_wake(&REQUEUE_TO, 10, true);
    let joined = t1 > 0 && t2 > 0 && join(&a, s1) && join(&b, s2);
    let res = (a.slot[0].load(Ordering::Acquire), b.slot[0].load(Ordering::Acquire));
    s.check(
        "FUTEX_CMP_REQUEUE moves both waiters (EAGAIN on a stale value); a wake there wakes them",
        moved == 2 && stale == EAGAIN && left == 0 && woken == 2 && joined && res == (1000, 1000),
        format_args!("moved {moved} stale {stale} left {left} woken {woken} joined {joined} results {res:?}"),
    );

    // exit_group in a thread ends the process, its sleeping main thread too.
    let st = in_child(|| {
        let sh = Shared::default();
        let (tid, _) = spawn(thread_exit_group, &sh, None);
        if tid <= 0 {
            return 100;
        }
        sys::futex_wait(&sh.word, 0, None, true);
        101
    });
    s.check("exit_group from a thread ends every thread of the process", st == 7 << 8, format_args!("status {st:#x}"));

    // Two threads of one process fault pages in, map and unmap at once:
    // faults take the address space's mmap_lock for reading, mmap and
    // munmap for writing, so on several CPUs one often waits (sleeps) for
    // the other. Every page must read back what its thread wrote.
    let sh = Shared::default();
    let (tid, stack) = spawn(thread_mmap_churn, &sh, None);
    let mine = mmap_churn(1);
    let joined = tid > 0 && join(&sh, stack);
    let theirs = sh.slot[0].load(Ordering::Acquire);
    s.check(
        "threads of one process fault, mmap and munmap at once (mmap_lock readers and writers)",
        joined && mine == MMAP_CHURN_ROUNDS && theirs == MMAP_CHURN_ROUNDS,
        format_args!("joined {joined} rounds: main {mine}, thread {theirs}"),
    );
}

/// Rounds of [`mmap_churn`].
const MMAP_CHURN_ROUNDS: usize = 150;

/// `MMAP_CHURN_ROUNDS` times: map 8 pages, write a tag to each (8
/// demand-zero faults), read them back, unmap. Returns the rounds whose
/// pages all read back right.
fn mmap_churn(tag: u64) -> usize {
    const PAGES: usize = 8;
    let mut good = 0;
    for round in 0..MMAP_CHURN_ROUNDS {
        let p = sys::mmap(0, PAGES * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if p < 0 {
            continue;
        }
        let v = (tag << 32) | round as u64;
        for i in 0..PAGES {
            // SAFETY: inside the mapping just made, which nobody else uses.
            unsafe { ((p as usize + i * 4096) as *mut u64).write_volatile(v + i as u64) };
        }
        // SAFETY: as above.
        let ok = (0..PAGES).all(|i| unsafe { ((p as usize + i * 4096) as *const u64).read_volatile() } == v + i as u64);
        good += usize::from(sys::munmap(p as usize, PAGES * 4096) == 0 && ok);
    }
    good
}

/// [`mmap_churn`] in a thread: the good rounds in slot 0.
extern "C" fn thread_mmap_churn(arg: usize) -> ! {
    let s = shared_of(arg);
    s.slot[0].store(mmap_churn(2), Ordering::Release);
    sys::exit(0)
}

/// Argument `i` (< argc) as bytes.
fn arg(argv: *const *const u8, i: usize) -> &'static [u8] {
    // SAFETY: the kernel passes argc valid NUL-terminated argv strings that
    // live as long as the process; the caller keeps `i` below argc.
    unsafe { core::ffi::CStr::from_ptr(*argv.add(i) as *const core::ffi::c_char).to_bytes() }
}

/// `tests cputime MS`: spins for MS ms of wall time and says how much CPU
/// time it was charged. Run in a VM that shares its physical CPU with a busy
/// one (ci/qemu-tests vcpu_scheduler.rs), the CPU time must leave out what
/// the hypervisor reports as stolen (DEN0057 PV_TIME). First it waits, up
/// to 5 s, for a 100 ms stretch in which it was charged under 80% of the
/// wall time, so the neighbour is running; a kernel that charges stolen
/// time never sees one, and is measured all the same (and fails).
fn cputime(ms: u64) -> i32 {
    let window = |ns: u64| {
        let (w0, c0) = (sys::clock_ns(), sys::thread_cpu_ns());
        while sys::clock_ns() - w0 < ns {
            core::hint::spin_loop();
        }
        (sys::clock_ns() - w0, sys::thread_cpu_ns() - c0)
    };
    let start = sys::clock_ns();
    while sys::clock_ns() - start < 5_000_000_000 {
        let (wall, cpu) = window(100_000_000);
        if cpu * 10 < wall * 8 {
            break;
        }
    }
    let waited = (sys::clock_ns() - start) / 1_000_000;
    let (wall, cpu) = window(ms * 1_000_000);
    println!(
        "tests: cputime: {} ms of wall time, {} ms of CPU time ({}%), after {waited} ms waiting for a neighbour",
        wall / 1_000_000,
        cpu / 1_000_000,
        cpu * 100 / wall.max(1)
    );
    0
}

/// The child half of the execve environment check: envp is A=1, B=two;
/// the auxiliary vector has what Linux's has. 44 if so, else 60 + the
/// first failing step.
fn env_and_auxv(argc: usize, argv: *const *const u8) -> i32 {
    // SAFETY: the kernel's initial stack: argv[argc] is NULL, envp
    // follows, NULL-terminated, then the auxv pairs up to AT_NULL.
    unsafe {
        let envp = argv.add(argc + 1);
        let env = |i: usize| arg(envp, i);
        let mut p = envp;
        while !(*p).is_null() {
            p = p.add(1);
        }
        let mut aux = p.add(1) as *const u64;
        let mut get = [0u64; 64];
        while *aux != 0 {
            if (*aux as usize) < get.len() {
                get[*aux as usize] = *aux.add(1);
            }
            aux = aux.add(2);
        }
        let (phdr, phent, phnum) = (get[3] as *const u32, get[4], get[5] as usize);
        // AT_PHDR is where a load segment maps the headers, or 0 when none
        // does (Linux 6.1's load_elf_binary; this program's first segment
        // starts past them).
        let phdr_ok = phdr.is_null() || (0..phnum).any(|i| *phdr.add(i * 14) == 1);
        let execfn = get[31] as *const u8;
        let execfn_ok = !execfn.is_null() && core::slice::from_raw_parts(execfn, 11) == b"/bin/tests\0";
        let steps = [
            env(0) == b"A=1" && env(1) == b"B=two" && (*envp.add(2)).is_null(),
            get[6] == 4096 && phent == 56 && phnum > 0 && phdr_ok,
            execfn_ok,
            get[11] == 0 && get[12] == 0 && get[16] & 1 != 0 && get[25] != 0,
        ];
        steps.iter().position(|&ok| !ok).map_or(44, |i| 60 + i as i32)
    }
}

fn tests_main(argc: usize, argv: *const *const u8) -> i32 {
    if argc >= 2 {
        // Re-exec'd by the execve test: prove we run and exit 42.
        if arg(argv, 1).first() == Some(&b'x') {
            return 42;
        }
        // Run as the interpreter of /bin/shebang-test ("#!/bin/tests
        // shebang"), exec'd with "one two": Linux's argv for it.
        if arg(argv, 1) == b"shebang" {
            let want: [&[u8]; 5] = [b"/bin/tests", b"shebang", b"/bin/shebang-test", b"one", b"two"];
            return if argc == 5 && (0..5).all(|i| arg(argv, i) == want[i]) { 43 } else { 1 };
        }
        // Exec'd with an environment: check it and the auxiliary vector.
        if arg(argv, 1) == b"env" {
            return env_and_auxv(argc, argv);
        }
        if arg(argv, 1) == b"cputime" && argc >= 3 {
            let ms = core::str::from_utf8(arg(argv, 2)).ok().and_then(|a| a.parse().ok()).unwrap_or(1000);
            return cputime(ms);
        }
    }
    let mut s = Suite { passed: 0, failed: 0, skipped: 0 };
    let me = sys::getpid();
    println!("tests: pid {me}, ppid {}, {} CPU(s)", sys::getppid(), ncpus());
    println!("tests: {CHECKS} checks ({CHECKS_NEED_2_CPUS} need 2 CPUs)");

    s.check("getpid/gettid/getppid", me > 1 && sys::gettid() == me && sys::getppid() == 1, format_args!("pid {me}"));
    s.check("unknown syscall gives ENOSYS", sys::syscall6(999, [0; 6]) == ENOSYS, format_args!(""));

    // Bad pointers: EFAULT, never a crash.
    let r1 = sys::syscall6(64, [1, 0x10, 4, 0, 0, 0]);
    let r2 = sys::syscall6(64, [1, 0xffff_0000_4000_0000, 4, 0, 0, 0]);
    let r3 = sys::syscall6(113, [1, 0x20, 0, 0, 0, 0]);
    let r4 = sys::syscall6(101, [0xdead_0000, 0, 0, 0, 0, 0]);
    let r5 = sys::syscall6(123, [0, 8, 0x8, 0, 0, 0]);
    let r6 = sys::syscall6(63, [0, 0xffff_0000_4000_0000, 16, 0, 0, 0]);
    s.check(
        "bad user pointers give EFAULT",
        [r1, r2, r3, r4, r5, r6] == [EFAULT; 6],
        format_args!("{r1} {r2} {r3} {r4} {r5} {r6}"),
    );

    // A reader blocked on the console (nobody types during the suite)
    // sleeps interruptibly: SIGKILL ends it.
    let reader = sys::fork();
    if reader == 0 {
        let mut b = [0u8; 8];
        sys::exit_group(sys::read(0, &mut b) as i32);
    }
    sys::sleep_ms(30);
    let k = sys::kill(reader, SIGKILL);
    let (w, st) = sys::wait4(reader, 0);
    s.check(
        "a read blocked on the console ends by SIGKILL",
        k == 0 && w == reader && st == SIGKILL as i32,
        format_args!("{k} {w} {st:#x}"),
    );

    // mmap / munmap / brk / demand paging.
    let len = 1 << 20;
    let p = sys::mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    let mut ok = p > 0;
    if ok {
        let b = p as *mut u8;
        for i in (0..len).step_by(4096) {
            // SAFETY: inside the mapping just made.
            unsafe { b.add(i).write_volatile((i >> 12) as u8) };
        }
        // SAFETY: as above.
        ok = (0..len).step_by(4096).all(|i| unsafe { b.add(i).read_volatile() } == (i >> 12) as u8);
        ok &= sys::munmap(p as usize, len) == 0;
    }
    s.check("mmap 1 MiB, demand-paged writes read back, munmap", ok, format_args!("mmap {p:#x}"));
    let st = in_child(|| {
        // SAFETY: deliberately touches memory that was just unmapped.
        unsafe { (p as *mut u8).write_volatile(1) };
        0
    });
    s.check("access after munmap kills only the child (SIGSEGV)", st == SIGSEGV as i32, format_args!("status {st:#x}"));

    let b0 = sys::brk(0);
    let b1 = sys::brk(b0 as usize + 64 * 1024);
    let ok = b1 == b0 + 64 * 1024 && {
        // SAFETY: inside the heap just grown.
        unsafe { ((b0 as usize + 60 * 1024) as *mut u64).write_volatile(7) };
        sys::brk(b0 as usize) == b0
    };
    s.check("brk grows, is writable, shrinks", ok, format_args!("{b0:#x} -> {b1:#x}"));

    let p = sys::mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    // SAFETY: our page.
    unsafe { (p as *mut u64).write_volatile(5) };
    let mp = sys::mprotect(p as usize, 4096, PROT_READ);
    let st = in_child(|| {
        // SAFETY: deliberately writes a read-only page.
        unsafe { (p as *mut u64).write_volatile(6) };
        0
    });
    // SAFETY: still readable.
    let v = unsafe { (p as *const u64).read_volatile() };
    s.check(
        "mprotect read-only: a write is SIGSEGV",
        mp == 0 && st == SIGSEGV as i32 && v == 5,
        format_args!("{mp} {st:#x} {v}"),
    );

    // fork and copy-on-write.
    static mut COW: u64 = 1;
    // SAFETY: single-threaded program.
    unsafe { COW = 1 };
    let st = in_child(|| {
        // SAFETY: the child's own (COW) copy.
        unsafe {
            COW = 2;
            COW as i32
        }
    });
    // SAFETY: as above.
    let mine = unsafe { COW };
    s.check(
        "fork: COW, parent and child see their own writes",
        st == 2 << 8 && mine == 1,
        format_args!("{st:#x} {mine}"),
    );

    // A segfaulting child dies alone.
    let st = in_child(|| {
        // SAFETY: deliberately bad.
        unsafe { (0x10 as *mut u64).write_volatile(1) };
        0
    });
    s.check("segfaulting child dies alone with SIGSEGV", st == SIGSEGV as i32, format_args!("status {st:#x}"));

    // wait4 without children.
    s.check("wait4 without children gives ECHILD", sys::wait4(-1, 0).0 == ECHILD, format_args!(""));

    // wait4 woken on another CPU: we sleep on CPU 0 waiting for `slow`;
    // `mover` moves us to CPU 1 and exits, which wakes us there; we must
    // go back to sleep as ourselves (a stale CPU number once put another
    // task to sleep instead and left us spinning with the kernel lock held).
    if ncpus() >= 2 {
        let (_, all) = sys::sched_getaffinity(0);
        sys::sched_setaffinity(0, 1);
        let slow = sys::fork();
        if slow == 0 {
            sys::sleep_ms(200);
            sys::exit_group(3);
        }
        let mover = sys::fork();
        if mover == 0 {
            sys::sleep_ms(50);
            sys::exit_group(i32::from(sys::sched_setaffinity(sys::getppid(), 2) != 0));
        }
        let (w, st) = sys::wait4(slow, 0);
        let (w2, st2) = sys::wait4(mover, 0);
        let moved = sys::sched_getaffinity(0).1;
        sys::sched_setaffinity(0, all);
        s.check(
            "wait4 woken on another CPU sleeps again and reaps its child",
            w == slow && st == 3 << 8 && w2 == mover && st2 == 0 && moved == 2,
            format_args!("{w} {st:#x} {w2} {st2:#x} mask {moved:#x}"),
        );
    } else {
        s.skip("wait4 woken on another CPU sleeps again and reaps its child", "needs 2 CPUs");
    }

    // getppid follows a reparent that happens while the orphan runs on
    // another CPU: once wait4 has reaped its parent, the orphan's very next
    // getppid says 1 (Linux reparents in exit_notify, before the parent is
    // a zombie). The guest kernel's getppid reads a per-CPU copy without
    // its lock, which the reparenting CPU must rewrite.
    if ncpus() >= 2 {
        let (_, all) = sys::sched_getaffinity(0);
        sys::sched_setaffinity(0, 1);
        let page = shared_page();
        let (go, seen, ready) = (shared_atomic(page, 0), shared_atomic(page, 1), shared_atomic(page, 2));
        let middle = sys::fork();
        if middle == 0 {
            let g = sys::fork();
            if g == 0 {
                sys::sched_setaffinity(0, 2);
                ready.store(sys::getppid() as u64, Ordering::Release);
                let mut calls = 0u64;
                while go.load(Ordering::Acquire) == 0 {
                    sys::getppid();
                    calls += 1;
                }
                shared_atomic(page, 3).store(calls, Ordering::Relaxed);
                seen.store(sys::getppid() as u64 + 1, Ordering::Release);
                sys::exit_group(0);
            }
            while ready.load(Ordering::Acquire) == 0 {
                sys::sched_yield();
            }
            sys::exit_group(0);
        }
        let (w, _) = sys::wait4(middle, 0);
        go.store(1, Ordering::Release);
        while seen.load(Ordering::Acquire) == 0 {
            sys::sched_yield();
        }
        let (before, after) = (ready.load(Ordering::Relaxed), seen.load(Ordering::Relaxed) - 1);
        let calls = read_shared(page, 3);
        sys::munmap(page as usize, 4096);
        sys::sched_setaffinity(0, all);
        s.check(
            "getppid on another CPU follows a reparent at once",
            w == middle && before == middle as u64 && after == 1,
            format_args!("wait4 {w}, ppid {before} then {after} (after {calls} calls)"),
        );
    } else {
        s.skip("getppid on another CPU follows a reparent at once", "needs 2 CPUs");
    }

    // uname and sysinfo (kernel/sys.c).
    let mut uts = [0u8; 6 * 65];
    let ru = sys::syscall6(160, [uts.as_mut_ptr() as usize, 0, 0, 0, 0, 0]);
    let field = |i: usize| {
        let f = &uts[i * 65..(i + 1) * 65];
        &f[..f.iter().position(|&c| c == 0).unwrap_or(65)]
    };
    let major = field(2)
        .split(|&c| c == b'.')
        .next()
        .and_then(|m| core::str::from_utf8(m).ok()?.parse::<u32>().ok())
        .unwrap_or(0);
    let mut si = [0u8; 112];
    let rs = sys::syscall6(179, [si.as_mut_ptr() as usize, 0, 0, 0, 0, 0]);
    let at = |o: usize| u64::from_le_bytes(si[o..o + 8].try_into().unwrap());
    let unit = u64::from(u32::from_le_bytes(si[104..108].try_into().unwrap()));
    let (uptime, total, free) = (at(0) as i64, at(32) * unit, at(40) * unit);
    let procs = u16::from_le_bytes([si[80], si[81]]);
    let bad = (sys::syscall6(160, [8, 0, 0, 0, 0, 0]), sys::syscall6(179, [8, 0, 0, 0, 0, 0]));
    s.check(
        "uname says Linux on aarch64 (release 3 or later); sysinfo's memory, tasks and uptime are sane; bad pointers EFAULT",
        ru == 0
            && field(0) == b"Linux"
            && field(4) == b"aarch64"
            && major >= 3
            && rs == 0
            && (16 << 20..=1 << 40).contains(&total)
            && free > 0
            && free <= total
            && procs >= 2
            && (0..100_000).contains(&uptime)
            && bad == (EFAULT, EFAULT),
        format_args!("release {major}, total {total}, free {free}, procs {procs}, uptime {uptime}, bad {bad:?}"),
    );

    // `#!` scripts (fs/binfmt_script.c).
    let script = in_child(|| {
        let argv = [c"shebang-test".as_ptr().cast(), c"one".as_ptr().cast(), c"two".as_ptr().cast(), core::ptr::null()];
        sys::execve(b"/bin/shebang-test\0", &argv) as i32
    });
    let eloop = sys::execve(b"/bin/loop-a\0", &[c"loop-a".as_ptr().cast(), core::ptr::null()]);
    s.check(
        "execve of a #! script runs its interpreter with the line's argument, the script's path and the rest of argv; scripts that name each other give ELOOP",
        script == 43 << 8 && eloop == ELOOP,
        format_args!("script status {script:#x}, loop {eloop}"),
    );

    // execve.
    let st = in_child(|| {
        let argv = [c"tests".as_ptr().cast(), c"x".as_ptr().cast(), core::ptr::null()];
        let r = sys::execve(b"/bin/tests\0", &argv);
        r as i32
    });
    let bad = sys::execve(b"/bin/nope\0", &[core::ptr::null()]);
    let badp = sys::syscall6(221, [0x30, 0, 0, 0, 0, 0]);
    s.check(
        "execve runs a program; missing file ENOENT; bad path EFAULT",
        st == 42 << 8 && bad == ENOENT && badp == EFAULT,
        format_args!("{st:#x} {bad} {badp}"),
    );

    // vfork-style clone: the parent waits until the child exits.
    let r: isize;
    #[cfg(target_arch = "aarch64")]
    // SAFETY: the child shares our memory and stack, so it does nothing but
    // exit_group(7) in the same asm block.
    unsafe {
        core::arch::asm!(
            "svc #0",
            "cbnz x0, 1f",
            "mov x0, #7",
            "mov x8, #94",
            "svc #0",
            "1:",
            inlateout("x0") CLONE_VM | CLONE_VFORK | 17 => r,
            in("x1") 0, in("x2") 0, in("x3") 0, in("x4") 0,
            in("x8") 220,
        );
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        r = -1;
    }
    let (w, st) = sys::wait4(r, 0);
    s.check(
        "clone(CLONE_VM|CLONE_VFORK) child runs first and is reaped",
        r > 0 && w == r && st == 7 << 8,
        format_args!("{r} {w} {st:#x}"),
    );

    // nanosleep and clock_gettime. Every sleep lasts at least the time
    // asked. A loaded host (or a hypervisor that deschedules this vCPU) can
    // stretch any one sleep by seconds, so the upper bound is on the
    // shortest of five: a kernel whose timer never wakes the sleeper (it
    // wakes only on some later interrupt) stretches all of them.
    let mut slept = [0u64; 5];
    let mut rets = 0;
    for d in slept.iter_mut() {
        let t0 = sys::clock_ns();
        rets |= sys::sleep_ms(50);
        *d = sys::clock_ns() - t0;
    }
    let shortest = slept.iter().copied().min().unwrap_or(0);
    s.check(
        "nanosleep 50 ms sleeps at least 50 ms, and the shortest of five at most 2 s",
        rets == 0 && (50_000_000..2_050_000_000).contains(&shortest),
        format_args!("r {rets} slept {:?} us", slept.map(|d| d / 1000)),
    );

    // sched_yield: we and a peer are SCHED_FIFO at one priority on one CPU.
    // Neither the tick nor the peer preempts a FIFO task, so the peer runs
    // only when we yield: each yield must let it run exactly once (it counts
    // and yields back). Kill it while we are still FIFO, or it would starve us.
    let cpu_mask = 1u64 << (ncpus() - 1);
    let (_, all) = sys::sched_getaffinity(0);
    let sh = shared_page();
    let fifo = sys::sched_setaffinity(0, cpu_mask) == 0 && sys::sched_setscheduler(0, SCHED_FIFO, 10) == 0;
    let peer = sys::fork();
    if peer == 0 {
        for n in 1.. {
            write_shared(sh, 0, n);
            sys::sched_yield();
        }
    }
    let (mut handed, mut yields_ok) = (0, true);
    for _ in 0..100 {
        let before = read_shared(sh, 0);
        yields_ok &= sys::sched_yield() == 0;
        handed += u32::from(read_shared(sh, 0) == before + 1);
    }
    let k = sys::kill(peer, SIGKILL);
    let (w, st) = sys::wait4(peer, 0);
    let back = sys::sched_setscheduler(0, SCHED_OTHER, 0) == 0 && sys::sched_setaffinity(0, all) == 0;
    s.check(
        "sched_yield lets a SCHED_FIFO peer of the same priority run once per yield",
        fifo && back && yields_ok && handed == 100 && k == 0 && w == peer && st == SIGKILL as i32,
        format_args!(
            "the peer ran after {handed} of 100 yields; fifo {fifo}, restored {back}, kill {k}, wait {w} {st:#x}"
        ),
    );

    thread_tests(&mut s);

    // kill: SIGKILL a spinning child; SIGKILL to init is ignored.
    let pid = sys::fork();
    if pid == 0 {
        #[allow(clippy::empty_loop)]
        loop {}
    }
    sys::sleep_ms(20);
    let k = sys::kill(pid, SIGKILL);
    let (w, st) = sys::wait4(pid, 0);
    s.check(
        "kill SIGKILL ends a busy child; wait4 sees the signal",
        k == 0 && w == pid && st == SIGKILL as i32,
        format_args!("{k} {w} {st:#x}"),
    );
    // SIGKILL to init (pid 1) is dropped (SIGNAL_UNKILLABLE) while the same
    // call kills any other task: init lives on and still reaps orphans.
    let victim = sys::fork();
    if victim == 0 {
        sys::sleep_ms(10_000);
        sys::exit_group(0);
    }
    let k_init = sys::kill(1, SIGKILL);
    let k_victim = sys::kill(victim, SIGKILL);
    let (w, st) = sys::wait4(victim, 0);
    let orphan = shared_page();
    in_child(|| {
        let g = sys::fork();
        if g == 0 {
            sys::exit_group(0);
        }
        write_shared(orphan, 0, g as u64);
        0
    });
    let g = read_shared(orphan, 0) as isize;
    // Init reaps it when it next runs; a dead init never would.
    let reaped = g > 0
        && (0..1000).any(|_| {
            let gone = sys::kill(g, 0) == ESRCH;
            if !gone {
                sys::sleep_ms(10);
            }
            gone
        });
    s.check(
        "SIGKILL to init is dropped (init lives on and reaps an orphan), to another task delivered",
        k_init == 0 && k_victim == 0 && w == victim && st == SIGKILL as i32 && sys::getppid() == 1 && reaped,
        format_args!("kill(1) {k_init}, kill(victim) {k_victim}, wait {w} {st:#x}, orphan {g} reaped {reaped}"),
    );

    // nice.
    let ok = sys::setpriority(0, 5) == 0 && sys::getpriority(0) == 15 && sys::setpriority(0, 0) == 0;
    s.check("setpriority/getpriority", ok && sys::getpriority(0) == 20, format_args!("{}", sys::getpriority(0)));

    // affinity.
    let (_, all) = sys::sched_getaffinity(0);
    let ok =
        sys::sched_setaffinity(0, 1) == 0 && sys::sched_getaffinity(0) == (8, 1) && sys::sched_setaffinity(0, all) == 0;
    s.check("sched_setaffinity/getaffinity", ok && sys::sched_setaffinity(0, 0) == -22, format_args!("all {all:#x}"));

    // policy.
    let ok = sys::sched_setscheduler(0, SCHED_FIFO, 10) == 0 && sys::sched_getscheduler(0) == 1;
    let ok = ok && sys::sched_setscheduler(0, SCHED_OTHER, 0) == 0 && sys::sched_getscheduler(0) == 0;
    s.check(
        "sched_setscheduler/getscheduler",
        ok && sys::sched_setscheduler(0, SCHED_FIFO, 0) == -22,
        format_args!(""),
    );

    // Subreaper: a grandchild orphaned by our child comes back to us.
    sys::prctl(PR_SET_CHILD_SUBREAPER, 1);
    let shared = shared_page();
    let st = in_child(|| {
        let g = sys::fork();
        if g == 0 {
            sys::sleep_ms(30);
            sys::exit_group(9);
        }
        write_shared(shared, 0, g as u64);
        0
    });
    let g = read_shared(shared, 0) as isize;
    let (w, gst) = sys::wait4(g, 0);
    sys::prctl(PR_SET_CHILD_SUBREAPER, 0);
    s.check(
        "PR_SET_CHILD_SUBREAPER: the orphaned grandchild is reparented to us",
        st == 0 && w == g && gst == 9 << 8,
        format_args!("g {g} w {w} {gst:#x}"),
    );

    // An orphan for init to reap (init prints "reaped orphan").
    in_child(|| {
        if sys::fork() == 0 {
            sys::sleep_ms(10);
            sys::exit_group(3);
        }
        0
    });

    // Fork bomb against the threads limit (kernel/fork.c max_threads: the
    // kernel stacks may take an eighth of RAM; 128 MiB gives about 500 here
    // and 1000 on Linux): fork until EAGAIN, then recover.
    let shared_bomb = shared_page();
    let st = in_child(|| {
        let mut pids = [0isize; 4096];
        let mut n = 0usize;
        let err = loop {
            let p = sys::fork();
            if p == 0 {
                sys::sleep_ms(10_000);
                sys::exit_group(0);
            }
            if p < 0 || n == pids.len() {
                break p;
            }
            pids[n] = p;
            n += 1;
        };
        write_shared(shared_bomb, 0, n as u64);
        write_shared(shared_bomb, 1, err as u64);
        // Defuse: kill and reap every bomb child.
        for &p in &pids[..n] {
            sys::kill(p, SIGKILL);
        }
        for &p in &pids[..n] {
            sys::wait4(p, 0);
        }
        0
    });
    let n = read_shared(shared_bomb, 0);
    let err = read_shared(shared_bomb, 1) as isize;
    s.check(
        "fork bomb stops at the threads limit with EAGAIN",
        st == 0 && n > 10 && err == EAGAIN,
        format_args!("forked {n}, then {err}, status {st:#x}"),
    );
    // The bomb's children were orphaned to init (or killed): fork works.
    let st = in_child(|| 0);
    s.check("after the fork bomb, fork works again", st == 0, format_args!("{st:#x}"));

    // OOM storm: a child touches far more memory than there is; the OOM
    // killer picks it (the biggest), the kernel and we live on.
    let st = in_child(|| {
        let len = 4usize << 30;
        let p = sys::mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if p < 0 {
            return 100;
        }
        for i in (0..len).step_by(4096) {
            // SAFETY: inside our mapping.
            unsafe { ((p as usize + i) as *mut u8).write_volatile(1) };
        }
        101
    });
    s.check(
        "OOM storm: the hog is killed (SIGKILL), the system runs on",
        st == SIGKILL as i32,
        format_args!("status {st:#x}"),
    );

    // CPU shares by nice: two spinners on one CPU, nice 0 and nice 5. CFS
    // divides CPU time by weight (LKD ch. 4), 1024:335, so the check is on
    // the CPU time each was given (CLOCK_THREAD_CPUTIME_ID, the scheduler's
    // own account), not on the work each did: that also depends on when
    // the host ran this (v)CPU. A host that stalls the CPU charges the stall
    // to whichever task is current, so CFS can be behind by one such charge
    // (or a tick) at any moment: each task measures the largest single
    // charge it saw, the window runs until it is long against that, and the
    // tolerance is derived from it.
    nice_shares(&mut s);

    // SCHED_FIFO preempts a fair task on its CPU and starves it.
    let cpu_mask = 1u64 << (ncpus() - 1);
    let sh = shared_page();
    let fair = sys::fork();
    if fair == 0 {
        sys::sched_setaffinity(0, cpu_mask);
        let mut n = 0u64;
        loop {
            n += 1;
            write_shared(sh, 0, n);
        }
    }
    // Until the fair task has run (not a length of time: a loaded host may
    // not run this CPU for a while).
    while read_shared(sh, 0) == 0 {
        sys::sched_yield();
    }
    let st = in_child(|| {
        sys::sched_setaffinity(0, cpu_mask);
        if sys::sched_setscheduler(0, SCHED_FIFO, 50) != 0 {
            return 1;
        }
        let a0 = read_shared(sh, 0);
        let end = sys::clock_ns() + 200_000_000;
        while sys::clock_ns() < end {}
        let a1 = read_shared(sh, 0);
        write_shared(sh, 1, a1 - a0);
        write_shared(sh, 2, a0);
        0
    });
    let progressed = read_shared(sh, 1);
    let before = read_shared(sh, 2);
    sys::kill(fair, SIGKILL);
    sys::wait4(fair, 0);
    s.check(
        "SCHED_FIFO task preempts and starves a fair task on its CPU",
        st == 0 && before > 0 && progressed == 0,
        format_args!("status {st:#x}, fair task ran {progressed} iterations meanwhile"),
    );

    deadline_tests(&mut s);
    #[cfg(target_arch = "aarch64")]
    signals::signal_tests(&mut s);
    #[cfg(target_arch = "aarch64")]
    signals::process_tests(&mut s);
    file_tests(&mut s);

    let ran = s.passed + s.failed + s.skipped;
    let skippable = if ncpus() >= 2 { 0 } else { CHECKS_NEED_2_CPUS };
    if ran != CHECKS || s.skipped != skippable {
        s.failed += 1;
        println!("FAIL - the suite's count: {ran} checks ran or were skipped ({} skipped), not {CHECKS}", s.skipped);
    }
    if s.skipped > 0 {
        println!("tests: {} skipped (need 2 CPUs)", s.skipped);
    }
    println!("{} passed, {} failed", s.passed, s.failed);
    i32::from(s.failed != 0)
}

// ----- signals ---------------------------------------------------------------

/// The signal checks (aarch64 only: they need `svc` and the frame).
#[cfg(target_arch = "aarch64")]
mod signals {
    use super::*;

    const EINTR: isize = -4;

    /// What the last handler saw: signal, si_signo, si_code, si_pid, whether
    /// its own signal was blocked while it ran, and a count of runs.
    static H_SIG: AtomicU64 = AtomicU64::new(0);
    static H_INFO: AtomicU64 = AtomicU64::new(0);
    static H_BLOCKED: AtomicU64 = AtomicU64::new(0);
    static H_RUNS: AtomicU64 = AtomicU64::new(0);
    static H_LOCAL: AtomicUsize = AtomicUsize::new(0);

    /// Offsets in `ucontext_t` (arm64): `uc_mcontext.regs[i]` and `pc`.
    const UC_REGS: usize = 176 + 8;
    const UC_PC: usize = UC_REGS + 31 * 8 + 8;

    extern "C" fn record_handler(sig: i32, info: *const u8, _uc: *mut u8) {
        let (_, blocked) = sys::signal::sigprocmask(sys::signal::SIG_BLOCK, None);
        H_SIG.store(sig as u64, Ordering::SeqCst);
        if !info.is_null() {
            // SAFETY: with SA_SIGINFO the kernel passes a siginfo_t: si_signo
            // at 0, si_code at 8, si_pid at 16.
            let (signo, code, pid) =
                unsafe { (*(info as *const i32), *(info.add(8) as *const i32), *(info.add(16) as *const i32)) };
            H_INFO.store(((signo as u64) << 40) | (((code as u32) as u64) << 20) | pid as u64, Ordering::SeqCst);
        }
        H_BLOCKED.store(blocked, Ordering::SeqCst);
        let local = 0u8;
        H_LOCAL.store(&local as *const u8 as usize, Ordering::SeqCst);
        H_RUNS.fetch_add(1, Ordering::SeqCst);
    }

    /// Rewrites the interrupted x19 in the frame and clobbers v16: the
    /// registers after `rt_sigreturn` must be the frame's.
    extern "C" fn rewrite_handler(_sig: i32, _info: *const u8, uc: *mut u8) {
        // SAFETY: uc is the kernel's ucontext_t; regs[19] is inside it.
        unsafe { (uc.add(UC_REGS + 19 * 8) as *mut u64).write_volatile(0xfeed) };
        // SAFETY: only v16 is written; the kernel restores it from the frame.
        unsafe { core::arch::asm!("movi v16.16b, #0", out("v16") _) };
        H_RUNS.fetch_add(1, Ordering::SeqCst);
    }

    /// Skips the faulting instruction and records si_addr and si_code.
    extern "C" fn segv_handler(_sig: i32, info: *const u8, uc: *mut u8) {
        // SAFETY: siginfo_t from the kernel: si_code at 8, si_addr at 16; the
        // ucontext's pc is inside it.
        unsafe {
            H_INFO.store(*(info.add(16) as *const u64), Ordering::SeqCst);
            H_SIG.store(*(info.add(8) as *const i32) as u64, Ordering::SeqCst);
            let pc = uc.add(UC_PC) as *mut u64;
            pc.write_volatile(pc.read_volatile() + 4);
        }
    }

    core::arch::global_asm!(
        // sig_regs_probe(out: *mut [u64; 11], pid): x19-x28 and d16 set to
        // known values around `kill(pid, SIGUSR2)`, stored to out afterwards.
        ".global sig_regs_probe",
        "sig_regs_probe:",
        "stp x19, x20, [sp, #-96]!",
        "stp x21, x22, [sp, #16]",
        "stp x23, x24, [sp, #32]",
        "stp x25, x26, [sp, #48]",
        "stp x27, x28, [sp, #64]",
        "stp x0, x30, [sp, #80]",
        "mov x19, #0xa019",
        "mov x20, #0xa020",
        "mov x21, #0xa021",
        "mov x22, #0xa022",
        "mov x23, #0xa023",
        "mov x24, #0xa024",
        "mov x25, #0xa025",
        "mov x26, #0xa026",
        "mov x27, #0xa027",
        "mov x28, #0xa028",
        "mov x10, #0x1234",
        "fmov d16, x10",
        "mov x0, x1",
        "mov x1, #12",
        "mov x8, #129",
        "svc #0",
        "ldr x9, [sp, #80]",
        "stp x19, x20, [x9, #0]",
        "stp x21, x22, [x9, #16]",
        "stp x23, x24, [x9, #32]",
        "stp x25, x26, [x9, #48]",
        "stp x27, x28, [x9, #64]",
        "fmov x10, d16",
        "str x10, [x9, #80]",
        "ldp x21, x22, [sp, #16]",
        "ldp x23, x24, [sp, #32]",
        "ldp x25, x26, [sp, #48]",
        "ldp x27, x28, [sp, #64]",
        "ldr x30, [sp, #88]",
        "ldp x19, x20, [sp], #96",
        "ret",
        // bad_sigreturn(sp) -> !: rt_sigreturn with sp at a frame of garbage.
        ".global bad_sigreturn",
        "bad_sigreturn:",
        "mov sp, x0",
        "mov x8, #139",
        "svc #0",
        "brk #0",
        // fault_at(addr): a load from addr (a signal handler skips it).
        ".global fault_at",
        "fault_at:",
        "ldr x0, [x0]",
        "ret",
    );

    unsafe extern "C" {
        fn sig_regs_probe(out: *mut [u64; 11], pid: isize);
        fn bad_sigreturn(sp: usize) -> !;
        fn fault_at(addr: usize);
    }

    fn handler_action(h: extern "C" fn(i32, *const u8, *mut u8), flags: u64) -> sys::signal::SigAction {
        sys::signal::SigAction { handler: h as usize, flags: flags | sys::signal::SA_SIGINFO, restorer: 0, mask: 0 }
    }

    fn reset_handler_state() {
        for a in [&H_SIG, &H_INFO, &H_BLOCKED, &H_RUNS] {
            a.store(0, Ordering::SeqCst);
        }
    }

    /// The signal checks (LKD ch. 3; ULK ch. 11): handlers, frames, masks,
    /// sigsuspend, the alternate stack, job-control stops, bad frames.
    pub(super) fn signal_tests(s: &mut Suite) {
        use sys::signal::*;
        let me = sys::getpid();

        // 1. A handler with SA_SIGINFO and SA_RESTORER runs before kill returns.
        reset_handler_state();
        let mut act = handler_action(record_handler, SA_RESTORER);
        act.restorer = restorer();
        let r = sigaction(SIGUSR1, Some(&act), None);
        let k = sys::kill(me, SIGUSR1);
        let info = H_INFO.load(Ordering::SeqCst);
        let want_info = ((SIGUSR1 as u64) << 40) | me as u64; // si_code SI_USER = 0
        let blocked = H_BLOCKED.load(Ordering::SeqCst);
        let (_, after) = sigprocmask(SIG_BLOCK, None);
        s.check(
            "a handler runs before kill returns, with siginfo, its signal blocked meanwhile",
            r == 0
                && k == 0
                && H_RUNS.load(Ordering::SeqCst) == 1
                && H_SIG.load(Ordering::SeqCst) == SIGUSR1 as u64
                && info == want_info
                && blocked & bit(SIGUSR1) != 0
                && after & bit(SIGUSR1) == 0,
            format_args!("sigaction {r}, kill {k}, runs {}, info {info:#x} (want {want_info:#x}), blocked in handler {blocked:#x}, after {after:#x}", H_RUNS.load(Ordering::SeqCst)),
        );

        // 2. rt_sigreturn restores the registers the frame holds (no SA_RESTORER:
        // the kernel's trampoline).
        reset_handler_state();
        let r = sigaction(SIGUSR2, Some(&handler_action(rewrite_handler, 0)), None);
        let mut out = [0u64; 11];
        // SAFETY: the probe saves and restores the callee-saved registers it uses.
        unsafe { sig_regs_probe(&mut out, me) };
        let want: [u64; 11] = [0xfeed, 0xa020, 0xa021, 0xa022, 0xa023, 0xa024, 0xa025, 0xa026, 0xa027, 0xa028, 0x1234];
        s.check(
            "rt_sigreturn restores x0-x30 and the FP registers from the frame the handler sees",
            r == 0 && out == want && H_RUNS.load(Ordering::SeqCst) == 1,
            format_args!("x19..x28, d16 after: {out:x?}"),
        );

        // 3. SA_RESETHAND and SA_NODEFER.
        reset_handler_state();
        let r = sigaction(SIGUSR1, Some(&handler_action(record_handler, SA_RESETHAND | SA_NODEFER)), None);
        sys::kill(me, SIGUSR1);
        let mut old = SigAction::default();
        sigaction(SIGUSR1, None, Some(&mut old));
        let blocked = H_BLOCKED.load(Ordering::SeqCst);
        s.check(
            "SA_NODEFER leaves the signal unblocked in its handler; SA_RESETHAND restores SIG_DFL",
            r == 0 && H_RUNS.load(Ordering::SeqCst) == 1 && blocked & bit(SIGUSR1) == 0 && old.handler == SIG_DFL,
            format_args!(
                "runs {}, blocked in handler {blocked:#x}, handler after {:#x}",
                H_RUNS.load(Ordering::SeqCst),
                old.handler
            ),
        );

        // 4. A blocked signal stays pending until unblocked.
        reset_handler_state();
        sigaction(SIGUSR1, Some(&handler_action(record_handler, 0)), None);
        sigprocmask(SIG_BLOCK, Some(bit(SIGUSR1)));
        sys::kill(me, SIGUSR1);
        let (runs_blocked, pending) = (H_RUNS.load(Ordering::SeqCst), sigpending());
        sigprocmask(SIG_UNBLOCK, Some(bit(SIGUSR1)));
        let runs = H_RUNS.load(Ordering::SeqCst);
        s.check(
            "a blocked signal waits in rt_sigpending and is delivered when unblocked",
            runs_blocked == 0 && pending == bit(SIGUSR1) && runs == 1 && sigpending() == 0,
            format_args!("ran {runs_blocked} while blocked, pending {pending:#x}, ran {runs} after"),
        );

        // 5. Ignoring discards; SIGCHLD ignored means no zombies.
        sigaction(SIGUSR1, Some(&SigAction { handler: SIG_IGN, ..Default::default() }), None);
        sigprocmask(SIG_BLOCK, Some(bit(SIGUSR1)));
        sys::kill(me, SIGUSR1);
        let pend_ign = sigpending();
        sigaction(SIGUSR1, Some(&SigAction { handler: SIG_IGN, ..Default::default() }), None);
        let pend_after = sigpending();
        sigprocmask(SIG_UNBLOCK, Some(bit(SIGUSR1)));
        sigaction(sys::SIGCHLD, Some(&SigAction { handler: SIG_IGN, ..Default::default() }), None);
        let c = sys::fork();
        if c == 0 {
            sys::exit_group(3);
        }
        let (w, _) = sys::wait4(-1, 0);
        sigaction(sys::SIGCHLD, Some(&SigAction::default()), None);
        s.check(
            "SIG_IGN discards the pending signal; with SIGCHLD ignored, children leave no zombie",
            c > 0 && pend_ign == bit(SIGUSR1) && pend_after == 0 && w == ECHILD,
            format_args!("pending {pend_ign:#x} then {pend_after:#x}; wait4 {w}"),
        );

        // 6. rt_sigsuspend: sleeps with the given mask, EINTR after the
        // handler, the old mask back.
        reset_handler_state();
        sigaction(SIGUSR1, Some(&handler_action(record_handler, 0)), None);
        sigprocmask(SIG_BLOCK, Some(bit(SIGUSR1)));
        let c = sys::fork();
        if c == 0 {
            sys::exit_group(if sys::kill(sys::getppid(), SIGUSR1) == 0 { 0 } else { 1 });
        }
        let r = sigsuspend(0);
        let (_, mask) = sigprocmask(SIG_UNBLOCK, Some(bit(SIGUSR1)));
        let (w, st) = sys::wait4(c, 0);
        s.check(
            "rt_sigsuspend waits for a signal, returns EINTR after its handler, and restores the mask",
            r == EINTR && H_RUNS.load(Ordering::SeqCst) == 1 && mask == bit(SIGUSR1) && w == c && st == 0,
            format_args!(
                "sigsuspend {r}, runs {}, mask after {mask:#x}, child {w} {st:#x}",
                H_RUNS.load(Ordering::SeqCst)
            ),
        );

        // 7. A SIGSEGV handler sees si_addr and can step over the fault.
        let st = in_child(|| {
            reset_handler_state();
            sigaction(SIGSEGV, Some(&handler_action(segv_handler, 0)), None);
            // SAFETY: the load faults; the handler moves the pc past it.
            unsafe { fault_at(0x18) };
            let (addr, code) = (H_INFO.load(Ordering::SeqCst), H_SIG.load(Ordering::SeqCst));
            if addr == 0x18 && code == 1 { 0 } else { 10 }
        });
        s.check(
            "a SIGSEGV handler gets si_addr and SEGV_MAPERR and resumes past the fault",
            st == 0,
            format_args!("child status {st:#x}"),
        );

        // 8. A corrupt frame given to rt_sigreturn kills only the caller.
        let st = in_child(|| {
            static mut GARBAGE: [u64; 1024] = [0x4141_4141_4141_4141; 1024];
            // SAFETY: the frame is garbage on purpose; the kernel must refuse
            // it with SIGSEGV. Nothing returns here.
            unsafe { bad_sigreturn(core::ptr::addr_of_mut!(GARBAGE) as usize + 16) }
        });
        s.check(
            "rt_sigreturn of a corrupt frame kills the caller with SIGSEGV",
            st == SIGSEGV as i32,
            format_args!("child status {st:#x}"),
        );

        // 9. The alternate stack.
        reset_handler_state();
        static mut ALT: [u8; 16384] = [0; 16384];
        let base = core::ptr::addr_of_mut!(ALT) as usize;
        let ss = StackT { sp: base, flags: 0, size: 16384 };
        let (r, old) = sigaltstack(Some(&ss));
        sigaction(SIGUSR1, Some(&handler_action(record_handler, SA_ONSTACK)), None);
        sys::kill(me, SIGUSR1);
        let local = H_LOCAL.load(Ordering::SeqCst);
        let (_, now) = sigaltstack(Some(&StackT { sp: 0, flags: SS_DISABLE, size: 0 }));
        let small = sigaltstack(Some(&StackT { sp: base, flags: 0, size: 1024 })).0;
        s.check(
            "an SA_ONSTACK handler runs on the sigaltstack stack; a stack under MINSIGSTKSZ is ENOMEM",
            r == 0 && old.flags == SS_DISABLE && local > base && local < base + 16384 && now == ss && small == -12,
            format_args!(
                "sigaltstack {r}, old flags {}, handler local at {local:#x} (stack {base:#x}), {now:?}, small {small}",
                old.flags
            ),
        );

        // 10. Bad arguments.
        let kill_handler = sigaction(SIGKILL, Some(&handler_action(record_handler, 0)), None);
        let zero = sigaction(0, None, None);
        let big = sigaction(65, None, None);
        let size = sys::syscall6(sys::nr::RT_SIGACTION, [SIGUSR1, 0, 0, 4, 0, 0]);
        let fault = sys::syscall6(sys::nr::RT_SIGACTION, [SIGUSR1, 0x10, 0, 8, 0, 0]);
        let how = sys::syscall6(sys::nr::RT_SIGPROCMASK, [7, &0u64 as *const u64 as usize, 0, 8, 0, 0]);
        let tg = tgkill(1, me, SIGUSR1);
        s.check(
            "rt_sigaction/rt_sigprocmask/tgkill refuse SIGKILL handlers, bad numbers, sizes, pointers and tgids",
            kill_handler == EINVAL
                && zero == EINVAL
                && big == EINVAL
                && size == EINVAL
                && fault == EFAULT
                && how == EINVAL
                && tg == ESRCH,
            format_args!(
                "SIGKILL {kill_handler}, 0 {zero}, 65 {big}, size {size}, fault {fault}, how {how}, tgkill {tg}"
            ),
        );

        // 11. Job control: SIGSTOP, wait4 WUNTRACED, SIGCONT, WCONTINUED.
        let c = sys::fork();
        if c == 0 {
            loop {
                sys::sleep_ms(5);
            }
        }
        let k1 = sys::kill(c, SIGSTOP);
        let (w1, st1) = sys::wait4(c, 2);
        let k2 = sys::kill(c, SIGCONT);
        let (w2, st2) = sys::wait4(c, 8);
        sys::kill(c, SIGKILL);
        let (w3, st3) = sys::wait4(c, 0);
        s.check(
            "SIGSTOP stops a child (wait4 WUNTRACED), SIGCONT resumes it (WCONTINUED)",
            k1 == 0
                && w1 == c
                && st1 == 0x137f
                && k2 == 0
                && w2 == c
                && st2 == 0xffff
                && w3 == c
                && st3 == SIGKILL as i32,
            format_args!("stop: {w1} {st1:#x}; cont: {w2} {st2:#x}; kill: {w3} {st3:#x}"),
        );
        for sig in [SIGUSR1, SIGUSR2] {
            sigaction(sig, Some(&SigAction::default()), None);
        }
    }

    fn raw(n: usize, a: [usize; 6]) -> isize {
        sys::syscall6(n, a)
    }

    /// Process groups, sessions, credentials, the interval timer and the
    /// small calls a libc makes at startup.
    pub(super) fn process_tests(s: &mut Suite) {
        use sys::signal::*;
        const SETSID: usize = 157;
        const GETSID: usize = 156;
        const SETPGID: usize = 154;
        const GETPGID: usize = 155;

        // 12. Sessions and process groups.
        let st = in_child(|| {
            let me = sys::getpid();
            let sid = raw(SETSID, [0; 6]);
            let ok1 = sid == me && raw(GETSID, [0; 6]) == me && raw(GETPGID, [0; 6]) == me;
            let again = raw(SETSID, [0; 6]);
            let spin = || -> ! {
                loop {
                    sys::sleep_ms(5);
                }
            };
            let b = sys::fork();
            if b == 0 {
                spin();
            }
            let c = sys::fork();
            if c == 0 {
                spin();
            }
            let moved = raw(SETPGID, [b as usize, 0, 0, 0, 0, 0]) == 0
                && raw(SETPGID, [c as usize, b as usize, 0, 0, 0, 0]) == 0
                && raw(GETPGID, [c as usize, 0, 0, 0, 0, 0]) == b;
            let leader_move = raw(SETPGID, [0, 0, 0, 0, 0, 0]);
            let killed = sys::kill(-b, SIGKILL);
            let (w1, s1) = sys::wait4(-b, 0);
            let (w2, s2) = sys::wait4(-b, 0);
            let (w3, _) = sys::wait4(-b, 0);
            let reaped = (w1 == b || w1 == c) && (w2 == b || w2 == c) && w1 != w2;
            let code = [
                ok1,
                again == EPERM,
                moved,
                leader_move == EPERM,
                killed == 0,
                reaped && s1 == SIGKILL as i32 && s2 == SIGKILL as i32,
                w3 == ECHILD,
            ]
            .iter()
            .position(|&ok| !ok);
            code.map_or(0, |i| 10 + i as i32)
        });
        s.check(
            "setsid and setpgid make a session and a job group; kill and wait4 of -pgid reach only that group",
            st == 0,
            format_args!("child status {st:#x} (10 + the first failing step)"),
        );

        // 13. Credentials.
        let st = in_child(|| {
            let groups = [5u32, 6];
            let g = raw(159, [2, groups.as_ptr() as usize, 0, 0, 0, 0]);
            let n = raw(158, [0; 6]);
            let sg = raw(149, [100, 100, 100, 0, 0, 0]);
            let su = raw(147, [1000, 1000, 1000, 0, 0, 0]);
            let mut ids = [0u32; 3];
            let gr = raw(
                148,
                [
                    &mut ids[0] as *mut u32 as usize,
                    &mut ids[1] as *mut u32 as usize,
                    &mut ids[2] as *mut u32 as usize,
                    0,
                    0,
                    0,
                ],
            );
            let back = raw(146, [0; 6]);
            let kill_root = sys::kill(sys::getppid(), 0);
            let regroup = raw(159, [0, 0, 0, 0, 0, 0]);
            let (uid, euid, gid) = (raw(174, [0; 6]), raw(175, [0; 6]), raw(176, [0; 6]));
            let steps = [
                g == 0 && n == 2,
                sg == 0 && su == 0,
                gr == 0 && ids == [1000; 3],
                back == EPERM,
                kill_root == EPERM,
                regroup == EPERM,
                uid == 1000 && euid == 1000 && gid == 100,
            ];
            steps.iter().position(|&ok| !ok).map_or(0, |i| 10 + i as i32)
        });
        s.check(
            "a process that drops root cannot take it back, set groups or signal root's processes",
            st == 0,
            format_args!("child status {st:#x} (10 + the first failing step)"),
        );

        // 14. ITIMER_REAL.
        const SIGALRM: usize = 14;
        reset_handler_state();
        sigaction(SIGALRM, Some(&handler_action(record_handler, 0)), None);
        sigprocmask(SIG_BLOCK, Some(bit(SIGALRM)));
        let arm = |value_us: i64, interval_us: i64| {
            let v = [interval_us / 1_000_000, interval_us % 1_000_000, value_us / 1_000_000, value_us % 1_000_000];
            let mut old = [0i64; 4];
            let r = raw(103, [0, v.as_ptr() as usize, old.as_mut_ptr() as usize, 0, 0, 0]);
            (r, old)
        };
        let (r1, _) = arm(20_000, 0);
        let sus = sigsuspend(0);
        let sig = H_SIG.load(Ordering::SeqCst);
        let (r2, _) = arm(1_000_000, 1_000_000);
        let mut cur = [0i64; 4];
        let g = raw(102, [0, cur.as_mut_ptr() as usize, 0, 0, 0, 0]);
        let (r3, old) = arm(0, 0);
        let mut after = [1i64; 4];
        raw(102, [0, after.as_mut_ptr() as usize, 0, 0, 0, 0]);
        sigprocmask(SIG_UNBLOCK, Some(bit(SIGALRM)));
        sigaction(SIGALRM, Some(&SigAction::default()), None);
        let left = cur[2] * 1_000_000 + cur[3];
        s.check(
            "setitimer's SIGALRM ends rt_sigsuspend; getitimer reports the interval and the time left",
            r1 == 0
                && sus == EINTR
                && sig == SIGALRM as u64
                && r2 == 0
                && g == 0
                && cur[0] == 1
                && cur[1] == 0
                && left > 0
                && left <= 1_000_000
                && r3 == 0
                && old[0] == 1
                && after == [0; 4],
            format_args!("arm {r1}, sigsuspend {sus}, signal {sig}, getitimer {g} {cur:?}, disarm {r3} old {old:?}, after {after:?}"),
        );

        // 15. getrandom, prlimit64, clock_nanosleep TIMER_ABSTIME, getrusage.
        let mut buf = [0u8; 64];
        let n = raw(278, [buf.as_mut_ptr() as usize, 64, 0, 0, 0, 0]);
        let bad_flags = raw(278, [buf.as_mut_ptr() as usize, 64, 0x100, 0, 0, 0]);
        let mut old = [0u64; 2];
        let g = raw(261, [0, 7, 0, old.as_mut_ptr() as usize, 0, 0]);
        let new = [64u64, old[1]];
        let set = raw(261, [0, 7, new.as_ptr() as usize, 0, 0, 0]);
        let mut now = [0u64; 2];
        raw(261, [0, 7, old.as_ptr() as usize, now.as_mut_ptr() as usize, 0, 0]);
        let mut ts = [0i64; 2];
        raw(113, [1, ts.as_mut_ptr() as usize, 0, 0, 0, 0]);
        let deadline = ts[0] * 1_000_000_000 + ts[1] + 5_000_000;
        let req = [deadline / 1_000_000_000, deadline % 1_000_000_000];
        let slept = raw(115, [1, 1, req.as_ptr() as usize, 0, 0, 0]);
        raw(113, [1, ts.as_mut_ptr() as usize, 0, 0, 0, 0]);
        let woke = ts[0] * 1_000_000_000 + ts[1];
        let mut ru = [0i64; 18];
        let r = raw(165, [0, ru.as_mut_ptr() as usize, 0, 0, 0, 0]);
        let cpu_us = (ru[0] + ru[2]) * 1_000_000 + ru[1] + ru[3];
        s.check(
            "getrandom, prlimit64 (RLIMIT_NOFILE 1024/4096), clock_nanosleep TIMER_ABSTIME and getrusage work as on Linux",
            n == 64
                && buf.iter().any(|&b| b != 0)
                && bad_flags == EINVAL
                && g == 0
                && old == [1024, 4096]
                && set == 0
                && now == [64, 4096]
                && slept == 0
                && woke >= deadline
                && r == 0
                && cpu_us > 0,
            format_args!("getrandom {n}/{bad_flags}, nofile {old:?} then {now:?} (set {set}), clock_nanosleep {slept} woke {} ns past, getrusage {r} cpu {cpu_us} us", woke - deadline),
        );

        // 17. The controlling terminal and its foreground group.
        let st = in_child(|| {
            const IOCTL: usize = 29;
            let ioctl = |cmd: usize, arg: usize| raw(IOCTL, [0, cmd, arg, 0, 0, 0]);
            let me = sys::getpid();
            raw(SETSID, [0; 6]);
            let mut v = 0i32;
            let vp = &mut v as *mut i32 as usize;
            let before = ioctl(0x540f, vp);
            // As a shell does around tcsetpgrp: a background TIOCSPGRP or
            // TCSETS would stop us with SIGTTOU.
            sys::signal::sigaction(
                22,
                Some(&sys::signal::SigAction { handler: sys::signal::SIG_IGN, ..Default::default() }),
                None,
            );
            let take = ioctl(0x540e, 0);
            let fg = ioctl(0x540f, vp) == 0 && v == me as i32;
            let sid = ioctl(0x5429, vp) == 0 && v == me as i32;
            let g = sys::fork();
            if g == 0 {
                loop {
                    sys::sleep_ms(5);
                }
            }
            raw(SETPGID, [g as usize, 0, 0, 0, 0, 0]);
            let gg = g as i32;
            let to_g = ioctl(0x5410, &gg as *const i32 as usize);
            let fg_g = ioctl(0x540f, vp) == 0 && v == gg;
            let nope = 99999i32;
            let bad = ioctl(0x5410, &nope as *const i32 as usize);
            let mine = me as i32;
            let back = ioctl(0x5410, &mine as *const i32 as usize);
            sys::kill(g, SIGKILL);
            sys::wait4(g, 0);
            let mut t = [0u8; 36];
            let get = ioctl(0x5401, t.as_mut_ptr() as usize);
            let lflag = u32::from_le_bytes([t[12], t[13], t[14], t[15]]);
            let mut quiet = t;
            quiet[12..16].copy_from_slice(&(lflag & !0o10).to_le_bytes());
            let set = ioctl(0x5402, quiet.as_ptr() as usize);
            let mut t2 = [0u8; 36];
            ioctl(0x5401, t2.as_mut_ptr() as usize);
            let off = u32::from_le_bytes([t2[12], t2[13], t2[14], t2[15]]) & 0o10 == 0;
            ioctl(0x5402, t.as_ptr() as usize);
            let steps = [
                before == -25,
                take == 0 && fg && sid,
                to_g == 0 && fg_g,
                bad == ESRCH && back == 0,
                get == 0 && lflag & 0o12 == 0o12 && set == 0 && off,
            ];
            let r = steps.iter().position(|&ok| !ok).map_or(0, |i| 10 + i as i32);
            if r != 0 {
                println!(
                    "tests: ctty: before {before:?}, take {take} fg {fg} sid {sid} to_g {to_g} fg_g {fg_g} bad {bad} back {back} get {get} lflag {lflag:#o} set {set} off {off}"
                );
            }
            r
        });
        s.check(
            "a session leader takes the console as its controlling terminal (TIOCSCTTY) and moves the foreground group (TIOCSPGRP); termios set and read back",
            st == 0,
            format_args!("child status {st:#x} (10 + the first failing step)"),
        );

        // 18. Permission checks on paths, as a user (root bypasses).
        let cpath = |p: &core::ffi::CStr| p.as_ptr() as usize;
        let at = -100isize as usize;
        raw(34, [at, cpath(c"/tmp/perm"), 0o755, 0, 0, 0]);
        raw(34, [at, cpath(c"/tmp/perm/closed"), 0o700, 0, 0, 0]);
        for (p, mode) in [(c"/tmp/perm/secret", 0o600), (c"/tmp/perm/closed/x", 0o644), (c"/tmp/rootfile", 0o666)] {
            let fd = raw(56, [at, cpath(p), 0o100 | 1, mode, 0, 0]);
            raw(57, [fd as usize, 0, 0, 0, 0, 0]);
        }
        // Root opens a file with no permission bits at all.
        raw(53, [at, cpath(c"/tmp/perm/secret"), 0, 0, 0, 0]);
        let root_fd = raw(56, [at, cpath(c"/tmp/perm/secret"), 2, 0, 0, 0]);
        raw(57, [root_fd as usize, 0, 0, 0, 0, 0]);
        raw(53, [at, cpath(c"/tmp/perm/secret"), 0o600, 0, 0, 0]);
        let st = in_child(|| {
            let ids = raw(149, [1000, 1000, 1000, 0, 0, 0]) == 0 && raw(147, [1000, 1000, 1000, 0, 0, 0]) == 0;
            let read_secret = raw(56, [at, cpath(c"/tmp/perm/secret"), 0, 0, 0, 0]);
            let create_in_root_dir = raw(56, [at, cpath(c"/tmp/perm/new"), 0o100 | 1, 0o644, 0, 0]);
            let mine = raw(56, [at, cpath(c"/tmp/mine"), 0o100 | 1, 0o644, 0, 0]);
            let mut stat = [0u8; 128];
            let fstat = raw(80, [mine as usize, stat.as_mut_ptr() as usize, 0, 0, 0, 0]);
            let owner = u32::from_le_bytes([stat[24], stat[25], stat[26], stat[27]]);
            raw(57, [mine as usize, 0, 0, 0, 0, 0]);
            let sticky = raw(35, [at, cpath(c"/tmp/rootfile"), 0, 0, 0, 0]);
            let chmod = raw(53, [at, cpath(c"/tmp/perm/secret"), 0o777, 0, 0, 0]);
            let search = raw(79, [at, cpath(c"/tmp/perm/closed/x"), stat.as_mut_ptr() as usize, 0, 0, 0]);
            let access = raw(48, [at, cpath(c"/tmp/perm/secret"), 4, 0, 0, 0]);
            let own_unlink = raw(35, [at, cpath(c"/tmp/mine"), 0, 0, 0, 0]);
            let steps = [
                ids,
                read_secret == -13,
                create_in_root_dir == -13,
                mine >= 0 && fstat == 0 && owner == 1000,
                sticky == -1,
                chmod == -1,
                search == -13,
                access == -13,
                own_unlink == 0,
            ];
            let r = steps.iter().position(|&ok| !ok).map_or(0, |i| 10 + i as i32);
            if r != 0 {
                println!(
                    "tests: perm: read {read_secret} create {create_in_root_dir} mine {mine} owner {owner} sticky {sticky} chmod {chmod} search {search} access {access} unlink {own_unlink}"
                );
            }
            r
        });
        for p in [c"/tmp/perm/secret", c"/tmp/perm/closed/x", c"/tmp/rootfile"] {
            raw(35, [at, cpath(p), 0, 0, 0, 0]);
        }
        raw(35, [at, cpath(c"/tmp/perm/closed"), 0x200, 0, 0, 0]);
        raw(35, [at, cpath(c"/tmp/perm"), 0x200, 0, 0, 0]);
        s.check(
            "as a user: EACCES for a 0600 root file, a root 0755 directory and a 0700 one on the way, EPERM in sticky /tmp and for chmod; root opens mode 000",
            root_fd >= 0 && st == 0,
            format_args!("root open {root_fd}, child status {st:#x} (10 + the first failing step)"),
        );

        // 19. rt_sigtimedwait and msync.
        let me = sys::getpid();
        // A handler, so that a signal sigtimedwait failed to take cannot
        // end the suite when it is unblocked.
        sigaction(SIGUSR1, Some(&handler_action(record_handler, 0)), None);
        sigprocmask(SIG_BLOCK, Some(bit(SIGUSR1)));
        sys::kill(me, SIGUSR1);
        let set = bit(SIGUSR1);
        let mut info = [0u8; 128];
        let got = raw(137, [&set as *const u64 as usize, info.as_mut_ptr() as usize, 0, 8, 0, 0]);
        let (signo, pid) = (
            i32::from_le_bytes([info[0], info[1], info[2], info[3]]),
            i32::from_le_bytes([info[16], info[17], info[18], info[19]]),
        );
        let zero = [0i64; 2];
        let again = raw(137, [&set as *const u64 as usize, 0, zero.as_ptr() as usize, 8, 0, 0]);
        sigprocmask(SIG_UNBLOCK, Some(bit(SIGUSR1)));
        sigaction(SIGUSR1, Some(&SigAction::default()), None);
        let page = sys::mmap(0, 8192, 3, 0x22, -1, 0) as usize;
        let ms = (
            raw(227, [page, 8192, 4, 0, 0, 0]),
            raw(227, [page + 1, 4096, 4, 0, 0, 0]),
            raw(227, [page, 4096, 5, 0, 0, 0]),
        );
        sys::munmap(page, 8192);
        let gone = raw(227, [page, 4096, 4, 0, 0, 0]);
        s.check(
            "rt_sigtimedwait takes a blocked signal with its siginfo (EAGAIN when none comes in time); msync checks its range and flags",
            got == SIGUSR1 as isize && signo == SIGUSR1 as i32 && pid == me as i32 && again == EAGAIN && ms == (0, EINVAL, EINVAL) && gone == -12,
            format_args!("sigtimedwait {got} (signo {signo}, pid {pid}), then {again}; msync {ms:?}, unmapped {gone}"),
        );

        // 20. madvise(MADV_DONTNEED) on private anonymous memory.
        let p = sys::mmap(0, 8192, 3, 0x22, -1, 0) as usize;
        // SAFETY: two fresh read-write pages of our own.
        unsafe {
            (p as *mut u8).write_volatile(0xab);
            ((p + 4096) as *mut u8).write_volatile(0xcd);
        }
        let dn = raw(233, [p, 4096, 4, 0, 0, 0]);
        // SAFETY: as above; the first page is zero again after DONTNEED.
        let (first, second) = unsafe { ((p as *const u8).read_volatile(), ((p + 4096) as *const u8).read_volatile()) };
        let (hint, bad) = (raw(233, [p, 8192, 3, 0, 0, 0]), raw(233, [p + 1, 4096, 4, 0, 0, 0]));
        sys::munmap(p, 8192);
        s.check(
            "madvise(MADV_DONTNEED) zeroes a private page and leaves its neighbour; a hint is 0; an unaligned start EINVAL",
            dn == 0 && first == 0 && second == 0xcd && hint == 0 && bad == EINVAL,
            format_args!("dontneed {dn}, bytes {first:#x} {second:#x}, willneed {hint}, unaligned {bad}"),
        );

        // 16. execve's environment, auxiliary vector and argument limits.
        let st = in_child(|| {
            let argv = [c"tests".as_ptr().cast(), c"env".as_ptr().cast(), core::ptr::null()];
            let envp = [c"A=1".as_ptr().cast(), c"B=two".as_ptr().cast(), core::ptr::null()];
            sys::execve_env(b"/bin/tests\0", &argv, &envp) as i32
        });
        static mut LONG: [u8; 131074] = [b'x'; 131074];
        // SAFETY: only this check touches LONG, one thread at a time.
        let long = unsafe { &mut *core::ptr::addr_of_mut!(LONG) };
        long[131072] = 0; // 131072 characters: over MAX_ARG_STRLEN with the NUL
        let too_long = sys::execve(b"/bin/tests\0", &[c"tests".as_ptr().cast(), long.as_ptr(), core::ptr::null()]);
        long[100_000] = 0;
        let st_many = in_child(|| {
            let mut argv = [core::ptr::null::<u8>(); 102];
            argv[0] = c"tests".as_ptr().cast();
            argv[1] = long.as_ptr();
            for a in argv.iter_mut().take(101).skip(2) {
                *a = c"y".as_ptr().cast();
            }
            sys::execve(b"/bin/tests\0", &argv) as i32
        });
        s.check(
            "execve passes envp and Linux's auxv (AT_PHDR, AT_EXECFN, AT_HWCAP...); a 128 KiB argument is E2BIG, 100 arguments are fine",
            st == 44 << 8 && too_long == -7 && st_many == 42 << 8,
            format_args!("env child {st:#x}, long argument {too_long}, 100 arguments {st_many:#x}"),
        );
    }
}

// ----- files, directories and pipes (issue 15) ----------------------------------

const AT_FDCWD: usize = -100isize as usize;
const O_RDONLY: usize = 0;
const O_WRONLY: usize = 1;
const O_RDWR: usize = 2;
const O_CREAT: usize = 0o100;
const O_EXCL: usize = 0o200;
const O_TRUNC: usize = 0o1000;
const O_NONBLOCK: usize = 0o4000;
const O_DIRECTORY: usize = 0o40000;
const O_NOFOLLOW: usize = 0o100000;
const O_CLOEXEC: usize = 0o2000000;
const EEXIST: isize = -17;
const EBADF: isize = -9;
const ENOTDIR: isize = -20;
const ENOTEMPTY: isize = -39;
const ENAMETOOLONG: isize = -36;
const SIGPIPE: i32 = 13;

fn openat(path: &core::ffi::CStr, flags: usize, mode: usize) -> isize {
    sys::syscall6(56, [AT_FDCWD, path.as_ptr() as usize, flags, mode, 0, 0])
}
fn close(fd: isize) -> isize {
    sys::syscall6(57, [fd as usize, 0, 0, 0, 0, 0])
}
fn lseek(fd: isize, off: isize, whence: usize) -> isize {
    sys::syscall6(62, [fd as usize, off as usize, whence, 0, 0, 0])
}
fn pipe2(flags: usize) -> (isize, [i32; 2]) {
    let mut fds = [-1i32; 2];
    let r = sys::syscall6(59, [fds.as_mut_ptr() as usize, flags, 0, 0, 0, 0]);
    (r, fds)
}
fn unlink(path: &core::ffi::CStr) -> isize {
    sys::syscall6(35, [AT_FDCWD, path.as_ptr() as usize, 0, 0, 0, 0])
}
fn rmdir(path: &core::ffi::CStr) -> isize {
    sys::syscall6(35, [AT_FDCWD, path.as_ptr() as usize, 0x200, 0, 0, 0])
}
fn mkdir(path: &core::ffi::CStr, mode: usize) -> isize {
    sys::syscall6(34, [AT_FDCWD, path.as_ptr() as usize, mode, 0, 0, 0])
}
fn fd_read(fd: isize, buf: &mut [u8]) -> isize {
    sys::read(fd as usize, buf)
}
fn fd_write(fd: isize, buf: &[u8]) -> isize {
    sys::write(fd as usize, buf)
}

/// The names a getdents64 buffer lists.
fn dirent_names(buf: &[u8], out: &mut [[u8; 16]; 8]) -> usize {
    let (mut off, mut n) = (0, 0);
    while off + 19 < buf.len() && n < out.len() {
        let reclen = u16::from_le_bytes([buf[off + 16], buf[off + 17]]) as usize;
        if reclen == 0 {
            break;
        }
        let name = &buf[off + 19..off + reclen];
        let len = name.iter().position(|&c| c == 0).unwrap_or(name.len()).min(16);
        out[n] = [0; 16];
        out[n][..len].copy_from_slice(&name[..len]);
        n += 1;
        off += reclen;
    }
    n
}

fn has_name(names: &[[u8; 16]], want: &[u8]) -> bool {
    names.iter().any(|n| &n[..want.len()] == want && (want.len() == 16 || n[want.len()] == 0))
}

/// Files, directories and pipes, as Linux has them: every check here
/// passes on Linux 6.1 too. Works under /tmp (made if missing).
fn file_tests(s: &mut Suite) {
    let _ = mkdir(c"/tmp", 0o1777);
    let _ = mkdir(c"/tmp/el0", 0o755);

    // A file: create exclusively, write, seek to the end, read back.
    let fd = openat(c"/tmp/el0/f", O_CREAT | O_EXCL | O_RDWR, 0o644);
    let w = fd_write(fd, b"hello, file");
    let end = lseek(fd, 0, 2);
    let back = lseek(fd, -4, 2);
    let mut b = [0u8; 16];
    let r = fd_read(fd, &mut b);
    let excl = openat(c"/tmp/el0/f", O_CREAT | O_EXCL | O_RDWR, 0o644);
    close(fd);
    let fd = openat(c"/tmp/el0/f", O_RDONLY, 0);
    let mut all = [0u8; 32];
    let r2 = fd_read(fd, &mut all);
    close(fd);
    s.check(
        "files: O_CREAT|O_EXCL, write, lseek SEEK_END, read back; O_EXCL on an existing file gives EEXIST",
        fd >= 0
            && w == 11
            && end == 11
            && back == 7
            && r == 4
            && &b[..4] == b"file"
            && excl == EEXIST
            && r2 == 11
            && &all[..11] == b"hello, file",
        format_args!("fd {fd} w {w} end {end} back {back} r {r} excl {excl} r2 {r2}"),
    );

    // O_TRUNC empties it; unlinking an open file keeps its data until close.
    let fd = openat(c"/tmp/el0/f", O_RDWR | O_TRUNC, 0);
    let t = lseek(fd, 0, 2);
    fd_write(fd, b"kept");
    let u = unlink(c"/tmp/el0/f");
    let gone = openat(c"/tmp/el0/f", O_RDONLY, 0);
    lseek(fd, 0, 0);
    let mut b = [0u8; 8];
    let r = fd_read(fd, &mut b);
    close(fd);
    s.check(
        "files: O_TRUNC empties; an unlinked open file keeps its data until closed",
        t == 0 && u == 0 && gone == ENOENT && r == 4 && &b[..4] == b"kept",
        format_args!("trunc {t} unlink {u} reopen {gone} read {r}"),
    );

    // Pipes: a round trip, then end of file once the writer is closed.
    let (pr, fds) = pipe2(0);
    let (rd, wr) = (fds[0] as isize, fds[1] as isize);
    let w = fd_write(wr, b"through the pipe");
    let mut b = [0u8; 32];
    let r = fd_read(rd, &mut b);
    close(wr);
    let eof = fd_read(rd, &mut b);
    close(rd);
    s.check(
        "pipes: pipe2, write then read the same bytes; EOF once no writer is left",
        pr == 0 && w == 16 && r == 16 && &b[..16] == b"through the pipe" && eof == 0,
        format_args!("pipe2 {pr} w {w} r {r} eof {eof}"),
    );

    // A child writes, the parent reads: data crosses fork, and the reader
    // sleeps until it comes.
    let (_, fds) = pipe2(0);
    let (rd, wr) = (fds[0] as isize, fds[1] as isize);
    let pid = sys::fork();
    if pid == 0 {
        close(rd);
        sys::sleep_ms(20);
        fd_write(wr, b"from the child");
        sys::exit_group(0);
    }
    close(wr);
    let mut b = [0u8; 32];
    let r = fd_read(rd, &mut b);
    let eof = fd_read(rd, &mut b[16..]);
    let (_, st) = sys::wait4(pid, 0);
    close(rd);
    s.check(
        "pipes: a reader sleeps until a forked child writes, then sees EOF when it exits",
        r == 14 && &b[..14] == b"from the child" && eof == 0 && st == 0,
        format_args!("r {r} eof {eof} status {st:#x}"),
    );

    // O_NONBLOCK: an empty pipe gives EAGAIN; a full one too.
    let (_, fds) = pipe2(O_NONBLOCK);
    let (rd, wr) = (fds[0] as isize, fds[1] as isize);
    let mut b = [0u8; 8];
    let again = fd_read(rd, &mut b);
    let big = [7u8; 4096];
    let mut total = 0;
    loop {
        let w = fd_write(wr, &big);
        if w <= 0 {
            total = if w == EAGAIN { total } else { w };
            break;
        }
        total += w;
    }
    close(rd);
    close(wr);
    s.check(
        "pipes: O_NONBLOCK gives EAGAIN on an empty pipe, and on a full one after 64 KiB",
        again == EAGAIN && total == 65536,
        format_args!("read {again}, wrote {total} before EAGAIN"),
    );

    // No reader: the writer gets SIGPIPE (and dies of it: the default).
    let st = in_child(|| {
        let (_, fds) = pipe2(0);
        close(fds[0] as isize);
        let w = fd_write(fds[1] as isize, b"x");
        100 + (-w) as i32
    });
    s.check(
        "pipes: a write with no reader left kills the writer with SIGPIPE",
        st & 0x7f == SIGPIPE,
        format_args!("status {st:#x}"),
    );

    // Directories: getdents64 lists what mkdir and open made.
    mkdir(c"/tmp/el0/d", 0o755);
    close(openat(c"/tmp/el0/d/one", O_CREAT | O_WRONLY, 0o644));
    mkdir(c"/tmp/el0/d/two", 0o755);
    let dfd = openat(c"/tmp/el0/d", O_RDONLY | O_DIRECTORY, 0);
    let mut buf = [0u8; 512];
    let n = sys::syscall6(61, [dfd as usize, buf.as_mut_ptr() as usize, buf.len(), 0, 0, 0]);
    let mut names = [[0u8; 16]; 8];
    let count = dirent_names(&buf[..n.max(0) as usize], &mut names);
    let end = sys::syscall6(61, [dfd as usize, buf.as_mut_ptr() as usize, buf.len(), 0, 0, 0]);
    close(dfd);
    let notdir = openat(c"/tmp/el0/d/one", O_RDONLY | O_DIRECTORY, 0);
    let notempty = rmdir(c"/tmp/el0/d");
    s.check(
        "directories: getdents64 lists . .. and the entries, then 0; O_DIRECTORY on a file ENOTDIR; rmdir non-empty ENOTEMPTY",
        count == 4
            && [&b"."[..], b"..", b"one", b"two"].iter().all(|w| has_name(&names[..count], w))
            && end == 0
            && notdir == ENOTDIR
            && notempty == ENOTEMPTY,
        format_args!("n {n} count {count} end {end} notdir {notdir} rmdir {notempty}"),
    );

    // Symlinks: readlinkat gives the target, open follows it, O_NOFOLLOW
    // refuses it, a loop is ELOOP.
    let fd = openat(c"/tmp/el0/target", O_CREAT | O_WRONLY, 0o644);
    fd_write(fd, b"via link");
    close(fd);
    let sl = sys::syscall6(36, [c"target".as_ptr() as usize, AT_FDCWD, c"/tmp/el0/link".as_ptr() as usize, 0, 0, 0]);
    let mut t = [0u8; 32];
    let rl = sys::syscall6(78, [AT_FDCWD, c"/tmp/el0/link".as_ptr() as usize, t.as_mut_ptr() as usize, t.len(), 0, 0]);
    let fd = openat(c"/tmp/el0/link", O_RDONLY, 0);
    let mut b = [0u8; 16];
    let r = fd_read(fd, &mut b);
    close(fd);
    let nofollow = openat(c"/tmp/el0/link", O_RDONLY | O_NOFOLLOW, 0);
    sys::syscall6(36, [c"loop2".as_ptr() as usize, AT_FDCWD, c"/tmp/el0/loop1".as_ptr() as usize, 0, 0, 0]);
    sys::syscall6(36, [c"loop1".as_ptr() as usize, AT_FDCWD, c"/tmp/el0/loop2".as_ptr() as usize, 0, 0, 0]);
    let lp = openat(c"/tmp/el0/loop1", O_RDONLY, 0);
    s.check(
        "symlinks: symlinkat and readlinkat; open follows a link, O_NOFOLLOW gives ELOOP, a loop gives ELOOP",
        sl == 0
            && rl == 6
            && &t[..6] == b"target"
            && r == 8
            && &b[..8] == b"via link"
            && nofollow == ELOOP
            && lp == ELOOP,
        format_args!("symlink {sl} readlink {rl} read {r} nofollow {nofollow} loop {lp}"),
    );

    // dup3: the new descriptor shares the open file (and its offset);
    // dup3(fd, fd) is EINVAL; fcntl's FD_CLOEXEC and F_DUPFD.
    let fd = openat(c"/tmp/el0/target", O_RDONLY, 0);
    let d = sys::syscall6(24, [fd as usize, 40, 0, 0, 0, 0]);
    let mut b = [0u8; 4];
    fd_read(40, &mut b);
    let shared = lseek(fd, 0, 1);
    let same = sys::syscall6(24, [fd as usize, fd as usize, 0, 0, 0, 0]);
    let d2 = sys::syscall6(24, [fd as usize, 41, O_CLOEXEC, 0, 0, 0]);
    let getfd = sys::syscall6(25, [41, 1, 0, 0, 0, 0]);
    let dupfd = sys::syscall6(25, [fd as usize, 0, 30, 0, 0, 0]);
    let badfd = sys::syscall6(24, [999, 42, 0, 0, 0, 0]);
    close(fd);
    close(40);
    close(41);
    close(dupfd);
    s.check(
        "descriptors: dup3 shares the file offset; dup3(fd, fd) EINVAL; O_CLOEXEC sets FD_CLOEXEC; F_DUPFD takes the lowest free from its argument; EBADF",
        d == 40 && shared == 4 && same == EINVAL && d2 == 41 && getfd == 1 && dupfd == 30 && badfd == EBADF,
        format_args!("dup3 {d} offset {shared} same {same} cloexec {d2}/{getfd} dupfd {dupfd} badfd {badfd}"),
    );

    // Working directory: mkdir, chdir, getcwd, relative open.
    let md = mkdir(c"/tmp/el0/wd", 0o755);
    let cd = sys::syscall6(49, [c"/tmp/el0/wd".as_ptr() as usize, 0, 0, 0, 0, 0]);
    let mut cwd = [0u8; 64];
    let gc = sys::syscall6(17, [cwd.as_mut_ptr() as usize, cwd.len(), 0, 0, 0, 0]);
    let rel = openat(c"../target", O_RDONLY, 0);
    close(rel);
    let small = sys::syscall6(17, [cwd.as_mut_ptr() as usize, 4, 0, 0, 0, 0]);
    sys::syscall6(49, [c"/".as_ptr() as usize, 0, 0, 0, 0, 0]);
    s.check(
        "working directory: chdir, getcwd (ERANGE when small), a relative path from it",
        md == 0 && cd == 0 && gc == 12 && &cwd[..12] == b"/tmp/el0/wd\0" && rel >= 0 && small == -34,
        format_args!("mkdir {md} chdir {cd} getcwd {gc} relative open {rel} small {small}"),
    );

    // Bad input: bad pointers give EFAULT, a path of PATH_MAX bytes and a
    // 256-byte name ENAMETOOLONG.
    let e1 = sys::syscall6(56, [AT_FDCWD, 0x10, O_RDONLY, 0, 0, 0]);
    let e2 = sys::syscall6(59, [0x10, 0, 0, 0, 0, 0]);
    let fd = openat(c"/tmp/el0/target", O_RDONLY, 0);
    let e3 = sys::syscall6(80, [fd as usize, 0x10, 0, 0, 0, 0]);
    let e4 = sys::syscall6(63, [fd as usize, 0xffff_0000_4000_0000, 8, 0, 0, 0]);
    let dfd = openat(c"/tmp/el0", O_RDONLY | O_DIRECTORY, 0);
    let e5 = sys::syscall6(61, [dfd as usize, 0x10, 512, 0, 0, 0]);
    close(fd);
    close(dfd);
    let mut long = [b'a'; 4097];
    long[0] = b'/';
    long[4096] = 0;
    let e6 = sys::syscall6(56, [AT_FDCWD, long.as_ptr() as usize, O_RDONLY, 0, 0, 0]);
    let mut name = [b'n'; 262];
    name[..5].copy_from_slice(b"/tmp/");
    name[261] = 0;
    let e7 = sys::syscall6(56, [AT_FDCWD, name.as_ptr() as usize, O_RDONLY, 0, 0, 0]);
    s.check(
        "file calls: bad pointers give EFAULT; a PATH_MAX path and a 256-byte name give ENAMETOOLONG",
        [e1, e2, e3, e4, e5] == [EFAULT; 5] && e6 == ENAMETOOLONG && e7 == ENAMETOOLONG,
        format_args!("{e1} {e2} {e3} {e4} {e5} {e6} {e7}"),
    );

    // Device nodes and FIFOs made with mknodat (Linux's initramfs run has
    // no devtmpfs): null swallows and reads EOF, zero reads zeros, full is
    // full; a FIFO opened read-write passes bytes through.
    let mknod = |p: &core::ffi::CStr, mode: usize, dev: usize| {
        sys::syscall6(33, [AT_FDCWD, p.as_ptr() as usize, mode, dev, 0, 0])
    };
    let m = [
        mknod(c"/tmp/el0/null", 0o20666, 0x103),
        mknod(c"/tmp/el0/zero", 0o20666, 0x105),
        mknod(c"/tmp/el0/full", 0o20666, 0x107),
        mknod(c"/tmp/el0/fifo", 0o10644, 0),
    ];
    let null = openat(c"/tmp/el0/null", O_RDWR, 0);
    let wn = fd_write(null, b"gone");
    let mut b = [1u8; 8];
    let rn = fd_read(null, &mut b);
    let zero = openat(c"/tmp/el0/zero", O_RDONLY, 0);
    let rz = fd_read(zero, &mut b);
    let full = openat(c"/tmp/el0/full", O_WRONLY, 0);
    let wf = fd_write(full, b"x");
    let fifo = openat(c"/tmp/el0/fifo", O_RDWR, 0);
    let wq = fd_write(fifo, b"fifo");
    let mut q = [0u8; 8];
    let rq = fd_read(fifo, &mut q);
    close(null);
    close(zero);
    close(full);
    close(fifo);
    s.check(
        "mknodat: null, zero and full devices and a FIFO behave as Linux's",
        m == [0; 4]
            && wn == 4
            && rn == 0
            && rz == 8
            && b == [0; 8]
            && wf == -28
            && wq == 4
            && rq == 4
            && &q[..4] == b"fifo",
        format_args!("mknod {m:?} null w {wn} r {rn}, zero r {rz}, full w {wf}, fifo w {wq} r {rq}"),
    );

    // A FIFO's open waits for the other side: the child's O_WRONLY open
    // returns once the parent opens for reading; without a reader,
    // O_WRONLY|O_NONBLOCK is ENXIO, and O_RDONLY|O_NONBLOCK opens at once.
    sys::syscall6(33, [AT_FDCWD, c"/tmp/el0/fifo2".as_ptr() as usize, 0o10644, 0, 0, 0]);
    let enxio = openat(c"/tmp/el0/fifo2", O_WRONLY | O_NONBLOCK, 0);
    let nb = openat(c"/tmp/el0/fifo2", O_RDONLY | O_NONBLOCK, 0);
    close(nb);
    let pid = sys::fork();
    if pid == 0 {
        let w = openat(c"/tmp/el0/fifo2", O_WRONLY, 0);
        let n = fd_write(w, b"met");
        sys::exit_group(if n == 3 { 0 } else { 1 });
    }
    let r = openat(c"/tmp/el0/fifo2", O_RDONLY, 0);
    let mut b = [0u8; 8];
    let n = fd_read(r, &mut b);
    let eof = fd_read(r, &mut b[4..]);
    let (_, st) = sys::wait4(pid, 0);
    close(r);
    s.check(
        "FIFOs: a blocking open waits for the other side; O_WRONLY|O_NONBLOCK without a reader gives ENXIO",
        enxio == -6 && nb >= 0 && n == 3 && &b[..3] == b"met" && eof == 0 && st == 0,
        format_args!("enxio {enxio} nonblock {nb} read {n} eof {eof} status {st:#x}"),
    );

    // fork shares an open file's offset with the child.
    let fd = openat(c"/tmp/el0/target", O_RDONLY, 0);
    let st = in_child(|| {
        let mut b = [0u8; 4];
        if fd_read(fd, &mut b) == 4 { 0 } else { 1 }
    });
    let off = lseek(fd, 0, 1);
    close(fd);
    s.check(
        "fork: the child's read moves the offset of the file it shares with its parent",
        st == 0 && off == 4,
        format_args!("status {st:#x} offset {off}"),
    );
}

guest_user::entry!(tests_main);

#[cfg(not(target_os = "none"))]
fn main() {
    let _ = tests_main;
}

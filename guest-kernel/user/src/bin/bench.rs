//! `bench`: lmbench-style micro-benchmarks of the kernel's process and
//! memory paths, as a static Linux-ABI program, so that the very same
//! binary runs on our guest kernel and on stock Linux.
//!
//! It is meant to run as init (`init=/bin/bench` on our kernel,
//! `rdinit=/bin/bench` on Linux) under QEMU `-icount shift=0`, where one
//! nanosecond of virtual time is one instruction: each result is a count
//! of virtual-counter ticks over `reps` operations, printed as
//!
//! ```text
//! BENCH id=null_syscall reps=10000 ticks=123456 cntfrq=1000000000
//! ```
//!
//! which `scripts/bench` turns into instructions per operation
//! (`ticks * 1e9 / cntfrq / reps`). Arguments: `quick` (few repetitions,
//! for the test suite), `exit` (exit at once: the child image of the
//! fork+execve benchmark). When done it powers the machine off with
//! `reboot(2)`. What each benchmark's path through the kernel is:
//! docs/benchmarks.md.
#![cfg_attr(target_os = "none", no_std, no_main)]

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use guest_user::println;
use guest_user::sys::{self, cntvct};

const PAGE: usize = 4096;
const PROT_RW: usize = 0x1 | 0x2;
const MAP_PRIVATE_ANON: usize = 0x02 | 0x20;
const MAP_SHARED_ANON: usize = 0x01 | 0x20;
/// Stack of the futex benchmark's second thread.
const THREAD_STACK: usize = 64 * 1024;
/// Pages touched per round of the page-fault benchmarks.
const FAULT_PAGES: usize = 64;

fn report(id: &str, reps: u64, ticks: u64) {
    println!("BENCH id={id} reps={reps} ticks={ticks} cntfrq={}", sys::cntfrq());
}

/// Runs `op` `reps` times after `reps / 10` warm-up runs; reports the ticks.
fn time(id: &str, reps: u64, mut op: impl FnMut()) {
    for _ in 0..reps / 10 {
        op();
    }
    let t0 = cntvct();
    for _ in 0..reps {
        op();
    }
    report(id, reps, cntvct() - t0);
}

fn arg(argv: *const *const u8, i: usize) -> &'static [u8] {
    // SAFETY: the kernel put argc valid NUL-terminated strings at argv
    // (Linux ELF ABI); callers check i < argc.
    unsafe {
        let p = *argv.add(i);
        let mut n = 0;
        while *p.add(n) != 0 {
            n += 1;
        }
        core::slice::from_raw_parts(p, n)
    }
}

fn bench_main(argc: usize, argv: *const *const u8) -> i32 {
    let first = if argc > 1 { arg(argv, 1) } else { b"" };
    if first == b"exit" {
        return 0;
    }
    let scale = if first == b"quick" { 1 } else { 20 };
    println!("bench: pid {}, counter at {} Hz, {} repetitions", sys::getpid(), sys::cntfrq(), scale);

    // Everything on CPU 0, so the context-switch pair really alternates.
    sys::sched_setaffinity(0, 1);

    time("null_syscall", 500 * scale, || {
        sys::getppid();
    });
    yield_pair(100 * scale);
    futex_pair(100 * scale);
    time("fork_exit_wait", 10 * scale, || {
        let pid = sys::fork();
        if pid == 0 {
            sys::exit_group(0);
        }
        sys::wait4(pid, 0);
    });
    time("fork_execve_exit", 5 * scale, || {
        let pid = sys::fork();
        if pid == 0 {
            let argv = [c"bench".as_ptr().cast(), c"exit".as_ptr().cast(), core::ptr::null()];
            sys::execve(b"/bin/bench\0", &argv);
            sys::exit_group(127);
        }
        sys::wait4(pid, 0);
    });
    anon_fault(scale);
    cow_fault(scale);
    println!("bench: done");
    sys::power_off();
    0
}

/// Two tasks pinned to one CPU call `sched_yield` in turn: once they
/// alternate, each call is one switch to the other task. The child counts
/// its calls in a shared page; the parent first yields until the child has
/// run (CFS starts a new child a slice ahead in virtual time, START_DEBIT,
/// and a yield hands over only to a task within the wakeup granularity, so
/// the first couple of milliseconds of yields keep the CPU, on Linux as
/// here), then times `reps` calls of its own and reports over all calls
/// both made meanwhile (about `2 * reps`).
fn yield_pair(reps: u64) {
    let page = sys::mmap(0, PAGE, PROT_RW, MAP_SHARED_ANON, -1, 0);
    assert!(page > 0, "mmap failed: {page}");
    // SAFETY: a fresh, page-aligned shared page, written before fork so
    // that both processes map the same frame.
    let calls = unsafe { &*(page as *const AtomicU64) };
    calls.store(0, Ordering::Relaxed);
    let child = sys::fork();
    if child == 0 {
        loop {
            calls.fetch_add(1, Ordering::Relaxed);
            sys::sched_yield();
        }
    }
    let mut spins = 0u64;
    while calls.load(Ordering::Relaxed) < reps / 10 + 1 && spins < 1_000_000 {
        sys::sched_yield();
        spins += 1;
    }
    let c0 = calls.load(Ordering::Relaxed);
    let t0 = cntvct();
    for _ in 0..reps {
        sys::sched_yield();
    }
    let ticks = cntvct() - t0;
    let child_calls = calls.load(Ordering::Relaxed) - c0;
    report("sched_yield_switch", reps + child_calls, ticks);
    sys::kill(child, sys::SIGKILL);
    sys::wait4(child, 0);
    sys::munmap(page as usize, PAGE);
}

/// Whose turn it is in the futex ping-pong.
static TURN: AtomicU32 = AtomicU32::new(MAIN);
const MAIN: u32 = 0;
const PARTNER: u32 = 1;
const STOP: u32 = 2;

/// The second thread of [`futex_pair`]: wait (FUTEX_WAIT_PRIVATE) while it
/// is the main thread's turn, hand the turn back and wake it.
extern "C" fn futex_partner(_: usize) -> ! {
    loop {
        match TURN.load(Ordering::Acquire) {
            PARTNER => {
                TURN.store(MAIN, Ordering::Release);
                sys::futex_wake(&TURN, 1, true);
            }
            STOP => sys::exit(0),
            _ => {
                sys::futex_wait(&TURN, MAIN, None, true);
            }
        }
    }
}

/// The pipe-free wake-up: two threads of this process (`clone` with
/// CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM,
/// their own stack; bench pinned itself to CPU 0 and the thread inherits
/// that) take turns through one futex word: each stores the other's turn,
/// FUTEX_WAKE_PRIVATEs it, and FUTEX_WAIT_PRIVATEs until its own turn comes
/// back. One round is two one-way hand-overs, each a wake-up and a switch;
/// reported per one-way hand-over. At the end the main thread joins the
/// partner through CLONE_CHILD_CLEARTID (a shared FUTEX_WAIT on its tid).
fn futex_pair(reps: u64) {
    let stack = map(THREAD_STACK / PAGE);
    let tid = AtomicU32::new(0);
    TURN.store(MAIN, Ordering::Relaxed);
    let tidp = tid.as_ptr() as usize;
    // SAFETY: the stack is ours until the partner has exited (joined
    // below); TURN is static.
    let r = unsafe {
        sys::clone_thread(sys::clone::THREAD_FLAGS, stack as usize + THREAD_STACK, tidp, 0, tidp, futex_partner, 0)
    };
    assert!(r > 0, "clone failed: {r}");
    let round = || {
        TURN.store(PARTNER, Ordering::Release);
        sys::futex_wake(&TURN, 1, true);
        while TURN.load(Ordering::Acquire) == PARTNER {
            sys::futex_wait(&TURN, PARTNER, None, true);
        }
    };
    for _ in 0..reps / 10 {
        round();
    }
    let t0 = cntvct();
    for _ in 0..reps {
        round();
    }
    report("futex_switch", 2 * reps, cntvct() - t0);
    TURN.store(STOP, Ordering::Release);
    sys::futex_wake(&TURN, 1, true);
    loop {
        let t = tid.load(Ordering::Acquire);
        if t == 0 {
            break;
        }
        sys::futex_wait(&tid, t, None, false);
    }
    sys::munmap(stack as usize, THREAD_STACK);
}

/// Maps fresh anonymous memory; panics (exit 101) if the kernel refuses.
fn map(pages: usize) -> *mut u8 {
    let p = sys::mmap(0, pages * PAGE, PROT_RW, MAP_PRIVATE_ANON, -1, 0);
    assert!(p > 0, "mmap failed: {p}");
    p as *mut u8
}

/// Writes one byte to each of `pages` pages from `p`; returns the ticks.
fn touch(p: *mut u8, pages: usize, value: u8) -> u64 {
    let t0 = cntvct();
    for i in 0..pages {
        // SAFETY: p maps `pages` writable pages (mmap above).
        unsafe { p.add(i * PAGE).write_volatile(value) };
    }
    cntvct() - t0
}

/// First write to each page of a fresh anonymous mapping: one demand-zero
/// page fault per page.
fn anon_fault(scale: u64) {
    let rounds = scale;
    let mut ticks = 0;
    for _ in 0..rounds {
        let p = map(FAULT_PAGES);
        ticks += touch(p, FAULT_PAGES, 1);
        sys::munmap(p as usize, FAULT_PAGES * PAGE);
    }
    report("anon_page_fault", rounds * FAULT_PAGES as u64, ticks);
}

/// A child's first write to each page it shares with its parent after
/// fork: one copy-on-write fault per page. The child times and reports.
fn cow_fault(scale: u64) {
    let pages = FAULT_PAGES * scale as usize;
    let p = map(pages);
    touch(p, pages, 1);
    let child = sys::fork();
    if child == 0 {
        let t = touch(p, pages, 2);
        report("cow_page_fault", pages as u64, t);
        sys::exit_group(0);
    }
    sys::wait4(child, 0);
    sys::munmap(p as usize, pages * PAGE);
}

guest_user::entry!(bench_main);

#[cfg(not(target_os = "none"))]
fn main() {
    let _ = bench_main;
}

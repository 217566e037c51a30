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

use guest_user::println;
use guest_user::sys::{self, cntvct};

const PAGE: usize = 4096;
const PROT_RW: usize = 0x1 | 0x2;
const MAP_PRIVATE_ANON: usize = 0x02 | 0x20;
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

/// Two tasks pinned to one CPU call `sched_yield` in turn: each call is one
/// switch to the other task, so `2 * reps` switches happen in the timed loop.
fn yield_pair(reps: u64) {
    let child = sys::fork();
    if child == 0 {
        loop {
            sys::sched_yield();
        }
    }
    for _ in 0..reps / 10 {
        sys::sched_yield();
    }
    let t0 = cntvct();
    for _ in 0..reps {
        sys::sched_yield();
    }
    report("sched_yield_switch", 2 * reps, cntvct() - t0);
    sys::kill(child, sys::SIGKILL);
    sys::wait4(child, 0);
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

//! `tests`: the EL0 test suite init runs at boot. Each test prints
//! `ok - NAME` or `FAIL - NAME: why`; the last line is `N passed, N failed`.
//! Child processes do the dangerous parts (bad pointers, segfaults, OOM,
//! fork bombs), so a kernel that survives them keeps running the suite.
#![cfg_attr(target_os = "none", no_std, no_main)]

use guest_user::println;
use guest_user::sys::{self, SIGKILL, SIGSEGV};

const EFAULT: isize = -14;
const ENOENT: isize = -2;
const ECHILD: isize = -10;
const EAGAIN: isize = -11;
const ENOSYS: isize = -38;
const PROT_READ: usize = 1;
const PROT_WRITE: usize = 2;
const MAP_SHARED: usize = 0x01;
const MAP_PRIVATE: usize = 0x02;
const MAP_ANONYMOUS: usize = 0x20;
const MAP_NORESERVE: usize = 0x4000;
const SCHED_OTHER: usize = 0;
const SCHED_FIFO: usize = 1;
#[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
const CLONE_VM: usize = 0x100;
#[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
const CLONE_VFORK: usize = 0x4000;
const PR_SET_CHILD_SUBREAPER: usize = 36;

struct Suite {
    passed: u32,
    failed: u32,
}

impl Suite {
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

fn ncpus() -> u32 {
    sys::sched_getaffinity(0).1.count_ones()
}

fn tests_main(argc: usize, argv: *const *const u8) -> i32 {
    if argc >= 2 {
        // Re-exec'd by the execve test: prove we run and exit 42.
        // SAFETY: the kernel passes argc valid NUL-terminated argv strings.
        let a1 = unsafe { *argv.add(1) };
        // SAFETY: as above.
        if unsafe { *a1 } == b'x' {
            return 42;
        }
    }
    let mut s = Suite { passed: 0, failed: 0 };
    let me = sys::getpid();
    println!("tests: pid {me}, ppid {}, {} CPU(s)", sys::getppid(), ncpus());

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
    }

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

    // nanosleep and clock_gettime.
    let t0 = sys::clock_ns();
    let r = sys::sleep_ms(50);
    let dt = sys::clock_ns() - t0;
    s.check(
        "nanosleep 50 ms sleeps 50..500 ms",
        r == 0 && (50_000_000..500_000_000).contains(&dt),
        format_args!("r {r} slept {} us", dt / 1000),
    );

    s.check("sched_yield", sys::sched_yield() == 0, format_args!(""));

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
    s.check("init ignores SIGKILL", sys::kill(1, SIGKILL) == 0 && sys::getppid() == 1, format_args!(""));

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

    // Fork bomb against the pids limit: fork until EAGAIN, then recover.
    let shared_bomb = shared_page();
    let st = in_child(|| {
        let mut pids = [0isize; 512];
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
        "fork bomb stops at the pids limit with EAGAIN",
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

    // CPU shares by nice: two spinners on one CPU, nice 0 and nice 5.
    let cpu_mask = 1u64 << (ncpus() - 1);
    let sh = shared_page();
    let spin = |slot: usize, nice: isize| {
        move || {
            sys::sched_setaffinity(0, cpu_mask);
            sys::setpriority(0, nice);
            let end = sys::clock_ns() + 1_000_000_000;
            let mut n = 0u64;
            while sys::clock_ns() < end {
                for _ in 0..1000 {
                    n = core::hint::black_box(n + 1);
                }
            }
            write_shared(sh, slot, n);
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
    let (n0, n5) = (read_shared(sh, 0), read_shared(sh, 1));
    let ratio_x100 = (n0 * 100).checked_div(n5).unwrap_or(0);
    // Weights 1024:335 give 3.06; accept 2.0..4.5 (timer-tick granularity).
    println!(
        "tests: nice 0 vs nice 5 on one CPU: {n0} vs {n5} iterations, ratio {}.{:02} (weights: 3.06)",
        ratio_x100 / 100,
        ratio_x100 % 100
    );
    s.check(
        "CFS shares CPU by nice weight (1024:335 within 2.0..4.5)",
        (200..=450).contains(&ratio_x100),
        format_args!("ratio x100 = {ratio_x100}"),
    );

    // SCHED_FIFO preempts a fair task on its CPU and starves it.
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
    sys::sleep_ms(50);
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

    println!("{} passed, {} failed", s.passed, s.failed);
    i32::from(s.failed != 0)
}

guest_user::entry!(tests_main);

#[cfg(not(target_os = "none"))]
fn main() {
    let _ = tests_main;
}

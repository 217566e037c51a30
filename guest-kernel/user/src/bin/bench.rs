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
//! (`ticks * 1e9 / cntfrq / reps`). First it prints the rows it will run
//! (`BENCH-PLAN ids=ID,ID,...`), so that the harness can tell which row a
//! run stopped by its time bound was in. Arguments, in any order: `quick` (few repetitions,
//! for the test suite), `smoke` (a fifth of those: the test suite's runs
//! on several CPUs), `fifths=N` (N fifths of quick's: `scripts/profile`
//! runs one benchmark long enough to sample), `skip=ID,ID,...` (leave those benchmarks out: the
//! harness restarts a run after the row that did not finish), `only=ID,...`
//! (just those: `scripts/profile`), `exit` (as
//! the first argument: exit at once, the child image of the fork+execve
//! benchmark), `boot` (as the first argument: print the virtual counter as
//! `BENCH id=boot_to_init reps=1 ticks=N`, the instructions from the
//! counter's zero to init's first instruction or so, and power off; the
//! Linux boot row), or (as the first argument, for the virtio rows on
//! Linux; see `mod virtio`) `blk DEV N`, `ping ADDR N`, `tcp-sink PORT`,
//! `tcp-send ADDR PORT BYTES` (each with `pmu` after its arguments to count
//! with the PMU's instruction counter instead). With two CPUs or more it also runs the scaling benchmarks
//! (`scale_*`: processes pinned one per CPU with `sched_setaffinity`). When
//! done it powers the machine off with `reboot(2)`. What each benchmark's
//! path through the kernel is: docs/benchmarks.md.
#![cfg_attr(target_os = "none", no_std, no_main)]

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use guest_user::sys::{self, cntvct};
use guest_user::{print, println};

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

/// Every benchmark, in the order they run (`scale_*` only with two CPUs
/// or more).
const IDS: &[&str] = &[
    "null_syscall",
    "sched_yield_switch",
    "futex_switch",
    "fork_exit_wait",
    "fork_execve_exit",
    "anon_page_fault",
    "cow_page_fault",
    "pipe_round_trip",
    "open_close",
    "stat",
    "shell_true_loop",
    "scale_fork_alone",
    "scale_fork_pair",
    "scale_fault_alone",
    "scale_fault_pair",
];

/// Which benchmarks this run leaves out (`skip=ID,ID,...`) or runs alone
/// (`only=ID,ID,...`).
struct Select<'a> {
    skip: &'a [u8],
    only: Option<&'a [u8]>,
}

impl Select<'_> {
    /// Whether benchmark `id` runs.
    fn run(&self, id: &str) -> bool {
        let listed = |list: &[u8]| list.split(|&c| c == b',').any(|s| s == id.as_bytes());
        !listed(self.skip) && self.only.is_none_or(listed)
    }
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

/// A decimal number.
fn parse(digits: &[u8]) -> Option<u64> {
    let mut n = 0u64;
    for &d in digits {
        n = n.checked_mul(10)?.checked_add(u64::from(d.checked_sub(b'0').filter(|d| *d < 10)?))?;
    }
    (!digits.is_empty()).then_some(n)
}

fn bench_main(argc: usize, argv: *const *const u8) -> i32 {
    let first = if argc > 1 { arg(argv, 1) } else { b"" };
    if first == b"exit" {
        return 0;
    }
    if first == b"blk" || first == b"ping" || first == b"tcp-sink" || first == b"tcp-send" {
        let args: [&[u8]; 4] = core::array::from_fn(|i| if i + 2 < argc { arg(argv, i + 2) } else { b"" });
        return virtio::main(first, args);
    }
    if first == b"boot" {
        // Natively the virtual counter counts from power-on; in a VM it
        // counts from the VM's creation, and the hypervisor's stop report
        // says where that was (`virtual counter offset`).
        report("boot_to_init", 1, cntvct());
        sys::power_off();
        return 0;
    }
    let (mut quick, mut smoke, mut fifths) = (false, false, None);
    let mut select = Select { skip: b"", only: None };
    for i in 1..argc {
        match arg(argv, i) {
            b"quick" => quick = true,
            b"smoke" => smoke = true,
            a if a.starts_with(b"fifths=") => fifths = parse(&a[7..]),
            a if a.starts_with(b"skip=") => select.skip = &a[5..],
            a if a.starts_with(b"only=") => select.only = Some(&a[5..]),
            _ => {}
        }
    }
    // Repetitions in fifths of the quick run's: `smoke` a fifth (at least
    // one), `quick` 1×, the full run 20×.
    let fifths = fifths.unwrap_or(if smoke {
        1
    } else if quick {
        5
    } else {
        100
    });
    let reps = |n: u64| (n * fifths / 5).max(1);
    // The CPUs init may run on (all online CPUs, on Linux as here); the raw
    // sched_getaffinity returns the size of the mask it wrote.
    let (r, mask) = sys::sched_getaffinity(0);
    let cpus = if r > 0 { mask.count_ones() } else { 1 };
    println!(
        "bench: pid {}, counter at {} Hz, {} fork repetitions, {cpus} CPUs",
        sys::getpid(),
        sys::cntfrq(),
        reps(10)
    );

    // The rows this run will report, in order, for the harness: a row
    // that runs out of its time bound is the first of these without a
    // BENCH line. Printed once here rather than before each row, since
    // console output the kernel is still sending when a row starts would
    // be counted in that row.
    print!("BENCH-PLAN ids=");
    let mut sep = "";
    for id in IDS.iter().filter(|id| select.run(id) && (cpus >= 2 || !id.starts_with("scale_"))) {
        print!("{sep}{id}");
        sep = ",";
    }
    println!();

    // Everything on CPU 0, so the context-switch pair really alternates.
    pin(0);
    // Let the boot's last work on the other CPUs (the lines above still
    // draining to the console, the first ticks) end before the first row:
    // the counter counts every CPU's instructions.
    sys::sleep_ms(50);

    if select.run("null_syscall") {
        time("null_syscall", reps(500), || {
            sys::getppid();
        });
    }
    if select.run("sched_yield_switch") {
        yield_pair(reps(100));
    }
    if select.run("futex_switch") {
        futex_pair(reps(100));
    }
    if select.run("fork_exit_wait") {
        time("fork_exit_wait", reps(10), fork_exit_wait);
    }
    if select.run("fork_execve_exit") {
        time("fork_execve_exit", reps(5), || {
            let pid = sys::fork();
            if pid == 0 {
                let argv = [c"bench".as_ptr().cast(), c"exit".as_ptr().cast(), core::ptr::null()];
                sys::execve(b"/bin/bench\0", &argv);
                sys::exit_group(127);
            }
            sys::wait4(pid, 0);
        });
    }
    if select.run("anon_page_fault") {
        anon_fault(reps(1));
    }
    if select.run("cow_page_fault") {
        cow_fault(reps(FAULT_PAGES as u64) as usize);
    }
    if select.run("pipe_round_trip") {
        pipe_round_trip(reps(100));
    }
    if select.run("open_close") {
        time("open_close", reps(100), || {
            let fd = sys::syscall6(56, [AT_FDCWD, BENCH_PATH.as_ptr() as usize, 0, 0, 0, 0]);
            sys::syscall6(57, [fd as usize, 0, 0, 0, 0, 0]);
        });
    }
    if select.run("stat") {
        let mut st = [0u8; 128];
        time("stat", reps(100), || {
            sys::syscall6(79, [AT_FDCWD, BENCH_PATH.as_ptr() as usize, st.as_mut_ptr() as usize, 0, 0, 0]);
        });
    }
    if select.run("shell_true_loop") {
        shell_true_loop(reps(10));
    }
    if cpus >= 2 {
        // Scaling: the same loop in one process pinned to CPU 0, then in
        // two processes pinned to CPUs 0 and 1 at once.
        for (n, id) in [(1, "scale_fork_alone"), (2, "scale_fork_pair")] {
            if select.run(id) {
                pinned_workers(id, n, reps(10), 1, fork_exit_wait);
            }
        }
        for (n, id) in [(1, "scale_fault_alone"), (2, "scale_fault_pair")] {
            if select.run(id) {
                pinned_workers(id, n, reps(2), FAULT_PAGES as u64, fault_round);
            }
        }
    }
    println!("bench: done");
    sys::power_off();
    0
}

/// `AT_FDCWD`, and the file the file-system rows open and stat (this
/// program, in both kernels' initramfs).
const AT_FDCWD: usize = -100isize as usize;
const BENCH_PATH: &[u8] = b"/bin/bench\0";

/// A byte there and back through two pipes between this process and a
/// child on the same CPU (`pipe2`, `read`, `write`; two context switches
/// per round trip); the child ends at the first pipe's end of file.
fn pipe_round_trip(reps: u64) {
    let (mut a, mut b) = ([0i32; 2], [0i32; 2]);
    sys::syscall6(59, [a.as_mut_ptr() as usize, 0, 0, 0, 0, 0]);
    sys::syscall6(59, [b.as_mut_ptr() as usize, 0, 0, 0, 0, 0]);
    let pid = sys::fork();
    let mut byte = [0u8; 1];
    if pid == 0 {
        sys::syscall6(57, [a[1] as usize, 0, 0, 0, 0, 0]);
        sys::syscall6(57, [b[0] as usize, 0, 0, 0, 0, 0]);
        while sys::read(a[0] as usize, &mut byte) == 1 {
            sys::write(b[1] as usize, &byte);
        }
        sys::exit_group(0);
    }
    sys::syscall6(57, [a[0] as usize, 0, 0, 0, 0, 0]);
    sys::syscall6(57, [b[1] as usize, 0, 0, 0, 0, 0]);
    time("pipe_round_trip", reps, || {
        sys::write(a[1] as usize, b"x");
        sys::read(b[0] as usize, &mut byte);
    });
    sys::syscall6(57, [a[1] as usize, 0, 0, 0, 0, 0]);
    sys::wait4(pid, 0);
    sys::syscall6(57, [b[0] as usize, 0, 0, 0, 0, 0]);
}

/// Busybox's `sh` running `/bin/true` `reps` times in a `while` loop (a
/// fork and an exec of busybox each time, and the shell's own work), per
/// iteration: what a shell script costs. Skipped (no BENCH line) without
/// /bin/sh.
fn shell_true_loop(reps: u64) {
    let mut script = [0u8; 96];
    let mut w = Cursor { buf: &mut script, at: 0 };
    let _ = core::fmt::Write::write_fmt(
        &mut w,
        format_args!("i=0; while [ $i -lt {reps} ]; do /bin/true; i=$((i+1)); done\0"),
    );
    let argv = [c"sh".as_ptr().cast(), c"-c".as_ptr().cast(), script.as_ptr(), core::ptr::null()];
    let run = |argv: &[*const u8; 4]| {
        let pid = sys::fork();
        if pid == 0 {
            sys::execve(b"/bin/sh\0", argv);
            sys::exit_group(127);
        }
        sys::wait4(pid, 0).1
    };
    // A first run outside the window (and the check that sh is there).
    if run(&argv) != 0 {
        println!("bench: shell_true_loop: no /bin/sh; skipped");
        return;
    }
    let t0 = cntvct();
    run(&argv);
    report("shell_true_loop", reps, cntvct() - t0);
}

/// A fixed buffer that `write!` fills.
struct Cursor<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl core::fmt::Write for Cursor<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.at + s.len();
        if end > self.buf.len() {
            return Err(core::fmt::Error);
        }
        self.buf[self.at..end].copy_from_slice(s.as_bytes());
        self.at = end;
        Ok(())
    }
}

/// Pins the calling process to CPU `cpu` (`sched_setaffinity`); exits 1 if
/// the kernel refuses.
fn pin(cpu: usize) {
    let r = sys::sched_setaffinity(0, 1 << cpu);
    if r != 0 {
        println!("bench: sched_setaffinity(0, CPU {cpu}) failed: {r}");
        sys::exit_group(1);
    }
}

/// One `fork`, the child `exit_group`s at once, the parent reaps it.
fn fork_exit_wait() {
    let pid = sys::fork();
    if pid == 0 {
        sys::exit_group(0);
    }
    sys::wait4(pid, 0);
}

/// Maps [`FAULT_PAGES`] fresh anonymous pages, writes one byte to each
/// (one demand-zero fault per page) and unmaps them.
fn fault_round() {
    let p = map(FAULT_PAGES);
    touch(p, FAULT_PAGES, 1);
    sys::munmap(p as usize, FAULT_PAGES * PAGE);
}

/// The scaling benchmarks: `workers` processes, worker `i` pinned to CPU
/// `i`, each runs `round` `rounds` times (after `rounds / 10 + 1` warm-up
/// rounds) once all of them are ready. Each round is `ops` operations.
/// Reported: all workers' operations over the window from the first
/// worker's start to the last one's end. Under `-icount` that window counts
/// the instructions of every CPU, so a pair that scales perfectly reports
/// the same instructions per operation as one worker alone (the report
/// turns the two into a throughput ratio: docs/benchmarks.md).
fn pinned_workers(id: &str, workers: usize, rounds: u64, ops: u64, round: fn()) {
    let page = sys::mmap(0, PAGE, PROT_RW, MAP_SHARED_ANON, -1, 0);
    assert!(page > 0, "mmap failed: {page}");
    // SAFETY: a fresh, page-aligned shared page (so the workers forked
    // below share it): slot 0 counts the ready workers, slots 1 + 2i and
    // 2 + 2i hold worker i's start and end.
    let slots = unsafe { core::slice::from_raw_parts(page as *const AtomicU64, 1 + 2 * workers) };
    // Written before fork, so that the workers map the same frame (our
    // kernel gives an untouched shared anonymous page a frame per process).
    for slot in slots {
        slot.store(0, Ordering::Relaxed);
    }
    let mut pids = [0isize; 2];
    for (cpu, pid) in pids.iter_mut().enumerate().take(workers) {
        *pid = sys::fork();
        assert!(*pid >= 0, "fork failed: {}", *pid);
        if *pid == 0 {
            pin(cpu);
            for _ in 0..rounds / 10 + 1 {
                round();
            }
            slots[0].fetch_add(1, Ordering::AcqRel);
            while slots[0].load(Ordering::Acquire) < workers as u64 {
                sys::sched_yield();
            }
            let t0 = cntvct();
            for _ in 0..rounds {
                round();
            }
            let t1 = cntvct();
            slots[1 + 2 * cpu].store(t0, Ordering::Relaxed);
            slots[2 + 2 * cpu].store(t1, Ordering::Release);
            sys::exit_group(0);
        }
    }
    for &pid in &pids[..workers] {
        let (r, status) = sys::wait4(pid, 0);
        assert!(r == pid && status == 0, "worker {pid}: wait4 {r}, status {status:#x}");
    }
    let start = (0..workers).map(|i| slots[1 + 2 * i].load(Ordering::Acquire)).min().unwrap_or(0);
    let end = (0..workers).map(|i| slots[2 + 2 * i].load(Ordering::Acquire)).max().unwrap_or(0);
    report(id, workers as u64 * rounds * ops, end - start);
    sys::munmap(page as usize, PAGE);
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
fn anon_fault(rounds: u64) {
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
fn cow_fault(pages: usize) {
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

/// The virtio rows (issue 18), run by `scripts/bench`'s `virtio-native`
/// and `virtio-el2` runs from Linux (the script `/vbench` there): the same
/// operations on QEMU's own virtio-mmio devices and on the hypervisor's.
/// Each prints one `BENCH` line and returns, without powering off (the
/// script does):
///
/// - `blk DEV N`: `N` reads of 4 KiB with `pread` from `DEV` opened
///   `O_DIRECT` (no page cache: each one is a virtio-blk request), block
///   `i` at byte `4096 i` (after `N / 10` warm-up reads of the blocks after
///   those): `virtio_blk_read_4k`, per read;
/// - `ping ADDR N`: `N` ICMP echo round trips to the IPv4 address `ADDR`
///   over a raw socket, one at a time (after `N / 10` warm-up ones), 56
///   bytes of payload as `ping`'s: `ping_round_trip`, per round trip;
/// - `tcp-sink PORT`: accepts one TCP connection on `PORT`, reads it to
///   its end and closes it;
/// - `tcp-send ADDR PORT BYTES`: connects to a `tcp-sink`, then writes
///   `BYTES` bytes in 64 KiB `write`s, shuts its side down and reads until
///   the sink has closed (so every byte arrived): `tcp_stream`, per byte.
///
/// With `pmu` after the arguments, the count is not the virtual counter
/// but the PMU's instructions-retired counter of CPU 0, all tasks and the
/// kernel (`perf_event_open`, system-wide). For Linux on QEMU's own
/// devices, which complete requests in QEMU's threads in host time: the
/// virtual clock moves on over that wait (to the next timer with `-icount
/// sleep=off`, with the host's clock with `sleep=on`) while the idle CPU
/// retires no instruction; docs/benchmarks.md. The line is the same, its
/// `ticks` instructions and `cntfrq` 10^9 (one per "tick").
///
/// Failures print `bench: ...` and return 1 (the harness then finds no
/// `BENCH` line).
mod virtio {
    use guest_user::println;
    use guest_user::sys::{self, cntvct, syscall6};

    const OPENAT: usize = 56;
    const CLOSE: usize = 57;
    const PREAD64: usize = 67;
    const SOCKET: usize = 198;
    const BIND: usize = 200;
    const LISTEN: usize = 201;
    const ACCEPT: usize = 202;
    const CONNECT: usize = 203;
    const SENDTO: usize = 206;
    const RECVFROM: usize = 207;
    const SETSOCKOPT: usize = 208;
    /// `SOL_SOCKET` and arm64's `SO_RCVTIMEO` (`SO_RCVTIMEO_OLD`: a 64-bit
    /// `struct timeval`).
    const SOL_SOCKET: usize = 1;
    const SO_RCVTIMEO: usize = 20;
    const SHUTDOWN: usize = 210;
    const AT_FDCWD: isize = -100;
    /// arm64's `O_DIRECT` (asm-generic's 0o40000 is `O_DIRECTORY` here).
    const O_DIRECT: usize = 0o200000;
    const AF_INET: usize = 2;
    const SOCK_STREAM: usize = 1;
    const SOCK_RAW: usize = 3;
    const IPPROTO_ICMP: usize = 1;
    const SHUT_WR: usize = 1;
    /// Bytes per `read` / `write` of the TCP rows, and of the buffer.
    const CHUNK: usize = 64 * 1024;
    const BLOCK: usize = 4096;

    pub fn main(mode: &[u8], args: [&[u8]; 4]) -> i32 {
        let r = Clock::new(args.contains(&&b"pmu"[..])).and_then(|clock| match mode {
            b"blk" => blk(&clock, args[0], super::parse(args[1])),
            b"ping" => ping(&clock, addr(args[0]), super::parse(args[1])),
            b"tcp-sink" => tcp_sink(port(args[0])),
            _ => tcp_send(&clock, addr(args[0]), port(args[1]), super::parse(args[2])),
        });
        match r {
            Ok(()) => 0,
            Err(what) => {
                println!("bench: {} failed: {what}", core::str::from_utf8(mode).unwrap_or("?"));
                1
            }
        }
    }

    type Result = core::result::Result<(), &'static str>;

    const PERF_EVENT_OPEN: usize = 241;

    /// What a row counts with: the virtual counter, or the PMU's
    /// instruction counter of CPU 0 (an open perf event).
    enum Clock {
        Counter,
        Pmu(usize),
    }

    impl Clock {
        fn new(pmu: bool) -> core::result::Result<Clock, &'static str> {
            if !pmu {
                return Ok(Clock::Counter);
            }
            // struct perf_event_attr (128 bytes, PERF_ATTR_SIZE_VER7):
            // type PERF_TYPE_HARDWARE (0) at 0, size at 4, config
            // PERF_COUNT_HW_INSTRUCTIONS (1) at 8; every flag clear
            // (enabled, user and kernel counted), the rest zero.
            let mut attr = [0u8; 128];
            attr[4..8].copy_from_slice(&128u32.to_ne_bytes());
            attr[8..16].copy_from_slice(&1u64.to_ne_bytes());
            // pid -1, cpu 0: everything CPU 0 runs; group -1, flags 0.
            let fd = syscall6(PERF_EVENT_OPEN, [attr.as_ptr() as usize, usize::MAX, 0, usize::MAX, 0, 0]);
            Ok(Clock::Pmu(ok(fd, "perf_event_open (instructions, CPU 0)")?))
        }

        /// Ticks of the virtual counter, or instructions.
        fn now(&self) -> u64 {
            match *self {
                Clock::Counter => cntvct(),
                Clock::Pmu(fd) => {
                    let mut count = [0u8; 8];
                    if sys::read(fd, &mut count) != 8 {
                        println!("bench: read of the perf event failed");
                        sys::exit_group(1);
                    }
                    u64::from_ne_bytes(count)
                }
            }
        }

        /// Prints the row's `BENCH` line.
        fn report(&self, id: &str, reps: u64, count: u64) {
            match self {
                Clock::Counter => super::report(id, reps, count),
                Clock::Pmu(_) => println!("BENCH id={id} reps={reps} ticks={count} cntfrq=1000000000"),
            }
        }
    }

    /// `value` if it is not a negative errno.
    fn ok(value: isize, what: &'static str) -> core::result::Result<usize, &'static str> {
        if value < 0 { Err(what) } else { Ok(value as usize) }
    }

    /// A page-aligned anonymous buffer of `CHUNK` bytes (`O_DIRECT` wants
    /// aligned memory).
    fn buffer() -> core::result::Result<&'static mut [u8], &'static str> {
        let p = ok(sys::mmap(0, CHUNK, 0x1 | 0x2, 0x02 | 0x20, -1, 0), "mmap")?;
        // SAFETY: a fresh private mapping of CHUNK bytes, readable and
        // writable, never unmapped: nothing else refers to it.
        Ok(unsafe { core::slice::from_raw_parts_mut(p as *mut u8, CHUNK) })
    }

    fn blk(clock: &Clock, dev: &[u8], n: Option<u64>) -> Result {
        let n = n.ok_or("blk DEV N: N is a number")? as usize;
        let mut path = [0u8; 64];
        if dev.len() >= path.len() {
            return Err("device path too long");
        }
        path[..dev.len()].copy_from_slice(dev);
        let fd = ok(syscall6(OPENAT, [AT_FDCWD as usize, path.as_ptr() as usize, O_DIRECT, 0, 0, 0]), "open")?;
        let buf = buffer()?;
        let read = |block: usize| -> Result {
            let got = syscall6(PREAD64, [fd, buf.as_ptr() as usize, BLOCK, block * BLOCK, 0, 0]);
            if got == BLOCK as isize { Ok(()) } else { Err("pread of 4 KiB (is the disk big enough?)") }
        };
        for block in n..n + n / 10 {
            read(block)?;
        }
        let t0 = clock.now();
        for block in 0..n {
            read(block)?;
        }
        clock.report("virtio_blk_read_4k", n as u64, clock.now() - t0);
        syscall6(CLOSE, [fd, 0, 0, 0, 0, 0]);
        Ok(())
    }

    /// `A.B.C.D`.
    fn addr(text: &[u8]) -> Option<[u8; 4]> {
        let mut out = [0u8; 4];
        let mut parts = text.split(|&c| c == b'.');
        for byte in &mut out {
            *byte = u8::try_from(super::parse(parts.next()?)?).ok()?;
        }
        parts.next().is_none().then_some(out)
    }

    fn port(text: &[u8]) -> Option<u16> {
        u16::try_from(super::parse(text)?).ok()
    }

    /// `struct sockaddr_in` for `addr:port`.
    fn sockaddr(addr: [u8; 4], port: u16) -> [u8; 16] {
        let mut sa = [0u8; 16];
        sa[..2].copy_from_slice(&(AF_INET as u16).to_ne_bytes());
        sa[2..4].copy_from_slice(&port.to_be_bytes());
        sa[4..8].copy_from_slice(&addr);
        sa
    }

    /// The Internet checksum (RFC 1071) of `bytes`.
    fn checksum(bytes: &[u8]) -> u16 {
        let mut sum = 0u32;
        for pair in bytes.chunks(2) {
            sum += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    fn ping(clock: &Clock, to: Option<[u8; 4]>, n: Option<u64>) -> Result {
        let (to, n) = (to.ok_or("ping ADDR N: ADDR is A.B.C.D")?, n.ok_or("ping ADDR N: N is a number")?);
        let fd = ok(syscall6(SOCKET, [AF_INET, SOCK_RAW, IPPROTO_ICMP, 0, 0, 0]), "socket")?;
        // A reply that never comes (a lost frame) ends the run with an
        // error after 5 s of virtual time instead of hanging it: far above
        // a round trip (well under a millisecond), and instant in host
        // time when the machine idles (-icount sleep=off).
        let timeout: [u64; 2] = [5, 0];
        let set = syscall6(SETSOCKOPT, [fd, SOL_SOCKET, SO_RCVTIMEO, timeout.as_ptr() as usize, 16, 0]);
        ok(set, "setsockopt SO_RCVTIMEO")?;
        let sa = sockaddr(to, 0);
        let id = (sys::getpid() as u16).to_be_bytes();
        let buf = buffer()?;
        let mut round_trip = |seq: u16| -> Result {
            // Echo request: type 8, code 0, checksum, id, sequence, 56 bytes.
            let mut echo = [0u8; 64];
            echo[0] = 8;
            echo[4..6].copy_from_slice(&id);
            echo[6..8].copy_from_slice(&seq.to_be_bytes());
            let sum = checksum(&echo);
            echo[2..4].copy_from_slice(&sum.to_be_bytes());
            let sent = syscall6(SENDTO, [fd, echo.as_ptr() as usize, echo.len(), 0, sa.as_ptr() as usize, sa.len()]);
            ok(sent, "sendto")?;
            // A raw socket gets every ICMP message, IP header first: wait
            // for the echo reply (type 0) with our id and sequence number.
            loop {
                let got = syscall6(RECVFROM, [fd, buf.as_mut_ptr() as usize, CHUNK, 0, 0, 0]);
                let got = ok(got, "recvfrom: no echo reply within 5 s (a frame lost?)")?;
                let ihl = usize::from(buf[0] & 0xf) * 4;
                if got >= ihl + 8 && buf[ihl] == 0 && buf[ihl + 4..ihl + 8] == echo[4..8] {
                    return Ok(());
                }
            }
        };
        let warm = (n / 10).max(1);
        for seq in 0..warm {
            round_trip(seq as u16)?;
        }
        let t0 = clock.now();
        for seq in warm..warm + n {
            round_trip(seq as u16)?;
        }
        clock.report("ping_round_trip", n, clock.now() - t0);
        syscall6(CLOSE, [fd, 0, 0, 0, 0, 0]);
        Ok(())
    }

    fn tcp_sink(port: Option<u16>) -> Result {
        let port = port.ok_or("tcp-sink PORT: PORT is a number")?;
        let fd = ok(syscall6(SOCKET, [AF_INET, SOCK_STREAM, 0, 0, 0, 0]), "socket")?;
        let sa = sockaddr([0; 4], port);
        ok(syscall6(BIND, [fd, sa.as_ptr() as usize, sa.len(), 0, 0, 0]), "bind")?;
        ok(syscall6(LISTEN, [fd, 1, 0, 0, 0, 0]), "listen")?;
        let conn = ok(syscall6(ACCEPT, [fd, 0, 0, 0, 0, 0]), "accept")?;
        let buf = buffer()?;
        while ok(sys::read(conn, buf), "read")? > 0 {}
        syscall6(CLOSE, [conn, 0, 0, 0, 0, 0]);
        syscall6(CLOSE, [fd, 0, 0, 0, 0, 0]);
        Ok(())
    }

    fn tcp_send(clock: &Clock, to: Option<[u8; 4]>, port: Option<u16>, bytes: Option<u64>) -> Result {
        let to = to.ok_or("tcp-send ADDR PORT BYTES: ADDR is A.B.C.D")?;
        let port = port.ok_or("tcp-send ADDR PORT BYTES: PORT is a number")?;
        let bytes = bytes.ok_or("tcp-send ADDR PORT BYTES: BYTES is a number")? as usize;
        let fd = ok(syscall6(SOCKET, [AF_INET, SOCK_STREAM, 0, 0, 0, 0]), "socket")?;
        let sa = sockaddr(to, port);
        ok(syscall6(CONNECT, [fd, sa.as_ptr() as usize, sa.len(), 0, 0, 0]), "connect")?;
        let buf = buffer()?;
        let t0 = clock.now();
        let mut left = bytes;
        while left > 0 {
            let n = left.min(CHUNK);
            left -= ok(sys::write(fd, &buf[..n]), "write")?;
        }
        ok(syscall6(SHUTDOWN, [fd, SHUT_WR, 0, 0, 0, 0]), "shutdown")?;
        while ok(sys::read(fd, buf), "read")? > 0 {}
        clock.report("tcp_stream", bytes as u64, clock.now() - t0);
        syscall6(CLOSE, [fd, 0, 0, 0, 0, 0]);
        Ok(())
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    let _ = bench_main;
}

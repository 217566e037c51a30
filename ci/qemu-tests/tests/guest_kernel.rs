//! The guest kernel end to end: natively in QEMU at EL1 (QEMU's own GIC and
//! PSCI) over GICv2/v3 and 1, 2 and 4 CPUs, and under the hypervisor. Each
//! boot runs `/bin/init`, which runs the EL0 test suite `/bin/tests` and
//! exits; the kernel then powers off. The suite's last line is
//! `N passed, N failed`.

use qemu_tests::{Run, linux_with_our_initramfs, native_guest_kernel_args, qemu, root, run, temp_file};

/// Boots build/guest-kernel.bin directly in QEMU with the initramfs.
fn native(gic: u32, cpus: u32) -> Run {
    let args = native_guest_kernel_args(gic, cpus, "hz=100");
    qemu(120, &args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// What every boot must show: the banner, the whole suite passing with the
/// behaviours the issues name, init reaping orphans, and a clean power-off.
/// `name`: the VM's name, or "" for a native boot.
fn check(r: &Run, name: &str, cpus: u32) {
    r.expect_clean_exit()
        .expect(&format!("RAM, {cpus} CPU(s)"))
        .expect(&format!("guest-kernel: {cpus} CPU(s) online"))
        .expect("guest-kernel: uaccess: bad user pointers give EFAULT: ok")
        .expect("ok - bad user pointers give EFAULT")
        .expect("ok - segfaulting child dies alone with SIGSEGV")
        .expect("ok - fork: COW, parent and child see their own writes")
        .expect("ok - fork bomb stops at the threads limit with EAGAIN")
        .expect("ok - after the fork bomb, fork works again")
        .expect("guest-kernel: Out of memory: Killed process")
        .expect("ok - OOM storm: the hog is killed (SIGKILL), the system runs on")
        .expect("ok - CFS shares CPU by nice weight")
        .expect("ok - SCHED_FIFO task preempts and starves a fair task on its CPU")
        .expect("ok - threads share memory")
        .expect("ok - CLONE_SETTLS sets the thread's TPIDR_EL0")
        .expect("ok - CLONE_CHILD_CLEARTID: the thread's exit zeroes the tid and FUTEX_WAKE wakes the joiner")
        .expect("ok - FUTEX_WAIT with a timeout gives ETIMEDOUT")
        .expect("ok - futex bad pointers give EFAULT")
        .expect("ok - exit_group from a thread ends every thread of the process")
        .expect("ok - threads of one process fault, mmap and munmap at once (mmap_lock readers and writers)")
        .expect("ok - rt_sigreturn restores x0-x30 and the FP registers from the frame the handler sees")
        .expect("ok - rt_sigsuspend waits for a signal, returns EINTR after its handler, and restores the mask")
        .expect("ok - rt_sigreturn of a corrupt frame kills the caller with SIGSEGV")
        .expect("ok - SIGSTOP stops a child (wait4 WUNTRACED), SIGCONT resumes it (WCONTINUED)")
        .expect("init: reaped orphan pid")
        .expect("guest-kernel: init (pid 1) exited with status 0; powering off")
        .expect_not("FAIL - ")
        .expect_not("panic")
        .expect_not("***");
    if cpus >= 2 {
        r.expect("ok - wait4 woken on another CPU sleeps again and reaps its child")
            .expect("ok - getppid on another CPU follows a reparent at once");
    }
    r.expect_suite_passed(name);
}

/// The same suite on Debian's Linux 6.1 (the reference): every check tests
/// Linux's semantics, not a guess at them, so it must pass there too. The
/// initramfs is Debian's busybox one with the guest kernel's, as a second
/// archive, after it (Linux unpacks concatenated archives in order, each
/// starting at a 4-byte boundary); our `/bin/init` runs the suite as it
/// does on the guest kernel; when it ends, Linux panics ("Attempted to kill
/// init", its own words: the proof that Linux ran it) and reboots, and
/// QEMU exits.
fn on_linux(cpus: u32) -> Run {
    linux_with_our_initramfs("el0-suite", cpus, "/bin/init")
}

#[test]
fn the_suite_passes_on_linux_one_cpu() {
    on_linux(1).expect("Kernel panic - not syncing: Attempted to kill init!").expect_suite_passed("");
}

#[test]
fn the_suite_passes_on_linux_two_cpus() {
    on_linux(2).expect("Kernel panic - not syncing: Attempted to kill init!").expect_suite_passed("");
}

#[test]
fn native_gicv3_one_cpu() {
    check(&native(3, 1), "", 1);
}

#[test]
fn native_gicv3_two_cpus() {
    check(&native(3, 2), "", 2);
}

#[test]
fn native_gicv3_four_cpus() {
    check(&native(3, 4), "", 4);
}

#[test]
fn native_gicv2_one_cpu() {
    check(&native(2, 1), "", 1);
}

#[test]
fn native_gicv2_two_cpus() {
    check(&native(2, 2), "", 2);
}

#[test]
fn native_gicv2_four_cpus() {
    check(&native(2, 4), "", 4);
}

/// The lock-order checker is live in the tested image: a self-test takes
/// two lock classes in one order and then in the other, and the kernel
/// must report the inversion, naming both, and power off before the
/// self-test can say it was not caught.
#[test]
fn lockdep_reports_an_inversion() {
    let args = native_guest_kernel_args(3, 2, "test=lockdep-inversion");
    let r = qemu(60, &args.iter().map(String::as_str).collect::<Vec<_>>());
    r.expect_clean_exit()
        .expect("hyptest lockdep-inversion: took A then B; now B then A")
        .expect(
            "*** guest-kernel: lockdep: CPU0: lock inversion: taking LOCKDEP_TEST_A while holding LOCKDEP_TEST_B, \
             but LOCKDEP_TEST_B was taken while holding LOCKDEP_TEST_A before",
        )
        .expect("held: LOCKDEP_TEST_B LOCKDEP_TEST_A")
        .expect_not("was not reported")
        .expect_not("hyptest lockdep-inversion: FAILED");
}

/// The suite in a VM of `vcpus` vCPUs on as many physical CPUs.
fn under_the_hypervisor(vcpus: u32) {
    let cfg = format!(
        "[[vm]]\nname = \"gk\"\nkernel = \"guest-kernel\"\ninitrd = \"guest-kernel\"\nmemory = \"128M\"\nvcpus = {vcpus}\ncmdline = \"hz=100\"\n"
    );
    let config = temp_file(&format!("gk-{vcpus}.toml"), cfg.as_bytes());
    let r = run(300, &["--config", config.to_str().unwrap(), "--cpus", &vcpus.to_string()]);
    check(&r, "gk", vcpus);
    r.expect(&format!("[gk] guest-kernel: hello from VM \"gk\": 128 MiB RAM, {vcpus} CPU(s)"))
        .expect("el2-hyp: VM \"gk\" stopped: PSCI SYSTEM_OFF");
}

#[test]
fn under_the_hypervisor_one_vcpu() {
    under_the_hypervisor(1);
}

#[test]
fn under_the_hypervisor_four_vcpus() {
    under_the_hypervisor(4);
}

#[test]
fn under_the_hypervisor_two_vcpus() {
    let config = root().join("firmware/qemu-guest-tests.toml");
    let r = run(150, &["--config", config.to_str().unwrap()]);
    check(&r, "gk", 2);
    r.expect("[gk] guest-kernel: hello from VM \"gk\": 128 MiB RAM, 2 CPU(s)")
        .expect("el2-hyp: VM \"gk\" stopped: PSCI SYSTEM_OFF");
}

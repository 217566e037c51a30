//! Boot tests (foundation issue): the hypervisor starts at EL2, builds its
//! VMs from the DTB, each guest kernel prints its banner through its own
//! emulated console, and the machine powers off when every VM has.

use qemu_tests::{guest_kernel_config, qemu, root, run, temp_file};

const T: u32 = 60;

fn two_vms(args: &[&str]) {
    let r = run(T, args);
    r.expect_clean_exit()
        .expect("el2-hyp: VM 0 \"alpha\"")
        .expect("el2-hyp: VM 1 \"beta\"")
        .expect("[alpha] guest-kernel: hello from VM \"alpha\": 64 MiB RAM, 1 CPU(s)")
        .expect("[beta] guest-kernel: hello from VM \"beta\": 64 MiB RAM, 1 CPU(s)")
        // The demo (scripts/build's /etc/demo.sh through busybox's sh).
        .expect("[alpha] demo: alpha runs Linux 6.1.0-guest-kernel on 1 CPU(s)")
        .expect("[beta] demo: beta runs Linux 6.1.0-guest-kernel on 1 CPU(s)")
        .expect("[alpha]     1 root     sh")
        .expect("[beta] demo: a pipeline: 271 of 1..1000 have a 7")
        .expect("[alpha] guest-kernel: init (pid 1) exited with status 0; powering off")
        .expect("el2-hyp: VM \"alpha\" stopped: PSCI SYSTEM_OFF")
        .expect("el2-hyp: VM \"beta\" stopped: PSCI SYSTEM_OFF")
        .expect("el2-hyp: all VMs have stopped; powering off")
        .expect_not("CRASH")
        .expect_not("panic");
}

#[test]
fn two_vms_gicv3_cortex_a72_two_cpus() {
    two_vms(&["--gic", "3", "--cpu", "cortex-a72", "--cpus", "2"]);
}

#[test]
fn two_vms_gicv2() {
    two_vms(&["--gic", "2", "--cpus", "2"]);
}

#[test]
fn two_vms_cortex_a53() {
    two_vms(&["--cpu", "cortex-a53", "--cpus", "2"]);
}

#[test]
fn two_vms_time_share_one_cpu() {
    two_vms(&["--cpus", "1"]);
}

#[test]
fn two_vms_four_cpus_cpu_max() {
    two_vms(&["--cpu", "max", "--cpus", "4"]);
}

#[test]
fn started_at_el1_says_why_and_powers_off() {
    let hyp = root().join("build/hypervisor.bin");
    let r = qemu(
        T,
        &[
            "-M",
            "virt,gic-version=3",
            "-cpu",
            "cortex-a72",
            "-m",
            "512M",
            "-nographic",
            "-nic",
            "none",
            "-kernel",
            hyp.to_str().unwrap(),
        ],
    );
    r.expect_clean_exit().expect("started at EL1: enable virtualization, e.g. QEMU -M virt,virtualization=on");
}

/// The lock check (hypervisor/src/sync.rs) works: QEMU's DTB with `/chosen`
/// `el2-hyp,selftest-lock-before-mmu` makes the hypervisor take a lock
/// before its MMU is on, which must be reported (on the UART, without a
/// lock) and stop the machine. Every other boot test runs the same check on
/// every lock, and fails on that report (`expect_clean_exit`).
#[test]
fn a_lock_taken_before_the_mmu_is_on_is_reported_and_stops_the_machine() {
    #[rustfmt::skip]
    let machine = [
        "-M", "virt,virtualization=on,gic-version=3", "-cpu", "cortex-a72", "-m", "512M", "-nographic", "-nic", "none",
    ];
    let dtb = temp_file("selftest-machine.dtb", b"");
    let r = qemu(T, &[&machine[..], &["-machine", &format!("dumpdtb={}", dtb.display())]].concat());
    assert_eq!(r.status, 0, "dumpdtb failed:\n{}", r.output);
    let dts = std::process::Command::new("dtc").args(["-q", "-I", "dtb", "-O", "dts"]).arg(&dtb).output().expect("dtc");
    assert!(dts.status.success(), "dtc: {}", String::from_utf8_lossy(&dts.stderr));
    let mut dts = String::from_utf8(dts.stdout).expect("dts is text");
    dts.push_str("/ { chosen { el2-hyp,selftest-lock-before-mmu; }; };\n");
    let dts = temp_file("selftest.dts", dts.as_bytes());
    let out = dtb.with_file_name("selftest.dtb");
    let st =
        std::process::Command::new("dtc").args(["-q", "-I", "dts", "-O", "dtb", "-o"]).arg(&out).arg(&dts).status();
    assert!(st.expect("dtc").success());

    let hyp = root().join("build/hypervisor.bin");
    let (hyp, out) = (hyp.to_str().unwrap(), out.to_str().unwrap());
    let r = qemu(T, &[&machine[..], &["-kernel", hyp, "-dtb", out]].concat());
    assert_eq!(r.status, 0, "the machine did not power off:\n{}", r.output);
    r.expect("*** HYPERVISOR BUG: lock, once-cell or heap used with the EL2 MMU or data cache off")
        .expect("at hypervisor/src/arch/aarch64/boot.rs:")
        .expect_not("at EL2,");
}

#[test]
fn guest_image_without_image_header_is_refused_and_the_other_vm_runs() {
    let junk = temp_file("not-an-image.bin", &[0x5a; 8192]);
    let cfg = format!(
        "{}[[vm]]\nname = \"broken\"\nkernel = \"{}\"\nmemory = \"64M\"\n",
        guest_kernel_config(&["good"], "64M", 1, ""),
        junk.display()
    );
    let cfg = temp_file("bad-image.toml", cfg.as_bytes());
    let r = run(T, &["--config", cfg.to_str().unwrap()]);
    r.expect_clean_exit()
        .expect("el2-hyp: VM \"broken\" not started: kernel: no arm64 Image header")
        .expect("[good] guest-kernel: hello from VM \"good\"")
        .expect("el2-hyp: VM \"good\" stopped: PSCI SYSTEM_OFF");
}

#[test]
fn vm_asking_for_more_memory_than_there_is_is_refused_and_the_other_vm_runs() {
    let cfg =
        format!("{}{}", guest_kernel_config(&["small"], "64M", 1, ""), guest_kernel_config(&["huge"], "2G", 1, ""));
    let cfg = temp_file("too-big.toml", cfg.as_bytes());
    // vmconf refuses this on the host...
    let r = run(T, &["--config", cfg.to_str().unwrap()]);
    assert_ne!(r.status, 0);
    r.expect("vm[1] \"huge\": memory:");
    // ...and the hypervisor refuses it too when a boot loader passes it on.
    let r = run(T, &["--config", cfg.to_str().unwrap(), "--allow-invalid"]);
    r.expect_clean_exit()
        .expect("el2-hyp: VM \"huge\" not started: vm \"huge\": memory:")
        .expect("[small] guest-kernel: hello from VM \"small\"")
        .expect("el2-hyp: VM \"small\" stopped: PSCI SYSTEM_OFF");
}

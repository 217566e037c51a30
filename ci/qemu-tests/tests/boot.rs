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

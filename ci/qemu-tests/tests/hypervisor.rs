//! Hypervisor core (issue 3): hypercalls, isolation, a VM that dies of a
//! fatal error while another finishes, SYSTEM_RESET, and SMP guests on
//! fewer physical CPUs than vCPUs. The guest side is the guest kernel's
//! `test=NAME` self-tests (guest-kernel/src/hyptest/mod.rs).

use qemu_tests::{run, temp_file};

const T: u32 = 180;

fn vm(name: &str, vcpus: u32, cmdline: &str, initrd: bool) -> String {
    format!(
        "[[vm]]\nname = \"{name}\"\nkernel = \"guest-kernel\"\n{}memory = \"128M\"\nvcpus = {vcpus}\ncmdline = \"{cmdline}\"\n\n",
        if initrd { "initrd = \"guest-kernel\"\n" } else { "" }
    )
}

fn config(name: &str, vms: &[String]) -> std::path::PathBuf {
    temp_file(name, vms.concat().as_bytes())
}

#[test]
fn unknown_hypercalls_get_not_supported() {
    for cpu in ["cortex-a72", "cortex-a53"] {
        let cfg = config("hvc.toml", &[vm("caller", 1, "test=hvc", false)]);
        let r = run(T, &["--config", cfg.to_str().unwrap(), "--cpu", cpu]);
        r.expect_clean_exit()
            .expect("[caller] hyptest hvc: PSCI_VERSION: 0x10001 as expected")
            .expect("unknown function IDs answered NOT_SUPPORTED")
            .expect("[caller] hyptest hvc: ok");
    }
}

#[test]
fn a_vm_cannot_reach_memory_outside_its_own_and_the_other_vm_is_unaffected() {
    for cpu in ["cortex-a72", "cortex-a53"] {
        let cfg = config("isolation.toml", &[vm("prober", 1, "test=isolation", false), vm("witness", 1, "", false)]);
        let r = run(T, &["--config", cfg.to_str().unwrap(), "--cpu", cpu]);
        r.expect_clean_exit()
            .expect("[prober] hyptest isolation: read of IPA 0x48000000 aborted")
            .expect("[prober] hyptest isolation: read of IPA 0x4a200000 aborted")
            .expect("[prober] hyptest isolation: stolen-time page at IPA 0x90a0000: read ok, write aborted: ok")
            .expect("[prober] hyptest isolation: ok")
            .expect_not("NOT ISOLATED")
            .expect("el2-hyp: VM \"prober\" vCPU 0: access to IPA 0x4a200000")
            .expect("[witness] guest-kernel: hello from VM \"witness\"")
            .expect("el2-hyp: VM \"witness\" stopped: PSCI SYSTEM_OFF");
    }
}

#[test]
fn a_fatal_error_stops_that_vm_only() {
    // A fetch from nothing is a prefetch abort in the guest (issue 13): the
    // guest kernel does not expect one and powers its VM off.
    let cfg = config("fatal.toml", &[vm("doomed", 1, "test=fatal", false), vm("survivor", 1, "", true)]);
    let r = run(T, &["--config", cfg.to_str().unwrap()]);
    r.expect_clean_exit()
        .expect("[doomed] hyptest fatal: jumping to IPA")
        .expect("el2-hyp: VM \"doomed\" vCPU 0: instruction fetch from IPA")
        .expect("outside its memory: injecting prefetch abort")
        .expect("[doomed] *** guest-kernel: kernel fault")
        .expect("(EC 0x21)")
        .expect("el2-hyp: VM \"doomed\" stopped: PSCI SYSTEM_OFF")
        .expect_not("[doomed] hyptest fatal: ok")
        .expect_suite_passed("survivor")
        .expect("el2-hyp: VM \"survivor\" stopped: PSCI SYSTEM_OFF")
        .expect("el2-hyp: all VMs have stopped; powering off");
}

#[test]
fn system_reset_restarts_the_vm_from_its_image() {
    let cfg = config("reset.toml", &[vm("phoenix", 1, "test=reset", false)]);
    let r = run(T, &["--config", cfg.to_str().unwrap()]);
    r.expect_clean_exit()
        .expect("[phoenix] hyptest reset: first boot; asking for PSCI SYSTEM_RESET")
        .expect("el2-hyp: VM \"phoenix\" reset")
        .expect("[phoenix] hyptest reset: booted again after 1 reset(s)")
        .expect("[phoenix] hyptest reset: ok");
}

/// A reset must never show the new instance the old one's data, with guest
/// RAM zeroed at first touch rather than when the VM is loaded (issue 19,
/// `hypervisor/src/guestram.rs`): the old instance fills all the RAM it
/// can get with a pattern, the new one looks for it everywhere and finds
/// the RAM it never wrote zero. On both GIC versions and with a neighbour
/// VM on the same CPU, so that its blocks are filled in between.
#[test]
fn a_reset_vm_never_sees_the_old_instance_ram() {
    for gic in ["3", "2"] {
        let cfg = config("reset-ram.toml", &[vm("phoenix", 1, "test=reset-ram", false), vm("neighbour", 1, "", true)]);
        let r = run(T, &["--config", cfg.to_str().unwrap(), "--gic", gic, "--cpus", "1"]);
        r.expect_clean_exit()
            .expect("[phoenix] hyptest reset-ram: wrote the pattern over ")
            .expect("el2-hyp: VM \"phoenix\" reset")
            .expect("[phoenix] hyptest reset-ram: booted again after 1 reset(s); 0 word(s) of the old pattern in 128 MiB of RAM; 0 non-zero word(s)")
            .expect("[phoenix] hyptest reset-ram: ok")
            .expect_suite_passed("neighbour");
        // The old instance wrote over most of its 128 MiB, not a token amount.
        let wrote = r
            .output
            .lines()
            .find_map(|l| l.split("wrote the pattern over ").nth(1)?.split(' ').next()?.parse::<u64>().ok());
        assert!(wrote.is_some_and(|m| m >= 96), "wrote {wrote:?} MiB:\n{}", r.output);
    }
}

#[test]
fn two_vms_with_two_vcpus_each_on_two_cpus() {
    let cfg = config("smp22.toml", &[vm("left", 2, "", true), vm("right", 2, "", true)]);
    let r = run(T, &["--config", cfg.to_str().unwrap(), "--cpus", "2"]);
    r.expect_clean_exit()
        .expect_suite_passed("left")
        .expect_suite_passed("right")
        .expect("el2-hyp: all VMs have stopped; powering off");
}

#[test]
fn four_vcpus_time_share_two_cpus() {
    let cfg = config("smp4.toml", &[vm("quad", 4, "", true)]);
    let r = run(T, &["--config", cfg.to_str().unwrap(), "--cpus", "2", "--cpu", "cortex-a53"]);
    r.expect_clean_exit().expect("[quad] guest-kernel: 4 CPU(s) online").expect_suite_passed("quad");
}

//! VM-wide requests (hypervisor `vmreq`): SYSTEM_RESET from two vCPUs at
//! once, a reset while a sibling vCPU spins in the guest, CPU_OFF of the
//! last vCPU; and set/way cache maintenance that cannot starve a VM
//! sharing the attacker's physical CPU. The guest side is the guest
//! kernel's `test=NAME` self-tests in
//! guest-kernel/src/arch/aarch64/hyptest_vmreq.rs.
//!
//! Each scenario runs on GICv3 and GICv2, and on 2 and 4 physical CPUs.

use qemu_tests::{Run, run, temp_file};

const T: u32 = 300;

/// A guest-kernel VM: `vcpus`, `memory`, `cmdline`, and `pin` if given.
fn vm(name: &str, memory: &str, vcpus: u32, pin: &str, cmdline: &str) -> String {
    let pin = if pin.is_empty() { String::new() } else { format!("pin = {pin}\n") };
    format!(
        "[[vm]]\nname = \"{name}\"\nkernel = \"guest-kernel\"\nmemory = \"{memory}\"\nvcpus = {vcpus}\n{pin}cmdline = \"{cmdline}\"\n\n"
    )
}

fn boot(file: &str, vms: &[String], gic: &str, cpus: &str, extra: &[&str]) -> Run {
    let cfg = temp_file(file, vms.concat().as_bytes());
    let mut args = vec!["--config", cfg.to_str().unwrap(), "--gic", gic, "--cpus", cpus];
    args.extend_from_slice(extra);
    run(T, &args)
}

fn count(r: &Run, needle: &str) -> usize {
    r.output.lines().filter(|l| l.contains(needle)).count()
}

/// The number after `key` in VM `name`'s line containing `marker`.
fn number_after(r: &Run, name: &str, marker: &str, key: &str) -> u64 {
    let line = r
        .vm_lines(name)
        .into_iter()
        .find(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("no {marker:?} line from {name}:\n{}", r.output));
    let rest = &line[line.find(key).unwrap_or_else(|| panic!("{key:?} in {line:?}")) + key.len()..];
    rest.split_whitespace().next().and_then(|w| w.parse().ok()).unwrap_or_else(|| panic!("number in {line:?}"))
}

#[test]
fn system_reset_from_two_vcpus_at_once_resets_the_vm_once() {
    for gic in ["3", "2"] {
        for cpus in ["2", "4"] {
            // Each vCPU on its own physical CPU: both are in the guest
            // when they call SYSTEM_RESET.
            let r = boot("reset-both.toml", &[vm("twins", "64M", 2, "[0, 1]", "test=reset-both")], gic, cpus, &[]);
            r.expect_clean_exit()
                .expect("[twins] hyptest reset-both: vCPU 0 and vCPU 1 call PSCI SYSTEM_RESET at once")
                .expect("[twins] hyptest reset-both: booted again after 1 reset(s)")
                .expect("[twins] hyptest reset-both: ok")
                .expect("el2-hyp: VM \"twins\" stopped: PSCI SYSTEM_OFF")
                .expect("el2-hyp: all VMs have stopped; powering off");
            assert_eq!(count(&r, "el2-hyp: VM \"twins\" reset"), 1, "one reset for two requests:\n{}", r.output);
        }
    }
}

#[test]
fn a_reset_completes_while_a_sibling_spins_in_the_guest_and_the_neighbour_finishes() {
    for gic in ["3", "2"] {
        for cpus in ["2", "4"] {
            // vCPU 0 of "spinner" shares physical CPU 0 with "neighbour";
            // its vCPU 1 spins, IRQs masked, alone on CPU 1.
            let r = boot(
                "reset-spin.toml",
                &[
                    vm("spinner", "64M", 2, "[0, 1]", "test=reset-spin"),
                    vm("neighbour", "64M", 1, "[0]", "test=slices"),
                ],
                gic,
                cpus,
                &[],
            );
            r.expect_clean_exit()
                .expect("[spinner] hyptest reset-spin: vCPU 1 spins in the guest; vCPU 0 calls PSCI SYSTEM_RESET")
                .expect("el2-hyp: VM \"spinner\" reset")
                .expect("[spinner] hyptest reset-spin: booted again after 1 reset(s)")
                .expect("[spinner] hyptest reset-spin: ok")
                .expect("[neighbour] hyptest slices: ok")
                .expect("el2-hyp: VM \"neighbour\" stopped: PSCI SYSTEM_OFF")
                .expect("el2-hyp: all VMs have stopped; powering off");
        }
    }
}

#[test]
fn cpu_off_of_the_last_vcpu_stops_the_vm_and_the_machine_powers_off() {
    for gic in ["3", "2"] {
        for cpus in ["2", "4"] {
            // "loner" ends by CPU_OFF while "other" still runs; then
            // "last" (one vCPU) is the last VM of all to end, by CPU_OFF.
            let r = boot(
                "cpuoff.toml",
                &[vm("loner", "64M", 2, "", "test=cpuoff"), vm("other", "64M", 1, "", "test=slices")],
                gic,
                cpus,
                &[],
            );
            r.expect_clean_exit()
                .expect("[loner] hyptest cpuoff: vCPU 1 is off")
                .expect("[loner] hyptest cpuoff: vCPU 0, the last one on, calls PSCI CPU_OFF")
                .expect("el2-hyp: VM \"loner\" stopped: every vCPU is off (PSCI CPU_OFF)")
                .expect("[other] hyptest slices: ok")
                .expect("el2-hyp: all VMs have stopped; powering off")
                .expect_not("hyptest cpuoff: FAILED");
            // Its statistics are exact: both vCPUs are parked when it stops.
            r.expect("el2-hyp:   VM \"loner\" exits: ").expect_not("running on another CPU; not in the total");

            let r = boot("cpuoff-last.toml", &[vm("last", "64M", 1, "", "test=cpuoff")], gic, cpus, &[]);
            r.expect_clean_exit()
                .expect("el2-hyp: VM \"last\" stopped: every vCPU is off (PSCI CPU_OFF)")
                .expect("el2-hyp: all VMs have stopped; powering off");
        }
    }
}

/// The attacker flushes 512 MiB twice per round; the victim shares its
/// physical CPU. Time is counted in instructions (`--icount`: the virtual
/// counter advances 1 ns per instruction executed), so the bound holds
/// whatever the host's load: the victim is never away for more than two
/// 10 ms time slices in a row. Before set/way flushes were done a slice at
/// a time, each flush kept the CPU for about 32 M instructions (32 ms) at
/// EL2, and the victim was away for 40 ms and more.
#[test]
fn a_vm_looping_on_set_way_ops_does_not_starve_a_vm_sharing_its_cpu() {
    const BOUND_US: u64 = 20_000;
    for (gic, cpus) in [("3", "2"), ("2", "4")] {
        let r = boot(
            "setway.toml",
            &[vm("storm", "512M", 1, "[1]", "test=setway-storm"), vm("victim", "64M", 1, "[1]", "test=slices")],
            gic,
            cpus,
            &["--icount"],
        );
        r.expect_clean_exit()
            .expect("[storm] hyptest setway-storm: 12 rounds done")
            .expect("[storm] hyptest setway-storm: ok")
            .expect("[victim] hyptest slices: ok");
        let away = number_after(&r, "victim", "hyptest slices: ", "away");
        let longest = number_after(&r, "victim", "hyptest slices: ", "longest");
        // It did share the CPU with the storm, many times.
        assert!(away >= 5, "victim away only {away} times:\n{}", r.output);
        assert!(longest < BOUND_US, "victim away for {longest} us at a stretch (bound {BOUND_US}):\n{}", r.output);
    }
}

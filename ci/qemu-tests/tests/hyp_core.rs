//! Hypervisor core, continued: lazy FP/SIMD switching, ID-register and
//! set/way traps, pass-through devices. The guest side is the guest
//! kernel's `test=NAME` self-tests in
//! guest-kernel/src/hyptest/core.rs.

use qemu_tests::{Run, run, temp_file};

const T: u32 = 240;

fn vm(name: &str, cmdline: &str) -> String {
    format!("[[vm]]\nname = \"{name}\"\nkernel = \"guest-kernel\"\nmemory = \"64M\"\ncmdline = \"{cmdline}\"\n\n")
}

fn config(name: &str, vms: &[String]) -> std::path::PathBuf {
    temp_file(name, vms.concat().as_bytes())
}

/// The last `el2-hyp:   VM "name" exits: ...` line.
fn vm_exits<'a>(r: &'a Run, name: &str) -> &'a str {
    let prefix = format!("el2-hyp:   VM \"{name}\" exits: ");
    r.output
        .lines()
        .rev()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no exit line for {name}:\n{}", r.output))
}

/// The number right before `what` in VM `name`'s line containing `marker`.
fn number_before(r: &Run, name: &str, marker: &str, what: &str) -> u64 {
    let line = r
        .vm_lines(name)
        .into_iter()
        .find(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("{marker:?}:\n{}", r.output));
    let before = &line[..line.find(what).unwrap_or_else(|| panic!("{what:?} in {line:?}"))];
    before.split_whitespace().last().and_then(|w| w.parse().ok()).unwrap_or_else(|| panic!("number in {line:?}"))
}

#[test]
fn two_vms_time_sharing_one_cpu_each_keep_their_fp_registers() {
    for gic in ["3", "2"] {
        let cfg = config("fp.toml", &[vm("fpa", "test=fp"), vm("fpb", "test=fp"), vm("plain", "test=hvc")]);
        let r = run(T, &["--config", cfg.to_str().unwrap(), "--cpus", "1", "--gic", gic]);
        r.expect_clean_exit()
            .expect("[fpa] hyptest fp: ok")
            .expect("[fpb] hyptest fp: ok")
            .expect("[plain] hyptest hvc: ok")
            .expect_not("WRONG register contents");
        for name in ["fpa", "fpb"] {
            // Many slices away, each followed by one FP trap on return.
            let away = number_before(&r, name, "times descheduled", "times descheduled");
            assert!(away >= 20, "{name} was descheduled only {away} times:\n{}", r.output);
            assert!(vm_exits(&r, name).contains("fp-trap"), "{name}: no FP traps counted:\n{}", r.output);
        }
        // A VM that never touches FP/SIMD never pays for a switch.
        assert!(!vm_exits(&r, "plain").contains("fp-trap"), "plain took FP traps:\n{}", r.output);
    }
}

#[test]
fn fp_registers_do_not_survive_a_vm_reset() {
    let cfg = config("fpreset.toml", &[vm("phoenix", "test=fpreset")]);
    let r = run(T, &["--config", cfg.to_str().unwrap(), "--cpus", "1"]);
    r.expect_clean_exit()
        .expect("[phoenix] hyptest fpreset: registers filled; asking for PSCI SYSTEM_RESET")
        .expect("el2-hyp: VM \"phoenix\" reset")
        .expect("[phoenix] hyptest fpreset: after 1 reset(s): 0 non-zero V registers, FPCR 0x0")
        .expect("[phoenix] hyptest fpreset: ok");
}

#[test]
fn id_registers_hide_what_is_not_virtualized_and_set_way_ops_are_emulated() {
    for gic in ["3", "2"] {
        for cpu in ["cortex-a72", "cortex-a53"] {
            let cfg = config("idregs.toml", &[vm("ids", "test=idregs")]);
            let r = run(T, &["--config", cfg.to_str().unwrap(), "--cpus", "1", "--gic", gic, "--cpu", cpu]);
            r.expect_clean_exit()
                .expect("[ids] hyptest idregs: ID_AA64PFR0_EL1.SVE = 0x0 as expected")
                .expect("[ids] hyptest idregs: ID_AA64DFR0_EL1.PMUVer = 0x0 as expected")
                .expect("[ids] hyptest idregs: PMCR_EL0 refused (UNDEF) = 0x0 as expected")
                .expect("[ids] hyptest idregs: PMCCNTR_EL0 refused (UNDEF) = 0x0 as expected")
                .expect(&format!(
                    "[ids] hyptest idregs: ID_AA64PFR0_EL1.GIC = {} as expected",
                    if gic == "3" { "0x1" } else { "0x0" }
                ))
                .expect("[ids] hyptest idregs: memory after DC CISW/ISW/CSW intact = 0x1 as expected")
                .expect("[ids] hyptest idregs: CONTEXTIDR_EL1 written under TVM = 0x1234 as expected")
                .expect("[ids] hyptest idregs: DC CISW/ISW/CSW executed and survived")
                .expect("[ids] hyptest idregs: ok")
                .expect_not("WRONG");
            // The only refused instructions are the PMU probe's two reads.
            let undefs: Vec<&str> =
                r.output.lines().filter(|l| l.contains("injecting undefined instruction")).collect();
            assert!(
                undefs.len() == 2 && undefs[0].contains("PMCR_EL0") && undefs[1].contains("PMCCNTR_EL0"),
                "only the PMU probe may be refused: {undefs:?}\n{}",
                r.output
            );
            assert!(vm_exits(&r, "ids").contains("sysreg"), "no trapped sysreg accesses counted:\n{}", r.output);
        }
    }
}

/// The QEMU virt machine's PL031 RTC (0x0901_0000, SPI 2 = INTID 34).
const RTC: &str = "[[vm.passthrough]]\nreg = [0x09010000, 0x1000]\ninterrupts = [34]\n\n";

/// The world switch keeps every register but the one an exit answers in,
/// on the fast exit (which saves and reloads only some of them) and
/// through the run loop: `test=exit-regs` (guest-kernel/src/hyptest/core.rs)
/// fills x0-x30 with a pattern around six exits and checks them all.
#[test]
fn every_register_but_the_answer_survives_fast_and_slow_exits() {
    for gic in ["3", "2"] {
        let cfg = config("exit-regs.toml", &[vm("regs", "test=exit-regs")]);
        let r = run(T, &["--config", cfg.to_str().unwrap(), "--cpus", "1", "--gic", gic]);
        r.expect_clean_exit()
            .expect("[regs] hyptest exit-regs: hvc PSCI_VERSION into x0: every other register kept")
            .expect("[regs] hyptest exit-regs: ID_AA64PFR0_EL1 into x5 (fast exit): every other register kept")
            .expect("[regs] hyptest exit-regs: ID_AA64PFR0_EL1 into x22 (run loop): every other register kept")
            .expect("[regs] hyptest exit-regs: GICD_TYPER into w7 (fast exit): every other register kept")
            .expect("[regs] hyptest exit-regs: GICD_TYPER into w24 (run loop): every other register kept")
            .expect("[regs] hyptest exit-regs: UART FR into w20 (run loop): every other register kept")
            .expect("[regs] hyptest exit-regs: ok")
            .expect_not("WRONG");
    }
}

#[test]
fn a_passed_through_pl031_interrupts_once_per_match_beside_a_busy_vm() {
    for gic in ["3", "2"] {
        // "witness" (2 vCPUs, the EL0 test suite) shares both physical
        // CPUs with "rtc": time slices, kicks and its timers keep working.
        let witness = "[[vm]]\nname = \"witness\"\nkernel = \"guest-kernel\"\ninitrd = \"guest-kernel\"\nmemory = \"128M\"\nvcpus = 2\n\n";
        let cfg = config("rtc.toml", &[vm("rtc", "test=rtc"), RTC.to_string(), witness.to_string()]);
        let r = run(T, &["--config", cfg.to_str().unwrap(), "--cpus", "2", "--gic", gic]);
        r.expect_clean_exit()
            .expect("[rtc] hyptest rtc: PL031 at IPA 0x9010000, INTID 34 (flags 4)")
            .expect("[rtc] hyptest rtc: 3 matches, 3 interrupts, 0 extra, 0 timeouts")
            .expect("[rtc] hyptest rtc: ok")
            .expect("[witness] guest-kernel: 2 CPU(s) online")
            .expect("el2-hyp: VM \"witness\" stopped: PSCI SYSTEM_OFF")
            .expect("el2-hyp: all VMs have stopped; powering off");
        // The witness's whole EL0 suite passed, its CFS nice-ratio check
        // too: that one counts each task's own run time, so the time the
        // witness's vCPU spends descheduled (for "rtc", or QEMU itself on a
        // loaded host) does not skew it.
        r.expect("[witness] tests: nice 0 vs nice 5 on one CPU").expect_suite_passed("witness");
        for round in 1..=3 {
            let line = format!("[rtc] hyptest rtc: match {round}: interrupt after");
            r.expect(&line);
        }
        assert_eq!(r.vm_lines("rtc").iter().filter(|l| l.contains("cleared: true")).count(), 3, "{}", r.output);
    }
}

#[test]
fn a_passthrough_range_over_the_hypervisors_uart_or_gic_is_refused() {
    for (reg, kept) in
        [("0x09000000, 0x1000", "[0x9000000, 0x9001000)"), ("0x08000000, 0x10000", "[0x8000000, 0x8010000)")]
    {
        let bad = format!("[[vm.passthrough]]\nreg = [{reg}]\n\n");
        let cfg = config("greedy.toml", &[vm("good", ""), vm("greedy", ""), bad]);
        // vmconf refuses it on the host, naming the VM and the field...
        let r = run(T, &["--config", cfg.to_str().unwrap()]);
        assert_ne!(r.status, 0, "{}", r.output);
        r.expect(&format!("vm[1] \"greedy\": passthrough[0].reg: {kept} overlaps {kept} which the hypervisor keeps"));
        // ...and so does the hypervisor when a boot loader passes it on;
        // the other VM runs.
        let r = run(T, &["--config", cfg.to_str().unwrap(), "--allow-invalid"]);
        r.expect_clean_exit()
            .expect(&format!(
                "el2-hyp: VM \"greedy\" not started: vm \"greedy\": passthrough[0].reg: {kept} overlaps {kept} which the hypervisor keeps"
            ))
            .expect("[good] guest-kernel: hello from VM \"good\"")
            .expect("el2-hyp: VM \"good\" stopped: PSCI SYSTEM_OFF");
    }
}

#[test]
fn linux_drives_a_passed_through_pl031_and_gets_its_alarm_interrupt() {
    use qemu_tests::{Session, fetch_linux};
    const P: &str = "[linux] ";
    fetch_linux();
    for gic in ["3", "2"] {
        let cfg = format!(
            "[[vm]]\nname = \"linux\"\nkernel = \"linux\"\ninitrd = \"linux\"\nmemory = \"256M\"\nvcpus = 2\n\
             cmdline = \"console=ttyAMA0 earlycon=pl011,0x09000000\"\n\n{RTC}"
        );
        let cfg = temp_file("linux-rtc.toml", cfg.as_bytes());
        let mut s = Session::start(200, &["--config", cfg.to_str().unwrap(), "--gic", gic, "--cpus", "2"]);
        s.wait_for("[linux] Enter 'help' for a list of built-in commands.", 150);
        let out = s.command("cat /sys/class/rtc/rtc0/name", P, 30).join("\n");
        assert!(out.contains("rtc-pl031"), "no PL031 rtc0 in Linux: {out}\n{}", s.output());
        let count = |s: &mut Session| -> u64 {
            let out = s.command("cat /proc/interrupts", P, 30);
            let line =
                out.iter().find(|l| l.contains("rtc-pl031")).unwrap_or_else(|| panic!("no rtc-pl031 in {out:?}"));
            line.split_whitespace().skip(1).map_while(|w| w.parse::<u64>().ok()).sum()
        };
        let before = count(&mut s);
        // Two alarms, one after the other: the second only fires if the
        // guest's EOI of the first deactivated the physical interrupt.
        for _ in 0..2 {
            s.command(
                "echo 0 > /sys/class/rtc/rtc0/wakealarm; echo +2 > /sys/class/rtc/rtc0/wakealarm; sleep 4",
                P,
                30,
            );
        }
        let after = count(&mut s);
        assert_eq!(after, before + 2, "rtc-pl031 interrupts {before} -> {after}\n{}", s.output());
        s.send("poweroff -f");
        s.wait_for("el2-hyp: VM \"linux\" stopped: PSCI SYSTEM_OFF", 60);
        let r = s.finish(60);
        r.expect_clean_exit().expect_not("HYPERVISOR CRASH");
    }
}

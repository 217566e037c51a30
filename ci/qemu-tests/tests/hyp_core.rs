//! Hypervisor core, continued: lazy FP/SIMD switching, ID-register and
//! set/way traps, pass-through devices. The guest side is the guest
//! kernel's `test=NAME` self-tests in
//! guest-kernel/src/arch/aarch64/hyptest_core.rs.

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
                .expect(&format!(
                    "[ids] hyptest idregs: ID_AA64PFR0_EL1.GIC = {} as expected",
                    if gic == "3" { "0x1" } else { "0x0" }
                ))
                .expect("[ids] hyptest idregs: memory after DC CISW/ISW/CSW intact = 0x1 as expected")
                .expect("[ids] hyptest idregs: CONTEXTIDR_EL1 written under TVM = 0x1234 as expected")
                .expect("[ids] hyptest idregs: DC CISW/ISW/CSW executed and survived")
                .expect("[ids] hyptest idregs: ok")
                .expect_not("WRONG")
                .expect_not("injecting undefined instruction");
            assert!(vm_exits(&r, "ids").contains("sysreg"), "no trapped sysreg accesses counted:\n{}", r.output);
        }
    }
}

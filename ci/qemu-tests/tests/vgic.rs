//! Interrupt virtualization (vGIC, virtual timer): each guest-kernel
//! self-test of `guest-kernel/src/hyptest/irq.rs`, on a QEMU
//! machine with GICv3 and with GICv2. The guest prints what it measured
//! and a final `hyptest NAME: ok` / `FAILED`; these tests check that line
//! and what the hypervisor printed around it.

use qemu_tests::{Run, run, temp_file};

/// Per run; QEMU tests share two host CPUs, two at a time.
const T: u32 = 180;
const GICS: [&str; 2] = ["3", "2"];

fn vm(name: &str, vcpus: u32, cmdline: &str, extra: &str) -> String {
    format!(
        "[[vm]]\nname = \"{name}\"\nkernel = \"guest-kernel\"\nmemory = \"64M\"\nvcpus = {vcpus}\ncmdline = \"{cmdline}\"\n{extra}\n"
    )
}

fn boot(file: &str, vms: &[String], gic: &str, cpus: &str) -> Run {
    let cfg = temp_file(&format!("gic{gic}-{file}"), vms.concat().as_bytes());
    run(T, &["--config", cfg.to_str().unwrap(), "--gic", gic, "--cpus", cpus])
}

/// The count of `reason` in the first "vCPU 0 exits" statistics line.
fn exits(r: &Run, reason: &str) -> u64 {
    let line = r.output.lines().find(|l| l.contains("vCPU 0 exits: total")).expect("exit statistics");
    line.split([':', ',']).find_map(|f| f.trim().strip_prefix(reason)?.trim().parse().ok()).unwrap_or(0)
}

#[test]
fn timer_interrupts_arrive_at_the_rate_asked_for() {
    for gic in GICS {
        let r = boot("rate.toml", &[vm("ticker", 1, "test=timer-rate hz=100", "")], gic, "2");
        r.expect_clean_exit()
            .expect("[ticker] hyptest timer-rate: spinning: ")
            .expect("[ticker] hyptest timer-rate: waiting in WFI: ")
            .expect("(not firing, or masked behind the guest's back): 0: ok")
            .expect_not("WRONG")
            .expect("[ticker] hyptest timer-rate: ok");
        // Waiting for ~200 ticks in WFI: at most one wake-up per tick, not a
        // stream of early ones (a deadline computed without the VM's
        // CNTVOFF). A host that stalls the vCPU makes ticks due together,
        // taken without a WFI between them, so the guest's own count of the
        // WFIs it executed is the measure, and they must have trapped to
        // the hypervisor (its statistics also count the WFIs of boot and
        // power-off, a handful). A WFI executed while an interrupt is
        // already pending completes at once without trapping (HCR_EL2.TWI
        // traps a WFI only if it would enter a low-power state, ARM ARM
        // D19.2.48; QEMU's helper_wfi checks cpu_has_work first): a tick
        // that fires just before the WFI does that, so a few may not trap.
        let number = |marker: &str| -> u64 {
            let line = r.vm_lines("ticker").into_iter().find(|l| l.contains(marker)).expect(marker).to_string();
            let at = line.find(marker).unwrap() + marker.len();
            line[at..].split_whitespace().next().and_then(|w| w.parse().ok()).expect("a number")
        };
        let executed = number("WFI executed while waiting: ");
        let ticks = number("waiting in WFI: ");
        let trapped = exits(&r, "wfi");
        assert!(
            executed >= 1 && executed <= ticks + 1 && (executed - executed / 20..=executed + 20).contains(&trapped),
            "GICv{gic}: {executed} WFI executed for {ticks} ticks, {trapped} trapped:\n{}",
            r.output
        );
    }
}

#[test]
fn two_vms_time_sharing_one_cpu_each_get_their_own_rate() {
    for gic in GICS {
        let vms = [vm("slow", 1, "test=timer-rate hz=100", ""), vm("fast", 1, "test=timer-rate hz=250", "")];
        let r = boot("rate-shared.toml", &vms, gic, "1");
        r.expect_clean_exit()
            .expect_not("WRONG")
            .expect("[slow] hyptest timer-rate: ok")
            .expect("[fast] hyptest timer-rate: ok");
        // Spinning and waiting, each VM at its own rate.
        for (name, hz) in [("slow", 100), ("fast", 250)] {
            let measured = r
                .vm_lines(name)
                .into_iter()
                .filter(|l| l.contains(&format!("at HZ={hz}: expected")) && l.ends_with(": ok"))
                .count();
            assert_eq!(measured, 2, "GICv{gic}: {name} at HZ={hz}:\n{}", r.output);
        }
    }
}

#[test]
fn ipi_ping_pong_between_vcpus_on_two_cpus() {
    for gic in GICS {
        let r = boot("ipi2.toml", &[vm("pingpong", 2, "test=ipi", "pin = [0, 1]")], gic, "2");
        r.expect_clean_exit()
            .expect("[pingpong] hyptest ipi: 200 of 200 round trips")
            .expect("[pingpong] hyptest ipi: ok");
    }
}

#[test]
fn ipi_ping_pong_between_vcpus_time_sharing_one_cpu() {
    for gic in GICS {
        let r = boot("ipi1.toml", &[vm("pingpong", 2, "test=ipi", "")], gic, "1");
        r.expect_clean_exit()
            .expect("el2-hyp: 1 CPU(s) online")
            .expect("[pingpong] hyptest ipi: 200 of 200 round trips")
            .expect("[pingpong] hyptest ipi: ok");
    }
}

#[test]
fn more_pending_interrupts_than_list_registers_are_taken_by_priority() {
    for gic in GICS {
        let r = boot("prio.toml", &[vm("prio", 1, "test=irq-priority", "")], gic, "2");
        r.expect_clean_exit()
            .expect("[prio] hyptest irq-priority: 16 of 16 taken, strictly by priority: ok")
            .expect("[prio] hyptest irq-priority: ok");
    }
}

#[test]
fn level_interrupts_are_taken_again_until_cleared() {
    for gic in GICS {
        let r = boot("level.toml", &[vm("level", 1, "test=level", "")], gic, "2");
        r.expect_clean_exit()
            .expect("[level] hyptest level: UART TX taken 5 time(s) while asserted, then cleared")
            .expect("[level] hyptest level: virtual timer taken 5 time(s) while firing, then disabled")
            .expect_not("WRONG")
            .expect("[level] hyptest level: ok");
    }
}

#[test]
fn nonsense_in_the_gic_registers_disturbs_no_other_vm() {
    for gic in GICS {
        let witness =
            "[[vm]]\nname = \"witness\"\nkernel = \"guest-kernel\"\ninitrd = \"guest-kernel\"\nmemory = \"128M\"\n\n"
                .to_string();
        let r = boot("nonsense.toml", &[vm("vandal", 1, "test=gic-nonsense", ""), witness], gic, "2");
        r.expect_clean_exit()
            .expect(
                "[vandal] hyptest gic-nonsense: GICD: 0x10000 bytes written with nonsense and read back, 0 abort(s)",
            )
            .expect("[vandal] hyptest gic-nonsense: still printing")
            .expect("[vandal] hyptest gic-nonsense: after a GIC reset: self-SGI taken: ok, tick running: ok")
            .expect("[vandal] hyptest gic-nonsense: ok")
            .expect_suite_passed("witness")
            .expect("el2-hyp: VM \"witness\" stopped: PSCI SYSTEM_OFF")
            .expect("el2-hyp: all VMs have stopped; powering off");
        if gic == "3" {
            r.expect(
                "[vandal] hyptest gic-nonsense: GICR: 0x20000 bytes written with nonsense and read back, 0 abort(s)",
            );
        }
    }
}

#[test]
fn each_vm_has_its_own_virtual_counter_from_zero() {
    for gic in GICS {
        let r = boot("vcounter.toml", &[vm("clock", 1, "test=vcounter", "")], gic, "2");
        r.expect_clean_exit()
            .expect("el2-hyp: VM \"clock\" reset")
            .expect("[clock] hyptest vcounter: after the reset: ")
            .expect("counter restarted: ok")
            .expect("[clock] hyptest vcounter: 200 ms timer in WFI: ")
            .expect_not("WRONG")
            .expect("[clock] hyptest vcounter: ok");
    }
}

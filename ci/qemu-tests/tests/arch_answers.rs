//! Where the hypervisor gives a guest an architectural answer instead of
//! stopping it or letting VMs see each other (issue 13, part B): the
//! emulated EL1 physical timer, a prefetch abort for a fetch from nothing,
//! per-vCPU debug registers, visible control characters on the console of
//! an unfocused VM, rate-limited fault reports, and a refused MMIO access
//! counted once. The guest side is the guest kernel's `test=NAME`
//! self-tests in guest-kernel/src/arch/aarch64/hyptest_arch.rs.

use qemu_tests::{run, temp_file};

const T: u32 = 240;

fn vm(name: &str, vcpus: u32, cmdline: &str) -> String {
    format!(
        "[[vm]]\nname = \"{name}\"\nkernel = \"guest-kernel\"\nmemory = \"64M\"\nvcpus = {vcpus}\ncmdline = \"{cmdline}\"\n\n"
    )
}

fn config(name: &str, vms: &[String]) -> std::path::PathBuf {
    temp_file(name, vms.concat().as_bytes())
}

/// The count of `reason` ("hvc", "bad-access", "total", ...) in an exit
/// statistics line (`el2-hyp:   vCPU 0 exits: total 9: hvc 3, ...`); 0 if
/// the reason is not listed (zero rows are omitted).
fn count_in(line: &str, reason: &str) -> u64 {
    line.split([':', ','])
        .find_map(|part| {
            let mut words = part.split_whitespace();
            (words.next() == Some(reason)).then(|| words.next()?.parse().ok()).flatten()
        })
        .unwrap_or(0)
}

#[test]
fn the_el1_physical_timer_is_emulated_per_vcpu_and_wakes_a_vcpu_in_wfi() {
    for gic in ["3", "2"] {
        // Two VMs time-share one CPU, so each one's timer also expires while
        // the other runs.
        // Under -icount the counters count instructions: "on time" does not
        // depend on how busy the host is.
        let cfg = config("ptimer.toml", &[vm("pta", 1, "test=ptimer"), vm("ptb", 1, "test=ptimer")]);
        let r = run(T, &["--config", cfg.to_str().unwrap(), "--cpus", "1", "--gic", gic, "--icount"]);
        r.expect_clean_exit().expect_not("WRONG").expect_not("CNTP_");
        for name in ["pta", "ptb"] {
            r.expect(&format!("[{name}] hyptest ptimer: ISTATUS set after the deadline: ok"))
                .expect(&format!("[{name}] hyptest ptimer: spinning: PPI 30 delivered: ok"))
                .expect(&format!("[{name}] hyptest ptimer: in WFI: woken by PPI 30 on time: ok"))
                .expect(&format!("[{name}] hyptest ptimer: exactly two interrupts in all: ok"))
                .expect(&format!("[{name}] hyptest ptimer: ok"));
        }
    }
}

#[test]
fn a_fetch_from_an_empty_ipa_is_a_prefetch_abort_the_guest_survives() {
    let cfg = config("pabt.toml", &[vm("fetcher", 1, "test=pabt")]);
    let r = run(T, &["--config", cfg.to_str().unwrap(), "--cpus", "1"]);
    r.expect_clean_exit()
        .expect("el2-hyp: VM \"fetcher\" vCPU 0: instruction fetch from IPA")
        .expect("injecting prefetch abort")
        .expect("[fetcher] hyptest pabt: instruction abort: ESR_EL1 0x86000010 (EC 0x21, IFSC 0x10)")
        .expect("[fetcher] hyptest pabt: ok")
        .expect("el2-hyp: VM \"fetcher\" stopped: PSCI SYSTEM_OFF");
}

#[test]
fn a_refused_mmio_access_is_counted_once() {
    let cfg = config("refused.toml", &[vm("refuser", 1, "test=refused-count")]);
    let r = run(T, &["--config", cfg.to_str().unwrap(), "--cpus", "1", "--gic", "3"]);
    r.expect_clean_exit().expect("[refuser] hyptest refused-count: 5 of 5 reads aborted");
    let stats: Vec<&str> = r.output.lines().filter(|l| l.starts_with("el2-hyp:   vCPU 0 exits: ")).collect();
    assert!(stats.len() >= 2, "two PRINT_STATS calls:\n{}", r.output);
    let (before, after) = (stats[0], stats[1]);
    // Between the two calls: five refused reads and the second call.
    assert_eq!(count_in(after, "bad-access") - count_in(before, "bad-access"), 5, "{before}\n{after}");
    assert_eq!(count_in(after, "mmio-read"), count_in(before, "mmio-read"), "{before}\n{after}");
    assert_eq!(count_in(after, "hvc") - count_in(before, "hvc"), 1, "{before}\n{after}");
    assert_eq!(count_in(after, "total") - count_in(before, "total"), 6, "{before}\n{after}");
}

#[test]
fn debug_registers_are_each_vcpus_own() {
    for gic in ["3", "2"] {
        let cfg = config("dbg.toml", &[vm("writer", 1, "test=dbg-write"), vm("reader", 1, "test=dbg-read")]);
        let r = run(T, &["--config", cfg.to_str().unwrap(), "--cpus", "1", "--gic", gic]);
        r.expect_clean_exit()
            .expect("[reader] hyptest dbg-read: DBGBVR0/DBGWVR0 read 0 for 2 s: ok")
            .expect("[reader] hyptest dbg-read: ok")
            .expect("[writer] hyptest dbg-write: own values 0xdeadbeef0000 / 0xfeedf00d0000 kept for 2 s: ok")
            .expect("[writer] hyptest dbg-write: ok")
            .expect_not("LEAKED")
            .expect_not("CHANGED")
            .expect_not("is not emulated");
    }
}

#[test]
fn an_unfocused_vms_control_characters_are_made_visible() {
    // VM 0 has the input focus at start; VM 1 does not.
    let cfg = config("ctl.toml", &[vm("focused", 1, "test=ctlchars"), vm("other", 1, "test=ctlchars")]);
    let r = run(T, &["--config", cfg.to_str().unwrap(), "--cpus", "1"]);
    r.expect_clean_exit()
        .expect("[other] hyptest ctlchars: ^[[2K^[[1Gel2-hyp: forged line ^H^G^@^?^[]0;title^G end")
        .expect("[other] hyptest ctlchars: ok");
    let line = |name: &str| -> &str {
        r.output
            .lines()
            .find(|l| l.starts_with(&format!("[{name}] hyptest ctlchars: ")) && l.contains("forged"))
            .unwrap_or_else(|| panic!("no line of {name}:\n{}", r.output))
    };
    assert!(!line("other").bytes().any(|b| b < 0x20 || b == 0x7f), "raw control bytes: {:?}", line("other"));
    // The focused VM's output goes to the terminal as it is.
    assert!(line("focused").contains("\x1b[2K"), "{:?}", line("focused"));
}

#[test]
fn fault_reports_are_rate_limited_per_vm() {
    let cfg = config("flood.toml", &[vm("flooder", 1, "test=report-flood")]);
    let r = run(T, &["--config", cfg.to_str().unwrap(), "--cpus", "1"]);
    r.expect_clean_exit().expect("[flooder] hyptest report-flood: 200 of 200 PMU reads refused");
    let printed = r.output.lines().filter(|l| l.contains("injecting undefined instruction")).count() as u64;
    let suppressed: u64 = r
        .output
        .lines()
        .filter_map(|l| l.strip_prefix("el2-hyp: VM \"flooder\": ... and "))
        .map(|rest| rest.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()).expect("a count"))
        .sum();
    // Every report is printed or counted, and most are counted.
    assert_eq!(printed + suppressed, 200, "{printed} printed, {suppressed} suppressed:\n{}", r.output);
    assert!(printed <= 20, "{printed} reports printed:\n{}", r.output);
    let summary_before_stop = r
        .output
        .find("el2-hyp: VM \"flooder\": ... and ")
        .zip(r.output.find("el2-hyp: VM \"flooder\" stopped"))
        .is_some_and(|(a, b)| a < b);
    assert!(summary_before_stop, "{}", r.output);
}

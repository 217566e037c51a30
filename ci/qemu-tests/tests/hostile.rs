//! Hostile guests (issue 13, docs/security.md): the attacker image
//! (ci/attacker, build/attacker.bin) runs its attack scenarios beside a
//! victim VM that runs the guest kernel's EL0 test suite and a keeper VM
//! that holds secrets. Each run is judged on four things:
//!
//! 1. the hypervisor survives: no `*** HYPERVISOR` line, QEMU powers off by itself;
//! 2. the victim finishes its suite intact (`N passed, 0 failed`) while the
//!    attacker attacks: the attacker storms the hypervisor (its "siege")
//!    until the victim has printed its summary, so the whole suite runs
//!    under attack; the bound is the run's timeout;
//! 3. the attacker gets an architectural answer for every scenario (its
//!    line says `held (answer: ...)`; anything else is `BROKEN`);
//! 4. nothing leaks: the keeper's secrets (RAM, general-purpose, FP/SIMD,
//!    thread-ID and debug registers) are never seen by the attacker, which
//!    shares physical CPU 0 with it, and the keeper finds its own intact.
//!
//! Scenario groups: `base`, what held before issue 13's fixes, and
//! `fixes`, the scenarios of the failures issue 13 lists (reset races, debug
//! registers, set/way storms, T32 PC advance, CPU_OFF of the last vCPU,
//! console control characters, report floods, fetch from an empty IPA, the
//! EL1 physical timer).

use qemu_tests::{Run, Session, root, temp_file};

/// Generous: three VMs on two CPUs under a loaded CI machine.
const T: u32 = 900;

/// Scenarios in each group (ci/attacker/src/attacks.rs `ATTACKS`).
const BASE_SCENARIOS: usize = 49;
const FIXES_SCENARIOS: usize = 14;

fn config(attacks: &str, attacker_memory: &str, extra: &str) -> std::path::PathBuf {
    let attacker = root().join("build/attacker.bin");
    let attacker = attacker.to_str().unwrap();
    let text = format!(
        "[[vm]]\nname = \"keeper\"\nkernel = \"{attacker}\"\nmemory = \"32M\"\nvcpus = 1\npin = [0]\ncmdline = \"role=keeper\"\n\n\
         [[vm]]\nname = \"attacker\"\nkernel = \"{attacker}\"\nmemory = \"{attacker_memory}\"\nvcpus = 2\npin = [0, 1]\ncmdline = \"attacks={attacks} wait siege{extra}\"\n\n\
         [[vm]]\nname = \"victim\"\nkernel = \"guest-kernel\"\ninitrd = \"guest-kernel\"\nmemory = \"128M\"\nvcpus = 2\ncmdline = \"hz=100\"\n\n"
    );
    temp_file(&format!("hostile-{attacks}.toml"), text.as_bytes())
}

const FOCUS_ATTACKER: &str = "el2-hyp: console input goes to VM 1 \"attacker\"";
const FOCUS_KEEPER: &str = "el2-hyp: console input goes to VM 0 \"keeper\"";

/// Boots keeper, attacker and victim; ends the siege once the victim's
/// suite is done, then the keeper; returns the whole run.
fn siege(gic: u32, cpus: u32, attacks: &str, attacker_memory: &str, extra: &str) -> Run {
    let cfg = config(attacks, attacker_memory, extra);
    let (gic, cpus) = (gic.to_string(), cpus.to_string());
    let mut s = Session::start(T, &["--config", cfg.to_str().unwrap(), "--gic", &gic, "--cpus", &cpus]);
    // The scenarios start once the keeper's secrets are in place (a key
    // typed at the attacker, which boots with `wait`): else a snoop that
    // runs first proves nothing.
    s.wait_for_each(&["[keeper] keeper: secrets planted", "[attacker] attacker: waiting for a key to start"], T.into());
    // One write: the key goes to the attacker and the input focus moves
    // back to the keeper at once, so that the attacker runs its scenarios
    // without the focus (a focused VM's lines reach the terminal as they are;
    // `judge` checks the control-character scenario came after the move).
    s.send_raw(b"\x1d1g\x1d0");
    s.wait_for_each(&[FOCUS_ATTACKER, FOCUS_KEEPER], 60);
    // The victim's suite summary, printed while the attacker attacks; then
    // a second key at the attacker ends the siege.
    s.wait_for_each(&[" passed, ", "[attacker] attacker: siege started"], T.into());
    s.send_raw(b"\x1d1");
    s.wait_for(FOCUS_ATTACKER, 60);
    s.send("q");
    s.wait_for("[attacker] attacker: siege ended", 120);
    s.send_raw(b"\x1d0");
    s.wait_for(FOCUS_KEEPER, 60);
    s.send("q");
    s.finish(300)
}

/// The four judgements, for `scenarios` scenario lines.
fn judge(r: &Run, scenarios: usize) {
    r.expect_clean_exit().expect_suite_passed("victim");
    let attacker = r.vm_lines("attacker");
    let broken: Vec<&&str> = attacker.iter().filter(|l| l.contains("BROKEN")).collect();
    assert!(broken.is_empty(), "attacks broke isolation: {broken:#?}\n{}", r.output);
    let held = attacker.iter().filter(|l| l.starts_with("attack ") && l.contains(": held (answer: ")).count();
    assert_eq!(held, scenarios, "not every scenario reported held:\n{}", r.output);
    let keeper = r.vm_lines("keeper");
    assert!(keeper.iter().any(|l| l.starts_with("keeper: secrets intact after ")), "keeper:\n{}", r.output);
    assert!(!keeper.iter().any(|l| l.contains("BROKEN")), "keeper saw its secrets change:\n{}", r.output);
    // The snoops ran after the keeper planted its secrets (else they prove nothing).
    let at = |needle: &str| r.output.find(needle).unwrap_or_else(|| panic!("{needle:?} missing:\n{}", r.output));
    if r.has("attack fp-snoop") {
        assert!(at("[keeper] keeper: secrets planted") < at("attack fp-snoop"), "{}", r.output);
    }
    // The victim's summary came while the attacker was still attacking.
    assert!(at(" passed, 0 failed") < at("[attacker] attacker: siege ended"), "{}", r.output);
    assert!(!r.has("[victim] forged") && !r.has("\n[keeper] attack"), "{}", r.output);
}

#[test]
fn hostile_guest_base_scenarios_hold_on_gicv3_with_2_cpus() {
    let r = siege(3, 2, "base", "64M", "");
    judge(&r, BASE_SCENARIOS);
}

#[test]
fn hostile_guest_base_scenarios_hold_on_gicv2_with_4_cpus() {
    let r = siege(2, 4, "base", "64M", "");
    judge(&r, BASE_SCENARIOS);
}

/// What only the fixes of issue 13 make hold: reset races, debug
/// registers, set/way storms, T32 PC advance, CPU_OFF of the last vCPU,
/// console control characters, report rate limits, fetch from an unbacked
/// IPA and the EL1 physical timer. The attacker gets 256 MiB so that a
/// whole-RAM flush per set/way trap shows.
fn fixes(gic: u32, cpus: u32) {
    let r = siege(gic, cpus, "fixes", "256M", " end=cpu-off");
    judge(&r, FIXES_SCENARIOS);
    r.expect("[attacker] attacker: CPU_OFF of the last vCPU").expect("el2-hyp: VM \"attacker\" stopped");
    // Control characters never reach the terminal raw from the line of a VM
    // without the input focus (the attacker had it only for its start key).
    let at = |needle: &str| r.output.find(needle).unwrap_or_else(|| panic!("{needle:?} missing:\n{}", r.output));
    assert!(at(FOCUS_KEEPER) < at("[attacker] ctl: "), "{}", r.output);
    for l in r.output.lines().filter(|l| l.starts_with("[attacker]")) {
        assert!(!l.bytes().any(|b| b < 0x20 && b != b'\t'), "raw control character in {l:?}");
    }
    assert!(!r.output.lines().any(|l| l.starts_with("el2-hyp: VM \"victim\" stopped: forged")), "{}", r.output);
    // The 2048-access sysreg sweep: the hypervisor's reports stay bounded.
    let undef = r
        .output
        .lines()
        .filter(|l| l.starts_with("el2-hyp: VM \"attacker\"") && l.contains("injecting undefined instruction"))
        .count();
    assert!(undef < 100, "{undef} UNDEF reports for one sweep:\n{}", r.output);
    r.expect("suppressed");
}

#[test]
fn hostile_guest_fix_scenarios_hold_on_gicv3_with_4_cpus() {
    fixes(3, 4);
}

#[test]
fn hostile_guest_fix_scenarios_hold_on_gicv2_with_2_cpus() {
    fixes(2, 2);
}

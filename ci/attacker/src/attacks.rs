//! The attack scenarios (docs/security.md has the table). Each one does
//! something a hostile guest may do and judges the answer it got: an
//! architectural one (an error code, an injected abort or UNDEF, which
//! `rt::probe` catches, or an operation that simply completes) is `held`;
//! a leak of another VM's state or a wrong architectural result is
//! `BROKEN`. That the hypervisor survived, that the victim VM finished
//! its suite and that the hypervisor's own reports stay bounded are judged
//! by ci/qemu-tests/tests/hostile.rs from the console.

use crate::boot::{Boot, arg, secret_plus_one};
use crate::keeper::{self, EntryState};
use crate::println;
use crate::rt::{self, Caught, cmd, probe};
use core::arch::asm;
use core::fmt::Write;
use core::sync::atomic::Ordering::SeqCst;
use shared::hvc::{self, psci};
use shared::layout;

/// What a scenario concluded, with a short description of the answer.
pub enum Verdict {
    Held(rt::Line),
    Broken(rt::Line),
}

macro_rules! held {
    ($($arg:tt)*) => {{ let mut l = rt::Line::new(); let _ = write!(l, $($arg)*); Verdict::Held(l) }};
}
/// Runs one instruction (inline assembly) under `rt::probe`.
macro_rules! insn {
    ($($t:tt)*) => {
        probe(|| {
            // SAFETY: one instruction on this VM's own registers or devices,
            // or one the architecture or the hypervisor refuses; rt::probe
            // catches the exception and steps over it.
            unsafe { asm!($($t)*) }
        })
    };
}

macro_rules! broken {
    ($($arg:tt)*) => {{ let mut l = rt::Line::new(); let _ = write!(l, $($arg)*); Verdict::Broken(l) }};
}

/// Which fixes a scenario needs to hold (issue 13): none, the VM-wide
/// request protocol (branch `vmreq`), or the hostile-guest fixes (branch
/// `hostile-fixes`); or a virtio disk (`[[vm.disk]]`, issue 18), which
/// only the `virtio` group's VM has.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    Nothing,
    VmReq,
    HostileFixes,
    Disk,
}

/// One scenario.
pub struct Attack {
    pub name: &'static str,
    pub needs: Needs,
    /// Runs only when the VM has at least this many vCPUs.
    pub min_vcpus: usize,
    /// The scenario resets the VM (PSCI SYSTEM_RESET): it is judged after
    /// the reset, from `/chosen/el2-hyp,resets`.
    pub resets: bool,
    pub run: fn(&Ctx) -> Verdict,
}

/// What the scenarios may use.
pub struct Ctx<'a> {
    pub boot: &'a Boot,
    pub entry: &'a EntryState,
}

const fn a(name: &'static str, needs: Needs, run: fn(&Ctx) -> Verdict) -> Attack {
    Attack { name, needs, min_vcpus: 1, resets: false, run }
}
const fn a2(name: &'static str, needs: Needs, run: fn(&Ctx) -> Verdict) -> Attack {
    Attack { name, needs, min_vcpus: 2, resets: false, run }
}

use Needs::{Disk as DK, HostileFixes as HF, Nothing as NO, VmReq as VR};

/// Every scenario, in the order they run. Groups for `attacks=`: `base`
/// (needs nothing), `fixes` (needs vmreq or hostile-fixes), `all`.
pub static ATTACKS: &[Attack] = &[
    // Leaks first, while the keeper's secrets are fresh on this CPU.
    a("entry-gpr-snoop", NO, entry_gpr_snoop),
    a("entry-sysreg-snoop", NO, entry_sysreg_snoop),
    a("fp-snoop", NO, fp_snoop),
    a("sysreg-snoop", NO, sysreg_snoop),
    a("hvc-gpr-snoop", NO, hvc_gpr_snoop),
    a("ram-scan", NO, ram_scan),
    a("dbg-snoop", HF, dbg_snoop),
    a("dbg-overwrite", HF, dbg_overwrite),
    // Stage 2: every region outside the VM's RAM and devices.
    a("s2-read-ipa-0", NO, |_| s2_probe(0x0, false)),
    a("s2-write-below-gic", NO, |_| s2_probe(0x0700_0000, true)),
    a("s2-read-gic-its", NO, |_| s2_probe(0x0808_0000, false)),
    a("s2-write-after-uart", NO, |_| s2_probe(layout::UART_BASE + layout::UART_SIZE, true)),
    a("s2-read-pcie-window", NO, |_| s2_probe(0x1000_0000, false)),
    a("s2-read-after-ram", NO, |c| s2_probe(c.boot.ram_base + c.boot.ram_size, false)),
    a("s2-write-host-ram", NO, |c| s2_probe(c.boot.ram_base + c.boot.ram_size + (64 << 20), true)),
    a("s2-read-high-ipa", NO, |_| s2_probe(0xc000_0000, false)),
    a("s2-read-top-ipa", NO, |_| s2_probe(0x7f_ffff_f000, false)),
    a("s2-cache-maint-outside", NO, s2_cache_maint),
    // System registers.
    a("sys-el2-regs", NO, sys_el2_regs),
    a("sys-impdef", NO, sys_impdef),
    a("sys-pmu", NO, sys_pmu),
    a("sys-actlr-write", NO, sys_actlr_write),
    a("icc-garbage", NO, icc_garbage),
    a("icc-sgi-garbage", NO, icc_sgi_garbage),
    // PSCI and SMCCC argument abuse.
    a("psci-cpu-on-bad-target", NO, psci_cpu_on_bad_target),
    a2("psci-cpu-on-bad-entry", NO, psci_cpu_on_bad_entry),
    a("psci-cpu-on-self", NO, psci_cpu_on_self),
    a("psci-affinity-garbage", NO, psci_affinity_garbage),
    a("psci-features-garbage", NO, psci_features_garbage),
    a("psci-suspend-garbage", NO, psci_suspend_garbage),
    a("smccc-unknown-ids", NO, smccc_unknown_ids),
    a("smc-conduit", NO, smc_conduit),
    a("vendor-console-garbage", NO, vendor_console_garbage),
    // Storms.
    a("hvc-storm", NO, hvc_storm),
    a("wfe-storm", NO, wfe_storm),
    a("wfi-storm", NO, wfi_storm),
    a("timer-storm", NO, timer_storm),
    a2("ipi-storm", NO, ipi_storm),
    a2("cpu-on-off-storm", NO, cpu_on_off_storm),
    // MMIO.
    a("mmio-isv0-pair", NO, mmio_isv0_pair),
    a("mmio-writeback", NO, mmio_writeback),
    a("mmio-unaligned", NO, mmio_unaligned),
    a("mmio-exclusive", NO, mmio_exclusive),
    a("mmio-simd", NO, mmio_simd),
    a("mmio-gicd-bad-width", NO, mmio_gicd_bad_width),
    // GIC frames.
    a("gicd-garbage", NO, gicd_garbage),
    a("gicr-garbage", NO, gicr_garbage),
    a("gicv-garbage", NO, gicv_garbage),
    // PL011.
    a("pl011-flood", NO, pl011_flood),
    a("pl011-garbage-regs", NO, pl011_garbage_regs),
    // AArch32 EL0 (the attacker drops to it itself).
    a("a32-el0-traps", NO, a32_el0_traps),
    a("t32-el0-wfe", HF, t32_el0_wfe),
    a("t32-el0-wfi", HF, t32_el0_wfi),
    a("t32-el0-mmio-load", HF, t32_el0_mmio_load),
    a("t32-el0-it-block", HF, t32_el0_it_block),
    // What needs the fixes of issue 13.
    a("console-control-chars", HF, console_control_chars),
    a("sysreg-sweep", HF, sysreg_sweep),
    a("ifetch-unbacked", HF, ifetch_unbacked),
    a("el1-phys-timer", HF, el1_phys_timer),
    a("set-way-storm", VR, set_way_storm),
    a("sctlr-toggle-storm", VR, sctlr_toggle_storm),
    Attack { name: "reset-race", needs: VR, min_vcpus: 2, resets: true, run: reset_race },
    Attack { name: "reset-sibling-spinning", needs: VR, min_vcpus: 2, resets: true, run: reset_sibling_spinning },
    // A hostile virtio driver (group `virtio`: the VM has a disk whose
    // sector 0 starts with "EL2DISK0").
    a("virtio-bad-width", DK, virtio_bad_width),
    a("virtio-desc-outside-ram", DK, |c| virtio_bad_chain(c, BadChain::OutsideRam)),
    a("virtio-desc-on-gic", DK, |c| virtio_bad_chain(c, BadChain::Gic)),
    a("virtio-desc-huge", DK, |c| virtio_bad_chain(c, BadChain::Huge)),
    a("virtio-desc-loop", DK, |c| virtio_bad_chain(c, BadChain::Loop)),
    a("virtio-ring-outside-ram", DK, |c| virtio_bad_chain(c, BadChain::Ring)),
    a("virtio-sector-past-end", DK, virtio_sector_past_end),
    a("virtio-read-after-reset", DK, virtio_read_after_reset),
];

fn selected(list: &str, at: &Attack) -> bool {
    list.split(',').any(|w| match w {
        "all" => true,
        "base" => at.needs == Needs::Nothing,
        "fixes" => matches!(at.needs, Needs::VmReq | Needs::HostileFixes),
        "virtio" => at.needs == Needs::Disk,
        name => name == at.name,
    })
}

/// Runs the scenarios of `attacks=`, then the siege if asked, then ends.
pub fn run(boot: &Boot, entry: &EntryState) -> ! {
    let list = arg(&boot.bootargs, "attacks").unwrap_or("base");
    let ctx = Ctx { boot, entry };
    if boot.resets == 0 {
        println!(
            "attacker: {} vCPU(s), {:#x} bytes of RAM, GICv{}, attacks={list}",
            boot.vcpus,
            boot.ram_size,
            if rt::gic().v3 { 3 } else { 2 }
        );
    }
    // `wait`: hold the scenarios until a byte is typed, so that the test can
    // start them after the keeper has planted its secrets (VMs have no
    // channel to tell each other; the console input is the test's). After
    // a reset of this VM the keeper is long ready.
    if boot.resets == 0 && boot.bootargs.split_whitespace().any(|w| w == "wait") {
        println!("attacker: waiting for a key to start");
        while rt::getc().is_none() {
            rt::wfe();
        }
    }
    let (mut held, mut broken) = (0u32, 0u32);
    let mut resets_seen = 0;
    if boot.vcpus >= 2 {
        let r = rt::cpu_on(1);
        if r != 0 {
            println!("attacker: BROKEN: CPU_ON of vCPU 1 gave {r}");
        }
    }
    for at in ATTACKS.iter().filter(|at| selected(list, at)) {
        if at.min_vcpus > boot.vcpus {
            println!("attack {}: skipped (needs {} vCPUs)", at.name, at.min_vcpus);
            continue;
        }
        if at.resets {
            resets_seen += 1;
            if resets_seen <= boot.resets {
                if resets_seen == boot.resets {
                    println!("attack {}: held (answer: the VM was reset, reset {} of this run)", at.name, boot.resets);
                    held += 1;
                }
                continue;
            }
        } else if resets_seen < boot.resets {
            continue;
        }
        match (at.run)(&ctx) {
            Verdict::Held(l) => {
                held += 1;
                println!("attack {}: held (answer: {})", at.name, l.as_str());
            }
            Verdict::Broken(l) => {
                broken += 1;
                println!("attack {}: BROKEN ({})", at.name, l.as_str());
            }
        }
    }
    println!("attacker: {held} held, {broken} broken{}", if boot.resets > 0 { " (since the last reset)" } else { "" });
    if boot.bootargs.split_whitespace().any(|w| w == "siege") {
        siege(boot);
    }
    if arg(&boot.bootargs, "end") == Some("cpu-off") {
        if boot.vcpus >= 2 {
            rt::command(1, cmd::CPU_OFF);
        }
        println!("attacker: CPU_OFF of the last vCPU");
        rt::hvc(psci::CPU_OFF, 0, 0, 0);
        println!("attacker: BROKEN: CPU_OFF of the last vCPU returned");
    }
    rt::system_off();
}

/// Storms the hypervisor (hypercalls, yields, SGIs, timer interrupts,
/// console output, set/way ops) until a byte is typed at this VM.
fn siege(boot: &Boot) {
    println!("attacker: siege started");
    let mut rounds = 0u64;
    while rt::getc().is_none() {
        for _ in 0..200 {
            rt::hvc(hvc::vendor::NOP, 0, 0, 0);
        }
        for _ in 0..20 {
            rt::wfe();
        }
        if boot.vcpus >= 2 {
            for _ in 0..20 {
                rt::send_sgi(1, 0b10);
            }
        }
        // One timer interrupt, waited for by yielding as in timer-storm.
        let before = rt::VTIMER_IRQS.load(SeqCst);
        rt::irq_enable();
        rt::vtimer_arm(0);
        let mut tries = 0;
        while rt::VTIMER_IRQS.load(SeqCst) == before && tries < 100_000 {
            rt::wfe();
            tries += 1;
        }
        rt::irq_disable();
        rounds += 1;
    }
    println!("attacker: siege ended after {rounds} rounds");
}

// ---------------------------------------------------------------- helpers

fn is_secret(v: u64) -> bool {
    v.wrapping_add(1) == secret_plus_one()
}

fn answer_name(c: Option<Caught>) -> &'static str {
    c.map_or("completed", |c| c.name())
}

/// An access whose only architectural answers are a data abort or
/// completion with harmless data.
fn s2_probe(ipa: u64, write: bool) -> Verdict {
    let mut value = 0u64;
    let c = probe(|| {
        // SAFETY: a single access to an address outside our RAM; the
        // abort it may take is caught by rt::probe.
        unsafe {
            if write {
                asm!("str {v}, [{a}]", a = in(reg) ipa, v = in(reg) 0xdead_beef_u64, options(nostack));
            } else {
                asm!("ldr {v}, [{a}]", a = in(reg) ipa, v = inout(reg) value, options(nostack));
            }
        }
    });
    match c {
        Some(c) if c.ec() == 0x25 => held!("{} at IPA {ipa:#x}", c.name()),
        Some(c) => broken!("unexpected {} (ESR {:#x}) at IPA {ipa:#x}", c.name(), c.esr),
        None if is_secret(value) => broken!("read another VM's secret at IPA {ipa:#x}"),
        None if write => broken!("a write to IPA {ipa:#x} was silently accepted"),
        None => held!("read {value:#x} at IPA {ipa:#x} (RAZ)"),
    }
}

/// A cache-maintenance op by VA on IPAs with nothing behind them.
fn s2_cache_maint(c: &Ctx) -> Verdict {
    let mut answers = rt::Line::new();
    for ipa in [0x0700_0000u64, c.boot.ram_base + c.boot.ram_size] {
        let r = probe(|| {
            // SAFETY: DC CIVAC only cleans/invalidates; a fault is caught.
            unsafe { asm!("dc civac, {}", "dsb sy", in(reg) ipa, options(nostack)) };
        });
        if let Some(c) = r
            && c.ec() != 0x25
        {
            return broken!("DC CIVAC at {ipa:#x}: {} (ESR {:#x})", c.name(), c.esr);
        }
        let _ = write!(answers, "{ipa:#x}: {}; ", answer_name(r));
    }
    held!("{}", answers.as_str())
}

/// A run of `probe`s, each UNDEF or completed: the answers, or the first
/// unexpected exception.
fn expect_undef_or_ok(what: &str, results: &[Option<Caught>]) -> Verdict {
    let (mut undef, mut ok) = (0, 0);
    for r in results {
        match r {
            None => ok += 1,
            Some(c) if c.ec() == 0 => undef += 1,
            Some(c) => return broken!("{what}: {} (ESR {:#x})", c.name(), c.esr),
        }
    }
    held!("{what}: {undef} UNDEF, {ok} completed")
}

// ------------------------------------------------------------------ snoops

fn entry_gpr_snoop(c: &Ctx) -> Verdict {
    match c.entry.gprs.iter().position(|&v| is_secret(v)) {
        Some(i) => broken!("entry register #{i} held another VM's secret"),
        None => held!("30 entry registers hold nothing of another VM"),
    }
}

fn entry_sysreg_snoop(c: &Ctx) -> Verdict {
    match c.entry.sys.values().iter().position(|&v| is_secret(v)) {
        Some(i) => broken!("EL1 register #{i} held another VM's secret at entry"),
        None => held!("TPIDR*, CONTEXTIDR, PAR, CNTV_CVAL, FAR clean at entry"),
    }
}

/// Yields the CPU (the keeper runs) and reads registers after each return.
fn snoop_loop(mut read: impl FnMut() -> bool) -> Option<u32> {
    (0..200).find(|_| {
        rt::wfe();
        read()
    })
}

fn fp_snoop(_: &Ctx) -> Verdict {
    let junk = 0x0123_4567_89ab_cdef;
    keeper::write_v(junk);
    match snoop_loop(|| keeper::read_v().iter().any(|&v| is_secret(v))) {
        Some(i) => broken!("V registers held another VM's secret after {i} yields"),
        None => {
            if keeper::read_v().iter().any(|&v| v != junk) {
                broken!("our own V registers changed while away")
            } else {
                held!("200 yields: V0-V31 always ours")
            }
        }
    }
}

fn sysreg_snoop(_: &Ctx) -> Verdict {
    match snoop_loop(|| keeper::Sysregs::read().values().iter().any(|&v| is_secret(v))) {
        Some(i) => broken!("an EL1/EL0 register held another VM's secret after {i} yields"),
        None => held!("200 yields: TPIDR*, CONTEXTIDR, PAR, CNTV_CVAL, FAR never another VM's"),
    }
}

fn hvc_gpr_snoop(_: &Ctx) -> Verdict {
    for _ in 0..200 {
        let mut x = [0u64; 18];
        // SAFETY: a PSCI_VERSION call that records what x0-x17 hold after it.
        unsafe {
            asm!("mov x0, {fid}", "hvc #0", "stp x0, x1, [x20]", "stp x2, x3, [x20, #16]", "stp x4, x5, [x20, #32]",
                "stp x6, x7, [x20, #48]", "stp x8, x9, [x20, #64]", "stp x10, x11, [x20, #80]",
                "stp x12, x13, [x20, #96]", "stp x14, x15, [x20, #112]", "stp x16, x17, [x20, #128]",
                fid = in(reg) u64::from(psci::VERSION), in("x20") x.as_mut_ptr(),
                out("x0") _, out("x1") _, out("x2") _, out("x3") _, out("x4") _, out("x5") _, out("x6") _,
                out("x7") _, out("x8") _, out("x9") _, out("x10") _, out("x11") _, out("x12") _,
                out("x13") _, out("x14") _, out("x15") _, out("x16") _, out("x17") _, options(nostack));
        }
        if x.iter().any(|&v| is_secret(v)) {
            return broken!("a register after HVC held another VM's secret");
        }
        rt::wfe();
    }
    held!("x0-x17 after 200 HVC+yield rounds never another VM's")
}

fn ram_scan(c: &Ctx) -> Verdict {
    let (base, end) = (c.boot.ram_base, c.boot.ram_base + c.boot.ram_size);
    let mut words = 0u64;
    for a in (base..end).step_by(8) {
        // SAFETY: inside our own RAM, mapped Normal memory.
        let v = unsafe { core::ptr::read_volatile(a as *const u64) };
        if is_secret(v) {
            return broken!("another VM's secret in our RAM at {a:#x}");
        }
        words += 1;
    }
    held!("{words} words of our RAM hold nothing of another VM")
}

fn dbg_snoop(_: &Ctx) -> Verdict {
    let d = keeper::dbg_secret();
    let mut answer = None;
    let found = snoop_loop(|| {
        let mut hit = false;
        answer = probe(|| hit = keeper::read_dbg().contains(&d));
        hit
    });
    match (found, answer) {
        (Some(i), _) => broken!("DBGBVR0/DBGWVR0 held another VM's value after {i} yields"),
        (None, Some(c)) if c.ec() != 0 => broken!("reading DBGBVR0: {} (ESR {:#x})", c.name(), c.esr),
        (None, c) => held!("DBGBVR0/DBGWVR0 {}, never another VM's", answer_name(c)),
    }
}

fn dbg_overwrite(_: &Ctx) -> Verdict {
    let c = probe(|| keeper::write_dbg(0x1000, 0x2000));
    let mut back = [0; 2];
    let r = probe(|| back = keeper::read_dbg());
    for _ in 0..50 {
        rt::wfe();
    }
    match (c, r) {
        (Some(c), _) | (_, Some(c)) if c.ec() != 0 => broken!("{} (ESR {:#x})", c.name(), c.esr),
        (None, None) if back != [0x1000, 0x2000] => {
            broken!("our debug registers read back {:#x}/{:#x}", back[0], back[1])
        }
        _ => held!("own debug registers {} (the keeper checks its own)", answer_name(c)),
    }
}

// --------------------------------------------------------------- sysregs

fn sys_el2_regs(_: &Ctx) -> Verdict {
    let mut v = 0u64;
    let r = [
        insn!("mrs {}, hcr_el2", out(reg) v, options(nostack)),
        insn!("msr vbar_el2, {}", in(reg) 0u64, options(nostack)),
        insn!("msr vttbr_el2, {}", in(reg) 0u64, options(nostack)),
        insn!("mrs {}, S3_4_C2_C1_0", out(reg) v, options(nostack)), // VTCR_EL2
    ];
    let _ = v;
    if r.iter().any(|c| c.is_none()) {
        return broken!("an EL2 register was accessible from EL1");
    }
    expect_undef_or_ok("HCR/VBAR/VTTBR/VTCR_EL2", &r)
}

fn sys_impdef(_: &Ctx) -> Verdict {
    let mut v = 0u64;
    let r = [
        insn!("mrs {}, S3_1_C15_C2_0", out(reg) v, options(nostack)),
        insn!("msr S3_1_C15_C2_0, {}", in(reg) u64::MAX, options(nostack)),
        insn!("mrs {}, S3_0_C15_C0_0", out(reg) v, options(nostack)),
        insn!("msr S3_0_C11_C0_0, {}", in(reg) u64::MAX, options(nostack)),
    ];
    let _ = v;
    expect_undef_or_ok("IMPLEMENTATION DEFINED registers", &r)
}

fn sys_pmu(_: &Ctx) -> Verdict {
    let mut v = 0u64;
    let r = [
        insn!("mrs {}, pmcr_el0", out(reg) v, options(nostack)),
        insn!("msr pmcr_el0, {}", in(reg) u64::MAX, options(nostack)),
        insn!("msr pmcntenset_el0, {}", in(reg) u64::MAX, options(nostack)),
        insn!("mrs {}, pmccntr_el0", out(reg) v, options(nostack)),
    ];
    let _ = v;
    expect_undef_or_ok("PMCR/PMCNTENSET/PMCCNTR", &r)
}

fn sys_actlr_write(_: &Ctx) -> Verdict {
    let mut v = 0u64;
    let r = [
        insn!("mrs {}, actlr_el1", out(reg) v, options(nostack)),
        insn!("msr actlr_el1, {}", in(reg) u64::MAX, options(nostack)),
    ];
    let _ = v;
    expect_undef_or_ok("ACTLR_EL1", &r)
}

fn icc_garbage(_: &Ctx) -> Verdict {
    let mut v = 0u64;
    let r = [
        insn!("msr S3_0_C4_C6_0, {}", in(reg) 0u64, options(nostack)), // PMR
        insn!("msr S3_0_C12_C12_3, {}", in(reg) u64::MAX, options(nostack)), // BPR1
        insn!("msr S3_0_C12_C12_1, {}", in(reg) 0x3ffu64, options(nostack)), // EOIR1
        insn!("msr S3_0_C12_C11_1, {}", in(reg) 1023u64, options(nostack)), // DIR
        insn!("msr S3_0_C12_C12_4, {}", in(reg) u64::MAX, options(nostack)), // CTLR
        insn!("mrs {}, S3_0_C12_C12_0", out(reg) v, options(nostack)), // IAR1
        insn!("msr S3_0_C12_C12_6, {}", in(reg) u64::MAX, options(nostack)), // IGRPEN0
        insn!("msr S3_0_C12_C12_5, {}", in(reg) 0u64, options(nostack)), // SRE
    ];
    // The IAR1 read acknowledged whatever was pending (a timer left armed
    // by an earlier scenario): end it, or that INTID stays active for good.
    if (v & 0xffffff) < 1020 {
        let _ = insn!("msr S3_0_C12_C12_1, {}", in(reg) v, options(nostack));
    }
    // Our own interface, back to working order (a probe of it below).
    let again = probe(rt::gic_init_cpu);
    if let Some(c) = again {
        return broken!("re-initialising the GIC after the garbage: {}", c.name());
    }
    expect_undef_or_ok("ICC_PMR/BPR1/EOIR1/DIR/CTLR/IAR1/IGRPEN0/SRE", &r)
}

fn icc_sgi_garbage(_: &Ctx) -> Verdict {
    let r = [
        insn!("msr S3_0_C12_C11_5, {}", in(reg) u64::MAX, options(nostack)), // SGI1R
        insn!("msr S3_0_C12_C11_5, {}", in(reg) 0x00ff_00ff_0f00_ffffu64, options(nostack)),
        insn!("msr S3_0_C12_C11_7, {}", in(reg) u64::MAX, options(nostack)), // SGI0R
        insn!("msr S3_0_C12_C11_6, {}", in(reg) u64::MAX, options(nostack)), // ASGI1R
    ];
    expect_undef_or_ok("ICC_SGI1R/SGI0R/ASGI1R with garbage targets", &r)
}

// ------------------------------------------------------------------ PSCI

fn expect_code(what: &str, got: u64, allowed: &[i64]) -> Verdict {
    let got = got as i64;
    if allowed.contains(&got) { held!("{what}: {got}") } else { broken!("{what}: {got}, expected one of {allowed:?}") }
}

fn psci_cpu_on_bad_target(_: &Ctx) -> Verdict {
    for target in [0xff, 0x100, 0xffff_ffff, u64::MAX, 0x8000_0000] {
        let r = rt::hvc(psci::CPU_ON_64, target, 0x4000_0000, 0)[0] as i64;
        if r != hvc::PSCI_INVALID_PARAMETERS {
            return broken!("CPU_ON target {target:#x}: {r}");
        }
    }
    held!("INVALID_PARAMETERS for 5 bad MPIDRs")
}

/// Stops vCPU 1 (PSCI CPU_OFF from itself) and waits until AFFINITY_INFO says OFF.
fn stop_vcpu1() -> bool {
    rt::command(1, cmd::CPU_OFF);
    for _ in 0..1_000_000 {
        if rt::hvc(psci::AFFINITY_INFO_64, 1, 0, 0)[0] == 1 {
            return true;
        }
        rt::wfe();
    }
    false
}

fn psci_cpu_on_bad_entry(c: &Ctx) -> Verdict {
    // The target must be off for the entry point to matter.
    if c.boot.vcpus < 2 || !stop_vcpu1() {
        return broken!("could not stop vCPU 1 for the test");
    }
    let mut codes = rt::Line::new();
    let mut bad = None;
    for entry in [0u64, 0x0900_0000, c.boot.ram_base + c.boot.ram_size, u64::MAX] {
        let r = rt::hvc(psci::CPU_ON_64, 1, entry, 0)[0] as i64;
        if r != hvc::PSCI_INVALID_ADDRESS && r != hvc::PSCI_INVALID_PARAMETERS {
            bad = Some((entry, r));
            break;
        }
        let _ = write!(codes, "{r} ");
    }
    let again = rt::cpu_on(1);
    match bad {
        Some((entry, r)) => broken!("CPU_ON with entry {entry:#x}: {r}"),
        None if again != 0 => broken!("CPU_ON with a good entry afterwards: {again}"),
        None => held!("{}for entries outside RAM; a good one works after", codes.as_str()),
    }
}

fn psci_cpu_on_self(_: &Ctx) -> Verdict {
    let r = rt::hvc(psci::CPU_ON_64, 0, 0x4000_0000, 0)[0];
    expect_code("CPU_ON of the running vCPU", r, &[hvc::PSCI_ALREADY_ON])
}

fn psci_affinity_garbage(_: &Ctx) -> Verdict {
    for (aff, level) in [(0xffu64, 0u64), (u64::MAX, 0), (0, 7), (0, u64::MAX), (0x8000_0000, 1)] {
        let r = rt::hvc(psci::AFFINITY_INFO_64, aff, level, 0)[0] as i64;
        if !(r == hvc::PSCI_INVALID_PARAMETERS || r == hvc::NOT_SUPPORTED || (0..=2).contains(&r)) {
            return broken!("AFFINITY_INFO({aff:#x}, {level}): {r}");
        }
        if (aff, level) == (0xff, 0) && r != hvc::PSCI_INVALID_PARAMETERS {
            return broken!("AFFINITY_INFO of a vCPU that does not exist: {r}");
        }
    }
    held!("INVALID_PARAMETERS or a state for 5 garbage (affinity, level) pairs")
}

fn psci_features_garbage(_: &Ctx) -> Verdict {
    for f in [0xdead_beefu64, 0, u64::MAX, 0x8400_00ff] {
        let r = rt::hvc(psci::FEATURES, f, 0, 0)[0] as i64;
        if r != hvc::NOT_SUPPORTED {
            return broken!("PSCI_FEATURES({f:#x}): {r}");
        }
    }
    held!("NOT_SUPPORTED for 4 unknown functions")
}

fn psci_suspend_garbage(_: &Ctx) -> Verdict {
    let mut codes = rt::Line::new();
    rt::vtimer_arm(rt::freq() / 100);
    for (state, entry) in [(u64::MAX, u64::MAX), (0x1_0000, 0), (0, 0x4000_0000)] {
        let r = rt::hvc(psci::CPU_SUSPEND_64, state, entry, 0)[0] as i64;
        let _ = write!(codes, "{r} ");
    }
    held!("{}(returned each time)", codes.as_str())
}

fn smccc_unknown_ids(_: &Ctx) -> Verdict {
    for fid in
        [0x8200_0000u32, 0x8300_0000, 0xc700_0000, 0xff00_ffff, 0x8000_ffff, 0xc600_ffff, 0x0000_0001, 0xbf00_0000]
    {
        let r = rt::hvc(fid, u64::MAX, u64::MAX, u64::MAX)[0] as i64;
        if r != hvc::NOT_SUPPORTED {
            return broken!("function {fid:#x}: {r}");
        }
    }
    held!("NOT_SUPPORTED for 8 unknown function IDs")
}

fn smc_conduit(_: &Ctx) -> Verdict {
    let mut r0 = u64::from(psci::VERSION);
    let mut r1 = u64::from(0xc700_1234u32);
    let c = probe(|| {
        // SAFETY: SMC is trapped (HCR_EL2.TSC): answered like HVC, or UNDEF.
        unsafe {
            asm!("smc #0", inout("x0") r0, out("x1") _, out("x2") _, out("x3") _, options(nostack));
            asm!("smc #0x77", inout("x0") r1, out("x1") _, out("x2") _, out("x3") _, options(nostack));
        }
    });
    match c {
        Some(c) if c.ec() == 0 => held!("UNDEF"),
        Some(c) => broken!("{} (ESR {:#x})", c.name(), c.esr),
        None if r1 as i64 == hvc::NOT_SUPPORTED => held!("PSCI_VERSION {r0:#x}, unknown ID NOT_SUPPORTED"),
        None => broken!("unknown SMC ID gave {r1:#x}"),
    }
}

fn vendor_console_garbage(_: &Ctx) -> Verdict {
    let mut codes = rt::Line::new();
    for len in [1000u64, u64::MAX, 41] {
        let r: u64;
        // SAFETY: CONSOLE_WRITE with a bad length and 40 printable bytes
        // in x2-x6 (the last one a newline).
        unsafe {
            asm!("hvc #0", inout("x0") u64::from(hvc::vendor::CONSOLE_WRITE) => r, inout("x1") len => _,
                inout("x2") 0x2065_6761_6272_6167u64 => _, inout("x3") 0x2020_2020_2020_2020u64 => _,
                inout("x4") 0x2020_2020_2020_2020u64 => _, inout("x5") 0x2020_2020_2020_2020u64 => _,
                inout("x6") 0x0a20_2020_2020_2020u64 => _, options(nostack));
        }
        let r = r as i64;
        if r > 40 {
            return broken!("CONSOLE_WRITE of {len:#x} bytes claimed {r} written");
        }
        let _ = write!(codes, "{r} ");
    }
    held!("{}bytes written (at most 40)", codes.as_str())
}

// ----------------------------------------------------------------- storms

fn hvc_storm(_: &Ctx) -> Verdict {
    for i in 0..100_000 {
        if rt::hvc(hvc::vendor::NOP, 0, 0, 0)[0] != 0 {
            return broken!("NOP {i} returned non-zero");
        }
    }
    held!("100000 hypercalls answered")
}

fn wfe_storm(_: &Ctx) -> Verdict {
    for _ in 0..20_000 {
        rt::wfe();
    }
    held!("20000 trapped WFEs")
}

fn wfi_storm(_: &Ctx) -> Verdict {
    // A pending (masked) timer interrupt: each WFI returns at once.
    rt::vtimer_arm(0);
    for _ in 0..20_000 {
        rt::wfi();
    }
    rt::irq_enable();
    rt::irq_disable();
    held!("20000 WFIs with an interrupt pending")
}

fn timer_storm(_: &Ctx) -> Verdict {
    let before = rt::VTIMER_IRQS.load(SeqCst);
    rt::irq_enable();
    for i in 0..2000 {
        rt::vtimer_arm(0);
        // Yield until it arrives (bounded: a lost interrupt is BROKEN, not a hang).
        let mut tries = 0;
        while rt::VTIMER_IRQS.load(SeqCst) - before <= i && tries < 100_000 {
            rt::wfe();
            tries += 1;
        }
    }
    rt::irq_disable();
    let got = rt::VTIMER_IRQS.load(SeqCst) - before;
    if got < 2000 {
        return broken!("2000 expired timers, {got} interrupts");
    }
    held!("{got} virtual timer interrupts")
}

fn ipi_storm(_: &Ctx) -> Verdict {
    rt::GO.store(1, SeqCst);
    rt::command(1, cmd::TAKE_IRQS);
    let before = rt::SGI_IRQS.load(SeqCst);
    for i in 0..50_000u32 {
        rt::send_sgi(i % 16, 0b11);
    }
    rt::irq_enable();
    for _ in 0..10 {
        rt::wfe();
    }
    rt::irq_disable();
    rt::GO.store(0, SeqCst);
    rt::send_sgi(0, 0b10);
    let got = rt::SGI_IRQS.load(SeqCst) - before;
    if got == 0 {
        return broken!("50000 SGIs sent, none taken");
    }
    held!("50000 SGIs sent to both vCPUs, {got} taken")
}

fn cpu_on_off_storm(_: &Ctx) -> Verdict {
    for i in 0..100 {
        rt::command(1, cmd::CPU_OFF);
        let mut spins = 0u64;
        while rt::hvc(psci::AFFINITY_INFO_64, 1, 0, 0)[0] != 1 {
            rt::wfe();
            spins += 1;
            if spins > 1_000_000 {
                return broken!("vCPU 1 never reported OFF (round {i})");
            }
        }
        let r = rt::cpu_on(1);
        if r != 0 {
            return broken!("CPU_ON round {i}: {r}");
        }
    }
    held!("100 CPU_OFF/CPU_ON rounds of vCPU 1")
}

// ------------------------------------------------------------------- MMIO

const UART_FR: u64 = layout::UART_BASE + 0x18;

fn mmio_isv0_pair(_: &Ctx) -> Verdict {
    let c = probe(|| {
        // SAFETY: LDP from the UART (ISV = 0); emulated or an abort, caught.
        unsafe {
            asm!("ldp {a:w}, {b:w}, [{p}]", p = in(reg) UART_FR, a = out(reg) _, b = out(reg) _, options(nostack))
        };
    });
    match c {
        None => held!("emulated"),
        Some(c) if c.ec() == 0x25 => held!("{}", c.name()),
        Some(c) => broken!("{} (ESR {:#x})", c.name(), c.esr),
    }
}

fn mmio_writeback(_: &Ctx) -> Verdict {
    let mut p = UART_FR;
    let c = probe(|| {
        // SAFETY: post-indexed load from the UART; emulated with the base
        // updated, or an abort with it unchanged.
        unsafe { asm!("ldr {v:w}, [{p}], #4", p = inout(reg) p, v = out(reg) _, options(nostack)) };
    });
    match c {
        None if p == UART_FR + 4 => held!("emulated, base register written back"),
        None => broken!("emulated, base register {p:#x}"),
        Some(c) if c.ec() == 0x25 && p == UART_FR => held!("{}, base register unchanged", c.name()),
        Some(c) => broken!("{} (ESR {:#x}), base {p:#x}", c.name(), c.esr),
    }
}

fn mmio_unaligned(_: &Ctx) -> Verdict {
    let c = probe(|| {
        // SAFETY: an unaligned load from Device memory: alignment fault (at
        // EL1, before any trap) or emulation; caught either way.
        unsafe { asm!("ldr {v:w}, [{p}]", p = in(reg) UART_FR + 1, v = out(reg) _, options(nostack)) };
    });
    match c {
        Some(c) if c.ec() == 0x25 => held!("{}", c.name()),
        None => held!("completed"),
        Some(c) => broken!("{} (ESR {:#x})", c.name(), c.esr),
    }
}

fn mmio_exclusive(_: &Ctx) -> Verdict {
    let c = probe(|| {
        // SAFETY: LDXR from the UART (ISV = 0); a fault is caught.
        unsafe { asm!("ldxr {v:w}, [{p}]", "clrex", p = in(reg) UART_FR, v = out(reg) _, options(nostack)) };
    });
    match c {
        None => held!("completed"),
        Some(c) if c.ec() == 0x25 => held!("{}", c.name()),
        Some(c) => broken!("{} (ESR {:#x})", c.name(), c.esr),
    }
}

fn mmio_simd(_: &Ctx) -> Verdict {
    let c = probe(|| {
        // SAFETY: a SIMD load from the UART (ISV = 0); a fault is caught.
        unsafe { asm!(".arch_extension fp", "ldr s0, [{p}]", p = in(reg) UART_FR, out("v0") _, options(nostack)) };
    });
    match c {
        None => held!("completed"),
        Some(c) if c.ec() == 0x25 => held!("{}", c.name()),
        Some(c) => broken!("{} (ESR {:#x})", c.name(), c.esr),
    }
}

fn mmio_gicd_bad_width(_: &Ctx) -> Verdict {
    let gicd = rt::gic().gicd;
    let r = [
        insn!("ldrb {v:w}, [{p}]", p = in(reg) gicd, v = out(reg) _, options(nostack)),
        insn!("strh {v:w}, [{p}]", p = in(reg) gicd + 4, v = in(reg) 0xffffu32, options(nostack)),
        insn!("ldr {v}, [{p}]", p = in(reg) gicd + 4, v = out(reg) _, options(nostack)),
    ];
    for c in r.iter().flatten() {
        if c.ec() != 0x25 {
            return broken!("{} (ESR {:#x})", c.name(), c.esr);
        }
    }
    held!("{} of 3 odd-width accesses refused with a data abort", r.iter().flatten().count())
}

// -------------------------------------------------------------- GIC frames

/// Writes `value` to every word of [base, base + size) except the ranges
/// `skip`; each write completes or takes a data abort.
fn garbage_frame(base: u64, size: u64, value: u32, skip: &[(u64, u64)]) -> Result<(u32, u32), Caught> {
    let (mut ok, mut abort) = (0, 0);
    for off in (0..size).step_by(4) {
        if skip.iter().any(|&(s, e)| off >= s && off < e) {
            continue;
        }
        match probe(|| rt::mmio_write(base + off, value)) {
            None => ok += 1,
            Some(c) if c.ec() == 0x25 => abort += 1,
            Some(c) => return Err(c),
        }
    }
    Ok((ok, abort))
}

fn gicd_garbage(_: &Ctx) -> Verdict {
    let g = rt::gic();
    // Skip only what would switch our own interrupts off for the rest of the run.
    let r = garbage_frame(g.gicd, 0x1_0000, 0xffff_ffff, &[(0, 4), (0x180, 0x200), (0xf00, 0xf04)]);
    rt::gic_init_cpu();
    match r {
        Ok((ok, abort)) => held!("GICD: {ok} writes taken, {abort} data aborts"),
        Err(c) => broken!("GICD garbage: {} (ESR {:#x})", c.name(), c.esr),
    }
}

fn gicr_garbage(c: &Ctx) -> Verdict {
    let g = rt::gic();
    if !g.v3 {
        return s2_probe(layout::GICR_BASE, true);
    }
    // The redistributors of vCPUs we do not have, and the gap after them.
    let first = g.gicr + (c.boot.vcpus as u64) * layout::GICR_STRIDE;
    match garbage_frame(first, 2 * layout::GICR_STRIDE, 0xffff_ffff, &[]) {
        Ok((ok, abort)) => held!("GICR of absent vCPUs: {ok} writes taken, {abort} data aborts"),
        Err(c) => broken!("GICR garbage: {} (ESR {:#x})", c.name(), c.esr),
    }
}

fn gicv_garbage(_: &Ctx) -> Verdict {
    let g = rt::gic();
    if g.v3 {
        return s2_probe(layout::GICC_BASE, true);
    }
    // The GICv2 CPU interface is the hardware's GICV frame: garbage into
    // everything except CTLR and PMR (our own interrupts), then fix.
    let r = garbage_frame(g.gicc, layout::GICC_SIZE, 0xffff_ffff, &[(0, 8), (0x1000, 0x1004)]);
    rt::gic_init_cpu();
    match r {
        Ok((ok, abort)) => held!("GICV: {ok} writes taken, {abort} data aborts"),
        Err(c) => broken!("GICV garbage: {} (ESR {:#x})", c.name(), c.esr),
    }
}

// ------------------------------------------------------------------ PL011

fn pl011_flood(_: &Ctx) -> Verdict {
    let mut line = [b'#'; 120];
    line[119] = b'\n';
    for i in 0..300u32 {
        line[0] = b'0' + (i % 10) as u8;
        rt::print_bytes(&line);
    }
    // A long line without a newline, then its end.
    for _ in 0..40 {
        rt::print_bytes(&line[..118]);
    }
    rt::print_bytes(b"\n");
    held!("36000 bytes written")
}

fn pl011_garbage_regs(_: &Ctx) -> Verdict {
    let base = layout::UART_BASE;
    let mut aborts = 0;
    for off in [0x24u64, 0x28, 0x2c, 0x34, 0x38, 0x44, 0x48, 0x80, 0xffc, 0xfe0] {
        match probe(|| rt::mmio_write(base + off, 0xffff_ffff)) {
            None => {}
            Some(c) if c.ec() == 0x25 => aborts += 1,
            Some(c) => return broken!("UART+{off:#x}: {} (ESR {:#x})", c.name(), c.esr),
        }
    }
    // Back to a working UART (CR: UARTEN, TXE, RXE; LCR_H: 8 bits, FIFOs).
    let _ = probe(|| rt::mmio_write(base + 0x2c, 0x70));
    let _ = probe(|| rt::mmio_write(base + 0x30, 0x301));
    let _ = probe(|| rt::mmio_write(base + 0x38, 0));
    held!("10 garbage register writes, {aborts} data aborts; the UART still prints")
}

// ------------------------------------------------------------ AArch32 EL0

/// Code for EL0 (AArch32), written at run time, executed through the EL0
/// alias of RAM (VA = PA + 0x4000_0000).
#[repr(C, align(4096))]
struct CodePage([u32; 1024]);
static mut EL0_CODE: CodePage = CodePage([0; 1024]);

/// PSTATE for AArch32 EL0 (ARM ARM D1.10.3): M = USR (0x10), A/I/F masked, T for Thumb.
const SPSR_USR32: u64 = 0x10 | 0x1c0;
const SPSR_THUMB: u64 = 1 << 5;

fn el0_aarch32_supported() -> bool {
    let pfr0: u64;
    // SAFETY: ID register read (emulated by the hypervisor, TID3).
    unsafe { asm!("mrs {}, id_aa64pfr0_el1", out(reg) pfr0, options(nomem, nostack)) };
    pfr0 & 0xf == 2
}

/// Writes `words` as code and runs it at AArch32 EL0 with r0 = `r0`.
fn run_aarch32(words: &[u32], thumb: bool, r0: u64) -> rt::El0Exit {
    let code = &raw mut EL0_CODE;
    // SAFETY: only this function writes the page, from one vCPU at a time
    // (the scenarios run on vCPU 0); the cache maintenance makes the new
    // instructions visible to the fetch (ARM ARM B2.4.4).
    let pa = unsafe {
        let p = (*code).0.as_mut_ptr();
        for (i, w) in words.iter().enumerate() {
            core::ptr::write_volatile(p.add(i), *w);
        }
        let pa = p as u64;
        asm!("dc cvau, {a}", "dsb ish", "ic iallu", "dsb ish", "isb", a = in(reg) pa, options(nostack));
        pa
    };
    let mut regs = [0u64; 16];
    regs[0] = r0;
    let spsr = SPSR_USR32 | if thumb { SPSR_THUMB } else { 0 };
    rt::run_el0(pa + 0x4000_0000, spsr, regs)
}

/// Packs 16-bit T32 halfwords into words (little-endian, first halfword low).
fn thumb(h: &[u16]) -> ([u32; 16], usize) {
    let mut w = [0u32; 16];
    for (i, x) in h.iter().enumerate() {
        w[i / 2] |= u32::from(*x) << (16 * (i % 2));
    }
    (w, h.len().div_ceil(2))
}

/// Judges an AArch32 EL0 run that should end in SVC with r2 = `want`.
fn judge_el0(what: &str, e: &rt::El0Exit, want: u64) -> Verdict {
    let ec = e.esr >> 26;
    if ec != 0x11 {
        return broken!("{what}: EL0 ended with ESR {:#x} at {:#x}, not its SVC", e.esr, e.elr);
    }
    if e.regs[2] != want {
        return broken!(
            "{what}: r2 = {} after the trap, expected {want} (the PC advance skipped or repeated code)",
            e.regs[2]
        );
    }
    held!("{what}: trapped and resumed at the next instruction, r2 = {want}")
}

fn a32_el0_traps(_: &Ctx) -> Verdict {
    if !el0_aarch32_supported() {
        return held!("no AArch32 EL0 on this CPU (ID_AA64PFR0_EL1.EL0 = 1)");
    }
    // mov r2,#0; wfe; ldr r1,[r0]; add r2,r2,#1; add r2,r2,#1; svc #0
    let code = [0xe3a0_2000, 0xe320_f002, 0xe590_1000, 0xe282_2001, 0xe282_2001, 0xef00_0000];
    judge_el0("A32 WFE + MMIO load", &run_aarch32(&code, false, UART_FR), 2)
}

fn t32_run(what: &str, h: &[u16], want: u64) -> Verdict {
    if !el0_aarch32_supported() {
        return held!("no AArch32 EL0 on this CPU (ID_AA64PFR0_EL1.EL0 = 1)");
    }
    let (w, n) = thumb(h);
    judge_el0(what, &run_aarch32(&w[..n], true, UART_FR), want)
}

fn t32_el0_wfe(_: &Ctx) -> Verdict {
    // movs r2,#0; wfe; adds r2,#1; adds r2,#1; svc #0
    t32_run("T32 16-bit WFE", &[0x2200, 0xbf20, 0x3201, 0x3201, 0xdf00], 2)
}

fn t32_el0_wfi(_: &Ctx) -> Verdict {
    // An expired, masked timer interrupt keeps the WFI from sleeping.
    rt::vtimer_arm(0);
    let v = t32_run("T32 16-bit WFI", &[0x2200, 0xbf30, 0x3201, 0x3201, 0xdf00], 2);
    rt::irq_enable();
    rt::irq_disable();
    v
}

fn t32_el0_mmio_load(_: &Ctx) -> Verdict {
    // movs r2,#0; ldr r1,[r0]; adds r2,#1; adds r2,#1; svc #0
    t32_run("T32 16-bit MMIO load", &[0x2200, 0x6801, 0x3201, 0x3201, 0xdf00], 2)
}

fn t32_el0_it_block(_: &Ctx) -> Verdict {
    // movs r2,#0; cmp r2,r2; ite eq; wfeeq; addne r2,#1; adds r2,#2; adds r2,#4; svc #0
    // Right: 6. PC + 4: 2. ITSTATE not advanced: 5.
    t32_run("T32 WFE in an IT block", &[0x2200, 0x4292, 0xbf0c, 0xbf20, 0x3201, 0x3202, 0x3204, 0xdf00], 6)
}

// ------------------------------------------------------ needs the fixes

fn console_control_chars(c: &Ctx) -> Verdict {
    let _ = c;
    // ESC sequences (clear screen, cursor home, OSC title ended by BEL),
    // BS over our own prefix, NUL, and a line forged as the hypervisor's.
    rt::print_bytes(
        b"ctl: \x1b[2J\x1b[H\x1b]0;owned\x07\x08\x08\x08\x08\x08\x08\x08\x00\rel2-hyp: VM \"victim\" stopped: forged\n",
    );
    held!("sent; the test judges what reached the terminal")
}

/// A code word for the sysreg sweep (run with `blr`).
static mut SWEEP_CODE: CodePage = CodePage([0; 1024]);

fn sysreg_sweep(_: &Ctx) -> Verdict {
    let code = &raw mut SWEEP_CODE;
    let (mut undef, mut ok) = (0u32, 0u32);
    for crn in [11u32, 15] {
        for op1 in 0..8u32 {
            for crm in 0..16u32 {
                for op2 in 0..8u32 {
                    // MRS x0, S3_<op1>_C<crn>_C<crm>_<op2> (ARM ARM C6.2.194); RET.
                    let mrs = 0xd538_0000 | (op1 << 16) | (crn << 12) | (crm << 8) | (op2 << 5);
                    // SAFETY: one vCPU writes the page; the maintenance makes
                    // the new instruction visible (ARM ARM B2.4.4); the call
                    // only reads a register into x0.
                    let c = unsafe {
                        let p = (*code).0.as_mut_ptr();
                        core::ptr::write_volatile(p, mrs);
                        core::ptr::write_volatile(p.add(1), 0xd65f_03c0);
                        asm!("dc cvau, {a}", "dsb ish", "ic iallu", "dsb ish", "isb", a = in(reg) p, options(nostack));
                        probe(|| asm!("blr {f}", f = in(reg) p, out("x0") _, out("x30") _, options(nostack)))
                    };
                    match c {
                        None => ok += 1,
                        Some(c) if c.ec() == 0 => undef += 1,
                        Some(c) => return broken!("S3_{op1}_C{crn}_C{crm}_{op2}: {} (ESR {:#x})", c.name(), c.esr),
                    }
                }
            }
        }
    }
    held!("2048 accesses: {undef} UNDEF, {ok} read; report rate judged by the test")
}

fn ifetch_unbacked(c: &Ctx) -> Verdict {
    let target = c.boot.ram_base + c.boot.ram_size + 0x10_0000;
    // SAFETY: a call into an IPA with nothing behind it: a prefetch abort
    // returns to x30 (rt's handler); if the VM is stopped instead, the test sees it.
    let r = insn!("blr {f}", f = in(reg) target, out("x30") _, options(nostack));
    match r {
        Some(c) if c.ec() == 0x21 => held!("prefetch abort at {:#x} (IFSC {:#x})", c.far, c.esr & 0x3f),
        Some(c) => broken!("{} (ESR {:#x})", c.name(), c.esr),
        None => broken!("a fetch from IPA {target:#x} returned"),
    }
}

fn el1_phys_timer(_: &Ctx) -> Verdict {
    let mut ctl = 0u64;
    let c = probe(|| {
        // SAFETY: the EL1 physical timer's own registers; UNDEF is caught.
        unsafe { asm!("mrs {}, cntp_ctl_el0", out(reg) ctl, options(nostack)) };
    });
    if let Some(c) = c {
        return broken!("CNTP_CTL_EL0 read: {}", c.name());
    }
    let before = rt::PTIMER_IRQS.load(SeqCst);
    let start = rt::now();
    let ticks = rt::freq() / 1000;
    let c = probe(|| {
        // SAFETY: arms our EL1 physical timer 1 ms ahead.
        unsafe {
            asm!("msr cntp_tval_el0, {t}", "msr cntp_ctl_el0, {one}", "isb", t = in(reg) ticks, one = in(reg) 1u64, options(nostack))
        };
    });
    if let Some(c) = c {
        return broken!("CNTP_TVAL/CTL write: {}", c.name());
    }
    rt::irq_enable();
    // Sleep until the interrupt comes (the test's timeout bounds a hang).
    while rt::PTIMER_IRQS.load(SeqCst) == before {
        rt::wfi();
    }
    rt::irq_disable();
    let waited = rt::now() - start;
    if waited < ticks {
        return broken!("the physical timer fired after {waited} ticks, before its {ticks}");
    }
    held!("CNTP_CTL read {ctl:#x}; the timer fired once, after {waited} ticks (asked {ticks})")
}

/// Median of per-operation latencies in microseconds.
fn median_us(lat: &mut [u64]) -> u64 {
    lat.sort_unstable();
    lat[lat.len() / 2] * 1_000_000 / rt::freq()
}

/// A VM that loops on a set/way op must not hold its CPU for the time a
/// whole-RAM flush takes, each time (issue 13 item 3): the median trap takes
/// well under a time slice (10 ms).
fn set_way_storm(_: &Ctx) -> Verdict {
    let mut lat = [0u64; 400];
    for l in lat.iter_mut() {
        let t = rt::now();
        // SAFETY: DC CISW on set/way 0 (trapped, HCR_EL2.TSW); cleaning is harmless.
        unsafe { asm!("dc cisw, {}", "dsb sy", in(reg) 0u64, options(nostack)) };
        *l = rt::now() - t;
    }
    let m = median_us(&mut lat);
    if m > 10_000 { broken!("median DC CISW trap took {m} us") } else { held!("400 DC CISW, median {m} us") }
}

fn sctlr_toggle_storm(_: &Ctx) -> Verdict {
    let mut lat = [0u64; 200];
    let sctlr: u64;
    // SAFETY: reading SCTLR_EL1.
    unsafe { asm!("mrs {}, sctlr_el1", out(reg) sctlr, options(nomem, nostack)) };
    for (i, l) in lat.iter_mut().enumerate() {
        let v = if i % 2 == 0 { sctlr & !(1 << 2) } else { sctlr };
        let t = rt::now();
        // SAFETY: toggles the data cache enable (C) of our own EL1&0
        // regime; our RAM stays coherent (the hypervisor flushes it).
        unsafe { asm!("msr sctlr_el1, {}", "isb", in(reg) v, options(nostack)) };
        *l = rt::now() - t;
    }
    // SAFETY: as above: back to the boot value.
    unsafe { asm!("msr sctlr_el1, {}", "isb", in(reg) sctlr, options(nostack)) };
    let m = median_us(&mut lat);
    if m > 10_000 {
        broken!("median SCTLR_EL1.C toggle took {m} us")
    } else {
        held!("200 SCTLR_EL1.C toggles, median {m} us")
    }
}

/// Both vCPUs ask for SYSTEM_RESET at the same moment (issue 13 item 1).
fn reset_race(_: &Ctx) -> Verdict {
    rt::GO.store(0, SeqCst);
    rt::command(1, cmd::RESET);
    rt::GO.store(1, SeqCst);
    rt::hvc(psci::SYSTEM_RESET, 0, 0, 0);
    broken!("SYSTEM_RESET returned")
}

/// SYSTEM_RESET while vCPU 1 spins in the guest without ever exiting.
fn reset_sibling_spinning(_: &Ctx) -> Verdict {
    rt::GO.store(1, SeqCst);
    rt::command(1, cmd::SPIN);
    rt::hvc(psci::SYSTEM_RESET, 0, 0, 0);
    broken!("SYSTEM_RESET returned")
}

// ---------------------------------------------------------------------------
// A hostile virtio driver (virtio 1.2 §4.2.2 virtio-mmio, §2.7 split queues,
// §5.2 virtio-blk): the device must answer a broken rule with
// DEVICE_NEEDS_RESET (§2.1.2), touch nothing outside this VM's RAM, and
// work again after a reset.

/// Transport 0's registers (QEMU virt's first virtio-mmio window).
const VIO: u64 = layout::VIRTIO_BASE;
const VIO_MAGIC: u64 = 0x000;
const VIO_FEATURES_SEL: u64 = 0x024;
const VIO_FEATURES: u64 = 0x020;
const VIO_QUEUE_SEL: u64 = 0x030;
const VIO_QUEUE_NUM: u64 = 0x038;
const VIO_QUEUE_READY: u64 = 0x044;
const VIO_QUEUE_NOTIFY: u64 = 0x050;
const VIO_STATUS: u64 = 0x070;
const VIO_DESC: u64 = 0x080;
const VIO_DRIVER: u64 = 0x090;
const VIO_DEVICE: u64 = 0x0a0;
const NEEDS_RESET: u32 = 64;
/// Queue size used here.
const QN: u64 = 8;
/// Offsets in [`VQ`]: descriptor table, available ring, used ring, a
/// request header, one sector of data, the status byte.
const DESC: u64 = 0;
const AVAIL: u64 = 0x100;
const USED: u64 = 0x200;
const HDR: u64 = 0x400;
const DATA: u64 = 0x600;
const STAT: u64 = 0x800;
const F_NEXT: u16 = 1;
const F_WRITE: u16 = 2;

/// The rings and buffers, in this VM's RAM (identity mapped: the
/// address is the IPA the device sees).
#[repr(C, align(4096))]
struct Vq([u8; 0x1000]);
static mut VQ: Vq = Vq([0; 0x1000]);

fn vq(off: u64) -> u64 {
    (&raw mut VQ) as u64 + off
}

fn vq_write<T>(off: u64, v: T) {
    // SAFETY: inside VQ, this VM's own RAM; only this vCPU drives the disk.
    unsafe { core::ptr::write_volatile(vq(off) as *mut T, v) }
}

fn vq_read<T>(off: u64) -> T {
    // SAFETY: as in vq_write.
    unsafe { core::ptr::read_volatile(vq(off) as *const T) }
}

fn vio_w(reg: u64, v: u32) {
    rt::mmio_write(VIO + reg, v);
}

fn vio_r(reg: u64) -> u32 {
    rt::mmio_read(VIO + reg)
}

/// Resets the device and sets queue 0 up (§3.1.1) with rings at
/// `desc`, `avail`, `used` (IPAs): Ok, or why not.
fn vio_setup(desc: u64, avail: u64, used: u64) -> Result<(), &'static str> {
    if probe(|| {
        let _ = vio_r(VIO_MAGIC);
    })
    .is_some()
        || vio_r(VIO_MAGIC) != 0x7472_6976
    {
        return Err("no virtio-mmio transport at 0x0a000000");
    }
    for off in (0..0x1000).step_by(8) {
        vq_write::<u64>(off, 0);
    }
    vio_w(VIO_STATUS, 0);
    vio_w(VIO_STATUS, 1);
    vio_w(VIO_STATUS, 3);
    vio_w(VIO_FEATURES_SEL, 1);
    vio_w(VIO_FEATURES, 1); // VIRTIO_F_VERSION_1, bit 32
    vio_w(VIO_FEATURES_SEL, 0);
    vio_w(VIO_FEATURES, 0);
    vio_w(VIO_STATUS, 3 | 8);
    if vio_r(VIO_STATUS) & 8 == 0 {
        return Err("FEATURES_OK refused");
    }
    vio_w(VIO_QUEUE_SEL, 0);
    vio_w(VIO_QUEUE_NUM, QN as u32);
    for (reg, addr) in [(VIO_DESC, desc), (VIO_DRIVER, avail), (VIO_DEVICE, used)] {
        vio_w(reg, addr as u32);
        vio_w(reg + 4, (addr >> 32) as u32);
    }
    vio_w(VIO_QUEUE_READY, 1);
    vio_w(VIO_STATUS, 3 | 8 | 4);
    Ok(())
}

/// Descriptor `i`: {addr, len, flags, next} (§2.7.5).
fn vio_desc(i: u64, addr: u64, len: u32, flags: u16, next: u16) {
    vq_write(DESC + 16 * i, addr);
    vq_write(DESC + 16 * i + 8, len);
    vq_write(DESC + 16 * i + 12, flags);
    vq_write(DESC + 16 * i + 14, next);
}

/// A read request of `sector` into DATA: header, data, status (§5.2.6).
fn vio_read_request(sector: u64) {
    vq_write::<u32>(HDR, 0); // VIRTIO_BLK_T_IN
    vq_write::<u32>(HDR + 4, 0);
    vq_write(HDR + 8, sector);
    vq_write::<u8>(STAT, 0xff);
    vio_desc(0, vq(HDR), 16, F_NEXT, 1);
    vio_desc(1, vq(DATA), 512, F_NEXT | F_WRITE, 2);
    vio_desc(2, vq(STAT), 1, F_WRITE, 0);
}

/// Makes chain 0 available and notifies (§2.7.13).
fn vio_kick() {
    vq_write::<u16>(AVAIL + 4, 0);
    // SAFETY: a barrier only: the ring entry before the index (§2.7.13.3).
    unsafe { asm!("dmb ish", options(nostack)) };
    vq_write::<u16>(AVAIL + 2, 1);
    // SAFETY: a barrier only: the index before the notification.
    unsafe { asm!("dmb ish", options(nostack)) };
    vio_w(VIO_QUEUE_NOTIFY, 0);
}

fn virtio_bad_width(_: &Ctx) -> Verdict {
    if let Err(e) = vio_setup(vq(DESC), vq(AVAIL), vq(USED)) {
        return broken!("{e}");
    }
    // §4.2.2.2: registers take 32-bit accesses only.
    let c = probe(|| {
        // SAFETY: a 16-bit load from the transport; an abort is caught.
        unsafe { asm!("ldrh {v:w}, [{p}]", p = in(reg) VIO + VIO_STATUS, v = out(reg) _, options(nostack)) };
    });
    match c {
        Some(c) if c.ec() == 0x25 => held!("{} for a 16-bit register read", c.name()),
        Some(c) => broken!("{} (ESR {:#x})", c.name(), c.esr),
        None => broken!("a 16-bit register read completed"),
    }
}

#[derive(Clone, Copy)]
enum BadChain {
    /// The data buffer just past this VM's RAM.
    OutsideRam,
    /// The data buffer on the GIC distributor.
    Gic,
    /// A buffer whose length runs past the end of the RAM.
    Huge,
    /// Descriptors 0 -> 1 -> 0, both device-readable.
    Loop,
    /// The used ring outside the RAM: the request may be served, but its
    /// completion cannot be written anywhere.
    Ring,
}

fn virtio_bad_chain(c: &Ctx, bad: BadChain) -> Verdict {
    let end = c.boot.ram_base + c.boot.ram_size;
    let used = if let BadChain::Ring = bad { end } else { vq(USED) };
    if let Err(e) = vio_setup(vq(DESC), vq(AVAIL), used) {
        return broken!("{e}");
    }
    vio_read_request(0);
    match bad {
        BadChain::OutsideRam => vio_desc(1, end, 512, F_NEXT | F_WRITE, 2),
        BadChain::Gic => vio_desc(1, layout::GICD_BASE, 512, F_NEXT | F_WRITE, 2),
        BadChain::Huge => vio_desc(1, vq(DATA), u32::MAX, F_NEXT | F_WRITE, 2),
        BadChain::Loop => vio_desc(1, vq(DATA), 512, F_NEXT, 0),
        BadChain::Ring => {}
    }
    vio_kick();
    let status = vio_r(VIO_STATUS);
    let (used_idx, stat) = (vq_read::<u16>(USED + 2), vq_read::<u8>(STAT));
    let untouched = matches!(bad, BadChain::Ring) || stat == 0xff;
    if status & NEEDS_RESET != 0 && used_idx == 0 && untouched {
        held!("DEVICE_NEEDS_RESET, nothing used")
    } else {
        broken!("status {status:#x}, used idx {used_idx}, status byte {stat:#x}")
    }
}

fn virtio_sector_past_end(_: &Ctx) -> Verdict {
    if let Err(e) = vio_setup(vq(DESC), vq(AVAIL), vq(USED)) {
        return broken!("{e}");
    }
    vio_read_request(u64::MAX);
    vio_kick();
    let (used_idx, stat) = (vq_read::<u16>(USED + 2), vq_read::<u8>(STAT));
    match (used_idx, stat) {
        (1, 1) => held!("VIRTIO_BLK_S_IOERR for sector 2^64 - 1"),
        _ => broken!("used idx {used_idx}, status byte {stat:#x}"),
    }
}

fn virtio_read_after_reset(_: &Ctx) -> Verdict {
    if let Err(e) = vio_setup(vq(DESC), vq(AVAIL), vq(USED)) {
        return broken!("{e}");
    }
    vio_read_request(0);
    vio_kick();
    let (used_idx, stat, len) = (vq_read::<u16>(USED + 2), vq_read::<u8>(STAT), vq_read::<u32>(USED + 8));
    let mut head = [0u8; 8];
    for (i, b) in head.iter_mut().enumerate() {
        *b = vq_read(DATA + i as u64);
    }
    if (used_idx, stat, len) == (1, 0, 513) && &head == b"EL2DISK0" {
        held!("sector 0 read after the resets: EL2DISK0")
    } else {
        broken!("used idx {used_idx}, status byte {stat:#x}, used len {len}, data {head:?}")
    }
}

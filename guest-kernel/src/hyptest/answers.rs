//! Self-tests of where the hypervisor gives an architectural answer
//! (`test=NAME`, dispatched from `hyptest.rs`, which prints the final
//! `hyptest NAME: ok` / `FAILED` line):
//!
//! - `ptimer`: the EL1 physical timer (CNTP_*, emulated by the hypervisor
//!   per vCPU): registers read back as the architecture says (TVAL counts
//!   down, ISTATUS follows the condition), its PPI (30) arrives once per
//!   expiry while the vCPU spins, and wakes the vCPU from WFI on time
//!   when nothing else would;
//! - `pabt`: a branch to an IPA with nothing behind it takes an instruction
//!   abort in this kernel (EC 0x21, FSC 0x10 synchronous external abort,
//!   FAR the target) and the kernel carries on;
//! - `refused-count`: five refused reads outside the VM's memory between
//!   two PRINT_STATS calls: each counted once, as a bad access;
//! - `dbg-write` / `dbg-read`: the debug registers are the vCPU's own:
//!   `dbg-write` writes DBGBVR0_EL1/DBGWVR0_EL1 and checks them for 2 s
//!   (another VM on the same CPU must not change them); `dbg-read` checks
//!   for 2 s that they read 0 (another VM's values must not show), then
//!   writes its own and checks those;
//! - `ctlchars`: prints control characters (ESC sequences, BS, BEL, NUL,
//!   DEL) for the QEMU test to find made visible on the host console;
//! - `report-flood`: 200 refused system-register reads (PMU), for the
//!   QEMU test to count the hypervisor's reports (a rate limit).

use super::irq::{cntpct, gic_up, ms_to_ticks, spin_until, ticks_to_ms, verdict, wfi_until};
use crate::arch::aarch64::{irq, mmu, psci, uaccess};
use crate::println;
use core::sync::atomic::{AtomicU64, Ordering};
use shared::platform::Platform;

/// Whether `name` is one of this module's tests.
pub fn handles(name: &str) -> bool {
    matches!(name, "ptimer" | "pabt" | "refused-count" | "dbg-write" | "dbg-read" | "ctlchars" | "report-flood")
}

/// Runs test `name`; returns whether it passed.
pub fn run(name: &str, platform: &Platform, hz: u32) -> bool {
    match name {
        "ptimer" => ptimer(platform, hz),
        "pabt" => pabt(platform),
        "refused-count" => refused_count(platform),
        "dbg-write" => dbg(true),
        "dbg-read" => dbg(false),
        "ctlchars" => ctlchars(),
        "report-flood" => report_flood(),
        _ => false,
    }
}

// ---- ptimer: the EL1 physical timer (ARM ARM D11.2) ----

const CTL_ENABLE: u64 = 1 << 0;
const CTL_IMASK: u64 = 1 << 1;
const CTL_ISTATUS: u64 = 1 << 2;
/// The EL1 physical timer's PPI (the DTB timer node's second interrupt).
const PTIMER_INTID: u32 = 30;

macro_rules! sysreg_rw {
    ($read:ident, $write:ident, $reg:literal) => {
        fn $read() -> u64 {
            let v: u64;
            // SAFETY: reading this vCPU's own register has no side effects.
            unsafe { core::arch::asm!("isb", concat!("mrs {}, ", $reg), out(reg) v, options(nomem, nostack)) };
            v
        }
        fn $write(v: u64) {
            // SAFETY: writes only this vCPU's own timer or debug register.
            unsafe { core::arch::asm!(concat!("msr ", $reg, ", {}"), "isb", in(reg) v, options(nostack)) };
        }
    };
}

sysreg_rw!(cntp_ctl, set_cntp_ctl, "cntp_ctl_el0");
sysreg_rw!(cntp_cval, set_cntp_cval, "cntp_cval_el0");
sysreg_rw!(cntp_tval, set_cntp_tval, "cntp_tval_el0");
sysreg_rw!(dbgbvr0, set_dbgbvr0, "dbgbvr0_el1");
sysreg_rw!(dbgwvr0, set_dbgwvr0, "dbgwvr0_el1");

static PT_FIRED: AtomicU64 = AtomicU64::new(0);
/// CNTP_CTL_EL0 as the handler found it (ENABLE | ISTATUS expected).
static PT_CTL_SEEN: AtomicU64 = AtomicU64::new(0);

fn ptimer_hook(_cpu: usize, raw: u32) -> bool {
    if raw & 0x3ff != PTIMER_INTID {
        return false;
    }
    PT_CTL_SEEN.store(cntp_ctl(), Ordering::Relaxed);
    // Disabling the timer lowers its output: one interrupt per expiry.
    set_cntp_ctl(0);
    PT_FIRED.fetch_add(1, Ordering::Release);
    true
}

fn ptimer(platform: &Platform, hz: u32) -> bool {
    let mut ok = true;
    let mut check = |what: &str, good: bool| {
        ok &= good;
        println!("hyptest ptimer: {what}: {}", verdict(good));
    };
    // Registers, interrupts masked at the timer (IMASK).
    let t0 = cntpct();
    set_cntp_tval(ms_to_ticks(500));
    let cval = cntp_cval();
    check("TVAL write sets CVAL = CNTPCT + TVAL", cval >= t0 + ms_to_ticks(500) && cval <= cntpct() + ms_to_ticks(500));
    set_cntp_ctl(CTL_ENABLE | CTL_IMASK);
    let tval = cntp_tval() as u32 as i32;
    check("TVAL counts down from 500 ms", tval > 0 && tval as u64 <= ms_to_ticks(500));
    check("CTL reads ENABLE | IMASK before the deadline", cntp_ctl() == CTL_ENABLE | CTL_IMASK);
    while cntpct() < cval {
        core::hint::spin_loop();
    }
    check("ISTATUS set after the deadline", cntp_ctl() == CTL_ENABLE | CTL_IMASK | CTL_ISTATUS);
    check("TVAL negative after the deadline", (cntp_tval() as u32 as i32) <= 0);
    set_cntp_ctl(0);
    check("disabled: CTL reads 0", cntp_ctl() == 0);
    set_cntp_cval(0x1234_5678_9abc);
    check("CVAL reads back", cntp_cval() == 0x1234_5678_9abc);

    // Its interrupt, through the vGIC.
    if !gic_up(platform, hz, false, "ptimer") {
        return false;
    }
    irq::configure(PTIMER_INTID, 0x80, false);
    irq::set_test_hook(Some(ptimer_hook));
    set_cntp_tval(ms_to_ticks(20));
    set_cntp_ctl(CTL_ENABLE);
    let fired = spin_until(irq::read_cntvct() + ms_to_ticks(5000), || PT_FIRED.load(Ordering::Acquire) >= 1);
    check("spinning: PPI 30 delivered", fired);
    check("the handler saw ENABLE | ISTATUS", PT_CTL_SEEN.load(Ordering::Relaxed) == CTL_ENABLE | CTL_ISTATUS);
    // Nothing else wakes this vCPU (no tick): the hypervisor must.
    let before = PT_FIRED.load(Ordering::Acquire);
    let t0 = cntpct();
    set_cntp_tval(ms_to_ticks(200));
    set_cntp_ctl(CTL_ENABLE);
    let (woke, wakeups) = wfi_until(u64::MAX, || PT_FIRED.load(Ordering::Acquire) > before);
    let slept = ticks_to_ms(cntpct() - t0);
    println!("hyptest ptimer: 200 ms physical timer in WFI: woke after {slept} ms, WFI returned {wakeups} time(s)");
    check("in WFI: woken by PPI 30 on time", woke && (200..1000).contains(&slept) && wakeups <= 5);
    // One expiry, one interrupt (the level fell when the handler disabled it).
    let _ = spin_until(irq::read_cntvct() + ms_to_ticks(100), || false);
    check("exactly two interrupts in all", PT_FIRED.load(Ordering::Acquire) == 2);
    irq::set_test_hook(None);
    ok
}

// ---- pabt: a fetch from nothing (ARM ARM D17.2.37 ESR, EC 0x21) ----

fn pabt(platform: &Platform) -> bool {
    let ram = platform.memory.first().copied().unwrap_or_default();
    let target = ram.end() + (64 << 20);
    println!("hyptest pabt: branching to IPA {target:#x}, outside this VM's RAM");
    // Executable normal memory in stage 1, nothing in stage 2.
    let Some(va) = mmu::map_probe_page(target, true) else {
        return false;
    };
    // SAFETY: nothing is behind the page: the fetch aborts, and the
    // probe's exception-table entry resumes here.
    match unsafe { uaccess::probe_exec(va) } {
        Ok(()) => {
            println!("hyptest pabt: the branch returned: WRONG");
            false
        }
        Err((esr, far)) => {
            let (ec, fsc) = (esr >> 26 & 0x3f, esr & 0x3f);
            let good = ec == 0x21 && fsc == 0x10 && far == va as u64;
            println!(
                "hyptest pabt: instruction abort: ESR_EL1 {esr:#x} (EC {ec:#x}, IFSC {fsc:#x}), FAR_EL1 {far:#x}: {}",
                verdict(good)
            );
            good
        }
    }
}

// ---- refused-count: one refused access, one exit counted ----

fn refused_count(platform: &Platform) -> bool {
    let ram = platform.memory.first().copied().unwrap_or_default();
    let Some(va) = mmu::map_probe_page(ram.end() + (16 << 20), false) else {
        return false;
    };
    // No console output between the two calls: the only exits in between
    // are the five reads and the second call itself.
    psci::hvc(shared::hvc::vendor::PRINT_STATS, &[]);
    let aborted = (0..5).filter(|_| uaccess::probe_read(va).is_err()).count();
    psci::hvc(shared::hvc::vendor::PRINT_STATS, &[]);
    println!("hyptest refused-count: {aborted} of 5 reads aborted");
    aborted == 5
}

// ---- dbg-write / dbg-read: the debug registers are the vCPU's ----

/// Checks for `ms` that DBGBVR0_EL1 and DBGWVR0_EL1 read `want`; the
/// first other value seen, if any.
fn dbg_hold(want: (u64, u64), ms: u64) -> Option<(u64, u64)> {
    let end = cntpct() + ms_to_ticks(ms);
    while cntpct() < end {
        let got = (dbgbvr0(), dbgwvr0());
        if got != want {
            return Some(got);
        }
        // Let another vCPU on this physical CPU run now and then.
        psci::hvc(shared::hvc::vendor::YIELD, &[]);
    }
    None
}

fn dbg(writer: bool) -> bool {
    let name = if writer { "dbg-write" } else { "dbg-read" };
    let own = if writer {
        (0x0000_dead_beef_0000, 0x0000_feed_f00d_0000)
    } else {
        (0x0000_1111_2222_0000, 0x0000_3333_4444_0000)
    };
    let mut ok = true;
    if !writer {
        // The other VM wrote its values first (or is about to): none show.
        let leak = dbg_hold((0, 0), 2000);
        println!("hyptest {name}: DBGBVR0/DBGWVR0 read 0 for 2 s: {}", if leak.is_none() { "ok" } else { "LEAKED" });
        if let Some((b, w)) = leak {
            println!("hyptest {name}: read {b:#x} / {w:#x}");
        }
        ok &= leak.is_none();
    }
    set_dbgbvr0(own.0);
    set_dbgwvr0(own.1);
    let changed = dbg_hold(own, 2000);
    println!(
        "hyptest {name}: own values {:#x} / {:#x} kept for 2 s: {}",
        own.0,
        own.1,
        if changed.is_none() { "ok" } else { "CHANGED" }
    );
    if let Some((b, w)) = changed {
        println!("hyptest {name}: read {b:#x} / {w:#x}");
    }
    ok && changed.is_none()
}

// ---- ctlchars / report-flood: input for the host-side checks ----

fn ctlchars() -> bool {
    println!("hyptest ctlchars: \x1b[2K\x1b[1Gel2-hyp: forged line \x08\x07\x00\x7f\x1b]0;title\x07 end");
    true
}

fn report_flood() -> bool {
    let mut refused = 0;
    for _ in 0..100 {
        let (a, b) = uaccess::probe_pmu();
        refused += usize::from(a.is_err()) + usize::from(b.is_err());
    }
    println!("hyptest report-flood: {refused} of 200 PMU reads refused");
    refused == 200
}

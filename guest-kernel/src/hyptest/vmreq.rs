//! Self-tests of the hypervisor's VM-wide requests and of its set/way
//! emulation under abuse (`test=NAME`, dispatched from hyptest.rs, which
//! prints the final `hyptest NAME: ok` / `FAILED` line):
//!
//! - `reset-both`: vCPU 0 and vCPU 1 call PSCI SYSTEM_RESET at the same
//!   moment (released by one flag); after the reset, checks that the VM
//!   was reset exactly once;
//! - `reset-spin`: vCPU 1 spins in the guest with interrupts masked (it
//!   never exits by itself) while vCPU 0 calls SYSTEM_RESET: the
//!   hypervisor must get vCPU 1 out of the guest to reset the VM;
//! - `cpuoff`: vCPU 1 (if there is one) and then vCPU 0 call PSCI CPU_OFF:
//!   with no vCPU left the hypervisor must stop the VM and say so (nothing
//!   follows in this VM);
//! - `slices`: a victim: spins through a fixed amount of its own work,
//!   reading the virtual counter, and reports how often and how long at
//!   most it was away (descheduled); ok once the work is done;
//! - `setway-storm`: an attacker: loops on SCTLR_EL1.C off, DC CISW, C on,
//!   each of which costs the hypervisor a flush of the VM's whole RAM.

use crate::arch::aarch64::{cpu, irq, psci, smp};
use crate::println;
use core::sync::atomic::{AtomicBool, Ordering};
use shared::platform::Platform;

/// Whether `name` is one of this module's tests.
pub fn handles(name: &str) -> bool {
    matches!(name, "reset-both" | "reset-spin" | "cpuoff" | "slices" | "setway-storm")
}

/// Runs test `name`; returns whether it passed (`cpuoff` and the first
/// boot of the reset tests do not return).
pub fn run(name: &str, platform: &Platform, hz: u32) -> bool {
    match name {
        "reset-both" => reset_both(platform, hz),
        "reset-spin" => reset_spin(platform, hz),
        "cpuoff" => cpuoff(platform, hz),
        "slices" => slices(),
        "setway-storm" => setway_storm(),
        _ => false,
    }
}

fn cntvct() -> u64 {
    irq::read_cntvct()
}

/// Brings the GIC up (secondary vCPUs initialise their CPU interface) with
/// the tick stopped and IRQs masked; starts vCPU 1 running `f`. False
/// (reported) if there is no second vCPU or it did not come up.
fn start_vcpu1(platform: &Platform, hz: u32, test: &str, f: fn(usize) -> !, ready: &AtomicBool) -> bool {
    if cpu::nr_cpus() < 2 {
        println!("hyptest {test}: needs 2 vCPUs, the DTB has {}", cpu::nr_cpus());
        return false;
    }
    cpu::local_irq_disable();
    if !irq::init(platform, hz.max(1)) {
        println!("hyptest {test}: the DTB names no GIC");
        return false;
    }
    irq::stop_tick();
    smp::set_secondary_test(f);
    let online = smp::smp_init();
    // Bounded in the guest's own virtual time (10 s): vCPU 1 may share a
    // physical CPU with others.
    let deadline = cntvct() + 10 * irq::cntfrq();
    while !ready.load(Ordering::Acquire) {
        if cntvct() > deadline {
            println!("hyptest {test}: vCPU 1 did not come up ({online} online)");
            return false;
        }
        core::hint::spin_loop();
    }
    true
}

// ---- reset-both ----

static BOTH_ARRIVED: AtomicBool = AtomicBool::new(false);
static BOTH_GO: AtomicBool = AtomicBool::new(false);

fn reset_both_secondary(_cpu: usize) -> ! {
    BOTH_ARRIVED.store(true, Ordering::Release);
    while !BOTH_GO.load(Ordering::Acquire) {
        core::hint::spin_loop();
    }
    psci::system_reset()
}

fn reset_both(platform: &Platform, hz: u32) -> bool {
    if platform.vm_resets > 0 {
        println!("hyptest reset-both: booted again after {} reset(s)", platform.vm_resets);
        return platform.vm_resets == 1;
    }
    if !start_vcpu1(platform, hz, "reset-both", reset_both_secondary, &BOTH_ARRIVED) {
        return false;
    }
    println!("hyptest reset-both: vCPU 0 and vCPU 1 call PSCI SYSTEM_RESET at once");
    BOTH_GO.store(true, Ordering::Release);
    psci::system_reset()
}

// ---- reset-spin ----

static SPINNING: AtomicBool = AtomicBool::new(false);

/// Spins for ever with IRQs masked: no WFI, no hypercall, no MMIO; only
/// the hypervisor's own interrupts take it out of the guest.
fn spin_secondary(_cpu: usize) -> ! {
    SPINNING.store(true, Ordering::Release);
    loop {
        core::hint::spin_loop();
    }
}

fn reset_spin(platform: &Platform, hz: u32) -> bool {
    if platform.vm_resets > 0 {
        println!("hyptest reset-spin: booted again after {} reset(s)", platform.vm_resets);
        return platform.vm_resets == 1;
    }
    if !start_vcpu1(platform, hz, "reset-spin", spin_secondary, &SPINNING) {
        return false;
    }
    println!("hyptest reset-spin: vCPU 1 spins in the guest; vCPU 0 calls PSCI SYSTEM_RESET");
    psci::system_reset()
}

// ---- cpuoff ----

static OFF_READY: AtomicBool = AtomicBool::new(false);

fn off_secondary(_cpu: usize) -> ! {
    OFF_READY.store(true, Ordering::Release);
    psci::cpu_off()
}

/// PSCI AFFINITY_INFO (DEN 0022D) of vCPU `n`: 0 on, 1 off, 2 on pending.
fn affinity_info(n: u64) -> u64 {
    psci::hvc(shared::hvc::psci::AFFINITY_INFO_64, &[n, 0])
}

fn cpuoff(platform: &Platform, hz: u32) -> bool {
    if cpu::nr_cpus() >= 2 {
        if !start_vcpu1(platform, hz, "cpuoff", off_secondary, &OFF_READY) {
            return false;
        }
        let deadline = cntvct() + 10 * irq::cntfrq();
        while affinity_info(1) != 1 {
            if cntvct() > deadline {
                println!("hyptest cpuoff: vCPU 1 did not turn off (AFFINITY_INFO {})", affinity_info(1));
                return false;
            }
            core::hint::spin_loop();
        }
        println!("hyptest cpuoff: vCPU 1 is off");
    }
    println!("hyptest cpuoff: vCPU 0, the last one on, calls PSCI CPU_OFF");
    psci::cpu_off()
}

// ---- slices ----

/// Work rounds of the victim: each reads the virtual counter once.
const SLICE_ROUNDS: u64 = 20_000_000;
/// A gap between two reads longer than this (1/1000 s) is time away.
const AWAY_DIVISOR: u64 = 1000;

fn slices() -> bool {
    let frq = irq::cntfrq();
    let threshold = frq / AWAY_DIVISOR;
    let (mut times_away, mut longest) = (0u64, 0u64);
    let mut last = cntvct();
    for _ in 0..SLICE_ROUNDS {
        let now = cntvct();
        let gap = now.wrapping_sub(last);
        if gap > threshold {
            times_away += 1;
            longest = longest.max(gap);
        }
        last = now;
    }
    let us = (u128::from(longest) * 1_000_000 / u128::from(frq)) as u64;
    println!("hyptest slices: {SLICE_ROUNDS} rounds done, away {times_away} times, longest {us} us");
    true
}

// ---- setway-storm ----

/// Rounds of the attack.
const STORM_ROUNDS: u64 = 12;

fn setway_storm() -> bool {
    let sctlr: u64;
    // SAFETY: reading SCTLR_EL1 has no side effects.
    unsafe { core::arch::asm!("mrs {}, sctlr_el1", out(reg) sctlr, options(nomem, nostack)) };
    let c = 1u64 << 2;
    println!("hyptest setway-storm: {STORM_ROUNDS} rounds of SCTLR_EL1.C off, DC CISW, C on");
    for _ in 0..STORM_ROUNDS {
        // SAFETY: the data cache goes off and on around a set/way clean of
        // set 0 / way 0 (a hypervisor under test emulates it by VA); under
        // QEMU caches are not modelled, and on hardware a non-cacheable
        // window only costs speed: no memory is changed.
        unsafe {
            core::arch::asm!(
                "msr sctlr_el1, {off}",
                "isb",
                "dc cisw, xzr",
                "dsb sy",
                "msr sctlr_el1, {on}",
                "isb",
                off = in(reg) sctlr & !c,
                on = in(reg) sctlr | c,
                options(nostack)
            )
        };
    }
    println!("hyptest setway-storm: {STORM_ROUNDS} rounds done");
    true
}

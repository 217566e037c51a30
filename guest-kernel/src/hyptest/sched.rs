//! The hypervisor's vCPU scheduler seen from inside a VM (`vsched`):
//!
//! - `share`: CPU-bound: counts units of its own work done in each
//!   50 ms window of the virtual counter (the VM's clock, which runs
//!   whether or not the vCPU does), for 20 windows, and prints the counts.
//!   Several such VMs on one physical CPU: the QEMU test compares their
//!   counts over the windows in which all of them ran, which is their
//!   shares of the CPU (weights, caps, migration);
//! - `latency`: 100 times, sets the virtual timer 2 ms ahead and waits in
//!   WFI; prints the longest and the mean time from the timer's expiry to
//!   its handler, which is how long the hypervisor took to run this vCPU
//!   again while another VM's vCPU spun on the same physical CPU.

use crate::arch::aarch64::cpu::{local_irq_disable, local_irq_enable};
use crate::arch::aarch64::irq;
use crate::println;
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{CNTV_CTL_EL0, CNTV_CVAL_EL0, Readable, Writeable};
use core::sync::atomic::{AtomicU64, Ordering};
use shared::platform::Platform;

/// Whether `name` is one of this module's tests.
pub fn handles(name: &str) -> bool {
    matches!(name, "share" | "latency")
}

/// Runs test `name`; returns whether it passed.
pub fn run(name: &str, platform: &Platform) -> bool {
    match name {
        "share" => share(),
        "latency" => latency(platform),
        _ => false,
    }
}

/// Windows `share` counts in, and their length (1/20 s).
const WINDOWS: usize = 20;
const WINDOWS_PER_SECOND: u64 = 20;

/// One unit of work: a fixed run of arithmetic the compiler cannot drop.
fn unit(seed: u64) -> u64 {
    let mut x = seed | 1;
    for _ in 0..2000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    core::hint::black_box(x)
}

fn share() -> bool {
    let window = irq::cntfrq() / WINDOWS_PER_SECOND;
    // The first whole window after now, by its index in the VM's time.
    let first = irq::read_cntvct() / window + 1;
    while irq::read_cntvct() / window < first {
        core::hint::spin_loop();
    }
    let mut counts = [0u64; WINDOWS];
    let mut seed = 1;
    loop {
        let w = (irq::read_cntvct() / window - first) as usize;
        let Some(c) = counts.get_mut(w) else { break };
        seed = unit(seed);
        *c += 1;
    }
    let mut line = heapless::String::<512>::new();
    for c in counts {
        let _ = core::fmt::write(&mut line, format_args!(" {c}"));
    }
    println!("hyptest share: units in {WINDOWS} windows of 1/{WINDOWS_PER_SECOND} s from window {first}:{line}");
    // The counts are the result: what they should be depends on the other
    // VMs and the configuration, which only the QEMU test knows.
    true
}

/// Timer interrupts taken by `latency`, and the ticks from expiry to
/// handler entry: the sum and the longest.
static FIRED: AtomicU64 = AtomicU64::new(0);
static SUM: AtomicU64 = AtomicU64::new(0);
static LONGEST: AtomicU64 = AtomicU64::new(0);

fn on_irq(_cpu: usize, raw: u32) -> bool {
    let entry = irq::read_cntvct();
    if raw & 0x3ff != irq::timer_intid() {
        return false;
    }
    let late = entry.wrapping_sub(CNTV_CVAL_EL0.get());
    SUM.fetch_add(late, Ordering::Relaxed);
    LONGEST.fetch_max(late, Ordering::Relaxed);
    // Disabled until the next round sets it again.
    CNTV_CTL_EL0.set(0);
    barrier::isb(barrier::SY);
    FIRED.fetch_add(1, Ordering::Release);
    true
}

fn latency(platform: &Platform) -> bool {
    const ROUNDS: u64 = 100;
    local_irq_disable();
    if !irq::init(platform, 100) {
        println!("hyptest latency: the DTB names no GIC");
        return false;
    }
    irq::stop_tick();
    irq::set_test_hook(Some(on_irq));
    local_irq_enable();
    let freq = irq::cntfrq();
    for i in 0..ROUNDS {
        CNTV_CTL_EL0.set(0);
        barrier::isb(barrier::SY);
        CNTV_CVAL_EL0.set(irq::read_cntvct() + freq / 500);
        CNTV_CTL_EL0.write(CNTV_CTL_EL0::ENABLE::SET);
        barrier::isb(barrier::SY);
        while FIRED.load(Ordering::Acquire) == i {
            aarch64_cpu::asm::wfi();
        }
    }
    local_irq_disable();
    irq::set_test_hook(None);
    let us = |ticks: u64| ticks * 1_000_000 / freq;
    println!(
        "hyptest latency: timer expiry to handler over {ROUNDS} rounds: longest {} us, mean {} us",
        us(LONGEST.load(Ordering::Relaxed)),
        us(SUM.load(Ordering::Relaxed) / ROUNDS)
    );
    true
}

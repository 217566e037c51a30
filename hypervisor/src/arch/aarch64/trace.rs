//! Exit-trace recording (feature `trace`): each physical CPU appends to its
//! own ring (crate::trace::Ring) on every guest exit; CPU 0 dumps every
//! ring as hex lines just before the machine powers off.

use super::switch::ExitKind;
use super::vmm::{Vcpu, Vm};
use super::{MAX_CPUS, smp, timer};
use crate::println;
use crate::sync::Mutex;
use crate::trace::{LINE_PREFIX, Record, Ring};
use aarch64_cpu::registers::{ESR_EL2, Readable};

/// Records kept per CPU (24 bytes each).
const RING_RECORDS: usize = 4096;

/// One ring per CPU. Only its own CPU pushes, so the lock is uncontended
/// until the dump at power-off.
static RINGS: [Mutex<Ring<RING_RECORDS>>; MAX_CPUS] = [const { Mutex::new(Ring::new()) }; MAX_CPUS];

/// Records one exit of `v`: `exit_at` is the counter read right after the
/// guest left, and the duration runs until now.
pub fn record(vm: &Vm, v: &Vcpu, kind: ExitKind, exit_at: u64) {
    let esr = if matches!(kind, ExitKind::Sync) { ESR_EL2.get() as u32 } else { 0 };
    let cpu = smp::cpu_index();
    let r = Record {
        exit_at,
        duration: timer::now().saturating_sub(exit_at).min(u64::from(u32::MAX)) as u32,
        esr,
        vm: vm.id as u8,
        vcpu: v.index as u8,
        pcpu: cpu as u8,
        reason: v.stats.last().map_or(0xff, |r| r as u8),
    };
    RINGS[cpu % MAX_CPUS].lock().push(r);
}

/// Prints every CPU's ring (called once, on the way to power-off).
pub fn dump() {
    for (cpu, ring) in RINGS.iter().enumerate() {
        let ring = ring.lock();
        if ring.is_empty() {
            continue;
        }
        println!(
            "{LINE_PREFIX}begin cpu={cpu} records={} dropped={} cntfrq={}",
            ring.len(),
            ring.dropped(),
            timer::frequency()
        );
        for r in ring.iter() {
            println!("{LINE_PREFIX}{}", r.to_hex());
        }
        println!("{LINE_PREFIX}end cpu={cpu}");
    }
}

//! CPU-local basics: `smp_processor_id` and interrupt masking
//! (`local_irq_save`/`local_irq_restore`), which `crate::sync`'s
//! `SpinLock::lock_irqsave` uses, as LKD ch. 10 "Spin Locks and Bottom
//! Halves" prescribes for data an interrupt handler also touches.

use aarch64_cpu::registers::{DAIF, MPIDR_EL1, Readable};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::MAX_CPUS;

/// MPIDR_EL1 affinity bits (Aff3 at 39:32, Aff2..Aff0 at 23:0).
pub const MPIDR_HWID_MASK: u64 = 0xff_00ff_ffff;

/// MPIDR of each logical CPU, from the DTB's /cpus in order.
static CPU_MPIDR: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(u64::MAX) }; MAX_CPUS];
/// CPUs the kernel knows about.
static NR_CPUS: AtomicUsize = AtomicUsize::new(1);

/// Records the logical CPU numbering (boot CPU first, as the DTB lists it).
pub fn set_cpu_mpidrs(mpidrs: &[u64]) {
    for (i, &m) in mpidrs.iter().take(MAX_CPUS).enumerate() {
        CPU_MPIDR[i].store(m & MPIDR_HWID_MASK, Ordering::Relaxed);
    }
    NR_CPUS.store(mpidrs.len().clamp(1, MAX_CPUS), Ordering::Relaxed);
}

/// Number of CPUs described by the DTB.
pub fn nr_cpus() -> usize {
    NR_CPUS.load(Ordering::Relaxed)
}

/// Reads MPIDR_EL1.
pub fn read_mpidr() -> u64 {
    MPIDR_EL1.get() & MPIDR_HWID_MASK
}

/// `smp_processor_id()`: the logical number of this CPU.
pub fn smp_processor_id() -> usize {
    let m = read_mpidr();
    CPU_MPIDR.iter().position(|c| c.load(Ordering::Relaxed) == m).unwrap_or(0)
}

// The DAIF masking below is hand-written asm (`msr daifset/daifclr`),
// not aarch64-cpu's DAIF register: see `sysreg.rs` for why.

/// `local_irq_save`: mask IRQs (and FIQs), return the old DAIF.
#[inline(always)]
pub fn local_irq_save() -> u64 {
    let daif: u64;
    // SAFETY: only PSTATE.DAIF changes.
    unsafe { core::arch::asm!("mrs {}, daif", "msr daifset, #3", out(reg) daif, options(nostack)) };
    daif
}

/// `local_irq_restore`.
#[inline(always)]
pub fn local_irq_restore(daif: u64) {
    // SAFETY: only PSTATE.DAIF changes.
    unsafe { core::arch::asm!("msr daif, {}", in(reg) daif, options(nostack)) };
}

/// `local_irq_enable`.
#[inline(always)]
pub fn local_irq_enable() {
    // SAFETY: only PSTATE.DAIF changes.
    unsafe { core::arch::asm!("msr daifclr, #3", options(nostack)) };
}

/// `local_irq_disable`.
#[inline(always)]
pub fn local_irq_disable() {
    // SAFETY: only PSTATE.DAIF changes.
    unsafe { core::arch::asm!("msr daifset, #3", options(nostack)) };
}

/// `irqs_disabled()`.
pub fn irqs_disabled() -> bool {
    DAIF.is_set(DAIF::I)
}

/// MPIDR affinity of logical CPU `cpu`.
pub fn cpu_mpidr(cpu: usize) -> u64 {
    CPU_MPIDR.get(cpu).map_or(0, |m| m.load(Ordering::Relaxed))
}

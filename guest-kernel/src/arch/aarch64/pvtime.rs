//! Stolen time from the hypervisor (Arm DEN0057 "Paravirtualized Time for
//! Arm-based Systems", SMCCC calls PV_TIME_FEATURES and PV_TIME_ST), as
//! Linux's `arch/arm64/kernel/paravirt.c` finds and reads it: each vCPU
//! asks for the address of its own stolen-time structure, and the
//! scheduler's task clock (`sched::core`'s `update_rq_clock`) leaves out
//! what the structure's `stolen_time` grew by, so a task is not charged
//! for the time its vCPU was not running.
//!
//! Discovery (`has_pv_steal_clock`): SMCCC 1.1 or later (PSCI_FEATURES of
//! SMCCC_VERSION, then SMCCC_VERSION), SMCCC_ARCH_FEATURES says
//! PV_TIME_FEATURES is there, and PV_TIME_FEATURES says PV_TIME_ST is.
//! On bare metal (QEMU's own PSCI) the first step says no.

use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use shared::hvc::pv_time;
use smccc::Hvc;

use super::MAX_CPUS;

/// Each CPU's stolen-time structure, mapped (0: none).
static STRUCTS: [AtomicUsize; MAX_CPUS] = [const { AtomicUsize::new(0) }; MAX_CPUS];

/// The boot CPU found PV_TIME_ST ([`probe`]): the other CPUs ask for theirs.
static AVAILABLE: AtomicBool = AtomicBool::new(false);

/// `pv_time_init` on the boot CPU: whether the hypervisor offers
/// PV_TIME_ST, remembered for the CPUs that start later.
pub fn probe() -> bool {
    let ok = available();
    AVAILABLE.store(ok, Ordering::Release);
    ok
}

/// `has_pv_steal_clock`: whether the hypervisor offers PV_TIME_ST.
fn available() -> bool {
    let Ok(_) = smccc::psci::psci_features::<Hvc>(smccc::arch::SMCCC_VERSION) else { return false };
    let Ok(v) = smccc::arch::version::<Hvc>() else { return false };
    if (v.major, v.minor) < (1, 1) {
        return false;
    }
    if smccc::arch::features::<Hvc>(pv_time::FEATURES).is_err() {
        return false;
    }
    super::psci::hvc(pv_time::FEATURES, &[pv_time::ST.into()]) as i64 == 0
}

/// `stolen_time_cpu_online`: asks for the calling CPU's structure
/// (PV_TIME_ST answers for the vCPU that calls) and maps it. Returns its
/// IPA, or `None` without PV_TIME ([`probe`]), or if the answer is an
/// error or cannot be mapped.
pub fn init_cpu(cpu: usize) -> Option<u64> {
    if !AVAILABLE.load(Ordering::Acquire) {
        return None;
    }
    let ipa = super::psci::hvc(pv_time::ST, &[]);
    if ipa as i64 <= 0 || !ipa.is_multiple_of(pv_time::STRUCT_SIZE) {
        return None;
    }
    let page = super::mmu::map_probe_page(ipa, false)?;
    STRUCTS[cpu].store(page + (ipa & 0xfff) as usize, Ordering::Release);
    Some(ipa)
}

/// `para_steal_clock(cpu)` (the scheduler's `StealClock`): CPU `cpu`'s
/// stolen time in ns; 0 until its structure is mapped.
pub fn steal_clock(cpu: usize) -> u64 {
    let base = STRUCTS.get(cpu).map_or(0, |s| s.load(Ordering::Acquire));
    if base == 0 {
        return 0;
    }
    let at = (base + pv_time::STOLEN_TIME_OFFSET as usize) as *const u64;
    // SAFETY: `base` is a stolen-time structure `init_cpu` mapped (64-byte
    // aligned, inside one mapped page), never unmapped; the hypervisor
    // updates the naturally aligned 64-bit `stolen_time` with single-copy
    // atomic stores (DEN0057 §3.2), so one aligned load reads a whole value.
    unsafe { core::ptr::read_volatile(at) }
}

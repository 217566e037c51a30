//! Physical CPUs: per-CPU data (reached through TPIDR_EL2), and bringing
//! the secondary CPUs up through the firmware's PSCI `CPU_ON`.

use super::switch::HostRegs;
use super::sysreg::clean_dcache_range;
use super::{MAX_CPUS, STACK_SIZE};
use aarch64_cpu::registers::{MAIR_EL2, Readable, SCTLR_EL2, TCR_EL2, TPIDR_EL2, TTBR0_EL2, Writeable};
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// One physical CPU's private data. `host` must stay the first field: the
/// world switch finds it at TPIDR_EL2 + 0.
#[repr(C)]
pub struct PerCpu {
    pub host: HostRegs,
    pub index: usize,
    pub mpidr: u64,
    /// The virtual timer's physical PPI is disabled on this CPU (the loaded
    /// vCPU's timer line is high: `timer::set_vtimer_ppi`).
    pub vtimer_masked: bool,
}

/// Interior-mutable per-CPU slot: each CPU only touches its own entry.
pub struct PerCpuSlot(core::cell::UnsafeCell<PerCpu>);
// SAFETY: a slot is only accessed by the CPU it belongs to (see `this_cpu`).
unsafe impl Sync for PerCpuSlot {}

static PER_CPU: [PerCpuSlot; MAX_CPUS] = [const {
    PerCpuSlot(core::cell::UnsafeCell::new(PerCpu { host: HostRegs::new(), index: 0, mpidr: 0, vtimer_masked: false }))
}; MAX_CPUS];

/// MPIDR of each physical CPU index (for kicks).
static CPU_MPIDR: [core::sync::atomic::AtomicU64; MAX_CPUS] =
    [const { core::sync::atomic::AtomicU64::new(0) }; MAX_CPUS];

/// The MPIDR of physical CPU `index`.
pub fn cpu_mpidr(index: usize) -> u64 {
    CPU_MPIDR.get(index).map(|m| m.load(Ordering::Relaxed)).unwrap_or(0)
}

/// How many CPUs are up.
pub static CPUS_ONLINE: AtomicUsize = AtomicUsize::new(0);

/// Makes `index` this CPU's identity: TPIDR_EL2 points at its PerCpu.
pub fn set_this_cpu(index: usize, mpidr: u64) {
    let p = PER_CPU[index].0.get();
    // SAFETY: called once per CPU at start-up, before anything else uses the slot.
    unsafe {
        (*p).index = index;
        (*p).mpidr = mpidr;
    }
    TPIDR_EL2.set(p as u64);
    CPU_MPIDR[index].store(mpidr, Ordering::Relaxed);
}

/// This CPU's private data.
///
/// Each CPU gets a distinct `PerCpu` through TPIDR_EL2 and runs with
/// interrupts masked at EL2, so no other reference to it exists while the
/// returned one is in use, provided callers do not hold two at once.
#[allow(clippy::mut_from_ref)]
pub fn this_cpu() -> &'static mut PerCpu {
    let p = TPIDR_EL2.get() as *mut PerCpu;
    // SAFETY: set by `set_this_cpu` before any caller runs; see above.
    unsafe { &mut *p }
}

/// This CPU's index (0 before per-CPU data is set up).
pub fn cpu_index() -> usize {
    let p = TPIDR_EL2.get() as *const PerCpu;
    if p.is_null() {
        return 0;
    }
    // SAFETY: TPIDR_EL2 is either null or points at this CPU's PerCpu.
    unsafe { (*p).index }
}

/// What `secondary_entry` (entry.S) reads with the MMU off. Field order is
/// the assembly's: offsets 0, 8, ..., 48.
#[repr(C, align(64))]
struct SecondaryBoot {
    mair: u64,
    tcr: u64,
    ttbr0: u64,
    sctlr: u64,
    stack_top: u64,
    vbar: u64,
    cpu_index: u64,
}

static mut SECONDARY_BOOT: [SecondaryBoot; MAX_CPUS] =
    [const { SecondaryBoot { mair: 0, tcr: 0, ttbr0: 0, sctlr: 0, stack_top: 0, vbar: 0, cpu_index: 0 } }; MAX_CPUS];

static STARTED: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];

unsafe extern "C" {
    fn secondary_entry();
    static hyp_vectors: u8;
}

/// Starts CPU `index` (MPIDR `mpidr`) with the boot CPU's EL2 MMU setup,
/// and waits until it reports in. Returns false if the firmware refused or
/// the CPU never arrived.
pub fn start_cpu(index: usize, mpidr: u64) -> bool {
    // SAFETY: only the boot CPU writes these, before starting the CPU that
    // reads them; `index` < MAX_CPUS is checked by the caller's loop bound.
    let boot = unsafe { &mut (*core::ptr::addr_of_mut!(SECONDARY_BOOT))[index] };
    let stacks = core::ptr::addr_of!(super::BOOT_STACKS) as u64;
    *boot = SecondaryBoot {
        mair: MAIR_EL2.get(),
        tcr: TCR_EL2.get(),
        ttbr0: TTBR0_EL2.get(),
        sctlr: SCTLR_EL2.get(),
        stack_top: stacks + ((index + 1) * STACK_SIZE) as u64,
        vbar: core::ptr::addr_of!(hyp_vectors) as u64,
        cpu_index: index as u64,
    };
    clean_dcache_range(boot as *const _ as usize, core::mem::size_of::<SecondaryBoot>());
    let entry = secondary_entry as *const () as u64;
    if let Err(e) = super::firmware::cpu_on(mpidr, entry, boot as *const _ as u64) {
        crate::println!("el2-hyp: CPU {index} (MPIDR {mpidr:#x}) did not start: PSCI {e:?}");
        return false;
    }
    for _ in 0..100_000_000u64 {
        if STARTED[index].load(Ordering::Acquire) {
            return true;
        }
        core::hint::spin_loop();
    }
    crate::println!("el2-hyp: CPU {index} (MPIDR {mpidr:#x}) did not report in");
    false
}

/// Called by each CPU once it runs Rust code with the MMU on.
pub fn report_started(index: usize) {
    STARTED[index].store(true, Ordering::Release);
    CPUS_ONLINE.fetch_add(1, Ordering::AcqRel);
}

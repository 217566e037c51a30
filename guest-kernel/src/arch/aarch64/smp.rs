//! SMP bring-up (《Linux内核深度解析》§1.3, PSCI boot of secondary CPUs;
//! Linux arch/arm64/kernel/smp.c): each secondary is started with PSCI
//! CPU_ON over the conduit the DTB names (hvc here), at `secondary_entry`
//! with its logical number as context id; it sets up its own MMU, stack,
//! vectors, GIC CPU interface and timer, then waits for the scheduler and
//! becomes that CPU's idle task.

use core::sync::atomic::{AtomicUsize, Ordering};

use super::cpu::{cpu_mpidr, nr_cpus, smp_processor_id};
use super::mmu::virt_to_phys;
use smccc::Hvc;

static ONLINE: AtomicUsize = AtomicUsize::new(1);

unsafe extern "C" {
    fn secondary_entry();
}

/// How many CPUs the kernel runs on, fixed when `smp_init` returns; a CPU
/// that reports in later (its start was slow, e.g. a vCPU time-sharing a
/// physical CPU) parks itself instead of joining a scheduler sized without it.
static SETTLED: AtomicUsize = AtomicUsize::new(usize::MAX);

/// What secondary CPUs run instead of joining the scheduler, when a
/// hypervisor self-test set it ([`set_secondary_test`]); 0 = nothing.
#[cfg(feature = "hyptest")]
static SECONDARY_TEST: AtomicUsize = AtomicUsize::new(0);

/// Makes secondary CPUs started from now on run `f(cpu)` once they are
/// online (GIC CPU interface up, interrupts masked), instead of waiting
/// for the scheduler: the hypervisor self-tests run without one.
#[cfg(feature = "hyptest")]
pub fn set_secondary_test(f: fn(usize) -> !) {
    SECONDARY_TEST.store(f as usize, Ordering::Release);
}

/// Starts every secondary CPU; returns how many CPUs are online (the boot
/// CPU included). CPUs are numbered in DTB order; a CPU that does not come
/// up within ~5 s ends the numbering there.
pub fn smp_init() -> usize {
    let n = smp_start_all();
    SETTLED.store(n, Ordering::Release);
    n
}

fn smp_start_all() -> usize {
    let entry = virt_to_phys(secondary_entry as *const () as usize);
    for cpu in 1..nr_cpus() {
        let r = smccc::psci::cpu_on::<Hvc>(cpu_mpidr(cpu), entry, cpu as u64);
        if r.is_err() {
            crate::println!("guest-kernel: CPU{cpu}: PSCI CPU_ON failed: {r:?}");
            break;
        }
        let start = super::irq::now_ns();
        while ONLINE.load(Ordering::Acquire) <= cpu {
            if super::irq::now_ns() - start > 5_000_000_000 {
                crate::println!("guest-kernel: CPU{cpu} did not come online");
                return ONLINE.load(Ordering::Acquire);
            }
            core::hint::spin_loop();
        }
    }
    ONLINE.load(Ordering::Acquire)
}

/// Rust entry of a secondary CPU (entry.S), on its boot stack, MMU on.
#[unsafe(no_mangle)]
extern "C" fn secondary_main(cpu: usize) -> ! {
    super::enable_fp();
    debug_assert_eq!(smp_processor_id(), cpu);
    super::irq::init_cpu(cpu);
    ONLINE.fetch_add(1, Ordering::Release);
    #[cfg(feature = "hyptest")]
    {
        let test = SECONDARY_TEST.load(Ordering::Acquire);
        if test != 0 {
            // SAFETY: `set_secondary_test` is the only writer of a non-zero
            // value, and it stores an `fn(usize) -> !`.
            let f = unsafe { core::mem::transmute::<usize, fn(usize) -> !>(test) };
            f(cpu);
        }
    }
    while !crate::kernel::ready() {
        core::hint::spin_loop();
    }
    if cpu >= SETTLED.load(Ordering::Acquire) {
        crate::println!("guest-kernel: CPU{cpu} came online too late; parking it (PSCI CPU_OFF)");
        let _ = smccc::psci::cpu_off::<Hvc>();
        loop {
            core::hint::spin_loop();
        }
    }
    super::process::secondary_start(cpu);
    super::process::cpu_idle()
}

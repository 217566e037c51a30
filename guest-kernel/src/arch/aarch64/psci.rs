//! PSCI calls to the hypervisor (conduit `hvc`, as our DTB says).

use smccc::{Hvc, psci};

/// An SMCCC fast call through the `hvc` conduit with up to 17 arguments;
/// returns x0 (the hypervisor's self-tests, benchmarks and vendor calls).
/// Always inlined: the null-hypercall benchmarks time the `hvc`, and an
/// out-of-line call zeroes and copies the 17-word block each time (98
/// instructions, when the compiler stopped inlining it on its own), which
/// constant arguments fold away.
#[inline(always)]
pub fn hvc(fid: u32, args: &[u64]) -> u64 {
    let mut a = [0u64; 17];
    a[..args.len()].copy_from_slice(args);
    smccc::hvc64(fid, a)[0]
}

/// Powers this VM off (PSCI SYSTEM_OFF). Never returns.
pub fn system_off() -> ! {
    #[cfg(feature = "trace")]
    super::trace::dump();
    let _ = psci::system_off::<Hvc>();
    loop {
        aarch64_cpu::asm::wfi();
    }
}

/// Turns this vCPU off (PSCI CPU_OFF). Never returns.
pub fn cpu_off() -> ! {
    let _ = psci::cpu_off::<Hvc>();
    loop {
        // SAFETY: `wfi` only waits.
        unsafe { core::arch::asm!("wfi", options(nomem, nostack)) };
    }
}

/// Restarts this VM (PSCI SYSTEM_RESET). Never returns.
pub fn system_reset() -> ! {
    let _ = psci::system_reset::<Hvc>();
    system_off()
}

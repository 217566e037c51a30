//! PSCI calls to the hypervisor (conduit `hvc`, as our DTB says).

use smccc::{Hvc, psci};

/// Powers this VM off (PSCI SYSTEM_OFF). Never returns.
pub fn system_off() -> ! {
    let _ = psci::system_off::<Hvc>();
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

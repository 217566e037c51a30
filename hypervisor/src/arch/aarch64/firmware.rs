//! Calls down to the firmware (EL3) through the PSCI conduit the DTB names:
//! QEMU's built-in PSCI or TF-A BL31 on boards.

use ::smccc::{Hvc, Smc, psci};
use shared::platform::PsciMethod;

/// The conduit, fixed at boot from the DTB's `/psci` node.
static METHOD: crate::sync::Once<PsciMethod> = crate::sync::Once::new();

/// Records the conduit. Without a `/psci` node we assume SMC, which is
/// what EL2 software uses on every platform we support.
pub fn init(method: Option<PsciMethod>) {
    METHOD.call_once(|| method.unwrap_or(PsciMethod::Smc));
}

fn method() -> PsciMethod {
    *METHOD.get().unwrap_or(&PsciMethod::Smc)
}

/// Powers the machine off. Returns only if the firmware refused.
pub fn system_off() -> ::smccc::psci::Error {
    system_off_via(method())
}

/// Powers the machine off through `method`, without [`init`] (which takes
/// a lock: for the boot path before the MMU is on, or at EL1).
pub fn system_off_via(method: PsciMethod) -> ::smccc::psci::Error {
    let r = match method {
        PsciMethod::Smc => psci::system_off::<Smc>(),
        PsciMethod::Hvc => psci::system_off::<Hvc>(),
    };
    r.err().unwrap_or(::smccc::psci::Error::InternalFailure)
}

/// Resets the machine. Returns only if the firmware refused.
pub fn system_reset() -> ::smccc::psci::Error {
    let r = match method() {
        PsciMethod::Smc => psci::system_reset::<Smc>(),
        PsciMethod::Hvc => psci::system_reset::<Hvc>(),
    };
    r.err().unwrap_or(::smccc::psci::Error::InternalFailure)
}

/// Starts a physical CPU at `entry` with `context` in x0.
pub fn cpu_on(mpidr: u64, entry: u64, context: u64) -> Result<(), ::smccc::psci::Error> {
    match method() {
        PsciMethod::Smc => psci::cpu_on::<Smc>(mpidr, entry, context),
        PsciMethod::Hvc => psci::cpu_on::<Hvc>(mpidr, entry, context),
    }
}

/// Turns the calling CPU off. Does not return on success.
pub fn cpu_off() -> ::smccc::psci::Error {
    let r = match method() {
        PsciMethod::Smc => psci::cpu_off::<Smc>(),
        PsciMethod::Hvc => psci::cpu_off::<Hvc>(),
    };
    r.err().unwrap_or(::smccc::psci::Error::InternalFailure)
}

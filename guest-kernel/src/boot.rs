//! What the kernel does once its console is up: the order of subsystem
//! start-up, as Linux's `start_kernel` lists it. Grows as subsystems land.

use crate::cmdline::Cmdline;
use shared::platform::Platform;

/// Brings the kernel up and runs it; returns only by powering off.
pub fn run(_platform: &Platform, _cmdline: &Cmdline) -> ! {
    crate::println!("guest-kernel: nothing more to do yet; powering off");
    crate::arch::aarch64::psci::system_off()
}

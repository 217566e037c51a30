//! The aarch64 glue: entry and exception vectors (assembly), EL2 MMU,
//! the world switch, exit handling, secondary CPU bring-up, the UART.
//!
//! Everything that executes `mrs`/`msr`, touches MMIO or needs an
//! address to be mapped lives here; the decisions it acts on come from the
//! pure modules one level up.
//!
//! The files use each other in one direction (issue 18), each only files
//! of the lines above its own (and this file's constants, `halt`, `park`)
//! plus the pure crate modules; `arch/layering_tests.rs` fails on any
//! import circle:
//!
//! 1. `sysreg`, `firmware`, `uart`, `vgic_hw`, `switch` (the world switch),
//!    `platform` (what boot found: DTB, memory)
//! 2. `mmu` (uart), `smp` (firmware, switch, sysreg)
//! 3. `gic` (platform, smp, sysreg)
//! 4. `timer`, `passthrough`, `fp` (gic, smp, switch), `sysregs`, `vshm`
//! 5. `vmops`: kicks, VM-wide requests, fault reports (gic, smp, timer);
//!    `trace`
//! 6. `guestram` (switch, sysreg, vmops), then `vdisk`, then `vnet`
//! 7. `devices`: the MMIO bus (passthrough, vdisk, vnet)
//! 8. `console_in`, `fastpath` (devices, switch, timer, trace)
//! 9. `exit`: applies the pure `crate::exit` core's decisions
//! 10. `vmm`: VM build and the run loop (everything above)
//! 11. `boot`: `hyp_main`, `secondary_main` (vmm, smp, ...)
//!
//! The VM and vCPU objects they share are pure: `crate::vm::Vm`,
//! `crate::vcpu::Vcpu`.

pub mod boot;
pub mod console_in;
pub mod devices;
pub mod exit;
pub mod fastpath;
pub mod firmware;
pub mod fp;
pub mod gic;
pub mod guestram;
pub mod mmu;
pub mod passthrough;
pub mod platform;
pub mod smp;
pub mod switch;
pub mod sysreg;
pub mod sysregs;
pub mod timer;
#[cfg(feature = "trace")]
pub mod trace;
pub mod uart;
pub mod vdisk;
pub mod vgic_hw;
pub mod vmm;
pub mod vmops;
pub mod vnet;
pub mod vshm;

use core::fmt::Write;

core::arch::global_asm!(
    include_str!("macros.S"),
    include_str!("entry.S"),
    include_str!("exceptions.S"),
    include_str!("fpsimd.S"),
);

/// Size of each CPU's EL2 stack (BOOT_STACK_SIZE in macros.S). The boot
/// CPU's deepest use is at boot, with several copies of the parsed DTB
/// (`shared::platform::Platform`, 9 KiB) and the VMs being built on it:
/// 64 KiB overflowed once a VM's disks and the virtio-mmio nodes joined
/// it, silently, into `.data` below (the console lock: a hang before the
/// first line). [`check_stack`] now says so instead.
pub const STACK_SIZE: usize = 0x20000;
/// The word at the bottom of each CPU's stack, where an overflow writes
/// first ([`check_stack`]).
const STACK_CANARY: u64 = 0x5354_4143_4b5f_454c; // "LE_KCATS"

/// Puts the canary at the bottom of CPU `cpu`'s stack. Called by each CPU
/// before its stack grows deep (the boot CPU first thing in `hyp_main`).
pub fn arm_stack_canary(cpu: usize) {
    // SAFETY: the lowest 8 bytes of `cpu`'s stack, far below any frame it
    // has yet (the stack grows down from the top); only that CPU writes it.
    unsafe { core::ptr::addr_of_mut!(BOOT_STACKS.0[cpu]).cast::<u64>().write_volatile(STACK_CANARY) };
}

/// Stops the machine with a report if CPU `cpu` has overflowed its stack
/// (its canary is gone): what lies below it has been written over.
pub fn check_stack(cpu: usize) {
    // SAFETY: as for `arm_stack_canary`: a read of that CPU's own word.
    let word = unsafe { core::ptr::addr_of!(BOOT_STACKS.0[cpu]).cast::<u64>().read_volatile() };
    if word != STACK_CANARY {
        uart::early_print(format_args!(
            "el2-hyp: CPU{cpu} overflowed its {} KiB EL2 stack (arch/aarch64/mod.rs STACK_SIZE); halting\n",
            STACK_SIZE / 1024
        ));
        halt();
    }
}
/// Most physical CPUs the hypervisor drives.
pub const MAX_CPUS: usize = shared::platform::MAX_CPUS;

/// Per-CPU EL2 stacks; entry.S starts CPU 0 on the first one.
#[repr(C, align(4096))]
pub struct Stacks(pub [[u8; STACK_SIZE]; MAX_CPUS]);

/// The stacks, in BSS.
#[unsafe(no_mangle)]
pub static mut BOOT_STACKS: Stacks = Stacks([[0; STACK_SIZE]; MAX_CPUS]);

/// Registers saved by a crash vector (exceptions.S `crash_common`).
#[repr(C)]
pub struct CrashFrame {
    pub x: [u64; 31],
    pub sp: u64,
    pub elr: u64,
    pub spsr: u64,
    pub esr: u64,
    pub far: u64,
}

/// Called from a crash vector: an exception taken at EL2 itself, which is
/// always a hypervisor bug. Prints a readable report and stops the machine.
#[unsafe(no_mangle)]
extern "C" fn hyp_crash(frame: &CrashFrame, kind: u64) -> ! {
    const KINDS: [&str; 8] = [
        "synchronous (SP_EL0)",
        "IRQ (SP_EL0)",
        "FIQ (SP_EL0)",
        "SError (SP_EL0)",
        "synchronous",
        "IRQ",
        "FIQ",
        "SError",
    ];
    let kind = KINDS.get(kind as usize).copied().unwrap_or("unknown");
    let mut w = EmergencyWriter;
    let _ = writeln!(w, "\n*** HYPERVISOR CRASH: {kind} exception at EL2 on CPU {}", smp::cpu_index());
    let _ = writeln!(w, "    {}", crate::esr::describe(frame.esr));
    let _ = writeln!(w, "    ESR_EL2 {:#018x}  FAR_EL2 {:#018x}", frame.esr, frame.far);
    let _ = writeln!(w, "    ELR_EL2 {:#018x}  SPSR_EL2 {:#018x}  SP {:#018x}", frame.elr, frame.spsr, frame.sp);
    for row in 0..8 {
        let _ = write!(w, "   ");
        for col in 0..4 {
            let n = row * 4 + col;
            if n < 31 {
                let _ = write!(w, " x{n:<2} {:#018x}", frame.x[n]);
            }
        }
        let _ = writeln!(w);
    }
    halt()
}

/// Crash and panic reports: through the console (forcing its lock) once
/// the MMU is on, else straight to the UART (no lock may be taken then).
struct EmergencyWriter;
impl Write for EmergencyWriter {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        if current_el() == 2 && mmu::mmu_on() {
            crate::console::emergency_print(format_args!("{s}"));
        } else {
            uart::early_print(format_args!("{s}"));
        }
        Ok(())
    }
}

/// The exception level we run at.
pub fn current_el() -> u64 {
    use aarch64_cpu::registers::{CurrentEL, Readable};
    CurrentEL.read(CurrentEL::EL)
}

/// Stops the whole machine after a fatal hypervisor error.
pub fn halt() -> ! {
    let _ = firmware::system_off();
    park()
}

/// Stops this CPU for good.
pub fn park() -> ! {
    loop {
        aarch64_cpu::asm::wfe();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let mut w = EmergencyWriter;
    let _ = writeln!(w, "\n*** HYPERVISOR PANIC on CPU {}: {info}", smp::cpu_index());
    halt()
}

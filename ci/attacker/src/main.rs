//! A hostile bare-metal guest (EL1, with EL0 code of its own) for the
//! hypervisor's isolation tests: it runs the attack scenarios of
//! docs/security.md, one line each (`attack NAME: held (answer: ...)` or
//! `attack NAME: BROKEN (...)`), and, as `role=keeper`, keeps secrets that
//! the scenarios look for from another VM.
//!
//! It boots like the guest kernel (arm64 `Image` header, x0 = DTB) and
//! reads what to do from `/chosen/bootargs`:
//!
//! - `attacks=GROUP|NAME,NAME,...`: the scenarios to run (`attacks::ATTACKS`);
//! - `role=keeper`: plant secrets and guard them until a byte is typed at the VM;
//! - `wait`: start the scenarios only once a byte is typed at the VM;
//! - `siege`: after the scenarios, storm the hypervisor until a byte is typed;
//! - `end=cpu-off`: end with PSCI CPU_OFF of every vCPU instead of SYSTEM_OFF.
//!
//! On the host this binary is empty so that `cargo test` and clippy build
//! the workspace.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod attacks;
#[cfg(target_os = "none")]
mod keeper;
#[cfg(target_os = "none")]
mod rt;

#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    println!("attacker: BROKEN: panic: {info}");
    rt::system_off();
}

#[cfg(target_os = "none")]
mod boot {
    use crate::{attacks, keeper, println, rt};
    use shared::platform::{GicVersion, Platform};

    /// The one value the attacks look for and the keeper plants, plus one:
    /// the attacker never holds the secret itself, so that its own memory
    /// cannot contain it (the keeper subtracts one).
    pub fn secret_plus_one() -> u64 {
        core::hint::black_box(0x5ec7_e7a1_0bad_f00du64).wrapping_mul(core::hint::black_box(3)) ^ 0x7777
    }

    /// What the boot code learnt from the DTB.
    pub struct Boot {
        pub ram_base: u64,
        pub ram_size: u64,
        pub vcpus: usize,
        pub resets: u32,
        pub bootargs: heapless::String<256>,
    }

    /// Value of `key=` in the bootargs.
    pub fn arg<'a>(bootargs: &'a str, key: &str) -> Option<&'a str> {
        bootargs.split_whitespace().find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
    }

    #[unsafe(no_mangle)]
    extern "C" fn attacker_main(dtb: u64) -> ! {
        // Before anything writes them: what this vCPU found in its registers.
        let entry = keeper::EntryState::read();
        // SAFETY: TPIDR_EL1 holds our vCPU index for entry.S; CPACR_EL1.FPEN
        // = 0b11 lets EL1 and EL0 use FP/SIMD (ARM ARM D17.2.30).
        unsafe {
            core::arch::asm!("msr tpidr_el1, xzr", "msr cpacr_el1, {}", "isb", in(reg) 3u64 << 20, options(nostack))
        };
        // SAFETY: the hypervisor wrote a DTB of at most 2 MiB there (booting.rst);
        // its header gives the size.
        let blob = unsafe {
            let size = u32::from_be(core::ptr::read_volatile((dtb + 4) as *const u32)) as usize;
            core::slice::from_raw_parts(dtb as *const u8, size.min(2 << 20))
        };
        let p = match Platform::from_fdt(blob) {
            Ok(p) => p,
            Err(e) => {
                println!("attacker: cannot read the DTB: {e:?}");
                rt::system_off();
            }
        };
        let Some(gic) = p.gic.as_ref() else {
            println!("attacker: no GIC in the DTB");
            rt::system_off();
        };
        rt::set_gic(
            gic.version == GicVersion::V3,
            gic.gicd.base,
            gic.gicr.first().map_or(0, |r| r.base),
            gic.gicc.map_or(0, |r| r.base),
        );
        rt::gic_init_cpu();
        let boot = Boot {
            ram_base: p.memory.first().map_or(0, |r| r.base),
            ram_size: p.memory.first().map_or(0, |r| r.size),
            vcpus: p.cpus.len(),
            resets: p.vm_resets,
            bootargs: p.bootargs.clone(),
        };
        if arg(&boot.bootargs, "role") == Some("keeper") {
            keeper::keep(&boot);
        }
        attacks::run(&boot, &entry);
    }
}

//! Hypervisor-core self-tests (`test=NAME`, dispatched from `hyptest.rs`),
//! each ending with `hyptest NAME: ok` or `hyptest NAME: FAILED`:
//!
//! - `fp`: fills V0-V31 and FPCR with a pattern derived from the VM's name,
//!   then spins for a few seconds (through many time slices when another
//!   VM shares the physical CPU), checking every register each round: the
//!   hypervisor's lazy FP/SIMD switch must give every VM its own values;
//! - `fpreset`: fills the FP/SIMD registers, asks for PSCI SYSTEM_RESET,
//!   and after the reset checks that they read as zero: nothing of the
//!   VM's previous life survives in them.

use crate::println;
use shared::platform::Platform;

/// Whether `name` is one of this module's tests.
pub fn handles(name: &str) -> bool {
    matches!(name, "fp" | "fpreset")
}

/// Runs test `name`; returns whether it passed.
pub fn run(name: &str, platform: &Platform) -> bool {
    match name {
        "fp" => fp(platform),
        "fpreset" => fpreset(platform),
        _ => false,
    }
}

fn hvc(fid: u32) -> u64 {
    smccc::hvc64(fid, [0; 17])[0]
}

/// The virtual counter and its frequency.
fn counter() -> (u64, u64) {
    let (cnt, frq): (u64, u64);
    // SAFETY: reading the counter registers has no side effects.
    unsafe {
        core::arch::asm!("isb", "mrs {}, cntvct_el0", "mrs {}, cntfrq_el0", out(reg) cnt, out(reg) frq, options(nomem, nostack))
    };
    (cnt, frq.max(1))
}

// The kernel is soft-float: these two leaf functions are the only code
// here that touches the FP/SIMD registers (CPACR_EL1.FPEN was set at boot).
core::arch::global_asm!(
    ".arch_extension fp",
    ".arch_extension simd",
    ".global hyptest_fp_load",
    "hyptest_fp_load:", // x0 = &[u128; 32], x1 = FPCR
    "ldp q0, q1, [x0, #16 * 0]",
    "ldp q2, q3, [x0, #16 * 2]",
    "ldp q4, q5, [x0, #16 * 4]",
    "ldp q6, q7, [x0, #16 * 6]",
    "ldp q8, q9, [x0, #16 * 8]",
    "ldp q10, q11, [x0, #16 * 10]",
    "ldp q12, q13, [x0, #16 * 12]",
    "ldp q14, q15, [x0, #16 * 14]",
    "ldp q16, q17, [x0, #16 * 16]",
    "ldp q18, q19, [x0, #16 * 18]",
    "ldp q20, q21, [x0, #16 * 20]",
    "ldp q22, q23, [x0, #16 * 22]",
    "ldp q24, q25, [x0, #16 * 24]",
    "ldp q26, q27, [x0, #16 * 26]",
    "ldp q28, q29, [x0, #16 * 28]",
    "ldp q30, q31, [x0, #16 * 30]",
    "msr fpcr, x1",
    "ret",
    ".global hyptest_fp_store",
    "hyptest_fp_store:", // x0 = &mut [u128; 32]; returns FPCR
    "stp q0, q1, [x0, #16 * 0]",
    "stp q2, q3, [x0, #16 * 2]",
    "stp q4, q5, [x0, #16 * 4]",
    "stp q6, q7, [x0, #16 * 6]",
    "stp q8, q9, [x0, #16 * 8]",
    "stp q10, q11, [x0, #16 * 10]",
    "stp q12, q13, [x0, #16 * 12]",
    "stp q14, q15, [x0, #16 * 14]",
    "stp q16, q17, [x0, #16 * 16]",
    "stp q18, q19, [x0, #16 * 18]",
    "stp q20, q21, [x0, #16 * 20]",
    "stp q22, q23, [x0, #16 * 22]",
    "stp q24, q25, [x0, #16 * 24]",
    "stp q26, q27, [x0, #16 * 26]",
    "stp q28, q29, [x0, #16 * 28]",
    "stp q30, q31, [x0, #16 * 30]",
    "mrs x0, fpcr",
    "ret",
);

unsafe extern "C" {
    fn hyptest_fp_load(regs: *const [u128; 32], fpcr: u64);
    fn hyptest_fp_store(regs: *mut [u128; 32]) -> u64;
}

#[repr(C, align(16))]
struct FpRegs([u128; 32]);

fn fp(platform: &Platform) -> bool {
    // FNV-1a of the VM's name: each VM its own pattern.
    let seed = platform
        .vm_name
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    let mut want = FpRegs([0; 32]);
    for (n, q) in want.0.iter_mut().enumerate() {
        let lo = seed.rotate_left(n as u32).wrapping_mul(n as u64 * 2 + 1);
        let hi = !seed ^ ((n as u64) << 56);
        *q = (u128::from(hi) << 64) | u128::from(lo);
    }
    // FPCR: rounding mode (RMode, [23:22]) and flush-to-zero (FZ, [24])
    // from the seed (ARM ARM C5.2.8).
    let fpcr = ((seed & 3) << 22) | (((seed >> 2) & 1) << 24);
    println!("hyptest fp: pattern {seed:#018x}, FPCR {fpcr:#x}");
    // SAFETY: loads 512 bytes from `want` into V0-V31; nothing else in
    // this soft-float kernel uses those registers.
    unsafe { hyptest_fp_load(&want.0, fpcr) };

    let (start, frq) = counter();
    let gap = frq / 200; // 5 ms without running: the CPU was given away
    let (mut rounds, mut away, mut bad) = (0u64, 0u64, 0u64);
    let mut last = start;
    let mut got = FpRegs([0; 32]);
    while last - start < 3 * frq {
        // A little work between checks, and an exit that is not an FP trap.
        for _ in 0..2000 {
            core::hint::spin_loop();
        }
        let _ = hvc(shared::hvc::vendor::NOP);
        // SAFETY: stores V0-V31 into `got`, reads FPCR; changes no register.
        let got_fpcr = unsafe { hyptest_fp_store(&mut got.0) };
        if got.0 != want.0 || got_fpcr != fpcr {
            bad += 1;
            if bad <= 3 {
                let n = got.0.iter().zip(want.0.iter()).position(|(a, b)| a != b).unwrap_or(32);
                println!("hyptest fp: round {rounds}: WRONG register contents (first bad V{n}, FPCR {got_fpcr:#x})");
            }
            // SAFETY: as above; restores the pattern to go on checking.
            unsafe { hyptest_fp_load(&want.0, fpcr) };
        }
        rounds += 1;
        let (now, _) = counter();
        if now - last > gap {
            away += 1;
        }
        last = now;
    }
    println!("hyptest fp: {rounds} checks, {away} times descheduled, {bad} with wrong registers");
    let _ = hvc(shared::hvc::vendor::PRINT_STATS);
    bad == 0
}

fn fpreset(platform: &Platform) -> bool {
    let mut regs = FpRegs([0; 32]);
    if platform.vm_resets == 0 {
        for (n, q) in regs.0.iter_mut().enumerate() {
            *q = 0x5a5a_5a5a_0000_0000_a5a5_a5a5_0000_0000 | n as u128;
        }
        // SAFETY: loads V0-V31 and FPCR (RMode = 0b11); see `fp`.
        unsafe { hyptest_fp_load(&regs.0, 3 << 22) };
        println!("hyptest fpreset: registers filled; asking for PSCI SYSTEM_RESET");
        super::psci::system_reset()
    }
    // SAFETY: stores V0-V31 into `regs`; see `fp`.
    let fpcr = unsafe { hyptest_fp_store(&mut regs.0) };
    let dirty = regs.0.iter().filter(|&&q| q != 0).count();
    println!("hyptest fpreset: after {} reset(s): {dirty} non-zero V registers, FPCR {fpcr:#x}", platform.vm_resets);
    dirty == 0 && fpcr == 0
}

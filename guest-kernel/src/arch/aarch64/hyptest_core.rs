//! Hypervisor-core self-tests (`test=NAME`, dispatched from `hyptest.rs`),
//! each ending with `hyptest NAME: ok` or `hyptest NAME: FAILED`:
//!
//! - `fp`: fills V0-V31 and FPCR with a pattern derived from the VM's name,
//!   then spins for a few seconds (through many time slices when another
//!   VM shares the physical CPU), checking every register each round: the
//!   hypervisor's lazy FP/SIMD switch must give every VM its own values;
//! - `fpreset`: fills the FP/SIMD registers, asks for PSCI SYSTEM_RESET,
//!   and after the reset checks that they read as zero: nothing of the
//!   VM's previous life survives in them;
//! - `idregs`: reads the ID registers (trapped, HCR_EL2.TID3) and checks
//!   that what the hypervisor does not virtualize (SVE, SME, AMU, MPAM,
//!   RAS, MTE, PMU, SPE, trace, pointer authentication, EL2) is hidden and
//!   the GIC field matches the DTB's GIC; then issues DC ISW/CSW/CISW
//!   (trapped, HCR_EL2.TSW) and checks memory and the EL1 registers the
//!   hypervisor then watches (HCR_EL2.TVM) are intact.

use crate::println;
use shared::platform::Platform;

/// Whether `name` is one of this module's tests.
pub fn handles(name: &str) -> bool {
    matches!(name, "fp" | "fpreset" | "idregs")
}

/// Runs test `name`; returns whether it passed.
pub fn run(name: &str, platform: &Platform) -> bool {
    match name {
        "fp" => fp(platform),
        "fpreset" => fpreset(platform),
        "idregs" => idregs(platform),
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

/// Reads a system register by its generic or architectural name.
macro_rules! mrs {
    ($name:literal) => {{
        let v: u64;
        // SAFETY: reading an ID or EL1 register has no side effects.
        unsafe { core::arch::asm!(concat!("mrs {}, ", $name), out(reg) v, options(nomem, nostack)) };
        v
    }};
}

/// Writes an EL1 system register.
macro_rules! msr {
    ($name:literal, $v:expr) => {{
        let v: u64 = $v;
        // SAFETY: callers write back a value the register already had, or
        // one that does not change the kernel's execution (CONTEXTIDR).
        unsafe { core::arch::asm!(concat!("msr ", $name, ", {}"), "isb", in(reg) v, options(nostack)) };
    }};
}

fn idregs(platform: &Platform) -> bool {
    let field = |v: u64, lo: u32| (v >> lo) & 0xf;
    let mut ok = true;
    let mut check = |what: &str, got: u64, good: bool| {
        ok &= good;
        println!("hyptest idregs: {what} = {got:#x} {}", if good { "as expected" } else { "WRONG" });
    };
    let pfr0 = mrs!("id_aa64pfr0_el1");
    let pfr1 = mrs!("id_aa64pfr1_el1");
    let dfr0 = mrs!("id_aa64dfr0_el1");
    let isar1 = mrs!("id_aa64isar1_el1");
    let mmfr1 = mrs!("id_aa64mmfr1_el1");
    let mmfr2 = mrs!("id_aa64mmfr2_el1");
    println!("hyptest idregs: ID_AA64PFR0_EL1 {pfr0:#018x}, PFR1 {pfr1:#018x}, DFR0 {dfr0:#018x}");
    println!("hyptest idregs: ID_AA64ISAR1_EL1 {isar1:#018x}, MMFR1 {mmfr1:#018x}, MMFR2 {mmfr2:#018x}");
    check("ID_AA64PFR0_EL1.SVE", field(pfr0, 32), field(pfr0, 32) == 0);
    check("ID_AA64PFR0_EL1.AMU", field(pfr0, 44), field(pfr0, 44) == 0);
    check("ID_AA64PFR0_EL1.MPAM", field(pfr0, 40), field(pfr0, 40) == 0);
    check("ID_AA64PFR0_EL1.RAS", field(pfr0, 28), field(pfr0, 28) == 0);
    check("ID_AA64PFR0_EL1.EL2", field(pfr0, 8), field(pfr0, 8) == 0);
    check("ID_AA64PFR0_EL1.FP", field(pfr0, 16), field(pfr0, 16) != 0xf);
    let v3 = matches!(platform.gic.as_ref().map(|g| g.version), Some(shared::platform::GicVersion::V3));
    check("ID_AA64PFR0_EL1.GIC", field(pfr0, 24), field(pfr0, 24) == u64::from(v3));
    check("ID_AA64PFR1_EL1.SME", field(pfr1, 24), field(pfr1, 24) == 0);
    check("ID_AA64PFR1_EL1.MTE", field(pfr1, 8), field(pfr1, 8) == 0);
    check("ID_AA64ZFR0_EL1", mrs!("S3_0_C0_C4_4"), mrs!("S3_0_C0_C4_4") == 0);
    check("ID_AA64SMFR0_EL1", mrs!("S3_0_C0_C4_5"), mrs!("S3_0_C0_C4_5") == 0);
    check("ID_AA64DFR0_EL1.PMUVer", field(dfr0, 8), field(dfr0, 8) == 0);
    check("ID_AA64DFR0_EL1.PMSVer", field(dfr0, 32), field(dfr0, 32) == 0);
    check("ID_AA64DFR0_EL1.TraceVer", field(dfr0, 4), field(dfr0, 4) == 0);
    check("ID_AA64DFR0_EL1.DebugVer", field(dfr0, 0), field(dfr0, 0) >= 6);
    check("ID_AA64ISAR1_EL1.APA|API", isar1 & 0xff0, isar1 & 0xff0 == 0);
    check("ID_AA64MMFR1_EL1.VH", field(mmfr1, 8), field(mmfr1, 8) == 0);
    check("ID_AA64MMFR2_EL1.NV", field(mmfr2, 24), field(mmfr2, 24) == 0);
    check("unallocated S3_0_C0_C3_3", mrs!("S3_0_C0_C3_3"), mrs!("S3_0_C0_C3_3") == 0);
    let dfr0_32 = mrs!("S3_0_C0_C1_2");
    check("ID_DFR0_EL1.PerfMon", field(dfr0_32, 24), field(dfr0_32, 24) == 0);

    // Set/way maintenance: each trapped, none an UNDEF. Memory written
    // just before must read back unchanged.
    let mut buf = [0u64; 64];
    for (i, w) in buf.iter_mut().enumerate() {
        *w = 0x5157_0000 + i as u64;
    }
    let contextidr = mrs!("contextidr_el1");
    let (sctlr, mair) = (mrs!("sctlr_el1"), mrs!("mair_el1"));
    // SAFETY: set/way operations only clean/invalidate caches; under the
    // hypervisor they become clean+invalidate by VA of this VM's RAM.
    unsafe {
        core::arch::asm!("dc cisw, {0}", "dc isw, {0}", "dc csw, {0}", "dsb sy", "isb", in(reg) 0u64, options(nostack))
    };
    let intact = buf.iter().enumerate().all(|(i, &w)| w == 0x5157_0000 + i as u64);
    check("memory after DC CISW/ISW/CSW intact", intact as u64, intact);
    // The VM-control writes the hypervisor now traps (TVM) must still land.
    msr!("contextidr_el1", 0x1234);
    let got = mrs!("contextidr_el1");
    check("CONTEXTIDR_EL1 written under TVM", got, got == 0x1234);
    msr!("contextidr_el1", contextidr);
    msr!("mair_el1", mair);
    msr!("sctlr_el1", sctlr);
    check("SCTLR_EL1 unchanged", mrs!("sctlr_el1"), mrs!("sctlr_el1") == sctlr);
    // SAFETY: as above.
    unsafe { core::arch::asm!("dc cisw, {0}", "dsb sy", "isb", in(reg) 0u64, options(nostack)) };
    println!("hyptest idregs: DC CISW/ISW/CSW executed and survived");
    let _ = hvc(shared::hvc::vendor::PRINT_STATS);
    ok
}

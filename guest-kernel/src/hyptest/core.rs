//! Hypervisor-core self-tests (`test=NAME`, dispatched from `hyptest/mod.rs`),
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
//!   hypervisor then watches (HCR_EL2.TVM) are intact;
//! - `exit-regs`: fills x0-x30 with a pattern, takes six exits (an `hvc`;
//!   an ID register read into x5 and into x22; a GICD_TYPER read into w7
//!   and into w24; a UART flag read into w20) and checks every register
//!   afterwards: only the one the exit answers in may change. The
//!   hypervisor's fast exit saves and reloads only some registers
//!   (x20-x28 stay in the CPU, `hypervisor/src/arch/aarch64/exceptions.S`)
//!   and leaves an access to one of x20-x28 to its run loop, so both
//!   paths are taken;
//! - `rtc`: drives a PL031 RTC passed through to this VM (found in the
//!   DTB by `arm,pl031`): three times sets RTCMR = RTCDR + 1 with the
//!   match interrupt unmasked, waits in WFI for the interrupt (the
//!   virtual timer bounds the wait), clears it with RTCICR and EOIs; then
//!   waits a while more to see that no second interrupt follows a match.

use crate::arch::aarch64::sysreg::read_id;
use crate::println;
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{
    CNTFRQ_EL0, CNTV_CTL_EL0, CNTV_CVAL_EL0, CNTVCT_EL0, CONTEXTIDR_EL1, ID_AA64DFR0_EL1, ID_AA64ISAR1_EL1,
    ID_AA64MMFR1_EL1, ID_AA64MMFR2_EL1, ID_AA64PFR0_EL1, ID_AA64PFR1_EL1, MAIR_EL1, Readable, SCTLR_EL1, Writeable,
};
use shared::platform::Platform;

/// Whether `name` is one of this module's tests.
pub fn handles(name: &str) -> bool {
    matches!(name, "fp" | "fpreset" | "idregs" | "exit-regs" | "rtc")
}

/// Runs test `name`; returns whether it passed.
pub fn run(name: &str, platform: &Platform) -> bool {
    match name {
        "fp" => fp(platform),
        "fpreset" => fpreset(platform),
        "idregs" => idregs(platform),
        "exit-regs" => exit_regs(platform),
        "rtc" => rtc(platform),
        _ => false,
    }
}

fn hvc(fid: u32) -> u64 {
    crate::arch::aarch64::psci::hvc(fid, &[])
}

/// The virtual counter and its frequency.
fn counter() -> (u64, u64) {
    barrier::isb(barrier::SY);
    (CNTVCT_EL0.get(), CNTFRQ_EL0.get().max(1))
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
        crate::arch::aarch64::psci::system_reset()
    }
    // SAFETY: stores V0-V31 into `regs`; see `fp`.
    let fpcr = unsafe { hyptest_fp_store(&mut regs.0) };
    let dirty = regs.0.iter().filter(|&&q| q != 0).count();
    println!("hyptest fpreset: after {} reset(s): {dirty} non-zero V registers, FPCR {fpcr:#x}", platform.vm_resets);
    dirty == 0 && fpcr == 0
}

/// Writes an EL1 system register, then synchronizes the context. Callers
/// write back a value the register already had, or one that does not
/// change the kernel's execution (CONTEXTIDR, the virtual timer).
fn write_isb(reg: impl Writeable<T = u64>, v: u64) {
    reg.set(v);
    barrier::isb(barrier::SY);
}

fn idregs(platform: &Platform) -> bool {
    let field = |v: u64, lo: u32| (v >> lo) & 0xf;
    let mut ok = true;
    let mut check = |what: &str, got: u64, good: bool| {
        ok &= good;
        println!("hyptest idregs: {what} = {got:#x} {}", if good { "as expected" } else { "WRONG" });
    };
    let pfr0 = ID_AA64PFR0_EL1.get();
    let pfr1 = ID_AA64PFR1_EL1.get();
    let dfr0 = ID_AA64DFR0_EL1.get();
    let isar1 = ID_AA64ISAR1_EL1.get();
    let mmfr1 = ID_AA64MMFR1_EL1.get();
    let mmfr2 = ID_AA64MMFR2_EL1.get();
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
    check("ID_AA64ZFR0_EL1", read_id!("S3_0_C0_C4_4"), read_id!("S3_0_C0_C4_4") == 0);
    check("ID_AA64SMFR0_EL1", read_id!("S3_0_C0_C4_5"), read_id!("S3_0_C0_C4_5") == 0);
    check("ID_AA64DFR0_EL1.PMUVer", field(dfr0, 8), field(dfr0, 8) == 0);
    check("ID_AA64DFR0_EL1.PMSVer", field(dfr0, 32), field(dfr0, 32) == 0);
    check("ID_AA64DFR0_EL1.TraceVer", field(dfr0, 4), field(dfr0, 4) == 0);
    check("ID_AA64DFR0_EL1.DebugVer", field(dfr0, 0), field(dfr0, 0) >= 6);
    check("ID_AA64ISAR1_EL1.APA|API", isar1 & 0xff0, isar1 & 0xff0 == 0);
    check("ID_AA64MMFR1_EL1.VH", field(mmfr1, 8), field(mmfr1, 8) == 0);
    check("ID_AA64MMFR2_EL1.NV", field(mmfr2, 24), field(mmfr2, 24) == 0);
    check("unallocated S3_0_C0_C3_3", read_id!("S3_0_C0_C3_3"), read_id!("S3_0_C0_C3_3") == 0);
    let dfr0_32 = read_id!("S3_0_C0_C1_2");
    check("ID_DFR0_EL1.PerfMon", field(dfr0_32, 24), field(dfr0_32, 24) == 0);
    // The PMU is not context-switched, so its registers trap (MDCR_EL2.TPM,
    // TPMCR) and are refused: one VM cannot read or program counters that
    // run on while another VM has the CPU.
    let (pmcr, pmccntr) = crate::arch::aarch64::uaccess::probe_pmu();
    check("PMCR_EL0 refused (UNDEF)", pmcr.unwrap_or(0), pmcr.is_err());
    check("PMCCNTR_EL0 refused (UNDEF)", pmccntr.unwrap_or(0), pmccntr.is_err());

    // Set/way maintenance: each trapped, none an UNDEF. Memory written
    // just before must read back unchanged.
    let mut buf = [0u64; 64];
    for (i, w) in buf.iter_mut().enumerate() {
        *w = 0x5157_0000 + i as u64;
    }
    let contextidr = CONTEXTIDR_EL1.get();
    let (sctlr, mair) = (SCTLR_EL1.get(), MAIR_EL1.get());
    // SAFETY: set/way operations only clean/invalidate caches; under the
    // hypervisor they become clean+invalidate by VA of this VM's RAM.
    unsafe {
        core::arch::asm!("dc cisw, {0}", "dc isw, {0}", "dc csw, {0}", "dsb sy", "isb", in(reg) 0u64, options(nostack))
    };
    let intact = buf.iter().enumerate().all(|(i, &w)| w == 0x5157_0000 + i as u64);
    check("memory after DC CISW/ISW/CSW intact", intact as u64, intact);
    // The VM-control writes the hypervisor now traps (TVM) must still land.
    write_isb(CONTEXTIDR_EL1, 0x1234);
    let got = CONTEXTIDR_EL1.get();
    check("CONTEXTIDR_EL1 written under TVM", got, got == 0x1234);
    write_isb(CONTEXTIDR_EL1, contextidr);
    write_isb(MAIR_EL1, mair);
    write_isb(SCTLR_EL1, sctlr);
    check("SCTLR_EL1 unchanged", SCTLR_EL1.get(), SCTLR_EL1.get() == sctlr);
    // SAFETY: as above.
    unsafe { core::arch::asm!("dc cisw, {0}", "dsb sy", "isb", in(reg) 0u64, options(nostack)) };
    println!("hyptest idregs: DC CISW/ISW/CSW executed and survived");
    let _ = hvc(shared::hvc::vendor::PRINT_STATS);
    ok
}

/// Just enough of a GIC driver for `rtc`: one SPI and the virtual timer
/// PPI enabled, interrupts taken by polling the acknowledge register after
/// WFI (PSTATE.I stays set: WFI still wakes on a pending interrupt,
/// ARM ARM D1.6.2).
enum TestGic {
    V3,
    V2 { gic: arm_gic::gicv2::GicV2<'static>, group: arm_gic::InterruptGroup },
}

impl TestGic {
    fn new(platform: &Platform, spi: u32, ppi: u32) -> Option<TestGic> {
        use arm_gic::gicv3::{GicCpuInterface, GicV3};
        use arm_gic::{IntId, InterruptGroup, UniqueMmioPointer};
        use core::ptr::NonNull;
        let g = platform.gic.as_ref()?;
        let gicd = crate::arch::aarch64::mmu::phys_to_virt(g.gicd.base);
        let (spi, ppi) = (IntId::spi(spi - 32), IntId::ppi(ppi - 16));
        match g.version {
            shared::platform::GicVersion::V3 => {
                let gicr = crate::arch::aarch64::mmu::phys_to_virt(g.gicr.first()?.base);
                // SAFETY: mmu::init mapped the DTB's GICD and GICR as device
                // memory; nothing else drives the GIC during a self-test.
                let mut gic = unsafe {
                    GicV3::new(
                        UniqueMmioPointer::new(NonNull::new(gicd as *mut _)?),
                        NonNull::new(gicr as *mut _)?,
                        platform.cpus.len().max(1),
                    )
                }
                .ok()?;
                gic.setup(0);
                let _ = gic.set_interrupt_priority(spi, None, 0x80);
                let _ = gic.enable_interrupt(spi, None, true);
                let _ = gic.set_interrupt_priority(ppi, Some(0), 0x80);
                let _ = gic.enable_interrupt(ppi, Some(0), true);
                GicCpuInterface::set_priority_mask(0xff);
                let _ = InterruptGroup::Group1;
                Some(TestGic::V3)
            }
            shared::platform::GicVersion::V2 => {
                let gicc = crate::arch::aarch64::mmu::phys_to_virt(g.gicc?.base);
                // SAFETY: as above, for GICD and GICC.
                let mut gic = unsafe { arm_gic::gicv2::GicV2::new(gicd as *mut _, gicc as *mut _) };
                let group =
                    if gic.typer().has_security_extension() { InterruptGroup::Group1 } else { InterruptGroup::Group0 };
                gic.setup();
                gic.set_interrupt_priority(spi, 0x80);
                let _ = gic.enable_interrupt(spi, true);
                gic.set_interrupt_priority(ppi, 0x80);
                let _ = gic.enable_interrupt(ppi, true);
                gic.set_priority_mask(0xff);
                Some(TestGic::V2 { gic, group })
            }
        }
    }

    /// Acknowledges the highest-priority pending interrupt.
    fn ack(&mut self) -> Option<u32> {
        use arm_gic::InterruptGroup;
        use arm_gic::gicv3::GicCpuInterface;
        match self {
            TestGic::V3 => GicCpuInterface::get_and_acknowledge_interrupt(InterruptGroup::Group1).map(u32::from),
            TestGic::V2 { gic, group } => gic.get_and_acknowledge_interrupt(*group).map(u32::from),
        }
    }

    /// EOI: drops the priority and deactivates (EOImode 0).
    fn eoi(&mut self, intid: u32) {
        use arm_gic::gicv3::GicCpuInterface;
        use arm_gic::{IntId, InterruptGroup};
        let id = if intid < 32 { IntId::ppi(intid - 16) } else { IntId::spi(intid - 32) };
        match self {
            TestGic::V3 => GicCpuInterface::end_interrupt(id, InterruptGroup::Group1),
            TestGic::V2 { gic, group } => gic.end_interrupt(id, *group),
        }
    }
}

/// Arms the virtual timer `ticks` from now (CNTV_CTL_EL0 ENABLE, unmasked).
fn vtimer_in(ticks: u64) {
    let (now, _) = counter();
    write_isb(CNTV_CVAL_EL0, now + ticks);
    write_isb(CNTV_CTL_EL0, CNTV_CTL_EL0::ENABLE::SET.value);
}

/// PL031 registers (ARM DDI 0224 §3.2).
const RTCDR: usize = 0x00;
const RTCMR: usize = 0x04;
const RTCIMSC: usize = 0x10;
const RTCRIS: usize = 0x14;
const RTCICR: usize = 0x1c;

fn rtc(platform: &Platform) -> bool {
    use shared::platform::{DeviceMatch, find_device};
    let dev =
        crate::arch::aarch64::dtb().and_then(|b| find_device(b, DeviceMatch::Compatible("arm,pl031")).ok().flatten());
    let Some(dev) = dev else {
        println!("hyptest rtc: no arm,pl031 node in the DTB");
        return false;
    };
    let Some(&[0, spi, flags]) = dev.interrupts.get(..3).map(|c| <&[u32; 3]>::try_from(c).unwrap()) else {
        println!("hyptest rtc: the RTC's interrupts {:?} are not one SPI", dev.interrupts);
        return false;
    };
    let intid = 32 + spi;
    println!("hyptest rtc: PL031 at IPA {:#x}, INTID {intid} (flags {flags})", dev.region.base);
    let Some(base) = crate::arch::aarch64::mmu::map_probe_page(dev.region.base, false) else {
        println!("hyptest rtc: cannot map the RTC");
        return false;
    };
    // SAFETY: `base` maps the RTC's 4 KiB of registers as device memory.
    let reg = |off: usize| unsafe { core::ptr::read_volatile((base + off) as *const u32) };
    // SAFETY: as above; PL031 registers are 32-bit.
    let set = |off: usize, v: u32| unsafe { core::ptr::write_volatile((base + off) as *mut u32, v) };
    const VTIMER: u32 = 27;
    let Some(mut gic) = TestGic::new(platform, intid, VTIMER) else {
        println!("hyptest rtc: no usable GIC");
        return false;
    };
    // SAFETY: masks IRQs at EL1; the test polls the GIC instead.
    unsafe { core::arch::asm!("msr daifset, #2", "isb", options(nomem, nostack)) };
    let (_, frq) = counter();
    let (mut got, mut extra, mut timeouts) = (0, 0, 0);
    const ROUNDS: u32 = 3;
    for round in 1..=ROUNDS {
        set(RTCICR, 1);
        let dr = reg(RTCDR);
        set(RTCMR, dr.wrapping_add(1));
        set(RTCIMSC, 1);
        let (t0, _) = counter();
        vtimer_in(3 * frq);
        loop {
            // Traps to the hypervisor.
            aarch64_cpu::asm::wfi();
            let Some(id) = gic.ack() else { continue };
            if id == intid {
                let (t1, _) = counter();
                let raw = reg(RTCRIS);
                set(RTCICR, 1);
                let cleared = reg(RTCRIS) & 1 == 0;
                gic.eoi(id);
                write_isb(CNTV_CTL_EL0, 0);
                got += 1;
                println!(
                    "hyptest rtc: match {round}: interrupt after {} ms (RTCDR {dr} -> {}, RTCRIS {raw:#x}, cleared: {cleared})",
                    (t1 - t0) * 1000 / frq,
                    reg(RTCDR)
                );
                break;
            }
            if id == VTIMER {
                write_isb(CNTV_CTL_EL0, 0);
                gic.eoi(id);
                timeouts += 1;
                println!("hyptest rtc: match {round}: no interrupt within 3 s (RTCDR {dr} -> {})", reg(RTCDR));
                break;
            }
            gic.eoi(id);
        }
        // No match is pending now: nothing more may come from the RTC
        // until the next one is set.
        vtimer_in(frq * 6 / 5);
        loop {
            aarch64_cpu::asm::wfi();
            let Some(id) = gic.ack() else { continue };
            if id == VTIMER {
                write_isb(CNTV_CTL_EL0, 0);
                gic.eoi(id);
                break;
            }
            if id == intid {
                extra += 1;
                set(RTCICR, 1);
            }
            gic.eoi(id);
        }
    }
    set(RTCIMSC, 0);
    println!("hyptest rtc: {ROUNDS} matches, {got} interrupts, {extra} extra, {timeouts} timeouts");
    let _ = hvc(shared::hvc::vendor::PRINT_STATS);
    got == ROUNDS && extra == 0
}

// The registers around six exits, for `exit-regs`: each probe sets every
// general register to a pattern (0x5a00 + n in xn), takes one exit, and
// stores x0-x30 into 32 words of `out`; callee-saved registers are kept
// on the stack around it all.
core::arch::global_asm!(
    r#"
.macro exit_regs_fill
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30
    mov     x\n, #(0x5a00 + \n)
    .endr
.endm
.macro exit_regs_dump probe
    sub     sp, sp, #256
    stp     x0, x1, [sp, #0]
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x19, [sp, #144]
    stp     x20, x21, [sp, #160]
    stp     x22, x23, [sp, #176]
    stp     x24, x25, [sp, #192]
    stp     x26, x27, [sp, #208]
    stp     x28, x29, [sp, #224]
    str     x30, [sp, #240]
    ldr     x0, [sp, #256 + 96]
    add     x0, x0, #(\probe * 256)
    mov     x1, #0
1:  ldr     x2, [sp, x1]
    str     x2, [x0, x1]
    add     x1, x1, #8
    cmp     x1, #248
    b.ne    1b
    add     sp, sp, #256
.endm

// hyptest_exit_regs(out: *mut [[u64; 32]; 6], gicd: usize, uart: usize)
.global hyptest_exit_regs
hyptest_exit_regs:
    sub     sp, sp, #128
    stp     x19, x20, [sp, #0]
    stp     x21, x22, [sp, #16]
    stp     x23, x24, [sp, #32]
    stp     x25, x26, [sp, #48]
    stp     x27, x28, [sp, #64]
    stp     x29, x30, [sp, #80]
    stp     x0, x1, [sp, #96]
    str     x2, [sp, #112]

    exit_regs_fill
    mov     x0, #0x84000000
    hvc     #0
    exit_regs_dump 0

    exit_regs_fill
    mrs     x5, id_aa64pfr0_el1
    exit_regs_dump 1

    exit_regs_fill
    mrs     x22, id_aa64pfr0_el1
    exit_regs_dump 2

    exit_regs_fill
    ldr     x9, [sp, #104]
    add     x9, x9, #4
    ldr     w7, [x9]
    exit_regs_dump 3

    exit_regs_fill
    ldr     x9, [sp, #104]
    add     x9, x9, #4
    ldr     w24, [x9]
    exit_regs_dump 4

    exit_regs_fill
    ldr     x9, [sp, #112]
    add     x9, x9, #0x18
    ldr     w20, [x9]
    exit_regs_dump 5

    ldp     x19, x20, [sp, #0]
    ldp     x21, x22, [sp, #16]
    ldp     x23, x24, [sp, #32]
    ldp     x25, x26, [sp, #48]
    ldp     x27, x28, [sp, #64]
    ldp     x29, x30, [sp, #80]
    add     sp, sp, #128
    ret
"#
);

unsafe extern "C" {
    fn hyptest_exit_regs(out: *mut [[u64; 32]; 6], gicd: usize, uart: usize);
}

/// `exit-regs`: see the module comment.
fn exit_regs(platform: &Platform) -> bool {
    use crate::arch::aarch64::mmu::phys_to_virt;
    let (Some(gic), Some(uart)) = (platform.gic.as_ref(), platform.uart) else {
        println!("hyptest exit-regs: no GIC or UART in the DTB");
        return false;
    };
    let gicd = phys_to_virt(gic.gicd.base);
    let uart_va = phys_to_virt(uart.region.base);
    let mut out = [[0u64; 32]; 6];
    // SAFETY: the function follows the C ABI (callee-saved registers kept
    // on its stack), writes only `out`, and reads GICD_TYPER and UART FR,
    // both mapped by mmu::init as device memory.
    unsafe { hyptest_exit_regs(&mut out, gicd, uart_va) };
    let typer = out[3][7];
    let id = out[1][5];
    // (probe, what, the register the exit answers in, its expected value;
    // None: any value)
    let probes: [(&str, usize, Option<u64>); 6] = [
        ("hvc PSCI_VERSION into x0", 0, Some(0x1_0001)),
        ("ID_AA64PFR0_EL1 into x5 (fast exit)", 5, None),
        ("ID_AA64PFR0_EL1 into x22 (run loop)", 22, Some(id)),
        ("GICD_TYPER into w7 (fast exit)", 7, None),
        ("GICD_TYPER into w24 (run loop)", 24, Some(typer)),
        ("UART FR into w20 (run loop)", 20, None),
    ];
    let mut ok = true;
    for (i, &(what, answer, want)) in probes.iter().enumerate() {
        let mut wrong = heapless::Vec::<(usize, u64), 31>::new();
        for (n, &got) in out[i][..31].iter().enumerate() {
            let expected = match n {
                _ if n == answer => match want {
                    Some(w) => w,
                    None => continue,
                },
                // The hvc's results: SMCCC lets x1-x3 change.
                1..=3 if i == 0 => continue,
                // The MMIO probes' address register.
                9 if i >= 3 => {
                    let base = if i == 5 { uart_va + 0x18 } else { gicd + 4 };
                    base as u64
                }
                _ => 0x5a00 + n as u64,
            };
            if got != expected {
                let _ = wrong.push((n, got));
            }
        }
        if wrong.is_empty() {
            println!("hyptest exit-regs: {what}: every other register kept");
        } else {
            ok = false;
            for (n, got) in wrong {
                println!("hyptest exit-regs: {what}: x{n} = {got:#x} WRONG");
            }
        }
    }
    ok
}

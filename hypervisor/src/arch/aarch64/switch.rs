//! The Rust half of the world switch (see exceptions.S for the other half
//! and docs/world-switch.md for a walk through one exit and entry).
//!
//! Per exit only general registers move (in assembly). The EL1 system
//! registers, stage-2 and the trap configuration are loaded here when a
//! vCPU starts running on a CPU and saved when it stops, the way Hafnium
//! and KVM's nVHE `__kvm_vcpu_run` do.

use crate::vcpu::{El1Sysregs, GuestRegs};
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::*;

/// Why `__guest_enter` returned (exceptions.S `EXIT_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitKind {
    Sync,
    Irq,
    Fiq,
    SError,
    /// Any exception from AArch32, which we never run.
    AArch32,
}

/// Host state the world switch saves: AAPCS64 callee-saved registers and
/// the stack pointer, plus the running vCPU's registers and the fast
/// path's context (exceptions.S layout: x18..x30 at 8 * n, SP at 8 * 13,
/// guest pointer at 8 * 14, fast context at 8 * 15).
#[repr(C)]
pub struct HostRegs {
    callee_saved: [u64; 13],
    sp: u64,
    guest: *mut GuestRegs,
    fast: *mut core::ffi::c_void,
}

impl Default for HostRegs {
    fn default() -> Self {
        Self::new()
    }
}

impl HostRegs {
    /// An empty save area.
    pub const fn new() -> Self {
        Self { callee_saved: [0; 13], sp: 0, guest: core::ptr::null_mut(), fast: core::ptr::null_mut() }
    }
}

unsafe extern "C" {
    fn __guest_enter(guest: *mut GuestRegs, host: *mut HostRegs, fast: *mut core::ffi::c_void) -> u64;
}

/// Runs the loaded vCPU until an exit the fast path does not answer
/// (`fastpath::hyp_fast_exit`, called from exceptions.S with `fast`).
///
/// # Safety
/// The vCPU's EL1 context, stage-2 tables (VTTBR_EL2) and trap
/// configuration must be loaded, so that nothing the guest does can reach
/// memory outside its VM. `regs` is the vCPU's in `fast` (`FastCtx::vcpu`);
/// all three are valid and used by nothing else until this returns.
pub unsafe fn enter(regs: *mut GuestRegs, host: *mut HostRegs, fast: *mut core::ffi::c_void) -> ExitKind {
    // SAFETY: the caller's contract; the assembly stores to `regs` and
    // `host`, and the fast path uses `fast`'s pointers, one at a time.
    let code = unsafe { __guest_enter(regs, host, fast.cast()) };
    match code {
        0 => ExitKind::Sync,
        1 => ExitKind::Irq,
        2 => ExitKind::Fiq,
        3 => ExitKind::SError,
        _ => ExitKind::AArch32,
    }
}

/// HCR_EL2 while a guest runs (ARM ARM D19.2.48):
/// - VM: stage-2 translation on; SWIO: set/way invalidate as clean+invalidate;
/// - FMO, IMO, AMO: physical FIQ, IRQ and SError go to EL2, virtual ones to the guest;
/// - FB, BSU = inner shareable: TLB and barrier operations broadcast, since
///   vCPUs move between physical CPUs;
/// - TSC: SMC traps (PSCI through SMC is answered like HVC);
/// - TWI, TWE: WFI/WFE trap so that a waiting vCPU gives its CPU away;
/// - TSW: data-cache set/way operations trap (meaningless under stage-2;
///   emulated by `sysregs.rs`);
/// - TID3: ID group 3 reads trap, so that the guest sees the features the
///   hypervisor virtualizes (`idregs`);
/// - TACR, TIDCP: implementation-defined registers trap;
/// - RW: EL1 is AArch64.
///
/// A vCPU may add TVM (`Vcpu::hcr`) while a set/way flush waits for its
/// caches to be switched.
pub const HCR_GUEST: u64 = HCR_EL2::VM::SET.value
    | HCR_EL2::SWIO::SET.value
    | HCR_EL2::FMO::SET.value
    | HCR_EL2::IMO::SET.value
    | HCR_EL2::AMO::SET.value
    | HCR_EL2::FB::SET.value
    | HCR_EL2::BSU::InnerShareable.value
    | HCR_EL2::TWI::SET.value
    | HCR_EL2::TWE::SET.value
    | HCR_EL2::TID3::SET.value
    | HCR_EL2::TSC::SET.value
    | HCR_EL2::TIDCP::SET.value
    | HCR_EL2::TACR::SET.value
    | HCR_EL2::TSW::SET.value
    | HCR_EL2::RW::EL1IsAarch64.value;
const _: () = assert!(HCR_GUEST == crate::vcpu::HCR_GUEST, "the bits listed above");

/// HCR_EL2 between vCPUs: only RW (EL1 is AArch64), no stage-2, no traps.
pub const HCR_HOST: u64 = HCR_EL2::RW::EL1IsAarch64.value;

const _: () = assert!(HCR_EL2::TVM::SET.value == crate::vcpu::HCR_TVM, "HCR_EL2.TVM");

/// Loads a vCPU's EL1 context into the CPU.
pub fn restore_el1(s: &El1Sysregs) {
    SCTLR_EL1.set(s.sctlr);
    ACTLR_EL1.set(s.actlr);
    CPACR_EL1.set(s.cpacr);
    TTBR0_EL1.set(s.ttbr0);
    TTBR1_EL1.set(s.ttbr1);
    TCR_EL1.set(s.tcr);
    MAIR_EL1.set(s.mair);
    AMAIR_EL1.set(s.amair);
    VBAR_EL1.set(s.vbar);
    CONTEXTIDR_EL1.set(s.contextidr);
    TPIDR_EL0.set(s.tpidr_el0);
    TPIDRRO_EL0.set(s.tpidrro_el0);
    TPIDR_EL1.set(s.tpidr_el1);
    ESR_EL1.set(s.esr);
    FAR_EL1.set(s.far);
    PAR_EL1.set(s.par);
    AFSR0_EL1.set(s.afsr0);
    AFSR1_EL1.set(s.afsr1);
    CNTKCTL_EL1.set(s.cntkctl);
    CSSELR_EL1.set(s.csselr);
    MDSCR_EL1.set(s.mdscr);
    SP_EL0.set(s.sp_el0);
    SP_EL1.set(s.sp_el1);
    ELR_EL1.set(s.elr_el1);
    SPSR_EL1.set(s.spsr_el1);
    CNTV_CVAL_EL0.set(s.cntv_cval);
    CNTV_CTL_EL0.set(s.cntv_ctl);
    VMPIDR_EL2.set(s.vmpidr);
}

/// Saves the CPU's EL1 context into a vCPU.
pub fn save_el1(s: &mut El1Sysregs) {
    s.sctlr = SCTLR_EL1.get();
    s.actlr = ACTLR_EL1.get();
    s.cpacr = CPACR_EL1.get();
    s.ttbr0 = TTBR0_EL1.get();
    s.ttbr1 = TTBR1_EL1.get();
    s.tcr = TCR_EL1.get();
    s.mair = MAIR_EL1.get();
    s.amair = AMAIR_EL1.get();
    s.vbar = VBAR_EL1.get();
    s.contextidr = CONTEXTIDR_EL1.get();
    s.tpidr_el0 = TPIDR_EL0.get();
    s.tpidrro_el0 = TPIDRRO_EL0.get();
    s.tpidr_el1 = TPIDR_EL1.get();
    s.esr = ESR_EL1.get();
    s.far = FAR_EL1.get();
    s.par = PAR_EL1.get();
    s.afsr0 = AFSR0_EL1.get();
    s.afsr1 = AFSR1_EL1.get();
    s.cntkctl = CNTKCTL_EL1.get();
    s.csselr = CSSELR_EL1.get();
    s.mdscr = MDSCR_EL1.get();
    s.sp_el0 = SP_EL0.get();
    s.sp_el1 = SP_EL1.get();
    s.elr_el1 = ELR_EL1.get();
    s.spsr_el1 = SPSR_EL1.get();
    s.cntv_ctl = CNTV_CTL_EL0.get();
    s.cntv_cval = CNTV_CVAL_EL0.get();
    s.vmpidr = VMPIDR_EL2.get();
    // Stop the virtual timer of a vCPU that no longer runs here, so its
    // interrupt cannot fire into the next vCPU.
    CNTV_CTL_EL0.set(0);
}

/// Loads a VM's stage-2 and a vCPU's trap configuration (VTTBR_EL2 with
/// the VMID, VTCR_EL2, HCR_EL2 = `hcr`, normally [`HCR_GUEST`]).
pub fn load_vm(vttbr: u64, vtcr: u64, hcr: u64) {
    VTCR_EL2.set(vtcr);
    VTTBR_EL2.set(vttbr);
    HCR_EL2.set(hcr);
    barrier::isb(barrier::SY);
}

/// Turns stage-2 and the guest traps off (between vCPUs).
pub fn unload_vm() {
    HCR_EL2.set(HCR_HOST);
    VTTBR_EL2.set(0);
    barrier::isb(barrier::SY);
}

/// Invalidates all stage-1 and stage-2 TLB entries of the VMID in
/// `vttbr`, on every CPU (ARM ARM D8.13 "TLB maintenance"): needed after
/// a VM's stage-2 changes or before its VMID is reused.
pub fn flush_vmid(vttbr: u64) {
    let old = VTTBR_EL2.get();
    VTTBR_EL2.set(vttbr);
    barrier::isb(barrier::SY);
    barrier::dsb(barrier::ISHST);
    // SAFETY: TLB maintenance does not change memory contents.
    unsafe { core::arch::asm!("tlbi vmalls12e1is", options(nostack)) };
    barrier::dsb(barrier::ISH);
    barrier::isb(barrier::SY);
    VTTBR_EL2.set(old);
    barrier::isb(barrier::SY);
}

/// A vCPU's FP/SIMD registers (fpsimd.S layout).
#[repr(C, align(16))]
#[derive(Clone, Copy, Default)]
pub struct FpState {
    q: [u128; 32],
    fpsr: u64,
    fpcr: u64,
}

unsafe extern "C" {
    fn __fpsimd_save(state: *mut FpState);
    fn __fpsimd_restore(state: *const FpState);
}

/// Saves the CPU's FP/SIMD registers (for their owner, fp.rs). FP/SIMD
/// must not be trapped (CPTR_EL2.TFP clear).
pub fn save_fp(s: &mut FpState) {
    // SAFETY: stores 528 bytes into the exclusively borrowed FpState;
    // touches no other memory, and EL2 code never uses these registers.
    unsafe { __fpsimd_save(s) };
}

/// Loads a vCPU's FP/SIMD registers (CPTR_EL2.TFP clear, as for [`save_fp`]).
pub fn restore_fp(s: &FpState) {
    // SAFETY: reads the FpState; only FP/SIMD registers change.
    unsafe { __fpsimd_restore(s) };
}

//! The Rust half of the world switch (see exceptions.S for the other half
//! and docs/world-switch.md for a walk through one exit and entry).
//!
//! Per exit only general registers move (in assembly). The EL1 system
//! registers, stage-2 and the trap configuration are loaded here when a
//! vCPU starts running on a CPU and saved when it stops, the way Hafnium
//! and KVM's nVHE `__kvm_vcpu_run` do.

use super::sysreg::{isb, read_sysreg, write_sysreg};
use crate::vcpu::{El1Sysregs, GuestRegs};

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
/// the stack pointer, plus the running vCPU's registers (exceptions.S
/// layout: x18..x30 at 8 * n, SP at 8 * 13, guest pointer at 8 * 14).
#[repr(C)]
pub struct HostRegs {
    callee_saved: [u64; 13],
    sp: u64,
    guest: *mut GuestRegs,
}

impl Default for HostRegs {
    fn default() -> Self {
        Self::new()
    }
}

impl HostRegs {
    /// An empty save area.
    pub const fn new() -> Self {
        Self { callee_saved: [0; 13], sp: 0, guest: core::ptr::null_mut() }
    }
}

unsafe extern "C" {
    fn __guest_enter(guest: *mut GuestRegs, host: *mut HostRegs) -> u64;
}

/// Runs the loaded vCPU until its next exception to EL2.
///
/// # Safety
/// The vCPU's EL1 context, stage-2 tables (VTTBR_EL2) and trap
/// configuration must be loaded, so that nothing the guest does can reach
/// memory outside its VM.
pub unsafe fn enter(regs: &mut GuestRegs, host: &mut HostRegs) -> ExitKind {
    // SAFETY: both pointers come from live exclusive references; the
    // assembly only stores to them, and the caller guarantees isolation.
    let code = unsafe { __guest_enter(regs, host) };
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
pub const HCR_GUEST: u64 = (1 << 0) // VM
    | (1 << 1)   // SWIO
    | (1 << 3)   // FMO
    | (1 << 4)   // IMO
    | (1 << 5)   // AMO
    | (1 << 9)   // FB
    | (1 << 10)  // BSU = inner shareable
    | (1 << 13)  // TWI
    | (1 << 14)  // TWE
    | (1 << 18)  // TID3
    | (1 << 19)  // TSC
    | (1 << 20)  // TIDCP
    | (1 << 21)  // TACR
    | (1 << 22)  // TSW
    | (1 << 31); // RW

/// HCR_EL2.TVM (bit 26): writes to the EL1 virtual-memory controls trap
/// (ARM ARM D19.2.48).
pub const HCR_TVM: u64 = 1 << 26;

/// Loads a vCPU's EL1 context into the CPU.
pub fn restore_el1(s: &El1Sysregs) {
    write_sysreg!(sctlr_el1, s.sctlr);
    write_sysreg!(actlr_el1, s.actlr);
    write_sysreg!(cpacr_el1, s.cpacr);
    write_sysreg!(ttbr0_el1, s.ttbr0);
    write_sysreg!(ttbr1_el1, s.ttbr1);
    write_sysreg!(tcr_el1, s.tcr);
    write_sysreg!(mair_el1, s.mair);
    write_sysreg!(amair_el1, s.amair);
    write_sysreg!(vbar_el1, s.vbar);
    write_sysreg!(contextidr_el1, s.contextidr);
    write_sysreg!(tpidr_el0, s.tpidr_el0);
    write_sysreg!(tpidrro_el0, s.tpidrro_el0);
    write_sysreg!(tpidr_el1, s.tpidr_el1);
    write_sysreg!(esr_el1, s.esr);
    write_sysreg!(far_el1, s.far);
    write_sysreg!(par_el1, s.par);
    write_sysreg!(afsr0_el1, s.afsr0);
    write_sysreg!(afsr1_el1, s.afsr1);
    write_sysreg!(cntkctl_el1, s.cntkctl);
    write_sysreg!(csselr_el1, s.csselr);
    write_sysreg!(mdscr_el1, s.mdscr);
    write_sysreg!(sp_el0, s.sp_el0);
    write_sysreg!(sp_el1, s.sp_el1);
    write_sysreg!(elr_el1, s.elr_el1);
    write_sysreg!(spsr_el1, s.spsr_el1);
    write_sysreg!(cntv_cval_el0, s.cntv_cval);
    write_sysreg!(cntv_ctl_el0, s.cntv_ctl);
    write_sysreg!(vmpidr_el2, s.vmpidr);
}

/// Saves the CPU's EL1 context into a vCPU.
pub fn save_el1(s: &mut El1Sysregs) {
    s.sctlr = read_sysreg!(sctlr_el1);
    s.actlr = read_sysreg!(actlr_el1);
    s.cpacr = read_sysreg!(cpacr_el1);
    s.ttbr0 = read_sysreg!(ttbr0_el1);
    s.ttbr1 = read_sysreg!(ttbr1_el1);
    s.tcr = read_sysreg!(tcr_el1);
    s.mair = read_sysreg!(mair_el1);
    s.amair = read_sysreg!(amair_el1);
    s.vbar = read_sysreg!(vbar_el1);
    s.contextidr = read_sysreg!(contextidr_el1);
    s.tpidr_el0 = read_sysreg!(tpidr_el0);
    s.tpidrro_el0 = read_sysreg!(tpidrro_el0);
    s.tpidr_el1 = read_sysreg!(tpidr_el1);
    s.esr = read_sysreg!(esr_el1);
    s.far = read_sysreg!(far_el1);
    s.par = read_sysreg!(par_el1);
    s.afsr0 = read_sysreg!(afsr0_el1);
    s.afsr1 = read_sysreg!(afsr1_el1);
    s.cntkctl = read_sysreg!(cntkctl_el1);
    s.csselr = read_sysreg!(csselr_el1);
    s.mdscr = read_sysreg!(mdscr_el1);
    s.sp_el0 = read_sysreg!(sp_el0);
    s.sp_el1 = read_sysreg!(sp_el1);
    s.elr_el1 = read_sysreg!(elr_el1);
    s.spsr_el1 = read_sysreg!(spsr_el1);
    s.cntv_ctl = read_sysreg!(cntv_ctl_el0);
    s.cntv_cval = read_sysreg!(cntv_cval_el0);
    s.vmpidr = read_sysreg!(vmpidr_el2);
    // Stop the virtual timer of a vCPU that no longer runs here, so its
    // interrupt cannot fire into the next vCPU.
    write_sysreg!(cntv_ctl_el0, 0);
}

/// Loads a VM's stage-2 and a vCPU's trap configuration (VTTBR_EL2 with
/// the VMID, VTCR_EL2, HCR_EL2 = `hcr`, normally [`HCR_GUEST`]).
pub fn load_vm(vttbr: u64, vtcr: u64, hcr: u64) {
    write_sysreg!(vtcr_el2, vtcr);
    write_sysreg!(vttbr_el2, vttbr);
    write_sysreg!(hcr_el2, hcr);
    isb();
}

/// Turns stage-2 and the guest traps off (between vCPUs).
pub fn unload_vm() {
    write_sysreg!(hcr_el2, 1 << 31);
    write_sysreg!(vttbr_el2, 0);
    isb();
}

/// Invalidates all stage-1 and stage-2 TLB entries of the VMID in
/// `vttbr`, on every CPU (ARM ARM D8.13 "TLB maintenance"): needed after
/// a VM's stage-2 changes or before its VMID is reused.
pub fn flush_vmid(vttbr: u64) {
    let old = read_sysreg!(vttbr_el2);
    write_sysreg!(vttbr_el2, vttbr);
    isb();
    // SAFETY: TLB maintenance does not change memory contents.
    unsafe { core::arch::asm!("dsb ishst", "tlbi vmalls12e1is", "dsb ish", "isb", options(nostack)) };
    write_sysreg!(vttbr_el2, old);
    isb();
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

//! Trapped system-register accesses the hypervisor emulates, beyond the
//! GIC's (exit.rs): ID register reads (HCR_EL2.TID3, values from the pure
//! `idregs` core), set/way cache maintenance (HCR_EL2.TSW) and, while a
//! set/way flush is pending, writes to the EL1 virtual-memory controls
//! (HCR_EL2.TVM) — KVM's `kvm_set_way_flush`/`kvm_toggle_cache`
//! (`arch/arm64/kvm/mmu.c`).

use super::exit::Action;
use super::switch::HCR_TVM;
use super::sysreg::{clean_invalidate_dcache_range, read_sysreg};
use super::vmm::{Vcpu, Vm};
use crate::esr::{SysReg, SysRegAccess, SysRegTrap};
use crate::idregs::{self, VmFeatures};
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{
    AFSR0_EL1, AFSR1_EL1, AMAIR_EL1, CONTEXTIDR_EL1, ESR_EL1, FAR_EL1, HCR_EL2, ID_AA64PFR0_EL1, MAIR_EL1, Readable,
    SCTLR_EL1, TCR_EL1, TTBR0_EL1, TTBR1_EL1, Writeable,
};
use shared::platform::GicVersion;

/// Reads ID register `S3_0_C0_C<crm>_<op2>` from the hardware. Only
/// called for allocated encodings ([`idregs::reads_hardware`]).
fn read_id_hw(reg: SysReg) -> u64 {
    macro_rules! id {
        ($($crm:literal, $op2:literal => $name:ident;)*) => {
            match (reg.crm, reg.op2) {
                $(($crm, $op2) => read_sysreg!($name),)*
                _ => 0,
            }
        };
    }
    // The generic S3_0_C0_Cm_n names assemble whatever the assembler's
    // architecture level; reads at EL2 have no side effects.
    id! {
        1, 0 => S3_0_C0_C1_0; 1, 1 => S3_0_C0_C1_1; 1, 2 => S3_0_C0_C1_2; 1, 3 => S3_0_C0_C1_3;
        1, 4 => S3_0_C0_C1_4; 1, 5 => S3_0_C0_C1_5; 1, 6 => S3_0_C0_C1_6; 1, 7 => S3_0_C0_C1_7;
        2, 0 => S3_0_C0_C2_0; 2, 1 => S3_0_C0_C2_1; 2, 2 => S3_0_C0_C2_2; 2, 3 => S3_0_C0_C2_3;
        2, 4 => S3_0_C0_C2_4; 2, 5 => S3_0_C0_C2_5; 2, 6 => S3_0_C0_C2_6; 2, 7 => S3_0_C0_C2_7;
        3, 0 => S3_0_C0_C3_0; 3, 1 => S3_0_C0_C3_1; 3, 2 => S3_0_C0_C3_2;
        3, 4 => S3_0_C0_C3_4; 3, 5 => S3_0_C0_C3_5; 3, 6 => S3_0_C0_C3_6;
        4, 0 => S3_0_C0_C4_0; 4, 1 => S3_0_C0_C4_1;
        5, 0 => S3_0_C0_C5_0;
        6, 0 => S3_0_C0_C6_0; 6, 1 => S3_0_C0_C6_1; 6, 2 => S3_0_C0_C6_2;
        7, 0 => S3_0_C0_C7_0; 7, 1 => S3_0_C0_C7_1; 7, 2 => S3_0_C0_C7_2;
    }
}

/// What a guest of `vm` reads from ID register `reg`.
pub fn read_id(vm: &Vm, reg: SysReg) -> u64 {
    let features = VmFeatures {
        gic_v3: vm.gic == GicVersion::V3,
        aarch32: idregs::has_aarch32_el0(ID_AA64PFR0_EL1.get()),
    };
    let hw = if idregs::reads_hardware(reg) { read_id_hw(reg) } else { 0 };
    idregs::sanitize(reg, hw, &features)
}

/// SCTLR_EL1.M and .C both set: the vCPU's stage-1 MMU and data cache are
/// on (ARM ARM D19.2.118 "SCTLR_EL1"; KVM's `vcpu_has_cache_enabled`).
fn caches_on(sctlr: u64) -> bool {
    (SCTLR_EL1::M::SET + SCTLR_EL1::C::SET).matches_all(sctlr)
}

/// Cleans and invalidates all of the VM's RAM to the point of coherency,
/// by VA through EL2's identity map (KVM's `stage2_flush_vm`).
fn flush_vm(vm: &Vm) {
    clean_invalidate_dcache_range(vm.host_ram as usize, vm.spec.memory.size as usize);
}

fn set_hcr(v: &mut Vcpu, hcr: u64) {
    if hcr != v.hcr {
        v.hcr = hcr;
        HCR_EL2.set(hcr);
        barrier::isb(barrier::SY);
    }
}

/// Emulates a trapped access from the hypervisor's own trap groups; None
/// if `acc` belongs to none of them (the caller decides).
pub fn handle(vm: &Vm, v: &mut Vcpu, acc: &SysRegAccess) -> Option<Action> {
    match acc.reg.trap() {
        SysRegTrap::IdGroup3 if acc.read => {
            let value = read_id(vm, acc.reg);
            v.regs.set(acc.rt, value);
        }
        SysRegTrap::SetWay if !acc.read => {
            // Set/way operations name cache lines of *this* CPU, which
            // mean nothing to a VM (its memory may be in any CPU's cache,
            // and the vCPU may move): the first one flushes the VM's whole
            // RAM by VA, then TVM waits for the guest to turn its caches
            // on or off, when it is flushed again (ARM ARM D7.5.9
            // "Performing cache maintenance by set/way"; KVM's
            // kvm_set_way_flush). Never an UNDEF.
            if v.hcr & HCR_TVM == 0 {
                flush_vm(vm);
                set_hcr(v, v.hcr | HCR_TVM);
            }
        }
        SysRegTrap::VmControl if !acc.read => {
            let value = v.regs.get(acc.rt);
            let r = acc.reg;
            if r == SysReg::SCTLR_EL1 {
                let was = caches_on(SCTLR_EL1.get());
                SCTLR_EL1.set(value);
                let now = caches_on(value);
                // KVM's kvm_toggle_cache: caches switched on need their
                // stale lines invalidated, switched off cleaned: one
                // clean+invalidate does both. Once on, stop trapping.
                if now != was {
                    flush_vm(vm);
                }
                if now {
                    set_hcr(v, v.hcr & !HCR_TVM);
                }
            } else if r == SysReg::TTBR0_EL1 {
                TTBR0_EL1.set(value);
            } else if r == SysReg::TTBR1_EL1 {
                TTBR1_EL1.set(value);
            } else if r == SysReg::TCR_EL1 {
                TCR_EL1.set(value);
            } else if r == SysReg::ESR_EL1 {
                ESR_EL1.set(value);
            } else if r == SysReg::FAR_EL1 {
                FAR_EL1.set(value);
            } else if r == SysReg::AFSR0_EL1 {
                AFSR0_EL1.set(value);
            } else if r == SysReg::AFSR1_EL1 {
                AFSR1_EL1.set(value);
            } else if r == SysReg::MAIR_EL1 {
                MAIR_EL1.set(value);
            } else if r == SysReg::AMAIR_EL1 {
                AMAIR_EL1.set(value);
            } else {
                CONTEXTIDR_EL1.set(value);
            }
        }
        _ => return None,
    }
    v.regs.pc += 4;
    Some(Action::Continue)
}

//! Trapped system-register accesses the hypervisor emulates, beyond the
//! GIC's (exit.rs): ID register reads (HCR_EL2.TID3, values from the pure
//! `idregs` core), set/way cache maintenance (HCR_EL2.TSW) and, while a
//! set/way flush is pending, writes to the EL1 virtual-memory controls
//! (HCR_EL2.TVM) — KVM's `kvm_set_way_flush`/`kvm_toggle_cache`
//! (`arch/arm64/kvm/mmu.c`), with the policy and the chunked flush in the
//! pure `setway` core.

use super::exit::Action;
use super::switch::HCR_TVM;
use super::sysreg::read_sysreg;
use super::vmm::{Vcpu, Vm};
use crate::esr::{SysReg, SysRegAccess, SysRegTrap};
use crate::idregs::{self, IdTable, VmFeatures};
use crate::setway::{self, FlushCursor};
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{
    AFSR0_EL1, AFSR1_EL1, AMAIR_EL1, CONTEXTIDR_EL1, ESR_EL1, FAR_EL1, HCR_EL2, ID_AA64PFR0_EL1, MAIR_EL1, Readable,
    SCTLR_EL1, TCR_EL1, TTBR0_EL1, TTBR1_EL1, Writeable,
};
use shared::platform::GicVersion;

/// Reads ID register `S3_0_C0_C<crm>_<op2>` from the hardware. Only
/// called for allocated encodings ([`idregs::reads_hardware`]), when a
/// VM is built.
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

/// What a VM with vGIC `gic` reads from the ID registers, from this
/// CPU's hardware values (`idregs::IdTable`).
pub fn id_table(gic: GicVersion) -> IdTable {
    let features =
        VmFeatures { gic_v3: gic == GicVersion::V3, aarch32: idregs::has_aarch32_el0(ID_AA64PFR0_EL1.get()) };
    IdTable::new(&features, read_id_hw)
}

/// Starts cleaning and invalidating all of the VM's RAM to the point of
/// coherency, by VA through EL2's identity map (KVM's `stage2_flush_vm`):
/// the vCPU leaves its guest until its CPU has flushed it all, a time
/// slice at a time (vmm.rs `flush_for_a_slice`), so the flush is
/// preemptible. Returns the action that leaves the guest.
fn start_flush(vm: &Vm, v: &mut Vcpu) -> Action {
    v.flush = Some(FlushCursor::new(vm.host_ram, vm.spec.memory.size));
    Action::Yield
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
    let mut action = Action::Continue;
    match acc.reg.trap() {
        SysRegTrap::IdGroup3 if acc.read => {
            let value = vm.id_regs.get(acc.reg).unwrap_or(0);
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
            let (flush, trap) = setway::on_set_way(v.hcr & HCR_TVM != 0);
            if trap {
                set_hcr(v, v.hcr | HCR_TVM);
            }
            if flush {
                action = start_flush(vm, v);
            }
        }
        SysRegTrap::VmControl if !acc.read => {
            let value = v.regs.get(acc.rt);
            let r = acc.reg;
            if r == SysReg::SCTLR_EL1 {
                let was = SCTLR_EL1.get();
                SCTLR_EL1.set(value);
                // KVM's kvm_toggle_cache (setway::on_sctlr_write).
                let (flush, keep_trapping) = setway::on_sctlr_write(was, value);
                if !keep_trapping {
                    set_hcr(v, v.hcr & !HCR_TVM);
                }
                if flush {
                    action = start_flush(vm, v);
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
    super::exit::skip_instruction(v);
    Some(action)
}

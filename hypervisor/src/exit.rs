//! Exit decisions, pure (issue 18; Hafnium's split of `src/arch/fake`
//! from `src/arch/aarch64`): from a decoded exit and the vCPU's state, what
//! happens next. `arch/aarch64/exit.rs` reads the syndrome, calls these
//! and applies the result (system registers, the run loop's action).
//!
//! So far the WFx exits and the completion of an emulated MMIO access
//! live here; the other exits are still decided in the arch layer.

use crate::esr::WfxKind;
use crate::mmio::{BaseReg, MmioAccess, decode};
use crate::stats::ExitReason;
use crate::vcpu::GuestRegs;

/// What becomes of the vCPU after an exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Re-enter it at once.
    Resume,
    /// It waits for an interrupt (`VcpuState::Waiting`); its CPU goes to
    /// another vCPU.
    Wait,
    /// It gave the CPU away on purpose (`Vcpu::yielded`): the scheduler
    /// runs someone else first, but it stays runnable.
    YieldOnPurpose,
}

/// A trapped WFI/WFIT or WFE/WFET (HCR_EL2.TWI/TWE, ARM ARM D19.2.48): a
/// WFI with an interrupt already pending for the vCPU completes at once;
/// otherwise the vCPU waits for one. A WFE is a hint that it spins on a
/// lock, so its CPU goes to another vCPU (KVM's `kvm_vcpu_on_spin`). The
/// exit reason counted, and the decision.
pub fn wfx(kind: WfxKind, interrupt_pending: bool) -> (ExitReason, Decision) {
    match kind {
        WfxKind::Wfi | WfxKind::Wfit if interrupt_pending => (ExitReason::Wfi, Decision::Resume),
        WfxKind::Wfi | WfxKind::Wfit => (ExitReason::Wfi, Decision::Wait),
        WfxKind::Wfe | WfxKind::Wfet => (ExitReason::Wfe, Decision::YieldOnPurpose),
    }
}

/// A write-back to the guest's stack pointer, which is live in SP_EL1 or
/// SP_EL0 while the vCPU is loaded, so the arch layer applies it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpWriteback {
    /// SP_EL1 (the guest ran with PSTATE.SP = 1), else SP_EL0.
    pub el1: bool,
    /// Added to it, wrapping.
    pub delta: i64,
}

/// Completes an emulated MMIO access in the guest's registers: a load's
/// value into its transfer register (`decode::apply_load`), a pre- or
/// post-index write-back into its base register (ARM ARM C6.2 "LDR
/// (immediate)", Operation). A write-back to SP is returned instead. The
/// PC is not stepped here: by how much is the syndrome's IL, the arch
/// layer's.
pub fn complete_mmio(regs: &mut GuestRegs, a: &MmioAccess, read: u64) -> Option<SpWriteback> {
    if !a.write {
        regs.set(a.reg, decode::apply_load(read, a));
    }
    let wb = a.writeback?;
    match wb.base {
        BaseReg::X(n) => {
            regs.set(n, regs.get(n).wrapping_add(wb.delta as u64));
            None
        }
        BaseReg::Sp => Some(SpWriteback { el1: regs.pstate & 1 != 0, delta: wb.delta }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mmio::Writeback;

    #[test]
    fn wfi_waits_unless_an_interrupt_is_pending_and_wfe_yields() {
        assert_eq!(wfx(WfxKind::Wfi, false), (ExitReason::Wfi, Decision::Wait));
        assert_eq!(wfx(WfxKind::Wfit, false), (ExitReason::Wfi, Decision::Wait));
        assert_eq!(wfx(WfxKind::Wfi, true), (ExitReason::Wfi, Decision::Resume));
        assert_eq!(wfx(WfxKind::Wfit, true), (ExitReason::Wfi, Decision::Resume));
        for pending in [false, true] {
            assert_eq!(wfx(WfxKind::Wfe, pending), (ExitReason::Wfe, Decision::YieldOnPurpose));
            assert_eq!(wfx(WfxKind::Wfet, pending), (ExitReason::Wfe, Decision::YieldOnPurpose));
        }
    }

    fn access(write: bool, reg: u8, writeback: Option<Writeback>) -> MmioAccess {
        MmioAccess {
            ipa: 0x0900_0000,
            size: 4,
            write,
            reg,
            sign_extend: false,
            sixty_four: false,
            acquire_release: false,
            writeback,
        }
    }

    fn regs() -> GuestRegs {
        let mut r = GuestRegs::default();
        for (i, x) in r.x.iter_mut().enumerate() {
            *x = 0x1111_0000_0000_0000 + i as u64;
        }
        r
    }

    #[test]
    fn a_load_fills_its_register_and_a_store_changes_none() {
        let mut r = regs();
        assert_eq!(complete_mmio(&mut r, &access(false, 3, None), 0xdead_beef_1234_5678), None);
        // A W register: the upper half cleared.
        assert_eq!(r.x[3], 0x1234_5678);
        let mut r = regs();
        complete_mmio(&mut r, &access(true, 3, None), 0xffff);
        assert_eq!(r, regs());
        // A load into wzr is dropped.
        let mut r = regs();
        complete_mmio(&mut r, &access(false, 31, None), 7);
        assert_eq!(r, regs());
    }

    #[test]
    fn write_backs_move_the_base_register_or_are_handed_back_for_sp() {
        let mut r = regs();
        let wb = Writeback { base: BaseReg::X(5), delta: -16 };
        assert_eq!(complete_mmio(&mut r, &access(false, 2, Some(wb)), 9), None);
        assert_eq!((r.x[2], r.x[5]), (9, 0x1111_0000_0000_0005u64.wrapping_sub(16)));
        let sp = Writeback { base: BaseReg::Sp, delta: 8 };
        let mut r = regs();
        r.pstate = 0x3c5; // EL1h: SP_EL1
        assert_eq!(complete_mmio(&mut r, &access(true, 1, Some(sp)), 0), Some(SpWriteback { el1: true, delta: 8 }));
        r.pstate = 0x3c4; // EL1t: SP_EL0
        assert_eq!(complete_mmio(&mut r, &access(true, 1, Some(sp)), 0), Some(SpWriteback { el1: false, delta: 8 }));
        assert_eq!(r.x, regs().x);
    }
}

//! The run loop's fast path (issue 19; KVM's `fixup_guest_exit`): an exit
//! that the pure [`crate::fastpath`] core recognises is answered here and
//! the guest re-entered, without reading back the list registers,
//! resampling the virtual timer or decoding the syndrome in full
//! (`vmm::run_vcpu` says when it is tried).

use super::exit::{self, Action};
use super::vmm::{Vcpu, Vm};
use crate::fastpath::{FastExit, classify};
use crate::mmio::decode;
use crate::stats::ExitReason;
use aarch64_cpu::registers::{ESR_EL2, FAR_EL2, HPFAR_EL2, Readable};
use shared::layout;

/// Answers the synchronous exit that just happened if it is one the fast
/// path takes; None leaves it to `exit::handle_sync`, untouched. With
/// `lrs_loaded` (the list registers hold interrupts the vGIC model has
/// not read back) an access to the vGIC's registers is left to the slow
/// path, which reads them back first: a read of a pending or active bit
/// must see what the guest did with them.
pub fn handle(vm: &Vm, v: &mut Vcpu, lrs_loaded: bool) -> Option<Action> {
    if v.regs.pstate & crate::skip::PSTATE_AARCH32 != 0 {
        return None;
    }
    match classify(ESR_EL2.get(), v.regs.x[0], v.regs.x[1])? {
        FastExit::Hvc(x0) => {
            v.stats.record(ExitReason::Hvc);
            v.regs.x[..4].copy_from_slice(&[x0, 0, 0, 0]);
            Some(Action::Continue)
        }
        FastExit::IdRead { reg, rt } => {
            v.stats.record(ExitReason::SysReg);
            v.regs.set(rt, vm.id_regs.get(reg).unwrap_or(0));
            // An A64 instruction (checked above): 4 bytes.
            v.regs.pc = v.regs.pc.wrapping_add(4);
            Some(Action::Continue)
        }
        FastExit::Mmio(mut access) => {
            let far = FAR_EL2.get();
            access.ipa = decode::fault_ipa(HPFAR_EL2.get(), far);
            let uart = layout::UART_BASE..layout::UART_BASE + layout::UART_SIZE;
            if lrs_loaded && !uart.contains(&access.ipa) {
                return None;
            }
            Some(exit::mmio(vm, v, &access, far))
        }
    }
}

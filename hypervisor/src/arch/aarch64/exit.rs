//! Exit handling on the hardware: reads the syndrome registers, hands the
//! exit to the pure core (`crate::exit::handle_sync`, which decides) with
//! [`Hw`] as its environment, and applies the decision (kicks, injection,
//! stop, reset). Interrupt exits and fatal exceptions are handled here.

use super::switch::ExitKind;
use super::vmops;
use super::{gic, timer};
use crate::esr::{Esr, FaultStatus, SysReg};
use crate::exit::{Action, Decision, ExitEnv, SpWriteback, SyncExit};
use crate::mmio::MmioAccess;
use crate::mmio::bus::AccessError;
use crate::psci::Psci;
use crate::shm::{Membership, Ring};
use crate::stats::ExitReason;
use crate::vcpu::GuestRegs;
use crate::vcpu::Vcpu;
use crate::vgic::Vgic;
use crate::vm::{self, Vm};
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{
    AFSR0_EL1, AFSR1_EL1, AMAIR_EL1, CONTEXTIDR_EL1, ELR_EL1, ESR_EL1, ESR_EL2, FAR_EL1, FAR_EL2, HCR_EL2, HPFAR_EL2,
    MAIR_EL1, MDSCR_EL1, PAR_EL1, Readable, SCTLR_EL1, SP_EL0, SP_EL1, SPSR_EL1, TCR_EL1, TTBR0_EL1, TTBR1_EL1,
    VBAR_EL1, Writeable,
};
use core::ops::{DerefMut, Range};
use core::sync::atomic::Ordering;

/// A synchronous exception from the guest (ESR_EL2 says which): decided
/// by the pure core, applied here.
pub fn handle_sync(vm: &Vm, v: &mut Vcpu, generation: usize) -> Action {
    let exit = SyncExit { esr: Esr::decode(ESR_EL2.get()), far: FAR_EL2.get(), hpfar: HPFAR_EL2.get() };
    let mut hw = Hw { vm, generation };
    let decision = crate::exit::handle_sync(&mut hw, v, &exit);
    let action = decision.action();
    match decision {
        Decision::Resume | Decision::Yield => {}
        Decision::Kick(targets) => vm.kick(targets, Some(v.index)),
        Decision::Inject { esr, far } => crate::exit::inject(&mut hw, v, esr, far),
        Decision::Stop(why) => vmops::stop_vm(vm, &why),
        Decision::Reset => vmops::reset_vm(vm),
    }
    action
}

/// The hardware as the exit core sees it: the VM of the vCPU that exited
/// and the physical CPU it is loaded on (its EL1 registers are live).
pub struct Hw<'a> {
    vm: &'a Vm,
    /// The VM's generation while the vCPU is in the guest (fp.rs).
    generation: usize,
}

impl ExitEnv for Hw<'_> {
    fn vm_id(&self) -> usize {
        self.vm.id
    }
    fn guest_ram(&self) -> Range<u64> {
        self.vm.spec.memory.base..self.vm.spec.memory.end()
    }
    fn host_ram(&self) -> u64 {
        self.vm.host_ram
    }
    fn shm(&self) -> &[Membership] {
        &self.vm.shm
    }
    fn psci(&self) -> impl DerefMut<Target = Psci> + '_ {
        self.vm.psci.lock()
    }
    fn vgic(&self) -> impl DerefMut<Target = Vgic> + '_ {
        self.vm.vgic.lock()
    }
    fn id_reg(&self, reg: SysReg) -> Option<u64> {
        self.vm.id_regs.get(reg)
    }
    fn mmio(&self, vcpu: usize, regs: &GuestRegs, a: &MmioAccess) -> Result<u64, AccessError> {
        super::devices::emulate_mmio(self.vm, vcpu, regs, a)
    }
    fn console_write(&self, vcpu: usize, bytes: &[u8]) {
        let mut c = self.vm.console.lock();
        for &b in bytes {
            c.output(&self.vm.name, vcpu, b);
        }
    }
    fn console_idle(&self, vcpu: usize) {
        self.vm.console.lock().idle(&self.vm.name, vcpu);
    }
    fn print_stats(&self, v: &Vcpu) {
        vm::print_stats(self.vm, Some(v));
    }
    fn booted(&self) {
        let _ = self.vm.booted_at.compare_exchange(0, timer::now(), Ordering::Relaxed, Ordering::Relaxed);
    }
    fn ring_doorbell(&self, vcpu: usize, ring: Ring) {
        super::vshm::ring(self.vm, vcpu, ring);
    }
    fn post_cpu_on(&self, target: usize, entry: u64, context_id: u64) {
        if let Some(slot) = self.vm.cpu_on.get(target) {
            *slot.lock() = Some((entry, context_id));
        }
    }
    fn report(&self, vcpu: usize, what: core::fmt::Arguments) {
        vmops::report(self.vm, vcpu, what);
    }
    fn fp_trap(&mut self, v: &mut Vcpu) {
        super::fp::handle_trap(self.vm, v, self.generation);
    }
    fn ram_fault(&mut self, v: &mut Vcpu, ipa: u64, status: FaultStatus) -> bool {
        super::guestram::handle_fault(self.vm, v, ipa, status)
    }
    fn fetch_instruction(&mut self, pc: u64) -> Option<u32> {
        fetch_instruction(pc)
    }
    fn now(&self) -> u64 {
        timer::now()
    }
    fn arm_hyp_by(&mut self, deadline: u64) {
        timer::arm_hyp_by(deadline);
    }
    fn write_hcr(&mut self, hcr: u64) {
        HCR_EL2.set(hcr);
        barrier::isb(barrier::SY);
    }
    fn read_sctlr(&self) -> u64 {
        SCTLR_EL1.get()
    }
    fn write_vm_control(&mut self, r: SysReg, value: u64) {
        if r == SysReg::SCTLR_EL1 {
            SCTLR_EL1.set(value);
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
            // The last of the group (`SysReg::is_vm_control`).
            CONTEXTIDR_EL1.set(value);
        }
    }
    fn write_mdscr(&mut self, value: u64) {
        MDSCR_EL1.set(value);
    }
    fn add_sp(&mut self, sp: SpWriteback) {
        let delta = sp.delta as u64;
        if sp.el1 {
            SP_EL1.set(SP_EL1.get().wrapping_add(delta));
        } else {
            SP_EL0.set(SP_EL0.get().wrapping_add(delta));
        }
    }
    fn vbar(&self) -> u64 {
        VBAR_EL1.get()
    }
    fn set_exception_regs(&mut self, elr: u64, spsr: u64, esr: u64, far: Option<u64>) {
        ELR_EL1.set(elr);
        SPSR_EL1.set(spsr);
        ESR_EL1.set(esr);
        if let Some(far) = far {
            FAR_EL1.set(far);
        }
    }
}

/// A physical interrupt arrived while the guest ran (HCR_EL2.IMO).
pub fn handle_irq(vm: &Vm, v: &mut Vcpu) -> Action {
    v.stats.record(ExitReason::Irq);

    let mut action = Action::Continue;
    while let Some(raw) = gic::ack() {
        // A pass-through device's: forwarded to its VM, left active.
        if let Some(give_way) = super::passthrough::forward(raw, Some((vm.id, v.index))) {
            if give_way {
                action = Action::Yield;
            }
            continue;
        }
        match gic::intid_of(raw) {
            // The running vCPU's virtual timer asserts its output, a level
            // (ARM ARM D11.2.4): raise its PPI in the vGIC and keep the
            // physical PPI disabled until an exit finds the output low
            // (timer::resample_vtimer_line). A PPI no longer asserted by the
            // time it is acknowledged is dropped.
            gic::INTID_VTIMER if timer::loaded_vtimer_asserted() => {
                timer::set_vtimer_ppi(false);
                let _ = vm.vgic.lock().set_level(v.index, gic::INTID_VTIMER, true);
            }
            gic::INTID_HYP_TIMER => {
                // End of the time slice, or a waiting vCPU's timer is due.
                timer::cancel_hyp();
                action = Action::Yield;
            }
            // Console input; a VM command it ran gives the CPU back to the
            // scheduling loop, which carries the request out (vmreq).
            id if Some(id) == super::console_in::intid() => {
                let acted = super::console_in::on_interrupt(Some((vm, v)));
                if acted {
                    action = Action::Yield;
                }
            }
            // Another CPU woke a vCPU that last ran here and is not in the
            // guest: the run loop chooses again (wake-up preemption,
            // `vmm::run_cpu`). Any other kick is for the running vCPU,
            // whose interrupts the next entry loads.
            gic::SGI_KICK if vmops::take_wakeup() => {
                v.preempted = true;
                action = Action::Yield;
            }
            // Any other kick may still have made a vCPU of this CPU
            // runnable (a VM's request carried out elsewhere, a CPU_ON):
            // the running one gets at most a time slice more.
            gic::SGI_KICK => timer::arm_hyp_by(timer::now() + timer::frequency() * vmops::SLICE_MS / 1000),
            // Maintenance (list registers are resynced on every exit) and
            // kicks (the vGIC state is re-read before the next entry).
            _ => {}
        }
        gic::eoi(raw);
    }
    // After the kicks are taken: a request posted before its kick is seen
    // (one served before the acknowledge could miss it and leave the
    // asking CPU waiting; `fp::vcpu_load`).
    super::fp::service_flush();
    action
}

/// FIQ, SError or an AArch32 exception: the VM cannot go on.
pub fn handle_fatal(vm: &Vm, v: &mut Vcpu, kind: ExitKind) -> Action {
    v.stats.record(match kind {
        ExitKind::Fiq => ExitReason::Fiq,
        ExitKind::SError => ExitReason::SError,
        _ => ExitReason::Undefined,
    });
    let why = alloc::format!("fatal {kind:?} exception at {:#x} (ESR_EL2 {:#x})", v.regs.pc, ESR_EL2.get());
    vmops::stop_vm(vm, &why);
    Action::Yield
}

/// Reads the 32-bit instruction at guest virtual address `pc`, translating
/// it through the guest's stage 1 and stage 2 (`AT S12E1R`, ARM ARM
/// C5.5.6); None if either stage does not map it.
fn fetch_instruction(pc: u64) -> Option<u32> {
    let saved = PAR_EL1.get();
    // SAFETY: address translation only writes PAR_EL1, which belongs to the
    // loaded guest context and is restored below.
    unsafe { core::arch::asm!("at s12e1r, {}", in(reg) pc, options(nostack)) };
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
    let par = PAR_EL1.get();
    PAR_EL1.set(saved);
    if PAR_EL1::F.is_set(par) {
        return None;
    }
    // PA bits [51:12] (the crate's PAR_EL1::PA stops at bit 47).
    let pa = (par & 0x000f_ffff_ffff_f000) | (pc & 0xfff);
    // Only RAM is identity mapped at EL2; the guest's RAM is RAM.
    let ram = super::platform::PLATFORM.get()?.memory.iter().any(|r| pa >= r.base && pa + 4 <= r.end());
    if !ram || !pa.is_multiple_of(4) {
        return None;
    }
    // SAFETY: `pa` is 4-byte aligned, inside RAM, which EL2 maps.
    Some(unsafe { core::ptr::read_volatile(pa as *const u32) })
}

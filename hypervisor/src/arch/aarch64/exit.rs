//! Exit handling: what the hypervisor does with each exception a guest
//! takes to EL2. Decoding is done by the pure modules (`esr`, `mmio`,
//! `smccc`, `vgic`, `vpl011`); this file reads the syndrome registers,
//! acts, and advances or redirects the guest.

use super::switch::ExitKind;
use super::vmm::{self, Vcpu, Vm};
use super::{gic, timer};
use crate::esr::{Esr, ExceptionClass, Syndrome, SysReg};
use crate::exit::Decision;
use crate::inject;
use crate::mmio::bus::AccessError;
use crate::mmio::{MmioAccess, decode};
use crate::println;
use crate::ratelimit::{self, Verdict};
use crate::smccc::{self, Call, Outcome, VmOps};
use crate::stats::ExitReason;
use crate::vcpu::VcpuState;
use aarch64_cpu::registers::{
    ELR_EL1, ESR_EL1, ESR_EL2, FAR_EL1, FAR_EL2, HPFAR_EL2, MDSCR_EL1, PAR_EL1, Readable, SP_EL0, SP_EL1, SPSR_EL1,
    VBAR_EL1, Writeable,
};
use core::ops::Range;
use core::sync::atomic::Ordering;

/// What the run loop does after an exit.
pub enum Action {
    /// Re-enter the same vCPU at once (the KVM "fixup" fast path).
    Continue,
    /// Give the physical CPU away (WFI, CPU_OFF, end of slice, VM stopped).
    Yield,
}

/// A synchronous exception from the guest (ESR_EL2 says which).
pub fn handle_sync(vm: &Vm, v: &mut Vcpu, generation: usize) -> Action {
    let esr = Esr::decode(ESR_EL2.get());
    if !crate::skip::condition_passed(esr.raw, v.regs.pstate) {
        // A conditional AArch32 instruction that failed its condition
        // check trapped anyway (IMPLEMENTATION DEFINED): it does nothing
        // (KVM's kvm_condition_valid in handle_trap_exceptions).
        v.stats.record(if esr.ec == ExceptionClass::Wfx { ExitReason::Wfi } else { ExitReason::SysReg });
        skip_instruction(v);
        return Action::Continue;
    }
    match esr.syndrome() {
        // First FP/SIMD use since entry with CPTR_EL2.TFP set (lazy switch).
        _ if esr.ec == ExceptionClass::FpAccess => {
            super::fp::handle_trap(vm, v, generation);
            Action::Continue
        }
        Syndrome::Hvc(_) => {
            v.stats.record(ExitReason::Hvc);
            hypercall(vm, v)
        }
        Syndrome::Smc(_) => {
            // A trapped SMC returns to the SMC itself (ARM ARM D1.10.2):
            // step over it, then answer it like an HVC.
            v.stats.record(ExitReason::Smc);
            skip_instruction(v);
            hypercall(vm, v)
        }
        Syndrome::Wfx(w) => {
            skip_instruction(v);
            // The VM goes idle: a line it left open (a prompt, an echo)
            // shows now, not when its newline comes.
            vm.console.lock().idle(&vm.name, v.index);
            // Only a WFI asks the vGIC.
            let wfi = matches!(w.kind, crate::esr::WfxKind::Wfi | crate::esr::WfxKind::Wfit);
            let pending = wfi && vm.vgic.lock().has_pending(v.index);
            let (reason, decision) = crate::exit::wfx(w.kind, pending);
            v.stats.record(reason);
            match decision {
                Decision::Resume => return Action::Continue,
                Decision::Wait => v.state = VcpuState::Waiting,
                Decision::YieldOnPurpose => v.yielded = true,
            }
            Action::Yield
        }
        Syndrome::DataAbort(da) if esr.ec == ExceptionClass::DataAbortLower => {
            let far = FAR_EL2.get();
            let ipa = decode::fault_ipa(HPFAR_EL2.get(), far);
            // The first touch of a block of its RAM (guestram.rs).
            if super::guestram::handle_fault(vm, v, ipa, da.dfsc) {
                return Action::Continue;
            }
            // Without a syndrome (ISV = 0) the instruction is decoded, as
            // A64: an AArch32 one is not, and gets the abort.
            let aarch32 = v.regs.pstate & crate::skip::PSTATE_AARCH32 != 0;
            let insn = if da.isv || aarch32 { None } else { fetch_instruction(v.regs.pc) };
            match decode::decode(&da, ipa, insn) {
                Ok(access) => mmio(vm, v, &access, far),
                Err(e) => {
                    let why = alloc::format!("an access it cannot decode ({e})");
                    bad_access(vm, v, ipa, far, da.wnr, &why)
                }
            }
        }
        Syndrome::SysReg(acc) => {
            v.stats.record(ExitReason::SysReg);
            if !acc.read && acc.reg == SysReg::ICC_SGI1R_EL1 {
                // A GICv3 guest sends an SGI (trapped since HCR_EL2.IMO = 1).
                let value = v.regs.get(acc.rt);
                let targets = vm.vgic.lock().send_sgi(v.index, value);
                if let Ok(t) = targets {
                    vm.kick(t, Some(v.index));
                }
                skip_instruction(v);
                return Action::Continue;
            }
            if let Some(action) = super::sysregs::handle(vm, v, &acc) {
                return action;
            }
            if timer::ptimer_access(vm, v, &acc) || debug_access(v, &acc) {
                skip_instruction(v);
                return Action::Continue;
            }
            let pc = v.regs.pc;
            report(vm, v, format_args!("{acc} at {pc:#x} is not emulated: injecting undefined instruction"));
            inject_undef(v);
            Action::Continue
        }
        Syndrome::InstrAbort(ia) if esr.ec == ExceptionClass::InstrAbortLower => {
            let far = FAR_EL2.get();
            let ipa = decode::fault_ipa(HPFAR_EL2.get(), far);
            // A fetch from a block of its RAM not yet touched (guestram.rs).
            if super::guestram::handle_fault(vm, v, ipa, ia.ifsc) {
                return Action::Continue;
            }
            // Nothing behind the IPA (devices are not executable): the
            // guest takes a synchronous external abort on the fetch, as
            // from a bus error, and decides itself (KVM's kvm_inject_pabt
            // for a fetch outside any memslot).
            v.stats.record(ExitReason::BadAccess);
            let pc = v.regs.pc;
            report(
                vm,
                v,
                format_args!(
                    "instruction fetch from IPA {ipa:#x} (pc {pc:#x}) outside its memory: injecting prefetch abort"
                ),
            );
            inject_abort(v, false, false, far);
            Action::Continue
        }
        _ => {
            v.stats.record(ExitReason::Undefined);
            let pc = v.regs.pc;
            report(
                vm,
                v,
                format_args!("{} at {pc:#x}: injecting undefined instruction", crate::esr::describe(esr.raw)),
            );
            inject_undef(v);
            Action::Continue
        }
    }
}

/// Steps the guest over the instruction that trapped: 2 or 4 bytes as
/// ESR_EL2.IL says, with the T32 IT state moved on (`skip::skip`).
/// ESR_EL2 still holds this exit's syndrome: EL2 runs with interrupts
/// masked and takes no exception of its own in between.
pub fn skip_instruction(v: &mut Vcpu) {
    let il = ESR_EL2.is_set(ESR_EL2::IL);
    (v.regs.pc, v.regs.pstate) = crate::skip::skip(v.regs.pc, v.regs.pstate, il);
}

/// Prints a report about something the guest did that the hypervisor
/// refused, within the VM's report budget (`ratelimit`): a guest looping
/// over bad accesses must not flood the console.
pub fn report(vm: &Vm, v: &Vcpu, what: core::fmt::Arguments) {
    report_index(vm, v.index, what);
}

/// [`report`] for vCPU `index` of `vm`, when its `Vcpu` is not at hand (a
/// device on the bus knows only the index).
pub fn report_index(vm: &Vm, index: usize, what: core::fmt::Arguments) {
    let verdict = vm.reports.lock().check(timer::now(), timer::frequency() * ratelimit::INTERVAL_S);
    if let Verdict::Print { suppressed } = verdict {
        if suppressed > 0 {
            println!("el2-hyp: VM \"{}\": ... and {suppressed} more reports suppressed", vm.name);
        }
        println!("el2-hyp: VM \"{}\" vCPU {index}: {what}", vm.name);
    }
}

/// A trapped access to a debug register (MDCR_EL2.TDA, TDOSA, TDRA),
/// answered from the vCPU's own copy (`vdebug`); false if the register is
/// not one of them or the access is not allowed (the caller refuses it).
fn debug_access(v: &mut Vcpu, acc: &crate::esr::SysRegAccess) -> bool {
    if !crate::vdebug::owns(acc.reg) {
        return false;
    }
    if acc.read {
        match v.sys.debug.read(acc.reg) {
            Some(value) => v.regs.set(acc.rt, value),
            None => return false,
        }
        return true;
    }
    let value = v.regs.get(acc.rt);
    if !v.sys.debug.write(acc.reg, value) {
        return false;
    }
    if acc.reg == SysReg::MDSCR_EL1 {
        // The loaded vCPU's MDSCR_EL1 is switched with its EL1 context.
        MDSCR_EL1.set(crate::vdebug::mdscr_hw(value));
    }
    true
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
            gic::SGI_KICK if vmm::take_wakeup() => {
                v.preempted = true;
                action = Action::Yield;
            }
            // Any other kick may still have made a vCPU of this CPU
            // runnable (a VM's request carried out elsewhere, a CPU_ON):
            // the running one gets at most a time slice more.
            gic::SGI_KICK => timer::arm_hyp_by(timer::now() + timer::frequency() * vmm::SLICE_MS / 1000),
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
    vmm::stop_vm(vm, &why);
    Action::Yield
}

/// The calling vCPU as the SMCCC dispatcher sees its VM.
struct Caller<'a> {
    vm: &'a Vm,
    index: usize,
    psci: crate::sync::MutexGuard<'a, crate::psci::Psci>,
}

impl VmOps for Caller<'_> {
    fn vm_id(&self) -> u64 {
        self.vm.id as u64
    }
    fn vcpu_index(&self) -> usize {
        self.index
    }
    fn guest_ram(&self) -> Range<u64> {
        self.vm.spec.memory.base..self.vm.spec.memory.end()
    }
    fn psci(&mut self) -> &mut crate::psci::Psci {
        &mut self.psci
    }
    fn shm(&self) -> &[crate::shm::Membership] {
        &self.vm.shm
    }
}

/// `hvc #0` (or a trapped `smc`): SMCCC function ID in w0, arguments in x1..x6.
fn hypercall(vm: &Vm, v: &mut Vcpu) -> Action {
    let x = &v.regs.x;
    let call = Call { fid: x[0] as u32, args: [x[1], x[2], x[3], x[4], x[5], x[6]] };
    let outcome = {
        let mut caller = Caller { vm, index: v.index, psci: vm.psci.lock() };
        smccc::dispatch(&call, &mut caller)
    };
    if let Some(regs) = outcome.return_regs() {
        v.regs.x[..4].copy_from_slice(&regs);
    }
    match outcome {
        Outcome::Return(_) => Action::Continue,
        Outcome::ConsoleWrite { bytes } => {
            let mut c = vm.console.lock();
            for b in bytes {
                c.output(&vm.name, v.index, b);
            }
            Action::Continue
        }
        Outcome::PrintStats => {
            vmm::print_stats(vm, Some(v));
            Action::Continue
        }
        Outcome::Yield => {
            v.yielded = true;
            Action::Yield
        }
        Outcome::Booted => {
            let _ = vm.booted_at.compare_exchange(0, timer::now(), Ordering::Relaxed, Ordering::Relaxed);
            Action::Continue
        }
        Outcome::ShmDoorbell(ring) => {
            super::vshm::ring(vm, v.index, ring);
            Action::Continue
        }
        Outcome::CpuOn { target_vcpu, entry, context_id } => {
            // The target's own CPU starts it (vmm::start_pending_cpu_on):
            // this CPU holds its vCPU's lock and never waits for another's
            // (the lock order, sync.rs).
            if let Some(slot) = vm.cpu_on.get(target_vcpu) {
                *slot.lock() = Some((entry, context_id));
            }
            let mut set = crate::vgic::VcpuSet::default();
            set.insert(target_vcpu);
            vm.kick(set, Some(v.index));
            Action::Continue
        }
        Outcome::CpuOff => {
            v.state = VcpuState::Off;
            // The last vCPU off: nothing can turn one on again, the VM has
            // ended (as KVM, which reports a VM with no running vCPU).
            if vm.psci.lock().all_off() {
                vmm::stop_vm(vm, "every vCPU is off (PSCI CPU_OFF)");
            }
            Action::Yield
        }
        Outcome::Suspend => {
            if !vm.vgic.lock().has_pending(v.index) {
                v.state = VcpuState::Waiting;
            }
            Action::Yield
        }
        Outcome::SystemOff => {
            vmm::stop_vm(vm, "PSCI SYSTEM_OFF");
            Action::Yield
        }
        Outcome::SystemReset => {
            vmm::reset_vm(vm);
            Action::Yield
        }
    }
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
    let ram = super::boot::PLATFORM.get()?.memory.iter().any(|r| pa >= r.base && pa + 4 <= r.end());
    if !ram || !pa.is_multiple_of(4) {
        return None;
    }
    // SAFETY: `pa` is 4-byte aligned, inside RAM, which EL2 maps.
    Some(unsafe { core::ptr::read_volatile(pa as *const u32) })
}

/// Emulates one decoded MMIO access to the VM's devices and completes it
/// in the guest (the load's register, a writeback, the PC), or refuses it.
fn mmio(vm: &Vm, v: &mut Vcpu, a: &MmioAccess, far: u64) -> Action {
    match emulate_mmio(vm, v, a) {
        Ok(read) => {
            v.stats.record(ExitReason::for_mmio(a.write));
            // The guest's SP is live in SP_EL1 or SP_EL0 while it is loaded.
            if let Some(sp) = crate::exit::complete_mmio(&mut v.regs, a, read) {
                let delta = sp.delta as u64;
                if sp.el1 {
                    SP_EL1.set(SP_EL1.get().wrapping_add(delta));
                } else {
                    SP_EL0.set(SP_EL0.get().wrapping_add(delta));
                }
            }
            skip_instruction(v);
            Action::Continue
        }
        // One exit, counted once: as a bad access (in bad_access).
        Err(e) => bad_access(vm, v, a.ipa, far, a.write, &Refusal(e)),
    }
}

/// The device side of an MMIO access: a dispatch on the VM's bus
/// (`devices`). The value a load reads (0 for a store), or why the access
/// is refused, having changed nothing. Also the fast path's
/// (`fastpath.rs`).
#[inline(always)]
pub(super) fn emulate_mmio(vm: &Vm, v: &Vcpu, a: &MmioAccess) -> Result<u64, AccessError> {
    if a.write {
        vm.bus.write(vm, v.index, a.ipa, a.size, a.store_value(&v.regs.x)).map(|()| 0)
    } else {
        vm.bus.read(vm, v.index, a.ipa, a.size)
    }
}

/// Why the bus refused an access, as the report says it.
pub(super) struct Refusal(pub(super) AccessError);

impl core::fmt::Display for Refusal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            AccessError::NoDevice => f.write_str("outside its memory and devices"),
            AccessError::Refused { device } => {
                write!(f, "refused by the emulated {device} (size or offset it does not allow)")
            }
        }
    }
}

/// An access the hypervisor will not emulate: the guest gets a
/// synchronous external abort, as real hardware would give for a bus error.
pub(super) fn bad_access(
    vm: &Vm,
    v: &mut Vcpu,
    ipa: u64,
    far: u64,
    write: bool,
    why: &dyn core::fmt::Display,
) -> Action {
    v.stats.record(ExitReason::BadAccess);
    let pc = v.regs.pc;
    report(vm, v, format_args!("access to IPA {ipa:#x} at pc {pc:#x} is {why}: injecting data abort"));
    inject_abort(v, true, write, far);
    Action::Continue
}

/// Injects a synchronous external abort on a data access (`data`) or an
/// instruction fetch at virtual address `far` (`inject::abort_esr`, KVM's
/// `inject_abt64`).
fn inject_abort(v: &mut Vcpu, data: bool, write: bool, far: u64) {
    let il = ESR_EL2.get() & inject::ESR_IL != 0;
    inject(v, inject::abort_esr(data, inject::from_el0(v.regs.pstate), il, write), Some(far));
}

/// Injects an undefined-instruction exception (ESR_EL1.EC = 0).
fn inject_undef(v: &mut Vcpu) {
    inject(v, inject::UNDEF_ESR, None);
}

/// Delivers a synchronous exception to the guest's EL1 vectors, as the
/// hardware would (ARM ARM D1.10.2): ELR_EL1/SPSR_EL1 take the return
/// state, PC goes to VBAR_EL1 + the offset for where it came from
/// (`inject::sync_vector_offset`). The vCPU's EL1 registers are live in
/// the CPU while it is loaded.
fn inject(v: &mut Vcpu, esr: u64, far: Option<u64>) {
    let spsr = v.regs.pstate;
    let offset = inject::sync_vector_offset(spsr);
    ELR_EL1.set(v.regs.pc);
    SPSR_EL1.set(spsr);
    ESR_EL1.set(esr);
    if let Some(far) = far {
        FAR_EL1.set(far);
    }
    v.regs.pc = VBAR_EL1.get() + offset;
    v.regs.pstate = crate::vcpu::PSTATE_EL1H_MASKED;
}

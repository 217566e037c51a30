//! Exit handling, pure (issue 18; Hafnium's split of `src/arch/fake` from
//! `src/arch/aarch64`, KVM's `handle_exit`): from a decoded exit and the
//! vCPU's and its VM's state, what happens next.
//!
//! [`handle_sync`] takes a synchronous exit as [`SyncExit`] (ESR_EL2,
//! FAR_EL2, HPFAR_EL2), updates the vCPU's registers and counts, and
//! returns a [`Decision`]: resume, kick vCPUs, inject an exception, give
//! the CPU away, stop or reset the VM. What it needs of the VM and of the
//! CPU goes through [`ExitEnv`]: `arch/aarch64/exit.rs` implements it on
//! the hardware and applies the decision; `arch/fake.rs` implements it
//! with recordings, for the host tests here.

use crate::esr::{Esr, ExceptionClass, FaultStatus, Syndrome, SysReg, SysRegAccess, SysRegTrap, WfxKind};
use crate::inject;
use crate::mmio::bus::AccessError;
use crate::mmio::{BaseReg, MmioAccess, decode};
use crate::psci::Psci;
use crate::setway::{self, FlushCursor};
use crate::shm::{Membership, Ring};
use crate::smccc::{self, Call, Outcome, VmOps};
use crate::stats::ExitReason;
use crate::vcpu::{GuestRegs, HCR_TVM, Vcpu, VcpuState};
use crate::vgic::{VcpuSet, Vgic};
use crate::vtimer::ptimer;
use alloc::borrow::Cow;
use core::fmt;
use core::ops::{DerefMut, Range};

/// What the run loop does after an exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Re-enter the same vCPU at once (the KVM "fixup" fast path).
    Continue,
    /// Give the physical CPU away (WFI, CPU_OFF, end of slice, VM stopped).
    Yield,
}

/// A synchronous exit as the arch layer read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncExit {
    /// ESR_EL2, decoded.
    pub esr: Esr,
    /// FAR_EL2 (meaningful for aborts only).
    pub far: u64,
    /// HPFAR_EL2 (meaningful for stage-2 aborts only).
    pub hpfar: u64,
}

/// What the arch layer does after [`handle_sync`] (the vCPU's registers
/// and state are already updated).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Re-enter the vCPU.
    Resume,
    /// Kick these vCPUs (`Vm::kick`, the caller excepted), then re-enter.
    Kick(VcpuSet),
    /// Deliver this synchronous exception to the guest's EL1 ([`inject`]),
    /// then re-enter: ESR_EL1, and FAR_EL1 if any.
    Inject { esr: u64, far: Option<u64> },
    /// Give the physical CPU away (the vCPU waits, is off, yielded, or
    /// has a set/way flush to do).
    Yield,
    /// Stop the VM, for this reason (`vmops::stop_vm`); only this VM.
    Stop(Cow<'static, str>),
    /// Reset the VM (PSCI SYSTEM_RESET, `vmops::reset_vm`).
    Reset,
}

impl Decision {
    /// The run loop's action once the decision is applied.
    pub fn action(&self) -> Action {
        match self {
            Decision::Resume | Decision::Kick(_) | Decision::Inject { .. } => Action::Continue,
            Decision::Yield | Decision::Stop(_) | Decision::Reset => Action::Yield,
        }
    }
}

/// What exit handling needs of the VM behind the vCPU and of the physical
/// CPU it runs on. `arch/aarch64/exit.rs` implements it on the hardware,
/// `arch/fake.rs` with recordings (Hafnium's `src/arch/fake`).
pub trait ExitEnv {
    // The VM.
    /// The VM's id.
    fn vm_id(&self) -> usize;
    /// Its guest-physical RAM.
    fn guest_ram(&self) -> Range<u64>;
    /// Host-physical base of its RAM (where a set/way flush cleans).
    fn host_ram(&self) -> u64;
    /// The shared-memory regions it is a peer of.
    fn shm(&self) -> &[Membership];
    /// Its PSCI state, locked.
    fn psci(&self) -> impl DerefMut<Target = Psci> + '_;
    /// Its vGIC, locked.
    fn vgic(&self) -> impl DerefMut<Target = Vgic> + '_;
    /// What its vCPUs read from ID register `reg` (HCR_EL2.TID3).
    fn id_reg(&self, reg: SysReg) -> Option<u64>;
    /// The device side of an MMIO access by vCPU `vcpu` with registers
    /// `regs` (its bus): a load's value (0 for a store), or why the
    /// access is refused, having changed nothing.
    fn mmio(&self, vcpu: usize, regs: &GuestRegs, a: &MmioAccess) -> Result<u64, AccessError>;
    /// vCPU `vcpu` writes `bytes` to the console (CONSOLE_WRITE).
    fn console_write(&self, vcpu: usize, bytes: &[u8]);
    /// vCPU `vcpu` goes idle: its open console line shows.
    fn console_idle(&self, vcpu: usize);
    /// Prints the VM's exit statistics; `v` is the caller's vCPU.
    fn print_stats(&self, v: &Vcpu);
    /// The guest says it has booted (vendor BOOTED).
    fn booted(&self);
    /// Rings shared-memory doorbell `ring` for vCPU `vcpu`.
    fn ring_doorbell(&self, vcpu: usize, ring: Ring);
    /// Leaves a CPU_ON for vCPU `target` (entry, context id), which its
    /// own CPU takes.
    fn post_cpu_on(&self, target: usize, entry: u64, context_id: u64);
    /// Reports something the guest did that was refused, within the
    /// VM's report budget.
    fn report(&self, vcpu: usize, what: fmt::Arguments);

    // The physical CPU.
    /// A first FP/SIMD use since entry (CPTR_EL2.TFP): the lazy switch.
    fn fp_trap(&mut self, v: &mut Vcpu);
    /// A stage-2 fault at `ipa` that may be the first touch of a block of
    /// the VM's RAM: true if it was, and is now mapped (or the VM stops).
    fn ram_fault(&mut self, v: &mut Vcpu, ipa: u64, status: FaultStatus) -> bool;
    /// The 32-bit instruction at guest virtual address `pc`, if both
    /// stages map it to RAM.
    fn fetch_instruction(&mut self, pc: u64) -> Option<u32>;
    /// The physical count.
    fn now(&self) -> u64;
    /// Makes the EL2 timer fire at `deadline` at the latest.
    fn arm_hyp_by(&mut self, deadline: u64);
    /// Sets HCR_EL2 of the running vCPU.
    fn write_hcr(&mut self, hcr: u64);
    /// The loaded vCPU's SCTLR_EL1.
    fn read_sctlr(&self) -> u64;
    /// Writes an EL1 virtual-memory control register of the loaded vCPU
    /// (`SysRegTrap::VmControl`).
    fn write_vm_control(&mut self, reg: SysReg, value: u64);
    /// Writes the loaded vCPU's hardware MDSCR_EL1.
    fn write_mdscr(&mut self, value: u64);
    /// Adds to the loaded vCPU's SP_EL1 or SP_EL0.
    fn add_sp(&mut self, sp: SpWriteback);
    /// The loaded vCPU's VBAR_EL1.
    fn vbar(&self) -> u64;
    /// Writes the loaded vCPU's ELR_EL1, SPSR_EL1, ESR_EL1 and, if given,
    /// FAR_EL1 (taking an exception to EL1).
    fn set_exception_regs(&mut self, elr: u64, spsr: u64, esr: u64, far: Option<u64>);
}

/// A synchronous exception from the guest: the decision, with the vCPU's
/// registers and counts updated.
pub fn handle_sync(env: &mut impl ExitEnv, v: &mut Vcpu, exit: &SyncExit) -> Decision {
    let esr = &exit.esr;
    if !crate::skip::condition_passed(esr.raw, v.regs.pstate) {
        // A conditional AArch32 instruction that failed its condition
        // check trapped anyway (IMPLEMENTATION DEFINED): it does nothing
        // (KVM's kvm_condition_valid in handle_trap_exceptions).
        v.stats.record(if esr.ec == ExceptionClass::Wfx { ExitReason::Wfi } else { ExitReason::SysReg });
        skip_instruction(v, esr.il);
        return Decision::Resume;
    }
    match esr.syndrome() {
        // First FP/SIMD use since entry with CPTR_EL2.TFP set (lazy switch).
        _ if esr.ec == ExceptionClass::FpAccess => {
            env.fp_trap(v);
            Decision::Resume
        }
        Syndrome::Hvc(_) => {
            v.stats.record(ExitReason::Hvc);
            hypercall(env, v)
        }
        Syndrome::Smc(_) => {
            // A trapped SMC returns to the SMC itself (ARM ARM D1.10.2):
            // step over it, then answer it like an HVC.
            v.stats.record(ExitReason::Smc);
            skip_instruction(v, esr.il);
            hypercall(env, v)
        }
        Syndrome::Wfx(w) => {
            skip_instruction(v, esr.il);
            // The VM goes idle: a line it left open (a prompt, an echo)
            // shows now, not when its newline comes.
            env.console_idle(v.index);
            // Only a WFI asks the vGIC.
            let wfi = matches!(w.kind, WfxKind::Wfi | WfxKind::Wfit);
            let pending = wfi && env.vgic().has_pending(v.index);
            let (reason, outcome) = wfx(w.kind, pending);
            v.stats.record(reason);
            match outcome {
                WfxOutcome::Resume => return Decision::Resume,
                WfxOutcome::Wait => v.state = VcpuState::Waiting,
                WfxOutcome::YieldOnPurpose => v.yielded = true,
            }
            Decision::Yield
        }
        Syndrome::DataAbort(da) if esr.ec == ExceptionClass::DataAbortLower => {
            let ipa = decode::fault_ipa(exit.hpfar, exit.far);
            // The first touch of a block of its RAM (guestram.rs).
            if env.ram_fault(v, ipa, da.dfsc) {
                return Decision::Resume;
            }
            // Without a syndrome (ISV = 0) the instruction is decoded, as
            // A64: an AArch32 one is not, and gets the abort.
            let aarch32 = v.regs.pstate & crate::skip::PSTATE_AARCH32 != 0;
            let insn = if da.isv || aarch32 { None } else { env.fetch_instruction(v.regs.pc) };
            match decode::decode(&da, ipa, insn) {
                Ok(access) => mmio(env, v, &access, exit),
                Err(e) => {
                    let why = alloc::format!("an access it cannot decode ({e})");
                    bad_access(env, v, ipa, exit, da.wnr, &why)
                }
            }
        }
        Syndrome::SysReg(acc) => {
            v.stats.record(ExitReason::SysReg);
            if !acc.read && acc.reg == SysReg::ICC_SGI1R_EL1 {
                // A GICv3 guest sends an SGI (trapped since HCR_EL2.IMO = 1).
                let value = v.regs.get(acc.rt);
                let targets = env.vgic().send_sgi(v.index, value);
                skip_instruction(v, esr.il);
                return match targets {
                    Ok(t) => Decision::Kick(t),
                    Err(_) => Decision::Resume,
                };
            }
            if let Some(decision) = trap_group(env, v, &acc, esr.il) {
                return decision;
            }
            if ptimer_access(env, v, &acc) || debug_access(env, v, &acc) {
                skip_instruction(v, esr.il);
                return Decision::Resume;
            }
            let pc = v.regs.pc;
            env.report(v.index, format_args!("{acc} at {pc:#x} is not emulated: injecting undefined instruction"));
            Decision::Inject { esr: inject::UNDEF_ESR, far: None }
        }
        Syndrome::InstrAbort(ia) if esr.ec == ExceptionClass::InstrAbortLower => {
            let ipa = decode::fault_ipa(exit.hpfar, exit.far);
            // A fetch from a block of its RAM not yet touched (guestram.rs).
            if env.ram_fault(v, ipa, ia.ifsc) {
                return Decision::Resume;
            }
            // Nothing behind the IPA (devices are not executable): the
            // guest takes a synchronous external abort on the fetch, as
            // from a bus error, and decides itself (KVM's kvm_inject_pabt
            // for a fetch outside any memslot).
            v.stats.record(ExitReason::BadAccess);
            let pc = v.regs.pc;
            env.report(
                v.index,
                format_args!(
                    "instruction fetch from IPA {ipa:#x} (pc {pc:#x}) outside its memory: injecting prefetch abort"
                ),
            );
            abort(v, false, false, exit)
        }
        _ => {
            v.stats.record(ExitReason::Undefined);
            let pc = v.regs.pc;
            env.report(
                v.index,
                format_args!("{} at {pc:#x}: injecting undefined instruction", crate::esr::describe(esr.raw)),
            );
            Decision::Inject { esr: inject::UNDEF_ESR, far: None }
        }
    }
}

/// Steps the guest over the instruction that trapped: 2 or 4 bytes as
/// ESR_EL2.IL (`il`) says, with the T32 IT state moved on (`skip::skip`).
pub fn skip_instruction(v: &mut Vcpu, il: bool) {
    (v.regs.pc, v.regs.pstate) = crate::skip::skip(v.regs.pc, v.regs.pstate, il);
}

/// The calling vCPU as the SMCCC dispatcher sees its VM.
struct Caller<'a, E: ExitEnv + 'a, P: DerefMut<Target = Psci>> {
    env: &'a E,
    index: usize,
    psci: P,
}

impl<E: ExitEnv, P: DerefMut<Target = Psci>> VmOps for Caller<'_, E, P> {
    fn vm_id(&self) -> u64 {
        self.env.vm_id() as u64
    }
    fn vcpu_index(&self) -> usize {
        self.index
    }
    fn guest_ram(&self) -> Range<u64> {
        self.env.guest_ram()
    }
    fn psci(&mut self) -> &mut Psci {
        &mut self.psci
    }
    fn shm(&self) -> &[Membership] {
        self.env.shm()
    }
}

/// `hvc #0` (or a trapped `smc`): SMCCC function ID in w0, arguments in
/// x1..x6, answered by `smccc::dispatch`; its outcome carried out.
fn hypercall(env: &mut impl ExitEnv, v: &mut Vcpu) -> Decision {
    let x = &v.regs.x;
    let call = Call { fid: x[0] as u32, args: [x[1], x[2], x[3], x[4], x[5], x[6]] };
    let outcome = {
        let mut caller = Caller { env: &*env, index: v.index, psci: env.psci() };
        smccc::dispatch(&call, &mut caller)
    };
    if let Some(regs) = outcome.return_regs() {
        v.regs.x[..4].copy_from_slice(&regs);
    }
    match outcome {
        Outcome::Return(_) => Decision::Resume,
        Outcome::ConsoleWrite { bytes } => {
            env.console_write(v.index, &bytes);
            Decision::Resume
        }
        Outcome::PrintStats => {
            env.print_stats(v);
            Decision::Resume
        }
        Outcome::Yield => {
            v.yielded = true;
            Decision::Yield
        }
        Outcome::Booted => {
            env.booted();
            Decision::Resume
        }
        Outcome::ShmDoorbell(ring) => {
            env.ring_doorbell(v.index, ring);
            Decision::Resume
        }
        Outcome::CpuOn { target_vcpu, entry, context_id } => {
            // The target's own CPU starts it (vmm::start_pending_cpu_on):
            // this CPU holds its vCPU's lock and never waits for another's
            // (the lock order, sync.rs).
            env.post_cpu_on(target_vcpu, entry, context_id);
            let mut set = VcpuSet::default();
            set.insert(target_vcpu);
            Decision::Kick(set)
        }
        Outcome::CpuOff => {
            v.state = VcpuState::Off;
            // The last vCPU off: nothing can turn one on again, the VM has
            // ended (as KVM, which reports a VM with no running vCPU).
            if env.psci().all_off() {
                return Decision::Stop(Cow::Borrowed("every vCPU is off (PSCI CPU_OFF)"));
            }
            Decision::Yield
        }
        Outcome::Suspend => {
            if !env.vgic().has_pending(v.index) {
                v.state = VcpuState::Waiting;
            }
            Decision::Yield
        }
        Outcome::SystemOff => Decision::Stop(Cow::Borrowed("PSCI SYSTEM_OFF")),
        Outcome::SystemReset => Decision::Reset,
    }
}

/// Emulates one decoded MMIO access to the VM's devices and completes it
/// in the guest (the load's register, a writeback, the PC), or refuses it.
fn mmio(env: &mut impl ExitEnv, v: &mut Vcpu, a: &MmioAccess, exit: &SyncExit) -> Decision {
    match env.mmio(v.index, &v.regs, a) {
        Ok(read) => {
            v.stats.record(ExitReason::for_mmio(a.write));
            // The guest's SP is live in SP_EL1 or SP_EL0 while it is loaded.
            if let Some(sp) = complete_mmio(&mut v.regs, a, read) {
                env.add_sp(sp);
            }
            skip_instruction(v, exit.esr.il);
            Decision::Resume
        }
        // One exit, counted once: as a bad access (in bad_access).
        Err(e) => bad_access(env, v, a.ipa, exit, a.write, &Refusal(e)),
    }
}

/// Why the bus refused an access, as the report says it.
pub struct Refusal(pub AccessError);

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            AccessError::NoDevice => f.write_str("outside its memory and devices"),
            AccessError::Refused { device } => {
                write!(f, "refused by the emulated {device} (size or offset it does not allow)")
            }
        }
    }
}

/// An access the hypervisor will not emulate: the guest gets a
/// synchronous external abort, as real hardware would give for a bus
/// error; only this vCPU's guest sees it.
fn bad_access(
    env: &mut impl ExitEnv,
    v: &mut Vcpu,
    ipa: u64,
    exit: &SyncExit,
    write: bool,
    why: &dyn fmt::Display,
) -> Decision {
    v.stats.record(ExitReason::BadAccess);
    let pc = v.regs.pc;
    env.report(v.index, format_args!("access to IPA {ipa:#x} at pc {pc:#x} is {why}: injecting data abort"));
    abort(v, true, write, exit)
}

/// A synchronous external abort on a data access (`data`) or an
/// instruction fetch at FAR_EL2 (`inject::abort_esr`, KVM's
/// `inject_abt64`).
fn abort(v: &Vcpu, data: bool, write: bool, exit: &SyncExit) -> Decision {
    let esr = inject::abort_esr(data, inject::from_el0(v.regs.pstate), exit.esr.il, write);
    Decision::Inject { esr, far: Some(exit.far) }
}

/// Delivers a synchronous exception to the guest's EL1 vectors, as the
/// hardware would (ARM ARM D1.10.2): ELR_EL1/SPSR_EL1 take the return
/// state, PC goes to VBAR_EL1 + the offset for where it came from
/// (`inject::sync_vector_offset`). The vCPU's EL1 registers are live in
/// the CPU while it is loaded, hence `env`.
pub fn inject(env: &mut impl ExitEnv, v: &mut Vcpu, esr: u64, far: Option<u64>) {
    let spsr = v.regs.pstate;
    let offset = inject::sync_vector_offset(spsr);
    env.set_exception_regs(v.regs.pc, spsr, esr, far);
    v.regs.pc = env.vbar() + offset;
    v.regs.pstate = crate::vcpu::PSTATE_EL1H_MASKED;
}

/// Emulates a trapped access from the hypervisor's own trap groups: ID
/// register reads (HCR_EL2.TID3, values from the pure `idregs` core),
/// set/way cache maintenance (HCR_EL2.TSW) and, while a set/way flush is
/// pending, writes to the EL1 virtual-memory controls (HCR_EL2.TVM) —
/// KVM's `kvm_set_way_flush`/`kvm_toggle_cache` (`arch/arm64/kvm/mmu.c`),
/// with the policy and the chunked flush in the pure `setway` core. None
/// if `acc` belongs to none of them (the caller decides).
fn trap_group(env: &mut impl ExitEnv, v: &mut Vcpu, acc: &SysRegAccess, il: bool) -> Option<Decision> {
    let mut decision = Decision::Resume;
    match acc.reg.trap() {
        SysRegTrap::IdGroup3 if acc.read => {
            let value = env.id_reg(acc.reg).unwrap_or(0);
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
                set_hcr(env, v, v.hcr | HCR_TVM);
            }
            if flush {
                decision = start_flush(env, v);
            }
        }
        SysRegTrap::VmControl if !acc.read => {
            let value = v.regs.get(acc.rt);
            if acc.reg == SysReg::SCTLR_EL1 {
                let was = env.read_sctlr();
                env.write_vm_control(acc.reg, value);
                // KVM's kvm_toggle_cache (setway::on_sctlr_write).
                let (flush, keep_trapping) = setway::on_sctlr_write(was, value);
                if !keep_trapping {
                    set_hcr(env, v, v.hcr & !HCR_TVM);
                }
                if flush {
                    decision = start_flush(env, v);
                }
            } else {
                env.write_vm_control(acc.reg, value);
            }
        }
        _ => return None,
    }
    skip_instruction(v, il);
    Some(decision)
}

/// Starts cleaning and invalidating all of the VM's RAM to the point of
/// coherency (KVM's `stage2_flush_vm`): the vCPU leaves its guest until
/// its CPU has flushed it all, a time slice at a time
/// (`vmm::flush_for_a_slice`), so the flush is preemptible.
fn start_flush(env: &impl ExitEnv, v: &mut Vcpu) -> Decision {
    let ram = env.guest_ram();
    v.flush = Some(FlushCursor::new(env.host_ram(), ram.end - ram.start));
    Decision::Yield
}

/// Sets the vCPU's HCR_EL2, in the hardware too if it changes.
fn set_hcr(env: &mut impl ExitEnv, v: &mut Vcpu, hcr: u64) {
    if hcr != v.hcr {
        v.hcr = hcr;
        env.write_hcr(hcr);
    }
}

/// A trapped access to the EL1 physical timer (CNTHCTL_EL2.EL1PCEN
/// clear), answered from the vCPU's emulated timer (`vtimer::ptimer`,
/// KVM's ptimer). A write moves the timer's PPI line at once and arms the
/// EL2 timer for its deadline, so that it fires while the vCPU runs.
/// False if `acc` is not a physical timer register.
fn ptimer_access(env: &mut impl ExitEnv, v: &mut Vcpu, acc: &SysRegAccess) -> bool {
    let r = acc.reg;
    if r != SysReg::CNTP_CTL_EL0 && r != SysReg::CNTP_CVAL_EL0 && r != SysReg::CNTP_TVAL_EL0 {
        return false;
    }
    let now = env.now();
    let (ctl, cval) = (v.sys.cntp_ctl, v.sys.cntp_cval);
    if acc.read {
        let value = if r == SysReg::CNTP_CTL_EL0 {
            ptimer::read_ctl(ctl, cval, now)
        } else if r == SysReg::CNTP_CVAL_EL0 {
            cval
        } else {
            ptimer::read_tval(cval, now)
        };
        v.regs.set(acc.rt, value);
        return true;
    }
    let value = v.regs.get(acc.rt);
    if r == SysReg::CNTP_CTL_EL0 {
        v.sys.cntp_ctl = ptimer::write_ctl(value);
    } else if r == SysReg::CNTP_CVAL_EL0 {
        v.sys.cntp_cval = value;
    } else {
        v.sys.cntp_cval = ptimer::write_tval(value, now);
    }
    let deadline = ptimer::update_line(&mut env.vgic(), v.index, v.sys.cntp_ctl, v.sys.cntp_cval, now);
    if let Some(d) = deadline {
        env.arm_hyp_by(d);
    }
    true
}

/// A trapped access to a debug register (MDCR_EL2.TDA, TDOSA, TDRA),
/// answered from the vCPU's own copy (`vdebug`); false if the register is
/// not one of them or the access is not allowed (the caller refuses it).
fn debug_access(env: &mut impl ExitEnv, v: &mut Vcpu, acc: &SysRegAccess) -> bool {
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
        env.write_mdscr(crate::vdebug::mdscr_hw(value));
    }
    true
}

/// What a WFx does to the vCPU ([`wfx`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WfxOutcome {
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
/// exit reason counted, and the outcome.
pub fn wfx(kind: WfxKind, interrupt_pending: bool) -> (ExitReason, WfxOutcome) {
    match kind {
        WfxKind::Wfi | WfxKind::Wfit if interrupt_pending => (ExitReason::Wfi, WfxOutcome::Resume),
        WfxKind::Wfi | WfxKind::Wfit => (ExitReason::Wfi, WfxOutcome::Wait),
        WfxKind::Wfe | WfxKind::Wfet => (ExitReason::Wfe, WfxOutcome::YieldOnPurpose),
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
        assert_eq!(wfx(WfxKind::Wfi, false), (ExitReason::Wfi, WfxOutcome::Wait));
        assert_eq!(wfx(WfxKind::Wfit, false), (ExitReason::Wfi, WfxOutcome::Wait));
        assert_eq!(wfx(WfxKind::Wfi, true), (ExitReason::Wfi, WfxOutcome::Resume));
        assert_eq!(wfx(WfxKind::Wfit, true), (ExitReason::Wfi, WfxOutcome::Resume));
        for pending in [false, true] {
            assert_eq!(wfx(WfxKind::Wfe, pending), (ExitReason::Wfe, WfxOutcome::YieldOnPurpose));
            assert_eq!(wfx(WfxKind::Wfet, pending), (ExitReason::Wfe, WfxOutcome::YieldOnPurpose));
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

#[cfg(test)]
mod sync_tests;

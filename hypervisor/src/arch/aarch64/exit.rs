//! Exit handling: what the hypervisor does with each exception a guest
//! takes to EL2. Decoding is done by the pure modules (`esr`, `vpl011`,
//! `mmio`); this file reads the syndrome registers, acts, and advances or
//! redirects the guest.

use super::switch::ExitKind;
use super::sysreg::{read_sysreg, write_sysreg};
use super::vmm::{self, Vcpu, Vm};
use crate::esr::{Esr, ExceptionClass, Syndrome};
use crate::println;
use crate::stats::ExitReason;
use crate::vcpu::VcpuState;
use shared::hvc::{self, psci, vendor};
use shared::layout;

/// What the run loop does after an exit.
pub enum Action {
    /// Re-enter the same vCPU at once (the KVM "fixup" fast path).
    Continue,
    /// Give the physical CPU away (WFI, CPU_OFF, VM stopped).
    Yield,
}

/// A synchronous exception from the guest (ESR_EL2 says which).
pub fn handle_sync(vm: &Vm, v: &mut Vcpu) -> Action {
    let esr = Esr::decode(read_sysreg!(esr_el2));
    match esr.syndrome() {
        Syndrome::Hvc(_) => {
            v.stats.record(ExitReason::Hvc);
            hypercall(vm, v)
        }
        Syndrome::Smc(_) => {
            // A trapped SMC returns to the SMC itself (ARM ARM D1.10.2):
            // step over it, then answer it like an HVC.
            v.stats.record(ExitReason::Smc);
            v.regs.pc += 4;
            hypercall(vm, v)
        }
        Syndrome::Wfx(w) => {
            v.regs.pc += 4;
            if matches!(w.kind, crate::esr::WfxKind::Wfi | crate::esr::WfxKind::Wfit) {
                v.stats.record(ExitReason::Wfi);
                v.state = VcpuState::Waiting;
            } else {
                v.stats.record(ExitReason::Wfe);
            }
            Action::Yield
        }
        Syndrome::DataAbort(da) if esr.ec == ExceptionClass::DataAbortLower => {
            let far = read_sysreg!(far_el2);
            let ipa = ((read_sysreg!(hpfar_el2) & 0x0fff_ffff_fff0) << 8) | (far & 0xfff);
            data_abort(vm, v, ipa, far, da, esr)
        }
        _ => {
            v.stats.record(if esr.ec == ExceptionClass::SysReg { ExitReason::SysReg } else { ExitReason::Undefined });
            println!(
                "el2-hyp: VM \"{}\" vCPU {}: {} at {:#x}: injecting undefined instruction",
                vm.name,
                v.index,
                crate::esr::describe(esr.raw),
                v.regs.pc
            );
            inject_undef(v);
            Action::Continue
        }
    }
}

/// A physical interrupt arrived while the guest ran (HCR_EL2.IMO).
pub fn handle_irq(_vm: &Vm, v: &mut Vcpu) -> Action {
    v.stats.record(ExitReason::Irq);
    Action::Yield
}

/// FIQ, SError or an AArch32 exception: the VM cannot go on.
pub fn handle_fatal(vm: &Vm, v: &mut Vcpu, kind: ExitKind) -> Action {
    v.stats.record(match kind {
        ExitKind::Fiq => ExitReason::Fiq,
        ExitKind::SError => ExitReason::SError,
        _ => ExitReason::Undefined,
    });
    let why = alloc::format!("fatal {kind:?} exception at {:#x} (ESR_EL2 {:#x})", v.regs.pc, read_sysreg!(esr_el2));
    vmm::stop_vm(vm, v, &why);
    Action::Yield
}

/// `hvc #0` (or a trapped `smc`): SMCCC function ID in w0.
fn hypercall(vm: &Vm, v: &mut Vcpu) -> Action {
    let fid = v.regs.x[0] as u32;
    let ret: i64 = match fid {
        psci::VERSION => psci::VERSION_1_1 as i64,
        psci::SYSTEM_OFF => {
            vmm::stop_vm(vm, v, "PSCI SYSTEM_OFF");
            return Action::Yield;
        }
        psci::SYSTEM_RESET => {
            vmm::reset_vm(vm, v);
            return Action::Yield;
        }
        hvc::SMCCC_VERSION => 0x1_0001,
        vendor::VM_INFO => {
            v.regs.x[1] = v.index as u64;
            v.regs.x[2] = vm.vcpus.len() as u64;
            vm.id as i64
        }
        vendor::CONSOLE_WRITE => {
            let regs = [v.regs.x[2], v.regs.x[3], v.regs.x[4], v.regs.x[5], v.regs.x[6]];
            let mut buf = [0u8; vendor::CONSOLE_WRITE_MAX];
            let n = hvc::unpack_console_bytes(v.regs.x[1], &regs, &mut buf);
            let mut c = vm.console.lock();
            for &b in &buf[..n] {
                c.output(&vm.name, b);
            }
            n as i64
        }
        vendor::NOP => 0,
        vendor::PRINT_STATS => {
            vmm::print_stats(vm, Some(v));
            0
        }
        _ => hvc::NOT_SUPPORTED,
    };
    v.regs.x[0] = ret as u64;
    Action::Continue
}

/// A stage-2 data abort: an access to an emulated device, or to nothing.
fn data_abort(vm: &Vm, v: &mut Vcpu, ipa: u64, far: u64, da: crate::esr::DataAbort, esr: Esr) -> Action {
    let uart = layout::UART_BASE..layout::UART_BASE + layout::UART_SIZE;
    if vm.spec.console && uart.contains(&ipa) && da.isv {
        let offset = ipa - layout::UART_BASE;
        let size = da.size();
        let mut c = vm.console.lock();
        if da.wnr {
            v.stats.record(ExitReason::MmioWrite);
            let value = v.regs.get(da.srt);
            match c.uart.mmio_write(offset, size, value) {
                Ok(Some(byte)) => c.output(&vm.name, byte),
                Ok(None) => {}
                Err(_) => {
                    drop(c);
                    return bad_access(vm, v, ipa, far, esr);
                }
            }
        } else {
            v.stats.record(ExitReason::MmioRead);
            match c.uart.mmio_read(offset, size) {
                Ok(value) => {
                    let value = value as u64;
                    v.regs.set(da.srt, if da.sf { value } else { value & 0xffff_ffff });
                }
                Err(_) => {
                    drop(c);
                    return bad_access(vm, v, ipa, far, esr);
                }
            }
        }
        v.regs.pc += 4;
        return Action::Continue;
    }
    bad_access(vm, v, ipa, far, esr)
}

/// An access the hypervisor will not emulate: the guest gets a
/// synchronous external abort, as real hardware would give for a bus error.
fn bad_access(vm: &Vm, v: &mut Vcpu, ipa: u64, far: u64, esr: Esr) -> Action {
    v.stats.record(ExitReason::BadAccess);
    println!(
        "el2-hyp: VM \"{}\" vCPU {}: access to IPA {ipa:#x} at pc {:#x} is outside its memory and devices: injecting data abort",
        vm.name, v.index, v.regs.pc
    );
    let from_el0 = v.regs.pstate & 0xf == 0;
    // ESR_EL1: data abort from a lower EL (0x24) or the same EL (0x25),
    // IL, WnR kept, DFSC = synchronous external abort (0x10).
    let ec: u64 = if from_el0 { 0x24 } else { 0x25 };
    let iss = (esr.iss as u64 & (1 << 6)) | 0x10;
    inject(v, (ec << 26) | (1 << 25) | iss, Some(far));
    Action::Continue
}

/// Injects an undefined-instruction exception (ESR_EL1.EC = 0).
fn inject_undef(v: &mut Vcpu) {
    inject(v, 1 << 25, None);
}

/// Delivers a synchronous exception to the guest's EL1 vectors, as the
/// hardware would (ARM ARM D1.10.2): ELR_EL1/SPSR_EL1 take the return
/// state, PC goes to VBAR_EL1 + the offset for where it came from.
/// The vCPU's EL1 registers are live in the CPU while it is loaded.
fn inject(v: &mut Vcpu, esr: u64, far: Option<u64>) {
    let spsr = v.regs.pstate;
    let offset = match spsr & 0xf {
        0b0101 => 0x200, // EL1h: current EL with SP_ELx
        0b0100 => 0x000, // EL1t: current EL with SP_EL0
        _ => 0x400,      // EL0: lower EL, AArch64
    };
    write_sysreg!(elr_el1, v.regs.pc);
    write_sysreg!(spsr_el1, spsr);
    write_sysreg!(esr_el1, esr);
    if let Some(far) = far {
        write_sysreg!(far_el1, far);
    }
    v.regs.pc = read_sysreg!(vbar_el1) + offset;
    v.regs.pstate = crate::vcpu::PSTATE_EL1H_MASKED;
}

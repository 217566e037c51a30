//! The exit core driven with the fake arch layer (`arch::fake`), one
//! exit class at a time, against what the hypervisor does today.

use super::*;
use crate::arch::fake::{DEVICE, Fake, Op, RAM};
use shared::hvc::psci as psci_id;

const IL: u64 = 1 << 25;
const PC: u64 = 0x4008_0000;
/// EL1h, interrupts masked.
const EL1H: u64 = 0x3c5;

fn vcpu(index: usize) -> Vcpu {
    let mut v = Vcpu::new(index);
    v.reset(PC, 0, VcpuState::Runnable);
    v
}

fn exit(esr: u64) -> SyncExit {
    SyncExit { esr: Esr::decode(esr), far: 0, hpfar: 0 }
}

fn hvc(fake: &mut Fake, v: &mut Vcpu, x: &[u64]) -> Decision {
    v.regs.x[..x.len()].copy_from_slice(x);
    handle_sync(fake, v, &exit(0x16 << 26 | IL))
}

/// ESR of a trapped MSR/MRS (EC 0x18; ARM ARM D17.2.37 ISS encoding).
fn sysreg(reg: SysReg, rt: u8, read: bool) -> u64 {
    0x18 << 26
        | IL
        | u64::from(reg.op0) << 20
        | u64::from(reg.op2) << 17
        | u64::from(reg.op1) << 14
        | u64::from(reg.crn) << 10
        | u64::from(rt) << 5
        | u64::from(reg.crm) << 1
        | u64::from(read)
}

/// A stage-2 data abort from a lower EL at `ipa`: with ISV, a load or
/// store of `size` bytes from/to x`rt`; translation fault, level 3.
fn data_abort(ipa: u64, size: u8, rt: u8, write: bool) -> SyncExit {
    let sas = u64::from(size.trailing_zeros());
    let iss = 1 << 24 | sas << 22 | u64::from(rt) << 16 | u64::from(write) << 6 | 0b000111;
    SyncExit {
        esr: Esr::decode(0x24 << 26 | IL | iss),
        far: 0xffff_0000_0000_0000 | (ipa & 0xfff),
        hpfar: (ipa >> 12) << 4,
    }
}

#[test]
fn an_unknown_sysreg_trap_injects_an_undef_at_the_el1_vector() {
    let mut fake = Fake::new(1);
    let mut v = vcpu(0);
    // MRS x0, S3_0_C15_C0_0: implementation defined, not emulated.
    let d = handle_sync(&mut fake, &mut v, &exit(sysreg(SysReg::new(3, 0, 15, 0, 0), 0, true)));
    assert_eq!(d, Decision::Inject { esr: crate::inject::UNDEF_ESR, far: None });
    assert_eq!(d.action(), Action::Continue);
    assert_eq!(v.regs.pc, PC, "not stepped: the UNDEF is taken at the instruction");
    assert_eq!(v.stats.get(ExitReason::SysReg), 1);
    assert_eq!(fake.reports().len(), 1);
    assert!(fake.reports()[0].contains("is not emulated: injecting undefined instruction"), "{:?}", fake.reports());
    // Applied: ELR_EL1 is the instruction, PC the current-EL SP_ELx vector.
    fake.take_ops();
    inject(&mut fake, &mut v, crate::inject::UNDEF_ESR, None);
    assert_eq!(fake.take_ops(), [Op::ExceptionRegs { elr: PC, spsr: EL1H, esr: crate::inject::UNDEF_ESR, far: None }]);
    assert_eq!((v.regs.pc, v.regs.pstate), (fake.vbar + 0x200, crate::vcpu::PSTATE_EL1H_MASKED));
}

#[test]
fn an_id_register_read_is_answered_from_the_vm_table_and_stepped_over() {
    let mut fake = Fake::new(1);
    fake.id_regs.push((SysReg::ID_AA64PFR0_EL1, 0x1122));
    let mut v = vcpu(0);
    let d = handle_sync(&mut fake, &mut v, &exit(sysreg(SysReg::ID_AA64PFR0_EL1, 7, true)));
    assert_eq!(d, Decision::Resume);
    assert_eq!((v.regs.x[7], v.regs.pc), (0x1122, PC + 4));
    assert!(fake.take_ops().is_empty());
}

#[test]
fn a_set_way_op_sets_tvm_and_leaves_the_guest_to_flush() {
    let mut fake = Fake::new(1);
    let mut v = vcpu(0);
    let d = handle_sync(&mut fake, &mut v, &exit(sysreg(SysReg::DC_CISW, 31, false)));
    assert_eq!(d, Decision::Yield);
    assert_eq!(v.hcr, crate::vcpu::HCR_GUEST | HCR_TVM);
    assert_eq!(fake.take_ops(), [Op::Hcr(crate::vcpu::HCR_GUEST | HCR_TVM)]);
    assert_eq!(v.flush, Some(FlushCursor::new(fake.host_ram, RAM.end - RAM.start)));
    assert_eq!(v.regs.pc, PC + 4);
}

#[test]
fn an_sgi_write_kicks_its_targets() {
    let mut fake = Fake::new(2);
    let mut v = vcpu(0);
    // SGI 3 to vCPU 1 (Aff0 target list bit 1).
    v.regs.x[2] = 3 << 24 | 0b10;
    let d = handle_sync(&mut fake, &mut v, &exit(sysreg(SysReg::ICC_SGI1R_EL1, 2, false)));
    let mut one = crate::vgic::VcpuSet::default();
    one.insert(1);
    assert_eq!(d, Decision::Kick(one));
    assert_eq!(v.regs.pc, PC + 4);
}

#[test]
fn a_data_abort_on_a_device_completes_the_load() {
    let mut fake = Fake::new(1);
    let mut v = vcpu(0);
    let d = handle_sync(&mut fake, &mut v, &data_abort(DEVICE.start + 0x10, 4, 3, false));
    assert_eq!(d, Decision::Resume);
    assert_eq!((v.regs.x[3], v.regs.pc), (0x1234_5678, PC + 4));
    assert_eq!(
        fake.take_ops(),
        [Op::Mmio { vcpu: 0, ipa: DEVICE.start + 0x10, size: 4, write: false, value: 0x1234_5678 }]
    );
    assert_eq!(v.stats.get(ExitReason::for_mmio(false)), 1);
}

#[test]
fn a_data_abort_outside_any_device_injects_an_external_abort_into_that_guest_only() {
    let mut fake = Fake::new(1);
    let mut v = vcpu(0);
    let at = data_abort(0x0900_0000, 4, 1, true);
    let d = handle_sync(&mut fake, &mut v, &at);
    // A bus error for the guest: the VM is not stopped.
    assert_eq!(d, Decision::Inject { esr: crate::inject::abort_esr(true, false, true, true), far: Some(at.far) });
    assert_eq!(d.action(), Action::Continue);
    assert_eq!(v.stats.get(ExitReason::BadAccess), 1);
    assert_eq!(v.regs.pc, PC);
    let reports = fake.reports();
    assert_eq!(reports.len(), 1);
    assert!(
        reports[0].contains("IPA 0x9000000") && reports[0].contains("outside its memory and devices"),
        "{reports:?}"
    );
    // A size the device refuses: refused with the device's name.
    let mut v = vcpu(0);
    handle_sync(&mut fake, &mut v, &data_abort(DEVICE.start, 8, 1, false));
    assert!(fake.reports()[1].contains("refused by the emulated fake"), "{:?}", fake.reports());
}

#[test]
fn a_data_abort_on_untouched_ram_is_a_first_touch_not_mmio() {
    let mut fake = Fake::new(1);
    fake.unmapped_ram = RAM;
    let mut v = vcpu(0);
    let d = handle_sync(&mut fake, &mut v, &data_abort(RAM.start + 0x20_0000, 4, 1, false));
    assert_eq!(d, Decision::Resume);
    assert_eq!(fake.take_ops(), [Op::RamFault { ipa: RAM.start + 0x20_0000 }]);
    assert_eq!(v.regs.pc, PC, "the access is retried");
}

#[test]
fn an_instruction_abort_outside_ram_injects_a_prefetch_abort() {
    let mut fake = Fake::new(1);
    let mut v = vcpu(0);
    let at = SyncExit { esr: Esr::decode(0x20 << 26 | IL | 0b000111), far: 0x1000, hpfar: 0x1 << 4 };
    let d = handle_sync(&mut fake, &mut v, &at);
    assert_eq!(d, Decision::Inject { esr: crate::inject::abort_esr(false, false, true, false), far: Some(0x1000) });
    assert!(fake.reports()[0].contains("injecting prefetch abort"));
}

#[test]
fn wfi_resumes_with_an_interrupt_pending_and_waits_without() {
    let mut fake = Fake::new(1);
    let wfi = exit(0x01 << 26 | IL | 1 << 24 | 0xe << 20);
    let mut v = vcpu(0);
    assert_eq!(handle_sync(&mut fake, &mut v, &wfi), Decision::Yield);
    assert_eq!((v.state, v.regs.pc), (VcpuState::Waiting, PC + 4));
    assert_eq!(fake.take_ops(), [Op::ConsoleIdle(0)]);
    // SPI 32 enabled and pending.
    {
        let mut g = fake.vgic.borrow_mut();
        g.mmio_write(0, crate::vgic::Frame::Dist, 0x104, 4, 1).unwrap();
        g.inject(0, 32).unwrap();
    }
    let mut v = vcpu(0);
    assert_eq!(handle_sync(&mut fake, &mut v, &wfi), Decision::Resume);
    assert_eq!((v.state, v.regs.pc), (VcpuState::Runnable, PC + 4));
    assert_eq!(v.stats.get(ExitReason::Wfi), 1);
    // WFE: the CPU goes to someone else, the vCPU stays runnable.
    let mut v = vcpu(0);
    assert_eq!(handle_sync(&mut fake, &mut v, &exit(0x01 << 26 | IL | 1 << 24 | 0xe << 20 | 1)), Decision::Yield);
    assert_eq!((v.state, v.yielded), (VcpuState::Runnable, true));
}

#[test]
fn an_hvc_with_an_unknown_function_id_returns_not_supported() {
    let mut fake = Fake::new(1);
    let mut v = vcpu(0);
    assert_eq!(hvc(&mut fake, &mut v, &[0xc300_ff00, 1, 2, 3]), Decision::Resume);
    assert_eq!(v.regs.x[..4], [u64::MAX, 0, 0, 0]);
    assert_eq!(v.regs.pc, PC, "an HVC returns past itself: ELR_EL2 already points there");
    assert_eq!(v.stats.get(ExitReason::Hvc), 1);
}

#[test]
fn a_trapped_smc_is_stepped_over_and_answered_like_an_hvc() {
    let mut fake = Fake::new(1);
    let mut v = vcpu(0);
    v.regs.x[0] = u64::from(psci_id::VERSION);
    assert_eq!(handle_sync(&mut fake, &mut v, &exit(0x17 << 26 | IL)), Decision::Resume);
    assert_eq!((v.regs.pc, v.regs.x[0]), (PC + 4, 0x1_0001));
    assert_eq!(v.stats.get(ExitReason::Smc), 1);
}

#[test]
fn psci_cpu_on_checks_its_target_then_posts_and_kicks() {
    let mut fake = Fake::new(2);
    let mut v = vcpu(0);
    let entry = RAM.start + 0x1000;
    // MPIDR of a vCPU the VM does not have.
    let cpu_on = u64::from(psci_id::CPU_ON_64);
    assert_eq!(hvc(&mut fake, &mut v, &[cpu_on, 5, entry, 9]), Decision::Resume);
    assert_eq!(v.regs.x[0] as i64, -2, "INVALID_PARAMETERS");
    assert!(fake.take_ops().is_empty());
    // vCPU 1: posted for its own CPU, which the kick wakes.
    let d = hvc(&mut fake, &mut v, &[cpu_on, 1, entry, 9]);
    let mut one = crate::vgic::VcpuSet::default();
    one.insert(1);
    assert_eq!(d, Decision::Kick(one));
    assert_eq!(v.regs.x[0], 0);
    assert_eq!(fake.take_ops(), [Op::CpuOn { target: 1, entry, context_id: 9 }]);
}

#[test]
fn psci_off_calls_stop_the_vm_with_a_reason() {
    let mut fake = Fake::new(1);
    let mut v = vcpu(0);
    assert_eq!(
        hvc(&mut fake, &mut v, &[u64::from(psci_id::SYSTEM_OFF)]),
        Decision::Stop(Cow::Borrowed("PSCI SYSTEM_OFF"))
    );
    assert_eq!(hvc(&mut fake, &mut v, &[u64::from(psci_id::SYSTEM_RESET)]), Decision::Reset);
    // CPU_OFF of the only vCPU on: it is off and the VM has ended.
    let d = hvc(&mut fake, &mut v, &[u64::from(psci_id::CPU_OFF)]);
    assert_eq!(d, Decision::Stop(Cow::Borrowed("every vCPU is off (PSCI CPU_OFF)")));
    assert_eq!(v.state, VcpuState::Off);
    // With another vCPU on, CPU_OFF only gives the CPU away.
    let mut fake = Fake::new(2);
    fake.psci.borrow_mut().cpu_on(1, RAM.start, 0, RAM).unwrap();
    fake.psci.borrow_mut().vcpu_started(1);
    let mut v = vcpu(0);
    assert_eq!(hvc(&mut fake, &mut v, &[u64::from(psci_id::CPU_OFF)]), Decision::Yield);
}

#[test]
fn the_physical_timer_is_emulated_and_arms_the_el2_timer() {
    let mut fake = Fake::new(1);
    let mut v = vcpu(0);
    // CNTP_TVAL_EL0 = 500 at count 1000, then CNTP_CTL_EL0 = ENABLE.
    v.regs.x[4] = 500;
    assert_eq!(handle_sync(&mut fake, &mut v, &exit(sysreg(SysReg::CNTP_TVAL_EL0, 4, false))), Decision::Resume);
    v.regs.x[4] = 1;
    assert_eq!(handle_sync(&mut fake, &mut v, &exit(sysreg(SysReg::CNTP_CTL_EL0, 4, false))), Decision::Resume);
    assert_eq!((v.sys.cntp_cval, v.sys.cntp_ctl, v.regs.pc), (1500, 1, PC + 8));
    assert_eq!(fake.take_ops().last(), Some(&Op::ArmHypBy(1500)));
}

#[test]
fn an_fp_trap_goes_to_the_lazy_switch_and_an_unknown_class_is_undefined() {
    let mut fake = Fake::new(1);
    let mut v = vcpu(0);
    assert_eq!(handle_sync(&mut fake, &mut v, &exit(0x07 << 26 | IL)), Decision::Resume);
    assert_eq!(fake.take_ops(), [Op::FpTrap]);
    // EC 0x0e: an illegal execution state.
    let d = handle_sync(&mut fake, &mut v, &exit(0x0e << 26 | IL));
    assert_eq!(d, Decision::Inject { esr: crate::inject::UNDEF_ESR, far: None });
    assert_eq!(v.stats.get(ExitReason::Undefined), 1);
}

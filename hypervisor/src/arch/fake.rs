//! A fake arch layer for host tests (Hafnium's `src/arch/fake`): the VM
//! and CPU operations the pure exit core needs (`crate::exit::ExitEnv`),
//! backed by the real pure models (`Psci`, `Vgic`) and a record of every
//! hardware operation, which tests assert on. Also the stand-ins for the
//! arch types `crate::vm::Vm` holds.

use crate::esr::{FaultStatus, SysReg};
use crate::exit::{ExitEnv, SpWriteback};
use crate::mmio::MmioAccess;
use crate::mmio::bus::AccessError;
use crate::psci::Psci;
use crate::shm::{Membership, Ring};
use crate::vcpu::{GuestRegs, Vcpu};
use crate::vgic::{GicVersion, Vgic};
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::ops::{DerefMut, Range};

/// One operation the core asked of the VM or the CPU, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Mmio { vcpu: usize, ipa: u64, size: u8, write: bool, value: u64 },
    ConsoleWrite { vcpu: usize, bytes: Vec<u8> },
    ConsoleIdle(usize),
    PrintStats(usize),
    Booted,
    Doorbell { vcpu: usize, ring: Ring },
    CpuOn { target: usize, entry: u64, context_id: u64 },
    Report { vcpu: usize, text: String },
    FpTrap,
    RamFault { ipa: u64 },
    Fetch(u64),
    ArmHypBy(u64),
    Hcr(u64),
    VmControl(SysReg, u64),
    Mdscr(u64),
    Sp(SpWriteback),
    ExceptionRegs { elr: u64, spsr: u64, esr: u64, far: Option<u64> },
}

/// A fake VM and physical CPU.
pub struct Fake {
    pub id: usize,
    /// Guest-physical RAM; a stage-2 fault in `unmapped_ram` is a first
    /// touch (`ram_fault` answers true), anywhere else not.
    pub ram: Range<u64>,
    pub unmapped_ram: Range<u64>,
    pub host_ram: u64,
    pub shm: Vec<Membership>,
    pub psci: RefCell<Psci>,
    pub vgic: RefCell<Vgic>,
    /// The one emulated device: reads answer `device_value`, writes are
    /// taken; accesses of 8 bytes are refused.
    pub device: Range<u64>,
    pub device_value: u64,
    /// Guest memory as `fetch_instruction` sees it: (VA, instruction).
    pub code: Vec<(u64, u32)>,
    /// ID register values (HCR_EL2.TID3).
    pub id_regs: Vec<(SysReg, u64)>,
    /// Live system registers of the loaded vCPU.
    pub now: u64,
    pub sctlr: u64,
    pub vbar: u64,
    /// Everything done, in order.
    pub ops: RefCell<Vec<Op>>,
}

/// The fake VM's RAM and device.
pub const RAM: Range<u64> = 0x4000_0000..0x4800_0000;
pub const DEVICE: Range<u64> = 0x0a00_0000..0x0a00_1000;

impl Fake {
    /// A GICv3 VM with `vcpus` vCPUs (vCPU 0 on), RAM at [`RAM`] all
    /// mapped, one device at [`DEVICE`], and nothing recorded.
    pub fn new(vcpus: usize) -> Self {
        let mut vgic = Vgic::new(GicVersion::V3, vcpus, 32).expect("a valid vGIC");
        // ARE_NS | EnableGrp1 | EnableGrp0, as Linux writes.
        vgic.mmio_write(0, crate::vgic::Frame::Dist, 0, 4, 0x13).expect("GICD_CTLR");
        Fake {
            id: 0,
            ram: RAM,
            unmapped_ram: 0..0,
            host_ram: 0x8000_0000,
            shm: Vec::new(),
            psci: RefCell::new(Psci::new(vcpus)),
            vgic: RefCell::new(vgic),
            device: DEVICE,
            device_value: 0x1234_5678,
            code: Vec::new(),
            id_regs: Vec::new(),
            now: 1000,
            sctlr: crate::vcpu::SCTLR_EL1_RESET,
            vbar: 0xffff_8000_1000_0000,
            ops: RefCell::new(Vec::new()),
        }
    }

    fn record(&self, op: Op) {
        self.ops.borrow_mut().push(op);
    }

    /// What was recorded, forgetting it.
    pub fn take_ops(&self) -> Vec<Op> {
        core::mem::take(&mut *self.ops.borrow_mut())
    }

    /// The reports recorded so far.
    pub fn reports(&self) -> Vec<String> {
        let ops = self.ops.borrow();
        ops.iter()
            .filter_map(|op| match op {
                Op::Report { text, .. } => Some(text.clone()),
                _ => None,
            })
            .collect()
    }
}

impl ExitEnv for Fake {
    fn vm_id(&self) -> usize {
        self.id
    }
    fn guest_ram(&self) -> Range<u64> {
        self.ram.clone()
    }
    fn host_ram(&self) -> u64 {
        self.host_ram
    }
    fn shm(&self) -> &[Membership] {
        &self.shm
    }
    fn psci(&self) -> impl DerefMut<Target = Psci> + '_ {
        self.psci.borrow_mut()
    }
    fn vgic(&self) -> impl DerefMut<Target = Vgic> + '_ {
        self.vgic.borrow_mut()
    }
    fn id_reg(&self, reg: SysReg) -> Option<u64> {
        self.id_regs.iter().find(|(r, _)| *r == reg).map(|&(_, v)| v)
    }
    fn mmio(&self, vcpu: usize, regs: &GuestRegs, a: &MmioAccess) -> Result<u64, AccessError> {
        if !self.device.contains(&a.ipa) {
            return Err(AccessError::NoDevice);
        }
        if a.size == 8 {
            return Err(AccessError::Refused { device: "fake" });
        }
        let value = if a.write { a.store_value(&regs.x) } else { self.device_value };
        self.record(Op::Mmio { vcpu, ipa: a.ipa, size: a.size, write: a.write, value });
        Ok(if a.write { 0 } else { value })
    }
    fn console_write(&self, vcpu: usize, bytes: &[u8]) {
        self.record(Op::ConsoleWrite { vcpu, bytes: bytes.to_vec() });
    }
    fn console_idle(&self, vcpu: usize) {
        self.record(Op::ConsoleIdle(vcpu));
    }
    fn print_stats(&self, v: &Vcpu) {
        self.record(Op::PrintStats(v.index));
    }
    fn booted(&self) {
        self.record(Op::Booted);
    }
    fn ring_doorbell(&self, vcpu: usize, ring: Ring) {
        self.record(Op::Doorbell { vcpu, ring });
    }
    fn post_cpu_on(&self, target: usize, entry: u64, context_id: u64) {
        self.record(Op::CpuOn { target, entry, context_id });
    }
    fn report(&self, vcpu: usize, what: core::fmt::Arguments) {
        self.record(Op::Report { vcpu, text: alloc::format!("{what}") });
    }
    fn fp_trap(&mut self, _v: &mut Vcpu) {
        self.record(Op::FpTrap);
    }
    fn ram_fault(&mut self, _v: &mut Vcpu, ipa: u64, _status: FaultStatus) -> bool {
        if !self.unmapped_ram.contains(&ipa) {
            return false;
        }
        self.record(Op::RamFault { ipa });
        true
    }
    fn fetch_instruction(&mut self, pc: u64) -> Option<u32> {
        self.record(Op::Fetch(pc));
        self.code.iter().find(|(va, _)| *va == pc).map(|&(_, insn)| insn)
    }
    fn now(&self) -> u64 {
        self.now
    }
    fn arm_hyp_by(&mut self, deadline: u64) {
        self.record(Op::ArmHypBy(deadline));
    }
    fn write_hcr(&mut self, hcr: u64) {
        self.record(Op::Hcr(hcr));
    }
    fn read_sctlr(&self) -> u64 {
        self.sctlr
    }
    fn write_vm_control(&mut self, reg: SysReg, value: u64) {
        if reg == SysReg::SCTLR_EL1 {
            self.sctlr = value;
        }
        self.record(Op::VmControl(reg, value));
    }
    fn write_mdscr(&mut self, value: u64) {
        self.record(Op::Mdscr(value));
    }
    fn add_sp(&mut self, sp: SpWriteback) {
        self.record(Op::Sp(sp));
    }
    fn vbar(&self) -> u64 {
        self.vbar
    }
    fn set_exception_regs(&mut self, elr: u64, spsr: u64, esr: u64, far: Option<u64>) {
        self.record(Op::ExceptionRegs { elr, spsr, esr, far });
    }
}

/// Stands in for the aarch64 devices on a VM's MMIO bus (none on the host).
pub enum Device {}

/// Stands in for the aarch64 virtio-net card.
pub struct VirtioNet;

/// Stands in for the aarch64 saved FP/SIMD registers.
#[derive(Clone, Copy, Default)]
pub struct FpState;

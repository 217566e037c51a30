//! A virtual CPU's architectural state, as plain data.
//!
//! [`GuestRegs`] is what the world switch (`arch/aarch64/exceptions.S`)
//! saves and loads on every exit and entry; [`El1Sysregs`] is the EL1
//! system-register context, switched only when another vCPU takes the
//! physical CPU (the lazy switch Hafnium and KVM use). [`Vcpu`] holds them
//! with what the scheduler needs, and [`Vcpu::reset`] is the one reset.

use crate::pvtime;
use crate::setway::FlushCursor;
use crate::stats::ExitStats;
use crate::vgic::VgicCpuState;

/// General registers, PC and PSTATE. Layout shared with exceptions.S:
/// x0..x30 at 8 * n, PC at 8 * 31, PSTATE at 8 * 32.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuestRegs {
    pub x: [u64; 31],
    pub pc: u64,
    pub pstate: u64,
}

impl GuestRegs {
    /// Reads register `n` as an instruction names it: 31 is xzr.
    pub fn get(&self, n: u8) -> u64 {
        self.x.get(n as usize).copied().unwrap_or(0)
    }

    /// Writes register `n`; writes to 31 (xzr) are dropped.
    pub fn set(&mut self, n: u8, v: u64) {
        if let Some(r) = self.x.get_mut(n as usize) {
            *r = v;
        }
    }
}

/// The EL1 (and EL0) system registers a guest OS uses, plus the per-vCPU
/// EL2 values that describe it to the guest (VMPIDR_EL2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct El1Sysregs {
    pub sctlr: u64,
    pub actlr: u64,
    pub cpacr: u64,
    pub ttbr0: u64,
    pub ttbr1: u64,
    pub tcr: u64,
    pub mair: u64,
    pub amair: u64,
    pub vbar: u64,
    pub contextidr: u64,
    pub tpidr_el0: u64,
    pub tpidrro_el0: u64,
    pub tpidr_el1: u64,
    pub esr: u64,
    pub far: u64,
    pub par: u64,
    pub afsr0: u64,
    pub afsr1: u64,
    pub cntkctl: u64,
    pub csselr: u64,
    pub mdscr: u64,
    pub sp_el0: u64,
    pub sp_el1: u64,
    pub elr_el1: u64,
    pub spsr_el1: u64,
    /// Virtual timer control and compare value (ARM ARM D11.2.4).
    pub cntv_ctl: u64,
    pub cntv_cval: u64,
    /// What the guest reads as MPIDR_EL1.
    pub vmpidr: u64,
    /// The emulated EL1 physical timer's control and compare value
    /// (`vtimer::ptimer`); never in the hardware.
    pub cntp_ctl: u64,
    pub cntp_cval: u64,
    /// The emulated debug registers (`vdebug`); never in the hardware.
    pub debug: crate::vdebug::DebugRegs,
}

/// SPSR value for entering EL1h with D, A, I and F masked (ARM ARM C5.2.19).
pub const PSTATE_EL1H_MASKED: u64 = 0x3c5;
/// SCTLR_EL1 at reset: RES1 bits set, MMU and caches off, little-endian.
pub const SCTLR_EL1_RESET: u64 = 0x30d0_0800;

/// MPIDR the guest sees for vCPU `index`: Aff0 = index (Aff1 for >= 256 is
/// not needed: a VM has at most 8 vCPUs), bit 31 RES1.
pub const fn vcpu_mpidr(index: usize) -> u64 {
    (1 << 31) | (index as u64 & 0xff)
}

/// Power and scheduling state of a vCPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VcpuState {
    /// Off (PSCI): not runnable until another vCPU's CPU_ON.
    Off,
    /// Runnable.
    Runnable,
    /// Waiting for an interrupt (WFI): runnable again when one is pending.
    Waiting,
    /// Its VM has stopped.
    Stopped,
}

/// HCR_EL2 while a vCPU runs (ARM ARM D19.2.48): the bits `switch.rs`
/// lists (stage 2, the traps, virtual interrupts), which checks they are
/// this value.
pub const HCR_GUEST: u64 = 0x807c_663b;

/// HCR_EL2.TVM (bit 26): writes to the EL1 virtual-memory controls trap
/// (ARM ARM D19.2.48); set while a set/way flush waits (`exit`).
pub const HCR_TVM: u64 = 1 << 26;

/// A vCPU: its registers and what the scheduler needs; plain data, which
/// the arch layer's run loop loads into a physical CPU.
pub struct Vcpu {
    pub index: usize,
    pub regs: GuestRegs,
    pub sys: El1Sysregs,
    pub state: VcpuState,
    pub stats: ExitStats,
    /// Virtual CPU interface state while not loaded.
    pub vgic: VgicCpuState,
    /// HCR_EL2 while it runs: [`HCR_GUEST`], plus TVM while a set/way
    /// flush waits for the guest to switch its caches (sysregs.rs).
    pub hcr: u64,
    /// A set/way flush of the VM's RAM under way: while there is one, the
    /// vCPU does not enter its guest; its CPU flushes a slice's worth each
    /// time it is scheduled (`setway`, `vmm::flush_for_a_slice`).
    pub flush: Option<FlushCursor>,
    /// Its stolen time (`pvtime`): runnable but not running.
    pub steal: pvtime::Steal,
    /// It gave the CPU away on purpose (vendor YIELD, WFE) at its last
    /// exit: the scheduler runs someone else first (`vsched::pick`).
    pub yielded: bool,
    /// Its CPU was taken for a vCPU that woke (`take_wakeup`) at its last
    /// exit.
    pub preempted: bool,
}

impl Vcpu {
    /// vCPU `index` of a VM being built: off, in its reset state, no exits
    /// counted.
    pub fn new(index: usize) -> Self {
        let (regs, sys) = reset_state(index, 0, 0);
        let mut v = Vcpu {
            index,
            regs,
            sys,
            state: VcpuState::Off,
            stats: ExitStats::default(),
            vgic: VgicCpuState::default(),
            hcr: HCR_GUEST,
            flush: None,
            steal: pvtime::Steal::default(),
            yielded: false,
            preempted: false,
        };
        v.reset(0, 0, VcpuState::Off);
        v
    }

    /// Puts the vCPU in its reset state, entering at `entry` with x0 =
    /// `arg` (Linux booting.rst; DEN 0022D CPU_ON), in `state`; its exit
    /// counts stay. Every path that (re)starts a vCPU goes through here: VM
    /// build ([`Vcpu::new`]), the image load of a VM start or SYSTEM_RESET
    /// (`vmm::load_images`) and CPU_ON (`vmm::start_pending_cpu_on`).
    pub fn reset(&mut self, entry: u64, arg: u64, state: VcpuState) {
        let (regs, sys) = reset_state(self.index, entry, arg);
        self.regs = regs;
        self.sys = sys;
        self.vgic = VgicCpuState::default();
        self.hcr = HCR_GUEST;
        self.flush = None;
        self.yielded = false;
        self.preempted = false;
        self.steal = pvtime::Steal::default();
        self.state = state;
    }
}

/// Registers at reset for a vCPU that starts at `entry` with `x0 = arg`
/// (Linux booting.rst: MMU off, interrupts masked, EL1h).
pub fn reset_state(index: usize, entry: u64, arg: u64) -> (GuestRegs, El1Sysregs) {
    let mut regs = GuestRegs { pc: entry, pstate: PSTATE_EL1H_MASKED, ..Default::default() };
    regs.x[0] = arg;
    let sys = El1Sysregs { sctlr: SCTLR_EL1_RESET, vmpidr: vcpu_mpidr(index), ..Default::default() };
    (regs, sys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_world_switch() {
        assert_eq!(core::mem::offset_of!(GuestRegs, pc), 8 * 31);
        assert_eq!(core::mem::offset_of!(GuestRegs, pstate), 8 * 32);
    }

    #[test]
    fn xzr_reads_zero_and_ignores_writes() {
        let mut r = GuestRegs::default();
        r.set(31, 5);
        assert_eq!(r.get(31), 0);
        r.set(3, 7);
        assert_eq!(r.get(3), 7);
    }

    #[test]
    fn reset_forgets_everything_but_the_index_and_the_exit_counts() {
        let mut v = Vcpu::new(2);
        assert_eq!((v.state, v.regs.pc, v.sys.vmpidr, v.hcr), (VcpuState::Off, 0, 0x8000_0002, HCR_GUEST));
        v.stats.record(crate::stats::ExitReason::Hvc);
        let counted = v.stats;
        v.regs.x[5] = 9;
        v.sys.ttbr0 = 0x1000;
        v.sys.sctlr |= 1;
        v.vgic.vmcr = 3;
        v.hcr |= 1 << 26;
        v.flush = Some(FlushCursor::new(0x4000_0000, 0x1000));
        v.steal.runnable(5);
        v.yielded = true;
        v.preempted = true;
        v.state = VcpuState::Waiting;
        v.reset(0x4008_0000, 0x4400_0000, VcpuState::Runnable);
        let (regs, sys) = reset_state(2, 0x4008_0000, 0x4400_0000);
        assert_eq!((v.regs, v.sys, v.vgic), (regs, sys, VgicCpuState::default()));
        assert_eq!((v.hcr, v.flush, v.steal), (HCR_GUEST, None, pvtime::Steal::default()));
        assert!(!v.yielded && !v.preempted);
        assert_eq!((v.index, v.state, v.stats), (2, VcpuState::Runnable, counted));
    }

    #[test]
    fn reset_state_follows_the_boot_protocol() {
        let (r, s) = reset_state(1, 0x4000_0000, 0x43e0_0000);
        assert_eq!(r.pc, 0x4000_0000);
        assert_eq!(r.x[0], 0x43e0_0000);
        assert_eq!(r.pstate, 0x3c5);
        assert_eq!(s.sctlr & 1, 0, "MMU off");
        assert_eq!(s.vmpidr, 0x8000_0001);
    }
}

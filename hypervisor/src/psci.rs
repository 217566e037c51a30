//! PSCI 1.1 (Arm DEN 0022D) for a VM's vCPUs: the per-VM power state
//! machine behind CPU_ON, CPU_OFF, AFFINITY_INFO and CPU_SUSPEND.
//!
//! A pure core: [`crate::smccc::dispatch`] calls it with the guest's
//! arguments and the glue carries out what it decides (start a vCPU at an
//! entry point, stop one, wait for an interrupt).
//!
//! vCPU `i` has MPIDR Aff0 = `i` and Aff1..Aff3 = 0 ([`vcpu_mpidr`]).
//!
//! Errors and result types are the `smccc` crate's ([`Error`],
//! [`AffinityState`], [`MigrateType`]): they carry exactly the DEN 0022D
//! codes, and `i64::from(Error)` gives the value for x0.

use core::ops::Range;

pub use ::smccc::psci::error::Error;
pub use ::smccc::psci::{AffinityState, MigrateType};
use shared::hvc::{self, psci as id};
use shared::platform::MAX_VCPUS;

/// PSCI_VERSION: 1.1 (DEN 0022D PSCI_VERSION: major in `[30:16]`, minor in
/// `[15:0]`).
pub const VERSION: u32 = id::VERSION_1_1;

/// MIGRATE_INFO_TYPE: no Trusted OS is present, so none needs migrating
/// (DEN 0022D MIGRATE_INFO_TYPE, value 2).
pub const MIGRATE_INFO_TYPE: MigrateType = MigrateType::MigrationNotRequired;

/// The affinity fields of an MPIDR: Aff3 `[39:32]`, Aff2 `[23:16]`, Aff1
/// `[15:8]`, Aff0 `[7:0]`. A PSCI `target_cpu` with any other bit set is
/// invalid (DEN 0022D CPU_ON: `target_cpu` holds a copy of the MPIDR
/// affinity fields; KVM's `kvm_psci_valid_affinity` applies the same mask).
pub const MPIDR_AFFINITY_MASK: u64 = 0xff_00ff_ffff;

/// The MPIDR affinity of vCPU `vcpu`: Aff0 = `vcpu` (at most 255).
pub const fn vcpu_mpidr(vcpu: usize) -> u64 {
    (vcpu as u64) & 0xff
}

/// The VMPIDR_EL2 value for vCPU `vcpu`: its affinity plus the RES1 bit 31
/// of MPIDR_EL1 (ARM ARM D17.2.98 "MPIDR_EL1"); U (bit 30) = 0, MT (bit
/// 24) = 0.
pub const fn vmpidr_el2(vcpu: usize) -> u64 {
    vcpu_mpidr(vcpu) | (1 << 31)
}

/// The vCPU index an MPIDR affinity names, the inverse of [`vcpu_mpidr`]:
/// `None` when bits outside the affinity fields, or Aff1..Aff3, are set.
/// Whether the index exists in a VM is [`Psci`]'s question.
pub const fn mpidr_to_vcpu(mpidr: u64) -> Option<usize> {
    // Any bit outside Aff0 (affinity or not) names no vCPU of ours.
    if mpidr & !0xff != 0 {
        return None;
    }
    Some((mpidr & 0xff) as usize)
}

/// A vCPU's power state as PSCI sees it (DEN 0022D AFFINITY_INFO).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VcpuPower {
    /// Running (or runnable).
    On,
    /// Off: only CPU_ON brings it back.
    Off,
    /// CPU_ON succeeded but the vCPU has not yet run.
    OnPending,
}

/// A successful CPU_ON: start `vcpu` at `entry` with `context_id` in x0,
/// in the state DEN 0022D requires of a CPU_ON entry (EL1h, DAIF masked,
/// MMU and caches off), then call [`Psci::vcpu_started`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuOn {
    pub vcpu: usize,
    pub entry: u64,
    pub context_id: u64,
}

/// What CPU_SUSPEND asked for (DEN 0022D CPU_SUSPEND, original
/// `power_state` format: StateType `[16]`). Both are carried out as a WFI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SuspendKind {
    /// StateType = 0: a standby state, context kept.
    Standby,
    /// StateType = 1: a powerdown state. We keep the context and return
    /// SUCCESS on wakeup, as KVM does (Linux `arch/arm64/kvm/psci.c`, citing
    /// DEN 0022A §5.4.2 clause 3): the implementation may enter a shallower
    /// state than requested, and a standby state returns to the caller.
    PowerDown,
}

/// The original-format `power_state` bits: StateID `[15:0]`, StateType
/// `[16]`, PowerLevel `[25:24]`; the rest is reserved and must be zero
/// (DEN 0022D CPU_SUSPEND, original format; Linux's
/// `PSCI_0_2_POWER_STATE_MASK`).
const POWER_STATE_MASK: u32 = 0x0301_ffff;

/// The PSCI state of one VM's vCPUs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Psci {
    power: [VcpuPower; MAX_VCPUS],
    count: usize,
}

impl Psci {
    /// A VM with `vcpu_count` vCPUs (clamped to 1..=[`MAX_VCPUS`]): vCPU 0
    /// is on (the boot CPU), the others off until CPU_ON.
    pub fn new(vcpu_count: usize) -> Self {
        let mut psci = Self { power: [VcpuPower::Off; MAX_VCPUS], count: vcpu_count.clamp(1, MAX_VCPUS) };
        psci.reset();
        psci
    }

    /// Back to the boot state (SYSTEM_RESET).
    pub fn reset(&mut self) {
        self.power = [VcpuPower::Off; MAX_VCPUS];
        self.power[0] = VcpuPower::On;
    }

    /// Number of vCPUs in the VM.
    pub fn vcpu_count(&self) -> usize {
        self.count
    }

    /// The power state of `vcpu`, or `None` if there is no such vCPU.
    pub fn power(&self, vcpu: usize) -> Option<VcpuPower> {
        if vcpu < self.count { self.power.get(vcpu).copied() } else { None }
    }

    /// No vCPU is on or pending: the VM has nothing left to run.
    pub fn all_off(&self) -> bool {
        self.power.iter().take(self.count).all(|p| *p == VcpuPower::Off)
    }

    /// The vCPU index `target_cpu` names in this VM.
    fn target(&self, target_cpu: u64) -> Result<usize, Error> {
        match mpidr_to_vcpu(target_cpu) {
            Some(vcpu) if vcpu < self.count => Ok(vcpu),
            _ => Err(Error::InvalidParameters),
        }
    }

    /// CPU_ON (DEN 0022D CPU_ON): an unknown target is INVALID_PARAMETERS,
    /// a running one ALREADY_ON, one already being started ON_PENDING, an
    /// entry point outside guest RAM (`ram`) INVALID_ADDRESS. On success the
    /// target is OnPending until the glue reports [`Psci::vcpu_started`].
    pub fn cpu_on(&mut self, target_cpu: u64, entry: u64, context_id: u64, ram: Range<u64>) -> Result<CpuOn, Error> {
        let vcpu = self.target(target_cpu)?;
        match self.power[vcpu] {
            VcpuPower::On => return Err(Error::AlreadyOn),
            VcpuPower::OnPending => return Err(Error::OnPending),
            VcpuPower::Off => {}
        }
        if !ram.contains(&entry) {
            return Err(Error::InvalidAddress);
        }
        self.power[vcpu] = VcpuPower::OnPending;
        Ok(CpuOn { vcpu, entry, context_id })
    }

    /// The glue has started `vcpu` after a CPU_ON: OnPending becomes On.
    pub fn vcpu_started(&mut self, vcpu: usize) {
        if vcpu < self.count && self.power[vcpu] == VcpuPower::OnPending {
            self.power[vcpu] = VcpuPower::On;
        }
    }

    /// CPU_OFF (DEN 0022D CPU_OFF) by `vcpu`, the caller: it never returns
    /// to the guest. An index outside the VM is ignored.
    pub fn cpu_off(&mut self, vcpu: usize) {
        if vcpu < self.count {
            self.power[vcpu] = VcpuPower::Off;
        }
    }

    /// AFFINITY_INFO (DEN 0022D AFFINITY_INFO). Only `lowest_affinity_level` 0 is
    /// supported (levels above 0 are optional since PSCI 1.0); others, and
    /// unknown targets, are INVALID_PARAMETERS.
    pub fn affinity_info(&self, target_affinity: u64, lowest_affinity_level: u32) -> Result<AffinityState, Error> {
        if lowest_affinity_level != 0 {
            return Err(Error::InvalidParameters);
        }
        let vcpu = self.target(target_affinity)?;
        Ok(match self.power[vcpu] {
            VcpuPower::On => AffinityState::On,
            VcpuPower::Off => AffinityState::Off,
            VcpuPower::OnPending => AffinityState::OnPending,
        })
    }

    /// CPU_SUSPEND (DEN 0022D CPU_SUSPEND) with the original `power_state`
    /// format (PSCI_FEATURES reports bit 1 = 0). Reserved bits set are
    /// INVALID_PARAMETERS. The entry point and context ID of a powerdown
    /// request are not used: see [`SuspendKind::PowerDown`].
    pub fn cpu_suspend(&self, power_state: u32) -> Result<SuspendKind, Error> {
        if power_state & !POWER_STATE_MASK != 0 {
            return Err(Error::InvalidParameters);
        }
        if power_state & (1 << 16) != 0 { Ok(SuspendKind::PowerDown) } else { Ok(SuspendKind::Standby) }
    }
}

/// PSCI_FEATURES (DEN 0022D PSCI_FEATURES) for `fid`: 0 for an implemented PSCI
/// function or SMCCC_VERSION (Linux asks this before trusting
/// SMCCC_VERSION), NOT_SUPPORTED otherwise. For CPU_SUSPEND, 0 also means
/// the original `power_state` format and platform-coordinated mode only.
pub fn features(fid: u32) -> Result<u32, Error> {
    match fid {
        id::VERSION
        | id::CPU_SUSPEND_32
        | id::CPU_SUSPEND_64
        | id::CPU_OFF
        | id::CPU_ON_32
        | id::CPU_ON_64
        | id::AFFINITY_INFO_32
        | id::AFFINITY_INFO_64
        | id::MIGRATE_INFO_TYPE
        | id::SYSTEM_OFF
        | id::SYSTEM_RESET
        | id::FEATURES
        | hvc::SMCCC_VERSION => Ok(0),
        _ => Err(Error::NotSupported),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAM: Range<u64> = 0x4000_0000..0x4800_0000;
    const ENTRY: u64 = 0x4008_0000;

    #[test]
    fn mpidr_mapping() {
        for vcpu in 0..MAX_VCPUS {
            assert_eq!(mpidr_to_vcpu(vcpu_mpidr(vcpu)), Some(vcpu));
            assert_eq!(vmpidr_el2(vcpu), 0x8000_0000 | vcpu as u64);
        }
        assert_eq!(mpidr_to_vcpu(0x100), None, "Aff1 set");
        assert_eq!(mpidr_to_vcpu(1 << 32), None, "Aff3 set");
        assert_eq!(mpidr_to_vcpu(0x8000_0001), None, "bit 31 is not affinity");
        assert_eq!(mpidr_to_vcpu(1 << 40), None);
        assert_eq!(mpidr_to_vcpu(u64::MAX), None);
    }

    #[test]
    fn boot_state() {
        let psci = Psci::new(4);
        assert_eq!(psci.vcpu_count(), 4);
        assert_eq!(psci.power(0), Some(VcpuPower::On));
        for vcpu in 1..4 {
            assert_eq!(psci.power(vcpu), Some(VcpuPower::Off));
        }
        assert_eq!(psci.power(4), None);
        assert_eq!(Psci::new(0).vcpu_count(), 1);
        assert_eq!(Psci::new(1000).vcpu_count(), MAX_VCPUS);
    }

    #[test]
    fn cpu_on_twice_then_started() {
        let mut psci = Psci::new(2);
        assert_eq!(psci.cpu_on(1, ENTRY, 0xc0ffee, RAM), Ok(CpuOn { vcpu: 1, entry: ENTRY, context_id: 0xc0ffee }));
        assert_eq!(psci.affinity_info(1, 0), Ok(AffinityState::OnPending));
        assert_eq!(psci.cpu_on(1, ENTRY, 0, RAM), Err(Error::OnPending));
        psci.vcpu_started(1);
        assert_eq!(psci.affinity_info(1, 0), Ok(AffinityState::On));
        assert_eq!(psci.cpu_on(1, ENTRY, 0, RAM), Err(Error::AlreadyOn));
        // The boot vCPU is already on.
        assert_eq!(psci.cpu_on(0, ENTRY, 0, RAM), Err(Error::AlreadyOn));
    }

    #[test]
    fn off_then_on_again() {
        let mut psci = Psci::new(2);
        psci.cpu_on(1, ENTRY, 0, RAM).unwrap();
        psci.vcpu_started(1);
        psci.cpu_off(1);
        assert_eq!(psci.affinity_info(1, 0), Ok(AffinityState::Off));
        assert!(psci.cpu_on(1, ENTRY, 7, RAM).is_ok());
        psci.vcpu_started(1);
        psci.cpu_off(0);
        psci.cpu_off(1);
        assert!(psci.all_off());
        psci.reset();
        assert_eq!(psci.power(0), Some(VcpuPower::On));
        assert_eq!(psci.power(1), Some(VcpuPower::Off));
    }

    #[test]
    fn cpu_on_errors() {
        let mut psci = Psci::new(2);
        // vCPU 2 does not exist; Aff1 or a stray bit make it another CPU.
        assert_eq!(psci.cpu_on(2, ENTRY, 0, RAM), Err(Error::InvalidParameters));
        assert_eq!(psci.cpu_on(0x101, ENTRY, 0, RAM), Err(Error::InvalidParameters));
        assert_eq!(psci.cpu_on(1 << 63 | 1, ENTRY, 0, RAM), Err(Error::InvalidParameters));
        // Entry outside RAM, at both edges.
        assert_eq!(psci.cpu_on(1, RAM.end, 0, RAM), Err(Error::InvalidAddress));
        assert_eq!(psci.cpu_on(1, RAM.start - 4, 0, RAM), Err(Error::InvalidAddress));
        assert_eq!(psci.cpu_on(1, u64::MAX, 0, RAM), Err(Error::InvalidAddress));
        // None of that changed anything.
        assert_eq!(psci, Psci::new(2));
        assert!(psci.cpu_on(1, RAM.start, 0, RAM).is_ok());
    }

    #[test]
    fn affinity_info_levels_and_targets() {
        let psci = Psci::new(3);
        assert_eq!(psci.affinity_info(0, 0), Ok(AffinityState::On));
        assert_eq!(psci.affinity_info(2, 0), Ok(AffinityState::Off));
        assert_eq!(psci.affinity_info(3, 0), Err(Error::InvalidParameters));
        for level in [1, 2, 3, 4, u32::MAX] {
            assert_eq!(psci.affinity_info(0, level), Err(Error::InvalidParameters));
        }
    }

    #[test]
    fn cpu_suspend_power_states() {
        let psci = Psci::new(1);
        assert_eq!(psci.cpu_suspend(0), Ok(SuspendKind::Standby));
        assert_eq!(psci.cpu_suspend(0x0000_ffff), Ok(SuspendKind::Standby));
        assert_eq!(psci.cpu_suspend(0x0001_0000), Ok(SuspendKind::PowerDown));
        assert_eq!(psci.cpu_suspend(0x0101_0002), Ok(SuspendKind::PowerDown));
        // Reserved bits (extended-format StateType at bit 30, bits [23:17]).
        assert_eq!(psci.cpu_suspend(1 << 30), Err(Error::InvalidParameters));
        assert_eq!(psci.cpu_suspend(1 << 17), Err(Error::InvalidParameters));
    }

    #[test]
    fn features_and_constants() {
        for fid in [
            id::VERSION,
            id::CPU_SUSPEND_32,
            id::CPU_SUSPEND_64,
            id::CPU_OFF,
            id::CPU_ON_32,
            id::CPU_ON_64,
            id::AFFINITY_INFO_32,
            id::AFFINITY_INFO_64,
            id::MIGRATE_INFO_TYPE,
            id::SYSTEM_OFF,
            id::SYSTEM_RESET,
            id::FEATURES,
            hvc::SMCCC_VERSION,
        ] {
            assert_eq!(features(fid), Ok(0), "{fid:#x}");
        }
        for fid in [
            ::smccc::psci::PSCI_MIGRATE_32,
            ::smccc::psci::PSCI_SYSTEM_SUSPEND_64,
            ::smccc::psci::PSCI_SYSTEM_RESET2_64,
            ::smccc::psci::PSCI_CPU_DEFAULT_SUSPEND_32,
            hvc::SMCCC_ARCH_FEATURES,
            0,
            u32::MAX,
        ] {
            assert_eq!(features(fid), Err(Error::NotSupported), "{fid:#x}");
        }
        assert_eq!(i64::from(Error::NotSupported), hvc::NOT_SUPPORTED);
        assert_eq!(i64::from(Error::InvalidAddress), hvc::PSCI_INVALID_ADDRESS);
        assert_eq!(MIGRATE_INFO_TYPE as u64, 2);
        assert_eq!(VERSION, 0x0001_0001);
    }
}

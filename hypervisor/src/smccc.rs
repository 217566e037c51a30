//! The hypercall dispatcher: SMCCC 1.1 (Arm DEN 0028), PSCI 1.1 (Arm DEN
//! 0022D) and the project's vendor-specific hypervisor calls, as listed in
//! [`shared::hvc`].
//!
//! A pure core: the glue copies w0 and x1..x6 of a trapped `hvc`/`smc` into
//! a [`Call`], and [`dispatch`] says what to do: return values for x0..x3,
//! or an action only the glue can carry out (start or stop a vCPU, end the
//! VM, write to its console). Unknown function IDs return NOT_SUPPORTED and
//! change nothing (SMCCC 1.1, "Unknown Function Identifier").
//!
//! Function IDs come from [`shared::hvc`] (the project's ABI; a test checks
//! they equal the `smccc` crate's). The `smccc` crate supplies the Arm
//! architecture call IDs and the PSCI error and result types; its call
//! functions are for callers, not for a dispatcher, so they are not used.

use core::ops::Range;

use ::smccc::arch::{SMCCC_ARCH_SOC_ID, SMCCC_ARCH_WORKAROUND_1, SMCCC_ARCH_WORKAROUND_2};
use heapless::Vec;
use shared::hvc::{self, psci as psci_id, pv_time, vendor};

use crate::psci::{self, Psci, SuspendKind};

/// SMCCC_VERSION: 1.1 (SMCCC 1.1 SMCCC_VERSION: major `[30:16]`, minor
/// `[15:0]`).
pub const SMCCC_VERSION_1_1: u32 = 0x0001_0001;

/// NOT_SUPPORTED (-1) as the guest sees it in x0.
pub const NOT_SUPPORTED: u64 = hvc::NOT_SUPPORTED as u64;

/// A trapped SMCCC call: the function ID from w0 and the arguments from
/// x1..x6 (SMCCC 1.1: arguments in x1..x7 for SMC32/HVC32, x1..x17 for
/// SMC64/HVC64; none of ours uses more than six).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Call {
    /// w0: the function identifier.
    pub fid: u32,
    /// x1..x6.
    pub args: [u64; 6],
}

/// What the VM behind the calling vCPU provides to the dispatcher.
pub trait VmOps {
    /// The VM's id.
    fn vm_id(&self) -> u64;
    /// The calling vCPU's index in its VM.
    fn vcpu_index(&self) -> usize;
    /// Guest-physical RAM, where a CPU_ON entry point must lie.
    fn guest_ram(&self) -> Range<u64>;
    /// The VM's PSCI state.
    fn psci(&mut self) -> &mut Psci;
    /// The shared-memory regions the VM is a peer of (`shm`).
    fn shm(&self) -> &[crate::shm::Membership] {
        &[]
    }
}

/// What the glue does after a call. Each action's own doc says what the
/// caller's x0..x3 become; [`Outcome::return_regs`] gives them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Write these to x0..x3 and resume the caller.
    Return([u64; 4]),
    /// CPU_ON succeeded (the target is now OnPending): reset `target_vcpu`
    /// to enter `entry` with `context_id` in x0, make it runnable, then call
    /// `Psci::vcpu_started`. The caller gets SUCCESS (0).
    CpuOn { target_vcpu: usize, entry: u64, context_id: u64 },
    /// CPU_OFF: the caller is now Off; stop running it. It never returns.
    CpuOff,
    /// SYSTEM_OFF: stop the VM.
    SystemOff,
    /// SYSTEM_RESET: restart the VM (and `Psci::reset` its state).
    SystemReset,
    /// CONSOLE_WRITE: write `bytes` to the VM's console. The caller gets
    /// the byte count.
    ConsoleWrite { bytes: Vec<u8, 40> },
    /// CPU_SUSPEND: treat as WFI (wait for an interrupt for this vCPU). The
    /// caller gets SUCCESS (0) when it resumes.
    Suspend,
    /// PRINT_STATS: print the VM's exit statistics. The caller gets 0.
    PrintStats,
    /// YIELD: run another vCPU of this physical CPU, if any. The caller
    /// gets 0.
    Yield,
    /// BOOTED: note the time the guest finished booting. The caller gets 0.
    Booted,
    /// SHM_DOORBELL, allowed (`shm::doorbell`): make the doorbell SPI of
    /// `ring.region` pending in the VM that is its peer `ring.peer` and
    /// wake it. The caller gets 0.
    ShmDoorbell(crate::shm::Ring),
}

impl Outcome {
    /// The x0..x3 the caller sees when it next runs; `None` for CPU_OFF,
    /// SYSTEM_OFF and SYSTEM_RESET, after which it does not return.
    pub fn return_regs(&self) -> Option<[u64; 4]> {
        match self {
            Outcome::Return(regs) => Some(*regs),
            Outcome::CpuOn { .. }
            | Outcome::Suspend
            | Outcome::PrintStats
            | Outcome::Yield
            | Outcome::Booted
            | Outcome::ShmDoorbell(_) => Some([0; 4]),
            Outcome::ConsoleWrite { bytes } => Some([bytes.len() as u64, 0, 0, 0]),
            Outcome::CpuOff | Outcome::SystemOff | Outcome::SystemReset => None,
        }
    }
}

/// Returns `x0` with x1..x3 zeroed, so no stale hypervisor values leak into
/// the guest's result registers.
const fn ret(x0: u64) -> Outcome {
    Outcome::Return([x0, 0, 0, 0])
}

/// A PSCI result: SUCCESS-style value or a negative error code.
fn ret_psci<T: Into<u64>>(result: Result<T, psci::Error>) -> Outcome {
    match result {
        Ok(value) => ret(value.into()),
        Err(error) => ret(i64::from(error) as u64),
    }
}

/// The low 32 bits: an SMC32/HVC32 argument, or a `uint32` parameter of
/// an SMC64 call. SMCCC 1.1: SMC32/HVC32 arguments are W registers, so
/// the callee ignores the upper 32 bits of x1..x7.
const fn w(x: u64) -> u64 {
    x & 0xffff_ffff
}

/// The x0 of a call whose answer depends on nothing but its function ID
/// and first argument (`x1`): no VM state, no lock, no action. The run
/// loop's fast path answers these at once (issue 19); [`dispatch`] gives
/// the same answers. None for every other call.
#[inline]
pub fn constant(fid: u32, x1: u64) -> Option<u64> {
    Some(match fid {
        hvc::SMCCC_VERSION => SMCCC_VERSION_1_1.into(),
        // SMCCC_ARCH_FEATURES(arch_func_id in w1), an SMC32 call.
        hvc::SMCCC_ARCH_FEATURES => arch_features(w(x1) as u32),
        psci_id::VERSION => psci::VERSION.into(),
        psci_id::MIGRATE_INFO_TYPE => psci::MIGRATE_INFO_TYPE as u64,
        psci_id::FEATURES => match psci::features(w(x1) as u32) {
            Ok(value) => value.into(),
            Err(error) => i64::from(error) as u64,
        },
        vendor::NOP => 0,
        _ => return None,
    })
}

/// Handles one SMCCC call from the vCPU `vm.vcpu_index()`.
pub fn dispatch(call: &Call, vm: &mut impl VmOps) -> Outcome {
    let a = &call.args;
    if let Some(x0) = constant(call.fid, a[0]) {
        return ret(x0);
    }
    match call.fid {
        // power_state is a uint32 in both conventions.
        psci_id::CPU_SUSPEND_32 | psci_id::CPU_SUSPEND_64 => match vm.psci().cpu_suspend(w(a[0]) as u32) {
            Ok(SuspendKind::Standby | SuspendKind::PowerDown) => Outcome::Suspend,
            Err(error) => ret_psci::<u64>(Err(error)),
        },
        psci_id::CPU_OFF => {
            let vcpu = vm.vcpu_index();
            vm.psci().cpu_off(vcpu);
            Outcome::CpuOff
        }
        psci_id::CPU_ON_32 => cpu_on(vm, w(a[0]), w(a[1]), w(a[2])),
        psci_id::CPU_ON_64 => cpu_on(vm, a[0], a[1], a[2]),
        // lowest_affinity_level is a uint32 in both conventions.
        psci_id::AFFINITY_INFO_32 => affinity_info(vm, w(a[0]), w(a[1])),
        psci_id::AFFINITY_INFO_64 => affinity_info(vm, a[0], w(a[1])),
        psci_id::SYSTEM_OFF => Outcome::SystemOff,
        psci_id::SYSTEM_RESET => Outcome::SystemReset,

        // Stolen time (DEN0057; `pvtime`): every VM has it.
        pv_time::FEATURES => ret(match w(a[0]) as u32 {
            pv_time::FEATURES | pv_time::ST => 0,
            _ => NOT_SUPPORTED,
        }),
        pv_time::ST => ret(crate::pvtime::ipa(vm.vcpu_index())),

        vendor::VM_INFO => {
            let vm_id = vm.vm_id();
            let vcpu = vm.vcpu_index() as u64;
            let count = vm.psci().vcpu_count() as u64;
            Outcome::Return([vm_id, vcpu, count, 0])
        }
        vendor::CONSOLE_WRITE => console_write(a),
        vendor::PRINT_STATS => Outcome::PrintStats,
        vendor::YIELD => Outcome::Yield,
        vendor::BOOTED => Outcome::Booted,
        // A region the caller does not share, or a peer it does not have:
        // INVALID_PARAMETERS, and nothing rings.
        vendor::SHM_DOORBELL => match crate::shm::doorbell(vm.shm(), a[0], a[1]) {
            Some(ring) => Outcome::ShmDoorbell(ring),
            None => ret(hvc::PSCI_INVALID_PARAMETERS as u64),
        },

        _ => ret(NOT_SUPPORTED),
    }
}

/// SMCCC_ARCH_FEATURES: 0 for SMCCC_VERSION and SMCCC_ARCH_FEATURES
/// themselves (both exist from SMCCC 1.1), and for PV_TIME_FEATURES, which
/// is how Linux looks for stolen time (`has_pv_steal_clock`).
///
/// SMCCC_ARCH_WORKAROUND_1/2 (and SOC_ID) answer NOT_SUPPORTED: a guest
/// that calls WORKAROUND_1 expects the branch predictor to be invalidated
/// on its behalf, and this hypervisor does not forward the call to
/// firmware, so claiming the mitigation would be false. With
/// NOT_SUPPORTED Linux reports the CPU as vulnerable, which is honest.
fn arch_features(arch_fid: u32) -> u64 {
    match arch_fid {
        hvc::SMCCC_VERSION | hvc::SMCCC_ARCH_FEATURES | pv_time::FEATURES => 0,
        SMCCC_ARCH_WORKAROUND_1 | SMCCC_ARCH_WORKAROUND_2 | SMCCC_ARCH_SOC_ID => NOT_SUPPORTED,
        _ => NOT_SUPPORTED,
    }
}

fn cpu_on(vm: &mut impl VmOps, target_cpu: u64, entry: u64, context_id: u64) -> Outcome {
    let ram = vm.guest_ram();
    match vm.psci().cpu_on(target_cpu, entry, context_id, ram) {
        Ok(on) => Outcome::CpuOn { target_vcpu: on.vcpu, entry: on.entry, context_id: on.context_id },
        Err(error) => ret_psci::<u64>(Err(error)),
    }
}

fn affinity_info(vm: &mut impl VmOps, target: u64, level: u64) -> Outcome {
    let result = vm.psci().affinity_info(target, level as u32);
    ret_psci(result.map(|state| state as u64))
}

/// CONSOLE_WRITE: x1 = length (clamped to 40), x2..x6 = the bytes.
fn console_write(a: &[u64; 6]) -> Outcome {
    let regs = [a[1], a[2], a[3], a[4], a[5]];
    let mut buf = [0u8; vendor::CONSOLE_WRITE_MAX];
    let len = hvc::unpack_console_bytes(a[0], &regs, &mut buf);
    let mut bytes = Vec::new();
    for byte in buf.iter().take(len) {
        // Cannot fail: len <= 40 = capacity.
        let _ = bytes.push(*byte);
    }
    Outcome::ConsoleWrite { bytes }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::psci::VcpuPower;

    const RAM: Range<u64> = 0x4000_0000..0x5000_0000;
    const ENTRY: u64 = 0x4020_0000;

    #[derive(Clone, Debug, PartialEq)]
    struct MockVm {
        id: u64,
        vcpu: usize,
        psci: Psci,
        shm: alloc::vec::Vec<crate::shm::Membership>,
    }

    impl MockVm {
        fn new(vcpus: usize) -> Self {
            Self { id: 3, vcpu: 0, psci: Psci::new(vcpus), shm: alloc::vec::Vec::new() }
        }
    }

    impl VmOps for MockVm {
        fn vm_id(&self) -> u64 {
            self.id
        }
        fn vcpu_index(&self) -> usize {
            self.vcpu
        }
        fn guest_ram(&self) -> Range<u64> {
            RAM
        }
        fn psci(&mut self) -> &mut Psci {
            &mut self.psci
        }
        fn shm(&self) -> &[crate::shm::Membership] {
            &self.shm
        }
    }

    fn call(fid: u32, args: &[u64]) -> Call {
        let mut call = Call { fid, args: [0; 6] };
        call.args[..args.len()].copy_from_slice(args);
        call
    }

    /// A negative return code as the guest sees it in x0.
    fn neg(code: i64) -> u64 {
        code as u64
    }

    fn x0(outcome: &Outcome) -> u64 {
        match outcome {
            Outcome::Return(regs) => regs[0],
            other => panic!("expected a return, got {other:?}"),
        }
    }

    #[test]
    fn ids_match_the_smccc_crate() {
        use ::smccc::psci as p;
        assert_eq!(hvc::SMCCC_VERSION, ::smccc::arch::SMCCC_VERSION);
        assert_eq!(hvc::SMCCC_ARCH_FEATURES, ::smccc::arch::SMCCC_ARCH_FEATURES);
        let pairs = [
            (psci_id::VERSION, p::PSCI_VERSION),
            (psci_id::CPU_SUSPEND_32, p::PSCI_CPU_SUSPEND_32),
            (psci_id::CPU_SUSPEND_64, p::PSCI_CPU_SUSPEND_64),
            (psci_id::CPU_OFF, p::PSCI_CPU_OFF),
            (psci_id::CPU_ON_32, p::PSCI_CPU_ON_32),
            (psci_id::CPU_ON_64, p::PSCI_CPU_ON_64),
            (psci_id::AFFINITY_INFO_32, p::PSCI_AFFINITY_INFO_32),
            (psci_id::AFFINITY_INFO_64, p::PSCI_AFFINITY_INFO_64),
            (psci_id::MIGRATE_INFO_TYPE, p::PSCI_MIGRATE_INFO_TYPE),
            (psci_id::SYSTEM_OFF, p::PSCI_SYSTEM_OFF),
            (psci_id::SYSTEM_RESET, p::PSCI_SYSTEM_RESET),
            (psci_id::FEATURES, p::PSCI_FEATURES),
        ];
        for (ours, theirs) in pairs {
            assert_eq!(ours, theirs);
        }
        let version = ::smccc::arch::Version { major: 1, minor: 1 };
        assert_eq!(u32::from(version), SMCCC_VERSION_1_1);
        assert_eq!(u32::from(::smccc::psci::Version { major: 1, minor: 1 }), psci::VERSION);
    }

    #[test]
    fn smccc_version_and_arch_features() {
        let mut vm = MockVm::new(1);
        assert_eq!(dispatch(&call(hvc::SMCCC_VERSION, &[]), &mut vm), Outcome::Return([0x10001, 0, 0, 0]));
        let features = |vm: &mut MockVm, x1: u64| x0(&dispatch(&call(hvc::SMCCC_ARCH_FEATURES, &[x1]), vm));
        assert_eq!(features(&mut vm, hvc::SMCCC_VERSION.into()), 0);
        assert_eq!(features(&mut vm, hvc::SMCCC_ARCH_FEATURES.into()), 0);
        // SMC32: the upper half of x1 is ignored.
        assert_eq!(features(&mut vm, 0xdead_beef_0000_0000 | u64::from(hvc::SMCCC_VERSION)), 0);
        assert_eq!(features(&mut vm, SMCCC_ARCH_WORKAROUND_1.into()), NOT_SUPPORTED);
        assert_eq!(features(&mut vm, SMCCC_ARCH_WORKAROUND_2.into()), NOT_SUPPORTED);
        assert_eq!(features(&mut vm, ::smccc::arch::SMCCC_ARCH_WORKAROUND_3.into()), NOT_SUPPORTED);
        assert_eq!(features(&mut vm, psci_id::CPU_ON_64.into()), NOT_SUPPORTED);
        assert_eq!(features(&mut vm, 0), NOT_SUPPORTED);
        assert_eq!(features(&mut vm, pv_time::FEATURES.into()), 0);
    }

    /// Linux's `has_pv_steal_clock` and `stolen_time_cpu_online`: each
    /// vCPU gets its own 64-byte structure in the PVTIME page.
    #[test]
    fn smccc_pv_time_gives_each_vcpu_its_structure() {
        let mut vm = MockVm::new(4);
        let pv = |vm: &mut MockVm, fid, x1: u64| x0(&dispatch(&call(fid, &[x1]), vm));
        assert_eq!(pv(&mut vm, pv_time::FEATURES, pv_time::ST.into()), 0);
        assert_eq!(pv(&mut vm, pv_time::FEATURES, pv_time::FEATURES.into()), 0);
        assert_eq!(pv(&mut vm, pv_time::FEATURES, 0xC500_0022), NOT_SUPPORTED);
        assert_eq!(pv(&mut vm, pv_time::ST, 0), shared::layout::PVTIME_BASE);
        vm.vcpu = 3;
        assert_eq!(pv(&mut vm, pv_time::ST, 0), shared::layout::PVTIME_BASE + 3 * 64);
    }

    #[test]
    fn psci_version_features_migrate() {
        let mut vm = MockVm::new(1);
        assert_eq!(x0(&dispatch(&call(psci_id::VERSION, &[]), &mut vm)), 0x10001);
        assert_eq!(x0(&dispatch(&call(psci_id::MIGRATE_INFO_TYPE, &[]), &mut vm)), 2);
        for fid in [psci_id::CPU_ON_64, psci_id::CPU_SUSPEND_32, psci_id::FEATURES, hvc::SMCCC_VERSION] {
            let out = dispatch(&call(psci_id::FEATURES, &[0xffff_ffff_0000_0000 | u64::from(fid)]), &mut vm);
            assert_eq!(x0(&out), 0, "{fid:#x}");
        }
        let out = dispatch(&call(psci_id::FEATURES, &[::smccc::psci::PSCI_MIGRATE_64.into()]), &mut vm);
        assert_eq!(x0(&out), NOT_SUPPORTED);
    }

    #[test]
    fn cpu_on_sequence() {
        let mut vm = MockVm::new(4);
        let on = dispatch(&call(psci_id::CPU_ON_64, &[2, ENTRY, 0xfeed]), &mut vm);
        assert_eq!(on, Outcome::CpuOn { target_vcpu: 2, entry: ENTRY, context_id: 0xfeed });
        assert_eq!(on.return_regs(), Some([0; 4]));
        let info = |vm: &mut MockVm, fid, target, level| x0(&dispatch(&call(fid, &[target, level]), vm));
        assert_eq!(info(&mut vm, psci_id::AFFINITY_INFO_64, 2, 0), 2, "ON_PENDING");
        let again = dispatch(&call(psci_id::CPU_ON_64, &[2, ENTRY, 0]), &mut vm);
        assert_eq!(x0(&again), neg(hvc::PSCI_ON_PENDING));
        vm.psci.vcpu_started(2);
        assert_eq!(info(&mut vm, psci_id::AFFINITY_INFO_32, 2, 0), 0, "ON");
        let again = dispatch(&call(psci_id::CPU_ON_64, &[2, ENTRY, 0]), &mut vm);
        assert_eq!(x0(&again), neg(hvc::PSCI_ALREADY_ON));
        assert_eq!(info(&mut vm, psci_id::AFFINITY_INFO_64, 3, 0), 1, "OFF");
        assert_eq!(info(&mut vm, psci_id::AFFINITY_INFO_64, 3, 1), neg(hvc::PSCI_INVALID_PARAMETERS));
        assert_eq!(info(&mut vm, psci_id::AFFINITY_INFO_64, 9, 0), neg(hvc::PSCI_INVALID_PARAMETERS));
        // The SMC32 variant ignores the upper halves; the SMC64 one does not.
        assert_eq!(info(&mut vm, psci_id::AFFINITY_INFO_32, 0xffff_ffff_0000_0003, 0), 1);
        assert_eq!(
            info(&mut vm, psci_id::AFFINITY_INFO_64, 0xffff_ffff_0000_0003, 0),
            neg(hvc::PSCI_INVALID_PARAMETERS)
        );

        // vCPU 2 turns itself off, then vCPU 0 turns it on again with the
        // SMC32 call and garbage in the upper halves.
        vm.vcpu = 2;
        assert_eq!(dispatch(&call(psci_id::CPU_OFF, &[]), &mut vm), Outcome::CpuOff);
        assert_eq!(vm.psci.power(2), Some(VcpuPower::Off));
        vm.vcpu = 0;
        let on = dispatch(
            &call(psci_id::CPU_ON_32, &[0xaaaa_0000_0000_0002, 0x5555_0000_4020_0000, 0x1_0000_0007]),
            &mut vm,
        );
        assert_eq!(on, Outcome::CpuOn { target_vcpu: 2, entry: ENTRY, context_id: 7 });
    }

    #[test]
    fn cpu_on_errors() {
        let mut vm = MockVm::new(2);
        let before = vm.clone();
        let err = |vm: &mut MockVm, args: &[u64]| x0(&dispatch(&call(psci_id::CPU_ON_64, args), vm));
        assert_eq!(err(&mut vm, &[5, ENTRY, 0]), neg(hvc::PSCI_INVALID_PARAMETERS));
        assert_eq!(err(&mut vm, &[1 << 40 | 1, ENTRY, 0]), neg(hvc::PSCI_INVALID_PARAMETERS));
        assert_eq!(err(&mut vm, &[1, RAM.end, 0]), neg(hvc::PSCI_INVALID_ADDRESS));
        assert_eq!(err(&mut vm, &[1, 0, 0]), neg(hvc::PSCI_INVALID_ADDRESS));
        assert_eq!(err(&mut vm, &[0, ENTRY, 0]), neg(hvc::PSCI_ALREADY_ON));
        assert_eq!(vm, before);
    }

    #[test]
    fn suspend_and_system_calls() {
        let mut vm = MockVm::new(1);
        for fid in [psci_id::CPU_SUSPEND_32, psci_id::CPU_SUSPEND_64] {
            assert_eq!(dispatch(&call(fid, &[0, ENTRY, 0]), &mut vm), Outcome::Suspend);
            assert_eq!(dispatch(&call(fid, &[0x0001_0000, ENTRY, 0]), &mut vm), Outcome::Suspend);
            let bad = dispatch(&call(fid, &[1 << 30, ENTRY, 0]), &mut vm);
            assert_eq!(x0(&bad), neg(hvc::PSCI_INVALID_PARAMETERS));
        }
        assert_eq!(Outcome::Suspend.return_regs(), Some([0; 4]));
        let off = dispatch(&call(psci_id::SYSTEM_OFF, &[]), &mut vm);
        assert_eq!(off, Outcome::SystemOff);
        assert_eq!(off.return_regs(), None);
        assert_eq!(dispatch(&call(psci_id::SYSTEM_RESET, &[]), &mut vm), Outcome::SystemReset);
    }

    #[test]
    fn vendor_calls() {
        let mut vm = MockVm::new(4);
        vm.vcpu = 1;
        assert_eq!(dispatch(&call(vendor::VM_INFO, &[]), &mut vm), Outcome::Return([3, 1, 4, 0]));
        assert_eq!(dispatch(&call(vendor::NOP, &[1, 2, 3]), &mut vm), Outcome::Return([0; 4]));
        assert_eq!(dispatch(&call(vendor::PRINT_STATS, &[]), &mut vm), Outcome::PrintStats);
        assert_eq!(dispatch(&call(vendor::YIELD, &[]), &mut vm), Outcome::Yield);
        assert_eq!(dispatch(&call(vendor::BOOTED, &[]), &mut vm), Outcome::Booted);
        assert_eq!(Outcome::Yield.return_regs(), Some([0; 4]));

        let regs = hvc::pack_console_bytes(b"hello");
        let out = dispatch(&call(vendor::CONSOLE_WRITE, &[5, regs[0], regs[1], regs[2], regs[3], regs[4]]), &mut vm);
        let Outcome::ConsoleWrite { bytes } = &out else { panic!("{out:?}") };
        assert_eq!(bytes.as_slice(), b"hello");
        assert_eq!(out.return_regs(), Some([5, 0, 0, 0]));

        // An oversized length is clamped to 40.
        let line = b"0123456789abcdefghijklmnopqrstuvwxyzABCD";
        let regs = hvc::pack_console_bytes(line);
        let out =
            dispatch(&call(vendor::CONSOLE_WRITE, &[u64::MAX, regs[0], regs[1], regs[2], regs[3], regs[4]]), &mut vm);
        let Outcome::ConsoleWrite { bytes } = &out else { panic!("{out:?}") };
        assert_eq!(bytes.as_slice(), line);
        // Zero bytes is a valid, empty write.
        let out = dispatch(&call(vendor::CONSOLE_WRITE, &[0, 0x41]), &mut vm);
        assert_eq!(out, Outcome::ConsoleWrite { bytes: Vec::new() });
    }

    /// A peer rings another (or itself); a VM that is not a member, a
    /// region it does not share and a peer that does not exist get
    /// INVALID_PARAMETERS and ring nothing.
    #[test]
    fn shm_doorbell_decisions() {
        use crate::shm::{Membership, Ring};
        let ring = |vm: &mut MockVm, region: u64, peer: u64| dispatch(&call(vendor::SHM_DOORBELL, &[region, peer]), vm);
        let invalid = Outcome::Return([neg(hvc::PSCI_INVALID_PARAMETERS), 0, 0, 0]);
        let mut outsider = MockVm::new(1);
        assert_eq!(ring(&mut outsider, 0, 0), invalid);
        let mut peer = MockVm::new(1);
        peer.shm = alloc::vec![Membership { region: 2, peer: 1, peers: 2 }];
        let out = ring(&mut peer, 2, 0);
        assert_eq!(out, Outcome::ShmDoorbell(Ring { region: 2, peer: 0 }));
        assert_eq!(out.return_regs(), Some([0; 4]));
        assert_eq!(ring(&mut peer, 2, 1), Outcome::ShmDoorbell(Ring { region: 2, peer: 1 }));
        assert_eq!(ring(&mut peer, 2, 2), invalid);
        assert_eq!(ring(&mut peer, 0, 0), invalid);
        assert_eq!(ring(&mut peer, u64::MAX, u64::MAX), invalid);
    }

    /// Every ID this dispatcher implements.
    const KNOWN: [u32; 19] = [
        hvc::SMCCC_VERSION,
        hvc::SMCCC_ARCH_FEATURES,
        psci_id::VERSION,
        psci_id::CPU_SUSPEND_32,
        psci_id::CPU_SUSPEND_64,
        psci_id::CPU_OFF,
        psci_id::CPU_ON_32,
        psci_id::CPU_ON_64,
        psci_id::AFFINITY_INFO_32,
        psci_id::AFFINITY_INFO_64,
        psci_id::MIGRATE_INFO_TYPE,
        psci_id::SYSTEM_OFF,
        psci_id::SYSTEM_RESET,
        psci_id::FEATURES,
        vendor::VM_INFO,
        vendor::CONSOLE_WRITE,
        vendor::NOP,
        vendor::PRINT_STATS,
        vendor::SHM_DOORBELL,
    ];

    #[test]
    fn every_known_id_is_handled() {
        for fid in KNOWN {
            let mut vm = MockVm::new(2);
            // Feature queries ask about something that exists.
            let x1 = match fid {
                hvc::SMCCC_ARCH_FEATURES | psci_id::FEATURES => hvc::SMCCC_VERSION.into(),
                _ => 1,
            };
            let out = dispatch(&call(fid, &[x1, ENTRY, 0, 0, 0, 0]), &mut vm);
            assert_ne!(out, Outcome::Return([NOT_SUPPORTED, 0, 0, 0]), "{fid:#x}");
        }
    }

    #[test]
    fn random_unknown_ids_are_not_supported_without_side_effects() {
        let mut state = 0x0123_4567_89ab_cdefu64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut tried = 0;
        while tried < 10_000 {
            let r = next();
            // Half uniformly random, half near the implemented ranges
            // (owner 0, PSCI and vendor, both conventions).
            let fid = if r & 1 == 0 {
                (r >> 32) as u32
            } else {
                let bases = [0x8000_0000u32, 0x8400_0000, 0xc400_0000, 0x8600_0000, 0xc600_0000, 0x0400_0000];
                bases[((r >> 1) % 6) as usize] | ((r >> 8) as u32 & 0xffff)
            };
            if KNOWN.contains(&fid) {
                continue;
            }
            tried += 1;
            let mut vm = MockVm::new(4);
            vm.vcpu = (r % 4) as usize;
            let before = vm.clone();
            let args = [next(), next(), next(), next(), next(), next()];
            let out = dispatch(&Call { fid, args }, &mut vm);
            assert_eq!(out, Outcome::Return([NOT_SUPPORTED, 0, 0, 0]), "{fid:#x}");
            assert_eq!(vm, before, "{fid:#x} changed the VM");
        }
    }
}

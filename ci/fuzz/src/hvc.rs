//! `hypervisor::smccc` and `hypervisor::psci`: a guest `hvc #0` with any
//! x0..x17 gets a defined result (the one PSCI 1.1 / SMCCC 1.1 specify for
//! those arguments, checked against a small reference model) or
//! NOT_SUPPORTED, changes the vCPU power states only as the call says,
//! and an SMC32/HVC32 call ignores the upper halves of its arguments.

use core::ops::Range;

use arbitrary::{Result, Unstructured};
use hypervisor::psci::{Psci, VcpuPower, mpidr_to_vcpu};
use hypervisor::shm::{Membership, Ring};
use hypervisor::smccc::{Call, NOT_SUPPORTED, Outcome, SMCCC_VERSION_1_1, VmOps, dispatch};
use shared::hvc::{self, psci as id, vendor};
use shared::platform::MAX_VCPUS;

const RAM: Range<u64> = 0x4000_0000..0x8000_0000;
const MAX_CALLS: usize = 256;

/// Every function ID the dispatcher knows, and a few neighbours.
const FIDS: &[u32] = &[
    hvc::SMCCC_VERSION,
    hvc::SMCCC_ARCH_FEATURES,
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
    vendor::VM_INFO,
    vendor::CONSOLE_WRITE,
    vendor::NOP,
    vendor::PRINT_STATS,
    vendor::YIELD,
    vendor::BOOTED,
    vendor::SHM_DOORBELL,
    0x8400_0005, // MIGRATE: not implemented
    0xC400_0005,
    0x8000_0002,
    0xC600_0000,
    0xC600_0008,
    0x8400_000C, // SYSTEM_SUSPEND
];

#[derive(Clone, Debug, PartialEq)]
struct Vm {
    vcpu: usize,
    psci: Psci,
}

impl VmOps for Vm {
    fn vm_id(&self) -> u64 {
        7
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
    fn shm(&self) -> &[Membership] {
        &SHM
    }
}

/// The caller is peer 0 of region 1, which has two peers.
const SHM: [Membership; 1] = [Membership { region: 1, peer: 0, peers: 2 }];

/// Input: a vCPU count, then calls: the calling vCPU, x0..x17 (function
/// ID and arguments, each drawn raw or from interesting values), and what
/// the glue does next.
pub fn fuzz(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let _ = run(&mut u);
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let requested = u.int_in_range(0..=MAX_VCPUS + 2)?;
    let mut vm = Vm { vcpu: 0, psci: Psci::new(requested) };
    let count = vm.psci.vcpu_count();
    assert_eq!(count, requested.clamp(1, MAX_VCPUS));
    for _ in 0..MAX_CALLS {
        if u.is_empty() {
            break;
        }
        vm.vcpu = u.int_in_range(0..=count - 1)?;
        let mut x = [0u64; 18];
        x[0] = if u.ratio(3u8, 4)? { u64::from(*u.choose(FIDS)?) } else { u.arbitrary::<u32>()?.into() };
        if u.ratio(1u8, 8)? {
            // w0 is the function ID: x0's upper half must not matter.
            x[0] |= u64::from(u.arbitrary::<u32>()?) << 32;
        }
        for reg in x.iter_mut().skip(1) {
            *reg = arg(u, count)?;
        }
        // What the glue does with a trapped call (arch/aarch64/exit.rs).
        let call = Call { fid: x[0] as u32, args: [x[1], x[2], x[3], x[4], x[5], x[6]] };
        let before = vm.clone();
        let outcome = dispatch(&call, &mut vm);
        check(&call, &before, &vm, &outcome);
        if call.fid & (1 << 30) == 0 {
            let mut narrow = call;
            for a in narrow.args.iter_mut() {
                *a &= 0xFFFF_FFFF;
            }
            let mut twin = before.clone();
            assert_eq!(dispatch(&narrow, &mut twin), outcome, "SMC32 call {:#x} read an upper half", call.fid);
            assert_eq!(twin, vm);
        }
        // The glue: a started vCPU comes up, a reset powers all but vCPU 0 off.
        match outcome {
            Outcome::CpuOn { target_vcpu, .. } if u.arbitrary()? => vm.psci.vcpu_started(target_vcpu),
            Outcome::SystemReset => vm.psci.reset(),
            _ => {}
        }
        for v in 0..MAX_VCPUS + 2 {
            assert_eq!(vm.psci.power(v).is_some(), v < count, "power({v}) with {count} vCPUs");
        }
    }
    Ok(())
}

fn arg(u: &mut Unstructured<'_>, count: usize) -> Result<u64> {
    Ok(match u.int_in_range(0u8..=7)? {
        0 | 1 => u.arbitrary()?,
        2 => u.int_in_range(0..=count as u64 + 1)?,
        3 => *u.choose(&[RAM.start, RAM.start - 1, RAM.end, RAM.end - 4, 0x4020_0000])?,
        4 => u.int_in_range(0..=64)?,
        5 => *u.choose(&[0, 1 << 16, 0x0301_ffff, 0x0302_0000, u64::MAX, 0xFFFF_FFFF, 1 << 32])?,
        6 => u64::from(*u.choose(FIDS)?) | if u.arbitrary()? { 0xFFFF_FFFF_0000_0000 } else { 0 },
        _ => (u.int_in_range(0..=count as u64)?) | (u64::from(u.arbitrary::<u8>()?) << 8),
    })
}

fn ret(x0: i64) -> Outcome {
    Outcome::Return([x0 as u64, 0, 0, 0])
}

/// The reference: what PSCI 1.1 (DEN 0022D §5) and SMCCC 1.1 say the call
/// returns, given the state before it.
fn check(call: &Call, before: &Vm, after: &Vm, outcome: &Outcome) {
    let a = &call.args;
    let w = |x: u64| x & 0xFFFF_FFFF;
    let count = before.psci.vcpu_count();
    let unchanged = || assert_eq!(after, before, "call {:#x} changed the VM", call.fid);
    let target = |mpidr: u64| mpidr_to_vcpu(mpidr).filter(|&v| v < count);
    match call.fid {
        hvc::SMCCC_VERSION => assert_eq!(*outcome, ret(SMCCC_VERSION_1_1.into())),
        hvc::SMCCC_ARCH_FEATURES => {
            let x0 = return_x0(outcome);
            let known = matches!(w(a[0]) as u32, hvc::SMCCC_VERSION | hvc::SMCCC_ARCH_FEATURES);
            assert_eq!(x0, if known { 0 } else { NOT_SUPPORTED }, "ARCH_FEATURES({:#x})", a[0]);
        }
        id::VERSION => assert_eq!(*outcome, ret(id::VERSION_1_1.into())),
        id::CPU_SUSPEND_32 | id::CPU_SUSPEND_64 => {
            let valid = w(a[0]) & !0x0301_ffff == 0;
            assert_eq!(*outcome, if valid { Outcome::Suspend } else { ret(hvc::PSCI_INVALID_PARAMETERS) });
        }
        id::CPU_OFF => {
            assert_eq!(*outcome, Outcome::CpuOff);
            assert_eq!(after.psci.power(before.vcpu), Some(VcpuPower::Off));
            for v in (0..count).filter(|&v| v != before.vcpu) {
                assert_eq!(after.psci.power(v), before.psci.power(v), "CPU_OFF changed vCPU {v}");
            }
            return;
        }
        id::CPU_ON_32 | id::CPU_ON_64 => {
            let wide = call.fid == id::CPU_ON_64;
            let (mpidr, entry, context) = if wide { (a[0], a[1], a[2]) } else { (w(a[0]), w(a[1]), w(a[2])) };
            let want = match target(mpidr) {
                None => ret(hvc::PSCI_INVALID_PARAMETERS),
                Some(v) => match before.psci.power(v) {
                    Some(VcpuPower::On) => ret(hvc::PSCI_ALREADY_ON),
                    Some(VcpuPower::OnPending) => ret(hvc::PSCI_ON_PENDING),
                    _ if !RAM.contains(&entry) => ret(hvc::PSCI_INVALID_ADDRESS),
                    _ => Outcome::CpuOn { target_vcpu: v, entry, context_id: context },
                },
            };
            assert_eq!(*outcome, want, "CPU_ON({mpidr:#x}, {entry:#x})");
            if let Outcome::CpuOn { target_vcpu, .. } = want {
                assert_eq!(after.psci.power(target_vcpu), Some(VcpuPower::OnPending));
                let mut expect = before.clone();
                expect.psci.cpu_on(mpidr, entry, context, RAM).expect("checked above");
                assert_eq!(*after, expect);
                return;
            }
        }
        id::AFFINITY_INFO_32 | id::AFFINITY_INFO_64 => {
            let mpidr = if call.fid == id::AFFINITY_INFO_64 { a[0] } else { w(a[0]) };
            let want = match (w(a[1]), target(mpidr)) {
                (0, Some(v)) => match before.psci.power(v) {
                    Some(VcpuPower::On) => ret(0),
                    Some(VcpuPower::Off) => ret(1),
                    _ => ret(2),
                },
                _ => ret(hvc::PSCI_INVALID_PARAMETERS),
            };
            assert_eq!(*outcome, want, "AFFINITY_INFO({mpidr:#x}, {:#x})", a[1]);
        }
        id::MIGRATE_INFO_TYPE => assert_eq!(*outcome, ret(2)),
        id::SYSTEM_OFF => assert_eq!(*outcome, Outcome::SystemOff),
        id::SYSTEM_RESET => assert_eq!(*outcome, Outcome::SystemReset),
        id::FEATURES => {
            let known = FIDS[..14].contains(&(w(a[0]) as u32)) && w(a[0]) as u32 != hvc::SMCCC_ARCH_FEATURES;
            assert_eq!(*outcome, ret(if known { 0 } else { hvc::NOT_SUPPORTED }), "PSCI_FEATURES({:#x})", a[0]);
        }
        vendor::VM_INFO => assert_eq!(*outcome, Outcome::Return([7, before.vcpu as u64, count as u64, 0])),
        vendor::CONSOLE_WRITE => {
            let Outcome::ConsoleWrite { bytes } = outcome else { panic!("CONSOLE_WRITE gave {outcome:?}") };
            assert_eq!(bytes.len() as u64, a[0].min(vendor::CONSOLE_WRITE_MAX as u64));
            for (i, b) in bytes.iter().enumerate() {
                assert_eq!(*b, (a[1 + i / 8] >> (8 * (i % 8))) as u8, "console byte {i}");
            }
            assert_eq!(outcome.return_regs(), Some([bytes.len() as u64, 0, 0, 0]));
        }
        vendor::NOP => assert_eq!(*outcome, ret(0)),
        vendor::PRINT_STATS => assert_eq!(*outcome, Outcome::PrintStats),
        vendor::YIELD => assert_eq!(*outcome, Outcome::Yield),
        vendor::BOOTED => assert_eq!(*outcome, Outcome::Booted),
        vendor::SHM_DOORBELL => {
            let want = match (a[0], a[1]) {
                (1, peer @ 0..2) => Outcome::ShmDoorbell(Ring { region: 1, peer: peer as usize }),
                _ => ret(hvc::PSCI_INVALID_PARAMETERS),
            };
            assert_eq!(*outcome, want, "SHM_DOORBELL({:#x}, {:#x})", a[0], a[1]);
        }
        _ => assert_eq!(*outcome, ret(hvc::NOT_SUPPORTED), "unknown function {:#x}", call.fid),
    }
    unchanged();
}

fn return_x0(outcome: &Outcome) -> u64 {
    match outcome {
        Outcome::Return(regs) => regs[0],
        other => panic!("expected a return, got {other:?}"),
    }
}

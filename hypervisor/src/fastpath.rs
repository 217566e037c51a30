//! The trap fast path (issue 19): which exits the run loop answers at
//! once and re-enters the guest, without the list-register read-back, the
//! virtual-timer resample and the full `exit::handle_sync` decode. KVM's
//! nVHE run loop does the same with `fixup_guest_exit`
//! (`arch/arm64/kvm/hyp/include/hyp/switch.h`): `do { exit =
//! __guest_enter(vcpu); } while (fixup_guest_exit(vcpu, &exit));`.
//!
//! A pure core: [`classify`] reads only the syndrome (ESR_EL2, ARM ARM
//! D17.2.37) and the guest's x0/x1. It takes
//!
//! - `hvc #0` whose answer is a constant (`smccc::constant`: the SMCCC and
//!   PSCI version and feature queries, the vendor NOP);
//! - `mrs` of an ID group 3 register (HCR_EL2.TID3), answered from the
//!   VM's [`IdTable`](crate::idregs::IdTable);
//! - a load or store with a complete instruction syndrome (ISV = 1, not on
//!   a stage-1 table walk, not a cache maintenance instruction): the MMIO
//!   emulation proper is the same as on the slow path.
//!
//! Everything else (trapped `smc`, WFI, GIC system registers, aborts
//! without a syndrome, ...) goes the slow way. Only A64 exits are taken:
//! an AArch32 one may fail its condition check or sit in an IT block
//! (`skip`), and the glue steps the PC by 4.

use crate::esr::DataAbort;
use crate::mmio::{MmioAccess, decode};

/// ESR_EL2.EC values (ARM ARM D17.2.37).
const EC_HVC64: u64 = 0x16;
const EC_SYS64: u64 = 0x18;
const EC_DABT_LOW: u64 = 0x24;
/// The ISS bits of EC 0x18 that say "MRS of an ID group 3 register"
/// (Op0, Op1, CRn, Direction), and their values.
const ID_READ_MASK: u32 = (3 << 20) | (7 << 14) | (0xf << 10) | 1;
const ID_READ: u32 = (3 << 20) | 1;

/// An exit the fast path answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FastExit {
    /// A hypercall whose result is x0 (x1..x3 become zero). ELR_EL2
    /// already points past the `hvc`.
    Hvc(u64),
    /// `mrs x<rt>, reg` of an ID group 3 register, by its slot in the
    /// VM's `idregs::IdTable` (`(CRm - 1) * 8 + Op2`, from the syndrome).
    IdRead { slot: u8, rt: u8 },
    /// A load or store from its syndrome; `ipa` is left 0 for the glue to
    /// fill from HPFAR_EL2/FAR_EL2.
    Mmio(MmioAccess),
}

/// What the fast path makes of an exit with syndrome `esr` from a guest
/// whose x0/x1 are given; None for the slow path.
#[inline(always)]
pub fn classify(esr: u64, x0: u64, x1: u64) -> Option<FastExit> {
    let iss = (esr & 0x1ff_ffff) as u32;
    match (esr >> 26) & 0x3f {
        // HVC's ISS is its immediate: SMCCC calls use #0.
        EC_HVC64 if iss == 0 => crate::smccc::constant(x0 as u32, x1).map(FastExit::Hvc),
        // ISS: Op0 [21:20], Op2 [19:17], Op1 [16:14], CRn [13:10], Rt
        // [9:5], CRm [4:1], Direction [0]; ID group 3 is Op0 = 3, Op1 = 0,
        // CRn = 0, CRm = 1..7, and only reads (Direction = 1) are answered.
        EC_SYS64 if iss & ID_READ_MASK == ID_READ && (1..=7).contains(&((iss >> 1) & 0xf)) => {
            let (crm, op2, rt) = ((iss >> 1) & 0xf, (iss >> 17) & 0x7, (iss >> 5) & 0x1f);
            Some(FastExit::IdRead { slot: ((crm - 1) * 8 + op2) as u8, rt: rt as u8 })
        }
        EC_DABT_LOW => {
            let da = DataAbort::from_iss(iss);
            if da.s1ptw || da.cm {
                return None;
            }
            decode::from_syndrome(&da, 0).map(FastExit::Mmio)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::esr::{Esr, Syndrome, SysReg, SysRegAccess};
    use shared::hvc::{self, psci, vendor};

    const IL: u64 = 1 << 25;

    fn esr(ec: u64, iss: u64) -> u64 {
        ec << 26 | IL | iss
    }

    #[test]
    fn constant_hypercalls_only() {
        let hvc0 = esr(EC_HVC64, 0);
        assert_eq!(classify(hvc0, vendor::NOP.into(), 0), Some(FastExit::Hvc(0)));
        assert_eq!(classify(hvc0, psci::VERSION.into(), 0), Some(FastExit::Hvc(crate::psci::VERSION.into())));
        // The function ID is w0: the upper half of x0 is ignored (SMCCC 1.1).
        assert_eq!(classify(hvc0, 0xffff_0000_0000_0000 | u64::from(vendor::NOP), 0), Some(FastExit::Hvc(0)));
        for fid in [psci::CPU_ON_64, psci::CPU_OFF, psci::SYSTEM_OFF, vendor::YIELD, vendor::CONSOLE_WRITE, 0x1234] {
            assert_eq!(classify(hvc0, fid.into(), 0), None, "{fid:#x} needs the VM");
        }
        assert_eq!(classify(esr(EC_HVC64, 1), vendor::NOP.into(), 0), None, "hvc #1 is not SMCCC");
        assert_eq!(classify(esr(0x17, 0), vendor::NOP.into(), 0), None, "a trapped smc is stepped by hand");
        assert_eq!(classify(esr(0x12, 0), vendor::NOP.into(), 0), None, "AArch32 hvc");
    }

    #[test]
    fn the_fast_answers_are_dispatchs() {
        use crate::smccc::{Call, Outcome, VmOps, dispatch};
        struct NoVm(crate::psci::Psci);
        impl VmOps for NoVm {
            fn vm_id(&self) -> u64 {
                0
            }
            fn vcpu_index(&self) -> usize {
                0
            }
            fn guest_ram(&self) -> core::ops::Range<u64> {
                0..0
            }
            fn psci(&mut self) -> &mut crate::psci::Psci {
                &mut self.0
            }
        }
        let fids = [hvc::SMCCC_VERSION, hvc::SMCCC_ARCH_FEATURES, psci::VERSION, psci::FEATURES];
        for fid in fids.into_iter().chain([psci::MIGRATE_INFO_TYPE, vendor::NOP]) {
            for x1 in [0, hvc::SMCCC_VERSION.into(), psci::CPU_ON_64.into(), 0xdead_0000_8400_0000] {
                let fast = classify(esr(EC_HVC64, 0), fid.into(), x1).expect("a constant call");
                let slow = dispatch(&Call { fid, args: [x1, 0, 0, 0, 0, 0] }, &mut NoVm(crate::psci::Psci::new(1)));
                assert_eq!(
                    Some(fast),
                    Some(FastExit::Hvc(match slow {
                        Outcome::Return([x0, 0, 0, 0]) => x0,
                        other => panic!("{other:?}"),
                    }))
                );
            }
        }
    }

    #[test]
    fn id_register_reads_only() {
        let pfr0 = SysRegAccess { reg: SysReg::new(3, 0, 0, 4, 0), rt: 7, read: true };
        assert_eq!(
            classify(esr(EC_SYS64, pfr0.to_iss().into()), 0, 0),
            Some(FastExit::IdRead { slot: crate::idregs::IdTable::slot(pfr0.reg).unwrap() as u8, rt: 7 })
        );
        let write = SysRegAccess { read: false, ..pfr0 };
        assert_eq!(classify(esr(EC_SYS64, write.to_iss().into()), 0, 0), None, "a write UNDEFs, slowly");
        let sgi = SysRegAccess { reg: SysReg::ICC_SGI1R_EL1, rt: 1, read: false };
        assert_eq!(classify(esr(EC_SYS64, sgi.to_iss().into()), 0, 0), None);
        let ctr = SysRegAccess { reg: SysReg::new(3, 3, 0, 0, 1), rt: 1, read: true };
        assert_eq!(classify(esr(EC_SYS64, ctr.to_iss().into()), 0, 0), None, "not group 3");
    }

    #[test]
    fn id_reads_are_exactly_group_3_reads() {
        // Every Op0/Op1/CRn/CRm/Op2/direction, Rt 5: the raw ISS check
        // agrees with the full decode.
        for iss in (0..1u32 << 22).step_by(1 << 5).map(|i| i | (5 << 5)) {
            let acc = SysRegAccess::from_iss(iss);
            let want = (acc.read && acc.reg.is_id_group3())
                .then(|| FastExit::IdRead { slot: crate::idregs::IdTable::slot(acc.reg).unwrap() as u8, rt: 5 });
            assert_eq!(classify(esr(EC_SYS64, iss.into()), 0, 0), want, "{acc}");
        }
    }

    #[test]
    fn mmio_with_a_complete_syndrome() {
        // ldr w1, [x0]: ISV, SAS = 2 (4 bytes), SRT = 1, a read, DFSC
        // translation fault level 3.
        let ldr = (1 << 24) | (2 << 22) | (1 << 16) | 0x07;
        let access = MmioAccess {
            ipa: 0,
            size: 4,
            write: false,
            reg: 1,
            sign_extend: false,
            sixty_four: false,
            acquire_release: false,
            writeback: None,
        };
        assert_eq!(classify(esr(EC_DABT_LOW, ldr), 0, 0), Some(FastExit::Mmio(access)));
        // The slow path's decoder agrees.
        let Syndrome::DataAbort(da) = Esr::decode(esr(EC_DABT_LOW, ldr)).syndrome() else { panic!() };
        assert_eq!(decode::decode(&da, 0, None), Ok(access));
        assert_eq!(classify(esr(EC_DABT_LOW, ldr & !(1 << 24)), 0, 0), None, "no syndrome: decode the instruction");
        assert_eq!(classify(esr(EC_DABT_LOW, ldr | 1 << 7), 0, 0), None, "stage-1 table walk");
        assert_eq!(classify(esr(EC_DABT_LOW, ldr | 1 << 8), 0, 0), None, "cache maintenance");
        assert_eq!(classify(esr(0x25, ldr), 0, 0), None, "an abort at EL2 is no guest exit");
        assert_eq!(classify(esr(0x20, 0x07), 0, 0), None, "instruction abort");
    }
}

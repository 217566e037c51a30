//! The ID registers a guest reads (HCR_EL2.TID3 traps every EL1 read of
//! ID group 3: op0 = 3, op1 = 0, CRn = 0, CRm = 1..7; ARM ARM D19.2.48
//! "HCR_EL2", TID3): the hardware value, sanitized so that the guest does
//! not see features the hypervisor does not virtualize, the way KVM's
//! `arch/arm64/kvm/sys_regs.c` (`__kvm_read_sanitised_id_reg`) does.
//!
//! Hidden: SVE, SME, AMU, MPAM, RAS, MTE, the PMU, SPE, trace, BRBE,
//! pointer authentication (its key registers are not switched), TME,
//! LS64/MOPS and the other features that need EL2 enables the hypervisor
//! does not set (HCRX_EL2), WFxT (a trapped WFIT's timeout is not
//! honoured), and every EL2 feature (the guest has no EL2: nested
//! virtualization, VHE, VMID bits, FGT, stage-2 granules, FWB, ...).
//! Set: the GIC system-register interface field, as the VM's vGIC has it.
//! Implementation-defined auxiliary feature registers and unallocated
//! encodings read as zero, as do the AArch32 registers on a CPU without
//! AArch32.
//!
//! Field positions: ARM ARM D19.2 ("ID_AA64PFR0_EL1", "ID_AA64DFR0_EL1",
//! ...), and G8.2 for the AArch32 registers.

use crate::esr::SysReg;

/// What the VM has that changes what its ID registers say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmFeatures {
    /// The vGIC is a GICv3 (system-register CPU interface).
    pub gic_v3: bool,
    /// The CPU implements AArch32 at EL0 (ID_AA64PFR0_EL1.EL0 = 0b0010):
    /// without it the AArch32 ID registers are UNKNOWN and read as zero.
    pub aarch32: bool,
}

/// A register's policy: the 4-bit fields (by low bit) that read as zero,
/// or the fields that are kept (every other one reads as zero).
enum Policy {
    /// The whole register reads as zero.
    Zero,
    /// These fields read as zero, the rest as the hardware has them.
    Hide(&'static [u32]),
    /// Only these fields are the hardware's; the rest read as zero.
    Keep(&'static [u32]),
    /// The hardware value.
    Hardware,
}

fn policy(reg: SysReg) -> Option<Policy> {
    use Policy::*;
    Some(match reg {
        // EL0 [3:0], EL1 [7:4], EL2 [11:8], EL3 [15:12], FP [19:16],
        // AdvSIMD [23:20], GIC [27:24] (set below), RAS [31:28], SVE [35:32],
        // SEL2 [39:36], MPAM [43:40], AMU [47:44], DIT [51:48], RME [55:52],
        // CSV2 [59:56], CSV3 [63:60].
        SysReg::ID_AA64PFR0_EL1 => Hide(&[8, 24, 28, 32, 36, 40, 44, 52]),
        // BT [3:0], SSBS [7:4], MTE [11:8], RAS_frac [15:12], MPAM_frac
        // [19:16], SME [27:24], RNDR_trap [31:28], CSV2_frac [35:32], NMI
        // [39:36], MTE_frac [43:40], GCS [47:44], ...
        SysReg::ID_AA64PFR1_EL1 => Keep(&[0, 4, 32]),
        SysReg::ID_AA64PFR2_EL1 | SysReg::ID_AA64ZFR0_EL1 | SysReg::ID_AA64SMFR0_EL1 | SysReg::ID_AA64FPFR0_EL1 => Zero,
        // DebugVer [3:0], TraceVer [7:4], PMUVer [11:8], BRPs [15:12],
        // SEBEP [27:24], WRPs [23:20], CTX_CMPs [31:28], PMSVer [35:32],
        // DoubleLock [39:36], TraceFilt [43:40], TraceBuffer [47:44],
        // MTPMU [51:48], BRBE [55:52], ExtTrcBuff [59:56], HPMN0 [63:60].
        // BRPs and WRPs as the hardware has them: each vCPU has its own
        // emulated breakpoint and watchpoint registers (MDCR_EL2.TDA, `vdebug`).
        SysReg::ID_AA64DFR0_EL1 => Keep(&[0, 12, 20, 28, 36]),
        SysReg::ID_AA64DFR1_EL1 | SysReg::ID_AA64DFR2_EL1 => Zero,
        SysReg::ID_AA64AFR0_EL1 | SysReg::ID_AA64AFR1_EL1 => Zero,
        // TME [27:24].
        SysReg::ID_AA64ISAR0_EL1 => Hide(&[24]),
        // APA [7:4], API [11:8], GPA [27:24], GPI [31:28], LS64 [63:60].
        SysReg::ID_AA64ISAR1_EL1 => Hide(&[4, 8, 24, 28, 60]),
        // WFxT [3:0], RPRES [7:4], GPA3 [11:8], APA3 [15:12], MOPS [19:16],
        // BC [23:20], PAC_frac [27:24], CLRBHB [31:28], SYSREG_128 [35:32],
        // SYSINSTR_128 [39:36], PRFMSLC [43:40], RPRFM [51:48], CSSC [55:52].
        SysReg::ID_AA64ISAR2_EL1 => Keep(&[4, 20, 28, 52]),
        SysReg::ID_AA64ISAR3_EL1 => Zero,
        // TGran16_2 [35:32], TGran64_2 [39:36], TGran4_2 [43:40]: stage-2
        // granules; FGT [59:56].
        SysReg::ID_AA64MMFR0_EL1 => Hide(&[32, 36, 40, 56]),
        // VMIDBits [7:4], VH [11:8], XNX [31:28], TWED [35:32], HCX [43:40],
        // TIDCP1 [55:52].
        SysReg::ID_AA64MMFR1_EL1 => Hide(&[4, 8, 28, 32, 40, 52]),
        // NV [27:24], FWB [43:40], EVT [59:56].
        SysReg::ID_AA64MMFR2_EL1 => Hide(&[24, 40, 56]),
        SysReg::ID_AA64MMFR3_EL1 | SysReg::ID_AA64MMFR4_EL1 => Zero,
        // AArch32. ID_PFR0: AMU [23:20], RAS [31:28].
        SysReg::ID_PFR0_EL1 => Hide(&[20, 28]),
        // ID_PFR1: Virtualization [15:12], Virt_frac [23:20], GIC [31:28] (set below).
        SysReg::ID_PFR1_EL1 => Hide(&[12, 20, 28]),
        // ID_PFR2: RAS_frac [11:8].
        SysReg::ID_PFR2_EL1 => Hide(&[8]),
        // ID_DFR0: CopDbg [3:0], CopSDbg [7:4], MMapDbg [11:8] kept;
        // trace, M-profile debug and PerfMon [27:24] hidden.
        SysReg::ID_DFR0_EL1 => Keep(&[0, 4, 8]),
        SysReg::ID_DFR1_EL1 | SysReg::ID_AFR0_EL1 => Zero,
        SysReg::ID_MMFR0_EL1
        | SysReg::ID_MMFR1_EL1
        | SysReg::ID_MMFR2_EL1
        | SysReg::ID_MMFR3_EL1
        | SysReg::ID_MMFR4_EL1
        | SysReg::ID_MMFR5_EL1
        | SysReg::ID_ISAR0_EL1
        | SysReg::ID_ISAR1_EL1
        | SysReg::ID_ISAR2_EL1
        | SysReg::ID_ISAR3_EL1
        | SysReg::ID_ISAR4_EL1
        | SysReg::ID_ISAR5_EL1
        | SysReg::ID_ISAR6_EL1
        | SysReg::MVFR0_EL1
        | SysReg::MVFR1_EL1
        | SysReg::MVFR2_EL1 => Hardware,
        _ => return None,
    })
}

/// Whether `reg` is an allocated ID register whose hardware value
/// [`sanitize`] needs (the glue reads only these; every other ID group 3
/// encoding reads as zero without touching the hardware).
pub fn reads_hardware(reg: SysReg) -> bool {
    matches!(policy(reg), Some(Policy::Hide(_) | Policy::Keep(_) | Policy::Hardware))
}

/// Whether `reg` is one of the AArch32 ID registers (CRm 1..3).
fn is_aarch32(reg: SysReg) -> bool {
    reg.is_id_group3() && reg.crm <= 3
}

const fn field_mask(lo: u32) -> u64 {
    0xf << lo
}

/// What the guest reads from ID register `reg` when the hardware value is
/// `hw` (ignored for registers that read as zero).
pub fn sanitize(reg: SysReg, hw: u64, vm: &VmFeatures) -> u64 {
    if is_aarch32(reg) && !vm.aarch32 {
        return 0;
    }
    let mut v = match policy(reg) {
        None | Some(Policy::Zero) => 0,
        Some(Policy::Hardware) => hw,
        Some(Policy::Hide(fields)) => fields.iter().fold(hw, |v, &lo| v & !field_mask(lo)),
        Some(Policy::Keep(fields)) => fields.iter().fold(0, |v, &lo| v | (hw & field_mask(lo))),
    };
    // The GIC CPU interface system registers (GICv3): ID_AA64PFR0_EL1.GIC
    // = 0b0001 and ID_PFR1_EL1.GIC = 0b0001 (ARM ARM D19.2.x; GICv3 spec
    // IHI 0069 §12.1.1): what the vGIC offers, not what the hardware has.
    let gic = u64::from(vm.gic_v3);
    if reg == SysReg::ID_AA64PFR0_EL1 {
        v |= gic << 24;
    } else if reg == SysReg::ID_PFR1_EL1 {
        v |= gic << 28;
    }
    v
}

/// Whether the CPU implements AArch32 at EL0, from ID_AA64PFR0_EL1.EL0.
pub fn has_aarch32_el0(id_aa64pfr0: u64) -> bool {
    id_aa64pfr0 & 0xf == 0b0010
}

/// Every ID group 3 register a VM reads, sanitized once when the VM is
/// built, so that a trapped read is a table lookup (issue 19's sysreg
/// fast path: `sanitize` and `policy` were 160 of a trapped `mrs`'s 560
/// instructions). The values are the boot CPU's, the same for every vCPU
/// wherever it runs, as KVM's system-wide sanitized ID registers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdTable([u64; 7 * 8]);

impl IdTable {
    /// The table for a VM with `features`; `read_hw` reads a hardware ID
    /// register (called only where [`reads_hardware`]).
    pub fn new(features: &VmFeatures, mut read_hw: impl FnMut(SysReg) -> u64) -> Self {
        let mut t = [0; 7 * 8];
        for (i, slot) in t.iter_mut().enumerate() {
            let reg = SysReg::new(3, 0, 0, (i / 8 + 1) as u8, (i % 8) as u8);
            let hw = if reads_hardware(reg) { read_hw(reg) } else { 0 };
            *slot = sanitize(reg, hw, features);
        }
        Self(t)
    }

    /// What the VM reads from `reg`; None if it is not in ID group 3.
    pub fn get(&self, reg: SysReg) -> Option<u64> {
        Self::slot(reg).map(|i| self.get_slot(i))
    }

    /// The slot of `reg` in the table (`(CRm - 1) * 8 + Op2`); None if it
    /// is not in ID group 3.
    pub fn slot(reg: SysReg) -> Option<usize> {
        reg.is_id_group3().then(|| usize::from(reg.crm - 1) * 8 + usize::from(reg.op2))
    }

    /// What the VM reads from the register in `slot` (the trap fast path
    /// computes the slot from the syndrome); 0 past the table.
    pub fn get_slot(&self, slot: usize) -> u64 {
        self.0.get(slot).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V3: VmFeatures = VmFeatures { gic_v3: true, aarch32: true };
    const V2: VmFeatures = VmFeatures { gic_v3: false, aarch32: true };

    /// Field `lo` of `v`.
    fn f(v: u64, lo: u32) -> u64 {
        (v >> lo) & 0xf
    }

    #[test]
    fn the_table_answers_what_sanitize_does() {
        // A "hardware" whose every register has all fields set, and one
        // that differs per register, so that a wrong slot shows.
        let hw = |r: SysReg| 0x1111_1111_1111_1111u64.wrapping_mul(u64::from(r.crm) * 8 + u64::from(r.op2) + 1);
        for features in [V3, V2, VmFeatures { gic_v3: true, aarch32: false }] {
            let t = IdTable::new(&features, hw);
            for crm in 1..=7 {
                for op2 in 0..8 {
                    let reg = SysReg::new(3, 0, 0, crm, op2);
                    let want = sanitize(reg, if reads_hardware(reg) { hw(reg) } else { 0 }, &features);
                    assert_eq!(t.get(reg), Some(want), "{reg}");
                }
            }
            assert_eq!(t.get(SysReg::new(3, 0, 0, 0, 5)), None, "MPIDR_EL1 is not ID group 3");
            assert_eq!(t.get(SysReg::CNTFRQ_EL0), None);
        }
        // The hardware is read only where the policy says so.
        let mut asked = 0;
        IdTable::new(&V3, |r| {
            assert!(reads_hardware(r), "{r}");
            asked += 1;
            0
        });
        assert!(asked > 0);
    }

    #[test]
    fn pfr0_hides_sve_amu_mpam_ras_el2_and_reports_the_vgic() {
        // A CPU with everything: every field 0b0001, GIC 0b0001 (v3/v4
        // system registers), EL0/EL1 AArch64+AArch32 (0b0010).
        let hw = 0x1111_1111_1111_1122;
        for vm in [V3, V2] {
            let v = sanitize(SysReg::ID_AA64PFR0_EL1, hw, &vm);
            for (lo, what) in
                [(8, "EL2"), (28, "RAS"), (32, "SVE"), (36, "SEL2"), (40, "MPAM"), (44, "AMU"), (52, "RME")]
            {
                assert_eq!(f(v, lo), 0, "{what}");
            }
            for (lo, what) in
                [(0, "EL0"), (4, "EL1"), (16, "FP"), (20, "AdvSIMD"), (48, "DIT"), (56, "CSV2"), (60, "CSV3")]
            {
                assert_eq!(f(v, lo), f(hw, lo), "{what}");
            }
            assert_eq!(f(v, 24), vm.gic_v3 as u64, "GIC");
        }
        // A GICv2 machine (GIC field 0) with a GICv3 vGIC would say 1.
        assert_eq!(f(sanitize(SysReg::ID_AA64PFR0_EL1, 0, &V3), 24), 1);
        // Cortex-A72: EL0-EL3 AArch64+AArch32, FP, AdvSIMD, GIC, CSV2=0.
        let a72 = 0x0000_0000_0100_2222;
        assert_eq!(sanitize(SysReg::ID_AA64PFR0_EL1, a72, &V3), 0x0000_0000_0100_2022);
        assert_eq!(sanitize(SysReg::ID_AA64PFR0_EL1, a72, &V2), 0x0000_0000_0000_2022);
    }

    #[test]
    fn pfr1_keeps_only_bti_ssbs_and_csv2_frac() {
        let hw = u64::MAX;
        assert_eq!(sanitize(SysReg::ID_AA64PFR1_EL1, hw, &V3), 0x0000_000f_0000_00ff);
    }

    #[test]
    fn debug_features_hide_pmu_spe_trace_brbe() {
        // QEMU max-like: DebugVer 9, TraceVer 1, PMUVer 8, BRPs 5, WRPs 3,
        // CTX_CMPs 1, PMSVer 3, DoubleLock 0, TraceFilt 1, BRBE 1.
        let hw = 0x0010_0103_1030_5819;
        let v = sanitize(SysReg::ID_AA64DFR0_EL1, hw, &V3);
        assert_eq!(f(v, 0), 9, "DebugVer");
        assert_eq!(f(v, 12), 5, "BRPs");
        assert_eq!(f(v, 20), 3, "WRPs");
        assert_eq!(f(v, 28), 1, "CTX_CMPs");
        for (lo, what) in [(4, "TraceVer"), (8, "PMUVer"), (32, "PMSVer"), (40, "TraceFilt"), (52, "BRBE")] {
            assert_eq!(f(v, lo), 0, "{what}");
        }
        // AArch32: PerfMon and trace hidden, debug kept.
        let dfr0 = 0x0311_6666;
        assert_eq!(sanitize(SysReg::ID_DFR0_EL1, dfr0, &V3), 0x0000_0666);
    }

    #[test]
    fn registers_of_hidden_extensions_and_unallocated_encodings_read_zero() {
        for reg in [
            SysReg::ID_AA64ZFR0_EL1,
            SysReg::ID_AA64SMFR0_EL1,
            SysReg::ID_AA64FPFR0_EL1,
            SysReg::ID_AA64PFR2_EL1,
            SysReg::ID_AA64DFR1_EL1,
            SysReg::ID_AA64AFR0_EL1,
            SysReg::ID_AA64AFR1_EL1,
            SysReg::ID_AA64ISAR3_EL1,
            SysReg::ID_AA64MMFR3_EL1,
            SysReg::ID_AA64MMFR4_EL1,
            SysReg::ID_AFR0_EL1,
            SysReg::ID_DFR1_EL1,
            SysReg::new(3, 0, 0, 3, 3),
            SysReg::new(3, 0, 0, 4, 3),
            SysReg::new(3, 0, 0, 7, 7),
        ] {
            assert_eq!(sanitize(reg, u64::MAX, &V3), 0, "{reg}");
            assert!(!reads_hardware(reg), "{reg}");
        }
        // Every encoding of the group is answered, none panics.
        for crm in 1..8 {
            for op2 in 0..8 {
                let _ = sanitize(SysReg::new(3, 0, 0, crm, op2), u64::MAX, &V2);
            }
        }
    }

    #[test]
    fn instruction_sets_hide_pauth_tme_ls64_mops_wfxt() {
        let isar1 = u64::MAX;
        let v = sanitize(SysReg::ID_AA64ISAR1_EL1, isar1, &V3);
        for lo in [4, 8, 24, 28, 60] {
            assert_eq!(f(v, lo), 0, "ISAR1 field at {lo}");
        }
        assert_eq!(f(v, 0), 0xf, "DPB kept");
        let v = sanitize(SysReg::ID_AA64ISAR2_EL1, u64::MAX, &V3);
        assert_eq!(v, 0x00f0_0000_f0f0_00f0);
        // ISAR0 keeps AES/SHA/CRC32/atomics/RNDR, hides TME.
        let isar0 = 0x1000_0000_1011_2120;
        assert_eq!(sanitize(SysReg::ID_AA64ISAR0_EL1, isar0 | (1 << 24), &V3), isar0);
    }

    #[test]
    fn memory_model_hides_el2_features() {
        let v = sanitize(SysReg::ID_AA64MMFR1_EL1, u64::MAX, &V3);
        for lo in [4, 8, 28, 32, 40, 52] {
            assert_eq!(f(v, lo), 0, "MMFR1 field at {lo}");
        }
        let v = sanitize(SysReg::ID_AA64MMFR2_EL1, u64::MAX, &V3);
        for lo in [24, 40, 56] {
            assert_eq!(f(v, lo), 0, "MMFR2 field at {lo}");
        }
        // PARange, ASIDBits and the stage-1 granules are the hardware's.
        let mmfr0 = 0x0000_0000_0000_1122 | (0x2 << 32) | (0x1 << 56);
        assert_eq!(sanitize(SysReg::ID_AA64MMFR0_EL1, mmfr0, &V3), 0x1122);
    }

    #[test]
    fn aarch32_registers() {
        let no32 = VmFeatures { gic_v3: true, aarch32: false };
        assert_eq!(sanitize(SysReg::ID_ISAR0_EL1, 0x0210_1110, &V3), 0x0210_1110);
        assert_eq!(sanitize(SysReg::ID_ISAR0_EL1, 0x0210_1110, &no32), 0);
        assert_eq!(sanitize(SysReg::MVFR0_EL1, 0x1022_2222, &V3), 0x1022_2222);
        // ID_PFR1: Virtualization and Virt_frac hidden, GIC from the vGIC.
        let pfr1 = 0x1011_1131;
        assert_eq!(sanitize(SysReg::ID_PFR1_EL1, pfr1, &V3), 0x1001_0131);
        assert_eq!(sanitize(SysReg::ID_PFR1_EL1, pfr1, &V2), 0x0001_0131);
        assert_eq!(sanitize(SysReg::ID_PFR0_EL1, 0x1011_0131, &V3), 0x0001_0131);
        assert!(has_aarch32_el0(0x2222));
        assert!(!has_aarch32_el0(0x1111));
    }
}

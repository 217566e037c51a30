//! The ID registers a VM reads (HCR_EL2.TID3): this CPU's hardware
//! values, sanitized by the pure `idregs` core when a VM is built. The
//! trapped accesses themselves are answered by the pure exit core
//! (`crate::exit`, ID reads, set/way, the TVM writes).

use super::sysreg::read_sysreg;
use crate::esr::SysReg;
use crate::idregs::{self, IdTable, VmFeatures};
use aarch64_cpu::registers::{ID_AA64PFR0_EL1, Readable};
use shared::platform::GicVersion;

/// Reads ID register `S3_0_C0_C<crm>_<op2>` from the hardware. Only
/// called for allocated encodings ([`idregs::reads_hardware`]), when a
/// VM is built.
fn read_id_hw(reg: SysReg) -> u64 {
    macro_rules! id {
        ($($crm:literal, $op2:literal => $name:ident;)*) => {
            match (reg.crm, reg.op2) {
                $(($crm, $op2) => read_sysreg!($name),)*
                _ => 0,
            }
        };
    }
    // The generic S3_0_C0_Cm_n names assemble whatever the assembler's
    // architecture level; reads at EL2 have no side effects.
    id! {
        1, 0 => S3_0_C0_C1_0; 1, 1 => S3_0_C0_C1_1; 1, 2 => S3_0_C0_C1_2; 1, 3 => S3_0_C0_C1_3;
        1, 4 => S3_0_C0_C1_4; 1, 5 => S3_0_C0_C1_5; 1, 6 => S3_0_C0_C1_6; 1, 7 => S3_0_C0_C1_7;
        2, 0 => S3_0_C0_C2_0; 2, 1 => S3_0_C0_C2_1; 2, 2 => S3_0_C0_C2_2; 2, 3 => S3_0_C0_C2_3;
        2, 4 => S3_0_C0_C2_4; 2, 5 => S3_0_C0_C2_5; 2, 6 => S3_0_C0_C2_6; 2, 7 => S3_0_C0_C2_7;
        3, 0 => S3_0_C0_C3_0; 3, 1 => S3_0_C0_C3_1; 3, 2 => S3_0_C0_C3_2;
        3, 4 => S3_0_C0_C3_4; 3, 5 => S3_0_C0_C3_5; 3, 6 => S3_0_C0_C3_6;
        4, 0 => S3_0_C0_C4_0; 4, 1 => S3_0_C0_C4_1;
        5, 0 => S3_0_C0_C5_0;
        6, 0 => S3_0_C0_C6_0; 6, 1 => S3_0_C0_C6_1; 6, 2 => S3_0_C0_C6_2;
        7, 0 => S3_0_C0_C7_0; 7, 1 => S3_0_C0_C7_1; 7, 2 => S3_0_C0_C7_2;
    }
}

/// What a VM with vGIC `gic` reads from the ID registers, from this
/// CPU's hardware values (`idregs::IdTable`).
pub fn id_table(gic: GicVersion) -> IdTable {
    let features =
        VmFeatures { gic_v3: gic == GicVersion::V3, aarch32: idregs::has_aarch32_el0(ID_AA64PFR0_EL1.get()) };
    IdTable::new(&features, read_id_hw)
}

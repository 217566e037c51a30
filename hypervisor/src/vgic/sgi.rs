//! Decoding of software-generated interrupt requests: GICv3 ICC_SGI1R_EL1
//! (IHI 0069H §12.2.21) and GICv2 GICD_SGIR (IHI 0048B §4.3.15).
//!
//! vCPU `n` has the affinity Aff3.Aff2.Aff1.Aff0 = 0.0.0.n (see
//! [`super::vcpu_affinity`]).

use super::VcpuSet;

/// Which SGI goes to which vCPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SgiRequest {
    /// SGI number, 0..=15.
    pub intid: u32,
    /// Receiving vCPUs (never containing vCPUs that do not exist).
    pub targets: VcpuSet,
}

/// Decodes a write of `value` to ICC_SGI1R_EL1 by vCPU `from` in a VM of
/// `nr_vcpus` vCPUs (IHI 0069H §12.2.21): TargetList [15:0], Aff1 [23:16],
/// INTID [27:24], Aff2 [39:32], IRM [40], RS [47:44], Aff3 [55:48].
/// IRM = 1 targets every vCPU but the sender.
pub fn decode_sgi1r(value: u64, from: usize, nr_vcpus: usize) -> SgiRequest {
    let intid = ((value >> 24) & 0xF) as u32;
    let mut targets = VcpuSet::EMPTY;
    if value & (1 << 40) != 0 {
        for vcpu in 0..nr_vcpus {
            if vcpu != from {
                targets.insert(vcpu);
            }
        }
        return SgiRequest { intid, targets };
    }
    let aff1 = (value >> 16) & 0xFF;
    let aff2 = (value >> 32) & 0xFF;
    let aff3 = (value >> 48) & 0xFF;
    if aff1 != 0 || aff2 != 0 || aff3 != 0 {
        // No vCPU has a non-zero Aff1..Aff3.
        return SgiRequest { intid, targets };
    }
    let range_base = ((value >> 44) & 0xF) as usize * 16;
    for bit in 0..16 {
        let aff0 = range_base + bit;
        if value & (1 << bit) != 0 && aff0 < nr_vcpus {
            targets.insert(aff0);
        }
    }
    SgiRequest { intid, targets }
}

/// Decodes a write of `value` to GICD_SGIR by vCPU `from` (IHI 0048B
/// §4.3.15): SGIINTID [3:0], CPUTargetList [23:16], TargetListFilter
/// [25:24] = 0b00 the list, 0b01 all but self, 0b10 self only; 0b11 is
/// reserved and sends nothing (`None`).
pub fn decode_sgir(value: u32, from: usize, nr_vcpus: usize) -> Option<SgiRequest> {
    let intid = value & 0xF;
    let mut targets = VcpuSet::EMPTY;
    match (value >> 24) & 0x3 {
        0 => {
            let list = (value >> 16) & 0xFF;
            for vcpu in 0..nr_vcpus.min(8) {
                if list & (1 << vcpu) != 0 {
                    targets.insert(vcpu);
                }
            }
        }
        1 => {
            for vcpu in 0..nr_vcpus {
                if vcpu != from {
                    targets.insert(vcpu);
                }
            }
        }
        2 => {
            if from < nr_vcpus {
                targets.insert(from);
            }
        }
        _ => return None,
    }
    Some(SgiRequest { intid, targets })
}

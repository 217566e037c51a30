//! What the hypervisor writes when it gives a guest an exception of its
//! own (an undefined instruction, a data or prefetch abort), as a pure
//! core: the syndrome for ESR_EL1 and the offset into VBAR_EL1 the
//! exception is taken to. KVM's `arch/arm64/kvm/inject_fault.c`
//! (`inject_abt64`, `inject_undef64`, `get_except64_offset`).

/// ESR_EL1.IL (bit 25).
pub const ESR_IL: u64 = 1 << 25;

/// The syndrome of a synchronous external abort on a data access (`data`)
/// or an instruction fetch (ARM ARM D17.2.37 "ESR_ELx"): EC data abort
/// 0x24 / 0x25 or instruction abort 0x20 / 0x21 from a lower EL (EL0, in
/// either execution state) or the same EL; IL as the trapped instruction's
/// (`il`; an instruction abort has IL = 1); WnR (bit 6) for a data write;
/// FSC 0x10 "synchronous external abort, not on a translation table walk".
pub const fn abort_esr(data: bool, from_el0: bool, il: bool, write: bool) -> u64 {
    let ec: u64 = match (data, from_el0) {
        (true, true) => 0x24,
        (true, false) => 0x25,
        (false, true) => 0x20,
        (false, false) => 0x21,
    };
    let il = if il || !data { ESR_IL } else { 0 };
    let wnr = if data && write { 1 << 6 } else { 0 };
    (ec << 26) | il | wnr | 0x10
}

/// The syndrome of an undefined-instruction exception (EC 0, IL set).
pub const UNDEF_ESR: u64 = ESR_IL;

/// Whether a guest in `pstate` (SPSR_EL2) was at EL0, AArch64 (M = 0b0000)
/// or AArch32 (M[4] = 1: the guest's EL1 is AArch64, so an AArch32 mode
/// is User).
pub const fn from_el0(pstate: u64) -> bool {
    pstate & 0x10 != 0 || pstate & 0xf == 0
}

/// The offset from VBAR_EL1 of the vector a synchronous exception taken
/// from `pstate` goes to (ARM ARM D1.10.2 "Exception vectors"): current EL
/// with SP_EL0 0x000, current EL with SP_ELx 0x200, lower EL in AArch64
/// 0x400, lower EL in AArch32 0x600.
pub const fn sync_vector_offset(pstate: u64) -> u64 {
    match pstate & 0x1f {
        0b00101 => 0x200,
        0b00100 => 0x000,
        m if m & 0x10 != 0 => 0x600,
        _ => 0x400,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abort_syndromes() {
        // A fetch from nothing at EL1: EC 0x21, IL, IFSC 0x10 (what the
        // guest kernel's `pabt` self-test reads back).
        assert_eq!(abort_esr(false, false, false, false), 0x8600_0010);
        assert_eq!(abort_esr(false, true, true, true), 0x8200_0010, "no WnR on a fetch");
        // Data aborts keep the trapped instruction's IL and WnR.
        assert_eq!(abort_esr(true, false, true, true), 0x9600_0050);
        assert_eq!(abort_esr(true, true, true, false), 0x9200_0010);
        // A 16-bit T32 load from AArch32 EL0: IL = 0.
        assert_eq!(abort_esr(true, true, false, false), 0x9000_0010);
    }

    #[test]
    fn vectors_by_where_the_guest_was() {
        assert_eq!(sync_vector_offset(0x3c5), 0x200, "EL1h");
        assert_eq!(sync_vector_offset(0x3c4), 0x000, "EL1t");
        assert_eq!(sync_vector_offset(0x0), 0x400, "EL0, AArch64");
        assert_eq!(sync_vector_offset(0x10), 0x600, "User, AArch32");
        assert_eq!(sync_vector_offset(0x30 | (1 << 29)), 0x600, "User, T32, flags set");
        assert!(from_el0(0x0) && from_el0(0x10) && from_el0(0x30));
        assert!(!from_el0(0x3c5) && !from_el0(0x3c4));
    }
}

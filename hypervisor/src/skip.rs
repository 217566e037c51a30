//! Stepping a guest over an instruction the hypervisor trapped and
//! emulated, and the AArch32 condition check that decides whether a
//! trapped conditional instruction is emulated at all, as a pure core.
//!
//! - The instruction is 2 or 4 bytes long: ESR_EL2.IL (ARM ARM D17.2.37
//!   "ESR_EL2", IL: 0 for a 16-bit T32 instruction, 1 otherwise). A64 and
//!   A32 instructions are always 4 bytes.
//! - A T32 instruction inside an IT block moves the IT state on, as the
//!   hardware would have done (ARM ARM, AArch32 pseudocode
//!   `AArch32.ITAdvance()`): KVM's `kvm_skip_instr32`/`kvm_adjust_itstate`
//!   (`arch/arm64/kvm/hyp/aarch32.c`).
//! - A conditional AArch32 instruction may trap even when its condition
//!   fails (ARM ARM D1.10.x "Traps of conditional instructions": it is
//!   IMPLEMENTATION DEFINED whether it traps); then it must be skipped, not
//!   emulated: KVM's `kvm_condition_valid32`.

/// SPSR_EL2.M[4] (nRW): the guest was in AArch32 (ARM ARM C5.2.18).
pub const PSTATE_AARCH32: u64 = 1 << 4;
/// SPSR_EL2.T for an AArch32 guest: T32 state.
pub const PSTATE_T: u64 = 1 << 5;
/// SPSR_EL2.IT[7:2] at `[15:10]` and IT[1:0] at `[26:25]` (AArch32 state).
pub const PSTATE_IT_MASK: u64 = (0x3f << 10) | (0x3 << 25);

/// The IT state of an AArch32 PSTATE, as the 8-bit ITSTATE.
pub const fn itstate(pstate: u64) -> u8 {
    ((((pstate >> 10) & 0x3f) << 2) | ((pstate >> 25) & 0x3)) as u8
}

/// `pstate` with its IT bits replaced by `it`.
pub const fn with_itstate(pstate: u64, it: u8) -> u64 {
    let it = it as u64;
    (pstate & !PSTATE_IT_MASK) | (((it >> 2) & 0x3f) << 10) | ((it & 0x3) << 25)
}

/// `AArch32.ITAdvance()`: IT[2:0] = 0 ends the block (ITSTATE = 0),
/// otherwise IT[4:0] shifts left by one, keeping IT[7:5].
pub const fn it_advance(it: u8) -> u8 {
    if it & 0x7 == 0 { 0 } else { (it & 0xe0) | ((it << 1) & 0x1f) }
}

/// The PC and PSTATE after skipping the trapped instruction at `pc`, whose
/// ESR_EL2.IL is `il` (true: 32 bits).
pub const fn skip(pc: u64, pstate: u64, il: bool) -> (u64, u64) {
    let len = if il { 4 } else { 2 };
    if pstate & PSTATE_AARCH32 == 0 {
        return (pc.wrapping_add(len), pstate);
    }
    // AArch32: a 32-bit PC, and the IT state moves on in T32.
    let pc = pc.wrapping_add(len) & 0xffff_ffff;
    if pstate & PSTATE_T != 0 && pstate & PSTATE_IT_MASK != 0 {
        (pc, with_itstate(pstate, it_advance(itstate(pstate))))
    } else {
        (pc, pstate)
    }
}

/// Whether condition `cond` (ARM ARM "Condition code", bits of an A32
/// instruction's `[31:28]`) holds for the flags N Z C V in `pstate[31:28]`
/// (`ConditionHolds()`).
pub const fn condition_holds(cond: u8, pstate: u64) -> bool {
    let n = pstate & (1 << 31) != 0;
    let z = pstate & (1 << 30) != 0;
    let c = pstate & (1 << 29) != 0;
    let v = pstate & (1 << 28) != 0;
    let base = match (cond >> 1) & 0x7 {
        0 => z,
        1 => c,
        2 => n,
        3 => v,
        4 => c && !z,
        5 => n == v,
        6 => n == v && !z,
        _ => true,
    };
    // The odd conditions negate the even ones, except 0b1111 (always).
    if cond & 1 != 0 && cond != 0xf { !base } else { base }
}

/// KVM's `kvm_condition_valid32`: whether a trapped instruction with
/// syndrome `esr` (ESR_EL2), from a guest in `pstate`, passed its
/// condition check and must be emulated. False only for an AArch32
/// instruction whose condition fails.
///
/// ESR_EL2.ISS.CV (`[24]`) and COND (`[23:20]`) exist for the conditional
/// classes, EC 0x01..0x0f (ARM ARM D17.2.37); classes from 0x10 up are
/// never conditional. With CV = 0 (a T32 instruction in an IT block on
/// some cores) the condition is the IT block's, `ITSTATE[7:4]`.
pub const fn condition_passed(esr: u64, pstate: u64) -> bool {
    if pstate & PSTATE_AARCH32 == 0 {
        return true;
    }
    let ec = (esr >> 26) & 0x3f;
    if ec == 0 || ec >= 0x10 {
        return true;
    }
    let cond = if esr & (1 << 24) != 0 {
        ((esr >> 20) & 0xf) as u8
    } else {
        let it = itstate(pstate);
        if it == 0 {
            return true;
        }
        it >> 4
    };
    cond == 0xe || condition_holds(cond, pstate)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A32_USR: u64 = PSTATE_AARCH32; // M = 0b10000: User
    const T32_USR: u64 = PSTATE_AARCH32 | PSTATE_T;

    #[test]
    fn a64_always_steps_four_bytes() {
        assert_eq!(skip(0x4000_0000, 0x3c5, true), (0x4000_0004, 0x3c5));
        assert_eq!(skip(0xffff_0000_0000_0ffc, 0, true), (0xffff_0000_0000_1000, 0));
    }

    #[test]
    fn t32_steps_by_the_instruction_length() {
        // A 16-bit T32 WFI (IL = 0): the next instruction is 2 bytes on.
        assert_eq!(skip(0x8000, T32_USR, false), (0x8002, T32_USR));
        assert_eq!(skip(0x8000, T32_USR, true), (0x8004, T32_USR));
        assert_eq!(skip(0x8000, A32_USR, true), (0x8004, A32_USR));
        // The AArch32 PC is 32 bits.
        assert_eq!(skip(0xffff_fffe, T32_USR, false).0, 0);
    }

    #[test]
    fn itstate_round_trips_through_pstate() {
        for it in 0..=255u8 {
            let p = with_itstate(T32_USR | (0xf << 28), it);
            assert_eq!(itstate(p), it);
            assert_eq!(p & !PSTATE_IT_MASK, T32_USR | (0xf << 28), "only IT bits change");
        }
    }

    #[test]
    fn it_advance_follows_the_pseudocode() {
        // ITTE EQ: firstcond = 0000, mask = 0b0110 -> ITSTATE 0b0000_0110
        // then instructions see EQ, EQ, NE (condition bit 4 from the mask).
        let mut it = 0b0000_0110u8;
        it = it_advance(it);
        assert_eq!(it, 0b0000_1100);
        it = it_advance(it);
        assert_eq!(it, 0b0001_1000);
        assert_eq!(it >> 4, 0b0001, "third instruction: NE");
        it = it_advance(it);
        assert_eq!(it, 0, "IT[2:0] = 0 ends the block");
        // The last instruction of a block (IT[3:0] = 1000) ends it.
        assert_eq!(it_advance(0b1010_1000), 0);
        // IT[7:5] is kept, IT[4:0] shifts.
        assert_eq!(it_advance(0b1010_0101), 0b1010_1010);
    }

    #[test]
    fn skipping_in_an_it_block_advances_itstate() {
        let p = with_itstate(T32_USR, 0b0000_0110);
        let (pc, p2) = skip(0x100, p, false);
        assert_eq!(pc, 0x102);
        assert_eq!(itstate(p2), 0b0000_1100);
        // A32 has no IT state to advance (and none is set).
        let (_, p3) = skip(0x100, A32_USR, true);
        assert_eq!(p3, A32_USR);
        // AArch64 PSTATE bits 10..15 and 25..26 are other things (e.g.
        // PSTATE.SSBS is bit 12): never touched.
        assert_eq!(skip(0x100, 1 << 12 | 0x3c5, true).1, 1 << 12 | 0x3c5);
    }

    #[test]
    fn conditions_follow_condition_holds() {
        let (n, z, c, v) = (1u64 << 31, 1u64 << 30, 1u64 << 29, 1u64 << 28);
        assert!(condition_holds(0x0, z) && !condition_holds(0x0, 0)); // EQ
        assert!(condition_holds(0x1, 0) && !condition_holds(0x1, z)); // NE
        assert!(condition_holds(0x2, c) && !condition_holds(0x3, c)); // CS / CC
        assert!(condition_holds(0x4, n) && condition_holds(0x5, 0)); // MI / PL
        assert!(condition_holds(0x6, v) && condition_holds(0x7, 0)); // VS / VC
        assert!(condition_holds(0x8, c) && !condition_holds(0x8, c | z)); // HI
        assert!(condition_holds(0x9, z)); // LS
        assert!(condition_holds(0xa, n | v) && !condition_holds(0xa, n)); // GE
        assert!(condition_holds(0xb, n)); // LT
        assert!(condition_holds(0xc, 0) && !condition_holds(0xc, z)); // GT
        assert!(condition_holds(0xd, z)); // LE
        assert!(condition_holds(0xe, 0) && condition_holds(0xf, 0)); // AL
    }

    #[test]
    fn failed_conditions_are_skipped_only_for_aarch32() {
        let wfi = 0x01u64 << 26;
        let cv_eq = 1 << 24; // CV = 1, COND = 0b0000 (EQ)
        // A32 WFIEQ with Z clear: failed; with Z set: passed.
        assert!(!condition_passed(wfi | (1 << 25) | cv_eq, A32_USR));
        assert!(condition_passed(wfi | (1 << 25) | cv_eq, A32_USR | (1 << 30)));
        // AL, and any AArch64 trap, always pass.
        assert!(condition_passed(wfi | (1 << 24) | (0xe << 20), A32_USR));
        assert!(condition_passed(wfi | cv_eq, 0x3c5));
        // Classes from 0x10 (e.g. data aborts, 0x24) have no condition.
        assert!(condition_passed((0x24 << 26) | cv_eq, A32_USR));
        // CV = 0 in an IT block: the condition is ITSTATE[7:4] (NE here).
        let in_it = with_itstate(T32_USR, 0b0001_1000);
        assert!(condition_passed(wfi, in_it));
        assert!(!condition_passed(wfi, in_it | (1 << 30)));
        // CV = 0 outside an IT block: unconditional.
        assert!(condition_passed(wfi, T32_USR | (1 << 30)));
    }
}

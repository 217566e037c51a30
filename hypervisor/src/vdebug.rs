//! A vCPU's self-hosted debug registers, emulated (ARM ARM D2 "AArch64
//! Self-hosted Debug", register descriptions in D19.3): the hypervisor sets
//! MDCR_EL2.TDA, TDOSA and TDRA so that every EL1/EL0 access to the
//! breakpoint, watchpoint, OS lock and debug ROM registers traps, and this
//! core answers it from the vCPU's own copy. Nothing reaches the hardware
//! registers, so no VM sees or changes another VM's values; the price is
//! that a guest's hardware breakpoints and watchpoints never fire (KVM
//! does the same until a guest turns debug on, when it switches the
//! registers lazily: `arch/arm64/kvm/sys_regs.c`, `trap_bvr`, `trap_oslar_el1`).
//!
//! MDSCR_EL1 (also trapped by TDA) is kept here as the guest wrote it; the
//! hardware register, part of the switched EL1 context, gets the same
//! value without MDE and KDE ([`mdscr_hw`]): software step and the EL0 DCC
//! trap work, hardware breakpoints and watchpoints stay off.

use crate::esr::SysReg;

/// Breakpoint and watchpoint register pairs kept per vCPU: the most the
/// architecture allows (ID_AA64DFR0_EL1.BRPs/WRPs are 4-bit "number - 1").
pub const PAIRS: usize = 16;

/// OSLSR_EL1.OSLM = 0b10 (the OS lock is implemented; bit 3 of the
/// register), and OSLK (bit 1), the lock itself.
pub const OSLSR_OSLM_IMPLEMENTED: u64 = 1 << 3;
pub const OSLSR_OSLK: u64 = 1 << 1;

/// The emulated registers of one vCPU (all zero at reset: every
/// breakpoint and watchpoint disabled, the OS lock unlocked as KVM resets it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DebugRegs {
    pub bvr: [u64; PAIRS],
    pub bcr: [u64; PAIRS],
    pub wvr: [u64; PAIRS],
    pub wcr: [u64; PAIRS],
    pub mdccint: u64,
    pub oslk: bool,
    pub dbgprcr: u64,
    pub claim: u64,
    pub osdtrrx: u64,
    pub osdtrtx: u64,
    pub oseccr: u64,
    /// MDSCR_EL1 as the guest wrote it.
    pub mdscr: u64,
}

/// MDSCR_EL1.MDE (bit 15): breakpoints, watchpoints and vector catch
/// enabled; KDE (bit 13): debug exceptions at EL1 (ARM ARM D19.3.x "MDSCR_EL1").
pub const MDSCR_MDE: u64 = 1 << 15;
pub const MDSCR_KDE: u64 = 1 << 13;

/// The value of the hardware MDSCR_EL1 for a guest that wrote `guest`.
pub const fn mdscr_hw(guest: u64) -> u64 {
    guest & !(MDSCR_MDE | MDSCR_KDE)
}

/// The encodings this core owns (op0 = 2, op1 = 0 unless noted; ARM ARM
/// D19.3 "Debug registers").
pub mod reg {
    use crate::esr::SysReg;
    pub const OSDTRRX_EL1: SysReg = SysReg::new(2, 0, 0, 0, 2);
    pub const MDCCINT_EL1: SysReg = SysReg::new(2, 0, 0, 2, 0);
    pub const OSDTRTX_EL1: SysReg = SysReg::new(2, 0, 0, 3, 2);
    pub const OSECCR_EL1: SysReg = SysReg::new(2, 0, 0, 6, 2);
    pub const MDRAR_EL1: SysReg = SysReg::new(2, 0, 1, 0, 0);
    pub const OSLAR_EL1: SysReg = SysReg::new(2, 0, 1, 0, 4);
    pub const OSLSR_EL1: SysReg = SysReg::new(2, 0, 1, 1, 4);
    pub const OSDLR_EL1: SysReg = SysReg::new(2, 0, 1, 3, 4);
    pub const DBGPRCR_EL1: SysReg = SysReg::new(2, 0, 1, 4, 4);
    pub const DBGCLAIMSET_EL1: SysReg = SysReg::new(2, 0, 7, 8, 6);
    pub const DBGCLAIMCLR_EL1: SysReg = SysReg::new(2, 0, 7, 9, 6);
    pub const DBGAUTHSTATUS_EL1: SysReg = SysReg::new(2, 0, 7, 14, 6);
    pub const MDCCSR_EL0: SysReg = SysReg::new(2, 3, 0, 1, 0);
    /// DBGBVR<n>_EL1 = (2, 0, 0, n, 4), DBGBCR (.., 5), DBGWVR (.., 6), DBGWCR (.., 7).
    pub const fn dbgbvr(n: u8) -> SysReg {
        SysReg::new(2, 0, 0, n, 4)
    }
}

/// Which register of a pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pair {
    Bvr,
    Bcr,
    Wvr,
    Wcr,
}

fn pair(r: SysReg) -> Option<(Pair, usize)> {
    if r.op0 != 2 || r.op1 != 0 || r.crn != 0 {
        return None;
    }
    let kind = match r.op2 {
        4 => Pair::Bvr,
        5 => Pair::Bcr,
        6 => Pair::Wvr,
        7 => Pair::Wcr,
        _ => return None,
    };
    Some((kind, r.crm as usize))
}

/// Whether `reg` is one of the debug registers this core emulates.
pub fn owns(reg: SysReg) -> bool {
    use reg::*;
    pair(reg).is_some()
        || [
            SysReg::MDSCR_EL1,
            OSDTRRX_EL1,
            MDCCINT_EL1,
            OSDTRTX_EL1,
            OSECCR_EL1,
            MDRAR_EL1,
            OSLAR_EL1,
            OSLSR_EL1,
            OSDLR_EL1,
            DBGPRCR_EL1,
            DBGCLAIMSET_EL1,
            DBGCLAIMCLR_EL1,
            DBGAUTHSTATUS_EL1,
            MDCCSR_EL0,
        ]
        .contains(&reg)
}

impl DebugRegs {
    /// Reads `reg`; None if it is not one of ours or is write-only (the
    /// guest gets an UNDEF).
    pub fn read(&self, reg: SysReg) -> Option<u64> {
        use reg::*;
        if let Some((kind, n)) = pair(reg) {
            return Some(match kind {
                Pair::Bvr => self.bvr[n],
                Pair::Bcr => self.bcr[n],
                Pair::Wvr => self.wvr[n],
                Pair::Wcr => self.wcr[n],
            });
        }
        Some(match reg {
            r if r == OSDTRRX_EL1 => self.osdtrrx,
            r if r == OSDTRTX_EL1 => self.osdtrtx,
            r if r == OSECCR_EL1 => self.oseccr,
            r if r == MDCCINT_EL1 => self.mdccint,
            r if r == SysReg::MDSCR_EL1 => self.mdscr,
            // No memory-mapped debug ROM (MDRAR_EL1.Valid = 0b00).
            r if r == MDRAR_EL1 => 0,
            r if r == OSLSR_EL1 => OSLSR_OSLM_IMPLEMENTED | if self.oslk { OSLSR_OSLK } else { 0 },
            // The OS double lock is never locked (DLK = 0).
            r if r == OSDLR_EL1 => 0,
            r if r == DBGPRCR_EL1 => self.dbgprcr,
            // Both claim registers read the claim tag bits (ARM ARM D19.3.x).
            r if r == DBGCLAIMSET_EL1 || r == DBGCLAIMCLR_EL1 => self.claim,
            // Non-secure invasive and non-invasive debug enabled and
            // implemented (NSID, NSNID = 0b11); secure debug not.
            r if r == DBGAUTHSTATUS_EL1 => 0b1111,
            // The debug communications channel is always empty.
            r if r == MDCCSR_EL0 => 0,
            _ => return None,
        })
    }

    /// Writes `value` to `reg`; false if it is not one of ours or is
    /// read-only (the guest gets an UNDEF).
    pub fn write(&mut self, reg: SysReg, value: u64) -> bool {
        use reg::*;
        if let Some((kind, n)) = pair(reg) {
            // Writes are as the guest made them; the values are never
            // given to the hardware, so no bit needs sanitizing.
            match kind {
                Pair::Bvr => self.bvr[n] = value,
                Pair::Bcr => self.bcr[n] = value,
                Pair::Wvr => self.wvr[n] = value,
                Pair::Wcr => self.wcr[n] = value,
            }
            return true;
        }
        match reg {
            r if r == OSDTRRX_EL1 => self.osdtrrx = value & 0xffff_ffff,
            r if r == OSDTRTX_EL1 => self.osdtrtx = value & 0xffff_ffff,
            r if r == OSECCR_EL1 => self.oseccr = value & 0xffff_ffff,
            r if r == MDCCINT_EL1 => self.mdccint = value,
            r if r == SysReg::MDSCR_EL1 => self.mdscr = value,
            // OSLAR_EL1.OSLK (bit 0) sets or clears the OS lock.
            r if r == OSLAR_EL1 => self.oslk = value & 1 != 0,
            r if r == OSDLR_EL1 => {}
            r if r == DBGPRCR_EL1 => self.dbgprcr = value & 1,
            r if r == DBGCLAIMSET_EL1 => self.claim |= value & 0xff,
            r if r == DBGCLAIMCLR_EL1 => self.claim &= !(value & 0xff),
            _ => return false,
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_vcpu_reads_back_its_own_breakpoints() {
        let mut a = DebugRegs::default();
        let b = DebugRegs::default();
        assert!(a.write(reg::dbgbvr(0), 0xdead_beef_0000));
        assert_eq!(a.read(reg::dbgbvr(0)), Some(0xdead_beef_0000));
        // Another vCPU's copy is untouched.
        assert_eq!(b.read(reg::dbgbvr(0)), Some(0));
        // All four kinds, every index.
        for n in 0..PAIRS as u8 {
            for op2 in 4..=7u8 {
                let r = SysReg::new(2, 0, 0, n, op2);
                assert!(owns(r), "{r}");
                assert!(a.write(r, u64::from(n) << 8 | u64::from(op2)));
            }
        }
        for n in 0..PAIRS as u8 {
            for op2 in 4..=7u8 {
                assert_eq!(a.read(SysReg::new(2, 0, 0, n, op2)), Some(u64::from(n) << 8 | u64::from(op2)));
            }
        }
    }

    #[test]
    fn the_os_lock_and_claim_tags_behave() {
        let mut d = DebugRegs::default();
        assert_eq!(d.read(reg::OSLSR_EL1), Some(OSLSR_OSLM_IMPLEMENTED));
        assert!(d.write(reg::OSLAR_EL1, 1));
        assert_eq!(d.read(reg::OSLSR_EL1), Some(OSLSR_OSLM_IMPLEMENTED | OSLSR_OSLK));
        assert!(d.write(reg::OSLAR_EL1, 0));
        assert_eq!(d.read(reg::OSLSR_EL1), Some(OSLSR_OSLM_IMPLEMENTED));
        assert!(d.write(reg::DBGCLAIMSET_EL1, 0x1_05));
        assert!(d.write(reg::DBGCLAIMCLR_EL1, 0x01));
        assert_eq!(d.read(reg::DBGCLAIMSET_EL1), Some(0x04));
        assert_eq!(d.read(reg::MDRAR_EL1), Some(0));
    }

    #[test]
    fn mdscr_reads_back_but_never_arms_the_hardware() {
        let mut d = DebugRegs::default();
        let guest = MDSCR_MDE | MDSCR_KDE | 1; // and SS
        assert!(d.write(SysReg::MDSCR_EL1, guest));
        assert_eq!(d.read(SysReg::MDSCR_EL1), Some(guest));
        assert_eq!(mdscr_hw(guest), 1, "software step stays, MDE and KDE go");
    }

    #[test]
    fn what_is_not_ours_is_refused() {
        let mut d = DebugRegs::default();
        // The PMU is not debug; nor are the EL1 controls.
        assert!(!owns(SysReg::PMCR_EL0));
        assert!(!owns(SysReg::SCTLR_EL1));
        assert_eq!(d.read(SysReg::PMCR_EL0), None);
        assert!(!d.write(SysReg::PMCR_EL0, 1));
        // Read-only and write-only registers.
        assert!(!d.write(reg::OSLSR_EL1, 0));
        assert!(!d.write(reg::MDRAR_EL1, 0));
        assert_eq!(d.read(reg::OSLAR_EL1), None);
        assert_eq!(d, DebugRegs::default(), "refused writes change nothing");
    }
}

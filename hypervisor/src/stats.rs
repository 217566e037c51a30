//! Exit statistics: how often each vCPU left the guest, and why. This is
//! the first thing to read when studying a world switch: every row is one
//! path through `arch/aarch64/exit.rs`.

use core::fmt;

/// Why a vCPU exited to EL2, as counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "trace", derive(defmt::Format))]
#[repr(usize)]
pub enum ExitReason {
    Hvc,
    Smc,
    Wfi,
    Wfe,
    MmioRead,
    MmioWrite,
    SysReg,
    Irq,
    Fiq,
    SError,
    FpTrap,
    /// The guest's first touch of a block of its RAM: filled and mapped
    /// (`guestram`).
    Stage2Fault,
    /// A stage-2 fault outside RAM and emulated devices, or an undecodable access.
    BadAccess,
    /// An exception class we do not handle: the guest got an undefined instruction.
    Undefined,
}

impl ExitReason {
    /// Every reason, in display order.
    pub const ALL: [ExitReason; 14] = [
        Self::Hvc,
        Self::Smc,
        Self::Wfi,
        Self::Wfe,
        Self::MmioRead,
        Self::MmioWrite,
        Self::SysReg,
        Self::Irq,
        Self::Fiq,
        Self::SError,
        Self::FpTrap,
        Self::Stage2Fault,
        Self::BadAccess,
        Self::Undefined,
    ];

    /// The reason an emulated MMIO access is counted under. A refused
    /// access is counted once, as [`ExitReason::BadAccess`], never also
    /// as a read or write.
    pub const fn for_mmio(write: bool) -> Self {
        if write { Self::MmioWrite } else { Self::MmioRead }
    }

    /// Short name used in reports and traces.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Hvc => "hvc",
            Self::Smc => "smc",
            Self::Wfi => "wfi",
            Self::Wfe => "wfe",
            Self::MmioRead => "mmio-read",
            Self::MmioWrite => "mmio-write",
            Self::SysReg => "sysreg",
            Self::Irq => "irq",
            Self::Fiq => "fiq",
            Self::SError => "serror",
            Self::FpTrap => "fp-trap",
            Self::Stage2Fault => "s2-fault",
            Self::BadAccess => "bad-access",
            Self::Undefined => "undefined",
        }
    }
}

/// Exit counters of one vCPU (or, summed, of a VM).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExitStats {
    counts: [u64; ExitReason::ALL.len()],
    /// The reason of the most recent exit (for the exit trace).
    last: Option<ExitReason>,
}

impl ExitStats {
    /// Counts one exit.
    pub fn record(&mut self, r: ExitReason) {
        self.counts[r as usize] = self.counts[r as usize].wrapping_add(1);
        self.last = Some(r);
    }

    /// The reason last counted, if any.
    pub fn last(&self) -> Option<ExitReason> {
        self.last
    }

    /// How many exits of this kind.
    pub fn get(&self, r: ExitReason) -> u64 {
        self.counts[r as usize]
    }

    /// All exits.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Adds another vCPU's counters.
    pub fn add(&mut self, other: &ExitStats) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a = a.wrapping_add(*b);
        }
    }
}

impl fmt::Display for ExitStats {
    /// `total 120: hvc 3, mmio-write 117` (zero rows omitted).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "total {}", self.total())?;
        let mut sep = ":";
        for r in ExitReason::ALL {
            let n = self.get(r);
            if n != 0 {
                write!(f, "{sep} {} {n}", r.name())?;
                sep = ",";
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_prints() {
        let mut s = ExitStats::default();
        s.record(ExitReason::Hvc);
        s.record(ExitReason::MmioWrite);
        s.record(ExitReason::MmioWrite);
        let mut t = ExitStats::default();
        t.record(ExitReason::Wfi);
        s.add(&t);
        assert_eq!(s.total(), 4);
        assert_eq!(s.last(), Some(ExitReason::MmioWrite));
        assert_eq!(format!("{s}"), "total 4: hvc 1, wfi 1, mmio-write 2");
    }
}

//! A rate limit on the hypervisor's reports of what one VM did wrong (a
//! refused MMIO access, a system register it may not use, ...): a guest
//! that loops over bad accesses must not flood the machine's console and
//! drown the other VMs' lines. Linux's `___ratelimit` (`lib/ratelimit.c`)
//! does the same for `printk_ratelimited`: at most `burst` reports per
//! interval, then a count of the suppressed ones when the next interval
//! opens, and (here) when the VM stops.

/// What to do with one report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Print it; first say that `suppressed` reports were dropped since the
    /// last one printed (0: nothing was).
    Print { suppressed: u64 },
    /// Drop it (counted).
    Suppress,
}

/// The report budget of one VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReportLimit {
    /// Reports printed per interval.
    burst: u32,
    /// Counter value when the current interval opened (None: no report yet).
    opened: Option<u64>,
    /// Reports printed in the current interval.
    printed: u32,
    /// Reports dropped since the last one printed.
    suppressed: u64,
}

/// Reports a VM may print per interval.
pub const BURST: u32 = 10;
/// The interval, in seconds.
pub const INTERVAL_S: u64 = 5;

impl Default for ReportLimit {
    fn default() -> Self {
        Self::new(BURST)
    }
}

impl ReportLimit {
    /// A budget of `burst` reports per interval.
    pub const fn new(burst: u32) -> Self {
        Self { burst, opened: None, printed: 0, suppressed: 0 }
    }

    /// Decides about one report at counter value `now`; an interval is
    /// `interval` counter ticks long.
    pub fn check(&mut self, now: u64, interval: u64) -> Verdict {
        match self.opened {
            Some(t) if now.wrapping_sub(t) < interval => {}
            _ => {
                self.opened = Some(now);
                self.printed = 0;
            }
        }
        if self.printed < self.burst {
            self.printed += 1;
            Verdict::Print { suppressed: core::mem::take(&mut self.suppressed) }
        } else {
            self.suppressed = self.suppressed.saturating_add(1);
            Verdict::Suppress
        }
    }

    /// The reports dropped and not yet owned up to (for the VM's last
    /// words when it stops); the count starts again from zero.
    pub fn take_suppressed(&mut self) -> u64 {
        core::mem::take(&mut self.suppressed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_printed_then_the_rest_counted() {
        let mut l = ReportLimit::new(3);
        for _ in 0..3 {
            assert_eq!(l.check(100, 1000), Verdict::Print { suppressed: 0 });
        }
        for _ in 0..3206 {
            assert_eq!(l.check(200, 1000), Verdict::Suppress);
        }
        // At stop: the count, once.
        assert_eq!(l.take_suppressed(), 3206);
        assert_eq!(l.take_suppressed(), 0);
    }

    #[test]
    fn the_next_interval_prints_again_and_owns_up_first() {
        let mut l = ReportLimit::new(2);
        assert_eq!(l.check(0, 1000), Verdict::Print { suppressed: 0 });
        assert_eq!(l.check(10, 1000), Verdict::Print { suppressed: 0 });
        assert_eq!(l.check(20, 1000), Verdict::Suppress);
        assert_eq!(l.check(999, 1000), Verdict::Suppress);
        // 1000 ticks after the interval opened, a new one opens.
        assert_eq!(l.check(1000, 1000), Verdict::Print { suppressed: 2 });
        assert_eq!(l.check(1001, 1000), Verdict::Print { suppressed: 0 });
        assert_eq!(l.check(1002, 1000), Verdict::Suppress);
        assert_eq!(l.take_suppressed(), 1);
    }

    #[test]
    fn a_quiet_vm_prints_every_report() {
        let mut l = ReportLimit::default();
        for k in 0..100u64 {
            // One report per interval never reaches the burst.
            assert_eq!(l.check(k * 5000, 5000), Verdict::Print { suppressed: 0 });
        }
        assert_eq!(l.take_suppressed(), 0);
    }
}

//! Pure verdicts of the hypervisor self-tests (`hyptest/irq.rs`):
//! the arithmetic and ordering checks, kept here so that they are tested on
//! the host like every other core.

/// A xorshift64 generator (Marsaglia 2003): reproducible "nonsense" for
/// the register fuzzing and priority shuffles.
#[derive(Clone, Copy, Debug)]
pub struct XorShift64(u64);

impl XorShift64 {
    /// A generator from `seed` (0 is replaced: xorshift never leaves 0).
    pub const fn new(seed: u64) -> Self {
        Self(if seed == 0 { 0x9E37_79B9_7F4A_7C15 } else { seed })
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// How a measured interrupt count compares with the rate asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateVerdict {
    /// Interrupts expected over the interval at `hz`.
    pub expected: u64,
    /// Largest accepted distance from `expected`.
    pub slack: u64,
    /// Whether the count is within `expected ± slack`.
    pub ok: bool,
}

/// Judges `count` interrupts over `interval` counter ticks of a counter
/// running at `freq` Hz, for a requested rate of `hz`, with a tolerance of
/// `percent` % of the expected count (at least one interrupt, for the
/// partial periods at both ends of the interval).
pub fn judge_rate(count: u64, interval: u64, freq: u64, hz: u64, percent: u64) -> RateVerdict {
    let expected = u128::from(interval) * u128::from(hz) / u128::from(freq.max(1));
    let expected = u64::try_from(expected).unwrap_or(u64::MAX);
    let slack = u64::try_from(u128::from(expected) * u128::from(percent) / 100).unwrap_or(u64::MAX).max(1);
    RateVerdict { expected, slack, ok: count.abs_diff(expected) <= slack }
}

/// Why a delivery order is wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderError {
    /// An INTID that was not made pending was delivered.
    Unexpected(u32),
    /// An INTID was delivered twice.
    Twice(u32),
    /// `later` (priority `later_priority`) came after `earlier`, which has
    /// a numerically equal or larger (less urgent) priority.
    OutOfOrder { earlier: u32, later: u32 },
    /// This many pending interrupts were never delivered.
    Missing(usize),
}

/// Checks that `delivered` holds every INTID of `pending` (INTID, priority)
/// exactly once, in strictly increasing priority value (most urgent
/// first), as a GIC must signal them (IHI 0069H §4.8, IHI 0048B §3.3).
pub fn check_priority_order(pending: &[(u32, u8)], delivered: &[u32]) -> Result<(), OrderError> {
    let priority = |intid: u32| pending.iter().find(|p| p.0 == intid).map(|p| p.1);
    for (i, &intid) in delivered.iter().enumerate() {
        let Some(p) = priority(intid) else {
            return Err(OrderError::Unexpected(intid));
        };
        if delivered[..i].contains(&intid) {
            return Err(OrderError::Twice(intid));
        }
        if i > 0 {
            let earlier = delivered[i - 1];
            if priority(earlier).is_some_and(|q| q >= p) {
                return Err(OrderError::OutOfOrder { earlier, later: intid });
            }
        }
    }
    let missing = pending.iter().filter(|p| !delivered.contains(&p.0)).count();
    if missing > 0 {
        return Err(OrderError::Missing(missing));
    }
    Ok(())
}

/// `n` distinct priorities, multiples of `step` from 0, in an order
/// shuffled by `rng` (Fisher-Yates). `n * step` must fit in a byte.
pub fn shuffled_priorities<const N: usize>(step: u8, rng: &mut XorShift64) -> [u8; N] {
    let mut p: [u8; N] = core::array::from_fn(|i| (i as u8).wrapping_mul(step));
    for i in (1..N).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        p.swap(i, j);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_tolerance() {
        // 62.5 MHz counter, 2 s, HZ = 100: 200 expected, ±20 at 10 %.
        let f = 62_500_000;
        assert_eq!(judge_rate(200, 2 * f, f, 100, 10), RateVerdict { expected: 200, slack: 20, ok: true });
        assert!(judge_rate(180, 2 * f, f, 100, 10).ok);
        assert!(judge_rate(220, 2 * f, f, 100, 10).ok);
        assert!(!judge_rate(179, 2 * f, f, 100, 10).ok);
        assert!(!judge_rate(221, 2 * f, f, 100, 10).ok);
        assert!(!judge_rate(0, 2 * f, f, 100, 10).ok);
        // Tiny expectations still allow one interrupt either way.
        assert_eq!(judge_rate(2, f / 100, f, 100, 10).slack, 1);
        // No overflow for big intervals and a zero frequency.
        assert!(judge_rate(u64::MAX, u64::MAX, 0, 1000, 10).expected > 0);
    }

    #[test]
    fn priority_order() {
        let pending = [(2, 0x40), (33, 0x10), (40, 0x30), (5, 0x20)];
        assert_eq!(check_priority_order(&pending, &[33, 5, 40, 2]), Ok(()));
        assert_eq!(
            check_priority_order(&pending, &[33, 40, 5, 2]),
            Err(OrderError::OutOfOrder { earlier: 40, later: 5 })
        );
        assert_eq!(check_priority_order(&pending, &[33, 5, 40]), Err(OrderError::Missing(1)));
        assert_eq!(check_priority_order(&pending, &[33, 33]), Err(OrderError::Twice(33)));
        assert_eq!(check_priority_order(&pending, &[33, 7]), Err(OrderError::Unexpected(7)));
        // Equal priorities are not "strictly by priority".
        let tie = [(2, 0x10), (3, 0x10)];
        assert!(check_priority_order(&tie, &[2, 3]).is_err());
    }

    #[test]
    fn shuffles_are_permutations() {
        let mut rng = XorShift64::new(42);
        let p: [u8; 16] = shuffled_priorities(8, &mut rng);
        let mut sorted = p;
        sorted.sort_unstable();
        assert_eq!(sorted, core::array::from_fn(|i| i as u8 * 8));
        assert_ne!(p, sorted, "seed 42 does shuffle");
        let mut zero = XorShift64::new(0);
        assert_ne!(zero.next_u64(), 0);
    }
}

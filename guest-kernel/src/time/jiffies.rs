//! HZ and jiffies. LKD ch. 11, "The Tick Rate: HZ" and "Jiffies":
//! `jiffies` counts ticks since boot; it wraps, so it is only compared with
//! `time_after` and friends, which subtract and look at the sign.

/// Default tick rate; the glue may choose another at boot.
pub const HZ_DEFAULT: u32 = 250;

/// `INITIAL_JIFFIES`: Linux starts jiffies five minutes before the 32-bit
/// wrap so that wrap bugs show up early.
pub const fn initial_jiffies(hz: u32) -> u64 {
    (0u32.wrapping_sub(300u32.wrapping_mul(hz))) as u64
}

/// `time_after(a, b)`: a is after b (`(long)((b) - (a)) < 0`).
pub const fn time_after(a: u64, b: u64) -> bool {
    (b.wrapping_sub(a) as i64) < 0
}
/// `time_before(a, b)`.
pub const fn time_before(a: u64, b: u64) -> bool {
    time_after(b, a)
}
/// `time_after_eq(a, b)`: `(long)((a) - (b)) >= 0`.
pub const fn time_after_eq(a: u64, b: u64) -> bool {
    (a.wrapping_sub(b) as i64) >= 0
}
/// `time_before_eq(a, b)`.
pub const fn time_before_eq(a: u64, b: u64) -> bool {
    time_after_eq(b, a)
}

/// The same comparisons on the 32-bit `unsigned long` of a 32-bit kernel,
/// which wraps after 2^32 ticks (49.7 days at HZ = 1000).
pub const fn time_after32(a: u32, b: u32) -> bool {
    (b.wrapping_sub(a) as i32) < 0
}
pub const fn time_before32(a: u32, b: u32) -> bool {
    time_after32(b, a)
}
pub const fn time_after_eq32(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) >= 0
}

/// `jiffies_64` and the tick rate chosen at boot.
#[derive(Clone, Copy, Debug)]
pub struct Jiffies {
    hz: u32,
    jiffies_64: u64,
}

impl Jiffies {
    pub const fn new(hz: u32) -> Self {
        Jiffies { hz, jiffies_64: initial_jiffies(hz) }
    }
    pub const fn hz(&self) -> u32 {
        self.hz
    }
    /// Nanoseconds per tick (`TICK_NSEC`).
    pub const fn tick_nsec(&self) -> u64 {
        1_000_000_000 / self.hz as u64
    }
    /// `get_jiffies_64`.
    pub const fn get(&self) -> u64 {
        self.jiffies_64
    }
    /// The 32-bit `jiffies` view (the low word, as the linker overlays it).
    pub const fn get32(&self) -> u32 {
        self.jiffies_64 as u32
    }
    /// `do_timer(ticks)`: called by the tick.
    pub fn do_timer(&mut self, ticks: u64) {
        self.jiffies_64 = self.jiffies_64.wrapping_add(ticks);
    }
    /// Set the counter (tests and resume).
    pub fn set(&mut self, j: u64) {
        self.jiffies_64 = j;
    }
    /// `msecs_to_jiffies`: rounds up, so a delay is never shorter than asked.
    pub const fn msecs_to_jiffies(&self, ms: u64) -> u64 {
        (ms * self.hz as u64).div_ceil(1000)
    }
    /// `usecs_to_jiffies`.
    pub const fn usecs_to_jiffies(&self, us: u64) -> u64 {
        (us * self.hz as u64).div_ceil(1_000_000)
    }
    /// `jiffies_to_msecs`.
    pub const fn jiffies_to_msecs(&self, j: u64) -> u64 {
        j * 1000 / self.hz as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparisons_survive_32bit_wrap() {
        let mut j = Jiffies::new(1000);
        let start = j.get32();
        assert_eq!(start, 0u32.wrapping_sub(300_000), "five minutes before the wrap");
        let timeout = start.wrapping_add(500_000);
        j.do_timer(400_000);
        let now = j.get32();
        assert!(now < start, "the 32-bit view has wrapped");
        assert!(time_after32(now, start));
        assert!(time_before32(now, timeout));
        assert!(!time_after_eq32(now, timeout));
        j.do_timer(100_000);
        assert!(time_after_eq32(j.get32(), timeout));
        // A naive comparison gets it wrong across the wrap.
        assert!(j.get32() < start);
    }

    #[test]
    fn comparisons_64bit() {
        assert!(time_after(5, 3));
        assert!(time_before(3, 5));
        assert!(time_after(2, u64::MAX - 1), "across the 64-bit wrap");
        assert!(time_after_eq(7, 7) && time_before_eq(7, 7));
    }

    #[test]
    fn conversions_round_up() {
        let j = Jiffies::new(250);
        assert_eq!(j.msecs_to_jiffies(1), 1);
        assert_eq!(j.msecs_to_jiffies(4), 1);
        assert_eq!(j.msecs_to_jiffies(5), 2);
        assert_eq!(j.msecs_to_jiffies(1000), 250);
        assert_eq!(j.jiffies_to_msecs(250), 1000);
        assert_eq!(j.tick_nsec(), 4_000_000);
        let j100 = Jiffies::new(100);
        assert_eq!(j100.usecs_to_jiffies(1), 1);
    }
}

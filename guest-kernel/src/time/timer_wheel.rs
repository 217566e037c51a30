//! Dynamic timers on a hierarchical timer wheel (kernel/time/timer.c).
//!
//! LKD ch. 11, "Timers": `add_timer`, `mod_timer`, `del_timer`; timers run
//! from the timer softirq after their expiry, never before. Linux's wheel has
//! LVL_DEPTH levels of 64 buckets; each level is 8 times coarser than the one
//! below, so a far timer is filed coarsely (and may fire up to one bucket
//! granularity late) and nothing has to cascade.

use alloc::vec;
use alloc::vec::Vec;

use super::jiffies::time_after_eq;

pub const LVL_CLK_SHIFT: u32 = 3;
pub const LVL_CLK_MASK: u64 = (1 << LVL_CLK_SHIFT) - 1;
pub const LVL_BITS: u32 = 6;
pub const LVL_SIZE: usize = 1 << LVL_BITS;
pub const LVL_MASK: u64 = LVL_SIZE as u64 - 1;
/// Nine levels (HZ > 100).
pub const LVL_DEPTH: usize = 9;
pub const WHEEL_SIZE: usize = LVL_SIZE * LVL_DEPTH;

/// `LVL_SHIFT(n)`.
const fn lvl_shift(n: usize) -> u32 {
    n as u32 * LVL_CLK_SHIFT
}
/// `LVL_GRAN(n)`: ticks per bucket at level n.
pub const fn lvl_gran(n: usize) -> u64 {
    1 << lvl_shift(n)
}
/// `LVL_START(n)`: the smallest delta filed at level n.
const fn lvl_start(n: usize) -> u64 {
    (LVL_SIZE as u64 - 1) << ((n as u32 - 1) * LVL_CLK_SHIFT)
}
const WHEEL_TIMEOUT_CUTOFF: u64 = lvl_start(LVL_DEPTH);
const WHEEL_TIMEOUT_MAX: u64 = WHEEL_TIMEOUT_CUTOFF - lvl_gran(LVL_DEPTH - 1);

/// Handle of a `timer_list`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimerId(pub u32);

/// `struct timer_list`: `function` is the callback the caller runs when it
/// expires (a typed function pointer in the kernel; anything `Copy` here).
#[derive(Clone, Copy, Debug)]
pub struct TimerList<F> {
    pub expires: u64,
    pub function: F,
    pub data: u64,
    /// Bucket index while pending.
    bucket: Option<usize>,
}

/// An expired timer, for the caller to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expired<F> {
    pub timer: TimerId,
    pub function: F,
    pub data: u64,
}

/// `struct timer_base` (one per CPU).
pub struct TimerWheel<F> {
    /// The next jiffy to process.
    pub clk: u64,
    vectors: Vec<Vec<TimerId>>,
    pending_map: [u64; WHEEL_SIZE / 64],
    timers: Vec<Option<TimerList<F>>>,
    free: Vec<u32>,
}

/// `calc_index`: round up to the level's granularity (never early).
fn calc_index(expires: u64, lvl: usize) -> usize {
    let e = (expires >> lvl_shift(lvl)) + 1;
    lvl * LVL_SIZE + (e & LVL_MASK) as usize
}

/// `calc_wheel_index`: the level is chosen by how far away the expiry is.
fn calc_wheel_index(expires: u64, clk: u64) -> usize {
    let delta = expires.wrapping_sub(clk) as i64;
    if delta < 0 {
        return (clk & LVL_MASK) as usize;
    }
    let delta = delta as u64;
    for lvl in 0..LVL_DEPTH - 1 {
        if delta < lvl_start(lvl + 1) {
            return calc_index(expires, lvl);
        }
    }
    let expires = if delta >= WHEEL_TIMEOUT_CUTOFF { clk + WHEEL_TIMEOUT_MAX } else { expires };
    calc_index(expires, LVL_DEPTH - 1)
}

impl<F: Copy> TimerWheel<F> {
    pub fn new(jiffies: u64) -> Self {
        TimerWheel {
            clk: jiffies,
            vectors: vec![Vec::new(); WHEEL_SIZE],
            pending_map: [0; WHEEL_SIZE / 64],
            timers: Vec::new(),
            free: Vec::new(),
        }
    }

    /// `timer_setup`: a new, inactive timer.
    pub fn timer_setup(&mut self, function: F, data: u64) -> TimerId {
        let t = TimerList { expires: 0, function, data, bucket: None };
        if let Some(i) = self.free.pop() {
            self.timers[i as usize] = Some(t);
            TimerId(i)
        } else {
            self.timers.push(Some(t));
            TimerId(self.timers.len() as u32 - 1)
        }
    }

    /// Changes the data a timer's callback gets (e.g. to its own id, known
    /// only once `timer_setup` returns).
    pub fn set_data(&mut self, id: TimerId, data: u64) {
        if let Some(t) = self.timers[id.0 as usize].as_mut() {
            t.data = data;
        }
    }

    /// Forget a timer (deactivating it first).
    pub fn destroy_timer(&mut self, id: TimerId) {
        self.del_timer(id);
        self.timers[id.0 as usize] = None;
        self.free.push(id.0);
    }

    pub fn timer(&self, id: TimerId) -> &TimerList<F> {
        self.timers[id.0 as usize].as_ref().expect("destroyed timer")
    }

    /// `timer_pending`.
    pub fn timer_pending(&self, id: TimerId) -> bool {
        self.timer(id).bucket.is_some()
    }

    fn enqueue(&mut self, id: TimerId, idx: usize) {
        self.vectors[idx].push(id);
        self.pending_map[idx / 64] |= 1 << (idx % 64);
        self.timers[id.0 as usize].as_mut().expect("destroyed timer").bucket = Some(idx);
    }

    /// `detach_if_pending`.
    fn detach(&mut self, id: TimerId) -> bool {
        let t = self.timers[id.0 as usize].as_mut().expect("destroyed timer");
        let Some(idx) = t.bucket.take() else { return false };
        let v = &mut self.vectors[idx];
        let pos = v.iter().position(|&x| x == id).expect("timer in its bucket");
        v.swap_remove(pos);
        if v.is_empty() {
            self.pending_map[idx / 64] &= !(1 << (idx % 64));
        }
        true
    }

    /// `add_timer`: arm an inactive timer.
    pub fn add_timer(&mut self, id: TimerId, expires: u64) {
        debug_assert!(!self.timer_pending(id), "add_timer on a pending timer");
        self.mod_timer(id, expires);
    }

    /// `mod_timer`: (re)arm; returns whether it was pending.
    pub fn mod_timer(&mut self, id: TimerId, expires: u64) -> bool {
        let was = self.detach(id);
        self.timers[id.0 as usize].as_mut().expect("destroyed timer").expires = expires;
        let idx = calc_wheel_index(expires, self.clk);
        self.enqueue(id, idx);
        was
    }

    /// `del_timer`: deactivate; returns whether it was pending.
    pub fn del_timer(&mut self, id: TimerId) -> bool {
        self.detach(id)
    }

    /// `__run_timers`: process every jiffy up to `jiffies`, level by level
    /// (`collect_expired_timers`), and return the expired timers in order.
    pub fn run_timers(&mut self, jiffies: u64) -> Vec<Expired<F>> {
        let mut out = Vec::new();
        while time_after_eq(jiffies, self.clk) {
            let mut clk = self.clk;
            for lvl in 0..LVL_DEPTH {
                let idx = lvl * LVL_SIZE + (clk & LVL_MASK) as usize;
                if self.pending_map[idx / 64] & (1 << (idx % 64)) != 0 {
                    self.pending_map[idx / 64] &= !(1 << (idx % 64));
                    for id in core::mem::take(&mut self.vectors[idx]) {
                        let t = self.timers[id.0 as usize].as_mut().expect("destroyed timer");
                        t.bucket = None;
                        out.push(Expired { timer: id, function: t.function, data: t.data });
                    }
                }
                // The next level only turns over when this one wraps.
                if clk & LVL_CLK_MASK != 0 {
                    break;
                }
                clk >>= LVL_CLK_SHIFT;
            }
            self.clk = self.clk.wrapping_add(1);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;

    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn near_timer_fires_next_tick_after_expiry() {
        let mut w = TimerWheel::new(1000);
        let t = w.timer_setup(1, 42);
        w.add_timer(t, 1005);
        assert!(w.run_timers(1005).is_empty());
        let e = w.run_timers(1006);
        assert_eq!(e, [Expired { timer: t, function: 1, data: 42 }]);
        assert!(!w.timer_pending(t));
        // Already expired when armed: fires on the next run.
        w.add_timer(t, 900);
        assert_eq!(w.run_timers(1007).len(), 1);
    }

    #[test]
    fn del_and_mod_timer() {
        let mut w = TimerWheel::new(0);
        let a = w.timer_setup(1, 0);
        let b = w.timer_setup(2, 0);
        w.add_timer(a, 10);
        w.add_timer(b, 20);
        assert!(w.del_timer(a));
        assert!(!w.del_timer(a));
        assert!(w.mod_timer(b, 5));
        let e: Vec<_> = w.run_timers(30).iter().map(|e| e.timer).collect();
        assert_eq!(e, [b]);
    }

    /// Random timers, re-arms and deletions against a plain map of expiry
    /// times: every live timer fires exactly once, never before its expiry
    /// and no later than its level's granularity after it.
    #[test]
    fn wheel_matches_reference_model() {
        let mut rng = XorShift(0xdead_beef_1234_5678);
        let start = super::super::jiffies::initial_jiffies(1000) - 5_000;
        let mut w = TimerWheel::new(start);
        // id -> (expires, armed_at)
        let mut model: BTreeMap<TimerId, (u64, u64)> = BTreeMap::new();
        let mut ids = Vec::new();
        for i in 0..400 {
            ids.push(w.timer_setup(i, i as u64));
        }
        let mut now = start;
        for _ in 0..30_000 {
            let r = rng.next();
            let id = ids[(r % ids.len() as u64) as usize];
            match (r >> 20) % 8 {
                0..=2 => {
                    // Mostly near timers, some far ones (up to ~2^20 ticks).
                    let delta = match (r >> 30) % 4 {
                        0 => (r >> 40) % 64,
                        1 => (r >> 40) % 4096,
                        2 => (r >> 40) % 300_000,
                        _ => (r >> 40) % (1 << 20),
                    };
                    w.mod_timer(id, now + delta);
                    model.insert(id, (now + delta, now));
                }
                3 => {
                    assert_eq!(w.del_timer(id), model.remove(&id).is_some());
                }
                _ => {
                    now += (r >> 40) % 50;
                    for e in w.run_timers(now) {
                        let (expires, armed) = model.remove(&e.timer).expect("fired twice or deleted");
                        assert!(now > expires, "fired early: {expires} at {now}");
                        let delta = expires - armed;
                        let lvl = (0..LVL_DEPTH - 1).find(|&l| delta < lvl_start(l + 1)).unwrap_or(LVL_DEPTH - 1);
                        // Late by at most one bucket, plus the ticks this run covered.
                        assert!(now - expires <= lvl_gran(lvl) + 50, "late: {expires} at {now}, lvl {lvl}");
                    }
                    // Everything past its expiry plus granularity has fired.
                    for (_, &(expires, armed)) in model.iter() {
                        let delta = expires - armed;
                        let lvl = (0..LVL_DEPTH - 1).find(|&l| delta < lvl_start(l + 1)).unwrap_or(LVL_DEPTH - 1);
                        assert!(now <= expires + lvl_gran(lvl), "missed: {expires} at {now}");
                    }
                }
            }
        }
        // Drain: all remaining timers fire by their bound.
        let horizon = model.values().map(|&(e, _)| e).max().unwrap_or(now) + lvl_gran(LVL_DEPTH - 1);
        let fired = w.run_timers(horizon).len();
        assert_eq!(fired, model.len());
    }
}

//! The pid allocator: a bitmap of pid_max bits, allocated cyclically.
//!
//! LKD ch. 3, "Process Identification": pid_max defaults to 32768.
//! kernel/pid.c `alloc_pid`: allocation continues after the last pid handed
//! out; after wrapping it restarts at RESERVED_PIDS (300), leaving the low
//! pids to system daemons. No free pid → -EAGAIN.

use alloc::vec;
use alloc::vec::Vec;

use super::{Errno, Pid};

/// `PID_MAX_DEFAULT`.
pub const PID_MAX_DEFAULT: Pid = 0x8000;
/// `PID_MAX_LIMIT` on 64-bit.
pub const PID_MAX_LIMIT: Pid = 4 * 1024 * 1024;
/// `RESERVED_PIDS`: the first pid used after a wrap.
pub const RESERVED_PIDS: Pid = 300;

/// `struct pidmap` (one level: a bitmap of all pids below pid_max).
pub struct PidMap {
    bits: Vec<u64>,
    pid_max: Pid,
    last_pid: Pid,
    nr_free: usize,
}

impl PidMap {
    /// A map for pids 0..pid_max (pid_max must exceed RESERVED_PIDS).
    pub fn new(pid_max: Pid) -> Self {
        assert!(pid_max > RESERVED_PIDS && pid_max <= PID_MAX_LIMIT);
        let words = (pid_max as usize).div_ceil(64);
        PidMap { bits: vec![0; words], pid_max, last_pid: 0, nr_free: pid_max as usize - 1 }
    }

    pub fn pid_max(&self) -> Pid {
        self.pid_max
    }
    pub fn nr_free(&self) -> usize {
        self.nr_free
    }

    pub fn is_allocated(&self, pid: Pid) -> bool {
        pid > 0 && pid < self.pid_max && self.bits[pid as usize / 64] & (1 << (pid % 64)) != 0
    }

    fn try_take(&mut self, pid: Pid) -> bool {
        let (w, b) = (pid as usize / 64, pid % 64);
        if self.bits[w] & (1 << b) != 0 {
            return false;
        }
        self.bits[w] |= 1 << b;
        self.nr_free -= 1;
        self.last_pid = pid;
        true
    }

    /// `alloc_pidmap`: the next free pid after the last one, wrapping to
    /// RESERVED_PIDS; -EAGAIN when all are taken.
    pub fn alloc_pid(&mut self) -> Result<Pid, Errno> {
        let mut start = self.last_pid + 1;
        if start >= self.pid_max {
            start = RESERVED_PIDS;
        }
        let forward = start..self.pid_max;
        let wrapped = RESERVED_PIDS.min(start)..start;
        for pid in forward.chain(wrapped) {
            // Pids below RESERVED_PIDS are only handed out before the first wrap.
            if self.try_take(pid) {
                return Ok(pid);
            }
        }
        Err(Errno::EAGAIN)
    }

    /// `free_pid`.
    pub fn free_pid(&mut self, pid: Pid) {
        assert!(self.is_allocated(pid), "freeing unallocated pid {pid}");
        self.bits[pid as usize / 64] &= !(1 << (pid % 64));
        self.nr_free += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_then_wrap_to_reserved() {
        let mut m = PidMap::new(310);
        for want in 1..310 {
            assert_eq!(m.alloc_pid(), Ok(want));
        }
        assert_eq!(m.alloc_pid(), Err(Errno::EAGAIN), "exhausted");
        m.free_pid(5);
        m.free_pid(305);
        m.free_pid(301);
        // Wraps, skips the low pids' region start... 301 is the first free one
        // at or after RESERVED_PIDS.
        assert_eq!(m.alloc_pid(), Ok(301));
        assert_eq!(m.alloc_pid(), Ok(305));
        // Pid 5 is below RESERVED_PIDS: not reused after a wrap.
        assert_eq!(m.alloc_pid(), Err(Errno::EAGAIN));
    }

    #[test]
    fn continues_after_last_pid_not_lowest_free() {
        let mut m = PidMap::new(PID_MAX_DEFAULT);
        for _ in 0..10 {
            m.alloc_pid().unwrap();
        }
        m.free_pid(3);
        assert_eq!(m.alloc_pid(), Ok(11));
        assert!(!m.is_allocated(3));
    }

    #[test]
    fn random_alloc_free_never_duplicates() {
        let mut m = PidMap::new(400);
        let mut live = alloc::collections::BTreeSet::new();
        let mut x = 0x1234_5678u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if !x.is_multiple_of(3) {
                match m.alloc_pid() {
                    Ok(p) => assert!(live.insert(p), "pid {p} handed out twice"),
                    Err(_) => assert!(live.len() >= 399 - RESERVED_PIDS as usize),
                }
            } else if let Some(&p) = live.iter().nth((x as usize / 7) % live.len().max(1)) {
                live.remove(&p);
                m.free_pid(p);
            }
        }
    }
}

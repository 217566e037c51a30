//! Resource limits (`struct rlimit`, Linux kernel/sys.c `do_prlimit`;
//! ULK ch. 3 "Process Resource Limits"): a soft and a hard limit per
//! resource, per process, inherited at fork. A soft limit above the hard
//! one is EINVAL; raising a hard limit needs root (EPERM). The kernel
//! enforces RLIMIT_NPROC-like limits elsewhere (the pids cgroup,
//! `max_threads`); the table here is what `getrlimit`/`prlimit64` report
//! and what programs such as a shell's `ulimit` set.

use super::Errno;

/// `RLIM_INFINITY`.
pub const RLIM_INFINITY: u64 = u64::MAX;
/// `RLIM_NLIMITS`.
pub const RLIM_NLIMITS: usize = 16;
/// Resource numbers used here.
pub const RLIMIT_STACK: usize = 3;
pub const RLIMIT_CORE: usize = 4;
pub const RLIMIT_NOFILE: usize = 7;

/// `struct rlimit64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rlimit {
    pub cur: u64,
    pub max: u64,
}

/// A process's limits (`signal_struct.rlim`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rlimits(pub [Rlimit; RLIM_NLIMITS]);

impl Default for Rlimits {
    /// `INIT_RLIMITS` (include/asm-generic/resource.h): 8 MiB of stack,
    /// no core files, 1024/4096 open files, the rest unlimited.
    fn default() -> Self {
        let mut r = [Rlimit { cur: RLIM_INFINITY, max: RLIM_INFINITY }; RLIM_NLIMITS];
        r[RLIMIT_STACK] = Rlimit { cur: 8 << 20, max: RLIM_INFINITY };
        r[RLIMIT_CORE] = Rlimit { cur: 0, max: RLIM_INFINITY };
        r[RLIMIT_NOFILE] = Rlimit { cur: 1024, max: 4096 };
        Rlimits(r)
    }
}

impl Rlimits {
    /// `do_prlimit`: the old limit of `resource`, after setting `new` if
    /// given (by a task that is root or not).
    pub fn prlimit(&mut self, resource: usize, new: Option<Rlimit>, root: bool) -> Result<Rlimit, Errno> {
        let old = *self.0.get(resource).ok_or(Errno::EINVAL)?;
        if let Some(n) = new {
            if n.cur > n.max {
                return Err(Errno::EINVAL);
            }
            if n.max > old.max && !root {
                return Err(Errno::EPERM);
            }
            self.0[resource] = n;
        }
        Ok(old)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_follow_do_prlimit() {
        let mut r = Rlimits::default();
        let nofile = r.prlimit(RLIMIT_NOFILE, None, false).unwrap();
        assert_eq!(nofile, Rlimit { cur: 1024, max: 4096 });
        assert_eq!(r.prlimit(RLIMIT_NOFILE, Some(Rlimit { cur: 5000, max: 4096 }), true), Err(Errno::EINVAL));
        assert_eq!(r.prlimit(RLIMIT_NOFILE, Some(Rlimit { cur: 10, max: 8000 }), false), Err(Errno::EPERM));
        r.prlimit(RLIMIT_NOFILE, Some(Rlimit { cur: 10, max: 100 }), false).unwrap();
        assert_eq!(r.prlimit(RLIMIT_NOFILE, Some(Rlimit { cur: 10, max: 200 }), false), Err(Errno::EPERM));
        assert_eq!(r.prlimit(RLIM_NLIMITS, None, true), Err(Errno::EINVAL));
    }
}

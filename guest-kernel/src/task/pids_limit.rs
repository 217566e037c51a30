//! The cgroup pids controller (kernel/cgroup/pids.c).
//!
//! 《Linux内核深度解析》§2.5.1: fork and clone fail if the new task's cgroup,
//! or any ancestor up to the root, already holds as many tasks as its limit;
//! the charge is made at fork and dropped when the task is released.

use alloc::vec::Vec;

use super::Errno;

/// One pids cgroup.
#[derive(Clone, Debug)]
pub struct PidsCgroup {
    pub parent: Option<usize>,
    /// `pids.max`; `None` is "max".
    pub limit: Option<u64>,
    /// `pids.current`.
    pub counter: u64,
    /// `pids.events` max: forks refused here.
    pub events_max: u64,
}

/// The hierarchy; group 0 is the root (unlimited).
pub struct PidsHierarchy {
    groups: Vec<PidsCgroup>,
}

impl Default for PidsHierarchy {
    fn default() -> Self {
        Self::new()
    }
}

impl PidsHierarchy {
    pub fn new() -> Self {
        PidsHierarchy { groups: alloc::vec![PidsCgroup { parent: None, limit: None, counter: 0, events_max: 0 }] }
    }

    /// Create a child group with a limit; returns its id.
    pub fn create(&mut self, parent: usize, limit: Option<u64>) -> usize {
        assert!(parent < self.groups.len());
        self.groups.push(PidsCgroup { parent: Some(parent), limit, counter: 0, events_max: 0 });
        self.groups.len() - 1
    }

    pub fn set_limit(&mut self, cg: usize, limit: Option<u64>) {
        self.groups[cg].limit = limit;
    }

    pub fn get(&self, cg: usize) -> &PidsCgroup {
        &self.groups[cg]
    }

    /// `pids_try_charge`: charge every level up to the root; if any level
    /// would pass its limit, revert and refuse with -EAGAIN.
    pub fn try_charge(&mut self, cg: usize) -> Result<(), Errno> {
        let mut cur = Some(cg);
        while let Some(c) = cur {
            let g = &mut self.groups[c];
            let new = g.counter + 1;
            if g.limit.is_some_and(|l| new > l) {
                g.events_max += 1;
                // Revert the levels already charged.
                let mut r = Some(cg);
                while let Some(x) = r {
                    if x == c {
                        break;
                    }
                    self.groups[x].counter -= 1;
                    r = self.groups[x].parent;
                }
                return Err(Errno::EAGAIN);
            }
            g.counter = new;
            cur = g.parent;
        }
        Ok(())
    }

    /// `pids_uncharge`.
    pub fn uncharge(&mut self, cg: usize) {
        let mut cur = Some(cg);
        while let Some(c) = cur {
            self.groups[c].counter -= 1;
            cur = self.groups[c].parent;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ancestor_limit_applies_and_reverts() {
        let mut h = PidsHierarchy::new();
        let a = h.create(0, Some(3));
        let b = h.create(a, None);
        let c = h.create(a, Some(1));
        assert_eq!(h.try_charge(b), Ok(()));
        assert_eq!(h.try_charge(c), Ok(()));
        assert_eq!(h.try_charge(c), Err(Errno::EAGAIN));
        assert_eq!(h.try_charge(b), Ok(()));
        assert_eq!(h.try_charge(b), Err(Errno::EAGAIN), "a is full");
        assert_eq!(h.get(b).counter, 2);
        assert_eq!(h.get(a).counter, 3);
        assert_eq!(h.get(0).counter, 3);
        h.uncharge(c);
        assert_eq!(h.try_charge(b), Ok(()));
        assert_eq!(h.get(a).events_max, 1);
    }
}

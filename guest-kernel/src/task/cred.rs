//! Credentials (`struct cred`, Linux kernel/cred.c and kernel/sys.c): the
//! real, effective, saved and filesystem user and group ids and the
//! supplementary groups of a task, and the rules by which the `set*id`
//! calls change them. There are no capabilities here beyond root's:
//! an effective uid of 0 stands for CAP_SETUID, CAP_SETGID and CAP_KILL,
//! as it does on Linux without a capability-aware policy.
//! ULK ch. 20 "Process Credentials and Capabilities".

use alloc::vec::Vec;

use super::Errno;

/// `NGROUPS_MAX`.
pub const NGROUPS_MAX: usize = 65536;

/// `struct cred`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cred {
    pub uid: u32,
    pub euid: u32,
    pub suid: u32,
    pub fsuid: u32,
    pub gid: u32,
    pub egid: u32,
    pub sgid: u32,
    pub fsgid: u32,
    /// Supplementary groups, sorted (`groups_sort`).
    pub groups: Vec<u32>,
}

/// `(uid_t)-1` / `(gid_t)-1`: "leave this one as it is".
const KEEP: u32 = u32::MAX;

impl Cred {
    /// Root's credentials: init's, and every task's until one changes them.
    pub fn root() -> Self {
        Cred::default()
    }

    /// An effective uid of 0 (`capable(CAP_SETUID)` and friends).
    pub fn is_root(&self) -> bool {
        self.euid == 0
    }

    /// The user ids, to change through [`Ids`]; `is_root` is read first.
    fn uids(&mut self) -> Ids<'_> {
        Ids { real: &mut self.uid, eff: &mut self.euid, saved: &mut self.suid, fs: &mut self.fsuid }
    }

    /// The group ids, as [`Cred::uids`].
    fn gids(&mut self) -> Ids<'_> {
        Ids { real: &mut self.gid, eff: &mut self.egid, saved: &mut self.sgid, fs: &mut self.fsgid }
    }

    /// `setresuid(ruid, euid, suid)`: without privilege each new id must be
    /// one of the current real, effective or saved uids. fsuid follows the
    /// effective uid.
    pub fn setresuid(&mut self, r: u32, e: u32, s: u32) -> Result<(), Errno> {
        let root = self.is_root();
        self.uids().setres(root, r, e, s)
    }

    /// `setresgid`: as [`Cred::setresuid`] for the group ids.
    pub fn setresgid(&mut self, r: u32, e: u32, s: u32) -> Result<(), Errno> {
        let root = self.is_root();
        self.gids().setres(root, r, e, s)
    }

    /// `setreuid(ruid, euid)`: the real uid may become the effective one,
    /// the effective one the real or saved one; the saved uid becomes the
    /// new effective uid when the real one is set or the effective one
    /// changes to something other than the old real uid.
    pub fn setreuid(&mut self, r: u32, e: u32) -> Result<(), Errno> {
        let root = self.is_root();
        self.uids().setre(root, r, e)
    }

    /// `setregid`: as [`Cred::setreuid`] for the group ids.
    pub fn setregid(&mut self, r: u32, e: u32) -> Result<(), Errno> {
        let root = self.is_root();
        self.gids().setre(root, r, e)
    }

    /// `setuid(uid)`: root sets all three; anyone else only the effective
    /// uid, to the real or saved one.
    pub fn setuid(&mut self, u: u32) -> Result<(), Errno> {
        let root = self.is_root();
        self.uids().set(root, u)
    }

    /// `setgid(gid)`: as [`Cred::setuid`] for the group ids.
    pub fn setgid(&mut self, g: u32) -> Result<(), Errno> {
        let root = self.is_root();
        self.gids().set(root, g)
    }

    /// `setfsuid(uid)`: the old fsuid, always; changed only to one of the
    /// other uids (or anything, by root).
    pub fn setfsuid(&mut self, u: u32) -> u32 {
        let root = self.is_root();
        self.uids().setfs(root, u)
    }

    /// `setfsgid(gid)`: as [`Cred::setfsuid`].
    pub fn setfsgid(&mut self, g: u32) -> u32 {
        let root = self.is_root();
        self.gids().setfs(root, g)
    }

    /// `setgroups`: root only; at most NGROUPS_MAX.
    pub fn setgroups(&mut self, mut groups: Vec<u32>) -> Result<(), Errno> {
        if !self.is_root() {
            return Err(Errno::EPERM);
        }
        if groups.len() > NGROUPS_MAX {
            return Err(Errno::EINVAL);
        }
        groups.sort_unstable();
        self.groups = groups;
        Ok(())
    }

    /// `kill_ok_by_cred`: may a task with these credentials signal one
    /// with `target`'s? Root may; otherwise the sender's real or effective
    /// uid must be the target's real or saved uid.
    pub fn may_signal(&self, target: &Cred) -> bool {
        self.is_root()
            || self.euid == target.suid
            || self.euid == target.uid
            || self.uid == target.suid
            || self.uid == target.uid
    }
}

fn keep_or(field: &mut u32, v: u32) {
    if v != KEEP {
        *field = v;
    }
}

/// One kind of id of a [`Cred`], user or group: the rules of the `set*id`
/// calls are the same for both (kernel/sys.c), with `root` standing for
/// CAP_SETUID / CAP_SETGID.
struct Ids<'a> {
    real: &'a mut u32,
    eff: &'a mut u32,
    saved: &'a mut u32,
    fs: &'a mut u32,
}

impl Ids<'_> {
    fn setres(self, root: bool, r: u32, e: u32, s: u32) -> Result<(), Errno> {
        if !root {
            let ok = |v: u32| v == KEEP || v == *self.real || v == *self.eff || v == *self.saved;
            if !(ok(r) && ok(e) && ok(s)) {
                return Err(Errno::EPERM);
            }
        }
        keep_or(self.real, r);
        keep_or(self.eff, e);
        keep_or(self.saved, s);
        *self.fs = *self.eff;
        Ok(())
    }

    fn setre(self, root: bool, r: u32, e: u32) -> Result<(), Errno> {
        let (old_real, old_eff, old_saved) = (*self.real, *self.eff, *self.saved);
        if !root {
            if r != KEEP && r != old_real && r != old_eff {
                return Err(Errno::EPERM);
            }
            if e != KEEP && e != old_real && e != old_eff && e != old_saved {
                return Err(Errno::EPERM);
            }
        }
        keep_or(self.real, r);
        keep_or(self.eff, e);
        if r != KEEP || (e != KEEP && e != old_real) {
            *self.saved = *self.eff;
        }
        *self.fs = *self.eff;
        Ok(())
    }

    fn set(self, root: bool, v: u32) -> Result<(), Errno> {
        if v == KEEP {
            return Err(Errno::EINVAL);
        }
        if root {
            (*self.real, *self.saved) = (v, v);
        } else if v != *self.real && v != *self.saved {
            return Err(Errno::EPERM);
        }
        *self.eff = v;
        *self.fs = v;
        Ok(())
    }

    fn setfs(self, root: bool, v: u32) -> u32 {
        let old = *self.fs;
        if v != KEEP && (root || [*self.real, *self.eff, *self.saved, *self.fs].contains(&v)) {
            *self.fs = v;
        }
        old
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_drops_to_a_user_and_cannot_get_back() {
        let mut c = Cred::root();
        c.setresuid(1000, 1000, 1000).unwrap();
        assert_eq!((c.uid, c.euid, c.suid, c.fsuid), (1000, 1000, 1000, 1000));
        assert_eq!(c.setuid(0), Err(Errno::EPERM));
        assert_eq!(c.setresuid(KEEP, 0, KEEP), Err(Errno::EPERM));
        assert_eq!(c.setgroups(alloc::vec![1]), Err(Errno::EPERM));
    }

    #[test]
    fn a_saved_uid_lets_a_setuid_program_switch_back_and_forth() {
        let mut c = Cred { uid: 1000, euid: 0, suid: 0, ..Cred::default() };
        c.setresuid(KEEP, 1000, KEEP).unwrap();
        assert!(!c.is_root());
        c.setresuid(KEEP, 0, KEEP).unwrap();
        assert_eq!(c.euid, 0, "back through the saved uid");
        // setreuid(-1, 1000): euid != old ruid is false, so suid stays 0.
        c.setreuid(KEEP, 1000).unwrap();
        assert_eq!((c.uid, c.euid, c.suid), (1000, 1000, 0));
        // setreuid with a real uid: the saved uid follows the effective one.
        c.setreuid(1000, KEEP).unwrap();
        assert_eq!(c.suid, 1000);
        assert_eq!(c.setreuid(KEEP, 0), Err(Errno::EPERM));
    }

    #[test]
    fn setfsuid_reports_the_old_value_and_refuses_silently() {
        let mut c = Cred { uid: 5, euid: 5, suid: 5, fsuid: 5, ..Cred::default() };
        assert_eq!(c.setfsuid(7), 5);
        assert_eq!(c.fsuid, 5);
        assert_eq!(c.setfsuid(KEEP), 5);
    }

    #[test]
    fn kill_permission_follows_real_and_saved_uids() {
        let a = Cred { uid: 1, euid: 1, suid: 1, ..Cred::default() };
        let b = Cred { uid: 2, euid: 2, suid: 2, ..Cred::default() };
        let b_setuid_from_1 = Cred { uid: 1, euid: 2, suid: 2, ..Cred::default() };
        assert!(!a.may_signal(&b));
        assert!(a.may_signal(&b_setuid_from_1));
        assert!(Cred::root().may_signal(&b));
    }
}

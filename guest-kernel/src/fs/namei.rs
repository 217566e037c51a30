//! The path walk (ULK ch. 12, "Pathname Lookup"; Linux fs/namei.c
//! `link_path_walk`, `walk_component`, `follow_dotdot`, `pick_link`,
//! `filename_parentat`): a path is read component by component from the
//! root (absolute) or a start directory (the working directory or a
//! dirfd); `.` stays, `..` climbs but never above the process's root and
//! crosses back out of a mounted filesystem; a symlink is followed
//! (relative to the directory holding it) except as the last component
//! when the caller says not to, and at most [`MAXSYMLINKS`] times per
//! walk (then ELOOP). A component that must be a directory and is not
//! gives ENOTDIR, a missing one ENOENT, a name over [`NAME_MAX`] bytes or
//! a path of [`PATH_MAX`] ENAMETOOLONG; a trailing slash makes the last
//! component a directory (ENOTDIR otherwise, after following a symlink).

use alloc::vec::Vec;

use super::Vfs;
use super::inode::{Ino, InodeKind};
use crate::mm::Errno;

/// Symlinks one walk may follow (`MAXSYMLINKS`).
pub const MAXSYMLINKS: u32 = 40;
/// Longest name of one component (`NAME_MAX`).
pub const NAME_MAX: usize = 255;
/// A path must be shorter than this, its NUL included (`PATH_MAX`).
pub const PATH_MAX: usize = 4096;

/// Where a walk starts: the process's root (for absolute paths and as
/// the ceiling of `..`) and the directory relative paths start from, and
/// who walks (whose search permission each directory checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct At {
    pub root: Ino,
    pub dir: Ino,
    pub who: Who,
}

impl At {
    /// A walk by root (the kernel's own: unpacking the initramfs, /dev).
    pub const fn root(root: Ino, dir: Ino) -> At {
        At { root, dir, who: Who::ROOT }
    }
}

/// The credentials a file-system check uses (`current_fsuid()`,
/// `current_fsgid()`, `in_group_p`): the fs ids and up to
/// [`Who::GROUPS`] supplementary groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Who {
    pub uid: u32,
    pub gid: u32,
    groups: [u32; Who::GROUPS],
    ngroups: usize,
}

/// `MAY_EXEC`, `MAY_WRITE`, `MAY_READ` (the `rwx` bits of a mode).
pub const MAY_EXEC: u32 = 1;
pub const MAY_WRITE: u32 = 2;
pub const MAY_READ: u32 = 4;

impl Who {
    /// Supplementary groups kept (the first ones of the task's).
    pub const GROUPS: usize = 8;
    /// Root: uid and gid 0.
    pub const ROOT: Who = Who { uid: 0, gid: 0, groups: [0; Who::GROUPS], ngroups: 0 };

    pub fn new(uid: u32, gid: u32, groups: &[u32]) -> Who {
        let mut g = [0; Who::GROUPS];
        let n = groups.len().min(Who::GROUPS);
        g[..n].copy_from_slice(&groups[..n]);
        Who { uid, gid, groups: g, ngroups: n }
    }

    /// `in_group_p`: `gid` is the fs gid or a supplementary group.
    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups[..self.ngroups].contains(&gid)
    }

    /// `generic_permission` + `capable_wrt_inode_uidgid`: may `self` do
    /// `mask` (MAY_*) to a file of `mode`, `uid`, `gid`? The owner's bits
    /// for the owner, the group's for a member, the others' otherwise;
    /// root may do anything but execute a file no one may execute
    /// (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH).
    pub fn may(&self, mode: u32, uid: u32, gid: u32, mask: u32) -> bool {
        let is_dir = mode & 0o170000 == 0o040000;
        if self.uid == 0 {
            return mask & MAY_EXEC == 0 || is_dir || mode & 0o111 != 0;
        }
        let bits = if self.uid == uid {
            mode >> 6
        } else if self.in_group(gid) {
            mode >> 3
        } else {
            mode
        } & 7;
        bits & mask == mask
    }
}

/// What the last component is (`LAST_NORM`, `LAST_DOT`, `LAST_DOTDOT`,
/// `LAST_ROOT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LastType {
    Norm,
    Dot,
    DotDot,
    Root,
}

/// `filename_parentat`'s result: the directory the last component is in,
/// and that component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parent {
    pub dir: Ino,
    pub last: Vec<u8>,
    pub kind: LastType,
    /// The path ended in `/`.
    pub trailing_slash: bool,
    /// Symlinks followed so far (a caller that follows the last
    /// component goes on counting from here).
    pub links: u32,
    /// Who walked (a link followed from here walks as them too).
    pub who: Who,
}

/// `struct nameidata`: one walk's root and symlink count.
struct Nd {
    root: Ino,
    links: u32,
    who: Who,
}

fn components(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    path.split(|&c| c == b'/').filter(|c| !c.is_empty())
}

fn check_path(path: &[u8]) -> Result<(), Errno> {
    if path.is_empty() {
        return Err(Errno::ENOENT);
    }
    if path.len() >= PATH_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    Ok(())
}

impl Vfs {
    /// `inode_permission(ino, mask)` for `who`: EACCES if not allowed.
    pub fn permission(&self, ino: Ino, who: Who, mask: u32) -> Result<(), Errno> {
        let i = self.inode(ino);
        if who.may(i.mode, i.uid, i.gid, mask) { Ok(()) } else { Err(Errno::EACCES) }
    }

    /// `walk_component` for one name in the directory `dir`.
    fn step(&self, root: Ino, dir: Ino, name: &[u8]) -> Result<Ino, Errno> {
        match name {
            b"." => Ok(dir),
            b".." => {
                // follow_dotdot: out of mounted roots first, never above root.
                let mut d = dir;
                while d != root {
                    match self.mounts.at.get(&d) {
                        Some(&mp) => d = mp,
                        None => break,
                    }
                }
                if d == root {
                    return Ok(d);
                }
                Ok(self.follow_mount(self.inode(d).parent))
            }
            _ => {
                if name.len() > NAME_MAX {
                    return Err(Errno::ENAMETOOLONG);
                }
                if self.inode(dir).nlink == 0 {
                    // A removed directory has no entries (`IS_DEADDIR`).
                    return Err(Errno::ENOENT);
                }
                self.dcache.d_lookup(dir, name).map(|i| self.follow_mount(i)).ok_or(Errno::ENOENT)
            }
        }
    }

    /// `pick_link`: resolves the symlink `link` found in `dir`.
    fn follow_link(&self, nd: &mut Nd, dir: Ino, link: Ino) -> Result<Ino, Errno> {
        nd.links += 1;
        if nd.links > MAXSYMLINKS {
            return Err(Errno::ELOOP);
        }
        let target = self.inode(link).data.as_slice();
        if target.is_empty() {
            return Err(Errno::ENOENT);
        }
        self.walk(nd, dir, target, true)
    }

    /// `link_path_walk` plus the last component, followed if `follow_last`
    /// (or if the path ends in `/`).
    fn walk(&self, nd: &mut Nd, start: Ino, path: &[u8], follow_last: bool) -> Result<Ino, Errno> {
        let mut cur = if path.first() == Some(&b'/') { nd.root } else { start };
        let trailing = path.last() == Some(&b'/');
        let mut it = components(path).peekable();
        while let Some(name) = it.next() {
            let last = it.peek().is_none();
            if !self.inode(cur).is_dir() {
                return Err(Errno::ENOTDIR);
            }
            // may_lookup: search permission on each directory walked.
            self.permission(cur, nd.who, MAY_EXEC)?;
            let next = self.step(nd.root, cur, name)?;
            let follow = !last || follow_last || trailing;
            cur = if follow && self.inode(next).kind() == InodeKind::Symlink {
                self.follow_link(nd, cur, next)?
            } else {
                next
            };
        }
        if trailing && !self.inode(cur).is_dir() {
            return Err(Errno::ENOTDIR);
        }
        Ok(cur)
    }

    /// `filename_lookup`: the inode `path` names. `follow`: follow a
    /// symlink in the last component (not `AT_SYMLINK_NOFOLLOW`).
    pub fn lookup(&self, at: At, path: &[u8], follow: bool) -> Result<Ino, Errno> {
        check_path(path)?;
        self.walk(&mut Nd { root: at.root, links: 0, who: at.who }, at.dir, path, follow)
    }

    /// `filename_parentat`: the directory holding the last component,
    /// and the component.
    pub fn lookup_parent(&self, at: At, path: &[u8]) -> Result<Parent, Errno> {
        check_path(path)?;
        let trailing_slash = path.last() == Some(&b'/');
        let trimmed = {
            let mut end = path.len();
            while end > 0 && path[end - 1] == b'/' {
                end -= 1;
            }
            &path[..end]
        };
        let mut nd = Nd { root: at.root, links: 0, who: at.who };
        let cut = trimmed.iter().rposition(|&c| c == b'/').map_or(0, |i| i + 1);
        let (head, last) = trimmed.split_at(cut);
        if last.is_empty() {
            // "/", "///": the root itself.
            return Ok(Parent {
                dir: at.root,
                last: Vec::new(),
                kind: LastType::Root,
                trailing_slash,
                links: 0,
                who: at.who,
            });
        }
        let dir = if head.is_empty() {
            at.dir
        } else if components(head).next().is_none() {
            at.root
        } else {
            self.walk(&mut nd, at.dir, head, true)?
        };
        if !self.inode(dir).is_dir() {
            return Err(Errno::ENOTDIR);
        }
        self.permission(dir, at.who, MAY_EXEC)?;
        let kind = match last {
            b"." => LastType::Dot,
            b".." => LastType::DotDot,
            _ if last.len() > NAME_MAX => return Err(Errno::ENAMETOOLONG),
            _ => LastType::Norm,
        };
        Ok(Parent { dir, last: last.to_vec(), kind, trailing_slash, links: nd.links, who: at.who })
    }

    /// The inode the last component of `p` names now, if any (mounts
    /// crossed); `.`/`..`/root resolved as the walk would.
    pub fn lookup_last(&self, root: Ino, p: &Parent) -> Result<Option<Ino>, Errno> {
        match p.kind {
            LastType::Root => Ok(Some(self.follow_mount(root))),
            _ => match self.step(root, p.dir, &p.last) {
                Ok(i) => Ok(Some(i)),
                Err(Errno::ENOENT) => Ok(None),
                Err(e) => Err(e),
            },
        }
    }

    /// Follows the symlink `link`, the last component of `p`, as the
    /// walk would have (counting on from `p.links`).
    pub fn follow_last_link(&self, root: Ino, p: &Parent, link: Ino) -> Result<Ino, Errno> {
        let mut nd = Nd { root, links: p.links, who: p.who };
        let i = self.follow_link(&mut nd, p.dir, link)?;
        if p.trailing_slash && !self.inode(i).is_dir() {
            return Err(Errno::ENOTDIR);
        }
        Ok(i)
    }

    /// `d_path`: the path of the directory `dir` as seen from `root`
    /// (`getcwd`); None if `dir` was removed (Linux adds "(unreachable)"
    /// or ENOENT) or is outside the root.
    pub fn d_path(&self, root: Ino, dir: Ino) -> Option<Vec<u8>> {
        let mut names: Vec<Vec<u8>> = Vec::new();
        let mut d = dir;
        while d != root {
            if let Some(&mp) = self.mounts.at.get(&d) {
                d = mp;
                continue;
            }
            let i = self.inode(d);
            if i.nlink == 0 || i.parent == d {
                return None;
            }
            let name = self.dcache.children(i.parent, 0).find(|&(_, c)| c == d).map(|(n, _)| n.to_vec())?;
            names.push(name);
            d = i.parent;
        }
        let mut p = Vec::new();
        for n in names.iter().rev() {
            p.push(b'/');
            p.extend_from_slice(n);
        }
        if p.is_empty() {
            p.push(b'/');
        }
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::testing::vfs;

    fn setup() -> (Vfs, At) {
        let mut v = vfs();
        let r = v.root;
        let etc = v.create(r, b"etc", crate::fs::inode::S_IFDIR | 0o755, 0, 0, 0).unwrap();
        v.create(etc, b"passwd", crate::fs::inode::S_IFREG | 0o644, 0, 0, 0).unwrap();
        v.symlink(r, b"e", b"/etc", 0, 0).unwrap();
        v.symlink(etc, b"pw", b"passwd", 0, 0).unwrap();
        v.symlink(r, b"loop1", b"loop2", 0, 0).unwrap();
        v.symlink(r, b"loop2", b"loop1", 0, 0).unwrap();
        v.symlink(r, b"dangling", b"/nope", 0, 0).unwrap();
        (v, At::root(r, r))
    }

    #[test]
    fn absolute_relative_dot_and_dotdot() {
        let (v, at) = setup();
        let etc = v.lookup(at, b"/etc", true).unwrap();
        let pw = v.lookup(at, b"/etc/passwd", true).unwrap();
        assert_eq!(v.lookup(at, b"etc/./passwd", true), Ok(pw));
        assert_eq!(v.lookup(At::root(at.root, etc), b"passwd", true), Ok(pw));
        assert_eq!(v.lookup(at, b"//etc//passwd", true), Ok(pw));
        assert_eq!(v.lookup(at, b"/etc/../etc/passwd", true), Ok(pw));
        assert_eq!(v.lookup(at, b"/..", true), Ok(at.root), ".. at the root stays there");
        assert_eq!(v.lookup(at, b"/../../etc", true), Ok(etc));
        // A chroot-like root: .. never climbs above it.
        assert_eq!(v.lookup(At::root(etc, etc), b"../..", true), Ok(etc));
        assert_eq!(v.lookup(at, b"/", true), Ok(at.root));
    }

    #[test]
    fn errors_follow_namei() {
        let (v, at) = setup();
        assert_eq!(v.lookup(at, b"", true), Err(Errno::ENOENT));
        assert_eq!(v.lookup(at, b"/nope", true), Err(Errno::ENOENT));
        assert_eq!(v.lookup(at, b"/etc/passwd/x", true), Err(Errno::ENOTDIR));
        assert_eq!(v.lookup(at, b"/etc/passwd/", true), Err(Errno::ENOTDIR));
        assert!(v.lookup(at, b"/etc/", true).is_ok());
        let long = alloc::vec![b'a'; 256];
        assert_eq!(v.lookup(at, &long, true), Err(Errno::ENAMETOOLONG));
        let path = alloc::vec![b'/'; PATH_MAX];
        assert_eq!(v.lookup(at, &path, true), Err(Errno::ENAMETOOLONG));
    }

    #[test]
    fn symlinks_are_followed_relative_to_their_directory() {
        let (v, at) = setup();
        let pw = v.lookup(at, b"/etc/passwd", true).unwrap();
        assert_eq!(v.lookup(at, b"/e/pw", true), Ok(pw));
        assert_eq!(v.lookup(at, b"e/passwd", true), Ok(pw));
        let link = v.lookup(at, b"/e/pw", false).unwrap();
        assert_eq!(v.inode(link).kind(), InodeKind::Symlink, "the last link is not followed on request");
        assert_eq!(v.lookup(at, b"/dangling", true), Err(Errno::ENOENT));
        assert!(v.lookup(at, b"/dangling", false).is_ok());
        // A trailing slash follows the link even without `follow`.
        assert_eq!(v.lookup(at, b"/e/", false), v.lookup(at, b"/etc", true));
    }

    #[test]
    fn symlink_loops_and_long_chains_give_eloop() {
        let (mut v, at) = setup();
        assert_eq!(v.lookup(at, b"/loop1", true), Err(Errno::ELOOP));
        assert_eq!(v.lookup(at, b"/loop1/x", false), Err(Errno::ELOOP));
        assert!(v.lookup(at, b"/loop1", false).is_ok());
        // A chain of 40 links resolves; 41 is one too many.
        let r = at.root;
        v.symlink(r, b"c0", b"/etc", 0, 0).unwrap();
        for i in 1..=40 {
            let name = alloc::format!("c{i}");
            let target = alloc::format!("c{}", i - 1);
            v.symlink(r, name.as_bytes(), target.as_bytes(), 0, 0).unwrap();
        }
        assert!(v.lookup(at, b"/c39", true).is_ok());
        assert_eq!(v.lookup(at, b"/c40", true), Err(Errno::ELOOP));
    }

    #[test]
    fn parent_lookup_splits_the_last_component() {
        let (v, at) = setup();
        let etc = v.lookup(at, b"/etc", true).unwrap();
        let p = v.lookup_parent(at, b"/e/newfile").unwrap();
        assert_eq!(
            (p.dir, p.last.as_slice(), p.kind, p.trailing_slash),
            (etc, b"newfile".as_slice(), LastType::Norm, false)
        );
        let p = v.lookup_parent(at, b"newdir/").unwrap();
        assert_eq!((p.dir, p.kind, p.trailing_slash), (at.root, LastType::Norm, true));
        assert_eq!(v.lookup_parent(at, b"/etc/..").unwrap().kind, LastType::DotDot);
        assert_eq!(v.lookup_parent(at, b"/").unwrap().kind, LastType::Root);
        assert_eq!(v.lookup_parent(at, b"/nope/x"), Err(Errno::ENOENT));
        assert_eq!(v.lookup_parent(at, b"/etc/passwd/x"), Err(Errno::ENOTDIR));
        assert_eq!(v.lookup_last(at.root, &v.lookup_parent(at, b"/etc/x").unwrap()), Ok(None));
    }

    #[test]
    fn mounts_are_crossed_both_ways() {
        let (mut v, at) = setup();
        let r = at.root;
        let mnt = v.create(r, b"mnt", crate::fs::inode::S_IFDIR | 0o755, 0, 0, 0).unwrap();
        v.create(mnt, b"hidden", crate::fs::inode::S_IFREG | 0o644, 0, 0, 0).unwrap();
        let mroot = v.mount_tmpfs(mnt, 1 << 16).unwrap();
        assert_eq!(v.lookup(at, b"/mnt", true), Ok(mroot));
        assert_eq!(v.lookup(at, b"/mnt/hidden", true), Err(Errno::ENOENT));
        assert_eq!(v.lookup(at, b"/mnt/../etc", true), v.lookup(at, b"/etc", true));
        assert_eq!(v.d_path(r, mroot).unwrap(), b"/mnt");
        assert_eq!(v.mount_tmpfs(mnt, 1), Err(Errno::EBUSY), "mnt itself is busy, not covered twice");
        v.umount(mroot).unwrap();
        assert!(v.lookup(at, b"/mnt/hidden", true).is_ok());
    }

    #[test]
    fn d_path_names_a_directory_and_not_a_removed_one() {
        let (mut v, at) = setup();
        let r = at.root;
        let a = v.create(r, b"a", crate::fs::inode::S_IFDIR | 0o755, 0, 0, 0).unwrap();
        let b = v.create(a, b"b", crate::fs::inode::S_IFDIR | 0o755, 0, 0, 0).unwrap();
        assert_eq!(v.d_path(r, b).unwrap(), b"/a/b");
        assert_eq!(v.d_path(r, r).unwrap(), b"/");
        v.iget(b);
        v.rmdir(a, b"b").unwrap();
        assert_eq!(v.d_path(r, b), None);
        assert_eq!(v.lookup(At::root(r, b), b"x", true), Err(Errno::ENOENT));
        assert_eq!(v.lookup(At::root(r, b), b"..", true), Ok(a));
        v.iput(b);
    }
}

/// `chown_ok`/`chgrp_ok` (fs/attr.c): may `who` give a file owned by
/// `owner`:`group` the owner `uid` and group `gid` (`u32::MAX`: keep)?
/// Root may; an owner may only change the group, to one of its own.
pub fn may_chown(who: Who, owner: u32, group: u32, uid: u32, gid: u32) -> bool {
    let _ = group;
    who.uid == 0 || ((uid == u32::MAX || uid == owner) && who.uid == owner && (gid == u32::MAX || who.in_group(gid)))
}

#[cfg(test)]
mod permission_tests {
    use super::*;

    #[test]
    fn owner_group_other_bits_and_roots_override() {
        let user = Who::new(1000, 100, &[5]);
        assert!(user.may(0o100640, 1000, 0, MAY_READ | MAY_WRITE));
        assert!(!user.may(0o100640, 1000, 0, MAY_EXEC));
        assert!(user.may(0o100640, 0, 100, MAY_READ), "group bits for the fs gid");
        assert!(user.may(0o100640, 0, 5, MAY_READ), "and for a supplementary group");
        assert!(!user.may(0o100640, 0, 100, MAY_WRITE));
        assert!(!user.may(0o100604, 0, 0, MAY_WRITE) && user.may(0o100604, 0, 0, MAY_READ), "others");
        assert!(!user.may(0o100460, 1000, 100, MAY_WRITE), "the owner's bits, not the group's");
        assert!(Who::ROOT.may(0o100000, 5, 5, MAY_READ | MAY_WRITE));
        assert!(!Who::ROOT.may(0o100644, 5, 5, MAY_EXEC), "root executes only what someone may");
        assert!(Who::ROOT.may(0o040000, 5, 5, MAY_EXEC), "but searches any directory");
        assert!(may_chown(user, 1000, 0, u32::MAX, 5) && !may_chown(user, 1000, 0, 0, 5));
        assert!(!may_chown(user, 0, 0, u32::MAX, 5) && may_chown(Who::ROOT, 0, 0, 7, 7));
    }

    #[test]
    fn a_walk_needs_search_permission_on_each_directory() {
        let mut v = crate::fs::testing::vfs();
        let r = v.root;
        let d = v.create(r, b"private", 0o040700, 0, 0, 0).unwrap();
        let f = v.create(d, b"f", 0o100644, 0, 0, 0).unwrap();
        let user = At { root: r, dir: r, who: Who::new(1000, 1000, &[]) };
        assert_eq!(v.lookup(user, b"/private/f", true), Err(Errno::EACCES));
        assert_eq!(v.lookup(At::root(r, r), b"/private/f", true), Ok(f));
        assert_eq!(v.lookup_parent(user, b"/private/g").map(|_| ()), Err(Errno::EACCES));
    }
}

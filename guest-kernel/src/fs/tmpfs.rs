//! tmpfs: a filesystem that is its inodes and dentries in memory (Linux
//! mm/shmem.c and fs/libfs.c's `simple_*` operations, which ramfs and
//! tmpfs share; the checks are fs/namei.c's `vfs_create`, `vfs_mkdir`,
//! `vfs_link`, `vfs_unlink`, `vfs_rmdir`, `vfs_rename` and
//! fs/attr.c `notify_change`). Directories count their links as Linux's
//! do (2 plus one per subdirectory); a file's data is freed when its last
//! name is gone and its last user has closed it (`iput`); each superblock
//! has a size limit, past which a write gives ENOSPC.

use alloc::vec::Vec;

use super::Vfs;
use super::inode::{FileData, Ino, Inode, InodeKind, S_IFDIR, S_IFLNK, S_IFMT, Timespec};
use crate::mm::Errno;

/// `RENAME_NOREPLACE`, `RENAME_EXCHANGE`.
pub const RENAME_NOREPLACE: u32 = 1;
pub const RENAME_EXCHANGE: u32 = 2;
/// Largest file size (`MAX_LFS_FILESIZE` would be larger; memory ends first).
pub const MAX_FILE_SIZE: u64 = 1 << 40;

impl Vfs {
    fn touch_dir(&mut self, dir: Ino) {
        let now = self.now();
        let d = self.inode_mut(dir);
        d.mtime = now;
        d.ctime = now;
    }

    /// Checks that `dir` can hold a new name `name` (`may_create`).
    fn may_create(&self, dir: Ino, name: &[u8]) -> Result<(), Errno> {
        let d = self.inode(dir);
        if !d.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        if d.nlink == 0 {
            return Err(Errno::ENOENT);
        }
        if self.dcache.d_lookup(dir, name).is_some() {
            return Err(Errno::EEXIST);
        }
        Ok(())
    }

    /// `vfs_create`/`vfs_mkdir`/`vfs_mknod`: a new inode of `mode` (its
    /// type bits say which) named `name` in `dir`. Returns its number.
    pub fn create(&mut self, dir: Ino, name: &[u8], mode: u32, rdev: u32, uid: u32, gid: u32) -> Result<Ino, Errno> {
        self.may_create(dir, name)?;
        let kind = InodeKind::of_mode(mode).ok_or(Errno::EINVAL)?;
        let ino = self.ino();
        let now = self.now();
        let sb = self.inode(dir).sb;
        let is_dir = kind == InodeKind::Dir;
        let inode = Inode {
            ino,
            sb,
            mode: (mode & S_IFMT) | (mode & 0o7777),
            uid,
            gid,
            nlink: if is_dir { 2 } else { 1 },
            rdev: if matches!(kind, InodeKind::Chr | InodeKind::Blk) { rdev } else { 0 },
            atime: now,
            mtime: now,
            ctime: now,
            data: FileData::Owned(Vec::new()),
            parent: dir,
            i_count: 0,
            pipe: None,
        };
        self.inodes.insert(ino, inode);
        if let Some(s) = self.supers.get_mut(&sb) {
            s.inodes += 1;
        }
        self.dcache.d_add(dir, name, ino);
        if is_dir {
            self.inode_mut(dir).nlink += 1;
        }
        self.touch_dir(dir);
        Ok(ino)
    }

    /// `vfs_symlink`: a symlink `name` in `dir` pointing at `target`.
    pub fn symlink(&mut self, dir: Ino, name: &[u8], target: &[u8], uid: u32, gid: u32) -> Result<Ino, Errno> {
        if target.is_empty() {
            return Err(Errno::ENOENT);
        }
        self.charge(dir, target.len())?;
        let ino =
            self.create(dir, name, S_IFLNK | 0o777, 0, uid, gid).inspect_err(|_| self.uncharge(dir, target.len()))?;
        self.inode_mut(ino).data = FileData::Owned(target.to_vec());
        Ok(ino)
    }

    /// Takes `n` bytes of `ino`'s superblock's space, or ENOSPC.
    fn charge(&mut self, ino: Ino, n: usize) -> Result<(), Errno> {
        let sb = self.inode(ino).sb;
        let s = self.supers.get_mut(&sb).expect("superblock");
        if s.used_bytes + n > s.max_bytes {
            return Err(Errno::ENOSPC);
        }
        s.used_bytes += n;
        Ok(())
    }

    /// Counts `n` bytes of initramfs data (read in place) against the
    /// superblock of `ino`, as if written.
    pub fn charge_static(&mut self, ino: Ino, n: usize) -> Result<(), Errno> {
        self.charge(ino, n)
    }

    fn uncharge(&mut self, ino: Ino, n: usize) {
        let sb = self.inode(ino).sb;
        if let Some(s) = self.supers.get_mut(&sb) {
            s.used_bytes -= n;
        }
    }

    /// `vfs_link`: a new name `name` in `dir` for `ino`.
    pub fn link(&mut self, ino: Ino, dir: Ino, name: &[u8]) -> Result<(), Errno> {
        if self.inode(ino).is_dir() {
            return Err(Errno::EPERM);
        }
        if self.inode(ino).sb != self.inode(dir).sb {
            return Err(Errno::EXDEV);
        }
        self.may_create(dir, name)?;
        if self.inode(ino).nlink == 0 {
            return Err(Errno::ENOENT);
        }
        self.dcache.d_add(dir, name, ino);
        let now = self.now();
        let i = self.inode_mut(ino);
        i.nlink += 1;
        i.ctime = now;
        self.touch_dir(dir);
        Ok(())
    }

    /// `vfs_unlink`: removes the name `name` from `dir` (not a directory:
    /// EISDIR). The inode goes when its last name and user are gone.
    pub fn unlink(&mut self, dir: Ino, name: &[u8]) -> Result<(), Errno> {
        let ino = self.dcache.d_lookup(dir, name).ok_or(Errno::ENOENT)?;
        if self.inode(ino).is_dir() {
            return Err(Errno::EISDIR);
        }
        if self.mounts.on.contains_key(&ino) {
            return Err(Errno::EBUSY);
        }
        self.dcache.d_delete(dir, name);
        let now = self.now();
        let i = self.inode_mut(ino);
        i.nlink -= 1;
        i.ctime = now;
        self.touch_dir(dir);
        self.maybe_evict(ino);
        Ok(())
    }

    /// `vfs_rmdir`: removes the empty directory `name` from `dir`.
    pub fn rmdir(&mut self, dir: Ino, name: &[u8]) -> Result<(), Errno> {
        let ino = self.dcache.d_lookup(dir, name).ok_or(Errno::ENOENT)?;
        if !self.inode(ino).is_dir() {
            return Err(Errno::ENOTDIR);
        }
        if self.mounts.on.contains_key(&ino) {
            return Err(Errno::EBUSY);
        }
        if !self.dcache.is_empty_dir(ino) {
            return Err(Errno::ENOTEMPTY);
        }
        self.dcache.d_delete(dir, name);
        self.inode_mut(ino).nlink = 0;
        self.inode_mut(dir).nlink -= 1;
        self.touch_dir(dir);
        self.maybe_evict(ino);
        Ok(())
    }

    /// Whether `dir` is `anc` or below it.
    fn is_subdir(&self, mut dir: Ino, anc: Ino) -> bool {
        loop {
            if dir == anc {
                return true;
            }
            let p = self.inode(dir).parent;
            if p == dir {
                return false;
            }
            dir = p;
        }
    }

    /// `vfs_rename` (renameat2 with `RENAME_NOREPLACE` or
    /// `RENAME_EXCHANGE` in `flags`).
    pub fn rename(&mut self, odir: Ino, oname: &[u8], ndir: Ino, nname: &[u8], flags: u32) -> Result<(), Errno> {
        if flags & !(RENAME_NOREPLACE | RENAME_EXCHANGE) != 0 || flags == RENAME_NOREPLACE | RENAME_EXCHANGE {
            return Err(Errno::EINVAL);
        }
        let src = self.dcache.d_lookup(odir, oname).ok_or(Errno::ENOENT)?;
        if self.inode(odir).sb != self.inode(ndir).sb {
            return Err(Errno::EXDEV);
        }
        if self.inode(ndir).nlink == 0 {
            return Err(Errno::ENOENT);
        }
        let dst = self.dcache.d_lookup(ndir, nname);
        if flags & RENAME_NOREPLACE != 0 && dst.is_some() {
            return Err(Errno::EEXIST);
        }
        if flags & RENAME_EXCHANGE != 0 && dst.is_none() {
            return Err(Errno::ENOENT);
        }
        if dst == Some(src) {
            return Ok(());
        }
        let src_dir = self.inode(src).is_dir();
        if self.mounts.on.contains_key(&src) || dst.is_some_and(|d| self.mounts.on.contains_key(&d)) {
            return Err(Errno::EBUSY);
        }
        // A directory cannot move below itself.
        if src_dir && self.is_subdir(ndir, src) {
            return Err(Errno::EINVAL);
        }
        if flags & RENAME_EXCHANGE != 0 {
            let dst = dst.expect("checked");
            let dst_dir = self.inode(dst).is_dir();
            if dst_dir && self.is_subdir(odir, dst) {
                return Err(Errno::EINVAL);
            }
            self.dcache.d_add(odir, oname, dst);
            self.dcache.d_add(ndir, nname, src);
            for (i, is_dir, from, to) in [(src, src_dir, odir, ndir), (dst, dst_dir, ndir, odir)] {
                if is_dir && from != to {
                    self.inode_mut(i).parent = to;
                    self.inode_mut(from).nlink -= 1;
                    self.inode_mut(to).nlink += 1;
                }
            }
        } else {
            if let Some(d) = dst {
                let dst_dir = self.inode(d).is_dir();
                match (src_dir, dst_dir) {
                    (true, false) => return Err(Errno::ENOTDIR),
                    (false, true) => return Err(Errno::EISDIR),
                    (true, true) if !self.dcache.is_empty_dir(d) => return Err(Errno::ENOTEMPTY),
                    _ => {}
                }
                if dst_dir {
                    self.inode_mut(d).nlink = 0;
                    self.inode_mut(ndir).nlink -= 1;
                } else {
                    self.inode_mut(d).nlink -= 1;
                }
            }
            self.dcache.d_delete(odir, oname);
            self.dcache.d_add(ndir, nname, src);
            if src_dir && odir != ndir {
                self.inode_mut(src).parent = ndir;
                self.inode_mut(odir).nlink -= 1;
                self.inode_mut(ndir).nlink += 1;
            }
            if let Some(d) = dst {
                self.maybe_evict(d);
            }
        }
        let now = self.now();
        self.inode_mut(src).ctime = now;
        self.touch_dir(odir);
        self.touch_dir(ndir);
        Ok(())
    }

    /// `read_iter` of a regular file: bytes at `pos` into `out`.
    pub fn read_at(&mut self, ino: Ino, pos: u64, out: &mut [u8]) -> usize {
        let now = self.now();
        let i = self.inode_mut(ino);
        let data = i.data.as_slice();
        let start = (pos.min(data.len() as u64)) as usize;
        let n = out.len().min(data.len() - start);
        out[..n].copy_from_slice(&data[start..start + n]);
        i.atime = now;
        n
    }

    /// `write_iter` of a regular file: `data` at `pos` (the file grows,
    /// a hole reads as zeros). ENOSPC past the superblock's limit, EFBIG
    /// past the largest file.
    pub fn write_at(&mut self, ino: Ino, pos: u64, data: &[u8]) -> Result<usize, Errno> {
        let end = pos.checked_add(data.len() as u64).ok_or(Errno::EFBIG)?;
        if end > MAX_FILE_SIZE {
            return Err(Errno::EFBIG);
        }
        let old = self.inode(ino).data.len();
        let grow = (end as usize).saturating_sub(old);
        self.charge(ino, grow)?;
        let now = self.now();
        let i = self.inode_mut(ino);
        let v = i.data.to_mut();
        if v.try_reserve(grow).is_err() {
            self.uncharge(ino, grow);
            return Err(Errno::ENOSPC);
        }
        if v.len() < end as usize {
            v.resize(end as usize, 0);
        }
        v[pos as usize..end as usize].copy_from_slice(data);
        i.mtime = now;
        i.ctime = now;
        Ok(data.len())
    }

    /// `do_truncate`: sets a regular file's size.
    pub fn truncate(&mut self, ino: Ino, len: u64) -> Result<(), Errno> {
        match self.inode(ino).kind() {
            InodeKind::Dir => return Err(Errno::EISDIR),
            InodeKind::Reg => {}
            _ => return Err(Errno::EINVAL),
        }
        if len > MAX_FILE_SIZE {
            return Err(Errno::EFBIG);
        }
        let old = self.inode(ino).data.len();
        let len = len as usize;
        if len > old {
            self.charge(ino, len - old)?;
        } else {
            self.uncharge(ino, old - len);
        }
        let now = self.now();
        let i = self.inode_mut(ino);
        let v = i.data.to_mut();
        if len > old && v.try_reserve(len - old).is_err() {
            self.uncharge(ino, len - old);
            return Err(Errno::ENOSPC);
        }
        v.resize(len, 0);
        i.mtime = now;
        i.ctime = now;
        Ok(())
    }

    /// `chmod_common`: the permission bits (the type stays).
    pub fn chmod(&mut self, ino: Ino, mode: u32) {
        let now = self.now();
        let i = self.inode_mut(ino);
        i.mode = (i.mode & S_IFMT) | (mode & 0o7777);
        i.ctime = now;
    }

    /// `chown_common`: -1 (u32::MAX) leaves an id as it is.
    pub fn chown(&mut self, ino: Ino, uid: u32, gid: u32) {
        let now = self.now();
        let i = self.inode_mut(ino);
        if uid != u32::MAX {
            i.uid = uid;
        }
        if gid != u32::MAX {
            i.gid = gid;
        }
        i.ctime = now;
    }

    /// `utimes_common`: None leaves a time as it is (`UTIME_OMIT`).
    pub fn set_times(&mut self, ino: Ino, atime: Option<Timespec>, mtime: Option<Timespec>) {
        let now = self.now();
        let i = self.inode_mut(ino);
        if let Some(t) = atime {
            i.atime = t;
        }
        if let Some(t) = mtime {
            i.mtime = t;
        }
        i.ctime = now;
    }

    /// `vfs_readlink`: a symlink's target (EINVAL for anything else).
    pub fn readlink(&self, ino: Ino) -> Result<&[u8], Errno> {
        let i = self.inode(ino);
        if i.kind() != InodeKind::Symlink {
            return Err(Errno::EINVAL);
        }
        Ok(i.data.as_slice())
    }

    /// Makes `dir` a directory with `mode` if it is missing (the
    /// initramfs's and /dev's directories); returns it.
    pub fn mkdir_p(&mut self, dir: Ino, name: &[u8], mode: u32) -> Result<Ino, Errno> {
        match self.dcache.d_lookup(dir, name) {
            Some(i) if self.inode(i).is_dir() => Ok(i),
            Some(_) => Err(Errno::EEXIST),
            None => self.create(dir, name, S_IFDIR | mode, 0, 0, 0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::inode::{S_IFDIR, S_IFREG};
    use crate::fs::testing::vfs;

    #[test]
    fn create_link_unlink_count_links() {
        let mut v = vfs();
        let r = v.root;
        let d = v.create(r, b"d", S_IFDIR | 0o755, 0, 0, 0).unwrap();
        assert_eq!(v.inode(r).nlink, 3);
        let f = v.create(d, b"f", S_IFREG | 0o644, 0, 0, 0).unwrap();
        assert_eq!(v.create(d, b"f", S_IFREG, 0, 0, 0), Err(Errno::EEXIST));
        v.link(f, r, b"g").unwrap();
        assert_eq!(v.inode(f).nlink, 2);
        assert_eq!(v.link(d, r, b"h"), Err(Errno::EPERM));
        assert_eq!(v.unlink(r, b"d"), Err(Errno::EISDIR));
        assert_eq!(v.rmdir(r, b"d"), Err(Errno::ENOTEMPTY));
        assert_eq!(v.rmdir(r, b"g"), Err(Errno::ENOTDIR));
        v.unlink(d, b"f").unwrap();
        v.unlink(r, b"g").unwrap();
        assert!(!v.inodes.contains_key(&f), "no names, no users: freed");
        v.rmdir(r, b"d").unwrap();
        assert_eq!(v.inode(r).nlink, 2);
        assert_eq!(v.unlink(r, b"d"), Err(Errno::ENOENT));
    }

    #[test]
    fn an_unlinked_open_file_keeps_its_data_until_closed() {
        let mut v = vfs();
        let r = v.root;
        let f = v.create(r, b"f", S_IFREG | 0o644, 0, 0, 0).unwrap();
        v.write_at(f, 0, b"data").unwrap();
        v.iget(f); // open
        v.unlink(r, b"f").unwrap();
        let mut b = [0u8; 4];
        assert_eq!(v.read_at(f, 0, &mut b), 4);
        assert_eq!(&b, b"data");
        let used = v.sb_of(r).used_bytes;
        assert_eq!(used, 4);
        v.iput(f); // close
        assert!(!v.inodes.contains_key(&f));
        assert_eq!(v.sb_of(r).used_bytes, 0);
    }

    #[test]
    fn writes_grow_files_with_holes_and_stop_at_the_size_limit() {
        let mut v = vfs();
        let r = v.root;
        let f = v.create(r, b"f", S_IFREG | 0o644, 0, 0, 0).unwrap();
        v.write_at(f, 3, b"x").unwrap();
        let mut b = [9u8; 8];
        assert_eq!(v.read_at(f, 0, &mut b), 4);
        assert_eq!(&b[..4], b"\0\0\0x");
        assert_eq!(v.write_at(f, 0, &alloc::vec![0u8; 2 << 20]), Err(Errno::ENOSPC));
        assert_eq!(v.write_at(f, u64::MAX, b"x"), Err(Errno::EFBIG));
        v.truncate(f, 1).unwrap();
        assert_eq!(v.inode(f).size(), 1);
        assert_eq!(v.truncate(r, 0), Err(Errno::EISDIR));
    }

    #[test]
    fn rename_follows_vfs_rename_rules() {
        let mut v = vfs();
        let r = v.root;
        let a = v.create(r, b"a", S_IFDIR | 0o755, 0, 0, 0).unwrap();
        let b = v.create(r, b"b", S_IFDIR | 0o755, 0, 0, 0).unwrap();
        let f = v.create(a, b"f", S_IFREG | 0o644, 0, 0, 0).unwrap();
        let g = v.create(r, b"g", S_IFREG | 0o644, 0, 0, 0).unwrap();
        assert_eq!(v.rename(r, b"a", a, b"x", 0), Err(Errno::EINVAL), "into itself");
        assert_eq!(v.rename(r, b"a", r, b"g", 0), Err(Errno::ENOTDIR));
        assert_eq!(v.rename(r, b"g", r, b"b", 0), Err(Errno::EISDIR));
        assert_eq!(v.rename(r, b"g", a, b"f", RENAME_NOREPLACE), Err(Errno::EEXIST));
        assert_eq!(v.rename(r, b"b", r, b"a", 0), Err(Errno::ENOTEMPTY));
        v.rename(r, b"g", a, b"f", 0).unwrap();
        assert!(!v.inodes.contains_key(&f), "the replaced file is gone");
        assert_eq!(v.dcache.d_lookup(a, b"f"), Some(g));
        v.rename(r, b"b", a, b"b", 0).unwrap();
        assert_eq!((v.inode(b).parent, v.inode(a).nlink, v.inode(r).nlink), (a, 3, 3));
        v.rename(a, b"f", a, b"b", RENAME_EXCHANGE).unwrap();
        assert_eq!(v.dcache.d_lookup(a, b"f"), Some(b));
        assert_eq!(v.rename(r, b"zz", r, b"y", 0), Err(Errno::ENOENT));
    }
}

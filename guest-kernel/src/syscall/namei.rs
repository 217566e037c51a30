//! Path calls (Linux fs/namei.c, fs/open.c, fs/stat.c, fs/d_path.c,
//! fs/utimes.c, fs/namespace.c): each copies the path in (`getname`:
//! ENAMETOOLONG at [`PATH_MAX`], EFAULT for a bad pointer), then walks it
//! with the kernel lock held from the working directory or a dirfd
//! (`crate::fs::namei`), and copies any result out after.

use alloc::vec::Vec;

use super::fs::{my_files, with_fd_stat};
use super::process::strncpy_from_user;
use super::table::R;
use crate::arch::aarch64::process::current;
use crate::arch::aarch64::uaccess::{copy_from_user, copy_to_user};
use crate::fs::devices::CharDev;
use crate::fs::file::{FileKind, Opened};
use crate::fs::inode::{
    Ino, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFMT, S_IFREG, S_IFSOCK, Stat, Timespec, new_decode_dev,
};
use crate::fs::namei::{At, LastType, MAY_EXEC, MAY_WRITE, PATH_MAX, Parent, Who, may_chown};
use crate::fs::o::*;
use crate::kernel::fs::{at_cwd, proc_refresh};
use crate::kernel::{Kernel, lock};
use crate::mm::Errno;

/// `AT_FDCWD` and the `*at` flags (include/uapi/linux/fcntl.h).
pub const AT_FDCWD: i32 = -100;
const AT_SYMLINK_NOFOLLOW: u32 = 0x100;
const AT_REMOVEDIR: u32 = 0x200;
const AT_EACCESS: u32 = 0x200;
const AT_SYMLINK_FOLLOW: u32 = 0x400;
const AT_NO_AUTOMOUNT: u32 = 0x800;
const AT_EMPTY_PATH: u32 = 0x1000;
const AT_STATX_SYNC_TYPE: u32 = 0x6000;

/// `getname`: a path from user memory (no NUL within PATH_MAX bytes:
/// ENAMETOOLONG).
fn getname(p: usize) -> Result<Vec<u8>, Errno> {
    strncpy_from_user(p, PATH_MAX - 1)
}

/// Where a walk of `path` from `dirfd` starts (`path_init`): the working
/// directory for AT_FDCWD, the directory `dirfd` names otherwise (EBADF,
/// or ENOTDIR for a file that is not one); an absolute path ignores it.
fn at_dirfd(k: &Kernel, dirfd: i32, path: &[u8]) -> Result<At, Errno> {
    let at = at_cwd(k, current());
    if path.first() == Some(&b'/') || dirfd == AT_FDCWD {
        return Ok(at);
    }
    if path.is_empty() {
        return Err(Errno::ENOENT);
    }
    let files = my_files(k)?;
    let d = k.vfs.fd_get(files, dirfd)?;
    match k.vfs.files[&d.file].kind {
        FileKind::Inode(i) if k.vfs.inode(i).is_dir() => Ok(At { dir: i, ..at }),
        _ => Err(Errno::ENOTDIR),
    }
}

/// The inode `dirfd` names itself (AT_EMPTY_PATH with an empty path).
fn fd_itself(k: &Kernel, dirfd: i32) -> Result<Ino, Errno> {
    if dirfd == AT_FDCWD {
        return Ok(at_cwd(k, current()).dir);
    }
    let files = my_files(k)?;
    let d = k.vfs.fd_get(files, dirfd)?;
    match k.vfs.files[&d.file].kind {
        FileKind::Inode(i) => Ok(i),
        FileKind::Pipe { fifo: Some(i), .. } => Ok(i),
        FileKind::Pipe { .. } => Err(Errno::EINVAL),
    }
}

/// The caller's umask.
fn umask(k: &Kernel) -> u32 {
    let fs = k.tasks.get(current()).map_or(0, |t| t.fs);
    k.vfs.fs_structs.get(&fs).map_or(0o022, |f| f.umask)
}

/// `filename_create`'s checks on the last component: `.`, `..` and `/`
/// exist already (EEXIST); a trailing slash is only for a directory
/// (ENOENT otherwise, as a new name cannot end in one).
fn create_parent(k: &Kernel, at: At, path: &[u8], dir: bool) -> Result<Parent, Errno> {
    let p = k.vfs.lookup_parent(at, path)?;
    if p.kind != LastType::Norm {
        return Err(Errno::EEXIST);
    }
    if k.vfs.dcache.d_lookup(p.dir, &p.last).is_some() {
        return Err(Errno::EEXIST);
    }
    if p.trailing_slash && !dir {
        return Err(Errno::ENOENT);
    }
    // may_create: write and search permission on the directory.
    k.vfs.permission(p.dir, at.who, MAY_WRITE | MAY_EXEC)?;
    Ok(p)
}

/// `may_delete`: write and search permission on the directory; in a
/// sticky directory (`/tmp`), only the file's owner, the directory's
/// owner or root may remove or rename a name (EPERM).
fn may_delete(k: &Kernel, p: &Parent) -> Result<(), Errno> {
    k.vfs.permission(p.dir, p.who, MAY_WRITE | MAY_EXEC)?;
    let child = k.vfs.dcache.d_lookup(p.dir, &p.last).ok_or(Errno::ENOENT)?;
    let (dir, file) = (k.vfs.inode(p.dir), k.vfs.inode(child));
    if dir.mode & crate::fs::inode::S_ISVTX != 0 && p.who.uid != 0 && p.who.uid != dir.uid && p.who.uid != file.uid {
        return Err(Errno::EPERM);
    }
    Ok(())
}

/// `inode_owner_or_capable`: the file's owner or root (chmod, utimes with
/// explicit times), else EPERM.
fn owner_or_root(k: &Kernel, ino: Ino, who: Who) -> Result<(), Errno> {
    if who.uid == 0 || k.vfs.inode(ino).uid == who.uid { Ok(()) } else { Err(Errno::EPERM) }
}

pub(super) fn sys_openat(dirfd: i32, path: usize, flags: u32, mode: u32) -> R {
    let path = getname(path)?;
    // Unknown flags are ignored, as `build_open_how` masks them.
    let flags = flags & VALID;
    let cloexec = flags & O_CLOEXEC != 0;
    let flags = if flags & O_PATH == 0 { flags | O_LARGEFILE } else { flags };
    let opened = {
        let mut k = lock();
        proc_refresh(&mut k);
        let at = at_dirfd(&k, dirfd, &path)?;
        let um = umask(&k);
        k.vfs.open(at, &path, flags, mode, um, at.who.uid, at.who.gid)?
    };
    let file = match opened {
        Opened::File(f) => f,
        Opened::Fifo(ino) => super::pipe::fifo_open(ino, flags)?,
    };
    let mut k = lock();
    // /dev/tty is the caller's controlling terminal: without one, ENXIO.
    let tty = k.vfs.files.get(&file).and_then(|f| super::fs::chrdev(&k, f)) == Some(CharDev::Tty);
    if tty && !super::tty::is_ctty(&k, current()) {
        let _ = k.vfs.fput(file);
        return Err(Errno::ENXIO);
    }
    let files = match my_files(&k) {
        Ok(f) => f,
        Err(e) => {
            let _ = k.vfs.fput(file);
            return Err(e);
        }
    };
    k.vfs.fd_alloc(files, 0, file, cloexec).map(|fd| fd as isize)
}

pub(super) fn sys_mkdirat(dirfd: i32, path: usize, mode: u32) -> R {
    let path = getname(path)?;
    let mut k = lock();
    let at = at_dirfd(&k, dirfd, &path)?;
    let p = create_parent(&k, at, &path, true)?;
    let m = mode & 0o1777 & !umask(&k);
    k.vfs.create(p.dir, &p.last, S_IFDIR | m, 0, at.who.uid, at.who.gid).map(|_| 0)
}

pub(super) fn sys_mknodat(dirfd: i32, path: usize, mode: u32, dev: u64) -> R {
    let path = getname(path)?;
    let ty = match mode & S_IFMT {
        0 | S_IFREG => S_IFREG,
        t @ (S_IFCHR | S_IFBLK | S_IFIFO | S_IFSOCK) => t,
        S_IFDIR => return Err(Errno::EPERM),
        _ => return Err(Errno::EINVAL),
    };
    let mut k = lock();
    let at = at_dirfd(&k, dirfd, &path)?;
    let p = create_parent(&k, at, &path, false)?;
    let m = mode & 0o7777 & !umask(&k);
    // Device nodes need CAP_MKNOD: root.
    if matches!(ty, S_IFCHR | S_IFBLK) && at.who.uid != 0 {
        return Err(Errno::EPERM);
    }
    k.vfs.create(p.dir, &p.last, ty | m, new_decode_dev(dev), at.who.uid, at.who.gid).map(|_| 0)
}

pub(super) fn sys_symlinkat(target: usize, dirfd: i32, path: usize) -> R {
    let target = getname(target)?;
    let path = getname(path)?;
    let mut k = lock();
    let at = at_dirfd(&k, dirfd, &path)?;
    let p = create_parent(&k, at, &path, false)?;
    k.vfs.symlink(p.dir, &p.last, &target, at.who.uid, at.who.gid).map(|_| 0)
}

pub(super) fn sys_linkat(olddirfd: i32, old: usize, newdirfd: i32, new: usize, flags: u32) -> R {
    if flags & !(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    let old = getname(old)?;
    let new = getname(new)?;
    let mut k = lock();
    let ino = if old.is_empty() && flags & AT_EMPTY_PATH != 0 {
        fd_itself(&k, olddirfd)?
    } else {
        let at = at_dirfd(&k, olddirfd, &old)?;
        k.vfs.lookup(at, &old, flags & AT_SYMLINK_FOLLOW != 0)?
    };
    let at = at_dirfd(&k, newdirfd, &new)?;
    let p = create_parent(&k, at, &new, false)?;
    k.vfs.link(ino, p.dir, &p.last).map(|_| 0)
}

pub(super) fn sys_unlinkat(dirfd: i32, path: usize, flags: u32) -> R {
    if flags & !AT_REMOVEDIR != 0 {
        return Err(Errno::EINVAL);
    }
    let path = getname(path)?;
    let mut k = lock();
    let at = at_dirfd(&k, dirfd, &path)?;
    let p = k.vfs.lookup_parent(at, &path)?;
    if flags & AT_REMOVEDIR != 0 {
        match p.kind {
            LastType::Dot => return Err(Errno::EINVAL),
            LastType::DotDot => return Err(Errno::ENOTEMPTY),
            LastType::Root => return Err(Errno::EBUSY),
            LastType::Norm => {}
        }
        may_delete(&k, &p)?;
        return k.vfs.rmdir(p.dir, &p.last).map(|_| 0);
    }
    if p.kind != LastType::Norm {
        return Err(Errno::EISDIR);
    }
    if p.trailing_slash {
        let child = k.vfs.dcache.d_lookup(p.dir, &p.last).ok_or(Errno::ENOENT)?;
        return Err(if k.vfs.inode(child).is_dir() { Errno::EISDIR } else { Errno::ENOTDIR });
    }
    may_delete(&k, &p)?;
    k.vfs.unlink(p.dir, &p.last).map(|_| 0)
}

pub(super) fn sys_renameat2(olddirfd: i32, old: usize, newdirfd: i32, new: usize, flags: u32) -> R {
    let old = getname(old)?;
    let new = getname(new)?;
    let mut k = lock();
    let oat = at_dirfd(&k, olddirfd, &old)?;
    let nat = at_dirfd(&k, newdirfd, &new)?;
    let op = k.vfs.lookup_parent(oat, &old)?;
    let np = k.vfs.lookup_parent(nat, &new)?;
    if op.kind != LastType::Norm || np.kind != LastType::Norm {
        return Err(Errno::EBUSY);
    }
    if op.trailing_slash || np.trailing_slash {
        let src = k.vfs.dcache.d_lookup(op.dir, &op.last).ok_or(Errno::ENOENT)?;
        if !k.vfs.inode(src).is_dir() {
            return Err(Errno::ENOTDIR);
        }
    }
    may_delete(&k, &op)?;
    k.vfs.permission(np.dir, np.who, MAY_WRITE | MAY_EXEC)?;
    if k.vfs.dcache.d_lookup(np.dir, &np.last).is_some() {
        may_delete(&k, &np)?;
    }
    k.vfs.rename(op.dir, &op.last, np.dir, &np.last, flags).map(|_| 0)
}

pub(super) fn sys_readlinkat(dirfd: i32, path: usize, buf: usize, size: i32) -> R {
    if size <= 0 {
        return Err(Errno::EINVAL);
    }
    let path = getname(path)?;
    let target = {
        let mut k = lock();
        proc_refresh(&mut k);
        let at = at_dirfd(&k, dirfd, &path)?;
        let ino = k.vfs.lookup(at, &path, false)?;
        k.vfs.readlink(ino)?.to_vec()
    };
    let n = target.len().min(size as usize);
    copy_to_user(buf, &target[..n])?;
    Ok(n as isize)
}

/// `vfs_statx` for the `*stat*at` calls.
fn stat_at(dirfd: i32, path: usize, flags: u32) -> Result<Stat, Errno> {
    let path = getname(path)?;
    if path.is_empty() && flags & AT_EMPTY_PATH != 0 {
        if dirfd == AT_FDCWD {
            let k = lock();
            let i = at_cwd(&k, current()).dir;
            return Ok(k.vfs.inode(i).stat(k.vfs.sb_of(i).dev));
        }
        return with_fd_stat(dirfd);
    }
    let mut k = lock();
    proc_refresh(&mut k);
    let at = at_dirfd(&k, dirfd, &path)?;
    let ino = k.vfs.lookup(at, &path, flags & AT_SYMLINK_NOFOLLOW == 0)?;
    Ok(k.vfs.inode(ino).stat(k.vfs.sb_of(ino).dev))
}

pub(super) fn sys_newfstatat(dirfd: i32, path: usize, buf: usize, flags: u32) -> R {
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT) != 0 {
        return Err(Errno::EINVAL);
    }
    let st = stat_at(dirfd, path, flags)?;
    copy_to_user(buf, &st.encode_stat())?;
    Ok(0)
}

pub(super) fn sys_statx(dirfd: i32, path: usize, flags: u32, mask: u32, buf: usize) -> R {
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT | AT_STATX_SYNC_TYPE) != 0
        || flags & AT_STATX_SYNC_TYPE == AT_STATX_SYNC_TYPE
        || mask & 0x8000_0000 != 0
    {
        return Err(Errno::EINVAL);
    }
    let st = stat_at(dirfd, path, flags)?;
    copy_to_user(buf, &st.encode_statx())?;
    Ok(0)
}

/// `faccessat2`: everyone is root here (no credentials yet), so read and
/// write are allowed; execute needs an execute bit on a file that is not
/// a directory, as for root on Linux.
pub(super) fn sys_faccessat2(dirfd: i32, path: usize, mode: u32, flags: u32) -> R {
    if mode & !7 != 0 || flags & !(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    let path = getname(path)?;
    let mut k = lock();
    proc_refresh(&mut k);
    let ino = if path.is_empty() && flags & AT_EMPTY_PATH != 0 {
        fd_itself(&k, dirfd)?
    } else {
        let at = at_dirfd(&k, dirfd, &path)?;
        k.vfs.lookup(at, &path, flags & AT_SYMLINK_NOFOLLOW == 0)?
    };
    // access() checks with the real ids, unless AT_EACCESS.
    let who = if flags & AT_EACCESS != 0 {
        at_cwd(&k, current()).who
    } else {
        let c = &k.tasks.get(current()).expect("current task").cred;
        Who::new(c.uid, c.gid, &c.groups)
    };
    k.vfs.permission(ino, who, mode).map(|()| 0)
}

pub(super) fn sys_fchmodat(dirfd: i32, path: usize, mode: u32) -> R {
    let path = getname(path)?;
    let mut k = lock();
    let at = at_dirfd(&k, dirfd, &path)?;
    let ino = k.vfs.lookup(at, &path, true)?;
    owner_or_root(&k, ino, at.who)?;
    k.vfs.chmod(ino, mode);
    Ok(0)
}

pub(super) fn sys_fchownat(dirfd: i32, path: usize, uid: u32, gid: u32, flags: u32) -> R {
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    let path = getname(path)?;
    let mut k = lock();
    let ino = if path.is_empty() && flags & AT_EMPTY_PATH != 0 {
        fd_itself(&k, dirfd)?
    } else {
        let at = at_dirfd(&k, dirfd, &path)?;
        k.vfs.lookup(at, &path, flags & AT_SYMLINK_NOFOLLOW == 0)?
    };
    let who = at_cwd(&k, current()).who;
    let i = k.vfs.inode(ino);
    if !may_chown(who, i.uid, i.gid, uid, gid) {
        return Err(Errno::EPERM);
    }
    k.vfs.chown(ino, uid, gid);
    Ok(0)
}

const UTIME_NOW: i64 = (1 << 30) - 1;
const UTIME_OMIT: i64 = (1 << 30) - 2;

/// `utimensat(dirfd, path, times, flags)`: a NULL path means `dirfd`
/// itself; NULL times mean now.
pub(super) fn sys_utimensat(dirfd: i32, path: usize, times: usize, flags: u32) -> R {
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    let mut ts = [(0i64, UTIME_NOW); 2];
    if times != 0 {
        let mut b = [0u8; 32];
        copy_from_user(&mut b, times)?;
        for (i, t) in ts.iter_mut().enumerate() {
            let sec = i64::from_le_bytes(b[16 * i..16 * i + 8].try_into().unwrap());
            let nsec = i64::from_le_bytes(b[16 * i + 8..16 * i + 16].try_into().unwrap());
            if nsec != UTIME_NOW && nsec != UTIME_OMIT && !(0..1_000_000_000).contains(&nsec) {
                return Err(Errno::EINVAL);
            }
            *t = (sec, nsec);
        }
    }
    let path = if path == 0 { None } else { Some(getname(path)?) };
    let mut k = lock();
    let ino = match &path {
        None => fd_itself(&k, dirfd)?,
        Some(p) if p.is_empty() && flags & AT_EMPTY_PATH != 0 => fd_itself(&k, dirfd)?,
        Some(p) => {
            let at = at_dirfd(&k, dirfd, p)?;
            k.vfs.lookup(at, p, flags & AT_SYMLINK_NOFOLLOW == 0)?
        }
    };
    // Explicit times: the owner or root; "now": also anyone who may write.
    let who = at_cwd(&k, current()).who;
    let explicit = times != 0 && ts.iter().any(|&(_, n)| n != UTIME_NOW && n != UTIME_OMIT);
    if owner_or_root(&k, ino, who).is_err() && (explicit || k.vfs.permission(ino, who, MAY_WRITE).is_err()) {
        return Err(if explicit { Errno::EPERM } else { Errno::EACCES });
    }
    let now = k.vfs.now();
    let conv = |(sec, nsec): (i64, i64)| match nsec {
        UTIME_OMIT => None,
        UTIME_NOW => Some(now),
        n => Some(Timespec { sec, nsec: n as u32 }),
    };
    k.vfs.set_times(ino, conv(ts[0]), conv(ts[1]));
    Ok(0)
}

pub(super) fn sys_truncate(path: usize, len: i64) -> R {
    if len < 0 {
        return Err(Errno::EINVAL);
    }
    let path = getname(path)?;
    let mut k = lock();
    let at = at_cwd(&k, current());
    let ino = k.vfs.lookup(at, &path, true)?;
    k.vfs.permission(ino, at.who, MAY_WRITE)?;
    k.vfs.truncate(ino, len as u64).map(|_| 0)
}

pub(super) fn sys_chdir(path: usize) -> R {
    let path = getname(path)?;
    let mut k = lock();
    proc_refresh(&mut k);
    let at = at_cwd(&k, current());
    let ino = k.vfs.lookup(at, &path, true)?;
    let fs = k.tasks.get(current()).map_or(0, |t| t.fs);
    k.vfs.chdir(fs, ino).map(|_| 0)
}

/// `chroot`: everyone is root here (CAP_SYS_CHROOT).
pub(super) fn sys_chroot(path: usize) -> R {
    let path = getname(path)?;
    let mut k = lock();
    let at = at_cwd(&k, current());
    let ino = k.vfs.lookup(at, &path, true)?;
    if !k.vfs.inode(ino).is_dir() {
        return Err(Errno::ENOTDIR);
    }
    let fs = k.tasks.get(current()).map_or(0, |t| t.fs);
    k.vfs.iget(ino);
    let old = core::mem::replace(&mut k.vfs.fs_structs.get_mut(&fs).ok_or(Errno::EINVAL)?.root, ino);
    k.vfs.iput(old);
    Ok(0)
}

pub(super) fn sys_getcwd(buf: usize, size: usize) -> R {
    let path = {
        let k = lock();
        let at = at_cwd(&k, current());
        k.vfs.d_path(at.root, at.dir).ok_or(Errno::ENOENT)?
    };
    if path.len() + 1 > size {
        return Err(Errno::ERANGE);
    }
    let mut out = path;
    out.push(0);
    copy_to_user(buf, &out)?;
    Ok(out.len() as isize)
}

pub(super) fn sys_umask(mask: u32) -> R {
    let mut k = lock();
    let fs = k.tasks.get(current()).map_or(0, |t| t.fs);
    let f = k.vfs.fs_structs.get_mut(&fs).ok_or(Errno::EINVAL)?;
    Ok(core::mem::replace(&mut f.umask, mask & 0o777) as isize)
}

const MS_REMOUNT: u64 = 32;
const MS_BIND: u64 = 4096;
const MS_MOVE: u64 = 8192;

/// `mount(source, target, type, flags, data)`: a new tmpfs (or ramfs),
/// or a procfs, on a directory; other filesystem types: ENODEV; remount, bind and
/// move: EINVAL here.
pub(super) fn sys_mount(_source: usize, target: usize, fstype: usize, flags: u64, _data: usize) -> R {
    let target = getname(target)?;
    let ty = strncpy_from_user(fstype, 64)?;
    if flags & (MS_REMOUNT | MS_BIND | MS_MOVE) != 0 {
        return Err(Errno::EINVAL);
    }
    if ty != b"tmpfs" && ty != b"ramfs" && ty != b"proc" {
        return Err(Errno::ENODEV);
    }
    let mut k = lock();
    let at = at_cwd(&k, current());
    let ino = k.vfs.lookup(at, &target, true)?;
    if ty == b"proc" {
        k.vfs.mount_proc(ino)?;
        proc_refresh(&mut k);
        return Ok(0);
    }
    let max = k.vfs.sb_of(k.vfs.root).max_bytes;
    k.vfs.mount_tmpfs(ino, max).map(|_| 0)
}

/// `umount2(target, flags)`: the mount whose root `target` names.
pub(super) fn sys_umount2(target: usize, flags: u32) -> R {
    if flags & !0xf != 0 {
        return Err(Errno::EINVAL);
    }
    let target = getname(target)?;
    let mut k = lock();
    let at = at_cwd(&k, current());
    let ino = k.vfs.lookup(at, &target, flags & 8 == 0)?;
    k.vfs.umount(ino).map(|_| 0)
}

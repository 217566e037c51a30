//! File-descriptor calls (Linux fs/read_write.c, fs/open.c `close`,
//! fs/file.c `dup`/`dup3`, fs/fcntl.c, fs/ioctl.c, fs/readdir.c, fs/stat.c
//! `fstat`): each looks the descriptor up (`fdget`, which holds a
//! reference on the file for the call) and then works on the file with
//! the kernel lock held, moving data between user memory and a kernel
//! buffer with the lock released. The console is the character device
//! /dev/console (and /dev/tty): `read` sleeps on the tty for a line.

use alloc::vec;
use alloc::vec::Vec;

use super::table::R;
use crate::arch::aarch64::process::current;
use crate::arch::aarch64::uaccess::{access_ok, copy_from_user, copy_to_user};
use crate::fs::devices::CharDev;
use crate::fs::file::{File, FileId, FileKind};
use crate::fs::inode::{Ino, InodeKind, S_IFIFO, Stat, mkdev};
use crate::fs::o::*;
use crate::kernel::fs::wake_pipes;
use crate::kernel::sched::schedule_locked;
use crate::kernel::{Kernel, lock};
use crate::mm::Errno;
use crate::sched::TaskState;

/// Bytes moved per pass with the lock held.
const CHUNK: usize = 16 * 1024;
/// Most iovecs of one readv/writev (`UIO_MAXIOV`).
const UIO_MAXIOV: usize = 1024;
/// Largest count a read or write takes (`MAX_RW_COUNT`).
const MAX_RW_COUNT: usize = 0x7fff_f000;

/// The current task's `files_struct` (EBADF if it has none).
pub(super) fn my_files(k: &Kernel) -> Result<u32, Errno> {
    match k.tasks.get(current()).map_or(0, |t| t.files) {
        0 => Err(Errno::EBADF),
        f => Ok(f),
    }
}

/// `fdget`: the file `fd` names, with a reference held until [`fdput`].
pub(super) fn fdget(fd: i32) -> Result<(FileId, File), Errno> {
    let mut k = lock();
    let files = my_files(&k)?;
    let f = k.vfs.fd_get(files, fd)?;
    k.vfs.fget(f.file);
    Ok((f.file, k.vfs.files[&f.file]))
}

/// `fdput`.
pub(super) fn fdput(id: FileId) {
    let mut k = lock();
    if let Some(p) = k.vfs.fput(id) {
        wake_pipes(&mut k, &[p]);
    }
}

/// Runs `f` on the file `fd` names, holding it for the call.
fn with_fd(fd: i32, f: impl FnOnce(FileId, File) -> R) -> R {
    let (id, file) = fdget(fd)?;
    let r = f(id, file);
    fdput(id);
    r
}

/// The device an inode file is, if it is a character device.
pub(super) fn chrdev(k: &Kernel, f: &File) -> Option<CharDev> {
    match f.kind {
        FileKind::Inode(i) if k.vfs.inode(i).kind() == InodeKind::Chr => CharDev::of(k.vfs.inode(i).rdev),
        _ => None,
    }
}

// ----- read and write ---------------------------------------------------------

pub(super) fn sys_read(fd: i32, buf: usize, len: usize) -> R {
    if !access_ok(buf, len) {
        return Err(Errno::EFAULT);
    }
    with_fd(fd, |id, f| do_read(id, f, buf, len.min(MAX_RW_COUNT), None))
}

pub(super) fn sys_write(fd: i32, buf: usize, len: usize) -> R {
    if !access_ok(buf, len) {
        return Err(Errno::EFAULT);
    }
    with_fd(fd, |id, f| do_write(id, f, buf, len.min(MAX_RW_COUNT), None))
}

pub(super) fn sys_pread64(fd: i32, buf: usize, len: usize, pos: i64) -> R {
    if pos < 0 {
        return Err(Errno::EINVAL);
    }
    if !access_ok(buf, len) {
        return Err(Errno::EFAULT);
    }
    with_fd(fd, |id, f| do_read(id, f, buf, len.min(MAX_RW_COUNT), Some(pos as u64)))
}

pub(super) fn sys_pwrite64(fd: i32, buf: usize, len: usize, pos: i64) -> R {
    if pos < 0 {
        return Err(Errno::EINVAL);
    }
    if !access_ok(buf, len) {
        return Err(Errno::EFAULT);
    }
    with_fd(fd, |id, f| do_write(id, f, buf, len.min(MAX_RW_COUNT), Some(pos as u64)))
}

/// The iovecs of a readv/writev (`import_iovec`): EINVAL for too many or
/// a total that overflows, EFAULT for an unreadable array or buffer.
fn import_iovec(iov: usize, cnt: usize) -> Result<Vec<(usize, usize)>, Errno> {
    if cnt > UIO_MAXIOV {
        return Err(Errno::EINVAL);
    }
    let mut raw = vec![0u8; cnt * 16];
    copy_from_user(&mut raw, iov)?;
    let mut v = Vec::with_capacity(cnt);
    let mut total: usize = 0;
    for c in raw.chunks(16) {
        let base = u64::from_le_bytes(c[..8].try_into().unwrap()) as usize;
        let len = u64::from_le_bytes(c[8..].try_into().unwrap()) as usize;
        if len > isize::MAX as usize {
            return Err(Errno::EINVAL);
        }
        total = total.checked_add(len).ok_or(Errno::EINVAL)?;
        if !access_ok(base, len) {
            return Err(Errno::EFAULT);
        }
        v.push((base, len));
    }
    Ok(v)
}

/// `do_loop_readv_writev`: `op` on each buffer of the vector in turn,
/// until one comes back short; an error after some bytes moved ends the
/// call with the count so far.
fn rw_vector(fd: i32, iov: usize, cnt: usize, op: fn(FileId, File, usize, usize, Option<u64>) -> R) -> R {
    let v = import_iovec(iov, cnt)?;
    with_fd(fd, |id, f| {
        let mut done = 0;
        for (base, len) in v {
            match op(id, f, base, len, None) {
                Ok(n) => {
                    done += n as usize;
                    if (n as usize) < len {
                        break;
                    }
                }
                Err(e) if done == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(done as isize)
    })
}

pub(super) fn sys_readv(fd: i32, iov: usize, cnt: usize) -> R {
    rw_vector(fd, iov, cnt, do_read)
}

pub(super) fn sys_writev(fd: i32, iov: usize, cnt: usize) -> R {
    rw_vector(fd, iov, cnt, do_write)
}

/// `vfs_read`: `len` bytes into user `buf`, at `pos` (pread) or the
/// file's offset.
fn do_read(id: FileId, f: File, buf: usize, len: usize, pos: Option<u64>) -> R {
    if !f.readable() {
        return Err(Errno::EBADF);
    }
    let ino = match f.kind {
        FileKind::Pipe { pipe, .. } => {
            if pos.is_some() {
                return Err(Errno::ESPIPE);
            }
            return super::pipe::pipe_read(pipe, f.flags, buf, len);
        }
        FileKind::Inode(i) => i,
    };
    let (kind, dev) = {
        let k = lock();
        (k.vfs.inode(ino).kind(), chrdev(&k, &f))
    };
    match (kind, dev) {
        (InodeKind::Dir, _) => Err(Errno::EISDIR),
        (InodeKind::Reg, _) => read_file(id, ino, buf, len, pos),
        (_, Some(d)) if d.is_tty() => {
            if pos.is_some() {
                return Err(Errno::ESPIPE);
            }
            // Linux skips job control for /dev/console (`job_control`:
            // "we're the console"); /dev/tty gets it.
            tty_read(buf, len, d == CharDev::Tty)
        }
        (_, Some(d)) => {
            let mut chunk = vec![0u8; len.min(CHUNK)];
            let n = d.read(&mut lock().vfs, &mut chunk);
            copy_to_user(buf, &chunk[..n])?;
            Ok(n as isize)
        }
        _ => Err(Errno::EINVAL),
    }
}

/// A regular file's bytes, a chunk at a time.
fn read_file(id: FileId, ino: Ino, buf: usize, len: usize, pos: Option<u64>) -> R {
    let mut chunk = vec![0u8; len.min(CHUNK)];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(CHUNK);
        let got = {
            let mut k = lock();
            let at = match pos {
                Some(p) => p + done as u64,
                None => k.vfs.files[&id].pos,
            };
            let got = k.vfs.read_at(ino, at, &mut chunk[..n]);
            if pos.is_none() {
                k.vfs.files.get_mut(&id).expect("file").pos = at + got as u64;
            }
            got
        };
        if let Err(e) = copy_to_user(buf + done, &chunk[..got]) {
            return if done > 0 { Ok(done as isize) } else { Err(e) };
        }
        done += got;
        if got < n {
            break;
        }
    }
    Ok(done as isize)
}

/// `vfs_write`: `len` bytes from user `buf`.
fn do_write(id: FileId, f: File, buf: usize, len: usize, pos: Option<u64>) -> R {
    if !f.writable() {
        return Err(Errno::EBADF);
    }
    let ino = match f.kind {
        FileKind::Pipe { pipe, .. } => {
            if pos.is_some() {
                return Err(Errno::ESPIPE);
            }
            return super::pipe::pipe_write(pipe, f.flags, buf, len);
        }
        FileKind::Inode(i) => i,
    };
    let (kind, dev) = {
        let k = lock();
        (k.vfs.inode(ino).kind(), chrdev(&k, &f))
    };
    match (kind, dev) {
        (InodeKind::Reg, _) => write_file(id, ino, f.flags, buf, len, pos),
        (_, Some(d)) if d.is_tty() => {
            if pos.is_some() {
                return Err(Errno::ESPIPE);
            }
            console_write(buf, len)
        }
        (_, Some(d)) => d.write(len).map(|n| n as isize),
        _ => Err(Errno::EINVAL),
    }
}

/// A regular file's new bytes, a chunk at a time (O_APPEND: at the end).
fn write_file(id: FileId, ino: Ino, flags: u32, buf: usize, len: usize, pos: Option<u64>) -> R {
    let mut chunk = vec![0u8; len.min(CHUNK)];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(CHUNK);
        if let Err(e) = copy_from_user(&mut chunk[..n], buf + done) {
            return if done > 0 { Ok(done as isize) } else { Err(e) };
        }
        let mut k = lock();
        let at = match pos {
            Some(p) => p + done as u64,
            None if flags & O_APPEND != 0 => k.vfs.inode(ino).size(),
            None => k.vfs.files[&id].pos,
        };
        match k.vfs.write_at(ino, at, &chunk[..n]) {
            Ok(w) => {
                if pos.is_none() {
                    k.vfs.files.get_mut(&id).expect("file").pos = at + w as u64;
                }
                done += w;
            }
            Err(e) => return if done > 0 { Ok(done as isize) } else { Err(e) },
        }
    }
    Ok(done as isize)
}

/// The console's `write`.
fn console_write(buf: usize, len: usize) -> R {
    let mut chunk = [0u8; 256];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(chunk.len());
        if let Err(e) = copy_from_user(&mut chunk[..n], buf + done) {
            return if done > 0 { Ok(done as isize) } else { Err(e) };
        }
        crate::console::write_bytes(&chunk[..n]);
        done += n;
    }
    Ok(done as isize)
}

/// The console's `read` (`n_tty_read`, canonical mode): sleep until a
/// line (or an end-of-file mark) is ready, then copy up to `len` bytes of
/// it. Without an input driver, the console is at end of file. A signal
/// ends the wait (EINTR, or a restart under SA_RESTART); the buffer is
/// checked before anything is taken from the tty, so a bad pointer loses
/// no input.
fn tty_read(buf: usize, len: usize, job_control: bool) -> R {
    let mut k = lock();
    let me = current();
    loop {
        if !k.tty.has_input() {
            return Ok(0);
        }
        if job_control {
            super::tty::check_read(&mut k, me)?;
        }
        if let Some(data) = k.tty.read(len) {
            drop(k);
            copy_to_user(buf, &data)?;
            return Ok(data.len() as isize);
        }
        if k.tasks.signal_pending(me) {
            return Err(Errno::ERESTARTSYS);
        }
        let cpu = crate::arch::aarch64::cpu::smp_processor_id();
        let k2 = &mut *k;
        k2.tty.read_wait.prepare_to_wait(&mut k2.sched, cpu, TaskState::Interruptible, false);
        schedule_locked(&mut k);
        let cpu = crate::arch::aarch64::cpu::smp_processor_id();
        let k2 = &mut *k;
        k2.tty.read_wait.finish_wait(&mut k2.sched, cpu);
    }
}

// ----- descriptors --------------------------------------------------------------

pub(super) fn sys_close(fd: i32) -> R {
    let mut k = lock();
    let files = my_files(&k)?;
    if let Some(p) = k.vfs.fd_close(files, fd)? {
        wake_pipes(&mut k, &[p]);
    }
    Ok(0)
}

/// `dup`, and `fcntl(F_DUPFD[_CLOEXEC])` from `min`.
fn dup_from(fd: i32, min: usize, cloexec: bool) -> R {
    let mut k = lock();
    let files = my_files(&k)?;
    let f = k.vfs.fd_get(files, fd)?;
    k.vfs.fget(f.file);
    k.vfs.fd_alloc(files, min, f.file, cloexec).map(|n| n as isize)
}

pub(super) fn sys_dup(fd: i32) -> R {
    dup_from(fd, 0, false)
}

pub(super) fn sys_dup3(old: i32, new: i32, flags: u32) -> R {
    if flags & !O_CLOEXEC != 0 || old == new {
        return Err(Errno::EINVAL);
    }
    let mut k = lock();
    let files = my_files(&k)?;
    if let Some(p) = k.vfs.fd_dup3(files, old, new, flags & O_CLOEXEC != 0)? {
        wake_pipes(&mut k, &[p]);
    }
    Ok(new as isize)
}

const F_DUPFD: u32 = 0;
const F_GETFD: u32 = 1;
const F_SETFD: u32 = 2;
const F_GETFL: u32 = 3;
const F_SETFL: u32 = 4;
const F_DUPFD_CLOEXEC: u32 = 1030;
const FD_CLOEXEC: u64 = 1;

pub(super) fn sys_fcntl(fd: i32, cmd: u32, arg: u64) -> R {
    match cmd {
        F_DUPFD | F_DUPFD_CLOEXEC => {
            if arg >= crate::fs::fdtable::NR_OPEN as u64 {
                return Err(Errno::EINVAL);
            }
            dup_from(fd, arg as usize, cmd == F_DUPFD_CLOEXEC)
        }
        F_GETFD | F_SETFD | F_GETFL | F_SETFL => {
            let mut k = lock();
            let files = my_files(&k)?;
            let d = k.vfs.fd_get(files, fd)?;
            match cmd {
                F_GETFD => Ok(d.cloexec as isize),
                F_SETFD => {
                    k.vfs.files_structs.get_mut(&files).expect("files").set_cloexec(fd as usize, arg & FD_CLOEXEC != 0);
                    Ok(0)
                }
                F_GETFL => Ok(k.vfs.files[&d.file].flags as isize),
                _ => {
                    let f = k.vfs.files.get_mut(&d.file).expect("file");
                    if f.flags & O_PATH != 0 {
                        return Err(Errno::EBADF);
                    }
                    f.flags = (f.flags & !SETFL_MASK) | (arg as u32 & SETFL_MASK);
                    Ok(0)
                }
            }
        }
        _ => Err(Errno::EINVAL),
    }
}

pub(super) fn sys_lseek(fd: i32, off: i64, whence: u32) -> R {
    with_fd(fd, |id, f| {
        let mut k = lock();
        if chrdev(&k, &f).is_some_and(CharDev::is_tty) {
            return Err(Errno::ESPIPE);
        }
        k.vfs.lseek(id, off, whence).map(|p| p as isize)
    })
}

pub(super) fn sys_getdents64(fd: i32, buf: usize, count: usize) -> R {
    if !access_ok(buf, count) {
        return Err(Errno::EFAULT);
    }
    with_fd(fd, |id, _| {
        let recs = {
            let mut k = lock();
            crate::kernel::fs::proc_refresh(&mut k);
            let root = crate::kernel::fs::at_cwd(&k, current()).root;
            k.vfs.getdents64(id, root, count.min(64 * 1024))?
        };
        copy_to_user(buf, &recs)?;
        Ok(recs.len() as isize)
    })
}

// ----- ioctl ----------------------------------------------------------------------

const FIONREAD: u32 = 0x541b;
const FIONBIO: u32 = 0x5421;
const FIONCLEX: u32 = 0x5450;
const FIOCLEX: u32 = 0x5451;

pub(super) fn sys_ioctl(fd: i32, cmd: u32, arg: usize) -> R {
    with_fd(fd, |id, f| {
        let (tty, pipe_len, files) = {
            let k = lock();
            let pl = match f.kind {
                FileKind::Pipe { pipe, .. } => k.vfs.pipes.get(&pipe).map(|p| p.len()),
                FileKind::Inode(i) if k.vfs.inode(i).kind() == InodeKind::Reg => {
                    Some(k.vfs.inode(i).size().saturating_sub(f.pos) as usize)
                }
                _ => None,
            };
            (chrdev(&k, &f).is_some_and(CharDev::is_tty), pl, my_files(&k)?)
        };
        match cmd {
            FIOCLEX | FIONCLEX => {
                lock().vfs.files_structs.get_mut(&files).expect("files").set_cloexec(fd as usize, cmd == FIOCLEX);
                Ok(0)
            }
            FIONBIO => {
                let mut b = [0u8; 4];
                copy_from_user(&mut b, arg)?;
                let on = u32::from_le_bytes(b) != 0;
                let mut k = lock();
                let file = k.vfs.files.get_mut(&id).expect("file");
                file.flags = if on { file.flags | O_NONBLOCK } else { file.flags & !O_NONBLOCK };
                Ok(0)
            }
            FIONREAD if pipe_len.is_some() => {
                copy_to_user(arg, &(pipe_len.unwrap_or(0) as u32).to_le_bytes())?;
                Ok(0)
            }
            _ if tty => super::tty::tty_ioctl(cmd, arg).unwrap_or(Err(Errno::ENOTTY)),
            _ => Err(Errno::ENOTTY),
        }
    })
}

// ----- attributes of open files -------------------------------------------------------

/// What `fstat` says about an open file: its inode's `stat`, or for a
/// pipe a FIFO of pipefs (as Linux's anonymous pipes are).
pub(super) fn file_stat(k: &Kernel, f: &File) -> Stat {
    match f.kind {
        FileKind::Inode(i) => k.vfs.inode(i).stat(k.vfs.sb_of(i).dev),
        FileKind::Pipe { pipe, fifo: Some(i), .. } => {
            let mut s = k.vfs.inode(i).stat(k.vfs.sb_of(i).dev);
            s.size = k.vfs.pipes.get(&pipe).map_or(0, |p| p.len() as u64);
            s
        }
        FileKind::Pipe { pipe, .. } => Stat {
            dev: mkdev(0, 12),
            ino: (1u64 << 32) | u64::from(pipe),
            mode: S_IFIFO | 0o600,
            nlink: 1,
            blksize: 4096,
            ..Stat::default()
        },
    }
}

pub(super) fn sys_fstat(fd: i32, buf: usize) -> R {
    let st = with_fd_stat(fd)?;
    copy_to_user(buf, &st.encode_stat())?;
    Ok(0)
}

/// The `stat` of the file `fd` names.
pub(super) fn with_fd_stat(fd: i32) -> Result<Stat, Errno> {
    let k = lock();
    let files = my_files(&k)?;
    let d = k.vfs.fd_get(files, fd)?;
    Ok(file_stat(&k, &k.vfs.files[&d.file]))
}

/// The inode an open file has (EBADF for none, EINVAL for a pipe).
fn fd_inode(fd: i32) -> Result<(Ino, File), Errno> {
    let k = lock();
    let files = my_files(&k)?;
    let d = k.vfs.fd_get(files, fd)?;
    let f = k.vfs.files[&d.file];
    match f.kind {
        FileKind::Inode(i) => Ok((i, f)),
        FileKind::Pipe { fifo: Some(i), .. } => Ok((i, f)),
        FileKind::Pipe { .. } => Err(Errno::EINVAL),
    }
}

pub(super) fn sys_ftruncate(fd: i32, len: i64) -> R {
    if len < 0 {
        return Err(Errno::EINVAL);
    }
    let (ino, f) = fd_inode(fd)?;
    let mut k = lock();
    if !f.writable() || k.vfs.inode(ino).kind() != InodeKind::Reg {
        return Err(Errno::EINVAL);
    }
    k.vfs.truncate(ino, len as u64).map(|_| 0)
}

pub(super) fn sys_fchmod(fd: i32, mode: u32) -> R {
    let (ino, _) = fd_inode(fd)?;
    let mut k = lock();
    let who = crate::kernel::fs::at_cwd(&k, current()).who;
    if who.uid != 0 && k.vfs.inode(ino).uid != who.uid {
        return Err(Errno::EPERM);
    }
    k.vfs.chmod(ino, mode);
    Ok(0)
}

pub(super) fn sys_fchown(fd: i32, uid: u32, gid: u32) -> R {
    let (ino, _) = fd_inode(fd)?;
    let mut k = lock();
    let who = crate::kernel::fs::at_cwd(&k, current()).who;
    let i = k.vfs.inode(ino);
    if !crate::fs::namei::may_chown(who, i.uid, i.gid, uid, gid) {
        return Err(Errno::EPERM);
    }
    k.vfs.chown(ino, uid, gid);
    Ok(0)
}

pub(super) fn sys_fchdir(fd: i32) -> R {
    let (ino, _) = fd_inode(fd).map_err(|e| if e == Errno::EINVAL { Errno::ENOTDIR } else { e })?;
    let mut k = lock();
    let fs = k.tasks.get(current()).map_or(0, |t| t.fs);
    k.vfs.chdir(fs, ino).map(|_| 0)
}

/// `fsync`, `fdatasync`: tmpfs has nothing to write back.
pub(super) fn sys_fsync(fd: i32) -> R {
    fdget(fd).map(|(id, _)| {
        fdput(id);
        0
    })
}

/// `sendfile(out, in, offset, count)`: from a regular file (or a file
/// that reads like one) to any writable file, through a kernel buffer.
pub(super) fn sys_sendfile(out_fd: i32, in_fd: i32, offset: usize, count: usize) -> R {
    let mut pos = None;
    if offset != 0 {
        let mut b = [0u8; 8];
        copy_from_user(&mut b, offset)?;
        let p = i64::from_le_bytes(b);
        if p < 0 {
            return Err(Errno::EINVAL);
        }
        pos = Some(p as u64);
    }
    let (in_id, in_f) = fdget(in_fd)?;
    let r = (|| {
        let (out_id, out_f) = fdget(out_fd)?;
        let r = (|| {
            if !in_f.readable() || !out_f.writable() {
                return Err(Errno::EBADF);
            }
            let FileKind::Inode(ino) = in_f.kind else { return Err(Errno::EINVAL) };
            let mut done = 0usize;
            let mut chunk = vec![0u8; count.min(CHUNK)];
            while done < count {
                let n = (count - done).min(CHUNK);
                let got = {
                    let mut k = lock();
                    if k.vfs.inode(ino).kind() != InodeKind::Reg {
                        return Err(Errno::EINVAL);
                    }
                    let at = pos.map_or(k.vfs.files[&in_id].pos, |p| p + done as u64);
                    let got = k.vfs.read_at(ino, at, &mut chunk[..n]);
                    if pos.is_none() {
                        k.vfs.files.get_mut(&in_id).expect("file").pos = at + got as u64;
                    }
                    got
                };
                if got == 0 {
                    break;
                }
                let w = kernel_write(out_id, out_f, &chunk[..got]);
                match w {
                    Ok(w) => done += w,
                    Err(e) if done == 0 => return Err(e),
                    Err(_) => break,
                }
                if got < n {
                    break;
                }
            }
            Ok(done)
        })();
        fdput(out_id);
        r
    })();
    fdput(in_id);
    let done = r?;
    if let Some(p) = pos {
        copy_to_user(offset, &(p + done as u64).to_le_bytes())?;
    }
    Ok(done as isize)
}

/// `kernel_write`: bytes from a kernel buffer to an open file.
fn kernel_write(id: FileId, f: File, data: &[u8]) -> Result<usize, Errno> {
    match f.kind {
        FileKind::Pipe { pipe, .. } => super::pipe::pipe_write_kernel(pipe, f.flags, data),
        FileKind::Inode(ino) => {
            let mut k = lock();
            if let Some(d) = chrdev(&k, &f) {
                drop(k);
                if d.is_tty() {
                    crate::console::write_bytes(data);
                    return Ok(data.len());
                }
                return d.write(data.len());
            }
            if k.vfs.inode(ino).kind() != InodeKind::Reg {
                return Err(Errno::EINVAL);
            }
            let at = if f.flags & O_APPEND != 0 { k.vfs.inode(ino).size() } else { k.vfs.files[&id].pos };
            let w = k.vfs.write_at(ino, at, data)?;
            k.vfs.files.get_mut(&id).expect("file").pos = at + w as u64;
            Ok(w)
        }
    }
}

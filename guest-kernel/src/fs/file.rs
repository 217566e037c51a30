//! `struct file`: an open file description, shared by the descriptors
//! `dup` and `fork` make (ULK ch. 12, "File Objects"; Linux
//! fs/file_table.c `fput`, fs/open.c `do_sys_openat2`, fs/namei.c
//! `path_openat`/`do_open`, fs/read_write.c `vfs_llseek`, fs/readdir.c
//! `getdents64`); and the reference counting of the processes'
//! `files_struct` and `fs_struct` (fs/file.c `dup_fd`, `put_files_struct`,
//! fs/fs_struct.c `copy_fs_struct`, `free_fs_struct`).

use alloc::vec::Vec;

use super::Vfs;
use super::fdtable::{Fd, FilesStruct};
use super::fs_struct::FsStruct;
use super::inode::{Ino, InodeKind, S_IFMT, S_IFREG};
use super::namei::{At, LastType, MAY_EXEC, MAY_READ, MAY_WRITE, Who};
use super::o::*;
use super::pipe::Pipe;
use crate::mm::Errno;

/// An open file's number in [`Vfs::files`].
pub type FileId = u32;

/// What an open file reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A file with an inode: regular file, directory, device, or a
    /// symlink opened with O_PATH.
    Inode(Ino),
    /// One or both ends of a pipe (`fifo`: the FIFO's inode, for a
    /// named pipe).
    Pipe { pipe: u32, read: bool, write: bool, fifo: Option<Ino> },
}

/// `struct file`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct File {
    pub kind: FileKind,
    /// `f_flags`: the access mode and status flags (O_APPEND, O_NONBLOCK...).
    pub flags: u32,
    /// `f_pos`: the offset (a directory's: entries already listed).
    pub pos: u64,
    /// `f_count`.
    pub refs: u32,
}

impl File {
    pub fn readable(&self) -> bool {
        self.flags & O_PATH == 0 && self.flags & O_ACCMODE != O_WRONLY
    }
    pub fn writable(&self) -> bool {
        self.flags & O_PATH == 0 && matches!(self.flags & O_ACCMODE, O_WRONLY | O_RDWR)
    }
}

/// `lseek`'s whence.
pub const SEEK_SET: u32 = 0;
pub const SEEK_CUR: u32 = 1;
pub const SEEK_END: u32 = 2;

/// What opening a path found, for the caller to finish: most files are
/// open at once; a FIFO needs its other end (which may mean waiting).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opened {
    File(FileId),
    Fifo(Ino),
}

impl Vfs {
    /// A new open file (one reference) on `kind`, taking the references it
    /// holds: the inode's, or the pipe ends'.
    pub fn alloc_file(&mut self, kind: FileKind, flags: u32) -> FileId {
        match kind {
            FileKind::Inode(i) => self.iget(i),
            FileKind::Pipe { pipe, read, write, fifo } => {
                let p = self.pipes.get_mut(&pipe).expect("pipe");
                if read {
                    p.readers += 1;
                    p.r_counter += 1;
                }
                if write {
                    p.writers += 1;
                    p.w_counter += 1;
                }
                if let Some(i) = fifo {
                    self.iget(i);
                }
            }
        }
        let id = self.id();
        self.files.insert(id, File { kind, flags, pos: 0, refs: 1 });
        id
    }

    /// `get_file`: one more reference to `id`.
    pub fn fget(&mut self, id: FileId) {
        self.files.get_mut(&id).expect("file").refs += 1;
    }

    /// `fput`: one reference fewer; the last one releases the file.
    /// Returns a pipe whose waiters must be woken (an end was closed).
    #[must_use = "wake the pipe's waiters"]
    pub fn fput(&mut self, id: FileId) -> Option<u32> {
        let f = self.files.get_mut(&id).expect("file");
        f.refs -= 1;
        if f.refs > 0 {
            return None;
        }
        let f = self.files.remove(&id).expect("file");
        match f.kind {
            FileKind::Inode(i) => {
                self.iput(i);
                None
            }
            FileKind::Pipe { pipe, read, write, fifo } => {
                let p = self.pipes.get_mut(&pipe).expect("pipe");
                if read {
                    p.readers -= 1;
                }
                if write {
                    p.writers -= 1;
                }
                let gone = p.readers == 0 && p.writers == 0 && p.rd_wait.is_empty() && p.wr_wait.is_empty();
                if gone {
                    self.pipes.remove(&pipe);
                }
                if let Some(i) = fifo {
                    if gone {
                        self.inode_mut(i).pipe = None;
                    }
                    self.iput(i);
                }
                (!gone).then_some(pipe)
            }
        }
    }

    /// `pipe2`'s core: a new pipe and its read and write files.
    pub fn new_pipe(&mut self, flags: u32) -> (FileId, FileId) {
        let id = self.id();
        self.pipes.insert(id, Pipe::new());
        let st = flags & O_NONBLOCK;
        let r = self.alloc_file(FileKind::Pipe { pipe: id, read: true, write: false, fifo: None }, O_RDONLY | st);
        let w = self.alloc_file(FileKind::Pipe { pipe: id, read: false, write: true, fifo: None }, O_WRONLY | st);
        (r, w)
    }

    /// The pipe of the FIFO `ino` (made at its first open).
    pub fn fifo_pipe(&mut self, ino: Ino) -> u32 {
        if let Some(p) = self.inode(ino).pipe {
            return p;
        }
        let id = self.id();
        self.pipes.insert(id, Pipe::new());
        self.inode_mut(ino).pipe = Some(id);
        id
    }

    /// `do_sys_openat2` up to the point where the file exists: the path
    /// walk with `O_CREAT`/`O_EXCL`/`O_NOFOLLOW`/`O_DIRECTORY`/`O_TRUNC`
    /// (fs/namei.c `open_last_lookups`, `do_open`). A new file gets `mode`
    /// less the `umask`, and the caller's ids.
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        &mut self,
        at: At,
        path: &[u8],
        flags: u32,
        mode: u32,
        umask: u32,
        uid: u32,
        gid: u32,
    ) -> Result<Opened, Errno> {
        if flags & O_TMPFILE == O_TMPFILE {
            return Err(Errno::EOPNOTSUPP);
        }
        let follow = flags & O_NOFOLLOW == 0;
        let ino = if flags & O_CREAT != 0 {
            let p = self.lookup_parent(at, path)?;
            if p.kind != LastType::Norm {
                return Err(Errno::EISDIR);
            }
            match self.lookup_last(at.root, &p)? {
                Some(_) if flags & O_EXCL != 0 => return Err(Errno::EEXIST),
                Some(i) if self.inode(i).kind() == InodeKind::Symlink => {
                    if !follow {
                        return Err(Errno::ELOOP);
                    }
                    self.follow_last_link(at.root, &p, i)?
                }
                Some(i) => {
                    if p.trailing_slash && !self.inode(i).is_dir() {
                        return Err(Errno::ENOTDIR);
                    }
                    i
                }
                None => {
                    if p.trailing_slash {
                        return Err(Errno::EISDIR);
                    }
                    // may_create: write and search permission on the directory.
                    self.permission(p.dir, at.who, MAY_WRITE | MAY_EXEC)?;
                    let created = self.create(p.dir, &p.last, S_IFREG | (mode & 0o7777 & !umask), 0, uid, gid)?;
                    // A file it has just created is opened whatever its mode.
                    return self.open_inode(created, flags, at.who, true);
                }
            }
        } else {
            self.lookup(at, path, follow)?
        };
        self.open_inode(ino, flags, at.who, false)
    }

    /// The rest of `do_open` for inode `ino`: the checks of its kind and,
    /// unless the call has just created it, `may_open`'s permission for
    /// the access mode (O_TRUNC needs write).
    fn open_inode(&mut self, ino: Ino, flags: u32, who: Who, created: bool) -> Result<Opened, Errno> {
        let kind = self.inode(ino).kind();
        if flags & O_PATH != 0 {
            if flags & O_DIRECTORY != 0 && kind != InodeKind::Dir {
                return Err(Errno::ENOTDIR);
            }
            return Ok(Opened::File(
                self.alloc_file(FileKind::Inode(ino), flags & (O_PATH | O_CLOEXEC | O_DIRECTORY | O_NOFOLLOW)),
            ));
        }
        let acc = flags & O_ACCMODE;
        let writes = acc == O_WRONLY || acc == O_RDWR;
        match kind {
            InodeKind::Symlink => return Err(Errno::ELOOP),
            InodeKind::Dir if writes || flags & O_CREAT != 0 => return Err(Errno::EISDIR),
            k if flags & O_DIRECTORY != 0 && k != InodeKind::Dir => return Err(Errno::ENOTDIR),
            InodeKind::Sock => return Err(Errno::ENXIO),
            InodeKind::Blk => return Err(Errno::ENXIO),
            InodeKind::Chr if super::devices::CharDev::of(self.inode(ino).rdev).is_none() => return Err(Errno::ENXIO),
            _ => {}
        }
        if acc == 3 {
            return Err(Errno::EINVAL);
        }
        if !created {
            let mut mask = match acc {
                O_WRONLY => MAY_WRITE,
                O_RDWR => MAY_READ | MAY_WRITE,
                _ => MAY_READ,
            };
            if flags & O_TRUNC != 0 {
                mask |= MAY_WRITE;
            }
            self.permission(ino, who, mask)?;
        }
        if kind == InodeKind::Fifo {
            return Ok(Opened::Fifo(ino));
        }
        if flags & O_TRUNC != 0 && writes && kind == InodeKind::Reg {
            self.truncate(ino, 0)?;
        }
        let keep = flags & !(O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC);
        Ok(Opened::File(self.alloc_file(FileKind::Inode(ino), keep)))
    }

    /// `vfs_llseek` for a file with an inode (pipes: ESPIPE).
    pub fn lseek(&mut self, id: FileId, off: i64, whence: u32) -> Result<u64, Errno> {
        let f = self.files[&id];
        let FileKind::Inode(ino) = f.kind else { return Err(Errno::ESPIPE) };
        let i = self.inode(ino);
        let base: i64 = match whence {
            SEEK_SET => 0,
            SEEK_CUR => f.pos as i64,
            SEEK_END => i.size() as i64,
            _ => return Err(Errno::EINVAL),
        };
        if i.kind() == InodeKind::Chr {
            // Memory devices and ttys ignore the offset (`noop_llseek` /
            // `no_seek_end_llseek` keep 0).
            return Ok(0);
        }
        let new = base.checked_add(off).ok_or(Errno::EINVAL)?;
        if new < 0 {
            return Err(Errno::EINVAL);
        }
        self.files.get_mut(&id).expect("file").pos = new as u64;
        Ok(new as u64)
    }

    /// `getdents64`: as many `struct linux_dirent64` records of the
    /// directory as fit in `max` bytes, from the file's position ("." and
    /// ".." first, then the names in order); EINVAL if not even the next
    /// one fits, ENOTDIR for a file that is not a directory.
    pub fn getdents64(&mut self, id: FileId, root: Ino, max: usize) -> Result<Vec<u8>, Errno> {
        let f = self.files[&id];
        let FileKind::Inode(dir) = f.kind else { return Err(Errno::ENOTDIR) };
        if !self.inode(dir).is_dir() {
            return Err(Errno::ENOTDIR);
        }
        let mut out = Vec::new();
        let mut pos = f.pos as usize;
        let dead = self.inode(dir).nlink == 0;
        loop {
            let entry: Option<(Vec<u8>, Ino, u8)> = match pos {
                0 => Some((b".".to_vec(), dir, 4)),
                1 => {
                    let up = self.lookup(At::root(root, dir), b"..", false).unwrap_or(dir);
                    Some((b"..".to_vec(), up, 4))
                }
                _ if dead => None,
                n => self
                    .dcache
                    .children(dir, n - 2)
                    .next()
                    .map(|(name, i)| (name.to_vec(), i, self.inode(i).kind().d_type())),
            };
            let Some((name, ino, dtype)) = entry else { break };
            let reclen = (19 + name.len() + 1).next_multiple_of(8);
            if out.len() + reclen > max {
                if out.is_empty() {
                    return Err(Errno::EINVAL);
                }
                break;
            }
            let start = out.len();
            out.extend_from_slice(&ino.to_le_bytes());
            out.extend_from_slice(&((pos + 1) as i64).to_le_bytes());
            out.extend_from_slice(&(reclen as u16).to_le_bytes());
            out.push(dtype);
            out.extend_from_slice(&name);
            out.resize(start + reclen, 0);
            pos += 1;
        }
        self.files.get_mut(&id).expect("file").pos = pos as u64;
        Ok(out)
    }

    // ----- files_struct -------------------------------------------------

    /// A new, empty `files_struct` with one user.
    pub fn files_new(&mut self) -> u32 {
        let id = self.id();
        self.files_structs.insert(id, FilesStruct::new());
        id
    }

    /// `dup_fd`: a copy of `files` (one more reference on every file).
    pub fn files_copy(&mut self, files: u32) -> u32 {
        let mut copy = self.files_structs[&files].clone();
        copy.users = 1;
        let ids: Vec<FileId> = copy.files().collect();
        for f in ids {
            self.fget(f);
        }
        let id = self.id();
        self.files_structs.insert(id, copy);
        id
    }

    /// CLONE_FILES: one more user of `files`.
    pub fn files_share(&mut self, files: u32) {
        self.files_structs.get_mut(&files).expect("files").users += 1;
    }

    /// `put_files_struct`: one user fewer; the last closes every file.
    /// Returns the pipes to wake.
    pub fn files_put(&mut self, files: u32) -> Vec<u32> {
        let fs = self.files_structs.get_mut(&files).expect("files");
        fs.users -= 1;
        if fs.users > 0 {
            return Vec::new();
        }
        let ids = self.files_structs.remove(&files).expect("files").take_all();
        ids.into_iter().filter_map(|f| self.fput(f)).collect()
    }

    /// `do_close_on_exec`. Returns the pipes to wake.
    pub fn close_on_exec(&mut self, files: u32) -> Vec<u32> {
        let ids = self.files_structs.get_mut(&files).expect("files").close_on_exec();
        ids.into_iter().filter_map(|f| self.fput(f)).collect()
    }

    /// `fd_install` at the lowest free descriptor ≥ `min`; on EMFILE the
    /// file's reference is dropped.
    pub fn fd_alloc(&mut self, files: u32, min: usize, file: FileId, cloexec: bool) -> Result<usize, Errno> {
        let r = self.files_structs.get_mut(&files).expect("files").alloc(min, Fd { file, cloexec });
        if r.is_err() {
            let _ = self.fput(file);
        }
        r
    }

    /// The file descriptor `fd` of `files` names (EBADF if none).
    pub fn fd_get(&self, files: u32, fd: i32) -> Result<Fd, Errno> {
        let fd = usize::try_from(fd).map_err(|_| Errno::EBADF)?;
        self.files_structs[&files].get(fd).ok_or(Errno::EBADF)
    }

    /// `close_fd`. Returns a pipe to wake.
    pub fn fd_close(&mut self, files: u32, fd: i32) -> Result<Option<u32>, Errno> {
        let n = usize::try_from(fd).map_err(|_| Errno::EBADF)?;
        let f = self.files_structs.get_mut(&files).expect("files").close(n).ok_or(Errno::EBADF)?;
        Ok(self.fput(f))
    }

    /// `do_dup2`/`dup3`: `newfd` names `oldfd`'s file. Returns a pipe to
    /// wake (the file `newfd` named before, closed).
    pub fn fd_dup3(&mut self, files: u32, oldfd: i32, newfd: i32, cloexec: bool) -> Result<Option<u32>, Errno> {
        let old = self.fd_get(files, oldfd)?;
        let n = usize::try_from(newfd).map_err(|_| Errno::EBADF)?;
        if n >= super::fdtable::NR_OPEN {
            return Err(Errno::EBADF);
        }
        self.fget(old.file);
        let prev = self.files_structs.get_mut(&files).expect("files").install(n, Fd { file: old.file, cloexec });
        Ok(prev.and_then(|p| self.fput(p)))
    }

    // ----- fs_struct -----------------------------------------------------

    /// A new `fs_struct` at `root`, working in `root`.
    pub fn fs_new(&mut self, root: Ino) -> u32 {
        self.iget(root);
        self.iget(root);
        let id = self.id();
        self.fs_structs.insert(id, FsStruct { root, pwd: root, umask: super::fs_struct::DEFAULT_UMASK, users: 1 });
        id
    }

    /// `copy_fs_struct`.
    pub fn fs_copy(&mut self, fs: u32) -> u32 {
        let mut c = self.fs_structs[&fs];
        c.users = 1;
        self.iget(c.root);
        self.iget(c.pwd);
        let id = self.id();
        self.fs_structs.insert(id, c);
        id
    }

    /// CLONE_FS: one more user.
    pub fn fs_share(&mut self, fs: u32) {
        self.fs_structs.get_mut(&fs).expect("fs").users += 1;
    }

    /// `exit_fs`: one user fewer; the last drops the directories.
    pub fn fs_put(&mut self, fs: u32) {
        let f = self.fs_structs.get_mut(&fs).expect("fs");
        f.users -= 1;
        if f.users == 0 {
            let f = self.fs_structs.remove(&fs).expect("fs");
            self.iput(f.root);
            self.iput(f.pwd);
        }
    }

    /// `set_fs_pwd`: `dir` (a directory: ENOTDIR otherwise) becomes the
    /// working directory.
    pub fn chdir(&mut self, fs: u32, dir: Ino) -> Result<(), Errno> {
        if !self.inode(dir).is_dir() {
            return Err(Errno::ENOTDIR);
        }
        self.iget(dir);
        let old = core::mem::replace(&mut self.fs_structs.get_mut(&fs).expect("fs").pwd, dir);
        self.iput(old);
        Ok(())
    }

    /// Whether `ino` is a regular file of mode `mode & S_IFMT`.
    pub fn is_reg(&self, ino: Ino) -> bool {
        self.inode(ino).mode & S_IFMT == S_IFREG
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::pipe::{PipeRead, PipeWrite};
    use crate::fs::testing::vfs;

    fn at(v: &Vfs) -> At {
        At::root(v.root, v.root)
    }

    fn open(v: &mut Vfs, path: &[u8], flags: u32) -> Result<FileId, Errno> {
        match v.open(at(v), path, flags, 0o666, 0o022, 0, 0)? {
            Opened::File(f) => Ok(f),
            Opened::Fifo(_) => panic!("fifo"),
        }
    }

    #[test]
    fn open_create_excl_trunc_and_directory_rules() {
        let mut v = vfs();
        let f = open(&mut v, b"/f", O_CREAT | O_WRONLY).unwrap();
        let FileKind::Inode(ino) = v.files[&f].kind else { panic!() };
        assert_eq!(v.inode(ino).mode, S_IFREG | 0o644, "umask applied");
        v.write_at(ino, 0, b"abc").unwrap();
        assert_eq!(open(&mut v, b"/f", O_CREAT | O_EXCL | O_WRONLY), Err(Errno::EEXIST));
        assert_eq!(open(&mut v, b"/f/", O_RDONLY), Err(Errno::ENOTDIR));
        assert_eq!(open(&mut v, b"/f", O_RDONLY | O_DIRECTORY), Err(Errno::ENOTDIR));
        assert_eq!(open(&mut v, b"/", O_WRONLY), Err(Errno::EISDIR));
        assert_eq!(open(&mut v, b"/new/", O_CREAT | O_WRONLY), Err(Errno::EISDIR));
        assert_eq!(open(&mut v, b"/nodir/x", O_CREAT | O_WRONLY), Err(Errno::ENOENT));
        let g = open(&mut v, b"/f", O_RDWR | O_TRUNC).unwrap();
        assert_eq!(v.inode(ino).size(), 0);
        v.symlink(v.root, b"l", b"f", 0, 0).unwrap();
        assert_eq!(open(&mut v, b"/l", O_RDONLY | O_NOFOLLOW), Err(Errno::ELOOP));
        assert!(open(&mut v, b"/l", O_RDONLY).is_ok());
        let _ = v.fput(f);
        let _ = v.fput(g);
    }

    #[test]
    fn lseek_and_getdents64() {
        let mut v = vfs();
        let f = open(&mut v, b"/a", O_CREAT | O_RDWR).unwrap();
        let FileKind::Inode(ino) = v.files[&f].kind else { panic!() };
        v.write_at(ino, 0, b"12345").unwrap();
        assert_eq!(v.lseek(f, -2, SEEK_END), Ok(3));
        assert_eq!(v.lseek(f, 1, SEEK_CUR), Ok(4));
        assert_eq!(v.lseek(f, -10, SEEK_CUR), Err(Errno::EINVAL));
        assert_eq!(v.lseek(f, 0, 7), Err(Errno::EINVAL));
        open(&mut v, b"/b", O_CREAT | O_RDWR).unwrap();
        let d = open(&mut v, b"/", O_RDONLY | O_DIRECTORY).unwrap();
        assert_eq!(v.getdents64(d, v.root, 10), Err(Errno::EINVAL), "too small for one record");
        let recs = v.getdents64(d, v.root, 4096).unwrap();
        let mut names = Vec::new();
        let mut off = 0;
        while off < recs.len() {
            let reclen = u16::from_le_bytes([recs[off + 16], recs[off + 17]]) as usize;
            assert_eq!(reclen % 8, 0);
            let name = &recs[off + 19..off + reclen];
            names.push(name[..name.iter().position(|&c| c == 0).unwrap()].to_vec());
            off += reclen;
        }
        assert_eq!(names, [b".".to_vec(), b"..".to_vec(), b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(v.getdents64(d, v.root, 4096).unwrap(), Vec::<u8>::new(), "then the end");
        let f2 = open(&mut v, b"/a", O_RDONLY).unwrap();
        assert_eq!(v.getdents64(f2, v.root, 4096), Err(Errno::ENOTDIR));
    }

    #[test]
    fn pipe_files_count_ends_and_close_gives_eof_and_epipe() {
        let mut v = vfs();
        let (r, w) = v.new_pipe(0);
        let FileKind::Pipe { pipe, .. } = v.files[&r].kind else { panic!() };
        assert_eq!(v.pipes.get_mut(&pipe).unwrap().write(b"x"), PipeWrite::Wrote(1));
        assert_eq!(v.fput(w), Some(pipe));
        let mut b = [0u8; 4];
        assert_eq!(v.pipes.get_mut(&pipe).unwrap().read(&mut b), PipeRead::Data(1));
        assert_eq!(v.pipes.get_mut(&pipe).unwrap().read(&mut b), PipeRead::Eof);
        assert_eq!(v.fput(r), None);
        assert!(v.pipes.is_empty(), "both ends closed: freed");
        let (r, w) = v.new_pipe(O_NONBLOCK);
        assert_eq!(v.files[&w].flags & O_NONBLOCK, O_NONBLOCK);
        let _ = v.fput(r);
        let FileKind::Pipe { pipe, .. } = v.files[&w].kind else { panic!() };
        assert_eq!(v.pipes.get_mut(&pipe).unwrap().write(b"x"), PipeWrite::Broken);
    }

    #[test]
    fn fd_tables_share_copy_dup_and_close_on_exec() {
        let mut v = vfs();
        let files = v.files_new();
        let f = open(&mut v, b"/x", O_CREAT | O_RDWR).unwrap();
        assert_eq!(v.fd_alloc(files, 0, f, false), Ok(0));
        assert_eq!(v.fd_dup3(files, 0, 5, true), Ok(None));
        assert_eq!(v.files[&f].refs, 2);
        assert_eq!(v.fd_dup3(files, 3, 4, false), Err(Errno::EBADF));
        let copy = v.files_copy(files);
        assert_eq!(v.files[&f].refs, 4);
        v.close_on_exec(copy);
        assert_eq!(v.fd_get(copy, 5), Err(Errno::EBADF));
        assert!(v.fd_get(copy, 0).is_ok());
        v.files_share(files);
        assert!(v.files_put(files).is_empty());
        assert_eq!(v.files[&f].refs, 3);
        v.files_put(files);
        v.files_put(copy);
        assert!(v.files.is_empty());
        let empty = v.files_new();
        assert_eq!(v.fd_close(empty, 0), Err(Errno::EBADF));
    }

    #[test]
    fn a_working_directory_keeps_a_removed_directory_alive() {
        let mut v = vfs();
        let fs = v.fs_new(v.root);
        let d = v.create(v.root, b"d", crate::fs::inode::S_IFDIR | 0o755, 0, 0, 0).unwrap();
        v.chdir(fs, d).unwrap();
        v.rmdir(v.root, b"d").unwrap();
        assert!(v.inodes.contains_key(&d));
        let copy = v.fs_copy(fs);
        v.fs_put(fs);
        assert!(v.inodes.contains_key(&d));
        let r = v.root;
        v.chdir(copy, r).unwrap();
        assert!(!v.inodes.contains_key(&d));
        v.fs_put(copy);
    }
}

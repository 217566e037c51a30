//! The virtual filesystem (ULK ch. 12, "The Virtual Filesystem"; LKD ch.
//! 13; Linux fs/): one pure core, host-tested, which the system calls
//! (`syscall/fs.rs`, `syscall/namei.rs`, `syscall/pipe.rs`) drive with the
//! kernel lock held, copying user memory through kernel buffers outside it.
//!
//! | file | what | Linux |
//! | --- | --- | --- |
//! | [`inode`] | `struct inode`: kind, mode, owners, links, times, data; `stat`/`statx` layouts | include/linux/fs.h, fs/stat.c |
//! | [`dentry`] | the dentry cache, (parent, name) → inode | fs/dcache.c |
//! | [`super_block`] | superblocks (tmpfs) and mounts | fs/super.c, fs/namespace.c |
//! | [`tmpfs`] | the filesystem: create, link, unlink, rmdir, rename, truncate, attributes | mm/shmem.c, fs/libfs.c, fs/namei.c `vfs_*` |
//! | [`namei`] | path walk: `.`, `..`, symlinks (40 → ELOOP), mount points, the last component's rules | fs/namei.c |
//! | [`file`] | `struct file`: an open file description; read, write, lseek, getdents64 | fs/file_table.c, fs/read_write.c, fs/readdir.c |
//! | [`fdtable`] | `files_struct`: descriptors, close-on-exec, lowest free first | fs/file.c |
//! | [`fs_struct`] | root, working directory, umask | fs/fs_struct.c |
//! | [`pipe`] | pipes and FIFOs: the 64 KiB ring, reader and writer counts | fs/pipe.c |
//! | [`devices`] | the character devices: null, zero, full, urandom, console, tty | drivers/char/mem.c, drivers/tty/tty_io.c |
//! | [`proc`] | procfs: a directory per process (`stat`, `status`, `cmdline`, `comm`), `self`, `uptime`, `meminfo` | fs/proc/ |
//!
//! Everything lives in one [`Vfs`] value: inodes by number, the dentry
//! cache, the superblocks and mounts, the open files, the processes'
//! `files_struct`s and `fs_struct`s and the pipes, each table keyed by a
//! small number the way the kernel's pointers would be. Processes hold
//! the numbers (`TaskStruct::files`, `TaskStruct::fs`) and references
//! are counted by hand, as Linux's `fget`/`fput`, `iget`/`iput` do.

pub mod dentry;
pub mod devices;
pub mod fdtable;
pub mod file;
pub mod fs_struct;
pub mod inode;
pub mod namei;
pub mod pipe;
pub mod proc;
pub mod super_block;
#[cfg(test)]
mod tests;
pub mod tmpfs;

use alloc::collections::BTreeMap;

use dentry::Dcache;
use fdtable::FilesStruct;
use file::{File, FileId};
use fs_struct::FsStruct;
use inode::{Ino, Inode, Timespec};
use pipe::Pipe;
use super_block::{Mounts, SuperBlock};

pub use crate::mm::Errno;

/// `open` flags (include/uapi/asm-generic/fcntl.h, arm64's values).
pub mod o {
    pub const O_ACCMODE: u32 = 0o3;
    pub const O_RDONLY: u32 = 0o0;
    pub const O_WRONLY: u32 = 0o1;
    pub const O_RDWR: u32 = 0o2;
    pub const O_CREAT: u32 = 0o100;
    pub const O_EXCL: u32 = 0o200;
    pub const O_NOCTTY: u32 = 0o400;
    pub const O_TRUNC: u32 = 0o1000;
    pub const O_APPEND: u32 = 0o2000;
    pub const O_NONBLOCK: u32 = 0o4000;
    pub const O_DSYNC: u32 = 0o10000;
    pub const O_ASYNC: u32 = 0o20000;
    /// arm64's O_DIRECTORY and O_NOFOLLOW (they differ from x86's).
    pub const O_DIRECTORY: u32 = 0o40000;
    pub const O_NOFOLLOW: u32 = 0o100000;
    pub const O_DIRECT: u32 = 0o200000;
    pub const O_LARGEFILE: u32 = 0o400000;
    pub const O_NOATIME: u32 = 0o1000000;
    pub const O_CLOEXEC: u32 = 0o2000000;
    pub const O_SYNC: u32 = 0o4010000;
    pub const O_PATH: u32 = 0o10000000;
    pub const O_TMPFILE: u32 = 0o20000000 | O_DIRECTORY;
    /// Flags `F_SETFL` may change (`SETFL_MASK`).
    pub const SETFL_MASK: u32 = O_APPEND | O_NONBLOCK | O_DSYNC | O_ASYNC | O_DIRECT | O_NOATIME;
    /// Every flag `open` knows (`VALID_OPEN_FLAGS`).
    pub const VALID: u32 = O_ACCMODE
        | O_CREAT
        | O_EXCL
        | O_NOCTTY
        | O_TRUNC
        | O_APPEND
        | O_NONBLOCK
        | O_SYNC
        | O_ASYNC
        | O_DIRECT
        | O_LARGEFILE
        | O_DIRECTORY
        | O_NOFOLLOW
        | O_NOATIME
        | O_CLOEXEC
        | O_PATH
        | O_TMPFILE;
}

/// A source of time for inode timestamps (the wall clock, or a counter in
/// host tests).
pub type Clock = fn() -> Timespec;

/// The whole VFS state.
pub struct Vfs {
    pub inodes: BTreeMap<Ino, Inode>,
    pub dcache: Dcache,
    pub supers: BTreeMap<u32, SuperBlock>,
    pub mounts: Mounts,
    /// The root filesystem's root directory.
    pub root: Ino,
    pub files: BTreeMap<FileId, File>,
    pub files_structs: BTreeMap<u32, FilesStruct>,
    pub fs_structs: BTreeMap<u32, FsStruct>,
    pub pipes: BTreeMap<u32, Pipe>,
    next_ino: Ino,
    next_id: u32,
    pub clock: Clock,
    /// xorshift state for `/dev/urandom` and `getrandom` (not
    /// cryptographic: seeded from the timer at boot).
    pub rng: u64,
}

impl Vfs {
    /// A VFS whose root is a fresh tmpfs of at most `max_bytes` of data.
    pub fn new(clock: Clock, max_bytes: usize) -> Vfs {
        let mut v = Vfs {
            inodes: BTreeMap::new(),
            dcache: Dcache::new(),
            supers: BTreeMap::new(),
            mounts: Mounts::default(),
            root: 0,
            files: BTreeMap::new(),
            files_structs: BTreeMap::new(),
            fs_structs: BTreeMap::new(),
            pipes: BTreeMap::new(),
            next_ino: 1,
            next_id: 1,
            clock,
            rng: 0x9e37_79b9_7f4a_7c15,
        };
        v.root = v.new_tmpfs(0o755, max_bytes);
        v
    }

    /// A fresh number for a table entry.
    fn id(&mut self) -> u32 {
        let i = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        i
    }

    /// A fresh inode number.
    fn ino(&mut self) -> Ino {
        let i = self.next_ino;
        self.next_ino += 1;
        i
    }

    pub fn now(&self) -> Timespec {
        (self.clock)()
    }

    /// The inode `ino` (it must exist: callers hold a reference).
    pub fn inode(&self, ino: Ino) -> &Inode {
        &self.inodes[&ino]
    }
    pub fn inode_mut(&mut self, ino: Ino) -> &mut Inode {
        self.inodes.get_mut(&ino).expect("inode")
    }

    /// `ihold`: one more user of `ino`.
    pub fn iget(&mut self, ino: Ino) {
        self.inode_mut(ino).i_count += 1;
    }

    /// `iput`: one user fewer; an inode with neither names nor users is
    /// freed (`evict`), its data returned to its superblock.
    pub fn iput(&mut self, ino: Ino) {
        let i = self.inode_mut(ino);
        i.i_count -= 1;
        self.maybe_evict(ino);
    }

    fn maybe_evict(&mut self, ino: Ino) {
        let i = &self.inodes[&ino];
        if i.nlink == 0 && i.i_count == 0 {
            let i = self.inodes.remove(&ino).expect("inode");
            if let Some(sb) = self.supers.get_mut(&i.sb) {
                sb.used_bytes -= i.data.len();
                sb.inodes -= 1;
            }
        }
    }

    /// The next pseudo-random 64 bits (xorshift64*).
    pub fn random_u64(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Fills `buf` with pseudo-random bytes.
    pub fn fill_random(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_mut(8) {
            let r = self.random_u64().to_le_bytes();
            c.copy_from_slice(&r[..c.len()]);
        }
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use core::sync::atomic::{AtomicI64, Ordering};

    static T: AtomicI64 = AtomicI64::new(1000);
    /// A clock that ticks a second each time it is read.
    pub fn clock() -> Timespec {
        Timespec { sec: T.fetch_add(1, Ordering::Relaxed), nsec: 0 }
    }
    pub fn vfs() -> Vfs {
        Vfs::new(clock, 1 << 20)
    }
}

//! Superblocks and mounts (ULK ch. 12, "Superblock Objects" and
//! "Filesystem Mounting"; Linux fs/super.c, fs/namespace.c `do_new_mount`,
//! `do_umount`). A superblock here is one tmpfs instance: its root
//! directory, its device number and its size limit. A mount hides a
//! directory (the mount point) under another filesystem's root; the path
//! walk crosses it both ways (`follow_mount`, `follow_dotdot`).

use alloc::collections::BTreeMap;

use super::Vfs;
use super::inode::{FileData, Ino, Inode, S_IFDIR, mkdev};
use crate::mm::Errno;

/// `struct super_block` of a tmpfs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SuperBlock {
    pub id: u32,
    /// `s_dev`: an anonymous device (major 0), as tmpfs has.
    pub dev: u32,
    pub root: Ino,
    /// The `size=` limit, in bytes of file data.
    pub max_bytes: usize,
    pub used_bytes: usize,
    /// Inodes alive.
    pub inodes: usize,
    /// A procfs (`fs/proc.rs`), whose tree follows the task table.
    pub proc: bool,
}

/// The mount table: which directory each mounted root hides, both ways.
#[derive(Debug, Default)]
pub struct Mounts {
    /// Mount point → the root mounted on it.
    pub on: BTreeMap<Ino, Ino>,
    /// Mounted root → its mount point.
    pub at: BTreeMap<Ino, Ino>,
}

impl Vfs {
    /// A new tmpfs (`shmem_fill_super`): its root directory, owned by
    /// root, with `mode`. Returns the root's inode.
    pub fn new_tmpfs(&mut self, mode: u32, max_bytes: usize) -> Ino {
        let id = self.id();
        let ino = self.ino();
        let now = self.now();
        let root = Inode {
            ino,
            sb: id,
            mode: S_IFDIR | (mode & 0o7777),
            uid: 0,
            gid: 0,
            nlink: 2,
            rdev: 0,
            atime: now,
            mtime: now,
            ctime: now,
            data: FileData::Owned(alloc::vec::Vec::new()),
            parent: ino,
            i_count: 0,
            pipe: None,
        };
        self.inodes.insert(ino, root);
        let dev = mkdev(0, id + 20);
        self.supers.insert(id, SuperBlock { id, dev, root: ino, max_bytes, used_bytes: 0, inodes: 1, proc: false });
        ino
    }

    /// `follow_mount`: what the walk finds at `ino`: the root mounted
    /// there, if any (and what is mounted on that, ...).
    pub fn follow_mount(&self, mut ino: Ino) -> Ino {
        while let Some(&r) = self.mounts.on.get(&ino) {
            ino = r;
        }
        ino
    }

    /// `mount -t tmpfs` on the directory `target`: EBUSY if something is
    /// mounted there already, ENOTDIR if it is not a directory.
    pub fn mount_tmpfs(&mut self, target: Ino, max_bytes: usize) -> Result<Ino, Errno> {
        if !self.inode(target).is_dir() {
            return Err(Errno::ENOTDIR);
        }
        if self.mounts.on.contains_key(&target) {
            return Err(Errno::EBUSY);
        }
        let root = self.new_tmpfs(0o1777, max_bytes);
        self.inode_mut(root).nlink = 2;
        self.mounts.on.insert(target, root);
        self.mounts.at.insert(root, target);
        // The mount point and the mounted root are in use while mounted.
        self.iget(target);
        self.iget(root);
        Ok(root)
    }

    /// `umount2` of the filesystem whose root is `root`: EINVAL if it is
    /// not a mount, EBUSY if a file of it is open or a process works in
    /// it (Linux's `propagate_mount_busy`, by reference counts).
    pub fn umount(&mut self, root: Ino) -> Result<(), Errno> {
        let &target = self.mounts.at.get(&root).ok_or(Errno::EINVAL)?;
        if self.mounts.on.contains_key(&root) {
            return Err(Errno::EBUSY);
        }
        let sb = self.inode(root).sb;
        let busy = self.inodes.values().any(|i| i.sb == sb && i.i_count > usize::from(i.ino == root) as u32);
        if busy {
            return Err(Errno::EBUSY);
        }
        self.mounts.on.remove(&target);
        self.mounts.at.remove(&root);
        // Every inode of the filesystem goes with it.
        let inos: alloc::vec::Vec<Ino> = self.inodes.values().filter(|i| i.sb == sb).map(|i| i.ino).collect();
        for i in &inos {
            self.inodes.remove(i);
        }
        let names: alloc::vec::Vec<(Ino, alloc::vec::Vec<u8>)> = inos
            .iter()
            .flat_map(|&d| {
                self.dcache.children(d, 0).map(move |(n, _)| (d, n.to_vec())).collect::<alloc::vec::Vec<_>>()
            })
            .collect();
        for (d, n) in names {
            self.dcache.d_delete(d, &n);
        }
        self.supers.remove(&sb);
        self.iput(target);
        Ok(())
    }

    /// The superblock of `ino`.
    pub fn sb_of(&self, ino: Ino) -> &SuperBlock {
        &self.supers[&self.inode(ino).sb]
    }
}

//! `struct fs_struct`: a process's root and working directories and its
//! umask (ULK ch. 12, "Files Associated with a Process"; Linux
//! include/linux/fs_struct.h, fs/fs_struct.c `copy_fs_struct`). Shared
//! between the tasks of a `clone` with CLONE_FS, copied otherwise; each
//! directory it names holds a reference on its inode (`i_count`), so a
//! removed working directory lives on as long as someone is in it.

use super::inode::Ino;

/// `struct fs_struct`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FsStruct {
    pub root: Ino,
    pub pwd: Ino,
    pub umask: u32,
    /// Tasks sharing it (CLONE_FS).
    pub users: u32,
}

/// The umask a new system starts with (init's `current->fs->umask`).
pub const DEFAULT_UMASK: u32 = 0o022;

//! `struct files_struct`: a process's file-descriptor table (ULK ch. 12,
//! "Files Associated with a Process"; Linux fs/file.c `alloc_fd`,
//! `close_fd`, `do_dup2`, `do_close_on_exec`, `dup_fd`). A descriptor
//! names an open file description ([`super::file::File`]) and carries its
//! close-on-exec bit; new descriptors take the lowest free number.

use alloc::vec::Vec;

use super::file::FileId;
use crate::mm::Errno;

/// `RLIMIT_NOFILE`'s default soft limit: descriptors are below it.
pub const NR_OPEN: usize = 1024;

/// One descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fd {
    pub file: FileId,
    /// `FD_CLOEXEC`.
    pub cloexec: bool,
}

/// `struct files_struct` (with its `fdtable`). `users` counts the tasks
/// sharing it (CLONE_FILES).
#[derive(Clone, Debug, Default)]
pub struct FilesStruct {
    fds: Vec<Option<Fd>>,
    pub users: u32,
}

impl FilesStruct {
    pub fn new() -> Self {
        FilesStruct { fds: Vec::new(), users: 1 }
    }

    /// The descriptor `fd`, if open.
    pub fn get(&self, fd: usize) -> Option<Fd> {
        self.fds.get(fd).copied().flatten()
    }

    /// `alloc_fd`: the lowest free descriptor at or above `min`, set to
    /// `f`; EMFILE when none is below [`NR_OPEN`].
    pub fn alloc(&mut self, min: usize, f: Fd) -> Result<usize, Errno> {
        let fd = (min..NR_OPEN).find(|&i| self.get(i).is_none()).ok_or(Errno::EMFILE)?;
        self.install(fd, f);
        Ok(fd)
    }

    /// `fd_install` (or `do_dup2` over an open one): `fd` now names `f`;
    /// returns the file it named before, for the caller to close.
    pub fn install(&mut self, fd: usize, f: Fd) -> Option<FileId> {
        if self.fds.len() <= fd {
            self.fds.resize(fd + 1, None);
        }
        self.fds[fd].replace(f).map(|o| o.file)
    }

    /// `close_fd`: frees `fd`; returns its file, or None if it was not open.
    pub fn close(&mut self, fd: usize) -> Option<FileId> {
        let f = self.fds.get_mut(fd)?.take()?;
        while self.fds.last() == Some(&None) {
            self.fds.pop();
        }
        Some(f.file)
    }

    /// Sets `fd`'s close-on-exec bit; false if it is not open.
    pub fn set_cloexec(&mut self, fd: usize, on: bool) -> bool {
        match self.fds.get_mut(fd) {
            Some(Some(f)) => {
                f.cloexec = on;
                true
            }
            _ => false,
        }
    }

    /// `do_close_on_exec`: closes every close-on-exec descriptor; returns
    /// their files.
    pub fn close_on_exec(&mut self) -> Vec<FileId> {
        let fds: Vec<usize> = (0..self.fds.len()).filter(|&i| self.get(i).is_some_and(|f| f.cloexec)).collect();
        fds.into_iter().filter_map(|i| self.close(i)).collect()
    }

    /// Every open descriptor's file, in descriptor order (a copy counts
    /// each one: `dup_fd` takes a reference per descriptor).
    pub fn files(&self) -> impl Iterator<Item = FileId> + '_ {
        self.fds.iter().flatten().map(|f| f.file)
    }

    /// Closes everything (the last user's exit); returns the files.
    pub fn take_all(&mut self) -> Vec<FileId> {
        core::mem::take(&mut self.fds).into_iter().flatten().map(|f| f.file).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fd(file: FileId) -> Fd {
        Fd { file, cloexec: false }
    }

    #[test]
    fn lowest_free_descriptor_first() {
        let mut t = FilesStruct::new();
        assert_eq!(t.alloc(0, fd(10)), Ok(0));
        assert_eq!(t.alloc(0, fd(11)), Ok(1));
        assert_eq!(t.alloc(0, fd(12)), Ok(2));
        assert_eq!(t.close(1), Some(11));
        assert_eq!(t.close(1), None);
        assert_eq!(t.alloc(0, fd(13)), Ok(1));
        assert_eq!(t.alloc(5, fd(14)), Ok(5), "F_DUPFD's minimum");
        assert_eq!(t.alloc(0, fd(15)), Ok(3));
    }

    #[test]
    fn table_full_is_emfile() {
        let mut t = FilesStruct::new();
        for i in 0..NR_OPEN {
            t.alloc(0, fd(i as FileId)).unwrap();
        }
        assert_eq!(t.alloc(0, fd(0)), Err(Errno::EMFILE));
        assert_eq!(t.alloc(NR_OPEN + 5, fd(0)), Err(Errno::EMFILE));
    }

    #[test]
    fn close_on_exec_closes_only_marked_descriptors() {
        let mut t = FilesStruct::new();
        t.alloc(0, fd(1)).unwrap();
        t.alloc(0, Fd { file: 2, cloexec: true }).unwrap();
        t.alloc(0, fd(3)).unwrap();
        assert!(t.set_cloexec(2, true));
        assert!(!t.set_cloexec(9, true));
        assert_eq!(t.close_on_exec(), [2, 3]);
        assert_eq!(t.files().collect::<Vec<_>>(), [1]);
    }

    #[test]
    fn install_over_an_open_descriptor_returns_the_old_file() {
        let mut t = FilesStruct::new();
        t.alloc(0, fd(1)).unwrap();
        assert_eq!(t.install(0, fd(2)), Some(1));
        assert_eq!(t.install(7, fd(3)), None);
        assert_eq!(t.get(7), Some(fd(3)));
        assert_eq!(t.take_all(), [2, 3]);
    }
}

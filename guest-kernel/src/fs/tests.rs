//! Random sequences of VFS operations, as a hostile or careless program
//! would issue them (names that exist or not, `.`/`..`, symlink loops,
//! renames into subdirectories, unlinks of open files, mounts): no
//! operation may panic, and after each one the filesystem must be
//! consistent the way Linux's is (ULK ch. 12): every name points at a live
//! inode, a directory's link count is 2 plus its subdirectories, a file's
//! is its number of names, an inode with no name lives only while it is
//! in use, each superblock's byte count matches its files' data, and each
//! directory's parent is the directory that names it.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::file::{FileId, Opened};
use super::inode::{Ino, S_IFDIR, S_IFIFO, S_IFREG};
use super::namei::At;
use super::o::*;
use super::testing::vfs;
use super::{Errno, Vfs};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[(self.next() % v.len() as u64) as usize]
    }
}

const PATHS: [&[u8]; 16] = [
    b"a", b"b", b"a/x", b"a/y", b"b/x", b"/a/b", b"a/..", b".", b"..", b"/", b"l", b"l/x", b"a/x/", b"b/a/x", b"m",
    b"m/f",
];

fn check(v: &Vfs) {
    let mut names: BTreeMap<Ino, u32> = BTreeMap::new();
    let mut subdirs: BTreeMap<Ino, u32> = BTreeMap::new();
    for (&ino, i) in &v.inodes {
        for (_, c) in v.dcache.children(ino, 0) {
            let child = v.inodes.get(&c).expect("a name points at a live inode");
            *names.entry(c).or_default() += 1;
            if child.is_dir() {
                *subdirs.entry(ino).or_default() += 1;
                assert_eq!(child.parent, ino, "a directory's parent names it");
            }
        }
        let _ = i;
    }
    let mut bytes: BTreeMap<u32, usize> = BTreeMap::new();
    for (&ino, i) in &v.inodes {
        *bytes.entry(i.sb).or_default() += i.data.len();
        let is_root = v.supers.values().any(|s| s.root == ino);
        if i.is_dir() {
            if i.nlink > 0 {
                assert_eq!(i.nlink, 2 + subdirs.get(&ino).copied().unwrap_or(0), "dir {ino} links");
            }
        } else {
            assert_eq!(i.nlink, names.get(&ino).copied().unwrap_or(0), "file {ino} links");
        }
        if i.nlink == 0 && !is_root {
            assert!(i.i_count > 0, "inode {ino} has no name and no user: should be freed");
        }
    }
    for s in v.supers.values() {
        assert_eq!(s.used_bytes, bytes.get(&s.id).copied().unwrap_or(0), "sb {} bytes", s.id);
    }
}

fn run(seed: u64, steps: usize, done: &mut [u32; 14]) {
    let mut v = vfs();
    let mut r = Rng(seed);
    let fs = v.fs_new(v.root);
    let files = v.files_new();
    let mut open: Vec<FileId> = Vec::new();
    for _ in 0..steps {
        let at = At::root(v.fs_structs[&fs].root, v.fs_structs[&fs].pwd);
        let p = *r.pick(&PATHS);
        let q = *r.pick(&PATHS);
        let op = (r.next() % 14) as usize;
        let before = (v.inodes.len(), v.dcache.len(), v.files.len(), v.fs_structs[&fs].pwd, v.mounts.on.len());
        match op {
            0 | 1 => {
                if let Ok(par) = v.lookup_parent(at, p)
                    && par.kind == super::namei::LastType::Norm
                {
                    let mode = *r.pick(&[S_IFREG | 0o644, S_IFDIR | 0o755, S_IFIFO | 0o600]);
                    let _ = v.create(par.dir, &par.last, mode, 0, 0, 0);
                }
            }
            2 => {
                if let Ok(par) = v.lookup_parent(at, p)
                    && par.kind == super::namei::LastType::Norm
                {
                    let _ = v.symlink(par.dir, &par.last, q, 0, 0);
                }
            }
            3 => {
                if let (Ok(i), Ok(par)) = (v.lookup(at, q, false), v.lookup_parent(at, p))
                    && par.kind == super::namei::LastType::Norm
                {
                    let _ = v.link(i, par.dir, &par.last);
                }
            }
            4 => {
                if let Ok(par) = v.lookup_parent(at, p)
                    && par.kind == super::namei::LastType::Norm
                {
                    let _ = if r.next().is_multiple_of(2) {
                        v.unlink(par.dir, &par.last)
                    } else {
                        v.rmdir(par.dir, &par.last)
                    };
                }
            }
            5 => {
                if let (Ok(a), Ok(b)) = (v.lookup_parent(at, p), v.lookup_parent(at, q))
                    && a.kind == super::namei::LastType::Norm
                    && b.kind == super::namei::LastType::Norm
                {
                    let flags = (r.next() % 4) as u32;
                    let _ = v.rename(a.dir, &a.last, b.dir, &b.last, flags);
                }
            }
            6 | 7 => {
                let flags = *r.pick(&[
                    O_RDONLY,
                    O_RDWR | O_CREAT,
                    O_WRONLY | O_TRUNC,
                    O_RDONLY | O_DIRECTORY,
                    O_CREAT | O_EXCL | O_RDWR,
                    O_NOFOLLOW,
                ]);
                match v.open(at, p, flags, 0o644, 0o022, 0, 0) {
                    Ok(Opened::File(f)) => {
                        if v.fd_alloc(files, 0, f, false).is_ok() {
                            open.push(f);
                        }
                    }
                    Ok(Opened::Fifo(_)) | Err(_) => {}
                }
            }
            8 if !open.is_empty() => {
                let f = open.swap_remove((r.next() % open.len() as u64) as usize);
                let fd = (0..1024).find(|&d| v.fd_get(files, d).is_ok_and(|x| x.file == f));
                if let Some(fd) = fd {
                    let _ = v.fd_close(files, fd);
                }
            }
            9 if !open.is_empty() => {
                let f = *r.pick(&open);
                if let super::file::FileKind::Inode(i) = v.files[&f].kind {
                    if v.is_reg(i) {
                        let pos = r.next() % 5000;
                        let _ = v.write_at(i, pos, b"some bytes");
                        let _ = v.truncate(i, r.next() % 3000);
                        let mut b = [0u8; 64];
                        v.read_at(i, r.next() % 6000, &mut b);
                    }
                    let _ = v.getdents64(f, v.root, 256);
                    let _ = v.lseek(f, (r.next() % 100) as i64 - 50, (r.next() % 4) as u32);
                }
            }
            10 => {
                if let Ok(i) = v.lookup(at, p, true) {
                    let _ = v.chdir(fs, i);
                }
            }
            11 => {
                if let Ok(i) = v.lookup(at, p, true) {
                    if r.next().is_multiple_of(2) {
                        let _ = v.mount_tmpfs(i, 4096);
                    } else {
                        let _ = v.umount(i);
                    }
                }
            }
            12 => {
                let _ = v.d_path(at.root, at.dir);
                let _ = v.lookup(at, p, r.next().is_multiple_of(2));
            }
            _ => {
                let _ = v.readlink(v.lookup(at, p, false).unwrap_or(v.root));
            }
        }
        if before != (v.inodes.len(), v.dcache.len(), v.files.len(), v.fs_structs[&fs].pwd, v.mounts.on.len()) {
            done[op] += 1;
        }
        check(&v);
    }
    v.files_put(files);
    v.fs_put(fs);
    check(&v);
    // Everything closed: only named inodes (and mounted roots) are left.
    for i in v.inodes.values() {
        let is_root = v.supers.values().any(|s| s.root == i.ino);
        assert!(i.nlink > 0 || is_root || i.i_count > 0, "inode {} leaked", i.ino);
    }
    let _ = Errno::EINVAL;
}

#[test]
fn random_operations_never_panic_and_keep_the_filesystem_consistent() {
    // How many times each kind of operation changed something.
    let mut done = [0u32; 14];
    for seed in 1..=300u64 {
        run(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1, 300, &mut done);
    }
    // Creating, linking, removing, renaming, opening, closing, chdir and
    // mounting all happened, not only failed.
    for op in [0, 2, 3, 4, 5, 6, 8, 10, 11] {
        assert!(done[op] > 20, "operation {op} changed the filesystem only {} times: {done:?}", done[op]);
    }
}

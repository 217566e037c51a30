//! The initramfs: a cpio archive in the "newc" format (Linux
//! Documentation/driver-api/early-userspace/buffer-format.rst), read in
//! place. Each entry is a 110-byte ASCII header ("070701", then 13 fields
//! of 8 hex digits), the NUL-terminated name padded to 4 bytes, and the
//! data padded to 4 bytes; "TRAILER!!!" ends the archive.

/// One file of the archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Path as stored, without a leading "./" or "/".
    pub name: &'a str,
    /// `c_mode`.
    pub mode: u32,
    /// `c_uid`, `c_gid`, `c_mtime`.
    pub uid: u32,
    pub gid: u32,
    pub mtime: u32,
    /// A device node's `c_rdevmajor` and `c_rdevminor`.
    pub rdev: (u32, u32),
    /// File contents.
    pub data: &'a [u8],
}

/// Why an archive could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpioError {
    /// Not "070701" where a header must start.
    BadMagic(usize),
    /// A header field is not 8 hex digits.
    BadField(usize),
    /// A name or the data runs past the end.
    Truncated(usize),
    /// A name that is not UTF-8.
    BadName(usize),
}

const HEADER: usize = 110;
const S_IFMT: u32 = 0o170000;
/// Regular file (`S_IFREG`).
pub const S_IFREG: u32 = 0o100000;

fn hex8(b: &[u8], at: usize) -> Result<u32, CpioError> {
    let s = core::str::from_utf8(&b[at..at + 8]).map_err(|_| CpioError::BadField(at))?;
    u32::from_str_radix(s, 16).map_err(|_| CpioError::BadField(at))
}

const fn pad4(x: usize) -> usize {
    (x + 3) & !3
}

/// Iterates over the entries of an archive.
pub struct Cpio<'a> {
    data: &'a [u8],
    off: usize,
    done: bool,
}

impl<'a> Cpio<'a> {
    /// An archive over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Cpio { data, off: 0, done: false }
    }

    /// The regular file at `path` ("/bin/init", "bin/init" and "./bin/init" are the same).
    pub fn find(data: &'a [u8], path: &str) -> Option<Entry<'a>> {
        let want = normalize(path);
        Cpio::new(data).map_while(Result::ok).find(|e| e.name == want && e.mode & S_IFMT == S_IFREG)
    }

    fn next_entry(&mut self) -> Result<Option<Entry<'a>>, CpioError> {
        let b = self.data;
        let h = self.off;
        if h + HEADER > b.len() {
            return Err(CpioError::Truncated(h));
        }
        if &b[h..h + 6] != b"070701" {
            return Err(CpioError::BadMagic(h));
        }
        // Fields: ino mode uid gid nlink mtime filesize devmajor devminor
        // rdevmajor rdevminor namesize check, each 8 hex digits after magic.
        let field = |i: usize| hex8(b, h + 6 + 8 * i);
        let mode = field(1)?;
        let filesize = field(6)? as usize;
        let namesize = field(11)? as usize;
        let name_start = h + HEADER;
        let name_end = name_start.checked_add(namesize).ok_or(CpioError::Truncated(h))?;
        if namesize == 0 || name_end > b.len() {
            return Err(CpioError::Truncated(h));
        }
        let name = core::str::from_utf8(&b[name_start..name_end - 1]).map_err(|_| CpioError::BadName(h))?;
        let data_start = pad4(name_end);
        let data_end = data_start.checked_add(filesize).ok_or(CpioError::Truncated(h))?;
        if data_end > b.len() {
            return Err(CpioError::Truncated(h));
        }
        if name == "TRAILER!!!" {
            self.off = pad4(data_end);
            return Ok(None);
        }
        self.off = pad4(data_end);
        let (uid, gid, mtime, rdev) = (field(2)?, field(3)?, field(5)?, (field(9)?, field(10)?));
        Ok(Some(Entry { name: normalize(name), mode, uid, gid, mtime, rdev, data: &b[data_start..data_end] }))
    }
}

/// The path without its leading `/` and `./` components, however many and
/// in whatever order ("/./bin/init", ".//bin/init" are "bin/init").
fn normalize(mut p: &str) -> &str {
    loop {
        let q = p.trim_start_matches('/');
        let q = q.strip_prefix("./").unwrap_or(q);
        if q.len() == p.len() {
            return p;
        }
        p = q;
    }
}

impl<'a> Cpio<'a> {
    /// What follows this archive's trailer, past the zeros that pad it:
    /// the next archive of an initramfs made of several (Linux unpacks
    /// them all, in order), or nothing.
    pub fn rest(&self) -> &'a [u8] {
        if !self.done {
            return &[];
        }
        let r = &self.data[self.off.min(self.data.len())..];
        let skip = r.iter().position(|&b| b != 0).unwrap_or(r.len());
        &r[skip..]
    }
}

impl<'a> Iterator for Cpio<'a> {
    type Item = Result<Entry<'a>, CpioError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_entry() {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// `unpack_to_rootfs` (Linux init/initramfs.c): every entry of the archive
/// made a file of the VFS under its root: directories, regular files
/// (their data read in place), symlinks, device nodes and FIFOs, with the
/// archive's modes, owners and modification times. As Linux's, an entry
/// whose directory is missing is skipped, a directory already there gets
/// the archive's mode, and a later file of the same name replaces an
/// earlier one (so a second archive appended to the first wins: each
/// archive after a trailer is unpacked in turn). Returns
/// how many entries were unpacked, or the archive's first error.
pub fn unpack_to_rootfs(v: &mut crate::fs::Vfs, data: &'static [u8]) -> Result<usize, CpioError> {
    use crate::fs::inode::{FileData, InodeKind, Timespec, mkdev};
    use crate::fs::namei::At;
    let at = At::root(v.root, v.root);
    let mut n = 0;
    let mut archive = Cpio::new(data);
    loop {
        let Some(e) = archive.next() else {
            // The next archive, if another follows.
            let rest = archive.rest();
            if rest.is_empty() {
                break;
            }
            archive = Cpio::new(rest);
            continue;
        };
        let e = e?;
        let t = Some(Timespec { sec: i64::from(e.mtime), nsec: 0 });
        if e.name.is_empty() || e.name == "." {
            v.chmod(v.root, e.mode);
            v.chown(v.root, e.uid, e.gid);
            continue;
        }
        let Ok(p) = v.lookup_parent(at, e.name.as_bytes()) else { continue };
        let Some(kind) = InodeKind::of_mode(e.mode) else { continue };
        let old = v.dcache.d_lookup(p.dir, &p.last);
        let ino = match (kind, old) {
            (InodeKind::Dir, Some(i)) if v.inode(i).is_dir() => i,
            (_, old) => {
                if let Some(i) = old {
                    let r = if v.inode(i).is_dir() { v.rmdir(p.dir, &p.last) } else { v.unlink(p.dir, &p.last) };
                    if r.is_err() {
                        continue;
                    }
                }
                let r = match kind {
                    InodeKind::Symlink => v.symlink(p.dir, &p.last, e.data, e.uid, e.gid),
                    _ => v.create(p.dir, &p.last, e.mode, mkdev(e.rdev.0, e.rdev.1), e.uid, e.gid),
                };
                let Ok(i) = r else { continue };
                if kind == InodeKind::Reg && !e.data.is_empty() {
                    if v.charge_static(i, e.data.len()).is_err() {
                        let _ = v.unlink(p.dir, &p.last);
                        continue;
                    }
                    v.inode_mut(i).data = FileData::Static(e.data);
                }
                i
            }
        };
        v.chmod(ino, e.mode);
        v.chown(ino, e.uid, e.gid);
        v.set_times(ino, t, t);
        n += 1;
    }
    Ok(n)
}

/// Appends one cpio "newc" entry (inode 1, one link, the given mode) to
/// `out`, with the format's 4-byte padding. For tests and fuzz seeds.
pub fn newc_entry(out: &mut alloc::vec::Vec<u8>, name: &str, mode: u32, data: &[u8]) {
    let fields = [1, mode, 0, 0, 1, 0, data.len() as u32, 0, 0, 0, 0, name.len() as u32 + 1, 0];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(alloc::format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
    out.extend_from_slice(data);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn entry(out: &mut Vec<u8>, name: &str, mode: u32, data: &[u8]) {
        newc_entry(out, name, mode, data);
    }

    fn archive() -> Vec<u8> {
        let mut a = Vec::new();
        entry(&mut a, ".", 0o40755, b"");
        entry(&mut a, "bin", 0o40755, b"");
        entry(&mut a, "bin/init", S_IFREG | 0o755, b"\x7fELF init");
        entry(&mut a, "bin/tests", S_IFREG | 0o755, b"abc");
        entry(&mut a, "TRAILER!!!", 0, b"");
        a
    }

    #[test]
    fn finds_files_by_any_spelling_of_the_path() {
        let a = archive();
        assert_eq!(Cpio::find(&a, "/bin/init").unwrap().data, b"\x7fELF init");
        assert_eq!(Cpio::find(&a, "./bin/tests").unwrap().data, b"abc");
        assert_eq!(Cpio::find(&a, "bin"), None, "directories are not files");
        assert_eq!(Cpio::find(&a, "/bin/nope"), None);
        assert_eq!(Cpio::new(&a).count(), 4);
    }

    /// Found by fuzzing (ci/fuzz, target `cpio`): only one leading "./"
    /// and then the slashes were stripped, so "/./bin/init" (a path execve
    /// may be given) or an archive member stored as ".//bin/init" did not
    /// match "bin/init".
    #[test]
    fn leading_dot_and_slash_components_are_ignored() {
        let a = archive();
        for path in ["/./bin/init", ".//bin/init", "//././/bin/init", "./././bin/init"] {
            assert_eq!(Cpio::find(&a, path).unwrap().data, b"\x7fELF init", "{path}");
        }
        let mut b = Vec::new();
        entry(&mut b, "/.//./bin/x", S_IFREG | 0o755, b"x");
        entry(&mut b, "TRAILER!!!", 0, b"");
        assert_eq!(Cpio::new(&b).next().unwrap().unwrap().name, "bin/x");
        assert_eq!(Cpio::find(&b, "bin/x").unwrap().data, b"x");
    }

    #[test]
    fn unpacks_directories_files_symlinks_and_devices_with_their_modes() {
        let mut a = Vec::new();
        entry(&mut a, ".", 0o40755, b"");
        entry(&mut a, "bin", 0o40700, b"");
        entry(&mut a, "bin/busybox", S_IFREG | 0o755, b"\x7fELF");
        entry(&mut a, "bin/sh", 0o120777, b"busybox");
        entry(&mut a, "dev", 0o40755, b"");
        entry(&mut a, "nodir/x", S_IFREG | 0o644, b"lost");
        entry(&mut a, "TRAILER!!!", 0, b"");
        let a: &'static [u8] = a.leak();
        let mut v = crate::fs::testing::vfs();
        assert_eq!(unpack_to_rootfs(&mut v, a), Ok(4));
        let at = crate::fs::namei::At::root(v.root, v.root);
        let sh = v.lookup(at, b"/bin/sh", true).unwrap();
        assert_eq!(v.inode(sh).data.as_slice(), b"\x7fELF");
        assert_eq!(v.inode(sh).mode, S_IFREG | 0o755);
        let bin = v.lookup(at, b"/bin", true).unwrap();
        assert_eq!(v.inode(bin).mode & 0o7777, 0o700);
        assert_eq!(v.readlink(v.lookup(at, b"/bin/sh", false).unwrap()), Ok(b"busybox".as_slice()));
        assert_eq!(
            v.lookup(at, b"/nodir/x", true),
            Err(crate::mm::Errno::ENOENT),
            "a missing directory skips its files"
        );
    }

    #[test]
    fn damaged_archives_give_errors_not_panics() {
        let a = archive();
        for cut in [0, 5, 50, 111, 130, a.len() - 20] {
            for r in Cpio::new(&a[..cut]) {
                let _ = r;
            }
        }
        let mut bad = a.clone();
        bad[0] = b'X';
        assert_eq!(Cpio::new(&bad).next(), Some(Err(CpioError::BadMagic(0))));
        let mut bad = a.clone();
        bad[6 + 8 * 6] = b'z';
        assert!(matches!(Cpio::new(&bad).next(), Some(Err(CpioError::BadField(_)))));
        // Huge sizes must not overflow.
        let mut bad = a.clone();
        bad[6 + 8 * 6..6 + 8 * 7].copy_from_slice(b"ffffffff");
        assert!(matches!(Cpio::new(&bad).next(), Some(Err(CpioError::Truncated(_)))));
    }
}

//! `struct inode`: one file of a filesystem, whatever its names (ULK ch.
//! 12, "Inode Objects"; Linux include/linux/fs.h). On tmpfs the inode is
//! the file: its data, its mode, owners, link count and times; and the
//! `struct stat` / `struct statx` a program reads about it
//! (include/uapi/asm-generic/stat.h, include/uapi/linux/stat.h).

use alloc::vec::Vec;

/// An inode number (unique across every superblock here).
pub type Ino = u64;

/// File type mask and types (`S_IFMT`, include/uapi/linux/stat.h).
pub const S_IFMT: u32 = 0o170000;
pub const S_IFSOCK: u32 = 0o140000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFBLK: u32 = 0o060000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFCHR: u32 = 0o020000;
pub const S_IFIFO: u32 = 0o010000;
/// The sticky bit: in a directory, only a name's owner (or the
/// directory's, or root) may remove it.
pub const S_ISVTX: u32 = 0o001000;

/// What kind of file an inode is (its `S_IFMT` bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InodeKind {
    Dir,
    Reg,
    Symlink,
    Chr,
    Blk,
    Fifo,
    Sock,
}

impl InodeKind {
    /// The kind of a mode, or None for an unknown type.
    pub fn of_mode(mode: u32) -> Option<InodeKind> {
        Some(match mode & S_IFMT {
            S_IFDIR => InodeKind::Dir,
            S_IFREG => InodeKind::Reg,
            S_IFLNK => InodeKind::Symlink,
            S_IFCHR => InodeKind::Chr,
            S_IFBLK => InodeKind::Blk,
            S_IFIFO => InodeKind::Fifo,
            S_IFSOCK => InodeKind::Sock,
            _ => return None,
        })
    }

    /// The `d_type` getdents64 reports (`DT_*`, `fs_umode_to_dtype`).
    pub fn d_type(self) -> u8 {
        match self {
            InodeKind::Fifo => 1,
            InodeKind::Chr => 2,
            InodeKind::Dir => 4,
            InodeKind::Blk => 6,
            InodeKind::Reg => 8,
            InodeKind::Symlink => 10,
            InodeKind::Sock => 12,
        }
    }
}

/// A time as `struct timespec64` holds it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timespec {
    pub sec: i64,
    pub nsec: u32,
}

/// A file's bytes: the initramfs's own (read in place, never copied
/// until written) or the kernel's.
#[derive(Debug)]
pub enum FileData {
    Static(&'static [u8]),
    Owned(Vec<u8>),
}

impl FileData {
    pub fn as_slice(&self) -> &[u8] {
        match self {
            FileData::Static(s) => s,
            FileData::Owned(v) => v,
        }
    }
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The bytes, made the kernel's own first (copy on first write).
    pub fn to_mut(&mut self) -> &mut Vec<u8> {
        if let FileData::Static(s) = *self {
            *self = FileData::Owned(s.to_vec());
        }
        match self {
            FileData::Owned(v) => v,
            FileData::Static(_) => unreachable!(),
        }
    }
}

/// Encodes a device number as the kernel keeps it (`MKDEV`: 12 bits of
/// major, 20 of minor).
pub const fn mkdev(major: u32, minor: u32) -> u32 {
    (major << 20) | (minor & 0xf_ffff)
}
/// `MAJOR`.
pub const fn major(dev: u32) -> u32 {
    dev >> 20
}
/// `MINOR`.
pub const fn minor(dev: u32) -> u32 {
    dev & 0xf_ffff
}
/// `new_encode_dev`: the device number as `struct stat` shows it.
pub const fn new_encode_dev(dev: u32) -> u64 {
    let (ma, mi) = (major(dev) as u64, minor(dev) as u64);
    (mi & 0xff) | (ma << 8) | ((mi & !0xff) << 12)
}
/// `new_decode_dev`: mknod's `dev` argument.
pub const fn new_decode_dev(dev: u64) -> u32 {
    let major = ((dev & 0xfff00) >> 8) as u32;
    let minor = ((dev & 0xff) | ((dev >> 12) & 0xfff00)) as u32;
    mkdev(major, minor)
}

/// One inode.
#[derive(Debug)]
pub struct Inode {
    pub ino: Ino,
    /// The superblock it belongs to.
    pub sb: u32,
    /// Type and permission bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Names (dentries) that refer to it; a directory counts its own "."
    /// and each subdirectory's "..".
    pub nlink: u32,
    /// A device node's device number ([`mkdev`]).
    pub rdev: u32,
    pub atime: Timespec,
    pub mtime: Timespec,
    pub ctime: Timespec,
    /// A regular file's contents or a symlink's target.
    pub data: FileData,
    /// A directory's parent directory (itself for a filesystem's root).
    pub parent: Ino,
    /// `i_count`: open files, working and root directories using it; an
    /// unlinked inode lives on until this drops to 0 (`iput`).
    pub i_count: u32,
    /// A FIFO's pipe while it is open.
    pub pipe: Option<u32>,
}

impl Inode {
    pub fn kind(&self) -> InodeKind {
        InodeKind::of_mode(self.mode).unwrap_or(InodeKind::Reg)
    }
    pub fn is_dir(&self) -> bool {
        self.kind() == InodeKind::Dir
    }
    /// `i_size`.
    pub fn size(&self) -> u64 {
        match self.kind() {
            InodeKind::Reg | InodeKind::Symlink => self.data.len() as u64,
            _ => 0,
        }
    }
    /// What `stat` reports about it, with `dev` the superblock's device.
    pub fn stat(&self, dev: u32) -> Stat {
        let size = self.size();
        Stat {
            dev,
            ino: self.ino,
            mode: self.mode,
            nlink: self.nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: self.rdev,
            size,
            blksize: 4096,
            blocks: size.div_ceil(4096) * 8,
            atime: self.atime,
            mtime: self.mtime,
            ctime: self.ctime,
        }
    }
}

/// `struct kstat`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stat {
    pub dev: u32,
    pub ino: Ino,
    pub mode: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u32,
    pub size: u64,
    pub blksize: u32,
    pub blocks: u64,
    pub atime: Timespec,
    pub mtime: Timespec,
    pub ctime: Timespec,
}

/// `STATX_BASIC_STATS`: what [`Stat::encode_statx`] fills in.
pub const STATX_BASIC_STATS: u32 = 0x7ff;

impl Stat {
    /// The 128-byte `struct stat` of arm64 (asm-generic/stat.h).
    pub fn encode_stat(&self) -> [u8; 128] {
        let mut b = [0u8; 128];
        let mut put = |at: usize, v: &[u8]| b[at..at + v.len()].copy_from_slice(v);
        put(0, &new_encode_dev(self.dev).to_le_bytes());
        put(8, &self.ino.to_le_bytes());
        put(16, &self.mode.to_le_bytes());
        put(20, &self.nlink.to_le_bytes());
        put(24, &self.uid.to_le_bytes());
        put(28, &self.gid.to_le_bytes());
        put(32, &new_encode_dev(self.rdev).to_le_bytes());
        put(48, &self.size.to_le_bytes());
        put(56, &self.blksize.to_le_bytes());
        put(64, &self.blocks.to_le_bytes());
        for (i, t) in [self.atime, self.mtime, self.ctime].iter().enumerate() {
            put(72 + 16 * i, &t.sec.to_le_bytes());
            put(80 + 16 * i, &u64::from(t.nsec).to_le_bytes());
        }
        b
    }

    /// The 256-byte `struct statx` (include/uapi/linux/stat.h), with the
    /// basic fields (there is no birth time here).
    pub fn encode_statx(&self) -> [u8; 256] {
        let mut b = [0u8; 256];
        let mut put = |at: usize, v: &[u8]| b[at..at + v.len()].copy_from_slice(v);
        put(0, &STATX_BASIC_STATS.to_le_bytes());
        put(4, &self.blksize.to_le_bytes());
        put(16, &self.nlink.to_le_bytes());
        put(20, &self.uid.to_le_bytes());
        put(24, &self.gid.to_le_bytes());
        put(28, &(self.mode as u16).to_le_bytes());
        put(32, &self.ino.to_le_bytes());
        put(40, &self.size.to_le_bytes());
        put(48, &self.blocks.to_le_bytes());
        // atime 64, btime 80 (absent), ctime 96, mtime 112.
        for (at, t) in [(64, self.atime), (96, self.ctime), (112, self.mtime)] {
            put(at, &t.sec.to_le_bytes());
            put(at + 8, &t.nsec.to_le_bytes());
        }
        put(128, &major(self.rdev).to_le_bytes());
        put(132, &minor(self.rdev).to_le_bytes());
        put(136, &major(self.dev).to_le_bytes());
        put(140, &minor(self.dev).to_le_bytes());
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_numbers_encode_as_linux() {
        let d = mkdev(1, 3);
        assert_eq!((major(d), minor(d)), (1, 3));
        assert_eq!(new_encode_dev(d), 0x103);
        assert_eq!(new_decode_dev(0x103), d);
        let big = mkdev(259, 70000);
        assert_eq!(new_decode_dev(new_encode_dev(big)), big);
    }

    #[test]
    fn stat_layout_matches_asm_generic() {
        let s =
            Stat { ino: 7, mode: S_IFREG | 0o644, nlink: 1, size: 5000, blksize: 4096, blocks: 16, ..Stat::default() };
        let b = s.encode_stat();
        assert_eq!(u64::from_le_bytes(b[8..16].try_into().unwrap()), 7);
        assert_eq!(u32::from_le_bytes(b[16..20].try_into().unwrap()), S_IFREG | 0o644);
        assert_eq!(i64::from_le_bytes(b[48..56].try_into().unwrap()), 5000);
        let x = s.encode_statx();
        assert_eq!(u16::from_le_bytes(x[28..30].try_into().unwrap()), (S_IFREG | 0o644) as u16);
        assert_eq!(u64::from_le_bytes(x[40..48].try_into().unwrap()), 5000);
    }

    #[test]
    fn static_data_is_copied_on_first_write() {
        static BYTES: [u8; 3] = *b"abc";
        let mut d = FileData::Static(&BYTES);
        d.to_mut().push(b'd');
        assert_eq!(d.as_slice(), b"abcd");
        assert_eq!(BYTES, *b"abc");
    }
}

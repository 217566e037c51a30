//! The character devices of /dev (Linux drivers/char/mem.c: `null`,
//! `zero`, `full`, `urandom`, `random`; drivers/tty/tty_io.c: `tty` and
//! `console`), by device number. The memory devices are served here; the
//! console and tty, which sleep for input, by the tty glue.

use super::Vfs;
use super::inode::{major, minor, mkdev};
use crate::mm::Errno;

/// A character device this kernel has a driver for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CharDev {
    Null,
    Zero,
    Full,
    Random,
    Urandom,
    /// `/dev/tty` (5, 0): the process's controlling terminal, which here
    /// is always the console.
    Tty,
    /// `/dev/console` (5, 1).
    Console,
}

/// /dev's nodes: name, device number, and mode (`devtmpfs` defaults).
pub const DEV_NODES: [(&[u8], u32, u32); 7] = [
    (b"null", mkdev(1, 3), 0o666),
    (b"zero", mkdev(1, 5), 0o666),
    (b"full", mkdev(1, 7), 0o666),
    (b"random", mkdev(1, 8), 0o666),
    (b"urandom", mkdev(1, 9), 0o666),
    (b"tty", mkdev(5, 0), 0o666),
    (b"console", mkdev(5, 1), 0o600),
];

impl Vfs {
    /// Makes /dev and its nodes ([`DEV_NODES`]) where missing (what
    /// devtmpfs gives a Linux system before init runs).
    pub fn populate_dev(&mut self) -> Result<(), Errno> {
        let root = self.root;
        let dev = self.mkdir_p(root, b"dev", 0o755)?;
        for (name, rdev, mode) in DEV_NODES {
            if self.dcache.d_lookup(dev, name).is_none() {
                self.create(dev, name, super::inode::S_IFCHR | mode, rdev, 0, 0)?;
            }
        }
        Ok(())
    }
}

impl CharDev {
    /// The driver of device `rdev`, if any (opening another gives ENXIO).
    pub fn of(rdev: u32) -> Option<CharDev> {
        Some(match (major(rdev), minor(rdev)) {
            (1, 3) => CharDev::Null,
            (1, 5) => CharDev::Zero,
            (1, 7) => CharDev::Full,
            (1, 8) => CharDev::Random,
            (1, 9) => CharDev::Urandom,
            (5, 0) => CharDev::Tty,
            (5, 1) => CharDev::Console,
            _ => return None,
        })
    }

    /// Whether it is the terminal (served by the tty glue).
    pub fn is_tty(self) -> bool {
        matches!(self, CharDev::Tty | CharDev::Console)
    }

    /// `read` of a memory device into `out`: null is at end of file, zero
    /// and full read zeros, random and urandom random bytes.
    pub fn read(self, v: &mut Vfs, out: &mut [u8]) -> usize {
        match self {
            CharDev::Null => 0,
            CharDev::Zero | CharDev::Full => {
                out.fill(0);
                out.len()
            }
            CharDev::Random | CharDev::Urandom => {
                v.fill_random(out);
                out.len()
            }
            CharDev::Tty | CharDev::Console => 0,
        }
    }

    /// `write` of `n` bytes to a memory device: swallowed, but full has
    /// no room (ENOSPC).
    pub fn write(self, n: usize) -> Result<usize, Errno> {
        match self {
            CharDev::Full => Err(Errno::ENOSPC),
            _ => Ok(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::testing::vfs;

    #[test]
    fn memory_devices_behave_as_drivers_char_mem() {
        let mut v = vfs();
        let mut b = [7u8; 16];
        assert_eq!(CharDev::of(mkdev(1, 3)).unwrap().read(&mut v, &mut b), 0);
        assert_eq!(CharDev::of(mkdev(1, 5)).unwrap().read(&mut v, &mut b), 16);
        assert_eq!(b, [0; 16]);
        CharDev::Urandom.read(&mut v, &mut b);
        assert_ne!(b, [0; 16]);
        assert_eq!(CharDev::Full.write(3), Err(Errno::ENOSPC));
        assert_eq!(CharDev::Null.write(3), Ok(3));
        assert_eq!(CharDev::of(mkdev(9, 9)), None);
        assert!(CharDev::of(mkdev(5, 1)).unwrap().is_tty());
        v.populate_dev().unwrap();
        v.populate_dev().unwrap();
        let at = crate::fs::namei::At::root(v.root, v.root);
        let null = v.lookup(at, b"/dev/null", true).unwrap();
        assert_eq!(CharDev::of(v.inode(null).rdev), Some(CharDev::Null));
    }
}

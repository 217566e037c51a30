//! Finding the image files and choosing where in host RAM each one is loaded.

use std::path::{Path, PathBuf};

use crate::config::ImageRef;

/// Images are placed on 2 MiB boundaries.
pub const IMAGE_ALIGN: u64 = 2 << 20;

/// Where image names point.
pub struct Dirs {
    /// `--images DIR`: where `guest-kernel.bin` is.
    pub images: Option<PathBuf>,
    /// `${EL2_CACHE:-.cache}`: where `linux/Image` and `linux/initramfs.cpio.gz` are.
    pub cache: PathBuf,
    /// The configuration file's folder: other paths are relative to it.
    pub config_dir: PathBuf,
}

/// The file an image name stands for; `initrd` picks the initramfs that goes
/// with the named kernel (`IMAGES/initramfs.cpio` for "guest-kernel", the
/// busybox one for "linux").
pub fn resolve(r: &ImageRef, initrd: bool, dirs: &Dirs) -> Result<PathBuf, String> {
    let path = match r {
        ImageRef::GuestKernel if initrd => match &dirs.images {
            Some(d) => d.join("initramfs.cpio"),
            None => return Err("\"guest-kernel\" needs --images DIR".into()),
        },
        ImageRef::GuestKernel => match &dirs.images {
            Some(d) => d.join("guest-kernel.bin"),
            None => return Err("\"guest-kernel\" needs --images DIR".into()),
        },
        ImageRef::Linux if initrd => dirs.cache.join("linux/initramfs.cpio.gz"),
        ImageRef::Linux => dirs.cache.join("linux/Image"),
        ImageRef::Path(p) => dirs.config_dir.join(p),
    };
    if !path.is_file() {
        return Err(format!("{} does not exist", path.display()));
    }
    Ok(path)
}

/// One file to load, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placed {
    /// Absolute path.
    pub path: PathBuf,
    /// Host-physical load address.
    pub addr: u64,
    /// File size in bytes.
    pub size: u64,
}

/// Assigns load addresses upward from `load_base`, each image on a 2 MiB
/// boundary; a file named twice is loaded once (images are read-only).
#[derive(Default)]
pub struct Placer {
    pub placed: Vec<Placed>,
    next: u64,
}

impl Placer {
    pub fn new(load_base: u64) -> Self {
        Placer { placed: Vec::new(), next: align_up(load_base, IMAGE_ALIGN) }
    }

    /// Loads `path` (once) and returns its address and size.
    pub fn place(&mut self, path: &Path) -> Result<(u64, u64), String> {
        let path = path.canonicalize().map_err(|e| format!("{}: {e}", path.display()))?;
        if let Some(p) = self.placed.iter().find(|p| p.path == path) {
            return Ok((p.addr, p.size));
        }
        self.place_copy(&path)
    }

    /// Loads `path` at an address of its own even if it is loaded already:
    /// a disk image, which its device uses (and the guest writes) in place.
    pub fn place_copy(&mut self, path: &Path) -> Result<(u64, u64), String> {
        let path = path.canonicalize().map_err(|e| format!("{}: {e}", path.display()))?;
        let size = std::fs::metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?.len();
        let addr = self.next;
        let end = addr.checked_add(size).ok_or("load address overflows")?;
        // Empty files still take a slot, so no two images share an address.
        self.next = align_up(end.max(addr + 1), IMAGE_ALIGN);
        self.placed.push(Placed { path, addr, size });
        Ok((addr, size))
    }
}

pub fn align_up(x: u64, a: u64) -> u64 {
    x.div_ceil(a) * a
}

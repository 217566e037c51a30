//! Where a VM's pieces go in its guest-physical RAM (Linux booting.rst
//! rules: kernel at a 2 MiB aligned base + text_offset, DTB 8-byte aligned
//! and at most 2 MiB, initrd anywhere in RAM not overlapping either).

use shared::platform::Region;

/// Space kept at the top of RAM for the DTB (booting.rst's 2 MiB limit).
pub const DTB_MAX: u64 = 2 << 20;

/// Guest-physical addresses of a VM's boot pieces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmLayout {
    /// Guest RAM.
    pub ram: Region,
    /// Where the kernel image is copied (entry point).
    pub kernel: Region,
    /// Where the generated DTB goes (x0 at entry).
    pub dtb: u64,
    /// Where the initrd is copied.
    pub initrd: Option<Region>,
}

/// Why a VM's images do not fit its RAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// Kernel (its `image_size`, with BSS) plus DTB space exceed RAM.
    KernelTooBig { image_size: u64, ram: u64 },
    /// No room for the initrd between the kernel and the DTB.
    InitrdTooBig { initrd: u64, room: u64 },
}

impl core::fmt::Display for LayoutError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::KernelTooBig { image_size, ram } => write!(
                f,
                "kernel: image_size {} plus 2 MiB for the DTB does not fit in memory ({})",
                crate::vmspec::Size(*image_size),
                crate::vmspec::Size(*ram)
            ),
            Self::InitrdTooBig { initrd, room } => {
                write!(
                    f,
                    "initrd: {} do not fit in the {} left after the kernel",
                    crate::vmspec::Size(*initrd),
                    crate::vmspec::Size(*room)
                )
            }
        }
    }
}

/// Plans a VM's RAM: kernel at the bottom, DTB in the top 2 MiB, initrd
/// just below the DTB.
pub fn plan(ram: Region, text_offset: u64, image_size: u64, initrd_size: Option<u64>) -> Result<VmLayout, LayoutError> {
    let kernel = Region { base: ram.base + text_offset, size: image_size };
    let dtb = ram.end().saturating_sub(DTB_MAX);
    if text_offset.saturating_add(image_size).saturating_add(DTB_MAX) > ram.size {
        return Err(LayoutError::KernelTooBig { image_size, ram: ram.size });
    }
    let initrd = match initrd_size {
        None => None,
        Some(size) => {
            let room = dtb - kernel.end();
            let base = (dtb.saturating_sub(size)) & !0xfff;
            if size > room || base < kernel.end() {
                return Err(LayoutError::InitrdTooBig { initrd: size, room });
            }
            Some(Region { base, size })
        }
    };
    Ok(VmLayout { ram, kernel, dtb, initrd })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAM: Region = Region { base: 0x4000_0000, size: 0x400_0000 };

    #[test]
    fn pieces_do_not_overlap() {
        let l = plan(RAM, 0, 0x20_0000, Some(0x10_0123)).unwrap();
        assert_eq!(l.kernel.base, 0x4000_0000);
        assert_eq!(l.dtb, 0x43e0_0000);
        let rd = l.initrd.unwrap();
        assert!(rd.base >= l.kernel.end() && rd.end() <= l.dtb);
        assert_eq!(rd.base % 4096, 0);
    }

    #[test]
    fn too_big_is_an_error_naming_the_field() {
        let e = plan(RAM, 0, 0x400_0000, None).unwrap_err();
        assert!(format!("{e}").starts_with("kernel:"));
        let e = plan(RAM, 0, 0x20_0000, Some(0x3e0_0000)).unwrap_err();
        assert!(format!("{e}").starts_with("initrd:"));
    }
}

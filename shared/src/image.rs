//! The Linux arm64 `Image` header (Linux `Documentation/arch/arm64/booting.rst`).
//!
//! Both the hypervisor and the guest kernel start with this 64-byte header so
//! that QEMU `-kernel`, U-Boot `booti` and our own loader accept them. The
//! header itself is emitted by each program's `entry.S`; this module is the
//! reader side, used by the hypervisor to validate guest images.

/// `ARM\x64`, little-endian, at offset 0x38.
pub const MAGIC: u32 = 0x644d_5241;
/// Size of the header in bytes.
pub const HEADER_SIZE: usize = 64;

/// Flag bit 0: kernel endianness (1 = big-endian).
pub const FLAG_BE: u64 = 1 << 0;
/// Flags bits 1-2: page size (1 = 4K).
pub const FLAG_PAGE_4K: u64 = 1 << 1;
/// Flag bit 3: 0 = 2 MiB aligned base should be as close as possible to the
/// base of DRAM; 1 = anywhere in physical memory.
pub const FLAG_PHYS_ANYWHERE: u64 = 1 << 3;

/// The decoded fields of an `Image` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageHeader {
    /// Offset from a 2 MiB aligned base at which the image must be placed.
    pub text_offset: u64,
    /// Effective image size, including BSS, from the start of the image.
    pub image_size: u64,
    /// Informative flags (`FLAG_*`).
    pub flags: u64,
}

/// Why a blob is not a bootable arm64 `Image`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageError {
    /// Fewer than 64 bytes.
    TooShort(usize),
    /// The magic at offset 0x38 is not `ARM\x64`; the value found is given.
    BadMagic(u32),
    /// The header asks for a big-endian kernel.
    BigEndian,
    /// `image_size` is zero (pre-3.17 kernel, unsupported) or smaller than the file.
    BadImageSize { image_size: u64, file_size: usize },
    /// `text_offset` is not 4 KiB aligned or not below 2 MiB.
    BadTextOffset(u64),
}

impl core::fmt::Display for ImageError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::TooShort(n) => write!(f, "image is {n} bytes, shorter than the 64-byte Image header"),
            Self::BadMagic(m) => {
                write!(f, "no arm64 Image header: magic at 0x38 is {m:#010x}, expected 0x644d5241 (\"ARM\\x64\")")
            }
            Self::BigEndian => write!(f, "Image header asks for a big-endian kernel"),
            Self::BadImageSize { image_size, file_size } => write!(
                f,
                "Image header image_size {image_size:#x} is zero or smaller than the file ({file_size:#x} bytes)"
            ),
            Self::BadTextOffset(t) => write!(f, "Image header text_offset {t:#x} is not 4K-aligned below 2 MiB"),
        }
    }
}

fn le64(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

impl ImageHeader {
    /// Parses and validates the header at the start of `image`.
    pub fn parse(image: &[u8]) -> Result<Self, ImageError> {
        if image.len() < HEADER_SIZE {
            return Err(ImageError::TooShort(image.len()));
        }
        let magic = u32::from_le_bytes([image[0x38], image[0x39], image[0x3a], image[0x3b]]);
        if magic != MAGIC {
            return Err(ImageError::BadMagic(magic));
        }
        let hdr = Self { text_offset: le64(image, 0x08), image_size: le64(image, 0x10), flags: le64(image, 0x18) };
        if hdr.flags & FLAG_BE != 0 {
            return Err(ImageError::BigEndian);
        }
        if hdr.image_size == 0 || (hdr.image_size as usize) < image.len() {
            return Err(ImageError::BadImageSize { image_size: hdr.image_size, file_size: image.len() });
        }
        if !hdr.text_offset.is_multiple_of(4096) || hdr.text_offset >= 2 << 20 {
            return Err(ImageError::BadTextOffset(hdr.text_offset));
        }
        Ok(hdr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(text_offset: u64, image_size: u64, flags: u64) -> Vec<u8> {
        let mut h = vec![0u8; 128];
        h[0x08..0x10].copy_from_slice(&text_offset.to_le_bytes());
        h[0x10..0x18].copy_from_slice(&image_size.to_le_bytes());
        h[0x18..0x20].copy_from_slice(&flags.to_le_bytes());
        h[0x38..0x3c].copy_from_slice(&MAGIC.to_le_bytes());
        h
    }

    #[test]
    fn accepts_valid_header() {
        let h = ImageHeader::parse(&header(0, 0x10000, FLAG_PAGE_4K | FLAG_PHYS_ANYWHERE)).unwrap();
        assert_eq!(h.image_size, 0x10000);
        assert_eq!(h.flags, FLAG_PAGE_4K | FLAG_PHYS_ANYWHERE);
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(ImageHeader::parse(&[0; 10]), Err(ImageError::TooShort(10)));
        let mut h = header(0, 0x1000, 0);
        h[0x38] = b'X';
        assert!(matches!(ImageHeader::parse(&h), Err(ImageError::BadMagic(_))));
        assert_eq!(ImageHeader::parse(&header(0, 0x1000, FLAG_BE)), Err(ImageError::BigEndian));
        assert!(matches!(ImageHeader::parse(&header(0, 0, 0)), Err(ImageError::BadImageSize { .. })));
        assert!(matches!(ImageHeader::parse(&header(0, 64, 0)), Err(ImageError::BadImageSize { .. })));
        assert_eq!(ImageHeader::parse(&header(0x123, 0x1000, 0)), Err(ImageError::BadTextOffset(0x123)));
        assert_eq!(ImageHeader::parse(&header(2 << 20, 0x1000, 0)), Err(ImageError::BadTextOffset(2 << 20)));
    }

    #[test]
    fn error_messages_name_the_field() {
        let msg = format!("{}", ImageError::BadMagic(0));
        assert!(msg.contains("magic"), "{msg}");
    }
}

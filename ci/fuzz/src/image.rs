//! `shared::image`: the arm64 Image header of a guest kernel file is
//! accepted only when it is valid, and then says what the bytes say.

use shared::image::{FLAG_BE, HEADER_SIZE, ImageError, ImageHeader, MAGIC};

/// Input: the start of a kernel image file.
pub fn fuzz(data: &[u8]) {
    let result = ImageHeader::parse(data);
    let _ = result.map_err(|e| format!("{e}"));
    match result {
        Ok(h) => {
            assert!(data.len() >= HEADER_SIZE);
            let le = |off: usize| u64::from_le_bytes(data[off..off + 8].try_into().expect("8 bytes"));
            assert_eq!(u32::from_le_bytes(data[0x38..0x3c].try_into().expect("4 bytes")), MAGIC);
            assert_eq!((h.text_offset, h.image_size, h.flags), (le(0x08), le(0x10), le(0x18)));
            assert_eq!(h.flags & FLAG_BE, 0);
            assert!(h.image_size >= data.len() as u64 && h.image_size != 0);
            assert!(h.text_offset.is_multiple_of(4096) && h.text_offset < 2 << 20);
        }
        Err(ImageError::TooShort(n)) => assert!(n == data.len() && n < HEADER_SIZE),
        Err(_) => assert!(data.len() >= HEADER_SIZE),
    }
}

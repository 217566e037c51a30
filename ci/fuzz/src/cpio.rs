//! `guest_kernel::initramfs`: the cpio "newc" reader the guest kernel runs
//! over its initramfs. A damaged archive yields an error, never a panic;
//! the entries it yields lie inside the archive; an archive without a
//! trailer never ends silently; `Cpio::find` agrees with iteration; and
//! every regular file goes through exec's ELF loader as `execve` would
//! (from its 4-byte-aligned place inside the archive).

use guest_kernel::initramfs::{Cpio, S_IFREG};

/// Input: an archive.
pub fn fuzz(data: &[u8]) {
    let range = data.as_ptr_range();
    let mut entries = Vec::new();
    let mut ended_with_error = false;
    // Each entry takes at least a 110-byte header.
    for (i, item) in Cpio::new(data).enumerate() {
        assert!(i <= data.len() / 110, "more entries than headers fit");
        match item {
            Ok(e) => {
                assert!(e.data.is_empty() || range.contains(&e.data.as_ptr()), "entry data outside the archive");
                assert!(e.data.len() <= data.len());
                assert!(!e.name.starts_with('/') && !e.name.starts_with("./"), "name {:?} not normalized", e.name);
                entries.push(e);
            }
            Err(_) => ended_with_error = true,
        }
    }
    if !ended_with_error {
        // Iteration stopped at a trailer.
        assert!(data.windows(10).any(|w| w == b"TRAILER!!!"), "an archive without a trailer ended without an error");
    }
    for e in entries.iter().take(8) {
        let found = Cpio::find(data, e.name);
        let first = entries.iter().find(|f| f.name == e.name && f.mode & 0o170000 == S_IFREG);
        assert_eq!(found, first.copied(), "find({:?}) disagrees with iteration", e.name);
        for spelling in [format!("/{}", e.name), format!("./{}", e.name)] {
            assert_eq!(Cpio::find(data, &spelling), found, "find({spelling:?})");
        }
        if e.mode & 0o170000 == S_IFREG
            && let Ok(plan) = guest_kernel::elf::load_plan(e.data)
        {
            crate::elf::check_plan(&plan, e.data.len());
        }
    }
}

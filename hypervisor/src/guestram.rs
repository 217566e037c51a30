//! Guest RAM on demand: which part of a VM's RAM is filled and mapped in
//! stage 2 at a time, and which image bytes go into it.
//!
//! A VM's RAM is not zeroed, cleaned or mapped when the VM is created or
//! reset. Its stage 2 starts with only the blocks that hold the boot images
//! (kernel, initrd, DTB); the guest's first access to any other block takes
//! a stage-2 translation fault, and the hypervisor then zeroes that block,
//! cleans and invalidates it to the point of coherency and maps it, as
//! KVM's `user_mem_abort` does with a zeroed page from the host kernel
//! (2 MiB blocks where both addresses allow, `vma_pagesize` there). The
//! unit is a [`BLOCK`], a stage-2 level-2 block of the 4K granule (ARM ARM
//! D8.3), clipped to the RAM's ends.
//!
//! Why on first touch rather than zeroing freed RAM: on a board RAM is not
//! zero at power-on and the frames a VM gets may hold anything, so the first
//! use needs zeroing anyway, and a reset must not show the old instance's
//! data to the new one either. One rule covers all three cases: a RAM block
//! is mapped in stage 2 only after it was filled in this instance (zeros
//! and this instance's images) and cleaned to the PoC; a reset unmaps them
//! all (with the TLB invalidation of the VMID) before the guest runs again.
//! The cost is paid for the RAM a guest touches, not for the RAM it has.
//! (No device is passed through that masters DMA, docs/vm-config.md: one
//! could write a block before the guest's first touch, and the fill would
//! then zero its data; KVM faults such pages in before a device uses them.)
//!
//! This module is the arithmetic; `arch::aarch64::guestram` does the
//! zeroing, the cache maintenance and the stage-2 change.

use core::ops::Range;

/// The fill unit: 2 MiB, a level-2 block descriptor's reach.
pub const BLOCK: u64 = 2 << 20;

/// A VM's RAM: its IPA range and the host-physical address behind it
/// (contiguous, as `vmm::build_vm` allocates it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestRam {
    pub ipa: u64,
    pub size: u64,
    pub host: u64,
}

impl GuestRam {
    /// Whether `ipa` lies in the RAM.
    pub fn contains(&self, ipa: u64) -> bool {
        ipa >= self.ipa && ipa - self.ipa < self.size
    }

    /// The fill unit that holds `ipa`: its [`BLOCK`]-aligned block,
    /// clipped to the RAM. None outside the RAM.
    pub fn block_of(&self, ipa: u64) -> Option<Range<u64>> {
        if !self.contains(ipa) {
            return None;
        }
        let start = (ipa & !(BLOCK - 1)).max(self.ipa);
        let end = (ipa & !(BLOCK - 1)).saturating_add(BLOCK).min(self.ipa + self.size);
        Some(start..end)
    }

    /// Every fill unit that overlaps `[r.start, r.end)`, in order.
    pub fn blocks(&self, r: Range<u64>) -> impl Iterator<Item = Range<u64>> + '_ {
        let end = r.end.min(self.ipa + self.size);
        let mut at = r.start.max(self.ipa);
        core::iter::from_fn(move || {
            if at >= end {
                return None;
            }
            let b = self.block_of(at)?;
            at = b.end;
            Some(b)
        })
    }

    /// The host-physical address of `ipa` (which must be in the RAM).
    pub fn host_of(&self, ipa: u64) -> u64 {
        self.host + (ipa - self.ipa)
    }
}

/// The part of `image`, loaded at IPA `at`, that falls inside `block`:
/// the IPA where that part starts and its bytes. None if they do not meet.
pub fn image_part<'a>(block: &Range<u64>, at: u64, image: &'a [u8]) -> Option<(u64, &'a [u8])> {
    let end = at.checked_add(image.len() as u64)?;
    let (start, stop) = (at.max(block.start), end.min(block.end));
    if start >= stop {
        return None;
    }
    let off = (start - at) as usize;
    Some((start, &image[off..off + (stop - start) as usize]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn blocks_are_two_mib_aligned_and_clipped_to_ram() {
        let ram = GuestRam { ipa: 0x4000_0000, size: 64 * MIB, host: 0x8000_0000 };
        assert_eq!(ram.block_of(0x4000_0000), Some(0x4000_0000..0x4020_0000));
        assert_eq!(ram.block_of(0x403f_ffff), Some(0x4020_0000..0x4040_0000));
        assert_eq!(ram.block_of(0x43ff_ffff), Some(0x43e0_0000..0x4400_0000));
        assert_eq!(ram.block_of(0x4400_0000), None, "just past the RAM");
        assert_eq!(ram.block_of(0x3fff_ffff), None, "just below it");
        assert_eq!(ram.host_of(0x4020_0010), 0x8020_0010);
        // RAM that starts and ends inside a block: the units are clipped.
        let odd = GuestRam { ipa: 0x4010_0000, size: 3 * MIB, host: 0x9010_0000 };
        assert_eq!(odd.block_of(0x4010_0000), Some(0x4010_0000..0x4020_0000));
        assert_eq!(odd.block_of(0x4030_0000), Some(0x4020_0000..0x4040_0000));
        assert_eq!(odd.block_of(0x4040_0000), None);
    }

    #[test]
    fn blocks_of_a_range_cover_it_once() {
        let ram = GuestRam { ipa: 0x4000_0000, size: 16 * MIB, host: 0 };
        let b: Vec<_> = ram.blocks(0x4010_0000..0x4060_0001).collect();
        assert_eq!(
            b,
            [0x4000_0000..0x4020_0000, 0x4020_0000..0x4040_0000, 0x4040_0000..0x4060_0000, 0x4060_0000..0x4080_0000]
        );
        // Clipped to the RAM at both ends; nothing for a range outside it.
        assert_eq!(ram.blocks(0..u64::MAX).count(), 8);
        assert_eq!(ram.blocks(0x5000_0000..0x5100_0000).count(), 0);
        assert_eq!(ram.blocks(0x4000_0000..0x4000_0000).count(), 0, "empty");
    }

    #[test]
    fn image_parts_split_at_block_edges() {
        let image: Vec<u8> = (0..=255).cycle().take(3 * MIB as usize).collect();
        let at = 0x4010_0000;
        let first = 0x4000_0000..0x4020_0000;
        let (ipa, part) = image_part(&first, at, &image).unwrap();
        assert_eq!((ipa, part.len() as u64), (at, MIB));
        let (ipa, part) = image_part(&(0x4020_0000..0x4040_0000), at, &image).unwrap();
        assert_eq!((ipa, part.len() as u64, part[0]), (0x4020_0000, 2 * MIB, image[MIB as usize]));
        assert_eq!(image_part(&(0x4040_0000..0x4060_0000), at, &image), None, "the image ends at 0x4040_0000");
        assert_eq!(image_part(&first, at, &[]), None, "an empty image");
        assert_eq!(image_part(&first, u64::MAX, &[1, 2]), None, "an image that would wrap");
    }
}

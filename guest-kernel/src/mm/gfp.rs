//! GFP ("get free pages") flags: how an allocation may behave and where it may
//! come from.
//!
//! LKD ch. 12, "gfp_mask Flags": action modifiers, zone modifiers and types.
//! The bit values follow Linux's `include/linux/gfp_types.h` (5.x/6.x layout)
//! so that a reader can compare them; only the subset this kernel uses exists.

use core::fmt;
use core::ops::{BitAnd, BitOr, BitOrAssign, Not};

use super::page::{MigrateType, ZoneType};

/// A set of GFP flags (`gfp_t`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Gfp(pub u32);

impl Gfp {
    /// No flags at all.
    pub const NONE: Gfp = Gfp(0);
    /// Zone modifier: ZONE_DMA32 only (LKD ch. 12, "Zone Modifiers").
    pub const __GFP_DMA32: Gfp = Gfp(0x04);
    /// Migrate-type modifier: the page can be moved (user pages).
    pub const __GFP_MOVABLE: Gfp = Gfp(0x08);
    /// Migrate-type modifier: the page can be reclaimed (caches).
    pub const __GFP_RECLAIMABLE: Gfp = Gfp(0x10);
    /// High priority: may use part of the emergency reserve (ALLOC_HIGH).
    pub const __GFP_HIGH: Gfp = Gfp(0x20);
    /// The caller may perform I/O.
    pub const __GFP_IO: Gfp = Gfp(0x40);
    /// The caller may call into the file system.
    pub const __GFP_FS: Gfp = Gfp(0x80);
    /// Zero the pages before returning them.
    pub const __GFP_ZERO: Gfp = Gfp(0x100);
    /// The caller may sleep and reclaim directly (the "may sleep" bit).
    pub const __GFP_DIRECT_RECLAIM: Gfp = Gfp(0x400);
    /// The allocator may wake kswapd.
    pub const __GFP_KSWAPD_RECLAIM: Gfp = Gfp(0x800);
    /// Do not report allocation failures.
    pub const __GFP_NOWARN: Gfp = Gfp(0x2000);
    /// Build a compound page out of an order > 0 block.
    pub const __GFP_COMP: Gfp = Gfp(0x40000);
    /// Both reclaim bits.
    pub const __GFP_RECLAIM: Gfp = Gfp(0x400 | 0x800);

    /// Process context, may sleep: the common case.
    pub const GFP_KERNEL: Gfp = Gfp(Self::__GFP_RECLAIM.0 | Self::__GFP_IO.0 | Self::__GFP_FS.0);
    /// Interrupt context, must not sleep, may dip into the reserves.
    pub const GFP_ATOMIC: Gfp = Gfp(Self::__GFP_HIGH.0 | Self::__GFP_KSWAPD_RECLAIM.0);
    /// Must not sleep, but does not get access to the reserves.
    pub const GFP_NOWAIT: Gfp = Gfp(Self::__GFP_KSWAPD_RECLAIM.0);
    /// User pages: movable, may sleep.
    pub const GFP_USER: Gfp = Gfp(Self::GFP_KERNEL.0);
    /// User pages that the kernel may migrate.
    pub const GFP_HIGHUSER_MOVABLE: Gfp = Gfp(Self::GFP_USER.0 | Self::__GFP_MOVABLE.0);
    /// Memory for devices that can only address 32 bits.
    pub const GFP_DMA32: Gfp = Gfp(Self::__GFP_DMA32.0);

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: Gfp) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any bit of `other` is set.
    pub const fn intersects(self, other: Gfp) -> bool {
        self.0 & other.0 != 0
    }

    /// `gfpflags_allow_blocking()`: may the caller sleep?
    pub const fn allows_blocking(self) -> bool {
        self.contains(Self::__GFP_DIRECT_RECLAIM)
    }

    /// `gfp_zone()`: the highest zone the allocation may use.
    pub const fn zone(self) -> ZoneType {
        if self.contains(Self::__GFP_DMA32) { ZoneType::Dma32 } else { ZoneType::Normal }
    }

    /// `gfp_migratetype()`: which free lists the allocation prefers.
    pub const fn migratetype(self) -> MigrateType {
        if self.contains(Self::__GFP_MOVABLE) {
            MigrateType::Movable
        } else if self.contains(Self::__GFP_RECLAIMABLE) {
            MigrateType::Reclaimable
        } else {
            MigrateType::Unmovable
        }
    }
}

impl BitOr for Gfp {
    type Output = Gfp;
    fn bitor(self, rhs: Gfp) -> Gfp {
        Gfp(self.0 | rhs.0)
    }
}

impl BitOrAssign for Gfp {
    fn bitor_assign(&mut self, rhs: Gfp) {
        self.0 |= rhs.0;
    }
}

impl BitAnd for Gfp {
    type Output = Gfp;
    fn bitand(self, rhs: Gfp) -> Gfp {
        Gfp(self.0 & rhs.0)
    }
}

impl Not for Gfp {
    type Output = Gfp;
    fn not(self) -> Gfp {
        Gfp(!self.0)
    }
}

impl fmt::Debug for Gfp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [(Gfp, &str); 12] = [
            (Gfp::__GFP_DMA32, "__GFP_DMA32"),
            (Gfp::__GFP_MOVABLE, "__GFP_MOVABLE"),
            (Gfp::__GFP_RECLAIMABLE, "__GFP_RECLAIMABLE"),
            (Gfp::__GFP_HIGH, "__GFP_HIGH"),
            (Gfp::__GFP_IO, "__GFP_IO"),
            (Gfp::__GFP_FS, "__GFP_FS"),
            (Gfp::__GFP_ZERO, "__GFP_ZERO"),
            (Gfp::__GFP_DIRECT_RECLAIM, "__GFP_DIRECT_RECLAIM"),
            (Gfp::__GFP_KSWAPD_RECLAIM, "__GFP_KSWAPD_RECLAIM"),
            (Gfp::__GFP_NOWARN, "__GFP_NOWARN"),
            (Gfp::__GFP_COMP, "__GFP_COMP"),
            (Gfp::NONE, ""),
        ];
        let mut first = true;
        for (flag, name) in NAMES {
            if flag.0 != 0 && self.contains(flag) {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("0")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_and_migratetype_modifiers() {
        assert_eq!(Gfp::GFP_KERNEL.zone(), ZoneType::Normal);
        assert_eq!((Gfp::GFP_KERNEL | Gfp::__GFP_DMA32).zone(), ZoneType::Dma32);
        assert_eq!(Gfp::GFP_KERNEL.migratetype(), MigrateType::Unmovable);
        assert_eq!(Gfp::GFP_HIGHUSER_MOVABLE.migratetype(), MigrateType::Movable);
        assert!(Gfp::GFP_KERNEL.allows_blocking());
        assert!(!Gfp::GFP_ATOMIC.allows_blocking());
        assert_eq!(alloc::format!("{:?}", Gfp::GFP_ATOMIC), "__GFP_HIGH|__GFP_KSWAPD_RECLAIM");
    }
}

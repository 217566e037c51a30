//! Stage-2 translation: the guest-physical (IPA) → host-physical map of one
//! VM (ARM ARM D8.1 "Translation regimes", D8.3 stage 2 descriptors).
//!
//! Built on `aarch64-paging`'s stage-2 support. Page-table pages come from
//! the global allocator, which at EL2 is identity-mapped, so a table's
//! virtual address is its physical address. TLB maintenance is the caller's
//! job (`arch::aarch64::stage2_flush`), because only the caller knows which
//! VMID is loaded.

use aarch64_paging::descriptor::{PhysicalAddress, Stage2Attributes as S2};
use aarch64_paging::idmap::IdTranslation;
use aarch64_paging::paging::{Constraints, MemoryRegion, RootTable, Stage2};

/// How a range is mapped into a guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapKind {
    /// Guest RAM: normal write-back memory, read/write/execute.
    Ram,
    /// A pass-through device or the GICv2 virtual CPU interface:
    /// Device-nGnRE, read/write, never executable.
    Device,
    /// A page the hypervisor writes for the guest to read (stolen time):
    /// normal write-back memory, read-only, never executable.
    ReadOnly,
    /// A shared-memory region (`shm`): normal write-back memory,
    /// read/write, never executable (one VM must not run code another wrote).
    Shared,
}

impl MapKind {
    fn attributes(self) -> S2 {
        let common = S2::VALID | S2::ACCESS_FLAG | S2::S2AP_ACCESS_RW;
        match self {
            MapKind::Ram => common | S2::MEMATTR_NORMAL_INNER_WB | S2::MEMATTR_NORMAL_OUTER_WB | S2::SH_INNER,
            MapKind::Device => common | S2::MEMATTR_DEVICE_nGnRE | S2::XN,
            MapKind::Shared => {
                common | S2::MEMATTR_NORMAL_INNER_WB | S2::MEMATTR_NORMAL_OUTER_WB | S2::SH_INNER | S2::XN
            }
            MapKind::ReadOnly => {
                (common - S2::S2AP_ACCESS_RW)
                    | S2::S2AP_ACCESS_RO
                    | S2::MEMATTR_NORMAL_INNER_WB
                    | S2::MEMATTR_NORMAL_OUTER_WB
                    | S2::SH_INNER
                    | S2::XN
            }
        }
    }
}

/// Why a stage-2 change failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage2Error {
    /// The range is not page aligned, is empty, or lies beyond the IPA size.
    BadRange { ipa: u64, size: u64 },
}

impl core::fmt::Display for Stage2Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::BadRange { ipa, size } => {
                write!(f, "stage-2 range {ipa:#x}+{size:#x} is unaligned, empty or beyond the IPA space")
            }
        }
    }
}

/// The IPA space layout chosen from the CPU's physical address range
/// (ID_AA64MMFR0_EL1.PARange) and the VTCR_EL2 fields that describe it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpaConfig {
    /// IPA size in bits.
    pub bits: u32,
    /// Level of the root table (0 or 1 with a 4K granule).
    pub root_level: usize,
    /// VTCR_EL2.PS encoding of the physical address size.
    pub ps: u64,
}

impl IpaConfig {
    /// Picks the IPA size for a PARange field value (ARM ARM D19.2.64):
    /// a 48-bit IPA starting at level 0 when the CPU has 48 physical
    /// address bits or more, else up to 39 bits with a single level-1 root
    /// (D8.2.6: a level-1 start covers at most 39 bits without concatenation).
    pub fn from_parange(parange: u64) -> Self {
        let pa_bits = match parange & 0xf {
            0 => 32,
            1 => 36,
            2 => 40,
            3 => 42,
            4 => 44,
            5 => 48,
            _ => 52,
        };
        let ps = (parange & 0xf).min(5);
        if pa_bits >= 48 {
            IpaConfig { bits: 48, root_level: 0, ps }
        } else {
            IpaConfig { bits: pa_bits.min(39), root_level: 1, ps }
        }
    }

    /// VTCR_EL2 for this layout (ARM ARM D19.2.178): T0SZ, SL0, 4K granule,
    /// inner-shareable write-back walks, PS.
    pub fn vtcr(&self) -> u64 {
        let t0sz = 64 - self.bits as u64;
        let sl0 = match self.root_level {
            0 => 2,
            _ => 1,
        };
        const IRGN0_WB: u64 = 1 << 8;
        const ORGN0_WB: u64 = 1 << 10;
        const SH0_INNER: u64 = 3 << 12;
        const RES1: u64 = 1 << 31;
        t0sz | (sl0 << 6) | IRGN0_WB | ORGN0_WB | SH0_INNER | (self.ps << 16) | RES1
    }
}

/// One VM's stage-2 tables.
pub struct Stage2Table {
    root: RootTable<Stage2, IdTranslation<S2>>,
    ipa_limit: u64,
}

// A named exception to the crate's `deny(unsafe_code)`: aarch64-paging's
// `RootTable` holds raw pointers to its tables, so it is not `Send` by
// itself; a VM's table moves between CPUs with its VM.
// SAFETY: the table is only reached through `&mut self`; the raw page-table
// pointers inside it are owned by this object alone.
#[allow(unsafe_code)]
unsafe impl Send for Stage2Table {}

impl Stage2Table {
    /// An empty table for the given IPA layout.
    pub fn new(cfg: IpaConfig) -> Self {
        Self { root: RootTable::new(IdTranslation::new(), cfg.root_level, Stage2), ipa_limit: 1 << cfg.bits }
    }

    fn check(&self, ipa: u64, size: u64) -> Result<MemoryRegion, Stage2Error> {
        let bad = Stage2Error::BadRange { ipa, size };
        let end = ipa.checked_add(size).ok_or(bad)?;
        if size == 0 || !ipa.is_multiple_of(4096) || !size.is_multiple_of(4096) || end > self.ipa_limit {
            return Err(bad);
        }
        Ok(MemoryRegion::new(ipa as usize, end as usize))
    }

    /// Whether [`map`](Self::map) would take the range: page aligned, not
    /// empty, inside the IPA space (guest RAM is mapped piece by piece, at
    /// first touch, and checked whole when the VM is built).
    pub fn check_map(&self, ipa: u64, pa: u64, size: u64) -> Result<MemoryRegion, Stage2Error> {
        let region = self.check(ipa, size)?;
        if !pa.is_multiple_of(4096) {
            return Err(Stage2Error::BadRange { ipa, size });
        }
        Ok(region)
    }

    /// Maps `[ipa, ipa + size)` to `[pa, pa + size)`. Uses 2 MiB (and 1 GiB)
    /// blocks wherever both addresses are aligned.
    pub fn map(&mut self, ipa: u64, pa: u64, size: u64, kind: MapKind) -> Result<(), Stage2Error> {
        let region = self.check_map(ipa, pa, size)?;
        self.root
            .map_range(&region, PhysicalAddress(pa as usize), kind.attributes(), Constraints::empty())
            .map_err(|_| Stage2Error::BadRange { ipa, size })
    }

    /// Unmaps `[ipa, ipa + size)`, splitting blocks as needed (page-granular);
    /// a whole block or table's reach is dropped at once, its tables freed.
    pub fn unmap(&mut self, ipa: u64, size: u64) -> Result<(), Stage2Error> {
        let region = self.check(ipa, size)?;
        // The output address of an invalid entry is not used, but
        // aarch64-paging 0.12 compares an existing invalid entry's with
        // `pa - (ipa % granule)`: PA 0 would underflow there for a range not
        // aligned to the level's granule. The IPA itself cannot.
        self.root
            .map_range(&region, PhysicalAddress(ipa as usize), S2::empty(), Constraints::empty())
            .map_err(|_| Stage2Error::BadRange { ipa, size })
    }

    /// Translates an IPA, as the MMU would: the host PA, or None if unmapped.
    pub fn translate(&self, ipa: u64) -> Option<u64> {
        let region = self.check(ipa & !0xfff, 4096).ok()?;
        let mut out = None;
        self.root
            .walk_range(&region, &mut |_mr, desc, level| {
                if desc.is_valid() {
                    // A block or page maps a granule of 4K << 9 * (3 - level).
                    let granule = 4096u64 << (9 * (3 - level.min(3)));
                    out = Some(desc.output_address().0 as u64 + (ipa & (granule - 1)));
                }
                Ok(())
            })
            .ok()?;
        out
    }

    /// Physical address of the root table, for VTTBR_EL2.BADDR.
    pub fn root_pa(&self) -> u64 {
        self.root.to_physical().0 as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipa_size_follows_parange() {
        assert_eq!(IpaConfig::from_parange(2), IpaConfig { bits: 39, root_level: 1, ps: 2 });
        assert_eq!(IpaConfig::from_parange(5), IpaConfig { bits: 48, root_level: 0, ps: 5 });
        assert_eq!(IpaConfig::from_parange(1), IpaConfig { bits: 36, root_level: 1, ps: 1 });
        // VTCR for 40-bit PA: T0SZ=25, SL0=1, PS=2.
        let v = IpaConfig::from_parange(2).vtcr();
        assert_eq!(v & 0x3f, 25);
        assert_eq!((v >> 6) & 3, 1);
        assert_eq!((v >> 16) & 7, 2);
    }

    #[test]
    fn guest_ram_maps_to_a_different_host_address() {
        let mut s2 = Stage2Table::new(IpaConfig::from_parange(2));
        s2.map(0x4000_0000, 0x4820_0000, 0x400_0000, MapKind::Ram).unwrap();
        assert_eq!(s2.translate(0x4000_0000), Some(0x4820_0000));
        assert_eq!(s2.translate(0x43ff_f123), Some(0x4c1f_f123));
        assert_eq!(s2.translate(0x4400_0000), None, "just past the VM's RAM");
        assert_eq!(s2.translate(0x3fff_f000), None);
        assert_eq!(s2.translate(0x4820_0000), None, "host addresses are not guest addresses");
    }

    #[test]
    fn unmap_is_page_granular() {
        let mut s2 = Stage2Table::new(IpaConfig::from_parange(2));
        s2.map(0x4000_0000, 0x8000_0000, 0x20_0000, MapKind::Ram).unwrap();
        s2.unmap(0x4000_1000, 0x1000).unwrap();
        assert_eq!(s2.translate(0x4000_0000), Some(0x8000_0000));
        assert_eq!(s2.translate(0x4000_1000), None);
        assert_eq!(s2.translate(0x4000_2000), Some(0x8000_2000));
    }

    #[test]
    fn unmap_of_unmapped_or_mapped_ram_anywhere() {
        let mut s2 = Stage2Table::new(IpaConfig::from_parange(2));
        // Nothing mapped yet, a range aligned to 2 MiB but not to 1 GiB.
        s2.unmap(0x4820_0000, 0x40_0000).unwrap();
        // On demand: two 2 MiB blocks, then all of the RAM dropped at once.
        s2.map(0x4820_0000, 0x8020_0000, 0x20_0000, MapKind::Ram).unwrap();
        s2.map(0x4860_0000, 0x8060_0000, 0x20_0000, MapKind::Ram).unwrap();
        assert_eq!(s2.translate(0x4860_0010), Some(0x8060_0010));
        s2.unmap(0x4800_0000, 0x100_0000).unwrap();
        assert_eq!(s2.translate(0x4820_0000), None);
        assert_eq!(s2.translate(0x4860_0010), None);
        s2.map(0x4860_0000, 0x9060_0000, 0x20_0000, MapKind::Ram).unwrap();
        assert_eq!(s2.translate(0x4860_0010), Some(0x9060_0010), "mapped again after the unmap");
    }

    #[test]
    fn bad_ranges_are_refused() {
        let mut s2 = Stage2Table::new(IpaConfig::from_parange(2));
        assert!(s2.map(0x123, 0, 0x1000, MapKind::Ram).is_err());
        assert!(s2.map(0, 0, 0, MapKind::Ram).is_err());
        assert!(s2.map(1 << 39, 0, 0x1000, MapKind::Ram).is_err());
        assert!(s2.map(!0xfff, 0, 0x1000, MapKind::Ram).is_err());
        assert!(s2.map(0x9000_0000, 0x900_0000, 0x1000, MapKind::Device).is_ok());
    }
}

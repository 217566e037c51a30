//! The hypervisor's own stage-1 translation (EL2 regime): an identity map of
//! RAM (normal write-back) and of the devices it drives (Device-nGnRE), built
//! with `aarch64-paging`, plus the MAIR/TCR/SCTLR values that go with it.

use super::sysreg::{isb, read_sysreg, write_sysreg};
use aarch64_paging::descriptor::El23Attributes as A;
use aarch64_paging::idmap::IdMap;
use aarch64_paging::paging::{El2, MemoryRegion};

/// MAIR_EL2 attribute indices.
const MAIR_DEVICE_NGNRE: u64 = 0x04; // index 0
const MAIR_NORMAL_WB: u64 = 0xff; // index 1
/// MAIR_EL2 value.
pub const MAIR: u64 = MAIR_DEVICE_NGNRE | (MAIR_NORMAL_WB << 8);

const NORMAL: A = A::VALID.union(A::ATTRIBUTE_INDEX_1).union(A::INNER_SHAREABLE).union(A::ACCESSED);
const DEVICE: A = A::VALID.union(A::ATTRIBUTE_INDEX_0).union(A::ACCESSED).union(A::XN);

/// Root level 0: a 48-bit VA space, so every physical address we identity
/// map is reachable whatever PARange the CPU has.
const ROOT_LEVEL: usize = 0;

/// The EL2 page tables under construction.
pub struct El2Map {
    idmap: IdMap<El2>,
}

impl Default for El2Map {
    fn default() -> Self {
        Self::new()
    }
}

impl El2Map {
    /// An empty map.
    pub fn new() -> Self {
        Self { idmap: IdMap::new(ROOT_LEVEL, El2) }
    }

    /// Maps RAM, cacheable.
    pub fn map_ram(&mut self, base: u64, size: u64) {
        let r = MemoryRegion::new(base as usize, (base + size) as usize);
        self.idmap.map_range(&r, NORMAL).expect("EL2 map: RAM range");
    }

    /// Maps a device window, uncached and never executable.
    pub fn map_device(&mut self, base: u64, size: u64) {
        let start = base & !0xfff;
        let end = (base + size + 0xfff) & !0xfff;
        let r = MemoryRegion::new(start as usize, end as usize);
        self.idmap.map_range(&r, DEVICE).expect("EL2 map: device range");
    }

    /// TCR_EL2: 48-bit VA (T0SZ = 16), 4K granule, inner-shareable
    /// write-back walks, PS from ID_AA64MMFR0_EL1.PARange (ARM ARM D19.2.139).
    pub fn tcr() -> u64 {
        let parange = read_sysreg!(id_aa64mmfr0_el1) & 0xf;
        const RES1: u64 = (1 << 31) | (1 << 23);
        16 | (1 << 8) | (1 << 10) | (3 << 12) | (parange.min(5) << 16) | RES1
    }

    /// Turns the MMU and caches on with this map. The map must live
    /// forever (it is leaked), since EL2 never runs without it again.
    ///
    /// # Safety
    /// The map must cover all memory the hypervisor uses (image, stacks,
    /// heap, DTB) and its console, identity mapped.
    pub unsafe fn activate(self) -> u64 {
        let map = alloc::boxed::Box::leak(alloc::boxed::Box::new(self));
        write_sysreg!(mair_el2, MAIR);
        write_sysreg!(tcr_el2, Self::tcr());
        isb();
        // SAFETY: the caller guarantees everything in use is identity mapped.
        unsafe { map.idmap.activate() };
        // SAFETY: TLB invalidation has no effect on memory contents.
        unsafe { core::arch::asm!("tlbi alle2", "dsb nsh", "isb", options(nostack)) };
        // SCTLR_EL2: M (MMU), C (D-cache), I (I-cache), SA (stack alignment check).
        let sctlr = read_sysreg!(sctlr_el2) | (1 << 0) | (1 << 2) | (1 << 12) | (1 << 3);
        write_sysreg!(sctlr_el2, sctlr);
        isb();
        map.idmap.root_address().0 as u64
    }
}

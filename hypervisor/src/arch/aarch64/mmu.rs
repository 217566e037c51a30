//! The hypervisor's own stage-1 translation (EL2 regime), in two steps:
//!
//! 1. [`enable_early`]: the boot CPU, MMU off, builds the early identity
//!    map (`mm::early_map`: RAM Normal, the rest Device, in static tables,
//!    plain stores only) and turns the MMU and caches on with it, before
//!    any lock or atomic ([`assert_mmu_on`] checks that on every lock);
//! 2. [`El2Map`]: the full map, built with `aarch64-paging` on the heap (RAM
//!    and the devices EL2 drives), which [`El2Map::activate`] switches to.
//!
//! Both use the same MAIR, TCR and descriptor attributes.

use aarch64_cpu::registers::{ID_AA64MMFR0_EL1, MAIR_EL2, Readable, SCTLR_EL2, TCR_EL2};
use crate::mm::early_map::{self, EarlyMapError, EarlyTables, Kind, MAIR};
use aarch64_paging::descriptor::El23Attributes as A;
use aarch64_paging::idmap::IdMap;
use aarch64_paging::paging::{El2, MemoryRegion};
use shared::platform::Region;

const NORMAL: A = A::VALID.union(A::ATTRIBUTE_INDEX_1).union(A::INNER_SHAREABLE).union(A::ACCESSED);
const DEVICE: A = A::VALID.union(A::ATTRIBUTE_INDEX_0).union(A::ACCESSED).union(A::XN);
// The early map writes the same attributes by hand.
const _: () = assert!(NORMAL.bits() as u64 == early_map::NORMAL && DEVICE.bits() as u64 == early_map::DEVICE);

/// SCTLR_EL2 bits the MMU runs with: M (MMU), C (data cache), SA (stack
/// alignment check), I (instruction cache).
const SCTLR_M: u64 = SCTLR_EL2::M::Enable.value;
const SCTLR_C: u64 = SCTLR_EL2::C::Cacheable.value;
/// What `enable_mmu` (entry.S) sets: M | C | SA | I; the secondary CPUs
/// copy the boot CPU's SCTLR_EL2.
const SCTLR_ON: u64 = SCTLR_M | SCTLR_C | SCTLR_EL2::SA::Enable.value | SCTLR_EL2::I::Cacheable.value;
const _: () = assert!(SCTLR_ON == 0x100d, "entry.S enable_mmu ORs in 0x100d");

unsafe extern "C" {
    /// entry.S: turns the MMU and caches on from MMU off.
    fn enable_mmu(ttbr0: u64, mair: u64, tcr: u64, inval_start: u64, inval_end: u64);
    /// entry.S: switches TTBR0_EL2 with the MMU briefly off.
    fn replace_ttbr0(ttbr0: u64);
}

/// Whether the EL2 MMU and data cache are on (SCTLR_EL2.M and .C). EL2 only.
#[inline(always)]
pub fn mmu_on() -> bool {
    SCTLR_EL2.get() & (SCTLR_M | SCTLR_C) == SCTLR_M | SCTLR_C
}

/// Stops the machine, reporting `caller`, unless the MMU and data cache
/// are on: called by every lock of `crate::sync` before it touches an
/// atomic. The report goes straight to the UART, without any lock.
#[inline(always)]
pub fn assert_mmu_on(caller: &'static core::panic::Location<'static>) {
    if !mmu_on() {
        mmu_off_fatal(caller);
    }
}

#[cold]
#[inline(never)]
fn mmu_off_fatal(caller: &'static core::panic::Location<'static>) -> ! {
    super::uart::early_print(format_args!(
        "\n*** HYPERVISOR BUG: lock, once-cell or heap used with the EL2 MMU or data cache off \
         (SCTLR_EL2 {:#x}), at {caller}\n",
        SCTLR_EL2.get()
    ));
    super::halt()
}

/// The early identity map's tables (BSS: zero until built).
static mut EARLY_TABLES: EarlyTables = EarlyTables::new();

/// Why the MMU could not be turned on at boot.
#[derive(Clone, Copy, Debug)]
pub enum EarlyMmuError {
    Map(EarlyMapError),
    /// What must be Normal memory (the image, the DTB) and the address that is not.
    NotRam(&'static str, u64),
}

impl core::fmt::Display for EarlyMmuError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Map(e) => write!(f, "{e}"),
            Self::NotRam(what, a) => write!(f, "the {what} at {a:#x} is not in RAM below 512 GiB"),
        }
    }
}

/// Builds the early identity map for `memory` (the DTB's RAM) and `image`
/// and turns the EL2 MMU and caches on with it.
///
/// # Safety
/// Boot CPU only, once, with the MMU off and no other CPU running.
/// `image` must be the running image (code, data, BSS with the stacks and
/// everything written so far), `dtb` the DTB it was started with.
pub unsafe fn enable_early(memory: &[Region], image: Region, dtb: Region) -> Result<(), EarlyMmuError> {
    // SAFETY: the boot CPU alone runs, once: nothing else refers to the tables.
    let tables = unsafe { &mut *core::ptr::addr_of_mut!(EARLY_TABLES) };
    let root = tables.build(memory, image).map_err(EarlyMmuError::Map)?;
    for (what, a) in [("image", image.base), ("image", image.end() - 1), ("DTB", dtb.base), ("DTB", dtb.end() - 1)] {
        if tables.lookup(a).map(|m| m.kind) != Some(Kind::Normal) {
            return Err(EarlyMmuError::NotRam(what, a));
        }
    }
    // SAFETY: the tables map the image (code, stack, data) and the DTB as
    // Normal memory at their own addresses, so execution goes on unchanged;
    // the invalidation covers everything written with the caches off (the
    // whole image). See `enable_mmu` in entry.S for the sequence.
    unsafe { enable_mmu(root, MAIR, El2Map::tcr(), image.base, image.end()) };
    Ok(())
}

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
        let parange = ID_AA64MMFR0_EL1.read(ID_AA64MMFR0_EL1::PARange);
        // RES1 bits 31 and 23, which the crate's TCR_EL2 does not name.
        const RES1: u64 = (1 << 31) | (1 << 23);
        let fields = TCR_EL2::T0SZ.val(16)
            + TCR_EL2::IRGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable
            + TCR_EL2::ORGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable
            + TCR_EL2::SH0::Inner
            + TCR_EL2::TG0::KiB_4
            + TCR_EL2::PS.val(parange.min(5));
        fields.value | RES1
    }

    /// Switches EL2 from the early map to this one (MMU and caches stay
    /// on, same MAIR and TCR). The map must live forever (it is leaked),
    /// since EL2 never runs without it again; it is not changed after this,
    /// so `aarch64-paging` is not told it is live. Returns the root address.
    ///
    /// # Safety
    /// The MMU must be on with the early map (`enable_early`). The map must
    /// cover all memory the hypervisor uses (image, stacks, heap, DTB) and
    /// its console and GIC, identity mapped with the early map's attributes.
    pub unsafe fn activate(self) -> u64 {
        let map = alloc::boxed::Box::leak(alloc::boxed::Box::new(self));
        let root = map.idmap.root_address().0 as u64;
        debug_assert!(mmu_on() && TCR_EL2.get() == Self::tcr() && MAIR_EL2.get() == MAIR);
        // SAFETY: the caller guarantees everything in use is identity mapped
        // with the same attributes in both maps; `replace_ttbr0` touches no
        // memory while the MMU is off.
        unsafe { replace_ttbr0(root) };
        root
    }
}

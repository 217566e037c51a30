//! The early identity map: the EL2 stage-1 tables the boot CPU turns its
//! MMU and data cache on with, before it takes any lock or uses any atomic
//! (see `arch/aarch64/boot.rs`).
//!
//! Why: with the EL2 MMU off every data access is Device-nGnRnE (ARM ARM
//! DDI 0487 D8, "the effects of disabling an address translation stage"),
//! and load/store-exclusive or LSE atomics are only architecturally
//! guaranteed on Normal cacheable memory (B2.9, "synchronization and
//! semaphores"): on Device or Non-cacheable memory they are IMPLEMENTATION
//! DEFINED, and a real Cortex-A53/A72 may fail a `stxr` forever or fault.
//! Every spin lock, `Once` and the heap use them, so the MMU and caches come
//! first, as in Linux (`init_idmap_pg_dir`, `__enable_mmu`) and libvmbase
//! (its static `idmap`).
//!
//! What it maps, identity, over the low 512 GiB (level 0 entry 0; the rest
//! of the 48-bit space is left invalid):
//! - the RAM the DTB's `/memory` nodes give, and the hypervisor image, as
//!   Normal write-back (trimmed inward to pages: a partial page is not RAM);
//! - everything else as Device-nGnRE, never executable: the console UART and
//!   the GIC are in there, and device space is never mapped Normal (a
//!   Normal mapping lets the CPU read speculatively, which a device register
//!   must never see).
//!
//! Blocks are as large as the layout allows: a 1 GiB block for a GiB that is
//! all RAM or has none, else a level-2 table of 2 MiB blocks, and a level-3
//! table of pages for a 2 MiB block that RAM only partly covers. Each
//! boundary of a (merged) RAM region lies in one GiB and one 2 MiB block, so
//! [`POOL`] tables of each level always suffice.
//!
//! The tables live in a static (BSS) [`EarlyTables`]; [`EarlyTables::build`]
//! uses plain stores only (no atomics, no locks, no allocation), since it
//! runs with the MMU off. The attributes are the ones `arch/aarch64/mmu.rs`
//! gives the full map (same MAIR indices and bits, checked at compile time
//! there), and so is the TCR: 4 KiB granule, 48-bit VA, level 0 root.

use shared::platform::{MAX_MEMORY, Region};

/// Entries in one translation table (4 KiB granule).
pub const ENTRIES: usize = 512;
const PAGE: u64 = 4096;
const BLOCK_2M: u64 = 1 << 21;
const GIB: u64 = 1 << 30;
/// What the early map covers: level 0 entry 0, the low 512 GiB.
pub const COVERED: u64 = ENTRIES as u64 * GIB;

/// MAIR_EL2 attribute index of Device-nGnRE.
pub const ATTR_DEVICE: u64 = 0;
/// MAIR_EL2 attribute index of Normal, inner and outer write-back
/// read/write-allocate.
pub const ATTR_NORMAL: u64 = 1;
/// MAIR_EL2: Device-nGnRE (0x04) at index 0, Normal WB (0xff) at index 1.
pub const MAIR: u64 = (0x04 << (8 * ATTR_DEVICE)) | (0xff << (8 * ATTR_NORMAL));

// VMSAv8-64 stage-1 descriptor bits (ARM ARM D8.3, "translation table
// descriptor formats"), EL2 regime (one privilege level, so bit 54 is XN).
const VALID: u64 = 1 << 0;
/// Table descriptor at levels 0-2, page descriptor at level 3; clear: block.
const TABLE_OR_PAGE: u64 = 1 << 1;
const ATTR_INDEX_SHIFT: u64 = 2;
const INNER_SHAREABLE: u64 = 3 << 8;
const ACCESSED: u64 = 1 << 10;
const XN: u64 = 1 << 54;
/// Output address bits [47:12].
const OA_MASK: u64 = 0x0000_ffff_ffff_f000;

/// Leaf attributes of RAM: Normal WB, inner shareable, accessed, executable.
pub const NORMAL: u64 = VALID | (ATTR_NORMAL << ATTR_INDEX_SHIFT) | INNER_SHAREABLE | ACCESSED;
/// Leaf attributes of everything else: Device-nGnRE, accessed, never executable.
pub const DEVICE: u64 = VALID | (ATTR_DEVICE << ATTR_INDEX_SHIFT) | ACCESSED | XN;

/// Most tables of one level (2 and 3) the map can need: two boundaries per
/// region, for the `/memory` regions plus the image.
pub const POOL: usize = 2 * (MAX_MEMORY + 1);

/// One translation table.
#[derive(Clone)]
#[repr(C, align(4096))]
pub struct Table(pub [u64; ENTRIES]);

/// What an address is mapped as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Normal,
    Device,
}

/// A leaf of the early map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub kind: Kind,
    /// Translation level of the leaf: 1 (1 GiB block), 2 (2 MiB), 3 (page).
    pub level: usize,
}

/// Why the early map could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EarlyMapError {
    /// More RAM regions than [`POOL`] allows for (cannot happen with the
    /// `/memory` regions a `Platform` keeps plus the image).
    TooManyRegions,
    /// Out of level-2 or level-3 tables (ditto).
    OutOfTables,
}

impl core::fmt::Display for EarlyMapError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::TooManyRegions => write!(f, "early map: more than {} RAM regions", MAX_MEMORY + 1),
            Self::OutOfTables => write!(f, "early map: RAM layout needs more than {POOL} tables of a level"),
        }
    }
}

/// The early map's tables: one level-0 and one level-1 table, and pools of
/// level-2 and level-3 tables. All zero (invalid) until built, so a static
/// one lies in BSS.
#[repr(C)]
pub struct EarlyTables {
    l0: Table,
    l1: Table,
    l2: [Table; POOL],
    l3: [Table; POOL],
}

impl Default for EarlyTables {
    fn default() -> Self {
        Self::new()
    }
}

/// How much of a range is RAM.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cover {
    All,
    Part,
    None,
}

/// RAM as sorted, disjoint, non-adjacent ranges, page-trimmed inward.
struct Ram {
    r: [Region; MAX_MEMORY + 1],
    n: usize,
}

impl Ram {
    fn new(memory: &[Region], image: Region) -> Result<Self, EarlyMapError> {
        let mut ram = Ram { r: [Region::default(); MAX_MEMORY + 1], n: 0 };
        for r in memory.iter().chain(core::iter::once(&image)) {
            let base = r.base.saturating_add(PAGE - 1) & !(PAGE - 1);
            let end = r.base.saturating_add(r.size) & !(PAGE - 1);
            if end <= base {
                continue;
            }
            if ram.n == ram.r.len() {
                return Err(EarlyMapError::TooManyRegions);
            }
            // Insertion sort by base.
            let mut i = ram.n;
            while i > 0 && ram.r[i - 1].base > base {
                ram.r[i] = ram.r[i - 1];
                i -= 1;
            }
            ram.r[i] = Region { base, size: end - base };
            ram.n += 1;
        }
        // Merge overlapping and adjacent ranges.
        let mut out = 0;
        for i in 0..ram.n {
            let cur = ram.r[i];
            if out > 0 && cur.base <= ram.r[out - 1].end() {
                let prev = &mut ram.r[out - 1];
                prev.size = prev.size.max(cur.end() - prev.base);
            } else {
                ram.r[out] = cur;
                out += 1;
            }
        }
        ram.n = out;
        Ok(ram)
    }

    fn cover(&self, base: u64, size: u64) -> Cover {
        let end = base + size;
        for r in &self.r[..self.n] {
            if r.base <= base && end <= r.end() {
                return Cover::All;
            }
            if r.base < end && base < r.end() {
                // Merged ranges are disjoint and non-adjacent: no other
                // range can fill the rest.
                return Cover::Part;
            }
        }
        Cover::None
    }
}

fn leaf(addr: u64, kind: Cover, level: usize) -> u64 {
    let attrs = if kind == Cover::All { NORMAL } else { DEVICE };
    addr | attrs | if level == 3 { TABLE_OR_PAGE } else { 0 }
}

fn table_desc(t: &Table) -> u64 {
    (t as *const Table as u64) | VALID | TABLE_OR_PAGE
}

impl EarlyTables {
    /// All entries invalid.
    pub const fn new() -> Self {
        const ZERO: Table = Table([0; ENTRIES]);
        Self { l0: ZERO, l1: ZERO, l2: [ZERO; POOL], l3: [ZERO; POOL] }
    }

    /// Builds the map for `memory` (the DTB's RAM) and `image`, and returns
    /// the root table's address for TTBR0_EL2. Plain stores only: safe to
    /// run with the MMU off. Every entry of the tables in use is written.
    pub fn build(&mut self, memory: &[Region], image: Region) -> Result<u64, EarlyMapError> {
        let ram = Ram::new(memory, image)?;
        let Self { l0, l1, l2, l3 } = self;
        let (mut n2, mut n3) = (0, 0);
        for (i, e) in l1.0.iter_mut().enumerate() {
            let base = i as u64 * GIB;
            *e = match ram.cover(base, GIB) {
                Cover::Part => {
                    let t = l2.get_mut(n2).ok_or(EarlyMapError::OutOfTables)?;
                    n2 += 1;
                    for (j, e2) in t.0.iter_mut().enumerate() {
                        let base2 = base + j as u64 * BLOCK_2M;
                        *e2 = match ram.cover(base2, BLOCK_2M) {
                            Cover::Part => {
                                let t3 = l3.get_mut(n3).ok_or(EarlyMapError::OutOfTables)?;
                                n3 += 1;
                                for (k, e3) in t3.0.iter_mut().enumerate() {
                                    let page = base2 + k as u64 * PAGE;
                                    // RAM is page-trimmed: a page is all RAM or none.
                                    *e3 = leaf(page, ram.cover(page, PAGE), 3);
                                }
                                table_desc(t3)
                            }
                            c => leaf(base2, c, 2),
                        };
                    }
                    table_desc(t)
                }
                c => leaf(base, c, 1),
            };
        }
        l0.0 = [0; ENTRIES];
        l0.0[0] = table_desc(l1);
        Ok(self.root())
    }

    /// The root (level 0) table's address.
    pub fn root(&self) -> u64 {
        &self.l0 as *const Table as u64
    }

    /// Walks the map as the MMU would; `None` if `addr` is unmapped, or the
    /// entry is not one `build` writes (a bad table pointer, a leaf that is
    /// not an identity mapping with exactly [`NORMAL`] or [`DEVICE`]).
    pub fn lookup(&self, addr: u64) -> Option<Mapping> {
        if addr >= COVERED || self.l0.0[0] != table_desc(&self.l1) {
            return None;
        }
        let mut table = &self.l1;
        for level in 1..=3 {
            let shift = 39 - 9 * level as u64;
            let d = table.0[((addr >> shift) & (ENTRIES as u64 - 1)) as usize];
            if d & VALID == 0 {
                return None;
            }
            if level < 3 && d & TABLE_OR_PAGE != 0 {
                let pool = if level == 1 { &self.l2 } else { &self.l3 };
                table = pool.iter().find(|t| table_desc(t) == d)?;
                continue;
            }
            if (level == 3) != (d & TABLE_OR_PAGE != 0) {
                return None;
            }
            let block = addr & !((1u64 << shift) - 1);
            let kind = match d & !OA_MASK & !TABLE_OR_PAGE {
                NORMAL => Kind::Normal,
                DEVICE => Kind::Device,
                _ => return None,
            };
            return (d & OA_MASK == block).then_some(Mapping { kind, level });
        }
        None
    }

    /// Calls `f` with every leaf's range and kind, in address order.
    pub fn for_each_leaf(&self, mut f: impl FnMut(Region, Kind)) {
        let mut addr = 0;
        while addr < COVERED {
            let Some(m) = self.lookup(addr) else { return };
            let size = 1u64 << (39 - 9 * m.level as u64);
            f(Region { base: addr, size }, m.kind);
            addr += size;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::platform::Platform;

    const MIB: u64 = 1 << 20;

    /// A DTB fixture of `shared`, with the 4-byte alignment the parser needs.
    macro_rules! fixture {
        ($name:literal) => {{
            #[repr(C, align(8))]
            struct Aligned<T: ?Sized>(T);
            static BLOB: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!("../../../shared/tests/fixtures/", $name)));
            Platform::from_fdt(&BLOB.0).unwrap()
        }};
    }

    fn tables() -> Box<EarlyTables> {
        Box::default()
    }

    fn region(base: u64, size: u64) -> Region {
        Region { base, size }
    }

    /// A 2 MiB-aligned image of 2 MiB inside RAM, as a loader places it.
    fn image_at(base: u64) -> Region {
        region(base, 2 * MIB)
    }

    fn kind(t: &EarlyTables, addr: u64) -> Kind {
        t.lookup(addr).unwrap_or_else(|| panic!("{addr:#x} is not mapped")).kind
    }

    /// The invariants any layout must meet: every Normal leaf lies inside
    /// RAM or the image; every whole page of RAM is Normal; everything
    /// below 512 GiB is mapped, with no hole.
    fn check_invariants(t: &EarlyTables, memory: &[Region], image: Region) {
        let ram: Vec<Region> = memory.iter().copied().chain([image]).collect();
        // The end of the RAM run that contains `a`, if `a` is RAM.
        let ram_end = |a: u64| ram.iter().filter(|r| r.base <= a && a < r.end()).map(|r| r.end()).max();
        let mut normal: Vec<Region> = Vec::new();
        let mut covered = 0;
        t.for_each_leaf(|r, k| {
            assert_eq!(r.base, covered, "hole in the early map at {covered:#x}");
            covered = r.end();
            if k == Kind::Normal {
                let mut a = r.base;
                while a < r.end() {
                    a = ram_end(a).unwrap_or_else(|| panic!("{a:#x} mapped Normal (leaf {r:x?}) but is not RAM"));
                }
                match normal.last_mut() {
                    Some(last) if last.end() == r.base => last.size += r.size,
                    _ => normal.push(r),
                }
            }
        });
        assert_eq!(covered, COVERED);
        for r in &ram {
            let (base, end) = ((r.base + PAGE - 1) & !(PAGE - 1), r.end() & !(PAGE - 1));
            if base < end {
                assert!(
                    normal.iter().any(|n| n.base <= base && end <= n.end()),
                    "RAM {r:x?} is not all Normal: {normal:x?}"
                );
            }
        }
    }

    /// The devices a platform drives, which must be Device.
    fn check_devices_are_device(t: &EarlyTables, p: &Platform) {
        let uart = p.uart.expect("console UART").region;
        let gic = p.gic.as_ref().expect("GIC");
        let frames = [Some(uart), Some(gic.gicd), gic.gicc, gic.gich, gic.gicv].into_iter().flatten();
        for r in frames.chain(gic.gicr.iter().copied()) {
            assert_eq!(kind(t, r.base), Kind::Device, "device {r:x?}");
            assert_eq!(kind(t, r.end() - 1), Kind::Device, "device {r:x?}");
        }
    }

    #[test]
    fn qemu_virt_ram_is_one_gib_block_and_the_rest_device() {
        let p = fixture!("qemu-virt-gicv3.dtb");
        assert_eq!(p.memory.as_slice(), [region(0x4000_0000, 1 << 30)]);
        let image = image_at(0x4020_0000);
        let mut t = tables();
        t.build(&p.memory, image).unwrap();
        assert_eq!(t.lookup(0x4000_0000), Some(Mapping { kind: Kind::Normal, level: 1 }));
        assert_eq!(t.lookup(0x7fff_ffff), Some(Mapping { kind: Kind::Normal, level: 1 }));
        // Flash, GIC, UART (0x0900_0000) in GiB 0; PCIe high MMIO at 256 GiB.
        assert_eq!(t.lookup(0), Some(Mapping { kind: Kind::Device, level: 1 }));
        assert_eq!(t.lookup(0x8000_0000), Some(Mapping { kind: Kind::Device, level: 1 }));
        assert_eq!(kind(&t, 0x40_0000_0000), Kind::Device);
        check_devices_are_device(&t, &p);
        check_invariants(&t, &p.memory, image);
        // Also with the GICv2 tree.
        let p = fixture!("qemu-virt-gicv2.dtb");
        t.build(&p.memory, image).unwrap();
        check_devices_are_device(&t, &p);
    }

    /// RK3399 (RockPro64, Pinebook Pro, 4 GiB): U-Boot gives `/memory` as
    /// 0x0020_0000..0xf800_0000 (the first 2 MiB are TF-A's); the
    /// peripherals, UART2 and the GIC-500 follow from 0xf800_0000 in the
    /// same GiB.
    #[test]
    fn rk3399_mixed_gibs_use_2mib_blocks() {
        for p in [fixture!("rk3399-rockpro64.dtb"), fixture!("rk3399-pinebook-pro.dtb")] {
            let memory = [region(0x20_0000, 0xf7e0_0000)];
            let image = image_at(0x0200_0000);
            let mut t = tables();
            t.build(&memory, image).unwrap();
            assert_eq!(t.lookup(0), Some(Mapping { kind: Kind::Device, level: 2 }));
            assert_eq!(t.lookup(0x20_0000), Some(Mapping { kind: Kind::Normal, level: 2 }));
            assert_eq!(t.lookup(0x4000_0000), Some(Mapping { kind: Kind::Normal, level: 1 }));
            assert_eq!(t.lookup(0xbfff_ffff), Some(Mapping { kind: Kind::Normal, level: 1 }));
            assert_eq!(t.lookup(0xf7ff_ffff), Some(Mapping { kind: Kind::Normal, level: 2 }));
            assert_eq!(t.lookup(0xf800_0000), Some(Mapping { kind: Kind::Device, level: 2 }));
            assert_eq!(t.lookup(0xff1a_0000), Some(Mapping { kind: Kind::Device, level: 2 }));
            assert_eq!(t.lookup(0x1_0000_0000), Some(Mapping { kind: Kind::Device, level: 1 }));
            check_devices_are_device(&t, &p);
            check_invariants(&t, &memory, image);
        }
    }

    /// Allwinner A64 (Pine64+): RAM from 0x4000_0000, 2 GiB (1 GiB on the
    /// smaller board); devices, UART0 (0x01c2_8000) and the GIC-400 in GiB 0.
    #[test]
    fn a64_ram_gibs_are_blocks_and_gib_0_is_device() {
        let p = fixture!("sun50i-a64-pine64-plus.dtb");
        for size in [2u64 << 30, 1 << 30] {
            let memory = [region(0x4000_0000, size)];
            let image = image_at(0x4008_0000 & !(2 * MIB - 1));
            let mut t = tables();
            t.build(&memory, image).unwrap();
            assert_eq!(t.lookup(0x01c2_8000), Some(Mapping { kind: Kind::Device, level: 1 }));
            assert_eq!(t.lookup(0x4000_0000), Some(Mapping { kind: Kind::Normal, level: 1 }));
            assert_eq!(t.lookup(0x4000_0000 + size - 1), Some(Mapping { kind: Kind::Normal, level: 1 }));
            assert_eq!(t.lookup(0x4000_0000 + size), Some(Mapping { kind: Kind::Device, level: 1 }));
            check_devices_are_device(&t, &p);
            check_invariants(&t, &memory, image);
        }
    }

    /// RAM that ends off a 2 MiB boundary (QEMU `-m 1025M`) gets pages.
    #[test]
    fn ram_ending_inside_a_2mib_block_uses_pages() {
        let memory = [region(0x4000_0000, 1025 * MIB)];
        let image = image_at(0x4020_0000);
        let mut t = tables();
        t.build(&memory, image).unwrap();
        assert_eq!(t.lookup(0x8000_0000), Some(Mapping { kind: Kind::Normal, level: 3 }));
        assert_eq!(t.lookup(0x800f_ffff), Some(Mapping { kind: Kind::Normal, level: 3 }));
        assert_eq!(t.lookup(0x8010_0000), Some(Mapping { kind: Kind::Device, level: 3 }));
        assert_eq!(t.lookup(0x8020_0000), Some(Mapping { kind: Kind::Device, level: 2 }));
        check_invariants(&t, &memory, image);
    }

    /// A partial page at either end of a region is not RAM; the image is
    /// mapped even where no `/memory` node covers it; adjacent and
    /// overlapping regions merge into one block.
    #[test]
    fn partial_pages_image_outside_memory_and_merging() {
        let memory = [region(0x4000_0800, 0x2000), region(0x8000_0000, 512 * MIB), region(0x9000_0000, 768 * MIB)];
        let image = image_at(0x1_0000_0000);
        let mut t = tables();
        t.build(&memory, image).unwrap();
        assert_eq!(kind(&t, 0x4000_0000), Kind::Device);
        assert_eq!(t.lookup(0x4000_1000), Some(Mapping { kind: Kind::Normal, level: 3 }));
        assert_eq!(kind(&t, 0x4000_2000), Kind::Device);
        assert_eq!(t.lookup(0x8000_0000), Some(Mapping { kind: Kind::Normal, level: 1 }));
        assert_eq!(t.lookup(0x1_0000_0000), Some(Mapping { kind: Kind::Normal, level: 2 }));
        assert_eq!(t.lookup(0x1_0020_0000), Some(Mapping { kind: Kind::Device, level: 2 }));
        check_invariants(&t, &memory, image);
    }

    /// Worst case: MAX_MEMORY regions and the image, each starting and
    /// ending inside a different 2 MiB block of a different GiB, fit in the
    /// pools. Also pseudo-random layouts keep the invariants.
    #[test]
    fn worst_case_fits_and_random_layouts_keep_the_invariants() {
        let memory: Vec<Region> =
            (0..MAX_MEMORY as u64).map(|i| region((4 * i + 1) * GIB - 3 * PAGE, GIB + 5 * PAGE)).collect();
        let image = region(41 * GIB - MIB, 2 * MIB);
        let mut t = tables();
        t.build(&memory, image).unwrap();
        check_invariants(&t, &memory, image);

        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |m: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % m
        };
        for _ in 0..40 {
            let memory: Vec<Region> = (0..1 + next(MAX_MEMORY as u64))
                .map(|_| region(next(8 * GIB / PAGE) * PAGE + next(3) * 0x800, next(GIB / PAGE) * PAGE + 1))
                .collect();
            let image = image_at(next(8 * GIB / (2 * MIB)) * 2 * MIB);
            t.build(&memory, image).unwrap();
            check_invariants(&t, &memory, image);
        }
    }

    #[test]
    fn too_many_regions_is_an_error() {
        let memory: Vec<Region> = (0..MAX_MEMORY as u64 + 1).map(|i| region(i * GIB, MIB)).collect();
        assert_eq!(tables().build(&memory, image_at(100 * GIB)), Err(EarlyMapError::TooManyRegions));
    }

    #[test]
    fn above_512_gib_is_unmapped() {
        let mut t = tables();
        t.build(&[region(0x4000_0000, GIB)], image_at(0x4000_0000)).unwrap();
        assert_eq!(t.lookup(COVERED), None);
        assert_eq!(t.lookup(COVERED - 1), Some(Mapping { kind: Kind::Device, level: 1 }));
    }
}

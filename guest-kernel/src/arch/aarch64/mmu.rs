//! Kernel address space: the linear map of all RAM at PAGE_OFFSET + PA in
//! the upper VA range (TTBR1_EL1), as Linux's arm64 kernel does, built
//! with `aarch64-paging`'s `LinearMap`. Device windows the kernel drives
//! (UART, GIC) are mapped at the same offset with device attributes.
//! TTBR0_EL1 is left to user address spaces.

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{ReadWriteable, Readable, TCR_EL1, TTBR1_EL1};
use aarch64_paging::descriptor::El1Attributes as A;
use aarch64_paging::linearmap::LinearMap;
use aarch64_paging::paging::{El1And0, MemoryRegion, VaRange};
use shared::platform::Platform;

/// Start of the linear map (T1SZ = 16: the top 256 TiB).
pub const PAGE_OFFSET: u64 = 0xffff_0000_0000_0000;

/// The kernel virtual address of a physical address in the linear map.
pub const fn phys_to_virt(pa: u64) -> usize {
    (PAGE_OFFSET + pa) as usize
}

/// The physical address of a linear-map virtual address.
pub const fn virt_to_phys(va: usize) -> u64 {
    va as u64 - PAGE_OFFSET
}

// MAIR_EL1 as entry.S set it: index 0 Device-nGnRE, index 1 Normal WB.
const NORMAL: A = A::VALID.union(A::ATTRIBUTE_INDEX_1).union(A::INNER_SHAREABLE).union(A::ACCESSED).union(A::UXN);
const DEVICE: A = A::VALID.union(A::ATTRIBUTE_INDEX_0).union(A::ACCESSED).union(A::UXN).union(A::PXN);

/// Builds the kernel's TTBR1 tables from the DTB and switches to them.
pub fn init(platform: &Platform, load_pa: u64, image_size: u64) {
    // LinearTranslation maps VA -> VA + offset; our offset is -PAGE_OFFSET.
    let offset = (PAGE_OFFSET as isize).wrapping_neg();
    let mut map = LinearMap::with_asid(0, 0, offset, El1And0, VaRange::Upper);
    let mut map_range = |pa: u64, size: u64, attrs: A| {
        let start = phys_to_virt(pa & !0xfff);
        let end = phys_to_virt((pa + size + 0xfff) & !0xfff);
        map.map_range(&MemoryRegion::new(start, end), attrs).expect("kernel map");
    };
    for r in platform.memory.iter() {
        map_range(r.base, r.size, NORMAL);
    }
    map_range(load_pa, image_size, NORMAL);
    if let Some(u) = platform.uart {
        map_range(u.region.base, u.region.size.max(0x1000), DEVICE);
    }
    if let Some(g) = platform.gic.as_ref() {
        map_range(g.gicd.base, g.gicd.size, DEVICE);
        for r in g.gicr.iter().chain(g.gicc.iter()) {
            map_range(r.base, r.size, DEVICE);
        }
    }
    for v in platform.virtio_mmio.iter() {
        map_range(v.region.base, v.region.size, DEVICE);
    }
    // Memory shared with other VMs (`shm`): normal memory, as the
    // hypervisor maps it for every peer.
    for s in platform.guest_shm.iter() {
        map_range(s.region.base, s.region.size, NORMAL.union(A::PXN));
    }
    // SAFETY: the new tables map the image, stack, heap and DTB at the
    // same virtual addresses as the boot tables (all in the linear map).
    unsafe { map.activate() };
    // TTBR0 (the boot identity map) is no longer needed: walks of the
    // lower half fault until a user address space is installed.
    // Nothing runs from the identity map any more.
    TCR_EL1.modify(TCR_EL1::EPD0::DisableTTBR0Walks);
    barrier::isb(barrier::SY);
    // SAFETY: TLB maintenance does not change memory contents.
    unsafe { core::arch::asm!("tlbi vmalle1", options(nostack)) };
    barrier::dsb(barrier::NSH);
    barrier::isb(barrier::SY);
    *KERNEL_MAP.lock_irqsave() = Some(KernelMap(map));
    // Secondary CPUs read this with their MMU and caches off: clean it to
    // the point of coherency.
    let ttbr1 = TTBR1_EL1.get();
    // SAFETY: single CPU at boot; the variable is only read by secondaries
    // started later.
    unsafe {
        let p = core::ptr::addr_of_mut!(SECONDARY_TTBR1);
        p.write_volatile(ttbr1 & 0x0000_ffff_ffff_fffe);
        core::arch::asm!("dc civac, {}", "dsb sy", in(reg) p, options(nostack));
    }
}

/// The kernel's TTBR1 tables, kept for later additions (`map_probe_page`).
struct KernelMap(LinearMap<El1And0>);
// SAFETY: the tables are only changed under `KERNEL_MAP`'s lock.
unsafe impl Send for KernelMap {}
static KERNEL_MAP: crate::sync::SpinLock<Option<KernelMap>> =
    crate::sync::SpinLock::new(&crate::sync::KERNEL_MAP, None);

/// Maps the 4 KiB page at physical (guest-physical) address `pa` into the
/// linear map — as device memory, or as executable normal memory — and
/// returns its virtual address. Used by the hypervisor self-tests to touch
/// addresses outside the VM's RAM.
pub fn map_probe_page(pa: u64, executable: bool) -> Option<usize> {
    let pa = pa & !0xfff;
    let va = phys_to_virt(pa);
    let mut m = KERNEL_MAP.lock_irqsave();
    let map = &mut m.as_mut()?.0;
    map.map_range(&MemoryRegion::new(va, va + 0x1000), if executable { NORMAL } else { DEVICE }).ok()?;
    Some(va)
}

/// TTBR1_EL1 for secondary CPUs (entry.S `secondary_entry`).
#[unsafe(no_mangle)]
pub static mut SECONDARY_TTBR1: u64 = 0;

/// Makes code just written to memory visible to instruction fetch on every
/// CPU (ARM ARM D7.5.9: invalidate the instruction caches, inner
/// shareable, after the writes are complete): exec's new text.
pub fn sync_icache_all() {
    use aarch64_cpu::asm::barrier;
    barrier::dsb(barrier::ISH);
    // SAFETY: cache maintenance only.
    unsafe { core::arch::asm!("ic ialluis", options(nostack)) };
    barrier::dsb(barrier::ISH);
    barrier::isb(barrier::SY);
}

//! Memory bring-up (Linux `arm64_memblock_init` → `paging_init` →
//! `mem_init`; 《Linux内核深度解析》§3.6): memblock from the DTB with the
//! image, DTB and initrd reserved; the mem_map allocated from memblock;
//! zones built over it; the hand-over of every free page to the buddy
//! allocator; then the kernel heap switches from its early buddy heap to
//! kmalloc (slab) over the page allocator.

use core::alloc::{GlobalAlloc, Layout};
use core::mem::MaybeUninit;

use super::cpu::{local_irq_restore, local_irq_save, smp_processor_id};
use super::mmu::{phys_to_virt, virt_to_phys};
use crate::mm::gfp::Gfp;
use crate::mm::memblock::Memblock;
use crate::mm::page::{PAGE_SIZE, Page, Pfn, mem_map_init, pfn_to_phys, phys_to_pfn};
use crate::mm::slab::{KernelHeap, PageSource};
use crate::mm::zone::{PageAllocator, PhysMem, ZoneLimits};
use shared::platform::Platform;

/// Frame access through the linear map.
pub struct LinearMem;

unsafe extern "C" {
    fn __arch_clear_page(page: *mut u8);
    fn __arch_copy_page(dst: *mut u8, src: *const u8);
    fn __arch_copy_words(dst: *mut u8, src: *const u8, len: usize);
}

/// `clear_page`: zeroes the 4 KiB page at `va` with DC ZVA (`page.S`).
///
/// # Safety
/// `va` is a 4 KiB-aligned, writable page of Normal memory the caller owns.
pub unsafe fn clear_page(va: *mut u8) {
    // SAFETY: as the caller promises; the routine writes that page only.
    unsafe { __arch_clear_page(va) }
}

/// `copy_page`: copies the 4 KiB page at `src` to `dst` with LDP/STP
/// (`page.S`).
///
/// # Safety
/// Both are 4 KiB-aligned pages of Normal memory, `dst` owned by the
/// caller and not overlapping `src`.
pub unsafe fn copy_page(dst: *mut u8, src: *const u8) {
    // SAFETY: as the caller promises; the routine reads `src` and writes
    // `dst`, one page each.
    unsafe { __arch_copy_page(dst, src) }
}

/// Copies `len` bytes from `src` to `dst`. When both are equally aligned
/// to 4 bytes (exec's copy of an ELF segment out of the initramfs: cpio
/// "newc" aligns file data to 4, and p_vaddr is p_offset modulo the page
/// size, ELF gABI "Program Loading") the bulk goes 32 bytes per round
/// (`__arch_copy_words`, `page.S`); the compiler's `memcpy` assembles each
/// 8-byte word from single bytes when the source is not 8-aligned.
///
/// # Safety
/// As [`core::ptr::copy_nonoverlapping`]: both ranges valid, not
/// overlapping.
pub unsafe fn copy_bytes(dst: *mut u8, src: *const u8, len: usize) {
    if (dst as usize ^ src as usize) & 3 != 0 || len < 64 {
        // SAFETY: as the caller promises.
        unsafe { core::ptr::copy_nonoverlapping(src, dst, len) };
        return;
    }
    let head = (4 - (src as usize & 3)) & 3;
    let words = (len - head) & !3;
    // SAFETY: as the caller promises; head + words <= len, and after the
    // head both addresses are 4-byte aligned.
    unsafe {
        core::ptr::copy_nonoverlapping(src, dst, head);
        __arch_copy_words(dst.add(head), src.add(head), words);
        core::ptr::copy_nonoverlapping(src.add(head + words), dst.add(head + words), len - head - words);
    }
}

impl PhysMem for LinearMem {
    fn zero(&self, pfn: Pfn, count: usize) {
        let base = phys_to_virt(pfn_to_phys(pfn) as u64) as *mut u8;
        for i in 0..count {
            // SAFETY: the frames are RAM in the linear map (page aligned),
            // just allocated and owned by the caller.
            unsafe { clear_page(base.add(i * PAGE_SIZE)) };
        }
    }
    fn copy_page(&self, dst: Pfn, src: Pfn) {
        // SAFETY: both frames are RAM in the linear map, page aligned; dst
        // is freshly allocated, so they do not overlap.
        unsafe {
            copy_page(
                phys_to_virt(pfn_to_phys(dst) as u64) as *mut u8,
                phys_to_virt(pfn_to_phys(src) as u64) as *const u8,
            )
        };
    }
}

/// The node's page allocator (`contig_page_data`), set once at boot. It
/// has no lock around it: each zone's buddy lists are behind the zone's
/// lock (class [`crate::sync::ZONE_LOCK`]) and each CPU's pcp lists behind
/// their own (class [`crate::sync::PCP`]); see [`crate::mm::zone::Zone`].
static NODE: spin::Once<PageAllocator<'static, LinearMem>> = spin::Once::new();

/// Runs `f` on the page allocator.
pub fn with_pages<R>(f: impl FnOnce(&PageAllocator<'static, LinearMem>) -> R) -> R {
    f(NODE.get().expect("page allocator not initialised"))
}

/// The slab layer's view of the page allocator: blocks by kernel virtual
/// address in the linear map.
pub struct BuddyPages;

// SAFETY: blocks come from the buddy allocator through the linear map,
// which covers all RAM: 2^order pages naturally aligned, handed out once
// until `free_pages`; `lookup` answers from mem_map (compound head, order,
// PG_slab) for pages inside it only.
unsafe impl PageSource for BuddyPages {
    fn alloc_pages(&mut self, order: usize, gfp: Gfp) -> Option<usize> {
        // Multi-page blocks are compound so `lookup` finds their head.
        let gfp = if order > 0 { gfp | Gfp::__GFP_COMP } else { gfp };
        let pfn = with_pages(|pa| pa.alloc_pages(gfp, order, smp_processor_id()))?;
        Some(phys_to_virt(pfn_to_phys(pfn) as u64))
    }
    fn free_pages(&mut self, addr: usize, order: usize) {
        let pfn = phys_to_pfn(virt_to_phys(addr) as usize);
        with_pages(|pa| pa.__free_pages(pfn, order, smp_processor_id()));
    }
    fn set_slab(&mut self, addr: usize, on: bool) {
        let pfn = phys_to_pfn(virt_to_phys(addr) as usize);
        with_pages(|pa| pa.set_page_slab(pfn, on));
    }
    fn lookup(&self, addr: usize) -> Option<(usize, usize, bool)> {
        if addr < super::mmu::PAGE_OFFSET as usize {
            return None;
        }
        let pfn = phys_to_pfn(virt_to_phys(addr) as usize);
        with_pages(|pa| {
            let first = pa.map.start_pfn;
            if pfn < first || pfn >= first + pa.map.pages.len() {
                return None;
            }
            let head = pa.compound_head(pfn);
            let page = pa.map.page(head);
            Some((phys_to_virt(pfn_to_phys(head) as u64), pa.compound_order(head), page.is_slab()))
        })
    }
}

/// The kernel heap with interrupts masked around every call, so that
/// interrupt handlers may allocate (the heap's own lock is a plain spin
/// lock).
pub struct IrqSafeHeap(KernelHeap<BuddyPages>);

// SAFETY: forwards to KernelHeap, which upholds GlobalAlloc's contract;
// masking interrupts only prevents re-entry on this CPU.
unsafe impl GlobalAlloc for IrqSafeHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let daif = local_irq_save();
        // SAFETY: our caller's contract is KernelHeap's.
        let p = unsafe { self.0.alloc(layout) };
        local_irq_restore(daif);
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let daif = local_irq_save();
        // SAFETY: our caller's contract is KernelHeap's.
        unsafe { self.0.dealloc(ptr, layout) };
        local_irq_restore(daif);
    }
}

/// The kernel's global allocator: early heap, then kmalloc.
#[global_allocator]
pub static HEAP: IrqSafeHeap = IrqSafeHeap(KernelHeap::new(smp_processor_id));

const EARLY_HEAP_SIZE: usize = 2 << 20;
#[repr(C, align(4096))]
struct EarlyHeap([u8; EARLY_HEAP_SIZE]);
static mut EARLY_HEAP: EarlyHeap = EarlyHeap([0; EARLY_HEAP_SIZE]);

/// Gives the early heap its memory (before anything allocates).
pub fn init_early_heap() {
    // SAFETY: the early heap is a static array used by nothing else, handed
    // over exactly once at boot.
    unsafe {
        let heap = core::ptr::addr_of_mut!(EARLY_HEAP) as usize;
        HEAP.0.init_early(heap, EARLY_HEAP_SIZE);
    }
}

/// Physical layout facts the rest of the kernel needs.
#[derive(Clone, Copy, Debug)]
pub struct MemInit {
    /// Pages handed to the buddy allocator.
    pub freed: usize,
    /// Pages of RAM.
    pub total: usize,
}

/// memblock → mem_map → zones → hand-over → kmalloc.
pub fn mem_init(platform: &Platform, load_pa: u64, image_size: u64, dtb_pa: u64, dtb_size: u64) -> MemInit {
    let mut mb = Memblock::new();
    for r in platform.memory.iter() {
        mb.add(r.base as usize, r.size as usize).expect("memblock_add");
    }
    // memblock_reserve: the kernel image (with BSS, boot stacks and the
    // early heap), the DTB, the initrd, and whatever the DTB reserves.
    let _ = mb.reserve(load_pa as usize, image_size as usize);
    let _ = mb.reserve(dtb_pa as usize, dtb_size as usize);
    if let Some(i) = platform.initrd {
        let _ = mb.reserve(i.base as usize, i.size as usize);
    }
    for r in platform.reserved.iter() {
        let _ = mb.reserve(r.base as usize, r.size as usize);
    }
    let (start_pfn, end_pfn) = mb.pfn_range().expect("no RAM");
    let npages = end_pfn - start_pfn;
    let map_bytes = npages * core::mem::size_of::<Page>();
    let map_pa = mb.alloc(map_bytes, PAGE_SIZE).expect("no memory for mem_map");
    // SAFETY: memblock just reserved these bytes for us; they are RAM in the
    // linear map and nothing else refers to them, for the kernel's life.
    let uninit: &'static mut [MaybeUninit<Page>] =
        unsafe { core::slice::from_raw_parts_mut(phys_to_virt(map_pa as u64) as *mut MaybeUninit<Page>, npages) };
    let mem_map = mem_map_init(uninit);
    let mut pa = PageAllocator::free_area_init(mem_map, start_pfn, ZoneLimits::ARM64, LinearMem);
    let freed = mb.free_all(&mut pa);
    NODE.call_once(|| pa);
    HEAP.0.init_kmalloc(BuddyPages);
    MemInit { freed, total: npages }
}

/// Prints /proc/buddyinfo.
pub fn print_buddyinfo() {
    let info = with_pages(|pa| pa.buddyinfo());
    crate::console::print(format_args!("{info}"));
}

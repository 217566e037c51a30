//! Zones, watermarks, `lowmem_reserve`, the zonelist, per-CPU page sets and
//! the page allocator's entry points (`alloc_pages`, `__free_pages`).
//!
//! LKD ch. 12, "Zones" and "Getting Pages"; 《Linux内核深度解析》§3.7.2 (the
//! zoned buddy allocator: fallback zonelist, watermarks, lowmem_reserve),
//! §3.7.4 (per-CPU page sets) and §3.7.5 (allocating pages: fast path with
//! the low watermark, slow path with the min watermark).
//!
//! # Locking
//!
//! Linux 6.1's shape, not the older "interrupts off and no lock": every
//! zone has its lock (`zone->lock`) over the buddy lists, and every CPU's
//! per-CPU page lists of a zone have their own (`pcp->lock`). An order-0
//! allocation or free takes only its CPU's pcp lock, with interrupts
//! masked (so no interrupt handler on this CPU finds it held, and the task
//! cannot move while it holds it); the zone lock is taken inside it only
//! to move a batch between the lists and the buddy allocator
//! ([`PerCpuPages::rmqueue_bulk`], [`PerCpuPages::free_pcppages_bulk`]),
//! and on its own for larger orders. The pcp lock is uncontended in normal
//! use (one atomic on a line only its CPU touches) and is why another CPU
//! may drain the lists ([`PageAllocator::drain_all_pages`], on an
//! allocation failure) without an IPI or per-CPU work queue, which this
//! kernel lacks. Linux 6.1 takes it with a trylock and falls back to the
//! zone lock, for PREEMPT_RT and for an interrupt that finds it held on
//! the same CPU; with interrupts masked around it neither can happen here,
//! so a plain spin (only ever behind a short remote drain) is enough.

use core::fmt;
use core::sync::atomic::Ordering::Relaxed;
use core::sync::atomic::{AtomicU64, AtomicUsize};

use super::buddy::{FreeLists, MemMap};
use super::gfp::Gfp;
use super::page::{MAX_NR_ZONES, MAX_ORDER, MigrateType, PAGE_SHIFT, PAGE_SIZE, Page, PageFlags, Pfn, ZoneType};
use super::pcp::PerCpuPages;
use crate::sync::{self, SpinLock, SpinLockGuard};

/// CPUs the per-CPU structures have room for.
pub const NR_CPUS: usize = shared::platform::MAX_CPUS;

/// Physical memory access the allocator needs but cannot do itself.
///
/// The arch layer implements it through the linear map; host tests fake it.
pub trait PhysMem {
    /// Fill `count` frames starting at `pfn` with zeros (`__GFP_ZERO`).
    fn zero(&self, pfn: Pfn, count: usize);
    /// Copy one frame (`copy_user_highpage`, used to break COW).
    fn copy_page(&self, dst: Pfn, src: Pfn);
}

/// Watermark index (`enum zone_watermarks`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wmark {
    /// Below this only atomic/high-priority allocations succeed.
    Min = 0,
    /// The fast path needs this much free; kswapd wakes below it.
    Low = 1,
    /// kswapd stops reclaiming above it.
    High = 2,
}

/// `alloc_flags` of mm/internal.h: which watermark and which reserves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllocFlags(pub u32);

impl AllocFlags {
    /// Check against the min watermark.
    pub const ALLOC_WMARK_MIN: u32 = Wmark::Min as u32;
    /// Check against the low watermark.
    pub const ALLOC_WMARK_LOW: u32 = Wmark::Low as u32;
    /// Check against the high watermark.
    pub const ALLOC_WMARK_HIGH: u32 = Wmark::High as u32;
    /// Mask of the watermark index.
    pub const ALLOC_WMARK_MASK: u32 = 0x3;
    /// Ignore watermarks entirely (PF_MEMALLOC; unused by us so far).
    pub const ALLOC_NO_WATERMARKS: u32 = 0x04;
    /// Caller cannot sleep: may use a quarter more of the reserve.
    pub const ALLOC_HARDER: u32 = 0x10;
    /// `__GFP_HIGH`: may use half of the reserve.
    pub const ALLOC_HIGH: u32 = 0x20;

    fn wmark(self) -> usize {
        (self.0 & Self::ALLOC_WMARK_MASK) as usize
    }

    /// `gfp_to_alloc_flags()`: the slow path's flags.
    pub fn from_gfp_slowpath(gfp: Gfp) -> AllocFlags {
        let mut f = Self::ALLOC_WMARK_MIN;
        if gfp.contains(Gfp::__GFP_HIGH) {
            f |= Self::ALLOC_HIGH;
        }
        if !gfp.allows_blocking() {
            f |= Self::ALLOC_HARDER;
        }
        AllocFlags(f)
    }
}

/// One CPU's `per_cpu_pages` of a zone behind its own lock (Linux 6.1's
/// `pcp->lock`, class [`sync::PCP`]), alone in its cache line.
#[repr(align(64))]
struct PcpSlot(SpinLock<PerCpuPages>);

/// `struct zone`.
///
/// Locking, as Linux's: the buddy lists are behind [`Self::lock`] (the zone
/// lock, class [`sync::ZONE_LOCK`]), each CPU's pcp list behind its own
/// pcp lock; the free count (`NR_FREE_PAGES`) is an atomic the watermark
/// checks read without a lock; the rest is set at boot and read-only after.
pub struct Zone {
    /// Which zone this is.
    pub zone_type: ZoneType,
    /// First frame of the zone.
    pub zone_start_pfn: Pfn,
    /// Frames from the first to the last, holes included.
    pub spanned_pages: usize,
    /// Frames handed to the buddy allocator (not reserved by memblock).
    pub managed_pages: usize,
    /// `NR_FREE_PAGES`: pages on the buddy lists (not on pcp lists);
    /// changed with the zone lock held, read without it.
    nr_free: AtomicUsize,
    /// `_watermark[WMARK_MIN/LOW/HIGH]`, in pages.
    pub watermark: [usize; 3],
    /// `lowmem_reserve[j]`: pages this zone keeps back from an allocation
    /// whose highest allowed zone is `j`.
    pub lowmem_reserve: [usize; MAX_NR_ZONES],
    /// `zone->lock`: the buddy lists.
    pub lock: SpinLock<FreeLists>,
    /// `per_cpu_pageset`.
    pcp: [PcpSlot; NR_CPUS],
}

impl Zone {
    fn new(zone_type: ZoneType, start: Pfn, end: Pfn) -> Zone {
        let spanned = end.saturating_sub(start);
        Zone {
            zone_type,
            zone_start_pfn: start,
            spanned_pages: spanned,
            managed_pages: 0,
            nr_free: AtomicUsize::new(0),
            watermark: [0; 3],
            lowmem_reserve: [0; MAX_NR_ZONES],
            lock: SpinLock::new(&sync::ZONE_LOCK, FreeLists::new(start, spanned)),
            pcp: core::array::from_fn(|_| PcpSlot(SpinLock::new(&sync::PCP, PerCpuPages::EMPTY))),
        }
    }

    /// `populated_zone()`.
    pub fn populated(&self) -> bool {
        self.managed_pages > 0
    }

    /// `wmark_pages()`.
    pub fn wmark_pages(&self, w: Wmark) -> usize {
        self.watermark[w as usize]
    }

    /// `zone_page_state(zone, NR_FREE_PAGES)`: pages on the buddy lists.
    pub fn nr_free_pages(&self) -> usize {
        self.nr_free.load(Relaxed)
    }

    /// `__mod_zone_page_state(NR_FREE_PAGES)`, with the zone lock held (the
    /// guard is the proof).
    fn mod_free(&self, _locked: &mut FreeLists, add: usize, sub: usize) {
        self.nr_free.store(self.nr_free.load(Relaxed) + add - sub, Relaxed);
    }

    /// `this_cpu_ptr(zone->per_cpu_pageset)` locked: CPU `cpu`'s pcp
    /// lists, with interrupts masked until the guard drops.
    pub fn pcp(&self, cpu: usize) -> SpinLockGuard<'_, PerCpuPages> {
        self.pcp[cpu].0.lock_irqsave()
    }

    /// Free pages including those cached on pcp lists.
    pub fn free_pages_with_pcp(&self) -> usize {
        self.nr_free_pages() + (0..NR_CPUS).map(|cpu| self.pcp(cpu).count).sum::<usize>()
    }

    /// `__zone_watermark_ok()`: would `free_pages - 2^order + 1` stay above
    /// `mark` (reduced for ALLOC_HIGH/ALLOC_HARDER) plus the lowmem reserve
    /// against `highest_zoneidx`, with a block of at least `order` free?
    /// The free lists (`free`, zone lock held) are looked at only for
    /// `order > 0`; order 0 needs none.
    pub fn zone_watermark_ok(
        &self,
        free: Option<&FreeLists>,
        order: usize,
        mark: usize,
        highest_zoneidx: ZoneType,
        alloc_flags: AllocFlags,
        free_pages: usize,
    ) -> bool {
        let mut min = mark as isize;
        let free_after = free_pages as isize - ((1isize << order) - 1);
        if alloc_flags.0 & AllocFlags::ALLOC_HIGH != 0 {
            min -= min / 2;
        }
        if alloc_flags.0 & AllocFlags::ALLOC_HARDER != 0 {
            min -= min / 4;
        }
        if free_after <= min + self.lowmem_reserve[highest_zoneidx.idx()] as isize {
            return false;
        }
        if order == 0 {
            return true;
        }
        let Some(free) = free else { return false };
        (order..MAX_ORDER).any(|o| {
            let area = &free.free_area[o];
            area.nr_free > 0 && MigrateType::ALL.iter().any(|&mt| !area.list_empty(mt))
        })
    }
}

/// Where the zone boundaries fall (`zone_sizes_init`, max_zone_pfns[]).
#[derive(Clone, Copy, Debug)]
pub struct ZoneLimits {
    /// End (exclusive) of ZONE_DMA32.
    pub dma32_end_pfn: Pfn,
}

impl ZoneLimits {
    /// arm64: ZONE_DMA32 is the memory below 4 GiB.
    pub const ARM64: ZoneLimits = ZoneLimits { dma32_end_pfn: (1usize << 32) >> PAGE_SHIFT };
}

/// Allocator-wide counters (a little of /proc/vmstat), summed over the CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmStat {
    /// Successful allocations.
    pub pgalloc: u64,
    /// Pages freed.
    pub pgfree: u64,
    /// Allocations that needed the slow path.
    pub slowpath: u64,
    /// Times kswapd would have been woken (we have no kswapd yet).
    pub kswapd_wakeups: u64,
    /// Failed allocations without __GFP_NOWARN ("page allocation failure").
    pub alloc_fail_warn: u64,
    /// Failed allocations with __GFP_NOWARN.
    pub alloc_fail_nowarn: u64,
    /// Allocations served by a lower zone than the preferred one.
    pub zone_fallback: u64,
    /// Slow-path failures that drained every pcp list and retried.
    pub pcp_drains: u64,
}

/// One CPU's event counters (`vm_event_states`), alone in a cache line:
/// counting never bounces a line between CPUs. Atomics so that a task
/// that moved to another CPU after reading its CPU number still counts
/// correctly.
#[derive(Debug, Default)]
#[repr(align(64))]
struct VmEvents([AtomicU64; 8]);

/// Index into [`VmEvents`], in [`VmStat`]'s field order.
#[derive(Clone, Copy)]
enum VmEvent {
    PgAlloc,
    PgFree,
    SlowPath,
    KswapdWakeup,
    AllocFailWarn,
    AllocFailNowarn,
    ZoneFallback,
    PcpDrain,
}

/// `/proc/sys/vm/lowmem_reserve_ratio` defaults (DMA32 256, NORMAL 32).
pub const LOWMEM_RESERVE_RATIO: [usize; MAX_NR_ZONES] = [256, 32];

/// `watermark_scale_factor` default (in 1/10000 of the zone).
pub const WATERMARK_SCALE_FACTOR: usize = 10;

/// The node (`pglist_data`): mem_map, zones and the allocator entry points.
///
/// Shared by the CPUs (`&self` everywhere after boot): the zones carry
/// their own locks ([`Zone`]), the page descriptors are atomics
/// ([`Page`]), the counters per-CPU atomics.
pub struct PageAllocator<'a, M: PhysMem> {
    /// `node_mem_map`.
    pub map: MemMap<'a>,
    /// `node_zones`, lowest first.
    pub zones: [Zone; MAX_NR_ZONES],
    /// How to zero and copy frames.
    pub mem: M,
    /// `min_free_kbytes`, computed by [`Self::init_per_zone_wmark_min`].
    pub min_free_kbytes: usize,
    /// `lowmem_reserve_ratio`.
    pub lowmem_reserve_ratio: [usize; MAX_NR_ZONES],
    vm_events: [VmEvents; NR_CPUS],
}

impl<'a, M: PhysMem> PageAllocator<'a, M> {
    /// `free_area_init()`: build the node over `mem_map`, whose first entry
    /// describes `start_pfn`. Every page starts reserved; memory reaches the
    /// buddy lists only through [`Self::free_range`] (memblock's hand-over).
    pub fn free_area_init(mem_map: &'a [Page], start_pfn: Pfn, limits: ZoneLimits, mem: M) -> Self {
        let end_pfn = start_pfn + mem_map.len();
        let split = limits.dma32_end_pfn.clamp(start_pfn, end_pfn);
        let zones = [Zone::new(ZoneType::Dma32, start_pfn, split), Zone::new(ZoneType::Normal, split, end_pfn)];
        let map = MemMap { pages: mem_map, start_pfn };
        for (i, p) in map.pages.iter().enumerate() {
            let zone = if start_pfn + i < split { ZoneType::Dma32 } else { ZoneType::Normal };
            p.set_reserved();
            p.set_zone(zone);
        }
        PageAllocator {
            map,
            zones,
            mem,
            min_free_kbytes: 0,
            lowmem_reserve_ratio: LOWMEM_RESERVE_RATIO,
            vm_events: Default::default(),
        }
    }

    fn zone_of(&self, pfn: Pfn) -> usize {
        self.map.page(pfn).zone().idx()
    }

    fn count_vm_event(&self, cpu: usize, e: VmEvent) {
        self.vm_events[cpu].0[e as usize].fetch_add(1, Relaxed);
    }

    fn count_vm_events(&self, cpu: usize, e: VmEvent, n: u64) {
        self.vm_events[cpu].0[e as usize].fetch_add(n, Relaxed);
    }

    /// The counters, summed over the CPUs (`all_vm_events`).
    pub fn vmstat(&self) -> VmStat {
        let sum = |e: VmEvent| self.vm_events.iter().map(|c| c.0[e as usize].load(Relaxed)).sum();
        VmStat {
            pgalloc: sum(VmEvent::PgAlloc),
            pgfree: sum(VmEvent::PgFree),
            slowpath: sum(VmEvent::SlowPath),
            kswapd_wakeups: sum(VmEvent::KswapdWakeup),
            alloc_fail_warn: sum(VmEvent::AllocFailWarn),
            alloc_fail_nowarn: sum(VmEvent::AllocFailNowarn),
            zone_fallback: sum(VmEvent::ZoneFallback),
            pcp_drains: sum(VmEvent::PcpDrain),
        }
    }

    /// `__free_pages_core()` over a range: hand `[start, end)` to the buddy
    /// allocator in the largest naturally aligned blocks that fit, never
    /// crossing a zone boundary. Used by memblock's hand-over.
    pub fn free_range(&mut self, start: Pfn, end: Pfn) {
        let start = start.max(self.map.start_pfn);
        let end = end.min(self.map.end_pfn());
        let mut pfn = start;
        while pfn < end {
            let zi = self.zone_of(pfn);
            let zone_end = self.zones[zi].zone_start_pfn + self.zones[zi].spanned_pages;
            let limit = end.min(zone_end);
            let mut order = (pfn.trailing_zeros() as usize).min(MAX_ORDER - 1);
            while pfn + (1 << order) > limit {
                order -= 1;
            }
            for p in pfn..pfn + (1 << order) {
                let page = self.map.page(p);
                assert!(page.is_reserved(), "bad page: pfn {p:#x} handed over twice");
                page.clear_flags(PageFlags::PG_RESERVED);
                page.set_count(0);
            }
            let mt = self.map.pageblock_migratetype(pfn);
            let zone = &mut self.zones[zi];
            zone.managed_pages += 1 << order;
            *zone.nr_free.get_mut() += 1 << order;
            zone.lock.get_mut().__free_one_page(&self.map, pfn, order, mt);
            pfn += 1 << order;
        }
    }

    /// `init_per_zone_wmark_min()`: `min_free_kbytes = sqrt(lowmem_kbytes * 16)`
    /// clamped to [128, 262144], then the watermarks, lowmem_reserve and the
    /// pcp batch sizes. Call once after memblock has handed over its memory.
    pub fn init_per_zone_wmark_min(&mut self) {
        let lowmem_kbytes = self.nr_free_buffer_pages() * (PAGE_SIZE >> 10);
        self.min_free_kbytes = isqrt(lowmem_kbytes * 16).clamp(128, 262_144);
        self.setup_per_zone_wmarks();
        self.setup_per_zone_lowmem_reserve();
        self.setup_pcp();
    }

    /// `nr_free_buffer_pages()`: managed pages above the high watermark.
    fn nr_free_buffer_pages(&self) -> usize {
        self.zones.iter().map(|z| z.managed_pages.saturating_sub(z.wmark_pages(Wmark::High))).sum()
    }

    /// `__setup_per_zone_wmarks()`: share `min_free_kbytes` among the zones
    /// by size; low = min + max(min/4, managed * scale / 10000), high = min +
    /// twice that distance.
    pub fn setup_per_zone_wmarks(&mut self) {
        let pages_min = self.min_free_kbytes >> (PAGE_SHIFT - 10);
        let lowmem_pages: usize = self.zones.iter().map(|z| z.managed_pages).sum();
        for zone in self.zones.iter_mut() {
            let min = (pages_min * zone.managed_pages).checked_div(lowmem_pages).unwrap_or(0);
            let gap = (min >> 2).max(zone.managed_pages * WATERMARK_SCALE_FACTOR / 10_000);
            zone.watermark = [min, min + gap, min + 2 * gap];
        }
    }

    /// `setup_per_zone_lowmem_reserve()`: zone `i` keeps back, from an
    /// allocation that could have used zone `j > i`, the managed pages of the
    /// zones `i+1..=j` divided by `lowmem_reserve_ratio[i]`.
    pub fn setup_per_zone_lowmem_reserve(&mut self) {
        for i in 0..MAX_NR_ZONES {
            let ratio = self.lowmem_reserve_ratio[i];
            let mut managed = 0;
            self.zones[i].lowmem_reserve = [0; MAX_NR_ZONES];
            for j in i + 1..MAX_NR_ZONES {
                managed += self.zones[j].managed_pages;
                self.zones[i].lowmem_reserve[j] = managed.checked_div(ratio).unwrap_or(0);
            }
        }
    }

    /// `zone_batchsize()` + `pageset_set_high_and_batch()`: batch is about a
    /// quarter of a thousandth of the zone (at most 1 MiB worth), rounded to
    /// 2^n - 1; high is six batches.
    fn setup_pcp(&mut self) {
        for zone in self.zones.iter_mut() {
            let mut batch = (zone.managed_pages >> 10).min((1 << 20) / PAGE_SIZE);
            batch /= 4;
            batch = batch.max(1);
            let batch = (rounddown_pow_of_two(batch + batch / 2) - 1).max(1);
            for slot in zone.pcp.iter_mut() {
                let pcp = slot.0.get_mut();
                pcp.batch = batch;
                pcp.high = 6 * batch;
            }
        }
    }

    /// The zonelist for an allocation whose highest zone is `highest`:
    /// highest first, then lower zones (UMA: {NORMAL, DMA32}).
    pub fn zonelist(highest: ZoneType) -> impl Iterator<Item = ZoneType> {
        ZoneType::ALL.into_iter().rev().filter(move |z| *z <= highest)
    }

    /// `alloc_pages()`: a block of 2^`order` frames, or `None`. `cpu` is
    /// the caller's `smp_processor_id()`, whose pcp lists serve order 0
    /// (a caller that has moved since only uses another CPU's lists, under
    /// their lock).
    ///
    /// Fast path against the low watermark; slow path against the min
    /// watermark with the reserve allowances of `gfp_to_alloc_flags()`.
    /// There is no reclaim or compaction yet, so the slow path is one
    /// retry, and one more after draining every CPU's pcp lists
    /// (`__alloc_pages_direct_reclaim`'s `drain_all_pages`).
    pub fn alloc_pages(&self, gfp: Gfp, order: usize, cpu: usize) -> Option<Pfn> {
        if order >= MAX_ORDER {
            self.fail(gfp, cpu);
            return None;
        }
        let fast = AllocFlags(AllocFlags::ALLOC_WMARK_LOW);
        let pfn = self.get_page_from_freelist(gfp, order, fast, cpu).or_else(|| {
            self.count_vm_event(cpu, VmEvent::SlowPath);
            if gfp.contains(Gfp::__GFP_KSWAPD_RECLAIM) {
                self.count_vm_event(cpu, VmEvent::KswapdWakeup);
            }
            let slow = AllocFlags::from_gfp_slowpath(gfp);
            self.get_page_from_freelist(gfp, order, slow, cpu).or_else(|| {
                if self.drain_all_pages() == 0 {
                    return None;
                }
                self.count_vm_event(cpu, VmEvent::PcpDrain);
                self.get_page_from_freelist(gfp, order, slow, cpu)
            })
        });
        match pfn {
            Some(pfn) => {
                self.prep_new_page(pfn, order, gfp);
                self.count_vm_event(cpu, VmEvent::PgAlloc);
                crate::event!("mm_page_alloc pfn={=usize:#x} order={=u8} cpu={=u8}", pfn, order as u8, cpu as u8);
                Some(pfn)
            }
            None => {
                self.fail(gfp, cpu);
                None
            }
        }
    }

    /// `alloc_page()`.
    pub fn alloc_page(&self, gfp: Gfp, cpu: usize) -> Option<Pfn> {
        self.alloc_pages(gfp, 0, cpu)
    }

    fn fail(&self, gfp: Gfp, cpu: usize) {
        if gfp.contains(Gfp::__GFP_NOWARN) {
            self.count_vm_event(cpu, VmEvent::AllocFailNowarn);
        } else {
            self.count_vm_event(cpu, VmEvent::AllocFailWarn);
        }
    }

    /// `get_page_from_freelist()`: walk the zonelist and take from the first
    /// zone whose watermark check passes. Order 0 checks the free count
    /// without a lock and takes from the pcp lists (`rmqueue_pcplist`);
    /// larger orders check and take under the zone lock (`rmqueue_buddy`).
    fn get_page_from_freelist(&self, gfp: Gfp, order: usize, flags: AllocFlags, cpu: usize) -> Option<Pfn> {
        let highest = gfp.zone();
        let mt = gfp.migratetype();
        for zt in Self::zonelist(highest) {
            let zone = &self.zones[zt.idx()];
            if !zone.populated() {
                continue;
            }
            let mark = zone.watermark[flags.wmark()];
            let pfn = if order == 0 {
                if !zone.zone_watermark_ok(None, 0, mark, highest, flags, zone.nr_free_pages()) {
                    continue;
                }
                self.rmqueue_pcplist(zone, mt, cpu)
            } else {
                let mut free = zone.lock.lock_irqsave();
                if !zone.zone_watermark_ok(Some(&free), order, mark, highest, flags, zone.nr_free_pages()) {
                    continue;
                }
                let pfn = free.__rmqueue(&self.map, order, mt);
                if pfn.is_some() {
                    zone.mod_free(&mut free, 0, 1 << order);
                }
                pfn
            };
            if let Some(pfn) = pfn {
                if zt != highest {
                    self.count_vm_event(cpu, VmEvent::ZoneFallback);
                }
                return Some(pfn);
            }
        }
        None
    }

    /// `rmqueue_pcplist()`: the hottest page of this CPU's `mt` list; an
    /// empty list is first refilled with a batch from the buddy lists, the
    /// only moment the zone lock is taken (`rmqueue_bulk`).
    fn rmqueue_pcplist(&self, zone: &Zone, mt: MigrateType, cpu: usize) -> Option<Pfn> {
        let mut pcp = zone.pcp(cpu);
        if pcp.list_empty(mt) {
            // Interrupts are masked by the pcp guard: plain `lock`.
            let mut free = zone.lock.lock();
            let got = pcp.rmqueue_bulk(&self.map, &mut free, mt);
            zone.mod_free(&mut free, 0, got);
        } else {
            pcp.hits += 1;
        }
        pcp.pop(&self.map, mt)
    }

    /// `prep_new_page()`: refcount 1, zeroing, compound setup.
    fn prep_new_page(&self, pfn: Pfn, order: usize, gfp: Gfp) {
        for p in pfn..pfn + (1 << order) {
            let page = self.map.page(p);
            debug_assert!(!page.is_buddy() && !page.is_reserved());
            page.set_count(0);
        }
        self.map.page(pfn).set_count(1);
        if gfp.contains(Gfp::__GFP_ZERO) {
            self.mem.zero(pfn, 1 << order);
        }
        if gfp.contains(Gfp::__GFP_COMP) && order > 0 {
            self.prep_compound_page(pfn, order);
        }
    }

    /// `prep_compound_page()`: the head records the order, tails point at it.
    fn prep_compound_page(&self, pfn: Pfn, order: usize) {
        let head_idx = self.map.idx(pfn);
        let head = self.map.page(pfn);
        head.set_flags(PageFlags::PG_HEAD);
        head.set_order(order);
        for p in pfn + 1..pfn + (1 << order) {
            let tail = self.map.page(p);
            tail.set_flags(PageFlags::PG_TAIL);
            tail.set_compound_head(head_idx);
        }
    }

    /// `compound_head()`: the head frame of the (possibly compound) page.
    pub fn compound_head(&self, pfn: Pfn) -> Pfn {
        let page = self.map.page(pfn);
        if page.is_tail() { self.map.pfn(page.compound_head_idx()) } else { pfn }
    }

    /// `compound_order()`: 0 for a plain page.
    pub fn compound_order(&self, pfn: Pfn) -> usize {
        let page = self.map.page(self.compound_head(pfn));
        if page.is_head() { page.order() } else { 0 }
    }

    /// `page_count()` (of the head page, as Linux does).
    pub fn page_count(&self, pfn: Pfn) -> u32 {
        self.map.page(self.compound_head(pfn)).count()
    }

    /// `get_page()`: take a reference (e.g. a second mapping after fork).
    pub fn get_page(&self, pfn: Pfn) {
        let head = self.compound_head(pfn);
        let old = self.map.page(head).ref_inc();
        assert!(old > 0, "bad page: get_page on free pfn {head:#x}");
    }

    /// `put_page()`: drop a reference and free the (compound) page at zero.
    pub fn put_page(&self, pfn: Pfn, cpu: usize) {
        let head = self.compound_head(pfn);
        let order = self.compound_order(head);
        self.__free_pages(head, order, cpu);
    }

    /// `__free_pages()`: drop the allocation reference of a block from
    /// [`Self::alloc_pages`]; the block is freed when the count reaches zero
    /// (order 0 onto `cpu`'s pcp list, larger blocks to the buddy lists).
    pub fn __free_pages(&self, pfn: Pfn, order: usize, cpu: usize) {
        let page = self.map.page(pfn);
        let flags = page.flags();
        assert!(
            !page.is_tail() && !page.is_reserved() && !page.is_buddy() && !flags.has(PageFlags::PG_PCP),
            "bad page: freeing pfn {pfn:#x} with flags {flags:?}"
        );
        let old = page.ref_dec();
        assert!(old > 0, "bad page: double free of pfn {pfn:#x}");
        if old > 1 {
            return;
        }
        if page.is_head() {
            assert_eq!(page.order(), order, "bad page: compound order mismatch at pfn {pfn:#x}");
            page.clear_flags(PageFlags::PG_HEAD);
            for p in pfn + 1..pfn + (1 << order) {
                self.map.page(p).clear_flags(PageFlags::PG_TAIL);
            }
        }
        page.clear_flags(PageFlags::PG_SLAB);
        self.count_vm_events(cpu, VmEvent::PgFree, 1 << order);
        crate::event!("mm_page_free pfn={=usize:#x} order={=u8} cpu={=u8}", pfn, order as u8, cpu as u8);
        let mt = self.map.pageblock_migratetype(pfn);
        let zone = &self.zones[self.zone_of(pfn)];
        if order == 0 {
            self.free_unref_page(zone, pfn, mt, cpu);
        } else {
            // `__free_pages_ok()`: straight back to the buddy lists.
            let mut free = zone.lock.lock_irqsave();
            free.__free_one_page(&self.map, pfn, order, mt);
            zone.mod_free(&mut free, 1 << order, 0);
        }
    }

    /// `free_unref_page()`: onto this CPU's pcp list; at `high`, give a
    /// batch of the coldest pages back, the only moment the zone lock is
    /// taken (`free_pcppages_bulk`).
    fn free_unref_page(&self, zone: &Zone, pfn: Pfn, mt: MigrateType, cpu: usize) {
        let mut pcp = zone.pcp(cpu);
        if pcp.push(&self.map, pfn, mt) {
            let batch = pcp.batch;
            // Interrupts are masked by the pcp guard: plain `lock`.
            let mut free = zone.lock.lock();
            let n = pcp.free_pcppages_bulk(&self.map, &mut free, batch);
            zone.mod_free(&mut free, n, 0);
        }
    }

    /// `drain_all_pages()`: empty every CPU's pcp lists of every zone
    /// (each under its pcp lock, so another CPU's lists too). Returns the
    /// pages given back.
    pub fn drain_all_pages(&self) -> usize {
        let mut drained = 0;
        for zone in &self.zones {
            for cpu in 0..NR_CPUS {
                let mut pcp = zone.pcp(cpu);
                if pcp.count > 0 {
                    let mut free = zone.lock.lock();
                    let n = pcp.free_pcppages_bulk(&self.map, &mut free, usize::MAX);
                    zone.mod_free(&mut free, n, 0);
                    drained += n;
                }
            }
        }
        drained
    }

    /// Mark or unmark a block as slab memory (`__SetPageSlab`); the caller
    /// owns the block.
    pub fn set_page_slab(&self, pfn: Pfn, on: bool) {
        let page = self.map.page(pfn);
        if on {
            page.set_flags(PageFlags::PG_SLAB);
        } else {
            page.clear_flags(PageFlags::PG_SLAB);
        }
    }

    /// `nr_free_pages()`: free pages in all zones, pcp lists included.
    pub fn nr_free_pages(&self) -> usize {
        self.zones.iter().map(Zone::free_pages_with_pcp).sum()
    }

    /// `global_zone_page_state(NR_FREE_PAGES)`: pages on the buddy lists
    /// of all zones, read without a lock (pcp lists not included, as in
    /// Linux's `MemFree`); what the overcommit heuristic reads.
    pub fn global_free_pages(&self) -> usize {
        self.zones.iter().map(Zone::nr_free_pages).sum()
    }

    /// `totalram_pages()`: pages managed by the buddy allocator.
    pub fn totalram_pages(&self) -> usize {
        self.zones.iter().map(|z| z.managed_pages).sum()
    }

    /// A snapshot of the free lists: /proc/buddyinfo (the buddy lists
    /// only; pages on pcp lists are not in it, as in Linux).
    pub fn buddyinfo(&self) -> BuddyInfo {
        let mut info = BuddyInfo { zones: [None; MAX_NR_ZONES] };
        for (i, zone) in self.zones.iter().enumerate() {
            if zone.populated() {
                let mut counts = [0; MAX_ORDER];
                let free = zone.lock.lock_irqsave();
                for (o, area) in free.free_area.iter().enumerate() {
                    counts[o] = area.nr_free;
                }
                info.zones[i] = Some((zone.zone_type, counts));
            }
        }
        info
    }

    /// Check every zone's free lists, pcp lists and counters; returns free
    /// buddy pages.
    pub fn check(&self) -> Result<usize, &'static str> {
        let mut total = 0;
        for zone in &self.zones {
            for cpu in 0..NR_CPUS {
                zone.pcp(cpu).check(&self.map)?;
            }
            let pages = zone.lock.lock_irqsave().check_free_lists(&self.map)?;
            if pages != zone.nr_free_pages() {
                return Err("nr_free_pages does not match the free lists");
            }
            total += pages;
        }
        Ok(total)
    }
}

/// Per-zone, per-order free block counts, printed like /proc/buddyinfo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuddyInfo {
    /// `None` for unpopulated zones.
    pub zones: [Option<(ZoneType, [usize; MAX_ORDER])>; MAX_NR_ZONES],
}

impl fmt::Display for BuddyInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (zt, counts) in self.zones.iter().flatten() {
            write!(f, "Node 0, zone {:>8} ", zt.name())?;
            for c in counts {
                write!(f, "{c:6} ")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// `int_sqrt()`.
pub fn isqrt(x: usize) -> usize {
    if x < 2 {
        return x;
    }
    // Newton's iteration from above converges to floor(sqrt(x)).
    let mut r = x;
    let mut y = x.div_ceil(2);
    while y < r {
        r = y;
        y = (r + x / r) / 2;
    }
    r
}

fn rounddown_pow_of_two(x: usize) -> usize {
    1 << (usize::BITS - 1 - x.leading_zeros())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use alloc::boxed::Box;
    use alloc::collections::BTreeMap;
    use alloc::vec;
    use alloc::vec::Vec;
    use core::cell::RefCell;

    /// xorshift64*: a tiny deterministic PRNG for randomized tests.
    pub(crate) struct XorShift(pub u64);

    impl XorShift {
        pub(crate) fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            x.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        pub(crate) fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Records what the allocator asked to zero or copy.
    #[derive(Default)]
    pub(crate) struct FakeMem {
        pub(crate) zeroed: RefCell<Vec<(Pfn, usize)>>,
        pub(crate) copies: RefCell<Vec<(Pfn, Pfn)>>,
    }

    impl PhysMem for FakeMem {
        fn zero(&self, pfn: Pfn, count: usize) {
            self.zeroed.borrow_mut().push((pfn, count));
        }
        fn copy_page(&self, dst: Pfn, src: Pfn) {
            self.copies.borrow_mut().push((dst, src));
        }
    }

    /// A node over `[start, end)` with the DMA32/NORMAL split at `split`;
    /// everything in `free` is handed over.
    pub(crate) fn node(start: Pfn, end: Pfn, split: Pfn, free: &[(Pfn, Pfn)]) -> PageAllocator<'static, FakeMem> {
        let map: &'static [Page] = Box::leak(vec![Page::reserved(); end - start].into_boxed_slice());
        let limits = ZoneLimits { dma32_end_pfn: split };
        let mut pa = PageAllocator::free_area_init(map, start, limits, FakeMem::default());
        for &(s, e) in free {
            pa.free_range(s, e);
        }
        pa.init_per_zone_wmark_min();
        pa
    }

    #[test]
    fn handover_builds_maximal_blocks() {
        // 0x40000..0x41000 = 4096 pages = four order-10 blocks; a hole in
        // the middle of the second block splits it.
        let pa = node(0x40000, 0x41000, 0x100000, &[(0x40000, 0x40500), (0x40510, 0x41000)]);
        assert_eq!(pa.check(), Ok(4096 - 16));
        let z = &pa.zones[0];
        assert_eq!(z.managed_pages, 4096 - 16);
        assert_eq!(z.lock.lock().free_area[10].nr_free, 3);
        assert!(!pa.zones[1].populated());
        assert!(pa.map.page(0x40505).is_reserved());
    }

    #[test]
    fn handover_never_crosses_a_zone_boundary() {
        let pa = node(0, 4096, 1536, &[(0, 4096)]);
        assert_eq!(pa.zones[0].managed_pages, 1536);
        assert_eq!(pa.zones[1].managed_pages, 2560);
        assert_eq!(pa.check(), Ok(4096));
        // 1536 = 1024 + 512 in DMA32, 2560 = 512 + 2 * 1024 in NORMAL.
        assert_eq!(pa.zones[0].lock.lock().free_area[9].nr_free, 1);
        assert_eq!(pa.zones[1].lock.lock().free_area[9].nr_free, 1);
        assert_eq!(pa.zones[1].lock.lock().free_area[10].nr_free, 2);
    }

    #[test]
    fn watermarks_follow_min_free_kbytes() {
        // 1 GiB of lowmem: min_free_kbytes = sqrt(1 Mi KiB * 16) = 4096 KiB.
        let pages = 1 << 18;
        let pa = node(0, pages, pages / 4, &[(0, pages)]);
        assert_eq!(pa.min_free_kbytes, 4096);
        let (d, n) = (&pa.zones[0], &pa.zones[1]);
        assert_eq!(d.wmark_pages(Wmark::Min) + n.wmark_pages(Wmark::Min), 1024);
        assert_eq!(d.wmark_pages(Wmark::Min), 256);
        // low - min = max(min / 4, managed * 10 / 10000) = max(64, 65).
        assert_eq!(d.wmark_pages(Wmark::Low), 256 + 65);
        assert_eq!(d.wmark_pages(Wmark::High), 256 + 130);
        // DMA32 keeps NORMAL's managed / 256 back from NORMAL allocations.
        assert_eq!(d.lowmem_reserve, [0, (3 * pages / 4) / 256]);
        assert_eq!(n.lowmem_reserve, [0, 0]);
        assert_eq!(isqrt(1 << 24), 1 << 12);
        assert_eq!(isqrt(17), 4);
    }

    #[test]
    fn random_alloc_free_matches_model_and_coalesces_fully() {
        let (start, end, split) = (0x8000, 0x8000 + 16384, 0x8000 + 6144);
        let pa = node(start, end, split, &[(start, 0x8000 + 100), (0x8000 + 130, end)]);
        let initial = pa.buddyinfo();
        let managed = pa.totalram_pages();
        let mut rng = XorShift(0x1234_5678_9abc_def1);
        let mut live: BTreeMap<Pfn, (usize, Gfp)> = BTreeMap::new();
        let gfps = [
            Gfp::GFP_KERNEL,
            Gfp::GFP_HIGHUSER_MOVABLE,
            Gfp::GFP_KERNEL | Gfp::__GFP_RECLAIMABLE,
            Gfp::GFP_DMA32,
            Gfp::GFP_ATOMIC | Gfp::__GFP_COMP,
            Gfp::GFP_KERNEL | Gfp::__GFP_NOWARN,
        ];
        for step in 0..6000 {
            let cpu = rng.below(NR_CPUS as u64) as usize;
            if rng.below(100) < 55 {
                let order = [0, 0, 0, 1, 2, 3, 5, 8][rng.below(8) as usize];
                let gfp = gfps[rng.below(gfps.len() as u64) as usize];
                if let Some(pfn) = pa.alloc_pages(gfp, order, cpu) {
                    assert_eq!(pfn % (1 << order), 0, "misaligned block");
                    if gfp.contains(Gfp::__GFP_DMA32) {
                        assert!(pfn + (1 << order) <= split, "DMA32 allocation above the zone");
                    }
                    // No overlap with a live block on either side.
                    if let Some((&p, &(o, _))) = live.range(..=pfn).next_back() {
                        assert!(p + (1 << o) <= pfn, "overlap with {p:#x}/{o}");
                    }
                    if let Some((&p, _)) = live.range(pfn..).next() {
                        assert!(pfn + (1 << order) <= p, "overlap with {p:#x}");
                    }
                    for p in pfn..pfn + (1 << order) {
                        assert!(!pa.map.page(p).is_reserved() && !pa.map.page(p).is_buddy());
                    }
                    live.insert(pfn, (order, gfp));
                }
            } else if !live.is_empty() {
                let nth = rng.below(live.len() as u64) as usize;
                let (&pfn, &(order, _)) = live.iter().nth(nth).unwrap();
                live.remove(&pfn);
                pa.__free_pages(pfn, order, cpu);
            }
            if step % 500 == 0 {
                let in_use: usize = live.values().map(|(o, _)| 1 << o).sum();
                assert!(pa.check().is_ok());
                assert_eq!(pa.nr_free_pages() + in_use, managed, "leak at step {step}");
            }
        }
        for (pfn, (order, _)) in core::mem::take(&mut live) {
            pa.__free_pages(pfn, order, 0);
        }
        pa.drain_all_pages();
        assert_eq!(pa.check(), Ok(managed));
        assert_eq!(pa.buddyinfo(), initial, "free lists not fully coalesced");
    }

    #[test]
    fn normal_allocation_stops_at_min_atomic_dips_below() {
        let pa = node(0, 8192, 1 << 20, &[(0, 8192)]);
        let min = pa.zones[0].wmark_pages(Wmark::Min);
        let batch = pa.zones[0].pcp(0).batch;
        assert!(min > 16, "test needs a meaningful min watermark, got {min}");
        let mut n = 0;
        while pa.alloc_page(Gfp::GFP_KERNEL, 0).is_some() {
            n += 1;
        }
        let free = pa.zones[0].nr_free_pages();
        assert!(free <= min && free + batch > min, "GFP_KERNEL stopped at {free}, min {min}");
        assert!(n > 0 && pa.vmstat().alloc_fail_warn == 1);
        // GFP_ATOMIC: ALLOC_HIGH takes half of min, ALLOC_HARDER a quarter
        // of the rest.
        let atomic_min = min - min / 2 - (min - min / 2) / 4;
        let mut extra = 0;
        while pa.alloc_page(Gfp::GFP_ATOMIC | Gfp::__GFP_NOWARN, 0).is_some() {
            extra += 1;
        }
        let free = pa.zones[0].nr_free_pages();
        assert!(extra > 0, "atomic allocation could not use the reserve");
        assert!(free <= atomic_min && free + batch > atomic_min, "atomic stopped at {free}, expected {atomic_min}");
        assert_eq!(pa.vmstat().alloc_fail_nowarn, 1);
        // GFP_NOWAIT cannot sleep (ALLOC_HARDER) but has no __GFP_HIGH.
        let nowait_min = min - min / 4;
        assert!(nowait_min > atomic_min);
        assert!(pa.alloc_page(Gfp::GFP_NOWAIT, 0).is_none());
    }

    #[test]
    fn fast_path_uses_low_slow_path_uses_min() {
        let pa = node(0, 8192, 1 << 20, &[(0, 8192)]);
        let (min, low) = (pa.zones[0].wmark_pages(Wmark::Min), pa.zones[0].wmark_pages(Wmark::Low));
        // Order-3 blocks never touch pcp lists, so the count is exact.
        while pa.zones[0].nr_free_pages() - 7 > low {
            pa.alloc_pages(Gfp::GFP_KERNEL, 3, 0).unwrap();
        }
        assert_eq!(pa.vmstat().slowpath, 0);
        pa.alloc_pages(Gfp::GFP_KERNEL, 3, 0).unwrap();
        assert_eq!(pa.vmstat().slowpath, 1);
        assert_eq!(pa.vmstat().kswapd_wakeups, 1);
        let z = &pa.zones[0];
        assert!(!z.zone_watermark_ok(None, 0, min, ZoneType::Normal, AllocFlags(0), min));
        assert!(z.zone_watermark_ok(None, 0, min, ZoneType::Normal, AllocFlags(0), min + 1));
        // An order-3 request needs 2^3 - 1 pages more.
        let free = z.lock.lock();
        assert!(!z.zone_watermark_ok(Some(&free), 3, min, ZoneType::Normal, AllocFlags(0), min + 7));
        assert!(z.zone_watermark_ok(Some(&free), 3, min, ZoneType::Normal, AllocFlags(0), min + 8));
        assert!(
            !z.zone_watermark_ok(None, 3, min, ZoneType::Normal, AllocFlags(0), min + 8),
            "order 3 needs the lists"
        );
    }

    #[test]
    fn zone_fallback_normal_to_dma32_respects_lowmem_reserve() {
        let split = 4096;
        let pa = node(0, 4096 + 2048, split, &[(0, 4096 + 2048)]);
        let reserve = pa.zones[0].lowmem_reserve[ZoneType::Normal.idx()];
        assert_eq!(reserve, 2048 / 256);
        let dma_min = pa.zones[0].wmark_pages(Wmark::Min);
        // Exhaust NORMAL (order 2 keeps pcp lists out of the arithmetic).
        let mut first_dma = None;
        while let Some(pfn) = pa.alloc_pages(Gfp::GFP_KERNEL, 2, 0) {
            if pfn < split && first_dma.is_none() {
                first_dma = Some(pfn);
                // The fast path leaves NORMAL once it is below its low mark.
                assert!(pa.zones[1].nr_free_pages() <= pa.zones[1].wmark_pages(Wmark::Low) + 3);
            }
        }
        assert!(first_dma.is_some(), "never fell back to DMA32");
        assert!(pa.vmstat().zone_fallback > 0);
        // NORMAL allocations stop short of DMA32's min + reserve ...
        let free = pa.zones[0].nr_free_pages();
        assert!(free <= dma_min + reserve + 3 && free + 4 > dma_min + reserve, "{free} vs {dma_min}+{reserve}");
        // ... but DMA32 allocations may use the reserved part.
        let mut dma = 0;
        while pa.alloc_pages(Gfp::GFP_DMA32 | Gfp::__GFP_DIRECT_RECLAIM, 2, 0).is_some() {
            dma += 1;
        }
        assert!(dma * 4 >= reserve, "only {dma} blocks from the reserve");
        assert!(pa.zones[0].nr_free_pages() <= dma_min + 3);
    }

    #[test]
    fn unmovable_steals_whole_movable_pageblock() {
        let pa = node(0, 4096, 1 << 20, &[(0, 4096)]);
        assert!(MigrateType::ALL.iter().all(|_| pa.map.pageblock_migratetype(0) == MigrateType::Movable));
        let pfn = pa.alloc_pages(Gfp::GFP_KERNEL, 0, 0).unwrap();
        assert_eq!(pa.map.pageblock_migratetype(pfn), MigrateType::Unmovable);
        assert_eq!(pa.zones[0].lock.lock().steal_count, 0, "an order-10 block changes type outright");
        // The rest of that pageblock now serves unmovable requests.
        let again = pa.alloc_pages(Gfp::GFP_KERNEL, 4, 0).unwrap();
        assert_eq!(again / 1024, pfn / 1024);
        // Movable requests still come from movable pageblocks.
        let m = pa.alloc_pages(Gfp::GFP_HIGHUSER_MOVABLE, 4, 0).unwrap();
        assert_ne!(m / 1024, pfn / 1024);
        assert_eq!(pa.map.pageblock_migratetype(m), MigrateType::Movable);
        assert!(pa.check().is_ok());
    }

    #[test]
    fn steal_from_fragmented_block_claims_free_pages() {
        // One pageblock, all movable, with one page taken: the free space is
        // split into blocks of orders 0..=9, none of order 10.
        let pa = node(0, 1024, 1 << 20, &[(0, 1024)]);
        let used = pa.alloc_pages(Gfp::GFP_HIGHUSER_MOVABLE, 0, 0).unwrap();
        let reclaimable = pa.alloc_pages(Gfp::GFP_KERNEL | Gfp::__GFP_RECLAIMABLE, 1, 0).unwrap();
        assert_ne!(used / 2, reclaimable / 2);
        // Largest-first search found the order-9 block; reclaimable may claim
        // the pageblock: every free page moved, and >= half was free.
        assert_eq!(pa.zones[0].lock.lock().steal_count, 1);
        assert_eq!(pa.map.pageblock_migratetype(0), MigrateType::Reclaimable);
        let area_mt = |pa: &PageAllocator<'_, FakeMem>, mt: MigrateType| -> usize {
            pa.zones[0].lock.lock().free_area.iter().enumerate().map(|(o, a)| a.nr_free_mt[mt as usize] << o).sum()
        };
        assert_eq!(area_mt(&pa, MigrateType::Movable), 0);
        assert!(area_mt(&pa, MigrateType::Reclaimable) > 0);
        // A movable request that finds an order-9 reclaimable block may
        // claim it too (can_steal_fallback looks at the block's order).
        let m = pa.alloc_pages(Gfp::GFP_HIGHUSER_MOVABLE, 1, 0).unwrap();
        assert_eq!(pa.zones[0].lock.lock().steal_count, 2);
        assert_eq!(pa.map.pageblock_migratetype(m), MigrateType::Movable);
        assert!(pa.check().is_ok());
    }

    #[test]
    fn small_movable_fallback_takes_smallest_block_without_claiming() {
        let mut pa = node(0, 1024, 1 << 20, &[(0, 1024)]);
        pa.zones[0].watermark = [0; 3];
        let rec = Gfp::GFP_KERNEL | Gfp::__GFP_RECLAIMABLE | Gfp::__GFP_NOWARN;
        let all: Vec<Pfn> = core::iter::from_fn(|| pa.alloc_pages(rec, 0, 0)).collect();
        assert_eq!(all.len(), 1024);
        assert_eq!(pa.map.pageblock_migratetype(0), MigrateType::Reclaimable);
        // Give back two lone pages and one buddy pair (an order-1 block).
        let (a, b) = (all[100], all[300]);
        assert!(a % 2 == 0 && b % 2 == 0);
        for p in [a, b, 600, 601] {
            pa.__free_pages(p, 0, 0);
        }
        pa.drain_all_pages();
        assert_eq!(pa.zones[0].lock.lock().free_area[1].nr_free, 1);
        let steals = pa.zones[0].lock.lock().steal_count;
        let m = pa.alloc_pages(Gfp::GFP_HIGHUSER_MOVABLE, 0, 0).unwrap();
        assert!(m == a || m == b, "took {m}, not one of the lone pages");
        assert_eq!(pa.zones[0].lock.lock().steal_count, steals);
        assert_eq!(pa.map.pageblock_migratetype(m), MigrateType::Reclaimable);
        assert_eq!(pa.zones[0].lock.lock().free_area[1].nr_free, 1, "the order-1 block was not split");
    }

    #[test]
    fn pcp_lists_serve_hot_pages() {
        let pa = node(0, 4096, 1 << 20, &[(0, 4096)]);
        let batch = pa.zones[0].pcp(1).batch;
        let high = pa.zones[0].pcp(1).high;
        let a = pa.alloc_page(Gfp::GFP_KERNEL, 1).unwrap();
        assert_eq!(pa.zones[0].pcp(1).refills, 1);
        assert_eq!(pa.zones[0].pcp(1).count, batch - 1);
        assert_eq!(pa.global_free_pages(), 4096 - batch, "NR_FREE_PAGES leaves the pcp pages out");
        assert_eq!(pa.nr_free_pages(), 4096 - 1);
        pa.__free_pages(a, 0, 1);
        let b = pa.alloc_page(Gfp::GFP_KERNEL, 1).unwrap();
        assert_eq!(a, b, "the page just freed is the hottest");
        assert!(pa.zones[0].pcp(1).hits >= 1);
        assert_eq!(pa.zones[0].pcp(0).count, 0, "other CPUs untouched");
        // Freeing many pages never lets the list pass `high`.
        let pages: Vec<Pfn> = (0..3 * high).filter_map(|_| pa.alloc_page(Gfp::GFP_KERNEL, 1)).collect();
        for p in pages {
            pa.__free_pages(p, 0, 1);
            assert!(pa.zones[0].pcp(1).count < high);
        }
        pa.__free_pages(b, 0, 1);
        pa.drain_all_pages();
        assert_eq!(pa.zones[0].pcp(1).count, 0);
        assert_eq!(pa.check(), Ok(4096));
        assert_eq!(pa.zones[0].lock.lock().free_area[10].nr_free, 4);
    }

    #[test]
    fn compound_pages_and_refcounts() {
        let pa = node(0, 4096, 1 << 20, &[(0, 4096)]);
        let head = pa.alloc_pages(Gfp::GFP_KERNEL | Gfp::__GFP_COMP | Gfp::__GFP_ZERO, 3, 0).unwrap();
        assert_eq!(*pa.mem.zeroed.borrow(), vec![(head, 8)]);
        assert!(pa.map.page(head).is_head());
        for t in head + 1..head + 8 {
            assert!(pa.map.page(t).is_tail());
            assert_eq!(pa.compound_head(t), head);
        }
        assert_eq!(pa.compound_order(head + 5), 3);
        pa.get_page(head + 5);
        assert_eq!(pa.page_count(head + 2), 2);
        pa.put_page(head + 7, 0);
        assert_eq!(pa.page_count(head), 1);
        assert_eq!(pa.nr_free_pages(), 4096 - 8);
        pa.put_page(head + 1, 0);
        assert!(!pa.map.page(head + 1).is_tail());
        assert_eq!(pa.check(), Ok(4096));
    }

    #[test]
    #[should_panic(expected = "double free")]
    fn double_free_is_caught() {
        let pa = node(0, 1024, 1 << 20, &[(0, 1024)]);
        let p = pa.alloc_pages(Gfp::GFP_KERNEL, 2, 0).unwrap();
        pa.__free_pages(p, 2, 0);
        // The block merged back into the free lists: PG_buddy catches it
        // via the flags check, a split block via the refcount check.
        let q = pa.alloc_pages(Gfp::GFP_KERNEL, 3, 0).unwrap();
        pa.__free_pages(q + 4, 0, 0);
    }

    #[test]
    fn buddyinfo_prints_like_proc() {
        let pa = node(0, 1024 + 3, 1024, &[(0, 1024 + 3)]);
        let text = alloc::format!("{}", pa.buddyinfo());
        let expected = "Node 0, zone    DMA32      0      0      0      0      0      0      0      0      0      0      1 \n\
                        Node 0, zone   Normal      1      1      0      0      0      0      0      0      0      0      0 \n";
        assert_eq!(text, expected);
    }

    #[test]
    fn too_large_order_fails() {
        let pa = node(0, 1024, 1 << 20, &[(0, 1024)]);
        assert!(pa.alloc_pages(Gfp::GFP_KERNEL, MAX_ORDER, 0).is_none());
        assert!(pa.alloc_pages(Gfp::GFP_KERNEL | Gfp::__GFP_DMA32, 0, 0).is_some());
    }
}

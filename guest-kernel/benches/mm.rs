//! Host micro-benchmarks of the guest kernel's page allocator and slab layer
//! beside `buddy_system_allocator` used alone and the system allocator
//! (`std::alloc::System`, glibc malloc on Linux).
//!
//! `cargo bench -p guest-kernel --bench mm`; `scripts/bench --host` runs it
//! and turns criterion's estimates into a table (`ci/el2-tools`,
//! `bench::HOST_ROWS`); docs/benchmarks.md says what each row measures.
//! `cargo test` runs every benchmark once (criterion's test mode), with the
//! checks after each one, so none can rot.
//!
//! Every benchmark times one allocation and the free of what it returned,
//! on one thread, with no lock around any allocator. The rows of a group do
//! the same work per iteration; where they cannot, the comment says so.
//!
//! The clock is criterion's wall clock; with `EL2_BENCH_CLOCK=thread` it is
//! the CPU time of the benchmark thread instead, which leaves out the time
//! the thread sat preempted: on a loaded machine wall-clock medians grow
//! and wander with the load, thread CPU time much less.
//!
//! - Page groups: every buddy allocator manages the same 4 MiB: one
//!   naturally aligned block of our largest order (`MAX_ORDER - 1` = 10),
//!   i.e. 1024 frames. In `page_order0` / `page_order3` each allocator first
//!   hands out one block of the measured size and keeps it (the "held"
//!   block), so the measured block is its buddy: taken from the free list
//!   of its own order and put back without merging — the warm path. In the
//!   `_cold` groups nothing is held: each allocation splits the 4 MiB block
//!   down to the measured order and each free coalesces it back (10 or 7
//!   levels), the same depth for all three buddy allocators.
//! - Slab groups (`slab_64`, `slab_512`): one object of the size is held
//!   too, and one alloc/free pair runs first, so each row measures its fast
//!   path: our per-CPU `array_cache`, `Heap`'s free list of that size, the
//!   system allocator's thread cache.
//!
//! Differences that cannot be avoided: our page allocator and `FrameAllocator`
//! hand out frame numbers and keep their lists outside the frames (ours in
//! `struct page`, `FrameAllocator` in `BTreeSet`s whose nodes come from the
//! system allocator), while `Heap` and the system allocator write their
//! links into the free memory itself; the system allocator is not a buddy
//! allocator and manages its own memory, not our arena.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::ptr::NonNull;
use std::time::Duration;

use buddy_system_allocator::{FrameAllocator, Heap};
use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{BenchmarkGroup, Criterion, Throughput};
use guest_kernel::mm::gfp::Gfp;
use guest_kernel::mm::page::{MAX_ORDER, PAGE_SIZE, Page, Pfn, ZoneType, pfn_to_phys, phys_to_pfn};
use guest_kernel::mm::slab::{Kmalloc, KmemCache, PageSource};
use guest_kernel::mm::zone::{NR_CPUS, PageAllocator, PhysMem, ZoneLimits};

/// The CPU every benchmark runs as (per-CPU lists and array caches).
const CPU: usize = 0;
/// What the kernel's own allocations ask for.
const GFP: Gfp = Gfp::GFP_KERNEL;
/// The arena: one block of our largest order.
const ARENA_ORDER: usize = MAX_ORDER - 1;
const ARENA_PAGES: usize = 1 << ARENA_ORDER;
const ARENA_BYTES: usize = PAGE_SIZE << ARENA_ORDER;
/// `buddy_system_allocator`'s ORDER parameter (its default for frames).
const BSA_ORDER: usize = 33;

/// 4 MiB of host memory aligned to 4 MiB: the "physical memory" of our page
/// allocator (frame number = address >> 12, an identity linear map) and of
/// `Heap`.
struct Arena {
    base: NonNull<u8>,
}

impl Arena {
    const LAYOUT: Layout = match Layout::from_size_align(ARENA_BYTES, ARENA_BYTES) {
        Ok(l) => l,
        Err(_) => panic!("arena layout"),
    };

    fn new() -> Arena {
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { std::alloc::alloc(Self::LAYOUT) };
        Arena { base: NonNull::new(p).expect("no memory for the arena") }
    }

    fn addr(&self) -> usize {
        self.base.as_ptr() as usize
    }

    fn first_pfn(&self) -> Pfn {
        phys_to_pfn(self.addr())
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; everything that used
        // the arena is dropped before it (callers declare it first).
        unsafe { std::alloc::dealloc(self.base.as_ptr(), Self::LAYOUT) };
    }
}

/// The benchmarks never ask for zeroed or copied frames (no `__GFP_ZERO`,
/// no copy-on-write), so frame access is never needed.
struct NoFrameAccess;

impl PhysMem for NoFrameAccess {
    fn zero(&self, pfn: Pfn, _count: usize) {
        panic!("benchmark asked to zero pfn {pfn:#x}");
    }
    fn copy_page(&self, dst: Pfn, _src: Pfn) {
        panic!("benchmark asked to copy into pfn {dst:#x}");
    }
}

/// Our page allocator over the arena's frames, everything in ZONE_NORMAL
/// (what `GFP_KERNEL` asks for first), watermarks and per-CPU batches set up
/// as at boot.
fn node<'a>(mem_map: &'a mut Vec<Page>, arena: &Arena) -> PageAllocator<'a, NoFrameAccess> {
    *mem_map = vec![Page::reserved(); ARENA_PAGES];
    let start = arena.first_pfn();
    let mut pa = PageAllocator::free_area_init(mem_map, start, ZoneLimits { dma32_end_pfn: 0 }, NoFrameAccess);
    pa.free_range(start, start + ARENA_PAGES);
    pa.init_per_zone_wmark_min();
    pa
}

/// Linux's `zone_pcp_disable()`: high 0 and batch 1 on every CPU's page set,
/// so each order-0 allocation takes one page from the buddy lists
/// (`rmqueue_bulk` of one) and each free gives it straight back
/// (`free_unref_page` → `free_pcppages_bulk`).
fn zone_pcp_disable(pa: &mut PageAllocator<'_, NoFrameAccess>) {
    pa.drain_all_pages();
    for zone in &pa.zones {
        for cpu in 0..NR_CPUS {
            let mut pcp = zone.pcp(cpu);
            pcp.high = 0;
            pcp.batch = 1;
        }
    }
}

/// One alloc/free pair through our page allocator.
fn ours_pair(pa: &mut PageAllocator<'_, NoFrameAccess>, order: usize) {
    let pfn = pa.alloc_pages(black_box(GFP), black_box(order), CPU).expect("alloc_pages");
    pa.__free_pages(black_box(pfn), order, CPU);
}

/// Our zoned buddy allocator (`zone.rs` `alloc_pages` / `__free_pages`).
/// `pcp`: order-0 through the per-CPU page list, otherwise with the lists
/// disabled.
fn bench_ours_pages<M: Measurement>(g: &mut BenchmarkGroup<'_, M>, id: &str, order: usize, pcp: bool, held: bool) {
    let arena = Arena::new();
    let mut mem_map = Vec::new();
    let mut pa = node(&mut mem_map, &arena);
    if !pcp {
        zone_pcp_disable(&mut pa);
    }
    let keep = held.then(|| pa.alloc_pages(GFP, order, CPU).expect("held block"));
    // Warm up: the first allocation steals the pageblock for unmovable
    // allocations, and the first order-0 one refills the pcp list.
    ours_pair(&mut pa, order);
    let normal = ZoneType::Normal.idx();
    let (hits, refills) = {
        let pcp = pa.zones[normal].pcp(CPU);
        (pcp.hits, pcp.refills)
    };
    g.bench_function(id, |b| b.iter(|| ours_pair(&mut pa, order)));
    let pcp_now = *pa.zones[normal].pcp(CPU);
    if order == 0 && pcp {
        assert_eq!(pcp_now.refills, refills, "{id}: an allocation missed the per-CPU list");
    }
    if order == 0 && !pcp {
        assert_eq!(pcp_now.hits, hits, "{id}: the per-CPU list served an allocation");
    }
    if let Some(pfn) = keep {
        pa.__free_pages(pfn, order, CPU);
    }
    pa.drain_all_pages();
    assert_eq!(pa.zones[normal].lock.lock().free_area[ARENA_ORDER].nr_free, 1, "{id}: leaked or fragmented");
    assert_eq!(pa.check(), Ok(ARENA_PAGES));
}

/// `buddy_system_allocator::Heap` over the arena, alloc + dealloc of `layout`.
fn bench_heap<M: Measurement>(g: &mut BenchmarkGroup<'_, M>, id: &str, layout: Layout, held: bool) {
    let arena = Arena::new();
    let mut heap = Heap::<BSA_ORDER>::empty();
    // SAFETY: the arena is valid, writable and used by nothing else; it
    // outlives the heap (declared first, so dropped last).
    unsafe { heap.init(arena.addr(), ARENA_BYTES) };
    let keep = held.then(|| heap.alloc(layout).expect("held block"));
    let pair = |heap: &mut Heap<BSA_ORDER>| {
        let p = heap.alloc(black_box(layout)).expect("Heap::alloc");
        // SAFETY: `p` was just allocated from this heap with `layout`.
        unsafe { heap.dealloc(black_box(p), layout) };
    };
    pair(&mut heap);
    g.bench_function(id, |b| b.iter(|| pair(&mut heap)));
    if let Some(p) = keep {
        // SAFETY: allocated above from this heap with `layout`, freed once.
        unsafe { heap.dealloc(p, layout) };
    }
    assert_eq!(heap.stats_alloc_actual(), 0, "{id}: leaked");
}

/// `buddy_system_allocator::FrameAllocator` over the arena's frame numbers.
fn bench_frame<M: Measurement>(g: &mut BenchmarkGroup<'_, M>, id: &str, count: usize, held: bool) {
    let arena = Arena::new();
    let mut frames = FrameAllocator::<BSA_ORDER>::new();
    frames.add_frame(arena.first_pfn(), arena.first_pfn() + ARENA_PAGES);
    let keep = held.then(|| frames.alloc(count).expect("held block"));
    let pair = |frames: &mut FrameAllocator<BSA_ORDER>| {
        let f = frames.alloc(black_box(count)).expect("FrameAllocator::alloc");
        frames.dealloc(black_box(f), count);
    };
    pair(&mut frames);
    g.bench_function(id, |b| b.iter(|| pair(&mut frames)));
    if let Some(f) = keep {
        frames.dealloc(f, count);
    }
    assert_eq!(frames.alloc(ARENA_PAGES), Some(arena.first_pfn()), "{id}: leaked or fragmented");
}

/// The system allocator (glibc malloc / posix_memalign on Linux).
fn bench_system<M: Measurement>(g: &mut BenchmarkGroup<'_, M>, id: &str, layout: Layout) {
    // SAFETY: the layout has a non-zero size.
    let keep = unsafe { System.alloc(layout) };
    assert!(!keep.is_null());
    let pair = || {
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { System.alloc(black_box(layout)) };
        assert!(!p.is_null());
        // SAFETY: `p` was just allocated by System with `layout`.
        unsafe { System.dealloc(black_box(p), layout) };
    };
    pair();
    g.bench_function(id, |b| b.iter(pair));
    // SAFETY: allocated above by System with `layout`, freed once.
    unsafe { System.dealloc(keep, layout) };
}

/// The slab layer's pages from our page allocator over the arena, as the
/// kernel's `BuddyPages` (arch/aarch64/memory.rs) takes them through the
/// linear map; here the arena's host addresses are the "physical" ones.
struct ArenaPages<'a> {
    pa: PageAllocator<'a, NoFrameAccess>,
}

// SAFETY: blocks are the page allocator's, inside the arena that outlives
// the benchmark; each is handed out once until freed, `lookup` reports the
// compound head and order and PG_slab as `set_slab` left it.
unsafe impl PageSource for ArenaPages<'_> {
    fn alloc_pages(&mut self, order: usize, gfp: Gfp) -> Option<usize> {
        // As BuddyPages: multi-page blocks are compound so `lookup` finds
        // their head.
        let gfp = if order > 0 { gfp | Gfp::__GFP_COMP } else { gfp };
        self.pa.alloc_pages(gfp, order, CPU).map(pfn_to_phys)
    }
    fn free_pages(&mut self, addr: usize, order: usize) {
        self.pa.__free_pages(phys_to_pfn(addr), order, CPU);
    }
    fn set_slab(&mut self, addr: usize, on: bool) {
        self.pa.set_page_slab(phys_to_pfn(addr), on);
    }
    fn lookup(&self, addr: usize) -> Option<(usize, usize, bool)> {
        let pfn = phys_to_pfn(addr);
        if !self.pa.map.valid(pfn) {
            return None;
        }
        let head = self.pa.compound_head(pfn);
        Some((pfn_to_phys(head), self.pa.compound_order(head), self.pa.map.page(head).is_slab()))
    }
}

/// Our `kmem_cache_alloc` / `kmem_cache_free` (`slab/mod.rs` `KmemCache::alloc`
/// / `free`) for `size`-byte objects, 8-byte aligned, slabs from our page
/// allocator.
fn bench_kmem_cache<M: Measurement>(g: &mut BenchmarkGroup<'_, M>, id: &str, size: usize) {
    let arena = Arena::new();
    let mut mem_map = Vec::new();
    let mut src = ArenaPages { pa: node(&mut mem_map, &arena) };
    let mut cache = KmemCache::create("bench", size, 8, 0, None).expect("kmem_cache_create");
    let keep = cache.alloc(&mut src, CPU, GFP).expect("held object");
    let pair = |cache: &mut KmemCache, src: &mut ArenaPages<'_>| {
        let p = cache.alloc(src, CPU, black_box(GFP)).expect("kmem_cache_alloc");
        cache.free(src, CPU, black_box(p)).expect("kmem_cache_free");
    };
    pair(&mut cache, &mut src);
    let (grown, hits) = (cache.stats.grown, cache.stats.ac_hits);
    g.bench_function(id, |b| b.iter(|| pair(&mut cache, &mut src)));
    assert_eq!(cache.stats.grown, grown, "{id}: the cache grew during the run");
    assert!(cache.stats.ac_hits > hits, "{id}: no allocation hit the per-CPU array");
    cache.free(&mut src, CPU, keep).expect("kmem_cache_free");
    cache.destroy(&mut src).expect("kmem_cache_destroy");
}

/// Our `kmalloc` / `kfree` (`slab/mod.rs` `Kmalloc::kmalloc` / `kfree`): size
/// class lookup, then the class's cache; `kfree` finds the class through
/// the page (`PG_slab`) and the slab header.
fn bench_kmalloc<M: Measurement>(g: &mut BenchmarkGroup<'_, M>, id: &str, size: usize) {
    let arena = Arena::new();
    let mut mem_map = Vec::new();
    let mut src = ArenaPages { pa: node(&mut mem_map, &arena) };
    let mut k = Kmalloc::new();
    let keep = k.kmalloc(&mut src, CPU, size, 8, GFP).expect("held object");
    let pair = |k: &mut Kmalloc, src: &mut ArenaPages<'_>| {
        let p = k.kmalloc(src, CPU, black_box(size), black_box(8), GFP).expect("kmalloc");
        k.kfree(src, CPU, black_box(p)).expect("kfree");
    };
    pair(&mut k, &mut src);
    let grown: u64 = k.caches.iter().map(|c| c.stats.grown).sum();
    g.bench_function(id, |b| b.iter(|| pair(&mut k, &mut src)));
    assert_eq!(k.caches.iter().map(|c| c.stats.grown).sum::<u64>(), grown, "{id}: a cache grew during the run");
    k.kfree(&mut src, CPU, keep).expect("kfree");
    k.shrink(&mut src).expect("shrink");
    src.pa.drain_all_pages();
    assert_eq!(src.pa.check(), Ok(ARENA_PAGES), "{id}: slab pages leaked");
}

fn page_layout(order: usize) -> Layout {
    Layout::from_size_align(PAGE_SIZE << order, PAGE_SIZE).expect("page layout")
}

fn pages<M: Measurement>(c: &mut Criterion<M>) {
    for order in [0, 3] {
        let layout = page_layout(order);
        let mut g = c.benchmark_group(format!("page_order{order}"));
        if order == 0 {
            // Order-0 pages are what the per-CPU lists are for; order 3
            // always goes to the buddy lists (`rmqueue`).
            bench_ours_pages(&mut g, "ours_pcp", 0, true, true);
        }
        bench_ours_pages(&mut g, "ours_buddy", order, false, true);
        bench_heap(&mut g, "bsa_heap", layout, true);
        bench_frame(&mut g, "bsa_frame", 1 << order, true);
        bench_system(&mut g, "system", layout);
        g.finish();

        // The system allocator has no split/coalesce to compare, so it is
        // not in the cold groups.
        let mut g = c.benchmark_group(format!("page_order{order}_cold"));
        bench_ours_pages(&mut g, "ours_buddy", order, false, false);
        bench_heap(&mut g, "bsa_heap", layout, false);
        bench_frame(&mut g, "bsa_frame", 1 << order, false);
        g.finish();
    }
}

fn slabs<M: Measurement>(c: &mut Criterion<M>) {
    for size in [64, 512] {
        let layout = Layout::from_size_align(size, 8).expect("object layout");
        let mut g = c.benchmark_group(format!("slab_{size}"));
        bench_kmem_cache(&mut g, "ours_kmem_cache", size);
        bench_kmalloc(&mut g, "ours_kmalloc", size);
        bench_heap(&mut g, "bsa_heap", layout, true);
        bench_system(&mut g, "system", layout);
        g.finish();
    }
}

/// CPU time of the calling thread (`CLOCK_THREAD_CPUTIME_ID`), in
/// nanoseconds: what the benchmark thread itself spent, without the time
/// it sat preempted while other processes ran.
struct ThreadTime;

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a
    // constant Linux supports.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl Measurement for ThreadTime {
    type Intermediate = u64;
    type Value = u64;
    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns() - start
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &Nanoseconds
    }
}

/// Values in ns, unscaled (the benchmarks are all in the ns range).
struct Nanoseconds;

impl ValueFormatter for Nanoseconds {
    fn scale_values(&self, _typical: f64, _values: &mut [f64]) -> &'static str {
        "ns (thread CPU)"
    }
    fn scale_throughputs(&self, _typical: f64, _t: &Throughput, _values: &mut [f64]) -> &'static str {
        "ns (thread CPU)"
    }
    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

fn run<M: Measurement>(c: Criterion<M>) {
    // Shorter than criterion's 3 s + 5 s: 23 benchmarks on a shared 2-core
    // machine; the command line (`--warm-up-time`, `--measurement-time`)
    // still overrides it.
    let mut c = c.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(2)).configure_from_args();
    pages(&mut c);
    slabs(&mut c);
    c.final_summary();
}

fn main() {
    if std::env::var("EL2_BENCH_CLOCK").as_deref() == Ok("thread") {
        run(Criterion::default().with_measurement(ThreadTime));
    } else {
        run(Criterion::default());
    }
}

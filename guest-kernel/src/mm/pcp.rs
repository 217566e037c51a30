//! Per-CPU page lists (`struct per_cpu_pages`): order-0 pages cached per
//! CPU and per migrate type, so most single-page allocations and frees take
//! no zone lock.
//!
//! LKD ch. 12, "Per-CPU Allocations"; Gorman, "Understanding the Linux
//! Virtual Memory Manager" §6.5 (per-CPU page lists: refilled and drained
//! `batch` pages at a time, drained when they pass `high`);
//! 《Linux内核深度解析》§3.7.4 (每处理器页集合).
//!
//! A list is a plain struct: the zone keeps one per CPU, each behind its own
//! spin lock (Linux 6.1's `pcp->lock`, class `sync::PCP`), and only
//! [`PerCpuPages::rmqueue_bulk`] and [`PerCpuPages::free_pcppages_bulk`]
//! touch the buddy lists, with the zone lock held too. The pages are linked
//! through `Page::prev/next` like the buddy lists; a page on a list carries
//! `PG_PCP` and the migrate type of its list.

use super::buddy::{FreeLists, MemMap, list_push, list_unlink};
use super::page::{MIGRATE_TYPES, MigrateType, NIL, PageFlags, Pfn};

/// One migrate type's list: the head is hot (last freed, first allocated),
/// the tail cold (drained first).
#[derive(Clone, Copy, Debug)]
struct PcpList {
    head: u32,
    tail: u32,
}

impl PcpList {
    const EMPTY: PcpList = PcpList { head: NIL, tail: NIL };

    fn push_head(&mut self, map: &MemMap<'_>, pfn: Pfn) {
        list_push(map, &mut self.head, pfn);
        if self.tail == NIL {
            self.tail = self.head;
        }
    }

    fn push_tail(&mut self, map: &MemMap<'_>, pfn: Pfn) {
        if self.tail == NIL {
            self.push_head(map, pfn);
            return;
        }
        let idx = map.idx(pfn);
        map.pages[idx as usize].set_prev(self.tail);
        map.pages[idx as usize].set_next(NIL);
        map.pages[self.tail as usize].set_next(idx);
        self.tail = idx;
    }

    fn remove(&mut self, map: &MemMap<'_>, idx: u32) -> Pfn {
        let pfn = map.pfn(idx);
        if self.tail == idx {
            self.tail = map.pages[idx as usize].prev();
        }
        list_unlink(map, &mut self.head, pfn);
        pfn
    }

    fn pop_head(&mut self, map: &MemMap<'_>) -> Option<Pfn> {
        (self.head != NIL).then(|| self.remove(map, self.head))
    }

    fn pop_tail(&mut self, map: &MemMap<'_>) -> Option<Pfn> {
        (self.tail != NIL).then(|| self.remove(map, self.tail))
    }
}

/// `struct per_cpu_pages`: one CPU's cache of order-0 pages of one zone.
#[derive(Clone, Copy, Debug)]
pub struct PerCpuPages {
    /// Pages on all lists.
    pub count: usize,
    /// Free back to the buddy allocator when `count` reaches this.
    pub high: usize,
    /// How many pages move between the lists and the buddy allocator at once.
    pub batch: usize,
    lists: [PcpList; MIGRATE_TYPES],
    /// Allocations served from the lists without a refill.
    pub hits: u64,
    /// Refills from the buddy allocator (`rmqueue_bulk`).
    pub refills: u64,
    /// Batches given back to the buddy allocator (`free_pcppages_bulk`).
    pub drains: u64,
}

impl PerCpuPages {
    /// Empty lists, `batch` 1, `high` 0 (until `setup_pcp`).
    pub const EMPTY: PerCpuPages = PerCpuPages {
        count: 0,
        high: 0,
        batch: 1,
        lists: [PcpList::EMPTY; MIGRATE_TYPES],
        hits: 0,
        refills: 0,
        drains: 0,
    };

    /// Whether the list of `mt` is empty.
    pub fn list_empty(&self, mt: MigrateType) -> bool {
        self.lists[mt as usize].head == NIL
    }

    /// `rmqueue_bulk()`: move up to `batch` order-0 pages of `mt` from the
    /// buddy lists (zone lock held: `free`) to the tail of the `mt` list,
    /// in the order the buddy allocator hands them out (physical order
    /// after a split). Returns how many moved; the caller takes them off
    /// the zone's free count.
    pub fn rmqueue_bulk(&mut self, map: &MemMap<'_>, free: &mut FreeLists, mt: MigrateType) -> usize {
        let mut got = 0;
        while got < self.batch {
            let Some(pfn) = free.__rmqueue(map, 0, mt) else {
                break;
            };
            let page = map.page(pfn);
            page.set_flags(PageFlags::PG_PCP);
            page.set_free_mt(mt);
            self.lists[mt as usize].push_tail(map, pfn);
            got += 1;
        }
        self.count += got;
        self.refills += 1;
        got
    }

    /// Take the hottest page of `mt` (the head of its list).
    pub fn pop(&mut self, map: &MemMap<'_>, mt: MigrateType) -> Option<Pfn> {
        let pfn = self.lists[mt as usize].pop_head(map)?;
        self.count -= 1;
        map.page(pfn).clear_flags(PageFlags::PG_PCP);
        Some(pfn)
    }

    /// `free_unref_page_commit()`'s list half: put a freed page at the head
    /// of the `mt` list. Returns whether the lists reached `high` (the
    /// caller then gives `batch` pages back with the zone lock).
    pub fn push(&mut self, map: &MemMap<'_>, pfn: Pfn, mt: MigrateType) -> bool {
        let page = map.page(pfn);
        page.set_flags(PageFlags::PG_PCP);
        page.set_free_mt(mt);
        self.lists[mt as usize].push_head(map, pfn);
        self.count += 1;
        self.count >= self.high
    }

    /// `free_pcppages_bulk()`: give `count` pages back to the buddy lists
    /// (zone lock held: `free`), from the cold tails of the lists, round
    /// robin over the migrate types. A page goes to its pageblock's current
    /// type. Returns how many moved; the caller adds them to the zone's free
    /// count.
    pub fn free_pcppages_bulk(&mut self, map: &MemMap<'_>, free: &mut FreeLists, count: usize) -> usize {
        let todo = count.min(self.count);
        let mut left = todo;
        let mut mt = 0;
        while left > 0 {
            if let Some(pfn) = self.lists[mt].pop_tail(map) {
                self.count -= 1;
                left -= 1;
                map.page(pfn).clear_flags(PageFlags::PG_PCP);
                let block_mt = map.pageblock_migratetype(pfn);
                free.__free_one_page(map, pfn, 0, block_mt);
            }
            mt = (mt + 1) % MIGRATE_TYPES;
        }
        if todo > 0 {
            self.drains += 1;
        }
        todo
    }

    /// Walk the lists: every page carries `PG_PCP` and its list's type, the
    /// links agree, and `count` is their sum (debug aid for tests).
    pub fn check(&self, map: &MemMap<'_>) -> Result<usize, &'static str> {
        let mut total = 0;
        for mt in MigrateType::ALL {
            let list = &self.lists[mt as usize];
            let (mut prev, mut i) = (NIL, list.head);
            while i != NIL {
                let p = &map.pages[i as usize];
                if !p.flags().has(PageFlags::PG_PCP) || p.is_buddy() || p.free_mt() != mt {
                    return Err("pcp page with wrong flags or type");
                }
                if p.prev() != prev {
                    return Err("broken pcp prev link");
                }
                total += 1;
                prev = i;
                i = p.next();
            }
            if prev != list.tail {
                return Err("pcp tail is not the last page");
            }
        }
        if total != self.count {
            return Err("pcp count does not match the lists");
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mm::page::{MAX_ORDER, Page};
    use crate::mm::zone::tests::XorShift;
    use alloc::boxed::Box;
    use alloc::collections::VecDeque;
    use alloc::vec;
    use alloc::vec::Vec;

    /// One zone's buddy lists over `pages` frames from pfn 0, all free and
    /// movable.
    fn zone(pages: usize) -> (MemMap<'static>, FreeLists) {
        let map: &'static [Page] = Box::leak(vec![Page::reserved(); pages].into_boxed_slice());
        let map = MemMap { pages: map, start_pfn: 0 };
        let mut free = FreeLists::new(0, pages);
        for pfn in (0..pages).step_by(1 << (MAX_ORDER - 1)) {
            for p in pfn..pfn + (1 << (MAX_ORDER - 1)) {
                map.page(p).clear_flags(PageFlags::PG_RESERVED);
                map.page(p).set_count(0);
            }
            free.__free_one_page(&map, pfn, MAX_ORDER - 1, MigrateType::Movable);
        }
        (map, free)
    }

    fn pcp(batch: usize) -> PerCpuPages {
        PerCpuPages { batch, high: 6 * batch, ..PerCpuPages::EMPTY }
    }

    #[test]
    fn refill_takes_a_batch_in_physical_order() {
        let (map, mut free) = zone(1024);
        let mut pcp = pcp(7);
        assert_eq!(pcp.rmqueue_bulk(&map, &mut free, MigrateType::Movable), 7);
        assert_eq!((pcp.count, pcp.refills), (7, 1));
        assert_eq!(free.check_free_lists(&map), Ok(1024 - 7));
        assert_eq!(pcp.check(&map), Ok(7));
        let got: Vec<Pfn> = (0..7).map(|_| pcp.pop(&map, MigrateType::Movable).unwrap()).collect();
        assert_eq!(got, [0, 1, 2, 3, 4, 5, 6], "the head is the first page the buddy lists gave");
        assert!(got.iter().all(|&p| !map.page(p).flags().has(PageFlags::PG_PCP)));
        assert!(pcp.pop(&map, MigrateType::Movable).is_none() && pcp.count == 0);
        assert!(pcp.list_empty(MigrateType::Movable));
    }

    #[test]
    fn refill_stops_when_the_buddy_lists_run_dry() {
        let (map, mut free) = zone(1024);
        let mut pcp = pcp(1000);
        assert_eq!(pcp.rmqueue_bulk(&map, &mut free, MigrateType::Movable), 1000);
        assert_eq!(pcp.rmqueue_bulk(&map, &mut free, MigrateType::Movable), 24);
        assert_eq!(pcp.rmqueue_bulk(&map, &mut free, MigrateType::Movable), 0);
        assert_eq!((pcp.count, pcp.refills), (1024, 3));
        assert_eq!(free.check_free_lists(&map), Ok(0));
    }

    #[test]
    fn free_goes_to_the_hot_end_and_drains_cold_pages_past_high() {
        let (map, mut free) = zone(1024);
        let mut pcp = pcp(3);
        let mut pages = Vec::new();
        while pages.len() < 20 {
            pcp.rmqueue_bulk(&map, &mut free, MigrateType::Movable);
            while let Some(p) = pcp.pop(&map, MigrateType::Movable) {
                pages.push(p);
            }
        }
        let high = pcp.high;
        for (i, &p) in pages.iter().enumerate().take(high - 1) {
            assert!(!pcp.push(&map, p, MigrateType::Movable), "below high after {} frees", i + 1);
        }
        assert!(pcp.push(&map, pages[high - 1], MigrateType::Movable), "reached high");
        assert_eq!(pcp.free_pcppages_bulk(&map, &mut free, pcp.batch), 3);
        assert_eq!((pcp.count, pcp.drains), (high - 3, 1));
        // The three freed first (the cold tail) went back.
        for &p in &pages[..3] {
            assert!(!map.page(p).flags().has(PageFlags::PG_PCP));
        }
        assert_eq!(pcp.pop(&map, MigrateType::Movable), Some(pages[high - 1]), "last freed is hottest");
        assert_eq!(pcp.check(&map), Ok(high - 4));
    }

    #[test]
    fn drain_all_empties_every_list_round_robin() {
        let (map, mut free) = zone(2048);
        let mut pcp = pcp(5);
        for mt in MigrateType::ALL {
            pcp.rmqueue_bulk(&map, &mut free, mt);
        }
        assert_eq!(pcp.count, 15);
        assert!(MigrateType::ALL.iter().all(|&mt| !pcp.list_empty(mt)));
        assert_eq!(pcp.free_pcppages_bulk(&map, &mut free, usize::MAX), 15);
        assert_eq!(pcp.count, 0);
        assert!(MigrateType::ALL.iter().all(|&mt| pcp.list_empty(mt)));
        assert_eq!(free.check_free_lists(&map), Ok(2048));
        assert_eq!(free.free_area[MAX_ORDER - 1].nr_free, 2, "everything coalesced again");
        assert_eq!(pcp.free_pcppages_bulk(&map, &mut free, 4), 0);
        assert_eq!(pcp.drains, 1, "an empty drain is not counted");
    }

    #[test]
    fn random_traffic_matches_a_model() {
        // The model: per type a deque, hot end at the front.
        let (map, mut free) = zone(4096);
        let mut pcp = pcp(15);
        let mut model: [VecDeque<Pfn>; MIGRATE_TYPES] = Default::default();
        let mut held: Vec<(Pfn, MigrateType)> = Vec::new();
        let mut buddy_free = 4096;
        let mut rng = XorShift(0x5eed_0f0c_0de5);
        for step in 0..20_000 {
            let mt = MigrateType::ALL[rng.below(MIGRATE_TYPES as u64) as usize];
            match rng.below(3) {
                0 | 1 if !held.is_empty() && rng.below(2) == 0 => {
                    let (pfn, mt) = held.swap_remove(rng.below(held.len() as u64) as usize);
                    model[mt as usize].push_front(pfn);
                    if pcp.push(&map, pfn, mt) {
                        let n = pcp.free_pcppages_bulk(&map, &mut free, pcp.batch);
                        assert_eq!(n, pcp.batch);
                        buddy_free += n;
                        // Round robin over the types' cold ends, skipping empty lists.
                        let (mut left, mut t) = (n, 0);
                        while left > 0 {
                            if model[t].pop_back().is_some() {
                                left -= 1;
                            }
                            t = (t + 1) % MIGRATE_TYPES;
                        }
                    }
                }
                _ => {
                    if pcp.list_empty(mt) {
                        let n = pcp.rmqueue_bulk(&map, &mut free, mt);
                        buddy_free -= n;
                        if n == 0 {
                            continue;
                        }
                        // The refill went to the tail: rebuild the model's list from the pcp's.
                        model[mt as usize].clear();
                        let mut i = pcp.lists[mt as usize].head;
                        while i != NIL {
                            model[mt as usize].push_back(map.pfn(i));
                            i = map.pages[i as usize].next();
                        }
                    }
                    let pfn = pcp.pop(&map, mt).unwrap();
                    assert_eq!(Some(pfn), model[mt as usize].pop_front(), "step {step}: not the hottest page");
                    held.push((pfn, mt));
                }
            }
            let modelled: usize = model.iter().map(VecDeque::len).sum();
            assert_eq!(pcp.count, modelled, "step {step}");
            assert!(pcp.count < pcp.high);
            if step % 1000 == 0 {
                assert_eq!(pcp.check(&map), Ok(modelled));
                assert_eq!(free.check_free_lists(&map), Ok(buddy_free));
                assert_eq!(buddy_free + pcp.count + held.len(), 4096);
            }
        }
        buddy_free += pcp.free_pcppages_bulk(&map, &mut free, usize::MAX);
        for (pfn, _) in held.drain(..) {
            free.__free_one_page(&map, pfn, 0, map.pageblock_migratetype(pfn));
            buddy_free += 1;
        }
        assert_eq!(free.check_free_lists(&map), Ok(4096));
        assert_eq!(buddy_free, 4096);
    }
}

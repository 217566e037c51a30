//! The buddy allocator core of one zone: free lists per order and per migrate
//! type, splitting (`expand`), coalescing (`__free_one_page`) and stealing from
//! other migrate types (`__rmqueue_fallback`).
//!
//! LKD ch. 12, "Getting Pages"; 《Linux内核深度解析》§3.7.1 (basic buddy
//! allocator: two order-n blocks are buddies when they are adjacent and the
//! first page number of the pair is a multiple of 2^(n+1)), §3.7.3 (grouping
//! by mobility) and §3.7.5 (allocating pages).

use super::page::{
    MAX_ORDER, MIGRATE_TYPES, MigrateType, NIL, PAGEBLOCK_NR_PAGES, PAGEBLOCK_ORDER, Page, PageFlags, Pfn,
};

/// The node's page descriptor array and the frame number of its first entry
/// (`pglist_data.node_mem_map` / `node_start_pfn`).
pub struct MemMap<'a> {
    /// One descriptor per frame in `start_pfn..start_pfn + pages.len()`.
    pub pages: &'a [Page],
    /// The frame described by `pages[0]`.
    pub start_pfn: Pfn,
}

impl MemMap<'_> {
    /// One past the last described frame.
    pub fn end_pfn(&self) -> Pfn {
        self.start_pfn + self.pages.len()
    }

    /// Whether `pfn` has a descriptor (`pfn_valid`).
    pub fn valid(&self, pfn: Pfn) -> bool {
        pfn >= self.start_pfn && pfn < self.end_pfn()
    }

    pub(crate) fn idx(&self, pfn: Pfn) -> u32 {
        (pfn - self.start_pfn) as u32
    }

    pub(crate) fn pfn(&self, idx: u32) -> Pfn {
        self.start_pfn + idx as usize
    }

    /// `pfn_to_page()`.
    pub fn page(&self, pfn: Pfn) -> &Page {
        &self.pages[pfn - self.start_pfn]
    }

    /// `get_pageblock_migratetype()`.
    pub fn pageblock_migratetype(&self, pfn: Pfn) -> MigrateType {
        self.page(pageblock_start(pfn).max(self.start_pfn)).mt()
    }

    /// `set_pageblock_migratetype()`.
    pub fn set_pageblock_migratetype(&self, pfn: Pfn, mt: MigrateType) {
        let first = pageblock_start(pfn).max(self.start_pfn);
        self.page(first).set_mt(mt);
    }
}

/// First frame of the pageblock holding `pfn`.
pub const fn pageblock_start(pfn: Pfn) -> Pfn {
    pfn & !(PAGEBLOCK_NR_PAGES - 1)
}

/// `__find_buddy_pfn()`: the buddy of the order-`order` block at `pfn`.
pub const fn find_buddy_pfn(pfn: Pfn, order: usize) -> Pfn {
    pfn ^ (1 << order)
}

/// `struct free_area`: one list per migrate type and the number of blocks on
/// all of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FreeArea {
    heads: [u32; MIGRATE_TYPES],
    /// Free blocks of this order, over all migrate types.
    pub nr_free: usize,
    /// Free blocks of this order per migrate type (/proc/pagetypeinfo).
    pub nr_free_mt: [usize; MIGRATE_TYPES],
}

impl FreeArea {
    /// An empty free area.
    pub const EMPTY: FreeArea = FreeArea { heads: [NIL; MIGRATE_TYPES], nr_free: 0, nr_free_mt: [0; MIGRATE_TYPES] };

    /// Whether the list of `mt` is empty.
    pub fn list_empty(&self, mt: MigrateType) -> bool {
        self.heads[mt as usize] == NIL
    }
}

/// Push `pfn` at the head of a list threaded through `Page::prev/next`.
pub(crate) fn list_push(map: &MemMap<'_>, head: &mut u32, pfn: Pfn) {
    let idx = map.idx(pfn);
    let old = *head;
    let p = &map.pages[idx as usize];
    p.set_prev(NIL);
    p.set_next(old);
    if old != NIL {
        map.pages[old as usize].set_prev(idx);
    }
    *head = idx;
}

/// Unlink `pfn` from the list whose head is `head`.
pub(crate) fn list_unlink(map: &MemMap<'_>, head: &mut u32, pfn: Pfn) {
    let idx = map.idx(pfn) as usize;
    let (prev, next) = (map.pages[idx].prev(), map.pages[idx].next());
    if prev == NIL {
        debug_assert_eq!(*head, idx as u32, "unlinking a page that is not on this list");
        *head = next;
    } else {
        map.pages[prev as usize].set_next(next);
    }
    if next != NIL {
        map.pages[next as usize].set_prev(prev);
    }
    map.pages[idx].set_prev(NIL);
    map.pages[idx].set_next(NIL);
}

/// The part of a zone that the zone lock guards (`zone->lock`): the free
/// lists of every order and migrate type, and the zone's span for the
/// buddy checks.
#[derive(Debug)]
pub struct FreeLists {
    /// First frame of the zone.
    pub zone_start_pfn: Pfn,
    /// Frames from the first to the last, holes included.
    pub spanned_pages: usize,
    /// `free_area[order]`.
    pub free_area: [FreeArea; MAX_ORDER],
    /// Times `steal_suitable_fallback` claimed a pageblock's free pages.
    pub steal_count: usize,
}

impl FreeLists {
    /// Empty lists for a zone spanning `[start, start + spanned)`.
    pub const fn new(start: Pfn, spanned: usize) -> FreeLists {
        FreeLists {
            zone_start_pfn: start,
            spanned_pages: spanned,
            free_area: [FreeArea::EMPTY; MAX_ORDER],
            steal_count: 0,
        }
    }

    /// Whether `pfn` lies in this zone's span.
    pub fn zone_spans_pfn(&self, pfn: Pfn) -> bool {
        pfn >= self.zone_start_pfn && pfn < self.zone_start_pfn + self.spanned_pages
    }

    /// `add_to_free_list()`: make `pfn` a free block head of `order` on `mt`.
    pub(crate) fn add_to_free_list(&mut self, map: &MemMap<'_>, pfn: Pfn, order: usize, mt: MigrateType) {
        let p = map.page(pfn);
        p.set_flags(PageFlags::PG_BUDDY);
        p.set_order(order);
        p.set_free_mt(mt);
        p.set_count(0);
        let area = &mut self.free_area[order];
        list_push(map, &mut area.heads[mt as usize], pfn);
        area.nr_free += 1;
        area.nr_free_mt[mt as usize] += 1;
    }

    /// `del_page_from_free_list()`.
    pub(crate) fn del_page_from_free_list(&mut self, map: &MemMap<'_>, pfn: Pfn, order: usize) {
        let mt = map.page(pfn).free_mt();
        let area = &mut self.free_area[order];
        list_unlink(map, &mut area.heads[mt as usize], pfn);
        area.nr_free -= 1;
        area.nr_free_mt[mt as usize] -= 1;
        map.page(pfn).clear_flags(PageFlags::PG_BUDDY);
    }

    /// `move_to_free_list()`: move a free block to another migrate type's list.
    fn move_to_free_list(&mut self, map: &MemMap<'_>, pfn: Pfn, order: usize, mt: MigrateType) {
        self.del_page_from_free_list(map, pfn, order);
        self.add_to_free_list(map, pfn, order, mt);
    }

    /// `__free_one_page()`: free an order-`order` block and merge it with its
    /// buddy as long as the buddy is free and of the same order.
    pub(crate) fn __free_one_page(&mut self, map: &MemMap<'_>, mut pfn: Pfn, mut order: usize, mt: MigrateType) {
        debug_assert!(pfn & ((1 << order) - 1) == 0, "misaligned free of pfn {pfn:#x}");
        while order < MAX_ORDER - 1 {
            let buddy = find_buddy_pfn(pfn, order);
            if !self.zone_spans_pfn(buddy) || !map.valid(buddy) {
                break;
            }
            let b = map.page(buddy);
            if !b.is_buddy() || b.order() != order {
                break;
            }
            self.del_page_from_free_list(map, buddy, order);
            pfn &= buddy;
            order += 1;
        }
        self.add_to_free_list(map, pfn, order, mt);
    }

    /// `expand()`: split the order-`high` block at `pfn` down to `low`,
    /// giving the upper halves back to the `mt` free lists.
    fn expand(&mut self, map: &MemMap<'_>, pfn: Pfn, low: usize, mut high: usize, mt: MigrateType) {
        while high > low {
            high -= 1;
            self.add_to_free_list(map, pfn + (1 << high), high, mt);
        }
    }

    /// `__rmqueue_smallest()`: the smallest free block of at least `order` on
    /// the `mt` lists, split down to `order`.
    pub(crate) fn __rmqueue_smallest(&mut self, map: &MemMap<'_>, order: usize, mt: MigrateType) -> Option<Pfn> {
        for current in order..MAX_ORDER {
            let head = self.free_area[current].heads[mt as usize];
            if head == NIL {
                continue;
            }
            let pfn = map.pfn(head);
            self.del_page_from_free_list(map, pfn, current);
            self.expand(map, pfn, order, current, mt);
            return Some(pfn);
        }
        None
    }

    /// `can_steal_fallback()`: may a `start_mt` allocation of `order` take the
    /// whole pageblock it steals from? Large blocks, and unmovable/reclaimable
    /// allocations (which fragment most), may.
    fn can_steal_fallback(order: usize, start_mt: MigrateType) -> bool {
        order >= PAGEBLOCK_ORDER / 2 || start_mt == MigrateType::Reclaimable || start_mt == MigrateType::Unmovable
    }

    /// `find_suitable_fallback()`: the first fallback type with a free block of
    /// exactly `order`, and whether the whole pageblock may be stolen.
    fn find_suitable_fallback(&self, order: usize, start_mt: MigrateType) -> Option<(MigrateType, bool)> {
        if self.free_area[order].nr_free == 0 {
            return None;
        }
        start_mt
            .fallbacks()
            .into_iter()
            .find(|&mt| !self.free_area[order].list_empty(mt))
            .map(|mt| (mt, Self::can_steal_fallback(order, start_mt)))
    }

    /// `move_freepages_block()`: move every free block of the pageblock that
    /// holds `pfn` to the `mt` lists; returns the number of free pages moved.
    fn move_freepages_block(&mut self, map: &MemMap<'_>, pfn: Pfn, mt: MigrateType) -> usize {
        let start = pageblock_start(pfn).max(self.zone_start_pfn);
        let end = (pageblock_start(pfn) + PAGEBLOCK_NR_PAGES).min(self.zone_start_pfn + self.spanned_pages);
        let mut moved = 0;
        let mut p = start;
        while p < end {
            let page = map.page(p);
            if page.is_buddy() {
                let order = page.order();
                self.move_to_free_list(map, p, order, mt);
                moved += 1 << order;
                p += 1 << order;
            } else {
                p += 1;
            }
        }
        moved
    }

    /// `steal_suitable_fallback()`: take the free block at `pfn` (order
    /// `order`, on a fallback list) for `start_mt`. If allowed, claim the free
    /// pages of its whole pageblock too, and the pageblock itself when at least
    /// half of it was free.
    fn steal_suitable_fallback(
        &mut self,
        map: &MemMap<'_>,
        pfn: Pfn,
        order: usize,
        start_mt: MigrateType,
        whole_block: bool,
    ) {
        if order >= PAGEBLOCK_ORDER {
            // The block covers its pageblock: change the type outright.
            map.set_pageblock_migratetype(pfn, start_mt);
            self.move_to_free_list(map, pfn, order, start_mt);
            return;
        }
        if !whole_block {
            self.move_to_free_list(map, pfn, order, start_mt);
            return;
        }
        let free_pages = self.move_freepages_block(map, pfn, start_mt);
        if free_pages >= PAGEBLOCK_NR_PAGES / 2 {
            map.set_pageblock_migratetype(pfn, start_mt);
        }
        self.steal_count += 1;
    }

    /// `__rmqueue_fallback()`: steal from another migrate type. Searches from
    /// the largest order down so that one big steal serves many later
    /// allocations (fewer mixed pageblocks); a movable allocation that may not
    /// claim the block takes the smallest suitable block instead.
    fn __rmqueue_fallback(&mut self, map: &MemMap<'_>, order: usize, start_mt: MigrateType) -> bool {
        let mut found = None;
        for current in (order..MAX_ORDER).rev() {
            let Some((fallback_mt, can_steal)) = self.find_suitable_fallback(current, start_mt) else {
                continue;
            };
            if !can_steal && start_mt == MigrateType::Movable && current > order {
                // find_smallest:
                for smallest in order..MAX_ORDER {
                    if let Some((mt, steal)) = self.find_suitable_fallback(smallest, start_mt) {
                        found = Some((smallest, mt, steal));
                        break;
                    }
                }
            } else {
                found = Some((current, fallback_mt, can_steal));
            }
            break;
        }
        let Some((current, fallback_mt, can_steal)) = found else {
            return false;
        };
        let pfn = map.pfn(self.free_area[current].heads[fallback_mt as usize]);
        self.steal_suitable_fallback(map, pfn, current, start_mt, can_steal);
        true
    }

    /// `__rmqueue()`: take a block of `order` for `mt`, stealing if needed.
    pub(crate) fn __rmqueue(&mut self, map: &MemMap<'_>, order: usize, mt: MigrateType) -> Option<Pfn> {
        loop {
            if let Some(pfn) = self.__rmqueue_smallest(map, order, mt) {
                return Some(pfn);
            }
            if !self.__rmqueue_fallback(map, order, mt) {
                return None;
            }
        }
    }

    /// Walk the free lists and check their links and counts (debug aid for
    /// tests; `O(free blocks)`).
    pub fn check_free_lists(&self, map: &MemMap<'_>) -> Result<usize, &'static str> {
        let mut pages = 0;
        for (order, area) in self.free_area.iter().enumerate() {
            let mut total = 0;
            for mt in MigrateType::ALL {
                let mut n = 0;
                let mut prev = NIL;
                let mut i = area.heads[mt as usize];
                while i != NIL {
                    let p = &map.pages[i as usize];
                    if !p.is_buddy() || p.order() != order || p.free_mt() != mt {
                        return Err("free-list page with wrong buddy flag, order or type");
                    }
                    if p.prev() != prev {
                        return Err("broken prev link");
                    }
                    if map.pfn(i) & ((1 << order) - 1) != 0 {
                        return Err("misaligned free block");
                    }
                    n += 1;
                    prev = i;
                    i = p.next();
                }
                if n != area.nr_free_mt[mt as usize] {
                    return Err("nr_free_mt does not match the list");
                }
                total += n;
                pages += n << order;
            }
            if total != area.nr_free {
                return Err("nr_free does not match the lists");
            }
        }
        Ok(pages)
    }
}

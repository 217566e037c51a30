//! The completely fair scheduler (CFS): the per-CPU `cfs_rq` with its
//! red-black timeline, and CFS bandwidth control.
//!
//! LKD ch. 4, "The Linux Scheduling Implementation": vruntime accounting in
//! `update_curr`, the red-black tree keyed by vruntime with the leftmost node
//! cached, and process selection of the smallest vruntime.
//! 《Linux内核深度解析》§2.8.3: vruntime = runtime × NICE_0_LOAD / weight;
//! slice = period × weight / total weight; period = 6 ms, or nr × 0.75 ms past
//! eight tasks. §2.8.7: wakeup preemption with a 1 ms wakeup granularity.
//! §2.8.8: bandwidth control of a group by quota and period.

use alloc::boxed::Box;
use alloc::vec::Vec;
use intrusive_collections::{KeyAdapter, RBTree, RBTreeLink, intrusive_adapter};

use super::{NSEC_PER_MSEC, TaskId};

/// Weight of a nice-0 task (`NICE_0_LOAD` without the 64-bit fixed-point scale).
pub const NICE_0_LOAD: u64 = 1024;

/// `sched_prio_to_weight` (kernel/sched/core.c): each nice step is about 10 %
/// of CPU, so neighbouring weights differ by a factor of about 1.25.
pub const SCHED_PRIO_TO_WEIGHT: [u32; 40] = [
    /* -20 */ 88761, 71755, 56483, 46273, 36291, //
    /* -15 */ 29154, 23254, 18705, 14949, 11916, //
    /* -10 */ 9548, 7620, 6100, 4904, 3906, //
    /*  -5 */ 3121, 2501, 1991, 1586, 1277, //
    /*   0 */ 1024, 820, 655, 526, 423, //
    /*   5 */ 335, 272, 215, 172, 137, //
    /*  10 */ 110, 87, 70, 56, 45, //
    /*  15 */ 36, 29, 23, 18, 15, //
];

/// `sched_prio_to_wmult`: 2^32 / weight, so that divisions become multiplies.
pub const SCHED_PRIO_TO_WMULT: [u32; 40] = [
    /* -20 */ 48388, 59856, 76040, 92818, 118348, //
    /* -15 */ 147320, 184698, 229616, 287308, 360437, //
    /* -10 */ 449829, 563644, 704093, 875809, 1099582, //
    /*  -5 */ 1376151, 1717300, 2157191, 2708050, 3363326, //
    /*   0 */ 4194304, 5237765, 6557202, 8165337, 10153587, //
    /*   5 */ 12820798, 15790321, 19976592, 24970740, 31350126, //
    /*  10 */ 39045157, 49367440, 61356676, 76695844, 95443717, //
    /*  15 */ 119304647, 148102320, 186737708, 238609294, 286331153, //
];

/// `sysctl_sched_latency`: the scheduling period while few tasks run.
pub const SCHED_LATENCY: u64 = 6 * NSEC_PER_MSEC;
/// `sysctl_sched_min_granularity`: 0.75 ms, the least a task runs once picked.
pub const SCHED_MIN_GRANULARITY: u64 = 750_000;
/// `sysctl_sched_wakeup_granularity`: 1 ms of wall time before a wakee may preempt.
pub const SCHED_WAKEUP_GRANULARITY: u64 = NSEC_PER_MSEC;
/// `sched_nr_latency` = latency / min granularity = 8.
pub const SCHED_NR_LATENCY: u64 = SCHED_LATENCY / SCHED_MIN_GRANULARITY;

const WMULT_SHIFT: u32 = 32;
const WMULT_CONST: u64 = u32::MAX as u64;

/// `struct load_weight`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadWeight {
    pub weight: u64,
    pub inv_weight: u64,
}

impl LoadWeight {
    /// `set_load_weight`: the weight of a nice value.
    pub fn from_nice(nice: i32) -> Self {
        let idx = (nice.clamp(-20, 19) + 20) as usize;
        LoadWeight { weight: u64::from(SCHED_PRIO_TO_WEIGHT[idx]), inv_weight: u64::from(SCHED_PRIO_TO_WMULT[idx]) }
    }

    /// A weight with its inverse computed like `__update_inv_weight`.
    pub fn new(weight: u64) -> Self {
        let w = weight.max(1);
        LoadWeight { weight, inv_weight: if w >= WMULT_CONST { 1 } else { WMULT_CONST / w } }
    }
}

/// `__calc_delta`: delta × weight / lw.weight, done as a multiply by the
/// inverse weight and a 32-bit shift (the u128 product cannot overflow).
pub fn calc_delta(delta: u64, weight: u64, lw: &LoadWeight) -> u64 {
    let inv = if lw.inv_weight == 0 { LoadWeight::new(lw.weight).inv_weight } else { lw.inv_weight };
    ((u128::from(delta) * u128::from(weight) * u128::from(inv)) >> WMULT_SHIFT) as u64
}

/// `calc_delta_fair`: wall time into virtual time for an entity of weight `lw`.
pub fn calc_delta_fair(delta: u64, lw: &LoadWeight) -> u64 {
    if lw.weight != NICE_0_LOAD { calc_delta(delta, NICE_0_LOAD, lw) } else { delta }
}

/// `__sched_period`: long enough that every runnable task runs once.
pub fn sched_period(nr_running: u64) -> u64 {
    if nr_running > SCHED_NR_LATENCY { nr_running * SCHED_MIN_GRANULARITY } else { SCHED_LATENCY }
}

/// Wrap-safe vruntime comparison (`entity_before` uses `(s64)(a - b) < 0`).
fn vruntime_before(a: u64, b: u64) -> bool {
    (a.wrapping_sub(b) as i64) < 0
}

/// `max_vruntime`.
pub fn max_vruntime(a: u64, b: u64) -> u64 {
    if vruntime_before(a, b) { b } else { a }
}

/// `min_vruntime`.
pub fn min_vruntime(a: u64, b: u64) -> u64 {
    if vruntime_before(a, b) { a } else { b }
}

/// `struct sched_entity`, the part of a task that CFS accounts.
#[derive(Clone, Debug)]
pub struct SchedEntity {
    pub load: LoadWeight,
    pub vruntime: u64,
    pub exec_start: u64,
    pub sum_exec_runtime: u64,
    pub prev_sum_exec_runtime: u64,
    /// On this CPU's `cfs_rq` (in the tree, or as its `curr`).
    pub on_rq: bool,
    /// The CFS bandwidth group the task belongs to, if any.
    pub group: Option<usize>,
}

impl SchedEntity {
    pub fn new(nice: i32) -> Self {
        SchedEntity {
            load: LoadWeight::from_nice(nice),
            vruntime: 0,
            exec_start: 0,
            sum_exec_runtime: 0,
            prev_sum_exec_runtime: 0,
            on_rq: false,
            group: None,
        }
    }
}

/// A node of the timeline. The tree owns the node; the key is the entity's
/// vruntime at insertion, with the task id to break ties.
struct TimelineNode {
    link: RBTreeLink,
    key: (u64, TaskId),
}

intrusive_adapter!(TimelineAdapter = Box<TimelineNode>: TimelineNode { link => RBTreeLink });

impl<'a> KeyAdapter<'a> for TimelineAdapter {
    type Key = (u64, TaskId);
    fn get_key(&self, node: &'a TimelineNode) -> (u64, TaskId) {
        node.key
    }
}

/// Freed timeline nodes a `CfsRq` keeps for reuse.
const SPARE_NODES: usize = 4;

/// `enqueue_entity` flags.
pub const ENQUEUE_WAKEUP: u32 = 0x01;
/// The entity arrives from another CPU, its vruntime is relative.
pub const ENQUEUE_MIGRATED: u32 = 0x40;
/// `dequeue_entity` flag: the task goes to sleep (its vruntime stays absolute).
pub const DEQUEUE_SLEEP: u32 = 0x01;

/// `struct cfs_rq`: the runnable fair tasks of one CPU.
///
/// As in Linux, the running entity (`curr`) is taken out of the tree while it
/// runs and is put back by `put_prev_entity`; `nr_running` and `load` count it.
pub struct CfsRq {
    tasks_timeline: RBTree<TimelineAdapter>,
    /// `rb_root_cached.rb_leftmost`: the key of the leftmost node.
    leftmost: Option<(u64, TaskId)>,
    pub min_vruntime: u64,
    pub nr_running: u64,
    pub load: LoadWeight,
    pub curr: Option<TaskId>,
    /// `cfs_rq->skip`: the skip buddy, the task that called `sched_yield`;
    /// the pick passes it over once if that is not too unfair
    /// ([`CfsRq::pick_next`]). Cleared when it is picked or dequeued
    /// (`clear_buddies`).
    pub skip: Option<TaskId>,
    /// Nodes recent dequeues freed, kept for the next enqueues: the running
    /// entity leaves the tree at every pick and goes back at every
    /// `put_prev_entity`, wake-ups and sleeps add and remove others, and a
    /// kmalloc/kfree pair each time would be most of what a switch costs
    /// (Linux embeds the rb_node in the entity). At most [`SPARE_NODES`].
    /// Boxed on purpose: the tree owns its nodes as boxes, and keeping the
    /// box is keeping the allocation.
    #[allow(clippy::vec_box)]
    spare: Vec<Box<TimelineNode>>,
}

impl Default for CfsRq {
    fn default() -> Self {
        Self::new()
    }
}

impl CfsRq {
    pub fn new() -> Self {
        CfsRq {
            tasks_timeline: RBTree::new(TimelineAdapter::new()),
            leftmost: None,
            // Linux starts at (u64)(-(1LL << 20)) to exercise wrap early; we
            // start at zero and keep the wrap-safe comparisons.
            min_vruntime: 0,
            nr_running: 0,
            load: LoadWeight::new(0),
            curr: None,
            skip: None,
            spare: Vec::new(),
        }
    }

    /// `__enqueue_entity`: insert into the timeline, keeping the leftmost cache.
    fn enqueue_timeline(&mut self, id: TaskId, vruntime: u64) {
        let key = (vruntime, id);
        if self.leftmost.is_none_or(|l| key < l) {
            self.leftmost = Some(key);
        }
        let node = match self.spare.pop() {
            Some(mut n) => {
                n.key = key;
                n
            }
            None => Box::new(TimelineNode { link: RBTreeLink::new(), key }),
        };
        self.tasks_timeline.insert(node);
    }

    /// `__dequeue_entity`: remove from the timeline; the new leftmost is the
    /// successor of the old one, as `rb_erase_cached` finds it.
    fn dequeue_timeline(&mut self, id: TaskId, vruntime: u64) {
        let key = (vruntime, id);
        let mut cursor = self.tasks_timeline.find_mut(&key);
        let removed = cursor.remove();
        debug_assert!(removed.is_some(), "dequeue of a task not in the timeline");
        if self.leftmost == Some(key) {
            self.leftmost = cursor.get().map(|n| n.key);
        }
        if let Some(n) = removed
            && self.spare.len() < SPARE_NODES
        {
            self.spare.push(n);
        }
    }

    /// `__pick_first_entity`: the cached leftmost, O(1).
    pub fn pick_first(&self) -> Option<(u64, TaskId)> {
        self.leftmost
    }

    /// `pick_next_entity` (Linux 6.1, with `curr` already back in the tree):
    /// the leftmost entity, unless it is the skip buddy and the second one
    /// is no more than the wakeup granularity (of the leftmost, `gran`)
    /// ahead of it in virtual time ("avoid running the skip buddy, if
    /// running something else can be done without getting too unfair").
    pub fn pick_next(&self, gran: impl FnOnce(TaskId) -> u64) -> Option<TaskId> {
        let (left_v, left) = self.leftmost?;
        if self.skip == Some(left) {
            let mut c = self.tasks_timeline.find(&(left_v, left));
            c.move_next();
            if let Some(&TimelineNode { key: (second_v, second), .. }) = c.get() {
                // wakeup_preempt_entity(second, left) < 1.
                let vdiff = second_v.wrapping_sub(left_v) as i64;
                if vdiff <= 0 || vdiff as u64 <= gran(left) {
                    return Some(second);
                }
            }
        }
        Some(left)
    }

    /// `yield_task_fair` after the caller's `update_curr`: the running
    /// entity becomes the skip buddy.
    pub fn yield_entity(&mut self, id: TaskId) {
        if self.curr == Some(id) {
            self.skip = Some(id);
        }
    }

    /// Number of entities in the tree (excludes `curr`).
    pub fn nr_queued(&self) -> usize {
        self.tasks_timeline.iter().count()
    }

    /// The queued (not running) entities, leftmost first.
    pub fn queued(&self) -> impl Iterator<Item = (u64, TaskId)> + '_ {
        self.tasks_timeline.iter().map(|n| n.key)
    }

    /// `update_min_vruntime`: min_vruntime only moves forward.
    pub fn update_min_vruntime(&mut self, curr: Option<&SchedEntity>) {
        let mut vruntime = self.min_vruntime;
        let curr = curr.filter(|c| c.on_rq);
        if let Some(c) = curr {
            vruntime = c.vruntime;
        }
        if let Some((left, _)) = self.leftmost {
            vruntime = match curr {
                Some(_) => min_vruntime(vruntime, left),
                None => left,
            };
        }
        self.min_vruntime = max_vruntime(self.min_vruntime, vruntime);
    }

    /// `update_curr`: charge the running entity for the time since
    /// `exec_start`, as weighted virtual time. Returns the wall-time delta so
    /// that the caller can charge the bandwidth group.
    pub fn update_curr(&mut self, curr: &mut SchedEntity, now: u64) -> u64 {
        let delta = now.saturating_sub(curr.exec_start);
        if delta == 0 {
            return 0;
        }
        curr.exec_start = now;
        curr.sum_exec_runtime += delta;
        curr.vruntime = curr.vruntime.wrapping_add(calc_delta_fair(delta, &curr.load));
        self.update_min_vruntime(Some(curr));
        delta
    }

    /// `sched_slice`: the wall-time share of the period this entity should get.
    pub fn sched_slice(&self, se: &SchedEntity) -> u64 {
        let nr = self.nr_running + u64::from(!se.on_rq);
        let slice = sched_period(nr);
        let mut load = self.load.weight;
        if !se.on_rq {
            load += se.load.weight;
        }
        calc_delta(slice, se.load.weight, &LoadWeight::new(load.max(1)))
    }

    /// `sched_vslice`: the slice in virtual time.
    pub fn sched_vslice(&self, se: &SchedEntity) -> u64 {
        calc_delta_fair(self.sched_slice(se), &se.load)
    }

    /// `place_entity`: a new task starts one virtual slice after min_vruntime
    /// (START_DEBIT), so forking cannot starve the others; a waking sleeper gets
    /// a credit of half a latency (GENTLE_FAIR_SLEEPERS) but never goes back in
    /// virtual time.
    pub fn place_entity(&self, se: &mut SchedEntity, initial: bool) {
        let mut vruntime = self.min_vruntime;
        if initial {
            vruntime = vruntime.wrapping_add(self.sched_vslice(se));
        } else {
            vruntime = vruntime.wrapping_sub(SCHED_LATENCY / 2);
        }
        se.vruntime = max_vruntime(se.vruntime, vruntime);
    }

    /// `task_fork_fair`: the child starts from the parent's vruntime, is placed
    /// with START_DEBIT and made relative to min_vruntime; `wake_up_new_task`
    /// then enqueues it without ENQUEUE_WAKEUP, which adds min_vruntime back.
    pub fn task_fork_fair(&mut self, se: &mut SchedEntity, curr: Option<&mut SchedEntity>, now: u64) {
        if let Some(c) = curr {
            self.update_curr(c, now);
            se.vruntime = c.vruntime;
        }
        se.on_rq = false;
        self.place_entity(se, true);
        se.vruntime = se.vruntime.wrapping_sub(self.min_vruntime);
    }

    /// `enqueue_entity`. `id` must not be queued already; the entity must not be
    /// `curr` (the running entity is put back by `put_prev_entity`).
    pub fn enqueue_entity(&mut self, id: TaskId, se: &mut SchedEntity, flags: u32) {
        let renorm = flags & ENQUEUE_WAKEUP == 0 || flags & ENQUEUE_MIGRATED != 0;
        if renorm {
            se.vruntime = se.vruntime.wrapping_add(self.min_vruntime);
        }
        if flags & ENQUEUE_WAKEUP != 0 {
            self.place_entity(se, false);
        }
        self.load = LoadWeight::new(self.load.weight + se.load.weight);
        self.nr_running += 1;
        se.on_rq = true;
        self.enqueue_timeline(id, se.vruntime);
    }

    /// `dequeue_entity`. The caller has already run `update_curr` if `id` is
    /// `curr`. Without DEQUEUE_SLEEP the vruntime is made relative, so that the
    /// task can be enqueued on another CPU's `cfs_rq` fairly.
    pub fn dequeue_entity(&mut self, id: TaskId, se: &mut SchedEntity, flags: u32) {
        if self.curr == Some(id) {
            self.curr = None;
        } else {
            self.dequeue_timeline(id, se.vruntime);
        }
        self.clear_buddies(id);
        se.on_rq = false;
        self.load = LoadWeight::new(self.load.weight - se.load.weight);
        self.nr_running -= 1;
        if flags & DEQUEUE_SLEEP == 0 {
            se.vruntime = se.vruntime.wrapping_sub(self.min_vruntime);
        }
        self.update_min_vruntime(None);
    }

    /// `set_next_entity`: take the picked entity out of the tree and make it
    /// `curr`, remembering its runtime so far for `check_preempt_tick`.
    pub fn set_next_entity(&mut self, id: TaskId, se: &mut SchedEntity, now: u64) {
        // Linux clears the picked entity's buddy marks at the end of
        // pick_next_entity; the pick and this step are one here.
        self.clear_buddies(id);
        if se.on_rq {
            self.dequeue_timeline(id, se.vruntime);
        }
        se.exec_start = now;
        se.prev_sum_exec_runtime = se.sum_exec_runtime;
        self.curr = Some(id);
    }

    /// `clear_buddies`: forget the skip mark if it names `id`.
    fn clear_buddies(&mut self, id: TaskId) {
        if self.skip == Some(id) {
            self.skip = None;
        }
    }

    /// `put_prev_entity`: the running entity goes back into the tree.
    pub fn put_prev_entity(&mut self, id: TaskId, se: &mut SchedEntity, now: u64) {
        if self.curr != Some(id) {
            return;
        }
        self.curr = None;
        if se.on_rq {
            self.update_curr(se, now);
            self.enqueue_timeline(id, se.vruntime);
        }
    }

    /// `check_preempt_tick`: resched once the running entity has had its ideal
    /// slice, or when it is more than a slice of vruntime ahead of the leftmost
    /// after at least the minimum granularity.
    pub fn check_preempt_tick(&self, curr: &SchedEntity) -> bool {
        let ideal_runtime = self.sched_slice(curr);
        let delta_exec = curr.sum_exec_runtime - curr.prev_sum_exec_runtime;
        if delta_exec > ideal_runtime {
            return true;
        }
        if delta_exec < SCHED_MIN_GRANULARITY {
            return false;
        }
        let Some((left, _)) = self.leftmost else {
            return false;
        };
        let delta = curr.vruntime.wrapping_sub(left) as i64;
        delta > 0 && delta as u64 > ideal_runtime
    }
}

/// `wakeup_gran`: the 1 ms wakeup granularity in the wakee's virtual time
/// (kernel/sched/fair.c scales by the woken entity's weight, so a heavy wakee
/// preempts more easily).
pub fn wakeup_gran(se: &SchedEntity) -> u64 {
    calc_delta_fair(SCHED_WAKEUP_GRANULARITY, &se.load)
}

/// `wakeup_preempt_entity`: -1 if the wakee is not behind `curr`, 1 if it is
/// behind by more than the wakeup granularity (preempt), 0 otherwise.
pub fn wakeup_preempt_entity(curr: &SchedEntity, se: &SchedEntity) -> i32 {
    let vdiff = curr.vruntime.wrapping_sub(se.vruntime) as i64;
    if vdiff <= 0 {
        return -1;
    }
    if vdiff as u64 > wakeup_gran(se) {
        return 1;
    }
    0
}

/// `struct cfs_bandwidth`: a group may run `quota` ns (summed over all CPUs)
/// in each `period`; then it is throttled until the period timer refills it.
/// 《Linux内核深度解析》§2.8.8.
#[derive(Clone, Debug)]
pub struct CfsBandwidth {
    /// `None` is RUNTIME_INF.
    pub quota: Option<u64>,
    pub period: u64,
    /// Runtime left in this period.
    pub runtime: i64,
    /// When the period timer fires next.
    pub next_period: u64,
    pub throttled: bool,
    pub nr_periods: u64,
    pub nr_throttled: u64,
    /// Runnable tasks of the group held off the run queues while throttled.
    pub throttled_tasks: Vec<TaskId>,
}

/// Bounds Linux puts on the bandwidth period (1 ms .. 1 s) and quota (≥ 1 ms).
pub const MIN_CFS_QUOTA_PERIOD: u64 = NSEC_PER_MSEC;
pub const MAX_CFS_QUOTA_PERIOD: u64 = 1_000 * NSEC_PER_MSEC;

impl CfsBandwidth {
    pub fn new(quota: Option<u64>, period: u64, now: u64) -> Self {
        CfsBandwidth {
            quota,
            period,
            runtime: quota.map_or(i64::MAX, |q| q as i64),
            next_period: now + period,
            throttled: false,
            nr_periods: 0,
            nr_throttled: 0,
            throttled_tasks: Vec::new(),
        }
    }

    /// `__account_cfs_rq_runtime`: charge `delta`; true if the group must now
    /// be throttled.
    pub fn account(&mut self, delta: u64) -> bool {
        if self.quota.is_none() {
            return false;
        }
        self.runtime -= delta as i64;
        self.runtime <= 0 && !self.throttled
    }

    /// `do_sched_cfs_period_timer`: refill at each elapsed period boundary
    /// (unused runtime does not carry over). True if the group was throttled
    /// and may run again.
    pub fn period_timer(&mut self, now: u64) -> bool {
        if now < self.next_period {
            return false;
        }
        while self.next_period <= now {
            self.next_period += self.period;
            self.nr_periods += 1;
        }
        self.runtime = self.quota.map_or(i64::MAX, |q| q as i64);
        let was = self.throttled;
        self.throttled = false;
        was
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;

    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[test]
    fn wmult_is_inverse_of_weight() {
        for i in 0..40 {
            let w = u64::from(SCHED_PRIO_TO_WEIGHT[i]);
            let inv = u64::from(SCHED_PRIO_TO_WMULT[i]);
            let exact = (1u64 << 32) / w;
            assert!(inv.abs_diff(exact) <= 1, "nice {}: {inv} vs {exact}", i as i32 - 20);
        }
    }

    #[test]
    fn vruntime_scales_with_weight() {
        let mut rq = CfsRq::new();
        let mut nice0 = SchedEntity::new(0);
        let mut nice5 = SchedEntity::new(5);
        rq.update_curr(&mut nice0, 1_000_000);
        rq.update_curr(&mut nice5, 1_000_000);
        assert_eq!(nice0.vruntime, 1_000_000);
        // 1 ms × 1024 / 335 ≈ 3.057 ms.
        assert!(nice5.vruntime.abs_diff(1_000_000 * 1024 / 335) < 10);
    }

    #[test]
    fn period_and_slice() {
        assert_eq!(sched_period(1), SCHED_LATENCY);
        assert_eq!(sched_period(8), SCHED_LATENCY);
        assert_eq!(sched_period(9), 9 * SCHED_MIN_GRANULARITY);
        let mut rq = CfsRq::new();
        let mut a = SchedEntity::new(0);
        let mut b = SchedEntity::new(0);
        rq.enqueue_entity(TaskId(1), &mut a, 0);
        rq.enqueue_entity(TaskId(2), &mut b, 0);
        assert!(rq.sched_slice(&a).abs_diff(SCHED_LATENCY / 2) < 10);
    }

    /// A simple simulation driver over a bare `CfsRq`, used by the tests that
    /// compare against a reference model.
    struct Sim {
        rq: CfsRq,
        se: BTreeMap<TaskId, SchedEntity>,
        now: u64,
    }

    impl Sim {
        fn new() -> Self {
            Sim { rq: CfsRq::new(), se: BTreeMap::new(), now: 0 }
        }
        fn add(&mut self, id: u32, nice: i32) {
            let mut se = SchedEntity::new(nice);
            self.rq.enqueue_entity(TaskId(id), &mut se, 0);
            self.se.insert(TaskId(id), se);
        }
        fn put_prev(&mut self) {
            if let Some(c) = self.rq.curr {
                let se = self.se.get_mut(&c).unwrap();
                self.rq.put_prev_entity(c, se, self.now);
            }
        }
        fn pick(&mut self) -> Option<TaskId> {
            self.put_prev();
            let (_, id) = self.rq.pick_first()?;
            let se = self.se.get_mut(&id).unwrap();
            self.rq.set_next_entity(id, se, self.now);
            Some(id)
        }
        fn run(&mut self, ns: u64) -> bool {
            self.now += ns;
            let Some(c) = self.rq.curr else { return false };
            let se = self.se.get_mut(&c).unwrap();
            self.rq.update_curr(se, self.now);
            self.rq.check_preempt_tick(se)
        }
    }

    #[test]
    fn pick_next_matches_reference_model() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut sim = Sim::new();
        let mut runnable: BTreeMap<TaskId, bool> = BTreeMap::new();
        let mut next_id = 1;
        for step in 0..4_000 {
            match rng.below(10) {
                0 | 1 => {
                    let nice = rng.below(40) as i32 - 20;
                    let id = TaskId(next_id);
                    next_id += 1;
                    let mut se = SchedEntity::new(nice);
                    let curr = sim.rq.curr;
                    let mut parent = curr.and_then(|c| sim.se.remove(&c));
                    sim.rq.task_fork_fair(&mut se, parent.as_mut(), sim.now);
                    if let (Some(c), Some(p)) = (curr, parent) {
                        sim.se.insert(c, p);
                    }
                    sim.rq.enqueue_entity(id, &mut se, 0);
                    sim.se.insert(id, se);
                    runnable.insert(id, true);
                }
                2 => {
                    // A random runnable task sleeps.
                    let ids: Vec<_> = runnable.keys().copied().collect();
                    if let Some(&id) = ids.get(rng.below(ids.len().max(1) as u64) as usize) {
                        let se = sim.se.get_mut(&id).unwrap();
                        if sim.rq.curr == Some(id) {
                            sim.rq.update_curr(se, sim.now);
                        }
                        sim.rq.dequeue_entity(id, se, DEQUEUE_SLEEP);
                        runnable.remove(&id);
                    }
                }
                3 => {
                    // A sleeper wakes.
                    let sleeping: Vec<_> = sim.se.keys().filter(|k| !runnable.contains_key(k)).copied().collect();
                    if !sleeping.is_empty() {
                        let id = sleeping[rng.below(sleeping.len() as u64) as usize];
                        let se = sim.se.get_mut(&id).unwrap();
                        sim.rq.enqueue_entity(id, se, ENQUEUE_WAKEUP);
                        runnable.insert(id, true);
                    }
                }
                _ => {
                    sim.run(rng.below(3_000_000));
                    sim.put_prev();
                    // Reference: the smallest (vruntime, id) among runnable tasks.
                    let expect = runnable.keys().map(|id| (sim.se[id].vruntime, *id)).min();
                    let picked = sim.pick();
                    assert_eq!(picked, expect.map(|e| e.1));
                    if let Some(p) = picked {
                        assert_eq!(sim.se[&p].vruntime, expect.unwrap().0);
                    }
                }
            }
            assert_eq!(sim.rq.nr_running as usize, runnable.len());
            if step % 64 != 0 {
                continue;
            }
            let in_tree = sim.rq.nr_queued() + usize::from(sim.rq.curr.is_some());
            assert_eq!(in_tree, runnable.len());
            assert_eq!(sim.rq.pick_first(), sim.rq.queued().next());
        }
    }

    #[test]
    fn min_vruntime_is_monotonic() {
        let mut rng = XorShift(12345);
        let mut sim = Sim::new();
        for i in 1..=6 {
            sim.add(i, i as i32 * 3 - 10);
        }
        let mut last = 0;
        for _ in 0..2_000 {
            sim.pick();
            sim.run(rng.below(2_000_000) + 1);
            assert!(sim.rq.min_vruntime >= last);
            last = sim.rq.min_vruntime;
        }
    }

    /// Run the tasks under tick-driven preemption for `ms` milliseconds and
    /// return each task's CPU time.
    fn share(nices: &[i32], ms: u64) -> Vec<u64> {
        let mut sim = Sim::new();
        for (i, &n) in nices.iter().enumerate() {
            sim.add(i as u32 + 1, n);
        }
        sim.pick();
        // 1 ms ticks (HZ = 1000); resched as check_preempt_tick says.
        for _ in 0..ms {
            if sim.run(NSEC_PER_MSEC) {
                sim.pick();
            }
        }
        (1..=nices.len() as u32).map(|i| sim.se[&TaskId(i)].sum_exec_runtime).collect()
    }

    #[test]
    fn nice0_vs_nice5_share_is_1024_to_335() {
        let t = share(&[0, 5], 20_000);
        let ratio = t[0] as f64 / t[1] as f64;
        let expect = 1024.0 / 335.0;
        assert!((ratio / expect - 1.0).abs() < 0.02, "ratio {ratio} expected {expect}");
    }

    #[test]
    fn three_task_mix_shares_by_weight() {
        let nices = [-5, 0, 3];
        let t = share(&nices, 30_000);
        let total: u64 = t.iter().sum();
        let weights: Vec<f64> = nices.iter().map(|&n| LoadWeight::from_nice(n).weight as f64).collect();
        let wsum: f64 = weights.iter().sum();
        for i in 0..3 {
            let got = t[i] as f64 / total as f64;
            let want = weights[i] / wsum;
            assert!((got / want - 1.0).abs() < 0.03, "task {i}: {got} vs {want}");
        }
    }

    #[test]
    fn wakeup_preemption_granularity() {
        let curr = SchedEntity { vruntime: 10_000_000, ..SchedEntity::new(0) };
        // Wakee ahead of curr: never preempts.
        let ahead = SchedEntity { vruntime: 10_500_000, ..SchedEntity::new(0) };
        assert_eq!(wakeup_preempt_entity(&curr, &ahead), -1);
        // Behind by less than 1 ms: no preemption.
        let close = SchedEntity { vruntime: 9_200_000, ..SchedEntity::new(0) };
        assert_eq!(wakeup_preempt_entity(&curr, &close), 0);
        // Behind by more than 1 ms: preempt.
        let far = SchedEntity { vruntime: 8_900_000, ..SchedEntity::new(0) };
        assert_eq!(wakeup_preempt_entity(&curr, &far), 1);
        // A nice 5 wakee's granularity is ~3 ms of virtual time.
        let light = SchedEntity { vruntime: 8_000_000, ..SchedEntity::new(5) };
        assert_eq!(wakeup_preempt_entity(&curr, &light), 0);
        let light_far = SchedEntity { vruntime: 6_500_000, ..SchedEntity::new(5) };
        assert_eq!(wakeup_preempt_entity(&curr, &light_far), 1);
    }

    #[test]
    fn sleeper_credit_is_half_latency_and_never_backwards() {
        let mut rq = CfsRq::new();
        rq.min_vruntime = 100_000_000;
        let mut long_sleeper = SchedEntity { vruntime: 1_000, ..SchedEntity::new(0) };
        rq.enqueue_entity(TaskId(1), &mut long_sleeper, ENQUEUE_WAKEUP);
        assert_eq!(long_sleeper.vruntime, 100_000_000 - SCHED_LATENCY / 2);
        let mut short_sleeper = SchedEntity { vruntime: 99_900_000, ..SchedEntity::new(0) };
        rq.enqueue_entity(TaskId(2), &mut short_sleeper, ENQUEUE_WAKEUP);
        assert_eq!(short_sleeper.vruntime, 99_900_000);
    }

    #[test]
    fn new_tasks_are_placed_behind_existing_ones() {
        // Three tasks share the CPU; the running one forks a burst of 20
        // children. START_DEBIT places every child a virtual slice after
        // min_vruntime, so the two waiting tasks both run before any child.
        let mut sim = Sim::new();
        for i in 1..=3 {
            sim.add(i, 0);
        }
        sim.pick();
        for _ in 0..30 {
            if sim.run(NSEC_PER_MSEC) {
                sim.pick();
            }
        }
        let parent = sim.rq.curr.unwrap();
        for child in 10..30 {
            let mut p = sim.se.remove(&parent).unwrap();
            let mut se = SchedEntity::new(0);
            sim.rq.task_fork_fair(&mut se, Some(&mut p), sim.now);
            sim.se.insert(parent, p);
            sim.rq.enqueue_entity(TaskId(child), &mut se, 0);
            sim.se.insert(TaskId(child), se);
        }
        let mut first = Vec::new();
        while first.len() < 2 {
            sim.run(NSEC_PER_MSEC);
            let next = sim.pick().unwrap();
            if next != parent && !first.contains(&next) {
                first.push(next);
            }
        }
        assert!(first.iter().all(|id| id.0 <= 3), "old tasks first: {first:?}");
        // And the children do get the CPU afterwards: nobody starves.
        for _ in 0..200 {
            if sim.run(NSEC_PER_MSEC) {
                sim.pick();
            }
        }
        assert!(sim.se.values().all(|se| se.sum_exec_runtime > 0));
    }

    #[test]
    fn bandwidth_throttles_then_refills() {
        let mut b = CfsBandwidth::new(Some(20 * NSEC_PER_MSEC), 100 * NSEC_PER_MSEC, 0);
        assert!(!b.account(15 * NSEC_PER_MSEC));
        assert!(b.account(6 * NSEC_PER_MSEC));
        b.throttled = true;
        assert!(!b.period_timer(99 * NSEC_PER_MSEC));
        assert!(b.period_timer(100 * NSEC_PER_MSEC));
        assert_eq!(b.runtime, 20 * NSEC_PER_MSEC as i64);
        assert_eq!(b.next_period, 200 * NSEC_PER_MSEC);
    }
}

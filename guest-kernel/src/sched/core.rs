//! The scheduler core (kernel/sched/core.c): per-CPU run queues, the pick loop
//! over the classes, the tick, wakeups, need_resched and preempt_count,
//! affinity and migration, and load balancing.
//!
//! 《Linux内核深度解析》§2.8.6: `__schedule` = `pick_next_task` (classes in the
//! order stop, deadline, rt, fair, idle) + `context_switch`; §2.8.7: the tick
//! sets TIF_NEED_RESCHED and a wakeup may preempt; kernel preemption only when
//! preempt_count is zero; §2.9: affinity, migration, load balancing.
//! LKD ch. 4, "Preemption and Context Switching".

use alloc::vec::Vec;

use super::deadline::{DlBw, DlRq, SchedDlEntity, to_ratio};
use super::fair::{
    self, CfsBandwidth, CfsRq, DEQUEUE_SLEEP, ENQUEUE_MIGRATED, ENQUEUE_WAKEUP, LoadWeight, SchedEntity,
};
use super::idle::IdleRq;
use super::rt::{MAX_RT_PRIO, RR_TIMESLICE_MS, RtRq, SchedRtEntity};
use super::stop::StopRq;
use super::{NSEC_PER_MSEC, TaskId};
use crate::task::Errno;

/// Task run states (`task->__state`). LKD ch. 3, "Process State".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskState {
    Running,
    Interruptible,
    Uninterruptible,
    Stopped,
    Dead,
    /// Being created; not yet woken by `wake_up_new_task`.
    New,
}

impl TaskState {
    /// The Linux bit of the state, for `try_to_wake_up`'s state mask.
    pub const fn bits(self) -> u32 {
        match self {
            TaskState::Running => 0,
            TaskState::Interruptible => 0x1,
            TaskState::Uninterruptible => 0x2,
            TaskState::Stopped => 0x4,
            TaskState::Dead => 0x80,
            TaskState::New => 0x800,
        }
    }
}

/// `TASK_NORMAL`: what `wake_up` wakes.
pub const TASK_NORMAL: u32 = TaskState::Interruptible.bits() | TaskState::Uninterruptible.bits();

/// Scheduling policies with their Linux numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum SchedPolicy {
    Normal = 0,
    Fifo = 1,
    Rr = 2,
    Batch = 3,
    Idle = 5,
    Deadline = 6,
}

/// `sysctl_sched_dl_period_min`: 100 µs, in ns.
pub const DL_PERIOD_MIN: u64 = 100_000;
/// `sysctl_sched_dl_period_max`: 2^22 µs (about 4.2 s), in ns.
pub const DL_PERIOD_MAX: u64 = (1 << 22) * 1000;

/// The scheduling classes, highest priority first (the derived order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SchedClass {
    Stop,
    Deadline,
    Rt,
    Fair,
    Idle,
}

/// `struct sched_attr` as `sched_setattr` takes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchedAttr {
    pub policy: SchedPolicy,
    pub nice: i32,
    pub rt_priority: u32,
    pub dl_runtime: u64,
    pub dl_deadline: u64,
    pub dl_period: u64,
}

impl SchedAttr {
    pub const fn normal(nice: i32) -> Self {
        SchedAttr { policy: SchedPolicy::Normal, nice, rt_priority: 0, dl_runtime: 0, dl_deadline: 0, dl_period: 0 }
    }
    pub const fn rt(policy: SchedPolicy, rt_priority: u32) -> Self {
        SchedAttr { policy, rt_priority, ..Self::normal(0) }
    }
    pub const fn deadline(runtime: u64, deadline: u64, period: u64) -> Self {
        SchedAttr {
            policy: SchedPolicy::Deadline,
            dl_runtime: runtime,
            dl_deadline: deadline,
            dl_period: period,
            ..Self::normal(0)
        }
    }
}

/// A set of CPUs (`cpumask_t`), up to 64.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuMask(pub u64);

impl CpuMask {
    pub const fn all() -> Self {
        CpuMask(u64::MAX)
    }
    pub const fn single(cpu: usize) -> Self {
        CpuMask(1 << cpu)
    }
    pub const fn contains(self, cpu: usize) -> bool {
        cpu < 64 && self.0 & (1 << cpu) != 0
    }
    pub fn iter(self, nr_cpus: usize) -> impl Iterator<Item = usize> {
        (0..nr_cpus.min(64)).filter(move |&c| self.contains(c))
    }
}

/// preempt_count layout: bits 0-7 preemption, 8-15 softirq, 16-19 hardirq.
pub const PREEMPT_OFFSET: u32 = 1;
pub const SOFTIRQ_OFFSET: u32 = 1 << 8;
pub const HARDIRQ_OFFSET: u32 = 1 << 16;
pub const SOFTIRQ_MASK: u32 = 0xff << 8;
pub const HARDIRQ_MASK: u32 = 0xf << 16;

/// `MAX_DL_PRIO`..: kernel priority of deadline tasks is -1; RT 0..99; normal
/// 100..139 (120 + nice).
pub const DEFAULT_PRIO: i32 = 120;

/// Periodic load-balancing interval.
pub const BALANCE_INTERVAL: u64 = 4 * NSEC_PER_MSEC;

/// The scheduler's part of a task: policy, priorities, class entities, and
/// the low-level flags that live in `thread_info` on arm64.
#[derive(Clone, Debug)]
pub struct SchedTask {
    pub id: TaskId,
    pub state: TaskState,
    pub policy: SchedPolicy,
    pub class: SchedClass,
    /// 120 + nice.
    pub static_prio: i32,
    pub normal_prio: i32,
    /// Effective priority (no priority inheritance here, so = normal_prio).
    pub prio: i32,
    pub rt_priority: u32,
    pub cpus_allowed: CpuMask,
    pub cpu: usize,
    /// `task_on_rq_queued`: runnable and accounted to `cpu`'s run queue.
    pub on_rq: bool,
    /// Runnable but held off the CFS tree because its group is throttled.
    pub throttled: bool,
    pub se: SchedEntity,
    pub rt: SchedRtEntity,
    pub dl: SchedDlEntity,
    /// `TIF_NEED_RESCHED`.
    pub need_resched: bool,
    /// `thread_info.preempt_count`.
    pub preempt_count: u32,
    pub nr_migrations: u64,
}

impl SchedTask {
    fn new(id: TaskId, class: SchedClass, cpu: usize) -> Self {
        SchedTask {
            id,
            state: TaskState::Running,
            policy: SchedPolicy::Normal,
            class,
            static_prio: DEFAULT_PRIO,
            normal_prio: DEFAULT_PRIO,
            prio: DEFAULT_PRIO,
            rt_priority: 0,
            cpus_allowed: CpuMask::all(),
            cpu,
            on_rq: false,
            throttled: false,
            se: SchedEntity::new(0),
            rt: SchedRtEntity::default(),
            dl: SchedDlEntity::default(),
            need_resched: false,
            preempt_count: 0,
            nr_migrations: 0,
        }
    }

    pub fn nice(&self) -> i32 {
        self.static_prio - DEFAULT_PRIO
    }

    fn rt_prio_index(&self) -> usize {
        self.prio as usize
    }
}

/// `struct rq`: one per CPU.
pub struct Rq {
    pub cpu: usize,
    pub curr: TaskId,
    /// `rq->clock`: the latest time (ns) any caller gave for this CPU.
    pub clock: u64,
    /// `rq->clock_task`: `clock` less the time the hypervisor ran something
    /// else while this (virtual) CPU wanted to run (steal). Tasks' runtime
    /// (`exec_start`, `sum_exec_runtime`, so vruntime and
    /// CLOCK_THREAD_CPUTIME_ID) is counted on it.
    pub clock_task: u64,
    /// `rq->prev_steal_time_rq`: the steal clock's value already taken out.
    pub prev_steal_time_rq: u64,
    pub stop: StopRq,
    pub dl: DlRq,
    pub rt: RtRq,
    pub cfs: CfsRq,
    pub idle: IdleRq,
    pub nr_switches: u64,
    pub next_balance: u64,
}

impl Rq {
    /// `rq->nr_running`: runnable tasks of all classes but idle.
    pub fn nr_running(&self) -> usize {
        usize::from(self.stop.queued) + self.dl.nr_running() + self.rt.rt_nr_running + self.cfs.nr_running as usize
    }
}

/// The scheduler's tasks, indexed by [`TaskId`] (an arena index, so the
/// slots are few and dense): a lookup is an index, not a tree search, on
/// paths that make a dozen of them per switch.
struct TaskSlab {
    slots: Vec<Option<SchedTask>>,
}

impl TaskSlab {
    const fn new() -> Self {
        TaskSlab { slots: Vec::new() }
    }
    fn get(&self, id: &TaskId) -> Option<&SchedTask> {
        self.slots.get(id.0 as usize).and_then(Option::as_ref)
    }
    fn get_mut(&mut self, id: &TaskId) -> Option<&mut SchedTask> {
        self.slots.get_mut(id.0 as usize).and_then(Option::as_mut)
    }
    fn insert(&mut self, id: TaskId, t: SchedTask) {
        let i = id.0 as usize;
        if self.slots.len() <= i {
            self.slots.resize_with(i + 1, || None);
        }
        self.slots[i] = Some(t);
    }
    fn remove(&mut self, id: &TaskId) -> Option<SchedTask> {
        self.slots.get_mut(id.0 as usize).and_then(Option::take)
    }
    /// Every task, in id order.
    fn values(&self) -> impl Iterator<Item = &SchedTask> {
        self.slots.iter().filter_map(Option::as_ref)
    }
}

impl core::ops::Index<&TaskId> for TaskSlab {
    type Output = SchedTask;
    fn index(&self, id: &TaskId) -> &SchedTask {
        self.get(id).expect("unknown task id")
    }
}

/// The whole scheduler: all tasks' scheduling state and the per-CPU queues.
pub struct Scheduler {
    tasks: TaskSlab,
    rqs: Vec<Rq>,
    groups: Vec<CfsBandwidth>,
    dl_bw: DlBw,
    /// Ticks per second; the RR slice is counted in ticks.
    hz: u64,
    /// CPUs that need a reschedule IPI (`resched_curr` on a remote CPU).
    ipi_pending: u64,
    /// Released while still running: freed after the switch away.
    dead_pending: Vec<TaskId>,
    /// `paravirt_steal_clock`: each CPU's stolen time so far.
    steal_clock: StealClock,
}

/// `paravirt_steal_clock(cpu)`: the nanoseconds CPU `cpu`, a virtual CPU,
/// was runnable but not running because the hypervisor ran something else
/// (Arm DEN0057 PV_TIME's `stolen_time`), growing only; [`no_steal`] on bare
/// metal. Any CPU may read any CPU's clock.
pub type StealClock = fn(usize) -> u64;

/// The steal clock of a CPU that is not virtual, or whose hypervisor does
/// not report steal: always 0.
pub fn no_steal(_cpu: usize) -> u64 {
    0
}

impl Scheduler {
    /// `sched_init` + `init_idle`: one run queue per idle task given.
    pub fn new(hz: u64, idle_tasks: &[TaskId]) -> Self {
        assert!(!idle_tasks.is_empty() && idle_tasks.len() <= 64);
        let mut tasks = TaskSlab::new();
        let mut rqs = Vec::new();
        for (cpu, &idle) in idle_tasks.iter().enumerate() {
            let mut t = SchedTask::new(idle, SchedClass::Idle, cpu);
            t.cpus_allowed = CpuMask::single(cpu);
            t.policy = SchedPolicy::Idle;
            t.on_rq = true;
            tasks.insert(idle, t);
            rqs.push(Rq {
                cpu,
                curr: idle,
                clock: 0,
                clock_task: 0,
                prev_steal_time_rq: 0,
                stop: StopRq::default(),
                dl: DlRq::default(),
                rt: RtRq::new(),
                cfs: CfsRq::new(),
                idle: IdleRq { idle },
                nr_switches: 0,
                next_balance: 0,
            });
        }
        Scheduler {
            tasks,
            rqs,
            groups: Vec::new(),
            dl_bw: DlBw::new(),
            hz,
            ipi_pending: 0,
            dead_pending: Vec::new(),
            steal_clock: no_steal,
        }
    }

    /// Takes steal into account from now on (`paravirt_steal_rq_enabled`,
    /// switched on when the hypervisor offers PV_TIME).
    pub fn set_steal_clock(&mut self, steal: StealClock) {
        self.steal_clock = steal;
    }

    /// `update_rq_clock` and `update_rq_clock_task` (kernel/sched/core.c,
    /// with CONFIG_PARAVIRT_TIME_ACCOUNTING): `clock` moves to `now`, and
    /// `clock_task` by the same delta less the steal since the last update,
    /// the steal clamped to the delta so that `clock_task` never goes back
    /// (the rest of a larger steal is taken out at the next update). A
    /// caller's `now` from another CPU may be a little behind: no change.
    fn update_rq_clock(&mut self, cpu: usize, now: u64) {
        let steal_clock = self.steal_clock;
        let rq = &mut self.rqs[cpu];
        let delta = now.saturating_sub(rq.clock);
        if delta == 0 {
            return;
        }
        rq.clock = now;
        let steal = steal_clock(cpu).saturating_sub(rq.prev_steal_time_rq).min(delta);
        rq.prev_steal_time_rq += steal;
        rq.clock_task += delta - steal;
    }

    pub fn nr_cpus(&self) -> usize {
        self.rqs.len()
    }
    pub fn task(&self, id: TaskId) -> Option<&SchedTask> {
        self.tasks.get(&id)
    }
    /// `task_sched_runtime`: the CPU time task `id` has had, in ns, with the
    /// slice it is running now (on whichever CPU) charged up to `now`. What
    /// `CLOCK_THREAD_CPUTIME_ID` reads (kernel/sched/core.c).
    pub fn task_sched_runtime(&mut self, id: TaskId, now: u64) -> u64 {
        if let Some(cpu) = (0..self.rqs.len()).find(|&c| self.rqs[c].curr == id) {
            self.update_curr(cpu, now);
        }
        self.tasks.get(&id).map_or(0, |t| t.se.sum_exec_runtime)
    }
    /// `sched_rr_get_interval`'s answer, the task's class
    /// `get_rr_interval` in whole ticks, as ns: the RR slice for SCHED_RR,
    /// the task's CFS slice when its run queue has load, else 0 (FIFO,
    /// deadline, idle).
    pub fn rr_interval_ns(&self, id: TaskId) -> Option<u64> {
        let t = self.tasks.get(&id)?;
        let tick = 1000 * NSEC_PER_MSEC / self.hz;
        let ticks = match t.class {
            SchedClass::Rt if t.policy == SchedPolicy::Rr => self.rr_timeslice(),
            SchedClass::Fair => {
                let cfs = &self.rqs[t.cpu].cfs;
                if cfs.load.weight > 0 { cfs.sched_slice(&t.se) / tick } else { 0 }
            }
            _ => 0,
        };
        Some(ticks * tick)
    }

    pub fn rq(&self, cpu: usize) -> &Rq {
        &self.rqs[cpu]
    }
    /// `cpu_curr(cpu)`.
    pub fn current(&self, cpu: usize) -> TaskId {
        self.rqs[cpu].curr
    }
    pub fn group(&self, g: usize) -> &CfsBandwidth {
        &self.groups[g]
    }
    fn t(&self, id: TaskId) -> &SchedTask {
        &self.tasks[&id]
    }
    fn tm(&mut self, id: TaskId) -> &mut SchedTask {
        self.tasks.get_mut(&id).expect("unknown task id")
    }
    fn all_cpus(&self) -> CpuMask {
        CpuMask(if self.rqs.len() == 64 { u64::MAX } else { (1 << self.rqs.len()) - 1 })
    }
    fn rr_timeslice(&self) -> u64 {
        (RR_TIMESLICE_MS * self.hz / 1000).max(1)
    }

    /// Register a CPU's stop task (`migration/N`): sleeping until `wake_stop`.
    pub fn init_stop(&mut self, cpu: usize, id: TaskId) {
        let mut t = SchedTask::new(id, SchedClass::Stop, cpu);
        t.cpus_allowed = CpuMask::single(cpu);
        t.policy = SchedPolicy::Fifo;
        t.rt_priority = 99;
        t.state = TaskState::Interruptible;
        self.tasks.insert(id, t);
        self.rqs[cpu].stop.stop = Some(id);
    }

    /// Wake the CPU's stop task; it preempts whatever runs.
    pub fn wake_stop(&mut self, cpu: usize, now: u64) -> bool {
        match self.rqs[cpu].stop.stop {
            Some(id) => self.try_to_wake_up(id, TASK_NORMAL, now),
            None => false,
        }
    }

    // ----- priorities ------------------------------------------------------

    fn apply_attr(t: &mut SchedTask, attr: &SchedAttr) {
        t.policy = attr.policy;
        t.static_prio = DEFAULT_PRIO + attr.nice.clamp(-20, 19);
        t.rt_priority = attr.rt_priority;
        let (class, normal_prio) = match attr.policy {
            SchedPolicy::Deadline => (SchedClass::Deadline, -1),
            SchedPolicy::Fifo | SchedPolicy::Rr => (SchedClass::Rt, MAX_RT_PRIO as i32 - 1 - attr.rt_priority as i32),
            SchedPolicy::Normal | SchedPolicy::Batch | SchedPolicy::Idle => (SchedClass::Fair, t.static_prio),
        };
        t.class = class;
        t.normal_prio = normal_prio;
        t.prio = normal_prio;
        // SCHED_IDLE tasks get the lowest weight (WEIGHT_IDLEPRIO = 3).
        t.se.load =
            if attr.policy == SchedPolicy::Idle { LoadWeight::new(3) } else { LoadWeight::from_nice(attr.nice) };
    }

    fn check_attr(attr: &SchedAttr) -> Result<(), Errno> {
        match attr.policy {
            SchedPolicy::Fifo | SchedPolicy::Rr => {
                if !(1..=99).contains(&attr.rt_priority) {
                    return Err(Errno::EINVAL);
                }
            }
            SchedPolicy::Deadline => {
                // __checkparam_dl: runtime ≥ 2^DL_SCALE ns, runtime ≤
                // deadline ≤ period, no bit 63, and the period between
                // sched_dl_period_min (100 µs) and _max (2^22 µs).
                let period = if attr.dl_period == 0 { attr.dl_deadline } else { attr.dl_period };
                if attr.dl_deadline == 0
                    || attr.dl_runtime < (1 << 10)
                    || (attr.dl_deadline | attr.dl_period) & (1 << 63) != 0
                    || attr.dl_runtime > attr.dl_deadline
                    || attr.dl_deadline > period
                    || !(DL_PERIOD_MIN..=DL_PERIOD_MAX).contains(&period)
                {
                    return Err(Errno::EINVAL);
                }
            }
            _ => {
                if attr.rt_priority != 0 || !(-20..=19).contains(&attr.nice) {
                    return Err(Errno::EINVAL);
                }
            }
        }
        Ok(())
    }

    // ----- fork / exit -----------------------------------------------------

    /// `sched_fork`: the child inherits the parent's policy and affinity; a
    /// deadline parent may not fork (-EAGAIN, as Linux without reset-on-fork).
    /// The child stays TASK_NEW until [`Scheduler::wake_up_new_task`].
    pub fn sched_fork(&mut self, child: TaskId, parent: TaskId, now: u64) -> Result<(), Errno> {
        let p = self.t(parent).clone();
        if p.policy == SchedPolicy::Deadline {
            return Err(Errno::EAGAIN);
        }
        let mut t = SchedTask::new(child, SchedClass::Fair, p.cpu);
        t.state = TaskState::New;
        t.cpus_allowed =
            if matches!(p.class, SchedClass::Idle | SchedClass::Stop) { CpuMask::all() } else { p.cpus_allowed };
        let attr = match p.class {
            SchedClass::Rt => SchedAttr::rt(p.policy, p.rt_priority),
            SchedClass::Fair => SchedAttr { policy: p.policy, ..SchedAttr::normal(p.nice()) },
            _ => SchedAttr::normal(0),
        };
        Self::apply_attr(&mut t, &attr);
        t.se.group = p.se.group;
        t.rt.time_slice = self.rr_timeslice();
        // task_fork_fair: placed against the parent's CPU's cfs_rq.
        let cpu = p.cpu;
        let rq_curr = self.rqs[cpu].curr;
        let mut curr_se =
            if self.rqs[cpu].cfs.curr == Some(rq_curr) { Some(self.tm(rq_curr).se.clone()) } else { None };
        self.update_rq_clock(cpu, now);
        let clock_task = self.rqs[cpu].clock_task;
        self.rqs[cpu].cfs.task_fork_fair(&mut t.se, curr_se.as_mut(), clock_task);
        if let Some(se) = curr_se {
            self.tm(rq_curr).se = se;
        }
        self.tasks.insert(child, t);
        Ok(())
    }

    /// `wake_up_new_task`: choose a CPU (fork balancing: the least loaded
    /// allowed CPU), enqueue, and see whether the child preempts.
    pub fn wake_up_new_task(&mut self, id: TaskId, now: u64) {
        let mask = self.t(id).cpus_allowed;
        let cpu = self.find_idlest_cpu(mask).unwrap_or(self.t(id).cpu);
        let t = self.tm(id);
        t.state = TaskState::Running;
        t.cpu = cpu;
        self.update_rq_clock(cpu, now);
        self.activate_task(cpu, id, 0, now);
        self.check_preempt_curr(cpu, id, now);
    }

    /// Forget a dead task (`put_task_struct` → `task_dead_dl` frees its
    /// deadline bandwidth). A task still running (an exiting thread that was
    /// auto-reaped) is freed by `schedule` once the CPU has switched away.
    pub fn remove_task(&mut self, id: TaskId) {
        let Some(t) = self.tasks.get(&id) else { return };
        let cpu = t.cpu;
        if self.rqs[cpu].curr == id {
            self.tm(id).state = TaskState::Dead;
            self.dead_pending.push(id);
            return;
        }
        if t.on_rq {
            let now = self.rqs[cpu].clock;
            self.dequeue_task(cpu, id, DEQUEUE_SLEEP, now);
        }
        self.free_task(id);
    }

    /// `do_task_dead`: the task will never run again. The current task leaves
    /// the run queue at its last `schedule`; any other is dequeued now.
    pub fn task_dead(&mut self, id: TaskId) {
        let t = self.tm(id);
        t.state = TaskState::Dead;
        let (cpu, on_rq) = (t.cpu, t.on_rq);
        if on_rq && self.rqs[cpu].curr != id {
            let now = self.rqs[cpu].clock;
            self.dequeue_task(cpu, id, DEQUEUE_SLEEP, now);
        }
    }

    fn free_task(&mut self, id: TaskId) {
        if let Some(t) = self.tasks.remove(&id) {
            if t.class == SchedClass::Deadline {
                self.dl_bw.total_bw -= t.dl.dl_bw;
            }
            if let Some(g) = t.se.group {
                self.groups[g].throttled_tasks.retain(|&x| x != id);
            }
        }
    }

    // ----- enqueue / dequeue -------------------------------------------------

    fn enqueue_task(&mut self, cpu: usize, id: TaskId, flags: u32, now: u64) {
        // Disjoint borrows of the task, the run queue and the groups: the
        // task stays in place (moving a SchedTask out of the map and back
        // cost a copy of it and a shift of its map node each way).
        let t = self.tasks.get_mut(&id).expect("unknown task id");
        let rq = &mut self.rqs[cpu];
        match t.class {
            SchedClass::Stop => rq.stop.queued = true,
            SchedClass::Deadline => {
                if flags & ENQUEUE_WAKEUP != 0 {
                    t.dl.update_on_wakeup(now);
                } else if t.dl.deadline == 0 {
                    t.dl.setup_new(now);
                }
                if !t.dl.dl_throttled {
                    rq.dl.enqueue(id, t.dl.deadline);
                }
            }
            SchedClass::Rt => rq.rt.enqueue(id, t.rt_prio_index(), false),
            SchedClass::Fair => {
                let throttled = t.se.group.is_some_and(|g| self.groups[g].throttled);
                if throttled {
                    // Keep the vruntime absolute while parked.
                    if flags & ENQUEUE_WAKEUP == 0 || flags & ENQUEUE_MIGRATED != 0 {
                        t.se.vruntime = t.se.vruntime.wrapping_add(rq.cfs.min_vruntime);
                    }
                    t.throttled = true;
                    self.groups[t.se.group.unwrap()].throttled_tasks.push(id);
                } else {
                    rq.cfs.enqueue_entity(id, &mut t.se, flags);
                }
            }
            SchedClass::Idle => {}
        }
        t.on_rq = true;
    }

    fn dequeue_task(&mut self, cpu: usize, id: TaskId, flags: u32, now: u64) {
        if self.rqs[cpu].curr == id {
            self.update_curr(cpu, now);
        }
        let t = self.tasks.get_mut(&id).expect("unknown task id");
        let rq = &mut self.rqs[cpu];
        match t.class {
            SchedClass::Stop => rq.stop.queued = false,
            SchedClass::Deadline => {
                rq.dl.dequeue(id, t.dl.deadline);
            }
            SchedClass::Rt => {
                rq.rt.dequeue(id, t.rt_prio_index());
            }
            SchedClass::Fair => {
                if t.throttled {
                    t.throttled = false;
                    if let Some(g) = t.se.group {
                        self.groups[g].throttled_tasks.retain(|&x| x != id);
                    }
                    if flags & DEQUEUE_SLEEP == 0 {
                        t.se.vruntime = t.se.vruntime.wrapping_sub(rq.cfs.min_vruntime);
                    }
                } else if t.se.on_rq {
                    rq.cfs.dequeue_entity(id, &mut t.se, flags);
                }
            }
            SchedClass::Idle => {}
        }
        t.on_rq = false;
    }

    fn activate_task(&mut self, cpu: usize, id: TaskId, flags: u32, now: u64) {
        self.enqueue_task(cpu, id, flags, now);
    }

    fn deactivate_task(&mut self, cpu: usize, id: TaskId, flags: u32, now: u64) {
        self.dequeue_task(cpu, id, flags, now);
    }

    // ----- accounting ------------------------------------------------------

    /// `update_curr` of the running task's class, charging CFS bandwidth and
    /// deadline runtime.
    fn update_curr(&mut self, cpu: usize, now: u64) {
        self.update_rq_clock(cpu, now);
        let id = self.rqs[cpu].curr;
        let t = self.tasks.get_mut(&id).expect("unknown task id");
        let rq = &mut self.rqs[cpu];
        // Runtime is counted on the task clock (steal left out); `now`
        // stays the wall clock for the bandwidth and deadline timers.
        let clock_task = rq.clock_task;
        match t.class {
            SchedClass::Fair => {
                if rq.cfs.curr == Some(id) {
                    let delta = rq.cfs.update_curr(&mut t.se, clock_task);
                    if let Some(g) = t.se.group {
                        let b = &mut self.groups[g];
                        if b.account(delta) {
                            b.throttled = true;
                            b.nr_throttled += 1;
                            t.need_resched = true;
                            // `update_curr` may run for another CPU's task
                            // (`task_sched_runtime`): that CPU must hear.
                            self.ipi_pending |= 1 << cpu;
                            self.throttle_group(g, now);
                        }
                    }
                }
            }
            SchedClass::Deadline | SchedClass::Rt | SchedClass::Stop => {
                let delta = clock_task.saturating_sub(t.se.exec_start);
                t.se.exec_start = clock_task;
                t.se.sum_exec_runtime += delta;
                if t.class == SchedClass::Deadline && !t.dl.dl_throttled && t.dl.charge(delta) {
                    // Runtime exhausted: off the EDF tree until replenished.
                    rq.dl.dequeue(id, t.dl.deadline);
                    t.need_resched = true;
                    self.ipi_pending |= 1 << cpu;
                }
            }
            SchedClass::Idle => {}
        }
    }

    // ----- CFS bandwidth ----------------------------------------------------

    /// `tg_set_cfs_bandwidth` for a new group: period 1 ms..1 s, quota ≥ 1 ms
    /// (`None` = unlimited). Returns the group id.
    pub fn create_group(&mut self, quota: Option<u64>, period: u64, now: u64) -> Result<usize, Errno> {
        if !(fair::MIN_CFS_QUOTA_PERIOD..=fair::MAX_CFS_QUOTA_PERIOD).contains(&period)
            || quota.is_some_and(|q| q < fair::MIN_CFS_QUOTA_PERIOD)
        {
            return Err(Errno::EINVAL);
        }
        self.groups.push(CfsBandwidth::new(quota, period, now));
        Ok(self.groups.len() - 1)
    }

    /// Move a (sleeping or new) fair task into a bandwidth group.
    pub fn set_task_group(&mut self, id: TaskId, group: Option<usize>) {
        self.tm(id).se.group = group;
    }

    /// `throttle_cfs_rq`: the group's queued tasks leave the CFS trees; the
    /// running ones are told to reschedule and are parked by `put_prev_task`.
    fn throttle_group(&mut self, g: usize, _now: u64) {
        let members: Vec<TaskId> = self
            .tasks
            .values()
            .filter(|t| t.se.group == Some(g) && t.class == SchedClass::Fair && t.se.on_rq)
            .map(|t| t.id)
            .collect();
        for id in members {
            let cpu = self.t(id).cpu;
            if self.rqs[cpu].cfs.curr == Some(id) {
                self.resched_curr(cpu);
            } else {
                self.park_throttled(cpu, id);
            }
        }
    }

    fn park_throttled(&mut self, cpu: usize, id: TaskId) {
        let t = self.tasks.get_mut(&id).expect("unknown task id");
        self.rqs[cpu].cfs.dequeue_entity(id, &mut t.se, DEQUEUE_SLEEP);
        t.throttled = true;
        if let Some(g) = t.se.group {
            self.groups[g].throttled_tasks.push(id);
        }
    }

    /// `unthrottle_cfs_rq`: put the parked tasks back and let them preempt.
    fn unthrottle_group(&mut self, g: usize, now: u64) {
        let parked = core::mem::take(&mut self.groups[g].throttled_tasks);
        for id in parked {
            let Some(t) = self.tasks.get_mut(&id) else { continue };
            if !t.throttled {
                continue;
            }
            t.throttled = false;
            let cpu = t.cpu;
            self.rqs[cpu].cfs.enqueue_entity(id, &mut t.se, ENQUEUE_WAKEUP);
            self.check_preempt_curr(cpu, id, now);
        }
    }

    // ----- the pick loop -----------------------------------------------------

    /// `put_prev_task`: the running task gives up the CPU (still runnable or not).
    fn put_prev_task(&mut self, cpu: usize, id: TaskId, now: u64) {
        self.update_curr(cpu, now);
        let t = self.tasks.get_mut(&id).expect("present");
        if t.class == SchedClass::Fair && self.rqs[cpu].cfs.curr == Some(id) {
            let throttled = t.se.group.is_some_and(|g| self.groups[g].throttled);
            let clock_task = self.rqs[cpu].clock_task;
            self.rqs[cpu].cfs.put_prev_entity(id, &mut t.se, clock_task);
            if throttled && t.se.on_rq {
                self.park_throttled(cpu, id);
            }
        }
    }

    /// `set_next_task`: the picked task starts its run.
    fn set_next_task(&mut self, cpu: usize, id: TaskId, now: u64) {
        self.update_rq_clock(cpu, now);
        let clock_task = self.rqs[cpu].clock_task;
        let t = self.tasks.get_mut(&id).expect("present");
        if t.class == SchedClass::Fair {
            self.rqs[cpu].cfs.set_next_entity(id, &mut t.se, clock_task);
        } else {
            t.se.exec_start = clock_task;
        }
    }

    /// `pick_next_task`: the first class, in priority order, with a task.
    fn pick_next_task(&mut self, cpu: usize) -> Option<TaskId> {
        let rq = &self.rqs[cpu];
        rq.stop
            .pick_next()
            .or_else(|| rq.dl.pick_next())
            .or_else(|| rq.rt.pick_next())
            .or_else(|| rq.cfs.pick_next(|left| fair::wakeup_gran(&self.t(left).se)))
    }

    /// `do_sched_yield` → the running task's class `yield_task`, before the
    /// caller's `schedule()` (sched_yield(2)): CFS makes it the skip buddy,
    /// so that the pick prefers another task unless that one is more than
    /// the wakeup granularity ahead (`yield_task_fair`; a SCHED_IDLE task
    /// sets no skip, a SCHED_BATCH one is not charged first); RT puts it at
    /// the tail of its priority's list (`yield_task_rt`). A deadline task's
    /// yield (`yield_task_dl`, give up the rest of the runtime) is not
    /// modelled: it just reschedules.
    pub fn yield_task(&mut self, cpu: usize, now: u64) {
        let curr = self.rqs[cpu].curr;
        let t = self.t(curr);
        let (class, policy, prio, on_rq) = (t.class, t.policy, t.rt_prio_index(), t.on_rq);
        match class {
            SchedClass::Fair => {
                // "Are we the only task in the tree?"
                if self.rqs[cpu].nr_running() == 1 {
                    return;
                }
                if policy != SchedPolicy::Batch {
                    self.update_curr(cpu, now);
                }
                if policy != SchedPolicy::Idle {
                    self.rqs[cpu].cfs.yield_entity(curr);
                }
            }
            SchedClass::Rt if on_rq => self.rqs[cpu].rt.requeue(curr, prio),
            _ => {}
        }
    }

    /// `__schedule`: deactivate the previous task if it is no longer
    /// runnable, pick the next by class, and return it. The caller does the
    /// context switch if the returned task differs from the previous one.
    pub fn schedule(&mut self, cpu: usize, now: u64) -> TaskId {
        let prev = self.rqs[cpu].curr;
        self.update_rq_clock(cpu, now);
        let p = self.t(prev);
        if p.state != TaskState::Running && p.on_rq && p.class != SchedClass::Idle {
            self.deactivate_task(cpu, prev, DEQUEUE_SLEEP, now);
        }
        self.put_prev_task(cpu, prev, now);
        self.tm(prev).need_resched = false;

        // A running task whose affinity no longer allows this CPU moves now
        // (Linux does this from the stop class's migration thread).
        let p = self.t(prev);
        if p.on_rq
            && !p.cpus_allowed.contains(cpu)
            && p.class != SchedClass::Idle
            && let Some(dest) = self.find_idlest_cpu(p.cpus_allowed)
        {
            self.move_queued_task(prev, cpu, dest, now);
        }

        let mut next = self.pick_next_task(cpu);
        if next.is_none() {
            // idle_balance: about to go idle, try to pull work first.
            if self.load_balance(cpu, now) > 0 {
                next = self.pick_next_task(cpu);
            }
        }
        let next = next.unwrap_or(self.rqs[cpu].idle.pick_next());
        self.set_next_task(cpu, next, now);
        if next != prev {
            self.rqs[cpu].nr_switches += 1;
            self.rqs[cpu].curr = next;
            // finish_task_switch: drop a dead prev that was already released.
            if let Some(i) = self.dead_pending.iter().position(|&d| d == prev) {
                self.dead_pending.swap_remove(i);
                self.free_task(prev);
            }
        }
        next
    }

    // ----- need_resched and preemption --------------------------------------

    /// `resched_curr`: set TIF_NEED_RESCHED on the CPU's current task; a
    /// remote CPU also needs an IPI (see [`Scheduler::take_resched_ipis`]).
    pub fn resched_curr(&mut self, cpu: usize) {
        let curr = self.rqs[cpu].curr;
        self.tm(curr).need_resched = true;
        self.ipi_pending |= 1 << cpu;
    }

    /// `kick_process`: if task `id` is running on a CPU, that CPU is to look
    /// at its pending work (a signal, a new parent) before it next returns
    /// to user space: it joins the CPUs [`Scheduler::take_resched_ipis`]
    /// gives, as in Linux, where `kick_process` sends the reschedule IPI.
    pub fn kick_process(&mut self, id: TaskId) {
        if let Some(t) = self.tasks.get(&id)
            && self.rqs[t.cpu].curr == id
        {
            self.ipi_pending |= 1 << t.cpu;
        }
    }

    /// CPUs that were asked to reschedule (or kicked) since the last call;
    /// the glue sends a reschedule SGI to the ones other than itself.
    pub fn take_resched_ipis(&mut self) -> CpuMask {
        CpuMask(core::mem::take(&mut self.ipi_pending))
    }

    /// `need_resched()` for the CPU's current task: checked on return to user
    /// space (user preemption).
    pub fn need_resched(&self, cpu: usize) -> bool {
        self.t(self.rqs[cpu].curr).need_resched
    }

    pub fn preempt_count(&self, cpu: usize) -> u32 {
        self.t(self.rqs[cpu].curr).preempt_count
    }

    /// `preempt_disable`.
    pub fn preempt_disable(&mut self, cpu: usize) {
        let curr = self.rqs[cpu].curr;
        self.tm(curr).preempt_count += PREEMPT_OFFSET;
    }

    /// `preempt_enable`: true if the caller must now call `schedule`
    /// (`preempt_schedule`: count back to zero and need_resched set).
    pub fn preempt_enable(&mut self, cpu: usize) -> bool {
        let curr = self.rqs[cpu].curr;
        let t = self.tm(curr);
        debug_assert!(t.preempt_count & 0xff > 0, "preempt_enable without disable");
        t.preempt_count -= PREEMPT_OFFSET;
        t.preempt_count == 0 && t.need_resched
    }

    /// `__irq_enter`: count the hard interrupt in preempt_count.
    pub fn irq_enter(&mut self, cpu: usize) {
        let curr = self.rqs[cpu].curr;
        self.tm(curr).preempt_count += HARDIRQ_OFFSET;
    }

    /// `irq_exit`: true if the interrupt may return into `schedule`
    /// (`preempt_schedule_irq`: preempt_count zero and need_resched).
    pub fn irq_exit(&mut self, cpu: usize) -> bool {
        let curr = self.rqs[cpu].curr;
        let t = self.tm(curr);
        t.preempt_count -= HARDIRQ_OFFSET;
        t.preempt_count == 0 && t.need_resched
    }

    /// `local_bh_disable` / `local_bh_enable` (softirq count).
    pub fn local_bh_disable(&mut self, cpu: usize) {
        let curr = self.rqs[cpu].curr;
        self.tm(curr).preempt_count += SOFTIRQ_OFFSET;
    }
    pub fn local_bh_enable(&mut self, cpu: usize) {
        let curr = self.rqs[cpu].curr;
        self.tm(curr).preempt_count -= SOFTIRQ_OFFSET;
    }

    /// `in_interrupt()`: in hard or soft interrupt context.
    pub fn in_interrupt(&self, cpu: usize) -> bool {
        self.preempt_count(cpu) & (HARDIRQ_MASK | SOFTIRQ_MASK) != 0
    }

    /// `preemptible()`: kernel preemption is allowed only at count zero.
    pub fn preemptible(&self, cpu: usize) -> bool {
        self.preempt_count(cpu) == 0
    }

    // ----- tick ----------------------------------------------------------------

    /// `scheduler_tick`, from the timer interrupt of `cpu`: account the running
    /// task, let its class decide on need_resched, run the CFS period and
    /// deadline replenishment timers, and trigger periodic load balancing.
    pub fn scheduler_tick(&mut self, cpu: usize, now: u64) {
        self.update_curr(cpu, now);
        let curr = self.rqs[cpu].curr;
        let class = self.t(curr).class;
        match class {
            SchedClass::Fair => {
                let rq = &self.rqs[cpu];
                if rq.cfs.curr == Some(curr) && rq.cfs.nr_running > 1 && rq.cfs.check_preempt_tick(&self.t(curr).se) {
                    self.resched_curr(cpu);
                }
            }
            SchedClass::Rt => self.task_tick_rt(cpu, curr),
            SchedClass::Deadline => {
                // update_curr already throttled an exhausted task; an earlier
                // deadline may have arrived too.
                if self.t(curr).dl.dl_throttled {
                    self.resched_curr(cpu);
                }
            }
            SchedClass::Idle => {
                if self.rqs[cpu].nr_running() > 0 {
                    self.resched_curr(cpu);
                }
            }
            SchedClass::Stop => {}
        }
        self.run_dl_timers(now);
        self.run_cfs_period_timers(now);
        if now >= self.rqs[cpu].next_balance {
            self.rqs[cpu].next_balance = now + BALANCE_INTERVAL;
            self.load_balance(cpu, now);
        }
    }

    /// `task_tick_rt`: FIFO runs on; RR loses the CPU to the next task of the
    /// same priority when its slice is used.
    fn task_tick_rt(&mut self, cpu: usize, curr: TaskId) {
        let slice = self.rr_timeslice();
        let t = self.tm(curr);
        if t.policy != SchedPolicy::Rr {
            return;
        }
        t.rt.time_slice = t.rt.time_slice.saturating_sub(1);
        if t.rt.time_slice > 0 {
            return;
        }
        t.rt.time_slice = slice;
        let prio = t.rt_prio_index();
        if !self.rqs[cpu].rt.is_alone(prio) {
            self.rqs[cpu].rt.requeue(curr, prio);
            self.resched_curr(cpu);
        }
    }

    /// `dl_task_timer`: replenish throttled deadline tasks whose next period
    /// has come, and put them back on their run queue.
    fn run_dl_timers(&mut self, now: u64) {
        let due: Vec<TaskId> = self
            .tasks
            .values()
            .filter(|t| t.class == SchedClass::Deadline && t.dl.dl_throttled && t.dl.replenish_at <= now)
            .map(|t| t.id)
            .collect();
        for id in due {
            let t = self.tm(id);
            t.dl.replenish(now);
            let (cpu, on_rq, deadline) = (t.cpu, t.on_rq, t.dl.deadline);
            if on_rq {
                self.rqs[cpu].dl.enqueue(id, deadline);
                self.check_preempt_curr(cpu, id, now);
            }
        }
    }

    fn run_cfs_period_timers(&mut self, now: u64) {
        for g in 0..self.groups.len() {
            if self.groups[g].period_timer(now) {
                self.unthrottle_group(g, now);
            }
        }
    }

    // ----- wakeups ---------------------------------------------------------------

    /// `set_current_state`: the running task announces it is about to sleep
    /// (or is dead); the next `schedule` takes it off the run queue.
    pub fn set_current_state(&mut self, cpu: usize, state: TaskState) {
        let curr = self.rqs[cpu].curr;
        self.tm(curr).state = state;
    }

    pub fn set_task_state(&mut self, id: TaskId, state: TaskState) {
        self.tm(id).state = state;
    }

    /// `check_preempt_curr`: a higher class preempts a lower one; within a
    /// class, the class decides.
    fn check_preempt_curr(&mut self, cpu: usize, id: TaskId, now: u64) {
        let curr = self.rqs[cpu].curr;
        if curr == id {
            return;
        }
        let (p, c) = (self.t(id), self.t(curr));
        let preempt = if p.class != c.class {
            p.class < c.class
        } else {
            match p.class {
                SchedClass::Rt => p.prio < c.prio,
                SchedClass::Deadline => p.dl.deadline < c.dl.deadline,
                SchedClass::Fair => {
                    let c_policy = c.policy;
                    let p_policy = p.policy;
                    if c_policy == SchedPolicy::Idle && p_policy != SchedPolicy::Idle {
                        true
                    } else if p_policy != SchedPolicy::Normal {
                        // check_preempt_wakeup: batch and idle wakees never preempt.
                        false
                    } else {
                        self.update_curr(cpu, now);
                        let (p, c) = (self.t(id), self.t(curr));
                        self.rqs[cpu].cfs.curr == Some(curr) && fair::wakeup_preempt_entity(&c.se, &p.se) == 1
                    }
                }
                SchedClass::Stop | SchedClass::Idle => false,
            }
        };
        if preempt {
            self.resched_curr(cpu);
        }
    }

    /// `select_task_rq` for a wakeup: the previous CPU if it is allowed and
    /// idle, else an idle allowed CPU, else the previous CPU if allowed, else
    /// the least loaded allowed CPU.
    fn select_task_rq(&self, id: TaskId) -> usize {
        let t = self.t(id);
        let prev = t.cpu;
        let mask = t.cpus_allowed;
        let idle = |c: usize| self.rqs[c].nr_running() == 0;
        if mask.contains(prev) && prev < self.rqs.len() && idle(prev) {
            return prev;
        }
        if let Some(c) = mask.iter(self.rqs.len()).find(|&c| idle(c)) {
            return c;
        }
        if mask.contains(prev) && prev < self.rqs.len() {
            return prev;
        }
        self.find_idlest_cpu(mask).unwrap_or(prev)
    }

    /// `find_idlest_cpu`: the allowed CPU with the fewest runnable tasks.
    fn find_idlest_cpu(&self, mask: CpuMask) -> Option<usize> {
        mask.iter(self.rqs.len()).min_by_key(|&c| (self.rqs[c].nr_running(), self.rqs[c].cfs.load.weight))
    }

    /// `try_to_wake_up`: if the task's state is in `state_mask`, make it
    /// runnable on a CPU chosen by `select_task_rq`, and preempt if it should.
    /// Returns whether the task was woken.
    pub fn try_to_wake_up(&mut self, id: TaskId, state_mask: u32, now: u64) -> bool {
        let Some(t) = self.tasks.get_mut(&id) else { return false };
        if t.state.bits() & state_mask == 0 || t.state == TaskState::Running {
            return false;
        }
        if t.on_rq {
            // It set its state but has not yet called schedule (ttwu_remote).
            t.state = TaskState::Running;
            return true;
        }
        let old = t.cpu;
        let cpu = self.select_task_rq(id);
        let mut flags = ENQUEUE_WAKEUP;
        if cpu != old {
            // migrate_task_rq_fair: make vruntime relative to the old queue.
            let min = self.rqs[old].cfs.min_vruntime;
            let t = self.tm(id);
            t.se.vruntime = t.se.vruntime.wrapping_sub(min);
            t.cpu = cpu;
            t.nr_migrations += 1;
            flags |= ENQUEUE_MIGRATED;
        }
        self.tm(id).state = TaskState::Running;
        self.update_rq_clock(cpu, now);
        self.activate_task(cpu, id, flags, now);
        self.check_preempt_curr(cpu, id, now);
        true
    }

    /// `wake_up_process`.
    pub fn wake_up_process(&mut self, id: TaskId, now: u64) -> bool {
        self.try_to_wake_up(id, TASK_NORMAL | TaskState::Stopped.bits(), now)
    }

    // ----- policy and affinity ------------------------------------------------

    /// `sched_setattr` / `sched_setscheduler`: validate (-EINVAL), run the
    /// deadline admission test (-EBUSY), then requeue under the new class.
    pub fn sched_setattr(&mut self, id: TaskId, attr: SchedAttr, now: u64) -> Result<(), Errno> {
        Self::check_attr(&attr)?;
        let t = self.tasks.get(&id).ok_or(Errno::ESRCH)?;
        if matches!(t.class, SchedClass::Idle | SchedClass::Stop) {
            return Err(Errno::EPERM);
        }
        let old_bw = if t.class == SchedClass::Deadline { t.dl.dl_bw } else { 0 };
        let new_dl = (attr.policy == SchedPolicy::Deadline).then(|| {
            let period = if attr.dl_period == 0 { attr.dl_deadline } else { attr.dl_period };
            SchedDlEntity::new(attr.dl_runtime, attr.dl_deadline, period)
        });
        let new_bw = new_dl.map_or(0, |d| to_ratio(d.dl_period, d.dl_runtime));
        let cpus = self.rqs.len();
        if !self.dl_bw.admit(cpus, old_bw, new_bw) {
            return Err(Errno::EBUSY);
        }
        let cpu = t.cpu;
        let queued = t.on_rq;
        let running = self.rqs[cpu].curr == id;
        if queued {
            self.dequeue_task(cpu, id, 0, now);
        }
        let slice = self.rr_timeslice();
        let t = self.tm(id);
        Self::apply_attr(t, &attr);
        if let Some(mut d) = new_dl {
            d.setup_new(now);
            t.dl = d;
        }
        t.rt.time_slice = slice;
        if queued {
            self.enqueue_task(cpu, id, 0, now);
        }
        if running {
            self.resched_curr(cpu);
        } else if queued {
            self.check_preempt_curr(cpu, id, now);
        }
        Ok(())
    }

    /// `set_user_nice`.
    pub fn set_user_nice(&mut self, id: TaskId, nice: i32, now: u64) -> Result<(), Errno> {
        let t = self.tasks.get(&id).ok_or(Errno::ESRCH)?;
        if t.class != SchedClass::Fair {
            // Nice is remembered for RT/DL tasks but has no effect there.
            self.tm(id).static_prio = DEFAULT_PRIO + nice.clamp(-20, 19);
            return Ok(());
        }
        let policy = t.policy;
        self.sched_setattr(id, SchedAttr { policy, ..SchedAttr::normal(nice.clamp(-20, 19)) }, now)
    }

    /// `set_cpus_allowed_ptr`: -EINVAL if no online CPU is in the mask. A
    /// queued task on a now-forbidden CPU moves at once; the running one is
    /// told to reschedule and moves in `schedule`.
    pub fn set_cpus_allowed(&mut self, id: TaskId, mask: CpuMask, now: u64) -> Result<(), Errno> {
        let online = CpuMask(mask.0 & self.all_cpus().0);
        if online.0 == 0 {
            return Err(Errno::EINVAL);
        }
        let t = self.tasks.get_mut(&id).ok_or(Errno::ESRCH)?;
        t.cpus_allowed = online;
        let cpu = t.cpu;
        if online.contains(cpu) {
            return Ok(());
        }
        if self.rqs[cpu].curr == id {
            self.resched_curr(cpu);
        } else if self.t(id).on_rq {
            let dest = self.find_idlest_cpu(online).expect("mask is non-empty");
            self.move_queued_task(id, cpu, dest, now);
        } else {
            // Sleeping: the wakeup will pick an allowed CPU.
            self.tm(id).cpu = online.iter(self.rqs.len()).next().expect("non-empty");
        }
        Ok(())
    }

    /// `move_queued_task`: dequeue from `src` (vruntime made relative), enqueue
    /// on `dst` (made absolute there).
    fn move_queued_task(&mut self, id: TaskId, src: usize, dst: usize, now: u64) {
        self.dequeue_task(src, id, 0, now);
        let t = self.tm(id);
        t.cpu = dst;
        t.nr_migrations += 1;
        self.enqueue_task(dst, id, 0, now);
        self.check_preempt_curr(dst, id, now);
    }

    // ----- load balancing ---------------------------------------------------------

    /// `load_balance` for the fair class, pulling to `this_cpu`: find the
    /// busiest CPU by CFS load, and move queued (not running) tasks that may
    /// run here until half the imbalance is gone. Returns how many moved.
    /// 《Linux内核深度解析》§2.9.5.
    pub fn load_balance(&mut self, this_cpu: usize, now: u64) -> usize {
        let this_load = self.rqs[this_cpu].cfs.load.weight;
        let busiest = (0..self.rqs.len())
            .filter(|&c| c != this_cpu && self.rqs[c].cfs.nr_running > 1)
            .max_by_key(|&c| self.rqs[c].cfs.load.weight);
        let Some(busiest) = busiest else { return 0 };
        let busiest_load = self.rqs[busiest].cfs.load.weight;
        if busiest_load <= this_load {
            return 0;
        }
        let mut imbalance = (busiest_load - this_load) / 2;
        let candidates: Vec<TaskId> = self.rqs[busiest].cfs.queued().map(|(_, id)| id).collect();
        let mut moved = 0;
        for id in candidates {
            if imbalance == 0 {
                break;
            }
            let t = self.t(id);
            // can_migrate_task: affinity, and not the running task.
            if !t.cpus_allowed.contains(this_cpu) || self.rqs[busiest].curr == id {
                continue;
            }
            let load = t.se.load.weight;
            if load / 2 > imbalance {
                continue;
            }
            self.move_queued_task(id, busiest, this_cpu, now);
            imbalance = imbalance.saturating_sub(load);
            moved += 1;
        }
        moved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = NSEC_PER_MSEC;

    fn idle_ids(n: u32) -> Vec<TaskId> {
        (0..n).map(|i| TaskId(1000 + i)).collect()
    }

    /// A scheduler with `n` CPUs and a parent task 1 running on CPU 0.
    fn setup(n: u32) -> Scheduler {
        let mut s = Scheduler::new(1000, &idle_ids(n));
        // The boot task: forked from CPU 0's idle, then scheduled.
        s.sched_fork(TaskId(1), TaskId(1000), 0).unwrap();
        s.set_cpus_allowed(TaskId(1), CpuMask::single(0), 0).unwrap();
        s.wake_up_new_task(TaskId(1), 0);
        assert_eq!(s.schedule(0, 0), TaskId(1));
        s
    }

    fn spawn(s: &mut Scheduler, id: u32, attr: SchedAttr, now: u64) -> TaskId {
        let id = TaskId(id);
        s.sched_fork(id, TaskId(1), now).unwrap();
        s.sched_setattr(id, attr, now).unwrap();
        s.wake_up_new_task(id, now);
        id
    }

    #[test]
    fn classes_pick_in_priority_order() {
        let mut s = setup(1);
        let fair = spawn(&mut s, 2, SchedAttr::normal(0), 0);
        let rt = spawn(&mut s, 3, SchedAttr::rt(SchedPolicy::Fifo, 10), 0);
        let dl = spawn(&mut s, 4, SchedAttr::deadline(MS, 10 * MS, 10 * MS), 0);
        s.init_stop(0, TaskId(5));
        assert!(s.need_resched(0));
        assert_eq!(s.schedule(0, 1), dl);
        s.wake_stop(0, 2);
        assert!(s.need_resched(0));
        assert_eq!(s.schedule(0, 2), TaskId(5));
        s.set_current_state(0, TaskState::Interruptible);
        assert_eq!(s.schedule(0, 3), dl);
        s.set_current_state(0, TaskState::Interruptible);
        assert_eq!(s.schedule(0, 4), rt);
        s.set_current_state(0, TaskState::Interruptible);
        let next = s.schedule(0, 5);
        assert!(next == fair || next == TaskId(1));
    }

    #[test]
    fn task_sched_runtime_counts_only_time_on_the_cpu() {
        let mut s = setup(1);
        let other = spawn(&mut s, 2, SchedAttr::normal(0), 0);
        // Task 1 runs 0..5 ms, then `other` 5..12 ms, then task 1 again.
        assert_eq!(s.task_sched_runtime(TaskId(1), 5 * MS), 5 * MS);
        s.resched_curr(0);
        s.yield_task(0, 5 * MS);
        assert_eq!(s.schedule(0, 5 * MS), other);
        assert_eq!(s.task_sched_runtime(TaskId(1), 12 * MS), 5 * MS, "not running: no time added");
        assert_eq!(s.task_sched_runtime(other, 12 * MS), 7 * MS);
    }

    #[test]
    fn kick_process_names_the_cpu_a_task_runs_on_and_only_that() {
        let mut s = setup(2);
        let other = spawn(&mut s, 2, SchedAttr::normal(0), 0);
        s.set_cpus_allowed(other, CpuMask::single(1), 0).unwrap();
        s.take_resched_ipis();
        // Runnable but not running: its signal is seen when it is switched in.
        s.kick_process(other);
        assert_eq!(s.take_resched_ipis(), CpuMask(0));
        assert_eq!(s.schedule(1, 0), other);
        s.kick_process(other);
        s.kick_process(TaskId(1));
        assert_eq!(s.take_resched_ipis(), CpuMask(0b11));
        assert_eq!(s.take_resched_ipis(), CpuMask(0), "taken once");
        s.kick_process(TaskId(77));
        assert_eq!(s.take_resched_ipis(), CpuMask(0), "no such task");
    }

    #[test]
    fn a_deadline_task_out_of_runtime_on_another_cpu_gets_its_resched_ipi() {
        let mut s = setup(2);
        let dl = spawn(&mut s, 2, SchedAttr::deadline(MS, 10 * MS, 10 * MS), 0);
        s.set_cpus_allowed(dl, CpuMask::single(1), 0).unwrap();
        assert_eq!(s.schedule(1, 0), dl);
        s.take_resched_ipis();
        // CPU 0 reads CPU 1's task's runtime (CLOCK_THREAD_CPUTIME_ID):
        // the update finds the budget spent, and CPU 1 must hear of it.
        s.task_sched_runtime(dl, 2 * MS);
        assert!(s.need_resched(1));
        assert_eq!(s.take_resched_ipis(), CpuMask(0b10));
    }

    std::thread_local! {
        /// Each test thread's fake steal clock, per CPU.
        static STEAL: core::cell::RefCell<[u64; 2]> = const { core::cell::RefCell::new([0; 2]) };
    }

    fn fake_steal(cpu: usize) -> u64 {
        STEAL.with(|s| s.borrow()[cpu])
    }

    fn steal(cpu: usize, ns: u64) {
        STEAL.with(|s| s.borrow_mut()[cpu] += ns);
    }

    #[test]
    fn stolen_time_is_not_charged_to_the_running_task() {
        let mut s = setup(2);
        s.set_steal_clock(fake_steal);
        let other = spawn(&mut s, 2, SchedAttr::normal(0), 0);
        s.set_cpus_allowed(other, CpuMask::single(1), 0).unwrap();
        assert_eq!(s.schedule(1, 0), other);
        // 10 ms of wall time on CPU 0, 3 of them stolen: 7 ms of runtime.
        steal(0, 3 * MS);
        assert_eq!(s.task_sched_runtime(TaskId(1), 10 * MS), 7 * MS);
        // Another CPU's steal is not this one's.
        steal(1, 4 * MS);
        assert_eq!(s.task_sched_runtime(TaskId(1), 12 * MS), 9 * MS);
        assert_eq!(s.task_sched_runtime(other, 12 * MS), 8 * MS, "CPU 1: 12 ms less its 4");
        // Steal beyond the wall delta is clamped, the rest taken out at the
        // next updates: runtime never goes back.
        steal(0, 20 * MS);
        assert_eq!(s.task_sched_runtime(TaskId(1), 17 * MS), 9 * MS);
        assert_eq!(s.task_sched_runtime(TaskId(1), 27 * MS), 9 * MS, "15 ms left to take out of 10");
        assert_eq!(s.task_sched_runtime(TaskId(1), 37 * MS), 14 * MS);
        // vruntime follows the runtime, not the wall clock.
        assert_eq!(s.task(TaskId(1)).unwrap().se.sum_exec_runtime, 14 * MS);
    }

    #[test]
    fn without_a_steal_clock_the_task_clock_is_the_wall_clock() {
        let mut s = setup(1);
        steal(0, 5 * MS); // what a hypervisor would report: not asked for
        assert_eq!(s.task_sched_runtime(TaskId(1), 10 * MS), 10 * MS);
        assert_eq!(s.rq(0).clock_task, s.rq(0).clock);
    }

    #[test]
    fn rt_preempts_fair_on_wakeup() {
        let mut s = setup(1);
        let rt = spawn(&mut s, 2, SchedAttr::rt(SchedPolicy::Fifo, 50), 0);
        assert_eq!(s.schedule(0, 0), rt);
        s.set_current_state(0, TaskState::Interruptible);
        assert_eq!(s.schedule(0, MS), TaskId(1));
        assert!(!s.need_resched(0));
        assert!(s.wake_up_process(rt, 2 * MS));
        assert!(s.need_resched(0));
        assert_eq!(s.schedule(0, 2 * MS), rt);
    }

    #[test]
    fn fifo_runs_on_rr_rotates_each_slice() {
        let mut s = setup(1);
        let a = spawn(&mut s, 2, SchedAttr::rt(SchedPolicy::Fifo, 20), 0);
        let b = spawn(&mut s, 3, SchedAttr::rt(SchedPolicy::Fifo, 20), 0);
        assert_eq!(s.schedule(0, 0), a);
        for tick in 1..=300 {
            s.scheduler_tick(0, tick * MS);
            assert!(!s.need_resched(0), "FIFO must not be preempted by the tick");
        }
        let _ = b;
        // RR at a higher priority, two of them: rotate every 100 ticks.
        let c = spawn(&mut s, 4, SchedAttr::rt(SchedPolicy::Rr, 30), 300 * MS);
        let d = spawn(&mut s, 5, SchedAttr::rt(SchedPolicy::Rr, 30), 300 * MS);
        assert_eq!(s.schedule(0, 300 * MS), c);
        let mut order = Vec::new();
        let mut now = 300 * MS;
        for _ in 0..400 {
            now += MS;
            s.scheduler_tick(0, now);
            if s.need_resched(0) {
                order.push((now - 300 * MS) / MS);
                let n = s.schedule(0, now);
                assert!(n == c || n == d);
            }
        }
        assert_eq!(order, [100, 200, 300, 400]);
        assert_eq!(s.current(0), c);
    }

    #[test]
    fn sched_yield_hands_over_unless_too_unfair() {
        let mut s = setup(1);
        let a = TaskId(1);
        // Alone: the yield keeps the CPU.
        s.yield_task(0, 0);
        assert_eq!(s.schedule(0, 0), a);
        // a runs for 1 ms (min_vruntime moves), then forks b: START_DEBIT
        // puts b a slice (3 ms of vruntime) ahead, more than the 1 ms
        // wakeup granularity, so a's yields keep the CPU until it has
        // caught up; from then on every yield is a switch.
        s.scheduler_tick(0, MS);
        let b = spawn(&mut s, 2, SchedAttr::normal(0), MS);
        let mut now = MS;
        let mut seq = Vec::new();
        for _ in 0..400 {
            now += 10_000;
            s.yield_task(0, now);
            seq.push(s.schedule(0, now));
        }
        let first_b = seq.iter().position(|&t| t == b).expect("b runs");
        assert!(first_b > 100, "a kept the CPU only {first_b} yields");
        for w in seq[first_b..].windows(2) {
            assert_ne!(w[0], w[1], "a yield did not hand over: {seq:?}");
        }
        // The yielder keeps the skip mark until it is picked again.
        let other = if s.current(0) == a { b } else { a };
        assert_eq!(s.rq(0).cfs.skip, Some(other));
    }

    #[test]
    fn sched_yield_rotates_rt_tasks_of_one_priority() {
        let mut s = setup(1);
        let a = spawn(&mut s, 2, SchedAttr::rt(SchedPolicy::Fifo, 20), 0);
        let b = spawn(&mut s, 3, SchedAttr::rt(SchedPolicy::Fifo, 20), 0);
        assert_eq!(s.schedule(0, 0), a);
        s.yield_task(0, 1);
        assert_eq!(s.schedule(0, 1), b);
        s.yield_task(0, 2);
        assert_eq!(s.schedule(0, 2), a);
    }

    #[test]
    fn rt_priority_order() {
        let mut s = setup(1);
        let lo = spawn(&mut s, 2, SchedAttr::rt(SchedPolicy::Fifo, 1), 0);
        let hi = spawn(&mut s, 3, SchedAttr::rt(SchedPolicy::Rr, 99), 0);
        let mid = spawn(&mut s, 4, SchedAttr::rt(SchedPolicy::Fifo, 50), 0);
        let mut seen = Vec::new();
        for i in 0..3 {
            let n = s.schedule(0, i);
            seen.push(n);
            s.set_current_state(0, TaskState::Interruptible);
        }
        assert_eq!(seen, [hi, mid, lo]);
    }

    #[test]
    fn deadline_edf_and_admission() {
        let mut s = setup(1);
        let late = spawn(&mut s, 2, SchedAttr::deadline(2 * MS, 30 * MS, 30 * MS), 0);
        let early = spawn(&mut s, 3, SchedAttr::deadline(2 * MS, 10 * MS, 10 * MS), 0);
        assert_eq!(s.schedule(0, 0), early);
        // 2/30 + 2/10 + 0.7 > 0.95: refused.
        let id = TaskId(4);
        s.sched_fork(id, TaskId(1), 0).unwrap();
        assert_eq!(s.sched_setattr(id, SchedAttr::deadline(7 * MS, 10 * MS, 10 * MS), 0), Err(Errno::EBUSY));
        assert_eq!(s.sched_setattr(id, SchedAttr::deadline(5 * MS, 10 * MS, 10 * MS), 0), Ok(()));
        assert_eq!(s.sched_setattr(id, SchedAttr::deadline(5 * MS, 4 * MS, 10 * MS), 0), Err(Errno::EINVAL));
        // The early task exhausts its 2 ms and is throttled until 10 ms.
        s.scheduler_tick(0, MS);
        assert!(!s.need_resched(0));
        s.scheduler_tick(0, 2 * MS);
        assert!(s.need_resched(0));
        assert_eq!(s.schedule(0, 2 * MS), late);
        s.scheduler_tick(0, 10 * MS);
        // Replenished with deadline 20 ms < 30 ms: preempts the late one.
        assert!(s.need_resched(0));
        assert_eq!(s.schedule(0, 10 * MS), early);
    }

    #[test]
    fn fair_wakeup_preemption_and_tick() {
        let mut s = setup(1);
        let b = spawn(&mut s, 2, SchedAttr::normal(0), 0);
        // START_DEBIT: the child does not preempt its parent at once.
        assert!(!s.need_resched(0));
        let mut now = 0;
        let mut switches = 0;
        for _ in 0..60 {
            now += MS;
            s.scheduler_tick(0, now);
            if s.need_resched(0) {
                s.schedule(0, now);
                switches += 1;
            }
        }
        assert!(switches >= 15, "two nice-0 tasks alternate every ~3 ms: {switches}");
        // b sleeps for a long time, then wakes: sleeper credit makes it preempt.
        while s.current(0) != b {
            now += MS;
            s.scheduler_tick(0, now);
            if s.need_resched(0) {
                s.schedule(0, now);
            }
        }
        s.set_current_state(0, TaskState::Interruptible);
        assert_eq!(s.schedule(0, now), TaskId(1));
        for _ in 0..50 {
            now += MS;
            s.scheduler_tick(0, now);
        }
        s.try_to_wake_up(b, TASK_NORMAL, now);
        assert!(s.need_resched(0));
    }

    #[test]
    fn preempt_count_gates_kernel_preemption() {
        let mut s = setup(1);
        spawn(&mut s, 2, SchedAttr::rt(SchedPolicy::Fifo, 1), 0);
        s.preempt_disable(0);
        s.preempt_disable(0);
        assert!(!s.preemptible(0));
        assert!(!s.preempt_enable(0));
        assert!(s.preempt_enable(0), "count reached zero with need_resched set");
        s.irq_enter(0);
        assert!(s.in_interrupt(0));
        assert!(s.irq_exit(0));
    }

    #[test]
    fn load_balance_pulls_to_idle_cpu_respecting_affinity() {
        let mut s = setup(2);
        // Four tasks pinned to CPU 0 at first.
        let ids: Vec<TaskId> = (2..6).map(|i| spawn(&mut s, i, SchedAttr::normal(0), 0)).collect();
        for &id in &ids {
            s.set_cpus_allowed(id, CpuMask::single(0), 0).unwrap();
        }
        for &id in &ids {
            if s.task(id).unwrap().cpu != 0 {
                // wake_up_new_task may have placed it on CPU 1 before pinning:
                // set_cpus_allowed moved it.
                panic!("task {id:?} not on CPU 0");
            }
        }
        assert_eq!(s.load_balance(1, MS), 0, "pinned tasks must not move");
        // Let two of them run anywhere.
        s.set_cpus_allowed(ids[0], CpuMask::all(), MS).unwrap();
        s.set_cpus_allowed(ids[1], CpuMask::all(), MS).unwrap();
        // CPU 1 is idle: its schedule() runs idle_balance.
        let next = s.schedule(1, 2 * MS);
        assert!(next == ids[0] || next == ids[1]);
        assert_eq!(s.task(next).unwrap().cpu, 1);
        for &id in &ids[2..] {
            assert_eq!(s.task(id).unwrap().cpu, 0);
        }
        // Periodic balancing on CPU 1's tick moves at most the allowed one.
        let mut now = 2 * MS;
        for _ in 0..20 {
            now += MS;
            s.scheduler_tick(1, now);
            s.scheduler_tick(0, now);
        }
        for &id in &ids[2..] {
            assert_eq!(s.task(id).unwrap().cpu, 0);
        }
    }

    #[test]
    fn affinity_change_migrates_running_task() {
        let mut s = setup(2);
        let a = TaskId(2);
        s.sched_fork(a, TaskId(1), 0).unwrap();
        s.set_cpus_allowed(a, CpuMask::all(), 0).unwrap();
        s.wake_up_new_task(a, 0);
        let cpu = s.task(a).unwrap().cpu;
        assert_eq!(cpu, 1, "fork balancing picks the idle CPU");
        let n = s.schedule(cpu, 0);
        assert_eq!(n, a);
        let other = 1 - cpu;
        s.set_cpus_allowed(a, CpuMask::single(other), MS).unwrap();
        assert!(s.need_resched(cpu));
        assert_ne!(s.schedule(cpu, MS), a);
        assert_eq!(s.task(a).unwrap().cpu, other);
        assert_eq!(s.set_cpus_allowed(a, CpuMask(1 << 10), MS), Err(Errno::EINVAL));
    }

    #[test]
    fn bandwidth_throttles_group_and_unthrottles_at_period() {
        let mut s = setup(1);
        // 10 ms per 50 ms for the group of task 2.
        let g = s.create_group(Some(10 * MS), 50 * MS, 0).unwrap();
        let id = TaskId(2);
        s.sched_fork(id, TaskId(1), 0).unwrap();
        s.set_task_group(id, Some(g));
        s.wake_up_new_task(id, 0);
        // The parent sleeps: only the grouped task wants the CPU.
        s.set_current_state(0, TaskState::Interruptible);
        assert_eq!(s.schedule(0, 0), id);
        let mut now = 0;
        let mut ran = 0;
        let mut throttled_at = None;
        while now < 49 * MS {
            now += MS;
            let running = s.current(0) == id;
            s.scheduler_tick(0, now);
            if running {
                ran += 1;
            }
            if s.need_resched(0) {
                s.schedule(0, now);
                if s.group(g).throttled && throttled_at.is_none() {
                    throttled_at = Some(now);
                }
            }
        }
        assert_eq!(ran, 10);
        assert_eq!(throttled_at, Some(10 * MS));
        assert_eq!(s.current(0), TaskId(1000), "idle while throttled");
        now = 50 * MS;
        s.scheduler_tick(0, now);
        assert!(!s.group(g).throttled);
        assert!(s.need_resched(0));
        assert_eq!(s.schedule(0, now), id);
        assert_eq!(s.create_group(Some(10 * MS), 2_000 * MS, 0), Err(Errno::EINVAL));
    }
}

//! The task table: an arena of descriptors indexed by [`TaskId`], a pid →
//! task map, the pid allocator, the pids cgroups, and the pid namespace's
//! child reaper. Boot creates the idle tasks, init (pid 1) and kthreadd (pid 2)
//! as 《Linux内核深度解析》§2.5.1 describes.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::kthread::KthreadCreateList;
use super::pid::PidMap;
use super::pids_limit::PidsHierarchy;
use super::task_struct::{PF_IDLE, PF_KTHREAD, TaskStruct};
use super::{Pid, TaskId};

pub struct TaskTable {
    slots: Vec<Option<TaskStruct>>,
    free_slots: Vec<u32>,
    pid_hash: BTreeMap<Pid, TaskId>,
    pub pidmap: PidMap,
    pub pids_cgroups: PidsHierarchy,
    /// `pid_ns->child_reaper`: init.
    pub child_reaper: Option<TaskId>,
    pub kthreadd: Option<TaskId>,
    pub kthread_create_list: KthreadCreateList,
    /// `nr_threads`: tasks made by `copy_process` and not yet released.
    pub nr_threads: usize,
    /// `max_threads` (kernel/fork.c): `copy_process` refuses with EAGAIN
    /// at this many; set from the RAM size by [`TaskTable::set_max_threads`].
    pub max_threads: usize,
    next_mm: u32,
    /// The `sighand_struct`s, by [`super::signal::SighandId`].
    pub(super) sighands: Vec<Option<super::signal::Sighand>>,
}

/// `MIN_THREADS` (kernel/fork.c): the least `max_threads` can be.
pub const MIN_THREADS: usize = 20;
/// `MAX_THREADS` (kernel/fork.c): `FUTEX_TID_MASK`, the most tids a futex
/// word can name.
pub const MAX_THREADS: usize = 0x3fff_ffff;

impl TaskTable {
    /// The table and one idle task per CPU (pid 0, PF_IDLE | PF_KTHREAD); pass
    /// the returned ids to [`crate::sched::Scheduler::new`].
    pub fn new(pid_max: Pid, nr_cpus: usize) -> (Self, Vec<TaskId>) {
        let mut t = TaskTable {
            slots: Vec::new(),
            free_slots: Vec::new(),
            pid_hash: BTreeMap::new(),
            pidmap: PidMap::new(pid_max),
            pids_cgroups: PidsHierarchy::new(),
            child_reaper: None,
            kthreadd: None,
            kthread_create_list: KthreadCreateList::default(),
            nr_threads: 0,
            max_threads: MAX_THREADS,
            next_mm: 1,
            sighands: Vec::new(),
        };
        let idle = (0..nr_cpus)
            .map(|cpu| {
                let id = t.alloc_slot();
                let mut ts = TaskStruct::new(id, 0, if cpu == 0 { "swapper/0" } else { "swapper" });
                ts.flags = PF_IDLE | PF_KTHREAD;
                ts.sighand = t.new_sighand();
                t.slots[id.0 as usize] = Some(ts);
                id
            })
            .collect();
        (t, idle)
    }

    /// `set_max_threads` (kernel/fork.c, from `fork_init`): the kernel
    /// stacks of all threads may take at most an eighth of RAM, so
    /// `max_threads` = RAM / (8 * THREAD_SIZE), clamped to
    /// [`MIN_THREADS`]..=[`MAX_THREADS`]. A fork bomb meets EAGAIN there, as
    /// on Linux (128 MiB and 32 KiB stacks: 512).
    pub fn set_max_threads(&mut self, ram_bytes: u64, thread_size: usize) {
        let threads = ram_bytes / (8 * thread_size as u64);
        self.max_threads = (threads as usize).clamp(MIN_THREADS, MAX_THREADS);
    }

    fn alloc_slot(&mut self) -> TaskId {
        if let Some(i) = self.free_slots.pop() {
            return TaskId(i);
        }
        self.slots.push(None);
        TaskId(self.slots.len() as u32 - 1)
    }

    /// Put a new descriptor in the arena and the pid hash.
    pub(super) fn insert(&mut self, mut ts: TaskStruct) -> TaskId {
        let id = self.alloc_slot();
        ts.id = id;
        if ts.group_leader == TaskId(u32::MAX) {
            ts.group_leader = id;
        }
        self.pid_hash.insert(ts.pid, id);
        self.slots[id.0 as usize] = Some(ts);
        id
    }

    /// Drop a descriptor (`put_task_struct` after `release_task`).
    pub(super) fn remove(&mut self, id: TaskId) -> TaskStruct {
        let ts = self.slots[id.0 as usize].take().expect("removing a free slot");
        if self.pid_hash.get(&ts.pid) == Some(&id) {
            self.pid_hash.remove(&ts.pid);
        }
        self.free_slots.push(id.0);
        ts
    }

    pub(super) fn new_mm(&mut self) -> super::task_struct::MmHandle {
        self.next_mm += 1;
        super::task_struct::MmHandle(self.next_mm)
    }

    pub fn get(&self, id: TaskId) -> Option<&TaskStruct> {
        self.slots.get(id.0 as usize).and_then(|s| s.as_ref())
    }
    pub fn get_mut(&mut self, id: TaskId) -> Option<&mut TaskStruct> {
        self.slots.get_mut(id.0 as usize).and_then(|s| s.as_mut())
    }
    /// `find_task_by_vpid`.
    pub fn find_by_pid(&self, pid: Pid) -> Option<TaskId> {
        self.pid_hash.get(&pid).copied()
    }
    pub fn len(&self) -> usize {
        self.pid_hash.len()
    }
    pub fn is_empty(&self) -> bool {
        self.pid_hash.is_empty()
    }
    /// `for_each_process`-like iteration over live descriptors.
    pub fn iter(&self) -> impl Iterator<Item = &TaskStruct> {
        self.slots.iter().filter_map(|s| s.as_ref())
    }

    pub(super) fn ts(&self, id: TaskId) -> &TaskStruct {
        self.get(id).expect("stale task id")
    }
    pub(super) fn tsm(&mut self, id: TaskId) -> &mut TaskStruct {
        self.get_mut(id).expect("stale task id")
    }
}

//! Kernel threads through kthreadd.
//!
//! LKD ch. 3, "Kernel Threads": kernel threads have no address space and are
//! all forked by kthreadd; `kthread_create` queues a request on
//! `kthread_create_list` and wakes kthreadd, which forks the thread. The new
//! thread sleeps until someone calls `wake_up_process` on it.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

use super::fork::{CLONE_FILES, CLONE_FS, CLONE_UNTRACED, CLONE_VM};
use super::task_struct::PF_KTHREAD;
use super::{Errno, TaskId, TaskTable};
use crate::sched::{CpuMask, Scheduler, TaskState};

/// A kernel thread's function (`threadfn`), entered with its argument on
/// the thread's own stack.
pub type ThreadFn = extern "C" fn(usize);

/// `struct kthread_create_info`.
#[derive(Clone, Debug)]
pub struct KthreadCreateInfo {
    pub name: String,
    /// The function the thread runs.
    pub threadfn: ThreadFn,
    /// Bind to this CPU (`kthread_create_on_cpu`).
    pub cpu: Option<usize>,
    /// Ticket returned to the requester.
    pub ticket: u64,
}

#[derive(Default)]
pub struct KthreadCreateList {
    queue: VecDeque<KthreadCreateInfo>,
    next_ticket: u64,
    /// Finished requests: ticket → the new thread or the error.
    done: Vec<(u64, Result<TaskId, Errno>)>,
    /// The thread function each kthread runs.
    pub threadfns: Vec<(TaskId, ThreadFn)>,
}

impl TaskTable {
    /// `kthread_create[_on_cpu]`: queue a request and wake kthreadd. Returns
    /// a ticket; the caller waits (in Linux, on a completion) until
    /// [`TaskTable::kthread_result`] has the answer.
    pub fn kthread_create(
        &mut self,
        sched: &mut Scheduler,
        name: &str,
        threadfn: ThreadFn,
        cpu: Option<usize>,
        now: u64,
    ) -> u64 {
        let l = &mut self.kthread_create_list;
        l.next_ticket += 1;
        let ticket = l.next_ticket;
        l.queue.push_back(KthreadCreateInfo { name: String::from(name), threadfn, cpu, ticket });
        if let Some(k) = self.kthreadd {
            sched.wake_up_process(k, now);
        }
        ticket
    }

    /// The body of kthreadd's loop, run in kthreadd's context on `cpu`: fork
    /// every queued request, then sleep again. Returns the new threads.
    pub fn kthreadd_run(&mut self, sched: &mut Scheduler, cpu: usize, now: u64) -> Vec<TaskId> {
        let me = sched.current(cpu);
        debug_assert_eq!(Some(me), self.kthreadd);
        let mut created = Vec::new();
        while let Some(req) = self.kthread_create_list.queue.pop_front() {
            let flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_UNTRACED;
            let res = self.copy_process(sched, me, flags, now).inspect(|&id| {
                let t = self.tsm(id);
                t.comm = req.name.clone();
                t.flags |= PF_KTHREAD;
                t.mm = None;
                // __kthread_create_on_node: the new thread waits, asleep,
                // until its creator calls wake_up_process.
                sched.set_task_state(id, TaskState::Uninterruptible);
                if let Some(c) = req.cpu {
                    let _ = sched.set_cpus_allowed(id, CpuMask::single(c), now);
                }
            });
            if let Ok(id) = res {
                self.kthread_create_list.threadfns.push((id, req.threadfn));
                created.push(id);
            }
            self.kthread_create_list.done.push((req.ticket, res));
        }
        sched.set_current_state(cpu, TaskState::Interruptible);
        created
    }

    /// The outcome of a `kthread_create` request, once kthreadd has run.
    /// True when no kthread_create request is queued.
    pub fn kthread_create_list_is_empty(&self) -> bool {
        self.kthread_create_list.queue.is_empty()
    }

    pub fn kthread_result(&mut self, ticket: u64) -> Option<Result<TaskId, Errno>> {
        let l = &mut self.kthread_create_list;
        let i = l.done.iter().position(|(t, _)| *t == ticket)?;
        Some(l.done.swap_remove(i).1)
    }
}

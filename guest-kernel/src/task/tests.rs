//! Host tests of the process core: fork/clone rules, pids, the pids limit,
//! exit, reparenting order, wait4 and kthreadd.

use super::exit::{WNOHANG, WaitPid, WaitResult};
use super::fork::*;
use super::task_struct::*;
use super::*;
use crate::sched::Scheduler;

struct Sys {
    tasks: TaskTable,
    sched: Scheduler,
    init: TaskId,
    kthreadd: TaskId,
}

fn boot(pid_max: Pid) -> Sys {
    let (mut tasks, idle) = TaskTable::new(pid_max, 2);
    let mut sched = Scheduler::new(100, &idle);
    let (init, kthreadd) = tasks.rest_init(&mut sched, 0).unwrap();
    Sys { tasks, sched, init, kthreadd }
}

impl Sys {
    fn clone(&mut self, parent: TaskId, flags: u64) -> Result<TaskId, Errno> {
        let c = self.tasks.copy_process(&mut self.sched, parent, flags, 0)?;
        self.sched.wake_up_new_task(c, 0);
        Ok(c)
    }
    fn fork(&mut self, parent: TaskId) -> TaskId {
        self.clone(parent, u64::from(SIGCHLD)).unwrap()
    }
    fn thread(&mut self, parent: TaskId) -> TaskId {
        self.clone(parent, CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD).unwrap()
    }
    fn exit(&mut self, id: TaskId, code: i32) {
        self.tasks.do_exit(&mut self.sched, id, exit_status(code), 0).unwrap();
    }
    fn t(&self, id: TaskId) -> &TaskStruct {
        self.tasks.get(id).unwrap()
    }
    fn parent(&self, id: TaskId) -> TaskId {
        self.t(id).real_parent.unwrap()
    }
    fn wait(&mut self, who: TaskId, pid: Pid, options: u32) -> Result<WaitResult, Errno> {
        self.tasks.wait4(&mut self.sched, who, WaitPid::from_raw(pid, self.tasks.pgid(who)), options, 0)
    }
}

#[test]
fn boot_creates_init_and_kthreadd() {
    let s = boot(PID_MAX);
    assert_eq!(s.t(s.init).pid, 1);
    assert_eq!(s.t(s.kthreadd).pid, 2);
    assert!(s.t(s.init).signal_unkillable);
    assert!(s.t(s.kthreadd).is_kthread());
    assert_eq!(s.tasks.child_reaper, Some(s.init));
}

const PID_MAX: Pid = pid::PID_MAX_DEFAULT;

#[test]
fn clone_flag_rules() {
    let mut s = boot(PID_MAX);
    let p = s.fork(s.init);
    s.tasks.exec(&mut s.sched, p, 0);
    assert!(!s.t(p).is_kthread() && s.t(p).mm.is_some());
    assert_eq!(s.clone(p, CLONE_THREAD | CLONE_VM), Err(Errno::EINVAL));
    assert_eq!(s.clone(p, CLONE_SIGHAND), Err(Errno::EINVAL));
    assert_eq!(s.clone(p, CLONE_NEWNS | CLONE_FS), Err(Errno::EINVAL));
    assert_eq!(s.clone(s.init, CLONE_PARENT), Err(Errno::EINVAL), "init has no siblings");
    // ... but it may have threads, unkillable like it.
    let init_thread = s.thread(s.init);
    assert!(s.t(init_thread).signal_unkillable && s.t(init_thread).tgid == 1);
    // A thread shares tgid and mm; its parent is the creator's parent.
    let th = s.thread(p);
    assert_eq!(s.t(th).tgid, s.t(p).pid);
    assert_ne!(s.t(th).pid, s.t(p).pid);
    assert_eq!(s.t(th).mm, s.t(p).mm);
    assert_eq!(s.parent(th), s.init);
    assert_eq!(s.t(th).exit_signal, -1);
    assert_eq!(s.t(p).thread_group, [th]);
    // CLONE_PARENT makes a sibling.
    let sib = s.clone(p, CLONE_PARENT | u64::from(SIGCHLD)).unwrap();
    assert_eq!(s.parent(sib), s.init);
    assert_eq!(s.t(sib).tgid, s.t(sib).pid);
    // A plain fork: new mm, child of the caller, children kept in order.
    let c1 = s.fork(p);
    let c2 = s.fork(p);
    assert_ne!(s.t(c1).mm, s.t(p).mm);
    assert_eq!(s.t(p).children, [c1, c2]);
}

#[test]
fn zombie_until_wait4_with_sigchld() {
    let mut s = boot(PID_MAX);
    let p = s.fork(s.init);
    let c = s.fork(p);
    let cpid = s.t(c).pid;
    // SIGCHLD is ignored by default, so not even queued: catch it.
    catch(&mut s, p, SIGCHLD);
    assert_eq!(s.wait(p, -1, WNOHANG), Ok(WaitResult::NoneYet));
    assert_eq!(s.wait(p, -1, 0), Ok(WaitResult::MustSleep));
    s.exit(c, 3);
    assert_eq!(s.t(c).exit_state, ExitState::Zombie);
    assert!(s.tasks.signal_pending(p), "SIGCHLD");
    assert!(s.tasks.pidmap.is_allocated(cpid), "a zombie keeps its pid");
    assert_eq!(s.wait(p, cpid + 100, 0), Err(Errno::ECHILD));
    assert_eq!(s.wait(p, cpid, 0), Ok(WaitResult::Reaped { pid: cpid, status: 3 << 8 }));
    assert!(!s.tasks.pidmap.is_allocated(cpid), "reaping frees the pid");
    assert!(s.tasks.find_by_pid(cpid).is_none());
    assert_eq!(s.wait(p, -1, 0), Err(Errno::ECHILD));
    assert_eq!(s.wait(p, -1, WNOHANG), Err(Errno::ECHILD));
}

#[test]
fn wait4_sleeper_is_woken_by_child_exit() {
    let mut s = boot(PID_MAX);
    let p = s.fork(s.init);
    let c = s.fork(p);
    // Make p the current task of its CPU and let it block in wait4.
    let cpu = s.sched.task(p).unwrap().cpu;
    while s.sched.current(cpu) != p {
        s.sched.set_current_state(cpu, TaskState::Interruptible);
        s.sched.schedule(cpu, 0);
    }
    assert_eq!(s.wait(p, -1, 0), Ok(WaitResult::MustSleep));
    let mut q = core::mem::take(&mut s.tasks.get_mut(p).unwrap().wait_chldexit);
    q.prepare_to_wait(&mut s.sched, cpu, TaskState::Interruptible, false);
    s.tasks.get_mut(p).unwrap().wait_chldexit = q;
    s.sched.schedule(cpu, 0);
    assert!(!s.sched.task(p).unwrap().on_rq);
    s.exit(c, 0);
    assert!(s.sched.task(p).unwrap().on_rq, "exit_notify woke the parent");
    assert!(matches!(s.wait(p, -1, 0), Ok(WaitResult::Reaped { .. })));
}

#[test]
fn reparent_to_live_thread_first() {
    let mut s = boot(PID_MAX);
    let p = s.fork(s.init);
    let th = s.thread(p);
    let c = s.fork(p);
    s.exit(p, 0);
    assert_eq!(s.parent(c), th, "a live thread of the group adopts");
    assert!(s.t(th).children.contains(&c));
}

#[test]
fn reparent_to_nearest_subreaper_then_init() {
    let mut s = boot(PID_MAX);
    let far = s.fork(s.init);
    s.tasks.get_mut(far).unwrap().is_child_subreaper = true;
    let near = s.fork(far);
    s.tasks.get_mut(near).unwrap().is_child_subreaper = true;
    let mid = s.fork(near);
    let p = s.fork(mid);
    let c = s.fork(p);
    assert!(s.t(p).has_child_subreaper);
    s.exit(p, 0);
    assert_eq!(s.parent(c), near, "nearest subreaper");
    // Without subreapers, orphans go to init.
    let q = s.fork(s.init);
    let qc = s.fork(q);
    s.exit(q, 0);
    assert_eq!(s.parent(qc), s.init);
    // An exiting subreaper is skipped for the next one up.
    let c2 = s.fork(mid);
    s.tasks.get_mut(near).unwrap().flags |= PF_EXITING;
    s.exit(mid, 0);
    assert_eq!(s.parent(c2), far);
}

#[test]
fn orphaned_zombie_is_reaped_by_init() {
    let mut s = boot(PID_MAX);
    let p = s.fork(s.init);
    let c = s.fork(p);
    let cpid = s.t(c).pid;
    let init = s.init;
    catch(&mut s, init, SIGCHLD);
    s.exit(c, 7);
    s.exit(p, 0);
    // c was a zombie when p died: init got it and was notified.
    assert_eq!(s.parent(c), s.init);
    assert!(s.tasks.signal_pending(s.init), "SIGCHLD");
    let mut reaped = Vec::new();
    while let Ok(WaitResult::Reaped { pid, status }) = s.wait(init, -1, WNOHANG) {
        reaped.push((pid, status));
    }
    assert!(reaped.contains(&(cpid, 7 << 8)));
}

#[test]
fn threads_autoreap_and_leader_waits_for_group() {
    let mut s = boot(PID_MAX);
    let p = s.fork(s.init);
    let th = s.thread(p);
    let thpid = s.t(th).pid;
    let init = s.init;
    // The leader exits first: not reported while a thread lives.
    s.exit(p, 0);
    assert_eq!(s.t(p).exit_state, ExitState::Zombie);
    assert_eq!(s.wait(init, -1, WNOHANG), Ok(WaitResult::NoneYet));
    s.exit(th, 0);
    assert!(s.tasks.find_by_pid(thpid).is_none(), "threads are auto-reaped");
    assert!(matches!(s.wait(init, -1, WNOHANG), Ok(WaitResult::Reaped { .. })));
    // A group exit's code is what wait4 reports, whoever died last and how
    // (the leader here first exited with 0).
    let p = s.fork(s.init);
    let ppid = s.t(p).pid;
    let th = s.thread(p);
    s.exit(p, 0);
    s.tasks.get_mut(p).unwrap().group_exit_code = Some(exit_status(7));
    s.exit(th, 7);
    assert_eq!(s.wait(init, ppid, WNOHANG), Ok(WaitResult::Reaped { pid: ppid, status: exit_status(7) }));
}

#[test]
fn init_cannot_be_killed() {
    let mut s = boot(PID_MAX);
    let (sched, tasks) = (&mut s.sched, &mut s.tasks);
    assert_eq!(tasks.send_signal(sched, 1, SIGKILL, true, 0), Ok(false));
    assert!(!tasks.get(s.init).unwrap().sigismember(SIGKILL));
    let p = s.fork(s.init);
    let ppid = s.t(p).pid;
    assert_eq!(s.tasks.send_signal(&mut s.sched, ppid, SIGKILL, true, 0), Ok(true));
    assert_eq!(s.tasks.send_signal(&mut s.sched, 9999, SIGKILL, true, 0), Err(Errno::ESRCH));
    assert_eq!(s.tasks.do_exit(&mut s.sched, s.init, 0, 0), Err(Errno::EPERM));
}

#[test]
fn pids_limit_eagain_and_recovery() {
    let mut s = boot(PID_MAX);
    let p = s.fork(s.init);
    let cg = s.tasks.pids_cgroups.create(0, Some(3));
    s.tasks.get_mut(p).unwrap().pids_cgroup = cg;
    s.tasks.pids_cgroups.try_charge(cg).unwrap(); // p itself moves in
    let a = s.fork(p);
    let _b = s.fork(p);
    assert_eq!(s.clone(p, u64::from(SIGCHLD)), Err(Errno::EAGAIN));
    assert_eq!(s.tasks.pids_cgroups.get(cg).counter, 3);
    // A zombie still counts; the charge goes when it is reaped.
    s.exit(a, 0);
    assert_eq!(s.clone(p, u64::from(SIGCHLD)), Err(Errno::EAGAIN));
    assert!(matches!(s.wait(p, -1, 0), Ok(WaitResult::Reaped { .. })));
    assert!(s.clone(p, u64::from(SIGCHLD)).is_ok());
}

#[test]
fn max_threads_eagain_and_recovery() {
    let mut s = boot(PID_MAX);
    // 128 MiB of RAM and 32 KiB kernel stacks: an eighth of RAM is 512 stacks.
    s.tasks.set_max_threads(128 << 20, 32 << 10);
    assert_eq!(s.tasks.max_threads, 512);
    s.tasks.set_max_threads(1 << 20, 32 << 10);
    assert_eq!(s.tasks.max_threads, super::table::MIN_THREADS, "never below MIN_THREADS");
    let p = s.fork(s.init);
    let room = s.tasks.max_threads - s.tasks.nr_threads;
    let kids: Vec<_> = (0..room).map(|_| s.fork(p)).collect();
    assert_eq!(s.clone(p, u64::from(SIGCHLD)), Err(Errno::EAGAIN));
    // A zombie still counts until it is reaped.
    s.exit(kids[0], 0);
    assert_eq!(s.clone(p, u64::from(SIGCHLD)), Err(Errno::EAGAIN));
    let pid = s.t(kids[0]).pid;
    assert!(matches!(s.wait(p, pid, 0), Ok(WaitResult::Reaped { .. })));
    assert!(s.clone(p, u64::from(SIGCHLD)).is_ok());
    assert_eq!(s.clone(p, u64::from(SIGCHLD)), Err(Errno::EAGAIN));
}

#[test]
fn pid_exhaustion_fails_fork_with_eagain() {
    let mut s = boot(310);
    let p = s.fork(s.init);
    let mut kids = Vec::new();
    loop {
        match s.clone(p, u64::from(SIGCHLD)) {
            Ok(c) => kids.push(c),
            Err(e) => {
                assert_eq!(e, Errno::EAGAIN);
                break;
            }
        }
    }
    assert_eq!(kids.len(), 309 - 3);
    s.exit(kids[0], 0);
    s.wait(p, -1, 0).unwrap();
    // The freed pid (4) is below RESERVED_PIDS: after the wrap it stays free.
    assert_eq!(s.clone(p, u64::from(SIGCHLD)), Err(Errno::EAGAIN));
    let last = *kids.last().unwrap();
    let last_pid = s.t(last).pid;
    s.exit(last, 0);
    s.wait(p, last_pid, 0).unwrap();
    let again = s.clone(p, u64::from(SIGCHLD)).unwrap();
    assert_eq!(s.t(again).pid, last_pid);
}

#[test]
fn vfork_parent_sleeps_until_child_exits() {
    let mut s = boot(PID_MAX);
    let cpu = 0;
    let init = s.init;
    while s.sched.current(cpu) != init {
        s.sched.set_current_state(cpu, TaskState::Interruptible);
        s.sched.schedule(cpu, 0);
    }
    let r = s.tasks.kernel_clone(&mut s.sched, cpu, CLONE_VM | CLONE_VFORK | u64::from(SIGCHLD), 0).unwrap();
    assert!(r.vfork_wait);
    s.sched.schedule(cpu, 0);
    assert!(!s.sched.task(init).unwrap().on_rq, "parent blocked in vfork");
    s.exit(r.child, 0);
    assert!(s.sched.task(init).unwrap().on_rq, "vfork_done completed");
}

extern "C" fn a_kthread(_: usize) {}

#[test]
fn kthreadd_creates_kernel_threads() {
    let mut s = boot(PID_MAX);
    let ticket = s.tasks.kthread_create(&mut s.sched, "kworker/0:1", a_kthread, Some(1), 0);
    assert!(s.tasks.kthread_result(ticket).is_none());
    let cpu = s.sched.task(s.kthreadd).unwrap().cpu;
    let kthreadd = s.kthreadd;
    while s.sched.current(cpu) != kthreadd {
        s.sched.set_current_state(cpu, TaskState::Interruptible);
        s.sched.schedule(cpu, 0);
    }
    let made = s.tasks.kthreadd_run(&mut s.sched, cpu, 0);
    assert_eq!(made.len(), 1);
    let k = s.tasks.kthread_result(ticket).unwrap().unwrap();
    assert_eq!(made[0], k);
    assert!(s.t(k).is_kthread() && s.t(k).mm.is_none());
    assert_eq!(s.parent(k), kthreadd);
    assert_eq!(s.sched.task(k).unwrap().state, TaskState::Uninterruptible);
    assert!(s.sched.wake_up_process(k, 0));
    assert_eq!(s.sched.task(k).unwrap().cpu, 1, "bound to its CPU");
}

/// Gives `id` a handler for `sig` (so that the signal is queued).
fn catch(s: &mut Sys, id: TaskId, sig: u32) {
    let a = crate::task::signal::SigAction { handler: 0x1000, ..Default::default() };
    s.tasks.do_sigaction(id, sig, Some(a)).unwrap();
}

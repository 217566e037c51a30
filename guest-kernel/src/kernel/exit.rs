//! Process termination (LKD ch. 3, "Process Termination"; Linux
//! kernel/exit.c): `do_exit`, `do_group_exit`, and the address space's
//! release (`exit_mm`).

use alloc::vec::Vec;

use super::fork::{mm_release_child_tid, mmput};
use super::lock;
use crate::arch::aarch64::cpu::smp_processor_id;
use crate::arch::aarch64::irq::now_ns;
use crate::arch::aarch64::process::{current, poweroff};
use crate::kernel::sched::schedule_locked;
use crate::sched::TaskId;
use crate::task::signal::sigmask;
use crate::task::task_struct::SIGKILL;

/// `exit_mm`: the current task stops using its address space (`task.mm`
/// = None); the last user unmaps it, with no lock held. The page tables
/// stay until the CPU switches away from them (`set_current_mm` in the
/// context switch drops the last reference).
pub fn exit_mm(me: TaskId) {
    let last = {
        let mut k = lock();
        let Some(h) = k.tasks.get_mut(me).and_then(|t| t.mm.take()) else { return };
        mmput(&mut k, h)
    };
    if let Some(m) = last {
        m.exit_mmap();
    }
}

/// `do_exit` for the current task with wait status `status`; never returns.
/// init's exit powers the machine off, as Linux panics ("Attempted to kill
/// init!") — after saying why.
pub fn do_exit(status: i32) -> ! {
    mm_release_child_tid();
    exit_mm(current());
    let mut k = lock();
    let cpu = smp_processor_id();
    let me = k.sched.current(cpu);
    let pid = k.tasks.get(me).map_or(0, |t| t.pid);
    super::fs::exit_files(&mut k, me);
    // disassociate_ctty: the session leader's last thread leaves its
    // terminal to the next session.
    if let Some(ts) = k.tasks.get(me)
        && ts.thread_group_leader()
        && ts.thread_group.is_empty()
        && ts.pid == ts.sid
        && ts.ctty
    {
        let sid = ts.sid;
        crate::arch::aarch64::tty::session_leader_exit(&mut k, sid);
    }
    let t = now_ns();
    let k2 = &mut *k;
    if k2.tasks.do_exit(&mut k2.sched, me, status, t).is_err() {
        drop(k);
        let (code, sig) = ((status >> 8) & 0xff, status & 0x7f);
        if sig != 0 {
            crate::println!("guest-kernel: init (pid 1) killed by signal {sig}; powering off");
        } else {
            crate::println!("guest-kernel: init (pid 1) exited with status {code}; powering off");
        }
        poweroff();
    }
    k.oom_victims.retain(|&p| p != pid);
    schedule_locked(&mut k);
    unreachable!("a dead task was scheduled");
}

/// `do_group_exit`: SIGKILL every other thread of the group, then exit.
/// The first caller records its status as the group's (`group_exit_code`,
/// SIGNAL_GROUP_EXIT); the threads it kills, dying through here too, exit
/// with that status instead of SIGKILL's, as in Linux.
pub fn do_group_exit(status: i32) -> ! {
    let status = {
        let mut k = lock();
        let me = current();
        let t = now_ns();
        let leader = k.tasks.get(me).map(|t| t.group_leader);
        let group = leader.and_then(|l| k.tasks.get_mut(l));
        match group {
            Some(l) if l.group_exit_code.is_some() => l.group_exit_code.unwrap_or(status),
            Some(l) => {
                l.group_exit_code = Some(status);
                let mut threads: Vec<TaskId> = l.thread_group.clone();
                threads.push(l.id);
                for th in threads.into_iter().filter(|&th| th != me) {
                    if let Some(tt) = k.tasks.get_mut(th) {
                        tt.pending.signal |= sigmask(SIGKILL);
                    }
                    k.sched.wake_up_process(th, t);
                    k.sched.kick_process(th);
                }
                status
            }
            None => status,
        }
    };
    do_exit(status)
}

//! The OOM killer (Linux mm/oom_kill.c `out_of_memory`): the pure
//! badness choice (`crate::mm::oom`) over the live processes, and SIGKILL
//! to the one chosen.

use alloc::vec::Vec;

use super::KGuard;
use crate::arch::aarch64::irq::now_ns;
use crate::arch::aarch64::memory;
use crate::mm::oom::{OomChoice, OomTask, select_bad_process};
use crate::task::task_struct::{ExitState, SIGKILL};

/// `out_of_memory`: choose the process with the highest badness and kill it.
pub fn out_of_memory(k: &mut KGuard) {
    let victims: Vec<i32> = k.oom_victims.clone();
    let list: Vec<OomTask> = k
        .tasks
        .iter()
        .filter(|t| t.thread_group_leader() && t.exit_state == ExitState::None)
        .map(|t| {
            let rss = t.mm.and_then(|h| k.mms.get(&h.0)).map_or(0, |m| m.page_table_lock.lock().rss());
            OomTask {
                pid: t.pid as u32,
                rss,
                swapents: 0,
                pgtables_bytes: 0,
                oom_score_adj: 0,
                is_kthread: t.is_kthread(),
                oom_victim: victims.contains(&t.pid),
            }
        })
        .collect();
    let total = memory::with_pages(|pa| pa.totalram_pages());
    match select_bad_process(&list, total) {
        OomChoice::Kill(pid, points) => {
            crate::println!("guest-kernel: Out of memory: Killed process {pid} (badness {points})");
            k.oom_victims.push(pid as i32);
            let t = now_ns();
            let k2 = &mut **k;
            let _ = k2.tasks.send_signal(&mut k2.sched, pid as i32, SIGKILL, false, t);
        }
        OomChoice::Wait(_) => {}
        OomChoice::NoVictim => {
            crate::println!("guest-kernel: Out of memory and no killable processes");
        }
    }
}

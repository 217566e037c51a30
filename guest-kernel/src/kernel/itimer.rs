//! ITIMER_REAL (Linux kernel/time/itimer.c): a process's real-time
//! interval timer, on the timer wheel; when it expires the process gets
//! SIGALRM (`it_real_fn`), and a periodic one is armed again. The state is
//! on the thread-group leader ([`ItimerReal`]); a timer whose process has
//! gone (or re-armed it since) finds a different id there and just frees
//! itself, so a reused pid never gets a stale SIGALRM.

use super::Kernel;
use crate::arch::aarch64::irq::now_ns;
use crate::sched::TaskId;
use crate::syscall::ns_to_sleep_jiffies;
use crate::task::ExitState;
use crate::task::signal::SigInfo;
use crate::task::task_struct::ItimerReal;
use crate::time::TimerId;

/// `SIGALRM`.
const SIGALRM: u32 = 14;

/// `it_real_fn`: the timer of process `tgid` (data) expired.
fn it_real_fn(k: &mut Kernel, data: u64, now: u64) {
    let (tgid, id) = ((data >> 32) as i32, data as u32);
    let leader = k.tasks.find_by_pid(tgid);
    let mine = leader.and_then(|l| k.tasks.get(l)).filter(|t| t.exit_state == ExitState::None);
    let Some(it) = mine.and_then(|t| t.itimer).filter(|it| it.timer == id) else {
        k.wheel.destroy_timer(TimerId(id));
        return;
    };
    let leader = leader.expect("found above");
    let info = SigInfo { signo: SIGALRM, code: 0x80, pid: 0, ..SigInfo::default() }; // SI_KERNEL
    let k2 = &mut *k;
    k2.tasks.send_signal_info(&mut k2.sched, leader, info, true, false, now);
    let next =
        (it.interval != 0).then(|| ItimerReal { expires: it.expires.saturating_add(it.interval).max(now), ..it });
    match next {
        Some(n) => {
            let j = k.jiffies.get() + ns_to_sleep_jiffies(n.expires - now.min(n.expires), k.jiffies.hz());
            k.wheel.add_timer(TimerId(id), j);
            set(k, leader, Some(n));
        }
        None => {
            k.wheel.destroy_timer(TimerId(id));
            set(k, leader, None);
        }
    }
}

fn set(k: &mut Kernel, leader: TaskId, it: Option<ItimerReal>) {
    if let Some(t) = k.tasks.get_mut(leader) {
        t.itimer = it;
    }
}

/// The time left and the interval of `leader`'s timer (ns; 0, 0 if
/// disarmed).
pub fn get(k: &Kernel, leader: TaskId) -> (u64, u64) {
    let now = now_ns();
    k.tasks.get(leader).and_then(|t| t.itimer).map_or((0, 0), |it| (it.expires.saturating_sub(now).max(1), it.interval))
}

/// `do_setitimer(ITIMER_REAL)`: disarm `leader`'s timer, then arm it to
/// expire in `value` ns (0: stay disarmed) and every `interval` ns after.
/// Returns the old (left, interval).
pub fn set_real(k: &mut Kernel, leader: TaskId, value: u64, interval: u64) -> (u64, u64) {
    let old = get(k, leader);
    if let Some(it) = k.tasks.get(leader).and_then(|t| t.itimer) {
        k.wheel.del_timer(TimerId(it.timer));
        k.wheel.destroy_timer(TimerId(it.timer));
        set(k, leader, None);
    }
    if value != 0 {
        let tgid = k.tasks.get(leader).map_or(0, |t| t.tgid);
        // The callback's data: the process and the timer's own id.
        let t = k.wheel.timer_setup(it_real_fn, 0);
        k.wheel.set_data(t, ((tgid as u64) << 32) | u64::from(t.0));
        let j = k.jiffies.get() + ns_to_sleep_jiffies(value, k.jiffies.hz());
        k.wheel.add_timer(t, j);
        set(k, leader, Some(ItimerReal { timer: t.0, expires: now_ns().saturating_add(value), interval }));
    }
    old
}

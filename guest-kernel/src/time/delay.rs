//! Delaying execution. LKD ch. 11, "Delaying Execution": busy loops for short
//! delays (`udelay`, `ndelay`), and `schedule_timeout` / `msleep` that sleep
//! on a timer for long ones.

use super::jiffies::Jiffies;
use super::timer_wheel::{TimerId, TimerWheel};
use crate::sched::{Scheduler, TaskId, TaskState};

/// `udelay`: spin until `us` microseconds have passed on a free-running
/// counter of `freq` Hz (on arm64, CNTVCT_EL0 at CNTFRQ_EL0). Returns the
/// counter ticks that actually elapsed (at least the ones asked for).
pub fn udelay(us: u64, freq: u64, mut read_counter: impl FnMut() -> u64) -> u64 {
    let start = read_counter();
    let ticks = (us * freq).div_ceil(1_000_000);
    loop {
        let elapsed = read_counter().wrapping_sub(start);
        if elapsed >= ticks {
            return elapsed;
        }
        core::hint::spin_loop();
    }
}

/// `schedule_timeout` (first half): arm a timer that will wake the current
/// task of `cpu` after `timeout` jiffies (its callback `function` is to
/// call [`process_timeout`] with the timer's data, the task), set it to
/// `state` and schedule.
/// Returns the timer and the task to switch to. When the task runs again the
/// caller destroys the timer (`del_singleshot_timer_sync`).
#[allow(clippy::too_many_arguments)]
pub fn schedule_timeout<F: Copy>(
    sched: &mut Scheduler,
    wheel: &mut TimerWheel<F>,
    function: F,
    cpu: usize,
    jiffies: u64,
    timeout: u64,
    state: TaskState,
    now: u64,
) -> (TimerId, TaskId) {
    let me = sched.current(cpu);
    let t = wheel.timer_setup(function, u64::from(me.0));
    wheel.add_timer(t, jiffies.wrapping_add(timeout));
    sched.set_current_state(cpu, state);
    (t, sched.schedule(cpu, now))
}

/// `msleep`: an uninterruptible sleep of at least `ms` milliseconds (one
/// extra jiffy, as Linux adds, so that it is never short).
pub fn msleep<F: Copy>(
    sched: &mut Scheduler,
    wheel: &mut TimerWheel<F>,
    function: F,
    j: &Jiffies,
    cpu: usize,
    ms: u64,
    now: u64,
) -> (TimerId, TaskId) {
    let timeout = j.msecs_to_jiffies(ms) + 1;
    schedule_timeout(sched, wheel, function, cpu, j.get(), timeout, TaskState::Uninterruptible, now)
}

/// `process_timeout`: the timer callback that ends a `schedule_timeout`.
pub fn process_timeout(sched: &mut Scheduler, data: u64, now: u64) -> bool {
    sched.wake_up_process(TaskId(data as u32), now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udelay_spins_for_the_counter() {
        let mut c = 0u64;
        let elapsed = udelay(10, 1_000_000, || {
            c += 3;
            c
        });
        assert_eq!(elapsed, 12, "never shorter than 10 µs");
        // Across a counter wrap too.
        let mut c = u64::MAX - 4;
        assert_eq!(
            udelay(2, 1_000_000, || {
                c = c.wrapping_add(1);
                c
            }),
            2
        );
    }

    #[test]
    fn msleep_sleeps_until_the_timer() {
        let mut j = Jiffies::new(100);
        let mut sched = Scheduler::new(100, &[TaskId(50)]);
        sched.sched_fork(TaskId(1), TaskId(50), 0).unwrap();
        sched.wake_up_new_task(TaskId(1), 0);
        assert_eq!(sched.schedule(0, 0), TaskId(1));
        let mut wheel = TimerWheel::new(j.get());
        const PROCESS_TIMEOUT: u32 = 7;
        let (timer, next) = msleep(&mut sched, &mut wheel, PROCESS_TIMEOUT, &j, 0, 20, 0);
        assert_eq!(next, TaskId(50));
        let mut woke_at = None;
        for tick in 1..10 {
            j.do_timer(1);
            for e in wheel.run_timers(j.get()) {
                assert_eq!(e.function, PROCESS_TIMEOUT);
                assert!(process_timeout(&mut sched, e.data, tick));
                woke_at = Some(tick);
            }
            if woke_at.is_some() {
                break;
            }
        }
        // 20 ms at HZ=100 is 2 jiffies, +1, and the wheel fires the tick after.
        assert_eq!(woke_at, Some(4));
        assert!(sched.task(TaskId(1)).unwrap().on_rq);
        wheel.destroy_timer(timer);
    }
}

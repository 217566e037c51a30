//! Time: HZ and jiffies with wrap-safe comparisons, the timer wheel of
//! dynamic timers, and delays.
//!
//! LKD ch. 11, "Timers and Time Management". The arch glue calls
//! [`Jiffies::do_timer`] and [`TimerWheel::run_timers`] from the tick (the
//! latter is the TIMER_SOFTIRQ's work) and runs the expired callbacks.

pub mod delay;
pub mod jiffies;
pub mod timer_wheel;

pub use self::jiffies::{Jiffies, time_after, time_after_eq, time_before, time_before_eq};
pub use self::timer_wheel::{TimerId, TimerWheel};

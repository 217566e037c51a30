//! Structured events (feature `trace`, `docs/tracing.md`): [`event!`]
//! logs a `defmt` frame, with its format string interned in the ELF's
//! `.defmt` section, into this CPU's ring (`arch::aarch64::trace`); the
//! rings are printed at power-off and decoded on the host by
//! `scripts/trace`. Without the feature an event compiles to nothing.
//!
//! The events follow Linux's tracepoints of the same names:
//! `sched_switch` (sched/core.c), `mm_page_alloc` and `mm_page_free`
//! (mm/page_alloc.c).

/// Logs a structured event (a `defmt::println!`) when the kernel is built
/// with the `trace` feature; nothing otherwise (the arguments are not
/// evaluated).
#[macro_export]
macro_rules! event {
    ($($arg:tt)*) => {
        #[cfg(feature = "trace")]
        {
            ::defmt::println!($($arg)*);
        }
    };
}

//! Host-side tools for the hypervisor's observability output:
//!
//! - [`trace`]: decodes the exit trace the hypervisor dumps at power-off
//!   (built with the `trace` feature) into a timeline and a histogram;
//! - [`bench`]: turns the `BENCH` lines of the benchmark runs into one
//!   markdown table and a JSON file;
//! - [`doclinks`]: checks the docs' links into the code (`doc-links`);
//! - [`profile`]: maps the PCs QEMU's monitor sampled to the guest kernel's
//!   functions (`scripts/profile`);
//! - [`svg`]: draws a decoded trace as an SVG timeline and bar chart.
//!
//! Instruction counts: under QEMU `-icount shift=0` one nanosecond of
//! virtual time is one instruction, so `ticks * 1e9 / cntfrq` counts
//! instructions (exactly when the counter runs at 1 GHz, as it does for
//! `-cpu max`).

pub mod bench;
pub mod doclinks;
pub mod profile;
pub mod svg;
pub mod trace;

/// Counter ticks to instructions (nanoseconds of virtual time).
pub fn ticks_to_instructions(ticks: f64, cntfrq: u64) -> f64 {
    ticks * 1e9 / cntfrq.max(1) as f64
}

//! System-register access for registers `aarch64-cpu` has no typed wrapper
//! for, or where a plain 64-bit move is all we need (the EL1 context switch).

/// Reads a system register by name: `read_sysreg!(sctlr_el1)`.
macro_rules! read_sysreg {
    ($name:ident) => {{
        let v: u64;
        // SAFETY: reading a system register at EL2 has no side effects.
        unsafe {
            core::arch::asm!(concat!("mrs {}, ", stringify!($name)), out(reg) v, options(nomem, nostack, preserves_flags));
        }
        v
    }};
}

/// Writes a system register by name: `write_sysreg!(sctlr_el1, v)`.
/// Only for registers whose new value cannot break EL2's own execution
/// (EL1/EL0 context, or EL2 controls the caller has reasoned about).
macro_rules! write_sysreg {
    ($name:ident, $v:expr) => {{
        let v: u64 = $v;
        // SAFETY: callers only write guest (EL1/EL0) context or EL2 trap
        // controls, which do not affect the memory safety of EL2 code.
        unsafe {
            core::arch::asm!(concat!("msr ", stringify!($name), ", {}"), in(reg) v, options(nomem, nostack, preserves_flags));
        }
    }};
}

pub(crate) use read_sysreg;
pub(crate) use write_sysreg;

/// Instruction synchronization barrier.
pub fn isb() {
    // SAFETY: a barrier has no effect on memory safety.
    unsafe { core::arch::asm!("isb", options(nostack, preserves_flags)) };
}

/// Data synchronization barrier, inner shareable.
pub fn dsb_ish() {
    // SAFETY: a barrier has no effect on memory safety.
    unsafe { core::arch::asm!("dsb ish", options(nostack, preserves_flags)) };
}

/// The calling CPU's MPIDR affinity bits.
pub fn mpidr() -> u64 {
    read_sysreg!(mpidr_el1) & 0xff_00ff_ffff
}

/// Cleans the data cache lines covering `[start, start + len)` to the point
/// of coherency, so that a CPU with its MMU off sees the data.
pub fn clean_dcache_range(start: usize, len: usize) {
    let line = 64; // smallest D-cache line on the cores we support (CTR_EL0.DminLine >= 4 words)
    let mut a = start & !(line - 1);
    while a < start + len {
        // SAFETY: cache maintenance by VA on mapped memory has no
        // architectural effect on memory contents.
        unsafe { core::arch::asm!("dc cvac, {}", in(reg) a, options(nostack, preserves_flags)) };
        a += line;
    }
    dsb_ish();
}

/// Cleans and invalidates the data cache lines covering `[start, start +
/// len)` to the point of coherency (`DC CIVAC`, ARM ARM C5.3.x), with the
/// line size CTR_EL0.DminLine gives.
pub fn clean_invalidate_dcache_range(start: usize, len: usize) {
    let line = 4usize << ((read_sysreg!(ctr_el0) >> 16) & 0xf);
    let mut a = start & !(line - 1);
    while a < start + len {
        // SAFETY: clean+invalidate by VA writes dirty lines back before
        // dropping them: memory contents are unchanged.
        unsafe { core::arch::asm!("dc civac, {}", in(reg) a, options(nostack, preserves_flags)) };
        a += line;
    }
    dsb_ish();
}

/// Invalidates the data cache lines covering a range (used for memory
/// written with the MMU off before caches are turned on).
pub fn invalidate_dcache_range(start: usize, len: usize) {
    let line = 64;
    let mut a = start & !(line - 1);
    while a < start + len {
        // SAFETY: the range holds no dirty lines we need: it was written
        // with the caches off and cleaned by the loader (booting.rst).
        unsafe { core::arch::asm!("dc ivac, {}", in(reg) a, options(nostack, preserves_flags)) };
        a += line;
    }
    dsb_ish();
}

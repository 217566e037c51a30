//! System-register access: `aarch64-cpu`'s typed registers
//! (`aarch64_cpu::registers::*`, with tock-registers' `Readable`,
//! `Writeable` and `ReadWriteable`) everywhere, and here the few
//! hand-written accessors for what aarch64-cpu 11 does not have.
//!
//! Hand-written, because the crate has no register (or no field) for them:
//!
//! | register | used for | why hand-written |
//! | --- | --- | --- |
//! | [`CNTHP_CVAL_EL2`] | the EL2 physical timer's deadline (timer.rs) | the crate has CNTHP_CTL_EL2 but not CNTHP_CVAL_EL2 |
//! | [`VPIDR_EL2`] | the MIDR_EL1 a guest reads (boot.rs) | not in the crate (it has VMPIDR_EL2 only) |
//! | [`PMCR_EL0`] | PMCR_EL0.N, the PMU counter count for MDCR_EL2.HPMN (boot.rs) | no PMU register in the crate |
//! | [`ICC_DIR_EL1`] | GICv3 deactivation (gic.rs) | the crate has only ICC_CTLR_EL1 and ICC_SRE_EL2 of the GICv3 CPU interface |
//! | [`ICC_CTLR_EL1`] | EOImode, split priority drop and deactivation (gic.rs) | the crate's ICC_CTLR_EL1 is read-only and names only ExtRange |
//! | [`CTR_EL0`] | the D-cache line size (DminLine) for cache maintenance | not in the crate |
//! | `S3_0_C0_C<m>_<n>` ([`read_sysreg!`]) | ID registers read by generic encoding, chosen at run time from a trapped guest read (sysregs.rs) | the crate names only some ID registers, and by name, not by encoding |
//!
//! All but the last are zero-sized values with the crate's interface
//! (`CNTHP_CVAL_EL2.set(x)`, `CTR_EL0.get()`), so their call sites read like
//! every other register's. Fields the crate's registers lack stay named
//! constants or commented literals where they are used: CPTR_EL2.TFP and
//! its RES1 bits (the crate names only TAM; fp.rs, boot.rs), TCR_EL2's RES1
//! bits (mmu.rs), PAR_EL1.PA above bit 47 (exit.rs), the data-abort ISS
//! bits of an injected ESR_EL1 (exit.rs), ICC_CTLR_EL1.EOImode (gic.rs).
//!
//! Like the crate's own accessors these are `mrs`/`msr` with
//! `options(nomem, nostack)`: a system-register move is not a memory access
//! for the compiler, so a write that must be ordered with memory (stage-2,
//! traps, the MMU) is followed by an explicit barrier
//! (`aarch64_cpu::asm::barrier::{isb, dsb}`) at its call site.

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::MPIDR_EL1;
pub use aarch64_cpu::registers::{Readable, Writeable};

/// Reads a system register by assembler name: `read_sysreg!(S3_0_C0_C1_0)`.
/// Only for the registers of the table above; every other register has a
/// typed accessor in `aarch64_cpu::registers`.
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

/// Writes a system register by assembler name: `write_sysreg!(vpidr_el2, v)`.
/// Only for the registers of the table above, and only with values that
/// cannot break EL2's own execution.
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

/// Declares a hand-written register (see the table above) as a zero-sized
/// value implementing the crate's `Readable` and/or `Writeable`, with no
/// named fields (`R = ()`).
macro_rules! hand_written {
    ($(#[$doc:meta])* $name:ident: $asm:ident, $ty:ident, [$($access:ident),+]) => {
        $(#[$doc])*
        pub struct $ty;
        $(#[$doc])*
        pub const $name: $ty = $ty;
        $(hand_written!(@ $access, $asm, $ty);)+
    };
    (@ read, $asm:ident, $ty:ident) => {
        impl Readable for $ty {
            type T = u64;
            type R = ();
            #[inline(always)]
            fn get(&self) -> u64 {
                read_sysreg!($asm)
            }
        }
    };
    (@ write, $asm:ident, $ty:ident) => {
        impl Writeable for $ty {
            type T = u64;
            type R = ();
            #[inline(always)]
            fn set(&self, v: u64) {
                write_sysreg!($asm, v)
            }
        }
    };
}

hand_written!(
    /// Counter-timer Hypervisor Physical Timer CompareValue (ARM ARM D23.8.x).
    CNTHP_CVAL_EL2: cnthp_cval_el2, CnthpCvalEl2, [read, write]
);
hand_written!(
    /// Virtualization Processor ID Register: the MIDR_EL1 EL1 reads.
    VPIDR_EL2: vpidr_el2, VpidrEl2, [write]
);
hand_written!(
    /// Performance Monitors Control Register (read for N, bits [15:11]).
    PMCR_EL0: pmcr_el0, PmcrEl0, [read]
);
hand_written!(
    /// GICv3 Deactivate Interrupt Register (write-only; reading it UNDEFs,
    /// so it implements `Writeable` alone).
    ICC_DIR_EL1: icc_dir_el1, IccDirEl1, [write]
);
hand_written!(
    /// GICv3 CPU Interface Control Register (EOImode, bit 1).
    ICC_CTLR_EL1: icc_ctlr_el1, IccCtlrEl1, [read, write]
);
hand_written!(
    /// Cache Type Register (DminLine, bits [19:16]).
    CTR_EL0: ctr_el0, CtrEl0, [read]
);

/// The calling CPU's MPIDR affinity bits (Aff3..Aff0).
pub fn mpidr() -> u64 {
    use aarch64_cpu::registers::MPIDR_EL1::{Aff0, Aff1, Aff2, Aff3};
    const AFFINITY: u64 =
        (Aff3.mask << Aff3.shift) | (Aff2.mask << Aff2.shift) | (Aff1.mask << Aff1.shift) | (Aff0.mask << Aff0.shift);
    const _: () = assert!(AFFINITY == 0xff_00ff_ffff);
    MPIDR_EL1.get() & AFFINITY
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
    barrier::dsb(barrier::ISH);
}

/// Cleans and invalidates the data cache lines covering `[start, start +
/// len)` to the point of coherency (`DC CIVAC`, ARM ARM C5.3.x), with the
/// line size CTR_EL0.DminLine gives.
pub fn clean_invalidate_dcache_range(start: usize, len: usize) {
    let line = 4usize << ((CTR_EL0.get() >> 16) & 0xf);
    let mut a = start & !(line - 1);
    let end = start + len;
    // Eight lines a round while eight remain (a 2 MiB block of guest RAM
    // at its first touch is 32768 lines: the loop's own instructions were
    // half of it), then one at a time.
    while a + 8 * line <= end {
        // SAFETY: as below, for the eight lines from `a`.
        unsafe {
            core::arch::asm!(
                "dc civac, {a}", "add {a}, {a}, {l}",
                "dc civac, {a}", "add {a}, {a}, {l}",
                "dc civac, {a}", "add {a}, {a}, {l}",
                "dc civac, {a}", "add {a}, {a}, {l}",
                "dc civac, {a}", "add {a}, {a}, {l}",
                "dc civac, {a}", "add {a}, {a}, {l}",
                "dc civac, {a}", "add {a}, {a}, {l}",
                "dc civac, {a}", "add {a}, {a}, {l}",
                a = inout(reg) a,
                l = in(reg) line,
                options(nostack, preserves_flags)
            )
        };
    }
    while a < end {
        // SAFETY: clean+invalidate by VA writes dirty lines back before
        // dropping them: memory contents are unchanged.
        unsafe { core::arch::asm!("dc civac, {}", in(reg) a, options(nostack, preserves_flags)) };
        a += line;
    }
    barrier::dsb(barrier::ISH);
}

/// Zeroes `[start, start + len)` with `DC ZVA` (ARM ARM C6.2 "DC ZVA":
/// one block of DCZID_EL0.BS words per instruction, without reading
/// memory), eight blocks per loop round; plain stores instead when the
/// range is not a multiple of eight blocks or DCZID_EL0.DZP prohibits it.
/// The zeros may stay in the data cache: callers that need them at the
/// point of coherency clean afterwards.
///
/// # Safety
/// The range must be normal memory mapped writable at EL2 that nothing
/// else reads or writes meanwhile.
pub unsafe fn zero_range(start: usize, len: usize) {
    let dczid: u64;
    // SAFETY: reads an identification register.
    unsafe { core::arch::asm!("mrs {}, dczid_el0", out(reg) dczid, options(nomem, nostack, preserves_flags)) };
    let block = 4usize << (dczid & 0xf);
    let round = 8 * block;
    if dczid & (1 << 4) != 0 || !start.is_multiple_of(round) || !len.is_multiple_of(round) {
        // SAFETY: guaranteed by the caller.
        unsafe { core::ptr::write_bytes(start as *mut u8, 0, len) };
        return;
    }
    let end = start + len;
    let mut a = start;
    while a < end {
        // SAFETY: eight blocks inside the range (start and len are multiples
        // of eight blocks), which the caller owns.
        unsafe {
            core::arch::asm!(
                "dc zva, {a}", "add {a}, {a}, {b}",
                "dc zva, {a}", "add {a}, {a}, {b}",
                "dc zva, {a}", "add {a}, {a}, {b}",
                "dc zva, {a}", "add {a}, {a}, {b}",
                "dc zva, {a}", "add {a}, {a}, {b}",
                "dc zva, {a}", "add {a}, {a}, {b}",
                "dc zva, {a}", "add {a}, {a}, {b}",
                "dc zva, {a}", "add {a}, {a}, {b}",
                a = inout(reg) a,
                b = in(reg) block,
                options(nostack, preserves_flags)
            )
        };
    }
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
    barrier::dsb(barrier::ISH);
}

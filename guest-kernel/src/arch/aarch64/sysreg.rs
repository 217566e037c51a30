//! System registers: the guest kernel uses `aarch64-cpu`'s typed registers
//! (`aarch64_cpu::registers::*`) and barriers (`aarch64_cpu::asm::barrier`)
//! everywhere, except for these, which are hand-written because the crate
//! has no accessor for them:
//!
//! | what | where | why hand-written |
//! | --- | --- | --- |
//! | `msr daifset, #imm` / `msr daifclr, #imm`, and the `mrs daif` / `msr daif` of `local_irq_save` / `local_irq_restore` | `cpu::local_irq_*`, `hyptest_core` | the crate has DAIF only as a whole register: a read-modify-write through it is longer than one `msr daifset` and not atomic against an interrupt; and these asm blocks are compiler barriers (no `nomem`), which an IRQ-safe lock's critical section relies on, whereas the crate's accessors are `nomem` |
//! | `S3_0_C0_C<m>_<n>` ([`read_id!`]) | `hyptest_core` | ID registers the crate lacks (ID_AA64ZFR0_EL1, ID_AA64SMFR0_EL1, ID_DFR0_EL1) and unallocated encodings, read to test the hypervisor's ID-register emulation |
//! | FPCR | `hyptest_core`'s `global_asm!` leaf functions | read and written together with the FP/SIMD registers in one assembly function the soft-float kernel cannot express in Rust |
//!
//! Cache and TLB maintenance (`dc`, `ic`, `tlbi`) and MMIO stores that must
//! be single instructions stay inline assembly: they are instructions, not
//! registers, and the crate has none of them.

/// Reads an ID register by its generic name: `read_id!("S3_0_C0_C4_4")`.
macro_rules! read_id {
    ($name:literal) => {{
        let v: u64;
        // SAFETY: reading an ID register has no side effects.
        unsafe { core::arch::asm!(concat!("mrs {}, ", $name), out(reg) v, options(nomem, nostack)) };
        v
    }};
}
pub(crate) use read_id;

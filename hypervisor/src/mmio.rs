//! MMIO trap-and-emulate: what a stage-2 data abort asks of an emulated
//! device.
//!
//! A guest access to an IPA with no stage-2 mapping traps to EL2 as a data
//! abort (EC 0x24). [`decode`] turns the syndrome (ISV = 1) or, failing that,
//! the faulting instruction word (ISV = 0) into an [`MmioAccess`]; the glue
//! then performs it on the device model, writes a load's result back with
//! [`decode::apply_load`], applies any base-register [`Writeback`] and steps
//! the guest PC past the instruction. [`bus`] finds the device an access
//! goes to: each VM's emulated devices are registered on its [`MmioBus`].

pub mod bus;
pub mod decode;

pub use bus::{MmioBus, MmioDevice};

/// One trapped load or store to emulated MMIO.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmioAccess {
    /// The intermediate physical address accessed.
    pub ipa: u64,
    /// Access size in bytes: 1, 2, 4 or 8.
    pub size: u8,
    /// A store (true) or a load (false).
    pub write: bool,
    /// The transfer register, 0..=30; 31 is xzr/wzr (a store writes zero,
    /// a load's result is discarded).
    pub reg: u8,
    /// A load sign-extends the value (LDRSB/LDRSH/LDRSW, ISS.SSE).
    pub sign_extend: bool,
    /// The transfer register is an X register (ISS.SF); otherwise a W
    /// register, whose upper 32 bits a load clears.
    pub sixty_four: bool,
    /// Load-acquire/store-release semantics (ISS.AR). Emulation is already
    /// ordered, so this is informational.
    pub acquire_release: bool,
    /// The base-register update of a pre- or post-indexed instruction; only
    /// ever set when the access was decoded from the instruction word (ISV=1
    /// is never reported for writeback forms).
    pub writeback: Option<Writeback>,
}

impl MmioAccess {
    /// The value a store writes, given the guest's general registers
    /// x0..x30: register 31 reads as zero, and the value is truncated to the
    /// access size.
    pub fn store_value(&self, regs: &[u64; 31]) -> u64 {
        let value = regs.get(usize::from(self.reg)).copied().unwrap_or(0);
        value & size_mask(self.size)
    }
}

/// The mask of the low `size` bytes (8 or more bytes: all ones).
pub(crate) const fn size_mask(size: u8) -> u64 {
    match size {
        0 => 0,
        1 => 0xff,
        2 => 0xffff,
        4 => 0xffff_ffff,
        _ => u64::MAX,
    }
}

/// A base register update: `base += delta` (wrapping), after the access.
/// Pre-indexed forms access `base + delta`, post-indexed ones `base`; both
/// leave `base + delta` in the base register (ARM ARM C6.2 "LDR
/// (immediate)", Operation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Writeback {
    /// The base register.
    pub base: BaseReg,
    /// The signed 9-bit immediate, sign-extended.
    pub delta: i64,
}

/// A load/store base register: encoding 31 is the stack pointer, not xzr.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BaseReg {
    /// x0..x30.
    X(u8),
    /// The current stack pointer (SP_EL0 or SP_EL1 by the guest's PSTATE.SP).
    Sp,
}

//! PL011 console output (ARM DDI 0183), polled.
//!
//! Register accesses use explicit single `ldr`/`str` instructions: under a
//! hypervisor they trap to EL2, and only those forms carry a complete
//! syndrome (ESR_EL2.ISV = 1) — a compiler's volatile access may pick a
//! post-indexed form the hypervisor cannot emulate from the syndrome alone.

use crate::console::ByteSink;

const DR: usize = 0x00;
const FR: usize = 0x18;
const FR_TXFF: u32 = 1 << 5;

/// A PL011 at a mapped virtual address.
pub struct Pl011 {
    base: usize,
}

impl Pl011 {
    /// # Safety
    /// `base` must be the virtual address of a PL011's registers, mapped as
    /// device memory, and used by nothing else.
    pub const unsafe fn new(base: usize) -> Self {
        Self { base }
    }

    fn read(&self, off: usize) -> u32 {
        let v: u32;
        // SAFETY: `new`'s contract: a mapped PL011 register.
        unsafe { core::arch::asm!("ldr {v:w}, [{a}]", v = out(reg) v, a = in(reg) self.base + off, options(nostack)) };
        v
    }

    fn write(&self, off: usize, v: u32) {
        // SAFETY: `new`'s contract: a mapped PL011 register.
        unsafe { core::arch::asm!("str {v:w}, [{a}]", v = in(reg) v, a = in(reg) self.base + off, options(nostack)) };
    }
}

impl ByteSink for Pl011 {
    fn put(&mut self, b: u8) {
        if b == b'\n' {
            self.put(b'\r');
        }
        while self.read(FR) & FR_TXFF != 0 {
            core::hint::spin_loop();
        }
        self.write(DR, b as u32);
    }
}

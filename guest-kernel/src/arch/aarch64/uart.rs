//! PL011 console (ARM DDI 0183): output polled, input by interrupt
//! ([`Pl011Rx`], for the console tty).
//!
//! Register accesses use explicit single `ldr`/`str` instructions: under a
//! hypervisor they trap to EL2, and only those forms carry a complete
//! syndrome (ESR_EL2.ISV = 1) — a compiler's volatile access may pick a
//! post-indexed form the hypervisor cannot emulate from the syndrome alone.

use crate::console::ByteSink;

const DR: usize = 0x00;
const FR: usize = 0x18;
const FR_TXFF: u32 = 1 << 5;
const FR_RXFE: u32 = 1 << 4;
const CR: usize = 0x30;
const CR_UARTEN: u32 = 1 << 0;
const CR_TXE: u32 = 1 << 8;
const CR_RXE: u32 = 1 << 9;
const IMSC: usize = 0x38;
const MIS: usize = 0x40;
const ICR: usize = 0x44;
/// Receive and receive-timeout interrupts (DDI 0183G §3.3.10).
const INT_RX: u32 = (1 << 4) | (1 << 6);

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

/// The receive side of the console PL011, used only by the console tty's
/// interrupt handler (the output side, [`Pl011`], touches DR writes and FR
/// reads only, so the two never disturb each other's registers).
pub struct Pl011Rx(Pl011);

impl Pl011Rx {
    /// # Safety
    /// As [`Pl011::new`], except that the output side may be driven by a
    /// [`Pl011`] at the same address; nothing else may read DR or write
    /// CR, IMSC or ICR.
    pub const unsafe fn new(base: usize) -> Self {
        // SAFETY: the caller's contract.
        Pl011Rx(unsafe { Pl011::new(base) })
    }

    /// Enables the UART's receiver and its receive (FIFO level and
    /// timeout) interrupts.
    pub fn enable(&self) {
        let cr = self.0.read(CR);
        self.0.write(CR, cr | CR_UARTEN | CR_TXE | CR_RXE);
        let imsc = self.0.read(IMSC);
        self.0.write(IMSC, imsc | INT_RX);
    }

    /// Whether a receive interrupt is asserted (UARTMIS).
    pub fn pending(&self) -> bool {
        self.0.read(MIS) & INT_RX != 0
    }

    /// Passes every byte in the receive FIFO to `f`, then clears the
    /// receive interrupts (the top half's acknowledge).
    pub fn drain(&self, mut f: impl FnMut(u8)) {
        while self.0.read(FR) & FR_RXFE == 0 {
            f(self.0.read(DR) as u8);
        }
        self.0.write(ICR, INT_RX);
    }
}

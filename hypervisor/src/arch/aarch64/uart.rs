//! UART drivers for the hypervisor's own console: PL011 (QEMU virt) and
//! 16550-compatible parts (DesignWare APB UART on RK3399, the A64's UART),
//! chosen from the DTB. Transmit only, polled.
//!
//! [`early_print`] writes to the console UART without any lock or atomic:
//! for reports made before the MMU is on (boot errors, the lock check of
//! `crate::sync`) and with it off.

use crate::console::ByteSink;
use shared::platform::{Uart, UartKind};

/// The console UART for [`early_print`]. Written once by the boot CPU with
/// the MMU off, before any other CPU runs (a plain store); read after.
static mut EARLY_CONSOLE: Option<Uart> = None;

/// Records the console UART for [`early_print`].
///
/// # Safety
/// Boot CPU only, before any other CPU runs; `uart` must be the console
/// the DTB names (see [`UartDriver::new`]).
pub unsafe fn set_early_console(uart: Option<Uart>) {
    // SAFETY: the caller guarantees nothing else accesses it now.
    unsafe { *core::ptr::addr_of_mut!(EARLY_CONSOLE) = uart };
}

/// Prints straight to the console UART: no lock, no atomic, so it works
/// with the MMU off. Output may interleave with another CPU's. Nothing
/// happens before [`set_early_console`].
pub fn early_print(args: core::fmt::Arguments) {
    struct Raw(UartDriver);
    impl core::fmt::Write for Raw {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            for b in s.bytes() {
                if b == b'\n' {
                    self.0.put(b'\r');
                }
                self.0.put(b);
            }
            Ok(())
        }
    }
    // SAFETY: written once at boot before anything reads it (see above).
    let Some(uart) = (unsafe { *core::ptr::addr_of!(EARLY_CONSOLE) }) else { return };
    // SAFETY: the DTB's console UART (`set_early_console`'s contract); a
    // second driver on it can only interleave bytes.
    let _ = core::fmt::Write::write_fmt(&mut Raw(unsafe { UartDriver::new(&uart) }), args);
}

/// A UART at a fixed (identity-mapped) MMIO address.
pub struct UartDriver {
    base: usize,
    kind: UartKind,
}

// PL011 (ARM DDI 0183): data register and flag register.
const PL011_DR: usize = 0x00;
const PL011_FR: usize = 0x18;
const PL011_FR_TXFF: u32 = 1 << 5;
const PL011_IMSC: usize = 0x38;
const PL011_ICR: usize = 0x44;
const PL011_FR_RXFE: u32 = 1 << 4;
const PL011_INT_RX_RT: u32 = (1 << 4) | (1 << 6);
// 16550: transmit holding / receive buffer, interrupt enable, line status (index 5).
const UART_THR: usize = 0;
const UART_IER: usize = 1;
const UART_LSR: usize = 5;
const UART_LSR_DR: u32 = 1 << 0;
const UART_LSR_THRE: u32 = 1 << 5;

impl UartDriver {
    /// Wraps the UART the DTB named.
    ///
    /// # Safety
    /// `uart.region` must be the device's MMIO window, mapped as device
    /// memory (or the MMU off), and not used by anything else.
    pub const unsafe fn new(uart: &Uart) -> Self {
        Self { base: uart.region.base as usize, kind: uart.kind }
    }

    fn reg_addr(&self, index: usize) -> usize {
        match self.kind {
            UartKind::Pl011 => self.base + index,
            UartKind::Ns16550 { reg_shift, .. } => self.base + (index << reg_shift),
        }
    }

    fn read(&self, index: usize) -> u32 {
        let addr = self.reg_addr(index);
        // SAFETY: `new`'s contract: the address is inside the UART's MMIO window.
        unsafe {
            match self.kind {
                UartKind::Ns16550 { reg_io_width: 1, .. } => core::ptr::read_volatile(addr as *const u8) as u32,
                _ => core::ptr::read_volatile(addr as *const u32),
            }
        }
    }

    fn write(&self, index: usize, v: u32) {
        let addr = self.reg_addr(index);
        // SAFETY: `new`'s contract: the address is inside the UART's MMIO window.
        unsafe {
            match self.kind {
                UartKind::Ns16550 { reg_io_width: 1, .. } => core::ptr::write_volatile(addr as *mut u8, v as u8),
                _ => core::ptr::write_volatile(addr as *mut u32, v),
            }
        }
    }
}

impl UartDriver {
    /// Turns on the receive interrupt (PL011 RX + RX timeout; 16550 ERBFI).
    pub fn enable_rx_interrupt(&self) {
        match self.kind {
            UartKind::Pl011 => {
                self.write(PL011_ICR, 0x7ff);
                self.write(PL011_IMSC, PL011_INT_RX_RT);
            }
            UartKind::Ns16550 { .. } => self.write(UART_IER, 1),
        }
    }

    /// A received byte, if one is waiting.
    pub fn try_getc(&self) -> Option<u8> {
        match self.kind {
            UartKind::Pl011 => (self.read(PL011_FR) & PL011_FR_RXFE == 0).then(|| self.read(PL011_DR) as u8),
            UartKind::Ns16550 { .. } => (self.read(UART_LSR) & UART_LSR_DR != 0).then(|| self.read(UART_THR) as u8),
        }
    }
}

impl ByteSink for UartDriver {
    fn put(&mut self, b: u8) {
        match self.kind {
            UartKind::Pl011 => {
                while self.read(PL011_FR) & PL011_FR_TXFF != 0 {
                    core::hint::spin_loop();
                }
                self.write(PL011_DR, b as u32);
            }
            UartKind::Ns16550 { .. } => {
                while self.read(UART_LSR) & UART_LSR_THRE == 0 {
                    core::hint::spin_loop();
                }
                self.write(UART_THR, b as u32);
            }
        }
    }
}

//! Emulated Arm PrimeCell PL011 UART (ARM DDI 0183G, "PL011 TRM"), a pure core.
//!
//! Complete enough for Linux's `amba-pl011` driver and `earlycon=pl011`. The
//! glue calls [`Pl011::mmio_read`] / [`Pl011::mmio_write`] from the stage-2
//! fault path, prints the bytes a write returns (through a [`LineBuffer`]),
//! feeds console input with [`Pl011::push_input`], and drives the VM's UART
//! SPI from [`Pl011::irq_level`] after every call.
//!
//! Modelling choices (after QEMU's `hw/char/pl011.c`):
//! - transmission is instantaneous: the TX FIFO is always empty, FR.TXFE is
//!   set, FR.TXFF and FR.BUSY are never set, and every write to DR raises
//!   TXRIS ("the FIFO just drained through its trigger level", DDI 0183G
//!   §2.9.3: the TX interrupt is based on a transition through the level);
//! - the receive timeout (32 bit periods, §2.9.6) has always elapsed by the
//!   time the guest looks, so RTRIS is raised with each received byte and
//!   cleared when the FIFO empties or through ICR;
//! - bytes are sent even while CR.UARTEN or CR.TXE are clear, like QEMU, so
//!   that an `earlycon` that never programs CR still prints.

mod line;
#[cfg(test)]
mod tests;
mod visible;

pub use line::{LINE_MAX, Line, LineBuffer};
pub use visible::visible;

/// Size of the register window (DDI 0183G §3.2, 4 KiB).
pub const PL011_WINDOW: u64 = 0x1000;
/// Depth of the receive FIFO when LCR_H.FEN is set (PL011 r1p5: 32 entries).
pub const RX_FIFO_DEPTH: usize = 32;

/// Register offsets (DDI 0183G §3.2, Table 3-1).
pub mod reg {
    /// UARTDR, data register.
    pub const DR: u64 = 0x000;
    /// UARTRSR (read) / UARTECR (write), receive status / error clear.
    pub const RSR_ECR: u64 = 0x004;
    /// UARTFR, flag register.
    pub const FR: u64 = 0x018;
    /// UARTILPR, IrDA low-power counter.
    pub const ILPR: u64 = 0x020;
    /// UARTIBRD, integer baud rate divisor.
    pub const IBRD: u64 = 0x024;
    /// UARTFBRD, fractional baud rate divisor.
    pub const FBRD: u64 = 0x028;
    /// UARTLCR_H, line control.
    pub const LCR_H: u64 = 0x02C;
    /// UARTCR, control.
    pub const CR: u64 = 0x030;
    /// UARTIFLS, interrupt FIFO level select.
    pub const IFLS: u64 = 0x034;
    /// UARTIMSC, interrupt mask set/clear.
    pub const IMSC: u64 = 0x038;
    /// UARTRIS, raw interrupt status.
    pub const RIS: u64 = 0x03C;
    /// UARTMIS, masked interrupt status.
    pub const MIS: u64 = 0x040;
    /// UARTICR, interrupt clear.
    pub const ICR: u64 = 0x044;
    /// UARTDMACR, DMA control.
    pub const DMACR: u64 = 0x048;
    /// First of the eight PeriphID/PCellID registers.
    pub const ID_BASE: u64 = 0xFE0;
}

/// UARTFR bits (DDI 0183G §3.3.3).
pub mod fr {
    /// Receive FIFO empty.
    pub const RXFE: u32 = 1 << 4;
    /// Transmit FIFO full.
    pub const TXFF: u32 = 1 << 5;
    /// Receive FIFO full.
    pub const RXFF: u32 = 1 << 6;
    /// Transmit FIFO empty.
    pub const TXFE: u32 = 1 << 7;
}

/// Interrupt bits shared by IMSC, RIS, MIS and ICR (DDI 0183G §3.3.10-3.3.14).
pub mod int {
    /// Receive interrupt.
    pub const RX: u32 = 1 << 4;
    /// Transmit interrupt.
    pub const TX: u32 = 1 << 5;
    /// Receive timeout interrupt.
    pub const RT: u32 = 1 << 6;
    /// Overrun error interrupt.
    pub const OE: u32 = 1 << 10;
    /// All eleven interrupt bits.
    pub const ALL: u32 = 0x7FF;
}

/// UARTLCR_H.FEN, enable FIFOs (DDI 0183G §3.3.7).
const LCR_H_FEN: u32 = 1 << 4;
/// UARTCR.LBE, loopback enable (DDI 0183G §3.3.8).
const CR_LBE: u32 = 1 << 7;
/// UARTRSR.OE, overrun error (DDI 0183G §3.3.2).
const RSR_OE: u32 = 1 << 3;

/// PeriphID0-3 then PCellID0-3 of a PL011 r1p5 (DDI 0183G §3.3.16-3.3.17).
const ID_BYTES: [u32; 8] = [0x11, 0x10, 0x34, 0x00, 0x0D, 0xF0, 0x05, 0xB1];

/// Why an access to an emulated device register was refused; the glue
/// answers it with a synchronous external abort injected into the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmioError {
    /// The access size is not one the register supports.
    BadSize {
        /// Offset inside the device window.
        offset: u64,
        /// Access size in bytes.
        size: u8,
    },
    /// The offset is not aligned as the register requires.
    Unaligned {
        /// Offset inside the device window.
        offset: u64,
        /// Access size in bytes.
        size: u8,
    },
    /// The offset lies outside the device window.
    OutOfRange {
        /// Offset inside the device window.
        offset: u64,
    },
}

/// State of one emulated PL011.
#[derive(Clone, Debug)]
pub struct Pl011 {
    rx_fifo: [u8; RX_FIFO_DEPTH],
    rx_head: usize,
    rx_count: usize,
    rsr: u32,
    ilpr: u32,
    ibrd: u32,
    fbrd: u32,
    lcr_h: u32,
    cr: u32,
    ifls: u32,
    imsc: u32,
    ris: u32,
    dmacr: u32,
}

impl Default for Pl011 {
    fn default() -> Self {
        Self::new()
    }
}

impl Pl011 {
    /// A PL011 in its reset state (DDI 0183G §3.2 Table 3-1 reset values:
    /// CR = 0x300 (TXE, RXE), IFLS = 0x12 (both FIFOs at half)).
    pub const fn new() -> Self {
        Self {
            rx_fifo: [0; RX_FIFO_DEPTH],
            rx_head: 0,
            rx_count: 0,
            rsr: 0,
            ilpr: 0,
            ibrd: 0,
            fbrd: 0,
            lcr_h: 0,
            cr: 0x300,
            ifls: 0x12,
            imsc: 0,
            ris: 0,
            dmacr: 0,
        }
    }

    /// The level of UARTINTR, the combined interrupt output (DDI 0183G
    /// §2.9.8): set when any unmasked raw interrupt is set.
    pub fn irq_level(&self) -> bool {
        self.ris & self.imsc != 0
    }

    /// Bytes waiting in the receive FIFO.
    pub fn rx_len(&self) -> usize {
        self.rx_count
    }

    /// Whether [`Pl011::push_input`] would accept another byte now.
    pub fn rx_has_room(&self) -> bool {
        self.rx_count < self.rx_depth()
    }

    /// Feeds one received byte. Returns `false` when the FIFO (or, with FIFOs
    /// disabled, the holding register) is full: the byte is lost and the
    /// overrun error is raised, as on the hardware (DDI 0183G §3.3.2 OE).
    pub fn push_input(&mut self, byte: u8) -> bool {
        if !self.rx_has_room() {
            self.rsr |= RSR_OE;
            self.ris |= int::OE;
            return false;
        }
        let slot = (self.rx_head + self.rx_count) % RX_FIFO_DEPTH;
        self.rx_fifo[slot] = byte;
        self.rx_count += 1;
        if self.rx_count >= self.rx_trigger() {
            self.ris |= int::RX;
        }
        self.ris |= int::RT;
        true
    }

    /// A guest read of `size` bytes at `offset` inside the window.
    #[inline]
    pub fn mmio_read(&mut self, offset: u64, size: u8) -> Result<u32, MmioError> {
        check_access(offset, size)?;
        let value = match offset {
            reg::DR => self.pop_rx(),
            reg::RSR_ECR => self.rsr,
            reg::FR => self.flags(),
            reg::ILPR => self.ilpr,
            reg::IBRD => self.ibrd,
            reg::FBRD => self.fbrd,
            reg::LCR_H => self.lcr_h,
            reg::CR => self.cr,
            reg::IFLS => self.ifls,
            reg::IMSC => self.imsc,
            reg::RIS => self.ris,
            reg::MIS => self.ris & self.imsc,
            reg::DMACR => self.dmacr,
            o if o >= reg::ID_BASE => ID_BYTES[((o - reg::ID_BASE) / 4) as usize],
            // UARTICR is write-only; reserved offsets read as zero.
            _ => 0,
        };
        Ok(value & size_mask(size))
    }

    /// A guest write of `size` bytes at `offset`. Returns the byte the guest
    /// transmitted, if this was a write to DR, for the glue to print.
    pub fn mmio_write(&mut self, offset: u64, size: u8, value: u64) -> Result<Option<u8>, MmioError> {
        check_access(offset, size)?;
        let value = (value as u32) & size_mask(size);
        match offset {
            reg::DR => {
                self.ris |= int::TX;
                // Loopback (CR.LBE, §3.3.8) feeds the byte to the receiver
                // instead of the line.
                if self.cr & CR_LBE != 0 {
                    self.push_input(value as u8);
                    return Ok(None);
                }
                return Ok(Some(value as u8));
            }
            // Any write to UARTECR clears the error flags (§3.3.2).
            reg::RSR_ECR => self.rsr = 0,
            reg::ILPR => self.ilpr = value & 0xFF,
            reg::IBRD => self.ibrd = value & 0xFFFF,
            reg::FBRD => self.fbrd = value & 0x3F,
            reg::LCR_H => {
                // Switching FIFO mode resets the receive path (as QEMU does).
                if (self.lcr_h ^ value) & LCR_H_FEN != 0 {
                    self.rx_head = 0;
                    self.rx_count = 0;
                    self.ris &= !(int::RX | int::RT);
                }
                self.lcr_h = value & 0xFF;
            }
            reg::CR => self.cr = value & 0xFF87,
            reg::IFLS => {
                self.ifls = value & 0x3F;
                self.update_rx_level();
            }
            reg::IMSC => self.imsc = value & int::ALL,
            reg::ICR => self.ris &= !value,
            reg::DMACR => self.dmacr = value & 0x7,
            // FR, RIS, MIS and the ID registers are read-only; reserved
            // offsets ignore writes.
            _ => {}
        }
        Ok(None)
    }

    /// The flag register (UARTFR, DDI 0183G §3.3.3): TXFE always (a byte
    /// written is sent at once), RXFE and RXFF from the receive FIFO.
    pub fn flags(&self) -> u32 {
        let mut flags = fr::TXFE;
        if self.rx_count == 0 {
            flags |= fr::RXFE;
        }
        if self.rx_count >= self.rx_depth() {
            flags |= fr::RXFF;
        }
        flags
    }

    fn rx_depth(&self) -> usize {
        if self.lcr_h & LCR_H_FEN != 0 { RX_FIFO_DEPTH } else { 1 }
    }

    /// RX trigger level from IFLS.RXIFLSEL (DDI 0183G §3.3.9): 1/8, 1/4,
    /// 1/2, 3/4 or 7/8 full; a single byte when FIFOs are disabled.
    fn rx_trigger(&self) -> usize {
        if self.lcr_h & LCR_H_FEN == 0 {
            return 1;
        }
        match (self.ifls >> 3) & 0x7 {
            0 => RX_FIFO_DEPTH / 8,
            1 => RX_FIFO_DEPTH / 4,
            2 => RX_FIFO_DEPTH / 2,
            3 => RX_FIFO_DEPTH * 3 / 4,
            _ => RX_FIFO_DEPTH * 7 / 8,
        }
    }

    /// The RX interrupt follows the FIFO level (§2.9.4): it is cleared once
    /// reads bring the FIFO below the trigger level.
    fn update_rx_level(&mut self) {
        if self.rx_count >= self.rx_trigger() && self.rx_count > 0 {
            self.ris |= int::RX;
        } else {
            self.ris &= !int::RX;
        }
    }

    fn pop_rx(&mut self) -> u32 {
        if self.rx_count == 0 {
            return 0;
        }
        let byte = self.rx_fifo[self.rx_head];
        self.rx_head = (self.rx_head + 1) % RX_FIFO_DEPTH;
        self.rx_count -= 1;
        self.update_rx_level();
        if self.rx_count == 0 {
            // §2.9.6: the timeout interrupt clears when the FIFO empties.
            self.ris &= !int::RT;
        }
        u32::from(byte)
    }
}

/// DDI 0183G §3.1: registers are 4-byte aligned; byte, halfword and word
/// accesses are accepted at the register's own offset.
fn check_access(offset: u64, size: u8) -> Result<(), MmioError> {
    if !matches!(size, 1 | 2 | 4) {
        return Err(MmioError::BadSize { offset, size });
    }
    if offset >= PL011_WINDOW {
        return Err(MmioError::OutOfRange { offset });
    }
    if offset & 3 != 0 {
        return Err(MmioError::Unaligned { offset, size });
    }
    Ok(())
}

fn size_mask(size: u8) -> u32 {
    match size {
        1 => 0xFF,
        2 => 0xFFFF,
        _ => 0xFFFF_FFFF,
    }
}

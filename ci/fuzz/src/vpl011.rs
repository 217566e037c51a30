//! `hypervisor::vpl011`: any sequence of guest MMIO accesses to the
//! emulated PL011 and of console input never panics; the receive FIFO
//! behaves as a FIFO of the depth the guest configured (bytes come out in
//! order, none is invented, an overflow is flagged); reads fit their
//! access size; the flag and interrupt registers agree with the state.

use std::collections::VecDeque;

use arbitrary::{Result, Unstructured};
use hypervisor::vpl011::{PL011_WINDOW, Pl011, RX_FIFO_DEPTH, fr, reg};

const MAX_OPS: usize = 1024;
const LCR_H_FEN: u64 = 1 << 4;
const CR_LBE: u64 = 1 << 7;

/// Input: operations until the bytes run out.
pub fn fuzz(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let _ = run(&mut u);
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let mut uart = Pl011::new();
    // The model: the FIFO contents and whether the FIFO is enabled.
    let mut fifo: VecDeque<u8> = VecDeque::new();
    let mut fen = false;
    let mut loopback = false;
    for _ in 0..MAX_OPS {
        if u.is_empty() {
            break;
        }
        let depth = if fen { RX_FIFO_DEPTH } else { 1 };
        match u.int_in_range(0u8..=5)? {
            0 | 1 => {
                let byte = u.arbitrary()?;
                let accepted = uart.push_input(byte);
                assert_eq!(accepted, fifo.len() < depth, "push_input with {} of {depth} queued", fifo.len());
                if accepted {
                    fifo.push_back(byte);
                }
            }
            2 | 3 => {
                let (offset, size) = access(u)?;
                let Ok(value) = uart.mmio_read(offset, size) else { continue };
                if size < 4 {
                    assert_eq!(value >> (8 * u32::from(size)), 0, "read at {offset:#x} wider than {size} bytes");
                }
                if offset == reg::DR {
                    assert_eq!(value & 0xFF, u32::from(fifo.pop_front().unwrap_or(0)), "UARTDR read out of order");
                }
            }
            _ => {
                let (offset, size) = access(u)?;
                let value: u64 = u.arbitrary()?;
                let Ok(out) = uart.mmio_write(offset, size, value) else { continue };
                let masked = value & if size >= 4 { 0xFFFF_FFFF } else { (1 << (8 * size)) - 1 };
                match offset {
                    reg::DR if loopback => {
                        assert_eq!(out, None, "a loopback byte went to the line");
                        if fifo.len() < depth {
                            fifo.push_back(masked as u8);
                        }
                    }
                    reg::DR => assert_eq!(out, Some(masked as u8), "UARTDR write"),
                    _ => assert_eq!(out, None, "a write at {offset:#x} produced output"),
                }
                if offset == reg::LCR_H {
                    let now = masked & LCR_H_FEN != 0;
                    if now != fen {
                        fifo.clear();
                    }
                    fen = now;
                }
                if offset == reg::CR {
                    loopback = masked & CR_LBE != 0;
                }
            }
        }
        assert_eq!(uart.rx_len(), fifo.len(), "FIFO length");
        assert!(uart.rx_len() <= if fen { RX_FIFO_DEPTH } else { 1 });
        let flags = uart.mmio_read(reg::FR, 4).expect("FR is readable");
        assert_eq!(flags & fr::RXFE != 0, fifo.is_empty(), "FR.RXFE");
        let ris = uart.mmio_read(reg::RIS, 4).expect("RIS");
        let imsc = uart.mmio_read(reg::IMSC, 4).expect("IMSC");
        assert_eq!(uart.mmio_read(reg::MIS, 4).expect("MIS"), ris & imsc, "MIS = RIS & IMSC");
        assert_eq!(uart.irq_level(), ris & imsc != 0, "interrupt line");
    }
    Ok(())
}

fn access(u: &mut Unstructured<'_>) -> Result<(u64, u8)> {
    let offset = match u.int_in_range(0u8..=7)? {
        0 => u.arbitrary::<u64>()? % (2 * PL011_WINDOW),
        1 => 0xFE0 + u.int_in_range(0..=0x1f)?,
        _ => u.int_in_range(0..=0x12)? * 4,
    };
    let size = *u.choose(&[4u8, 4, 4, 1, 2, 8, 0])?;
    Ok((offset, size))
}

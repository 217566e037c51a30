use super::*;

fn read(u: &mut Pl011, offset: u64) -> u32 {
    u.mmio_read(offset, 4).unwrap()
}

fn write(u: &mut Pl011, offset: u64, value: u32) -> Option<u8> {
    u.mmio_write(offset, 4, u64::from(value)).unwrap()
}

#[test]
fn id_registers_identify_a_pl011_r1p5() {
    let mut u = Pl011::new();
    let ids: [u32; 8] = core::array::from_fn(|i| read(&mut u, reg::ID_BASE + 4 * i as u64));
    assert_eq!(ids, [0x11, 0x10, 0x34, 0x00, 0x0D, 0xF0, 0x05, 0xB1]);
    // Linux's AMBA bus builds the periphid from the low byte of each.
    assert_eq!(u.mmio_read(0xFE8, 1), Ok(0x34));
}

#[test]
fn reset_values() {
    let mut u = Pl011::new();
    assert_eq!(read(&mut u, reg::FR), fr::TXFE | fr::RXFE);
    assert_eq!(read(&mut u, reg::CR), 0x300);
    assert_eq!(read(&mut u, reg::IFLS), 0x12);
    assert_eq!(read(&mut u, reg::IMSC), 0);
    assert!(!u.irq_level());
}

#[test]
fn dr_write_transmits_and_never_fills_tx() {
    let mut u = Pl011::new();
    for b in 0..200u32 {
        assert_eq!(write(&mut u, reg::DR, b), Some(b as u8));
        let flags = read(&mut u, reg::FR);
        assert_eq!(flags & (fr::TXFF | (1 << 3)), 0, "TXFF and BUSY stay clear");
        assert_ne!(flags & fr::TXFE, 0);
    }
    assert_eq!(u.mmio_write(reg::DR, 1, 0x141), Ok(Some(0x41)));
    assert_eq!(write(&mut u, reg::CR, 0x301), None);
}

#[test]
fn rx_fifo_flags_and_order() {
    let mut u = Pl011::new();
    write(&mut u, reg::LCR_H, 0x70); // 8N1, FIFOs on
    for b in 0..RX_FIFO_DEPTH as u8 {
        assert!(u.push_input(b));
    }
    assert_eq!(read(&mut u, reg::FR) & (fr::RXFF | fr::RXFE), fr::RXFF);
    assert!(!u.push_input(0xAA), "a full FIFO drops the byte");
    assert_eq!(read(&mut u, reg::RSR_ECR) & 0x8, 0x8, "overrun flagged");
    write(&mut u, reg::RSR_ECR, 0);
    assert_eq!(read(&mut u, reg::RSR_ECR), 0);
    for b in 0..RX_FIFO_DEPTH as u32 {
        assert_eq!(read(&mut u, reg::DR), b);
    }
    assert_eq!(read(&mut u, reg::FR) & (fr::RXFF | fr::RXFE), fr::RXFE);
    assert_eq!(read(&mut u, reg::DR), 0, "empty FIFO reads zero");
}

#[test]
fn without_fifo_the_holding_register_takes_one_byte() {
    let mut u = Pl011::new();
    assert!(u.push_input(b'a'));
    assert_eq!(read(&mut u, reg::FR) & fr::RXFF, fr::RXFF);
    assert!(!u.push_input(b'b'));
    assert_eq!(read(&mut u, reg::DR), u32::from(b'a'));
}

#[test]
fn fifo_mode_switch_flushes_rx() {
    let mut u = Pl011::new();
    write(&mut u, reg::LCR_H, 0x70);
    u.push_input(1);
    write(&mut u, reg::LCR_H, 0x60);
    assert_eq!(u.rx_len(), 0);
    assert_eq!(read(&mut u, reg::RIS) & (int::RX | int::RT), 0);
}

#[test]
fn interrupt_line_follows_imsc_ris_mis_icr() {
    let mut u = Pl011::new();
    write(&mut u, reg::LCR_H, 0x70);
    // Linux pl011_startup: clear all, unmask RX and RT.
    write(&mut u, reg::ICR, 0x7FF);
    write(&mut u, reg::IMSC, int::RX | int::RT);
    assert!(!u.irq_level());

    u.push_input(b'x');
    // Below the 1/2 trigger level: only the timeout interrupt.
    assert_eq!(read(&mut u, reg::RIS), int::RT);
    assert_eq!(read(&mut u, reg::MIS), int::RT);
    assert!(u.irq_level());
    read(&mut u, reg::DR);
    assert_eq!(read(&mut u, reg::RIS), 0, "emptying the FIFO clears RT");
    assert!(!u.irq_level());

    for b in 0..16 {
        u.push_input(b);
    }
    assert_eq!(read(&mut u, reg::RIS) & int::RX, int::RX, "16 of 32 reaches 1/2");
    read(&mut u, reg::DR);
    assert_eq!(read(&mut u, reg::RIS) & int::RX, 0, "below the level again");
    write(&mut u, reg::ICR, int::RT);
    assert!(!u.irq_level(), "ICR clears RT while data waits");
    assert_eq!(read(&mut u, reg::ICR), 0, "ICR is write-only");

    // TX: each DR write raises TXRIS; only unmasked it drives the line.
    write(&mut u, reg::DR, b'a'.into());
    assert_eq!(read(&mut u, reg::RIS) & int::TX, int::TX);
    assert!(!u.irq_level());
    write(&mut u, reg::IMSC, int::TX);
    assert!(u.irq_level());
    assert_eq!(read(&mut u, reg::MIS), int::TX);
    write(&mut u, reg::ICR, int::TX);
    assert!(!u.irq_level());
    // Masking alone lowers the line but keeps the raw status.
    write(&mut u, reg::DR, b'b'.into());
    write(&mut u, reg::IMSC, 0);
    assert!(!u.irq_level());
    assert_eq!(read(&mut u, reg::RIS) & int::TX, int::TX);
}

#[test]
fn ifls_moves_the_rx_trigger() {
    let mut u = Pl011::new();
    write(&mut u, reg::LCR_H, 0x70);
    write(&mut u, reg::IFLS, 0); // RX 1/8 = 4 bytes
    for b in 0..4 {
        u.push_input(b);
    }
    assert_ne!(read(&mut u, reg::RIS) & int::RX, 0);
    write(&mut u, reg::IFLS, 4 << 3); // 7/8 = 28 bytes
    assert_eq!(read(&mut u, reg::RIS) & int::RX, 0);
}

#[test]
fn registers_keep_their_implemented_bits() {
    let mut u = Pl011::new();
    write(&mut u, reg::IBRD, 0xFFFF_FFFF);
    write(&mut u, reg::FBRD, 0xFFFF_FFFF);
    write(&mut u, reg::LCR_H, 0xFFFF_FFFF);
    write(&mut u, reg::IMSC, 0xFFFF_FFFF);
    write(&mut u, reg::DMACR, 0xFFFF_FFFF);
    assert_eq!(read(&mut u, reg::IBRD), 0xFFFF);
    assert_eq!(read(&mut u, reg::FBRD), 0x3F);
    assert_eq!(read(&mut u, reg::LCR_H), 0xFF);
    assert_eq!(read(&mut u, reg::IMSC), 0x7FF);
    assert_eq!(read(&mut u, reg::DMACR), 0x7);
    write(&mut u, reg::FR, 0);
    assert_eq!(read(&mut u, reg::FR), fr::TXFE | fr::RXFE, "FR is read-only");
}

#[test]
fn bad_accesses_are_errors_not_panics() {
    let mut u = Pl011::new();
    assert_eq!(u.mmio_read(0x1, 1), Err(MmioError::Unaligned { offset: 1, size: 1 }));
    assert_eq!(u.mmio_read(0x18, 8), Err(MmioError::BadSize { offset: 0x18, size: 8 }));
    assert_eq!(u.mmio_read(0x18, 3), Err(MmioError::BadSize { offset: 0x18, size: 3 }));
    assert_eq!(u.mmio_write(0x1000, 4, 0), Err(MmioError::OutOfRange { offset: 0x1000 }));
    assert_eq!(u.mmio_write(u64::MAX, 4, 0), Err(MmioError::OutOfRange { offset: u64::MAX }));
    assert_eq!(u.mmio_read(0x800, 4), Ok(0), "reserved offsets are RAZ");
    assert_eq!(u.mmio_read(0x30, 2), Ok(0x300));
}

#[test]
fn random_accesses_never_panic() {
    let mut u = Pl011::new();
    let mut x = 0x1234_5678_9ABC_DEF0u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..100_000 {
        let r = next();
        let offset = match r % 4 {
            0 => r >> 32,
            _ => (r >> 32) % 0x1004,
        };
        let size = [1u8, 2, 4, 8, 3, 0][(r >> 8) as usize % 6];
        match (r >> 16) % 3 {
            0 => {
                let _ = u.mmio_read(offset, size);
            }
            1 => {
                let _ = u.mmio_write(offset, size, next());
            }
            _ => {
                u.push_input(r as u8);
            }
        }
        assert!(u.rx_len() <= RX_FIFO_DEPTH);
        assert_eq!(u.irq_level(), u.mmio_read(reg::MIS, 4).unwrap() != 0);
    }
}

#[test]
fn line_buffer_yields_lines_and_flushes_when_full() {
    let mut lb = LineBuffer::new();
    let mut lines = std::vec::Vec::new();
    for &b in b"hello\r\nworld" {
        if let Some(line) = lb.push(b) {
            lines.push(line);
        }
    }
    assert_eq!(lines.len(), 1);
    assert_eq!(&lines[0][..], b"hello");
    assert_eq!(lb.pending(), b"world");
    assert_eq!(lb.flush().as_deref(), Some(&b"world"[..]));
    assert_eq!(lb.flush(), None);

    let mut full = 0;
    for _ in 0..(LINE_MAX * 2 + 5) {
        if let Some(line) = lb.push(b'x') {
            assert_eq!(line.len(), LINE_MAX);
            full += 1;
        }
    }
    assert_eq!(full, 2);
    assert_eq!(lb.pending().len(), 5);
    assert_eq!(lb.push(b'\n').map(|l| l.len()), Some(5));
    assert_eq!(lb.push(b'\n').map(|l| l.len()), Some(0), "empty lines survive");
}

#[test]
fn loopback_feeds_the_receiver() {
    let mut u = Pl011::new();
    write(&mut u, reg::CR, 0x381); // UARTEN | TXE | RXE | LBE
    assert_eq!(write(&mut u, reg::DR, u32::from(b'z')), None, "nothing reaches the console");
    assert_eq!(read(&mut u, reg::DR), u32::from(b'z'));
    write(&mut u, reg::CR, 0x301);
    assert_eq!(write(&mut u, reg::DR, u32::from(b'z')), Some(b'z'));
}

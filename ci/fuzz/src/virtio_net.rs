//! `hypervisor::virtio::net` with `VirtioMmio::fill`: a driver that posts
//! receive buffers and transmit chains of any size and header, writes any
//! register and scribbles anywhere in its RAM, while the device transmits
//! and receives frames of any length, never panics. Always: the interrupt
//! line is InterruptStatus != 0; every frame in the outbox is 14..=1514
//! bytes; a notification serves at most a queue size of chains; once
//! DEVICE_NEEDS_RESET is set no guest RAM changes. While the driver has
//! only followed the rules: no DEVICE_NEEDS_RESET; the outbox holds
//! exactly the well-formed frames posted, in order; a received frame
//! lands in the oldest posted buffer as header (num_buffers = 1) and frame
//! with the used length they take, or returns it empty when it is too
//! short, or finds no buffer when none is posted.

use std::collections::VecDeque;

use arbitrary::{Result, Unstructured};
use hypervisor::virtio::driver::Driver;
use hypervisor::virtio::mmio::{self, Effect, Fill, VirtioMmio, reg};
use hypervisor::virtio::net::{self, Net};
use hypervisor::virtio::queue::Buffer;
use hypervisor::virtio::{GuestMemory, VecMemory, feature, status};

const RAM: u64 = 0x4000_0000;
const RAM_SIZE: usize = 256 << 10;
const RX_RINGS: u64 = RAM;
const TX_RINGS: u64 = RAM + 0x4000;
/// Buffer slots after the rings, one per posted chain.
const SLOTS: u64 = RAM + 0x8000;
const SLOT_SIZE: u64 = 0x1000;
const SLOT_COUNT: u64 = 48;
const MAX_OPS: usize = 64;
const MAC: [u8; 6] = [0x52, 0x54, 0, 0, 0, 1];

/// A posted receive buffer: its head, its pieces, their total length.
struct RxBuf {
    head: u16,
    pieces: Vec<(u64, u32)>,
    len: u64,
}

pub fn fuzz(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let _ = run(&mut u);
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let mut dev = VirtioMmio::new(Net::new(MAC));
    let mut mem = VecMemory::new(RAM, RAM_SIZE);
    let size = *u.choose(&[2u16, 4, 8, 16, 3])?;
    let (mut rx, mut tx) = (Driver::new(RX_RINGS, size), Driver::new(TX_RINGS, size));
    let offered = dev.device_features();
    let features = if u.ratio(3, 4)? { offered & !u.arbitrary::<u64>()? | feature::VERSION_1 } else { u.arbitrary()? };
    let started = u.ratio(7, 8)?;
    if started {
        Driver::bring_up_queues(&mut dev, &[(net::RX, &rx), (net::TX, &tx)], features);
    }
    let accepted = features & !offered == 0 && features & feature::VERSION_1 != 0 && size.is_power_of_two();
    let mut clean = started && accepted;
    if clean {
        assert_eq!(dev.status() & status::DRIVER_OK, status::DRIVER_OK, "a valid set-up goes live");
    }
    let mut rx_posted: VecDeque<RxBuf> = VecDeque::new();
    let mut tx_expected: Vec<Vec<u8>> = Vec::new();
    let mut next_slot = 0u64;
    for _ in 0..MAX_OPS {
        if u.is_empty() {
            break;
        }
        let op = u.int_in_range(0u8..=11)?;
        // The device's own operations (notifications, a frame received)
        // must leave the RAM alone once it needs a reset.
        let frozen = dev.status() & status::DEVICE_NEEDS_RESET != 0 && op >= 7;
        let ram_before = frozen.then(|| mem.bytes.clone());
        match op {
            0 => {
                let offset = u.int_in_range(0..=0x7fu64)? * 4;
                let value: u64 = u.arbitrary()?;
                if dev.write(offset, 4, value).is_ok() && offset != reg::INTERRUPT_ACK {
                    clean = false;
                }
            }
            1 => {
                let at = u.int_in_range(0..=RAM_SIZE as u64 - 1)?;
                let len = u.int_in_range(1..=16u64)?.min(RAM_SIZE as u64 - at) as usize;
                let bytes = u.bytes(len)?;
                let _ = mem.write(RAM + at, bytes);
                clean = false;
            }
            2..=3 => {
                // A receive buffer in one or two pieces.
                let slot = SLOTS + (next_slot % SLOT_COUNT) * SLOT_SIZE;
                next_slot += 1;
                let len = *u.choose(&[1526u32, 1526, 100, 12 + 60, 2000, 0])?;
                let cut = if u.arbitrary()? { u.int_in_range(0..=len)? } else { len };
                let mut pieces = vec![(slot, cut)];
                if cut < len {
                    pieces.push((slot + u64::from(cut) + 32, len - cut));
                }
                let bufs: Vec<Buffer> =
                    pieces.iter().map(|&(addr, len)| Buffer { addr, len, writable: true }).collect();
                if let Ok(Some(head)) = rx.add(&mut mem, &bufs) {
                    rx_posted.push_back(RxBuf { head, pieces, len: u64::from(len) });
                }
            }
            4..=6 => {
                // A transmit chain: header (flags mostly 0) and a frame.
                let slot = SLOTS + (next_slot % SLOT_COUNT) * SLOT_SIZE;
                next_slot += 1;
                let flags: u8 = if u.ratio(7, 8)? { 0 } else { u.arbitrary()? };
                let len = *u.choose(&[60usize, 14, 13, 1514, 1515, 0, 100])?;
                let mut frame: Vec<u8> = u.bytes(len.min(64))?.to_vec();
                frame.resize(len, 0xa5);
                let mut hdr = [0u8; net::HDR_LEN];
                hdr[0] = flags;
                let hdr_len = if u.ratio(15, 16)? { net::HDR_LEN as u32 } else { u.int_in_range(0..=12u32)? };
                mem.write(slot, &hdr).unwrap();
                mem.write(slot + 0x10, &frame).unwrap_or(());
                let mut bufs = vec![Buffer { addr: slot, len: hdr_len, writable: false }];
                if len > 0 {
                    bufs.push(Buffer { addr: slot + 0x10, len: len as u32, writable: false });
                }
                if let Ok(Some(_)) = tx.add(&mut mem, &bufs) {
                    let good = hdr_len == 12 && flags == 0 && (14..=1514).contains(&len);
                    // A header shorter than 12 bytes shifts the frame: only
                    // whole, well-formed packets are expected.
                    if good {
                        tx_expected.push(frame);
                    } else if hdr_len != 12 {
                        clean = false;
                    }
                }
            }
            7..=8 => {
                let done = match dev.write(reg::QUEUE_NOTIFY, 4, u64::from(net::TX)) {
                    Ok(Effect::QueueNotify(q)) => dev.notify(q, &mut mem),
                    _ => mmio::Processed::default(),
                };
                assert!(done.completed <= usize::from(size), "{} chains for a queue of {size}", done.completed);
                let out: Vec<Vec<u8>> = dev.device_mut().take_outbox().into();
                for f in &out {
                    assert!((14..=1514).contains(&f.len()), "a {}-byte frame in the outbox", f.len());
                }
                if clean {
                    assert_eq!(out, tx_expected, "the outbox holds the well-formed frames posted, in order");
                }
                tx_expected.clear();
                while let Ok(Some(_)) = tx.get_used(&mut mem) {}
                // The receive queue's notification serves nothing.
                if let Ok(Effect::QueueNotify(q)) = dev.write(reg::QUEUE_NOTIFY, 4, u64::from(net::RX)) {
                    assert_eq!(dev.notify(q, &mut mem).completed, 0, "a receive notification serves no chain");
                }
            }
            _ => {
                let len = *u.choose(&[60usize, 14, 13, 1514, 1515, 0, 1000])?;
                let mut frame: Vec<u8> = u.bytes(len.min(64))?.to_vec();
                frame.resize(len, 0x5a);
                let fill = Net::receive(&mut dev, &mut mem, &frame);
                if clean {
                    let want = if !(14..=1514).contains(&len) {
                        Fill::TooShort
                    } else {
                        match rx_posted.front() {
                            None => Fill::NoBuffer,
                            Some(b) if b.len < 12 + len as u64 => Fill::TooShort,
                            Some(_) => Fill::Filled,
                        }
                    };
                    assert_eq!(fill, want, "receiving {len} bytes");
                    if (14..=1514).contains(&len)
                        && let Some(b) = (fill != Fill::NoBuffer).then(|| rx_posted.pop_front()).flatten()
                    {
                        let used = rx.get_used(&mut mem).unwrap().expect("a used entry");
                        let used_len = if fill == Fill::Filled { 12 + len as u32 } else { 0 };
                        assert_eq!(used, (u32::from(b.head), used_len));
                        if fill == Fill::Filled {
                            let mut got = Vec::new();
                            for &(addr, n) in &b.pieces {
                                let mut piece = vec![0u8; n as usize];
                                mem.read(addr, &mut piece).unwrap();
                                got.extend(piece);
                            }
                            // §5.1.6.4: no offload, num_buffers = 1.
                            let mut want = vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0];
                            want.extend(&frame);
                            assert!(got[..want.len()] == want[..], "header and frame in the buffer");
                        }
                    }
                } else {
                    while let Ok(Some(_)) = rx.get_used(&mut mem) {}
                }
            }
        }
        if let Some(before) = ram_before {
            assert!(before == mem.bytes, "a device that needs a reset wrote guest RAM");
        }
        let irq = dev.read(reg::INTERRUPT_STATUS, 4).expect("InterruptStatus") != 0;
        assert_eq!(dev.irq_level(), irq, "the line is InterruptStatus != 0");
        if clean {
            assert_eq!(dev.error(), None, "a driver that followed the rules got DEVICE_NEEDS_RESET");
        }
    }
    Ok(())
}

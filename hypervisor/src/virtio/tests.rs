//! Host tests of the virtio cores: the split virtqueue against well-formed
//! and hostile rings, the virtio-mmio registers, and virtio-blk end to end
//! with a driver (driver.rs) that lays rings out as Linux does.

use alloc::vec;
use alloc::vec::Vec;

use super::blk::{self, Blk, req, req_status};
use super::driver::Driver;
use super::mmio::{Effect, MmioError, NeedsReset, VirtioMmio, interrupt, reg};
use super::queue::{Buffer, Chain, Queue, QueueError, QueueSetup, desc_flags, vring_need_event};
use super::{GuestMemory, OutsideRam, VecMemory, device_id, feature, status};

const RAM: u64 = 0x4000_0000;
const RAM_SIZE: usize = 2 << 20;
const RINGS: u64 = RAM + 0x1_0000;
const BUFS: u64 = RAM + 0x10_0000;
const ID: [u8; 20] = *b"el2-disk-0\0\0\0\0\0\0\0\0\0\0";
/// Every feature blk and the transport offer on a writable disk.
const ALL: u64 = feature::TRANSPORT
    | blk::feature::SEG_MAX
    | blk::feature::BLK_SIZE
    | blk::feature::FLUSH
    | blk::feature::DISCARD
    | blk::feature::WRITE_ZEROES;

fn ram() -> VecMemory {
    VecMemory::new(RAM, RAM_SIZE)
}

/// 64 KiB (128 sectors), every byte telling its sector and offset apart.
fn disk() -> Vec<u8> {
    (0..64 * 1024).map(|i: usize| (i / 512) as u8 ^ (i as u8).rotate_left(3)).collect()
}

fn rd(addr: u64, len: u32) -> Buffer {
    Buffer { addr, len, writable: false }
}

fn wr(addr: u64, len: u32) -> Buffer {
    Buffer { addr, len, writable: true }
}

// ---- the split virtqueue ---------------------------------------------

/// A queue of `size` at RINGS, set up as the driver's rings, activated
/// with `features`.
fn queue(size: u16, features: u64) -> (Queue, Driver) {
    let drv = Driver::new(RINGS, size);
    let mut q = Queue::new(256);
    q.set_up(QueueSetup { size, desc_table: drv.desc, avail_ring: drv.avail, used_ring: drv.used });
    q.activate(features).unwrap();
    (q, drv)
}

#[test]
fn linux_layout_puts_the_used_ring_on_the_next_page() {
    let drv = Driver::new(RINGS, 256);
    assert_eq!((drv.desc, drv.avail, drv.used), (RINGS, RINGS + 4096, RINGS + 8192));
    assert_eq!(drv.footprint(), 8192 + 6 + 8 * 256);
}

#[test]
fn pop_returns_chains_in_order_and_push_used_returns_them() {
    let mut mem = ram();
    let (mut q, mut drv) = queue(8, feature::TRANSPORT);
    assert_eq!(q.pop(&mut mem), Ok(None), "nothing available yet");
    let a = drv.add(&mut mem, &[rd(BUFS, 16), wr(BUFS + 0x100, 512), wr(BUFS + 0x400, 1)]).unwrap().unwrap();
    let b = drv.add(&mut mem, &[rd(BUFS + 0x800, 4)]).unwrap().unwrap();
    let chain = q.pop(&mut mem).unwrap().unwrap();
    assert_eq!(chain.head, a);
    assert_eq!(chain.buffers, [rd(BUFS, 16), wr(BUFS + 0x100, 512), wr(BUFS + 0x400, 1)]);
    assert_eq!((chain.readable_len(), chain.writable_len()), (16, 513));
    assert_eq!(q.pop(&mut mem).unwrap().unwrap().head, b);
    assert_eq!(q.pop(&mut mem), Ok(None));
    q.push_used(&mut mem, a, 513).unwrap();
    q.push_used(&mut mem, b, 0).unwrap();
    assert_eq!(drv.get_used(&mut mem), Ok(Some((u32::from(a), 513))));
    assert_eq!(drv.get_used(&mut mem), Ok(Some((u32::from(b), 0))));
    assert_eq!(drv.get_used(&mut mem), Ok(None));
    // The ring wraps: 20 more chains through a queue of 8.
    for i in 0..20u64 {
        let h = drv.add(&mut mem, &[rd(BUFS + i, 1), wr(BUFS + 0x1000 + i, 1)]).unwrap().unwrap();
        let c = q.pop(&mut mem).unwrap().unwrap();
        assert_eq!((c.head, c.buffers[0].addr), (h, BUFS + i));
        q.push_used(&mut mem, c.head, 1).unwrap();
        assert_eq!(drv.get_used(&mut mem), Ok(Some((u32::from(h), 1))));
    }
}

#[test]
fn chain_streams_span_buffers() {
    let mut mem = ram();
    let chain =
        Chain { head: 0, buffers: vec![rd(BUFS, 3), rd(BUFS + 0x10, 5), wr(BUFS + 0x20, 2), wr(BUFS + 0x30, 6)] };
    mem.write(BUFS, &[1, 2, 3]).unwrap();
    mem.write(BUFS + 0x10, &[4, 5, 6, 7, 8]).unwrap();
    let mut b = [0u8; 4];
    chain.read_at(&mut mem, 2, &mut b).unwrap();
    assert_eq!(b, [3, 4, 5, 6]);
    chain.write_at(&mut mem, 1, &[9, 9, 9]).unwrap();
    assert_eq!(mem.bytes[0x10_0020..0x10_0022], [0, 9]);
    assert_eq!(mem.bytes[0x10_0030..0x10_0033], [9, 9, 0]);
    assert_eq!(
        chain.read_at(&mut mem, 5, &mut b),
        Err(QueueError::ShortChain { readable: 8, writable: 8 }),
        "past the readable part"
    );
    assert_eq!(chain.write_at(&mut mem, u64::MAX, &[1]), Err(QueueError::ShortChain { readable: 8, writable: 8 }));
}

#[test]
fn indirect_tables_are_followed_after_direct_descriptors() {
    let mut mem = ram();
    let (mut q, mut drv) = queue(8, feature::TRANSPORT);
    let table = BUFS + 0x8000;
    let head = drv.add_indirect(&mut mem, table, &[rd(BUFS, 16), wr(BUFS + 0x100, 512), wr(BUFS + 0x300, 1)]);
    let chain = q.pop(&mut mem).unwrap().unwrap();
    assert_eq!(Some(chain.head), head.unwrap());
    assert_eq!(chain.buffers, [rd(BUFS, 16), wr(BUFS + 0x100, 512), wr(BUFS + 0x300, 1)]);
    // §2.7.5.3.2: zero or more direct descriptors, then one indirect.
    Driver::write_desc(&mut mem, drv.desc, 5, (BUFS, 16, desc_flags::NEXT, 6)).unwrap();
    let second = BUFS + 0x9000;
    Driver::write_desc(&mut mem, second, 0, (BUFS + 0x100, 512, desc_flags::WRITE | desc_flags::NEXT, 1)).unwrap();
    Driver::write_desc(&mut mem, second, 1, (BUFS + 0x300, 1, desc_flags::WRITE, 0)).unwrap();
    Driver::write_desc(&mut mem, drv.desc, 6, (second, 32, desc_flags::INDIRECT, 0)).unwrap();
    drv.publish(&mut mem, 5).unwrap();
    let chain = q.pop(&mut mem).unwrap().unwrap();
    assert_eq!(chain.buffers, [rd(BUFS, 16), wr(BUFS + 0x100, 512), wr(BUFS + 0x300, 1)]);
}

/// Publishes a chain that starts at descriptor 0 of `descs` (written to
/// the table first) and pops it.
fn pop_raw(features: u64, descs: &[(u64, u32, u16, u16)]) -> Result<Option<Chain>, QueueError> {
    let mut mem = ram();
    let (mut q, mut drv) = queue(8, features);
    for (i, &d) in descs.iter().enumerate() {
        Driver::write_desc(&mut mem, drv.desc, i as u16, d).unwrap();
    }
    drv.publish(&mut mem, 0).unwrap();
    q.pop(&mut mem)
}

#[test]
fn hostile_descriptors_are_refused() {
    use desc_flags::{INDIRECT, NEXT, WRITE};
    let t = feature::TRANSPORT;
    let table = BUFS + 0x8000;
    assert_eq!(pop_raw(t, &[(BUFS, 8, NEXT, 1), (BUFS, 8, NEXT, 0)]), Err(QueueError::Loop { head: 0 }));
    assert_eq!(pop_raw(t, &[(BUFS, 8, NEXT, 0)]), Err(QueueError::Loop { head: 0 }), "a descriptor naming itself");
    assert_eq!(pop_raw(t, &[(BUFS, 8, NEXT, 8)]), Err(QueueError::DescIndex { index: 8, table_len: 8 }));
    assert_eq!(pop_raw(t, &[(BUFS, 8, NEXT, 0xffff)]), Err(QueueError::DescIndex { index: 0xffff, table_len: 8 }));
    let outside = RAM + RAM_SIZE as u64;
    assert_eq!(pop_raw(t, &[(outside, 1, 0, 0)]), Err(QueueError::BufferOutsideRam { addr: outside, len: 1 }));
    assert_eq!(pop_raw(t, &[(outside - 1, 2, 0, 0)]), Err(QueueError::BufferOutsideRam { addr: outside - 1, len: 2 }));
    assert_eq!(pop_raw(t, &[(0, 16, 0, 0)]), Err(QueueError::BufferOutsideRam { addr: 0, len: 16 }), "below the RAM");
    assert_eq!(
        pop_raw(t, &[(u64::MAX - 7, 16, 0, 0)]),
        Err(QueueError::BufferOutsideRam { addr: u64::MAX - 7, len: 16 }),
        "an address that wraps"
    );
    assert_eq!(
        pop_raw(t, &[(RAM, u32::MAX, WRITE, 0)]),
        Err(QueueError::BufferOutsideRam { addr: RAM, len: u32::MAX }),
        "a huge length"
    );
    assert_eq!(pop_raw(t, &[(BUFS, 8, WRITE | NEXT, 1), (BUFS, 8, 0, 0)]), Err(QueueError::ReadableAfterWritable));
    // Indirect tables.
    assert_eq!(pop_raw(feature::VERSION_1, &[(table, 16, INDIRECT, 0)]), Err(QueueError::IndirectNotNegotiated));
    assert_eq!(pop_raw(t, &[(table, 16, INDIRECT | NEXT, 1), (BUFS, 8, 0, 0)]), Err(QueueError::IndirectWithNext));
    assert_eq!(pop_raw(t, &[(table, 24, INDIRECT, 0)]), Err(QueueError::IndirectLength { len: 24 }));
    assert_eq!(pop_raw(t, &[(table, 0, INDIRECT, 0)]), Err(QueueError::IndirectLength { len: 0 }));
    assert_eq!(
        pop_raw(t, &[(outside - 16, 32, INDIRECT, 0)]),
        Err(QueueError::BufferOutsideRam { addr: outside - 16, len: 32 })
    );
    let mut mem = ram();
    let (mut q, mut drv) = queue(8, t);
    let raw = |mem: &mut VecMemory, drv: &mut Driver, entries: &[(u64, u32, u16, u16)]| {
        for (i, &d) in entries.iter().enumerate() {
            Driver::write_desc(mem, table, i as u16, d).unwrap();
        }
        Driver::write_desc(mem, drv.desc, 0, (table, 16 * entries.len() as u32, INDIRECT, 0)).unwrap();
        drv.publish(mem, 0).unwrap();
    };
    raw(&mut mem, &mut drv, &[(table, 16, INDIRECT, 0)]);
    assert_eq!(q.pop(&mut mem), Err(QueueError::NestedIndirect));
    let (mut q, mut drv) = queue(8, t);
    raw(&mut mem, &mut drv, &[(BUFS, 1, NEXT, 1), (BUFS, 1, NEXT, 0)]);
    assert_eq!(q.pop(&mut mem), Err(QueueError::Loop { head: 0 }), "a loop inside an indirect table");
    let (mut q, mut drv) = queue(8, t);
    raw(&mut mem, &mut drv, &[(BUFS, 1, NEXT, 2), (BUFS, 1, 0, 0)]);
    assert_eq!(q.pop(&mut mem), Err(QueueError::DescIndex { index: 2, table_len: 2 }));
    // Nine buffers through a queue of eight: longer than the queue.
    let (mut q, mut drv) = queue(8, t);
    let nine: Vec<_> = (0..9).map(|i| (BUFS, 1, NEXT, i + 1)).chain([(BUFS, 1, 0, 0)]).take(9).collect();
    raw(&mut mem, &mut drv, &nine);
    assert_eq!(q.pop(&mut mem), Err(QueueError::ChainTooLong { head: 0 }));
    // Eight is fine.
    let (mut q, mut drv) = queue(8, t);
    let eight: Vec<_> = (0..7).map(|i| (BUFS, 1, NEXT, i + 1)).chain([(BUFS, 1, 0, 0)]).collect();
    raw(&mut mem, &mut drv, &eight);
    assert_eq!(q.pop(&mut mem).unwrap().unwrap().buffers.len(), 8);
}

#[test]
fn hostile_rings_are_refused() {
    let mut mem = ram();
    let (mut q, mut drv) = queue(8, feature::TRANSPORT);
    drv.set_avail_idx(&mut mem, 9).unwrap();
    assert_eq!(q.pop(&mut mem), Err(QueueError::AvailIndex { avail: 9, next: 0 }), "nine new entries in a ring of 8");
    drv.set_avail_idx(&mut mem, 0xffff).unwrap();
    assert_eq!(q.pop(&mut mem), Err(QueueError::AvailIndex { avail: 0xffff, next: 0 }), "the index moved back");
    // A ring outside the RAM.
    let mut q = Queue::new(256);
    q.set_up(QueueSetup { size: 8, desc_table: RINGS, avail_ring: RAM + RAM_SIZE as u64, used_ring: RINGS + 0x1000 });
    q.activate(0).unwrap();
    assert_eq!(
        q.pop(&mut mem),
        Err(QueueError::RingOutsideRam(OutsideRam { addr: RAM + RAM_SIZE as u64 + 2, len: 2 }))
    );
    // Sizes and addresses the driver may not choose.
    for size in [0, 3, 12, 512] {
        let mut q = Queue::new(256);
        q.set_up(QueueSetup { size, ..QueueSetup::default() });
        assert_eq!(q.activate(0), Err(QueueError::BadSize { size, max: 256 }));
        assert!(!q.ready());
    }
    for (desc, avail, used, bad) in [
        (RINGS + 8, RINGS, RINGS, RINGS + 8),
        (RINGS, RINGS + 1, RINGS, RINGS + 1),
        (RINGS, RINGS, RINGS + 2, RINGS + 2),
    ] {
        let mut q = Queue::new(256);
        q.set_up(QueueSetup { size: 8, desc_table: desc, avail_ring: avail, used_ring: used });
        assert_eq!(q.activate(0), Err(QueueError::BadRingAddress { addr: bad }), "misaligned");
    }
    let mut q = Queue::new(256);
    q.set_up(QueueSetup { size: 8, desc_table: u64::MAX - 15, avail_ring: RINGS, used_ring: RINGS });
    assert_eq!(q.activate(0), Err(QueueError::BadRingAddress { addr: u64::MAX - 15 }), "a table that wraps");
}

#[test]
fn need_event_is_the_used_event_inside_the_new_entries() {
    // vring_need_event(event, new, old): was `event` passed going old -> new?
    assert!(vring_need_event(0, 1, 0));
    assert!(!vring_need_event(1, 1, 0), "the driver wants to hear after entry 1 is used");
    assert!(vring_need_event(1, 2, 0));
    assert!(vring_need_event(4, 8, 3));
    assert!(!vring_need_event(2, 8, 3), "already passed before old");
    assert!(vring_need_event(0xffff, 2, 0xfffe), "across the wrap");
    assert!(!vring_need_event(5, 5, 5), "nothing new");
}

#[test]
fn interrupts_follow_used_event_or_the_no_interrupt_flag() {
    let mut mem = ram();
    let (mut q, drv) = queue(8, feature::TRANSPORT);
    drv.set_used_event(&mut mem, 1).unwrap();
    q.push_used(&mut mem, 0, 0).unwrap();
    assert_eq!(q.needs_interrupt(&mut mem), Ok(false), "used_event 1: not after entry 0");
    q.push_used(&mut mem, 1, 0).unwrap();
    assert_eq!(q.needs_interrupt(&mut mem), Ok(true), "entry 1 is used");
    assert_eq!(q.needs_interrupt(&mut mem), Ok(false), "nothing new since");
    q.push_used(&mut mem, 2, 0).unwrap();
    assert_eq!(q.needs_interrupt(&mut mem), Ok(false), "used_event still 1");
    // Without event index: AVAIL_F_NO_INTERRUPT decides.
    let (mut q, drv) = queue(8, feature::VERSION_1);
    drv.set_used_event(&mut mem, 5).unwrap();
    q.push_used(&mut mem, 0, 0).unwrap();
    assert_eq!(q.needs_interrupt(&mut mem), Ok(true), "used_event is ignored");
    drv.set_no_interrupt(&mut mem, true).unwrap();
    q.push_used(&mut mem, 1, 0).unwrap();
    assert_eq!(q.needs_interrupt(&mut mem), Ok(false));
}

// ---- the virtio-mmio registers -----------------------------------------

fn device(disk: &mut [u8]) -> VirtioMmio<Blk<'_>> {
    VirtioMmio::new(Blk::new(disk, false, ID))
}

fn r(dev: &VirtioMmio<Blk<'_>>, offset: u64) -> u32 {
    dev.read(offset, 4).unwrap() as u32
}

fn w(dev: &mut VirtioMmio<Blk<'_>>, offset: u64, value: u32) -> Effect {
    dev.write(offset, 4, u64::from(value)).unwrap()
}

#[test]
fn identity_and_feature_registers() {
    let mut d = disk();
    let mut dev = device(&mut d);
    assert_eq!(r(&dev, reg::MAGIC_VALUE), 0x7472_6976);
    assert_eq!(r(&dev, reg::VERSION), 2);
    assert_eq!(r(&dev, reg::DEVICE_ID), device_id::BLOCK);
    assert_eq!(r(&dev, reg::DEVICE_FEATURES), ALL as u32);
    w(&mut dev, reg::DEVICE_FEATURES_SEL, 1);
    assert_eq!(r(&dev, reg::DEVICE_FEATURES), 1, "VERSION_1 is bit 32");
    w(&mut dev, reg::DEVICE_FEATURES_SEL, 2);
    assert_eq!(r(&dev, reg::DEVICE_FEATURES), 0);
    assert_eq!(r(&dev, reg::QUEUE_NUM_MAX), 256);
    w(&mut dev, reg::QUEUE_SEL, 1);
    assert_eq!(r(&dev, reg::QUEUE_NUM_MAX), 0, "one queue only");
    assert_eq!(r(&dev, reg::QUEUE_READY), 0);
    assert_eq!(r(&dev, reg::SHM_LEN_LOW), u32::MAX, "no shared memory region");
    assert_eq!(r(&dev, reg::QUEUE_NUM), 0, "write-only reads 0");
    assert_eq!(w(&mut dev, reg::MAGIC_VALUE, 5), Effect::None, "read-only ignores writes");
    assert_eq!(r(&dev, reg::MAGIC_VALUE), 0x7472_6976);
}

#[test]
fn access_sizes_follow_the_spec() {
    let mut d = disk();
    let mut dev = device(&mut d);
    for size in [1, 2, 8] {
        assert_eq!(dev.read(reg::STATUS, size), Err(MmioError::BadSize { offset: reg::STATUS, size }));
        assert_eq!(dev.write(reg::STATUS, size, 1), Err(MmioError::BadSize { offset: reg::STATUS, size }));
    }
    assert_eq!(dev.read(0x72, 4), Err(MmioError::Unaligned { offset: 0x72, size: 4 }));
    assert_eq!(dev.status(), 0, "a refused write did nothing");
    // Configuration space: 8-, 16-, 32-bit aligned.
    assert_eq!(dev.read(0x100, 4), Ok(128), "capacity, low half");
    assert_eq!(dev.read(0x104, 4), Ok(0), "capacity, high half");
    assert_eq!(dev.read(0x100, 1), Ok(128));
    assert_eq!(dev.read(0x100, 2), Ok(128));
    assert_eq!(dev.read(0x10c, 4), Ok(254), "seg_max");
    assert_eq!(dev.read(0x114, 4), Ok(512), "blk_size");
    assert_eq!(dev.read(0x124, 4), Ok(u64::from(blk::MAX_DISCARD_SECTORS)));
    assert_eq!(dev.read(0x1f0, 4), Ok(0), "past the device's configuration");
    assert_eq!(dev.read(0x100, 8), Err(MmioError::BadSize { offset: 0x100, size: 8 }));
    assert_eq!(dev.read(0x101, 2), Err(MmioError::Unaligned { offset: 0x101, size: 2 }));
    assert_eq!(dev.read(0x200, 4), Err(MmioError::OutOfRange { offset: 0x200 }));
    assert_eq!(dev.write(0x100, 4, 0), Ok(Effect::None), "configuration writes are ignored");
    assert_eq!(dev.read(0x100, 4), Ok(128));
}

#[test]
fn features_ok_needs_version_1_and_offered_features() {
    let mut d = disk();
    let mut dev = device(&mut d);
    let drv = Driver::new(RINGS, 8);
    let legacy = ALL & !feature::VERSION_1;
    assert_eq!(drv.bring_up(&mut dev, 0, legacy) & status::FEATURES_OK, 0, "no VERSION_1");
    assert!(!dev.queue(0).unwrap().ready(), "and the queue is not ready");
    assert_eq!(dev.status() & status::DEVICE_NEEDS_RESET, status::DEVICE_NEEDS_RESET, "QueueReady before FEATURES_OK");
    assert_eq!(dev.error(), Some(NeedsReset::QueueReadyBeforeFeaturesOk { queue: 0 }));
    let unoffered = ALL | (1 << 34);
    assert_eq!(drv.bring_up(&mut dev, 0, unoffered) & status::FEATURES_OK, 0, "RING_PACKED is not offered");
    let s = drv.bring_up(&mut dev, 0, ALL);
    assert_eq!(s, status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK);
    assert_eq!(dev.negotiated_features(), ALL);
    assert_eq!(dev.error(), None, "the reset cleared the earlier error");
    // DriverFeatures is fixed once FEATURES_OK is set.
    w(&mut dev, reg::DRIVER_FEATURES_SEL, 0);
    w(&mut dev, reg::DRIVER_FEATURES, 0);
    assert_eq!(dev.negotiated_features(), ALL);
}

#[test]
fn status_bits_are_only_added_and_zero_resets() {
    let mut d = disk();
    let mut dev = device(&mut d);
    Driver::new(RINGS, 8).bring_up(&mut dev, 0, ALL);
    let live = dev.status();
    assert_eq!(w(&mut dev, reg::STATUS, status::ACKNOWLEDGE), Effect::None);
    assert_eq!(dev.status(), live, "clearing bits is ignored");
    w(&mut dev, reg::STATUS, live | status::DEVICE_NEEDS_RESET);
    assert_eq!(dev.status(), live, "DEVICE_NEEDS_RESET is the device's to set");
    assert_eq!(w(&mut dev, reg::STATUS, 0), Effect::Reset);
    assert_eq!(dev.status(), 0);
    assert_eq!(dev.negotiated_features(), 0);
    assert!(!dev.queue(0).unwrap().ready());
    assert_eq!(dev.queue(0).unwrap().setup(), QueueSetup::default());
}

#[test]
fn queue_setup_is_checked_when_it_goes_ready() {
    for (size, error) in
        [(6, QueueError::BadSize { size: 6, max: 256 }), (512, QueueError::BadSize { size: 512, max: 256 })]
    {
        let mut d = disk();
        let mut dev = device(&mut d);
        let mut drv = Driver::new(RINGS, 8);
        drv.size = size;
        drv.bring_up(&mut dev, 0, ALL);
        assert_eq!(dev.error(), Some(NeedsReset::Queue { queue: 0, error }));
        assert!(!dev.queue(0).unwrap().ready());
    }
    let mut d = disk();
    let mut dev = device(&mut d);
    let drv = Driver::new(RINGS, 8);
    drv.bring_up(&mut dev, 0, ALL);
    // Set-up registers are ignored while the queue is ready.
    w(&mut dev, reg::QUEUE_NUM, 4);
    w(&mut dev, reg::QUEUE_DESC_LOW, 0x1234_0000);
    assert_eq!((dev.queue(0).unwrap().setup().size, dev.queue(0).unwrap().setup().desc_table), (8, RINGS));
    // QueueReady = 0 stops it; then it may be changed.
    w(&mut dev, reg::QUEUE_READY, 0);
    assert_eq!(r(&dev, reg::QUEUE_READY), 0);
    w(&mut dev, reg::QUEUE_NUM, 4);
    assert_eq!(dev.queue(0).unwrap().setup().size, 4);
    w(&mut dev, reg::QUEUE_NUM, 0x1_0004);
    assert_eq!(
        dev.queue(0).unwrap().setup().size,
        0,
        "a size that does not fit 16 bits is not truncated into a valid one"
    );
    // A notification for a queue that is not ready, or does not exist, is ignored.
    assert_eq!(w(&mut dev, reg::QUEUE_NOTIFY, 0), Effect::None);
    assert_eq!(w(&mut dev, reg::QUEUE_NOTIFY, 1), Effect::None);
}

#[test]
fn no_notification_before_driver_ok() {
    let mut d = disk();
    let mut dev = device(&mut d);
    let drv = Driver::new(RINGS, 8);
    drv.bring_up(&mut dev, 0, ALL);
    assert_eq!(w(&mut dev, reg::QUEUE_NOTIFY, 0), Effect::QueueNotify(0));
    w(&mut dev, reg::STATUS, 0);
    w(&mut dev, reg::STATUS, status::ACKNOWLEDGE | status::DRIVER);
    w(&mut dev, reg::DRIVER_FEATURES_SEL, 1);
    w(&mut dev, reg::DRIVER_FEATURES, 1);
    w(&mut dev, reg::STATUS, status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK);
    w(&mut dev, reg::QUEUE_NUM, 8);
    w(&mut dev, reg::QUEUE_READY, 1);
    assert!(dev.queue(0).unwrap().ready());
    assert_eq!(w(&mut dev, reg::QUEUE_NOTIFY, 0), Effect::None, "not live before DRIVER_OK (§2.1.2)");
    assert_eq!(dev.notify(0, &mut ram()).completed, 0);
}

// ---- virtio-blk end to end -----------------------------------------------

/// Where request `slot`'s header, data and status byte live.
fn slot(n: u64) -> (u64, u64, u64) {
    let base = BUFS + n * 0x1_0000;
    (base, base + 0x100, base + 0xff00)
}

/// What a request carries besides its header and status byte.
enum Data<'a> {
    None,
    Out(&'a [u8]),
    In(u32),
}

/// Posts a blk request in `slot` as Linux's virtblk_add_req lays it out:
/// header, data, status, each its own buffer. Returns the head.
fn post(mem: &mut VecMemory, drv: &mut Driver, n: u64, ty: u32, sector: u64, data: Data<'_>) -> u16 {
    let (hdr, buf, st) = slot(n);
    let mut h = [0u8; 16];
    h[0..4].copy_from_slice(&ty.to_le_bytes());
    h[8..16].copy_from_slice(&sector.to_le_bytes());
    mem.write(hdr, &h).unwrap();
    mem.write(st, &[0xff]).unwrap();
    let mut bufs = vec![rd(hdr, 16)];
    match data {
        Data::None => {}
        Data::Out(bytes) => {
            mem.write(buf, bytes).unwrap();
            bufs.push(rd(buf, bytes.len() as u32));
        }
        Data::In(len) => bufs.push(wr(buf, len)),
    }
    bufs.push(wr(st, 1));
    drv.add(mem, &bufs).unwrap().expect("free descriptors")
}

fn status_byte(mem: &mut VecMemory, n: u64) -> u8 {
    let mut b = [0u8];
    mem.read(slot(n).2, &mut b).unwrap();
    b[0]
}

fn notify(dev: &mut VirtioMmio<Blk<'_>>, mem: &mut VecMemory) -> usize {
    assert_eq!(w(dev, reg::QUEUE_NOTIFY, 0), Effect::QueueNotify(0));
    dev.notify(0, mem).completed
}

#[test]
fn blk_writes_and_reads_back_and_interrupts() {
    let mut mem = ram();
    let mut d = disk();
    let before = d.clone();
    let mut dev = device(&mut d);
    let mut drv = Driver::new(RINGS, 8);
    drv.bring_up(&mut dev, 0, feature::VERSION_1 | blk::feature::FLUSH);
    let data: Vec<u8> = (0..1024u32).map(|i| (i * 7) as u8).collect();
    let a = post(&mut mem, &mut drv, 0, req::OUT, 3, Data::Out(&data));
    let b = post(&mut mem, &mut drv, 1, req::IN, 3, Data::In(1024));
    let c = post(&mut mem, &mut drv, 2, req::FLUSH, 0, Data::None);
    assert!(!dev.irq_level());
    assert_eq!(notify(&mut dev, &mut mem), 3);
    assert!(dev.irq_level(), "used buffers, no suppression");
    assert_eq!(r(&dev, reg::INTERRUPT_STATUS), interrupt::USED_BUFFER);
    assert_eq!(drv.get_used(&mut mem), Ok(Some((u32::from(a), 1))), "a write: the status byte only");
    assert_eq!(drv.get_used(&mut mem), Ok(Some((u32::from(b), 1025))), "a read: data and status");
    assert_eq!(drv.get_used(&mut mem), Ok(Some((u32::from(c), 1))));
    assert_eq!([status_byte(&mut mem, 0), status_byte(&mut mem, 1), status_byte(&mut mem, 2)], [req_status::OK; 3]);
    let (_, buf, _) = slot(1);
    let off = (buf - RAM) as usize;
    assert_eq!(mem.bytes[off..off + 1024], data[..], "read back what was written");
    assert_eq!(w(&mut dev, reg::INTERRUPT_ACK, interrupt::USED_BUFFER), Effect::IrqLevel(false));
    assert!(!dev.irq_level());
    drop(dev);
    assert_eq!(d[3 * 512..5 * 512], data[..], "the image holds the data");
    assert_eq!(d[..3 * 512], before[..3 * 512], "and nothing else changed");
    assert_eq!(d[5 * 512..], before[5 * 512..]);
}

#[test]
fn blk_serves_indirect_chains_split_anyhow() {
    let mut mem = ram();
    let mut d = disk();
    let expect = d[10 * 512..12 * 512].to_vec();
    let mut dev = device(&mut d);
    let mut drv = Driver::new(RINGS, 8);
    drv.bring_up(&mut dev, 0, ALL);
    // Header split 10 + 6, data in three pieces, status byte with the last.
    let (hdr, buf, _) = slot(0);
    let mut h = [0u8; 16];
    h[8..16].copy_from_slice(&10u64.to_le_bytes());
    mem.write(hdr, &h).unwrap();
    let bufs = [rd(hdr, 10), rd(hdr + 10, 6), wr(buf, 100), wr(buf + 0x1000, 900), wr(buf + 0x2000, 25)];
    let head = drv.add_indirect(&mut mem, BUFS + 0xf000, &bufs).unwrap().unwrap();
    assert_eq!(notify(&mut dev, &mut mem), 1);
    assert_eq!(drv.get_used(&mut mem), Ok(Some((u32::from(head), 1025))));
    let at = |a: u64| (a - RAM) as usize;
    let mut got = mem.bytes[at(buf)..at(buf) + 100].to_vec();
    got.extend_from_slice(&mem.bytes[at(buf + 0x1000)..at(buf + 0x1000) + 900]);
    got.extend_from_slice(&mem.bytes[at(buf + 0x2000)..at(buf + 0x2000) + 24]);
    assert_eq!(got, expect);
    assert_eq!(mem.bytes[at(buf + 0x2000) + 24], req_status::OK);
}

#[test]
fn blk_event_index_suppresses_interrupts_and_asks_for_notifications() {
    let mut mem = ram();
    let mut d = disk();
    let mut dev = device(&mut d);
    let mut drv = Driver::new(RINGS, 16);
    drv.bring_up(&mut dev, 0, ALL);
    drv.set_used_event(&mut mem, 1).unwrap();
    post(&mut mem, &mut drv, 0, req::IN, 0, Data::In(512));
    assert_eq!(notify(&mut dev, &mut mem), 1);
    assert!(!dev.irq_level(), "used_event 1: no interrupt for entry 0");
    assert_eq!(drv.avail_event(&mut mem), Ok(1), "notify me when entry 1 is available");
    post(&mut mem, &mut drv, 1, req::IN, 1, Data::In(512));
    post(&mut mem, &mut drv, 2, req::IN, 2, Data::In(512));
    assert_eq!(notify(&mut dev, &mut mem), 2);
    assert!(dev.irq_level(), "entry 1 used");
    assert_eq!(drv.avail_event(&mut mem), Ok(3));
}

#[test]
fn blk_checks_every_request_against_the_disk() {
    let mut mem = ram();
    let mut d = disk();
    let before = d.clone();
    let mut dev = device(&mut d);
    let mut drv = Driver::new(RINGS, 32);
    drv.bring_up(&mut dev, 0, ALL);
    let zeros = [0u8; 512];
    let cases: [(u32, u64, Data<'_>, u8); 9] = [
        (req::IN, 127, Data::In(512), req_status::OK),
        (req::IN, 127, Data::In(1024), req_status::IOERR),
        (req::IN, 128, Data::In(512), req_status::IOERR),
        (req::IN, u64::MAX, Data::In(512), req_status::IOERR),
        (req::IN, 1 << 55, Data::In(512), req_status::IOERR),
        (req::IN, 0, Data::In(100), req_status::IOERR),
        (req::OUT, 128, Data::Out(&zeros), req_status::IOERR),
        (req::OUT, 0, Data::Out(&zeros[..200]), req_status::IOERR),
        (99, 0, Data::None, req_status::UNSUPP),
    ];
    let n = cases.len();
    for (i, (ty, sector, data, _)) in cases.into_iter().enumerate() {
        post(&mut mem, &mut drv, i as u64, ty, sector, data);
    }
    assert_eq!(notify(&mut dev, &mut mem), n);
    let expect = [req_status::OK, 1, 1, 1, 1, 1, 1, 1, 2];
    let got: Vec<u8> = (0..n as u64).map(|i| status_byte(&mut mem, i)).collect();
    assert_eq!(got, expect);
    // The used len counts only bytes written from the start of the
    // writable part: a failed read wrote none of its data (§2.7.8.1).
    let lens: Vec<u32> = (0..n).map(|_| drv.get_used(&mut mem).unwrap().unwrap().1).collect();
    assert_eq!(lens, [513, 0, 0, 0, 0, 0, 1, 1, 1]);
    assert_eq!(dev.status() & status::DEVICE_NEEDS_RESET, 0, "bad requests are answered, not fatal");
    drop(dev);
    assert_eq!(d, before);
}

#[test]
fn blk_get_id_flush_discard_and_write_zeroes() {
    let mut mem = ram();
    let mut d = disk();
    let before = d.clone();
    let mut dev = device(&mut d);
    let mut drv = Driver::new(RINGS, 32);
    drv.bring_up(&mut dev, 0, ALL);
    let seg = |sector: u64, num: u32, flags: u32| {
        let mut s = [0u8; 16];
        s[0..8].copy_from_slice(&sector.to_le_bytes());
        s[8..12].copy_from_slice(&num.to_le_bytes());
        s[12..16].copy_from_slice(&flags.to_le_bytes());
        s
    };
    let two = [seg(4, 2, 0), seg(20, 1, 0)].concat();
    let too_many: Vec<u8> = (0..33).flat_map(|i| seg(i, 1, 0)).collect();
    post(&mut mem, &mut drv, 0, req::GET_ID, 0, Data::In(20));
    post(&mut mem, &mut drv, 1, req::DISCARD, 0, Data::Out(&two));
    post(&mut mem, &mut drv, 2, req::WRITE_ZEROES, 0, Data::Out(&seg(40, 3, blk::SEGMENT_F_UNMAP)));
    post(&mut mem, &mut drv, 3, req::DISCARD, 0, Data::Out(&seg(50, 1, blk::SEGMENT_F_UNMAP)));
    post(&mut mem, &mut drv, 4, req::WRITE_ZEROES, 0, Data::Out(&seg(50, 1, 2)));
    post(&mut mem, &mut drv, 5, req::DISCARD, 0, Data::Out(&too_many));
    post(&mut mem, &mut drv, 6, req::DISCARD, 0, Data::Out(&[seg(60, 1, 0), seg(127, 2, 0)].concat()));
    post(&mut mem, &mut drv, 7, req::DISCARD, 0, Data::Out(&seg(0, 1, 0)[..12]));
    post(&mut mem, &mut drv, 8, req::FLUSH, 0, Data::None);
    assert_eq!(notify(&mut dev, &mut mem), 9);
    let got: Vec<u8> = (0..9).map(|i| status_byte(&mut mem, i)).collect();
    assert_eq!(got, [0, 0, 0, 2, 2, 1, 1, 1, 0]);
    let (_, id, _) = slot(0);
    let off = (id - RAM) as usize;
    assert_eq!(mem.bytes[off..off + 20], ID);
    assert_eq!(drv.get_used(&mut mem).unwrap().unwrap().1, 21, "GET_ID: 20 bytes and the status");
    drop(dev);
    let zeroed = |s: usize, n: usize| d[s * 512..(s + n) * 512].iter().all(|&b| b == 0);
    assert!(zeroed(4, 2) && zeroed(20, 1) && zeroed(40, 3));
    let mut expect = before.clone();
    for (s, n) in [(4, 2), (20, 1), (40, 3)] {
        expect[s * 512..(s + n) * 512].fill(0);
    }
    assert_eq!(d, expect, "refused requests changed nothing (segment 60 was checked before any was done)");
}

#[test]
fn read_only_disks_refuse_every_change() {
    let mut mem = ram();
    let mut d = disk();
    let before = d.clone();
    let mut dev = VirtioMmio::new(Blk::new(&mut d, true, ID));
    assert_eq!(r(&dev, reg::DEVICE_FEATURES) as u64 & blk::feature::RO, blk::feature::RO);
    let mut drv = Driver::new(RINGS, 16);
    drv.bring_up(&mut dev, 0, ALL | blk::feature::RO);
    let seg = [0u8, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0];
    post(&mut mem, &mut drv, 0, req::OUT, 0, Data::Out(&[0; 512]));
    post(&mut mem, &mut drv, 1, req::DISCARD, 0, Data::Out(&seg));
    post(&mut mem, &mut drv, 2, req::WRITE_ZEROES, 0, Data::Out(&seg));
    post(&mut mem, &mut drv, 3, req::IN, 0, Data::In(512));
    post(&mut mem, &mut drv, 4, req::FLUSH, 0, Data::None);
    assert_eq!(notify(&mut dev, &mut mem), 5);
    let got: Vec<u8> = (0..5).map(|i| status_byte(&mut mem, i)).collect();
    assert_eq!(got, [1, 1, 1, 0, 0]);
    drop(dev);
    assert_eq!(d, before);
}

#[test]
fn a_hostile_chain_needs_reset_and_stops_the_device_until_reset() {
    let mut mem = ram();
    let mut d = disk();
    let mut dev = device(&mut d);
    let mut drv = Driver::new(RINGS, 8);
    drv.bring_up(&mut dev, 0, ALL);
    post(&mut mem, &mut drv, 0, req::IN, 0, Data::In(512));
    // A loop: descriptor 7 names itself.
    Driver::write_desc(&mut mem, drv.desc, 7, (BUFS, 16, desc_flags::NEXT, 7)).unwrap();
    drv.publish(&mut mem, 7).unwrap();
    post(&mut mem, &mut drv, 2, req::IN, 0, Data::In(512));
    assert_eq!(notify(&mut dev, &mut mem), 1, "the good chain before the loop is served");
    assert_eq!(dev.error(), Some(NeedsReset::Queue { queue: 0, error: QueueError::Loop { head: 7 } }));
    assert_eq!(r(&dev, reg::STATUS) & status::DEVICE_NEEDS_RESET, status::DEVICE_NEEDS_RESET);
    assert_eq!(r(&dev, reg::INTERRUPT_STATUS), interrupt::USED_BUFFER | interrupt::CONFIG_CHANGE);
    assert_eq!(w(&mut dev, reg::QUEUE_NOTIFY, 0), Effect::None, "ignored until reset");
    assert_eq!(dev.notify(0, &mut mem).completed, 0);
    assert_eq!(status_byte(&mut mem, 2), 0xff, "the chain after the loop was not touched");
    // A reset and a new set-up bring it back.
    let mut drv = Driver::new(RINGS, 8);
    mem.bytes[(RINGS - RAM) as usize..][..drv.footprint() as usize].fill(0);
    drv.bring_up(&mut dev, 0, ALL);
    assert_eq!((dev.error(), dev.irq_level()), (None, false));
    post(&mut mem, &mut drv, 0, req::IN, 0, Data::In(512));
    assert_eq!(notify(&mut dev, &mut mem), 1);
}

#[test]
fn a_chain_without_header_or_status_needs_reset() {
    for bufs in [[rd(BUFS, 8), wr(BUFS + 0x100, 1)], [rd(BUFS, 16), rd(BUFS + 0x100, 1)]] {
        let mut mem = ram();
        let mut d = disk();
        let mut dev = device(&mut d);
        let mut drv = Driver::new(RINGS, 8);
        drv.bring_up(&mut dev, 0, ALL);
        drv.add(&mut mem, &bufs).unwrap();
        assert_eq!(notify(&mut dev, &mut mem), 0);
        assert!(matches!(dev.error(), Some(NeedsReset::Queue { error: QueueError::ShortChain { .. }, .. })));
        assert!(dev.irq_level(), "configuration change interrupt");
    }
}

#[test]
fn written_data_survives_a_reset() {
    let mut mem = ram();
    let mut d = disk();
    let mut dev = device(&mut d);
    let mut drv = Driver::new(RINGS, 8);
    drv.bring_up(&mut dev, 0, ALL);
    post(&mut mem, &mut drv, 0, req::OUT, 7, Data::Out(&[0xab; 512]));
    notify(&mut dev, &mut mem);
    // A VM reset: the device resets and the guest's RAM starts over.
    dev.reset();
    let mut mem = ram();
    let mut drv = Driver::new(RINGS, 8);
    drv.bring_up(&mut dev, 0, ALL);
    post(&mut mem, &mut drv, 0, req::IN, 7, Data::In(512));
    assert_eq!(notify(&mut dev, &mut mem), 1);
    let (_, buf, _) = slot(0);
    let off = (buf - RAM) as usize;
    assert!(mem.bytes[off..off + 512].iter().all(|&b| b == 0xab));
}

#[test]
fn a_ready_queue_keeps_its_setup() {
    let mut mem = ram();
    let (mut q, drv) = queue(8, feature::TRANSPORT);
    q.set_up(QueueSetup { size: 4096, desc_table: 1, avail_ring: 1, used_ring: 1 });
    assert_eq!(q.setup(), QueueSetup { size: 8, desc_table: drv.desc, avail_ring: drv.avail, used_ring: drv.used });
    q.deactivate();
    q.set_up(QueueSetup::default());
    assert_eq!(q.setup(), QueueSetup::default(), "taken once the queue is stopped");
    assert_eq!(q.push_used(&mut mem, 0, 0), Err(QueueError::NotReady));
    assert_eq!(q.needs_interrupt(&mut mem), Ok(false));
    assert_eq!(q.pop(&mut mem), Ok(None));
}

/// Guest RAM with a driver on another vCPU that makes chain `head`
/// available again each time the device moves the used index: it never
/// lets up.
struct Relentless {
    mem: VecMemory,
    drv: Driver,
    head: u16,
}

impl GuestMemory for Relentless {
    fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), OutsideRam> {
        self.mem.read(addr, buf)
    }

    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), OutsideRam> {
        self.mem.write(addr, data)?;
        if addr == self.drv.used + 2 {
            self.drv.publish(&mut self.mem, self.head)?;
        }
        Ok(())
    }

    fn contains(&self, addr: u64, len: u64) -> bool {
        self.mem.contains(addr, len)
    }
}

#[test]
fn one_notification_serves_at_most_a_queue_size() {
    let mut mem = ram();
    let mut d = disk();
    let mut dev = device(&mut d);
    let mut drv = Driver::new(RINGS, 4);
    drv.bring_up(&mut dev, 0, ALL);
    let head = post(&mut mem, &mut drv, 0, req::IN, 0, Data::In(512));
    let mut busy = Relentless { mem, drv, head };
    assert_eq!(w(&mut dev, reg::QUEUE_NOTIFY, 0), Effect::QueueNotify(0));
    let done = dev.notify(0, &mut busy);
    assert_eq!((done.completed, done.more), (4, true), "stops after a queue size, and says more are waiting");
    assert!(dev.irq_level());
    let done = dev.notify(0, &mut busy);
    assert_eq!((done.completed, done.more), (4, true));
    assert_eq!(dev.error(), None);
}

// ---- virtio-net ----------------------------------------------------------

use super::mmio::Fill;
use super::net::{self, Net};

const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
/// The receive and transmit queues' rings.
const RX_RINGS: u64 = RINGS;
const TX_RINGS: u64 = RINGS + 0x4000;

/// A virtio-net device brought up as Linux's virtio_net brings it up
/// (VERSION_1 and MAC), with queues of 16.
fn net_up(features: u64) -> (VirtioMmio<Net>, Driver, Driver, VecMemory) {
    let mut dev = VirtioMmio::new(Net::new(MAC));
    let (rx, tx) = (Driver::new(RX_RINGS, 16), Driver::new(TX_RINGS, 16));
    let st = Driver::bring_up_queues(&mut dev, &[(net::RX, &rx), (net::TX, &tx)], features);
    assert_eq!(st & status::DRIVER_OK, status::DRIVER_OK);
    (dev, rx, tx, ram())
}

fn eth(len: usize, seed: u8) -> Vec<u8> {
    let mut f: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(seed)).collect();
    f[..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&MAC);
    f
}

/// Posts a transmit chain: the header (with `flags`) and `frame`, each its
/// own buffer as Linux's xmit_skb does without offloads.
fn post_tx(mem: &mut VecMemory, tx: &mut Driver, n: u64, flags: u8, frame: &[u8]) -> u16 {
    let base = BUFS + n * 0x1000;
    let mut hdr = [0u8; net::HDR_LEN];
    hdr[0] = flags;
    mem.write(base, &hdr).unwrap();
    mem.write(base + 0x100, frame).unwrap();
    tx.add(mem, &[rd(base, net::HDR_LEN as u32), rd(base + 0x100, frame.len() as u32)]).unwrap().unwrap()
}

/// Posts an empty receive buffer of `len` bytes in slot `n`.
fn post_rx(mem: &mut VecMemory, rx: &mut Driver, n: u64, len: u32) -> u16 {
    rx.add(mem, &[wr(BUFS + 0x8_0000 + n * 0x1000, len)]).unwrap().unwrap()
}

#[test]
fn net_identity_features_and_mac() {
    let dev = VirtioMmio::new(Net::new(MAC));
    assert_eq!(dev.read(reg::DEVICE_ID, 4), Ok(1));
    assert_eq!(dev.device_features(), feature::TRANSPORT | net::feature::MAC);
    for (i, b) in MAC.iter().enumerate() {
        assert_eq!(dev.read(0x100 + i as u64, 1), Ok(u64::from(*b)), "config byte {i}: the MAC");
    }
    assert_eq!(dev.read(0x106, 2), Ok(0), "no status field without VIRTIO_NET_F_STATUS");
    assert_eq!(dev.queue(net::RX).map(Queue::max_size), Some(256));
    assert_eq!(dev.queue(net::TX).map(Queue::max_size), Some(256));
    assert_eq!(dev.queue(2), None, "no control queue");
}

#[test]
fn net_transmits_frames_into_the_outbox_and_returns_the_chains() {
    let (mut dev, _rx, mut tx, mut mem) = net_up(feature::VERSION_1 | net::feature::MAC);
    let (a, b) = (eth(60, 3), eth(1514, 5));
    let ha = post_tx(&mut mem, &mut tx, 0, 0, &a);
    let hb = post_tx(&mut mem, &mut tx, 1, 0, &b);
    assert_eq!(dev.write(reg::QUEUE_NOTIFY, 4, 1), Ok(Effect::QueueNotify(1)));
    assert_eq!(dev.notify(net::TX, &mut mem).completed, 2);
    assert_eq!(tx.get_used(&mut mem), Ok(Some((u32::from(ha), 0))), "the device wrote nothing");
    assert_eq!(tx.get_used(&mut mem), Ok(Some((u32::from(hb), 0))));
    assert!(dev.irq_level());
    assert_eq!(dev.device_mut().take_outbox(), [a, b]);
    assert!(dev.device_mut().take_outbox().is_empty());
    assert_eq!(dev.device().stats().tx_frames, 2);
}

#[test]
fn net_drops_and_counts_bad_headers_and_sizes_without_a_reset() {
    let (mut dev, _rx, mut tx, mut mem) = net_up(feature::TRANSPORT | net::feature::MAC);
    post_tx(&mut mem, &mut tx, 0, 1, &eth(60, 1)); // NEEDS_CSUM, not negotiated
    post_tx(&mut mem, &mut tx, 1, 0, &eth(13, 1)[..13]); // shorter than an Ethernet header
    post_tx(&mut mem, &mut tx, 2, 0, &[0x55; 1515]); // longer than 1514
    tx.add(&mut mem, &[rd(BUFS + 0x3000, 11)]).unwrap(); // not even a header
    post_tx(&mut mem, &mut tx, 4, 0, &eth(14, 1)); // the shortest good one
    assert_eq!(dev.notify(net::TX, &mut mem).completed, 5);
    assert_eq!(dev.status() & status::DEVICE_NEEDS_RESET, 0, "bad frames are not protocol errors");
    let s = dev.device().stats();
    assert_eq!((s.tx_bad_header, s.tx_bad_size, s.tx_frames), (1, 3, 1));
    assert_eq!(dev.device_mut().take_outbox(), [eth(14, 1)]);
}

#[test]
fn net_transmit_accepts_a_header_and_frame_split_anyhow() {
    let (mut dev, _rx, mut tx, mut mem) = net_up(feature::TRANSPORT | net::feature::MAC);
    let f = eth(100, 7);
    let mut packet = vec![0u8; net::HDR_LEN];
    packet.extend_from_slice(&f);
    mem.write(BUFS, &packet).unwrap();
    // 5 + 20 + the rest: the header itself split, through an indirect table.
    let bufs = [rd(BUFS, 5), rd(BUFS + 5, 20), rd(BUFS + 25, packet.len() as u32 - 25)];
    tx.add_indirect(&mut mem, BUFS + 0x8000, &bufs).unwrap().unwrap();
    dev.notify(net::TX, &mut mem);
    assert_eq!(dev.device_mut().take_outbox(), [f]);
}

#[test]
fn net_outbox_is_bounded() {
    let mut dev = VirtioMmio::new(Net::new(MAC));
    let (rx, tx) = (Driver::new(RX_RINGS, 8), Driver::new(TX_RINGS, 256));
    let mut tx = tx;
    Driver::bring_up_queues(&mut dev, &[(net::RX, &rx), (net::TX, &tx)], feature::VERSION_1);
    let mut mem = ram();
    let f = eth(60, 1);
    mem.write(BUFS + 0x100, &f).unwrap();
    // 300 frames, 100 a notification, and nobody empties the outbox.
    for _ in 0..3 {
        for _ in 0..100 {
            tx.add(&mut mem, &[rd(BUFS, 12), rd(BUFS + 0x100, 60)]).unwrap().unwrap();
        }
        assert_eq!(dev.notify(net::TX, &mut mem).completed, 100, "every chain returned, dropped or not");
        while tx.get_used(&mut mem).unwrap().is_some() {}
    }
    let s = dev.device().stats();
    assert_eq!((s.tx_frames, s.tx_outbox_full), (net::OUTBOX_MAX as u64, 300 - net::OUTBOX_MAX as u64));
    assert_eq!(dev.device_mut().take_outbox().len(), net::OUTBOX_MAX);
}

#[test]
fn net_receive_fills_the_next_buffer_with_header_and_frame() {
    let (mut dev, mut rx, _tx, mut mem) = net_up(feature::VERSION_1 | net::feature::MAC);
    assert_eq!(Net::receive(&mut dev, &mut mem, &eth(60, 1)), Fill::NoBuffer);
    let h0 = post_rx(&mut mem, &mut rx, 0, 1526);
    let h1 = post_rx(&mut mem, &mut rx, 1, 1526);
    // A notification of the receive queue serves nothing: it means "more buffers".
    assert_eq!(dev.write(reg::QUEUE_NOTIFY, 4, 0), Ok(Effect::QueueNotify(0)));
    assert_eq!(dev.notify(net::RX, &mut mem).completed, 0);
    assert_eq!(rx.get_used(&mut mem), Ok(None));
    assert!(!dev.irq_level());
    let (a, b) = (eth(60, 3), eth(1514, 9));
    assert_eq!(Net::receive(&mut dev, &mut mem, &a), Fill::Filled);
    assert!(dev.irq_level(), "a used buffer, no suppression");
    assert_eq!(Net::receive(&mut dev, &mut mem, &b), Fill::Filled);
    assert_eq!(Net::receive(&mut dev, &mut mem, &a), Fill::NoBuffer, "two buffers only");
    assert_eq!(rx.get_used(&mut mem), Ok(Some((u32::from(h0), 72))));
    assert_eq!(rx.get_used(&mut mem), Ok(Some((u32::from(h1), 1526))));
    let at = |n: u64| (BUFS + 0x8_0000 + n * 0x1000 - RAM) as usize;
    assert_eq!(mem.bytes[at(0)..at(0) + 12], Net::rx_header());
    assert_eq!(mem.bytes[at(0)..at(0) + 12], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0], "num_buffers = 1");
    assert_eq!(mem.bytes[at(0) + 12..at(0) + 72], a[..]);
    assert_eq!(mem.bytes[at(1) + 12..at(1) + 1526], b[..]);
    assert_eq!(dev.device().stats().rx_frames, 2);
}

#[test]
fn net_receive_into_a_short_buffer_returns_it_empty() {
    let (mut dev, mut rx, _tx, mut mem) = net_up(feature::VERSION_1 | net::feature::MAC);
    let h = post_rx(&mut mem, &mut rx, 0, 100);
    assert_eq!(Net::receive(&mut dev, &mut mem, &eth(200, 1)), Fill::TooShort);
    assert_eq!(rx.get_used(&mut mem), Ok(Some((u32::from(h), 0))));
    assert_eq!(dev.device().stats().rx_too_short, 1);
    assert_eq!(dev.status() & status::DEVICE_NEEDS_RESET, 0);
    assert_eq!(Net::receive(&mut dev, &mut mem, &eth(13, 1)[..13]), Fill::TooShort, "not a frame");
}

#[test]
fn net_receive_with_event_index_asks_for_a_notification_when_out_of_buffers() {
    let (mut dev, mut rx, _tx, mut mem) = net_up(feature::TRANSPORT | net::feature::MAC);
    post_rx(&mut mem, &mut rx, 0, 1526);
    rx.set_used_event(&mut mem, 1).unwrap();
    assert_eq!(Net::receive(&mut dev, &mut mem, &eth(60, 1)), Fill::Filled);
    assert!(!dev.irq_level(), "used_event 1: not after entry 0");
    assert_eq!(Net::receive(&mut dev, &mut mem, &eth(60, 1)), Fill::NoBuffer);
    assert_eq!(rx.avail_event(&mut mem), Ok(1), "notify me when buffer 1 comes");
    post_rx(&mut mem, &mut rx, 1, 1526);
    assert_eq!(Net::receive(&mut dev, &mut mem, &eth(60, 1)), Fill::Filled);
    assert!(dev.irq_level(), "entry 1 used");
}

#[test]
fn net_hostile_receive_chains_need_reset() {
    // A device-readable buffer in the receive queue.
    let (mut dev, mut rx, _tx, mut mem) = net_up(feature::VERSION_1 | net::feature::MAC);
    let head = rx.add(&mut mem, &[rd(BUFS, 100), wr(BUFS + 0x1000, 1526)]).unwrap().unwrap();
    assert_eq!(Net::receive(&mut dev, &mut mem, &eth(60, 1)), Fill::Broken);
    let error = QueueError::ReadableInWriteOnlyQueue { head };
    assert_eq!(dev.error(), Some(NeedsReset::Queue { queue: net::RX, error }));
    assert_ne!(dev.status() & status::DEVICE_NEEDS_RESET, 0);
    assert_eq!(r_net(&dev, reg::INTERRUPT_STATUS) & interrupt::CONFIG_CHANGE, interrupt::CONFIG_CHANGE);
    assert_eq!(Net::receive(&mut dev, &mut mem, &eth(60, 1)), Fill::NotLive, "nothing until a reset");
    // A buffer outside the RAM.
    let (mut dev, mut rx, _tx, mut mem) = net_up(feature::VERSION_1 | net::feature::MAC);
    rx.add(&mut mem, &[wr(RAM + RAM_SIZE as u64 - 8, 1526)]).unwrap();
    assert_eq!(Net::receive(&mut dev, &mut mem, &eth(60, 1)), Fill::Broken);
    assert!(matches!(dev.error(), Some(NeedsReset::Queue { queue: 0, error: QueueError::BufferOutsideRam { .. } })));
    // The available index run past the ring.
    let (mut dev, mut rx, _tx, mut mem) = net_up(feature::VERSION_1 | net::feature::MAC);
    rx.set_avail_idx(&mut mem, 100).unwrap(); // 100 > 16 entries
    assert_eq!(Net::receive(&mut dev, &mut mem, &eth(60, 1)), Fill::Broken);
    // And the transmit side: a hostile chain there needs reset too.
    let (mut dev, _rx, mut tx, mut mem) = net_up(feature::VERSION_1 | net::feature::MAC);
    Driver::write_desc(&mut mem, tx.desc, 0, (BUFS, 12, desc_flags::NEXT, 0)).unwrap();
    tx.publish(&mut mem, 0).unwrap();
    dev.notify(net::TX, &mut mem);
    assert_eq!(dev.error(), Some(NeedsReset::Queue { queue: net::TX, error: QueueError::Loop { head: 0 } }));
    assert!(dev.device_mut().take_outbox().is_empty());
    // A reset brings it back.
    dev.reset();
    assert_eq!(dev.error(), None);
}

#[test]
fn net_fill_before_driver_ok_or_on_a_queue_not_ready() {
    let mut dev = VirtioMmio::new(Net::new(MAC));
    let mut mem = ram();
    assert_eq!(Net::receive(&mut dev, &mut mem, &eth(60, 1)), Fill::NotLive);
    let tx = Driver::new(TX_RINGS, 8);
    Driver::bring_up_queues(&mut dev, &[(net::TX, &tx)], feature::VERSION_1);
    assert_eq!(Net::receive(&mut dev, &mut mem, &eth(60, 1)), Fill::NotLive, "receive queue never made ready");
    assert_eq!(dev.fill(7, &mut mem, &[&[1]]), Fill::NotLive, "no such queue");
}

fn r_net(dev: &VirtioMmio<Net>, offset: u64) -> u32 {
    dev.read(offset, 4).unwrap() as u32
}

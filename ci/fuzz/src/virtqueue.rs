//! `hypervisor::virtio` (queue, mmio, blk): a driver that posts virtio-blk
//! requests, writes any register, and scribbles anywhere in its RAM (rings,
//! descriptor tables, indirect tables, buffers) never panics or hangs the
//! device. Always: the interrupt line is InterruptStatus != 0; a read-only
//! disk never changes; a notification serves at most a queue size of
//! chains; once DEVICE_NEEDS_RESET is set the device touches no guest RAM
//! until a reset. While the driver has only followed the rules (features
//! accepted, well-formed chains, no stray writes): the device never needs
//! a reset, every request gets the status, used length and data a small
//! reference model of §5.2 gives, the disk equals the model's, and the
//! used-buffer interrupt follows event index (§2.7.10) or
//! AVAIL_F_NO_INTERRUPT exactly.

use arbitrary::{Result, Unstructured};
use hypervisor::virtio::blk::{self, Blk, req, req_status};
use hypervisor::virtio::driver::Driver;
use hypervisor::virtio::mmio::{self, Effect, VirtioMmio, reg};
use hypervisor::virtio::queue::{Buffer, vring_need_event};
use hypervisor::virtio::{GuestMemory, VecMemory, feature, status};

const RAM: u64 = 0x4000_0000;
const RAM_SIZE: usize = 128 << 10;
/// Request slots after the rings: header, status byte, indirect table, data.
const SLOTS: u64 = RAM + 0x2000;
const SLOT_SIZE: u64 = 0x1800;
const SLOT_COUNT: usize = 16;
const DATA_MAX: u32 = 0x1400;
const DISK_SIZE: usize = 16 << 10;
const ID: [u8; 20] = *b"fuzz-disk\0\0\0\0\0\0\0\0\0\0\0";
const MAX_OPS: usize = 64;

/// What a well-formed request should get.
struct Expect {
    head: u16,
    slot: usize,
    status: u8,
    used_len: u32,
    /// For a read: the bytes the data buffers must hold.
    data: Vec<u8>,
    /// Where the data buffers are, in order (guest address, length).
    pieces: Vec<(u64, u32)>,
}

/// Input: the disk's mode, the queue size and features, then operations
/// until the bytes run out.
pub fn fuzz(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let _ = run(&mut u);
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let read_only: bool = u.arbitrary()?;
    let original: Vec<u8> = (0..DISK_SIZE).map(|i| (i / 512) as u8 ^ (i as u8).rotate_left(3)).collect();
    let mut disk = original.clone();
    let mut model = original.clone();
    let mut dev = VirtioMmio::new(Blk::new(&mut disk, read_only, ID));
    let mut mem = VecMemory::new(RAM, RAM_SIZE);
    let size = *u.choose(&[2u16, 4, 8, 16, 1, 3, 512])?;
    let mut drv = Driver::new(RAM, size);
    let offered = dev.device_features();
    let features = if u.ratio(3, 4)? { offered & !u.arbitrary::<u64>()? | feature::VERSION_1 } else { u.arbitrary()? };
    let started = u.ratio(7, 8)?;
    if started {
        drv.bring_up(&mut dev, 0, features);
    }
    let accepted =
        features & !offered == 0 && features & feature::VERSION_1 != 0 && size.is_power_of_two() && size <= 256;
    // The driver has followed every rule so far.
    let mut clean = started && accepted;
    if clean {
        assert_eq!(dev.status() & status::DRIVER_OK, status::DRIVER_OK, "a valid set-up goes live");
        assert_eq!(dev.negotiated_features(), features);
    }
    let event_idx = features & feature::EVENT_IDX != 0;
    let indirect = features & feature::INDIRECT_DESC != 0;
    let mut pending: Vec<Expect> = Vec::new();
    let mut free_slots: Vec<usize> = (0..SLOT_COUNT).collect();
    for _ in 0..MAX_OPS {
        if u.is_empty() {
            break;
        }
        match u.int_in_range(0u8..=15)? {
            0 => {
                // Any register or configuration write.
                let offset = access_offset(u)?;
                let size = *u.choose(&[4u8, 4, 4, 1, 2, 8])?;
                let value: u64 = u.arbitrary()?;
                if dev.write(offset, size, value).is_ok() && offset != reg::INTERRUPT_ACK {
                    clean = false;
                }
            }
            1 => {
                let offset = access_offset(u)?;
                let size = *u.choose(&[4u8, 4, 1, 2, 8])?;
                if let Ok(v) = dev.read(offset, size) {
                    assert!(
                        size >= 8 || v >> (8 * u32::from(size)) == 0,
                        "a {size}-byte read at {offset:#x} gave {v:#x}"
                    );
                }
            }
            2 => {
                // Scribble on the RAM: rings, tables, headers, anything.
                let at = u.int_in_range(0..=RAM_SIZE as u64 - 1)?;
                let len = u.int_in_range(1..=16u64)?.min(RAM_SIZE as u64 - at) as usize;
                let bytes = u.bytes(len)?;
                let _ = mem.write(RAM + at, bytes);
                clean = false;
            }
            3 => {
                let used_event: u16 = u.arbitrary()?;
                let _ = drv.set_used_event(&mut mem, used_event);
                let _ = drv.set_no_interrupt(&mut mem, u.arbitrary()?);
            }
            4..=9 => {
                let Some(slot) = free_slots.pop() else { continue };
                match post(u, &mut mem, &mut drv, slot, indirect, read_only, &mut model)? {
                    Some(e) => pending.push(e),
                    None => free_slots.push(slot),
                }
            }
            _ => {
                if clean {
                    dev.write(reg::INTERRUPT_ACK, 4, 3).expect("InterruptACK");
                }
                let used_before = mem.read_u16(drv.used + 2).unwrap_or(0);
                let frozen = dev.status() & status::DEVICE_NEEDS_RESET != 0;
                let ram_before = frozen.then(|| mem.bytes.clone());
                let done = match dev.write(reg::QUEUE_NOTIFY, 4, 0) {
                    Ok(Effect::QueueNotify(q)) => dev.notify(q, &mut mem),
                    _ => mmio::Processed::default(),
                };
                assert!(done.completed <= usize::from(size), "{} chains for a queue of {size}", done.completed);
                if let Some(before) = ram_before {
                    assert!(before == mem.bytes, "a device that needs a reset wrote guest RAM");
                    assert_eq!(done.completed, 0);
                }
                if clean {
                    check_completions(&mut dev, &mut mem, &mut drv, &mut pending, &mut free_slots, done.completed);
                    let used_event = mem.read_u16(drv.avail + 4 + 2 * u64::from(size)).unwrap();
                    let no_interrupt = mem.read_u16(drv.avail).unwrap() & 1 != 0;
                    let new = used_before.wrapping_add(done.completed as u16);
                    let want = done.completed > 0
                        && if event_idx { vring_need_event(used_event, new, used_before) } else { !no_interrupt };
                    assert_eq!(dev.irq_level(), want, "used-buffer interrupt, used {used_before} -> {new}");
                    if event_idx {
                        assert_eq!(
                            drv.avail_event(&mut mem),
                            Ok(drv.avail_idx()),
                            "avail_event asks for the next entry"
                        );
                    }
                } else {
                    // Nothing is checked, but the driver's free list is kept going.
                    for _ in 0..size {
                        if !matches!(drv.get_used(&mut mem), Ok(Some(_))) {
                            break;
                        }
                    }
                }
            }
        }
        let irq = dev.read(reg::INTERRUPT_STATUS, 4).expect("InterruptStatus") != 0;
        assert_eq!(dev.irq_level(), irq, "the line is InterruptStatus != 0");
        if clean {
            assert_eq!(dev.error(), None, "a driver that followed the rules got DEVICE_NEEDS_RESET");
        }
        if read_only {
            assert!(dev.device().disk() == original, "a read-only disk changed");
        }
    }
    if clean {
        assert!(dev.device().disk() == model, "the disk differs from the model");
    }
    Ok(())
}

fn access_offset(u: &mut Unstructured<'_>) -> Result<u64> {
    Ok(match u.int_in_range(0u8..=3)? {
        0 => u.int_in_range(0..=0x7f)? * 4 % 0x100 + 0x100 * u64::from(u.ratio(1, 4)?),
        1 => u.arbitrary::<u64>()? % (2 * mmio::WINDOW),
        _ => *u.choose(&[
            reg::STATUS,
            reg::QUEUE_READY,
            reg::QUEUE_NUM,
            reg::QUEUE_SEL,
            reg::QUEUE_DESC_LOW,
            reg::QUEUE_DRIVER_LOW,
            reg::QUEUE_DEVICE_LOW,
            reg::DRIVER_FEATURES,
            reg::INTERRUPT_ACK,
            reg::QUEUE_NOTIFY,
        ])?,
    })
}

/// Posts one well-formed request in `slot` and returns what it should get
/// (applying it to `model`); `None` if the queue has no room.
fn post(
    u: &mut Unstructured<'_>,
    mem: &mut VecMemory,
    drv: &mut Driver,
    slot: usize,
    indirect: bool,
    read_only: bool,
    model: &mut [u8],
) -> Result<Option<Expect>> {
    let base = SLOTS + slot as u64 * SLOT_SIZE;
    let (hdr, st, table, buf) = (base, base + 0x10, base + 0x20, base + 0x100);
    let ty = *u.choose(&[
        req::IN,
        req::IN,
        req::OUT,
        req::OUT,
        req::FLUSH,
        req::GET_ID,
        req::DISCARD,
        req::WRITE_ZEROES,
        7,
    ])?;
    let sector = if u.ratio(7, 8)? { u.int_in_range(0..=40u64)? } else { u.arbitrary()? };
    let len = if u.ratio(3, 4)? { 512 * u.int_in_range(0..=DATA_MAX / 512)? } else { u.int_in_range(0..=DATA_MAX)? };
    let mut payload: Vec<u8> = Vec::new();
    if matches!(ty, req::DISCARD | req::WRITE_ZEROES) {
        for _ in 0..u.int_in_range(0..=3u8)? {
            let mut s = [0u8; 16];
            s[0..8].copy_from_slice(&u.int_in_range(0..=40u64)?.to_le_bytes());
            s[8..12].copy_from_slice(&u.int_in_range(0..=9u32)?.to_le_bytes());
            s[12..16].copy_from_slice(&u32::from(u.ratio(1, 4)?).to_le_bytes());
            payload.extend_from_slice(&s);
        }
    } else if ty == req::OUT {
        payload = u.bytes(len as usize)?.to_vec();
        if payload.len() != len as usize {
            return Ok(None);
        }
    }
    let mut h = [0u8; 16];
    h[0..4].copy_from_slice(&ty.to_le_bytes());
    h[8..16].copy_from_slice(&sector.to_le_bytes());
    mem.write(hdr, &h).unwrap();
    mem.write(st, &[0xee]).unwrap();
    mem.write(buf, &payload).unwrap();
    let data_len = if payload.is_empty() && matches!(ty, req::IN | req::GET_ID) { len } else { payload.len() as u32 };
    let data_writable = matches!(ty, req::IN | req::GET_ID);
    // The data in up to three pieces, at gaps of 16 bytes.
    let cuts = u.int_in_range(0..=2u8)?;
    let mut pieces: Vec<(u64, u32)> = Vec::new();
    let (mut at, mut left, mut gap) = (buf, data_len, 0u64);
    for i in 0..=cuts {
        let n = if i == cuts { left } else { u.int_in_range(0..=left)? };
        if n > 0 {
            pieces.push((at + gap, n));
        }
        at += u64::from(n);
        left -= n;
        gap += 16;
    }
    if at + gap > base + SLOT_SIZE {
        return Ok(None);
    }
    // Move the pieces apart (the gaps) without changing their bytes.
    let mut bufs = vec![Buffer { addr: hdr, len: 16, writable: false }];
    let mut moved = Vec::new();
    let mut src = buf;
    for &(addr, n) in &pieces {
        let mut b = vec![0u8; n as usize];
        mem.read(src, &mut b).unwrap();
        moved.push((addr, b));
        src += u64::from(n);
        bufs.push(Buffer { addr, len: n, writable: data_writable });
    }
    for (addr, b) in moved.into_iter().rev() {
        mem.write(addr, &b).unwrap();
    }
    bufs.push(Buffer { addr: st, len: 1, writable: true });
    if bufs.len() > usize::from(drv.size) {
        return Ok(None);
    }
    // A driver whose free list a scribble broke may fail to write its
    // descriptors (outside the RAM): then nothing is posted.
    let head = if indirect && u.arbitrary()? { drv.add_indirect(mem, table, &bufs) } else { drv.add(mem, &bufs) };
    let Ok(Some(head)) = head else { return Ok(None) };
    let (status, used_len, data) = reference(ty, sector, data_len, &payload, read_only, model);
    Ok(Some(Expect { head, slot, status, used_len, data, pieces: if data_writable { pieces } else { Vec::new() } }))
}

/// §5.2.6 for this device: (status, used len, bytes a read returns).
fn reference(
    ty: u32,
    sector: u64,
    data_len: u32,
    payload: &[u8],
    read_only: bool,
    model: &mut [u8],
) -> (u8, u32, Vec<u8>) {
    let range = |sector: u64, bytes: u64| -> Option<core::ops::Range<usize>> {
        let start = sector.checked_mul(512)?;
        let end = start.checked_add(bytes)?;
        (bytes.is_multiple_of(512) && end <= model.len() as u64).then_some(start as usize..end as usize)
    };
    // Nothing written but the status byte: used len 1 only if there is no data part before it.
    let failed = |status: u8, writable_data: u32| (status, if writable_data == 0 { 1 } else { 0 }, Vec::new());
    match ty {
        req::IN => match range(sector, u64::from(data_len)) {
            Some(r) => (req_status::OK, data_len + 1, model[r].to_vec()),
            None => failed(req_status::IOERR, data_len),
        },
        req::OUT => match range(sector, payload.len() as u64).filter(|_| !read_only) {
            Some(r) => {
                model[r].copy_from_slice(payload);
                (req_status::OK, 1, Vec::new())
            }
            None => failed(req_status::IOERR, 0),
        },
        req::FLUSH => (req_status::OK, 1, Vec::new()),
        req::GET_ID => {
            let n = data_len.min(20);
            (req_status::OK, if n == data_len { n + 1 } else { n }, ID[..n as usize].to_vec())
        }
        req::DISCARD | req::WRITE_ZEROES => {
            let count = payload.len() / 16;
            if count == 0 || count > blk::MAX_DISCARD_SEG as usize || read_only {
                return failed(req_status::IOERR, 0);
            }
            let mut ranges = Vec::new();
            for s in payload.chunks(16) {
                let sector = u64::from_le_bytes(s[0..8].try_into().unwrap());
                let num = u32::from_le_bytes(s[8..12].try_into().unwrap());
                let unmap = u32::from_le_bytes(s[12..16].try_into().unwrap()) != 0;
                if unmap && ty == req::DISCARD {
                    return failed(req_status::UNSUPP, 0);
                }
                match range(sector, u64::from(num) * 512) {
                    Some(r) => ranges.push(r),
                    None => return failed(req_status::IOERR, 0),
                }
            }
            ranges.into_iter().for_each(|r| model[r].fill(0));
            (req_status::OK, 1, Vec::new())
        }
        _ => failed(req_status::UNSUPP, 0),
    }
}

/// Takes the used entries off the ring and checks each against its
/// expectation, in order.
fn check_completions(
    dev: &mut VirtioMmio<Blk<'_>>,
    mem: &mut VecMemory,
    drv: &mut Driver,
    pending: &mut Vec<Expect>,
    free_slots: &mut Vec<usize>,
    completed: usize,
) {
    assert_eq!(completed, pending.len(), "every posted request is served (more: false)");
    assert!(!dev.queue(0).unwrap().has_available(mem).unwrap());
    for e in pending.drain(..) {
        let (id, len) = drv.get_used(mem).unwrap().expect("a used entry per request");
        assert_eq!(id, u32::from(e.head), "used entries in order");
        assert_eq!(len, e.used_len, "used len of head {}", e.head);
        let mut s = [0u8];
        mem.read(SLOTS + e.slot as u64 * SLOT_SIZE + 0x10, &mut s).unwrap();
        assert_eq!(s[0], e.status, "status of head {}", e.head);
        let mut got = Vec::new();
        for (addr, n) in e.pieces {
            let mut b = vec![0u8; n as usize];
            mem.read(addr, &mut b).unwrap();
            got.extend_from_slice(&b);
        }
        got.truncate(e.data.len());
        assert!(got == e.data, "data of head {}", e.head);
        free_slots.push(e.slot);
    }
    assert_eq!(drv.get_used(mem), Ok(None));
}

//! The guest kernel's virtio-blk driver against the hypervisor's own
//! device model (`hypervisor::virtio`), over one shared RAM: the driver's
//! rings and buffers are read and written by the device exactly as in a
//! VM, with QueueNotify served synchronously as the hypervisor's trap
//! handler serves it.

use alloc::vec;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};

use hypervisor::guestram::GuestRam;
use hypervisor::virtio::blk::Blk;
use hypervisor::virtio::mmio::{Effect, VirtioMmio};
use hypervisor::virtio::{GuestMemory, OutsideRam};

use super::{DmaBuf, MmioRegs, ProbeError, status};
use crate::block::virtio_blk::{DATA_LEN, DMA_BYTES, VirtioBlk};
use crate::block::{BlkError, BlockDevice};

const RAM_IPA: u64 = 0x4000_0000;
const RAM_BYTES: usize = 64 * 1024;

/// The VM's RAM: what the driver's DMA buffer and the device both see.
struct Ram(RefCell<Vec<u8>>);

impl GuestMemory for &Ram {
    fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), OutsideRam> {
        let off = self.offset(addr, buf.len())?;
        buf.copy_from_slice(&self.0.borrow()[off..off + buf.len()]);
        Ok(())
    }
    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), OutsideRam> {
        let off = self.offset(addr, data.len())?;
        self.0.borrow_mut()[off..off + data.len()].copy_from_slice(data);
        Ok(())
    }
    fn contains(&self, addr: u64, len: u64) -> bool {
        self.offset(addr, len as usize).is_ok()
    }
}

impl Ram {
    fn offset(&self, addr: u64, len: usize) -> Result<usize, OutsideRam> {
        let ram = GuestRam { ipa: RAM_IPA, size: RAM_BYTES as u64, host: 0 };
        hypervisor::virtio::ram_offset(&ram, addr, len as u64)
            .map(|o| o as usize)
            .ok_or(OutsideRam { addr, len: len as u64 })
    }
}

/// The driver's DMA memory: `len` bytes at offset `at` of the RAM.
struct Dma<'r> {
    ram: &'r Ram,
    at: usize,
    len: usize,
}

impl DmaBuf for Dma<'_> {
    fn phys(&self) -> u64 {
        RAM_IPA + self.at as u64
    }
    fn size(&self) -> usize {
        self.len
    }
    fn read(&self, offset: usize, buf: &mut [u8]) {
        assert!(offset + buf.len() <= self.len);
        let o = self.at + offset;
        buf.copy_from_slice(&self.ram.0.borrow()[o..o + buf.len()]);
    }
    fn write(&self, offset: usize, data: &[u8]) {
        assert!(offset + data.len() <= self.len);
        let o = self.at + offset;
        self.ram.0.borrow_mut()[o..o + data.len()].copy_from_slice(data);
    }
    fn wmb(&self) {}
    fn rmb(&self) {}
    fn mb(&self) {}
}

/// The transport's registers, as the hypervisor's MMIO glue serves them.
struct Transport<'r, 'd> {
    dev: RefCell<VirtioMmio<Blk<'d>>>,
    ram: &'r Ram,
    notifies: Cell<u32>,
    /// A hook run on each notification before the device serves it (to
    /// play a hostile device in tests).
    before_notify: Cell<Option<fn(&Ram)>>,
}

impl MmioRegs for Transport<'_, '_> {
    fn read32(&self, offset: usize) -> u32 {
        self.dev.borrow().read(offset as u64, 4).expect("register read") as u32
    }
    fn write32(&self, offset: usize, value: u32) {
        let effect = self.dev.borrow_mut().write(offset as u64, 4, value as u64).expect("register write");
        if let Effect::QueueNotify(q) = effect {
            self.notifies.set(self.notifies.get() + 1);
            if let Some(hook) = self.before_notify.get() {
                hook(self.ram);
            }
            let mut mem = self.ram;
            self.dev.borrow_mut().notify(q, &mut mem);
        }
    }
}

fn disk_image(sectors: usize) -> Vec<u8> {
    (0..sectors * 512).map(|i| (i * 7 + i / 512) as u8).collect()
}

fn transport<'r, 'd>(ram: &'r Ram, disk: &'d mut [u8], ro: bool) -> Transport<'r, 'd> {
    Transport {
        dev: RefCell::new(VirtioMmio::new(Blk::new(disk, ro, [0; 20]))),
        ram,
        notifies: Cell::new(0),
        before_notify: Cell::new(None),
    }
}

fn new_ram() -> Ram {
    Ram(RefCell::new(vec![0u8; RAM_BYTES]))
}

#[test]
fn reads_what_the_disk_holds_and_writes_reach_it() {
    let ram = new_ram();
    let mut disk = disk_image(64);
    let original = disk.clone();
    {
        let t = transport(&ram, &mut disk, false);
        let mut blk = VirtioBlk::probe(&t, Dma { ram: &ram, at: 0x1000, len: DMA_BYTES }).unwrap();
        assert_eq!(t.dev.borrow().status() & status::DRIVER_OK, status::DRIVER_OK);
        assert_eq!(blk.sectors(), 64);
        assert!(!blk.read_only());
        // More than a bounce buffer's worth, from an odd sector: chunks.
        let mut buf = vec![0u8; DATA_LEN + 1024];
        blk.read(3, &mut buf).unwrap();
        assert_eq!(buf[..], original[3 * 512..3 * 512 + buf.len()]);
        assert_eq!(t.notifies.get(), 2);
        let data: Vec<u8> = (0..1024).map(|i| (i % 251) as u8).collect();
        blk.write(10, &data).unwrap();
        blk.flush().unwrap();
        let mut back = vec![0u8; 1024];
        blk.read(10, &mut back).unwrap();
        assert_eq!(back, data);
        // More requests than the queue has entries: descriptors come back.
        for s in 0..40 {
            let mut one = [0u8; 512];
            blk.read(s, &mut one).unwrap();
        }
    }
    assert_eq!(disk[10 * 512..11 * 512], (0..512).map(|i| (i % 251) as u8).collect::<Vec<_>>()[..]);
    assert_eq!(disk[..10 * 512], original[..10 * 512]);
    assert_eq!(disk[12 * 512..], original[12 * 512..]);
}

#[test]
fn a_read_only_disk_refuses_writes_and_out_of_range_requests_are_refused() {
    let ram = new_ram();
    let mut disk = disk_image(8);
    let t = transport(&ram, &mut disk, true);
    let mut blk = VirtioBlk::probe(&t, Dma { ram: &ram, at: 0, len: DMA_BYTES }).unwrap();
    assert!(blk.read_only());
    assert_eq!(blk.write(0, &[0u8; 512]), Err(BlkError::ReadOnly));
    let mut buf = [0u8; 1024];
    assert_eq!(blk.read(7, &mut buf), Err(BlkError::Range));
    assert_eq!(blk.read(0, &mut buf[..100]), Err(BlkError::Range));
    assert_eq!(t.notifies.get(), 0, "nothing was sent to the device");
}

#[test]
fn a_device_that_breaks_the_ring_is_not_used_again() {
    let ram = new_ram();
    let mut disk = disk_image(8);
    let t = transport(&ram, &mut disk, false);
    let mut blk = VirtioBlk::probe(&t, Dma { ram: &ram, at: 0, len: DMA_BYTES }).unwrap();
    let mut buf = [0u8; 512];
    blk.read(0, &mut buf).unwrap();
    // Corrupt the descriptor table as the device sees it: a chain whose
    // `next` points outside the table makes the device set
    // DEVICE_NEEDS_RESET (§2.7.5), and the driver sees that.
    t.before_notify.set(Some(|ram| {
        let mut r = ram.0.borrow_mut();
        r[14] = 0xff; // descriptor 0's next
        r[15] = 0x7f;
    }));
    assert_eq!(blk.read(1, &mut buf), Err(BlkError::Device));
    assert_ne!(t.dev.borrow().status() & status::DEVICE_NEEDS_RESET, 0);
    assert_eq!(blk.read(2, &mut buf), Err(BlkError::Device), "no request after the break");
}

/// A transport whose registers are a table, to check the probe's steps.
struct FakeRegs {
    regs: RefCell<Vec<u32>>,
    writes: RefCell<Vec<(usize, u32)>>,
}

impl MmioRegs for FakeRegs {
    fn read32(&self, offset: usize) -> u32 {
        self.regs.borrow()[offset / 4]
    }
    fn write32(&self, offset: usize, value: u32) {
        // Every register reads back what was written (so Status keeps
        // FEATURES_OK: the device accepts the features).
        self.writes.borrow_mut().push((offset, value));
        self.regs.borrow_mut()[offset / 4] = value;
    }
}

#[test]
fn legacy_and_empty_transports_are_told_apart() {
    let mut regs = vec![0u32; 0x200 / 4];
    regs[0] = super::MAGIC;
    let r = FakeRegs { regs: RefCell::new(regs), writes: RefCell::new(Vec::new()) };
    assert_eq!(super::device_id(&r), Ok(None), "DeviceID 0: an empty slot");
    r.regs.borrow_mut()[2] = 2;
    r.regs.borrow_mut()[1] = 1;
    assert_eq!(super::device_id(&r), Err(ProbeError::Legacy(1)));
    r.regs.borrow_mut()[1] = 2;
    assert_eq!(super::device_id(&r), Ok(Some(2)));
    r.regs.borrow_mut()[0] = 0;
    assert_eq!(super::device_id(&r), Err(ProbeError::NotVirtio(0)));
}

#[test]
fn a_device_without_version_1_is_failed() {
    let mut regs = vec![0u32; 0x200 / 4];
    regs[0] = super::MAGIC;
    // DeviceFeatures reads the same word for both selectors: bit 32 clear.
    regs[super::reg::DEVICE_FEATURES / 4] = 1 << 5;
    let r = FakeRegs { regs: RefCell::new(regs), writes: RefCell::new(Vec::new()) };
    assert!(matches!(super::negotiate(&r, 1 << 5), Err(ProbeError::Features(_))));
    assert_ne!(r.read32(super::reg::STATUS) & status::FAILED, 0);
}

//! The virtio block driver (virtio 1.2 §5.2; Linux
//! `drivers/block/virtio_blk.c`): one request queue, a request at a time.
//! Each request is a three-buffer chain (§5.2.6): the header {type,
//! reserved, sector} the device reads, the data, and the status byte the
//! device writes. Data goes through a bounce buffer in the driver's DMA
//! memory (Linux maps the page-cache pages instead), and the driver waits
//! for the used ring by polling: the device completes a request before
//! the notifying write returns under our hypervisor, and within QEMU's
//! main loop natively. Interrupts are left masked at the GIC; waiting
//! asleep on the device's interrupt belongs with the request queue that
//! the VFS and swap will bring.

use super::{BlkError, BlockDevice, SECTOR_SIZE, check_range};
use crate::virtio::ring::{Buffer, Layout, SplitQueue};
use crate::virtio::{self, DmaBuf, MmioRegs, ProbeError, reg};

/// `VIRTIO_BLK_F_RO` (§5.2.3): the disk is read-only.
pub const F_RO: u64 = 1 << 5;
/// `VIRTIO_BLK_F_FLUSH`: the device has a cache that FLUSH writes back.
pub const F_FLUSH: u64 = 1 << 9;

/// Request types (§5.2.6).
const T_IN: u32 = 0;
const T_OUT: u32 = 1;
const T_FLUSH: u32 = 4;
/// Status values (§5.2.6).
const S_OK: u8 = 0;
const S_UNSUPP: u8 = 2;

/// Entries of the request queue: a request takes three.
pub const QUEUE_SIZE: u16 = 16;
/// Where things lie in the driver's DMA memory.
const RING_OFF: usize = 0;
const HEADER_OFF: usize = 1024;
const STATUS_OFF: usize = HEADER_OFF + 16;
const DATA_OFF: usize = 4096;
/// Bytes of the bounce buffer: a request moves at most this much.
pub const DATA_LEN: usize = 8192;
/// Bytes of DMA memory the driver needs.
pub const DMA_BYTES: usize = DATA_OFF + DATA_LEN;

/// One virtio-blk disk.
pub struct VirtioBlk<R: MmioRegs, M: DmaBuf> {
    regs: R,
    queue: SplitQueue<M>,
    sectors: u64,
    features: u64,
    /// Set when the device broke the protocol; no request is sent after.
    broken: bool,
}

impl<R: MmioRegs, M: DmaBuf> VirtioBlk<R, M> {
    /// Brings up the block device behind `regs` (§3.1.1, §5.2.5) with
    /// `mem` (at least [`DMA_BYTES`]) as its ring and bounce buffer.
    pub fn probe(regs: R, mem: M) -> Result<Self, ProbeError> {
        assert!(mem.size() >= DMA_BYTES, "virtio-blk DMA memory too small");
        let features = virtio::negotiate(&regs, F_RO | F_FLUSH)?;
        let mut queue = SplitQueue::new(mem, RING_OFF, Layout::new(QUEUE_SIZE));
        if let Err(e) = queue.attach(&regs, 0) {
            virtio::fail(&regs);
            return Err(e);
        }
        // capacity: u64 at config offset 0, in 512-byte sectors (§5.2.4).
        let sectors = u64::from_le_bytes(virtio::read_config::<R, 8>(&regs, 0));
        virtio::driver_ok(&regs);
        Ok(VirtioBlk { regs, queue, sectors, features, broken: false })
    }

    /// The features both sides agreed on.
    pub fn features(&self) -> u64 {
        self.features
    }

    /// One request: header, `data_len` bytes of data in the bounce buffer
    /// (read by the device for `T_OUT`, written for `T_IN`), status.
    fn request(&mut self, kind: u32, sector: u64, data_len: usize) -> Result<(), BlkError> {
        if self.broken {
            return Err(BlkError::Device);
        }
        let mem = self.queue.mem();
        let mut header = [0u8; 16];
        header[0..4].copy_from_slice(&kind.to_le_bytes());
        header[8..16].copy_from_slice(&sector.to_le_bytes());
        mem.write(HEADER_OFF, &header);
        mem.write(STATUS_OFF, &[0xff]);
        let at = |off: usize| mem.phys() + off as u64;
        let head_buf = Buffer { addr: at(HEADER_OFF), len: 16, device_writes: false };
        let status_buf = Buffer { addr: at(STATUS_OFF), len: 1, device_writes: true };
        let data_buf = Buffer { addr: at(DATA_OFF), len: data_len as u32, device_writes: kind == T_IN };
        let chain = if data_len == 0 { &[head_buf, status_buf][..] } else { &[head_buf, data_buf, status_buf][..] };
        let Some(head) = self.queue.add(chain) else {
            // One request at a time: the queue is never short.
            self.broken = true;
            return Err(BlkError::Device);
        };
        self.queue.kick(&self.regs);
        let used = loop {
            if let Some(u) = self.queue.pop_used() {
                break u;
            }
            if self.regs.read32(reg::STATUS) & virtio::status::DEVICE_NEEDS_RESET != 0 {
                self.broken = true;
                return Err(BlkError::Device);
            }
            core::hint::spin_loop();
        };
        // The interrupt the completion raised (masked at the GIC).
        let pending = self.regs.read32(reg::INTERRUPT_STATUS);
        self.regs.write32(reg::INTERRUPT_ACK, pending);
        match used {
            Ok(u) if u.head == head => {}
            _ => {
                self.broken = true;
                return Err(BlkError::Device);
            }
        }
        let mut status = [0u8];
        self.queue.mem().read(STATUS_OFF, &mut status);
        match status[0] {
            S_OK => Ok(()),
            S_UNSUPP => Err(BlkError::Unsupported),
            _ => Err(BlkError::Io),
        }
    }
}

impl<R: MmioRegs, M: DmaBuf> BlockDevice for VirtioBlk<R, M> {
    fn sectors(&self) -> u64 {
        self.sectors
    }

    fn read_only(&self) -> bool {
        self.features & F_RO != 0
    }

    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlkError> {
        check_range(self.sectors, sector, buf.len())?;
        for (i, chunk) in buf.chunks_mut(DATA_LEN).enumerate() {
            let s = sector + (i * DATA_LEN / SECTOR_SIZE) as u64;
            self.request(T_IN, s, chunk.len())?;
            self.queue.mem().read(DATA_OFF, chunk);
        }
        Ok(())
    }

    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), BlkError> {
        if self.read_only() {
            return Err(BlkError::ReadOnly);
        }
        check_range(self.sectors, sector, buf.len())?;
        for (i, chunk) in buf.chunks(DATA_LEN).enumerate() {
            let s = sector + (i * DATA_LEN / SECTOR_SIZE) as u64;
            self.queue.mem().write(DATA_OFF, chunk);
            self.request(T_OUT, s, chunk.len())?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), BlkError> {
        if self.features & F_FLUSH == 0 {
            return Ok(());
        }
        self.request(T_FLUSH, 0, 0)
    }
}

//! A split virtqueue, the driver's half (virtio 1.2 §2.7; Linux
//! `virtio_ring.c`, `virtqueue_add_split` / `virtqueue_get_buf_ctx_split`):
//! the descriptor table, the available ring the driver fills and the used
//! ring the device fills, in one [`DmaBuf`]. Neither indirect descriptors
//! nor event index are negotiated: a chain takes one descriptor per
//! buffer, and the driver notifies unless the device set
//! `VIRTQ_USED_F_NO_NOTIFY`.

use alloc::vec::Vec;

use super::{DmaBuf, MmioRegs, ProbeError, reg};

/// `VIRTQ_DESC_F_NEXT`: the chain continues in `next`.
const DESC_F_NEXT: u16 = 1;
/// `VIRTQ_DESC_F_WRITE`: the device writes this buffer.
const DESC_F_WRITE: u16 = 2;
/// `VIRTQ_USED_F_NO_NOTIFY`: the device asks not to be notified.
const USED_F_NO_NOTIFY: u16 = 1;

/// Bytes of one descriptor {addr u64, len u32, flags u16, next u16}.
const DESC_SIZE: usize = 16;

/// One buffer of a chain: device-visible address, length, and whether the
/// device writes it (else it reads it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buffer {
    pub addr: u64,
    pub len: u32,
    pub device_writes: bool,
}

/// Where the three parts of a queue of `size` entries go, from offset 0
/// of their memory, with §2.7's alignments (16, 2, 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub size: u16,
    pub desc: usize,
    pub avail: usize,
    pub used: usize,
    pub bytes: usize,
}

impl Layout {
    /// The layout of a queue of `size` entries (a power of two, ≤ 32768).
    pub fn new(size: u16) -> Layout {
        assert!(size.is_power_of_two() && size <= 32768, "queue size {size}");
        let n = size as usize;
        let desc = 0;
        let avail = desc + DESC_SIZE * n;
        // flags, idx, ring[n], used_event
        let used = (avail + 4 + 2 * n + 2).next_multiple_of(4);
        // flags, idx, ring[n] {id u32, len u32}, avail_event
        let bytes = used + 4 + 8 * n + 2;
        Layout { size, desc, avail, used, bytes }
    }
}

/// A completed chain: the head the driver added and the bytes the device
/// wrote into its device-writable buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Used {
    pub head: u16,
    pub written: u32,
}

/// The driver's state of one split virtqueue whose rings lie at `base`
/// of `mem`.
pub struct SplitQueue<M: DmaBuf> {
    mem: M,
    base: usize,
    layout: Layout,
    index: u16,
    /// Free descriptors, linked through a shadow `next` (Linux keeps the
    /// free list in the table itself; a shadow keeps the device's writes,
    /// if any, out of the driver's bookkeeping).
    free_head: u16,
    next: Vec<u16>,
    /// Descriptors in each outstanding chain, by head (0: not outstanding).
    chain_len: Vec<u16>,
    num_free: u16,
    /// The driver's avail idx, and the last used idx it has seen.
    avail_idx: u16,
    last_used: u16,
}

impl<M: DmaBuf> SplitQueue<M> {
    /// A queue of `layout.size` entries at `base` of `mem` (zeroed here),
    /// not yet given to a device.
    pub fn new(mem: M, base: usize, layout: Layout) -> Self {
        assert!(base.is_multiple_of(16) && base + layout.bytes <= mem.size(), "ring outside its memory");
        mem.write(base, &alloc::vec![0u8; layout.bytes]);
        let n = layout.size;
        SplitQueue {
            mem,
            base,
            layout,
            index: 0,
            free_head: 0,
            next: (1..=n).collect(),
            chain_len: alloc::vec![0; n as usize],
            num_free: n,
            avail_idx: 0,
            last_used: 0,
        }
    }

    /// The memory the queue lives in (other parts of it are free for the
    /// driver's own use: headers, bounce buffers).
    pub fn mem(&self) -> &M {
        &self.mem
    }

    /// Queue set-up on the transport (§4.2.3.2): QueueSel, QueueNum, the
    /// three addresses, QueueReady. `index` is the queue's number.
    pub fn attach<R: MmioRegs>(&mut self, regs: &R, index: u16) -> Result<(), ProbeError> {
        regs.write32(reg::QUEUE_SEL, index as u32);
        if regs.read32(reg::QUEUE_READY) != 0 {
            return Err(ProbeError::Queue);
        }
        let max = regs.read32(reg::QUEUE_NUM_MAX);
        if max < self.layout.size as u32 {
            return Err(ProbeError::Queue);
        }
        regs.write32(reg::QUEUE_NUM, self.layout.size as u32);
        let phys = |off: usize| self.mem.phys() + (self.base + off) as u64;
        for (low, addr) in [
            (reg::QUEUE_DESC_LOW, phys(self.layout.desc)),
            (reg::QUEUE_DRIVER_LOW, phys(self.layout.avail)),
            (reg::QUEUE_DEVICE_LOW, phys(self.layout.used)),
        ] {
            regs.write32(low, addr as u32);
            regs.write32(low + 4, (addr >> 32) as u32);
        }
        regs.write32(reg::QUEUE_READY, 1);
        self.index = index;
        Ok(())
    }

    /// Free descriptors.
    pub fn num_free(&self) -> u16 {
        self.num_free
    }

    /// Adds a chain of `bufs` (device-readable ones first, §2.7.4) and
    /// makes it available; returns its head, or `None` if the queue lacks
    /// descriptors. Linux `virtqueue_add_split` + the avail update of
    /// `virtqueue_kick_prepare`.
    pub fn add(&mut self, bufs: &[Buffer]) -> Option<u16> {
        let count = u16::try_from(bufs.len()).ok()?;
        if count == 0 || count > self.num_free {
            return None;
        }
        let head = self.free_head;
        let mut d = head;
        for (i, b) in bufs.iter().enumerate() {
            let last = i + 1 == bufs.len();
            let mut flags = if b.device_writes { DESC_F_WRITE } else { 0 };
            let next = self.next[d as usize];
            if !last {
                flags |= DESC_F_NEXT;
            }
            let mut raw = [0u8; DESC_SIZE];
            raw[0..8].copy_from_slice(&b.addr.to_le_bytes());
            raw[8..12].copy_from_slice(&b.len.to_le_bytes());
            raw[12..14].copy_from_slice(&flags.to_le_bytes());
            raw[14..16].copy_from_slice(&(if last { 0 } else { next }).to_le_bytes());
            self.mem.write(self.base + self.layout.desc + DESC_SIZE * d as usize, &raw);
            if !last {
                d = next;
            } else {
                self.free_head = next;
            }
        }
        self.num_free -= count;
        self.chain_len[head as usize] = count;
        let n = self.layout.size;
        let slot = self.layout.avail + 4 + 2 * (self.avail_idx % n) as usize;
        self.mem.write_u16(self.base + slot, head);
        // The descriptors and the ring entry before the index (§2.7.13.2).
        self.mem.wmb();
        self.avail_idx = self.avail_idx.wrapping_add(1);
        self.mem.write_u16(self.base + self.layout.avail + 2, self.avail_idx);
        Some(head)
    }

    /// Notifies the device of new available chains unless it asked not to
    /// be (§2.7.13.4; Linux `virtqueue_kick`).
    pub fn kick<R: MmioRegs>(&self, regs: &R) {
        // The index store before the read of the used flags.
        self.mem.mb();
        let flags = self.mem.read_u16(self.base + self.layout.used);
        if flags & USED_F_NO_NOTIFY == 0 {
            regs.write32(reg::QUEUE_NOTIFY, self.index as u32);
        }
    }

    /// The next chain the device has finished with, if any; its
    /// descriptors return to the free list. A used entry naming a head that
    /// is not outstanding is a device bug: it is reported as `Err` and
    /// skipped, never trusted.
    pub fn pop_used(&mut self) -> Option<Result<Used, u32>> {
        let used_idx = self.mem.read_u16(self.base + self.layout.used + 2);
        if used_idx == self.last_used {
            return None;
        }
        // The index before the entry it covers (§2.7.14).
        self.mem.rmb();
        let n = self.layout.size;
        let e = self.base + self.layout.used + 4 + 8 * (self.last_used % n) as usize;
        let id = self.mem.read_u32(e);
        let written = self.mem.read_u32(e + 4);
        self.last_used = self.last_used.wrapping_add(1);
        let Some(&count) = self.chain_len.get(id as usize).filter(|&&c| c != 0) else {
            return Some(Err(id));
        };
        let head = id as u16;
        self.chain_len[head as usize] = 0;
        // Walk the shadow links to the chain's last descriptor and splice
        // the chain onto the free list.
        let mut last = head;
        for _ in 1..count {
            last = self.next[last as usize];
        }
        self.next[last as usize] = self.free_head;
        self.free_head = head;
        self.num_free += count;
        Some(Ok(Used { head, written }))
    }
}

//! The driver side of a split virtqueue and of device initialisation, for
//! the host tests and the fuzz harness (the hypervisor never calls it).
//!
//! Rings are laid out as Linux's `vring_init` does for virtio-mmio
//! (`VIRTIO_MMIO_VRING_ALIGN`, one page): the descriptor table, the
//! available ring right after it, the used ring at the next page boundary.
//! Free descriptors are handed out lowest first, chained by `next` as
//! Linux's `virtqueue_add_split` chains them, and an indirect table's
//! entries are chained 0, 1, 2, ... as `alloc_indirect_split` sets them.

use alloc::vec::Vec;

use super::memory::{GuestMemory, OutsideRam};
use super::mmio::{VirtioDevice, VirtioMmio, reg};
use super::queue::{AVAIL_F_NO_INTERRUPT, Buffer, DESC_SIZE, desc_flags};
use super::status;

/// The ring alignment Linux's virtio-mmio driver uses (a 4 KiB page).
pub const VRING_ALIGN: u64 = 4096;

/// One queue as the driver sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Driver {
    /// The queue size.
    pub size: u16,
    /// The descriptor table.
    pub desc: u64,
    /// The available ring.
    pub avail: u64,
    /// The used ring.
    pub used: u64,
    free: Vec<u16>,
    avail_idx: u16,
    last_used: u16,
}

impl Driver {
    /// Rings of `size` entries from `base` (page-aligned).
    pub fn new(base: u64, size: u16) -> Self {
        let n = u64::from(size);
        let avail = base + DESC_SIZE * n;
        let used = (avail + 6 + 2 * n).next_multiple_of(VRING_ALIGN);
        Self { size, desc: base, avail, used, free: (0..size).rev().collect(), avail_idx: 0, last_used: 0 }
    }

    /// Bytes from the descriptor table to the end of the used ring.
    pub fn footprint(&self) -> u64 {
        self.used + 6 + 8 * u64::from(self.size) - self.desc
    }

    /// The initialisation sequence of §3.1.1 through the registers, up to
    /// DRIVER_OK, with this queue as queue `index`; accepts `features`.
    /// Returns the status the device shows at the end.
    pub fn bring_up<D: VirtioDevice>(&self, dev: &mut VirtioMmio<D>, index: u16, features: u64) -> u32 {
        Self::bring_up_queues(dev, &[(index, self)], features)
    }

    /// [`Driver::bring_up`] with several queues: each `(index, driver)`
    /// set up and made ready in turn.
    pub fn bring_up_queues<D: VirtioDevice>(dev: &mut VirtioMmio<D>, queues: &[(u16, &Driver)], features: u64) -> u32 {
        let mut w = |offset, value: u64| {
            let _ = dev.write(offset, 4, value);
        };
        w(reg::STATUS, 0);
        w(reg::STATUS, u64::from(status::ACKNOWLEDGE));
        w(reg::STATUS, u64::from(status::ACKNOWLEDGE | status::DRIVER));
        w(reg::DRIVER_FEATURES_SEL, 0);
        w(reg::DRIVER_FEATURES, features & 0xffff_ffff);
        w(reg::DRIVER_FEATURES_SEL, 1);
        w(reg::DRIVER_FEATURES, features >> 32);
        w(reg::STATUS, u64::from(status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK));
        for &(index, q) in queues {
            w(reg::QUEUE_SEL, u64::from(index));
            w(reg::QUEUE_NUM, u64::from(q.size));
            w(reg::QUEUE_DESC_LOW, q.desc & 0xffff_ffff);
            w(reg::QUEUE_DESC_HIGH, q.desc >> 32);
            w(reg::QUEUE_DRIVER_LOW, q.avail & 0xffff_ffff);
            w(reg::QUEUE_DRIVER_HIGH, q.avail >> 32);
            w(reg::QUEUE_DEVICE_LOW, q.used & 0xffff_ffff);
            w(reg::QUEUE_DEVICE_HIGH, q.used >> 32);
            w(reg::QUEUE_READY, 1);
        }
        w(reg::STATUS, u64::from(status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK));
        dev.status()
    }

    /// Writes descriptor `index` of the table at `table`.
    pub fn write_desc(
        mem: &mut dyn GuestMemory,
        table: u64,
        index: u16,
        (addr, len, flags, next): (u64, u32, u16, u16),
    ) -> Result<(), OutsideRam> {
        let mut d = [0u8; 16];
        d[0..8].copy_from_slice(&addr.to_le_bytes());
        d[8..12].copy_from_slice(&len.to_le_bytes());
        d[12..14].copy_from_slice(&flags.to_le_bytes());
        d[14..16].copy_from_slice(&next.to_le_bytes());
        mem.write(table + DESC_SIZE * u64::from(index), &d)
    }

    /// Puts `head` in the available ring and moves the available index.
    pub fn publish(&mut self, mem: &mut dyn GuestMemory, head: u16) -> Result<(), OutsideRam> {
        let slot = self.avail + 4 + 2 * u64::from(self.avail_idx % self.size);
        mem.write_u16(slot, head)?;
        self.avail_idx = self.avail_idx.wrapping_add(1);
        mem.write_u16(self.avail + 2, self.avail_idx)
    }

    /// Sets the available index to any value (for hostile tests).
    pub fn set_avail_idx(&mut self, mem: &mut dyn GuestMemory, idx: u16) -> Result<(), OutsideRam> {
        self.avail_idx = idx;
        mem.write_u16(self.avail + 2, idx)
    }

    /// Makes `bufs` available as one chain of free descriptors; `None` if
    /// too few are free.
    pub fn add(&mut self, mem: &mut dyn GuestMemory, bufs: &[Buffer]) -> Result<Option<u16>, OutsideRam> {
        if bufs.is_empty() || bufs.len() > self.free.len() {
            return Ok(None);
        }
        let ids: Vec<u16> = (0..bufs.len()).filter_map(|_| self.free.pop()).collect();
        for (i, b) in bufs.iter().enumerate() {
            let last = i + 1 == bufs.len();
            let flags = if b.writable { desc_flags::WRITE } else { 0 } | if last { 0 } else { desc_flags::NEXT };
            let next = if last { 0 } else { ids[i + 1] };
            Self::write_desc(mem, self.desc, ids[i], (b.addr, b.len, flags, next))?;
        }
        self.publish(mem, ids[0])?;
        Ok(Some(ids[0]))
    }

    /// Makes `bufs` available through one descriptor pointing at an
    /// indirect table written at `table`.
    pub fn add_indirect(
        &mut self,
        mem: &mut dyn GuestMemory,
        table: u64,
        bufs: &[Buffer],
    ) -> Result<Option<u16>, OutsideRam> {
        let Some(head) = self.free.pop() else { return Ok(None) };
        for (i, b) in bufs.iter().enumerate() {
            let last = i + 1 == bufs.len();
            let flags = if b.writable { desc_flags::WRITE } else { 0 } | if last { 0 } else { desc_flags::NEXT };
            Self::write_desc(mem, table, i as u16, (b.addr, b.len, flags, if last { 0 } else { i as u16 + 1 }))?;
        }
        let len = (DESC_SIZE * bufs.len() as u64) as u32;
        Self::write_desc(mem, self.desc, head, (table, len, desc_flags::INDIRECT, 0))?;
        self.publish(mem, head)?;
        Ok(Some(head))
    }

    /// The next used entry (id, len), if the device returned one; its
    /// descriptors go back on the free list.
    pub fn get_used(&mut self, mem: &mut dyn GuestMemory) -> Result<Option<(u32, u32)>, OutsideRam> {
        if mem.read_u16(self.used + 2)? == self.last_used {
            return Ok(None);
        }
        let mut e = [0u8; 8];
        mem.read(self.used + 4 + 8 * u64::from(self.last_used % self.size), &mut e)?;
        self.last_used = self.last_used.wrapping_add(1);
        let id = u32::from_le_bytes([e[0], e[1], e[2], e[3]]);
        let len = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
        // Free the chain, following `next` as Linux's detach_buf_split.
        let mut index = id as u16;
        for _ in 0..self.size {
            let mut d = [0u8; 16];
            mem.read(self.desc + DESC_SIZE * u64::from(index), &mut d)?;
            self.free.push(index);
            if u16::from_le_bytes([d[12], d[13]]) & desc_flags::NEXT == 0 {
                break;
            }
            index = u16::from_le_bytes([d[14], d[15]]);
        }
        Ok(Some((id, len)))
    }

    /// used_event: the used index after which the driver wants an
    /// interrupt (event index, §2.7.10).
    pub fn set_used_event(&self, mem: &mut dyn GuestMemory, idx: u16) -> Result<(), OutsideRam> {
        mem.write_u16(self.avail + 4 + 2 * u64::from(self.size), idx)
    }

    /// AVAIL_F_NO_INTERRUPT on or off (without event index, §2.7.7).
    pub fn set_no_interrupt(&self, mem: &mut dyn GuestMemory, on: bool) -> Result<(), OutsideRam> {
        mem.write_u16(self.avail, if on { AVAIL_F_NO_INTERRUPT } else { 0 })
    }

    /// avail_event: the available index the device wants a notification
    /// for (event index, §2.7.10).
    pub fn avail_event(&self, mem: &mut dyn GuestMemory) -> Result<u16, OutsideRam> {
        mem.read_u16(self.used + 4 + 8 * u64::from(self.size))
    }

    /// The driver's available index.
    pub fn avail_idx(&self) -> u16 {
        self.avail_idx
    }
}

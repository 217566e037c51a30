//! The split virtqueue (virtio 1.2 §2.7), device side.
//!
//! Three areas in guest RAM, at addresses the driver gives
//! (QueueDesc/QueueDriver/QueueDevice, §4.2.2):
//! - the descriptor table (§2.7.5): `size` entries of {addr u64, len u32,
//!   flags u16, next u16}, 16-byte aligned;
//! - the available ring (§2.7.6), written by the driver: {flags u16, idx
//!   u16, ring[size] u16, used_event u16}, 2-byte aligned;
//! - the used ring (§2.7.8), written by the device: {flags u16, idx u16,
//!   ring[size] {id u32, len u32}, avail_event u16}, 4-byte aligned.
//!
//! [`Queue::pop`] takes the next chain the driver made available and checks
//! every descriptor before the device uses it: index inside the table,
//! buffer inside the VM's RAM (no wrap), chain no longer than the queue and
//! without loops, indirect tables as §2.7.5.3 requires, device-readable
//! buffers before device-writable ones (§2.7.4.2). A broken rule is a
//! [`QueueError`]; the transport then sets DEVICE_NEEDS_RESET (§2.1.2).
//!
//! Memory ordering (§2.7.13): the device reads the available index before
//! the entry it covers, writes a used entry before the used index, and the
//! used index before it reads used_event. The [`fence`]s below are those
//! barriers on a multiprocessor (`dmb ishld`, `dmb ish` on aarch64); they
//! cost nothing in the host tests.

use alloc::vec::Vec;
use core::sync::atomic::{Ordering, fence};

use super::feature;
use super::memory::{GuestMemory, OutsideRam};

/// The largest queue size a split virtqueue can have (§2.7: "Queue Size
/// ... maximum 32768").
pub const MAX_SIZE: u16 = 32768;
/// Bytes per descriptor (§2.7.5).
pub const DESC_SIZE: u64 = 16;

/// Descriptor flags (§2.7.5).
pub mod desc_flags {
    /// The buffer continues in the descriptor `next` names.
    pub const NEXT: u16 = 1;
    /// The buffer is device-writable (otherwise device-readable).
    pub const WRITE: u16 = 2;
    /// The buffer is a table of descriptors (§2.7.5.3).
    pub const INDIRECT: u16 = 4;
}

/// The available ring's flag asking the device not to interrupt
/// (§2.7.7, used only without event index).
pub const AVAIL_F_NO_INTERRUPT: u16 = 1;

/// A rule of §2.7 the driver broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueError {
    /// QueueNum is 0, not a power of two, or above QueueNumMax (§2.7, §4.2.2).
    BadSize {
        /// The size the driver wrote.
        size: u16,
        /// QueueNumMax.
        max: u16,
    },
    /// A ring is not aligned as §2.7 Table 2.2 requires, or its end wraps
    /// around the address space.
    BadRingAddress {
        /// The ring's address.
        addr: u64,
    },
    /// The available index moved more than a queue size past the last
    /// entry the device took (§2.7.6).
    AvailIndex {
        /// The driver's available index.
        avail: u16,
        /// The device's next entry.
        next: u16,
    },
    /// A descriptor index outside its table (§2.7.5).
    DescIndex {
        /// The index.
        index: u16,
        /// Entries in the table.
        table_len: u32,
    },
    /// A chain visits more descriptors than its table holds: it loops.
    Loop {
        /// The chain's head.
        head: u16,
    },
    /// A chain, indirect descriptors included, is longer than the queue
    /// (§2.7.5.3.1).
    ChainTooLong {
        /// The chain's head.
        head: u16,
    },
    /// INDIRECT set without VIRTIO_F_INDIRECT_DESC negotiated (§2.7.5.3.1).
    IndirectNotNegotiated,
    /// INDIRECT inside an indirect table (§2.7.5.3.1).
    NestedIndirect,
    /// INDIRECT and NEXT set together (§2.7.5.3.1).
    IndirectWithNext,
    /// An indirect table's length is 0 or not a multiple of 16 (§2.7.5.3).
    IndirectLength {
        /// The length.
        len: u32,
    },
    /// A buffer or indirect table that is not wholly inside the VM's RAM.
    BufferOutsideRam {
        /// The descriptor's address.
        addr: u64,
        /// Its length.
        len: u32,
    },
    /// A device-readable buffer after a device-writable one (§2.7.4.2).
    ReadableAfterWritable,
    /// A chain of a queue the device only writes to (virtio-net's receive
    /// queue, §5.1.6.3) has a device-readable buffer.
    ReadableInWriteOnlyQueue {
        /// The chain's head.
        head: u16,
    },
    /// The device used a queue that is not ready (a bug of the caller).
    NotReady,
    /// A ring, or the indirect table, lies outside the VM's RAM.
    RingOutsideRam(OutsideRam),
    /// The chain is too short for the device's request format.
    ShortChain {
        /// Device-readable bytes in the chain.
        readable: u64,
        /// Device-writable bytes in the chain.
        writable: u64,
    },
}

impl From<OutsideRam> for QueueError {
    fn from(e: OutsideRam) -> Self {
        QueueError::RingOutsideRam(e)
    }
}

/// One buffer of a chain, checked to lie inside the VM's RAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Buffer {
    /// Guest-physical address.
    pub addr: u64,
    /// Length in bytes.
    pub len: u32,
    /// Device-writable (otherwise device-readable).
    pub writable: bool,
}

/// A descriptor chain taken off the available ring (§2.7.4): its head,
/// which goes back in the used ring, and its buffers in order, indirect
/// tables flattened. The readable buffers all come before the writable
/// ones, so each kind is one byte stream the device reads or writes at an
/// offset (the device must not assume how the driver split them, §2.7.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    /// The head's index in the descriptor table.
    pub head: u16,
    /// The buffers.
    pub buffers: Vec<Buffer>,
}

impl Chain {
    /// Total device-readable bytes.
    pub fn readable_len(&self) -> u64 {
        self.buffers.iter().filter(|b| !b.writable).map(|b| u64::from(b.len)).sum()
    }

    /// Total device-writable bytes.
    pub fn writable_len(&self) -> u64 {
        self.buffers.iter().filter(|b| b.writable).map(|b| u64::from(b.len)).sum()
    }

    /// Reads `buf.len()` bytes at `offset` of the readable stream.
    pub fn read_at(&self, mem: &mut dyn GuestMemory, offset: u64, buf: &mut [u8]) -> Result<(), QueueError> {
        self.check(offset, buf.len(), false)?;
        self.segments(false, offset, buf.len(), |addr, r| mem.read(addr, &mut buf[r]))
    }

    /// Writes `data` at `offset` of the writable stream.
    pub fn write_at(&self, mem: &mut dyn GuestMemory, offset: u64, data: &[u8]) -> Result<(), QueueError> {
        self.check(offset, data.len(), true)?;
        self.segments(true, offset, data.len(), |addr, r| mem.write(addr, &data[r]))
    }

    fn check(&self, offset: u64, len: usize, writable: bool) -> Result<(), QueueError> {
        let have = if writable { self.writable_len() } else { self.readable_len() };
        if offset.checked_add(len as u64).is_none_or(|end| end > have) {
            return Err(QueueError::ShortChain { readable: self.readable_len(), writable: self.writable_len() });
        }
        Ok(())
    }

    /// Calls `f` with each piece of `[offset, offset + len)` of one stream:
    /// its guest address and its range in the caller's buffer.
    fn segments(
        &self,
        writable: bool,
        mut offset: u64,
        len: usize,
        mut f: impl FnMut(u64, core::ops::Range<usize>) -> Result<(), OutsideRam>,
    ) -> Result<(), QueueError> {
        let mut done = 0;
        for b in self.buffers.iter().filter(|b| b.writable == writable) {
            if done == len {
                break;
            }
            let blen = u64::from(b.len);
            if offset >= blen {
                offset -= blen;
                continue;
            }
            let n = ((blen - offset) as usize).min(len - done);
            f(b.addr + offset, done..done + n)?;
            done += n;
            offset = 0;
        }
        Ok(())
    }
}

/// The used-buffer notification test of event index (§2.7.10, Linux's
/// `vring_need_event`): interrupt if `event`, the used index the driver
/// asked to be told about, lies in `[old, new)`, the entries added since
/// the last interrupt decision.
pub fn vring_need_event(event: u16, new: u16, old: u16) -> bool {
    new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old)
}

/// What the driver sets up for a queue through the transport (QueueNum,
/// QueueDesc, QueueDriver, QueueDevice, §4.2.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueSetup {
    /// The queue size.
    pub size: u16,
    /// The descriptor table.
    pub desc_table: u64,
    /// The available ring ("driver area").
    pub avail_ring: u64,
    /// The used ring ("device area").
    pub used_ring: u64,
}

/// One split virtqueue: what the driver set up, checked when it goes
/// ready, and the device's positions in the rings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Queue {
    max_size: u16,
    size: u16,
    desc_table: u64,
    avail_ring: u64,
    used_ring: u64,
    ready: bool,
    indirect: bool,
    event_idx: bool,
    next_avail: u16,
    next_used: u16,
    signalled_used: u16,
}

impl Queue {
    /// A queue in its reset state (§4.2.3.1: not ready, addresses zero).
    pub const fn new(max_size: u16) -> Self {
        Self {
            max_size,
            size: 0,
            desc_table: 0,
            avail_ring: 0,
            used_ring: 0,
            ready: false,
            indirect: false,
            event_idx: false,
            next_avail: 0,
            next_used: 0,
            signalled_used: 0,
        }
    }

    /// Back to the reset state.
    pub fn reset(&mut self) {
        *self = Self::new(self.max_size);
    }

    /// QueueNumMax: the largest size the device supports.
    pub fn max_size(&self) -> u16 {
        self.max_size
    }

    /// The driver's set-up.
    pub fn setup(&self) -> QueueSetup {
        QueueSetup {
            size: self.size,
            desc_table: self.desc_table,
            avail_ring: self.avail_ring,
            used_ring: self.used_ring,
        }
    }

    /// Takes the driver's set-up; ignored while the queue is ready
    /// (§4.2.2.2: the driver MUST NOT change it then), so a ready queue's
    /// size and rings are always the ones [`Queue::activate`] checked.
    pub fn set_up(&mut self, s: QueueSetup) {
        if !self.ready {
            (self.size, self.desc_table, self.avail_ring, self.used_ring) =
                (s.size, s.desc_table, s.avail_ring, s.used_ring);
        }
    }

    /// Whether the device may use the queue (QueueReady).
    pub fn ready(&self) -> bool {
        self.ready
    }

    /// Whether VIRTIO_F_EVENT_IDX is in use on this queue.
    pub fn event_idx(&self) -> bool {
        self.event_idx
    }

    /// QueueReady = 1: checks the size and the rings' alignment, takes the
    /// negotiated ring features and starts at index 0.
    pub fn activate(&mut self, features: u64) -> Result<(), QueueError> {
        let size = self.size;
        if size == 0 || !size.is_power_of_two() || size > self.max_size || size > MAX_SIZE {
            return Err(QueueError::BadSize { size, max: self.max_size });
        }
        let n = u64::from(size);
        // (address, alignment, bytes) of each area: §2.7 Table 2.2 and the
        // layouts of §2.7.5, §2.7.6 and §2.7.8, event fields included.
        let areas =
            [(self.desc_table, 16, DESC_SIZE * n), (self.avail_ring, 2, 6 + 2 * n), (self.used_ring, 4, 6 + 8 * n)];
        for (addr, align, len) in areas {
            if !addr.is_multiple_of(align) || addr.checked_add(len).is_none() {
                return Err(QueueError::BadRingAddress { addr });
            }
        }
        self.indirect = features & feature::INDIRECT_DESC != 0;
        self.event_idx = features & feature::EVENT_IDX != 0;
        self.next_avail = 0;
        self.next_used = 0;
        self.signalled_used = 0;
        self.ready = true;
        Ok(())
    }

    /// QueueReady = 0: the device stops using the queue.
    pub fn deactivate(&mut self) {
        self.ready = false;
    }

    /// The driver's available index, after checking that it moved at most
    /// a queue size past the device's position.
    fn avail_idx(&self, mem: &mut dyn GuestMemory) -> Result<u16, QueueError> {
        let avail = mem.read_u16(self.avail_ring + 2)?;
        if avail.wrapping_sub(self.next_avail) > self.size {
            return Err(QueueError::AvailIndex { avail, next: self.next_avail });
        }
        Ok(avail)
    }

    /// Whether the driver has made a chain available that the device has
    /// not taken yet.
    pub fn has_available(&self, mem: &mut dyn GuestMemory) -> Result<bool, QueueError> {
        Ok(self.ready && self.avail_idx(mem)? != self.next_avail)
    }

    /// Takes the next chain of the available ring (§2.7.6), checked;
    /// `None` if the driver has made none available.
    pub fn pop(&mut self, mem: &mut dyn GuestMemory) -> Result<Option<Chain>, QueueError> {
        if !self.has_available(mem)? {
            return Ok(None);
        }
        // The entry is read after the index that covers it.
        fence(Ordering::Acquire);
        let slot = self.avail_ring + 4 + 2 * u64::from(self.next_avail % self.size);
        let head = mem.read_u16(slot)?;
        let chain = self.walk(mem, head)?;
        self.next_avail = self.next_avail.wrapping_add(1);
        Ok(Some(chain))
    }

    /// Follows the chain at `head`, through at most one indirect table.
    fn walk(&self, mem: &mut dyn GuestMemory, head: u16) -> Result<Chain, QueueError> {
        let mut buffers: Vec<Buffer> = Vec::new();
        let (mut table, mut table_len) = (self.desc_table, u32::from(self.size));
        let mut in_indirect = false;
        let mut index = head;
        let mut visited = 0u32;
        loop {
            if u32::from(index) >= table_len {
                return Err(QueueError::DescIndex { index, table_len });
            }
            visited += 1;
            if visited > table_len {
                return Err(QueueError::Loop { head });
            }
            let mut d = [0u8; 16];
            mem.read(table + DESC_SIZE * u64::from(index), &mut d)?;
            let addr = u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
            let len = u32::from_le_bytes([d[8], d[9], d[10], d[11]]);
            let flags = u16::from_le_bytes([d[12], d[13]]);
            let next = u16::from_le_bytes([d[14], d[15]]);
            if !mem.contains(addr, u64::from(len)) {
                return Err(QueueError::BufferOutsideRam { addr, len });
            }
            if flags & desc_flags::INDIRECT != 0 {
                if !self.indirect {
                    return Err(QueueError::IndirectNotNegotiated);
                }
                if in_indirect {
                    return Err(QueueError::NestedIndirect);
                }
                if flags & desc_flags::NEXT != 0 {
                    return Err(QueueError::IndirectWithNext);
                }
                if len == 0 || !u64::from(len).is_multiple_of(DESC_SIZE) {
                    return Err(QueueError::IndirectLength { len });
                }
                (table, table_len) = (addr, len / DESC_SIZE as u32);
                (in_indirect, index, visited) = (true, 0, 0);
                continue;
            }
            let writable = flags & desc_flags::WRITE != 0;
            if !writable && buffers.last().is_some_and(|b| b.writable) {
                return Err(QueueError::ReadableAfterWritable);
            }
            if buffers.len() == usize::from(self.size) {
                return Err(QueueError::ChainTooLong { head });
            }
            buffers.push(Buffer { addr, len, writable });
            if flags & desc_flags::NEXT == 0 {
                return Ok(Chain { head, buffers });
            }
            index = next;
        }
    }

    /// Returns chain `head` to the driver with `len` bytes written into it
    /// (§2.7.8): the used entry first, then the used index.
    pub fn push_used(&mut self, mem: &mut dyn GuestMemory, head: u16, len: u32) -> Result<(), QueueError> {
        if !self.ready {
            return Err(QueueError::NotReady);
        }
        let slot = self.used_ring + 4 + 8 * u64::from(self.next_used % self.size);
        let mut e = [0u8; 8];
        e[..4].copy_from_slice(&u32::from(head).to_le_bytes());
        e[4..].copy_from_slice(&len.to_le_bytes());
        mem.write(slot, &e)?;
        self.next_used = self.next_used.wrapping_add(1);
        fence(Ordering::Release);
        mem.write_u16(self.used_ring + 2, self.next_used)?;
        Ok(())
    }

    /// Whether the used entries added since the last call deserve a
    /// used-buffer notification (§2.7.7, §2.7.10): with event index, if the
    /// driver's used_event lies among them; without, unless the driver set
    /// AVAIL_F_NO_INTERRUPT.
    pub fn needs_interrupt(&mut self, mem: &mut dyn GuestMemory) -> Result<bool, QueueError> {
        if !self.ready {
            return Ok(false);
        }
        // The used index is written before the driver's request is read.
        fence(Ordering::SeqCst);
        let (old, new) = (self.signalled_used, self.next_used);
        self.signalled_used = new;
        if new == old {
            return Ok(false);
        }
        if self.event_idx {
            let used_event = mem.read_u16(self.avail_ring + 4 + 2 * u64::from(self.size))?;
            Ok(vring_need_event(used_event, new, old))
        } else {
            Ok(mem.read_u16(self.avail_ring)? & AVAIL_F_NO_INTERRUPT == 0)
        }
    }

    /// With event index, asks the driver to notify when it makes the next
    /// chain available (avail_event = the device's position, §2.7.10), then
    /// reports whether one arrived meanwhile: a driver that published it
    /// before seeing the new avail_event may not notify.
    pub fn enable_notification(&mut self, mem: &mut dyn GuestMemory) -> Result<bool, QueueError> {
        if self.ready && self.event_idx {
            mem.write_u16(self.used_ring + 4 + 8 * u64::from(self.size), self.next_avail)?;
            fence(Ordering::SeqCst);
        }
        self.has_available(mem)
    }
}

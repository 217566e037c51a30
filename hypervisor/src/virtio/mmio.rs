//! The virtio-mmio transport, version 2 ("modern") registers only (virtio
//! 1.2 §4.2.2), a pure core around one [`VirtioDevice`].
//!
//! The glue (`arch/aarch64/vdisk.rs`, on the per-VM MMIO bus) calls [`VirtioMmio::read`]
//! and [`VirtioMmio::write`] for a trapped access at an offset in the
//! [`WINDOW`]; a write that returns [`Effect::QueueNotify`] is followed by
//! [`VirtioMmio::notify`] with the VM's RAM; after every call the device's
//! SPI follows [`VirtioMmio::irq_level`] (through the vGIC).
//!
//! Registers take 32-bit aligned accesses only (§4.2.2.2: "The driver MUST
//! only use 32 bit wide and aligned reads and writes to access the control
//! registers"); the device configuration space at 0x100 takes 8-, 16- and
//! 32-bit aligned accesses (64-bit fields are read as two 32-bit halves).
//! Anything else is an [`MmioError`], which the glue answers with an
//! external abort. Reads of write-only or reserved registers return 0 and
//! writes to read-only or reserved ones are ignored, as QEMU does.

use alloc::vec::Vec;

use super::memory::GuestMemory;
use super::queue::{Chain, Queue, QueueError};
use super::{feature, status};
pub use crate::vpl011::MmioError;

/// "virt" in little-endian ASCII (§4.2.2, MagicValue).
pub const MAGIC: u32 = 0x7472_6976;
/// The modern register layout (§4.2.2, Version).
pub const VERSION: u32 = 2;
/// VendorID: "EL2H" in little-endian ASCII, this hypervisor's.
pub const VENDOR_ID: u32 = 0x4832_4c45;
/// Size of the register window, as QEMU's virt machine gives each device.
pub const WINDOW: u64 = 0x200;
/// Where the device configuration space starts (§4.2.2, Config).
pub const CONFIG: u64 = 0x100;

/// Register offsets (§4.2.2, Table 4.1).
pub mod reg {
    /// R: MAGIC.
    pub const MAGIC_VALUE: u64 = 0x000;
    /// R: 2.
    pub const VERSION: u64 = 0x004;
    /// R: the device type (§5).
    pub const DEVICE_ID: u64 = 0x008;
    /// R: VENDOR_ID.
    pub const VENDOR_ID: u64 = 0x00c;
    /// R: 32 bits of the device's features, the half DeviceFeaturesSel picks.
    pub const DEVICE_FEATURES: u64 = 0x010;
    /// W: which half DeviceFeatures shows.
    pub const DEVICE_FEATURES_SEL: u64 = 0x014;
    /// W: 32 bits of the features the driver accepts.
    pub const DRIVER_FEATURES: u64 = 0x020;
    /// W: which half DriverFeatures sets.
    pub const DRIVER_FEATURES_SEL: u64 = 0x024;
    /// W: the queue the Queue* registers address.
    pub const QUEUE_SEL: u64 = 0x030;
    /// R: the selected queue's maximum size; 0 if there is no such queue.
    pub const QUEUE_NUM_MAX: u64 = 0x034;
    /// W: the selected queue's size.
    pub const QUEUE_NUM: u64 = 0x038;
    /// RW: the selected queue may be used (1) or not (0).
    pub const QUEUE_READY: u64 = 0x044;
    /// W: the queue index with new buffers.
    pub const QUEUE_NOTIFY: u64 = 0x050;
    /// R: why the interrupt is raised ([`super::interrupt`]).
    pub const INTERRUPT_STATUS: u64 = 0x060;
    /// W: the InterruptStatus bits the driver has handled.
    pub const INTERRUPT_ACK: u64 = 0x064;
    /// RW: the device status (§2.1); writing 0 resets the device.
    pub const STATUS: u64 = 0x070;
    /// W: the selected queue's descriptor table, low and high halves.
    pub const QUEUE_DESC_LOW: u64 = 0x080;
    /// See QUEUE_DESC_LOW.
    pub const QUEUE_DESC_HIGH: u64 = 0x084;
    /// W: the selected queue's available ring ("driver area").
    pub const QUEUE_DRIVER_LOW: u64 = 0x090;
    /// See QUEUE_DRIVER_LOW.
    pub const QUEUE_DRIVER_HIGH: u64 = 0x094;
    /// W: the selected queue's used ring ("device area").
    pub const QUEUE_DEVICE_LOW: u64 = 0x0a0;
    /// See QUEUE_DEVICE_LOW.
    pub const QUEUE_DEVICE_HIGH: u64 = 0x0a4;
    /// W: the shared memory region SHMLen/SHMBase describe.
    pub const SHM_SEL: u64 = 0x0ac;
    /// R: the selected region's length, low half; all ones: no region.
    pub const SHM_LEN_LOW: u64 = 0x0b0;
    /// See SHM_LEN_LOW.
    pub const SHM_LEN_HIGH: u64 = 0x0b4;
    /// R: the selected region's address, low half; all ones: no region.
    pub const SHM_BASE_LOW: u64 = 0x0b8;
    /// See SHM_BASE_LOW.
    pub const SHM_BASE_HIGH: u64 = 0x0bc;
    /// R: changes whenever the configuration space may have changed.
    pub const CONFIG_GENERATION: u64 = 0x0fc;
}

/// InterruptStatus bits (§4.2.2).
pub mod interrupt {
    /// The device used a buffer in at least one queue.
    pub const USED_BUFFER: u32 = 1;
    /// The configuration changed (or DEVICE_NEEDS_RESET was set, §2.1.2).
    pub const CONFIG_CHANGE: u32 = 2;
}

/// A device behind the transport: what it offers and how it handles a
/// chain. virtio-blk is one ([`super::blk::Blk`]).
pub trait VirtioDevice {
    /// The device type (§5), e.g. [`super::device_id::BLOCK`].
    fn device_id(&self) -> u32;
    /// Device-specific feature bits offered (the transport adds
    /// [`feature::TRANSPORT`]).
    fn features(&self) -> u64;
    /// QueueNumMax of each queue; the number of queues is its length.
    fn queue_max_sizes(&self) -> &[u16];
    /// The device configuration space, little-endian (read-only here).
    fn config(&self) -> &[u8];
    /// Serves one chain popped from queue `queue`: the number of bytes it
    /// wrote at the start of the chain's writable part (the used `len`,
    /// §2.7.8), or the rule of the request format the chain breaks.
    fn handle(&mut self, queue: u16, chain: &Chain, mem: &mut dyn GuestMemory) -> Result<u32, QueueError>;
    /// Whether a notification of queue `queue` asks the device to serve
    /// its chains ([`VirtioMmio::notify`]). A queue the device fills when
    /// it has data (virtio-net's receive queue, §5.1.6.3) answers false:
    /// its notification only means "more buffers", and the device uses the
    /// chains with [`VirtioMmio::fill`].
    fn serves_on_notify(&self, queue: u16) -> bool {
        let _ = queue;
        true
    }
}

/// What one [`VirtioMmio::fill`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fill {
    /// The data went into the next available chain, returned in the used
    /// ring with its length.
    Filled,
    /// The driver has no chain available: the device keeps the data or
    /// drops it. With event index, the driver was asked to notify when it
    /// adds one (avail_event, §2.7.10).
    NoBuffer,
    /// The next chain's writable part is shorter than the data: the chain
    /// went back to the driver unused (used length 0) and the data was not
    /// delivered.
    TooShort,
    /// The device does not serve its queues (not DRIVER_OK, DEVICE_NEEDS_RESET)
    /// or the queue is not ready.
    NotLive,
    /// The queue broke a rule of §2.7: DEVICE_NEEDS_RESET is now set.
    Broken,
}

/// What a register write asks of the glue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Nothing beyond the register's new value.
    None,
    /// The driver notified this queue: call [`VirtioMmio::notify`].
    QueueNotify(u16),
    /// The interrupt line changed to this level.
    IrqLevel(bool),
    /// The driver reset the device (Status = 0).
    Reset,
}

/// Why the device set DEVICE_NEEDS_RESET: for the glue's report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NeedsReset {
    /// QueueReady = 1 before FEATURES_OK (§3.1.1: queues are set up after
    /// feature negotiation).
    QueueReadyBeforeFeaturesOk {
        /// The queue.
        queue: u16,
    },
    /// A queue broke a rule of §2.7, or a chain the request format.
    Queue {
        /// The queue.
        queue: u16,
        /// The rule.
        error: QueueError,
    },
}

/// What one [`VirtioMmio::notify`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Processed {
    /// Chains served and returned in the used ring.
    pub completed: usize,
    /// Chains are still waiting: the call stopped after a queue size's
    /// worth, so that one driver cannot hold the CPU; call it again.
    pub more: bool,
}

/// One virtio-mmio device: the transport's registers, the queues, and the
/// device behind them.
#[derive(Clone, Debug)]
pub struct VirtioMmio<D> {
    device: D,
    device_features_sel: u32,
    driver_features: u64,
    driver_features_sel: u32,
    queue_sel: u32,
    queues: Vec<Queue>,
    interrupt_status: u32,
    status: u32,
    error: Option<NeedsReset>,
}

impl<D: VirtioDevice> VirtioMmio<D> {
    /// The transport around `device`, in its reset state.
    pub fn new(device: D) -> Self {
        let queues = device.queue_max_sizes().iter().map(|&max| Queue::new(max)).collect();
        Self {
            device,
            device_features_sel: 0,
            driver_features: 0,
            driver_features_sel: 0,
            queue_sel: 0,
            queues,
            interrupt_status: 0,
            status: 0,
            error: None,
        }
    }

    /// The device behind the transport.
    pub fn device(&self) -> &D {
        &self.device
    }

    /// The device behind the transport, mutably (to take what it produced,
    /// e.g. the frames virtio-net transmitted).
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.device
    }

    /// The device status (§2.1).
    pub fn status(&self) -> u32 {
        self.status
    }

    /// Why DEVICE_NEEDS_RESET is set, if it is.
    pub fn error(&self) -> Option<NeedsReset> {
        self.error
    }

    /// Queue `index`, for inspection.
    pub fn queue(&self, index: u16) -> Option<&Queue> {
        self.queues.get(usize::from(index))
    }

    /// The level of the device's interrupt: any InterruptStatus bit set.
    pub fn irq_level(&self) -> bool {
        self.interrupt_status != 0
    }

    /// The features offered: the device's and the transport's.
    pub fn device_features(&self) -> u64 {
        self.device.features() | feature::TRANSPORT
    }

    /// The features negotiated, once FEATURES_OK is accepted.
    pub fn negotiated_features(&self) -> u64 {
        if self.status & status::FEATURES_OK != 0 { self.driver_features } else { 0 }
    }

    /// Device reset (§2.4, Status = 0; also a VM reset): registers, queues
    /// and interrupts back to their initial state. The device's own data
    /// (a disk's contents) is untouched.
    pub fn reset(&mut self) {
        self.device_features_sel = 0;
        self.driver_features = 0;
        self.driver_features_sel = 0;
        self.queue_sel = 0;
        self.queues.iter_mut().for_each(Queue::reset);
        self.interrupt_status = 0;
        self.status = 0;
        self.error = None;
    }

    /// Whether the device may serve its queues: DRIVER_OK (§2.1.2: not
    /// before) and no DEVICE_NEEDS_RESET.
    fn live(&self) -> bool {
        self.status & (status::DRIVER_OK | status::DEVICE_NEEDS_RESET) == status::DRIVER_OK
    }

    /// Enters the error state (§2.1.2): DEVICE_NEEDS_RESET, and a
    /// configuration change notification if the driver is running.
    fn needs_reset(&mut self, why: NeedsReset) {
        if self.status & status::DEVICE_NEEDS_RESET != 0 {
            return;
        }
        self.status |= status::DEVICE_NEEDS_RESET;
        self.error = Some(why);
        if self.status & status::DRIVER_OK != 0 {
            self.interrupt_status |= interrupt::CONFIG_CHANGE;
        }
    }

    /// A read of `size` bytes at `offset` in the window.
    pub fn read(&self, offset: u64, size: u8) -> Result<u64, MmioError> {
        if offset >= CONFIG {
            return self.read_config(offset, size);
        }
        check_register(offset, size)?;
        let queue = self.queues.get(self.queue_sel as usize);
        let value = match offset {
            reg::MAGIC_VALUE => MAGIC,
            reg::VERSION => VERSION,
            reg::DEVICE_ID => self.device.device_id(),
            reg::VENDOR_ID => VENDOR_ID,
            reg::DEVICE_FEATURES => match self.device_features_sel {
                0 => self.device_features() as u32,
                1 => (self.device_features() >> 32) as u32,
                _ => 0,
            },
            reg::QUEUE_NUM_MAX => queue.map_or(0, |q| u32::from(q.max_size())),
            reg::QUEUE_READY => queue.map_or(0, |q| u32::from(q.ready())),
            reg::INTERRUPT_STATUS => self.interrupt_status,
            reg::STATUS => self.status,
            // No shared memory regions (§4.2.2: a length of -1).
            reg::SHM_LEN_LOW | reg::SHM_LEN_HIGH | reg::SHM_BASE_LOW | reg::SHM_BASE_HIGH => u32::MAX,
            // The configuration space never changes while the device runs
            // (a disk's capacity is fixed), so one generation: 0.
            reg::CONFIG_GENERATION => 0,
            _ => 0,
        };
        Ok(u64::from(value))
    }

    /// A write of `size` bytes of `value` at `offset` in the window.
    pub fn write(&mut self, offset: u64, size: u8, value: u64) -> Result<Effect, MmioError> {
        if offset >= CONFIG {
            // No writable configuration field is offered (VIRTIO_BLK_F_CONFIG_WCE is not).
            return self.config_range(offset, size).map(|_| Effect::None);
        }
        check_register(offset, size)?;
        let value = value as u32;
        match offset {
            reg::DEVICE_FEATURES_SEL => self.device_features_sel = value,
            reg::DRIVER_FEATURES_SEL => self.driver_features_sel = value,
            reg::DRIVER_FEATURES => self.write_driver_features(value),
            reg::QUEUE_SEL => self.queue_sel = value,
            reg::QUEUE_NUM
            | reg::QUEUE_DESC_LOW
            | reg::QUEUE_DESC_HIGH
            | reg::QUEUE_DRIVER_LOW
            | reg::QUEUE_DRIVER_HIGH
            | reg::QUEUE_DEVICE_LOW
            | reg::QUEUE_DEVICE_HIGH => self.write_queue_setup(offset, value),
            reg::QUEUE_READY => return Ok(self.write_queue_ready(value)),
            reg::QUEUE_NOTIFY => {
                // Without VIRTIO_F_NOTIFICATION_DATA the value is the queue index.
                let index = value as u16;
                let ready = self.queues.get(usize::from(index)).is_some_and(Queue::ready);
                if value <= u32::from(u16::MAX) && ready && self.live() {
                    return Ok(Effect::QueueNotify(index));
                }
            }
            reg::INTERRUPT_ACK => {
                let before = self.irq_level();
                self.interrupt_status &= !value;
                if self.irq_level() != before {
                    return Ok(Effect::IrqLevel(self.irq_level()));
                }
            }
            reg::STATUS => return Ok(self.write_status(value)),
            _ => {}
        }
        Ok(Effect::None)
    }

    /// QueueNum and the ring addresses of the selected queue; ignored
    /// while it is ready ([`Queue::set_up`]) or if there is no such queue.
    fn write_queue_setup(&mut self, offset: u64, value: u32) {
        let Some(q) = self.queues.get_mut(self.queue_sel as usize) else { return };
        let mut s = q.setup();
        match offset {
            // A size that does not fit 16 bits is no valid size: 0.
            reg::QUEUE_NUM => s.size = u16::try_from(value).unwrap_or(0),
            reg::QUEUE_DESC_LOW | reg::QUEUE_DESC_HIGH => s.desc_table = with_half(s.desc_table, offset, value),
            reg::QUEUE_DRIVER_LOW | reg::QUEUE_DRIVER_HIGH => s.avail_ring = with_half(s.avail_ring, offset, value),
            _ => s.used_ring = with_half(s.used_ring, offset, value),
        }
        q.set_up(s);
    }

    /// DriverFeatures: taken until FEATURES_OK is set (§2.2: the features
    /// are fixed once the device accepts them).
    fn write_driver_features(&mut self, value: u32) {
        if self.status & status::FEATURES_OK != 0 {
            return;
        }
        match self.driver_features_sel {
            0 => self.driver_features = (self.driver_features & !0xffff_ffff) | u64::from(value),
            1 => self.driver_features = (self.driver_features & 0xffff_ffff) | u64::from(value) << 32,
            _ => {}
        }
    }

    /// Status (§2.1, §4.2.3.1): 0 resets; otherwise the driver may only
    /// add bits (§2.1.1), DEVICE_NEEDS_RESET is the device's, and
    /// FEATURES_OK stays clear unless the device accepts the driver's
    /// features: a subset of those offered, VIRTIO_F_VERSION_1 among them
    /// (§2.2.1, §6.1: this transport has no legacy interface).
    fn write_status(&mut self, value: u32) -> Effect {
        if value == 0 {
            self.reset();
            return Effect::Reset;
        }
        let mut new = (value & 0xff & !status::DEVICE_NEEDS_RESET) | (self.status & status::DEVICE_NEEDS_RESET);
        if new & self.status != self.status {
            return Effect::None;
        }
        if new & status::FEATURES_OK != 0 && self.status & status::FEATURES_OK == 0 {
            let offered = self.device_features();
            let acceptable = self.driver_features & !offered == 0 && self.driver_features & feature::VERSION_1 != 0;
            if !acceptable {
                new &= !status::FEATURES_OK;
            }
        }
        self.status = new;
        Effect::None
    }

    /// QueueReady: 1 activates the selected queue once its set-up is
    /// valid, 0 stops it. Activating it before FEATURES_OK or with a bad
    /// size or ring address puts the device in DEVICE_NEEDS_RESET.
    fn write_queue_ready(&mut self, value: u32) -> Effect {
        let before = self.irq_level();
        let index = self.queue_sel as u16;
        let features = self.negotiated_features();
        let features_ok = self.status & status::FEATURES_OK != 0;
        let Some(q) = self.queues.get_mut(self.queue_sel as usize) else { return Effect::None };
        let refused = match value {
            0 => {
                q.deactivate();
                None
            }
            1 if q.ready() => None,
            1 if !features_ok => Some(NeedsReset::QueueReadyBeforeFeaturesOk { queue: index }),
            1 => q.activate(features).err().map(|error| NeedsReset::Queue { queue: index, error }),
            _ => None,
        };
        if let Some(why) = refused {
            self.needs_reset(why);
        }
        if self.irq_level() != before { Effect::IrqLevel(self.irq_level()) } else { Effect::None }
    }

    /// Serves queue `index` after a notification: each available chain is
    /// checked, handed to the device and returned in the used ring, at
    /// most a queue size's worth per call. A broken rule sets
    /// DEVICE_NEEDS_RESET and the queues are left alone until a reset.
    pub fn notify(&mut self, index: u16, mem: &mut dyn GuestMemory) -> Processed {
        let mut done = Processed::default();
        if !self.live() || !self.device.serves_on_notify(index) {
            return done;
        }
        let Some(queue) = self.queues.get_mut(usize::from(index)).filter(|q| q.ready()) else { return done };
        let result = serve(&mut self.device, index, queue, mem, &mut done);
        let interrupt = queue.needs_interrupt(mem);
        if interrupt == Ok(true) {
            self.interrupt_status |= interrupt::USED_BUFFER;
        }
        if let Err(error) = result.and(interrupt) {
            self.needs_reset(NeedsReset::Queue { queue: index, error });
        }
        done
    }

    /// Whether queue `index` may be filled: the device is live and the
    /// queue ready.
    pub fn can_fill(&self, index: u16) -> bool {
        self.live() && self.queues.get(usize::from(index)).is_some_and(Queue::ready)
    }

    /// A device-initiated use of queue `index` (virtio-net's receive queue,
    /// §5.1.6.3): the concatenation of `parts` is written at the start of
    /// the writable part of the next available chain, which goes back in
    /// the used ring with that length, and the used-buffer interrupt is
    /// decided as after a notification (§2.7.7, §2.7.10). A chain with a
    /// device-readable part breaks the queue's direction (the device only
    /// writes to it): DEVICE_NEEDS_RESET, like any other broken rule.
    pub fn fill(&mut self, index: u16, mem: &mut dyn GuestMemory, parts: &[&[u8]]) -> Fill {
        if !self.can_fill(index) {
            return Fill::NotLive;
        }
        let Some(queue) = self.queues.get_mut(usize::from(index)) else { return Fill::NotLive };
        let result = fill_one(queue, mem, parts);
        let interrupt = match result {
            Ok(Fill::Filled | Fill::TooShort) => queue.needs_interrupt(mem),
            _ => Ok(false),
        };
        if interrupt == Ok(true) {
            self.interrupt_status |= interrupt::USED_BUFFER;
        }
        match result.and_then(|fill| interrupt.map(|_| fill)) {
            Ok(fill) => fill,
            Err(error) => {
                self.needs_reset(NeedsReset::Queue { queue: index, error });
                Fill::Broken
            }
        }
    }

    fn config_range(&self, offset: u64, size: u8) -> Result<usize, MmioError> {
        if offset >= WINDOW {
            return Err(MmioError::OutOfRange { offset });
        }
        if !matches!(size, 1 | 2 | 4) {
            return Err(MmioError::BadSize { offset, size });
        }
        if !offset.is_multiple_of(u64::from(size)) {
            return Err(MmioError::Unaligned { offset, size });
        }
        Ok((offset - CONFIG) as usize)
    }

    /// The configuration space, little-endian; bytes past the device's
    /// configuration read as zero.
    fn read_config(&self, offset: u64, size: u8) -> Result<u64, MmioError> {
        let start = self.config_range(offset, size)?;
        let config = self.device.config();
        let mut b = [0u8; 8];
        for (i, byte) in b.iter_mut().take(usize::from(size)).enumerate() {
            *byte = config.get(start + i).copied().unwrap_or(0);
        }
        Ok(u64::from_le_bytes(b))
    }
}

/// Pops, serves and returns chains of one queue until none is left or a
/// queue size's worth is done; with event index, re-arms avail_event and
/// looks again before it stops.
fn serve<D: VirtioDevice>(
    device: &mut D,
    index: u16,
    queue: &mut Queue,
    mem: &mut dyn GuestMemory,
    done: &mut Processed,
) -> Result<(), QueueError> {
    let budget = usize::from(queue.setup().size);
    loop {
        while let Some(chain) = queue.pop(mem)? {
            let len = device.handle(index, &chain, mem)?;
            queue.push_used(mem, chain.head, len)?;
            done.completed += 1;
            if done.completed == budget {
                done.more = queue.enable_notification(mem)?;
                return Ok(());
            }
        }
        if !queue.enable_notification(mem)? {
            return Ok(());
        }
    }
}

/// [`VirtioMmio::fill`] on a ready queue: pops the next chain (asking for a
/// notification and looking again if there is none), writes `parts` and
/// returns the chain.
fn fill_one(queue: &mut Queue, mem: &mut dyn GuestMemory, parts: &[&[u8]]) -> Result<Fill, QueueError> {
    let chain = match queue.pop(mem)? {
        Some(chain) => chain,
        // A driver that added a chain before it saw the new avail_event
        // may not notify: look once more.
        None if queue.enable_notification(mem)? => match queue.pop(mem)? {
            Some(chain) => chain,
            None => return Ok(Fill::NoBuffer),
        },
        None => return Ok(Fill::NoBuffer),
    };
    if chain.readable_len() != 0 {
        return Err(QueueError::ReadableInWriteOnlyQueue { head: chain.head });
    }
    let total: u64 = parts.iter().map(|p| p.len() as u64).sum();
    if total > chain.writable_len() || total > u64::from(u32::MAX) {
        queue.push_used(mem, chain.head, 0)?;
        return Ok(Fill::TooShort);
    }
    let mut at = 0;
    for part in parts {
        chain.write_at(mem, at, part)?;
        at += part.len() as u64;
    }
    queue.push_used(mem, chain.head, total as u32)?;
    Ok(Fill::Filled)
}

/// Registers: 32-bit, aligned, inside the register block.
fn check_register(offset: u64, size: u8) -> Result<(), MmioError> {
    if size != 4 {
        return Err(MmioError::BadSize { offset, size });
    }
    if !offset.is_multiple_of(4) {
        return Err(MmioError::Unaligned { offset, size });
    }
    Ok(())
}

/// `addr` with its low (a …LOW register) or high (…HIGH) half replaced.
fn with_half(addr: u64, offset: u64, value: u32) -> u64 {
    if offset.is_multiple_of(8) {
        (addr & !0xffff_ffff) | u64::from(value)
    } else {
        (addr & 0xffff_ffff) | u64::from(value) << 32
    }
}

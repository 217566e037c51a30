//! virtio devices (OASIS virtio 1.2), pure cores: the split virtqueue, the
//! virtio-mmio transport and virtio-blk, host-tested with a fake guest RAM.
//!
//! How a request travels: the driver fills buffers in its RAM, describes
//! them in the descriptor table, puts the chain's head in the available ring
//! and writes QueueNotify ([`mmio`]); the device takes the chain off the
//! ring ([`queue::Queue::pop`], every descriptor validated), does the work
//! ([`blk`]), puts the head and the number of bytes written in the used ring
//! ([`queue::Queue::push_used`]) and, unless the driver asked not to be
//! told (event index, §2.7.10), raises the used-buffer interrupt.
//!
//! A driver that breaks the rules (a descriptor out of range, a loop, a
//! buffer outside its VM's RAM, ...) gets DEVICE_NEEDS_RESET (§2.1.2) and a
//! configuration-change interrupt; the device then ignores its queues until
//! the driver resets it. Nothing a driver writes makes the hypervisor panic
//! or touch memory outside that VM's RAM: every guest address goes through
//! [`GuestMemory`], which refuses addresses outside the RAM.
//!
//! Where each part of the spec lives:
//! - §2.1 device status and §2.2 feature bits: [`status`], [`feature`],
//!   and their rules in [`mmio`] (FEATURES_OK, DEVICE_NEEDS_RESET, reset);
//! - §2.7 split virtqueues (§2.7.5.3 indirect descriptors, §2.7.10 event
//!   index): [`queue`];
//! - §4.2.2 the virtio-mmio register layout, version 2: [`mmio`];
//! - §5.1 the network device: [`net`] (its receive queue is filled by
//!   the device, [`mmio::VirtioMmio::fill`]);
//! - §5.2 the block device: [`blk`].
//!
//! A VM's disks (`[[vm.disk]]`) attach these cores to its MMIO bus: the
//! glue is `arch/aarch64/vdisk.rs`, which wraps a [`mmio::VirtioMmio`]
//! around a [`blk::Blk`] per disk (docs/devices.md).

pub mod blk;
pub mod driver;
mod memory;
pub mod mmio;
pub mod net;
pub mod queue;
#[cfg(test)]
mod tests;

pub use memory::{GuestMemory, OutsideRam, VecMemory, ram_offset};

/// Device IDs (§5 "Device Types").
pub mod device_id {
    /// Network card (§5.1).
    pub const NET: u32 = 1;
    /// Block device (§5.2).
    pub const BLOCK: u32 = 2;
}

/// Device-independent feature bits (§6 "Reserved Feature Bits"); the
/// device-specific ones are in their device's module.
pub mod feature {
    /// The driver may use indirect descriptors (§2.7.5.3).
    pub const INDIRECT_DESC: u64 = 1 << 28;
    /// used_event and avail_event suppress notifications (§2.7.10).
    pub const EVENT_IDX: u64 = 1 << 29;
    /// Compliance with virtio 1.0 and later, not the legacy interface
    /// (§6.1: a device MUST offer it; this transport is modern only).
    pub const VERSION_1: u64 = 1 << 32;
    /// Bits this transport and queue implementation offer for every device.
    pub const TRANSPORT: u64 = INDIRECT_DESC | EVENT_IDX | VERSION_1;
}

/// Device status bits (§2.1).
pub mod status {
    /// The guest OS has found the device.
    pub const ACKNOWLEDGE: u32 = 1;
    /// The guest OS knows how to drive it.
    pub const DRIVER: u32 = 2;
    /// The driver is set up and ready to drive the device.
    pub const DRIVER_OK: u32 = 4;
    /// The driver has acknowledged the features it understands; the device
    /// keeps the bit only if it accepts them (§2.2, §3.1.1 step 6).
    pub const FEATURES_OK: u32 = 8;
    /// The device has hit an error it cannot recover from without a reset
    /// (§2.1.2). Set by the device only.
    pub const DEVICE_NEEDS_RESET: u32 = 64;
    /// Something went wrong in the guest and it has given up on the device.
    pub const FAILED: u32 = 128;
}

//! virtio-net (virtio 1.2 §5.1), the device side of one network card; the
//! frames it sends go to a virtual switch (`crate::vswitch`), through the
//! glue (`arch/aarch64/vnet.rs`).
//!
//! Features (§5.1.3): VIRTIO_NET_F_MAC only, beside the transport's. No
//! checksum or segmentation offload, no mergeable receive buffers, no
//! control queue, one queue pair, so:
//! - queue 0 receives and queue 1 transmits (§5.1.2);
//! - the configuration space is the MAC address alone (§5.1.4; `status`
//!   and the fields after it exist only with features not offered);
//! - every packet is the 12-byte `virtio_net_hdr` of a VERSION_1 device
//!   (§5.1.6: flags, gso_type, hdr_len, gso_size, csum_start, csum_offset,
//!   num_buffers) followed by one Ethernet frame without its FCS.
//!
//! Transmit (§5.1.6.2): a chain of queue 1 is read as one byte stream:
//! header, then the frame. A header that asks for an offload the driver
//! could not have negotiated (flags or gso_type not 0, §5.1.6.2.1), or a
//! frame outside [`FRAME_MIN`]`..=`[`FRAME_MAX`] bytes, is dropped and
//! counted in [`NetStats`], not a protocol error: the chain is returned
//! (used length 0, the device wrote nothing) and the driver goes on. Frames
//! taken wait in an outbox the glue empties after each notification
//! ([`Net::take_outbox`]); a full outbox drops and counts too.
//!
//! Receive (§5.1.6.3, §5.1.6.4): the device writes header and frame into
//! the next chain of queue 0 when it has a frame ([`Net::receive`], with
//! `VirtioMmio::fill`); the header is all zero but num_buffers = 1
//! (§5.1.6.4.1: "If VIRTIO_NET_F_MRG_RXBUF is not negotiated, the device
//! MUST set num_buffers to 1"). A notification of queue 0 only says that
//! buffers were added ([`VirtioDevice::serves_on_notify`] is false).

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use super::device_id;
use super::memory::GuestMemory;
use super::mmio::{Fill, VirtioDevice, VirtioMmio};
use super::queue::{Chain, QueueError};

/// The receive queue (§5.1.2, receiveq1).
pub const RX: u16 = 0;
/// The transmit queue (§5.1.2, transmitq1).
pub const TX: u16 = 1;
/// QueueNumMax of both queues (QEMU's default).
pub const QUEUE_SIZE_MAX: u16 = 256;
/// Bytes of `struct virtio_net_hdr` with VIRTIO_F_VERSION_1 (§5.1.6:
/// num_buffers is present).
pub const HDR_LEN: usize = 12;
/// The shortest frame: an Ethernet header (destination, source, type).
pub const FRAME_MIN: usize = 14;
/// The longest frame: a 1500-byte MTU plus the Ethernet header (no VLAN
/// tag room, no FCS; the driver's MTU without VIRTIO_NET_F_MTU).
pub const FRAME_MAX: usize = 1514;
/// Frames the outbox holds between two [`Net::take_outbox`].
pub const OUTBOX_MAX: usize = QUEUE_SIZE_MAX as usize;

/// Feature bits of the network device (§5.1.3).
pub mod feature {
    /// The device has a MAC address, in the configuration space.
    pub const MAC: u64 = 1 << 5;
}

/// An Ethernet (MAC-48) address.
pub type Mac = [u8; 6];

/// What the device dropped and moved, for the glue's report and the tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Frames taken from the transmit queue into the outbox.
    pub tx_frames: u64,
    /// Transmit chains whose header asked for an offload not negotiated.
    pub tx_bad_header: u64,
    /// Transmit chains too short for a header and a frame of at least
    /// [`FRAME_MIN`] bytes, or with a frame longer than [`FRAME_MAX`].
    pub tx_bad_size: u64,
    /// Frames dropped because the outbox was full.
    pub tx_outbox_full: u64,
    /// Frames written into the receive queue.
    pub rx_frames: u64,
    /// Frames dropped because the receive chain was too short for them.
    pub rx_too_short: u64,
}

/// One virtio-net device.
#[derive(Clone, Debug)]
pub struct Net {
    mac: Mac,
    outbox: VecDeque<Vec<u8>>,
    stats: NetStats,
}

impl Net {
    /// A network card with address `mac`.
    pub fn new(mac: Mac) -> Self {
        Self { mac, outbox: VecDeque::new(), stats: NetStats::default() }
    }

    /// The card's MAC address.
    pub fn mac(&self) -> Mac {
        self.mac
    }

    /// The counters.
    pub fn stats(&self) -> NetStats {
        self.stats
    }

    /// The frames transmitted since the last call, oldest first.
    pub fn take_outbox(&mut self) -> VecDeque<Vec<u8>> {
        core::mem::take(&mut self.outbox)
    }

    /// The receive header (§5.1.6.4): no offload, one buffer.
    pub fn rx_header() -> [u8; HDR_LEN] {
        let mut h = [0u8; HDR_LEN];
        h[10..12].copy_from_slice(&1u16.to_le_bytes());
        h
    }

    /// Delivers `frame` into the next receive chain of `dev` (§5.1.6.4):
    /// header and frame, with the used-buffer interrupt decided. A frame
    /// outside [`FRAME_MIN`]`..=`[`FRAME_MAX`] is not delivered
    /// ([`Fill::TooShort`] stands for it: nothing is written).
    pub fn receive(dev: &mut VirtioMmio<Net>, mem: &mut dyn GuestMemory, frame: &[u8]) -> Fill {
        if !(FRAME_MIN..=FRAME_MAX).contains(&frame.len()) {
            return Fill::TooShort;
        }
        let fill = dev.fill(RX, mem, &[&Self::rx_header(), frame]);
        match fill {
            Fill::Filled => dev.device_mut().stats.rx_frames += 1,
            Fill::TooShort => dev.device_mut().stats.rx_too_short += 1,
            _ => {}
        }
        fill
    }

    /// One transmit chain (§5.1.6.2): the frame into the outbox, or a drop
    /// counted. Never an error: the chain was valid as a chain.
    fn transmit(&mut self, chain: &Chain, mem: &mut dyn GuestMemory) -> Result<(), QueueError> {
        let len = chain.readable_len();
        let Some(frame_len) = len.checked_sub(HDR_LEN as u64) else {
            self.stats.tx_bad_size += 1;
            return Ok(());
        };
        if !(FRAME_MIN as u64..=FRAME_MAX as u64).contains(&frame_len) {
            self.stats.tx_bad_size += 1;
            return Ok(());
        }
        let mut hdr = [0u8; HDR_LEN];
        chain.read_at(mem, 0, &mut hdr)?;
        // flags (NEEDS_CSUM, DATA_VALID, RSC_INFO) and gso_type need
        // VIRTIO_NET_F_CSUM / the GSO features (§5.1.6.2.1).
        if hdr[0] != 0 || hdr[1] != 0 {
            self.stats.tx_bad_header += 1;
            return Ok(());
        }
        if self.outbox.len() >= OUTBOX_MAX {
            self.stats.tx_outbox_full += 1;
            return Ok(());
        }
        let mut frame = alloc::vec![0u8; frame_len as usize];
        chain.read_at(mem, HDR_LEN as u64, &mut frame)?;
        self.outbox.push_back(frame);
        self.stats.tx_frames += 1;
        Ok(())
    }
}

impl VirtioDevice for Net {
    fn device_id(&self) -> u32 {
        device_id::NET
    }

    fn features(&self) -> u64 {
        feature::MAC
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE_MAX, QUEUE_SIZE_MAX]
    }

    fn config(&self) -> &[u8] {
        &self.mac
    }

    /// Transmit chains; a receive chain never reaches here
    /// ([`VirtioDevice::serves_on_notify`]).
    fn handle(&mut self, queue: u16, chain: &Chain, mem: &mut dyn GuestMemory) -> Result<u32, QueueError> {
        if queue == TX {
            self.transmit(chain, mem)?;
        }
        Ok(0)
    }

    fn serves_on_notify(&self, queue: u16) -> bool {
        queue != RX
    }
}

/// Whether `mac` is a group (multicast or broadcast) address: the I/G bit,
/// bit 0 of the first octet (IEEE 802-2014 §8.2).
pub fn is_multicast(mac: &Mac) -> bool {
    mac[0] & 1 != 0
}

/// The destination address of a frame of at least [`FRAME_MIN`] bytes.
pub fn dst(frame: &[u8]) -> Option<Mac> {
    frame.get(0..6)?.try_into().ok()
}

/// The source address of a frame of at least [`FRAME_MIN`] bytes.
pub fn src(frame: &[u8]) -> Option<Mac> {
    frame.get(6..12)?.try_into().ok()
}

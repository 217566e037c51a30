//! The driver side of virtio (OASIS virtio 1.2): the virtio-mmio transport
//! (§4.2, "modern" version 2 only) and split virtqueues (§2.7), as Linux's
//! `drivers/virtio/virtio_mmio.c` and `virtio_ring.c` do it. Devices:
//! [`crate::block::virtio_blk`].
//!
//! Pure: registers are reached through [`MmioRegs`] and the memory shared
//! with the device through [`DmaBuf`], which the arch layer implements
//! with volatile MMIO and the linear map (`arch/aarch64/virtio.rs`) and
//! the host tests with plain memory driven by the hypervisor's own device
//! model (`virtio/tests.rs`).

pub mod ring;
#[cfg(test)]
mod tests;

/// The value of MagicValue: "virt" in little-endian (§4.2.2).
pub const MAGIC: u32 = 0x7472_6976;

/// Device IDs (§5).
pub const ID_BLOCK: u32 = 2;

/// Device status bits (§2.1).
pub mod status {
    pub const ACKNOWLEDGE: u32 = 1;
    pub const DRIVER: u32 = 2;
    pub const DRIVER_OK: u32 = 4;
    pub const FEATURES_OK: u32 = 8;
    pub const DEVICE_NEEDS_RESET: u32 = 64;
    pub const FAILED: u32 = 128;
}

/// `VIRTIO_F_VERSION_1` (§6): the modern interface; required.
pub const F_VERSION_1: u64 = 1 << 32;

/// Register offsets of a virtio-mmio transport (§4.2.2, Table 4.1).
pub mod reg {
    pub const MAGIC_VALUE: usize = 0x000;
    pub const VERSION: usize = 0x004;
    pub const DEVICE_ID: usize = 0x008;
    pub const DEVICE_FEATURES: usize = 0x010;
    pub const DEVICE_FEATURES_SEL: usize = 0x014;
    pub const DRIVER_FEATURES: usize = 0x020;
    pub const DRIVER_FEATURES_SEL: usize = 0x024;
    pub const QUEUE_SEL: usize = 0x030;
    pub const QUEUE_NUM_MAX: usize = 0x034;
    pub const QUEUE_NUM: usize = 0x038;
    pub const QUEUE_READY: usize = 0x044;
    pub const QUEUE_NOTIFY: usize = 0x050;
    pub const INTERRUPT_STATUS: usize = 0x060;
    pub const INTERRUPT_ACK: usize = 0x064;
    pub const STATUS: usize = 0x070;
    pub const QUEUE_DESC_LOW: usize = 0x080;
    pub const QUEUE_DESC_HIGH: usize = 0x084;
    pub const QUEUE_DRIVER_LOW: usize = 0x090;
    pub const QUEUE_DRIVER_HIGH: usize = 0x094;
    pub const QUEUE_DEVICE_LOW: usize = 0x0a0;
    pub const QUEUE_DEVICE_HIGH: usize = 0x0a4;
    pub const CONFIG_GENERATION: usize = 0x0fc;
    pub const CONFIG: usize = 0x100;
}

/// 32-bit register access to one virtio-mmio transport. The arch layer's
/// implementation is a volatile access with the I/O barriers of Linux's
/// `readl`/`writel`: a `writel` is ordered after earlier writes to DMA
/// memory, so a QueueNotify follows the ring update it announces.
pub trait MmioRegs {
    fn read32(&self, offset: usize) -> u32;
    fn write32(&self, offset: usize, value: u32);
}

impl<R: MmioRegs + ?Sized> MmioRegs for &R {
    fn read32(&self, offset: usize) -> u32 {
        (**self).read32(offset)
    }
    fn write32(&self, offset: usize, value: u32) {
        (**self).write32(offset, value)
    }
}

/// Memory shared with a device: physically contiguous, `size` bytes at
/// device-visible address `phys`. Offsets are checked by the caller's
/// layout (a bad offset is a bug, and panics).
pub trait DmaBuf {
    fn phys(&self) -> u64;
    fn size(&self) -> usize;
    fn read(&self, offset: usize, buf: &mut [u8]);
    fn write(&self, offset: usize, data: &[u8]);
    /// Orders earlier writes to this memory before later ones as the
    /// device sees them (Linux `virtio_wmb`, `dma_wmb`: `dmb oshst`).
    fn wmb(&self);
    /// Orders earlier reads before later ones (`virtio_rmb`, `dma_rmb`).
    fn rmb(&self);
    /// Orders everything before against everything after (`virtio_mb`).
    fn mb(&self);

    fn read_u16(&self, offset: usize) -> u16 {
        let mut b = [0; 2];
        self.read(offset, &mut b);
        u16::from_le_bytes(b)
    }
    fn write_u16(&self, offset: usize, v: u16) {
        self.write(offset, &v.to_le_bytes());
    }
    fn read_u32(&self, offset: usize) -> u32 {
        let mut b = [0; 4];
        self.read(offset, &mut b);
        u32::from_le_bytes(b)
    }
}

/// Why a transport could not be brought up; the probe prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeError {
    /// MagicValue is not "virt".
    NotVirtio(u32),
    /// Version 1 is the legacy interface (QEMU's default for virtio-mmio:
    /// `-global virtio-mmio.force-legacy=false` gives version 2).
    Legacy(u32),
    /// The device refused FEATURES_OK, or lacks VERSION_1.
    Features(u64),
    /// The queue is missing (QueueNumMax 0) or already live.
    Queue,
}

impl core::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ProbeError::NotVirtio(m) => write!(f, "wrong magic value {m:#x}"),
            ProbeError::Legacy(v) => write!(f, "version {v} (legacy) not supported; version 2 only"),
            ProbeError::Features(d) => write!(f, "device features {d:#x} lack VERSION_1 or were refused"),
            ProbeError::Queue => write!(f, "queue 0 unavailable"),
        }
    }
}

/// What sits behind a transport: `None` for an empty slot (DeviceID 0).
pub fn device_id<R: MmioRegs>(regs: &R) -> Result<Option<u32>, ProbeError> {
    let magic = regs.read32(reg::MAGIC_VALUE);
    if magic != MAGIC {
        return Err(ProbeError::NotVirtio(magic));
    }
    let id = regs.read32(reg::DEVICE_ID);
    if id == 0 {
        return Ok(None);
    }
    let version = regs.read32(reg::VERSION);
    if version != 2 {
        return Err(ProbeError::Legacy(version));
    }
    Ok(Some(id))
}

/// Device initialisation up to FEATURES_OK (§3.1.1 steps 1-6): reset,
/// ACKNOWLEDGE, DRIVER, then the features both sides know (`wanted` ∩
/// offered, VERSION_1 required). Returns the negotiated features.
pub fn negotiate<R: MmioRegs>(regs: &R, wanted: u64) -> Result<u64, ProbeError> {
    regs.write32(reg::STATUS, 0);
    // §4.2.3.1: reading Status back until it is 0 waits out the reset.
    while regs.read32(reg::STATUS) != 0 {}
    regs.write32(reg::STATUS, status::ACKNOWLEDGE);
    regs.write32(reg::STATUS, status::ACKNOWLEDGE | status::DRIVER);
    let mut offered = 0u64;
    for sel in 0..2 {
        regs.write32(reg::DEVICE_FEATURES_SEL, sel);
        offered |= (regs.read32(reg::DEVICE_FEATURES) as u64) << (32 * sel);
    }
    let features = offered & (wanted | F_VERSION_1);
    if features & F_VERSION_1 == 0 {
        fail(regs);
        return Err(ProbeError::Features(offered));
    }
    for sel in 0..2 {
        regs.write32(reg::DRIVER_FEATURES_SEL, sel);
        regs.write32(reg::DRIVER_FEATURES, (features >> (32 * sel)) as u32);
    }
    let s = status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK;
    regs.write32(reg::STATUS, s);
    if regs.read32(reg::STATUS) & status::FEATURES_OK == 0 {
        fail(regs);
        return Err(ProbeError::Features(offered));
    }
    Ok(features)
}

/// Sets DRIVER_OK (§3.1.1 step 8): the device is live.
pub fn driver_ok<R: MmioRegs>(regs: &R) {
    let s = regs.read32(reg::STATUS);
    regs.write32(reg::STATUS, s | status::DRIVER_OK);
}

/// Gives up on the device (§3.1.1: set FAILED).
pub fn fail<R: MmioRegs>(regs: &R) {
    let s = regs.read32(reg::STATUS);
    regs.write32(reg::STATUS, s | status::FAILED);
}

/// Reads `N` bytes of device configuration at `offset`, retrying while
/// ConfigGeneration changes under the read (§2.5.1, §4.2.2).
pub fn read_config<R: MmioRegs, const N: usize>(regs: &R, offset: usize) -> [u8; N] {
    loop {
        let before = regs.read32(reg::CONFIG_GENERATION);
        let mut out = [0u8; N];
        for (i, chunk) in out.chunks_mut(4).enumerate() {
            let v = regs.read32(reg::CONFIG + offset + 4 * i).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        if regs.read32(reg::CONFIG_GENERATION) == before {
            return out;
        }
    }
}

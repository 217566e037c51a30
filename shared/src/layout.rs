//! The guest-physical (IPA) memory map the hypervisor gives each VM.
//!
//! The guest learns all of this from the DTB the hypervisor generates; these
//! constants are the hypervisor's choice, kept here so that tests and docs
//! agree. The shape follows QEMU's `virt` machine so that stock Linux finds
//! nothing unusual.

/// Emulated GIC distributor.
pub const GICD_BASE: u64 = 0x0800_0000;
/// Size of the distributor frame.
pub const GICD_SIZE: u64 = 0x1_0000;
/// GICv2 CPU interface (backed by the physical GICV frame through stage-2).
pub const GICC_BASE: u64 = 0x0801_0000;
/// Size of the GICv2 CPU interface window.
pub const GICC_SIZE: u64 = 0x2000;
/// GICv3 redistributors, one 128 KiB frame pair per vCPU.
pub const GICR_BASE: u64 = 0x080A_0000;
/// Size of one redistributor (RD_base + SGI_base frames).
pub const GICR_STRIDE: u64 = 0x2_0000;
/// Emulated PL011 UART.
pub const UART_BASE: u64 = 0x0900_0000;
/// Size of the PL011 register window.
pub const UART_SIZE: u64 = 0x1000;
/// SPI number of the emulated UART (GIC INTID 32 + 1).
pub const UART_SPI: u32 = 1;
/// The vCPUs' stolen-time structures (`hvc::pv_time`), one page, read-only
/// for the guest: where QEMU's `virt` puts its own (VIRT_PVTIME).
pub const PVTIME_BASE: u64 = 0x090A_0000;
/// Size of the stolen-time window.
pub const PVTIME_SIZE: u64 = 0x1000;
/// First virtio-mmio transport (a VM's disks, `[[vm.disk]]`): where QEMU's
/// `virt` puts its own (VIRT_MMIO), so a guest sees the same layout natively
/// and as a VM.
pub const VIRTIO_BASE: u64 = 0x0a00_0000;
/// Bytes per virtio-mmio transport (QEMU `virt`'s 0x200).
pub const VIRTIO_STRIDE: u64 = 0x200;
/// Most virtio-mmio transports a VM has: one per disk, then one per
/// network card (`platform::MAX_DISKS + platform::MAX_NETS`).
pub const VIRTIO_COUNT: u64 = 8;
/// SPI number of transport 0 (GIC INTID 32 + 16); transport k has SPI 16 + k,
/// as on QEMU `virt` (edge-rising, `<0 16+k 1>`).
pub const VIRTIO_SPI: u32 = 16;
/// First shared-memory region (`[[shm]]`, docs/devices.md "Shared memory
/// and doorbell"): region i of the configuration is at `SHM_BASE + i *
/// SHM_STRIDE` in every VM that shares it. Where QEMU `virt` puts its PCIe
/// MMIO window (VIRT_PCIE_MMIO), which this hypervisor does not emulate.
pub const SHM_BASE: u64 = 0x1000_0000;
/// Guest-physical room per region: the largest region.
pub const SHM_STRIDE: u64 = 0x100_0000;
/// Most shared-memory regions in a configuration.
pub const SHM_COUNT: u64 = 4;
/// SPI number of region 0's doorbell (GIC INTID 32 + 24 = 56); region i
/// has SPI `SHM_SPI + i`, edge-rising, after the 8 virtio transports'.
pub const SHM_SPI: u32 = 24;
/// Default base of guest RAM.
pub const RAM_BASE: u64 = 0x4000_0000;

/// Architected timer PPIs (INTIDs 16 + n), as on QEMU virt and Linux's binding:
/// secure physical, non-secure physical, virtual, hypervisor.
pub const TIMER_PPIS: [u32; 4] = [13, 14, 11, 10];

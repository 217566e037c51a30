//! virtio-mmio on this machine: the transports' registers (volatile
//! accesses with Linux's `readl`/`writel` barriers), DMA memory from the
//! page allocator through the linear map, and the boot-time probe that
//! finds the disks (Linux `virtio_mmio_probe` → `virtblk_probe` →
//! `device_add_disk`, whose partition scan reads sector 0). The pure
//! drivers: [`crate::virtio`], [`crate::block::virtio_blk`].

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{Ordering, compiler_fence};

use super::cpu::smp_processor_id;
use super::memory::with_pages;
use super::mmu::phys_to_virt;
use crate::block::virtio_blk::{DMA_BYTES, VirtioBlk};
use crate::block::{self, BlockDevice, SECTOR_SIZE, Units};
use crate::mm::gfp::Gfp;
use crate::mm::page::{PAGE_SIZE, pfn_to_phys};
use crate::sync::SpinLock;
use crate::virtio::{self, DmaBuf, MmioRegs};
use shared::platform::Platform;

/// One transport's register window, mapped Device-nGnRE at its linear-map
/// address by `mmu::init`.
pub struct Mmio {
    va: usize,
}

impl MmioRegs for Mmio {
    fn read32(&self, offset: usize) -> u32 {
        assert!(offset < 0x200 && offset.is_multiple_of(4));
        // SAFETY: `va` is the mapped window of a virtio,mmio node of the
        // DTB (0x200 bytes, checked above); a 32-bit aligned read of a
        // device register has no effect on memory.
        let v = unsafe { core::ptr::read_volatile((self.va + offset) as *const u32) };
        // __iormb: the register read before later reads of DMA memory.
        aarch64_cpu::asm::barrier::dmb(aarch64_cpu::asm::barrier::OSHLD);
        v
    }
    fn write32(&self, offset: usize, value: u32) {
        assert!(offset < 0x200 && offset.is_multiple_of(4));
        // __iowmb: earlier writes to DMA memory (the rings) before the
        // register write that tells the device about them.
        aarch64_cpu::asm::barrier::dmb(aarch64_cpu::asm::barrier::OSHST);
        // SAFETY: as for `read32`; the device reacts to the write, not
        // our memory.
        unsafe { core::ptr::write_volatile((self.va + offset) as *mut u32, value) };
    }
}

/// Physically contiguous memory the kernel shares with a device: a block
/// of `2^order` pages from the buddy allocator, reached through the
/// linear map (Normal cacheable, which a device behind our hypervisor or
/// QEMU sees coherently: the `dma-coherent` of the DTB nodes).
pub struct LinearDma {
    va: usize,
    pa: u64,
    len: usize,
}

impl LinearDma {
    /// Zeroed DMA memory of at least `bytes`, or `None` when memory is short.
    fn alloc(bytes: usize) -> Option<Self> {
        let order = bytes.div_ceil(PAGE_SIZE).next_power_of_two().trailing_zeros() as usize;
        let pfn = with_pages(|pa| pa.alloc_pages(Gfp::GFP_KERNEL | Gfp::__GFP_ZERO, order, smp_processor_id()))?;
        let pa = pfn_to_phys(pfn) as u64;
        Some(LinearDma { va: phys_to_virt(pa), pa, len: PAGE_SIZE << order })
    }
}

impl DmaBuf for LinearDma {
    fn phys(&self) -> u64 {
        self.pa
    }
    fn size(&self) -> usize {
        self.len
    }
    fn read(&self, offset: usize, buf: &mut [u8]) {
        assert!(offset.checked_add(buf.len()).is_some_and(|end| end <= self.len));
        compiler_fence(Ordering::SeqCst);
        let base = self.va + offset;
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: inside the block (checked above), which this driver
            // owns until the kernel stops; the device may write it
            // concurrently, so the bytes are read volatile.
            *b = unsafe { core::ptr::read_volatile((base + i) as *const u8) };
        }
    }
    fn write(&self, offset: usize, data: &[u8]) {
        assert!(offset.checked_add(data.len()).is_some_and(|end| end <= self.len));
        let base = self.va + offset;
        for (i, &b) in data.iter().enumerate() {
            // SAFETY: as for `read`: inside the driver's own block.
            unsafe { core::ptr::write_volatile((base + i) as *mut u8, b) };
        }
        compiler_fence(Ordering::SeqCst);
    }
    fn read_u16(&self, offset: usize) -> u16 {
        assert!(offset.is_multiple_of(2) && offset + 2 <= self.len);
        // SAFETY: an aligned u16 inside the block: single-copy atomic, as
        // ring indexes must be read (virtio 1.2 §2.7.13).
        u16::from_le(unsafe { core::ptr::read_volatile((self.va + offset) as *const u16) })
    }
    fn write_u16(&self, offset: usize, v: u16) {
        assert!(offset.is_multiple_of(2) && offset + 2 <= self.len);
        // SAFETY: as for `read_u16`.
        unsafe { core::ptr::write_volatile((self.va + offset) as *mut u16, v.to_le()) };
    }
    fn wmb(&self) {
        aarch64_cpu::asm::barrier::dmb(aarch64_cpu::asm::barrier::OSHST);
    }
    fn rmb(&self) {
        aarch64_cpu::asm::barrier::dmb(aarch64_cpu::asm::barrier::OSHLD);
    }
    fn mb(&self) {
        aarch64_cpu::asm::barrier::dmb(aarch64_cpu::asm::barrier::OSH);
    }
}

/// A disk found at boot.
pub struct Disk {
    pub name: String,
    pub dev: VirtioBlk<Mmio, LinearDma>,
}

/// The disks, in the order they were found (vda first).
pub static DISKS: SpinLock<Vec<Disk>> = SpinLock::new(&crate::sync::BLOCK, Vec::new());

/// Probes every virtio-mmio transport of the DTB and brings up the block
/// devices, printing what Linux prints for them:
/// `virtio_blk virtio0: [vda] 2048 512-byte logical blocks (1.05 MB/1.00 MiB)`
/// and the partition scan's ` vda: vda1 vda2`. Other device types are
/// left alone; a transport that fails is reported and skipped.
pub fn probe_all(platform: &Platform) {
    let mut disks = DISKS.lock();
    // Devices are numbered virtio0, virtio1, ... as they are found; an
    // empty transport (DeviceID 0) is not a device (`virtio_mmio_probe`).
    let mut next = 0;
    for t in platform.virtio_mmio.iter() {
        let regs = Mmio { va: phys_to_virt(t.region.base) };
        let id = match virtio::device_id(&regs) {
            Ok(Some(id)) => id,
            Ok(None) => continue,
            Err(e) => {
                crate::println!("virtio-mmio {:#x}: {e}", t.region.base);
                continue;
            }
        };
        let n = next;
        next += 1;
        if id != virtio::ID_BLOCK {
            continue;
        }
        let Some(mem) = LinearDma::alloc(DMA_BYTES) else {
            crate::println!("virtio_blk virtio{n}: no memory for the queue");
            continue;
        };
        let mut blk = match VirtioBlk::probe(regs, mem) {
            Ok(b) => b,
            Err(e) => {
                // The DMA block is leaked: the device may still hold it.
                crate::println!("virtio_blk virtio{n}: {e}");
                continue;
            }
        };
        let name = block::disk_name("vd", disks.len());
        let sectors = blk.sectors();
        crate::println!(
            "virtio_blk virtio{n}: [{name}] {sectors} 512-byte logical blocks ({}/{})",
            block::string_get_size(sectors, SECTOR_SIZE as u64, Units::Decimal),
            block::string_get_size(sectors, SECTOR_SIZE as u64, Units::Binary),
        );
        let mut sector0 = [0u8; SECTOR_SIZE];
        if sectors > 0 {
            match blk.read(0, &mut sector0) {
                Ok(()) => {
                    if let Some(line) = block::partition_line(&name, &block::msdos_partitions(&sector0)) {
                        crate::println!("{line}");
                    }
                }
                Err(e) => crate::println!(" {name}: unable to read partition table ({e:?})"),
            }
        }
        disks.push(Disk { name, dev: blk });
    }
}

//! A VM's virtio-blk disks (`[[vm.disk]]`, docs/devices.md): the glue
//! between the VM's MMIO bus and the pure virtio cores of `crate::virtio`.
//!
//! Disk k is virtio-mmio transport k at `layout::VIRTIO_BASE + k *
//! VIRTIO_STRIDE` with SPI `VIRTIO_SPI + k` (QEMU `virt`'s layout). A
//! trapped access goes to [`VirtioDisk`] (a `devices::Device::Virtio`),
//! which takes the disk's lock and forwards it to [`VirtioMmio`]; a write
//! of QueueNotify is served at once, on the vCPU that trapped, with the
//! VM's RAM as a [`GuestMemory`] ([`VmRam`]); after every access the SPI
//! follows [`VirtioMmio::irq_level`] in the vGIC. The disk image is the
//! host copy loaded by the boot loader, used in place: what the guest
//! writes stays there across a VM reset (PSCI SYSTEM_RESET), which resets
//! only the transport (`MmioDevice::reset`).

use super::guestram;
use crate::mmio::bus::{MmioDevice, MmioError};
use crate::sync::{self, Mutex};
use crate::virtio::blk::{Blk, ID_BYTES};
use crate::virtio::mmio::{Effect, VirtioMmio};
use crate::virtio::{GuestMemory, OutsideRam, ram_offset};
use crate::vm::Vm;
use shared::layout;
use shared::platform::Disk;

/// Most batches (each at most a queue size of requests, `VirtioMmio::notify`)
/// one trapped access serves. A driver that keeps making requests available
/// while they are served has the rest served at its next access to the
/// device (Linux reads InterruptStatus when the used-buffer interrupt
/// comes), so that it cannot hold the physical CPU.
const BATCHES_PER_ACCESS: usize = 4;

/// One disk: its transport and the level its SPI was last driven to.
struct DiskState {
    mmio: VirtioMmio<Blk<'static>>,
    /// The level the SPI was last driven to in the vGIC (this lock is held
    /// meanwhile, so it is the vGIC's line level).
    line_driven: bool,
    /// A queue whose notification was not fully served (see
    /// [`BATCHES_PER_ACCESS`]).
    pending: Option<u16>,
    /// DEVICE_NEEDS_RESET was reported for this device life.
    reported: bool,
}

/// Disk `index` of a VM, on its MMIO bus.
pub struct VirtioDisk {
    index: usize,
    state: Mutex<DiskState>,
}

impl VirtioDisk {
    /// Disk `index` over the image `disk` describes, for VM `name`.
    ///
    /// # Safety
    /// `disk.region` must be host RAM that boot reserved for this image (the
    /// frame allocator never hands it out), identity mapped at EL2, and that
    /// nothing else uses for as long as the VM lives: `vmspec` refuses a
    /// disk that shares a byte with any other image.
    pub unsafe fn new(name: &str, index: usize, disk: &Disk) -> Self {
        // SAFETY: guaranteed by the caller.
        let bytes = unsafe { core::slice::from_raw_parts_mut(disk.region.base as *mut u8, disk.region.size as usize) };
        // GET_ID (§5.2.6): "<vm>-disk<k>", NUL-padded.
        let mut id = [0u8; ID_BYTES];
        let text = alloc::format!("{name}-disk{index}");
        let n = text.len().min(ID_BYTES);
        id[..n].copy_from_slice(&text.as_bytes()[..n]);
        let state = DiskState {
            mmio: VirtioMmio::new(Blk::new(bytes, disk.readonly, id)),
            line_driven: false,
            pending: None,
            reported: false,
        };
        Self { index, state: Mutex::ranked(sync::VIRTIO, state) }
    }

    /// The disk's transport window (guest-physical base).
    pub fn base(index: usize) -> u64 {
        layout::VIRTIO_BASE + index as u64 * layout::VIRTIO_STRIDE
    }

    /// The GIC INTID of disk `index`'s SPI.
    pub fn intid(index: usize) -> u32 {
        32 + layout::VIRTIO_SPI + index as u32
    }

    /// Serves queue `queue` after its notification (virtio 1.2 §4.2.3.3,
    /// QueueNotify) for up to [`BATCHES_PER_ACCESS`] batches with the VM's
    /// RAM; what is left waits in `pending`.
    fn serve(&self, vm: &Vm, s: &mut DiskState, queue: u16) {
        let mut ram = VmRam::new(vm);
        for _ in 0..BATCHES_PER_ACCESS {
            if !s.mmio.notify(queue, &mut ram).more {
                s.pending = None;
                return;
            }
        }
        s.pending = Some(queue);
    }

    /// After an access: the report of a broken rule (once per device life,
    /// §2.1.2 DEVICE_NEEDS_RESET) and the SPI driven to the transport's
    /// level (§4.2.2, InterruptStatus). The vGIC sees a rising edge when
    /// InterruptStatus goes from 0 to non-zero (the line is edge-rising in
    /// the guest's DTB, as on QEMU `virt`); InterruptACK lowers it.
    fn after(&self, vm: &Vm, s: &mut DiskState, vcpu: usize) -> bool {
        if let (Some(why), false) = (s.mmio.error(), s.reported) {
            s.reported = true;
            super::vmops::report(
                vm,
                vcpu,
                format_args!("disk[{}]: the driver broke a virtio rule ({why:?}): DEVICE_NEEDS_RESET", self.index),
            );
        }
        let level = s.mmio.irq_level();
        if level == s.line_driven {
            return false;
        }
        let _ = vm.vgic.lock().set_level(vcpu, Self::intid(self.index), level);
        s.line_driven = level;
        true
    }
}

/// The transport's register window (§4.2.2): loads and stores go to
/// [`VirtioMmio`] under the disk's lock.
impl MmioDevice<Vm> for VirtioDisk {
    fn read(&self, vm: &Vm, vcpu: usize, offset: u64, size: u8) -> Result<u64, MmioError> {
        let mut s = self.state.lock();
        if let Some(q) = s.pending {
            self.serve(vm, &mut s, q);
        }
        let r = s.mmio.read(offset, size);
        let changed = self.after(vm, &mut s, vcpu);
        drop(s);
        if changed {
            vm.flush_kicks(Some(vcpu));
        }
        r
    }

    fn write(&self, vm: &Vm, vcpu: usize, offset: u64, size: u8, value: u64) -> Result<(), MmioError> {
        let mut s = self.state.lock();
        if let Some(q) = s.pending {
            self.serve(vm, &mut s, q);
        }
        let r = s.mmio.write(offset, size, value);
        match r {
            Ok(Effect::QueueNotify(q)) => self.serve(vm, &mut s, q),
            Ok(Effect::Reset) => {
                s.pending = None;
                s.reported = false;
            }
            _ => {}
        }
        let changed = self.after(vm, &mut s, vcpu);
        drop(s);
        if changed {
            vm.flush_kicks(Some(vcpu));
        }
        r.map(|_| ())
    }

    /// The transport back to its reset state (a VM reset); the disk's bytes
    /// stay. The line is lowered in the vGIC (a fresh one after its own
    /// reset, whichever comes first).
    fn reset(&self, vm: &Vm) {
        let mut s = self.state.lock();
        s.mmio.reset();
        s.pending = None;
        s.reported = false;
        let _ = vm.vgic.lock().set_level(0, Self::intid(self.index), false);
        s.line_driven = false;
    }

    fn irq(&self) -> Option<u32> {
        Some(Self::intid(self.index))
    }
}

/// A VM's RAM as the virtio cores see it ([`GuestMemory`]; the rings and
/// buffers of §2.7): accesses outside it are refused ([`ram_offset`]); a block the guest has not
/// touched yet is filled and mapped first (`guestram::ensure_filled`).
/// Lives for one trapped access: the blocks it found filled stay so until
/// the next VM reset, which waits for every vCPU to leave the guest.
pub struct VmRam<'a> {
    vm: &'a Vm,
    ram: crate::guestram::GuestRam,
    /// Blocks (their first IPA) known to be filled, most recent first.
    filled: [u64; 4],
}

impl<'a> VmRam<'a> {
    /// The RAM of `vm`.
    pub fn new(vm: &'a Vm) -> Self {
        Self { vm, ram: vm.ram(), filled: [u64::MAX; 4] }
    }

    /// The host address of `[addr, addr + len)`, every block of it filled.
    fn host(&mut self, addr: u64, len: usize) -> Result<u64, OutsideRam> {
        let outside = OutsideRam { addr, len: len as u64 };
        let off = ram_offset(&self.ram, addr, len as u64).ok_or(outside)?;
        let end = addr + len as u64;
        let ram = self.ram;
        for block in ram.blocks(addr..end) {
            if self.filled.contains(&block.start) {
                continue;
            }
            // Only a range stage 2 cannot map fails, and the VM's RAM was
            // checked when it was built: refuse the access rather than panic.
            guestram::ensure_filled(self.vm, block.clone()).map_err(|_| outside)?;
            self.filled.rotate_right(1);
            self.filled[0] = block.start;
        }
        Ok(self.ram.host + off)
    }
}

impl GuestMemory for VmRam<'_> {
    fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), OutsideRam> {
        let host = self.host(addr, buf.len())?;
        // SAFETY: `host` is the host address of a range wholly inside this
        // VM's RAM (`ram_offset`), which `build_vm` allocated for it alone
        // and EL2 maps as normal memory; `buf` is ours. The guest may write
        // the bytes meanwhile: they are plain data, copied once and
        // validated by the cores after the copy.
        unsafe { core::ptr::copy_nonoverlapping(host as *const u8, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), OutsideRam> {
        let host = self.host(addr, data.len())?;
        // SAFETY: as in `read`; the range is this VM's RAM, so the write
        // reaches nothing of another VM or of the hypervisor.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), host as *mut u8, data.len()) };
        Ok(())
    }

    fn contains(&self, addr: u64, len: u64) -> bool {
        ram_offset(&self.ram, addr, len).is_some()
    }
}

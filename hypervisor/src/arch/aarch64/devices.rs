//! A VM's emulated devices on its MMIO bus ([`crate::mmio::bus`]): the
//! vPL011, behind the VM's console lock, the vGIC's distributor and
//! GICv3 redistributors, behind the vGIC lock, and its virtio-blk disks,
//! each behind its own lock (`vdisk`). Each is one registered device;
//! [`emulate_mmio`] is a bus dispatch.
//!
//! The GICv2 CPU interface and pass-through registers are not on the bus:
//! they are mapped in stage 2 (`vmm::build_vm`, `passthrough::map`) and
//! never trap, and the configuration already refuses a pass-through range
//! over an emulated one (`vmspec`, "overlaps the guest ... window").

use super::passthrough;
use super::vdisk::VirtioDisk;
use super::vnet::VirtioNet;
use crate::mmio::MmioAccess;
use crate::mmio::bus::{AccessError, MmioBus, MmioDevice, MmioError, RegisterError};
use crate::vcpu::GuestRegs;
use crate::vgic::{FixedRegs, Frame, GICD_FRAME_SIZE, GICR_FRAME_SIZE, GicVersion, Vgic};
use crate::vm::{Vm, VmConsole};
use crate::vpl011;
use core::sync::atomic::Ordering;
use shared::layout;

/// The bus of a VM with `nr_vcpus` vCPUs that sees GIC `gic`, a console
/// if `console`, and `disks`: the vPL011, the distributor, one
/// redistributor per vCPU (GICv3), disk k's virtio-mmio transport. In that
/// order, the most used first (the bus scans a few devices in registration
/// order): the console takes a trapped write per byte the guest prints;
/// the distributor takes GICv2 SGIs.
pub fn bus(
    vgic: &Vgic,
    console: bool,
    disks: impl IntoIterator<Item = VirtioDisk>,
    nets: &[VirtioNet],
) -> Result<MmioBus<Vm, Device>, RegisterError> {
    let mut bus = MmioBus::new();
    if console {
        bus.register(layout::UART_BASE, layout::UART_SIZE, "PL011", Device::Uart(Uart))?;
    }
    bus.register(
        layout::GICD_BASE,
        GICD_FRAME_SIZE,
        "GIC distributor",
        Device::Vgic(VgicFrame::new(vgic, Frame::Dist)),
    )?;
    if vgic.version() == GicVersion::V3 {
        for n in 0..vgic.nr_vcpus() {
            let base = layout::GICR_BASE + n as u64 * GICR_FRAME_SIZE;
            let frame = VgicFrame::new(vgic, Frame::Redist(n));
            bus.register(base, GICR_FRAME_SIZE, "GIC redistributor", Device::Vgic(frame))?;
        }
    }
    for (k, disk) in disks.into_iter().enumerate() {
        bus.register(VirtioDisk::base(k), layout::VIRTIO_STRIDE, "virtio-blk", Device::Virtio(disk))?;
    }
    for (k, net) in nets.iter().enumerate() {
        bus.register(net.base(), layout::VIRTIO_STRIDE, "virtio-net", Device::Net(k))?;
    }
    Ok(bus)
}

/// A device of a VM's bus. An enum rather than a `Box<dyn MmioDevice>`
/// so that the trap fast path inlines the dispatch: the virtual call cost
/// 12 to 14 instructions per MMIO read (`scripts/bench`).
pub enum Device {
    Uart(Uart),
    Vgic(VgicFrame),
    Virtio(VirtioDisk),
    /// Network card k of the VM (`Vm::nets`, which a switch's other ports
    /// reach too).
    Net(usize),
}

impl Device {
    /// A read that takes no lock and changes nothing: the vPL011's flag
    /// register, a vGIC word that never changes. None: the device's full
    /// `read` must run. The trap fast path tries this first, inline, so
    /// that these reads do not pay for the locked paths' registers.
    #[inline(always)]
    pub fn read_lockfree(&self, vm: &Vm, offset: u64, size: u8) -> Option<u64> {
        match self {
            Device::Uart(_) => Uart::read_fr(vm, offset, size),
            Device::Vgic(d) => d.fixed.read(offset, size),
            Device::Virtio(_) | Device::Net(_) => None,
        }
    }
}

impl MmioDevice<Vm> for Device {
    #[inline(always)]
    fn read(&self, vm: &Vm, vcpu: usize, offset: u64, size: u8) -> Result<u64, MmioError> {
        match self {
            Device::Uart(d) => d.read(vm, vcpu, offset, size),
            Device::Vgic(d) => d.read(vm, vcpu, offset, size),
            Device::Virtio(d) => d.read(vm, vcpu, offset, size),
            Device::Net(k) => {
                vm.nets.get(*k).map_or(Err(MmioError::OutOfRange { offset }), |d| d.read(vm, vcpu, offset, size))
            }
        }
    }

    #[inline(always)]
    fn write(&self, vm: &Vm, vcpu: usize, offset: u64, size: u8, value: u64) -> Result<(), MmioError> {
        match self {
            Device::Uart(d) => d.write(vm, vcpu, offset, size, value),
            Device::Vgic(d) => d.write(vm, vcpu, offset, size, value),
            Device::Virtio(d) => d.write(vm, vcpu, offset, size, value),
            Device::Net(k) => vm
                .nets
                .get(*k)
                .map_or(Err(MmioError::OutOfRange { offset }), |d| d.write(vm, vcpu, offset, size, value)),
        }
    }

    fn reset(&self, vm: &Vm) {
        match self {
            Device::Uart(d) => d.reset(vm),
            Device::Vgic(d) => d.reset(vm),
            Device::Virtio(d) => d.reset(vm),
            Device::Net(k) => vm.nets.get(*k).into_iter().for_each(|d| d.reset(vm)),
        }
    }

    fn irq(&self) -> Option<u32> {
        match self {
            Device::Uart(d) => d.irq(),
            Device::Vgic(d) => d.irq(),
            Device::Virtio(d) => d.irq(),
            // The card's SPI: transport `disks + k`; not needed by the bus
            // (its users ask the card).
            Device::Net(_) => None,
        }
    }
}

/// The vPL011 (`crate::vpl011`): its model lives in the VM's console.
pub struct Uart;

impl Uart {
    /// Drives the UART's interrupt line to the model's level, with the
    /// console `c` of `vm` locked: the vGIC's lock is taken only when the
    /// level changes (`VmConsole::line_driven`; most accesses leave it as
    /// it was, and looking at the vGIC's level under its lock was 21 of a
    /// flag register read's 364 instructions), and only a changed line is
    /// a vGIC change (the run loop rescans the vGIC after changes).
    /// Inline: the comparison is on every UART access, the change rare.
    #[inline(always)]
    pub fn drive_line(vm: &Vm, c: &mut VmConsole, vcpu: usize) {
        let level = c.uart.irq_level();
        if level != c.line_driven {
            Self::change_line(vm, c, vcpu, level);
        }
    }

    /// Publishes the flag register for reads without the lock
    /// (`Vm::uart_fr`); called with the console locked after anything
    /// that may change it.
    #[inline(always)]
    pub fn publish(vm: &Vm, c: &VmConsole) {
        vm.uart_fr.store(c.uart.flags(), Ordering::Release);
    }

    /// A 32-bit read of FR: the published copy, no lock (a read of FR
    /// changes nothing). None for any other access.
    #[inline(always)]
    pub fn read_fr(vm: &Vm, offset: u64, size: u8) -> Option<u64> {
        (offset == vpl011::reg::FR && size == 4).then(|| u64::from(vm.uart_fr.load(Ordering::Acquire)))
    }

    /// [`Uart::drive_line`] when the level changed.
    #[inline(never)]
    fn change_line(vm: &Vm, c: &mut VmConsole, vcpu: usize, level: bool) {
        let _ = vm.vgic.lock().set_level(vcpu, 32 + layout::UART_SPI, level);
        c.line_driven = level;
    }
}

impl MmioDevice<Vm> for Uart {
    #[inline(always)]
    fn read(&self, vm: &Vm, vcpu: usize, offset: u64, size: u8) -> Result<u64, MmioError> {
        if let Some(fr) = Self::read_fr(vm, offset, size) {
            return Ok(fr);
        }
        let mut c = vm.console.lock();
        let r = c.uart.mmio_read(offset, size).map(u64::from);
        c.refill();
        Self::drive_line(vm, &mut c, vcpu);
        Self::publish(vm, &c);
        r
    }

    fn write(&self, vm: &Vm, vcpu: usize, offset: u64, size: u8, value: u64) -> Result<(), MmioError> {
        let mut c = vm.console.lock();
        let r = c.uart.mmio_write(offset, size, value).map(|byte| {
            if let Some(byte) = byte {
                c.output(&vm.name, vcpu, byte);
            }
        });
        Self::drive_line(vm, &mut c, vcpu);
        Self::publish(vm, &c);
        r
    }

    /// Nothing: the console, and the PL011 model with it, outlives a VM
    /// reset, so that typed bytes still queued for the guest are not lost
    /// (a booting kernel programs the registers it uses).
    fn reset(&self, _: &Vm) {}

    fn irq(&self) -> Option<u32> {
        Some(32 + layout::UART_SPI)
    }
}

/// One register frame of the vGIC (`crate::vgic`): the distributor or a
/// redistributor, and the words of it that never change.
pub struct VgicFrame {
    frame: Frame,
    fixed: FixedRegs,
}

impl VgicFrame {
    /// Frame `frame` of `vgic` (the VM's, before it is locked away).
    fn new(vgic: &Vgic, frame: Frame) -> Self {
        Self { frame, fixed: vgic.fixed_regs(frame) }
    }
}

impl MmioDevice<Vm> for VgicFrame {
    #[inline(always)]
    fn read(&self, vm: &Vm, vcpu: usize, offset: u64, size: u8) -> Result<u64, MmioError> {
        // GICD_TYPER, GICR_TYPER, the IIDRs: no lock, no model (issue 19:
        // they were 80 of a GICD_TYPER read's 330 instructions).
        if let Some(value) = self.fixed.read(offset, size) {
            return Ok(value);
        }
        // A read borrows the vGIC immutably, so it is not a vGIC change
        // and the next entry skips the scan of every interrupt
        // (`sync::CountedMutex`): that scan was ~3,900 of a GICD read's
        // ~4,500 instructions.
        vm.vgic.lock().mmio_read(vcpu, self.frame, offset, size)
    }

    fn write(&self, vm: &Vm, vcpu: usize, offset: u64, size: u8, value: u64) -> Result<(), MmioError> {
        let mut g = vm.vgic.lock();
        let r = g.mmio_write(vcpu, self.frame, offset, size, value);
        let kicks = g.take_kicks();
        drop(g);
        if !kicks.is_empty() {
            vm.kick(kicks, Some(vcpu));
        }
        r
    }

    /// The distributor's reset is the whole vGIC's (one model behind all
    /// frames): a fresh vGIC with the pass-through SPIs mapped and enabled
    /// again (`passthrough::reset`). The redistributors' is part of it.
    fn reset(&self, vm: &Vm) {
        if self.frame != Frame::Dist {
            return;
        }
        let mut fresh = vm.vgic.lock().reset_state();
        passthrough::reset(vm, &mut fresh);
        // The fresh vGIC's UART line is low: it is driven again to the
        // PL011's level (which outlives the reset), under the console's
        // lock so that `line_driven` stays the vGIC's.
        let mut c = vm.console.lock();
        *vm.vgic.lock() = fresh;
        c.line_driven = false;
        Uart::drive_line(vm, &mut c, 0);
    }

    fn irq(&self) -> Option<u32> {
        None
    }
}

/// The device side of an MMIO access: a dispatch on the VM's bus
/// (this file's [`bus`]). The value a load reads (0 for a store), or why the access
/// is refused, having changed nothing. Also the fast path's
/// (`fastpath.rs`).
#[inline(always)]
pub fn emulate_mmio(vm: &Vm, vcpu: usize, regs: &GuestRegs, a: &MmioAccess) -> Result<u64, AccessError> {
    if a.write {
        vm.bus.write(vm, vcpu, a.ipa, a.size, a.store_value(&regs.x)).map(|()| 0)
    } else {
        vm.bus.read(vm, vcpu, a.ipa, a.size)
    }
}

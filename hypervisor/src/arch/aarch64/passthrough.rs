//! Pass-through devices (docs/vm-config.md "Pass-through devices"): their
//! registers mapped into the VM's stage 2 as Device-nGnRE memory, their
//! node in the guest DTB, and their interrupts forwarded.
//!
//! A pass-through SPI is the VM's, not the hypervisor's: it is routed to
//! the physical CPU of the vCPU the guest routes it to; when it fires the
//! hypervisor only drops the running priority (the CPU interfaces run with
//! EOImode = 1, `gic.rs`) and makes the virtual interrupt pending with the
//! hardware bit and the physical INTID in its list register (`vgic::map_hw`;
//! GICv3 ICH_LR<n>_EL2.HW/pINTID, IHI 0069 §12.4.6; GICv2 GICH_LR<n>.HW,
//! IHI 0048B §5.3.8). The guest's EOI (or DIR) of the virtual interrupt then
//! deactivates the physical one (IHI 0069 §4.1.3), which cannot fire again
//! until then — so a level-sensitive device is not re-signalled before its
//! driver has cleared it, and the hypervisor never has to know the line.

use super::{gic, smp};
use crate::fdtgen::GuestDevice;
use crate::mm::stage2::MapKind;
use crate::vgic::{self, Vgic};
use crate::vm::{self, Vm};
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU8, Ordering};
use shared::platform::{DeviceMatch, VmSpec, find_device};

/// GIC binding flags of a level-high interrupt (the default when the
/// machine's DTB does not describe the device).
const IRQ_TYPE_LEVEL_HIGH: u32 = 4;
/// Edge-triggered flags (rising or falling).
const IRQ_TYPE_EDGE_BOTH: u32 = 3;

/// The physical CPU each SPI is routed to, +1 (0: not routed yet).
static ROUTE: [AtomicU8; 1020] = [const { AtomicU8::new(0) }; 1020];

/// The guest's view of a VM's pass-through devices: where the VM sees
/// them, what the machine's DTB says they are (`compatible`, trigger
/// flags, a few one-cell properties), and their INTIDs.
pub fn guest_devices(spec: &VmSpec, host_dtb: Option<&[u8]>) -> Vec<GuestDevice> {
    let mut out = Vec::new();
    for d in spec.passthrough.iter() {
        let host = host_dtb.and_then(|b| find_device(b, DeviceMatch::RegBase(d.region.base)).ok().flatten());
        let mut dev = GuestDevice { base: d.guest_base, size: d.region.size, ..Default::default() };
        if let Some(h) = host.as_ref() {
            dev.compatible = h.compatible.iter().map(|c| String::from(c.as_str())).collect();
            dev.props = h.props.iter().copied().collect();
        }
        for &intid in d.interrupts.iter() {
            // The machine's flags for this SPI (GIC binding: type 0, SPI
            // number, flags), if the node lists it.
            let flags = host
                .as_ref()
                .and_then(|h| {
                    h.interrupts.chunks_exact(3).find(|c| c[0] == 0 && c[1] + 32 == intid).map(|c| c[2] & 0xf)
                })
                .unwrap_or(IRQ_TYPE_LEVEL_HIGH);
            dev.interrupts.push((intid, flags));
        }
        out.push(dev);
    }
    out
}

/// How many SPIs the VM's vGIC needs: 64 (the emulated UART's and room
/// for the guest's own use), or up to its highest pass-through INTID.
pub fn nr_spis(spec: &VmSpec) -> usize {
    let highest =
        spec.passthrough.iter().flat_map(|d| d.interrupts.iter()).map(|&i| (i as usize).saturating_sub(31)).max();
    highest.unwrap_or(0).max(64)
}

/// Maps a VM's pass-through registers into its stage 2, as device memory.
pub fn map(vm: &Vm) -> Result<(), String> {
    let mut s2 = vm.stage2.lock();
    for (i, d) in vm.spec.passthrough.iter().enumerate() {
        s2.map(d.guest_base, d.region.base, d.region.size, MapKind::Device)
            .map_err(|e| alloc::format!("passthrough[{i}].reg: {e}"))?;
    }
    Ok(())
}

/// Marks the VM's pass-through INTIDs hardware-backed in its (new) vGIC.
pub fn map_hw(vm: &Vm, vgic: &mut Vgic) {
    for d in vm.devices.iter() {
        for &(intid, _) in d.interrupts.iter() {
            let _ = vgic.map_hw(0, intid, Some(intid));
        }
    }
}

/// The vCPU an SPI is routed to in the vGIC (GICv3 IROUTER Aff0, GICv2
/// the lowest ITARGETSR bit), if any.
fn vgic_target(vgic: &Vgic, intid: u32) -> Option<usize> {
    let irq = vgic.irq_state(0, intid)?;
    let target = match vgic.version() {
        vgic::GicVersion::V3 => (irq.route & !0xff == 0).then_some((irq.route & 0xff) as usize),
        vgic::GicVersion::V2 => (irq.targets != 0).then_some(irq.targets.trailing_zeros() as usize),
    };
    target.filter(|&t| t < vgic.nr_vcpus())
}

/// Routes SPI `intid` to physical CPU `cpu` unless it already is.
fn route(intid: u32, cpu: usize) {
    if let Some(r) = ROUTE.get(intid as usize)
        && r.swap(cpu as u8 + 1, Ordering::AcqRel) != cpu as u8 + 1
    {
        gic::route_spi(intid, cpu);
    }
}

/// Configures, routes and enables every VM's pass-through SPIs in the
/// physical GIC (once the vCPUs have physical CPUs).
pub fn enable_all() {
    for vm in vm::vms() {
        for d in vm.devices.iter() {
            for &(intid, flags) in d.interrupts.iter() {
                gic::set_spi_trigger(intid, flags & IRQ_TYPE_EDGE_BOTH != 0);
                let target = vgic_target(&vm.vgic.lock(), intid).unwrap_or(0);
                route(intid, vm.vcpu_pcpu[target].load(Ordering::Relaxed));
                gic::enable_spi_routed(intid);
            }
        }
    }
}

/// The VM that owns pass-through INTID `intid`.
fn owner(intid: u32) -> Option<&'static Vm> {
    vm::vms().iter().find(|vm| vm.devices.iter().any(|d| d.interrupts.iter().any(|&(i, _)| i == intid)))
}

/// Forwards an acknowledged physical interrupt if it is a pass-through
/// one: priority drop only, the virtual interrupt pending (HW-mapped) in
/// its VM, that VM's target vCPU kicked. `running` is the VM and vCPU this
/// CPU runs (if any). Returns None for any other interrupt, else whether
/// the running vCPU should give the CPU up because the target vCPU waits
/// on this same CPU.
pub fn forward(raw: u32, running: Option<(usize, usize)>) -> Option<bool> {
    let intid = gic::intid_of(raw);
    if !(32..1020).contains(&intid) {
        return None;
    }
    let vm = owner(intid)?;
    gic::priority_drop(raw);
    if vm.stopped.load(Ordering::Acquire) {
        gic::disable_and_deactivate_spi(intid);
        return Some(false);
    }
    let (kicks, target) = {
        let mut g = vm.vgic.lock();
        let _ = g.inject(0, intid);
        (g.take_kicks(), vgic_target(&g, intid))
    };
    // Follow the guest's routing for the next one (the physical CPU of
    // the vCPU the guest routes it to).
    if let Some(t) = target {
        route(intid, vm.vcpu_pcpu[t].load(Ordering::Relaxed));
    }
    let here = smp::cpu_index();
    let mut give_way = false;
    for t in kicks.iter() {
        let p = vm.vcpu_pcpu[t].load(Ordering::Relaxed);
        if p != here {
            gic::kick(p, smp::cpu_mpidr(p));
        } else if running != Some((vm.id, t)) {
            give_way = true;
        }
    }
    Some(give_way)
}

/// A VM stops for good: its SPIs are disabled and any left active by the
/// guest deactivated, so that they cannot fire into nobody.
pub fn release(vm: &Vm) {
    for d in vm.devices.iter() {
        for &(intid, _) in d.interrupts.iter() {
            gic::disable_and_deactivate_spi(intid);
        }
    }
}

/// A VM is reset: an SPI the old guest acknowledged but never deactivated
/// is deactivated (the new guest could never receive it again), the new
/// vGIC gets the hardware mappings, and the SPIs are enabled again.
pub fn reset(vm: &Vm, vgic: &mut Vgic) {
    release(vm);
    map_hw(vm, vgic);
    for d in vm.devices.iter() {
        for &(intid, _) in d.interrupts.iter() {
            gic::enable_spi_routed(intid);
        }
    }
}

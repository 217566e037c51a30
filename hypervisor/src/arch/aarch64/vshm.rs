//! Shared memory and doorbells between VMs (`[[shm]]`, docs/devices.md):
//! the glue of the pure `crate::shm`.
//!
//! At boot each valid region gets zeroed pages of hypervisor memory (the
//! frame allocator, never a VM's RAM), once for the machine's life: a
//! peer's reset keeps what the region holds, as a disk's image does. Each
//! peer maps them at `shm::ipa(region)` (normal memory, read/write, never
//! executable); no other VM's stage 2 maps them, so another VM's access
//! is an unmapped IPA like any other. A ring ([`ring`]) makes the region's
//! doorbell SPI pending in the target VM's vGIC, as a virtio device's
//! interrupt is, and kicks or wakes the vCPU it targets.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use super::platform::FRAMES;
use crate::fdtgen::GuestShm;
use crate::mm::stage2::MapKind;
use crate::println;
use crate::shm::{self, Membership, Ring};
use crate::vm::{Vm, vms};
use shared::platform::{Platform, ShmSpec};

/// One region that exists: its spec, its host memory, and the VM id of
/// each peer that was started (None: that VM was refused or failed).
pub struct Region {
    spec: ShmSpec,
    pa: u64,
    members: Vec<Option<usize>>,
}

/// Every region by number (None where the configuration's was refused).
static REGIONS: crate::sync::Once<Vec<Option<Region>>> = crate::sync::Once::new();

/// Validates the DTB's regions against its VMs and allocates the valid
/// ones; each refused one is reported. Before any VM is built.
pub fn create(platform: &Platform) -> Vec<Option<Region>> {
    for (node, err) in platform.shm_errors.iter() {
        println!("el2-hyp: shm node {node} refused: {err}");
    }
    let checks = shm::validate(&platform.shms, &platform.vms);
    let mut out = Vec::new();
    for (i, (spec, check)) in platform.shms.iter().zip(checks).enumerate() {
        if let Err(e) = check {
            println!("el2-hyp: {e}: region not created");
            out.push(None);
            continue;
        }
        let pa = match FRAMES.lock().alloc(spec.size, crate::vmspec::PAGE) {
            Ok(pa) => pa,
            Err(e) => {
                println!("el2-hyp: shm {:?}: {e:?}: region not created", spec.name.as_str());
                out.push(None);
                continue;
            }
        };
        // SAFETY: the frames were just allocated (nobody else's) and EL2
        // identity maps all RAM with the attributes the guests use.
        unsafe { core::ptr::write_bytes(pa as *mut u8, 0, spec.size as usize) };
        println!(
            "el2-hyp: shm[{i}] {:?}: {} at host {pa:#x}, IPA {:#x}, doorbell INTID {}, peers {}",
            spec.name.as_str(),
            crate::vmspec::Size(spec.size),
            shm::ipa(i),
            shm::intid(i),
            spec.vms.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
        );
        out.push(Some(Region { spec: spec.clone(), pa, members: alloc::vec![None; spec.vms.len()] }));
    }
    out
}

/// The regions VM `name` is a peer of, and how its DTB describes them.
pub fn of(regions: &[Option<Region>], name: &str) -> (Vec<Membership>, Vec<GuestShm>) {
    let specs: Vec<ShmSpec> = regions.iter().map(|r| r.as_ref().map(|r| r.spec.clone()).unwrap_or_default()).collect();
    let valid: Vec<bool> = regions.iter().map(Option::is_some).collect();
    let mine = shm::memberships(&specs, &valid, name);
    let dt = mine
        .iter()
        .map(|m| GuestShm {
            region: m.region,
            size: specs[m.region].size,
            name: String::from(specs[m.region].name.as_str()),
            peer: m.peer,
            peers: specs[m.region].vms.iter().map(|v| String::from(v.as_str())).collect(),
        })
        .collect();
    (mine, dt)
}

/// Maps the regions `vm` shares into its stage 2.
pub fn map(vm: &Vm, regions: &[Option<Region>]) -> Result<(), String> {
    let mut s2 = vm.stage2.lock();
    for m in vm.shm.iter() {
        let Some(Some(r)) = regions.get(m.region) else { continue };
        s2.map(shm::ipa(m.region), r.pa, r.spec.size, MapKind::Shared)
            .map_err(|e| format!("shm {:?}: {e}", r.spec.name.as_str()))?;
    }
    Ok(())
}

/// Notes that `vm` (started, with its id) is the peer it is of each region.
pub fn join(regions: &mut [Option<Region>], vm: &Vm) {
    for m in vm.shm.iter() {
        if let Some(Some(r)) = regions.get_mut(m.region)
            && let Some(slot) = r.members.get_mut(m.peer)
        {
            *slot = Some(vm.id);
        }
    }
}

/// Publishes the regions, once every VM is built.
pub fn publish(regions: Vec<Option<Region>>) {
    REGIONS.call_once(|| regions);
}

/// SHM_DOORBELL, allowed by `shm::doorbell`: vCPU `vcpu` of `vm` rings
/// `ring.peer` of `ring.region`. A peer that was never started or has
/// stopped is not rung (the caller still gets 0: a doorbell says "look",
/// it does not promise anyone is there).
pub fn ring(vm: &Vm, vcpu: usize, ring: Ring) {
    let Some(Some(r)) = REGIONS.get().and_then(|r| r.get(ring.region)) else { return };
    let Some(&Some(id)) = r.members.get(ring.peer) else { return };
    let Some(target) = vms().get(id) else { return };
    if target.stopped.load(Ordering::Acquire) {
        return;
    }
    // An edge: pending until the target takes it; rings before then coalesce.
    let _ = target.vgic.lock().inject(0, shm::intid(ring.region));
    // The caller's own vCPU needs no kick; another VM's vCPUs are all
    // "someone else" (`usize::MAX`, as `vnet::deliver`).
    target.flush_kicks(Some(if target.id == vm.id { vcpu } else { usize::MAX }));
}

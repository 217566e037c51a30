//! `shared::platform`: `Platform::from_fdt` and `find_device` on any bytes
//! (the boot loader's DTB is file-controlled) return `Ok` or `Err`, never
//! panic or loop; what they return is self-consistent; the VM specs of
//! `/chosen/hypervisor` go through `hypervisor::vmspec::validate`; and the
//! guest DTB `hypervisor::fdtgen` writes for each accepted VM parses back
//! to what it was built from.

use hypervisor::fdtgen::{GuestDtb, GuestShm, build};
use hypervisor::vmspec::{MachineFacts, validate};
use shared::platform::{DeviceMatch, DtbError, GicVersion, MAX_CPUS, Platform, Region, find_device};

/// Input: a DTB blob.
pub fn fuzz(data: &[u8]) {
    let parsed = crate::with_alignment(data, 0, Platform::from_fdt);
    // The parser reads the blob in place and insists on 4-byte alignment;
    // misaligned, the same bytes are refused (or fail the same early check).
    crate::with_alignment(data, 2, |misaligned| match Platform::from_fdt(misaligned) {
        Err(DtbError::Malformed("blob is not 4-byte aligned")) => assert!(data.len() >= 40),
        other => assert!(other.is_err() && other == parsed, "misaligned blob: {other:?} vs {parsed:?}"),
    });
    crate::with_alignment(data, 0, |blob| {
        for m in [DeviceMatch::Compatible("arm,pl011"), DeviceMatch::Compatible(""), DeviceMatch::RegBase(0x0900_0000)]
        {
            if let Ok(Some(dev)) = find_device(blob, m) {
                assert!(dev.region.base.checked_add(dev.region.size).is_some(), "{dev:?}");
                if let DeviceMatch::RegBase(base) = m {
                    assert_eq!(dev.region.base, base);
                }
            }
        }
    });
    let Ok(p) = parsed else { return };
    assert_eq!(crate::with_alignment(data, 4, Platform::from_fdt).as_ref(), Ok(&p), "parse depends on the address");
    check_platform(&p);
}

fn region_ok(r: &Region, what: &str) {
    assert!(r.base.checked_add(r.size).is_some(), "{what} {r:?} wraps around");
}

fn check_platform(p: &Platform) {
    for r in &p.memory {
        region_ok(r, "memory");
        assert_ne!(r.size, 0, "zero-sized memory region kept");
    }
    for r in &p.reserved {
        region_ok(r, "reserved");
    }
    if let Some(uart) = &p.uart {
        region_ok(&uart.region, "uart");
    }
    if let Some(gic) = &p.gic {
        region_ok(&gic.gicd, "GICD");
        gic.gicr.iter().for_each(|r| region_ok(r, "GICR"));
        [gic.gicc, gic.gich, gic.gicv].iter().flatten().for_each(|r| region_ok(r, "GIC frame"));
    }
    if let Some(initrd) = &p.initrd {
        region_ok(initrd, "initrd");
    }
    for vm in &p.vms {
        region_ok(&vm.memory, "VM memory");
        region_ok(&vm.kernel, "VM kernel");
    }
    for cpu in &p.cpus {
        if let Some(i) = p.cpu_index(cpu.mpidr) {
            assert_eq!(p.cpus[i].mpidr & 0xff_00ff_ffff, cpu.mpidr & 0xff_00ff_ffff);
        }
    }

    // The shared-memory regions: a verdict for each, and each VM's share
    // of the accepted ones goes into its guest DTB below.
    let shm_ok: Vec<bool> = hypervisor::shm::validate(&p.shms, &p.vms)
        .iter()
        .map(|r| {
            if let Err(e) = r {
                let _ = format!("{e}");
            }
            r.is_ok()
        })
        .collect();
    assert_eq!(shm_ok.len(), p.shms.len());

    // The hypervisor's view: which VMs may start on this machine.
    for ipa_bits in [32, 40, 48] {
        let mut machine = MachineFacts::new(p.memory.to_vec(), p.cpus.len() as u32, ipa_bits);
        machine.reserved = p.reserved.to_vec();
        let results = validate(&p.vms, &machine);
        assert_eq!(results.len(), p.vms.len());
        for (vm, result) in p.vms.iter().zip(&results) {
            if let Err(e) = result {
                let _ = format!("{e}");
                continue;
            }
            // An accepted VM: its guest DTB must build and parse back.
            assert!(vm.vcpus >= 1, "accepted VM {} with no vCPU", vm.name);
            let shm: Vec<GuestShm> = hypervisor::shm::memberships(&p.shms, &shm_ok, &vm.name)
                .iter()
                .map(|m| GuestShm {
                    region: m.region,
                    size: p.shms[m.region].size,
                    name: p.shms[m.region].name.as_str().into(),
                    peer: m.peer,
                    peers: p.shms[m.region].vms.iter().map(|v| v.as_str().into()).collect(),
                })
                .collect();
            for gic in [GicVersion::V2, GicVersion::V3] {
                let cfg = GuestDtb {
                    name: &vm.name,
                    ram: vm.memory,
                    vcpus: vm.vcpus,
                    gic,
                    bootargs: &vm.bootargs,
                    initrd: vm.initrd,
                    console: vm.console,
                    passthrough: Vec::new(),
                    virtio: vm.disks.len() + vm.nets.len(),
                    resets: 3,
                    shm: shm.clone(),
                };
                let Ok(blob) = build(&cfg) else { panic!("guest DTB of accepted VM {} did not build", vm.name) };
                let back = crate::with_alignment(&blob, 0, Platform::from_fdt)
                    .unwrap_or_else(|e| panic!("guest DTB of VM {} does not parse: {e:?}", vm.name));
                assert_eq!(back.memory.as_slice(), &[vm.memory], "guest RAM");
                assert_eq!(back.guest_shm.len(), shm.len(), "shared-memory nodes");
                assert_eq!(back.cpus.len(), (vm.vcpus as usize).min(MAX_CPUS), "guest CPUs");
                assert_eq!(back.bootargs.as_str(), vm.bootargs.as_str(), "guest bootargs");
                assert_eq!(back.vm_name.as_str(), vm.name.as_str(), "guest VM name");
                assert_eq!(back.vm_resets, 3);
                assert_eq!(back.gic.as_ref().map(|g| g.version), Some(gic));
                assert_eq!(back.uart.is_some(), vm.console, "guest console");
            }
        }
    }
}

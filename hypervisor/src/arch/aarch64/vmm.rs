//! VMs and vCPUs at run time: building a VM from its DTB description,
//! running vCPUs on physical CPUs, and stopping or resetting a VM.
//!
//! Stopping or resetting a VM goes through the VM-wide request protocol of
//! the pure `vmreq` core: [`stop_vm`] and [`reset_vm`] only post a request
//! and kick; the vCPUs leave the guest, and the CPU that finds them all out
//! carries the request out once ([`act`]), holding no vCPU lock on entry
//! (the lock order is in `sync.rs`). The console's VM commands (`vmctl`,
//! `console_in.rs`) use the same requests, and the pause of `vmreq`
//! ([`pause_vm`], [`unpause_vm`], [`start_vm`]).

use super::exit;
use super::fastpath::FastCtx;
use super::platform::FRAMES;
use super::switch::{self, ExitKind};
use super::sysreg::clean_invalidate_dcache_range;
use super::vgic_hw;
use super::vmops::{IDLE_CPUS, SLICE_MS, pin};
use super::{MAX_CPUS, fp, gic, passthrough, smp, timer};
use crate::exit::Action;
use crate::fdtgen::{self, GuestDtb};
use crate::mm::stage2::{IpaConfig, MapKind, Stage2Table};
use crate::println;
use crate::psci::Psci;
use crate::ratelimit::ReportLimit;
use crate::sync::{self, CountedMutex};
use crate::vcpu::{Vcpu, VcpuState};
use crate::vgic::{self, Vgic};
use crate::vm::{self, ExitCount, PvTimePage, Vm, VmConsole, vms};
use crate::vmreq::{Request, VmRequests};
use crate::vmspec;
use crate::vsched::{self, Candidate};
use crate::vtimer::{self, ptimer};
use aarch64_cpu::asm::{self, barrier};
use aarch64_cpu::registers::{ID_AA64MMFR0_EL1, Readable, VTTBR_EL2, Writeable};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use crate::sync::Mutex;
use shared::image::ImageHeader;
use shared::platform::{GicVersion, Platform, Region, VmSpec};

/// Builds every VM the DTB describes. A VM that cannot be built is
/// reported with its name and the reason, and the others still start.
pub fn create_vms(platform: &Platform, reserved: &[Region]) {
    let ipa = IpaConfig::from_parange(ID_AA64MMFR0_EL1.get());
    let gic = platform.gic.as_ref().map(|g| g.version).unwrap_or(GicVersion::V3);
    let mut vms = Vec::new();
    if platform.vms.is_empty() {
        println!("el2-hyp: the DTB describes no VMs (/chosen/hypervisor); nothing to run");
    }
    // The same rules vmconf applied on the host, now against the machine
    // as it really is (a board's boot script may have been edited by hand).
    let mut facts = vmspec::MachineFacts::new(platform.memory.to_vec(), platform.cpus.len() as u32, ipa.bits);
    facts.reserved.extend_from_slice(reserved);
    if let Some(u) = platform.uart {
        facts.reserved.push(u.region);
        if let Some(irq) = u.irq {
            facts.reserved_intids.push(irq.intid());
        }
    }
    if let Some(g) = platform.gic.as_ref() {
        for r in [g.gicd].iter().chain(g.gicr.iter()).chain(g.gicc.iter()).chain(g.gich.iter()).chain(g.gicv.iter()) {
            facts.reserved.push(*r);
        }
    }
    let checks = vmspec::validate(&platform.vms, &facts);
    let mut regions = super::vshm::create(platform);
    super::vnet::configure(platform);
    for (spec, check) in platform.vms.iter().zip(checks.iter()) {
        if let Err(e) = check {
            println!("el2-hyp: VM \"{}\" not started: {e}", spec.name);
            continue;
        }
        let id = vms.len();
        match build_vm(id, spec, ipa, gic, &regions) {
            Ok(vm) => {
                super::vnet::plug(&vm);
                super::vshm::join(&mut regions, &vm);
                println!(
                    "el2-hyp: VM {id} \"{}\": {} MiB at IPA {:#x} (host {:#x}), {} vCPU(s)",
                    vm.name,
                    spec.memory.size >> 20,
                    spec.memory.base,
                    vm.host_ram,
                    spec.vcpus
                );
                for (k, d) in spec.disks.iter().enumerate() {
                    println!(
                        "el2-hyp: VM {id} \"{}\": disk[{k}]: {} at host {:#x}, virtio-mmio at IPA {:#x}{}",
                        vm.name,
                        vmspec::Size(d.region.size),
                        d.region.base,
                        super::vdisk::VirtioDisk::base(k),
                        if d.readonly { ", read-only" } else { "" }
                    );
                }
                vms.push(vm);
            }
            Err(msg) => println!("el2-hyp: VM \"{}\" not started: {msg}", spec.name),
        }
    }
    vm::install(vms);
    super::vshm::publish(regions);
}

/// The machine's DTB.
fn host_dtb() -> Option<&'static [u8]> {
    let r = super::platform::DTB.get()?;
    // SAFETY: boot reserved the DTB's RAM (it is never handed out) and the
    // EL2 map covers all RAM; nothing writes it after boot.
    Some(unsafe { phys_slice(r.base, r.size) })
}

/// Reads a host-physical range as bytes.
///
/// # Safety
/// The range must be identity-mapped RAM that nothing writes meanwhile.
unsafe fn phys_slice(base: u64, size: u64) -> &'static [u8] {
    // SAFETY: guaranteed by the caller.
    unsafe { core::slice::from_raw_parts(base as *const u8, size as usize) }
}

fn build_vm(
    id: usize,
    spec: &VmSpec,
    ipa: IpaConfig,
    gic: GicVersion,
    regions: &[Option<super::vshm::Region>],
) -> Result<Vm, String> {
    if spec.vcpus == 0 || spec.vcpus as usize > shared::platform::MAX_VCPUS {
        return Err(format!("cpus: {} is not in 1..={}", spec.vcpus, shared::platform::MAX_VCPUS));
    }
    // SAFETY: the kernel range was reserved at boot from RAM the DTB
    // describes (validated by the frame allocator's reservation), and is
    // identity mapped; nothing writes it.
    let kernel = unsafe { phys_slice(spec.kernel.base, spec.kernel.size) };
    let header = ImageHeader::parse(kernel).map_err(|e| format!("kernel: {e}"))?;
    let layout = vm::plan(spec.memory, header.text_offset, header.image_size, spec.initrd.map(|r| r.size))
        .map_err(|e| format!("{e}"))?;
    let host_ram = FRAMES.lock().alloc(spec.memory.size, 2 << 20).map_err(|e| format!("memory: {e}"))?;
    // RAM is mapped block by block: the images' blocks by load_images, the
    // rest at the guest's first touch (guestram.rs). A range stage 2 cannot
    // map is refused here, before anything is built.
    let mut stage2 = Stage2Table::new(ipa);
    if let Err(e) = stage2.check_map(spec.memory.base, host_ram, spec.memory.size) {
        let _ = FRAMES.lock().free(host_ram, spec.memory.size);
        return Err(format!("memory: {e}"));
    }
    let pvtime = PvTimePage::new();
    stage2
        .map(shared::layout::PVTIME_BASE, pvtime.pa(), shared::layout::PVTIME_SIZE, MapKind::ReadOnly)
        .map_err(|e| format!("stolen time page: {e}"))?;
    let vmid = (id + 1) as u64;
    let vttbr = stage2.root_pa() | VTTBR_EL2::VMID.val(vmid).value;
    let vgic = Vgic::new(
        match gic {
            GicVersion::V2 => vgic::GicVersion::V2,
            GicVersion::V3 => vgic::GicVersion::V3,
        },
        spec.vcpus as usize,
        passthrough::nr_spis(spec),
    )
    .map_err(|e| format!("vgic: {e:?}"))?;
    let disks: Vec<_> = spec
        .disks
        .iter()
        .enumerate()
        // SAFETY: boot reserved every disk image from the RAM the DTB
        // describes (never handed out) and EL2 maps all RAM; vmspec
        // checked that a disk shares no byte with any other image of any
        // VM, and a VM is built once, so each image has one device.
        .map(|(k, d)| unsafe { super::vdisk::VirtioDisk::new(&spec.name, k, d) })
        .collect();
    let (shm, shm_dt) = super::vshm::of(regions, &spec.name);
    let nets: Vec<_> =
        spec.nets.iter().enumerate().map(|(k, n)| super::vnet::VirtioNet::new(k, spec.disks.len() + k, n)).collect();
    let vm = Vm {
        id,
        name: String::from(spec.name.as_str()),
        spec: spec.clone(),
        header,
        layout,
        host_ram,
        gic,
        vttbr,
        vtcr: ipa.vtcr(),
        stage2: Mutex::ranked(sync::STAGE2, stage2),
        vcpus: (0..spec.vcpus as usize).map(|i| Mutex::ranked(sync::VCPU, Vcpu::new(i))).collect(),
        stopped: AtomicBool::new(false),
        booted_at: AtomicU64::new(0),
        console: Mutex::ranked(sync::VM_CONSOLE, VmConsole::new(id, timer::now)),
        uart_fr: AtomicU32::new(VmConsole::new(id, timer::now).uart.flags()),
        reports: Mutex::new(ReportLimit::default()),
        generation: AtomicUsize::new(0),
        psci: Mutex::ranked(sync::PSCI, Psci::new(spec.vcpus as usize)),
        bus: super::devices::bus(&vgic, spec.console, disks, &nets).map_err(|e| format!("devices: {e}"))?,
        nets,
        vgic: CountedMutex::ranked(crate::sync::VGIC, vgic),
        vcpu_pcpu: (0..spec.vcpus).map(|_| AtomicUsize::new(0)).collect(),
        weight: vsched::weight(spec.weight),
        pvtime,
        vruntime: (0..spec.vcpus).map(|_| AtomicU64::new(0)).collect(),
        cap: (spec.cap != 0).then(|| {
            let period = timer::frequency() * vsched::CAP_PERIOD_MS / 1000;
            Mutex::ranked(sync::VSCHED_CAP, vsched::Cap::new(spec.cap, period, timer::now()))
        }),
        last_vcpu_ran: [const { AtomicUsize::new(usize::MAX) }; MAX_CPUS],
        fp: (0..spec.vcpus).map(|_| Mutex::ranked(sync::FP_SLOT, switch::FpState::default())).collect(),
        devices: passthrough::guest_devices(spec, host_dtb()),
        cntvoff: AtomicU64::new(timer::now()),
        requests: VmRequests::new(),
        stop_reason: Mutex::ranked(sync::REQUEST, None),
        cpu_on: (0..spec.vcpus).map(|_| Mutex::ranked(sync::CPU_ON, None)).collect(),
        exits: (0..spec.vcpus).map(|_| ExitCount::default()).collect(),
        id_regs: super::sysregs::id_table(gic),
        shm,
        shm_dt,
    };
    passthrough::map(&vm)?;
    super::vshm::map(&vm, regions)?;
    passthrough::map_hw(&vm, &mut vm.vgic.lock());
    if gic == GicVersion::V2 {
        // The guest's GICv2 CPU interface is the physical GICV frame.
        let gicv = super::platform::PLATFORM.get().and_then(|p| p.gic.as_ref()).and_then(|g| g.gicv);
        let Some(gicv) = gicv else {
            return Err(String::from("gic: the machine has no GICV frame for a GICv2 guest"));
        };
        vm.stage2
            .lock()
            .map(shared::layout::GICC_BASE, gicv.base, shared::layout::GICC_SIZE, MapKind::Device)
            .map_err(|e| format!("gic: {e}"))?;
    }
    load_images(&vm)?;
    switch::flush_vmid(vttbr);
    Ok(vm)
}

/// (Re)loads a VM's RAM: drops every block of the previous instance,
/// fills the blocks that hold the kernel, the initrd and the DTB (zeros
/// around them), leaves the rest to be zeroed at first touch
/// (`guestram::reload`), and puts vCPU 0 at the kernel entry with every
/// other vCPU off. No vCPU may be in the guest (VM build, or a claimed
/// request), and the caller holds no vCPU lock: each is taken here in turn.
fn load_images(vm: &Vm) -> Result<(), String> {
    let l = &vm.layout;
    let dtb = fdtgen::build(&GuestDtb {
        name: &vm.name,
        ram: l.ram,
        vcpus: vm.spec.vcpus,
        gic: vm.gic,
        bootargs: vm.spec.bootargs.as_str(),
        initrd: l.initrd,
        console: vm.spec.console,
        passthrough: vm.devices.clone(),
        virtio: vm.spec.disks.len() + vm.spec.nets.len(),
        resets: vm.generation.load(Ordering::Acquire) as u32,
        shm: vm.shm_dt.clone(),
    })
    .map_err(|e| format!("device tree: {e:?}"))?;
    if dtb.len() as u64 > vm::DTB_MAX {
        return Err(String::from("device tree: larger than 2 MiB"));
    }
    // SAFETY: the source images are reserved RAM (boot reserved them from
    // the DTB's memory and never hands them out), identity mapped, and
    // nothing writes them.
    let (kernel, initrd) = unsafe {
        (phys_slice(vm.spec.kernel.base, vm.spec.kernel.size), vm.spec.initrd.map(|src| phys_slice(src.base, src.size)))
    };
    let mut images = alloc::vec![(l.kernel.base, kernel), (l.dtb, dtb.as_slice())];
    if let (Some(rd), Some(bytes)) = (l.initrd, initrd) {
        images.push((rd.base, bytes));
    }
    super::guestram::reload(vm, &images)?;
    vm.psci.lock().reset();
    // FP/SIMD values still live in some CPU's registers belong to the
    // previous generation and are dropped there (fp.rs); the saved ones
    // are cleared here, for every vCPU including the caller.
    for slot in vm.fp.iter() {
        *slot.lock() = switch::FpState::default();
    }
    vm.pvtime.clear();
    for (i, v) in vm.vcpus.iter().enumerate() {
        *vm.cpu_on[i].lock() = None;
        let state = if i == 0 { VcpuState::Runnable } else { VcpuState::Off };
        v.lock().reset(l.kernel.base, l.dtb, state);
    }
    Ok(())
}

/// Places vCPUs on physical CPUs: pinned ones where asked, the rest
/// round-robin over the `online` CPUs.
pub fn assign_vcpus(online: usize) {
    let mut next = 0;
    for vm in vms() {
        for i in 0..vm.vcpus.len() {
            let p = pin(vm, i, online).unwrap_or_else(|| {
                next += 1;
                (next - 1) % online.max(1)
            });
            vm.vcpu_pcpu[i].store(p, Ordering::Relaxed);
        }
    }
    passthrough::enable_all();
    ASSIGNED.store(true, Ordering::Release);
    // The DSB orders the store before the SEV that wakes CPUs in WFE.
    barrier::dsb(barrier::ISH);
    asm::sev();
}

static ASSIGNED: AtomicBool = AtomicBool::new(false);

/// How far behind the running vCPU a woken one must be to take its CPU
/// at once (`vsched::preempts`; CFS's `sysctl_sched_wakeup_granularity`
/// is 1 ms too).
const WAKEUP_GRANULARITY_MS: u64 = 1;

/// Whether vCPU `i` of `vm` may run on physical CPU `cpu`: a pinned one
/// only on its CPU; the others anywhere.
fn allowed(vm: &Vm, i: usize, cpu: usize) -> bool {
    pin(vm, i, smp::CPUS_ONLINE.load(Ordering::Acquire)).is_none_or(|p| p == cpu)
}

/// How the last run on this CPU ended, as the next choice needs it (the
/// index is the vCPU's in the CPU's candidate list).
#[derive(Clone, Copy, PartialEq, Eq)]
enum LastRun {
    /// A slice ended, or the vCPU stopped being runnable.
    Ran,
    /// It yielded (vendor YIELD, WFE): someone else first, if anyone.
    Yielded(usize),
    /// A wake-up took the CPU from it (`WAKEUP`): it keeps the CPU unless
    /// the woken one is far enough behind it (`vsched::preempts`).
    Preempted(usize),
}

/// Runs this CPU's vCPUs until every VM has stopped. Each round it wakes
/// the waiting vCPUs whose interrupts are pending, then runs the runnable
/// vCPU with the least virtual run time (`vsched::pick`) for at most a
/// time slice when others wait (or until its VM's cap is used up), and
/// charges it what it ran; with none runnable it waits (WFI) with the EL2
/// timer set for the earliest virtual-timer deadline or cap period.
///
/// The candidates are the vCPUs pinned here and every unpinned vCPU of
/// every VM: those are shared by all CPUs (one run queue, as credit2 has
/// one per socket), so a vCPU migrates to whichever CPU is free.
pub fn run_cpu(cpu: usize) {
    // Secondary CPUs wait here while CPU 0 starts the others; in WFE, so a
    // waiting CPU does not spin (the SEV after the flag wakes it; an event
    // between the check and the WFE makes the WFE return at once).
    while !ASSIGNED.load(Ordering::Acquire) {
        asm::wfe();
    }
    let mine: Vec<(&Vm, usize)> = vms()
        .iter()
        .flat_map(|vm| (0..vm.vcpus.len()).map(move |i| (vm, i)))
        .filter(|&(vm, i)| allowed(vm, i, cpu))
        .collect();
    let mut runnable: Vec<Option<Candidate>> = alloc::vec![None; mine.len()];
    let mut list: Vec<Candidate> = Vec::with_capacity(mine.len());
    let mut positions: Vec<usize> = Vec::with_capacity(mine.len());
    let mut last = LastRun::Ran;
    // This CPU's `min_vruntime`: the virtual time of what it last chose,
    // never decreasing (per CPU, as CFS keeps it per run queue: CPUs with
    // different loads have timelines that run at different rates).
    let mut min_vruntime = 0u64;
    let slice = timer::frequency() * SLICE_MS / 1000;
    let granularity = timer::frequency() * WAKEUP_GRANULARITY_MS / 1000;
    loop {
        // A VM whose vCPUs have all left the guest for a request: whichever
        // CPU sees it first carries it out, with no vCPU lock held.
        for vm in vms() {
            if let Some(r) = vm.requests.claim() {
                act(vm, r);
            }
            // A pause takes effect once every vCPU is out: said once.
            if vm.requests.parked() {
                println!("el2-hyp: VM {} \"{}\" paused", vm.id, vm.name);
            }
        }
        if vms().iter().all(|vm| vm.stopped.load(Ordering::Acquire)) {
            return;
        }
        let deadline = wake_waiting(&mine, cpu, min_vruntime, slice, &mut runnable);
        if let LastRun::Yielded(y) = last
            && let Some(c) = runnable[y].as_mut()
        {
            c.yielded = true;
        }
        // The runnable ones, and where each is in `mine` (kept between
        // rounds: nothing is allocated or copied wholesale per choice).
        list.clear();
        positions.clear();
        for (k, c) in runnable.iter().enumerate() {
            if let Some(c) = c {
                list.push(*c);
                positions.push(k);
            }
        }
        let Some(mut k) = vsched::pick(&list).map(|c| positions[c]) else {
            last = LastRun::Ran;
            idle(deadline);
            continue;
        };
        if let LastRun::Preempted(p) = last
            && let (Some(prev), Some(woken)) = (runnable[p], runnable[k])
            && !vsched::preempts(woken.vruntime, prev.vruntime, granularity)
        {
            k = p;
        }
        last = LastRun::Ran;
        let (vm, i) = mine[k];
        let Some(mut v) = vm.vcpus[i].try_lock() else { continue };
        if v.state != VcpuState::Runnable || vm.stopped.load(Ordering::Acquire) || vm.requests.must_leave() {
            continue;
        }
        let start = timer::now();
        min_vruntime = min_vruntime.max(vm.vruntime[i].load(Ordering::Relaxed));
        vm.vcpu_pcpu[i].store(cpu, Ordering::Relaxed);
        v.yielded = false;
        v.preempted = false;
        v.steal.runs(start);
        vm.pvtime.set_stolen(i, v.steal.nanoseconds(timer::frequency()));
        // Others wait: a slice; a capped VM: no more than its budget.
        let mut alarm = (list.len() > 1).then_some(start + slice);
        if let Some(cap) = &vm.cap {
            let end = start + cap.lock().left(start);
            alarm = Some(alarm.map_or(end, |a| a.min(end)));
        }
        if v.flush.is_some() {
            flush_for_a_slice(&mut v, start + slice);
        } else {
            let alarm = match (alarm, deadline) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            flush_if_other_vcpu_ran(vm, i, cpu);
            run_vcpu(vm, &mut v, alarm);
            if list.len() > 1 && pin(vm, i, smp::CPUS_ONLINE.load(Ordering::Acquire)).is_none() {
                fp::vcpu_put(vm, &v, vm.generation.load(Ordering::Acquire));
            }
        }
        let end = timer::now();
        let ran = end.saturating_sub(start);
        let vr = vsched::charged(vm.vruntime[i].load(Ordering::Relaxed), ran, vm.weight);
        vm.vruntime[i].store(vr, Ordering::Relaxed);
        if let Some(cap) = &vm.cap {
            cap.lock().charge(end, ran);
        }
        if v.state == VcpuState::Runnable {
            v.steal.runnable(end);
            if v.yielded {
                last = LastRun::Yielded(k);
            } else if v.preempted {
                last = LastRun::Preempted(k);
            }
        }
    }
}

/// Before vCPU `i` of `vm` enters on `cpu` (its stage 2 loaded): if
/// another vCPU of the VM ran there last, its TLB entries (same VMID) are
/// dropped, since a guest that invalidates its TLB on one vCPU does it for
/// that vCPU only (KVM's `last_vcpu_ran` and `__kvm_flush_cpu_context`).
fn flush_if_other_vcpu_ran(vm: &Vm, i: usize, cpu: usize) {
    let prev = vm.last_vcpu_ran[cpu % MAX_CPUS].swap(i, Ordering::Relaxed);
    if prev != i && prev != usize::MAX {
        // TLBI VMALLE1 at EL2 applies to the VMID in VTTBR_EL2 (ARM ARM
        // D8.13.5): the VM's, for the time of the flush.
        VTTBR_EL2.set(vm.vttbr);
        barrier::isb(barrier::SY);
        // SAFETY: TLB and instruction-cache maintenance for that VMID on
        // this CPU only; it drops cached translations and instructions,
        // which are refetched.
        unsafe { core::arch::asm!("tlbi vmalle1", "dsb nsh", "ic iallu", "dsb nsh", "isb", options(nostack)) };
        VTTBR_EL2.set(0);
        barrier::isb(barrier::SY);
    }
}

/// Makes waiting vCPUs runnable when an interrupt is pending for them or
/// their virtual timer has expired (delivering it), placing each woken one
/// on the virtual timeline at most `credit` (a slice) behind
/// `min_vruntime` (`vsched::placed`). Fills `runnable` with each
/// candidate this CPU could run now (runnable, not running elsewhere, its
/// VM under its cap) and returns the earliest time a waiting one needs the
/// CPU: a timer deadline, or the end of a cap's throttling.
fn wake_waiting(
    mine: &[(&Vm, usize)],
    cpu: usize,
    min_vruntime: u64,
    credit: u64,
    runnable: &mut [Option<Candidate>],
) -> Option<u64> {
    let now = timer::now();
    let mut earliest: Option<u64> = None;
    let mut wake_at = |d: u64| earliest = Some(earliest.map_or(d, |e: u64| e.min(d)));
    for (k, &(vm, i)) in mine.iter().enumerate() {
        runnable[k] = None;
        if vm.stopped.load(Ordering::Acquire) || vm.requests.must_leave() {
            continue;
        }
        let Some(mut v) = vm.vcpus[i].try_lock() else { continue };
        let before = v.state;
        if v.state == VcpuState::Off {
            start_pending_cpu_on(vm, &mut v);
        }
        if v.state == VcpuState::Waiting {
            let mut vgic = vm.vgic.lock();
            // The saved timer's deadline in physical time: its compare
            // value is in the VM's virtual time (vtimer::deadline). A line
            // already high needs no alarm; it stays high until resampled.
            let high = vgic.irq_state(i, gic::INTID_VTIMER).is_some_and(|irq| irq.line_level);
            let deadline = vtimer::deadline(v.sys.cntv_ctl, v.sys.cntv_cval, vm.cntvoff.load(Ordering::Relaxed));
            if let (false, Some(d)) = (high, deadline) {
                if d <= now {
                    let _ = vgic.set_level(i, gic::INTID_VTIMER, true);
                } else {
                    wake_at(d);
                }
            }
            // The emulated physical timer (exit::ptimer_access): raised
            // when due, else its deadline is one to wake up for.
            if let Some(d) = ptimer::update_line(&mut vgic, i, v.sys.cntp_ctl, v.sys.cntp_cval, now) {
                wake_at(d);
            }
            if vgic.has_pending(i) {
                v.state = VcpuState::Runnable;
            }
        }
        if v.state != VcpuState::Runnable {
            continue;
        }
        if before != VcpuState::Runnable {
            v.steal.runnable(now);
            let vr = vsched::placed(vm.vruntime[i].load(Ordering::Relaxed), min_vruntime, credit);
            vm.vruntime[i].store(vr, Ordering::Relaxed);
        }
        if let Some(until) = vm.cap.as_ref().and_then(|c| c.lock().throttled_until(now)) {
            wake_at(until);
            continue;
        }
        runnable[k] = Some(Candidate {
            vruntime: vm.vruntime[i].load(Ordering::Relaxed),
            yielded: false,
            warm: vm.vcpu_pcpu[i].load(Ordering::Relaxed) == cpu,
        });
    }
    earliest
}

/// Starts `v` if a PSCI CPU_ON left it an entry point (exit.rs): its own
/// CPU does it, holding only its lock (KVM's `kvm_psci_vcpu_on` leaves a
/// `reset_state` and a `KVM_REQ_VCPU_RESET` for the target).
fn start_pending_cpu_on(vm: &Vm, v: &mut Vcpu) {
    let Some((entry, context_id)) = vm.cpu_on[v.index].lock().take() else { return };
    v.reset(entry, context_id, VcpuState::Runnable);
    vm.psci.lock().vcpu_started(v.index);
}

/// A vCPU with a set/way flush under way (`setway`): flushes its VM's RAM
/// piece by piece until done or until `slice_end`, the end of the time
/// slice it was given; then the CPU goes round its vCPUs again, so the
/// flush costs only the time of the vCPU that asked for it.
fn flush_for_a_slice(v: &mut Vcpu, slice_end: u64) {
    let Some(cursor) = v.flush.as_mut() else { return };
    while let Some((base, len)) = cursor.next_chunk() {
        // Host addresses of the VM's own RAM (the cursor was made from
        // `host_ram` and its size), identity mapped at EL2.
        clean_invalidate_dcache_range(base as usize, len as usize);
        if timer::now() >= slice_end {
            break;
        }
    }
    if cursor.done() {
        v.flush = None;
    }
}

/// Nothing to run: wait for an interrupt (a kick, or the EL2 timer at the
/// earliest virtual-timer deadline), then acknowledge whatever came.
fn idle(deadline: Option<u64>) {
    if let Some(d) = deadline {
        timer::arm_hyp(d);
    }
    let me = 1u64 << (smp::cpu_index() % 64);
    IDLE_CPUS.fetch_or(me, Ordering::AcqRel);
    // Interrupts stay masked at EL2; a pending one still ends the wait
    // (ARM ARM D1.6.2).
    barrier::dsb(barrier::SY);
    asm::wfi();
    IDLE_CPUS.fetch_and(!me, Ordering::AcqRel);
    timer::cancel_hyp();
    while let Some(raw) = gic::ack() {
        if passthrough::forward(raw, None).is_some() {
            continue;
        }
        if Some(gic::intid_of(raw)) == super::console_in::intid() {
            super::console_in::on_interrupt(None);
        }
        gic::eoi(raw);
    }
    // After the kicks are taken (see `exit::handle_irq`).
    fp::service_flush();
}

/// Runs one vCPU until it yields the CPU or a VM-wide request is posted
/// (`vmreq`: the vCPU leaves the guest at its next exit, which a kick
/// forces). `alarm` is when the EL2 timer should take the CPU back (end of
/// slice, or a waiting vCPU's timer deadline).
fn run_vcpu(vm: &Vm, v: &mut Vcpu, alarm: Option<u64>) {
    if !vm.requests.enter(v.index) {
        return;
    }
    // Constant while the vCPU is in the guest: only a claimed request
    // (every vCPU out) changes it.
    let generation = vm.generation.load(Ordering::Acquire);
    switch::load_vm(vm.vttbr, vm.vtcr, v.hcr);
    timer::set_cntvoff(vm.cntvoff.load(Ordering::Relaxed));
    switch::restore_el1(&v.sys);
    fp::vcpu_load(vm, v, generation);
    vgic_hw::load(&v.vgic);
    // The physical timer PPI is this CPU's: unmasked unless this vCPU's
    // timer line is (still) high.
    let high = timer::resample_vtimer_line(&mut vm.vgic.lock(), v.index);
    timer::set_vtimer_ppi(!high);
    if let Some(a) = alarm {
        timer::arm_hyp(a);
    }
    // The emulated physical timer may have expired while the vCPU was not
    // running; if not, the EL2 timer takes the CPU back when it does.
    if let Some(d) = ptimer::update_line(&mut vm.vgic.lock(), v.index, v.sys.cntp_ctl, v.sys.cntp_cval, timer::now()) {
        timer::arm_hyp_by(d);
    }
    let nr_lrs = vgic_hw::nr_lrs();
    // The vGIC's change count when a flush last found nothing for this
    // vCPU (so the list registers are empty): while the count stays the
    // same, nothing can have become deliverable and the scan of every
    // interrupt is skipped. This is the fast path of a null hypercall.
    let mut nothing_since: Option<u64> = None;
    // The list registers hold interrupts whose state the vGIC model has
    // not read back (the guest may have taken or EOIed them).
    let mut lrs_loaded = false;
    let mut fast = FastCtx {
        vm,
        vcpu: core::ptr::null_mut(),
        enabled: false,
        lrs_loaded: false,
        changes_at_entry: 0,
        handled: None,
    };
    loop {
        if !lrs_loaded && nothing_since != Some(vm.vgic.changes()) {
            let mut g = vm.vgic.lock();
            let plan = g.flush_lrs(v.index, nr_lrs);
            vgic_hw::write_lrs(&plan, &mut v.vgic);
            let empty = plan.lrs.is_empty() && !plan.underflow;
            // Under the lock the count is exact (it includes the flush).
            nothing_since = empty.then(|| vm.vgic.changes());
            lrs_loaded = !empty;
        }
        // The fast path (fastpath.rs) answers hypercalls, ID register
        // reads and MMIO from the exception vector and resumes the guest
        // without coming back here; not while the timer's physical PPI is
        // masked, nor (for vGIC registers) while interrupts sit in the list
        // registers.
        fast.enabled = !smp::this_cpu().vtimer_masked;
        fast.lrs_loaded = lrs_loaded;
        fast.changes_at_entry = vm.vgic.changes();
        fast.handled = None;
        fast.vcpu = v;
        // SAFETY: the VM's stage-2, trap configuration and EL1 context
        // were loaded just above; `v` is not used until `enter` returns,
        // only through `fast.vcpu`, and `fast` only by the fast path.
        let kind =
            unsafe { switch::enter(&raw mut (*fast.vcpu).regs, &raw mut smp::this_cpu().host, (&raw mut fast).cast()) };
        let action = match fast.handled.take() {
            // The fast path answered it (counted and traced there) but
            // leaves the rest to this loop.
            Some(action) => {
                if lrs_loaded && vm.vgic.changes() != fast.changes_at_entry {
                    sync_back(vm, v, true);
                    lrs_loaded = false;
                }
                action
            }
            None => {
                #[cfg(feature = "trace")]
                let exit_at = timer::now();
                sync_back(vm, v, lrs_loaded);
                lrs_loaded = false;
                let action = match kind {
                    ExitKind::Sync => exit::handle_sync(vm, v, generation),
                    ExitKind::Irq => exit::handle_irq(vm, v),
                    ExitKind::Fiq | ExitKind::SError | ExitKind::AArch32 => exit::handle_fatal(vm, v, kind),
                };
                vm.exits[v.index].bump();
                #[cfg(feature = "trace")]
                super::trace::record(vm, v, kind, exit_at);
                action
            }
        };
        // A request or a pause posted by this exit or by another CPU
        // (whose kick stays pending at EL2, so the next entry exits at once
        // if it arrives after this look).
        if vm.requests.must_leave() || matches!(action, Action::Yield) {
            if lrs_loaded {
                sync_back(vm, v, true);
            }
            break;
        }
    }
    timer::cancel_hyp();
    vgic_hw::save(&mut v.vgic);
    switch::save_el1(&mut v.sys);
    // FP/SIMD values stay in the registers (this CPU's owner) until
    // another vCPU here traps on its first use (fp.rs).
    switch::unload_vm();
    vm.requests.leave(v.index);
}

/// After an exit the slow path handles: resamples the virtual timer's
/// line and, if `lrs_loaded`, folds the list registers into the vGIC
/// model and empties them.
fn sync_back(vm: &Vm, v: &mut Vcpu, lrs_loaded: bool) {
    let lrs = lrs_loaded.then(|| vgic_hw::read_lrs(&v.vgic));
    {
        let mut vgic = vm.vgic.lock();
        // Before the sync: an EOIed timer interrupt whose output has
        // dropped must not be presented again. (This only counts as a
        // vGIC change when it lowers the line.)
        timer::resample_vtimer_line(&mut vgic, v.index);
        if let Some(lrs) = &lrs {
            vgic.sync_lrs(v.index, lrs);
        }
    }
    if lrs_loaded {
        // Empty the list registers now that the model has their state:
        // an EOIed level interrupt left in one keeps the maintenance
        // interrupt asserted (ICH_EISR_EL2) while we handle the exit.
        vgic_hw::write_lrs(&vgic::LrPlan::default(), &mut v.vgic);
    }
}

/// Carries out request `r` that this CPU claimed: every vCPU of `vm` is
/// out of the guest and stays out until [`VmRequests::finish`]; no vCPU
/// lock is held on entry. Then wakes the CPUs that parked its vCPUs.
fn act(vm: &Vm, r: Request) {
    let mut stopped = false;
    match r {
        // A reset that finds the VM stopped (a stop won the race) is
        // dropped, and so is a start that finds it running.
        Request::Reset if !vm.stopped.load(Ordering::Acquire) => {
            println!("el2-hyp: VM \"{}\" reset", vm.name);
            if let Err(e) = reset_now(vm) {
                vm.stop_reason.lock().get_or_insert_with(|| format!("reset failed: {e}"));
                stopped = stop_now(vm);
            }
        }
        Request::Start if vm.stopped.load(Ordering::Acquire) => match reset_now(vm) {
            Ok(()) => {
                vm.stopped.store(false, Ordering::Release);
                println!("el2-hyp: VM {} \"{}\" started", vm.id, vm.name);
            }
            Err(e) => println!("el2-hyp: VM \"{}\" could not start: {e}", vm.name),
        },
        Request::Reset | Request::Start => {}
        Request::Stop => stopped = stop_now(vm),
    }
    vm.requests.finish(r);
    // Said only now that the request is finished, so that whoever reads
    // "stopped" may start the VM at once (a start posted while the stop
    // was pending would be refused as "being stopped").
    if stopped {
        report_stop(vm);
    }
    vm.kick_all();
}

/// Stops the VM: it runs no more, its console is flushed. Returns whether
/// this call stopped it (it was running); the caller then finishes the
/// request and calls [`report_stop`]. The other VMs are not affected.
fn stop_now(vm: &Vm) -> bool {
    if vm.stopped.swap(true, Ordering::AcqRel) {
        return false;
    }
    for v in vm.vcpus.iter() {
        v.lock().state = VcpuState::Stopped;
    }
    vm.console.lock().end(&vm.name);
    passthrough::release(vm);
    true
}

/// Says that the VM stopped and why, prints its exit statistics (exact:
/// every vCPU is stopped) and boot times, and wakes the idle CPUs.
fn report_stop(vm: &Vm) {
    let why = vm.stop_reason.lock().take().unwrap_or_default();
    let suppressed = vm.reports.lock().take_suppressed();
    if suppressed > 0 {
        println!("el2-hyp: VM \"{}\": ... and {suppressed} more reports suppressed", vm.name);
    }
    println!("el2-hyp: VM \"{}\" stopped: {why}", vm.name);
    vm::print_stats_parked(vm);
    print_boot_times(vm);
    // Idle CPUs wait in WFI: wake them to see that a VM is gone (the last
    // one to notice that all are gone powers the machine off).
    let here = smp::cpu_index();
    for cpu in 0..smp::CPUS_ONLINE.load(Ordering::Acquire) {
        if cpu != here {
            gic::kick(cpu, smp::cpu_mpidr(cpu));
        }
    }
}

/// Resets the VM (SYSTEM_RESET, or the start of a stopped VM): a new
/// generation (FP/SIMD values of the old one are dropped, fp.rs), its
/// devices reset (a fresh vGIC with the pass-through SPIs enabled again,
/// `devices`), the virtual counter from zero, and the images reloaded,
/// which resets every vCPU.
fn reset_now(vm: &Vm) -> Result<(), String> {
    vm.generation.fetch_add(1, Ordering::AcqRel);
    vm.bus.reset(vm);
    // The virtual counter starts again near zero, as after a power-on.
    vm.cntvoff.store(timer::now(), Ordering::Relaxed);
    load_images(vm)
}

/// The boot benchmarks' figures: physical-counter values (counted from
/// power-on) of the VM's first console line and of its BOOTED call, and
/// where the VM's virtual counter has its zero (a guest's own reading of
/// CNTVCT_EL0 plus this is counted from power-on: the Linux boot row).
fn print_boot_times(vm: &Vm) {
    let first = vm.console.lock().first_line_at;
    let booted = vm.booted_at.load(Ordering::Relaxed);
    if let Some(first) = first {
        let booted = if booted == 0 { alloc::string::String::from("-") } else { alloc::format!("{booted}") };
        println!(
            "el2-hyp:   VM \"{}\" boot: first line at {first}, booted at {booted} (counter ticks at {} Hz from power-on)",
            vm.name,
            timer::frequency()
        );
    }
    println!(
        "el2-hyp:   VM \"{}\" virtual counter offset {} (counter ticks at {} Hz from power-on)",
        vm.name,
        vm.cntvoff.load(Ordering::Relaxed),
        timer::frequency()
    );
}

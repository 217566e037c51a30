//! A virtual machine as plain data (issue 18): [`Vm`] holds what every
//! part of the hypervisor knows of a VM (its configuration, stage 2,
//! vCPUs, vGIC, PSCI state, devices on its MMIO bus, requests, counts),
//! built and run by the arch layer (`arch/aarch64/vmm.rs`), decided on by
//! the pure cores. Only three of its types are the arch layer's
//! ([`crate::arch::Device`], [`crate::arch::VirtioNet`],
//! [`crate::arch::FpState`]; stand-ins on the host). Its cross-CPU
//! operations (kicks, VM-wide requests, reports) are
//! `arch/aarch64/vmops.rs`'s. Also here: the VMs built at boot ([`vms`]),
//! its console ([`console`]) and the layout of its RAM ([`layout`]).

pub mod console;
pub mod layout;

pub use console::VmConsole;
pub use layout::{DTB_MAX, LayoutError, VmLayout, plan};

use crate::fdtgen;
use crate::mm::stage2::Stage2Table;
use crate::mmio::MmioBus;
use crate::println;
use crate::psci::Psci;
use crate::pvtime;
use crate::ratelimit::ReportLimit;
use crate::stats::ExitStats;
use crate::sync::{CountedMutex, Mutex};
use crate::vcpu::Vcpu;
use crate::vgic::Vgic;
use crate::vmreq::VmRequests;
use crate::vsched;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use shared::image::ImageHeader;
use shared::platform::{GicVersion, VmSpec};

/// A virtual machine.
pub struct Vm {
    pub id: usize,
    pub name: String,
    pub spec: VmSpec,
    pub header: ImageHeader,
    pub layout: VmLayout,
    /// Host-physical base of the VM's RAM.
    pub host_ram: u64,
    pub gic: GicVersion,
    pub vttbr: u64,
    pub vtcr: u64,
    pub stage2: Mutex<Stage2Table>,
    pub vcpus: Vec<Mutex<Vcpu>>,
    pub stopped: AtomicBool,
    pub console: Mutex<VmConsole>,
    /// The vPL011's flag register as the console's model had it when a
    /// UART access or typed input last released the console's lock
    /// (`devices::Uart::publish`): a guest polling UARTFR (Linux's
    /// `pl011_console_write` reads it around every byte) reads this
    /// without the lock. Only those paths change what FR shows (the
    /// receive FIFO and LCR_H.FEN).
    pub uart_fr: AtomicU32,
    /// Bumped on SYSTEM_RESET (while every vCPU is out of the guest): the
    /// VM's life, which FP/SIMD ownership tokens carry (fp.rs).
    pub generation: AtomicUsize,
    /// PSCI power state of the vCPUs.
    pub psci: Mutex<Psci>,
    /// The virtual GIC (distributor, redistributors, pending interrupts).
    pub vgic: CountedMutex<Vgic>,
    /// Its emulated devices by guest-physical range, where a trapped MMIO
    /// access goes (`devices::bus`).
    pub bus: MmioBus<Vm, crate::arch::Device>,
    /// Its virtio-net cards (`vnet`): on its bus as `Device::Net(k)`, and
    /// reached by the other ports of their switches.
    pub nets: Vec<crate::arch::VirtioNet>,
    /// The physical CPU each vCPU runs on or ran on last, for kicks
    /// (pinned vCPUs never move; the others migrate, see `vmm::run_cpu`).
    pub vcpu_pcpu: Vec<AtomicUsize>,
    /// The scheduler's weight of each of its vCPUs (`vsched::weight`).
    pub weight: u32,
    /// Each vCPU's virtual run time (`vsched`): written by the CPU that
    /// holds the vCPU's lock, read by any CPU choosing what to run.
    pub vruntime: Vec<AtomicU64>,
    /// Its vCPUs' stolen-time structures (`pvtime`), mapped read-only at
    /// `layout::PVTIME_BASE`.
    pub pvtime: alloc::boxed::Box<PvTimePage>,
    /// The VM's CPU cap, if its configuration has one (`vsched::Cap`).
    pub cap: Option<Mutex<vsched::Cap>>,
    /// The vCPU of this VM each physical CPU ran last (`usize::MAX`:
    /// none): another of its vCPUs there must not see the TLB entries
    /// that one left (KVM's `last_vcpu_ran`, `vmm::flush_if_other_vcpu_ran`).
    pub last_vcpu_ran: [AtomicUsize; shared::platform::MAX_CPUS],
    /// Physical counter when the guest said it had booted (vendor BOOTED
    /// call), 0 if it has not.
    pub booted_at: AtomicU64,
    /// Each vCPU's FP/SIMD registers while they are not live in some
    /// physical CPU (switched lazily, see `fp.rs`). A lock of their own,
    /// held only for one save or restore, so that another CPU can save a
    /// vCPU's values without its vCPU lock.
    pub fp: Vec<Mutex<crate::arch::FpState>>,
    /// Its pass-through devices as its DTB describes them (passthrough.rs).
    pub devices: Vec<fdtgen::GuestDevice>,
    /// The VM's virtual counter offset, CNTVOFF_EL2 (ARM ARM D11.2.2): the
    /// physical count when the VM was built or last reset, so that its
    /// virtual counter starts near zero.
    pub cntvoff: AtomicU64,
    /// The budget of the hypervisor's reports about this VM's faults
    /// (`vmops::report`).
    pub reports: Mutex<ReportLimit>,
    /// VM-wide requests (stop, reset) and which vCPUs are in the guest.
    pub requests: VmRequests,
    /// Why the VM is being stopped (the first reason given wins).
    pub stop_reason: Mutex<Option<String>>,
    /// Each vCPU's pending PSCI CPU_ON (entry, context id): left here by
    /// the caller, taken by the target's own CPU, so that no CPU ever
    /// waits for another vCPU's lock while holding its own (sync.rs).
    pub cpu_on: Vec<Mutex<Option<(u64, u64)>>>,
    /// Each vCPU's exits since boot, readable without its lock (the
    /// console's `list`; `stats` has them by reason, under the lock).
    pub exits: Vec<ExitCount>,
    /// What its vCPUs read from the ID registers (HCR_EL2.TID3),
    /// sanitized once (sysregs.rs).
    pub id_regs: crate::idregs::IdTable,
    /// The shared-memory regions it is a peer of (`vshm`), and their
    /// nodes in its DTB.
    pub shm: Vec<crate::shm::Membership>,
    pub shm_dt: Vec<fdtgen::GuestShm>,
}

/// One vCPU's exit count: written only by the CPU running the vCPU (a
/// plain load and store, no atomic read-modify-write on the exit path),
/// read by anyone. A cache line of its own, so that vCPUs of one VM on
/// different CPUs do not share the line they write on every exit.
#[repr(align(64))]
#[derive(Default)]
pub struct ExitCount(AtomicU64);

impl ExitCount {
    /// Counts one exit; only the CPU holding the vCPU's lock calls it.
    pub fn bump(&self) {
        self.0.store(self.0.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
    }

    /// The count.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Vm {
    /// The VM's RAM, for the stage-2 fill on first touch (guestram.rs).
    pub fn ram(&self) -> crate::guestram::GuestRam {
        crate::guestram::GuestRam { ipa: self.layout.ram.base, size: self.layout.ram.size, host: self.host_ram }
    }
}

/// The page of a VM's stolen-time structures (DEN0057 §3.2): 64-bit
/// words the run loop stores and the guest loads (single-copy atomic).
#[repr(C, align(4096))]
pub struct PvTimePage([AtomicU64; 512]);

impl PvTimePage {
    pub fn new() -> alloc::boxed::Box<Self> {
        alloc::boxed::Box::new(PvTimePage([const { AtomicU64::new(0) }; 512]))
    }

    /// Writes vCPU `vcpu`'s `stolen_time` (nanoseconds).
    pub fn set_stolen(&self, vcpu: usize, ns: u64) {
        if let Some(w) = self.0.get(pvtime::stolen_time_offset(vcpu) / 8) {
            w.store(ns.to_le(), Ordering::Relaxed);
        }
    }

    /// Zeroes every structure (a new VM life).
    pub fn clear(&self) {
        for w in self.0.iter() {
            w.store(0, Ordering::Relaxed);
        }
    }

    /// The page's host-physical address (the heap is identity mapped).
    pub fn pa(&self) -> u64 {
        self as *const Self as u64
    }
}

static VMS: crate::sync::Once<Vec<Vm>> = crate::sync::Once::new();

/// The VMs that were built at boot (none before [`install`]).
pub fn vms() -> &'static [Vm] {
    VMS.get().map(|v| v.as_slice()).unwrap_or(&[])
}

/// Makes `vms` the VMs of [`vms`]; once, at boot (`vmm::create_vms`).
pub fn install(vms: Vec<Vm>) {
    VMS.call_once(|| vms);
}

/// The VM's state, as the console's `list` shows it.
pub fn state(vm: &Vm) -> crate::vmctl::VmState {
    crate::vmctl::VmState::of(
        vm.stopped.load(Ordering::Acquire),
        vm.requests.pending(),
        vm.requests.is_paused(),
        vm.requests.is_parked(),
    )
}

/// Prints the exit statistics of a VM whose vCPUs are all parked (a
/// claimed request): every count is final, each lock is taken in turn.
pub fn print_stats_parked(vm: &Vm) {
    let mut total = ExitStats::default();
    for (i, v) in vm.vcpus.iter().enumerate() {
        let stats = v.lock().stats;
        println!("el2-hyp:   vCPU {i} exits: {stats}");
        total.add(&stats);
    }
    println!("el2-hyp:   VM \"{}\" exits: {total}", vm.name);
}

/// Prints a VM's exit statistics, per vCPU. `me` is the calling vCPU,
/// whose lock the caller holds. A vCPU that another CPU is running is named
/// but not counted: taking its lock would wait for its next exit.
pub fn print_stats(vm: &Vm, me: Option<&Vcpu>) {
    let mut total = ExitStats::default();
    for (i, v) in vm.vcpus.iter().enumerate() {
        let stats = match me {
            Some(m) if m.index == i => m.stats,
            _ => match v.try_lock() {
                Some(v) => v.stats,
                None => {
                    // Its CPU is running it: the counts live under its lock.
                    println!("el2-hyp:   vCPU {i} exits: (running on another CPU; not in the total)");
                    continue;
                }
            },
        };
        println!("el2-hyp:   vCPU {i} exits: {stats}");
        total.add(&stats);
    }
    println!("el2-hyp:   VM \"{}\" exits: {total}", vm.name);
}

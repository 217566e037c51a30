//! What any part of the arch layer may do to a VM from any physical CPU
//! (issue 18: the one place the others reach instead of `vmm.rs`): kick
//! its vCPUs ([`Vm::kick`], KVM's `kvm_vcpu_kick`), post a VM-wide
//! request (stop, reset, pause, start: the pure `vmreq` protocol, carried
//! out by the run loop, `vmm::act`), and report what its guest did wrong
//! within its budget ([`report`]). Below `vmm.rs` and `exit.rs`; uses only
//! `gic`, `smp` and `timer`.

use super::{MAX_CPUS, gic, smp, timer};
use crate::println;
use crate::ratelimit::{self, Verdict};
use crate::vgic;
use crate::vm::Vm;
use crate::vmreq::Request;
use alloc::string::String;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Length of a vCPU's time slice when others wait for the same CPU.
pub const SLICE_MS: u64 = 10;

/// Physical CPUs waiting in `vmm::idle` (bit per CPU): a vCPU woken while its
/// last CPU is busy is run by one of these (`Vm::kick`).
pub(super) static IDLE_CPUS: AtomicU64 = AtomicU64::new(0);

/// Set for a CPU when a vCPU that last ran there and is not in the guest
/// was woken: its next kick exit gives the CPU back to `vmm::run_cpu` to
/// choose again (wake-up preemption, `exit::handle_irq`).
static WAKEUP: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];

/// Whether a wake-up for this CPU is pending (and forgets it).
pub fn take_wakeup() -> bool {
    WAKEUP[smp::cpu_index() % MAX_CPUS].swap(false, Ordering::Relaxed)
}

/// The physical CPU vCPU `i` of `vm` is pinned to (`pin` in its
/// configuration), if that CPU is one of the `online` ones; a pin to a CPU
/// that did not come up is ignored. Unpinned vCPUs migrate.
pub fn pin(vm: &Vm, i: usize, online: usize) -> Option<usize> {
    vm.spec.affinity.get(i).map(|&p| p as usize).filter(|&p| p < online)
}

impl Vm {
    /// Makes every vCPU in `targets` (other than `me`) look at its
    /// interrupts: a vCPU running on another physical CPU is kicked out of
    /// the guest by an SGI; a waiting one is woken by the same SGI.
    pub fn kick(&self, targets: vgic::VcpuSet, me: Option<usize>) {
        let here = smp::cpu_index();
        for t in targets.iter() {
            if Some(t) == me {
                continue;
            }
            let Some(last) = self.vcpu_pcpu.get(t).map(|p| p.load(Ordering::Relaxed)) else { continue };
            if self.requests.in_guest() & (1 << t) == 0 {
                // Not in the guest: a wake-up. Its last CPU re-chooses
                // (wake-up preemption), and an idle CPU it may run on is
                // woken too, so that it need not wait for a busy one.
                if last != here {
                    WAKEUP[last % MAX_CPUS].store(true, Ordering::Relaxed);
                }
                if pin(self, t, smp::CPUS_ONLINE.load(Ordering::Acquire)).is_none() {
                    let idle = IDLE_CPUS.load(Ordering::Acquire) & !(1 << here);
                    if idle != 0 && idle & (1 << last) == 0 {
                        let q = idle.trailing_zeros() as usize;
                        gic::kick(q, smp::cpu_mpidr(q));
                    }
                }
            }
            if last != here {
                gic::kick(last, smp::cpu_mpidr(last));
            } else if me.is_some() {
                // Same CPU: the running vCPU must give way within a slice
                // (it may be spinning, waiting for the one just woken).
                timer::arm_hyp_by(timer::now() + timer::frequency() * SLICE_MS / 1000);
            }
        }
    }

    /// Kicks every physical CPU that has a vCPU of this VM in the guest,
    /// other than this one, out of it (a pending VM-wide request makes the
    /// vCPU leave at that exit), and wakes the CPUs that wait idle.
    pub fn kick_all(&self) {
        let here = smp::cpu_index();
        let mut cpus = 0u64;
        for p in self.vcpu_pcpu.iter() {
            cpus |= 1 << (p.load(Ordering::Relaxed) % 64);
        }
        for cpu in (0..smp::CPUS_ONLINE.load(Ordering::Acquire)).filter(|&c| c != here && cpus & (1 << c) != 0) {
            // The end of a request makes vCPUs runnable: choose again.
            WAKEUP[cpu % MAX_CPUS].store(true, Ordering::Relaxed);
            gic::kick(cpu, smp::cpu_mpidr(cpu));
        }
    }

    /// Sends out the kicks the vGIC has collected.
    pub fn flush_kicks(&self, me: Option<usize>) {
        let kicks = self.vgic.lock().take_kicks();
        if !kicks.is_empty() {
            self.kick(kicks, me);
        }
    }
}

/// Asks for VM `vm` to stop (SYSTEM_OFF, a fatal error, its last vCPU
/// off) for reason `why`: the VM-wide request protocol (`vmreq`) gets every
/// vCPU out of the guest, then `vmm::act` stops it once. The caller, a vCPU of
/// the VM, returns to the run loop, which leaves the guest.
pub fn stop_vm(vm: &Vm, why: &str) {
    vm.stop_reason.lock().get_or_insert_with(|| String::from(why));
    if vm.requests.post(Request::Stop) {
        vm.kick_all();
    }
}

/// PSCI SYSTEM_RESET: asks for the VM to be reloaded from its pristine
/// images, vCPU 0 at the kernel entry and every other vCPU off. Two vCPUs
/// asking at once get one reset (`vmreq`).
pub fn reset_vm(vm: &Vm) {
    if vm.requests.post(Request::Reset) {
        vm.kick_all();
    }
}

/// The console's `pause` (Xen's `xl pause`): no vCPU of `vm` enters the
/// guest until [`unpause_vm`]; those in it are kicked out, and the CPU
/// that finds them all out says `VM N "name" paused` (`vmreq`). Its
/// registers, timers and pending interrupts stay as they are. False if it
/// was paused already.
pub fn pause_vm(vm: &Vm) -> bool {
    let changed = vm.requests.pause();
    if changed {
        vm.kick_all();
    }
    changed
}

/// The console's `unpause`: the VM's vCPUs may enter the guest again,
/// where they were; the CPUs that parked them are woken. False if it was
/// not paused.
pub fn unpause_vm(vm: &Vm) -> bool {
    let changed = vm.requests.unpause();
    if changed {
        vm.kick_all();
    }
    changed
}

/// The console's `start`: a stopped VM boots again from its images (a
/// reset of a stopped VM, see `vmm::act`). False if a stronger request (a
/// stop) is pending.
pub fn start_vm(vm: &Vm) -> bool {
    let posted = vm.requests.post(Request::Start);
    if posted {
        vm.kick_all();
    }
    posted
}

/// Prints a report about something vCPU `index` of `vm` did that the
/// hypervisor refused, within the VM's report budget (`ratelimit`): a
/// guest looping over bad accesses must not flood the console.
pub fn report(vm: &Vm, index: usize, what: core::fmt::Arguments) {
    let verdict = vm.reports.lock().check(timer::now(), timer::frequency() * ratelimit::INTERVAL_S);
    if let Verdict::Print { suppressed } = verdict {
        if suppressed > 0 {
            println!("el2-hyp: VM \"{}\": ... and {suppressed} more reports suppressed", vm.name);
        }
        println!("el2-hyp: VM \"{}\" vCPU {index}: {what}", vm.name);
    }
}

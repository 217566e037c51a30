//! Lazy FP/SIMD switching (the policy is the pure `fpowner` core; see its
//! documentation and docs/world-switch.md "Lazy FP/SIMD").
//!
//! Each physical CPU's owner lives in [`FP_OWNER`]; a vCPU's saved values
//! live in its VM's `fp` slots (`vm::Vm::fp`), behind a mutex of their
//! own that is only ever held for one save or restore, so that any CPU can
//! save a vCPU's values without taking the vCPU's lock.

use super::{MAX_CPUS, gic, smp, switch};
use crate::fpowner::{self, Evict, FpToken};
use crate::stats::ExitReason;
use crate::vcpu::Vcpu;
use crate::vm::{self, Vm};
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{CPTR_EL2, Readable, Writeable};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Whose FP/SIMD values each physical CPU's registers hold (an
/// [`FpToken`], 0 for nobody). Only CPU `n` writes entry `n`.
static FP_OWNER: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// Set by another CPU that needs CPU `n` to save its owner's values (the
/// owner is about to run elsewhere); CPU `n` clears it in [`service_flush`].
static FP_FLUSH: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];

/// CPTR_EL2.TFP, bit 10 in the nVHE layout (ARM ARM D19.2.30 "CPTR_EL2",
/// E2H = 0): traps FP/SIMD instructions at EL0, EL1 *and EL2* to EL2 with
/// ESR_EL2.EC = 0x07. A hand-written mask: aarch64-cpu's `CPTR_EL2` defines
/// only the TAM field (see `sysreg.rs`).
const CPTR_TFP: u64 = 1 << 10;

/// Sets or clears the FP/SIMD trap. The ISB makes the change visible to
/// EL2's own next instruction (the save/restore code) and to the guest.
pub fn set_trap(on: bool) {
    let cptr = CPTR_EL2.get();
    let new = if on { cptr | CPTR_TFP } else { cptr & !CPTR_TFP };
    if new != cptr {
        CPTR_EL2.set(new);
        barrier::isb(barrier::SY);
    }
}

fn owner(cpu: usize) -> Option<FpToken> {
    FpToken::from_raw(FP_OWNER[cpu].load(Ordering::Acquire))
}

fn set_owner(cpu: usize, t: Option<FpToken>) {
    FP_OWNER[cpu].store(t.map_or(0, FpToken::raw), Ordering::Release);
}

/// The token of vCPU `v` of `vm` in the VM's life `generation`.
pub fn token(vm: &Vm, v: &Vcpu, generation: usize) -> FpToken {
    FpToken::new(vm.id, v.index, generation)
}

/// Saves the registers into `owner`'s context if that context is still
/// current (checked under the slot's lock, so that a concurrent
/// SYSTEM_RESET, which bumps the generation before clearing the slot,
/// wins). FP/SIMD must not be trapped at EL2.
fn save_for(owner: FpToken) {
    let Some(vm) = vm::vms().get(owner.vm()) else { return };
    let Some(slot) = vm.fp.get(owner.vcpu()) else { return };
    let mut s = slot.lock();
    if owner.is_current(vm.generation.load(Ordering::Acquire)) {
        switch::save_fp(&mut s);
    }
}

/// Before entering vCPU `v`: fetches its values back if they are still in
/// another CPU's registers (it has moved), then traps FP/SIMD unless this
/// CPU's registers already hold them.
pub fn vcpu_load(vm: &Vm, v: &Vcpu, generation: usize) {
    let here = smp::cpu_index();
    let me = token(vm, v, generation);
    service_flush();
    let online = smp::CPUS_ONLINE.load(Ordering::Acquire).min(MAX_CPUS);
    for cpu in (0..online).filter(|&c| c != here) {
        if owner(cpu) != Some(me) {
            continue;
        }
        // Only that CPU can read its registers: ask it to save them, and
        // wait (serving requests aimed at us meanwhile, so that two CPUs
        // waiting for each other both progress).
        FP_FLUSH[cpu].store(true, Ordering::Release);
        gic::kick(cpu, smp::cpu_mpidr(cpu));
        while owner(cpu) == Some(me) {
            service_flush();
            core::hint::spin_loop();
        }
    }
    set_trap(fpowner::trap_on_entry(owner(here), me));
}

/// After vCPU `v` ran here, when it may run on another CPU next (it is not
/// pinned and others wait for this CPU): saves its values now if this
/// CPU's registers hold them, so that the CPU that runs it next does not
/// have to ask this one and wait (KVM saves at every `vcpu_put`; this is
/// the same, for the vCPUs that may move).
pub fn vcpu_put(vm: &Vm, v: &Vcpu, generation: usize) {
    let here = smp::cpu_index();
    let me = token(vm, v, generation);
    if owner(here) == Some(me) {
        set_trap(false);
        save_for(me);
        set_owner(here, None);
        set_trap(true);
    }
}

/// The guest's first FP/SIMD instruction since it entered with TFP set
/// (ESR_EL2.EC 0x07): saves the registers for their owner, loads vCPU
/// `v`'s values, makes it the owner and lets it run untrapped. The
/// trapped instruction is re-executed (ELR_EL2 points at it).
pub fn handle_trap(vm: &Vm, v: &mut Vcpu, generation: usize) {
    v.stats.record(ExitReason::FpTrap);
    let here = smp::cpu_index();
    let me = token(vm, v, generation);
    set_trap(false);
    let generation_of = |i: usize| vm::vms().get(i).map(|vm| vm.generation.load(Ordering::Acquire));
    match fpowner::evict(owner(here), me, generation_of) {
        Evict::Save(o) => save_for(o),
        Evict::Discard | Evict::Nothing => {}
    }
    if owner(here) != Some(me)
        && let Some(slot) = vm.fp.get(v.index)
    {
        switch::restore_fp(&slot.lock());
    }
    set_owner(here, Some(me));
}

/// Serves another CPU's request (see [`vcpu_load`]): saves this CPU's
/// owner's values into its context and forgets the owner, leaving FP/SIMD
/// trapped for whatever vCPU runs here next. Called wherever this CPU
/// passes through EL2: entry, IRQ exits and the idle loop.
pub fn service_flush() {
    let here = smp::cpu_index();
    if !FP_FLUSH[here].swap(false, Ordering::AcqRel) {
        return;
    }
    if let Some(o) = owner(here) {
        set_trap(false);
        save_for(o);
        set_owner(here, None);
    }
    set_trap(true);
}

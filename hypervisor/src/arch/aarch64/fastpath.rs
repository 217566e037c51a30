//! The trap fast path (issue 19; KVM's `fixup_guest_exit`): an exit that
//! the pure [`crate::fastpath`] core recognises is answered here, called
//! from exceptions.S right after the guest's registers are saved, and the
//! guest is resumed at once: no return to the run loop (`vmm::run_vcpu`),
//! no host register restore and save, no list-register read-back, no
//! timer resample, no full syndrome decode.

#[cfg(feature = "trace")]
use super::{switch::ExitKind, timer};
use crate::exit::Action;
use crate::fastpath::{FastExit, classify};
use crate::mmio::{MmioAccess, decode};
use crate::stats::ExitReason;
use crate::vcpu::Vcpu;
use crate::vm::Vm;
use aarch64_cpu::registers::{ESR_EL2, FAR_EL2, HPFAR_EL2, Readable};
use shared::layout;

/// Whether the fast path may read or write guest register `rt`: not
/// x20-x28, which `guest_exit` leaves in the CPU for the fast path
/// (exceptions.S, the volatile-only exit), so `GuestRegs` does not hold
/// them yet and `guest_load_volatile` would not load a new value.
#[inline(always)]
fn saved_for_fast_path(rt: u8) -> bool {
    !(20..=28).contains(&rt)
}

/// Answers the synchronous exit that just happened if it is one the fast
/// path takes; None leaves it to `exit::handle_sync`, untouched. With
/// `lrs_loaded` (the list registers hold interrupts the vGIC model has
/// not read back) an access to the vGIC's registers is left to the slow
/// path, which reads them back first: a read of a pending or active bit
/// must see what the guest did with them.
fn handle(vm: &Vm, v: &mut Vcpu, lrs_loaded: bool) -> Option<Action> {
    if v.regs.pstate & crate::skip::PSTATE_AARCH32 != 0 {
        return None;
    }
    match classify(ESR_EL2.get(), v.regs.x[0], v.regs.x[1])? {
        FastExit::Hvc(x0) => {
            v.stats.record(ExitReason::Hvc);
            v.regs.x[..4].copy_from_slice(&[x0, 0, 0, 0]);
            Some(Action::Continue)
        }
        FastExit::IdRead { slot, rt } if saved_for_fast_path(rt) => {
            v.stats.record(ExitReason::SysReg);
            v.regs.set(rt, vm.id_regs.get_slot(usize::from(slot)));
            // An A64 instruction (checked above): 4 bytes.
            v.regs.pc = v.regs.pc.wrapping_add(4);
            Some(Action::Continue)
        }
        FastExit::Mmio(access) if saved_for_fast_path(access.reg) => mmio(vm, v, &access, lrs_loaded),
        FastExit::IdRead { .. } | FastExit::Mmio(_) => None,
    }
}

/// The MMIO branch of [`handle`]: a read the device answers without a
/// lock (`devices::Device::read_lockfree`: the UART's FR, the vGIC's
/// fixed words, which need no list-register read-back either) inline;
/// the rest out of line, so that neither these reads nor the hypercall
/// and ID register paths pay for the locked paths' registers.
#[inline(always)]
fn mmio(vm: &Vm, v: &mut Vcpu, access: &MmioAccess, lrs_loaded: bool) -> Option<Action> {
    let access = &MmioAccess { ipa: decode::fault_ipa(HPFAR_EL2.get(), FAR_EL2.get()), ..*access };
    if !access.write
        && let Some((device, _, offset)) = vm.bus.find(access.ipa)
        && let Some(value) = device.read_lockfree(vm, offset, access.size)
    {
        v.stats.record(ExitReason::for_mmio(false));
        v.regs.set(access.reg, decode::apply_load(value, access));
        // A64 and no writeback, as below.
        v.regs.pc = v.regs.pc.wrapping_add(4);
        return Some(Action::Continue);
    }
    mmio_locked(vm, v, access, lrs_loaded)
}

/// [`mmio`]'s accesses that go through the device's full read or write;
/// `access.ipa` is filled in.
#[inline(never)]
fn mmio_locked(vm: &Vm, v: &mut Vcpu, access: &MmioAccess, lrs_loaded: bool) -> Option<Action> {
    let uart = layout::UART_BASE..layout::UART_BASE + layout::UART_SIZE;
    if lrs_loaded && !uart.contains(&access.ipa) {
        return None;
    }
    match super::devices::emulate_mmio(vm, v.index, &v.regs, access) {
        Ok(read) => {
            v.stats.record(ExitReason::for_mmio(access.write));
            if !access.write {
                v.regs.set(access.reg, decode::apply_load(read, access));
            }
            // A64, and no writeback: ISV = 1 is never reported for
            // writeback forms (ARM ARM D17.2.37).
            v.regs.pc = v.regs.pc.wrapping_add(4);
            Some(Action::Continue)
        }
        // No device: RAM (a data abort on it is the first touch of a
        // block, guestram.rs, which the slow path fills and maps; no
        // device overlaps RAM, vmspec) or nothing, which the slow path
        // refuses. Asking the bus first keeps the RAM check off the MMIO
        // path. A device that refused the access: the slow path refuses
        // it again (no device changes state on a refusal) and reports it
        // with all of the guest's registers saved.
        Err(_) => None,
    }
}

/// What the run loop tells the fast path about the vCPU it enters, and
/// what the fast path tells it back. Lives on `run_vcpu`'s stack; the
/// world switch hands it to [`hyp_fast_exit`] (`HostRegs::fast`).
pub struct FastCtx {
    pub vm: *const Vm,
    pub vcpu: *mut Vcpu,
    /// The fast path may run: the timer's physical PPI is not masked (its
    /// line must then be resampled on every exit, `timer::set_vtimer_ppi`).
    pub enabled: bool,
    /// The list registers hold interrupts the vGIC model has not read back.
    pub lrs_loaded: bool,
    /// The vGIC's change count when the run loop entered the guest.
    pub changes_at_entry: u64,
    /// An exit the fast path answered but the run loop must act on (a
    /// yield, a request, list registers to read back): its action.
    pub handled: Option<Action>,
}

/// Called by exceptions.S on every synchronous exit, with the guest's
/// registers saved in its `GuestRegs` and EL2's interrupts masked. Returns
/// 0 to resume the guest at once, 1 to return to the run loop (with
/// `handled` set if the exit was answered here).
#[unsafe(no_mangle)]
extern "C" fn hyp_fast_exit(ctx: *mut core::ffi::c_void) -> u64 {
    // SAFETY: `run_vcpu` passes a context whose pointers are live for the
    // whole `switch::enter` call and that nothing else uses meanwhile
    // (`switch::enter`'s contract); this CPU runs nothing else until the
    // guest is resumed or the call returns.
    let ctx = unsafe { &mut *ctx.cast::<FastCtx>() };
    if !ctx.enabled {
        return 1;
    }
    // SAFETY: as above.
    let (vm, v) = unsafe { (&*ctx.vm, &mut *ctx.vcpu) };
    #[cfg(feature = "trace")]
    let exit_at = timer::now();
    // A pending request or pause: the slow path leaves the guest.
    if vm.requests.must_leave() {
        return 1;
    }
    let Some(action) = handle(vm, v, ctx.lrs_loaded) else {
        return 1;
    };
    vm.exits[v.index].bump();
    #[cfg(feature = "trace")]
    super::trace::record(vm, v, ExitKind::Sync, exit_at);
    // The access changed the vGIC (or another CPU did): the run loop reads
    // the list registers back if they hold interrupts, and flushes what is
    // now deliverable. (A request posted since the look above kicks this
    // CPU: the kick stays pending at EL2 and the guest exits again at once.)
    let resume = matches!(action, Action::Continue) && vm.vgic.changes() == ctx.changes_at_entry;
    if resume {
        return 0;
    }
    ctx.handled = Some(action);
    1
}

//! Guest RAM on demand, the hardware half ([`crate::guestram`] has the
//! rules and why): filling a block of a VM's RAM (`DC ZVA`, the images'
//! bytes, clean and invalidate to the PoC) and mapping it in stage 2, at
//! the guest's first touch or, for the blocks that hold the boot images,
//! when the VM is (re)loaded.

use super::switch;
use super::sysreg::{clean_invalidate_dcache_range, zero_range};
use crate::esr::FaultStatus;
use crate::guestram::{self, GuestRam};
use crate::mm::stage2::{MapKind, Stage2Table};
use crate::stats::ExitReason;
use crate::vcpu::Vcpu;
use crate::vm::Vm;
use aarch64_cpu::asm::barrier;
use alloc::format;
use alloc::string::String;
use core::ops::Range;

/// Fills the fill unit `block` of `ram` (zeros, then the parts of `images`,
/// given as (IPA, bytes), that fall inside it), cleans and invalidates it
/// to the point of coherency, and maps it in `s2`.
///
/// The clean is what makes this right on hardware, not only under QEMU: a
/// guest reads memory with its MMU and caches off at first (Linux's
/// booting.rst asks for the image to be cleaned to the PoC), so zeros left
/// dirty in our cache would let it read whatever the DRAM held before;
/// invalidating too means that no line of ours can later shadow what the
/// guest writes uncached (KVM's `clean_dcache_guest_page` is the same
/// clean+invalidate to the PoC). The block must not be mapped: no vCPU of
/// the VM can reach it while it is filled.
fn fill(ram: &GuestRam, s2: &mut Stage2Table, block: Range<u64>, images: &[(u64, &[u8])]) -> Result<(), String> {
    let host = ram.host_of(block.start) as usize;
    let len = (block.end - block.start) as usize;
    // SAFETY: the block lies in [host_ram, host_ram + size), allocated for
    // this VM alone and identity mapped at EL2 as normal memory; it is not
    // mapped in the VM's stage 2 (the caller checked, holding the stage-2
    // lock), so no vCPU touches it meanwhile.
    unsafe { zero_range(host, len) };
    for &(at, bytes) in images {
        if let Some((ipa, part)) = guestram::image_part(&block, at, bytes) {
            // SAFETY: as above; `part` lies inside the block (image_part)
            // and comes from reserved RAM or the heap, never from the block.
            unsafe {
                core::ptr::copy_nonoverlapping(part.as_ptr(), ram.host_of(ipa) as *mut u8, part.len());
            }
        }
    }
    clean_invalidate_dcache_range(host, len);
    // Invalid to valid: no break-before-make and no TLB maintenance (a TLB
    // holds no entry that gave a translation fault, ARM ARM D8.13); the DSB
    // makes the descriptor visible to the table walker before the guest
    // retries (the ERET that resumes it is context synchronizing).
    s2.map(block.start, ram.host_of(block.start), block.end - block.start, MapKind::Ram)
        .map_err(|e| format!("memory: {e}"))?;
    barrier::dsb(barrier::ISHST);
    Ok(())
}

/// A stage-2 fault at `ipa` with fault status `status`: if it is a
/// translation fault in the VM's RAM, fills and maps the block that holds
/// it (unless another vCPU did first) and returns true, and the guest
/// retries its access. False otherwise: the caller goes on to MMIO
/// emulation or the injected abort (an external abort on RAM, say, must
/// not be retried forever). Bounded work per exit: one 2 MiB block.
pub fn handle_fault(vm: &Vm, v: &mut Vcpu, ipa: u64, status: FaultStatus) -> bool {
    let ram = vm.ram();
    let Some(block) = ram.block_of(ipa).filter(|_| matches!(status, FaultStatus::Translation { .. })) else {
        return false;
    };
    v.stats.record(ExitReason::Stage2Fault);
    let mut s2 = vm.stage2.lock();
    if s2.translate(ipa).is_none()
        && let Err(e) = fill(&ram, &mut s2, block, &[])
    {
        // Only a bad range can fail, and RAM's blocks are checked when the
        // VM is built; say so rather than loop on the fault.
        drop(s2);
        super::vmops::stop_vm(vm, &format!("stage 2 of RAM at IPA {ipa:#x}: {e}"));
    }
    true
}

/// Fills and maps the fill unit `block` of the VM's RAM unless this
/// instance did already: before a device (`vdisk`) reads or writes guest
/// RAM the guest has not touched yet, so that its bytes are this
/// instance's and a later first touch does not zero what the device wrote
/// (module doc of `crate::guestram`). The caller is a vCPU of the VM in a
/// trap, so no reset can unmap the block while the device uses it.
pub fn ensure_filled(vm: &Vm, block: Range<u64>) -> Result<(), String> {
    let ram = vm.ram();
    let mut s2 = vm.stage2.lock();
    if s2.translate(block.start).is_none() {
        fill(&ram, &mut s2, block, &[])?;
    }
    Ok(())
}

/// Makes the VM's RAM new (VM build or reset; no vCPU in the guest): every
/// block of the previous instance unmapped, then the blocks that hold
/// `images` (IPA, bytes) filled and mapped; the VM's TLB entries dropped on
/// every CPU; stale instructions dropped. The rest is filled on first touch.
pub fn reload(vm: &Vm, images: &[(u64, &[u8])]) -> Result<(), String> {
    let ram = vm.ram();
    {
        let mut s2 = vm.stage2.lock();
        // Removes the blocks and frees the tables under them. No vCPU of the
        // VM runs; a walk that caches anything of the old tables meanwhile
        // caches it under this VMID, which flush_vmid below drops before
        // any vCPU enters again.
        s2.unmap(ram.ipa, ram.size).map_err(|e| format!("memory: {e}"))?;
        for &(at, bytes) in images {
            for block in ram.blocks(at..at.saturating_add(bytes.len() as u64)) {
                // Two images may share a block: it is filled once, with both.
                if s2.translate(block.start).is_none() {
                    fill(&ram, &mut s2, block, images)?;
                }
            }
        }
    }
    switch::flush_vmid(vm.vttbr);
    // SAFETY: instruction-cache invalidation does not change memory.
    unsafe { core::arch::asm!("ic ialluis", options(nostack)) };
    barrier::dsb(barrier::ISH);
    barrier::isb(barrier::SY);
    Ok(())
}

//! Access to user memory from the kernel: `copy_from_user`,
//! `copy_to_user`, `clear_user`, and the exception table that turns a
//! fault in them into -EFAULT (uaccess.S; Linux arch/arm64/mm/extable.c).
//!
//! A user pointer is first range-checked (`access_ok`: the whole range lies
//! below TASK_SIZE); the copy itself uses unprivileged loads/stores, so a
//! page EL0 may not touch faults even though the kernel could.

use crate::mm::Errno;
use crate::mm::mm_struct::TASK_SIZE;

unsafe extern "C" {
    fn __arch_copy_from_user(dst: *mut u8, src: usize, len: usize) -> usize;
    fn __arch_copy_to_user(dst: usize, src: *const u8, len: usize) -> usize;
    fn __arch_clear_user(dst: usize, len: usize) -> usize;
    static uaccess_extable: [ExtableEntry; 0];
    static uaccess_extable_end: [ExtableEntry; 0];
}

/// `struct exception_table_entry`: a faulting instruction and where to go.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExtableEntry {
    insn: usize,
    fixup: usize,
}

/// `search_exception_tables`: the fixup for a faulting pc, if it is a
/// uaccess instruction.
pub fn search_extable(pc: usize) -> Option<usize> {
    // SAFETY: both symbols delimit one array of ExtableEntry in .rodata
    // (uaccess.S); relocation made every address absolute.
    let table = unsafe {
        let start = core::ptr::addr_of!(uaccess_extable) as *const ExtableEntry;
        let end = core::ptr::addr_of!(uaccess_extable_end) as *const ExtableEntry;
        core::slice::from_raw_parts(start, end.offset_from(start) as usize)
    };
    table.iter().find(|e| e.insn == pc).map(|e| e.fixup)
}

/// `access_ok`: the range lies entirely in the user half.
pub fn access_ok(addr: usize, len: usize) -> bool {
    addr.checked_add(len).is_some_and(|end| end <= TASK_SIZE)
}

/// Copies `dst.len()` bytes from user address `src`.
pub fn copy_from_user(dst: &mut [u8], src: usize) -> Result<(), Errno> {
    if !access_ok(src, dst.len()) {
        return Err(Errno::EFAULT);
    }
    // SAFETY: `dst` is a valid kernel buffer of that length; the user side
    // is accessed with unprivileged loads whose faults the extable fixes.
    let left = unsafe { __arch_copy_from_user(dst.as_mut_ptr(), src, dst.len()) };
    if left == 0 { Ok(()) } else { Err(Errno::EFAULT) }
}

/// Copies `src` to user address `dst`.
pub fn copy_to_user(dst: usize, src: &[u8]) -> Result<(), Errno> {
    if !access_ok(dst, src.len()) {
        return Err(Errno::EFAULT);
    }
    // SAFETY: `src` is a valid kernel buffer; the user side is written with
    // unprivileged stores whose faults the extable fixes.
    let left = unsafe { __arch_copy_to_user(dst, src.as_ptr(), src.len()) };
    if left == 0 { Ok(()) } else { Err(Errno::EFAULT) }
}

/// Zeroes `len` bytes at user address `dst`.
pub fn clear_user(dst: usize, len: usize) -> Result<(), Errno> {
    if !access_ok(dst, len) {
        return Err(Errno::EFAULT);
    }
    // SAFETY: unprivileged stores only, with extable fixups.
    let left = unsafe { __arch_clear_user(dst, len) };
    if left == 0 { Ok(()) } else { Err(Errno::EFAULT) }
}

/// `get_user` of a u64.
pub fn get_user_u64(addr: usize) -> Result<u64, Errno> {
    let mut b = [0u8; 8];
    copy_from_user(&mut b, addr)?;
    Ok(u64::from_le_bytes(b))
}

/// `put_user` of a u64.
pub fn put_user_u64(addr: usize, v: u64) -> Result<(), Errno> {
    copy_to_user(addr, &v.to_le_bytes())
}

/// `put_user` of an i32.
pub fn put_user_i32(addr: usize, v: i32) -> Result<(), Errno> {
    copy_to_user(addr, &v.to_le_bytes())
}

unsafe extern "C" {
    fn __arch_probe_read(va: usize) -> ProbeResult;
    fn __arch_probe_exec(va: usize) -> u64;
    fn __arch_probe_pmcr() -> ProbeResult;
    fn __arch_probe_pmccntr() -> ProbeResult;
    fn __arch_probe_ld8(va: usize) -> ProbeResult;
    fn __arch_probe_ld16(va: usize) -> ProbeResult;
    fn __arch_probe_ld32(va: usize) -> ProbeResult;
    fn __arch_probe_ld64(va: usize) -> ProbeResult;
    fn __arch_probe_st8(va: usize, value: u64) -> ProbeResult;
    fn __arch_probe_st16(va: usize, value: u64) -> ProbeResult;
    fn __arch_probe_st32(va: usize, value: u64) -> ProbeResult;
    fn __arch_probe_st64(va: usize, value: u64) -> ProbeResult;
}

#[repr(C)]
struct ProbeResult {
    value: u64,
    faulted: u64,
}

/// The probed read took a synchronous abort.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Aborted;

/// Reads 8 bytes at kernel virtual address `va`; `Err(Aborted)` if the
/// read aborted (the abort is turned into a result by the exception table).
pub fn probe_read(va: usize) -> Result<u64, Aborted> {
    // SAFETY: the load is listed in the exception table: any synchronous
    // abort it takes resumes at the fixup, which reports the fault.
    let r = unsafe { __arch_probe_read(va) };
    if r.faulted == 0 { Ok(r.value) } else { Err(Aborted) }
}

/// ESR_EL1 and FAR_EL1 of the last instruction abort a
/// [`probe_exec`] took (the trap handler records them).
pub static FETCH_ABORT: [core::sync::atomic::AtomicU64; 2] =
    [core::sync::atomic::AtomicU64::new(0), core::sync::atomic::AtomicU64::new(0)];

/// Branches to kernel virtual address `va`; `Err((ESR_EL1, FAR_EL1))` if
/// fetching the code there took an instruction abort (the trap handler
/// turns it into a result through the exception table), Ok if the code
/// returned.
///
/// # Safety
/// Whatever code is at `va` runs; it must return or abort on the fetch.
pub unsafe fn probe_exec(va: usize) -> Result<(), (u64, u64)> {
    use core::sync::atomic::Ordering::Relaxed;
    // SAFETY: the return address of the branch is listed in the exception
    // table; the caller vouches for the code at `va`.
    if unsafe { __arch_probe_exec(va) } == 0 {
        Ok(())
    } else {
        Err((FETCH_ABORT[0].load(Relaxed), FETCH_ABORT[1].load(Relaxed)))
    }
}

/// Reads PMCR_EL0 and PMCCNTR_EL0, each `Err(Aborted)` if the read was
/// refused with an undefined-instruction exception (the exception table
/// covers both reads).
pub fn probe_pmu() -> (Result<u64, Aborted>, Result<u64, Aborted>) {
    // SAFETY: reading PMU registers has no side effects; an exception
    // either read takes resumes at its fixup, which reports it.
    let (a, b) = unsafe { (__arch_probe_pmcr(), __arch_probe_pmccntr()) };
    let res = |r: ProbeResult| if r.faulted == 0 { Ok(r.value) } else { Err(Aborted) };
    (res(a), res(b))
}

/// Reads `size` (1, 2, 4 or 8) bytes of device memory at `va` with one
/// load; `Err(Aborted)` if it took a synchronous abort. Other sizes abort
/// without an access.
///
/// # Safety
/// `va` must be mapped as device memory whose registers tolerate reads
/// (a read may have side effects on the device); unmapped or misaligned
/// addresses merely abort.
pub unsafe fn probe_mmio_read(va: usize, size: u8) -> Result<u64, Aborted> {
    // SAFETY: each load is listed in the exception table; the caller
    // vouches for the device.
    let r = unsafe {
        match size {
            1 => __arch_probe_ld8(va),
            2 => __arch_probe_ld16(va),
            4 => __arch_probe_ld32(va),
            8 => __arch_probe_ld64(va),
            _ => return Err(Aborted),
        }
    };
    if r.faulted == 0 { Ok(r.value) } else { Err(Aborted) }
}

/// Writes the low `size` (1, 2, 4 or 8) bytes of `value` to device memory
/// at `va` with one store; `Err(Aborted)` if it took a synchronous abort.
///
/// # Safety
/// `va` must be mapped as device memory that this kernel may write
/// anything to (no RAM: the store is not checked).
pub unsafe fn probe_mmio_write(va: usize, size: u8, value: u64) -> Result<(), Aborted> {
    // SAFETY: as for `probe_mmio_read`.
    let r = unsafe {
        match size {
            1 => __arch_probe_st8(va, value),
            2 => __arch_probe_st16(va, value),
            4 => __arch_probe_st32(va, value),
            8 => __arch_probe_st64(va, value),
            _ => return Err(Aborted),
        }
    };
    if r.faulted == 0 { Ok(()) } else { Err(Aborted) }
}

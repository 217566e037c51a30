//! aarch64 glue of the guest kernel: entry (entry.S), exception vectors,
//! the MMU, the PL011 console, PSCI calls to the hypervisor.

pub mod cpu;
pub mod entry_common;
pub mod irq;
pub mod memory;
pub mod mm;
pub mod mmu;
pub mod pgtable;
pub mod process;
pub mod psci;
pub mod pvtime;
pub mod shm;
pub mod signal;
pub mod smp;
pub mod spinlock;
pub mod sysreg;
#[cfg(feature = "trace")]
pub mod trace;
pub mod trap;
pub mod tty;
pub mod uaccess;
pub mod uart;
pub mod virtio;

use crate::cmdline::Cmdline;
use crate::console::ByteSink;
use crate::println;
use core::fmt::Write;
use shared::platform::Platform;

core::arch::global_asm!(
    include_str!("macros.S"),
    include_str!("entry.S"),
    include_str!("exceptions.S"),
    include_str!("uaccess.S"),
    include_str!("page.S")
);

/// Size of each kernel stack (KERNEL_STACK_SIZE in macros.S).
pub const KERNEL_STACK_SIZE: usize = 0x20000;
/// Most CPUs the kernel drives.
pub const MAX_CPUS: usize = shared::platform::MAX_CPUS;

/// Per-CPU kernel stacks for boot and idle.
#[repr(C, align(4096))]
pub struct Stacks(pub [[u8; KERNEL_STACK_SIZE]; MAX_CPUS]);

/// The stacks, in BSS; entry.S starts CPU 0 on the first.
#[unsafe(no_mangle)]
pub static mut KERNEL_STACKS: Stacks = Stacks([[0; KERNEL_STACK_SIZE]; MAX_CPUS]);

/// Boot translation tables used by entry.S until `mmu::init` replaces them.
#[repr(C, align(4096))]
pub struct BootTable(pub [u64; 512]);
#[unsafe(no_mangle)]
pub static mut BOOT_L0: BootTable = BootTable([0; 512]);
#[unsafe(no_mangle)]
pub static mut BOOT_L1: BootTable = BootTable([0; 512]);

static mut UART: Option<uart::Pl011> = None;

/// The DTB we booted with, (virtual address, size): in RAM that memblock
/// keeps reserved, never written.
static DTB: spin::Once<(usize, usize)> = spin::Once::new();

/// The DTB we booted with (for device lookups beyond [`Platform`]).
pub fn dtb() -> Option<&'static [u8]> {
    let &(va, size) = DTB.get()?;
    // SAFETY: see `DTB`; the linear map covers it for the kernel's life.
    Some(unsafe { core::slice::from_raw_parts(va as *const u8, size) })
}

/// The initramfs the boot loader left at `region`, as bytes.
pub fn initrd(region: shared::platform::Region) -> &'static [u8] {
    // SAFETY: the initrd lies in RAM (the linear map) and memblock keeps it
    // reserved for the kernel's life; nothing writes to it.
    unsafe { core::slice::from_raw_parts(mmu::phys_to_virt(region.base) as *const u8, region.size as usize) }
}

/// Rust entry (entry.S), MMU on with the boot tables, running at the high VA.
#[unsafe(no_mangle)]
extern "C" fn kernel_main(dtb_pa: u64, load_pa: u64, image_end: u64) -> ! {
    memory::init_early_heap();
    enable_fp();
    let dtb_va = mmu::phys_to_virt(dtb_pa);
    // SAFETY: the DTB lies in the same 1 GiB block as the image (the
    // hypervisor puts it at the top of our RAM), which the boot tables map.
    let (platform, dtb_size) = match unsafe { read_platform(dtb_va) } {
        Ok(p) => p,
        // No console without a DTB: tell the hypervisor we are done.
        Err(_) => psci::system_off(),
    };
    DTB.call_once(|| (dtb_va, dtb_size as usize));
    let image_size = image_end - mmu::phys_to_virt(load_pa) as u64;
    mmu::init(&platform, load_pa, image_size);
    if let Some(u) = platform.uart {
        // SAFETY: the DTB names this PL011 as our console; mmu::init mapped it.
        let driver = unsafe { uart::Pl011::new(mmu::phys_to_virt(u.region.base)) };
        // SAFETY: single CPU at boot; written once before any reader.
        let sink: &'static mut dyn ByteSink = unsafe {
            let slot = &mut *core::ptr::addr_of_mut!(UART);
            *slot = Some(driver);
            slot.as_mut().unwrap()
        };
        crate::console::init(sink);
    }
    let cmdline = Cmdline::parse(platform.bootargs.as_str());
    let ram: u64 = platform.memory.iter().map(|r| r.size).sum();
    println!(
        "guest-kernel: hello from VM \"{}\": {} MiB RAM, {} CPU(s), HZ={}",
        if platform.vm_name.is_empty() { "?" } else { platform.vm_name.as_str() },
        ram >> 20,
        platform.cpus.len(),
        cmdline.hz
    );
    let mpidrs: heapless::Vec<u64, MAX_CPUS> = platform.cpus.iter().map(|c| c.mpidr).collect();
    cpu::set_cpu_mpidrs(&mpidrs);
    let mem = memory::mem_init(&platform, load_pa, image_size, dtb_pa, dtb_size);
    println!(
        "guest-kernel: memory: {} of {} pages free after memblock hand-over; kmalloc is the heap",
        mem.freed, mem.total
    );
    memory::print_buddyinfo();
    crate::boot::run(&platform, &cmdline)
}

/// Reads the DTB at virtual address `va`.
///
/// # Safety
/// `va` must be mapped and hold a DTB header and `totalsize` bytes.
unsafe fn read_platform(va: usize) -> Result<(Platform, u64), shared::platform::DtbError> {
    // SAFETY: guaranteed by the caller.
    let size = unsafe { shared::platform::fdt_total_size(va as *const u8)? };
    // SAFETY: guaranteed by the caller.
    let blob = unsafe { core::slice::from_raw_parts(va as *const u8, size) };
    Ok((Platform::from_fdt(blob)?, size as u64))
}

/// CPACR_EL1.FPEN = 0b11: EL0 programs use FP/SIMD (the kernel itself is
/// soft-float; cpu_switch_to saves the registers per task).
pub fn enable_fp() {
    use aarch64_cpu::registers::{CPACR_EL1, ReadWriteable};
    CPACR_EL1.modify(CPACR_EL1::FPEN::TrapNothing);
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let _ = writeln!(entry_common::Emergency, "\n*** guest-kernel panic: {info}");
    psci::system_off()
}

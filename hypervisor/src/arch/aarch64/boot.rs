//! Boot: from `hyp_main` (entry.S, MMU off, x0 = DTB) to every physical
//! CPU running vCPUs.
//!
//! With the MMU off (steps 1-3) every data access is Device-nGnRnE, where
//! exclusives and atomics are not guaranteed to work (ARM ARM B2.9: only on
//! Normal cacheable memory; a real Cortex-A53/A72 may fail a `stxr` forever
//! or fault, though QEMU does not model it). So nothing there takes a lock,
//! fills a once-cell, allocates or uses an atomic: plain loads and stores
//! only, and reports go straight to the UART (`uart::early_print`). Every
//! lock of `crate::sync` checks SCTLR_EL2 and stops the machine if one is
//! taken too early.
//!
//! 1. read the DTB into a [`Platform`] (`Platform::from_fdt`: fixed-size
//!    `heapless` containers, no allocation, no atomics) and note its
//!    console UART for early reports;
//! 2. refuse to go on below EL2 (report, PSCI `SYSTEM_OFF`);
//! 3. early MMU: build the early identity map (`mm::early_map`: the DTB's
//!    RAM and the image Normal write-back, everything else in the low 512
//!    GiB Device-nGnRE; static tables, plain stores) and turn the MMU,
//!    D-cache and I-cache on with it (`mmu::enable_early`, entry.S
//!    `enable_mmu`, which first invalidates the image's cache lines: the
//!    relocations, BSS and this code's stack were written with the caches
//!    off). From here on, locks and atomics are safe;
//! 4. bring up the console, build the frame allocator (RAM minus image,
//!    DTB, reserved regions and the VM images the loader placed) and the
//!    heap;
//! 5. build the full EL2 map (`aarch64-paging`, on the heap: RAM and the
//!    devices EL2 drives) and switch to it (`El2Map::activate`: TTBR0
//!    replaced with the MMU briefly off, so no TLB conflict); install the
//!    vectors, set the EL2 controls;
//! 6. build every VM the DTB's `/chosen/hypervisor` describes (a bad one is
//!    reported and skipped, the others start);
//! 7. start the secondary CPUs: each turns its MMU on with the full map in
//!    entry.S `secondary_entry`, before any Rust code; every CPU enters
//!    [`cpu_loop`].

use super::mmu::El2Map;
use super::platform::{DTB, FRAMES, PLATFORM};
use super::sysreg::{PMCR_EL0, VPIDR_EL2};
use super::uart::{UartDriver, early_print};
use super::{firmware, smp, vmm};
use crate::console::ByteSink;
use crate::println;
use crate::sync::MmuChecked;
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{
    CNTHCTL_EL2, CNTVOFF_EL2, CPTR_EL2, HCR_EL2, ICC_SRE_EL2, MDCR_EL2, MIDR_EL1, ReadWriteable, Readable, VBAR_EL2,
    Writeable,
};
use buddy_system_allocator::LockedHeap;
use shared::platform::{GicVersion, Platform, PsciMethod, Region};

/// The global allocator: a buddy heap over frames taken at boot, checked
/// against use before the MMU is on.
#[global_allocator]
static HEAP: MmuChecked<LockedHeap<32>> = MmuChecked(LockedHeap::empty());

/// Heap size taken from RAM at boot (page tables, VM state, DTBs).
const HEAP_SIZE: u64 = 16 << 20;

static mut UART: Option<UartDriver> = None;

/// Reads the DTB at `dtb` (its header gives the size).
///
/// # Safety
/// `dtb` must be null or the address of readable memory holding a DTB
/// header, followed by `totalsize` readable bytes if the magic is right.
unsafe fn read_platform(dtb: usize) -> Result<(Platform, Region), shared::platform::DtbError> {
    // SAFETY: the caller guarantees the header is readable.
    let size = unsafe { shared::platform::fdt_total_size(dtb as *const u8)? };
    // SAFETY: the header says `size` bytes follow; the caller guarantees they are readable.
    let blob = unsafe { core::slice::from_raw_parts(dtb as *const u8, size) };
    Ok((Platform::from_fdt(blob)?, Region { base: dtb as u64, size: size as u64 }))
}

/// Rust entry of the boot CPU (entry.S), MMU off.
#[unsafe(no_mangle)]
extern "C" fn hyp_main(dtb: usize, image_start: usize, image_end: usize, below_el2: u64) -> ! {
    // ---- MMU off: plain loads and stores only (see the module doc). ----
    super::arm_stack_canary(0);
    // SAFETY: x0 is the DTB address per the arm64 boot protocol; a bad
    // value is caught by the magic check (RAM is readable with the MMU off).
    let (platform, dtb_region) = match unsafe { read_platform(dtb) } {
        Ok(p) => p,
        // No DTB means no console to complain on: stop the machine.
        Err(_) => super::halt(),
    };
    // SAFETY: the boot CPU alone runs; the DTB names this UART as the console.
    unsafe { super::uart::set_early_console(platform.uart) };
    if below_el2 != 0 {
        // EL2 registers are out of reach, and so is the lock check.
        early_print(format_args!(
            "el2-hyp: started at EL1: enable virtualization, e.g. QEMU -M virt,virtualization=on\n"
        ));
        firmware::system_off_via(platform.psci.unwrap_or(PsciMethod::Smc));
        super::park();
    }
    if platform.selftest_lock_before_mmu {
        // The self-test of the lock check (ci/qemu-tests boot.rs): this
        // must stop the machine with a report naming this line.
        drop(FRAMES.lock());
    }
    let image = Region { base: image_start as u64, size: (image_end - image_start) as u64 };
    // SAFETY: boot CPU, once, MMU off, no other CPU running; `image` is the
    // running image (entry.S passes its bounds), `dtb_region` the DTB.
    if let Err(e) = unsafe { super::mmu::enable_early(&platform.memory, image, dtb_region) } {
        early_print(format_args!("el2-hyp: cannot turn the EL2 MMU on: {e}\n"));
        super::halt();
    }

    // ---- MMU and caches on: locks and atomics work from here. ----
    DTB.call_once(|| dtb_region);
    if let Some(uart) = platform.uart {
        // SAFETY: the DTB names this UART as the console; nothing else drives it.
        let driver = unsafe { UartDriver::new(&uart) };
        // SAFETY: single-threaded boot; UART is written once, before any reader.
        let uart_ref: &'static mut dyn ByteSink = unsafe {
            let slot = &mut *core::ptr::addr_of_mut!(UART);
            *slot = Some(driver);
            slot.as_mut().unwrap()
        };
        // The console's lock lies in `.data`, right below the boot stack.
        super::check_stack(0);
        crate::console::init(uart_ref);
    }
    firmware::init(platform.psci);
    smp::set_this_cpu(0, super::sysreg::mpidr());
    println!(
        "el2-hyp: {} at EL2, {} CPU(s), {}, {} MiB RAM",
        if platform.model.is_empty() { "unknown machine" } else { platform.model.as_str() },
        platform.cpus.len(),
        match platform.gic.as_ref().map(|g| g.version) {
            Some(GicVersion::V3) => "GICv3",
            Some(GicVersion::V2) => "GICv2",
            None => "no GIC",
        },
        platform.memory.iter().map(|r| r.size).sum::<u64>() >> 20
    );
    for (node, err) in platform.vm_errors.iter() {
        println!("el2-hyp: VM node {node} refused: {err}");
    }

    // Physical memory.
    let heap_region;
    {
        let mut frames = FRAMES.lock();
        for r in platform.memory.iter() {
            let _ = frames.add(*r);
        }
        // The hypervisor, the DTB, the DTB's reservations and initrd, and
        // every VM's images: room for all of them (a region left out here
        // would be handed out while a VM uses it).
        const MAX_RESERVED: usize =
            3 + shared::platform::MAX_RESERVED + shared::platform::MAX_VMS * (2 + shared::platform::MAX_DISKS);
        let mut reserved: heapless::Vec<Region, MAX_RESERVED> = heapless::Vec::new();
        let _ = reserved.push(image);
        let _ = reserved.push(dtb_region);
        for r in platform.reserved.iter().chain(platform.initrd.iter()) {
            let _ = reserved.push(*r);
        }
        for vm in platform.vms.iter() {
            let _ = reserved.push(vm.kernel);
            if let Some(rd) = vm.initrd {
                let _ = reserved.push(rd);
            }
            for d in vm.disks.iter() {
                let _ = reserved.push(d.region);
            }
        }
        for r in reserved.iter().filter(|r| r.size != 0) {
            let _ = frames.reserve(*r);
        }
        let heap = match frames.alloc(HEAP_SIZE, 4096) {
            Ok(h) => h,
            Err(e) => {
                println!("el2-hyp: no memory for the hypervisor heap: {e}");
                super::halt();
            }
        };
        // SAFETY: the range was just taken from the frame allocator and is
        // used by nothing else.
        unsafe { HEAP.checked().lock().init(heap as usize, HEAP_SIZE as usize) };
        heap_region = Region { base: heap, size: HEAP_SIZE };
    }

    // EL2 stage 1: all RAM and the devices we drive, identity mapped.
    let mut map = El2Map::new();
    for r in platform.memory.iter() {
        map.map_ram(r.base, r.size);
    }
    // The image and DTB are normally inside RAM; map them anyway in case
    // the loader put them elsewhere (harmless if already covered).
    map.map_ram(image.base & !0xfff, (image.size + 0xfff) & !0xfff);
    if let Some(u) = platform.uart {
        map.map_device(u.region.base, u.region.size.max(0x1000));
    }
    if let Some(g) = platform.gic.as_ref() {
        map.map_device(g.gicd.base, g.gicd.size);
        for r in g.gicr.iter().chain(g.gicc.iter()).chain(g.gich.iter()) {
            map.map_device(r.base, r.size);
        }
        // GICC_DIR is at 0x1000 (EOImode = 1, gic.rs), even where a DTB
        // gives the CPU interface only its first page.
        if let Some(c) = g.gicc {
            map.map_device(c.base, c.size.max(0x2000));
        }
    }
    // SAFETY: the early map is live; the full map covers RAM (image,
    // stacks, heap, DTB) as Normal and the console and GIC as Device, as
    // the early map does.
    unsafe { map.activate() };
    let platform = PLATFORM.call_once(|| platform);
    init_el2_controls();
    if let Some(g) = platform.gic.as_ref() {
        super::gic::init(g, platform.cpus.len());
        super::vgic_hw::init(g.version, g.gich.map(|r| r.base));
    }
    smp::report_started(0);

    vmm::create_vms(platform, &[image, dtb_region, heap_region]);
    super::check_stack(0);

    // Secondary CPUs.
    let me = super::sysreg::mpidr();
    let mut next = 1;
    for cpu in platform.cpus.iter().filter(|c| c.mpidr != me) {
        if next >= super::MAX_CPUS {
            break;
        }
        if smp::start_cpu(next, cpu.mpidr) {
            next += 1;
        }
    }
    println!("el2-hyp: {} CPU(s) online", smp::CPUS_ONLINE.load(core::sync::atomic::Ordering::Acquire));
    vmm::assign_vcpus(next);
    if let Some(u) = platform.uart {
        super::console_in::init(&u);
    }
    cpu_loop(0)
}

/// EL2 controls every CPU sets once: vectors, no traps of our own FP use,
/// the guests' view of the counter and timers, and (GICv3) EL1 access to
/// the system-register CPU interface.
pub fn init_el2_controls() {
    unsafe extern "C" {
        static hyp_vectors: u8;
    }
    let vbar = core::ptr::addr_of!(hyp_vectors) as u64;
    VBAR_EL2.set(vbar);
    // HCR_EL2: only RW until a guest is loaded.
    HCR_EL2.write(HCR_EL2::RW::EL1IsAarch64);
    // VPIDR_EL2 (UNKNOWN at reset): the MIDR_EL1 guests read, untrapped.
    VPIDR_EL2.set(MIDR_EL1.get());
    // CPTR_EL2: RES1 bits [13:12], [9:0]; TFP clear (FP not trapped yet).
    // A raw value: aarch64-cpu's CPTR_EL2 names only TAM.
    CPTR_EL2.set(0x33ff);
    // CNTHCTL_EL2: EL1 may read the physical counter (EL1PCTEN) but not
    // use the physical timer (EL1PCEN clear): that traps, and each vCPU's
    // physical timer is emulated (timer::ptimer_access).
    CNTHCTL_EL2.write(CNTHCTL_EL2::EL1PCTEN::SET);
    CNTVOFF_EL2.set(0);
    // MDCR_EL2 (ARM ARM D19.2.x): HPMN = all counters (PMCR_EL0.N, bits
    // [15:11]); TPM and TPMCR trap every PMU register access from EL0/EL1 to EL2,
    // where it is refused (UNDEF): the PMU is not switched between VMs
    // and ID_AA64DFR0_EL1.PMUVer tells guests there is none. TDA, TDOSA and
    // TDRA trap the debug registers (breakpoints, watchpoints, MDSCR_EL1,
    // the OS lock, the debug ROM address), which each vCPU has its own
    // emulated copy of (`vdebug`): the hardware's are never the guests', so
    // no VM sees or changes another's.
    let pmcr_n = (PMCR_EL0.get() >> 11) & 0x1f;
    MDCR_EL2.write(
        MDCR_EL2::HPMN.val(pmcr_n)
            + MDCR_EL2::TPM::SET
            + MDCR_EL2::TPMCR::SET
            + MDCR_EL2::TDA::SET
            + MDCR_EL2::TDOSA::SET
            + MDCR_EL2::TDRA::SET,
    );
    if let Some(GicVersion::V3) = PLATFORM.get().and_then(|p| p.gic.as_ref()).map(|g| g.version) {
        // ICC_SRE_EL2: SRE (system registers), Enable (EL1 may use ICC_SRE_EL1).
        ICC_SRE_EL2.modify(ICC_SRE_EL2::SRE::SET + ICC_SRE_EL2::ENABLE::SET);
    }
    barrier::isb(barrier::SY);
}

/// How many CPUs have left their run loop.
static FINISHED: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// Every physical CPU ends here: run vCPUs until every VM has stopped.
pub fn cpu_loop(cpu: usize) -> ! {
    // The boot CPU's deepest stack use is behind it (parsing, building
    // the VMs); a secondary's just began.
    if cpu != 0 {
        super::arm_stack_canary(cpu);
    }
    super::check_stack(cpu);
    vmm::run_cpu(cpu);
    super::check_stack(cpu);
    FINISHED.fetch_add(1, core::sync::atomic::Ordering::AcqRel);
    if cpu == 0 {
        // Let the other CPUs finish what they print (a stopping VM's
        // statistics) before the machine goes off; bounded, never a hang.
        let online = smp::CPUS_ONLINE.load(core::sync::atomic::Ordering::Acquire);
        for _ in 0..50_000_000u64 {
            if FINISHED.load(core::sync::atomic::Ordering::Acquire) >= online {
                break;
            }
            core::hint::spin_loop();
        }
        // Wait a moment for other CPUs to finish printing, then power off.
        #[cfg(feature = "trace")]
        super::trace::dump();
        if crate::vm::vms().is_empty() {
            // scripts/run looks for this line: a run where no VM started
            // exits non-zero there, not 0 as a clean power-off would.
            println!("el2-hyp: no VM could start; powering off");
        } else {
            println!("el2-hyp: all VMs have stopped; powering off");
        }
        let e = firmware::system_off();
        println!("el2-hyp: SYSTEM_OFF failed: {e:?}");
    } else {
        firmware::cpu_off();
    }
    super::halt()
}

/// Rust entry of a secondary CPU (entry.S `secondary_entry`).
#[unsafe(no_mangle)]
extern "C" fn secondary_main(index: usize) -> ! {
    smp::set_this_cpu(index, super::sysreg::mpidr());
    init_el2_controls();
    super::gic::init_cpu(index);
    smp::report_started(index);
    cpu_loop(index)
}

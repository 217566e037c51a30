//! The hypervisor's self-tests and EL1 benchmarks: a payload the guest
//! kernel carries for the hypervisor's QEMU tests and `scripts/bench`, not
//! part of the kernel itself. Built only with the cargo feature `hyptest`
//! (scripts/build turns it on for `build/guest-kernel.bin`); without it,
//! `test=` on the command line is refused at boot (`boot.rs`).
//!
//! `test=NAME` runs a self-test instead of a normal boot. Each prints what
//! it checked and a last line `hyptest NAME: ok` or `hyptest NAME: FAILED
//! (...)`, then powers the VM off (unless the test is about not getting
//! that far). `test=bench-SET` runs a benchmark set ([`bench`]).
//!
//! - `hvc`: the SMCCC/PSCI answers, and NOT_SUPPORTED for unknown IDs;
//! - `isolation`: reads and writes of guest-physical addresses outside the
//!   VM's RAM and devices (where other VMs' and the hypervisor's memory
//!   sit in host-physical terms) each get an external abort;
//! - `fatal`: jumps to an address outside RAM: the fetch takes a prefetch
//!   abort in this kernel, which cannot go on and powers the VM off; other
//!   VMs run on;
//! - `reset`: PSCI SYSTEM_RESET once; after the reset, powers off;
//! - `reset-ram`: the first instance writes a pattern over every page it
//!   can allocate and asks for SYSTEM_RESET; the second finds no word of
//!   the pattern anywhere in its RAM, and every page it can allocate (RAM
//!   it never wrote) reads zero: the hypervisor's RAM on demand
//!   (`hypervisor/src/guestram.rs`) never shows a new instance old data;
//!   `reset-ram-wait` the same, but the first instance waits (WFI) for the
//!   VM to be stopped and started from the hypervisor's console instead;
//! - the hypervisor-core tests of [`core`] (`fp`, `fpreset`, `idregs`,
//!   `rtc`, ...);
//! - the interrupt tests of [`irq`] (`timer-rate`, `ipi`,
//!   `irq-priority`, `level`, `gic-nonsense`, `vcounter`);
//! - the architectural-answer tests of [`answers`] (`ptimer`, `pabt`,
//!   `refused-count`, `dbg-write`, `dbg-read`, `ctlchars`, `report-flood`);
//! - the VM-wide request and set/way tests of [`vmreq`] (`reset-both`,
//!   `reset-spin`, `cpuoff`, `slices`, `setway-storm`);
//! - the vCPU-scheduler tests of [`sched`] (`share`, `latency`);
//! - `lockdep-inversion`: takes two lock classes in one order, then in the
//!   other; a kernel built with `lockdep` reports the inversion and powers
//!   off before the last line (`crate::sync::lockdep`), one without it
//!   says `FAILED`.
//!
//! [`verdict`] holds their pure checks, unit-tested on the host; the rest
//! is aarch64 glue like `arch/aarch64`.

pub mod verdict;

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
#[allow(unsafe_code)] // glue: system registers, MMIO probes, FP registers
pub mod bench;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
#[allow(unsafe_code)] // glue: system registers, MMIO probes, FP registers
pub mod core;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
#[allow(unsafe_code)] // glue: system registers, MMIO probes, FP registers
pub mod irq;

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
#[allow(unsafe_code)] // glue: system registers, MMIO probes, debug registers
pub mod answers;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod sched;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod shm;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
#[allow(unsafe_code)] // glue: system registers, PSCI, set/way cache operations
pub mod vmreq;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
use crate::arch::aarch64::{psci, uaccess};
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
use crate::println;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
use psci::hvc as call;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
use shared::platform::Platform;

/// Runs test `name` (`hz` from the command line); never returns.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub fn run(name: &str, platform: &Platform, hz: u32) -> ! {
    let ok = match name {
        "hvc" => hvc(),
        "isolation" => isolation(platform),
        "fatal" => fatal(platform),
        "reset" => reset(platform),
        "reset-ram" => reset_ram(platform, false),
        "reset-ram-wait" => reset_ram(platform, true),
        "lockdep-inversion" => lockdep_inversion(),
        "shm-hostile" => shm::hostile(platform),
        other if self::core::handles(other) => self::core::run(other, platform),
        other if answers::handles(other) => answers::run(other, platform, hz),
        other if vmreq::handles(other) => vmreq::run(other, platform, hz),
        other if sched::handles(other) => sched::run(other, platform),
        _ => match irq::run(name, platform, hz) {
            Some(ok) => ok,
            None => {
                println!("hyptest: unknown test {name:?}");
                false
            }
        },
    };
    println!("hyptest {name}: {}", if ok { "ok" } else { "FAILED" });
    psci::system_off()
}

/// Takes `LOCKDEP_TEST_A` then `LOCKDEP_TEST_B`, then the other way round:
/// lockdep must stop the machine at the second `A` with a report naming
/// both classes. Returning at all is the failure.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
fn lockdep_inversion() -> bool {
    use crate::sync::{self, SpinLock};
    static A: SpinLock<u32> = SpinLock::new(&sync::LOCKDEP_TEST_A, 0);
    static B: SpinLock<u32> = SpinLock::new(&sync::LOCKDEP_TEST_B, 0);
    {
        let mut a = A.lock_irqsave();
        let mut b = B.lock_irqsave();
        *a += 1;
        *b += 1;
    }
    println!("hyptest lockdep-inversion: took A then B; now B then A");
    {
        let mut b = B.lock_irqsave();
        let mut a = A.lock_irqsave();
        *a += 1;
        *b += 1;
    }
    println!("hyptest lockdep-inversion: B then A was not reported (is the kernel built with lockdep?)");
    false
}

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
fn hvc() -> bool {
    const NOT_SUPPORTED: u64 = -1i64 as u64;
    let mut ok = true;
    let mut check = |what: &str, got: u64, want: u64| {
        let good = got == want;
        ok &= good;
        println!("hyptest hvc: {what}: {got:#x} {}", if good { "as expected" } else { "WRONG" });
    };
    check("PSCI_VERSION", call(shared::hvc::psci::VERSION, &[]), 0x1_0001);
    check("SMCCC_VERSION", call(shared::hvc::SMCCC_VERSION, &[]), 0x1_0001);
    check("vendor NOP", call(shared::hvc::vendor::NOP, &[]), 0);
    // Unknown function IDs, from every owner range, with junk arguments.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut unknown_ok = 0;
    const TRIES: u32 = 500;
    for _ in 0..TRIES {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let fid = (seed as u32) | 0x8000_0000;
        let owner = (fid >> 24) & 0x3f;
        let known = matches!(fid & 0xbfff_ffff, 0x8000_0000..=0x8000_0001 | 0x8400_0000..=0x8400_001f | 0x8600_0000..=0x8600_ffff);
        if known || owner == 4 || owner == 6 {
            continue;
        }
        if call(fid, &[seed, !seed, seed >> 3]) == NOT_SUPPORTED {
            unknown_ok += 1;
        } else {
            println!("hyptest hvc: unknown ID {fid:#x} did not return NOT_SUPPORTED");
            ok = false;
        }
    }
    println!("hyptest hvc: {unknown_ok} unknown function IDs answered NOT_SUPPORTED");
    ok
}

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
fn isolation(platform: &Platform) -> bool {
    let ram = platform.memory.first().copied().unwrap_or_default();
    // Guest-physical addresses outside this VM's RAM and devices. In host
    // terms, this is where the hypervisor's heap and other VMs' RAM lie.
    let targets = [ram.end(), ram.end() + (16 << 20), ram.base + (256 << 20), 0x4a20_0000, 0x4c00_0000, 0x1000];
    let mut ok = true;
    for ipa in targets {
        if ipa >= ram.base && ipa < ram.end() {
            continue;
        }
        let Some(va) = crate::arch::aarch64::mmu::map_probe_page(ipa, false) else {
            println!("hyptest isolation: cannot map IPA {ipa:#x} in stage 1");
            ok = false;
            continue;
        };
        match uaccess::probe_read(va) {
            Err(uaccess::Aborted) => println!("hyptest isolation: read of IPA {ipa:#x} aborted"),
            Ok(v) => {
                println!("hyptest isolation: read of IPA {ipa:#x} returned {v:#x}: NOT ISOLATED");
                ok = false;
            }
        }
    }
    ok & stolen_time_page_is_read_only()
}

/// The page the hypervisor shares with this VM, its stolen-time
/// structures (`PV_TIME_ST`, DEN0057): readable (revision 0), and a write
/// aborts (mapped read-only in stage 2).
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
#[allow(unsafe_code)] // the store to the hypervisor's page is the test
fn stolen_time_page_is_read_only() -> bool {
    let ipa = call(shared::hvc::pv_time::ST, &[]);
    let Some(va) = crate::arch::aarch64::mmu::map_probe_page(ipa, false) else {
        println!("hyptest isolation: cannot map the stolen-time page at IPA {ipa:#x}");
        return false;
    };
    let read = uaccess::probe_read(va);
    // SAFETY: a device mapping of the hypervisor's page; the store is the
    // test (it must abort, and the page is this VM's own if it did not).
    let write = unsafe { uaccess::probe_mmio_write(va, 8, 0x5a5a) };
    let ok = read.is_ok_and(|v| v as u32 == 0) && write.is_err();
    println!(
        "hyptest isolation: stolen-time page at IPA {ipa:#x}: read {}, write {}: {}",
        if read.is_ok() { "ok" } else { "aborted" },
        if write.is_err() { "aborted" } else { "WRITTEN" },
        if ok { "ok" } else { "NOT READ-ONLY" }
    );
    ok
}

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
#[allow(unsafe_code)] // the jump out of RAM is the test
fn fatal(platform: &Platform) -> bool {
    let ram = platform.memory.first().copied().unwrap_or_default();
    let target = ram.end() + (64 << 20);
    println!("hyptest fatal: jumping to IPA {target:#x}, outside this VM's RAM");
    // Executable normal memory in stage 1, nothing in stage 2: the fetch
    // takes a stage-2 instruction abort to EL2, which injects a prefetch
    // abort that this kernel does not expect (it dies).
    let Some(va) = crate::arch::aarch64::mmu::map_probe_page(target, true) else {
        return false;
    };
    // SAFETY: deliberately unsound for this VM: the test's point is that
    // it cannot go on; nothing after this runs.
    unsafe { ::core::arch::asm!("br {}", in(reg) va, options(noreturn)) }
}

/// A word of this kernel's image (.data) that the first boot overwrites
/// before asking for the reset: the reset must bring the image back.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
static RESET_MARK: ::core::sync::atomic::AtomicU64 = ::core::sync::atomic::AtomicU64::new(RESET_MARK_PRISTINE);
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
const RESET_MARK_PRISTINE: u64 = 0x5eed_f00d_1ea1_1d0e;

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
fn reset(platform: &Platform) -> bool {
    use ::core::sync::atomic::Ordering::SeqCst;
    if platform.vm_resets == 0 {
        RESET_MARK.store(!RESET_MARK_PRISTINE, SeqCst);
        println!("hyptest reset: first boot; asking for PSCI SYSTEM_RESET");
        psci::system_reset()
    }
    let mark = RESET_MARK.load(SeqCst);
    println!("hyptest reset: booted again after {} reset(s); image word {mark:#x}", platform.vm_resets);
    // Exactly the one reset asked for, and the image reloaded (a reset that
    // only jumped back to the entry point would leave the word changed).
    let ok = platform.vm_resets == 1 && mark == RESET_MARK_PRISTINE;
    if !ok {
        println!("hyptest reset: expected 1 reset and image word {RESET_MARK_PRISTINE:#x}");
    }
    ok
}

/// The pattern of `reset-ram`: each word holds this XOR its own physical
/// address, so that no word of a kernel image or table can hold it by
/// chance (a constant could sit in a literal pool).
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
const OLD_DATA: u64 = 0x6f6c_645f_6461_7461;

/// Allocates every page the page allocator still has (largest blocks
/// first), without `__GFP_ZERO`, and hands each block to `f` as (physical
/// address, bytes). Returns the bytes handed out. Nothing is freed: the
/// instance ends with the test.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
fn take_all_pages(mut f: impl FnMut(u64, usize)) -> u64 {
    use crate::arch::aarch64::{cpu, memory};
    use crate::mm::gfp::Gfp;
    use crate::mm::page::{MAX_ORDER, PAGE_SIZE, pfn_to_phys};
    let mut total = 0;
    for order in (0..MAX_ORDER).rev() {
        while let Some(pfn) = memory::with_pages(|pa| pa.alloc_pages(Gfp::GFP_KERNEL, order, cpu::smp_processor_id())) {
            let len = PAGE_SIZE << order;
            f(pfn_to_phys(pfn) as u64, len);
            total += len as u64;
        }
    }
    total
}

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
#[allow(unsafe_code)] // reading and writing RAM through the linear map is the test
fn reset_ram(platform: &Platform, wait: bool) -> bool {
    use crate::arch::aarch64::mmu::phys_to_virt;
    // Each word of `[pa, pa + len)`: its physical address and its pointer
    // in the linear map.
    let words =
        |pa: u64, len: usize| (0..len / 8).map(move |i| (pa + 8 * i as u64, (phys_to_virt(pa) + 8 * i) as *mut u64));
    if platform.vm_resets == 0 {
        let written = take_all_pages(|pa, len| {
            for (p, w) in words(pa, len) {
                // SAFETY: an allocated page of the linear map, ours alone.
                unsafe { w.write_volatile(OLD_DATA ^ p) };
            }
        });
        if wait {
            println!("hyptest reset-ram: wrote the pattern over {} MiB; waiting to be stopped", written >> 20);
            crate::arch::aarch64::cpu::local_irq_disable();
            loop {
                aarch64_cpu::asm::wfi();
            }
        }
        println!("hyptest reset-ram: wrote the pattern over {} MiB; asking for PSCI SYSTEM_RESET", written >> 20);
        psci::system_reset()
    }
    // The new instance: no word of the old one's pattern anywhere in RAM
    // (the kernel's own image and tables included)...
    let (mut scanned, mut old) = (0u64, 0u64);
    for r in platform.memory.iter() {
        for (p, w) in words(r.base, r.size as usize) {
            // SAFETY: RAM of the linear map; read only.
            if unsafe { w.read_volatile() } == OLD_DATA ^ p {
                if old == 0 {
                    println!("hyptest reset-ram: IPA {p:#x} holds the previous instance's pattern");
                }
                old += 1;
            }
            scanned += 8;
        }
    }
    // ...and the pages it never wrote (all it can still allocate) are zero.
    let mut nonzero = 0u64;
    let fresh = take_all_pages(|pa, len| {
        for (_, w) in words(pa, len) {
            // SAFETY: an allocated page of the linear map, ours alone.
            if unsafe { w.read_volatile() } != 0 {
                nonzero += 1;
            }
        }
    });
    println!(
        "hyptest reset-ram: booted again after {} reset(s); {old} word(s) of the old pattern in {} MiB of RAM; \
         {nonzero} non-zero word(s) in the {} MiB never written",
        platform.vm_resets,
        scanned >> 20,
        fresh >> 20
    );
    // Most of the RAM must have been checked both ways, or the test proves little.
    platform.vm_resets == 1 && old == 0 && nonzero == 0 && fresh >= scanned / 2
}

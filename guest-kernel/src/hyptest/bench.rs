//! Hypervisor micro-benchmarks, run by the guest kernel at EL1 instead of
//! its normal boot (`test=bench-hyp` or `test=bench-switch`; `-- quick`
//! after the kernel's words for few repetitions). Each prints
//!
//! ```text
//! BENCH id=hvc_psci_version reps=1000 ticks=123456 cntfrq=1000000000
//! ```
//!
//! counting virtual-counter ticks over `reps` operations; under QEMU
//! `-icount shift=0` a nanosecond of virtual time is one instruction
//! (executed by any CPU, guest or hypervisor), so `scripts/bench` turns
//! this into instructions per operation. docs/benchmarks.md says which
//! code path each one measures.
//!
//! - `bench-hyp` (a VM with two vCPUs on two physical CPUs): null
//!   hypercalls, a trapped ID register read, MMIO trap-and-emulate round
//!   trips (the vPL011, the vGIC's distributor and redistributor), the
//!   first touch of a 2 MiB block of RAM (the hypervisor fills and maps
//!   it), virtual IPI
//!   ping-pong to a vCPU waiting in WFI, virtual-timer delivery to a
//!   running vCPU and to one waiting in WFI;
//! - `bench-switch` (two such VMs time-sharing one physical CPU): the
//!   vendor YIELD hypercall gives the physical CPU to the other VM's vCPU,
//!   so each round of the loop is two vCPU switches.

use crate::arch::aarch64::cpu::{local_irq_disable, local_irq_enable};
use crate::arch::aarch64::{irq, psci, smp};
use crate::println;
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{CNTV_CTL_EL0, CNTV_CVAL_EL0, Readable, Writeable};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use shared::platform::Platform;

/// CNTV_CTL_EL0: ENABLE, and IMASK (ARM ARM D13.8.x).
const CTL_ENABLE: u64 = CNTV_CTL_EL0::ENABLE::SET.value;
const CTL_IMASK: u64 = CNTV_CTL_EL0::IMASK::SET.value;
/// PL011 flag register offset (the UART's FR, PL011 TRM 3.3.3).
const UARTFR: usize = 0x18;

/// IPIs taken by CPU 1 / CPU 0 in the ping-pong.
static PINGS: AtomicU64 = AtomicU64::new(0);
static PONGS: AtomicU64 = AtomicU64::new(0);
/// Timer interrupts taken, and the ticks from expiry to handler entry.
static TIMER_FIRED: AtomicU64 = AtomicU64::new(0);
static TIMER_LATENCY: AtomicU64 = AtomicU64::new(0);

fn report(id: &str, reps: u64, ticks: u64) {
    println!("BENCH id={id} reps={reps} ticks={ticks} cntfrq={}", irq::cntfrq());
}

fn hvc(fid: u32) -> u64 {
    psci::hvc(fid, &[])
}

fn wfi() {
    aarch64_cpu::asm::wfi();
}

/// Programs the virtual timer. It is disabled while CVAL changes, so that
/// no stale comparison fires an interrupt on the way.
fn set_vtimer(ctl: u64, cval: u64) {
    CNTV_CTL_EL0.set(0);
    barrier::isb(barrier::SY);
    CNTV_CVAL_EL0.set(cval);
    CNTV_CTL_EL0.set(ctl);
    barrier::isb(barrier::SY);
}

fn vtimer_cval() -> u64 {
    CNTV_CVAL_EL0.get()
}

/// The interrupt hook (irq::set_test_hook): takes the benchmark's
/// interrupts; the counter is read first thing, as the handler's entry.
fn on_irq(cpu: usize, raw: u32) -> bool {
    let entry = irq::read_cntvct();
    match raw & 0x3ff {
        irq::IPI_RESCHEDULE if cpu == 1 => {
            // Ping received on CPU 1: pong back.
            PINGS.fetch_add(1, Ordering::Release);
            irq::send_ipi(1, irq::IPI_RESCHEDULE);
            true
        }
        irq::IPI_RESCHEDULE => {
            PONGS.fetch_add(1, Ordering::Release);
            true
        }
        id if id == irq::timer_intid() => {
            TIMER_LATENCY.fetch_add(entry.wrapping_sub(vtimer_cval()), Ordering::Relaxed);
            set_vtimer(CTL_ENABLE | CTL_IMASK, 0);
            TIMER_FIRED.fetch_add(1, Ordering::Release);
            true
        }
        _ => false,
    }
}

/// CPU 1 during `bench-hyp`: waits for pings with interrupts on.
fn secondary(_cpu: usize) -> ! {
    irq::stop_tick();
    local_irq_enable();
    loop {
        wfi();
    }
}

/// Runs benchmark set `name`; never returns.
pub fn run(name: &str, platform: &Platform, quick: bool) -> ! {
    let scale = if quick { 1 } else { 20 };
    irq::set_test_hook(Some(on_irq));
    smp::set_secondary_test(secondary);
    irq::init(platform, 100);
    irq::stop_tick(); // no tick: nothing but the benchmark's interrupts
    match name {
        "hyp" => hyp(platform, scale),
        "switch" => switch(scale),
        _ => println!("hypbench: unknown benchmark set {name:?} (hyp, switch)"),
    }
    println!("hypbench: done");
    psci::system_off()
}

fn time(id: &str, reps: u64, mut op: impl FnMut()) {
    for _ in 0..reps / 10 {
        op();
    }
    let t0 = irq::read_cntvct();
    for _ in 0..reps {
        op();
    }
    report(id, reps, irq::read_cntvct() - t0);
}

fn hyp(platform: &Platform, scale: u64) {
    time("hvc_psci_version", 200 * scale, || {
        hvc(shared::hvc::psci::VERSION);
    });
    time("hvc_vendor_nop", 200 * scale, || {
        hvc(shared::hvc::vendor::NOP);
    });
    stage2_first_touch(4.max(scale));
    if let Some(uart) = platform.uart {
        let fr = crate::arch::aarch64::mmu::phys_to_virt(uart.region.base) + UARTFR;
        time("mmio_uart_fr_read", 200 * scale, || {
            // SAFETY: the kernel maps its UART as device memory; reading
            // the flag register has no side effects.
            unsafe { core::ptr::read_volatile(fr as *const u32) };
        });
    }
    // Trapped by HCR_EL2.TID3 (hyptest core checks the answer is the
    // hypervisor's: EL2 hidden), answered from idregs at EL2.
    time("sysreg_id_read", 200 * scale, || {
        let v: u64;
        // SAFETY: reading an ID register has no side effects.
        unsafe { core::arch::asm!("mrs {}, ID_AA64PFR0_EL1", out(reg) v, options(nomem, nostack)) };
        core::hint::black_box(v);
    });
    if let Some(g) = platform.gic.as_ref() {
        // GICD_TYPER (IHI 0069H §12.9.38, IHI 0048B §4.3.2): read-only,
        // no side effects, the same on GICv2 and GICv3.
        let typer = crate::arch::aarch64::mmu::phys_to_virt(g.gicd.base) + 0x4;
        time("mmio_gicd_typer_read", 200 * scale, || mmio_read32(typer));
        // GICR_TYPER (IHI 0069H §12.11.35) of this vCPU's redistributor
        // (vCPU 0: the first frame), its low word.
        if let Some(r) = g.gicr.first() {
            let typer = crate::arch::aarch64::mmu::phys_to_virt(r.base) + 0x8;
            time("mmio_gicr_typer_read", 200 * scale, || mmio_read32(typer));
        }
    }
    local_irq_enable();
    vtimer(20 * scale, false);
    vtimer(20 * scale, true);
    if smp::smp_init() >= 2 {
        ipi_ping_pong(50 * scale);
    } else {
        println!("hypbench: one CPU only: no IPI benchmark");
    }
    local_irq_disable();
}

/// The first load from a 2 MiB block of RAM nothing has touched yet: the
/// hypervisor takes the stage-2 fault, zeroes, cleans and maps the block
/// (`hypervisor/src/guestram.rs`), and the load is retried. The blocks are
/// free order-9 blocks of the page allocator, taken without `__GFP_ZERO`:
/// free pages are never written (the buddy lists live in `struct page`),
/// and a block that held an image the hypervisor loaded cannot be wholly
/// free. Up to `blocks` of them (fewer if the allocator runs out); never
/// freed (the VM ends with the benchmarks).
fn stage2_first_touch(blocks: u64) {
    use crate::arch::aarch64::{cpu, memory, mmu};
    use crate::mm::gfp::Gfp;
    use crate::mm::page::pfn_to_phys;
    let (mut n, mut ticks) = (0, 0);
    while n < blocks {
        let Some(pfn) = memory::with_pages(|pa| pa.alloc_pages(Gfp::GFP_KERNEL, 9, cpu::smp_processor_id())) else {
            break;
        };
        let va = mmu::phys_to_virt(pfn_to_phys(pfn) as u64) as *const u64;
        let t0 = irq::read_cntvct();
        // SAFETY: a block of RAM in the linear map, just allocated for us.
        unsafe { va.read_volatile() };
        ticks += irq::read_cntvct() - t0;
        n += 1;
    }
    if n == 0 {
        println!("hypbench: no free 2 MiB block for stage2_first_touch");
        return;
    }
    report("stage2_first_touch", n, ticks);
}

/// One 32-bit load from device address `va` with a single `ldr`, so the
/// hypervisor gets a complete syndrome (ESR_EL2.ISV = 1).
fn mmio_read32(va: usize) {
    let v: u32;
    // SAFETY: callers pass a mapped device register whose read has no
    // side effects.
    unsafe { core::arch::asm!("ldr {v:w}, [{a}]", v = out(reg) v, a = in(reg) va, options(nostack, readonly)) };
    core::hint::black_box(v);
}

/// Virtual-timer delivery: expiry (CNTV_CVAL) to handler entry, with the
/// vCPU spinning (`wait_in_wfi` false) or waiting in WFI.
fn vtimer(reps: u64, wait_in_wfi: bool) {
    let freq = irq::cntfrq();
    TIMER_LATENCY.store(0, Ordering::Relaxed);
    for i in 0..reps {
        // 100 µs ahead: far enough to be waiting when it expires.
        set_vtimer(CTL_ENABLE, irq::read_cntvct() + freq / 10_000);
        while TIMER_FIRED.load(Ordering::Acquire) == i {
            if wait_in_wfi {
                wfi();
            } else {
                core::hint::spin_loop();
            }
        }
    }
    TIMER_FIRED.store(0, Ordering::Relaxed);
    let id = if wait_in_wfi { "vtimer_delivery_wfi" } else { "vtimer_delivery_running" };
    report(id, reps, TIMER_LATENCY.load(Ordering::Relaxed));
}

/// Ping-pong between vCPU 0 and vCPU 1 (each waits in WFI): one round is
/// two IPIs, each from send to the receiver's handler entry and on.
fn ipi_ping_pong(rounds: u64) {
    let t0 = irq::read_cntvct();
    for i in 0..rounds {
        irq::send_ipi(1 << 1, irq::IPI_RESCHEDULE);
        while PONGS.load(Ordering::Acquire) == i {
            wfi();
        }
    }
    report("vipi_one_way", 2 * rounds, irq::read_cntvct() - t0);
}

/// Two VMs' vCPUs time-share one physical CPU and each loops on the
/// vendor YIELD hypercall, which makes the hypervisor run the other vCPU:
/// a round of the loop is two vCPU switches. (A trapped WFE would do the
/// same on hardware, but QEMU never traps WFE.) The median round is
/// reported, so that rounds before the other VM joins do not count.
fn switch(scale: u64) {
    let rounds = (100 * scale) as usize;
    let mut t = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t0 = irq::read_cntvct();
        hvc(shared::hvc::vendor::YIELD);
        t.push(irq::read_cntvct() - t0);
    }
    t.sort_unstable();
    // One median round is two switches.
    report("vcpu_switch_between_vms", 2, t[rounds / 2]);
}

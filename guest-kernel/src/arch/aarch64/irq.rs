//! The interrupt controller and the tick: GICv3 (distributor, redistributors
//! and the ICC_* system-register CPU interface) or GICv2 (distributor and
//! the memory-mapped GICC), found in the DTB and driven through `arm-gic`;
//! the EL1 virtual timer (CNTV_*, PPI 11 = INTID 27 on QEMU virt) at HZ;
//! software-generated interrupts as IPIs; and the IRQ entry path:
//! acknowledge, top half, softirqs on irq_exit, preemption on return.
//!
//! LKD ch. 7 (interrupt handlers), ch. 8 (softirqs run at irq_exit), ch. 11
//! (the timer interrupt: jiffies, update_process_times, run_local_timers).
//! ARM ARM D11 (the generic timer), GIC architecture spec IHI 0069 (v3) and
//! IHI 0048 (v2).

use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{
    CNTFRQ_EL0, CNTKCTL_EL1, CNTV_CTL_EL0, CNTV_TVAL_EL0, CNTVCT_EL0, MPIDR_EL1, Readable, Writeable,
};
use arm_gic::gicv2::GicV2;
use arm_gic::gicv3::{GicCpuInterface, GicV3, SgiTarget, SgiTargetGroup};
use arm_gic::{IntId, InterruptGroup, UniqueMmioPointer};
use shared::platform::{GicVersion, Platform};

use super::cpu::{nr_cpus, smp_processor_id};
use super::mmu::phys_to_virt;
use super::trap::TrapFrame;
use crate::sync::{self, SpinLock};

/// SGI used to make another CPU reschedule (Linux IPI_RESCHEDULE).
pub const IPI_RESCHEDULE: u32 = 0;
/// SGI that stops a CPU for power-off (IPI_CPU_STOP).
pub const IPI_CPU_STOP: u32 = 1;

enum Gic {
    V2(GicV2<'static>),
    V3(GicV3<'static>),
}

// SAFETY: the GICv2 driver holds pointers to device memory that every CPU
// may use (GICD is shared, GICC is banked per CPU); all use is behind the
// GIC lock.
unsafe impl Send for Gic {}

static GIC: SpinLock<Option<Gic>> = SpinLock::new(&sync::GIC, None);
static GIC_V3: AtomicBool = AtomicBool::new(false);
/// Group used for acknowledging on GICv2 (group 0 without Security
/// Extensions, group 1 with them; GicV2::setup chooses the same way).
static V2_GROUP1: AtomicBool = AtomicBool::new(false);
static TIMER_INTID: AtomicU32 = AtomicU32::new(27);
/// Counter ticks per tick (CNTFRQ / HZ).
static TICK_CYCLES: AtomicU64 = AtomicU64::new(0);
/// Counter frequency.
static CNTFRQ: AtomicU64 = AtomicU64::new(62_500_000);
/// Timer interrupts taken, all CPUs.
pub static TICKS: AtomicU64 = AtomicU64::new(0);
/// True once the tick is known to arrive; without it the idle loop polls
/// the counter for timers instead of waiting in WFI.
pub static TICK_WORKS: AtomicBool = AtomicBool::new(false);
/// Virtual address of the distributor (GICD), for the register accesses
/// arm-gic has no call for.
static GICD_VA: AtomicUsize = AtomicUsize::new(0);
/// A hypervisor self-test's interrupt handler ([`set_test_hook`]), or 0.
#[cfg(feature = "hyptest")]
static TEST_HOOK: AtomicUsize = AtomicUsize::new(0);

/// An interrupt handler of the hypervisor self-tests (`crate::hyptest`):
/// called on CPU `cpu` with the raw acknowledge value (GICv2 SGIs carry
/// their source CPU in bits [12:10]); returns true if it handled the
/// interrupt, which is then ended without the kernel's own handling.
#[cfg(feature = "hyptest")]
pub type TestHook = fn(cpu: usize, raw: u32) -> bool;

/// Reads CNTVCT_EL0 (after an isb, so it is not read early).
pub fn read_cntvct() -> u64 {
    barrier::isb(barrier::SY);
    CNTVCT_EL0.get()
}

/// Counter frequency in Hz.
pub fn cntfrq() -> u64 {
    CNTFRQ.load(Ordering::Relaxed)
}

/// Monotonic nanoseconds since the counter started. A frequency that
/// divides 10^9 (QEMU's 1 GHz and 62.5 MHz counters, 25 MHz, ...) needs a
/// multiply only, with the same result; others a 128-bit division.
pub fn now_ns() -> u64 {
    let f = cntfrq();
    let c = read_cntvct();
    if f != 0 && 1_000_000_000 % f == 0 {
        return c.wrapping_mul(1_000_000_000 / f);
    }
    ((c as u128 * 1_000_000_000) / f as u128) as u64
}

fn gic_version_is_v3() -> bool {
    GIC_V3.load(Ordering::Relaxed)
}

/// Discovers and initialises the GIC and the timer on the boot CPU.
/// Returns false if the DTB names no GIC (no interrupts at all).
pub fn init(platform: &Platform, hz: u32) -> bool {
    let freq = {
        let f = CNTFRQ_EL0.get();
        platform.timer.and_then(|t| t.frequency).map_or(f, u64::from)
    };
    CNTFRQ.store(freq.max(1), Ordering::Relaxed);
    TICK_CYCLES.store((freq / u64::from(hz)).max(1), Ordering::Relaxed);
    if let Some(t) = platform.timer {
        TIMER_INTID.store(t.virt.intid(), Ordering::Relaxed);
    }
    let Some(g) = platform.gic.as_ref() else { return false };
    GICD_VA.store(phys_to_virt(g.gicd.base), Ordering::Relaxed);
    let gicd = phys_to_virt(g.gicd.base) as *mut arm_gic::gicv3::registers::Gicd;
    let gic = match g.version {
        GicVersion::V3 => {
            let Some(r) = g.gicr.first() else { return false };
            // SAFETY: mmu::init mapped the DTB's GICD and GICR frames as
            // device memory; this driver is their only user.
            let gic = unsafe {
                GicV3::new(
                    UniqueMmioPointer::new(NonNull::new(gicd).unwrap()),
                    NonNull::new(phys_to_virt(r.base) as *mut _).unwrap(),
                    nr_cpus(),
                )
            };
            match gic {
                Ok(mut gic) => {
                    gic.setup(0);
                    GIC_V3.store(true, Ordering::Relaxed);
                    Gic::V3(gic)
                }
                Err(_) => return false,
            }
        }
        GicVersion::V2 => {
            let Some(c) = g.gicc else { return false };
            // SAFETY: mmu::init mapped GICD and GICC as device memory; this
            // driver is their only user.
            let mut gic = unsafe { GicV2::new(gicd.cast(), phys_to_virt(c.base) as *mut _) };
            V2_GROUP1.store(gic.typer().has_security_extension(), Ordering::Relaxed);
            gic.setup();
            Gic::V2(gic)
        }
    };
    *GIC.lock_irqsave() = Some(gic);
    init_cpu(0);
    true
}

/// Per-CPU part: CPU interface on, the timer PPI and the IPIs enabled, the
/// timer armed for the first tick, and EL0 allowed to read the virtual
/// counter (CNTKCTL_EL1.EL0VCTEN, ARM ARM D13.8.x; Linux sets it for the
/// vDSO, and the benchmarks read CNTVCT_EL0 directly).
pub fn init_cpu(cpu: usize) {
    // CNTKCTL_EL1 only controls EL0 access to the generic timer: EL0VCTEN
    // lets EL0 read CNTVCT_EL0 and nothing else.
    CNTKCTL_EL1.write(CNTKCTL_EL1::EL0VCTEN::TrappedNone);
    barrier::isb(barrier::SY);
    let timer = IntId::ppi(TIMER_INTID.load(Ordering::Relaxed) - 16);
    if let Some(gic) = GIC.lock_irqsave().as_mut() {
        match gic {
            Gic::V3(g) => {
                if cpu != 0 {
                    g.init_cpu(cpu);
                    GicCpuInterface::enable_group1(true);
                }
                for id in [timer, IntId::sgi(IPI_RESCHEDULE), IntId::sgi(IPI_CPU_STOP)] {
                    let _ = g.set_interrupt_priority(id, Some(cpu), 0x80);
                    let _ = g.enable_interrupt(id, Some(cpu), true);
                }
                GicCpuInterface::set_priority_mask(0xff);
            }
            Gic::V2(g) => {
                if cpu != 0 {
                    g.setup();
                }
                for id in [timer, IntId::sgi(IPI_RESCHEDULE), IntId::sgi(IPI_CPU_STOP)] {
                    set_priority_v2(u32::from(id), 0x80);
                    let _ = g.enable_interrupt(id, true);
                }
            }
        }
    }
    arm_timer();
}

/// GICD_IPRIORITYR<n> byte of `intid` (GICv2: banked per CPU for INTIDs
/// below 32). The registers are byte-accessible (IHI 0048B §4.3.11); arm-gic
/// 0.10's `GicV2::set_interrupt_priority` writes the whole word and so
/// zeroes the priorities of the three neighbours.
fn set_priority_v2(intid: u32, priority: u8) {
    gicd_write8(0x400 + intid as usize, priority);
}

/// Writes byte `value` at `offset` of the distributor with one `strb`.
fn gicd_write8(offset: usize, value: u8) {
    let base = GICD_VA.load(Ordering::Relaxed);
    if base == 0 {
        return;
    }
    // SAFETY: `init` mapped the DTB's GICD frame as device memory at this
    // address; `offset` lies inside it. A single strb gives the hypervisor
    // a complete syndrome (ESR_EL2.ISV = 1).
    unsafe {
        core::arch::asm!("strb {v:w}, [{a}]", v = in(reg) u32::from(value), a = in(reg) base + offset, options(nostack))
    };
}

/// Writes `value` at `offset` of the distributor with one 32-bit `str`.
pub fn gicd_write32(offset: usize, value: u32) {
    let base = GICD_VA.load(Ordering::Relaxed);
    if base == 0 || offset >= 0x1_0000 {
        return;
    }
    // SAFETY: as for `gicd_write8`.
    unsafe {
        core::arch::asm!("str {v:w}, [{a}]", v = in(reg) value, a = in(reg) base + (offset & !3), options(nostack))
    };
}

/// Installs (or with `None` removes) the self-tests' interrupt handler.
#[cfg(feature = "hyptest")]
pub fn set_test_hook(hook: Option<TestHook>) {
    TEST_HOOK.store(hook.map_or(0, |f| f as usize), Ordering::Release);
}

#[cfg(feature = "hyptest")]
fn test_hook() -> Option<TestHook> {
    let p = TEST_HOOK.load(Ordering::Acquire);
    // SAFETY: `set_test_hook` is the only writer of a non-zero value, and
    // it stores a `TestHook` function pointer.
    (p != 0).then(|| unsafe { core::mem::transmute::<usize, TestHook>(p) })
}

/// Sets the priority and trigger of `intid` and enables it: an SGI or PPI
/// of the calling CPU, or an SPI (routed to the calling CPU).
/// The trigger of SGIs is fixed (edge) and not written.
pub fn configure(intid: u32, priority: u8, edge: bool) {
    let cpu = smp_processor_id();
    let id = match intid {
        0..16 => IntId::sgi(intid),
        16..32 => IntId::ppi(intid - 16),
        _ => IntId::spi(intid - 32),
    };
    let trigger = if edge { arm_gic::Trigger::Edge } else { arm_gic::Trigger::Level };
    match GIC.lock_irqsave().as_mut() {
        Some(Gic::V3(g)) => {
            let _ = g.set_interrupt_priority(id, Some(cpu), priority);
            if intid >= 16 {
                let _ = g.set_trigger(id, Some(cpu), trigger);
            }
            if intid >= 32 {
                // GICD_IROUTER<n> (IHI 0069H §12.9.22, reset value UNKNOWN):
                // this CPU's affinity, Aff3 in bits [39:32]; two word writes.
                let mpidr = MPIDR_EL1.get();
                let route = (mpidr & 0xff_ffff) | ((mpidr >> 32 & 0xff) << 32);
                let off = 0x6000 + 8 * intid as usize;
                gicd_write32(off, route as u32);
                gicd_write32(off + 4, (route >> 32) as u32);
            }
            let _ = g.enable_interrupt(id, Some(cpu), true);
        }
        Some(Gic::V2(g)) => {
            set_priority_v2(intid, priority);
            if intid >= 16 {
                g.set_trigger(id, trigger);
            }
            if intid >= 32 {
                // GICD_ITARGETSR<n> (IHI 0048B §4.3.12): SPI targets reset
                // to none; route to this CPU (byte-accessible).
                gicd_write8(0x800 + intid as usize, 1 << cpu);
            }
            let _ = g.enable_interrupt(id, true);
        }
        None => {}
    }
}

/// Makes SPI `intid` pending through GICD_ISPENDR<n> (IHI 0069H §12.9.20,
/// IHI 0048B §4.3.7): a software pending state, as a device would assert it.
pub fn set_spi_pending(intid: u32) {
    if intid >= 32 {
        gicd_write32(0x200 + 4 * (intid as usize / 32), 1 << (intid % 32));
    }
}

/// Stops this CPU's tick (CNTV_CTL_EL0 = 0: disabled).
pub fn stop_tick() {
    CNTV_CTL_EL0.set(0);
    barrier::isb(barrier::SY);
}

/// The virtual timer's INTID (from the DTB; 27 on QEMU virt).
pub fn timer_intid() -> u32 {
    TIMER_INTID.load(Ordering::Relaxed)
}

/// Programs the virtual timer for one tick from now (CNTV_TVAL_EL0) and
/// enables it unmasked (CNTV_CTL_EL0.ENABLE = 1, IMASK = 0).
/// The tick's acknowledge: re-arm this CPU's timer for the next tick and
/// count it.
pub fn timer_ack() {
    arm_timer();
    TICKS.fetch_add(1, Ordering::Relaxed);
    TICK_WORKS.store(true, Ordering::Relaxed);
}

fn arm_timer() {
    let tval = TICK_CYCLES.load(Ordering::Relaxed);
    CNTV_TVAL_EL0.set(tval);
    CNTV_CTL_EL0.write(CNTV_CTL_EL0::ENABLE::SET);
    barrier::isb(barrier::SY);
}

fn ack() -> Option<IntId> {
    if gic_version_is_v3() {
        GicCpuInterface::get_and_acknowledge_interrupt(InterruptGroup::Group1)
    } else {
        let group = if V2_GROUP1.load(Ordering::Relaxed) { InterruptGroup::Group1 } else { InterruptGroup::Group0 };
        match GIC.lock_irqsave().as_mut() {
            Some(Gic::V2(g)) => g.get_and_acknowledge_interrupt(group),
            _ => None,
        }
    }
}

fn eoi(id: IntId) {
    if gic_version_is_v3() {
        GicCpuInterface::end_interrupt(id, InterruptGroup::Group1);
    } else {
        let group = if V2_GROUP1.load(Ordering::Relaxed) { InterruptGroup::Group1 } else { InterruptGroup::Group0 };
        if let Some(Gic::V2(g)) = GIC.lock_irqsave().as_mut() {
            g.end_interrupt(id, group);
        }
    }
}

/// Sends SGI `sgi` to each CPU in `mask` (a logical CPU bit mask).
#[inline]
pub fn send_ipi(mask: u64, sgi: u32) {
    // Every kernel-lock release calls this, nearly always with nothing to
    // send: keep that test inline, ahead of the slow path's prologue.
    if mask != 0 {
        send_ipi_mask(mask, sgi);
    }
}

#[inline(never)]
fn send_ipi_mask(mask: u64, sgi: u32) {
    let mut g = GIC.lock_irqsave();
    match g.as_mut() {
        Some(Gic::V3(_)) => {
            for cpu in (0..nr_cpus()).filter(|c| mask & (1 << c) != 0) {
                let m = super::cpu::cpu_mpidr(cpu);
                let target = SgiTarget::List {
                    affinity3: (m >> 32) as u8,
                    affinity2: (m >> 16) as u8,
                    affinity1: (m >> 8) as u8,
                    target_list: 1 << (m & 0xf),
                };
                let _ = GicCpuInterface::send_sgi(IntId::sgi(sgi), target, SgiTargetGroup::CurrentGroup1);
            }
        }
        Some(Gic::V2(gic)) => {
            // GICv2 CPU targets are the interface numbers, which QEMU and
            // GIC-400 number like the logical CPUs.
            gic.send_sgi(
                IntId::sgi(sgi),
                arm_gic::gicv2::SgiTarget::List {
                    target_list_filter: arm_gic::gicv2::SgiTargetListFilter::CPUTargetList,
                    target_list: (mask & 0xff) as u16,
                },
            );
        }
        None => {}
    }
}

/// The IRQ exception (slots 5 and 9): acknowledge one interrupt, run its
/// top half, end it, then `irq_exit` work: softirqs and preemption.
pub fn handle_irq(frame: &mut TrapFrame, from_el0: bool) {
    let cpu = smp_processor_id();
    let Some(id) = ack() else { return };
    let raw = u32::from(id);
    #[cfg(feature = "hyptest")]
    if let Some(hook) = test_hook()
        && hook(cpu, raw)
    {
        eoi(id);
        return;
    }
    crate::kernel::softirq::irq_enter(cpu);
    // GICv2 SGIs carry their source CPU in bits [12:10] of the raw value.
    let intid = raw & 0x3ff;
    if intid >= 16 {
        // Device interrupts and the tick: the registered actions.
        crate::kernel::softirq::generic_handle_irq(intid);
        eoi(id);
    } else if intid == IPI_CPU_STOP {
        eoi(id);
        super::cpu::local_irq_disable();
        loop {
            // Parks this CPU for power-off.
            aarch64_cpu::asm::wfi();
        }
    } else {
        // IPI_RESCHEDULE: need_resched is already set; the return path acts.
        eoi(id);
    }
    crate::kernel::softirq::irq_exit(cpu, frame, from_el0);
}
